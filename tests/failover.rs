//! One `REDIS_URL` whose endpoint fails over, as a managed primary endpoint
//! does: the name (here a loopback proxy) moves to the promoted replica, and
//! the old master, demoted, answers every write with `READONLY` on the
//! connections that still reach it. The cache must recover on its own.
//! And an invalidation the old master took but never replicated: lost
//! without replicated invalidations, kept and sent again with them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use cachette::{Cache, Invalidated, Scope};
use support::{Proxy, RedisServer, eventually, row};

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_master_behind_a_moving_endpoint_is_left_for_the_new_one() {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    b.command(&["REPLICAOF", "127.0.0.1", &a.port().to_string()])
        .await;
    b.synced().await;
    let endpoint = Proxy::start(a.port()).await;
    let cache = Cache::builder()
        .redis_url(endpoint.url(0))
        .build()
        .await
        .unwrap();
    cache.set("k", &1_u64, MINUTE).await.unwrap();
    assert_eq!(cache.get::<u64>("k").await.unwrap(), Some(1));

    // The failover: B promoted, A demoted to its replica, the endpoint moved.
    b.command(&["REPLICAOF", "NO", "ONE"]).await;
    a.command(&["REPLICAOF", "127.0.0.1", &b.port().to_string()])
        .await;
    endpoint.move_to(b.port());
    a.synced().await;

    // Writes reach the new master without a restart; no call fails meanwhile.
    let moved = std::time::Instant::now();
    let mut attempts = 0;
    eventually("a write reaches the new master", async || {
        attempts += 1;
        cache.set("k", &2_u64, MINUTE).await.unwrap();
        let on_b: Option<Vec<u8>> = redis::cmd("GET")
            .arg(cache.key_for("k"))
            .query_async(&mut b.connect(0).await)
            .await
            .unwrap();
        on_b.is_some() && cache.get::<u64>("k").await.unwrap() == Some(2)
    })
    .await;
    // Each `READONLY` replaced one held connection (two are held), and the
    // breaker may have skipped a few calls meanwhile: a handful of tries.
    assert!(
        attempts <= 20,
        "{attempts} writes before one reached the new master"
    );
    eprintln!(
        "endpoint failover: a write reached the new master {:?} after the move, on write {attempts}",
        moved.elapsed()
    );
    let computed = cache
        .get_or_set("fresh", || async { 7_u64 }, MINUTE)
        .await
        .unwrap();
    assert_eq!(computed, 7);
    eventually("hits resume", async || {
        cache.get::<u64>("fresh").await.unwrap() == Some(7)
    })
    .await;
}

/// What happened to a namespace bump made just before its master died:
/// how the invalidation was reported, what another process read on the new
/// master first, what the invalidating process read there, and what the
/// other read once the invalidating process had nothing left to send.
struct AfterFailover {
    reported: Invalidated,
    other_process: u64,
    invalidating_process: u64,
    other_process_later: u64,
}

