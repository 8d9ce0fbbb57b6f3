//! cachette on a real Redis Cluster (three masters, each with a replica,
//! started once for this test binary): what a tagged hit costs there, and
//! the cluster's faults under load — slots resharded, a master killed, the
//! whole cluster down. The figures are printed for RELIABILITY.md
//! (`cargo nextest run -p cachette-tests --test cluster --no-capture`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cachette::{Cache, Scope};
use support::app::{App, is_hit, load};
use support::{RedisCluster, cli, eventually, parse_command_calls};

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_resharding_failover_and_outage_on_one_cluster() {
    let mut cluster = RedisCluster::start();
    a_tagged_hit_is_one_mget_per_slot_at_most(&cluster).await;
    resharding_under_load_serves_no_wrong_value(&cluster).await;
    a_killed_master_under_load_fails_no_call(&mut cluster).await;
    a_cluster_down_is_misses_at_no_cost(&mut cluster).await;
    drop(cluster);
    a_password_protected_cluster_works_and_is_never_printed().await;
}

async fn a_password_protected_cluster_works_and_is_never_printed() {
    let cluster = RedisCluster::start_with_password(Some("s3cret-pass"));
    let cache = cache_on(&cluster).await;
    cache.set("k", "v", HOUR).await.unwrap();
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("v")
    );
    let shown = format!("{cache:?}");
    assert!(!shown.contains("s3cret-pass"), "{shown}");
    assert!(shown.contains("RedisCluster"), "{shown}");
    let wrong: Vec<String> = cluster
        .seeds()
        .iter()
        .map(|s| s.replace("s3cret-pass", "wrong"))
        .collect();
    let refused = Cache::builder().redis_cluster(wrong).build().await;
    let error = refused.expect_err("a wrong password is a build error");
    assert!(!format!("{error} {error:?}").contains("s3cret-pass"));
}

async fn cache_on(cluster: &RedisCluster) -> Cache {
    Cache::builder()
        .redis_cluster(cluster.seeds())
        .build()
        .await
        .unwrap()
}

/// Calls of the commands a cache sends, on the masters, since `CONFIG RESETSTAT`.
fn data_commands(cluster: &RedisCluster) -> Vec<(u16, String, u64)> {
    let mut seen = Vec::new();
    for port in cluster.master_ports() {
        for (name, calls) in parse_command_calls(&cli(port, &["INFO", "commandstats"])) {
            // Replication, topology and the test's own commands are not the cache's.
            let ours = !matches!(
                name.as_str(),
                "replconf" | "ping" | "info" | "cluster" | "command" | "client" | "hello" | "role"
            ) && !name.starts_with("config");
            if ours {
                seen.push((port, name, calls));
            }
        }
    }
    seen
}

/// A namespace and two tags spread over the cluster: the entry and its
/// three version keys are read in one round of latency — redis-rs splits
/// the `MGET` by slot and sends the parts at once — and nothing else is sent.
async fn a_tagged_hit_is_one_mget_per_slot_at_most(cluster: &RedisCluster) {
    let cache = cache_on(cluster).await;
    let scope = Scope::new()
        .namespace("catalog")
        .tag("size:256")
        .tag("bench");
    let compute = || async { "value".to_owned() };
    cache
        .get_or_set_in("products:all", compute, HOUR, &scope)
        .await
        .unwrap();
    for port in cluster.master_ports() {
        cli(port, &["CONFIG", "RESETSTAT"]);
    }
    let hit = cache
        .get_or_set_in(
            "products:all",
            || async { unreachable!("a hit") as String },
            HOUR,
            &scope,
        )
        .await
        .unwrap();
    assert_eq!(hit, "value");
    let commands = data_commands(cluster);
    eprintln!("cluster: a tagged hit sent {commands:?}");
    assert!(!commands.is_empty());
    for (port, name, _) in &commands {
        assert_eq!(name, "mget", "a hit only reads ({port})");
    }
    let mgets: u64 = commands.iter().map(|(_, _, calls)| calls).sum();
    assert!(
        mgets <= 4,
        "at most one MGET per slot of the four keys: {mgets}"
    );
    assert_eq!(cache.stats().hits, 1);
}

/// The id of the node at `port`.
fn node_id(port: u16) -> String {
    cli(port, &["CLUSTER", "MYID"]).trim().to_owned()
}

