//! Namespaces, tags and single-key invalidation: one round trip per hit,
//! recycled keys, and invalidation that wins over computations in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use cachette::{Cache, Scope, cached, invalidate};
use redis::aio::MultiplexedConnection;
use support::RedisServer;
use support::store::redis_cache;

const HOUR: Duration = Duration::from_secs(3600);

async fn reset_stats(conn: &mut MultiplexedConnection) {
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(conn)
        .await
        .unwrap();
}

/// Calls of each command since the last `CONFIG RESETSTAT`, except the test's own `INFO` and `CONFIG`.
async fn commands(conn: &mut MultiplexedConnection) -> Vec<(String, u64)> {
    let mut calls = support::command_calls(conn).await;
    calls.retain(|(name, _)| name != "info" && !name.starts_with("config"));
    calls
}

#[tokio::test]
async fn a_hit_with_a_namespace_and_two_tags_is_one_command() {
    let (server, cache) = redis_cache(Cache::builder()).await;
    let scope = Scope::new()
        .namespace("product")
        .tag("category:books")
        .tag("shop:1");
    let calls = AtomicUsize::new(0);
    let compute = || async {
        calls.fetch_add(1, Ordering::SeqCst);
        vec!["Dune".to_owned()]
    };
    cache
        .get_or_set_in("products:books", compute, HOUR, &scope)
        .await
        .unwrap();

    let mut conn = server.connect(0).await;
    reset_stats(&mut conn).await;
    let hit = cache
        .get_or_set_in("products:books", compute, HOUR, &scope)
        .await
        .unwrap();
    assert_eq!(hit, ["Dune"]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let after = commands(&mut conn).await;
    assert_eq!(
        after,
        [("mget".to_owned(), 1)],
        "one MGET: the entry and its three versions"
    );
}

#[tokio::test]
async fn a_plain_hit_is_one_get() {
    let (server, cache) = redis_cache(Cache::builder()).await;
    cache.get_or_set("k", || async { 1 }, HOUR).await.unwrap();
    let mut conn = server.connect(0).await;
    reset_stats(&mut conn).await;
    assert_eq!(
        cache.get_or_set("k", || async { 2 }, HOUR).await.unwrap(),
        1
    );
    assert_eq!(commands(&mut conn).await, [("get".to_owned(), 1)]);
}

static SHELF_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "shelf:{shelf}", namespace = "shelves", tags = ["shelf:{shelf}", "all"], cache = cache)]
async fn shelf(cache: &Cache, shelf: u32) -> Vec<String> {
    SHELF_RUNS.fetch_add(1, Ordering::SeqCst);
    vec![format!("book on shelf {shelf}")]
}

static PLAIN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "plain:{n}", cache = cache)]
async fn plain(cache: &Cache, n: u32) -> u32 {
    PLAIN_RUNS.fetch_add(1, Ordering::SeqCst);
    n * 2
}

