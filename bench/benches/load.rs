//! Cache hits against Redis, side by side with their floor and a peer.
//!
//! Starts its own `redis-server` on a free loopback port, stores one value
//! per size through each contender, then measures hits on it:
//!
//! 1. raw redis-rs `MultiplexedConnection` `GET` (one round trip, nothing else);
//! 2. raw deadpool-redis `GET` (a pool checkout per call);
//! 3. the `cached` crate's `AsyncRedisCache` through `#[concurrent_cached]`;
//! 4. cachette `#[cached]`: plain, and with a namespace and two tags, and
//!    the floor of the tagged hit: a raw `MGET` of the value and the three
//!    version keys that hit reads;
//! 5. on a 3-master Redis Cluster: a raw redis-rs `ClusterConnection` `GET`, and
//!    cachette plain, tagged and the tagged hit's floor (its four keys on raw
//!    connections, a request per master), each compared with the cluster `GET`;
//! 6. cachette with a local tier in front of the one server, plain and tagged;
//!    and tagged with versions tracked in process (`track_versions`), on the
//!    one server and on the cluster;
//! 7. a bare moka (synchronous) `get` of the same value in process: the
//!    floor of any local hit, measured the same way.
//!
//! These rows move the same bytes as the raw `GET`: their caches compress
//! nothing (the bench value is a repeated phrase that LZ4 shrinks a
//! hundredfold). A second table, the envelope rows, measures what
//! compression and signatures cost and save: a 64 KiB JSON-like value read
//! by a raw `GET` of its uncompressed bytes, by cachette without
//! compression, compressed (the default with Redis), signed, and signed and
//! compressed; and a 256 B value plain and signed. `LOAD_BENCH_ONLY=envelope`
//! runs that table alone.
//!
//! For 1 task: latency percentiles over sequential calls; for 64 tasks:
//! throughput. Each measurement runs `ROUNDS` times, rows interleaved
//! (forward, then backward), and the median round is kept. Prints a Markdown table with each row's ratio to
//! the raw `GET`, and writes it with an SVG chart to `target/load-bench/`
//! (or `$LOAD_BENCH_OUT`).
//!
//! ```sh
//! cargo bench -p cachette-bench --bench load
//! ```
//!
//! `LOAD_BENCH_ONLY=batch` measures a batch load against single loads alone
//! (`load/batch.rs`).
//! `LOAD_BENCH_ONLY=cluster` measures the cluster's rows alone, with each
//! row's client CPU per hit as a ratio to the raw cluster `GET`'s.
//! `LOAD_BENCH_ONLY=tracked` measures the one server's plain and tagged
//! hits, strict and with tracked versions, at 256 B, with each row's ratios
//! to the raw `GET`'s and the tagged rows' to the plain hit's.
//!
//! `LOAD_BENCH_PROFILE=<start of a row's name>` (and `LOAD_BENCH_SIZE`)
//! measures one row's 64-task throughput five times, long enough to
//! profile; `LOAD_BENCH_CONNECTIONS=n` gives cachette's caches `n` held
//! connections instead of the default 2.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)] // statistics over counts and durations

#[path = "load/batch.rs"]
mod batch;
#[path = "../examples/hit_loop/cluster_floor.rs"]
mod cluster_floor;
#[path = "load/measure.rs"]
mod measure;
#[path = "../peer.rs"]
mod peer;
#[path = "load/report.rs"]
mod report;
#[path = "load/tracked.rs"]
mod tracked;

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use cachette::cached;
use measure::{Figures, measure, throughput};
use peer::{PEER_URL, PeerError, peer_item, value};
use redis::AsyncCommands;

const SIZES: [usize; 3] = [256, 4096, 65_536];
const ROUNDS: usize = 5;
const LATENCY_CALLS: usize = 5_000;
const TASKS: usize = 64;
const THROUGHPUT_FOR: Duration = Duration::from_millis(1500);

static URL: OnceLock<String> = OnceLock::new();
/// The seed nodes of the bench's cluster.
static SEEDS: OnceLock<Vec<String>> = OnceLock::new();

#[cached(timeout = 3600)]
async fn cachette_item(size: usize) -> String {
    value(size)
}

#[cached(timeout = 3600, namespace = "catalog", tags = ["size:{size}", "bench"])]
async fn cachette_tagged_item(size: usize) -> String {
    value(size)
}

