//! Across processes: with a lease, one process in the fleet computes a
//! cold key, and a crashed holder's lease expires.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cachette::{Cache, cached};
use support::{RedisCluster, RedisServer};

const CHILD_URL: &str = "CACHETTE_TEST_LEASE_URL";
const CHILD_ROLE: &str = "CACHETTE_TEST_LEASE_ROLE";
const CHILD_TEST: &str = "one_process_in_the_fleet_computes_a_cold_key";

/// Runs `cmd` on `store`: one server's URL, or a cluster's comma-separated seeds.
async fn query<T: redis::FromRedisValue>(store: &str, cmd: &redis::Cmd) -> T {
    if store.contains(',') {
        let mut conn = redis::cluster::ClusterClient::new(store.split(',').collect::<Vec<_>>())
            .unwrap()
            .get_async_connection()
            .await
            .unwrap();
        cmd.query_async(&mut conn).await.unwrap()
    } else {
        let mut conn = redis::Client::open(store)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        cmd.query_async(&mut conn).await.unwrap()
    }
}

/// Counts its runs in Redis, so that every process adds to one count.
#[cached(key = "report", lock = Duration::from_secs(1))]
async fn report(store: &str, pause_ms: u64) -> String {
    let run: u64 = query(store, redis::cmd("INCR").arg("runs")).await;
    tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    format!("report #{run}")
}

/// What a child process does, told by its environment.
async fn child(url: &str, role: &str) {
    let builder = if url.contains(',') {
        Cache::builder().redis_cluster(url.split(','))
    } else {
        Cache::builder().redis_url(url)
    };
    builder.build().await.unwrap().install();
    let pause = if role == "stuck" { 60_000 } else { 300 };
    println!("result={}", report(url, pause).await);
}

fn spawn(store: &str, role: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_URL, store)
        .env(CHILD_ROLE, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn runs(store: &str) -> u64 {
    let runs: Option<u64> = query(store, redis::cmd("GET").arg("runs")).await;
    runs.unwrap_or(0)
}

/// Four processes of a fleet call the cold `report` on `store`: it runs once.
async fn four_processes_compute_once(store: &str) {
    let children: Vec<Child> = (0..4).map(|_| spawn(store, "compute")).collect();
    let mut results = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let result = stdout
            .split("result=")
            .nth(1)
            .and_then(|r| r.lines().next())
            .map(str::to_owned);
        results.push(result.expect(&stdout));
    }
    assert_eq!(runs(store).await, 1, "four processes, one computation");
    assert!(results.iter().all(|r| r == "report #1"), "{results:?}");
}

#[tokio::test]
async fn one_process_in_the_fleet_computes_a_cold_key() {
    if let (Ok(url), Ok(role)) = (std::env::var(CHILD_URL), std::env::var(CHILD_ROLE)) {
        child(&url, &role).await;
        return;
    }
    let server = RedisServer::start();
    four_processes_compute_once(&server.url(0)).await;
}

#[tokio::test]
async fn one_process_in_a_cluster_fleet_computes_a_cold_key() {
    let cluster = RedisCluster::start();
    four_processes_compute_once(&cluster.seeds().join(",")).await;
}

#[tokio::test]
async fn a_killed_holder_s_lease_expires_and_the_others_complete() {
    let server = RedisServer::start();
    let mut holder = spawn(&server.url(0), "stuck");
    let mut conn = server.connect(0).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let held: bool = redis::cmd("EXISTS")
            .arg("cachette#lock:report")
            .query_async(&mut conn)
            .await
            .unwrap();
        // Killed once its computation has counted its run: killed between
        // taking the lease and counting, it would leave this process's
        // computation the first.
        if held && runs(&server.url(0)).await == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the holder never took the lease and started computing"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    holder.kill().unwrap();
    holder.wait().unwrap();

    server.cache().await.install();
    let result = report(&server.url(0), 0).await;
    assert_eq!(
        result, "report #2",
        "computed here once the dead holder's lease expired"
    );
    assert_eq!(runs(&server.url(0)).await, 2);
}