/// A `#[cached]` hit on Redis is one command. Its miss reads twice (the
/// first read, then the flight's leader re-reads before computing) and
/// writes once, through the guarded-write script (whose own `GET` and `SET`
/// Redis counts too).
#[tokio::test]
async fn a_cached_functions_hit_is_one_command_and_its_miss_reads_twice() {
    let (server, cache) = redis_cache(Cache::builder()).await;
    let mut conn = server.connect(0).await;
    cache.invalidate_namespace("shelves").await.unwrap();
    reset_stats(&mut conn).await;
    assert_eq!(shelf(&cache, 1).await, ["book on shelf 1"]);
    let miss = commands(&mut conn).await;
    assert_eq!(SHELF_RUNS.load(Ordering::SeqCst), 1);
    assert!(miss.contains(&("mget".to_owned(), 2)), "{miss:?}");
    reset_stats(&mut conn).await;
    assert_eq!(shelf(&cache, 1).await, ["book on shelf 1"]);
    assert_eq!(SHELF_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(commands(&mut conn).await, [("mget".to_owned(), 1)]);

    reset_stats(&mut conn).await;
    assert_eq!(plain(&cache, 4).await, 8);
    let mut plain_miss = commands(&mut conn).await;
    plain_miss.sort();
    let expected = [("evalsha", 1), ("get", 3), ("set", 1)].map(|(c, n)| (c.to_owned(), n));
    assert_eq!(plain_miss, expected);
    reset_stats(&mut conn).await;
    assert_eq!(plain(&cache, 4).await, 8);
    assert_eq!(PLAIN_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(commands(&mut conn).await, [("get".to_owned(), 1)]);
}

#[tokio::test]
async fn a_bump_recycles_keys_instead_of_adding_new_ones() {
    let (server, cache) = redis_cache(Cache::builder()).await;
    let scope = Scope::new().namespace("product");
    let fill = |round: u32| {
        let (cache, scope) = (cache.clone(), scope.clone());
        async move {
            for i in 0..50 {
                let got = cache
                    .get_or_set_in(
                        &format!("products:{i}"),
                        || async move { round },
                        HOUR,
                        &scope,
                    )
                    .await
                    .unwrap();
                assert_eq!(got, round);
            }
        }
    };
    fill(1).await;
    let mut conn = server.connect(0).await;
    let before: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(before, 51, "50 entries and the namespace's version");
    cache.invalidate_namespace("product").await.unwrap();
    fill(2).await;
    let after: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(after, before);
}

#[tokio::test]
async fn a_version_key_lost_to_eviction_never_revives_old_entries() {
    let (server, cache) = redis_cache(Cache::builder().key_prefix("p")).await;
    let scope = Scope::new().tag("t");
    cache
        .get_or_set_in("k", || async { "old".to_owned() }, HOUR, &scope)
        .await
        .unwrap();
    let mut conn = server.connect(0).await;
    // As if Redis evicted the version key under memory pressure.
    let () = redis::cmd("DEL")
        .arg("p#tag:t")
        .query_async(&mut conn)
        .await
        .unwrap();
    let got = cache
        .get_or_set_in("k", || async { "new".to_owned() }, HOUR, &scope)
        .await
        .unwrap();
    assert_eq!(got, "new");
}

/// A counter standing in for a database row, in the test's Redis (one
/// server, or a cluster).
enum Row {
    Server(MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Row {
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        match self {
            Row::Server(conn) => cmd.query_async(&mut conn.clone()).await.unwrap(),
            Row::Cluster(conn) => cmd.query_async(&mut conn.clone()).await.unwrap(),
        }
    }

    async fn read(&self) -> u64 {
        let v: Option<u64> = self.query(redis::cmd("HGET").arg("db:row").arg("v")).await;
        v.unwrap_or(0)
    }

    async fn write_next(&self) -> u64 {
        self.query(redis::cmd("HINCRBY").arg("db:row").arg("v").arg(1))
            .await
    }
}

#[cached(key = "row", namespace = "rows", tags = ["row:1"], cache = &ctx.cache, skip(ctx))]
async fn read_row(ctx: &Ctx) -> u64 {
    let value = ctx.row.read().await;
    // Widen the window between reading the database and storing the value.
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    value
}

struct Ctx {
    cache: Cache,
    row: Row,
}

#[derive(Clone, Copy, Debug)]
enum How {
    Key,
    Namespace,
    Tag,
}

/// Writers update the row then invalidate; readers check that no call that
/// started after an invalidation returned sees a value older than it.
async fn invalidation_wins(cache: Cache, row: Row, how: How) {
    let ctx = Arc::new(Ctx { cache, row });
    let floor = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let stale = Arc::new(AtomicUsize::new(0));
    let reads = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (ctx, floor, done, stale, reads) = (
                Arc::clone(&ctx),
                Arc::clone(&floor),
                Arc::clone(&done),
                Arc::clone(&stale),
                Arc::clone(&reads),
            );
            tokio::spawn(async move {
                while !done.load(Ordering::SeqCst) {
                    let at_least = floor.load(Ordering::SeqCst);
                    if read_row(&ctx).await < at_least {
                        stale.fetch_add(1, Ordering::SeqCst);
                    }
                    reads.fetch_add(1, Ordering::SeqCst);
                    // A memory hit never waits: let the writer and the I/O driver run.
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for _ in 0..1000 {
        let written = ctx.row.write_next().await;
        match how {
            How::Key => drop(invalidate!(read_row(&ctx)).await.unwrap()),
            How::Namespace => drop(
                invalidate!(namespace = "rows", cache = &ctx.cache)
                    .await
                    .unwrap(),
            ),
            How::Tag => drop(
                invalidate!(tag = "row:1", cache = &ctx.cache)
                    .await
                    .unwrap(),
            ),
        }
        floor.store(written, Ordering::SeqCst);
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.await.unwrap();
    }
    assert!(reads.load(Ordering::SeqCst) >= 1000, "the readers ran");
    assert_eq!(
        stale.load(Ordering::SeqCst),
        0,
        "{how:?}: a read after an invalidation saw older data"
    );
}

macro_rules! race {
    ($($name:ident: $backend:ident, $how:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let server = RedisServer::start();
            let cache = match stringify!($backend) {
                "redis" => Cache::builder().redis_url(server.url(0)).build().await.unwrap(),
                _ => Cache::memory(),
            };
            invalidation_wins(cache, Row::Server(server.connect(1).await), $how).await;
        }
    )*};
}

race! {
    key_invalidation_wins_on_redis: redis, How::Key;
    namespace_invalidation_wins_on_redis: redis, How::Namespace;
    tag_invalidation_wins_on_redis: redis, How::Tag;
    key_invalidation_wins_in_memory: memory, How::Key;
    namespace_invalidation_wins_in_memory: memory, How::Namespace;
    tag_invalidation_wins_in_memory: memory, How::Tag;
}

/// The same races on a cluster, where the entry and its version keys live
/// on different masters: one cluster for the three.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalidation_wins_on_a_cluster() {
    let cluster = support::RedisCluster::start();
    for how in [How::Key, How::Namespace, How::Tag] {
        cluster.flush();
        let cache = Cache::builder()
            .redis_cluster(cluster.seeds())
            .build()
            .await
            .unwrap();
        invalidation_wins(cache, Row::Cluster(cluster.connect().await), how).await;
    }
}

#[cached(namespace = "product", key = "products:{category}")]
async fn products(category: &str) -> String {
    PRODUCT_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{category} v{}", PRODUCT_RUNS.load(Ordering::SeqCst))
}

static PRODUCT_RUNS: AtomicUsize = AtomicUsize::new(0);
const BUMP_CHILD: &str = "CACHETTE_TEST_BUMP_REDIS_URL";

#[tokio::test]
async fn a_bump_in_one_process_is_a_miss_in_another() {
    if let Ok(url) = std::env::var(BUMP_CHILD) {
        // Run by the parent below: bump the namespace from another process.
        Cache::builder()
            .redis_url(url)
            .build()
            .await
            .unwrap()
            .install();
        invalidate!(namespace = "product").await.unwrap();
        return;
    }
    let server = RedisServer::start();
    Cache::builder()
        .redis_url(server.url(0))
        .build()
        .await
        .unwrap()
        .install();
    products("books").await;
    products("books").await;
    assert_eq!(PRODUCT_RUNS.load(Ordering::SeqCst), 1);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_bump_in_one_process_is_a_miss_in_another",
            "--test-threads=1",
        ])
        .env(BUMP_CHILD, server.url(0))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        products("books").await,
        "books v2",
        "the bump in the other process is a miss here"
    );
    assert_eq!(PRODUCT_RUNS.load(Ordering::SeqCst), 2);
}
