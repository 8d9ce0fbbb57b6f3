//! The `cachette` binary against a real `redis-server`: stats, inspect,
//! bump, invalidate-tag, delete-pattern and clear, and clear messages with
//! a non-zero exit on bad input.
#![cfg(feature = "cli")]

use std::io::Write as _;
use std::process::Command;
use std::time::Duration;

use cachette::{Cache, Scope};
use support::RedisServer;

const HOUR: Duration = Duration::from_secs(3600);

/// The `cachette` binary, as cargo built it for this test.
fn cachette() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cachette"))
}

/// What the binary reads on its standard input: a pipe, written and closed
/// before it starts (without it, its standard input is empty).
trait WriteStdin {
    fn write_stdin(&mut self, input: &str) -> &mut Self;
}

impl WriteStdin for Command {
    fn write_stdin(&mut self, input: &str) -> &mut Self {
        let (reader, mut writer) = std::io::pipe().unwrap();
        writer.write_all(input.as_bytes()).unwrap();
        self.stdin(reader)
    }
}

fn cli(server: &RedisServer) -> Command {
    let mut command = cachette();
    command
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER_URLS")
        .args(["--url", &server.url(0), "--prefix", "shop"]);
    command
}

/// What a successful run printed.
fn stdout(command: &mut Command) -> String {
    let out = command.output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// What a failing run said: exit code and stderr.
fn failure(command: &mut Command) -> (i32, String) {
    let out = command.output().unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code().unwrap_or(-1), stderr)
}