/// The cache with a local tier in front of the one server, for the local rows.
static LOCAL_CACHE: OnceLock<cachette::Cache> = OnceLock::new();

fn local_cache() -> &'static cachette::Cache {
    LOCAL_CACHE.get().expect("the local cache is built first")
}

#[cached(timeout = 3600, cache = local_cache())]
async fn local_item(size: usize) -> String {
    value(size)
}

#[cached(timeout = 3600, namespace = "catalog", tags = ["size:{size}", "bench"], cache = local_cache())]
async fn local_tagged_item(size: usize) -> String {
    value(size)
}

/// The caches of the envelope rows: compressing, signing, both.
static ENVELOPE_CACHES: OnceLock<[cachette::Cache; 3]> = OnceLock::new();

fn compressing_cache() -> &'static cachette::Cache {
    &ENVELOPE_CACHES.get().expect("built first")[0]
}

fn signing_cache() -> &'static cachette::Cache {
    &ENVELOPE_CACHES.get().expect("built first")[1]
}

fn sealing_cache() -> &'static cachette::Cache {
    &ENVELOPE_CACHES.get().expect("built first")[2]
}

/// A JSON-like text of about `size` bytes: catalogue entries.
fn json(size: usize) -> String {
    let mut out = String::from("[");
    let mut i = 0_usize;
    while out.len() < size - 100 {
        write!(
            out,
            r#"{{"id":{i},"title":"Book number {i}","price":{},"stock":{},"tags":["paper","novel"]}},"#,
            1000 + i * 7 % 5000,
            i * 13 % 97
        )
        .unwrap();
        i += 1;
    }
    out.push(']');
    out
}

/// The length of `json(size)`, computed once per size: a hit only checks it.
fn json_len(size: usize) -> usize {
    static LENS: OnceLock<Vec<(usize, usize)>> = OnceLock::new();
    let lens = LENS.get_or_init(|| {
        Row::ENVELOPE_SIZES
            .iter()
            .map(|&size| (size, json(size).len()))
            .collect()
    });
    lens.iter()
        .find_map(|&(s, len)| (s == size).then_some(len))
        .expect("an envelope size")
}

#[cached(timeout = 3600, key = "json:{size}")]
async fn json_item(size: usize) -> String {
    json(size)
}

#[cached(timeout = 3600, key = "json:{size}", cache = compressing_cache())]
async fn compressed_json_item(size: usize) -> String {
    json(size)
}

#[cached(timeout = 3600, key = "json:{size}", cache = signing_cache())]
async fn signed_json_item(size: usize) -> String {
    json(size)
}

#[cached(timeout = 3600, key = "json:{size}", cache = sealing_cache())]
async fn sealed_json_item(size: usize) -> String {
    json(size)
}

/// The cache on the cluster, for the cluster rows.
static CLUSTER_CACHE: OnceLock<cachette::Cache> = OnceLock::new();

fn cluster_cache() -> &'static cachette::Cache {
    CLUSTER_CACHE
        .get()
        .expect("the cluster cache is built first")
}

#[cached(timeout = 3600, cache = cluster_cache())]
async fn cluster_item(size: usize) -> String {
    value(size)
}

