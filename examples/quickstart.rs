//! cachette in one page: a slow function cached with `#[cached]`, a hit, the
//! entry of one call dropped with `invalidate!`, and a whole namespace dropped
//! at once. Runs in memory, or on Redis when `REDIS_URL` is set
//! (`REDIS_URL=redis://127.0.0.1:6379/2 cargo run --example quickstart`).

use std::time::{Duration, Instant};

use cachette::{cached, invalidate};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderStats {
    order_count: u32,
    total_spent: f64,
}

/// A slow aggregation query, cached for an hour under `user_order_stats:{user_id}`.
#[cached(timeout = 3600, key = "user_order_stats:{user_id}")]
async fn user_order_stats(user_id: u64) -> OrderStats {
    tokio::time::sleep(Duration::from_millis(300)).await;
    OrderStats {
        order_count: 12,
        total_spent: 1234.5 + f64::from(u32::try_from(user_id).unwrap_or(0)),
    }
}

/// The products of a category, in the `product` namespace: one bump drops them all.
#[cached(timeout = 900, namespace = "product", key = "products:{category}")]
async fn products(category: String) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    vec![format!("{category} #1"), format!("{category} #2")]
}

/// Awaits `call` and prints how long it took and whether it was a cache hit.
async fn show<T: std::fmt::Debug>(label: &str, call: impl Future<Output = T>) {
    let hits = cachette::cache().stats().hits;
    let start = Instant::now();
    let value = call.await;
    let elapsed = start.elapsed();
    let outcome = if cachette::cache().stats().hits > hits {
        "hit "
    } else {
        "miss"
    };
    println!("{label:<22} {outcome} {elapsed:>9.1?}  {value:?}");
}

#[tokio::main]
async fn main() -> Result<(), cachette::Error> {
    // Shows the cache's warnings (Redis unreachable, ...); optional.
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .init();
    println!("{:?}", cachette::cache());

    show("user_order_stats(42)", user_order_stats(42)).await;
    show("user_order_stats(42)", user_order_stats(42)).await;
    // In update code: drop exactly the entry of that call.
    invalidate!(user_order_stats(42)).await?;
    println!("invalidate!(user_order_stats(42))");
    show("user_order_stats(42)", user_order_stats(42)).await;

    show("products(\"books\")", products("books".into())).await;
    show("products(\"games\")", products("games".into())).await;
    show("products(\"books\")", products("books".into())).await;
    // Every entry of the namespace, whatever its key, with one command.
    invalidate!(namespace = "product").await?;
    println!("invalidate!(namespace = \"product\")");
    show("products(\"books\")", products("books".into())).await;
    show("products(\"games\")", products("games".into())).await;

    // On shutdown: invalidations still waiting for Redis (none, unless it
    // was down) land first, so that other processes see them.
    cachette::cache()
        .flush_invalidations(Duration::from_secs(5))
        .await;
    let stats = cachette::cache().stats();
    println!(
        "hits: {}, misses: {}, backend errors: {}",
        stats.hits, stats.misses, stats.errors
    );
    Ok(())
}
