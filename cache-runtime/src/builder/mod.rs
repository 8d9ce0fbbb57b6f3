//! The builder of a [`Cache`]: it validates the settings, sets up the
//! backend and hands both to [`Cache::from_parts`]. How values travel
//! (compression, signatures) is set in `envelope.rs`; where entries go
//! (memory, one Redis, a cluster, Sentinel, the environment) in `target.rs`.

mod envelope;
mod server;
mod target;

use std::sync::Arc;
use std::time::Duration;

use crate::backend::Backend;
use crate::backend::server::Settings;
use crate::cache::Cache;
use crate::codec::{DEFAULT_MAX_VALUE_BYTES, Seal};
use crate::key::{DEFAULT_MAX_KEY_LENGTH, KeySpace};
use crate::options::Options;
use crate::{BackendError, Error};
use envelope::Compress;
use target::Target;

/// The byte budget of the memory backend unless configured.
const DEFAULT_MEMORY_BYTES: u64 = 64 << 20;

/// The prefix of a cache's keys unless configured.
const DEFAULT_PREFIX: &str = "cachette";

/// Configures and builds a [`Cache`]; from [`Cache::builder`].
///
/// Without [`redis_url`](Self::redis_url) the cache keeps its entries in
/// memory. Redis deadlines default to values suited to a cache, far below a
/// second, so that a slow or absent Redis costs little.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachette::Error> {
/// use std::time::Duration;
///
/// let cache = cachette::Cache::builder()
///     .key_prefix("shop")
///     .default_timeout(Duration::from_secs(3600))
///     .memory_bytes(256 << 20)
///     .build()
///     .await?;
/// assert_eq!(cache.key_for("user:7"), "shop:user:7");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct CacheBuilder {
    /// Where the entries go.
    target: Target,
    prefix: String,
    max_key_length: usize,
    memory_bytes: u64,
    /// The byte budget of a local tier in front of Redis, if any.
    local: Option<u64>,
    /// Whether namespace and tag versions are tracked in process (`None`:
    /// with a local tier only).
    track_versions: Option<bool>,
    /// The longest an entry stays in the local tier.
    local_lifetime: Option<Duration>,
    /// The compression threshold, unless left to the store.
    compress: Compress,
    max_value_bytes: usize,
    /// The secret that signs, then the previous ones that still verify.
    secrets: Vec<Vec<u8>>,
    options: Options,
    redis: Settings,
}

impl std::fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("max_key_length", &self.max_key_length)
            .field("memory_bytes", &self.memory_bytes)
            .field("local", &self.local)
            .field("local_lifetime", &self.local_lifetime)
            .field("track_versions", &self.track_versions)
            .field("compress", &self.compress)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("secrets", &self.secrets.len())
            .field("options", &self.options)
            .field("redis", &self.redis)
            .finish()
    }
}

impl Default for CacheBuilder {
    fn default() -> Self {
        Self {
            target: Target::Memory,
            prefix: DEFAULT_PREFIX.to_owned(),
            max_key_length: DEFAULT_MAX_KEY_LENGTH,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            local: None,
            local_lifetime: None,
            track_versions: None,
            compress: Compress::ByStore,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            secrets: Vec::new(),
            options: Options::default(),
            redis: Settings {
                connections: 2,
                connect_timeout: Duration::from_millis(250),
                command_timeout: Duration::from_millis(250),
                breaker_failures: 5,
                breaker_cool_down: Duration::from_secs(1),
                pending_invalidations: crate::backend::pending::DEFAULT_BOUND,
                tls_root: None,
                replicas: None,
            },
        }
    }
}

impl CacheBuilder {
    /// Stores entries in this process's memory (the default).
    pub fn memory(mut self) -> Self {
        self.target = Target::Memory;
        self
    }

