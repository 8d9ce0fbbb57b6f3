//! The process-wide cache behind [`cache()`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, PoisonError, RwLock};

use crate::Cache;
use crate::builder::CacheBuilder;

/// The first global cache (installed, or built from the environment on
/// first use). Read without a lock, as long as no other cache replaced it.
static FIRST: OnceLock<Cache> = OnceLock::new();
/// Every later `install` puts its cache here, and sets `REPLACED`.
static REPLACEMENT: RwLock<Option<Cache>> = RwLock::new(None);
static REPLACED: AtomicBool = AtomicBool::new(false);

/// The process-wide cache: the one [installed](Cache::install), or else one
/// built on first use from the environment
/// ([`CacheBuilder::from_env`](crate::CacheBuilder::from_env)) — a Redis
/// Cluster when `REDIS_CLUSTER_URLS` is set, else one Redis when
/// `REDIS_URL` is set, else memory. An invalid setting gives a cache whose
/// every call fails (a miss when failing open, with a log line), never a
/// silent fallback to memory.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachette::Error> {
/// use std::time::Duration;
///
/// let cache = cachette::cache();
/// cache.set("greeting", "hello", Duration::from_secs(60)).await?;
/// assert_eq!(cachette::cache().get::<String>("greeting").await?.as_deref(), Some("hello"));
/// # Ok(())
/// # }
/// ```
#[must_use]
pub fn cache() -> Cache {
    match cache_ref() {
        CacheRef::Borrowed(cache) => cache.clone(),
        CacheRef::Owned(cache) => cache,
    }
}

/// [`cache()`] for generated code: borrowed, unless another cache replaced
/// the first.
#[must_use]
pub fn cache_ref() -> CacheRef<'static> {
    if REPLACED.load(Ordering::Acquire)
        && let Some(cache) = REPLACEMENT
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
    {
        return CacheRef::Owned(cache.clone());
    }
    CacheRef::Borrowed(FIRST.get_or_init(CacheBuilder::build_from_env))
}

impl Cache {
    /// Makes this cache the one [`cache()`] returns, replacing any other.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// cachette::Cache::builder().key_prefix("shop").build().await?.install();
    /// assert_eq!(cachette::cache().key_for("k"), "shop:k");
    /// # Ok(())
    /// # }
    /// ```
    pub fn install(&self) {
        if FIRST.set(self.clone()).is_err() {
            *REPLACEMENT.write().unwrap_or_else(PoisonError::into_inner) = Some(self.clone());
            REPLACED.store(true, Ordering::Release);
        }
    }
}

/// A cache borrowed when it can be (the global one, or a call's), so that a
/// call does not touch the reference count every other call on it shares.
#[derive(Debug)]
pub enum CacheRef<'a> {
    /// A cache that outlives the call.
    Borrowed(&'a Cache),
    /// A clone of one (the global cache after `install` replaced it).
    Owned(Cache),
}

impl CacheRef<'_> {
    /// The same cache, held.
    #[must_use]
    pub fn into_owned(self) -> CacheRef<'static> {
        match self {
            Self::Borrowed(cache) => CacheRef::Owned(cache.clone()),
            Self::Owned(cache) => CacheRef::Owned(cache),
        }
    }
}

impl std::ops::Deref for CacheRef<'_> {
    type Target = Cache;

    #[inline]
    fn deref(&self) -> &Cache {
        match self {
            Self::Borrowed(cache) => cache,
            Self::Owned(cache) => cache,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn install_replaces_the_global_cache_every_time() {
        for prefix in ["first", "second", "third"] {
            Cache::builder()
                .key_prefix(prefix)
                .build()
                .await
                .unwrap()
                .install();
            assert_eq!(cache().key_for("k"), format!("{prefix}:k"));
        }
    }
}
