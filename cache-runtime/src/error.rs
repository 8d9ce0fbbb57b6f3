//! The one error type of cachette.

use std::time::Duration;

/// Everything that can go wrong in a cache call.
///
/// With fail-open on (the default), backend failures ([`Error::Backend`],
/// [`Error::Timeout`], [`Error::CircuitOpen`], [`Error::Unavailable`]) never reach the caller: reads
/// become misses and writes become no-ops, and the failure is logged and
/// counted in [`Stats`](crate::Stats). The other variants describe mistakes in
/// the calling code and are always returned.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cachette::{Cache, Error};
/// use std::collections::HashMap;
/// use std::time::Duration;
///
/// // A type whose `Serialize` impl fails cannot be stored.
/// struct Broken;
/// impl serde::Serialize for Broken {
///     fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
///         Err(serde::ser::Error::custom("not today"))
///     }
/// }
/// let cache = Cache::memory();
/// let err = cache.set("k", &Broken, Duration::from_secs(60)).await.unwrap_err();
/// assert!(matches!(err, Error::Encode { .. }));
/// assert!(err.to_string().contains("Broken"));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The value could not be encoded; `type_name` names its type.
    #[error("cannot encode a value of type `{type_name}` for the cache")]
    Encode {
        /// The Rust type of the value.
        type_name: &'static str,
        /// What the encoder reported.
        #[source]
        source: rmp_serde::encode::Error,
    },
    /// The backend reported an error while running `op`.
    #[error("cache backend failed during {op}")]
    Backend {
        /// The cache operation, such as `get` or `set`.
        op: &'static str,
        /// The error from Redis or from the connection pool.
        #[source]
        source: BackendError,
    },
    /// The backend did not answer `op` within its deadline.
    #[error("cache backend did not answer {op} within {after:?}")]
    Timeout {
        /// The cache operation, such as `get` or `set`.
        op: &'static str,
        /// The deadline that passed.
        after: Duration,
    },
    /// A computation ran past its hard timeout (`#[cached(hard_timeout = ..)]`,
    /// [`CacheBuilder::hard_timeout`](crate::CacheBuilder::hard_timeout)) and
    /// was abandoned; nothing was stored.
    #[error("computation abandoned after {after:?} (its hard timeout)")]
    Abandoned {
        /// The hard timeout that passed.
        after: Duration,
    },
    /// The backend was skipped: it failed repeatedly and the circuit breaker
    /// is open (see [`Cache::health`](crate::Cache::health)).
    #[error("cache backend skipped for {op}: circuit open after repeated failures")]
    CircuitOpen {
        /// The cache operation, such as `get` or `set`.
        op: &'static str,
        /// When the next call may probe the backend.
        retry_in: Duration,
    },
    /// The backend cannot be used at all (for example an invalid `REDIS_URL`
    /// found when the global cache was built from the environment).
    #[error("cache backend unavailable: {reason}")]
    Unavailable {
        /// Why the backend cannot be used.
        reason: String,
    },
    /// The configuration given to the builder is invalid.
    #[error("invalid cache configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BackendError>,
    },
    /// `incr`/`decr` met a value that is not an integer counter, or the
    /// sum would leave the range of an `i64`.
    #[error("cache entry `{key}` is not an integer counter, or the sum leaves the i64 range")]
    NotACounter {
        /// The key as the caller gave it.
        key: String,
    },
    /// [`incr_existing`](crate::Cache::incr_existing) found no counter.
    #[error("cache entry `{key}` does not exist")]
    NotFound {
        /// The key as the caller gave it.
        key: String,
    },
    /// The request's cache budget ([`with_budget`](crate::with_budget)) was
    /// spent before this call: it skipped the backend.
    #[error("the cache budget of this request was spent before `{op}`")]
    BudgetSpent {
        /// The operation that was skipped.
        op: &'static str,
    },
    /// A lock is held by another owner, or its lease ran out.
    #[error("the lock `{name}` is not held by this owner")]
    LockLost {
        /// The lock's name.
        name: String,
    },
}

/// The error of a backend: Redis itself or the connection pool in front of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// An error reported by Redis or by the connection to it.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// No connection could be taken from the pool.
    #[error(transparent)]
    Pool(#[from] deadpool_redis::PoolError),
}

impl Error {
    /// Whether this error comes from the backend (and so is swallowed when
    /// the cache fails open) rather than from the calling code.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// use cachette::Error;
    /// use std::time::Duration;
    ///
    /// assert!(Error::Timeout { op: "get", after: Duration::from_millis(5) }.is_backend());
    /// assert!(!Error::NotACounter { key: "k".into() }.is_backend());
    /// ```
    #[must_use]
    pub fn is_backend(&self) -> bool {
        matches!(
            self,
            Self::Backend { .. }
                | Self::Timeout { .. }
                | Self::CircuitOpen { .. }
                | Self::BudgetSpent { .. }
                | Self::Unavailable { .. }
        )
    }
}

impl Error {
    /// Whether the cache was skipped (an open circuit, a spent budget)
    /// rather than failing.
    pub(crate) fn is_skip(&self) -> bool {
        matches!(self, Self::CircuitOpen { .. } | Self::BudgetSpent { .. })
    }
}

/// `Result` with the cache's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