/// A master A whose replica B stops receiving its writes (their link
/// frozen, as in a partition), a namespace bump, A killed at once, and B
/// promoted behind the endpoint (with a replica of its own, as Sentinel or
/// a managed service gives the new master).
async fn bump_then_failover(replicated: bool) -> AfterFailover {
    let mut a = RedisServer::start();
    let link = Proxy::start(a.port()).await;
    let b = RedisServer::start();
    b.command(&["REPLICAOF", "127.0.0.1", &link.port().to_string()])
        .await;
    b.synced().await;
    let endpoint = Proxy::start(a.port()).await;
    let mut builder = Cache::builder().redis_url(endpoint.url(0));
    if replicated {
        builder = builder.replicated_invalidations(1, Duration::from_millis(200));
    }
    let cache = builder.build().await.unwrap();
    let scope = Scope::new().namespace("rows");
    let source = Arc::new(AtomicU64::new(1));
    assert_eq!(row(&cache, &scope, &source).await, 1);
    // Replication is in order: once the marker is on B, so is the row.
    a.set_raw("marker", b"1").await;
    eventually("the replica has the row", async || {
        let marker: Option<Vec<u8>> = redis::cmd("GET")
            .arg("marker")
            .query_async(&mut b.connect(0).await)
            .await
            .unwrap();
        marker.is_some()
    })
    .await;

    source.store(2, SeqCst);
    link.freeze();
    let reported = cache.invalidate_namespace("rows").await.unwrap();
    a.stop();
    b.command(&["REPLICAOF", "NO", "ONE"]).await;
    endpoint.move_to(b.port());
    let c = RedisServer::start();
    c.command(&["REPLICAOF", "127.0.0.1", &b.port().to_string()])
        .await;
    c.synced().await;

    assert!(
        cache.flush_invalidations(Duration::from_secs(20)).await,
        "the invalidation never landed on the new master"
    );
    let other = Cache::builder()
        .redis_url(endpoint.url(0))
        .build()
        .await
        .unwrap();
    let other_process = row(&other, &scope, &source).await;
    // The invalidating process reads from the new master again (its
    // connections to the old one broke: a read that fails is a miss).
    other.set("probe", &1_u8, MINUTE).await.unwrap();
    eventually(
        "the invalidating process reads the new master",
        async || cache.get::<u8>("probe").await.unwrap() == Some(1),
    )
    .await;
    let invalidating_process = row(&cache, &scope, &source).await;
    assert!(cache.flush_invalidations(Duration::from_secs(20)).await);
    AfterFailover {
        reported,
        other_process,
        invalidating_process,
        other_process_later: row(&other, &scope, &source).await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_replicated_invalidations_a_bump_survives_the_failover_of_its_master() {
    let after = bump_then_failover(true).await;
    assert!(
        after.reported.is_queued(),
        "no replica took the bump: it must not count as applied ({:?})",
        after.reported
    );
    assert_eq!(after.other_process, 2, "the bump reached the new master");
    assert_eq!(after.invalidating_process, 2);
    assert_eq!(after.other_process_later, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_replicated_invalidations_the_invalidating_process_sends_a_lost_bump_again() {
    // Redis answers a write before its replicas have it: the master died
    // with the bump, and the promoted replica holds the namespace's old
    // entries. The invalidating process notices a new server (its check
    // every second, or its next call) and sends its recent invalidations
    // again; until then another process may read the old value there.
    let after = bump_then_failover(false).await;
    assert!(after.reported.is_applied(), "{:?}", after.reported);
    assert_eq!(after.invalidating_process, 2);
    assert_eq!(after.other_process_later, 2);
    eprintln!(
        "without replicated invalidations: another process first read {} on the new master",
        after.other_process
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_invalidations_cost_one_wait_each_and_nothing_per_hit() {
    let master = RedisServer::start();
    let replica = RedisServer::start();
    replica
        .command(&["REPLICAOF", "127.0.0.1", &master.port().to_string()])
        .await;
    replica.synced().await;
    let cache = Cache::builder()
        .redis_url(master.url(0))
        .replicated_invalidations(1, Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let scope = Scope::new().namespace("rows").tag("row:1");
    let source = Arc::new(AtomicU64::new(1));
    assert_eq!(row(&cache, &scope, &source).await, 1);
    master.command(&["CONFIG", "RESETSTAT"]).await;
    for _ in 0..10 {
        assert_eq!(row(&cache, &scope, &source).await, 1);
    }
    let mut direct = master.connect(0).await;
    let waits = |calls: &[(String, u64)]| {
        calls
            .iter()
            .find(|(name, _)| name == "wait")
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(waits(&support::command_calls(&mut direct).await), 0);
    source.store(2, SeqCst);
    assert!(cache.invalidate("row").await.unwrap().is_applied());
    assert!(
        cache
            .invalidate_namespace("rows")
            .await
            .unwrap()
            .is_applied()
    );
    assert!(cache.invalidate_tag("row:1").await.unwrap().is_applied());
    assert_eq!(row(&cache, &scope, &source).await, 2);
    assert_eq!(waits(&support::command_calls(&mut direct).await), 3);
}
