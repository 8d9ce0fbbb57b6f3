//! The guide's `VersionedCache`: entries of a resource type share a
//! version, and bumping it drops them all at once, with one command.
//!
//! `cargo run -p cachette-web --example versioned` (memory; Redis with `REDIS_URL`).

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use cachette::{cached, invalidate};

static QUERIES: AtomicU64 = AtomicU64::new(0);

/// `get_cached_products(category)`: in the `product` namespace.
#[cached(timeout = 3600, namespace = "product", key = "products:{category:?}")]
async fn products(category: Option<String>) -> Vec<String> {
    QUERIES.fetch_add(1, SeqCst);
    match category.as_deref() {
        Some("books") => vec!["Dune".to_owned(), "Emma".to_owned()],
        _ => vec!["Dune".to_owned(), "Emma".to_owned(), "Lamp".to_owned()],
    }
}

#[tokio::main]
async fn main() {
    cachette_web::cache("versioned").await.install();
    let version = cachette::cache().namespace("product");
    for _ in 0..2 {
        products(None).await;
        products(Some("books".into())).await;
    }
    println!(
        "version {}: queries {}",
        version.version().await.unwrap(),
        QUERIES.load(SeqCst)
    );
    // `invalidate_product_cache()`: every product entry, one command.
    invalidate!(namespace = "product").await.unwrap();
    products(None).await;
    products(Some("books".into())).await;
    println!(
        "version {}: queries {}",
        version.version().await.unwrap(),
        QUERIES.load(SeqCst)
    );
}