#[cached(timeout = 3600, namespace = "catalog", tags = ["size:{size}", "bench"], cache = cluster_cache())]
async fn cluster_tagged_item(size: usize) -> String {
    value(size)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Row {
    RawGet,
    Deadpool,
    CachedCrate,
    Cachette,
    CachetteTagged,
    RawMget,
    RawClusterGet,
    Cluster,
    ClusterTagged,
    Local,
    LocalTagged,
    TrackedTagged,
    ClusterTrackedTagged,
    ClusterFloor,
    Moka,
    // The envelope rows, on `json(size)`.
    RawJson,
    Json,
    CompressedJson,
    SignedJson,
    SealedJson,
}

impl Row {
    const ENVELOPE: [Row; 5] = [
        Row::RawJson,
        Row::Json,
        Row::CompressedJson,
        Row::SignedJson,
        Row::SealedJson,
    ];
    /// The sizes of the envelope rows' values.
    const ENVELOPE_SIZES: [usize; 2] = [256, 65_536];

    /// The cluster's rows, floor first (`LOAD_BENCH_ONLY=cluster`); last,
    /// the floor of the tagged hit.
    const CLUSTER: [Row; 5] = [
        Row::RawClusterGet,
        Row::Cluster,
        Row::ClusterTagged,
        Row::ClusterTrackedTagged,
        Row::ClusterFloor,
    ];

    /// Tagged hits with tracked versions beside their floor and the plain
    /// and strict tagged hits (`LOAD_BENCH_ONLY=tracked`).
    const TRACKED: [Row; 4] = [
        Row::RawGet,
        Row::Cachette,
        Row::CachetteTagged,
        Row::TrackedTagged,
    ];

    const ALL: [Row; 12] = [
        Row::RawGet,
        Row::Deadpool,
        Row::CachedCrate,
        Row::Cachette,
        Row::CachetteTagged,
        Row::RawMget,
        Row::RawClusterGet,
        Row::Cluster,
        Row::ClusterTagged,
        Row::Local,
        Row::LocalTagged,
        Row::Moka,
    ];

    fn name(self) -> &'static str {
        match self {
            Row::RawGet => "redis-rs GET (multiplexed)",
            Row::Deadpool => "deadpool-redis GET",
            Row::CachedCrate => "cached 4 AsyncRedisCache",
            Row::Cachette => "cachette #[cached]",
            Row::CachetteTagged => "cachette #[cached] ns + 2 tags",
            Row::RawMget => "redis-rs MGET of 4 keys (a tagged hit's floor)",
            Row::RawClusterGet => "cluster: redis-rs ClusterConnection GET",
            Row::Cluster => "cluster: cachette #[cached]",
            Row::ClusterTagged => "cluster: cachette #[cached] ns + 2 tags",
            Row::Local => "local tier: cachette #[cached]",
            Row::LocalTagged => "local tier: cachette #[cached] ns + 2 tags",
            Row::TrackedTagged => "tracked versions: cachette #[cached] ns + 2 tags",
            Row::ClusterTrackedTagged => "cluster, tracked versions: cachette ns + 2 tags",
            Row::ClusterFloor => "cluster: a tagged hit's 4 keys, raw, a request per master",
            Row::Moka => "moka get (sync, in process)",
            Row::RawJson => "redis-rs GET of the uncompressed JSON",
            Row::Json => "cachette #[cached], uncompressed",
            Row::CompressedJson => "cachette #[cached], compressed (LZ4)",
            Row::SignedJson => "cachette #[cached], signed",
            Row::SealedJson => "cachette #[cached], signed and compressed",
        }
    }

    /// The row whose figures this one is compared with: the raw `GET` on the same store.
    fn floor(self) -> usize {
        match self {
            Row::RawClusterGet | Row::Cluster | Row::ClusterTagged => 6,
            _ => 0,
        }
    }
}

/// What every contender needs, shared by the tasks.
struct Clients {
    conn: redis::aio::MultiplexedConnection,
    pool: deadpool_redis::Pool,
    cluster: redis::cluster_async::ClusterConnection,
    moka: moka::sync::Cache<String, String>,
}

