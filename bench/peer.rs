//! What the load bench and the hit loop share: the value they cache, and the
//! peer they measure cachette against (the `cached` crate's Redis store, set
//! up as its examples do).

use std::sync::OnceLock;
use std::time::Duration;

use cached::AsyncRedisCache;
use cached::macros::concurrent_cached;

/// The Redis the peer stores in, set before its first call.
pub(crate) static PEER_URL: OnceLock<String> = OnceLock::new();

/// The value every contender stores for `size`: text of that many bytes.
pub(crate) fn value(size: usize) -> String {
    "cachette-bench ".chars().cycle().take(size).collect()
}

/// What the peer's store reported.
#[derive(Debug, Clone)]
pub(crate) struct PeerError(pub(crate) String);

#[allow(clippy::unused_async)] // the peer's macro wants an async body
#[concurrent_cached(
    map_error = r#"|e| PeerError(format!("{e:?}"))"#,
    ty = "cached::AsyncRedisCache<usize, String>",
    create = r##"{
        AsyncRedisCache::builder("bench_peer")
            .ttl(Duration::from_secs(3600))
            .connection_string(PEER_URL.get().expect("the peer's URL is set first"))
            .build()
            .await
            .expect("the cached crate's Redis store")
    }"##
)]
pub(crate) async fn peer_item(size: usize) -> Result<String, PeerError> {
    Ok(value(size))
}