async fn shop(server: &RedisServer) -> Cache {
    Cache::builder()
        .redis_url(server.url(0))
        .key_prefix("shop")
        .build()
        .await
        .unwrap()
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
struct Product {
    name: String,
    price: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_keys_and_bytes_by_group() {
    let server = RedisServer::start();
    let cache = shop(&server).await;
    for id in 0..30 {
        cache
            .set(&format!("user:{id}"), &format!("user {id}"), HOUR)
            .await
            .unwrap();
    }
    cache
        .set("report:big", &"x".repeat(50_000), None)
        .await
        .unwrap();
    let scope = Scope::new().namespace("catalog").tag("books");
    cache
        .set_in("product:1", &"Dune", HOUR, &scope)
        .await
        .unwrap();
    // Another prefix is not counted.
    let other = cache.with_prefix("admin").unwrap();
    other.set("user:1", "admin", HOUR).await.unwrap();

    let out = stdout(cli(&server).args(["stats", "--json"]));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let group = |name: &str| {
        report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no group {name}: {report}"))
    };
    assert_eq!(group("user")["keys"], 30);
    assert_eq!(group("report")["keys"], 1);
    assert_eq!(group("product")["keys"], 1);
    assert_eq!(group("shop#ns")["keys"], 1, "the namespace's version key");
    assert_eq!(report["scanned"], 34);
    assert_eq!(report["largest"][0]["key"], "shop:report:big");
    assert!(
        report["largest"][0]["bytes"].as_u64().unwrap() < 50_000,
        "stored compressed"
    );
    assert_eq!(report["ttl"]["no expiry"], 3, "report and two version keys");
    assert_eq!(report["ttl"]["< 1 h"], 31, "an hour left, less a moment");

    let table = stdout(cli(&server).arg("stats"));
    assert!(table.contains("34 keys under \"shop\" scanned"), "{table}");
    assert!(table.contains("shop:report:big"), "{table}");
    // A sample bounds the scan.
    let sampled = stdout(cli(&server).args(["stats", "--json", "--sample", "5"]));
    let sampled: serde_json::Value = serde_json::from_str(&sampled).unwrap();
    assert_eq!(sampled["scanned"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_shows_what_is_stored_and_whether_its_stamps_are_current() {
    let server = RedisServer::start();
    let cache = shop(&server).await;
    let scope = Scope::new().namespace("catalog");
    let dune = Product {
        name: "Dune".into(),
        price: 1999,
    };
    cache
        .set_in("product:1", &dune, HOUR, &scope)
        .await
        .unwrap();
    let out = stdout(cli(&server).args(["inspect", "product:1", "--json"]));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["key"], "shop:product:1");
    assert_eq!(report["format"], "value");
    assert_eq!(report["value"]["name"], "Dune");
    assert_eq!(report["value"]["price"], 1999);
    assert_eq!(report["stamps"][0]["current"], true);
    assert_eq!(report["stamps"][0]["version_key"], "shop#ns:catalog");
    assert!(report["lifetime"]["left_ms"].as_u64().unwrap() <= 3_600_000);

    stdout(cli(&server).args(["bump", "catalog"]));
    assert_eq!(
        cache.get_in::<Product>("product:1", &scope).await.unwrap(),
        None
    );
    let text = stdout(cli(&server).args(["inspect", "shop:product:1"]));
    assert!(text.contains("stale:") && text.contains("true"), "{text}");

    cache.incr("visits", 5).await.unwrap();
    let counter = stdout(cli(&server).args(["inspect", "visits"]));
    assert!(counter.contains("format:          counter"), "{counter}");
    assert!(
        counter
            .lines()
            .any(|l| l.starts_with("value:") && l.ends_with(" 5")),
        "{counter}"
    );
    cache.invalidate("product:1").await.unwrap();
    let dead = stdout(cli(&server).args(["inspect", "product:1"]));
    assert!(dead.contains("tombstone"), "{dead}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_are_not_cachettes_are_reported_not_decoded() {
    let server = RedisServer::start();
    let mut conn = server.connect(0).await;
    let () = redis::cmd("SET")
        .arg("shop:foreign")
        .arg("plain text")
        .query_async(&mut conn)
        .await
        .unwrap();
    let () = redis::cmd("HSET")
        .arg("shop:hash")
        .arg("f")
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (code, message) = failure(cli(&server).args(["inspect", "foreign"]));
    assert_eq!(code, 1);
    assert!(message.contains("not a cachette entry"), "{message}");
    let (_, message) = failure(cli(&server).args(["inspect", "hash"]));
    assert!(
        message.contains("Redis hash, not a cachette entry"),
        "{message}"
    );
    let (_, message) = failure(cli(&server).args(["inspect", "absent"]));
    assert!(message.contains("no key \"shop:absent\""), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_tag_delete_pattern_and_clear_act_on_the_prefix_only() {
    let server = RedisServer::start();
    let cache = shop(&server).await;
    let books = Scope::new().tag("books");
    cache
        .set_in("product:1", "Dune", HOUR, &books)
        .await
        .unwrap();
    for id in 0..5 {
        cache.set(&format!("user:{id}"), "u", HOUR).await.unwrap();
    }
    cache.set("order:1", "o", HOUR).await.unwrap();
    let admin = cache.with_prefix("admin").unwrap();
    admin.set("user:1", "kept", HOUR).await.unwrap();

    let out = stdout(cli(&server).args(["invalidate-tag", "books"]));
    assert!(out.contains("tag \"books\" bumped"), "{out}");
    assert_eq!(
        cache.get_in::<String>("product:1", &books).await.unwrap(),
        None
    );

    let out = stdout(cli(&server).args(["delete-pattern", "user:*", "--yes"]));
    assert!(out.contains("removed 5 entries"), "{out}");
    assert!(cache.contains("order:1").await.unwrap());

    // Without --yes, anything but `yes` removes nothing.
    let (code, message) = failure(cli(&server).arg("clear").write_stdin("no\n"));
    assert_eq!(code, 1);
    assert!(message.contains("nothing removed"), "{message}");
    assert!(cache.contains("order:1").await.unwrap());
    stdout(cli(&server).arg("clear").write_stdin("yes\n"));
    assert!(!cache.contains("order:1").await.unwrap());
    assert_eq!(
        admin.get::<String>("user:1").await.unwrap().as_deref(),
        Some("kept")
    );
}

#[test]
fn bad_input_is_a_clear_message_and_a_non_zero_exit() {
    let mut unknown = cachette();
    let (code, message) = failure(unknown.args(["--url", "redis://127.0.0.1:1", "explode"]));
    assert_eq!(code, 2);
    assert!(
        message.contains("unrecognized subcommand 'explode'"),
        "{message}"
    );

    let port = support::free_port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    for args in [
        &["stats"][..],
        &["inspect", "k"],
        &["bump", "n"],
        &["clear", "--yes"],
    ] {
        let mut down = cachette();
        let (code, message) = failure(down.args(["--url", &url]).args(args));
        assert_eq!(code, 1, "{args:?}");
        assert!(
            message.contains(&format!("cannot reach redis://…@127.0.0.1:{port}")),
            "{message}"
        );
        assert!(
            !message.contains("hunter2"),
            "the password stays hidden: {message}"
        );
    }

    let mut nowhere = cachette();
    let (code, message) = failure(
        nowhere
            .env_remove("REDIS_URL")
            .env_remove("REDIS_CLUSTER_URLS")
            .arg("stats"),
    );
    assert_eq!(code, 1);
    assert!(message.contains("no Redis given"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_stats_scan_every_master_and_inspect_finds_the_slot() {
    let _session = support::ClusterSession::start();
    let cluster = support::current_cluster();
    let cache = Cache::builder()
        .redis_cluster(cluster.seeds())
        .key_prefix("shop")
        .build()
        .await
        .unwrap();
    let scope = Scope::new().namespace("catalog");
    for id in 0..40 {
        cache
            .set_in(&format!("product:{id}"), &id, HOUR, &scope)
            .await
            .unwrap();
    }
    let run = |args: &[&str]| {
        let mut command = cachette();
        command
            .env_remove("REDIS_URL")
            .env("REDIS_CLUSTER_URLS", cluster.seeds().join(","))
            .args(["--prefix", "shop"])
            .args(args);
        stdout(&mut command)
    };
    let report: serde_json::Value = serde_json::from_str(&run(&["stats", "--json"])).unwrap();
    assert_eq!(
        report["scanned"], 41,
        "40 entries and the version key, over every master"
    );
    let inspected: serde_json::Value =
        serde_json::from_str(&run(&["inspect", "product:7", "--json"])).unwrap();
    assert_eq!(inspected["value"], 7);
    assert_eq!(inspected["stamps"][0]["current"], true);
    run(&["bump", "catalog"]);
    assert_eq!(
        cache.get_in::<u32>("product:7", &scope).await.unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_sentinel_the_commands_reach_the_master_the_sentinels_name() {
    let topology = support::RedisSentinel::start();
    let cache = Cache::builder()
        .redis_sentinel(topology.urls(), topology.master())
        .key_prefix("shop")
        .build()
        .await
        .unwrap();
    let scope = Scope::new().namespace("catalog");
    for id in 0..10 {
        cache
            .set_in(&format!("product:{id}"), &id, HOUR, &scope)
            .await
            .unwrap();
    }
    let base = || {
        let mut command = cachette();
        command
            .env_remove("REDIS_URL")
            .env_remove("REDIS_CLUSTER_URLS")
            .env_remove("REDIS_SENTINEL_URLS")
            .env_remove("REDIS_SENTINEL_MASTER")
            .args(["--prefix", "shop"]);
        command
    };
    // `--sentinel` and `--master`, the sentinels' password and the data nodes' own.
    let inspected: serde_json::Value = serde_json::from_str(&stdout(
        base()
            .args(["--sentinel", &topology.urls().join(",")])
            .args(["--master", &topology.master()])
            .args(["inspect", "product:7", "--json"]),
    ))
    .unwrap();
    assert_eq!(inspected["value"], 7);
    // The environment, and a command that writes through a cache.
    let from_env = || {
        let mut command = base();
        command
            .env("REDIS_SENTINEL_URLS", topology.urls().join(","))
            .env("REDIS_SENTINEL_MASTER", topology.master());
        command
    };
    let report: serde_json::Value =
        serde_json::from_str(&stdout(from_env().args(["stats", "--json"]))).unwrap();
    assert_eq!(report["scanned"], 11, "10 entries and the version key");
    stdout(from_env().args(["bump", "catalog"]));
    assert_eq!(
        cache.get_in::<u32>("product:7", &scope).await.unwrap(),
        None
    );
    // Without the master's name: a clear message.
    let (code, message) = failure(base().args(["--sentinel", &topology.urls()[0], "stats"]));
    assert_eq!(code, 1);
    assert!(message.contains("--master"), "{message}");
}
