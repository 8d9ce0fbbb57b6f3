//! The caching guide's use cases on real parts, shared by the examples in
//! `examples/` and their tests: a SQLite database of users, groups,
//! permissions and orders ([`db`]), an upstream HTTP API with latency, a
//! rate limit and a request counter ([`upstream`]), and a way to serve an
//! axum router on loopback ([`serve`]).

pub mod db;
pub mod upstream;

use std::net::SocketAddr;

/// Serves `router` on a free loopback port, in the background; its address.
///
/// # Panics
///
/// When no loopback port can be bound.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() {
/// let router = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
/// let address = cachette_web::serve(router).await;
/// println!("http://{address}/");
/// # }
/// ```
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("a bound address");
    tokio::spawn(async move {
        // Serves until the process ends.
        let _ = axum::serve(listener, router).await;
    });
    address
}

/// The cache the examples use: Redis when `REDIS_URL` (or
/// `REDIS_CLUSTER_URLS`) is set, memory otherwise, with keys under `prefix`.
///
/// # Panics
///
/// When the environment names an invalid URL, or Redis refuses the password.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = cachette_web::cache("example").await;
/// assert_eq!(cache.key_for("k"), "example:k");
/// # }
/// ```
pub async fn cache(prefix: &str) -> cachette::Cache {
    cachette::Cache::builder()
        .from_env()
        .key_prefix(prefix)
        .build()
        .await
        .expect("a valid cache configuration")
}