impl Clients {
    /// One hit of `row` on the value of `size`; checks its length.
    async fn hit(&self, row: Row, size: usize) {
        let len = match row {
            Row::RawGet => {
                let bytes: Vec<u8> = self.conn.clone().get(raw_key(size)).await.unwrap();
                bytes.len()
            }
            Row::Deadpool => {
                let mut conn = self.pool.get().await.unwrap();
                let bytes: Vec<u8> = conn.get(raw_key(size)).await.unwrap();
                bytes.len()
            }
            Row::CachedCrate => match peer_item(size).await {
                Ok(value) => value.len(),
                Err(PeerError(e)) => panic!("the cached crate failed: {e}"),
            },
            Row::Cachette => cachette_item(size).await.len(),
            Row::CachetteTagged => cachette_tagged_item(size).await.len(),
            Row::RawMget => {
                let values: Vec<Option<Vec<u8>>> =
                    self.conn.clone().mget(mget_keys(size)).await.unwrap();
                assert!(
                    values.iter().all(Option::is_some),
                    "a version key is missing"
                );
                values[0].as_ref().map_or(0, Vec::len)
            }
            Row::RawClusterGet => {
                let bytes: Vec<u8> = self.cluster.clone().get(raw_key(size)).await.unwrap();
                bytes.len()
            }
            Row::Cluster => cluster_item(size).await.len(),
            Row::ClusterTagged => cluster_tagged_item(size).await.len(),
            Row::Local => local_item(size).await.len(),
            Row::LocalTagged => local_tagged_item(size).await.len(),
            Row::TrackedTagged => tracked::tagged_item(size).await.len(),
            Row::ClusterTrackedTagged => tracked::cluster_tagged_item(size).await.len(),
            // Four values (`cluster_report` checks the entry exists), as if `size` bytes.
            Row::ClusterFloor => size * cluster_floor::read(tracked::floor(size)).await / 4,
            Row::Moka => self
                .moka
                .get_with_by_ref(moka_key(size), || value(size))
                .len(),
            Row::RawJson => {
                let bytes: Vec<u8> = self.conn.clone().get(json_key(size)).await.unwrap();
                bytes.len()
            }
            Row::Json => json_item(size).await.len(),
            Row::CompressedJson => compressed_json_item(size).await.len(),
            Row::SignedJson => signed_json_item(size).await.len(),
            Row::SealedJson => sealed_json_item(size).await.len(),
        };
        let expected = if Row::ENVELOPE.contains(&row) {
            json_len(size)
        } else {
            size
        };
        assert_eq!(len, expected, "{} returned a wrong value", row.name());
    }
}

fn raw_key(size: usize) -> String {
    format!("raw:{size}")
}

/// The raw value's key and the three version keys the tagged row reads
/// (the global cache's namespace and tags), built once per size.
fn mget_keys(size: usize) -> &'static [String] {
    static KEYS: OnceLock<Vec<Vec<String>>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        SIZES
            .iter()
            .map(|size| {
                vec![
                    raw_key(*size),
                    "cachette#ns:catalog".to_owned(),
                    format!("cachette#tag:size:{size}"),
                    "cachette#tag:bench".to_owned(),
                ]
            })
            .collect()
    });
    let at = SIZES.iter().position(|s| *s == size).expect("a bench size");
    &keys[at]
}

fn json_key(size: usize) -> String {
    format!("json:{size}")
}

/// The moka row's key for `size`, not built per call: a floor builds nothing.
fn moka_key(size: usize) -> &'static str {
    match size {
        256 => "raw:256",
        4096 => "raw:4096",
        _ => "raw:65536",
    }
}

fn main() {
    let server = support::RedisServer::start();
    URL.set(server.url(0)).unwrap();
    PEER_URL.set(server.url(0)).unwrap();
    if std::env::var("LOAD_BENCH_ONLY").is_ok_and(|only| only == "batch") {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        println!("{}", runtime.block_on(batch::table(&server.url(0))));
        return;
    }
    let cluster = support::RedisCluster::start();
    SEEDS.set(cluster.seeds()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some((results, envelope)) = runtime.block_on(run()) else {
        return; // profiled one row; the server stops as it drops
    };
    let out = std::env::var("LOAD_BENCH_OUT").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/load-bench").to_owned()
    });
    std::fs::create_dir_all(&out).unwrap();
    let envelope = report::envelope_table(&envelope);
    println!("{envelope}");
    std::fs::write(format!("{out}/envelope.md"), &envelope).unwrap();
    if !results.is_empty() {
        let table = report::table(&results);
        println!("{table}");
        std::fs::write(format!("{out}/load.md"), &table).unwrap();
        std::fs::write(format!("{out}/load.svg"), report::chart(&results)).unwrap();
    }
    println!("written to {out}");
    drop((server, cluster));
}

/// Installs the global cache and builds the others, every one on `url`
/// but the cluster's.
async fn build_caches(url: &str, seeds: &[String]) {
    let connections = std::env::var("LOAD_BENCH_CONNECTIONS").map_or(2, |n| n.parse().unwrap());
    let plain = || {
        cachette::Cache::builder()
            .compress_above(None)
            .connections(connections)
    };
    plain().redis_url(url).build().await.unwrap().install();
    let envelope = |prefix: &str| cachette::Cache::builder().redis_url(url).key_prefix(prefix);
    let secret = "a bench secret of 32 bytes or so";
    let compressing = envelope("lz4").build().await.unwrap();
    let signing = envelope("signed")
        .compress_above(None)
        .sign_with(secret)
        .build()
        .await
        .unwrap();
    let sealing = envelope("sealed").sign_with(secret).build().await.unwrap();
    assert!(ENVELOPE_CACHES.set([compressing, signing, sealing]).is_ok());
    let cluster_cache = plain().redis_cluster(seeds.to_vec()).build().await.unwrap();
    assert!(CLUSTER_CACHE.set(cluster_cache).is_ok());
    tracked::build(url, seeds, plain).await;
    let local = plain()
        .redis_url(url)
        .key_prefix("local")
        .local_tier(64 << 20)
        .build()
        .await
        .unwrap();
    assert!(LOCAL_CACHE.set(local).is_ok());
}

