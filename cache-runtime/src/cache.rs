//! The [`Cache`] handle and its operations.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::memory::Slot;
use crate::backend::{Backend, Expiry};
use crate::codec::{Freshness, Stored};
use crate::config::{CacheBuilder, Timeout};
use crate::flight::{FlightState, Flights, Role, follow};
use crate::key::KeySpace;
use crate::stats::{Counters, Stats};
use crate::version::{Expected, Guard, Scope};
use crate::{Error, codec};

/// What a value must be to go through the cache: serializable both ways,
/// cloneable (a memory hit hands out a clone) and shareable across tasks.
///
/// Every type that meets the bounds implements it.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Stats { order_count: u32 }
///
/// fn assert_cacheable<T: cachette::Cacheable>() {}
/// assert_cacheable::<Stats>();
/// assert_cacheable::<Vec<String>>();
/// ```
pub trait Cacheable: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Cacheable for T {}

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
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) backend: Arc<Backend>,
    pub(crate) keys: KeySpace,
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) fail_open: bool,
    pub(crate) tombstone_ttl: Duration,
    /// The lease every computation takes unless it says otherwise.
    pub(crate) default_lease: Option<Duration>,
    /// The freshness settings every computation uses unless it says otherwise.
    pub(crate) default_policy: Policy,
    pub(crate) counters: Counters,
    pub(crate) flights: Flights,
}

/// How [`Cache::load`] runs a computation.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub(crate) timeout: Timeout,
    /// Compute across the fleet under a Redis lease of this length.
    pub(crate) lease: Option<Duration>,
    /// On a failing read (without fail-open): compute uncached and report
    /// the error beside the outcome, or return the error alone.
    pub(crate) compute_on_error: bool,
    /// Freshness settings; those left `None` come from the cache.
    pub(crate) policy: Policy,
}

/// How long values stay usable past their timeout, and how expiries spread.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Policy {
    /// Stale-while-revalidate: served this long past the timeout while one caller refreshes.
    pub(crate) stale: Option<Duration>,
    /// Failover: kept this long past the timeout, served when a refresh fails.
    pub(crate) failover: Option<Duration>,
    /// Early refresh (`XFetch`) with this beta.
    pub(crate) early: Option<f64>,
    /// Each timeout shortened by a random part up to this fraction.
    pub(crate) jitter: Option<f64>,
}

/// What [`Cache::load`] came back with: the outcome, when there is one, and
/// the cache's error, when there is one.
pub(crate) struct Loaded<O> {
    pub(crate) outcome: Option<O>,
    pub(crate) error: Option<Error>,
}

/// What a read found: a value, or what the key held instead.
pub(crate) struct Read<T> {
    pub(crate) value: Option<T>,
    /// For a value past its freshness: how long ago it went stale (ms).
    pub(crate) stale: Option<u64>,
    pub(crate) expected: Expected,
    /// The current versions of the scope, `None` where a version key is missing.
    pub(crate) versions: Vec<Option<u64>>,
}

/// The outcome of a read made to be followed by a write.
pub(crate) enum Lookup<T> {
    Hit(T),
    /// A value past its freshness (or picked for early refresh), the guard
    /// for its recomputation, and how long ago it went stale (ms).
    Stale(T, Option<Guard>, u64),
    /// A miss, with what the write of the computed value must hold to;
    /// `None` when the backend failed and nothing should be written.
    Miss(Option<Guard>),
}

/// The fleet's lease on a key: held by this process (with its lock key and
/// token; `None` when there is no lease to hold), or not needed any more
/// because the holder stored the value.
enum Lease<T> {
    Held(Option<(String, String)>),
    Found(T),
}

/// What a miss read of a key, as a flight compares it.
fn state_of(guard: Option<&Guard>) -> FlightState {
    guard.map(|g| (g.expected, g.stamps.clone()))
}

/// The value to cache of an outcome that is the value. (`load` takes one
/// signature for every kind of outcome.)
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn itself<T>(value: &T) -> Option<&T> {
    Some(value)
}

/// The value to cache of a `Result`: its `Ok`.
pub(crate) fn ok_of<T, E>(result: &Result<T, E>) -> Option<&T> {
    result.as_ref().ok()
}

/// The value to cache of an `Option`: its `Some`.
#[allow(clippy::ref_option)] // `load` picks values out of `&O`
pub(crate) fn some_of<T>(option: &Option<T>) -> Option<&T> {
    option.as_ref()
}

impl<O> Loaded<O> {
    /// The outcome, or the cache's error when there is one (a value that
    /// cannot be encoded, or any failure without fail-open).
    pub(crate) fn into_result(self) -> Result<O, Error> {
        match (self.outcome, self.error) {
            (_, Some(error)) => Err(error),
            (Some(outcome), None) => Ok(outcome),
            (None, None) => unreachable!("a load ends with an outcome or an error"),
        }
    }
}

/// A judgement of stored bytes against the versions of the reader's scope.
enum Judged<T> {
    Hit(T),
    /// A value past its freshness: its write id and how long ago it went stale (ms).
    Stale(T, u64, u64),
    Miss(Expected),
    Undecodable,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("Cache")
            .field("backend", &inner.backend)
            .field("prefix", &inner.keys.prefix())
            .field("default_timeout", &inner.default_timeout)
            .field("fail_open", &inner.fail_open)
            .field("flights", &inner.flights.len())
            .finish()
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
    /// # drop(cache);
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
    #[allow(clippy::missing_panics_doc)] // the default settings are valid
    pub fn memory() -> Self {
        CacheBuilder::default()
            .memory()
            .build_lazy()
            .expect("the default memory cache is valid")
    }

    /// A handle on the same store (the same memory or the same Redis
    /// connections) under another key prefix, with its own counters.
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
        let inner = &*self.inner;
        let keys = KeySpace::new(prefix, inner.keys.max_len()).map_err(|reason| Error::Config {
            reason,
            source: None,
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                backend: Arc::clone(&inner.backend),
                keys,
                default_timeout: inner.default_timeout,
                fail_open: inner.fail_open,
                tombstone_ttl: inner.tombstone_ttl,
                default_lease: inner.default_lease,
                default_policy: inner.default_policy,
                counters: Counters::default(),
                flights: Flights::new(inner.flights.enabled()),
            }),
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
        self.inner.keys.entry(key)
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
        self.inner.counters.snapshot()
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
    pub fn health(&self) -> crate::Health {
        match &*self.inner.backend {
            Backend::Redis(redis) => redis.health(),
            Backend::Memory(_) => crate::Health::fixed(crate::Circuit::Closed),
            // Set up wrong: nothing will ever be tried.
            Backend::Unavailable(_) => crate::Health::fixed(crate::Circuit::Open {
                retry_in: Duration::MAX,
            }),
        }
    }

