//! What the local tier's test binaries share: a cache without the tier,
//! one with it, and a wait for the tier to serve an entry.

use std::time::Duration;

use cachette::{Cache, Scope};
use support::{RedisServer, eventually};

pub(crate) const MINUTE: Duration = Duration::from_secs(60);

pub(crate) async fn plain(server: &RedisServer) -> Cache {
    server.cache().await
}

pub(crate) async fn tiered(server: &RedisServer) -> Cache {
    Cache::builder()
        .redis_url(server.url(0))
        .local_tier(16 << 20)
        .build()
        .await
        .unwrap()
}

/// Reads until the local tier serves `key` in `scope` (tracking is up, the entry kept).
pub(crate) async fn warm(cache: &Cache, key: &str, scope: &Scope) {
    eventually("the local tier serves the entry", async || {
        let before = cache.stats().local_hits;
        let _ = cache.get_in::<u64>(key, scope).await.unwrap();
        cache.stats().local_hits > before
    })
    .await;
}