/// The main table's figures by size, and the envelope table's by size with stored bytes.
type Results = (
    Vec<(usize, Vec<Figures>)>,
    Vec<(usize, Vec<Figures>, Vec<usize>)>,
);

/// The main table's figures by size, then by row (in `Row::ALL` order),
/// and the envelope table's (in `Row::ENVELOPE` order, the bytes stored
/// for each row); `None` after profiling one row.
async fn run() -> Option<Results> {
    let url = URL.get().unwrap();
    let seeds = SEEDS.get().unwrap().clone();
    build_caches(url, &seeds).await;
    let conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pool = deadpool_redis::Config::from_url(url)
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let cluster = redis::cluster::ClusterClient::new(seeds)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let clients: &'static Clients = Box::leak(Box::new(Clients {
        conn,
        pool,
        cluster,
        moka: moka::sync::Cache::new(10_000),
    }));
    for size in SIZES {
        let () = clients
            .conn
            .clone()
            .set(raw_key(size), value(size))
            .await
            .unwrap();
        let () = clients
            .cluster
            .clone()
            .set(raw_key(size), value(size))
            .await
            .unwrap();
        // The first call of each cached function stores its value.
        for row in Row::ALL {
            clients.hit(row, size).await;
        }
    }
    for size in Row::ENVELOPE_SIZES {
        let () = clients
            .conn
            .clone()
            .set(json_key(size), json(size))
            .await
            .unwrap();
        for row in Row::ENVELOPE {
            clients.hit(row, size).await;
        }
    }
    if let Ok(name) = std::env::var("LOAD_BENCH_PROFILE") {
        // One row alone, long enough to profile (`perf record` around the bench).
        let row = *Row::ALL
            .iter()
            .chain(&Row::ENVELOPE)
            .find(|r| r.name().starts_with(&name))
            .expect("LOAD_BENCH_PROFILE names a row");
        let size = std::env::var("LOAD_BENCH_SIZE").map_or(SIZES[0], |s| s.parse().unwrap());
        for _ in 0..5 {
            let (ops, cpu) = throughput(clients, row, size).await;
            eprintln!("{}: {ops:.0} hits/s, {cpu:.2} CPU µs per hit", row.name());
        }
        return None;
    }
    if std::env::var("LOAD_BENCH_ONLY").is_ok_and(|only| only == "cluster") {
        tracked::cluster_report(clients).await;
        return None;
    }
    if std::env::var("LOAD_BENCH_ONLY").is_ok_and(|only| only == "tracked") {
        tracked::report(clients).await;
        return None;
    }
    let mut results = Vec::new();
    let only_envelope = std::env::var("LOAD_BENCH_ONLY").is_ok_and(|only| only == "envelope");
    for size in SIZES.into_iter().filter(|_| !only_envelope) {
        results.push((size, measure(clients, &Row::ALL, size).await));
        eprintln!("size {size} B done");
    }
    let mut envelope = Vec::new();
    for size in Row::ENVELOPE_SIZES {
        let figures = measure(clients, &Row::ENVELOPE, size).await;
        let key = json_key(size);
        let mut stored = vec![strlen(&clients.conn, &key).await];
        for cache in [
            &cachette::cache(),
            compressing_cache(),
            signing_cache(),
            sealing_cache(),
        ] {
            stored.push(strlen(&clients.conn, &cache.key_for(&key)).await);
        }
        envelope.push((size, figures, stored));
    }
    Some((results, envelope))
}

/// The length of the value at `key`.
async fn strlen(conn: &redis::aio::MultiplexedConnection, key: &str) -> usize {
    redis::cmd("STRLEN")
        .arg(key)
        .query_async(&mut conn.clone())
        .await
        .unwrap()
}