    /// The value stored at `key`, or `None` when there is none, it expired,
    /// it cannot be decoded as a `T` (then it is removed), or the backend
    /// failed (when failing open).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::memory();
    /// assert_eq!(cache.get::<u32>("absent").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get<T: Cacheable>(&self, key: &str) -> Result<Option<T>, Error> {
        self.get_in(key, &Scope::new()).await
    }

    /// Like [`get`](Self::get), for an entry written in `scope`: a value
    /// written before a bump of the scope's namespace or of one of its tags
    /// is a miss. The entry and the versions are read in one round trip.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use cachette::Scope;
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let scope = Scope::new().namespace("product").tag("category:books");
    /// cache.set_in("products:books", &vec!["Dune"], Duration::from_secs(60), &scope).await?;
    /// assert!(cache.get_in::<Vec<String>>("products:books", &scope).await?.is_some());
    /// cache.invalidate_tag("category:books").await?;
    /// assert!(cache.get_in::<Vec<String>>("products:books", &scope).await?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_in<T: Cacheable>(&self, key: &str, scope: &Scope) -> Result<Option<T>, Error> {
        let inner = &*self.inner;
        let full = inner.keys.entry(key);
        let vkeys = scope.version_keys(&inner.keys)?;
        let found = match self.read::<T>(&full, &vkeys, None).await {
            // A value past its freshness is kept only for the computations that refresh it.
            Ok(read) => read.value.filter(|_| read.stale.is_none()),
            Err(error) => {
                self.backend_failed(error)?;
                None
            }
        };
        if found.is_some() {
            inner.counters.hit();
        } else {
            inner.counters.miss();
        }
        Ok(found)
    }

    /// Stores `value` at `key` in `scope`, stamped with the scope's current
    /// versions (read first: two round trips with Redis).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use cachette::Scope;
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let scope = Scope::new().namespace("product");
    /// cache.set_in("products:all", &3, Duration::from_secs(60), &scope).await?;
    /// cache.invalidate_namespace("product").await?;
    /// assert_eq!(cache.get_in::<i32>("products:all", &scope).await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_in<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        timeout: impl Into<Timeout>,
        scope: &Scope,
    ) -> Result<(), Error> {
        let inner = &*self.inner;
        let vkeys = scope.version_keys(&inner.keys)?;
        if vkeys.is_empty() {
            return self.set(key, value, timeout).await;
        }
        let current = match self.current_versions(&vkeys).await {
            Ok(current) => current,
            Err(error) => return self.backend_failed(error),
        };
        let bytes = codec::encode_stamped(value, &current, Freshness::default())?;
        self.store(key, bytes, None, timeout.into()).await
    }

    /// Stores `value` at `key` for `timeout`: a [`Duration`], `None` for no
    /// expiry, or [`Timeout::Default`].
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use cachette::Timeout;
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// cache.set("a", &1.5_f64, Duration::from_secs(60)).await?;
    /// cache.set("b", &vec!["x", "y"], None).await?;
    /// cache.set("c", "text", Timeout::Default).await?;
    /// assert_eq!(cache.get::<Vec<String>>("b").await?, Some(vec!["x".into(), "y".into()]));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        timeout: impl Into<Timeout>,
    ) -> Result<(), Error> {
        let bytes = codec::encode(value)?;
        self.store(key, bytes, None, timeout.into()).await
    }

    /// Stores `value` unless `key` already holds a live value; whether it did.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// assert!(cache.add("k", "first", Duration::from_secs(60)).await?);
    /// assert!(!cache.add("k", "second", Duration::from_secs(60)).await?);
    /// assert_eq!(cache.get::<String>("k").await?.as_deref(), Some("first"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn add<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        timeout: impl Into<Timeout>,
    ) -> Result<bool, Error> {
        let bytes = codec::encode(value)?;
        let inner = &*self.inner;
        let expiry = timeout.into().resolve(inner.default_timeout);
        if expiry == Expiry::Now {
            return Ok(false);
        }
        let full = inner.keys.entry(key);
        let added = match &*inner.backend {
            Backend::Memory(memory) => Ok(memory.add(full, Slot::new(bytes, None, expiry)).await),
            Backend::Redis(redis) => redis.add(&full, &bytes, expiry).await,
            Backend::Unavailable(reason) => Err(unavailable(reason)),
        };
        let added = added.or_else(|error| self.backend_failed(error).map(|()| false))?;
        if added {
            inner.counters.writes(1);
        }
        Ok(added)
    }

    /// Removes `key`; whether there was a value to remove.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::memory();
    /// cache.set("k", "v", None).await?;
    /// assert!(cache.delete("k").await?);
    /// assert!(!cache.delete("k").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete(&self, key: &str) -> Result<bool, Error> {
        Ok(self.delete_many([key]).await? > 0)
    }

    /// Gives the value at `key` a new timeout; whether there was one.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// cache.set("session", "data", Duration::from_secs(60)).await?;
    /// assert!(cache.touch("session", Duration::from_secs(3600)).await?);
    /// assert!(!cache.touch("absent", Duration::from_secs(3600)).await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn touch(&self, key: &str, timeout: impl Into<Timeout>) -> Result<bool, Error> {
        let inner = &*self.inner;
        let expiry = timeout.into().resolve(inner.default_timeout);
        let full = inner.keys.entry(key);
        let touched = match &*inner.backend {
            Backend::Memory(memory) => Ok(memory.touch(full, expiry).await),
            Backend::Redis(redis) => redis.touch(&full, expiry).await,
            Backend::Unavailable(reason) => Err(unavailable(reason)),
        };
        touched.or_else(|error| self.backend_failed(error).map(|()| false))
    }

    /// The values found at `keys`, by key; absent and undecodable ones are
    /// left out. One round trip (`MGET`) with Redis.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::memory();
    /// cache.set_many([("a", 1), ("b", 2)], None).await?;
    /// let found = cache.get_many::<i32>(["a", "b", "c"]).await?;
    /// assert_eq!(found.len(), 2);
    /// assert_eq!(found["b"], 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_many<T: Cacheable>(
        &self,
        keys: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<HashMap<String, T>, Error> {
        let inner = &*self.inner;
        let keys: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_owned()).collect();
        let full: Vec<String> = keys.iter().map(|k| inner.keys.entry(k)).collect();
        let mut found = HashMap::with_capacity(keys.len());
        match &*inner.backend {
            Backend::Memory(memory) => {
                for (key, full) in keys.iter().zip(full) {
                    if let Some(slot) = memory.get(&full).await
                        && let Judged::Hit(value) = self.judge_slot(&full, &slot, &[], None).await
                    {
                        found.insert(key.clone(), value);
                    }
                }
            }
            Backend::Redis(redis) => match redis.get_many(&full).await {
                Ok(values) => {
                    for ((key, full), bytes) in keys.iter().zip(&full).zip(values) {
                        if let Some(bytes) = bytes
                            && let Judged::Hit(value) =
                                self.judge_bytes(full, &bytes, &[], None).await
                        {
                            found.insert(key.clone(), value);
                        }
                    }
                }
                Err(error) => self.backend_failed(error)?,
            },
            Backend::Unavailable(reason) => self.backend_failed(unavailable(reason))?,
        }
        inner
            .counters
            .hits_and_misses(found.len(), keys.len() - found.len());
        Ok(found)
    }

    /// Stores every `(key, value)` pair with the same timeout; one round trip
    /// (a pipeline) with Redis. Nothing is written if any value fails to encode.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// cache.set_many([("x", "1"), ("y", "2")], Duration::from_secs(60)).await?;
    /// assert_eq!(cache.get::<String>("y").await?.as_deref(), Some("2"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_many<K: AsRef<str>, T: Serialize>(
        &self,
        entries: impl IntoIterator<Item = (K, T)>,
        timeout: impl Into<Timeout>,
    ) -> Result<(), Error> {
        let inner = &*self.inner;
        let expiry = timeout.into().resolve(inner.default_timeout);
        let mut encoded = Vec::new();
        for (key, value) in entries {
            encoded.push((inner.keys.entry(key.as_ref()), codec::encode(&value)?));
        }
        let count = encoded.len();
        let written = match &*inner.backend {
            Backend::Memory(memory) => {
                for (full, bytes) in encoded {
                    memory.set(full, Slot::new(bytes, None, expiry)).await;
                }
                Ok(())
            }
            Backend::Redis(redis) => redis.set_many(&encoded, expiry).await,
            Backend::Unavailable(reason) => Err(unavailable(reason)),
        };
        match written {
            Ok(()) => {
                if expiry != Expiry::Now {
                    inner.counters.writes(count);
                }
                Ok(())
            }
            Err(error) => self.backend_failed(error),
        }
    }

    /// Removes every key of `keys`; how many held a value.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::memory();
    /// cache.set_many([("a", 1), ("b", 2)], None).await?;
    /// assert_eq!(cache.delete_many(["a", "b", "c"]).await?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_many(
        &self,
        keys: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<u64, Error> {
        let inner = &*self.inner;
        let full: Vec<String> = keys
            .into_iter()
            .map(|k| inner.keys.entry(k.as_ref()))
            .collect();
        let deleted = match &*inner.backend {
            Backend::Memory(memory) => {
                let mut n = 0;
                for key in &full {
                    n += u64::from(memory.delete(key).await);
                }
                Ok(n)
            }
            Backend::Redis(redis) => redis.delete_many(&full).await,
            Backend::Unavailable(reason) => Err(unavailable(reason)),
        };
        deleted.or_else(|error| self.backend_failed(error).map(|()| 0))
    }

    /// Adds `delta` to the integer counter at `key` and returns the new value.
    /// A missing counter starts at 0 and expires after the default timeout.
    /// Atomic with Redis (`INCRBY`): concurrent increments from many processes
    /// all count. Integers written with [`set`](Self::set) are counters too.
    ///
    /// When failing open and the backend fails, the result is `delta`
    /// (as if the counter had been absent) and nothing is stored.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::memory();
    /// cache.set("hits", &10, None).await?;
    /// assert_eq!(cache.incr("hits", 5).await?, 15);
    /// assert_eq!(cache.decr("hits", 1).await?, 14);
    /// assert_eq!(cache.get::<u64>("hits").await?, Some(14));
    /// assert_eq!(cache.incr("fresh", 1).await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        let inner = &*self.inner;
        let expiry = Timeout::Default.resolve(inner.default_timeout);
        let full = inner.keys.entry(key);
        let result = match &*inner.backend {
            Backend::Memory(memory) => Ok(memory.incr(full, delta, expiry).await),
            Backend::Redis(redis) => redis.incr(&full, delta, expiry).await,
            Backend::Unavailable(reason) => Err(unavailable(reason)),
        };
        match result {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(Error::NotACounter {
                key: key.to_owned(),
            }),
            Err(error) => self.backend_failed(error).map(|()| delta),
        }
    }

    /// Subtracts `delta` from the counter at `key`; see [`incr`](Self::incr).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::memory();
    /// assert_eq!(cache.decr("stock", 3).await?, -3);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn decr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        let negated = delta.checked_neg().ok_or_else(|| Error::NotACounter {
            key: key.to_owned(),
        })?;
        self.incr(key, negated).await
    }

    /// The value at `key`, or else the value of `compute`, which is stored
    /// for `timeout` and returned. A backend failure (when failing open)
    /// only means `compute` runs; its value is still returned.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let stats = cache
    ///     .get_or_set("user_order_stats:7", || async { 42_u32 }, Duration::from_secs(3600))
    ///     .await?;
    /// assert_eq!(stats, 42);
    /// // The second call finds it and does not run the closure.
    /// let again = cache
    ///     .get_or_set("user_order_stats:7", || async { unreachable!("a hit") as u32 }, Duration::from_secs(3600))
    ///     .await?;
    /// assert_eq!(again, 42);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_or_set<T, F, Fut>(
        &self,
        key: &str,
        compute: F,
        timeout: impl Into<Timeout>,
    ) -> Result<T, Error>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        self.get_or_set_in(key, compute, timeout, &Scope::new())
            .await
    }

    /// [`get_or_set`](Self::get_or_set) for an entry in `scope` (see
    /// [`get_in`](Self::get_in)). The versions are read with the entry, before
    /// `compute` runs, and the value is stamped with them: an invalidation
    /// that lands while `compute` runs wins over the value it returns.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use cachette::Scope;
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let scope = Scope::new().tag("user:42");
    /// let perms = cache
    ///     .get_or_set_in("user_permissions:42", || async { vec!["read".to_owned()] }, Duration::from_secs(3600), &scope)
    ///     .await?;
    /// assert_eq!(perms, ["read"]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_or_set_in<T, F, Fut>(
        &self,
        key: &str,
        compute: F,
        timeout: impl Into<Timeout>,
        scope: &Scope,
    ) -> Result<T, Error>
    where
        T: Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let loaded = self
            .load(
                key,
                scope,
                Self::plan(timeout.into()),
                async move { compute().await },
                |_| true,
                itself,
                |v| v,
            )
            .await;
        loaded.into_result()
    }

    /// [`get_or_set_in`](Self::get_or_set_in) with the refresh of a stale
    /// value in the background: when the cache serves values past their
    /// timeout ([`stale_while_revalidate`](crate::CacheBuilder::stale_while_revalidate))
    /// or refreshes them early ([`early_refresh`](crate::CacheBuilder::early_refresh)),
    /// every caller gets the stored value at once and a single refresh runs
    /// in a task spawned on the current Tokio runtime. The computation must
    /// therefore own what it uses (`Send + 'static`). A miss computes in the
    /// caller, as `get_or_set_in` does.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use cachette::{Cache, Scope};
    /// use std::time::Duration;
    ///
    /// let cache = Cache::builder()
    ///     .stale_while_revalidate(Duration::from_secs(300))
    ///     .build()
    ///     .await?;
    /// let homepage = cache
    ///     .get_or_set_detached("homepage", || async { "<h1>News</h1>".to_owned() }, Duration::from_secs(60), &Scope::new())
    ///     .await?;
    /// assert_eq!(homepage, "<h1>News</h1>");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_or_set_detached<T, F, Fut>(
        &self,
        key: &str,
        compute: F,
        timeout: impl Into<Timeout>,
        scope: &Scope,
    ) -> Result<T, Error>
    where
        T: Cacheable,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let loaded = self
            .load_detached(
                key,
                scope,
                Self::plan(timeout.into()),
                async move { compute().await },
                |_| true,
                itself,
                |v| v,
            )
            .await;
        loaded.into_result()
    }

    /// Like [`get_or_set`](Self::get_or_set) for a fallible computation: only
    /// an `Ok` value is stored; an `Err` is returned and nothing is cached.
    /// Cache errors convert into the caller's error type.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    ///
    /// #[derive(Debug)]
    /// enum AppError { Cache(cachette::Error), Upstream }
    /// impl From<cachette::Error> for AppError {
    ///     fn from(e: cachette::Error) -> Self { AppError::Cache(e) }
    /// }
    ///
    /// let cache = cachette::Cache::memory();
    /// let failed = cache
    ///     .try_get_or_set("rates", || async { Err::<f64, _>(AppError::Upstream) }, Duration::from_secs(60))
    ///     .await;
    /// assert!(matches!(failed, Err(AppError::Upstream)));
    /// let rate = cache
    ///     .try_get_or_set("rates", || async { Ok::<_, AppError>(1.08) }, Duration::from_secs(60))
    ///     .await
    ///     .unwrap();
    /// assert_eq!(rate, 1.08);
    /// # }
    /// ```
    pub async fn try_get_or_set<T, E, F, Fut>(
        &self,
        key: &str,
        compute: F,
        timeout: impl Into<Timeout>,
    ) -> Result<T, E>
    where
        T: Cacheable,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.try_get_or_set_in(key, compute, timeout, &Scope::new())
            .await
    }

    /// [`try_get_or_set`](Self::try_get_or_set) for an entry in `scope`:
    /// only an `Ok` value is stored, one computation runs per key, and the
    /// value is stamped with the scope's versions as in
    /// [`get_or_set_in`](Self::get_or_set_in).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use cachette::Scope;
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let scope = Scope::new().namespace("pages");
    /// let page = cache
    ///     .try_get_or_set_in("/about", || async { Ok::<_, cachette::Error>("<h1>About</h1>".to_owned()) }, Duration::from_secs(60), &scope)
    ///     .await?;
    /// assert_eq!(page, "<h1>About</h1>");
    /// cache.invalidate_namespace("pages").await?;
    /// assert_eq!(cache.get_in::<String>("/about", &scope).await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn try_get_or_set_in<T, E, F, Fut>(
        &self,
        key: &str,
        compute: F,
        timeout: impl Into<Timeout>,
        scope: &Scope,
    ) -> Result<T, E>
    where
        T: Cacheable,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let loaded = self
            .load(
                key,
                scope,
                Self::plan(timeout.into()),
                async move { compute().await },
                |_| true,
                ok_of,
                Ok,
            )
            .await;
        match loaded.into_result() {
            Ok(outcome) => outcome,
            Err(error) => Err(error.into()),
        }
    }

    /// Drops the entry at `key` so that nothing computed before this call can
    /// be served after it: the key holds a short-lived tombstone (for the
    /// cache's tombstone TTL, 10 minutes by default) that a computation which
    /// read the key before the invalidation cannot overwrite. Use it from
    /// update code; [`delete`](Self::delete) is the plain delete.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// cache.set("user_permissions:42", &["read"], Duration::from_secs(3600)).await?;
    /// cache.invalidate("user_permissions:42").await?;
    /// assert_eq!(cache.get::<Vec<String>>("user_permissions:42").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn invalidate(&self, key: &str) -> Result<(), Error> {
        let inner = &*self.inner;
        let full = inner.keys.entry(key);
        let expiry = Expiry::After(inner.tombstone_ttl);
        let done = match &*inner.backend {
            Backend::Memory(memory) => {
                memory
                    .set(full, Slot::new(codec::tombstone(), None, expiry))
                    .await;
                Ok(())
            }
            Backend::Redis(redis) => redis.set(&full, &codec::tombstone(), expiry).await,
            Backend::Unavailable(reason) => Err(unavailable(reason)),
        };
        done.or_else(|error| self.backend_failed(error))
    }

    /// Drops every entry of `namespace` at once, in one atomic command;
    /// returns the namespace's new version.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use cachette::Scope;
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let product = Scope::new().namespace("product");
    /// cache.set_in("products:all", &["Dune"], Duration::from_secs(3600), &product).await?;
    /// cache.invalidate_namespace("product").await?;
    /// assert_eq!(cache.get_in::<Vec<String>>("products:all", &product).await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn invalidate_namespace(&self, namespace: &str) -> Result<u64, Error> {
        self.bump(&self.inner.keys.internal("ns", namespace)).await
    }

    /// Drops every entry tagged `tag` at once; returns the tag's new version.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use cachette::Scope;
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let tagged = Scope::new().tag("user:42");
    /// cache.set_in("orders:42", &3, Duration::from_secs(3600), &tagged).await?;
    /// cache.invalidate_tag("user:42").await?;
    /// assert_eq!(cache.get_in::<i32>("orders:42", &tagged).await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn invalidate_tag(&self, tag: &str) -> Result<u64, Error> {
        self.bump(&self.inner.keys.internal("tag", tag)).await
    }

    /// A namespace of this cache, to read or bump its version.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::memory();
    /// let product = cache.namespace("product");
    /// let before = product.version().await?;
    /// assert_eq!(product.bump().await?, before + 1);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn namespace(&self, name: &str) -> Namespace {
        Namespace {
            cache: self.clone(),
            key: self.inner.keys.internal("ns", name),
        }
    }

    async fn bump(&self, vkey: &str) -> Result<u64, Error> {
        let bumped = match &*self.inner.backend {
            Backend::Memory(memory) => Ok(memory.bump(vkey)),
            Backend::Redis(redis) => redis.bump(vkey, codec::fresh_version()).await,
            Backend::Unavailable(reason) => Err(unavailable(reason)),
        };
        bumped.or_else(|error| self.backend_failed(error).map(|()| 0))
    }

    /// Removes every entry under this cache's prefix (with Redis, found by
    /// `SCAN`, never `KEYS`; other prefixes and other data are left alone).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::memory();
    /// cache.set("k", "v", None).await?;
    /// cache.clear().await?;
    /// assert_eq!(cache.get::<String>("k").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn clear(&self) -> Result<(), Error> {
        let inner = &*self.inner;
        let cleared = match &*inner.backend {
            Backend::Memory(memory) => {
                let keys = inner.keys.clone();
                memory.clear(move |stored| keys.owns(stored)).await;
                Ok(())
            }
            Backend::Redis(redis) => redis.clear(&inner.keys.scan_pattern()).await.map(drop),
            Backend::Unavailable(reason) => Err(unavailable(reason)),
        };
        cleared.or_else(|error| self.backend_failed(error))
    }

    /// Writes encoded bytes at `key`, failing open as configured.
    async fn store(
        &self,
        key: &str,
        bytes: Vec<u8>,
        typed: Option<Arc<dyn Any + Send + Sync>>,
        timeout: Timeout,
    ) -> Result<(), Error> {
        let inner = &*self.inner;
        let expiry = timeout.resolve(inner.default_timeout);
        let full = inner.keys.entry(key);
        let written = match &*inner.backend {
            Backend::Memory(memory) => {
                memory.set(full, Slot::new(bytes, typed, expiry)).await;
                Ok(())
            }
            Backend::Redis(redis) => redis.set(&full, &bytes, expiry).await,
            Backend::Unavailable(reason) => Err(unavailable(reason)),
        };
        match written {
            Ok(()) => {
                if expiry != Expiry::Now {
                    inner.counters.writes(1);
                }
                Ok(())
            }
            Err(error) => self.backend_failed(error),
        }
    }

    fn stale(&self, plan: &Plan) -> u64 {
        let stale = plan.policy.stale.or(self.inner.default_policy.stale);
        stale.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn failover(&self, plan: &Plan) -> u64 {
        let failover = plan.policy.failover.or(self.inner.default_policy.failover);
        failover.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn early(&self, plan: &Plan) -> Option<f64> {
        plan.policy.early.or(self.inner.default_policy.early)
    }

    /// How long a computed value lives in the store, and how long of that it is fresh.
    fn lifetime(&self, plan: &Plan, compute_ms: u32) -> (Expiry, Freshness) {
        let expiry = plan.timeout.resolve(self.inner.default_timeout);
        let Expiry::After(timeout) = expiry else {
            return (expiry, Freshness::default());
        };
        let jitter = plan
            .policy
            .jitter
            .or(self.inner.default_policy.jitter)
            .unwrap_or(0.0);
        #[allow(clippy::cast_precision_loss)] // 53 random bits are exact in an f64
        let draw = (codec::random_id() >> 11) as f64 / (1_u64 << 53) as f64;
        let fresh = timeout
            .mul_f64(1.0 - jitter.clamp(0.0, 1.0) * draw)
            .max(Duration::from_millis(1));
        let extra = self.stale(plan).max(self.failover(plan));
        if extra == 0 && self.early(plan).is_none() {
            return (Expiry::After(fresh), Freshness::default());
        }
        let fresh_until_ms =
            codec::now_ms() + u64::try_from(fresh.as_millis()).unwrap_or(u64::MAX / 2);
        let freshness = Freshness {
            fresh_until_ms,
            compute_ms,
        };
        (
            Expiry::After(fresh + Duration::from_millis(extra)),
            freshness,
        )
    }

    /// How the direct API computes: the cache's default lease, and errors returned.
    fn plan(timeout: Timeout) -> Plan {
        Plan {
            timeout,
            lease: None,
            compute_on_error: false,
            policy: Policy::default(),
        }
    }

    /// Reads the entry at `full` and the versions at `vkeys`, in one round trip.
    pub(crate) async fn read<T: Cacheable>(
        &self,
        full: &str,
        vkeys: &[String],
        early: Option<f64>,
    ) -> Result<Read<T>, Error> {
        let (judged, versions) = match &*self.inner.backend {
            Backend::Memory(memory) => {
                let versions = memory.versions(vkeys);
                let judged = match memory.get(full).await {
                    Some(slot) => self.judge_slot(full, &slot, &versions, early).await,
                    None => Judged::Miss(Expected::Absent),
                };
                (judged, versions)
            }
            Backend::Redis(redis) => {
                let (bytes, versions) = redis.read(full, vkeys).await?;
                let judged = match bytes {
                    Some(bytes) => self.judge_bytes(full, &bytes, &versions, early).await,
                    None => Judged::Miss(Expected::Absent),
                };
                (judged, versions)
            }
            Backend::Unavailable(reason) => return Err(unavailable(reason)),
        };
        let (value, expected, stale) = match judged {
            Judged::Hit(value) => (Some(value), Expected::Absent, None),
            Judged::Stale(value, id, past) => (Some(value), Expected::WriteId(id), Some(past)),
            Judged::Miss(expected) => (None, expected, None),
            Judged::Undecodable => (None, Expected::Absent, None),
        };
        Ok(Read {
            value,
            stale,
            expected,
            versions,
        })
    }

    /// A read to be followed by the write of a computed value. On a miss the
    /// scope's missing version keys are created, so the value can be stamped.
    /// With `count`, a hit is counted; what a miss becomes (computed here, or
    /// joined to another computation) is counted by the caller.
    pub(crate) async fn read_for_write<T: Cacheable>(
        &self,
        key: &str,
        scope: &Scope,
        count: bool,
        early: Option<f64>,
    ) -> Result<Lookup<T>, Error> {
        let inner = &*self.inner;
        let count = |counter: fn(&Counters)| {
            if count {
                counter(&inner.counters);
            }
        };
        let full = inner.keys.entry(key);
        let vkeys = scope.version_keys(&inner.keys)?;
        let read = match self.read::<T>(&full, &vkeys, early).await {
            Ok(read) => read,
            Err(error) => {
                self.backend_failed(error)?;
                return Ok(Lookup::Miss(None));
            }
        };
        let stale = match (read.value, read.stale) {
            (Some(value), None) => {
                count(Counters::hit);
                return Ok(Lookup::Hit(value));
            }
            (Some(value), Some(past)) => Some((value, past)),
            (None, _) => None,
        };
        let stamps = match Box::pin(self.settle_versions(&vkeys, read.versions)).await {
            Ok(stamps) => stamps,
            Err(error) => {
                self.backend_failed(error)?;
                return Ok(Lookup::Miss(None));
            }
        };
        let guard = Some(Guard {
            full_key: full,
            expected: read.expected,
            stamps: Some(stamps),
        });
        Ok(match stale {
            Some((value, past)) => Lookup::Stale(value, guard, past),
            None => Lookup::Miss(guard),
        })
    }

    /// The heart of every cached computation: a hit returns the stored
    /// value; on a miss the first caller in this process computes (single
    /// flight) — with a lease, the first in the fleet — stores what
    /// `value_of` picks from the outcome when `store_if` agrees, and hands it
    /// to the callers that waited; `wrap` makes an outcome of a value found
    /// or handed over.
    #[allow(clippy::too_many_arguments)] // the one generic core behind every entry point
    pub(crate) async fn load<T, O, Fut>(
        &self,
        key: &str,
        scope: &Scope,
        plan: Plan,
        compute: Fut,
        store_if: impl FnOnce(&O) -> bool,
        value_of: for<'o> fn(&'o O) -> Option<&'o T>,
        wrap: fn(T) -> O,
    ) -> Loaded<O>
    where
        T: Cacheable,
        Fut: Future<Output = O>,
    {
        let first = self
            .read_for_write::<T>(key, scope, true, self.early(&plan))
            .await;
        if let Ok(Lookup::Hit(value)) = first {
            return Loaded {
                outcome: Some(wrap(value)),
                error: None,
            };
        }
        // A miss: the rest lives on the heap, so a hit's future stays small.
        Box::pin(self.load_miss(key, scope, plan, first, compute, store_if, value_of, wrap)).await
    }

    /// [`load`](Self::load) for a computation that can outlive its caller:
    /// a value served stale (stale-while-revalidate) or picked for early
    /// refresh is returned at once, and one refresh runs in a task spawned on
    /// the current Tokio runtime. Outside a runtime, this is `load`.
    #[allow(clippy::too_many_arguments)] // `load`'s arguments, owned
    pub(crate) async fn load_detached<T, O, Fut, S>(
        &self,
        key: &str,
        scope: &Scope,
        plan: Plan,
        compute: Fut,
        store_if: S,
        value_of: for<'o> fn(&'o O) -> Option<&'o T>,
        wrap: fn(T) -> O,
    ) -> Loaded<O>
    where
        T: Cacheable,
        O: Send + 'static,
        Fut: Future<Output = O> + Send + 'static,
        S: FnOnce(&O) -> bool + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self
                .load(key, scope, plan, compute, store_if, value_of, wrap)
                .await;
        };
        let first = self
            .read_for_write::<T>(key, scope, true, self.early(&plan))
            .await;
        match first {
            Ok(Lookup::Hit(value)) => Loaded {
                outcome: Some(wrap(value)),
                error: None,
            },
            Ok(Lookup::Stale(value, _, past)) if past == 0 || past < self.stale(&plan) => {
                self.inner.counters.miss();
                // A refresh already under way (here or in a spawned task) needs no other.
                if !self.inner.flights.busy(&self.inner.keys.entry(key)) {
                    let (cache, key, scope) = (self.clone(), key.to_owned(), scope.clone());
                    runtime.spawn(async move {
                        let loaded = cache
                            .load(&key, &scope, plan, compute, store_if, value_of, wrap)
                            .await;
                        if let Some(error) = &loaded.error {
                            let error: &dyn std::error::Error = error;
                            tracing::error!(key, error, "background refresh not stored");
                        }
                    });
                }
                Loaded {
                    outcome: Some(wrap(value)),
                    error: None,
                }
            }
            first => {
                Box::pin(self.load_miss(key, scope, plan, first, compute, store_if, value_of, wrap))
                    .await
            }
        }
    }

    /// [`load`](Self::load) after its first read missed (or failed).
    #[allow(clippy::too_many_arguments, clippy::too_many_lines)] // one miss, step by step
    async fn load_miss<T, O, Fut>(
        &self,
        key: &str,
        scope: &Scope,
        plan: Plan,
        first: Result<Lookup<T>, Error>,
        compute: Fut,
        store_if: impl FnOnce(&O) -> bool,
        value_of: for<'o> fn(&'o O) -> Option<&'o T>,
        wrap: fn(T) -> O,
    ) -> Loaded<O>
    where
        T: Cacheable,
        Fut: Future<Output = O>,
    {
        let uncached = |compute: Fut, error: Error| async move {
            if plan.compute_on_error {
                Loaded {
                    outcome: Some(compute.await),
                    error: Some(error),
                }
            } else {
                Loaded {
                    outcome: None,
                    error: Some(error),
                }
            }
        };
        let counters = &self.inner.counters;
        let full = self.inner.keys.entry(key);
        let mut first = Some(first);
        // The last good value (stale or refreshed early), for stale-while-revalidate and failover.
        let mut kept: Option<T> = None;
        let mut past_fresh_ms = 0;
        loop {
            let read = match first.take() {
                Some(read) => read,
                None => {
                    self.read_for_write::<T>(key, scope, false, self.early(&plan))
                        .await
                }
            };
            let guard = match read {
                Ok(Lookup::Hit(value)) => {
                    // Stored by a computation this call waited for.
                    counters.joined();
                    return Loaded {
                        outcome: Some(wrap(value)),
                        error: None,
                    };
                }
                Ok(Lookup::Stale(value, guard, past)) => {
                    kept = Some(value);
                    past_fresh_ms = past;
                    guard
                }
                Ok(Lookup::Miss(guard)) => guard,
                Err(error) => {
                    counters.miss();
                    return uncached(compute, error).await;
                }
            };
            // Stale-while-revalidate: while one caller recomputes, the others
            // are served the stale value at once.
            // (`past_fresh_ms` is 0 for a value still fresh but picked for early refresh.)
            let serve_stale =
                kept.is_some() && (past_fresh_ms == 0 || past_fresh_ms < self.stale(&plan));
            // Only a flight that read the key as this call did may serve it:
            // one that read it before an invalidation this call saw may not.
            let leader = match self.inner.flights.join(&full, state_of(guard.as_ref())) {
                Role::Leader(leader) => leader,
                Role::Follower(_) if serve_stale => {
                    counters.miss();
                    let stale = kept.expect("serve_stale implies a kept value");
                    return Loaded {
                        outcome: Some(wrap(stale)),
                        error: None,
                    };
                }
                Role::Follower(landing) => match follow(landing).await {
                    Some(value) => match value.downcast_ref::<T>() {
                        Some(value) => {
                            counters.joined();
                            return Loaded {
                                outcome: Some(wrap(value.clone())),
                                error: None,
                            };
                        }
                        // Another type under the same key: compute for ourselves, store nothing.
                        None => {
                            counters.miss();
                            return Loaded {
                                outcome: Some(compute.await),
                                error: None,
                            };
                        }
                    },
                    // The leader landed nothing: read again, and lead if still a miss.
                    None => continue,
                },
            };
            // A flight that landed between our read and our join may have stored the value.
            // With a value kept for refresh, only a fresher one counts as a hit: an
            // infinite beta makes any value with a freshness stale again.
            let recheck_early = kept.as_ref().map(|_| f64::INFINITY);
            // A read that just failed (fail-open: no guard) is not tried again:
            // one deadline per call is all a failing backend may cost.
            let recheck = match guard {
                None => Err(None),
                Some(guard) => self
                    .read_for_write::<T>(key, scope, false, recheck_early)
                    .await
                    .map_err(|_| Some(guard)),
            };
            let guard = match recheck {
                Ok(Lookup::Hit(value)) => {
                    counters.joined();
                    leader.land(Some(Arc::new(value.clone())));
                    return Loaded {
                        outcome: Some(wrap(value)),
                        error: None,
                    };
                }
                Ok(Lookup::Miss(again) | Lookup::Stale(_, again, _)) => {
                    leader.restate(state_of(again.as_ref()));
                    again
                }
                Err(guard) => guard,
            };
            // Without a guard the backend failed: no lease to take, nothing to write.
            let lease_for = guard.as_ref().and(plan.lease.or(self.inner.default_lease));
            let lease = match self.lease::<T>(key, scope, lease_for).await {
                Lease::Found(value) => {
                    counters.joined();
                    leader.land(Some(Arc::new(value.clone())));
                    return Loaded {
                        outcome: Some(wrap(value)),
                        error: None,
                    };
                }
                Lease::Held(lease) => lease,
            };
            counters.miss();
            let started = std::time::Instant::now();
            let outcome = compute.await;
            let compute_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
            if value_of(&outcome).is_none()
                && let Some(kept) = kept.filter(|_| past_fresh_ms < self.failover(&plan))
            {
                // Failover: the computation gave nothing to cache; serve the last good value.
                tracing::warn!(key, "computation failed; serving the last good value");
                if let Some((lock_key, token)) = lease {
                    self.release_lease(&lock_key, &token).await;
                }
                leader.land(Some(Arc::new(kept.clone())));
                return Loaded {
                    outcome: Some(wrap(kept)),
                    error: None,
                };
            }
            let stored = value_of(&outcome).filter(|_| store_if(&outcome));
            let error = match (stored, guard) {
                (Some(value), Some(guard)) => self
                    .write_guarded(guard, value, &plan, compute_ms)
                    .await
                    .err(),
                _ => None,
            };
            if let Some((lock_key, token)) = lease {
                self.release_lease(&lock_key, &token).await;
            }
            leader.land(stored.map(|value| Arc::new(value.clone()) as Arc<dyn Any + Send + Sync>));
            return Loaded {
                outcome: Some(outcome),
                error,
            };
        }
    }

    /// With a lease (and Redis), makes this process the one in the fleet
    /// that computes `key`: takes the lease, or waits for the holder's value
    /// (polling with backoff) and takes the lease over if it is released or
    /// expires — never longer than the lease, after which it computes anyway.
    async fn lease<T: Cacheable>(
        &self,
        key: &str,
        scope: &Scope,
        lease: Option<Duration>,
    ) -> Lease<T> {
        let (Some(ttl), Backend::Redis(redis)) = (lease, &*self.inner.backend) else {
            return Lease::Held(None);
        };
        let lock_key = self.inner.keys.internal("lock", key);
        let token = format!("{:x}", codec::fresh_version());
        let start = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            match redis.acquire_lease(&lock_key, &token, ttl).await {
                Ok(true) => return Lease::Held(Some((lock_key, token))),
                Ok(false) => {}
                Err(error) => {
                    // Fail open: compute without the fleet's lease.
                    self.inner.counters.backend_error(&error, true);
                    return Lease::Held(None);
                }
            }
            if start.elapsed() >= ttl {
                return Lease::Held(None);
            }
            tokio::time::sleep(pause.min(ttl.saturating_sub(start.elapsed()))).await;
            pause = (pause * 2).min(Duration::from_millis(100));
            if let Ok(Lookup::Hit(value)) = self.read_for_write::<T>(key, scope, false, None).await
            {
                return Lease::Found(value);
            }
        }
    }

    async fn release_lease(&self, lock_key: &str, token: &str) {
        if let Backend::Redis(redis) = &*self.inner.backend
            && let Err(error) = redis.delete_if_equal(lock_key, token.as_bytes()).await
        {
            // The lease expires on its own.
            self.inner.counters.backend_error(&error, true);
        }
    }

    /// Stores a computed value unless the key changed since the read that
    /// made `guard` (an invalidation, or another write). In memory the value
    /// is kept typed, so hits skip decoding.
    pub(crate) async fn write_guarded<T: Cacheable>(
        &self,
        guard: Guard,
        value: &T,
        plan: &Plan,
        compute_ms: u32,
    ) -> Result<(), Error> {
        let inner = &*self.inner;
        let Some(stamps) = guard.stamps else {
            return Ok(());
        };
        let (expiry, freshness) = self.lifetime(plan, compute_ms);
        if expiry == Expiry::Now {
            return Ok(());
        }
        let bytes = codec::encode_stamped(value, &stamps, freshness)?;
        let written = match &*inner.backend {
            Backend::Memory(memory) => {
                let typed: Arc<dyn Any + Send + Sync> = Arc::new(value.clone());
                Ok(memory
                    .write_guarded(
                        guard.full_key,
                        Slot::new(bytes, Some(typed), expiry),
                        guard.expected,
                    )
                    .await)
            }
            Backend::Redis(redis) => {
                redis
                    .write_guarded(&guard.full_key, &bytes, expiry, guard.expected)
                    .await
            }
            Backend::Unavailable(reason) => Err(unavailable(reason)),
        };
        match written {
            Ok(stored) => {
                if stored {
                    inner.counters.writes(1);
                }
                Ok(())
            }
            Err(error) => self.backend_failed(error),
        }
    }

    /// The current versions at `vkeys`, creating the missing ones.
    async fn current_versions(&self, vkeys: &[String]) -> Result<Vec<u64>, Error> {
        let versions = match &*self.inner.backend {
            Backend::Memory(memory) => memory.versions(vkeys),
            Backend::Redis(redis) => redis.read_versions(vkeys).await?,
            Backend::Unavailable(reason) => return Err(unavailable(reason)),
        };
        self.settle_versions(vkeys, versions).await
    }

    /// Fills the versions that were missing by creating their keys (with
    /// Redis; in memory no version is ever missing).
    async fn settle_versions(
        &self,
        vkeys: &[String],
        versions: Vec<Option<u64>>,
    ) -> Result<Vec<u64>, Error> {
        if versions.iter().all(Option::is_some) {
            return Ok(versions.into_iter().flatten().collect());
        }
        let Backend::Redis(redis) = &*self.inner.backend else {
            return Ok(versions
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect());
        };
        let missing: Vec<String> = vkeys
            .iter()
            .zip(&versions)
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        let mut created = redis.create_versions(&missing).await?.into_iter();
        Ok(versions
            .into_iter()
            .map(|v| v.or_else(|| created.next()).unwrap_or_default())
            .collect())
    }

    /// Judges a memory entry: its typed value when it is a `T`, else its bytes.
    async fn judge_slot<T: Cacheable>(
        &self,
        full: &str,
        slot: &Slot,
        versions: &[Option<u64>],
        early: Option<f64>,
    ) -> Judged<T> {
        let Backend::Memory(memory) = &*self.inner.backend else {
            return Judged::Undecodable;
        };
        if let Some(value) = slot
            .typed
            .as_ref()
            .and_then(|typed| typed.downcast_ref::<T>())
        {
            return match codec::inspect(&slot.bytes) {
                Ok(Stored::Value(meta, _)) if meta.stamped(versions) => {
                    freshen(value.clone(), &meta, early)
                }
                Ok(Stored::Counter(_)) if versions.is_empty() => Judged::Hit(value.clone()),
                Ok(Stored::Value(meta, _)) => Judged::Miss(Expected::WriteId(meta.write_id)),
                _ => Judged::Miss(Expected::Nothing),
            };
        }
        let judged = judge(&slot.bytes, versions, early);
        match &judged {
            Judged::Hit(value) | Judged::Stale(value, ..) => {
                let typed: Arc<dyn Any + Send + Sync> = Arc::new(T::clone(value));
                Box::pin(memory.remember_typed(full.to_owned(), &slot.bytes, typed)).await;
            }
            Judged::Undecodable => {
                self.inner.counters.undecodable(full);
                Box::pin(memory.remove_if_same(full.to_owned(), &slot.bytes)).await;
            }
            Judged::Miss(_) => {}
        }
        judged
    }

    /// Judges bytes read from Redis; undecodable ones are removed (if unchanged).
    async fn judge_bytes<T: Cacheable>(
        &self,
        full: &str,
        bytes: &[u8],
        versions: &[Option<u64>],
        early: Option<f64>,
    ) -> Judged<T> {
        let judged = judge(bytes, versions, early);
        if let Judged::Undecodable = judged {
            self.inner.counters.undecodable(full);
            if let Backend::Redis(redis) = &*self.inner.backend
                && let Err(error) = Box::pin(redis.delete_if_equal(full, bytes)).await
            {
                self.inner.counters.backend_error(&error, true);
            }
        }
        judged
    }

    /// Counts and logs a backend error; swallows it when failing open.
    fn backend_failed(&self, error: Error) -> Result<(), Error> {
        let ignore = self.inner.fail_open && error.is_backend();
        if error.is_backend() {
            self.inner.counters.backend_error(&error, ignore);
        }
        if ignore { Ok(()) } else { Err(error) }
    }
}

