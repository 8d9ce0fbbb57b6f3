//! The figures cachette feeds to the `metrics` facade, scraped from the
//! Prometheus exporter after events of each kind on real stores: byte-budget
//! evictions, refused entries (undecodable, forged), lease waits, and the
//! circuit breaker opening on a Redis that was killed.

use std::time::Duration;

use cachette::Cache;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

const MINUTE: Duration = Duration::from_secs(60);

/// The value of the series that begins with `series` (labels included);
/// the counters and the gauge here are whole numbers.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// One test: the recorder is global to the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_event_reaches_the_exporter() {
    let prometheus: PrometheusHandle = PrometheusBuilder::new().install_recorder().unwrap();

    // Evictions: 200 entries of about 1 KiB in a 64 KiB memory budget.
    let memory = Cache::builder()
        .key_prefix("small")
        .memory_bytes(64 << 10)
        .build()
        .await
        .unwrap();
    let mut written = 0;
    support::eventually("size evictions are counted", async || {
        for _ in 0..200 {
            written += 1;
            let key = format!("k{written}");
            memory.set(&key, &"x".repeat(1000), MINUTE).await.unwrap();
        }
        let evicted = sample(
            &prometheus.render(),
            "cachette_evictions_total{tier=\"memory\",cause=\"size\"}",
        );
        evicted.is_some_and(|n| n > 0)
    })
    .await;

    // Refused entries: garbage and an unsigned value under a signing cache.
    let server = support::RedisServer::start();
    let signed = Cache::builder()
        .redis_url(server.url(0))
        .key_prefix("signed")
        .sign_with("a secret of sixteen bytes or more")
        .build()
        .await
        .unwrap();
    server
        .set_raw(&signed.key_for("garbage"), b"\x01\x07not an envelope")
        .await;
    let unsigned = Cache::builder()
        .redis_url(server.url(0))
        .key_prefix("signed")
        .build()
        .await
        .unwrap();
    unsigned.set("planted", "value", MINUTE).await.unwrap();
    assert_eq!(signed.get::<String>("garbage").await.unwrap(), None);
    assert_eq!(signed.get::<String>("planted").await.unwrap(), None);

    // Lease waits: two calls, no single flight, one lease across them.
    let leased = Cache::builder()
        .redis_url(server.url(0))
        .key_prefix("leased")
        .single_flight(false)
        .lock_lease(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let slow = || async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        7_u32
    };
    let (a, b) = tokio::join!(
        leased.get_or_set("report", slow, MINUTE),
        leased.get_or_set("report", slow, MINUTE)
    );
    assert_eq!((a.unwrap(), b.unwrap()), (7, 7));

    // The breaker: five failures in a row against a killed server open it.
    let mut doomed = support::RedisServer::start();
    let breaking = Cache::builder()
        .redis_url(doomed.url(0))
        .key_prefix("doomed")
        .build()
        .await
        .unwrap();
    doomed.stop();
    for _ in 0..8 {
        assert_eq!(breaking.get::<String>("k").await.unwrap(), None);
    }

    let text = prometheus.render();
    let value =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(
        value("cachette_refused_total{cache=\"signed\",reason=\"undecodable\"}"),
        1
    );
    assert_eq!(
        value("cachette_refused_total{cache=\"signed\",reason=\"forged\"}"),
        1
    );
    assert!(value("cachette_lease_waits_total{cache=\"leased\"}") >= 1);
    assert_eq!(value("cachette_circuit_transitions_total{to=\"open\"}"), 1);
    assert_eq!(value("cachette_circuit_open"), 1);
    assert_eq!(value("cachette_backend_errors_total{cache=\"doomed\"}"), 5);
    assert_eq!(value("cachette_skipped_total{cache=\"doomed\"}"), 3);
    assert_eq!(
        value("cachette_operations_total{cache=\"doomed\",op=\"get\",result=\"miss\"}"),
        8
    );
}