    /// The prefix of every key of this cache (default `cachette`). Caches with
    /// different prefixes never see each other's entries.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The timeout of entries written with
    /// [`Timeout::Default`](crate::Timeout::Default) (default 15 minutes);
    /// `None` keeps them until they are deleted or evicted.
    pub fn default_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.options.default_timeout = timeout.into();
        self
    }

    /// The bound on stored key length in bytes (default 250); longer keys
    /// are shortened with a digest.
    pub fn max_key_length(mut self, bytes: usize) -> Self {
        self.max_key_length = bytes;
        self
    }

    /// How many bytes the memory backend holds (keys and encoded values)
    /// before evicting the least useful entries (default 64 MiB). An entry
    /// heavier than a sixteenth of it is not kept: it is computed each time.
    /// An expired entry is never served; it counts against the budget until
    /// the next sweep (one every 4 096 writes) or until eviction needs room.
    pub fn memory_bytes(mut self, bytes: u64) -> Self {
        self.memory_bytes = bytes;
        self
    }

    /// Whether spans (see the README's "Observing" section) carry each key as
    /// stored (`true`) or a digest of it (`false`, the default): keys often
    /// hold user ids or e-mail addresses, which traces should not collect
    /// unless asked to.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let builder = cachette::Cache::builder().trace_keys(true);
    /// # drop(builder);
    /// ```
    pub fn trace_keys(mut self, on: bool) -> Self {
        self.options.trace_keys = on;
        self
    }

    /// Whether backend failures are misses and no-ops (`true`, the default)
    /// or errors returned to the caller.
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.options.fail_open = fail_open;
        self
    }

    /// How long [`Cache::invalidate`] keeps its tombstone (default 10
    /// minutes): a computation that read the key before the invalidation and
    /// finishes within this time cannot store its older value.
    pub fn tombstone_ttl(mut self, ttl: Duration) -> Self {
        self.options.tombstone_ttl = ttl;
        self
    }

    /// Makes every miss of `get_or_set` and of `#[cached]` functions
    /// compute once across the fleet, not once per process: the first
    /// process takes a Redis lease of this length (`SET NX PX` with its own
    /// token), the others wait for its value and never longer than the
    /// lease. Off by default; `#[cached(lock = ...)]` sets it per function.
    /// Hits never touch the lease.
    pub fn lock_lease(mut self, lease: impl Into<Option<Duration>>) -> Self {
        self.options.lease = lease.into();
        self
    }

    /// Stale-while-revalidate: once a value's timeout passes, it is still
    /// served for `stale` to every caller but one, which recomputes it
    /// ([`Cache::get_or_set_detached`] recomputes in a background task and
    /// serves every caller).
    pub fn stale_while_revalidate(mut self, stale: Duration) -> Self {
        self.options.policy.stale = Some(stale);
        self
    }

    /// Failover: values are kept `failover` past their timeout, and served
    /// when their recomputation fails (an `Err`, or `None`).
    pub fn failover(mut self, failover: Duration) -> Self {
        self.options.policy.failover = Some(failover);
        self
    }

    /// Early refresh: hot values are recomputed shortly before their timeout,
    /// one caller at a time, with the probabilistic `XFetch` rule; `beta`
    /// above 1.0 refreshes earlier (1.0 is the usual choice).
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.options.policy.early = Some(beta);
        self
    }

    /// With a stale or failover value at hand, how long a caller of
    /// [`Cache::get_or_set_detached`] waits for the value's refresh before it
    /// takes the value at hand; the refresh goes on in a task and stores its
    /// result. Without it, a stale value is served at once (and a failover
    /// value only when the refresh fails). `#[cached(soft_timeout = ..)]`
    /// sets it per function.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::builder()
    ///     .failover(Duration::from_secs(3600))
    ///     .soft_timeout(Duration::from_millis(200))
    ///     .hard_timeout(Duration::from_secs(5))
    ///     .build()
    ///     .await?;
    /// # let _ = cache;
    /// # Ok(())
    /// # }
    /// ```
    pub fn soft_timeout(mut self, limit: Duration) -> Self {
        self.options.policy.soft_timeout = Some(limit);
        self
    }

    /// How long a computation of the direct API (`get_or_set` and friends)
    /// may run: past it, it is dropped and the call returns
    /// [`Error::Abandoned`](crate::Error::Abandoned) — or the failover
    /// value, when there is one. Nothing is stored. `#[cached]` functions
    /// that return a `Result` take `hard_timeout = ..` of their own.
    pub fn hard_timeout(mut self, limit: Duration) -> Self {
        self.options.policy.hard_timeout = Some(limit);
        self
    }

    /// Shortens each timeout by a random part up to `fraction` (0.1: up to
    /// 10%), so values written together do not expire together.
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        self.options.policy.jitter = Some(fraction);
        self
    }

    /// Whether concurrent misses on one key in this process run one
    /// computation and share its value (`true`, the default), or each run
    /// their own.
    pub fn single_flight(mut self, on: bool) -> Self {
        self.options.single_flight = on;
        self
    }

    /// Builds the cache. With Redis, it connects at once: a refused password
    /// or an invalid URL is an error here, and so is, with
    /// [`local_tier`](Self::local_tier), a server that answers but refuses
    /// the tier's `CLIENT TRACKING ... BCAST` or speaks no RESP3 (before
    /// Redis 6). An unreachable server is an error only without fail-open,
    /// otherwise it is logged and the cache starts with every call a miss
    /// until the server answers.
    pub async fn build(self) -> Result<Cache, Error> {
        let fail_open = self.options.fail_open;
        let cache = self.build_lazy()?;
        if let Err(error) = cache.engine.connect().await {
            if matches!(error, Error::Config { .. }) || is_refusal(&error) || !fail_open {
                return Err(error);
            }
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "cache backend not reachable at start; calls are misses until it answers"
            );
        }
        Ok(cache)
    }

    /// Builds the cache without connecting: Redis connections open on first use.
    pub(crate) fn build_lazy(self) -> Result<Cache, Error> {
        let keys =
            KeySpace::new(&self.prefix, self.max_key_length).map_err(|reason| Error::Config {
                reason,
                source: None,
            })?;
        let settings = &self.redis;
        if settings.connections == 0 {
            return Err(Error::Config {
                reason: "connections must be at least 1".to_owned(),
                source: None,
            });
        }
        if self.local_lifetime.is_some() && self.local.is_none() {
            return Err(Error::Config {
                reason: "local_lifetime is set without local_tier: say how large the local tier is"
                    .to_owned(),
                source: None,
            });
        }
        let seal = self.seal()?;
        let backend = match &self.target {
            Target::Cluster(seeds) => Backend::redis_cluster(seeds, settings)?,
            Target::Url(url) => Backend::redis(url, settings)?,
            Target::Sentinel { sentinels, master } => {
                Backend::redis_sentinel(sentinels, master, settings)?
            }
            Target::Memory => Backend::memory(self.memory_bytes),
        };
        let backend = match (self.local, self.track_versions) {
            (Some(_), Some(false)) if !matches!(self.target, Target::Memory) => {
                return Err(Error::Config {
                    reason: "track_versions(false) with local_tier: the local tier keeps \
                             versions with its entries; drop one of the two"
                        .to_owned(),
                    source: None,
                });
            }
            (Some(bytes), _) => backend.with_local(bytes, self.local_lifetime, &keys),
            (None, Some(true)) => backend.with_tracked_versions(&keys),
            (None, _) => backend,
        };
        Ok(Cache::from_parts(
            Arc::new(backend),
            keys,
            self.options,
            seal,
        ))
    }

    /// The cache of the environment, for the global cache: an invalid
    /// `REDIS_URL` gives a cache whose every call fails (a miss when failing
    /// open), never a silent fallback to memory.
    pub(crate) fn build_from_env() -> Cache {
        let builder = Self::default().from_env();
        let (prefix, max_key_length, options) = (
            builder.prefix.clone(),
            builder.max_key_length,
            builder.options,
        );
        builder.build_lazy().unwrap_or_else(|error| {
            tracing::error!(
                error = &error as &dyn std::error::Error,
                "cannot build the cache from the environment; every call is a miss"
            );
            let backend = Backend::unavailable(error.to_string());
            // The environment sets no prefix: the default one is valid.
            let keys = KeySpace::new(&prefix, max_key_length)
                .or_else(|_| KeySpace::new(DEFAULT_PREFIX, DEFAULT_MAX_KEY_LENGTH))
                .unwrap_or_else(|reason| unreachable!("the default key space is valid: {reason}"));
            Cache::from_parts(Arc::new(backend), keys, options, Seal::default())
        })
    }
}

