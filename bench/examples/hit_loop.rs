//! Runs N memory-backend hits of one kind, for instruction counts that do
//! not depend on the machine's noise:
//!
//! ```sh
//! cargo build --release -p cachette-bench --example hit_loop
//! for n in 10000 110000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/hit_loop cached $n 2>&1 | grep refs
//! done   # (second - first) / 100000 = instructions per hit
//! ```
//!
//! Kinds: `moka` (moka's asynchronous cache, no expiry), `moka-sync` (its
//! synchronous cache), `moka-expiry` (asynchronous, per-entry expiry),
//! `cached` (`#[cached]`), `derived` (`#[cached]` with a key derived from
//! the arguments), `tagged` (`#[cached]` with a namespace and two tags), `by-hand` (`Cache::get_or_set`), `local` (`#[cached]` on a cache
//! with a local tier in front of the Redis at `REDIS_URL`); and on the Redis
//! at `REDIS_URL`, the client's side of a hit on a text of `HIT_SIZE` bytes
//! (256 unless set): `redis-get` (a raw redis-rs `GET` of the bytes cachette
//! stored), `redis-mget` (a raw redis-rs `MGET` of those bytes and the three
//! version keys a tagged hit reads: the floor of a tagged hit), `redis`
//! (`#[cached]`), `redis-tagged` (with a namespace and two tags),
//! `redis-tracked` (the same on a cache with tracked versions) and
//! `redis-peer` (the `cached` crate's `AsyncRedisCache`); and on the Redis
//! Cluster whose seed URLs `REDIS_CLUSTER` lists (comma-separated),
//! `cluster-get` (a raw redis-rs `ClusterConnection` `GET` of the bytes
//! cachette stored), `cluster-get-deadline` (the same through a client with
//! a response timeout, as cachette's cluster client has: 250 ms, its
//! default command deadline), `cluster` (`#[cached]`), `cluster-tagged`
//! (with a namespace and two tags) and `cluster-floor` (the floor of
//! `cluster-tagged`: its four keys read by raw redis-rs connections to the
//! masters holding them, one request per master, sent at once).
//!
//! It also prints the heap allocations per hit, counted by the allocator.

#[path = "hit_loop/cluster_floor.rs"]
mod cluster_floor;
#[path = "../peer.rs"]
mod peer;

use std::hint::black_box;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cachette::{Cache, cached};
use peer::{PEER_URL, PeerError, peer_item, value};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderStats {
    order_count: u32,
    total_spent: f64,
}

fn compute(user_id: i64) -> OrderStats {
    OrderStats {
        order_count: u32::try_from(user_id).unwrap_or(0),
        total_spent: 1234.5,
    }
}

fn memory() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::memory)
}

#[cached(timeout = 3600, key = "user_order_stats:{user_id}", cache = memory())]
async fn with_macro(user_id: i64) -> OrderStats {
    compute(user_id)
}

/// Where a derived key's function lives gives the key its length: here as
/// long as an application's module path commonly is.
mod shop {
    pub(crate) mod orders {
        use super::super::{OrderStats, cached, compute, memory};

        #[cached(timeout = 3600, cache = memory())]
        pub(crate) async fn user_order_stats(user_id: i64) -> OrderStats {
            compute(user_id)
        }
    }
}

use shop::orders::user_order_stats as derived;

#[cached(
    timeout = 3600,
    key = "user_order_stats:{user_id}",
    namespace = "orders",
    tags = ["user:{user_id}", "stats"],
    cache = memory()
)]
async fn tagged(user_id: i64) -> OrderStats {
    compute(user_id)
}

/// A cache that `main` builds, and the two functions the kinds call on it:
/// a text of `size` bytes, plain and with a namespace and two tags.
macro_rules! texts_on {
    ($(#[$doc:meta])* $cell:ident, $cache:ident, $plain:ident, $tagged:ident) => {
        $(#[$doc])*
        static $cell: OnceLock<Cache> = OnceLock::new();

        fn $cache() -> &'static Cache {
            $cell.get().expect("the cache is built first")
        }

        #[cached(timeout = 3600, key = "text:{size}", cache = $cache())]
        async fn $plain(size: usize) -> String {
            value(size)
        }

        #[cached(
            timeout = 3600,
            key = "text:{size}",
            namespace = "catalog",
            tags = ["size:{size}", "bench"],
            cache = $cache()
        )]
        async fn $tagged(size: usize) -> String {
            value(size)
        }
    };
}