/// A namespace of a cache, from [`Cache::namespace`].
#[derive(Debug, Clone)]
pub struct Namespace {
    cache: Cache,
    key: String,
}

impl Namespace {
    /// The current version (0 before the namespace is first used).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// assert_eq!(cachette::Cache::memory().namespace("fresh").version().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn version(&self) -> Result<u64, Error> {
        let version = match &*self.cache.inner.backend {
            Backend::Memory(memory) => Ok(memory.versions(std::slice::from_ref(&self.key))[0]),
            Backend::Redis(redis) => redis
                .read_versions(std::slice::from_ref(&self.key))
                .await
                .map(|v| v[0]),
            Backend::Unavailable(reason) => Err(unavailable(reason)),
        };
        version
            .map(Option::unwrap_or_default)
            .or_else(|error| self.cache.backend_failed(error).map(|()| 0))
    }

    /// Bumps the version: every entry of the namespace becomes a miss.
    /// One atomic command, whatever the number of entries.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let product = cachette::Cache::memory().namespace("product");
    /// assert_eq!(product.bump().await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bump(&self) -> Result<u64, Error> {
        self.cache.bump(&self.key).await
    }
}

/// Judges stored bytes against the reader's versions, without side effects.
fn judge<T: Cacheable>(bytes: &[u8], versions: &[Option<u64>], early: Option<f64>) -> Judged<T> {
    match codec::inspect(bytes) {
        Err(_) => Judged::Undecodable,
        Ok(Stored::Tombstone(meta)) => Judged::Miss(Expected::WriteId(meta.write_id)),
        Ok(Stored::Counter(n)) if versions.is_empty() => {
            codec::decode_counter(n).map_or(Judged::Undecodable, Judged::Hit)
        }
        Ok(Stored::Counter(_)) => Judged::Miss(Expected::Nothing),
        Ok(Stored::Value(meta, _)) if !meta.stamped(versions) => {
            Judged::Miss(Expected::WriteId(meta.write_id))
        }
        Ok(Stored::Value(meta, payload)) => match codec::decode_payload(payload) {
            Ok(value) => freshen(value, &meta, early),
            Err(_) => Judged::Undecodable,
        },
    }
}

