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
//!    cachette plain and tagged (each compared with the cluster `GET`);
//! 6. cachette with a local tier in front of the one server, plain and tagged;
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
//! throughput. Each measurement runs `ROUNDS` times, rows interleaved, and
//! the median round is kept. Prints a Markdown table with each row's ratio to
//! the raw `GET`, and writes it with an SVG chart to `target/load-bench/`
//! (or `$LOAD_BENCH_OUT`).
//!
//! ```sh
//! cargo bench -p cachette-bench --bench load
//! ```
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

#[path = "../../tests/support/mod.rs"]
mod support;

#[path = "../peer.rs"]
mod peer;

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use cachette::cached;
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

/// One row's figures for one size.
#[derive(Clone, Copy, Default)]
struct Figures {
    p50_us: f64,
    p99_us: f64,
    ops_per_s: f64,
    /// This process's CPU time (user + system) per hit, at 64 tasks.
    cpu_us: f64,
}

/// CPU time this process used so far (user + system), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with `)`): utime is the 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Clock ticks are 1/100 s on Linux.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

async fn latency(clients: &'static Clients, row: Row, size: usize) -> (f64, f64) {
    for _ in 0..200 {
        clients.hit(row, size).await;
    }
    let mut samples = Vec::with_capacity(LATENCY_CALLS);
    for _ in 0..LATENCY_CALLS {
        let start = Instant::now();
        clients.hit(row, size).await;
        samples.push(start.elapsed());
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q) as usize).min(samples.len() - 1);
        samples[index].as_secs_f64() * 1e6
    };
    (at(0.50), at(0.99))
}

