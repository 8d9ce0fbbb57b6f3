//! The [`Cache`] handle: a cheap clone over the shared engine (`engine/`). Its
//! methods live by job: `ops` the direct operations, `compute`
//! `get_or_set` and friends, `batch` `get_many_or_set` and friends,
//! `invalidate` invalidation and [`Namespace`].

mod batch;
mod compute;
mod invalidate;
mod listing;
mod lock;
mod ops;

use std::sync::Arc;

use crate::Error;
use crate::backend::Backend;
use crate::backend::breaker::Health;
use crate::codec::Seal;
use crate::engine::Engine;
use crate::key::KeySpace;
use crate::observe::Stats;
use crate::options::Options;
pub use batch::Batch;
pub use invalidate::{Invalidated, Namespace};
pub use lock::Lock;

/// A handle to a cache: Redis or memory, with a key prefix, a default
/// timeout and fail-open error handling.
///
/// Cloning is cheap and every clone shares the same store, connections and
/// counters. Methods mirror Django's cache API.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachette::Error> {
/// use std::time::Duration;
///
/// let cache = cachette::Cache::memory();
/// cache.set("my_key", "my_value", Duration::from_secs(60)).await?;
/// let value: Option<String> = cache.get("my_key").await?;
/// assert_eq!(value.as_deref(), Some("my_value"));
/// cache.delete("my_key").await?;
/// assert_eq!(cache.get::<String>("my_key").await?, None);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) engine: Arc<Engine>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.engine.fmt(f)
    }
}

impl Cache {
    /// The one constructor, from the parts the builder set up.
    pub(crate) fn from_parts(
        backend: Arc<Backend>,
        keys: KeySpace,
        options: Options,
        seal: Seal,
    ) -> Self {
        Self {
            engine: Arc::new(Engine::new(backend, keys, options, seal)),
        }
    }

    /// A handle on the same store (the same memory or the same Redis
    /// connections, and the same local tier) under another key prefix, with
    /// its own counters (but the invalidations waiting for Redis are the
    /// store's: [`flush_invalidations`](Self::flush_invalidations) and the
    /// `invalidations_*` counts of [`stats`](Self::stats) cover every handle
    /// on it). With a local tier, the new prefix is tracked too:
    /// the first handle of a new prefix restarts tracking, and the tier is
    /// bypassed until it is back (milliseconds on a healthy Redis).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use std::time::Duration;
    ///
    /// let shop = cachette::Cache::memory();
    /// let admin = shop.with_prefix("admin")?;
    /// admin.set("k", "admin's", Duration::from_secs(60)).await?;
    /// assert_eq!(shop.get::<String>("k").await?, None);
    /// shop.clear().await?;
    /// assert!(admin.get::<String>("k").await?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_prefix(&self, prefix: &str) -> Result<Self, Error> {
        let max_len = self.engine.keys().max_len();
        let keys = KeySpace::new(prefix, max_len).map_err(|reason| Error::Config {
            reason,
            source: None,
        })?;
        Ok(Self {
            engine: Arc::new(self.engine.with_keys(keys)),
        })
    }

    /// The key under which `key` is stored: the escaped prefix, `:`, the
    /// key — or, for a key too long, a shortened form with a digest.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let cache = cachette::Cache::memory();
    /// assert_eq!(cache.key_for("user_order_stats:7"), "cachette:user_order_stats:7");
    /// ```
    #[must_use]
    pub fn key_for(&self, key: &str) -> String {
        self.engine.keys().entry(key)
    }

    /// The counters of this cache and all its clones.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let cache = cachette::Cache::memory();
    /// assert_eq!(cache.stats().hits, 0);
    /// ```
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// The figures of each `#[cached]` function that called through this
    /// cache, by name: how its calls were served and the time spent
    /// computing. With the `metrics` feature the same figures go to the
    /// `metrics` facade, labelled by cache and function.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let cache = cachette::Cache::memory();
    /// assert!(cache.function_stats().is_empty());
    /// ```
    #[must_use]
    pub fn function_stats(&self) -> Vec<crate::FunctionStats> {
        self.engine.observer().function_stats()
    }

    /// Whether calls reach the backend: the state of the circuit breaker in
    /// front of Redis (see
    /// [`CacheBuilder::circuit_breaker`](crate::CacheBuilder::circuit_breaker)).
    /// The memory backend is always up.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let cache = cachette::Cache::memory();
    /// assert!(cache.health().is_up());
    /// assert_eq!(cache.health().times_opened, 0);
    /// ```
    #[must_use]
    pub fn health(&self) -> Health {
        self.engine.health()
    }
}
