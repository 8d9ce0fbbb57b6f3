//! The guide's external API: a real HTTP client (reqwest) behind
//! `#[cached]` with a derived key, in front of a local upstream that takes
//! 100 ms, allows 10 requests and can go down. Repeated calls reach it
//! once; when it is down, `failover` serves the last good answer.
//!
//! `cargo run -p cachette-web --example external_api` (memory; Redis with `REDIS_URL`).

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use cachette::cached;
use cachette_web::upstream::Upstream;

#[derive(Debug, Clone)]
struct UpstreamError(#[allow(dead_code)] String);

/// No key: one is derived from the module, the name, and `base` and `page`.
#[cached(timeout = 1, failover = 3600, skip(client))]
async fn fetch_items(
    client: &reqwest::Client,
    base: String,
    page: u32,
) -> Result<String, UpstreamError> {
    let response = client
        .get(format!("{base}/items?page={page}"))
        .send()
        .await
        .map_err(|e| UpstreamError(e.to_string()))?;
    if !response.status().is_success() {
        return Err(UpstreamError(response.status().to_string()));
    }
    response
        .text()
        .await
        .map_err(|e| UpstreamError(e.to_string()))
}

#[tokio::main]
async fn main() {
    cachette_web::cache("external").await.install();
    let (upstream, address) = Upstream::start(Duration::from_millis(100), 10).await;
    let (client, base) = (reqwest::Client::new(), format!("http://{address}"));
    for _ in 0..5 {
        let start = Instant::now();
        let items = fetch_items(&client, base.clone(), 1).await;
        println!("{:>8.1?}  {items:?}", start.elapsed());
    }
    println!("upstream requests: {}", upstream.served.load(SeqCst));
    // The entry's timeout passes, and the upstream goes down.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    upstream.down.store(true, SeqCst);
    println!(
        "upstream down: {:?}",
        fetch_items(&client, base.clone(), 1).await
    );
    println!("upstream requests: {}", upstream.served.load(SeqCst));
}
