//! The process-wide cache behind [`cache()`].

use std::sync::{PoisonError, RwLock};

use crate::Cache;
use crate::config::CacheBuilder;

static GLOBAL: RwLock<Option<Cache>> = RwLock::new(None);

/// The process-wide cache: the one [installed](Cache::install), or else one
/// built on first use from the environment — Redis when `REDIS_URL` is set,
/// memory when it is not.
///
/// ```
/// # extern crate cache_runtime as cachet;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachet::Error> {
/// use std::time::Duration;
///
/// let cache = cachet::cache();
/// cache.set("greeting", "hello", Duration::from_secs(60)).await?;
/// assert_eq!(cachet::cache().get::<String>("greeting").await?.as_deref(), Some("hello"));
/// # Ok(())
/// # }
/// ```
#[must_use]
pub fn cache() -> Cache {
    if let Some(cache) = GLOBAL
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        return cache.clone();
    }
    GLOBAL
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(CacheBuilder::build_from_env)
        .clone()
}

impl Cache {
    /// Makes this cache the one [`cache()`] returns, replacing any other.
    ///
    /// ```
    /// # extern crate cache_runtime as cachet;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachet::Error> {
    /// cachet::Cache::builder().key_prefix("shop").build().await?.install();
    /// assert_eq!(cachet::cache().key_for("k"), "shop:k");
    /// # Ok(())
    /// # }
    /// ```
    pub fn install(&self) {
        *GLOBAL.write().unwrap_or_else(PoisonError::into_inner) = Some(self.clone());
    }
}
