//! Invalidations that Redis does not take at once are never lost: they are
//! reported as queued, the invalidating process serves nothing older
//! meanwhile, and they land once Redis is back. Every blip × every kind of
//! invalidation, on real `redis-server` processes and on a cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use cachette::{Cache, CacheBuilder, Invalidated, Scope};
use support::store::redis_cache;
use support::{RedisCluster, RedisServer, cli, eventually, row};

const MINUTE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
enum Kind {
    Key,
    Namespace,
    Tag,
}

#[derive(Debug, Clone, Copy)]
enum Blip {
    /// `CLIENT PAUSE .. WRITE`: writes wait past their deadline, reads answer.
    PausedWrites,
    /// The circuit breaker open after a command past its deadline.
    BreakerOpen,
    /// Every client connection killed (`CLIENT KILL TYPE normal`).
    Killed,
    /// The server demoted to a replica: writes answer `READONLY`.
    Replica,
    /// The server stopped (then restarted, empty).
    Stopped,
}

fn scope_of(kind: Kind) -> Scope {
    match kind {
        Kind::Key => Scope::new(),
        Kind::Namespace => Scope::new().namespace("rows"),
        Kind::Tag => Scope::new().tag("row:1"),
    }
}

async fn invalidate(cache: &Cache, kind: Kind) -> Result<Invalidated, cachette::Error> {
    match kind {
        Kind::Key => cache.invalidate("row").await,
        Kind::Namespace => cache.invalidate_namespace("rows").await,
        Kind::Tag => cache.invalidate_tag("row:1").await,
    }
}

/// Demotes `server` to a replica of a new server that takes over with the
/// same data (returned): its writes answer `READONLY`, its reads answer.
async fn demote(server: &RedisServer) -> RedisServer {
    let other = RedisServer::start();
    let port = server.port().to_string();
    other.command(&["REPLICAOF", "127.0.0.1", &port]).await;
    other.synced().await;
    other.command(&["REPLICAOF", "NO", "ONE"]).await;
    let port = other.port().to_string();
    server.command(&["REPLICAOF", "127.0.0.1", &port]).await;
    server.synced().await;
    other
}

/// The settings a cache needs for `blip`: for an open breaker, one that
/// opens at the first failure.
fn for_blip(blip: Blip, builder: CacheBuilder) -> CacheBuilder {
    if matches!(blip, Blip::BreakerOpen) {
        builder.circuit_breaker(1, Duration::from_millis(1500))
    } else {
        builder
    }
}

async fn case(blip: Blip, kind: Kind) {
    let mut server = RedisServer::start();
    let builder = Cache::builder().redis_url(server.url(0));
    let cache = for_blip(blip, builder).build().await.unwrap();
    let scope = scope_of(kind);
    let source = Arc::new(AtomicU64::new(1));
    assert_eq!(row(&cache, &scope, &source).await, 1);
    source.store(2, SeqCst);
    let mut primary = None;
    match blip {
        Blip::PausedWrites => server.command(&["CLIENT", "PAUSE", "5000", "WRITE"]).await,
        Blip::BreakerOpen => {
            server.command(&["CLIENT", "PAUSE", "600"]).await;
            let _ = cache.get::<u64>("probe").await;
            assert!(!cache.health().is_up(), "the breaker opened");
        }
        Blip::Killed => server.command(&["CLIENT", "KILL", "TYPE", "normal"]).await,
        Blip::Replica => primary = Some(demote(&server).await),
        Blip::Stopped => server.stop(),
    }
    let done = invalidate_during(blip, &cache, kind, &scope, &source).await;
    match blip {
        Blip::PausedWrites => server.command(&["CLIENT", "UNPAUSE"]).await,
        Blip::Replica => server.command(&["REPLICAOF", "NO", "ONE"]).await,
        Blip::Stopped => server.restart(),
        Blip::BreakerOpen | Blip::Killed => {}
    }
    drop(primary);
    assert!(
        cache.flush_invalidations(Duration::from_secs(20)).await,
        "{blip:?} {kind:?}: the invalidation never landed"
    );
    let stats = cache.stats();
    assert_eq!(stats.invalidations_pending, 0);
    if done.is_queued() {
        assert!(stats.invalidations_queued >= 1);
        assert!(stats.invalidations_applied_late >= 1, "{stats:?}");
    }
    // Another client (another process) reads the new value, never the old.
    let other = server.cache().await;
    reads_the_new_row(&other, &scope, &source).await;
    assert_eq!(row(&cache, &scope, &source).await, 2);
}

