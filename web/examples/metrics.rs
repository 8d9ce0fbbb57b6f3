//! The guide's last advice, "monitor cache usage", with Prometheus: the
//! cache's figures (feature `metrics`) rendered on `/metrics` by the
//! `metrics-exporter-prometheus` recorder, next to a cached API route.
//! Serves on loopback, calls its route, then scrapes its own `/metrics`
//! and prints cachette's lines.
//!
//! `cargo run -p cachette-web --example metrics` (memory; Redis with `REDIS_URL`).

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use cachette::cached;
use metrics_exporter_prometheus::PrometheusBuilder;

static RUNS: AtomicU64 = AtomicU64::new(0);

/// A product page's data, cached for 15 minutes.
#[cached(timeout = 900, key = "product:{id}")]
async fn product(id: u32) -> String {
    RUNS.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    format!("{{\"id\":{id},\"name\":\"Product {id}\"}}")
}

async fn product_route(Path(id): Path<u32>) -> String {
    product(id).await
}

#[tokio::main]
async fn main() {
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of the process");
    let cache = cachette_web::cache("shop").await;
    cache.clone().install();
    let router = Router::new()
        .route("/products/{id}", get(product_route))
        .route("/metrics", get(move || async move { prometheus.render() }));
    let base = format!("http://{}", cachette_web::serve(router).await);
    let client = reqwest::Client::new();
    for id in [1, 1, 1, 2, 2, 3] {
        client
            .get(format!("{base}/products/{id}"))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }
    cache.invalidate("product:1").await.unwrap();
    let scraped = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut lines: Vec<&str> = scraped
        .lines()
        .filter(|line| line.starts_with("cachette_") && !line.contains("_seconds"))
        .collect();
    lines.sort_unstable();
    for line in lines {
        println!("{line}");
    }
    println!("computations: {}", RUNS.load(SeqCst));
}
