//! Cached pages over real HTTP on loopback: one axum route answered by its
//! handler, behind cachette's `CacheLayer` (memory), and behind a peer
//! layer (`axum-response-cache`), measured in the same run with a real
//! client (reqwest): hits per second with 64 concurrent requests, and the
//! median latency of sequential ones. A last row is the floor of any cached
//! page: the same bytes returned at once by a handler, from a static. Each
//! measurement runs in seven rounds, rows interleaved (forward, then
//! backward), and the median is kept; the ratios of two rows are taken
//! within each round, then their median and spread are printed.
//!
//! ```sh
//! cargo bench -p cachette-web --bench http
//! ```
//!
//! With `HTTP_BENCH_CALLS=<row>:<n>` (`handler`, `cachette`, `peer` or
//! `floor`), it instead calls that row's router `n` times in process, with
//! no socket and no client, and prints nothing: run under callgrind at two
//! counts, the difference is the instructions of one request through the
//! router, its layer and the body.

#![allow(clippy::cast_precision_loss)] // statistics over counts and durations

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::Html;
use axum::routing::get;

const ROUNDS: usize = 7;
const TASKS: usize = 64;
const FOR: Duration = Duration::from_secs(1);
const SEQUENTIAL: usize = 1_000;

/// The 4 KiB of the page.
fn body() -> String {
    format!("<html><body>{}</body></html>", "report row ".repeat(372))
}

/// A page that costs its handler 2 ms (a query, a render) and weighs 4 KiB.
async fn page() -> Html<String> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    Html(body())
}

/// The same bytes at no cost: what a cached page cannot beat.
async fn constant() -> Html<&'static str> {
    static BODY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    Html(BODY.get_or_init(body))
}

async fn throughput(client: &reqwest::Client, url: &str) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (client, url, stop, done) = (
                client.clone(),
                url.to_owned(),
                Arc::clone(&stop),
                Arc::clone(&done),
            );
            tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    let body = client
                        .get(&url)
                        .send()
                        .await
                        .unwrap()
                        .bytes()
                        .await
                        .unwrap();
                    assert!(body.len() > 4000);
                    done.fetch_add(1, Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (start, before) = (Instant::now(), done.load(Relaxed));
    tokio::time::sleep(FOR).await;
    let requests = done.load(Relaxed) - before;
    let elapsed = start.elapsed();
    stop.store(true, Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    requests as f64 / elapsed.as_secs_f64()
}

async fn p50(client: &reqwest::Client, url: &str) -> f64 {
    let mut samples = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let start = Instant::now();
        client.get(url).send().await.unwrap().bytes().await.unwrap();
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `n` requests to `router`'s `/page`, in process, each body read whole.
async fn calls(router: Router, n: usize) {
    use tower_service::Service as _;
    let mut router = router;
    for _ in 0..n {
        let request = axum::http::Request::get("/page")
            .header("host", "shop.example")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.call(request).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(body.len() > 4000);
    }
}

fn main() {
    let calls_of = std::env::var("HTTP_BENCH_CALLS").ok();
    let runtime = if calls_of.is_some() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2);
        builder
    }
    .enable_all()
    .build()
    .unwrap();
    runtime.block_on(async {
        let rows = rows();
        match calls_of {
            Some(spec) => {
                let (row, n) = spec.split_once(':').expect("HTTP_BENCH_CALLS=<row>:<n>");
                let n = n.parse().expect("a count of calls");
                let index = ["handler", "cachette", "peer", "floor"]
                    .iter()
                    .position(|name| *name == row)
                    .expect("a row: handler, cachette, peer or floor");
                let (_, router) = rows.into_iter().nth(index).unwrap();
                calls(router, n).await;
            }
            None => over_http(rows).await,
        }
    });
}

fn rows() -> [(&'static str, Router); 4] {
    let cache = cachette::Cache::memory();
    [
        ("handler, no cache", Router::new().route("/page", get(page))),
        (
            "cachette CacheLayer (memory)",
            Router::new()
                .route("/page", get(page))
                .layer(cachette::http::CacheLayer::new(Duration::from_secs(600)).cache(cache)),
        ),
        (
            "axum-response-cache 0.5",
            Router::new().route("/page", get(page)).layer(
                axum_response_cache::CacheLayer::with_lifespan(Duration::from_secs(600)),
            ),
        ),
        (
            "the same bytes from a static (the floor)",
            Router::new().route("/page", get(constant)),
        ),
    ]
}

async fn over_http(rows: [(&'static str, Router); 4]) {
    let mut urls = Vec::new();
    for (name, router) in rows {
        urls.push((
            name,
            format!("http://{}/page", cachette_web::serve(router).await),
        ));
    }
    let client = reqwest::Client::new();
    let mut figures = vec![(Vec::new(), Vec::new()); urls.len()];
    for round in 0..ROUNDS {
        // Forward, then backward: no row always runs right after another.
        let mut order: Vec<usize> = (0..urls.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            figures[i].0.push(throughput(&client, &urls[i].1).await);
            figures[i].1.push(p50(&client, &urls[i].1).await);
        }
    }
    let base = median(figures[0].0.clone());
    println!(
        "| route /page (4 KiB, 2 ms handler) | {TASKS} requests at once (req/s) | ÷ handler | 1 at a time, p50 (µs) |"
    );
    println!("|---|---:|---:|---:|");
    for ((name, _), (rps, latency)) in urls.iter().zip(&figures) {
        let rps = median(rps.clone());
        println!(
            "| {name} | {rps:.0} | {:.2} | {:.0} |",
            rps / base,
            median(latency.clone())
        );
    }
    // Ratios of the same round (seconds apart), then their median and
    // spread: a machine's drift between rounds does not enter them.
    let ratio = |a: usize, b: usize| {
        let per_round: Vec<f64> = figures[a]
            .0
            .iter()
            .zip(&figures[b].0)
            .map(|(a, b)| a / b)
            .collect();
        let (low, high) = per_round
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
        format!("{:.2} ({low:.2}–{high:.2})", median(per_round))
    };
    println!(
        "per round, median (spread) of {ROUNDS}: cachette ÷ peer {}; cachette ÷ the floor {}; peer ÷ the floor {}",
        ratio(1, 2),
        ratio(1, 3),
        ratio(2, 3)
    );
}
