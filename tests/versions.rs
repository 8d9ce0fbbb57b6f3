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

/// The commands `hits` hits in a namespace with two tags send, after a
/// first call (the miss) on `cache`; the computation runs once.
async fn commands_of_tagged_hits(
    server: &RedisServer,
    cache: &Cache,
    hits: usize,
) -> Vec<(String, u64)> {
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
    if cache.health().tracking.is_some() {
        // The miss created the version keys: Redis tells a tracking process
        // of that too, and the next hit may read them from Redis once more.
        support::eventually("a hit sends one command", async || {
            reset_stats(&mut conn).await;
            cache
                .get_or_set_in("products:books", compute, HOUR, &scope)
                .await
                .unwrap();
            commands(&mut conn)
                .await
                .iter()
                .map(|(_, n)| n)
                .sum::<u64>()
                == 1
        })
        .await;
    }
    reset_stats(&mut conn).await;
    for _ in 0..hits {
        let hit = cache
            .get_or_set_in("products:books", compute, HOUR, &scope)
            .await
            .unwrap();
        assert_eq!(hit, ["Dune"]);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    commands(&mut conn).await
}

#[tokio::test]
async fn a_hit_with_a_namespace_and_two_tags_is_one_command() {
    let (server, cache) = redis_cache(Cache::builder()).await;
    assert_eq!(
        commands_of_tagged_hits(&server, &cache, 1).await,
        [("mget".to_owned(), 1)],
        "one MGET: the entry and its three versions"
    );
}

/// A cache with tracked versions, once tracking is up.
async fn tracked_cache(server: &RedisServer) -> Cache {
    let cache = Cache::builder()
        .redis_url(server.url(0))
        .track_versions(true)
        .build()
        .await
        .unwrap();
    support::eventually("tracking is up", async || {
        // A read starts tracking; the health says when it is confirmed.
        let _ = cache.get::<u8>("warm").await;
        cache.health().tracking.is_some_and(|t| t.up)
    })
    .await;
    cache
}

#[tokio::test]
async fn with_tracked_versions_a_hit_with_a_namespace_and_two_tags_is_one_get() {
    let server = RedisServer::start();
    let cache = tracked_cache(&server).await;
    // The miss reads the versions from Redis and keeps them.
    assert_eq!(
        commands_of_tagged_hits(&server, &cache, 10).await,
        [("get".to_owned(), 10)],
        "one GET per hit: the versions are known here"
    );
}

#[tokio::test]
async fn a_local_tier_always_tracks_versions() {
    let server = RedisServer::start();
    let refused = Cache::builder()
        .redis_url(server.url(0))
        .local_tier(1 << 20)
        .track_versions(false)
        .build()
        .await;
    assert!(
        matches!(refused, Err(cachette::Error::Config { .. })),
        "{refused:?}"
    );
}

/// Another process bumps a namespace and a tag 1 000 times (the row
/// changed each time) while this one, tracking versions, reads: its reads
/// never go back to an older row, and each bump reaches it within the
/// tracking delay, printed for RELIABILITY.md (`cargo nextest run
/// --all-features --test versions --no-capture -E 'test(another_process)'`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_bumps_reach_tracked_versions_in_order() {
    let server = RedisServer::start();
    let reader = tracked_cache(&server).await;
    let writer = server.cache().await;
    let row = Arc::new(AtomicU64::new(0));
    let read = async |key: &str, scope: &Scope| {
        let row = Arc::clone(&row);
        reader
            .get_or_set_in(
                key,
                || async move { row.load(Ordering::SeqCst) },
                HOUR,
                scope,
            )
            .await
            .unwrap()
    };
    let (in_namespace, tagged) = (Scope::new().namespace("rows"), Scope::new().tag("row:1"));
    let mut delays = Vec::with_capacity(1000);
    for round in 1..=1000_u64 {
        let (key, scope) = if round % 2 == 0 {
            ("in-namespace", &in_namespace)
        } else {
            ("tagged", &tagged)
        };
        let before = read(key, scope).await;
        assert!(before < round, "round {round}: {before} before the bump");
        row.store(round, Ordering::SeqCst);
        if round % 2 == 0 {
            writer.invalidate_namespace("rows").await.unwrap();
        } else {
            writer.invalidate_tag("row:1").await.unwrap();
        }
        let bumped = std::time::Instant::now();
        loop {
            let got = read(key, scope).await;
            assert!(
                got == before || got == round,
                "round {round}: read {got}, neither the value before ({before}) nor the new one"
            );
            if got == round {
                break;
            }
            assert!(
                bumped.elapsed() < Duration::from_secs(20),
                "round {round}: the bump never reached this process"
            );
        }
        delays.push(bumped.elapsed());
    }
    delays.sort_unstable();
    eprintln!(
        "tracked versions: another process's bump reached this one in {:?} (median), {:?} (max) over {} bumps",
        delays[delays.len() / 2],
        delays[delays.len() - 1],
        delays.len()
    );
}

/// With the tracking connection killed, reads go back to reading versions
/// from Redis: a bump another process makes then is seen by the next read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_tracking_connection_a_tracked_cache_reads_versions_from_redis() {
    let server = RedisServer::start();
    let reader = tracked_cache(&server).await;
    let writer = server.cache().await;
    let scope = Scope::new().namespace("rows");
    let row = Arc::new(AtomicU64::new(1));
    assert_eq!(support::row(&reader, &scope, &row).await, 1);
    // Pause the tracking: its connection killed (it is the one in tracking mode).
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut server.connect(0).await)
        .await
        .unwrap();
    let tracking = clients
        .lines()
        .find(|line| {
            line.split(' ')
                .any(|f| f.starts_with("flags=") && f.contains('t'))
        })
        .and_then(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .expect("a tracking connection")
        .to_owned();
    server.command(&["CLIENT", "KILL", "ID", &tracking]).await;
    support::eventually("tracking is down", async || {
        !reader.health().tracking.is_some_and(|t| t.up)
    })
    .await;
    row.store(2, Ordering::SeqCst);
    writer.invalidate_namespace("rows").await.unwrap();
    assert_eq!(
        support::row(&reader, &scope, &row).await,
        2,
        "read right after the bump, tracking down"
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
                "redis" => server.cache().await,
                "tracked" => Cache::builder()
                    .redis_url(server.url(0))
                    .track_versions(true)
                    .build()
                    .await
                    .unwrap(),
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
    key_invalidation_wins_with_tracked_versions: tracked, How::Key;
    namespace_invalidation_wins_with_tracked_versions: tracked, How::Namespace;
    tag_invalidation_wins_with_tracked_versions: tracked, How::Tag;
}

/// The same races on a cluster, where the entry and its version keys live
/// on different masters, with and without tracked versions: one cluster
/// for the six.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalidation_wins_on_a_cluster() {
    let cluster = support::RedisCluster::start();
    for tracked in [false, true] {
        for how in [How::Key, How::Namespace, How::Tag] {
            cluster.flush();
            let cache = Cache::builder()
                .redis_cluster(cluster.seeds())
                .track_versions(tracked)
                .build()
                .await
                .unwrap();
            invalidation_wins(cache, Row::Cluster(cluster.connect().await), how).await;
        }
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
    server.cache().await.install();
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
