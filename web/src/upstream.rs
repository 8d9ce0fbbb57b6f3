//! A local upstream HTTP API, as an external service behaves: it takes its
//! time, limits how often it may be called, counts what it served, and can
//! be taken down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::routing::get;
use serde::Deserialize;

/// The upstream's state: its counters and switches.
#[derive(Debug, Default)]
pub struct Upstream {
    /// Requests answered with data.
    pub served: AtomicU64,
    /// Requests refused by the rate limit.
    pub limited: AtomicU64,
    /// While set, every request gets `503`.
    pub down: AtomicBool,
    /// Requests allowed in all (the rate limit, over the upstream's life).
    pub limit: AtomicU64,
    /// How long each answer takes, in ms.
    pub latency_ms: AtomicU64,
    /// How long an answer may be kept, in seconds: its `Cache-Control: max-age`.
    pub max_age: AtomicU64,
}

#[derive(Deserialize)]
struct Params {
    page: Option<u32>,
}

async fn items(
    State(upstream): State<Arc<Upstream>>,
    Query(params): Query<Params>,
) -> Result<([(header::HeaderName, String); 1], String), StatusCode> {
    tokio::time::sleep(Duration::from_millis(upstream.latency_ms.load(SeqCst))).await;
    if upstream.down.load(SeqCst) {
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    if upstream.served.load(SeqCst) >= upstream.limit.load(SeqCst) {
        upstream.limited.fetch_add(1, SeqCst);
        return Err(StatusCode::TOO_MANY_REQUESTS);
    }
    let served = upstream.served.fetch_add(1, SeqCst) + 1;
    let page = params.page.unwrap_or(1);
    let max_age = format!("max-age={}", upstream.max_age.load(SeqCst));
    let body = format!("items of page {page} (answer #{served})");
    Ok(([(header::CACHE_CONTROL, max_age)], body))
}

impl Upstream {
    /// Starts an upstream on loopback answering `GET /items?page=N` after
    /// `latency`, at most `limit` times in all, each answer with
    /// `Cache-Control: max-age=1`; its state and address.
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() {
    /// use std::time::Duration;
    /// let (upstream, address) = cachette_web::upstream::Upstream::start(Duration::from_millis(50), 100).await;
    /// # drop((upstream, address));
    /// # }
    /// ```
    pub async fn start(latency: Duration, limit: u64) -> (Arc<Self>, SocketAddr) {
        let upstream = Arc::new(Self {
            limit: AtomicU64::new(limit),
            max_age: AtomicU64::new(1),
            latency_ms: AtomicU64::new(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX)),
            ..Self::default()
        });
        let router = axum::Router::new()
            .route("/items", get(items))
            .with_state(Arc::clone(&upstream));
        let address = crate::serve(router).await;
        (upstream, address)
    }
}