texts_on!(
    /// A cache on the Redis at `REDIS_URL`.
    REDIS, redis, on_redis, on_redis_tagged
);

texts_on!(
    /// A cache on the Redis Cluster at `REDIS_CLUSTER`.
    CLUSTER, cluster, on_cluster, on_cluster_tagged
);

/// A cache with tracked versions on the Redis at `REDIS_URL`.
static TRACKED: OnceLock<Cache> = OnceLock::new();

fn tracked() -> &'static Cache {
    TRACKED.get().expect("the tracked cache is built first")
}

#[cached(
    timeout = 3600,
    key = "text:{size}",
    namespace = "catalog",
    tags = ["size:{size}", "bench"],
    cache = tracked()
)]
async fn on_redis_tracked(size: usize) -> String {
    value(size)
}

/// A cache with a local tier in front of the Redis at `REDIS_URL`.
static LOCAL: OnceLock<Cache> = OnceLock::new();

fn local() -> &'static Cache {
    LOCAL.get().expect("the local cache is built first")
}

#[cached(timeout = 3600, key = "user_order_stats:{user_id}", cache = local())]
async fn with_local_tier(user_id: i64) -> OrderStats {
    compute(user_id)
}

async fn by_hand(user_id: i64) -> OrderStats {
    let key = format!("user_order_stats:{user_id}");
    let compute = || async move { compute(user_id) };
    let hour = Duration::from_secs(3600);
    memory().get_or_set(&key, compute, hour).await.unwrap()
}

/// Every entry lives an hour.
struct AnHour;

