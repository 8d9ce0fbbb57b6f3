//! The guide's expensive API route, cached for 15 minutes two ways: the
//! data behind it with `#[cached]`, and a whole route with `CacheLayer`.
//! Serves on loopback and calls itself with a real HTTP client.
//!
//! `cargo run -p cachette-web --example api_route` (memory; Redis with `REDIS_URL`).

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use cachette::cached;
use cachette::http::CacheLayer;

static RUNS: AtomicU64 = AtomicU64::new(0);

/// An expensive computation behind the API, cached for 15 minutes.
#[cached(timeout = 900, key = "api:stats:{user_id}")]
async fn stats(user_id: u32) -> String {
    RUNS.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    format!("{{\"user_id\":{user_id},\"orders\":12}}")
}

async fn stats_route(Path(user_id): Path<u32>) -> String {
    stats(user_id).await
}

/// A whole report page, cached by the layer.
async fn report() -> String {
    RUNS.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    "<h1>Monthly report</h1>".to_owned()
}

#[tokio::main]
async fn main() {
    cachette_web::cache("api").await.install();
    let router = Router::new()
        .route("/api/stats/{user_id}", get(stats_route))
        .merge(
            Router::new()
                .route("/report", get(report))
                .layer(CacheLayer::new(Duration::from_secs(15 * 60))),
        );
    let base = format!("http://{}", cachette_web::serve(router).await);
    let client = reqwest::Client::new();
    for path in ["/api/stats/42", "/api/stats/42", "/report", "/report"] {
        let start = Instant::now();
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        let outcome = response
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        let body = response.text().await.unwrap();
        println!(
            "GET {path:<15} {:>8.1?}  x-cache: {outcome:<4}  {body}",
            start.elapsed()
        );
    }
    println!("handler runs: {}", RUNS.load(SeqCst));
}