/// Hits per second with `TASKS` tasks, and this process's CPU µs per hit.
/// Each task counts its own hits: one shared counter, bumped by both
/// threads on every hit, would cost the in-process rows more than their hit.
async fn throughput(clients: &'static Clients, row: Row, size: usize) -> (f64, f64) {
    let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let counted: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            tokio::spawn(async move {
                let mut done = 0_u64;
                while !stop.load(Relaxed) {
                    clients.hit(row, size).await;
                    if matches!(row, Row::Local | Row::LocalTagged | Row::Moka) {
                        // A local hit never waits: let the other tasks and the timer run.
                        tokio::task::yield_now().await;
                    }
                    if counted.load(Relaxed) {
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await; // warm-up
    counted.store(true, Relaxed);
    let (start, cpu_start) = (Instant::now(), cpu_time());
    tokio::time::sleep(THROUGHPUT_FOR).await;
    stop.store(true, Relaxed);
    let (elapsed, cpu) = (start.elapsed(), cpu_time().saturating_sub(cpu_start));
    let mut ops = 0;
    for task in tasks {
        ops += task.await.unwrap();
    }
    (
        ops as f64 / elapsed.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / ops as f64,
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let server = support::RedisServer::start();
    URL.set(server.url(0)).unwrap();
    PEER_URL.set(server.url(0)).unwrap();
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
    let envelope = envelope_table(&envelope);
    println!("{envelope}");
    std::fs::write(format!("{out}/envelope.md"), &envelope).unwrap();
    if !results.is_empty() {
        let table = table(&results);
        println!("{table}");
        std::fs::write(format!("{out}/load.md"), &table).unwrap();
        std::fs::write(format!("{out}/load.svg"), chart(&results)).unwrap();
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

/// The median figures of `rows` on the value of `size`, over `ROUNDS` interleaved rounds.
async fn measure(clients: &'static Clients, rows: &[Row], size: usize) -> Vec<Figures> {
    let mut rounds: Vec<Vec<Figures>> = vec![Vec::new(); rows.len()];
    for _ in 0..ROUNDS {
        for (i, &row) in rows.iter().enumerate() {
            let (p50_us, p99_us) = latency(clients, row, size).await;
            let (ops_per_s, cpu_us) = throughput(clients, row, size).await;
            rounds[i].push(Figures {
                p50_us,
                p99_us,
                ops_per_s,
                cpu_us,
            });
        }
    }
    rounds
        .into_iter()
        .map(|r| Figures {
            p50_us: median(r.iter().map(|f| f.p50_us).collect()),
            p99_us: median(r.iter().map(|f| f.p99_us).collect()),
            ops_per_s: median(r.iter().map(|f| f.ops_per_s).collect()),
            cpu_us: median(r.iter().map(|f| f.cpu_us).collect()),
        })
        .collect()
}

/// The envelope table: each row's figures beside the raw `GET`'s, and the
/// bytes each stores for the value.
fn envelope_table(envelope: &[(usize, Vec<Figures>, Vec<usize>)]) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "| value | contender | stored bytes | 1 task p50 (µs) | {TASKS} tasks (hits/s) | ÷ GET | client CPU per hit (µs) | CPU ÷ GET |"
    )
    .unwrap();
    writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|").unwrap();
    for (size, figures, stored) in envelope {
        let floor = figures[0];
        for ((row, f), bytes) in Row::ENVELOPE.iter().zip(figures).zip(stored) {
            writeln!(
                out,
                "| JSON, {} | {} | {bytes} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} |",
                human(*size),
                row.name(),
                f.p50_us,
                f.ops_per_s,
                f.ops_per_s / floor.ops_per_s,
                f.cpu_us,
                f.cpu_us / floor.cpu_us,
            )
            .unwrap();
        }
    }
    out
}

fn table(results: &[(usize, Vec<Figures>)]) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "| value | contender | 1 task p50 (µs) | p99 (µs) | p50 ÷ GET | {TASKS} tasks (hits/s) | ÷ GET | client CPU per hit (µs) |"
    )
    .unwrap();
    writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|").unwrap();
    for (size, figures) in results {
        for (row, f) in Row::ALL.iter().zip(figures) {
            let floor = figures[row.floor()];
            writeln!(
                out,
                "| {} | {} | {:.1} | {:.1} | {:.2} | {:.0} | {:.2} | {:.2} |",
                human(*size),
                row.name(),
                f.p50_us,
                f.p99_us,
                f.p50_us / floor.p50_us,
                f.ops_per_s,
                f.ops_per_s / floor.ops_per_s,
                f.cpu_us,
            )
            .unwrap();
        }
    }
    out
}

fn human(size: usize) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// A row's figure as a ratio to the floor's.
type Ratio = fn(&Figures, &Figures) -> f64;

/// Two panels of grouped bars: p50 latency and throughput, each as a ratio
/// to the raw `GET` of the same size (1.0, dashed).
fn chart(results: &[(usize, Vec<Figures>)]) -> String {
    const COLORS: [&str; Row::ALL.len()] = [
        "#555555", "#999999", "#d08c2c", "#2c6fd0", "#6fa8f0", "#777777", "#333333", "#2ca05a",
        "#7fd49a", "#8e44ad", "#c39bd3", "#b0b0b0",
    ];
    let (width, panel_h, top, left) = (900.0, 260.0, 40.0, 60.0);
    let group_w = (width - left - 20.0) / results.len() as f64;
    let bar_w = group_w / (Row::ALL.len() as f64 + 1.5);
    let mut svg = String::new();
    let height = top + 2.0 * (panel_h + 60.0) + 40.0;
    writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    )
    .unwrap();
    writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#).unwrap();
    let panels: [(&str, Ratio); 2] = [
        (
            "1 task: p50 latency ÷ raw GET (lower is better)",
            |f, floor| f.p50_us / floor.p50_us,
        ),
        (
            "64 tasks: hits/s ÷ raw GET (higher is better)",
            |f, floor| f.ops_per_s / floor.ops_per_s,
        ),
    ];
    for (p, (title, ratio)) in panels.iter().enumerate() {
        let y0 = top + p as f64 * (panel_h + 60.0);
        let max = results
            .iter()
            .flat_map(|(_, fs)| fs.iter().map(|f| ratio(f, &fs[0])))
            .fold(1.0_f64, f64::max)
            * 1.15;
        let y_of = |r: f64| y0 + panel_h - r / max * panel_h;
        writeln!(
            svg,
            r#"<text x="{left}" y="{}" font-weight="bold">{title}</text>"#,
            y0 - 12.0
        )
        .unwrap();
        writeln!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="#000" stroke-dasharray="4 3"/><text x="{}" y="{}">1.0</text>"##,
            width - 20.0,
            left - 30.0,
            y_of(1.0) + 4.0,
            y = y_of(1.0),
        )
        .unwrap();
        for (g, (size, figures)) in results.iter().enumerate() {
            let gx = left + g as f64 * group_w + bar_w * 0.75;
            for (i, f) in figures.iter().enumerate() {
                let r = ratio(f, &figures[Row::ALL[i].floor()]);
                let x = gx + i as f64 * bar_w;
                let y = y_of(r);
                writeln!(
                    svg,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{r:.2}</text>"#,
                    bar_w * 0.9,
                    y0 + panel_h - y,
                    COLORS[i],
                    x + bar_w * 0.45,
                    y - 3.0,
                )
                .unwrap();
            }
            writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                gx + bar_w * Row::ALL.len() as f64 / 2.0,
                y0 + panel_h + 16.0,
                human(*size)
            )
            .unwrap();
        }
    }
    let ly = height - 24.0;
    for (i, row) in Row::ALL.iter().enumerate() {
        let x = left + i as f64 * 165.0;
        writeln!(
            svg,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{ly}">{}</text>"#,
            ly - 10.0,
            COLORS[i],
            x + 16.0,
            row.name().replace('#', "&#35;"),
        )
        .unwrap();
    }
    svg.push_str("</svg>\n");
    svg
}
