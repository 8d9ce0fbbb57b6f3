//! The examples, run as a user runs them: on memory, on a Redis the test
//! starts, and with `REDIS_URL` pointing at a closed port.

use std::path::PathBuf;
use std::process::{Command, Output};

use support::{RedisCluster, RedisServer, free_port};

fn quickstart() -> Command {
    example("quickstart")
}

/// An example's binary, built beside this test by `cargo test` / `cargo nextest run`.
fn example(name: &str) -> Command {
    let mut path: PathBuf = std::env::current_exe().unwrap();
    path.pop(); // the test binary
    if path.ends_with("deps") {
        path.pop();
    }
    let binary = path
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build --examples`",
        binary.display()
    );
    let mut command = Command::new(binary);
    command.env_remove("REDIS_URL").env("NO_COLOR", "1");
    command
}

fn run(command: &mut Command) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    let stdout = String::from_utf8(stdout).unwrap();
    assert!(
        status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&stderr)
    );
    stdout
}

/// The outcome column of each call the quickstart prints, in order.
fn outcomes(out: &str) -> Vec<(&str, &str)> {
    out.lines()
        .filter_map(|line| {
            let (call, rest) = line.split_once(' ')?;
            let outcome = rest.split_whitespace().next()?;
            matches!(outcome, "hit" | "miss").then_some((call, outcome))
        })
        .collect()
}

#[test]
fn runs_on_memory_with_hits_and_invalidations() {
    let out = run(&mut quickstart());
    assert!(out.contains("backend: Memory"), "{out}");
    assert_eq!(
        outcomes(&out),
        [
            ("user_order_stats(42)", "miss"),
            ("user_order_stats(42)", "hit"),
            ("user_order_stats(42)", "miss"),
            ("products(\"books\")", "miss"),
            ("products(\"games\")", "miss"),
            ("products(\"books\")", "hit"),
            ("products(\"books\")", "miss"),
            ("products(\"games\")", "miss"),
        ],
        "{out}"
    );
    assert!(
        out.contains("hits: 2, misses: 6, backend errors: 0"),
        "{out}"
    );
}

#[tokio::test]
async fn runs_on_redis_from_redis_url_and_leaves_its_entries_there() {
    let server = RedisServer::start();
    let out = run(quickstart().env("REDIS_URL", server.url(2)));
    assert!(out.contains("backend: Redis"), "{out}");
    assert!(
        out.contains("hits: 2, misses: 6, backend errors: 0"),
        "{out}"
    );
    let mut conn = server.connect(2).await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("cachette:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "cachette:products:books",
            "cachette:products:games",
            "cachette:user_order_stats:42"
        ]
    );
}

#[test]
fn runs_on_a_cluster_from_redis_cluster_urls_which_win_over_redis_url() {
    let cluster = RedisCluster::start();
    let out = run(quickstart()
        .env("REDIS_CLUSTER_URLS", cluster.seeds().join(","))
        .env("REDIS_URL", format!("redis://127.0.0.1:{}/0", free_port())));
    assert!(out.contains("backend: Redis(RedisCluster"), "{out}");
    assert!(
        out.contains("hits: 2, misses: 6, backend errors: 0"),
        "{out}"
    );
}

#[test]
fn completes_with_every_call_a_miss_when_redis_is_unreachable() {
    let out = run(quickstart().env("REDIS_URL", format!("redis://127.0.0.1:{}/0", free_port())));
    let outcomes = outcomes(&out);
    assert_eq!(outcomes.len(), 8, "{out}");
    assert!(outcomes.iter().all(|&(_, o)| o == "miss"), "{out}");
    assert!(out.contains("hits: 0, misses: 8"), "{out}");
}

#[test]
fn the_installed_cache_is_the_global_one() {
    let cache = cachette::Cache::builder().key_prefix("installed");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        cache.build().await.unwrap().install();
        assert_eq!(cachette::cache().key_for("k"), "installed:k");
        cachette::cache().set("k", "v", None).await.unwrap();
        let again = cachette::cache();
        assert_eq!(
            again.get::<String>("k").await.unwrap().as_deref(),
            Some("v")
        );
    });
}

/// Every pattern of the guide example computes once, then hits.
fn assert_guide_output(out: &str) {
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("slow work")).collect();
    assert_eq!(lines.len(), 18, "{out}");
    for pair in lines.chunks(2) {
        assert!(
            pair[0].contains(" first ") && pair[0].ends_with("slow work: 1"),
            "{out}"
        );
        assert!(
            pair[1].contains(" again ") && pair[1].ends_with("slow work: 0"),
            "{out}"
        );
    }
}

#[test]
fn the_guide_example_caches_every_use_case_in_memory() {
    assert_guide_output(&run(&mut example("guide")));
}

#[test]
fn the_guide_example_caches_every_use_case_in_redis() {
    let server = RedisServer::start();
    assert_guide_output(&run(example("guide").env("REDIS_URL", server.url(0))));
}
