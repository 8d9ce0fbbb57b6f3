//! The guide's external API: a real HTTP client (reqwest) behind
//! `#[cached]` with a derived key, in front of a local upstream that takes
//! 100 ms, allows 10 requests and can go down. Each answer is kept as long
//! as the upstream's `Cache-Control: max-age` allows (`timeout_from`).
//! Repeated calls reach it once; when it is down, `failover` serves the
//! last good answer.
//!
//! `cargo run -p cachette-web --example external_api` (memory; Redis with `REDIS_URL`).

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use cachette::cached;
use cachette_web::upstream::Upstream;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
struct UpstreamError(#[allow(dead_code)] String);

/// An answer and how long the upstream lets it be kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Items {
    body: String,
    max_age: u64,
}

/// The seconds of `max-age` in a `Cache-Control` header (0 without one: not kept).
fn max_age(response: &reqwest::Response) -> u64 {
    let header = response.headers().get(reqwest::header::CACHE_CONTROL);
    let directives = header.and_then(|value| value.to_str().ok()).unwrap_or("");
    directives
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|seconds| seconds.parse().ok())
        .unwrap_or(0)
}

/// No key: one is derived from the module, the name, and `base` and `page`.
/// Kept for the upstream's `max-age`, and an hour past it for failover.
#[cached(
    timeout_from = |items: &Items| Duration::from_secs(items.max_age),
    failover = 3600,
    skip(client)
)]
async fn fetch_items(
    client: &reqwest::Client,
    base: String,
    page: u32,
) -> Result<Items, UpstreamError> {
    let response = client
        .get(format!("{base}/items?page={page}"))
        .send()
        .await
        .map_err(|e| UpstreamError(e.to_string()))?;
    if !response.status().is_success() {
        return Err(UpstreamError(response.status().to_string()));
    }
    let max_age = max_age(&response);
    let body = response
        .text()
        .await
        .map_err(|e| UpstreamError(e.to_string()))?;
    Ok(Items { body, max_age })
}

#[tokio::main]
async fn main() {
    cachette_web::cache("external").await.install();
    let (upstream, address) = Upstream::start(Duration::from_millis(100), 10).await;
    let (client, base) = (reqwest::Client::new(), format!("http://{address}"));
    for _ in 0..5 {
        let start = Instant::now();
        let items = fetch_items(&client, base.clone(), 1).await;
        let kept = items.as_ref().map(|i| i.max_age).unwrap_or_default();
        let body = items.map(|i| i.body);
        println!("{:>8.1?}  {body:?} (max-age {kept})", start.elapsed());
    }
    println!("upstream requests: {}", upstream.served.load(SeqCst));
    // The answer's max-age passes: the next call asks the upstream again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    println!(
        "after max-age: {:?}",
        fetch_items(&client, base.clone(), 1).await.map(|i| i.body)
    );
    println!("upstream requests: {}", upstream.served.load(SeqCst));
    // It passes again, and the upstream goes down.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    upstream.down.store(true, SeqCst);
    println!(
        "upstream down: {:?}",
        fetch_items(&client, base.clone(), 1).await.map(|i| i.body)
    );
    println!("upstream requests: {}", upstream.served.load(SeqCst));
}
