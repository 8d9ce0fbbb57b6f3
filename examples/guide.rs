//! The caching patterns of a typical Django project, in cachette, in one
//! tour with `sleep` standing in for the slow parts. Runs on the memory
//! backend, or on Redis when `REDIS_URL` is set: `cargo run --example guide`.
//! Each use case also runs on real parts — axum, SQLite, an upstream HTTP
//! API, templates — in `web/examples/` (`cargo run -p cachette-web --example api_route`, …).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cachette::{cached, invalidate};
use serde::{Deserialize, Serialize};

/// Counts the slow work done, to show what the cache saved.
static SLOW_CALLS: AtomicU32 = AtomicU32::new(0);

async fn slow(ms: u64) {
    SLOW_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

// 1. An expensive API route, cached for 15 minutes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ApiResult {
    data: Vec<u32>,
    metadata: BTreeMap<String, String>,
}

#[cached(timeout = 60 * 15)]
async fn expensive_api_example() -> ApiResult {
    slow(200).await; // complex calculations, several queries
    ApiResult {
        data: vec![1, 2, 3],
        metadata: BTreeMap::from([("source".into(), "db".into())]),
    }
}

// 2. Database query results (aggregations), cached for an hour.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderStats {
    order_count: u32,
    total_spent: f64,
    avg_order_value: f64,
}

#[derive(Debug)]
struct DbError;

#[cached(timeout = 60 * 60, key = "user_order_stats:{user_id}", tags = ["user:{user_id}"])]
async fn get_user_order_stats(user_id: u64) -> Result<OrderStats, DbError> {
    slow(100).await; // joins and aggregations
    Ok(OrderStats {
        order_count: 3,
        total_spent: 120.0 + f64::from(u32::try_from(user_id).unwrap_or(0)),
        avg_order_value: 40.0,
    })
}

// 3. User permissions, invalidated when they change.
#[cached(timeout = 60 * 60, key = "user_permissions:{user_id}", tags = ["user:{user_id}"])]
async fn get_user_permissions(user_id: u64) -> Vec<String> {
    slow(100).await; // groups, roles and permission tables
    vec!["orders.view".into(), format!("profile.edit:{user_id}")]
}

async fn invalidate_user_permissions(user_id: u64) {
    let _ = invalidate!(get_user_permissions(user_id)).await;
}

// 4. External API responses, cached for 30 minutes; the key is derived
// from the endpoint and the parameters.
#[cached(timeout = 60 * 30)]
async fn fetch_external_api_data(
    endpoint: &str,
    params: &BTreeMap<String, String>,
) -> Result<String, String> {
    slow(150).await; // the HTTP request
    Ok(format!(
        "{endpoint}?{}",
        params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    ))
}

// 5. Template fragments: the expensive part cached, the personal part not.
async fn cached_template_fragment(user_id: u64, name: &str) -> Result<String, cachette::Error> {
    let expensive_fragment = cachette::cache()
        .get_or_set(
            &format!("template_fragment:expensive:{user_id}"),
            || async {
                slow(100).await; // complex rendering
                format!("<section>orders of {user_id}</section>")
            },
            Duration::from_secs(60 * 60),
        )
        .await?;
    Ok(format!("<h1>Hello {name}</h1>{expensive_fragment}"))
}

// 6. Invalidation from update code: what Django does with signals.
async fn on_user_saved(user_id: u64, created: bool) {
    let _ = invalidate!(tag = format!("user:{user_id}")).await; // every cache of this user
    if created {
        let _ = invalidate!(namespace = "user_list").await;
    }
}

// 7. Versioned keys: one bump and every product entry is gone.
#[cached(timeout = 60 * 60, namespace = "product", key = "products:{category:?}")]
async fn get_cached_products(category: Option<String>) -> Vec<String> {
    slow(100).await; // fetch_products(category)
    vec![format!("{} product", category.as_deref().unwrap_or("any"))]
}

async fn invalidate_product_cache() {
    let _ = invalidate!(namespace = "product").await;
}

/// Runs `f` twice and prints both timings and the slow work each did.
macro_rules! twice {
    ($label:expr, $call:expr) => {{
        for attempt in ["first", "again"] {
            let (before, start) = (SLOW_CALLS.load(Ordering::SeqCst), Instant::now());
            let _ = $call;
            let slow_calls = SLOW_CALLS.load(Ordering::SeqCst) - before;
            println!(
                "{:<28} {attempt:<5} {:>10.3?}  slow work: {slow_calls}",
                $label,
                start.elapsed()
            );
        }
    }};
}

#[tokio::main]
async fn main() -> Result<(), cachette::Error> {
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .init();
    let params = BTreeMap::from([("page".to_owned(), "2".to_owned())]);

    twice!("1. expensive API route", expensive_api_example().await);
    twice!("2. order stats (db query)", get_user_order_stats(7).await);
    twice!("3. user permissions", get_user_permissions(7).await);
    invalidate_user_permissions(7).await;
    twice!("   after invalidation", get_user_permissions(7).await);
    twice!(
        "4. external API",
        fetch_external_api_data("https://api.example/items", &params).await
    );
    twice!(
        "5. template fragment",
        cached_template_fragment(7, "Ada").await?
    );
    on_user_saved(7, false).await;
    twice!("6. stats after user saved", get_user_order_stats(7).await);
    twice!(
        "7. products",
        get_cached_products(Some("books".into())).await
    );
    invalidate_product_cache().await;
    twice!(
        "   after version bump",
        get_cached_products(Some("books".into())).await
    );
    // On shutdown: invalidations still waiting for Redis land first.
    cachette::cache()
        .flush_invalidations(Duration::from_secs(5))
        .await;
    Ok(())
}