/// Invalidates `kind` during `blip`: reported queued (after a killed
/// connection, applied or queued), and meanwhile this process computes
/// the new row (2), never serving the old one.
async fn invalidate_during(
    blip: Blip,
    cache: &Cache,
    kind: Kind,
    scope: &Scope,
    source: &Arc<AtomicU64>,
) -> Invalidated {
    let done = invalidate(cache, kind).await.unwrap();
    // A killed connection may be replaced in time for the command.
    if matches!(blip, Blip::Killed) {
        assert!(done.is_applied() || done.is_queued(), "{blip:?} {kind:?}");
    } else {
        assert!(done.is_queued(), "{blip:?} {kind:?}: {done:?}");
    }
    for _ in 0..5 {
        assert_eq!(row(cache, scope, source).await, 2, "{blip:?} {kind:?}");
    }
    done
}

/// Another client (another process) reads the new row (2) in time, and
/// then never the old one (1).
async fn reads_the_new_row(other: &Cache, scope: &Scope, source: &Arc<AtomicU64>) {
    eventually("another client reads the new value", async || {
        row(other, scope, source).await == 2
    })
    .await;
    assert_ne!(other.get_in::<u64>("row", scope).await.unwrap(), Some(1));
}

macro_rules! cases {
    ($($name:ident: $blip:ident, $kind:ident;)*) => {
        $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            case(Blip::$blip, Kind::$kind).await;
        })*
    };
}

cases! {
    paused_writes_key: PausedWrites, Key;
    paused_writes_namespace: PausedWrites, Namespace;
    paused_writes_tag: PausedWrites, Tag;
    breaker_open_key: BreakerOpen, Key;
    breaker_open_namespace: BreakerOpen, Namespace;
    breaker_open_tag: BreakerOpen, Tag;
    killed_connections_key: Killed, Key;
    killed_connections_namespace: Killed, Namespace;
    killed_connections_tag: Killed, Tag;
    demoted_to_replica_key: Replica, Key;
    demoted_to_replica_namespace: Replica, Namespace;
    demoted_to_replica_tag: Replica, Tag;
    stopped_server_key: Stopped, Key;
    stopped_server_namespace: Stopped, Namespace;
    stopped_server_tag: Stopped, Tag;
}

/// The blips that a cluster shares with one server, on a Redis Cluster
/// (three masters, each with a replica, started once for all the cases):
/// each pauses or cuts every master, so that whichever serves the key or
/// the version key is hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_blip_on_a_cluster() {
    let cluster = RedisCluster::start();
    for blip in [Blip::PausedWrites, Blip::BreakerOpen, Blip::Killed] {
        for kind in [Kind::Key, Kind::Namespace, Kind::Tag] {
            cluster_case(&cluster, blip, kind).await;
        }
    }
}

async fn cluster_case(cluster: &RedisCluster, blip: Blip, kind: Kind) {
    let on_masters = |args: &[&str]| {
        for port in cluster.master_ports() {
            cli(port, args);
        }
    };
    let prefix = format!("{blip:?}-{kind:?}").to_lowercase();
    let cache_on_cluster = || {
        Cache::builder()
            .redis_cluster(cluster.seeds())
            .key_prefix(prefix.clone())
    };
    let cache = for_blip(blip, cache_on_cluster()).build().await.unwrap();
    let scope = scope_of(kind);
    let source = Arc::new(AtomicU64::new(1));
    assert_eq!(row(&cache, &scope, &source).await, 1);
    source.store(2, SeqCst);
    match blip {
        Blip::PausedWrites => on_masters(&["CLIENT", "PAUSE", "5000", "WRITE"]),
        Blip::BreakerOpen => {
            on_masters(&["CLIENT", "PAUSE", "600"]);
            // The read of the row and its versions opens their masters' circuits.
            let _ = cache.get_in::<u64>("row", &scope).await;
            assert!(!cache.health().is_up(), "the breaker opened");
        }
        Blip::Killed => on_masters(&["CLIENT", "KILL", "TYPE", "normal"]),
        Blip::Replica | Blip::Stopped => unreachable!("run on one server"),
    }
    invalidate_during(blip, &cache, kind, &scope, &source).await;
    if matches!(blip, Blip::PausedWrites) {
        on_masters(&["CLIENT", "UNPAUSE"]);
    }
    assert!(
        cache.flush_invalidations(Duration::from_secs(20)).await,
        "{blip:?} {kind:?} on a cluster: the invalidation never landed"
    );
    assert_eq!(cache.stats().invalidations_pending, 0);
    let other = cache_on_cluster().build().await.unwrap();
    reads_the_new_row(&other, &scope, &source).await;
}