async fn resharding_under_load_serves_no_wrong_value(cluster: &RedisCluster) {
    let app = App::new(cache_on(cluster).await);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&app, 20, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let masters = cluster.master_ports();
    let (from, to) = (masters[0], masters[1]);
    let started = Instant::now();
    let reshard = tokio::task::spawn_blocking(move || {
        std::process::Command::new("redis-cli")
            .args(["--cluster", "reshard", &format!("127.0.0.1:{from}")])
            .args(["--cluster-from", &node_id(from)])
            .args(["--cluster-to", &node_id(to)])
            .args(["--cluster-slots", "1000", "--cluster-yes"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let reshard_ms = started.elapsed().as_millis();
    assert!(
        reshard.status.success(),
        "{}",
        String::from_utf8_lossy(&reshard.stderr)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    cluster.wait_until_ok();
    eprintln!(
        "cluster fault 1 (1000 slots resharded under 20 tasks in {reshard_ms} ms): calls={} hung={} wrong={} \
         slowest_call_ms={} backend_errors={}",
        app.calls.load(SeqCst),
        app.hung.load(SeqCst),
        app.wrong.load(SeqCst),
        app.slowest_ms.load(SeqCst),
        app.cache.stats().errors,
    );
    assert!(app.calls.load(SeqCst) > 0);
    assert_eq!(app.wrong.load(SeqCst), 0);
    assert_eq!(app.hung.load(SeqCst), 0);
    for id in 0..50 {
        eventually("every entry is a hit after the resharding", async || {
            is_hit(&app, id).await
        })
        .await;
    }
}

async fn a_killed_master_under_load_fails_no_call(cluster: &mut RedisCluster) {
    let app = App::new(cache_on(cluster).await);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&app, 20, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let victim = cluster.master_ports()[0];
    let before = app.calls.load(SeqCst);
    cluster
        .nodes
        .iter_mut()
        .find(|n| n.port() == victim)
        .unwrap()
        .stop();
    let killed = Instant::now();
    cluster.wait_until_ok();
    let promoted_ms = killed.elapsed().as_millis();
    for id in 0..50 {
        eventually(
            "every entry is a hit again after the failover",
            async || is_hit(&app, id).await,
        )
        .await;
    }
    let resumed_ms = killed.elapsed().as_millis();
    stop.store(true, SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    let during = app.calls.load(SeqCst) - before;
    let stats = app.cache.stats();
    eprintln!(
        "cluster fault 2 (a master killed under 20 tasks): calls={} during_failover={during} hung={} wrong={} \
         slowest_call_ms={} backend_errors={} skipped_by_breaker={} replica_promoted_after_ms={promoted_ms} \
         hits_back_after_ms={resumed_ms}",
        app.calls.load(SeqCst),
        app.hung.load(SeqCst),
        app.wrong.load(SeqCst),
        app.slowest_ms.load(SeqCst),
        stats.errors,
        stats.skipped,
    );
    assert!(during > 0, "calls went on during the failover");
    assert_eq!(app.wrong.load(SeqCst), 0);
    assert_eq!(app.hung.load(SeqCst), 0);
}

async fn a_cluster_down_is_misses_at_no_cost(cluster: &mut RedisCluster) {
    let app = App::new(cache_on(cluster).await);
    app.call(1).await;
    for node in &mut cluster.nodes {
        node.stop();
    }
    let started = Instant::now();
    for id in 0..200 {
        app.call(id % 50).await;
    }
    let elapsed = started.elapsed();
    let stats = app.cache.stats();
    let health = app.cache.health();
    eprintln!(
        "cluster fault 3 (every node down, 200 calls): took_ms={} hung={} wrong={} backend_errors={} \
         skipped_by_breaker={} breaker={health:?}",
        elapsed.as_millis(),
        app.hung.load(SeqCst),
        app.wrong.load(SeqCst),
        stats.errors,
        stats.skipped,
    );
    assert_eq!(app.wrong.load(SeqCst), 0);
    assert_eq!(app.hung.load(SeqCst), 0);
    assert!(!health.is_up(), "the breaker opened: {health:?}");
    assert!(
        stats.skipped > 0,
        "the open breaker spared the dead cluster"
    );
}