/// A decoded value as its freshness makes it: a hit, or stale once past its
/// freshness — or before, with early refresh (the `XFetch` rule of Vattani,
/// Chierichetti and Lowenstein: recompute when `now - compute time × beta ×
/// ln(random)` reaches the expiry, so hot entries refresh one at a time
/// before they expire).
fn freshen<T>(value: T, meta: &codec::Meta<'_>, early: Option<f64>) -> Judged<T> {
    let freshness = meta.freshness;
    if freshness.fresh_until_ms == 0 {
        return Judged::Hit(value);
    }
    let now = codec::now_ms();
    if now >= freshness.fresh_until_ms {
        return Judged::Stale(value, meta.write_id, now - freshness.fresh_until_ms);
    }
    if let Some(beta) = early
        && freshness.compute_ms > 0
    {
        // A uniform draw in (0, 1] from 53 random bits.
        #[allow(clippy::cast_precision_loss)] // 53 bits are exact in an f64
        let draw = ((codec::random_id() >> 11) + 1) as f64 / (1_u64 << 53) as f64;
        let ahead = -(f64::from(freshness.compute_ms) * beta * draw.ln());
        #[allow(clippy::cast_precision_loss)] // milliseconds since 1970 fit 53 bits
        let due = now as f64 + ahead >= freshness.fresh_until_ms as f64;
        if due {
            return Judged::Stale(value, meta.write_id, 0);
        }
    }
    Judged::Hit(value)
}

fn unavailable(reason: &str) -> Error {
    Error::Unavailable {
        reason: reason.to_owned(),
    }
}