/// A server restarted from a snapshot taken before an invalidation landed:
/// the old entry and the old versions come back with it. The invalidating
/// process, idle, notices the restart (a new run id on the new connection
/// its check makes) and sends the invalidations that landed lately again:
/// another process then reads the new value, and the invalidating process
/// never serves the old one.
async fn restarted_from_an_older_snapshot(kind: Kind) {
    let mut server = RedisServer::start();
    let cache = server.cache().await;
    let scope = scope_of(kind);
    let source = Arc::new(AtomicU64::new(1));
    assert_eq!(row(&cache, &scope, &source).await, 1);
    server.command(&["SAVE"]).await;
    source.store(2, SeqCst);
    assert!(invalidate(&cache, kind).await.unwrap().is_applied());
    assert_eq!(row(&cache, &scope, &source).await, 2);

    server.restart();
    let other = server.cache().await;
    // The invalidating process makes no call: it notices the restart by
    // itself (it checks the server every second while it remembers an
    // invalidation), and another process stops reading the old value.
    reads_the_new_row(&other, &scope, &source).await;
    // The cache's connections broke with the old process: once it reads
    // the new one, its reads are the ones that count.
    other.set("probe", &1_u8, MINUTE).await.unwrap();
    eventually("the cache reads the restarted server", async || {
        cache.get::<u8>("probe").await.unwrap() == Some(1)
    })
    .await;
    for _ in 0..5 {
        assert_eq!(row(&cache, &scope, &source).await, 2, "{kind:?}");
    }
    assert!(cache.flush_invalidations(Duration::from_secs(20)).await);
    assert_eq!(row(&other, &scope, &source).await, 2, "{kind:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_from_an_older_snapshot_gets_the_key_invalidation_again() {
    restarted_from_an_older_snapshot(Kind::Key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_from_an_older_snapshot_gets_the_namespace_bump_again() {
    restarted_from_an_older_snapshot(Kind::Namespace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_from_an_older_snapshot_gets_the_tag_bump_again() {
    restarted_from_an_older_snapshot(Kind::Tag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fail_open_a_refused_invalidation_is_an_error_and_still_kept() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .redis_url(server.url(0))
        .fail_open(false)
        .build()
        .await
        .unwrap();
    cache.set("k", &1_u64, MINUTE).await.unwrap();
    server.command(&["CLIENT", "PAUSE", "2000", "WRITE"]).await;
    assert!(cache.invalidate("k").await.is_err());
    assert_eq!(cache.stats().invalidations_pending, 1);
    assert_eq!(
        cache.get::<u64>("k").await.unwrap(),
        None,
        "not served meanwhile"
    );
    server.command(&["CLIENT", "UNPAUSE"]).await;
    assert!(cache.flush_invalidations(Duration::from_secs(20)).await);
    let mut conn = server.connect(0).await;
    let exists: bool = redis::cmd("EXISTS")
        .arg(cache.key_for("k"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(exists, "the tombstone landed");
    let plain = server.cache().await;
    assert_eq!(plain.get::<u64>("k").await.unwrap(), None);
}

/// A tag invalidation is two writes (the tag's version, the entries tagged
/// from their values): when Redis does not take the first, the second is
/// kept behind it without waiting on Redis again — one failure per call —
/// and kept even when the failure is returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_tag_invalidation_is_one_failure_and_both_parts_are_kept() {
    let server = RedisServer::start();
    for fail_open in [true, false] {
        let cache = Cache::builder()
            .redis_url(server.url(0))
            .key_prefix(if fail_open { "open" } else { "closed" })
            .fail_open(fail_open)
            .build()
            .await
            .unwrap();
        let scope = Scope::new().tag("row:1");
        cache.set_in("k", &1_u64, MINUTE, &scope).await.unwrap();
        let before = cache.stats();
        server.command(&["CLIENT", "PAUSE", "5000", "WRITE"]).await;
        let done = cache.invalidate_tag("row:1").await;
        let after = cache.stats();
        assert_eq!(done.is_ok(), fail_open, "{done:?}");
        if let Ok(done) = done {
            assert!(done.is_queued());
        }
        assert_eq!(after.errors - before.errors, 1, "one failure per call");
        assert_eq!(
            after.invalidations_pending, 2,
            "the version and the members"
        );
        assert_eq!(cache.get_in::<u64>("k", &scope).await.unwrap(), None);
        server.command(&["CLIENT", "UNPAUSE"]).await;
        assert!(cache.flush_invalidations(Duration::from_secs(20)).await);
        let other = Cache::builder()
            .redis_url(server.url(0))
            .key_prefix(if fail_open { "open" } else { "closed" })
            .build()
            .await
            .unwrap();
        assert_eq!(other.get_in::<u64>("k", &scope).await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_write_of_the_key_is_not_undone_by_the_retried_tombstone() {
    let server = RedisServer::start();
    let cache = server.cache().await;
    cache.set("k", &1_u64, MINUTE).await.unwrap();
    server.command(&["CLIENT", "PAUSE", "5000", "WRITE"]).await;
    assert!(cache.invalidate("k").await.unwrap().is_queued());
    server.command(&["CLIENT", "UNPAUSE"]).await;
    // Written after the invalidation was issued: it must stay.
    cache.set("k", &3_u64, MINUTE).await.unwrap();
    assert!(cache.flush_invalidations(Duration::from_secs(20)).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(cache.get::<u64>("k").await.unwrap(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_bound_the_prefix_is_cleared_and_nothing_is_served_meanwhile() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .redis_url(server.url(0))
        .max_pending_invalidations(10)
        // Off: `READONLY` replies would open it, and reads would skip Redis
        // for that reason rather than for the bound.
        .circuit_breaker(0, Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    for i in 0..20 {
        cache.set(&format!("k{i}"), &i, MINUTE).await.unwrap();
    }
    cache.set("untouched", &7_u64, MINUTE).await.unwrap();
    // Writes answer `READONLY`; reads still answer.
    let primary = demote(&server).await;
    for i in 0..10 {
        let done = cache.invalidate(&format!("k{i}")).await.unwrap();
        assert!(done.is_queued());
    }
    assert_eq!(cache.get::<u64>("untouched").await.unwrap(), Some(7));
    assert!(cache.invalidate("k10").await.unwrap().is_queued());
    // Over the bound: nothing of this cache is served from Redis.
    assert_eq!(cache.get::<u64>("untouched").await.unwrap(), None);
    assert_eq!(cache.get::<u64>("k15").await.unwrap(), None);
    server.command(&["REPLICAOF", "NO", "ONE"]).await;
    drop(primary);
    assert!(cache.flush_invalidations(Duration::from_secs(20)).await);
    let plain = server.cache().await;
    for key in ["untouched", "k0", "k15"] {
        assert_eq!(
            plain.get::<u64>(key).await.unwrap(),
            None,
            "{key} was cleared"
        );
    }
    cache.set("after", &1_u64, MINUTE).await.unwrap();
    assert_eq!(cache.get::<u64>("after").await.unwrap(), Some(1));
}

/// The resident set of this process, in KiB (Linux).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_invalidations_wait_for_a_stopped_server_and_all_land() {
    const N: u64 = 100_000;
    let mut server = RedisServer::start();
    let cache = server.cache().await;
    server.stop();
    let before = rss_kib();
    for i in 0..N {
        let done = cache
            .invalidate(&format!("user_permissions:{i}"))
            .await
            .unwrap();
        assert!(done.is_queued());
    }
    let grown = rss_kib().saturating_sub(before);
    assert_eq!(cache.stats().invalidations_pending, N);
    server.restart();
    let started = std::time::Instant::now();
    assert!(cache.flush_invalidations(Duration::from_secs(120)).await);
    let stats = cache.stats();
    assert_eq!(stats.invalidations_pending, 0);
    assert_eq!(stats.invalidations_applied_late, N);
    let mut conn = server.connect(0).await;
    let stored: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(stored, N, "every tombstone landed");
    eprintln!(
        "{N} invalidations queued while Redis was down: resident set grew by {grown} KiB; \
         all landed {:?} after the server was back",
        started.elapsed()
    );
}

/// While a key's tombstone waits for Redis, the callers that miss on it
/// still share one computation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_of_a_key_whose_invalidation_waits_share_one_computation() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .redis_url(server.url(0))
        // Off: reads must reach the demoted server, not skip it.
        .circuit_breaker(0, Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    for kind in [Kind::Key, Kind::Namespace, Kind::Tag] {
        let scope = scope_of(kind);
        let source = Arc::new(AtomicU64::new(1));
        assert_eq!(row(&cache, &scope, &source).await, 1);
        source.store(2, SeqCst);
        let primary = demote(&server).await;
        assert!(invalidate(&cache, kind).await.unwrap().is_queued());
        let runs = Arc::new(AtomicU64::new(0));
        let callers: Vec<_> = (0..20)
            .map(|_| {
                let (cache, scope, runs) = (cache.clone(), scope.clone(), Arc::clone(&runs));
                tokio::spawn(async move {
                    cache
                        .get_or_set_in(
                            "row",
                            || async move {
                                runs.fetch_add(1, SeqCst);
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                2_u64
                            },
                            MINUTE,
                            &scope,
                        )
                        .await
                        .unwrap()
                })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap(), 2, "{kind:?}");
        }
        assert_eq!(
            runs.load(SeqCst),
            1,
            "{kind:?}: one computation for 20 callers"
        );
        server.command(&["REPLICAOF", "NO", "ONE"]).await;
        drop(primary);
        assert!(cache.flush_invalidations(Duration::from_secs(20)).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_does_not_serve_a_key_whose_invalidation_waits() {
    let server = RedisServer::start();
    for tier in [false, true] {
        let mut builder = Cache::builder()
            .redis_url(server.url(0))
            .circuit_breaker(0, Duration::from_secs(1));
        if tier {
            builder = builder.local_tier(1 << 20);
        }
        let cache = builder.build().await.unwrap();
        cache.set("a", &1_u64, MINUTE).await.unwrap();
        cache.set("b", &2_u64, MINUTE).await.unwrap();
        assert_eq!(cache.get_many::<u64>(["a", "b"]).await.unwrap().len(), 2);
        let primary = demote(&server).await;
        assert!(cache.invalidate("a").await.unwrap().is_queued());
        let found = cache.get_many::<u64>(["a", "b"]).await.unwrap();
        assert_eq!(
            found.get("a"),
            None,
            "tier {tier}: the invalidated key was served"
        );
        assert_eq!(found.get("b"), Some(&2));
        server.command(&["REPLICAOF", "NO", "ONE"]).await;
        drop(primary);
        assert!(cache.flush_invalidations(Duration::from_secs(20)).await);
        assert_eq!(cache.get::<u64>("a").await.unwrap(), None);
    }
}

/// A version key that holds what no bump can add to (text, a number past
/// 2^53, another type) is replaced by the invalidation, which lands at once
/// instead of staying queued while the old entry is served; the scope hits
/// again afterwards.
#[tokio::test]
async fn a_version_key_no_bump_can_add_to_is_replaced_by_the_invalidation() {
    let (server, cache) = redis_cache(Cache::builder().key_prefix("p")).await;
    let mut conn = server.connect(0).await;
    let scope = Scope::new().tag("t");
    for (round, planted) in [
        &["SET", "p#tag:t", "not a number"][..],
        &["SET", "p#tag:t", "9223372036854775807"],
        &["SET", "p#tag:t", "18014398509481984"],
        &["RPUSH", "p#tag:t", "a list"],
    ]
    .into_iter()
    .enumerate()
    {
        let value = |v: usize| move || async move { format!("{round}: {v}") };
        let key = format!("k{round}");
        cache
            .get_or_set_in(&key, value(1), MINUTE, &scope)
            .await
            .unwrap();
        let () = redis::cmd("DEL")
            .arg("p#tag:t")
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () = redis::cmd(planted[0])
            .arg(&planted[1..])
            .query_async(&mut conn)
            .await
            .unwrap();
        let invalidated = cache.invalidate_tag("t").await.unwrap();
        assert!(invalidated.is_applied(), "{planted:?}: {invalidated:?}");
        let version: String = redis::cmd("GET")
            .arg("p#tag:t")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            version.parse::<u64>().is_ok_and(|v| v < 1 << 53),
            "{version}"
        );
        let got = cache.get_or_set_in(&key, value(2), MINUTE, &scope).await;
        assert_eq!(got.unwrap(), format!("{round}: 2"), "{planted:?}");
        let again = cache.get_or_set_in(&key, value(3), MINUTE, &scope).await;
        assert_eq!(
            again.unwrap(),
            format!("{round}: 2"),
            "{planted:?}: a hit again"
        );
    }
}
