//! The local tier against writers in other OS processes (each a child run
//! of this test binary): every write, namespace bump, tag bump and
//! invalidation of the child reaches this process's tier in time, under
//! its own prefix or a handle's; two caches on one real Redis per test.

use std::time::{Duration, Instant};

use cachette::{Cache, Scope};
use support::{RedisServer, eventually};

#[path = "local_tier/shared.rs"]
mod shared;

use shared::{MINUTE, plain, tiered, warm};

const CHILD_URL: &str = "CACHETTE_TEST_LOCAL_WRITER_URL";
const CHILD_TEST: &str = "a_writer_in_another_process_is_never_served_stale";
const ROUNDS: u64 = 2_400;

/// The writer: the test `name` of this binary run in a child process, with
/// `var` set to `server`'s URL; the child and the lines it prints.
fn spawn_writer(
    name: &str,
    var: &str,
    server: &RedisServer,
) -> (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) {
    use tokio::io::AsyncBufReadExt;

    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(var, server.url(0))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// The round a writer's line says is done (`round N`; the first round
/// shares its line with the test harness' own words).
fn round_done(line: &str) -> Option<u64> {
    line.rsplit_once("round ")
        .and_then(|(_, n)| n.trim().parse().ok())
}

/// Two OS processes: a child writes the row 2 400 times (each fourth write
/// after a namespace bump, a tag bump, or the key's invalidation) and prints each
/// round once its write returned; this process, with a local tier, must
/// then read that round or a later one. A value older than the last
/// printed round, still served a second after it, counts as stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_in_another_process_is_never_served_stale() {
    let scope = Scope::new().namespace("rows").tag("row:1");
    if let Ok(url) = std::env::var(CHILD_URL) {
        let a = Cache::builder().redis_url(url).build().await.unwrap();
        for round in 1..=ROUNDS {
            match round % 4 {
                0 => drop(a.invalidate_namespace("rows").await.unwrap()),
                1 => drop(a.invalidate_tag("row:1").await.unwrap()),
                2 => drop(a.invalidate("row").await.unwrap()),
                _ => {}
            }
            a.set_in("row", &round, MINUTE, &scope).await.unwrap();
            println!("round {round}");
        }
        return;
    }
    let server = RedisServer::start();
    let b = tiered(&server).await;
    let writer = plain(&server).await;
    writer.set_in("row", &0_u64, MINUTE, &scope).await.unwrap();
    warm(&b, "row", &scope).await;
    let (mut child, mut lines) = spawn_writer(CHILD_TEST, CHILD_URL, &server);
    let (mut rounds, mut stale, mut slowest) = (0, 0, Duration::ZERO);
    while let Some(line) = lines.next_line().await.unwrap() {
        let Some(done) = round_done(&line) else {
            continue;
        };
        rounds += 1;
        let seen_at = Instant::now();
        loop {
            if b.get_in::<u64>("row", &scope)
                .await
                .unwrap()
                .is_some_and(|v| v >= done)
            {
                break;
            }
            if seen_at.elapsed() > Duration::from_secs(1) {
                stale += 1;
                break;
            }
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        slowest = slowest.max(seen_at.elapsed());
    }
    assert!(child.wait().await.unwrap().success());
    eprintln!(
        "local tier, two processes: {rounds} rounds, slowest catch-up {slowest:?}, local hits {}",
        b.stats().local_hits
    );
    assert_eq!(rounds, ROUNDS);
    assert_eq!(stale, 0);
}

/// Reads `key` through `cache` until it is `want`; how long that took, or
/// `None` when it was still something else after a second (a stale read).
async fn caught_up(cache: &Cache, key: &str, want: u64) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if cache
            .get::<u64>(key)
            .await
            .unwrap()
            .is_some_and(|v| v >= want)
        {
            return Some(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(1) {
            return None;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_under_another_prefix_is_tracked_too() {
    let server = RedisServer::start();
    let (other, near) = (plain(&server).await, tiered(&server).await);
    let (other, near) = (
        other.with_prefix("v2").unwrap(),
        near.with_prefix("v2").unwrap(),
    );
    other.set("k", &1_u64, MINUTE).await.unwrap();
    warm(&near, "k", &Scope::new()).await;
    assert_eq!(near.get::<u64>("k").await.unwrap(), Some(1));
    other.set("k", &2_u64, MINUTE).await.unwrap();
    assert!(
        caught_up(&near, "k", 2).await.is_some(),
        "the entry kept under the handle's prefix was never invalidated"
    );
    // Kept and tracked again: served locally, and the next change reaches it too.
    warm(&near, "k", &Scope::new()).await;
    other.delete("k").await.unwrap();
    eventually("the deletion reaches the tier", async || {
        near.get::<u64>("k").await.unwrap().is_none()
    })
    .await;
}

const PREFIX_CHILD_URL: &str = "CACHETTE_TEST_PREFIX_WRITER_URL";
const PREFIX_CHILD_TEST: &str = "a_writer_in_another_process_reaches_a_handle_under_another_prefix";
const PREFIX_ROUNDS: u64 = 300;

/// Two OS processes: the child writes `k` under the prefix `v2` once per
/// round and prints the round; this process reads it through a
/// `with_prefix("v2")` handle of a cache with a local tier, and must read
/// that round or a later one within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_in_another_process_reaches_a_handle_under_another_prefix() {
    if let Ok(url) = std::env::var(PREFIX_CHILD_URL) {
        let a = Cache::builder().redis_url(url).build().await.unwrap();
        let a = a.with_prefix("v2").unwrap();
        for round in 1..=PREFIX_ROUNDS {
            a.set("k", &round, MINUTE).await.unwrap();
            println!("round {round}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        return;
    }
    let server = RedisServer::start();
    let near = tiered(&server).await.with_prefix("v2").unwrap();
    plain(&server)
        .await
        .with_prefix("v2")
        .unwrap()
        .set("k", &0_u64, MINUTE)
        .await
        .unwrap();
    warm(&near, "k", &Scope::new()).await;
    let local_before = near.stats().local_hits;
    let (mut child, mut lines) = spawn_writer(PREFIX_CHILD_TEST, PREFIX_CHILD_URL, &server);
    let (mut rounds, mut stale) = (0, 0);
    while let Some(line) = lines.next_line().await.unwrap() {
        let Some(done) = round_done(&line) else {
            continue;
        };
        rounds += 1;
        if caught_up(&near, "k", done).await.is_none() {
            stale += 1;
        }
    }
    assert!(child.wait().await.unwrap().success());
    assert_eq!(rounds, PREFIX_ROUNDS);
    assert_eq!(
        stale, 0,
        "reads through the prefixed handle served stale values"
    );
    // The handle's entries are kept locally (not merely bypassed).
    warm(&near, "k", &Scope::new()).await;
    assert!(near.stats().local_hits > local_before);
    assert_eq!(near.get::<u64>("k").await.unwrap(), Some(PREFIX_ROUNDS));
}
