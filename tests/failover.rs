//! One `REDIS_URL` whose endpoint fails over, as a managed primary endpoint
//! does: the name (here a loopback proxy) moves to the promoted replica, and
//! the old master, demoted, answers every write with `READONLY` on the
//! connections that still reach it. The cache must recover on its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering::SeqCst};
use std::time::Duration;

use cachette::Cache;
use support::{RedisServer, eventually};

const MINUTE: Duration = Duration::from_secs(60);

/// A TCP proxy on loopback: each new connection goes to the port `target`
/// holds at that moment; connections already made stay where they are.
async fn proxy(target: Arc<AtomicU16>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let to = target.load(SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_master_behind_a_moving_endpoint_is_left_for_the_new_one() {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    b.command(&["REPLICAOF", "127.0.0.1", &a.port().to_string()])
        .await;
    b.synced().await;
    let target = Arc::new(AtomicU16::new(a.port()));
    let port = proxy(Arc::clone(&target)).await;
    let cache = Cache::builder()
        .redis_url(format!("redis://127.0.0.1:{port}/0"))
        .build()
        .await
        .unwrap();
    cache.set("k", &1_u64, MINUTE).await.unwrap();
    assert_eq!(cache.get::<u64>("k").await.unwrap(), Some(1));

    // The failover: B promoted, A demoted to its replica, the endpoint moved.
    b.command(&["REPLICAOF", "NO", "ONE"]).await;
    a.command(&["REPLICAOF", "127.0.0.1", &b.port().to_string()])
        .await;
    target.store(b.port(), SeqCst);
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
