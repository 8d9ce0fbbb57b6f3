//! Direct cache access as in Django (set, get, delete), then an expensive function through
//! `get_or_set`. Runs on the memory backend, or on Redis when `REDIS_URL` is
//! set (`REDIS_URL=redis://127.0.0.1:6379/2 cargo run --example quickstart`).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderStats {
    user_id: u64,
    order_count: u32,
    total_spent: f64,
    avg_order_value: f64,
}

/// Stands in for a slow aggregation query.
async fn query_order_stats(user_id: u64) -> OrderStats {
    tokio::time::sleep(Duration::from_secs(2)).await;
    OrderStats {
        user_id,
        order_count: 12,
        total_spent: 1234.5,
        avg_order_value: 102.875,
    }
}

#[tokio::main]
async fn main() -> Result<(), cachet::Error> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let cache = cachet::cache();
    println!("cache: {cache:?}");

    // Direct cache access: store for 60 seconds, read, delete.
    cache
        .set("my_key", "my_value", Duration::from_secs(60))
        .await?;
    let value: Option<String> = cache.get("my_key").await?;
    println!("get my_key -> {value:?}");
    cache.delete("my_key").await?;
    let value: Option<String> = cache.get("my_key").await?;
    println!("after delete -> {value:?}");

    // An expensive function, cached for an hour.
    let user_id = 42;
    for attempt in ["first call", "second call"] {
        let hits_before = cache.stats().hits;
        let start = Instant::now();
        let stats = cache
            .get_or_set(
                &format!("user_order_stats:{user_id}"),
                || query_order_stats(user_id),
                Duration::from_secs(60 * 60),
            )
            .await?;
        let elapsed = start.elapsed();
        let outcome = if cache.stats().hits > hits_before {
            "hit"
        } else {
            "miss"
        };
        println!("{attempt} ({outcome}): {elapsed:>10.3?} -> {stats:?}");
    }
    let stats = cache.stats();
    println!(
        "hits: {}, misses: {}, backend errors: {}",
        stats.hits, stats.misses, stats.errors
    );
    Ok(())
}
