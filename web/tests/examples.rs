//! The guide's use cases as a user runs them: each example on the memory
//! backend, and on a Redis the test starts, checked by what it prints.

use std::path::PathBuf;
use std::process::Command;

/// An example's binary, built beside this test by `cargo test` / `cargo nextest run`.
fn example(name: &str) -> Command {
    let mut path: PathBuf = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    let binary = path.join("examples").join(name);
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build --examples`",
        binary.display()
    );
    let mut command = Command::new(binary);
    command
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER_URLS");
    command
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `name` on memory, then on a fresh Redis, checking each output.
fn on_both(name: &str, check: impl Fn(&str)) {
    check(&run(&mut example(name)));
    let server = support::RedisServer::start();
    check(&run(example(name).env("REDIS_URL", server.url(0))));
}

#[test]
fn api_route_computes_each_route_once() {
    on_both("api_route", |out| {
        assert!(
            out.contains("x-cache: MISS") && out.contains("x-cache: HIT"),
            "{out}"
        );
        assert!(out.ends_with("handler runs: 2\n"), "{out}");
    });
}

#[test]
fn db_query_misses_then_hits_the_same_stats() {
    on_both("db_query", |out| {
        let stats: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_once("OrderStats").map(|(_, s)| s))
            .collect();
        assert!(out.starts_with("miss:") && out.contains("\nhit:"), "{out}");
        assert_eq!(stats.len(), 2, "{out}");
        assert_eq!(stats[0].trim(), stats[1].trim(), "{out}");
        assert!(out.contains("order_count: 100"), "{out}");
    });
}

#[test]
fn permissions_change_with_the_group() {
    on_both("permissions", |out| {
        assert!(
            out.contains("user 3 made admin: [\"orders:read\", \"orders:write\", \"users:admin\"]"),
            "{out}"
        );
        assert!(out.ends_with("database queries: 2\n"), "{out}");
        // The page: one query for the nine users not cached, then none.
        assert!(
            out.contains("page query for users [1, 2, 4, 5, 6, 7, 8, 9, 10]\n"),
            "{out}"
        );
        assert!(out.contains("page again (every user cached): user 3: [\"orders:read\", \"orders:write\", \"users:admin\"]"), "{out}");
        assert!(out.contains("page queries: 1\n"), "{out}");
    });
}

#[test]
fn external_api_is_asked_once_and_failover_covers_an_outage() {
    on_both("external_api", |out| {
        // Kept for the upstream's `max-age` (1 s): five calls, one request...
        assert_eq!(out.matches("(max-age 1)").count(), 5, "{out}");
        assert!(out.contains("upstream requests: 1\n"), "{out}");
        // ...then asked again once it passed...
        assert!(
            out.contains("after max-age: Ok(\"items of page 1 (answer #2)\")"),
            "{out}"
        );
        // ...and the last good answer covers an outage.
        assert!(
            out.contains("upstream down: Ok(\"items of page 1 (answer #2)\")"),
            "{out}"
        );
        assert_eq!(out.matches("upstream requests: 2").count(), 2, "{out}");
    });
}

#[test]
fn templates_cache_a_page_and_a_fragment() {
    on_both("templates", |out| {
        assert!(out.contains("GET /           x-cache: HIT"), "{out}");
        assert!(
            out.ends_with("home renders: 1, sidebar renders: 1\n"),
            "{out}"
        );
    });
}

#[test]
fn updates_invalidate_what_they_changed() {
    on_both("invalidate_on_update", |out| {
        assert!(
            out.contains("before: OrderStats { order_count: 10, total_spent: 515.0 }, user 7"),
            "{out}"
        );
        assert!(
            out.contains("after:  OrderStats { order_count: 11, total_spent: 615.0 }, Ada"),
            "{out}"
        );
    });
}

#[test]
fn a_version_bump_drops_every_product_entry() {
    on_both("versioned", |out| {
        assert!(out.contains(": queries 2\n"), "{out}");
        assert!(out.ends_with(": queries 4\n"), "{out}");
    });
}

/// The value of the Prometheus line that begins with `series`.
fn sample(out: &str, series: &str) -> Option<u64> {
    out.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn metrics_counts_each_call_by_result_on_the_scrape() {
    on_both("metrics", |out| {
        let requests = |result: &str| {
            sample(
                out,
                &format!(
                    "cachette_requests_total{{cache=\"shop\",function=\"metrics::product\",result=\"{result}\"}}"
                ),
            )
        };
        assert_eq!(requests("hit"), Some(3), "{out}");
        assert_eq!(requests("miss"), Some(3), "{out}");
        assert_eq!(
            sample(
                out,
                "cachette_invalidations_total{cache=\"shop\",kind=\"key\"}"
            ),
            Some(1),
            "{out}"
        );
        assert!(out.ends_with("computations: 3\n"), "{out}");
    });
}