impl moka::Expiry<String, OrderStats> for AnHour {
    fn expire_after_create(&self, _: &String, _: &OrderStats, _: Instant) -> Option<Duration> {
        Some(Duration::from_secs(3600))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "cached".to_owned());
    let n: usize = args.next().map_or(100_000, |n| n.parse().expect("a count"));
    let size: usize = std::env::var("HIT_SIZE").map_or(256, |s| s.parse().expect("a size"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let plain: moka::future::Cache<String, OrderStats> = moka::future::Cache::new(10_000);
    let sync: moka::sync::Cache<String, OrderStats> = moka::sync::Cache::new(10_000);
    let expiring: moka::future::Cache<String, OrderStats> = moka::future::Cache::builder()
        .max_capacity(10_000)
        .expire_after(AnHour)
        .build();
    runtime.block_on(async {
        let key = "user_order_stats:7";
        plain.insert(key.to_owned(), compute(7)).await;
        sync.insert(key.to_owned(), compute(7));
        expiring.insert(key.to_owned(), compute(7)).await;
        with_macro(7).await;
        tagged(7).await;
        derived(7).await;
        by_hand(7).await;
        let (mut raw, mut stored, mut scoped) = (None, String::new(), Vec::new());
        let (mut raw_cluster, mut floor) = (None, Vec::new());
        if kind.starts_with("cluster") {
            let (conn, parts, key) = on_the_cluster(&kind, size).await;
            (raw_cluster, floor, stored) = (Some(conn), parts, key);
        }
        if kind.starts_with("redis") {
            let url = std::env::var("REDIS_URL").expect("the Redis kinds read REDIS_URL");
            let cache = Cache::builder()
                .redis_url(url.as_str())
                .key_prefix("hit-loop-redis")
                // The same bytes as the raw `GET` (the value is a phrase LZ4 shrinks 100 times).
                .compress_above(None)
                .build()
                .await
                .unwrap();
            let _ = REDIS.set(cache);
            let _ = PEER_URL.set(url.clone());
            on_redis(size).await;
            on_redis_tagged(size).await;
            peer_item(size)
                .await
                .unwrap_or_else(|PeerError(e)| panic!("{e}"));
            let client = redis::Client::open(url).unwrap();
            raw = Some(client.get_multiplexed_async_connection().await.unwrap());
            stored = redis().key_for(&format!("text:{size}"));
            let versions = [
                "#ns:catalog".to_owned(),
                format!("#tag:size:{size}"),
                "#tag:bench".to_owned(),
            ];
            scoped = std::iter::once(stored.clone())
                .chain(versions.iter().map(|v| format!("hit-loop-redis{v}")))
                .collect();
        }
        if kind == "redis-tracked" {
            build_tracked(size).await;
        }
        if kind == "local" {
            let url = std::env::var("REDIS_URL").expect("`local` reads REDIS_URL");
            let cache = Cache::builder()
                .redis_url(url)
                .key_prefix("hit-loop")
                .local_tier(64 << 20)
                .build()
                .await
                .unwrap();
            let _ = LOCAL.set(cache);
            // Until tracking runs and the entry is kept locally.
            while local().stats().local_hits == 0 {
                with_local_tier(7).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let fixtures = Fixtures {
            plain: &plain,
            sync: &sync,
            expiring: &expiring,
            raw: raw.as_ref(),
            raw_cluster: raw_cluster.as_ref(),
            floor: &floor,
            stored: &stored,
            scoped: &scoped,
            size,
        };
        let hits = hits(&kind, n, &fixtures);
        let region = Region::new(ALLOCATOR);
        hits.await;
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let per_hit = region.change().allocations as f64 / n as f64;
        eprintln!("{kind}: {per_hit:.2} allocations per hit");
    });
}

/// Builds the cache with tracked versions on the Redis at `REDIS_URL`,
/// and waits until its versions are tracked.
async fn build_tracked(size: usize) {
    let url = std::env::var("REDIS_URL").expect("the Redis kinds read REDIS_URL");
    let cache = Cache::builder()
        .redis_url(url)
        .key_prefix("hit-loop-tracked")
        .compress_above(None)
        .track_versions(true)
        .build()
        .await
        .unwrap();
    let _ = TRACKED.set(cache);
    // Until tracking runs; then one read keeps the versions.
    while !tracked().health().tracking.is_some_and(|t| t.up) {
        on_redis_tracked(size).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    on_redis_tracked(size).await;
}

/// Builds the cache on the cluster at `REDIS_CLUSTER`, stores its values,
/// and connects the raw clients of `kind`: its connection, the floor's
/// connections to the masters, and the key cachette stored the plain value at.
async fn on_the_cluster(
    kind: &str,
    size: usize,
) -> (
    redis::cluster_async::ClusterConnection,
    Vec<cluster_floor::Part>,
    String,
) {
    let seeds = std::env::var("REDIS_CLUSTER").expect("the cluster kinds read REDIS_CLUSTER");
    let seeds: Vec<String> = seeds.split(',').map(str::to_owned).collect();
    let cache = Cache::builder()
        .redis_cluster(seeds.clone())
        .key_prefix("hit-loop-cluster")
        .compress_above(None)
        .build()
        .await
        .unwrap();
    let _ = CLUSTER.set(cache);
    on_cluster(size).await;
    on_cluster_tagged(size).await;
    let client = if kind == "cluster-get-deadline" {
        redis::cluster::ClusterClientBuilder::new(seeds.clone())
            .response_timeout(Duration::from_millis(250))
            .build()
            .unwrap()
    } else {
        redis::cluster::ClusterClient::new(seeds.clone()).unwrap()
    };
    let conn = client.get_async_connection().await.unwrap();
    let key = cluster().key_for(&format!("text:{size}"));
    // The entry and the version keys of its namespace and two tags.
    let keys: Vec<String> = [
        key.clone(),
        "hit-loop-cluster#ns:catalog".to_owned(),
        format!("hit-loop-cluster#tag:size:{size}"),
        "hit-loop-cluster#tag:bench".to_owned(),
    ]
    .into();
    let floor = cluster_floor::parts(&seeds[0], &keys).await;
    (conn, floor, key)
}

/// What the kinds' loops read.
struct Fixtures<'a> {
    plain: &'a moka::future::Cache<String, OrderStats>,
    sync: &'a moka::sync::Cache<String, OrderStats>,
    expiring: &'a moka::future::Cache<String, OrderStats>,
    raw: Option<&'a redis::aio::MultiplexedConnection>,
    raw_cluster: Option<&'a redis::cluster_async::ClusterConnection>,
    floor: &'a [cluster_floor::Part],
    stored: &'a str,
    scoped: &'a [String],
    size: usize,
}

/// The loop of `n` hits of `kind`. Each kind's loop is a future of its own,
/// behind `dyn`: adding a kind does not change how another kind's loop is
/// compiled.
fn hits<'a>(kind: &str, n: usize, fx: &'a Fixtures<'a>) -> Pin<Box<dyn Future<Output = ()> + 'a>> {
    let key = "user_order_stats:7";
    let size = fx.size;
    match kind {
        "moka" => repeat(n, || async {
            black_box(fx.plain.get(black_box(key)).await);
        }),
        "moka-sync" => repeat(n, || async {
            black_box(fx.sync.get(black_box(key)));
        }),
        "moka-expiry" => repeat(n, || async {
            black_box(fx.expiring.get(black_box(key)).await);
        }),
        "cached" => repeat(n, || async {
            black_box(with_macro(black_box(7)).await);
        }),
        "tagged" => repeat(n, || async {
            black_box(tagged(black_box(7)).await);
        }),
        "derived" => repeat(n, || async {
            black_box(derived(black_box(7)).await);
        }),
        "by-hand" => repeat(n, || async {
            black_box(by_hand(black_box(7)).await);
        }),
        "local" => repeat(n, || async {
            black_box(with_local_tier(black_box(7)).await);
        }),
        "redis-get" => repeat(n, || async {
            let mut conn = fx.raw.expect("connected").clone();
            let bytes: Vec<u8> = conn.get(black_box(fx.stored)).await.unwrap();
            black_box(bytes);
        }),
        "redis-mget" => repeat(n, || async {
            let mut conn = fx.raw.expect("connected").clone();
            let values: Vec<Option<Vec<u8>>> = conn.mget(black_box(fx.scoped)).await.unwrap();
            assert!(
                values.iter().all(Option::is_some),
                "the entry and its versions"
            );
            black_box(values);
        }),
        "redis" => repeat(n, move || async move {
            black_box(on_redis(black_box(size)).await);
        }),
        "redis-tagged" => repeat(n, move || async move {
            black_box(on_redis_tagged(black_box(size)).await);
        }),
        "redis-tracked" => repeat(n, move || async move {
            black_box(on_redis_tracked(black_box(size)).await);
        }),
        "cluster-get" | "cluster-get-deadline" => repeat(n, || async {
            let mut conn = fx.raw_cluster.expect("connected").clone();
            let bytes: Vec<u8> = conn.get(black_box(fx.stored)).await.unwrap();
            black_box(bytes);
        }),
        "cluster-floor" => repeat(n, || async {
            assert_eq!(
                black_box(cluster_floor::read(fx.floor).await),
                4,
                "four values"
            );
        }),
        "cluster" => repeat(n, move || async move {
            black_box(on_cluster(black_box(size)).await);
        }),
        "cluster-tagged" => repeat(n, move || async move {
            black_box(on_cluster_tagged(black_box(size)).await);
        }),
        "redis-peer" => repeat(n, move || async move {
            let _ = black_box(peer_item(black_box(size)).await);
        }),
        other => panic!("unknown kind `{other}`"),
    }
}

/// `n` calls of `hit`, one after another, as a boxed future.
fn repeat<'a, F, Fut>(n: usize, mut hit: F) -> Pin<Box<dyn Future<Output = ()> + 'a>>
where
    F: FnMut() -> Fut + 'a,
    Fut: Future<Output = ()> + 'a,
{
    Box::pin(async move {
        for _ in 0..n {
            hit().await;
        }
    })
}