impl Cache {
    /// A builder, for Redis or for settings other than the defaults.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::builder().key_prefix("shop").build().await?;
    /// assert_eq!(cache.key_for("k"), "shop:k");
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// A memory cache with the default settings.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let cache = cachette::Cache::memory();
    /// assert_eq!(cache.key_for("k"), "cachette:k");
    /// ```
    #[must_use]
    pub fn memory() -> Self {
        let builder = CacheBuilder::default();
        let backend = Backend::memory(builder.memory_bytes);
        // The default prefix and bound are valid.
        let keys = KeySpace::new(DEFAULT_PREFIX, DEFAULT_MAX_KEY_LENGTH)
            .unwrap_or_else(|reason| unreachable!("the default key space is valid: {reason}"));
        Cache::from_parts(Arc::new(backend), keys, builder.options, Seal::default())
    }
}

fn config(reason: &str) -> Error {
    Error::Config {
        reason: reason.to_owned(),
        source: None,
    }
}

/// Whether Redis answered and refused (bad password, unknown user), as opposed to not answering.
fn is_refusal(error: &Error) -> bool {
    let Error::Backend { source, .. } = error else {
        return false;
    };
    let redis = match source {
        BackendError::Redis(e) | BackendError::Pool(deadpool_redis::PoolError::Backend(e)) => e,
        BackendError::Pool(_) => return false,
    };
    matches!(
        redis.kind(),
        redis::ErrorKind::AuthenticationFailed
            | redis::ErrorKind::Server(
                redis::ServerErrorKind::NoPerm | redis::ServerErrorKind::ResponseError
            )
    ) || {
        // A cluster client reports a refused password inside its connect error.
        let text = redis.to_string();
        text.contains("WRONGPASS") || text.contains("AuthenticationFailed")
    }
}
