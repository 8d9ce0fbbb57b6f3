//! A derived key is the same in every process: an entry one process
//! computed is a hit in the next.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use cachette::{Cache, cached};
use serde::{Deserialize, Serialize};
use support::RedisServer;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Params {
    page: u32,
    filters: Vec<String>,
}

#[cached(timeout = 600)]
async fn fetch_external(endpoint: &str, params: &Params) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    format!(
        "{endpoint}?page={}&filters={}",
        params.page,
        params.filters.join(",")
    )
}

const CHILD_URL: &str = "CACHETTE_TEST_CHILD_REDIS_URL";
const THIS_TEST: &str = "the_same_call_hits_in_another_process";

async fn call_once(url: &str) -> usize {
    Cache::builder()
        .redis_url(url)
        .build()
        .await
        .unwrap()
        .install();
    let params = Params {
        page: 2,
        filters: vec!["new".into(), "sale".into()],
    };
    let body = fetch_external("https://api.example/items", &params).await;
    assert_eq!(body, "https://api.example/items?page=2&filters=new,sale");
    RUNS.load(Ordering::SeqCst)
}

#[tokio::test]
async fn the_same_call_hits_in_another_process() {
    if let Ok(url) = std::env::var(CHILD_URL) {
        // Run by the parent below: report how often the body ran here.
        println!("runs={}", call_once(&url).await);
        return;
    }
    let server = RedisServer::start();
    let child = || {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", THIS_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_URL, server.url(0))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        // libtest prints `test <name> ... ` on the same line, before ours.
        let runs = stdout
            .split("runs=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next());
        runs.map(str::to_owned).expect(&stdout)
    };
    assert_eq!(child(), "1", "the first process computes");
    assert_eq!(child(), "0", "a second process finds the entry");
    assert_eq!(call_once(&server.url(0)).await, 0, "and so does this one");
}
