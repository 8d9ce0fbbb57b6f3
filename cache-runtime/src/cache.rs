//! The [`Cache`] handle and its operations.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::memory::Slot;
use crate::backend::{Backend, Expiry};
use crate::config::{CacheBuilder, Timeout};
use crate::key::KeySpace;
use crate::stats::{Counters, Stats};
use crate::{Error, codec};

/// What a value must be to go through the cache: serializable both ways,
/// cloneable (a memory hit hands out a clone) and shareable across tasks.
///
/// Every type that meets the bounds implements it.
///
/// ```
/// # extern crate cache_runtime as cachet;
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Stats { order_count: u32 }
///
/// fn assert_cacheable<T: cachet::Cacheable>() {}
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
/// # extern crate cache_runtime as cachet;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachet::Error> {
/// use std::time::Duration;
///
/// let cache = cachet::Cache::memory();
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
    pub(crate) counters: Counters,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("Cache")
            .field("backend", &inner.backend)
            .field("prefix", &inner.keys.prefix())
            .field("default_timeout", &inner.default_timeout)
            .field("fail_open", &inner.fail_open)
            .finish()
    }
}

impl Cache {
    /// A builder, for Redis or for settings other than the defaults.
    ///
    /// ```
    /// # extern crate cache_runtime as cachet;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachet::Error> {
    /// let cache = cachet::Cache::builder().key_prefix("shop").build().await?;
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
    /// # extern crate cache_runtime as cachet;
    /// let cache = cachet::Cache::memory();
    /// assert_eq!(cache.key_for("k"), "cachet:k");
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
    /// # extern crate cache_runtime as cachet;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachet::Error> {
    /// use std::time::Duration;
    ///
    /// let shop = cachet::Cache::memory();
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
                counters: Counters::default(),
            }),
        })
    }

    /// The key under which `key` is stored: the escaped prefix, `:`, the
    /// key — or, for a key too long, a shortened form with a digest.
    ///
    /// ```
    /// # extern crate cache_runtime as cachet;
    /// let cache = cachet::Cache::memory();
    /// assert_eq!(cache.key_for("user_order_stats:7"), "cachet:user_order_stats:7");
    /// ```
    #[must_use]
    pub fn key_for(&self, key: &str) -> String {
        self.inner.keys.entry(key)
    }

    /// The counters of this cache and all its clones.
    ///
    /// ```
    /// # extern crate cache_runtime as cachet;
    /// let cache = cachet::Cache::memory();
    /// assert_eq!(cache.stats().hits, 0);
    /// ```
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// The value stored at `key`, or `None` when there is none, it expired,
    /// it cannot be decoded as a `T` (then it is removed), or the backend
    /// failed (when failing open).
    ///
    /// ```
    /// # extern crate cache_runtime as cachet;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachet::Error> {
    /// let cache = cachet::Cache::memory();
    /// assert_eq!(cache.get::<u32>("absent").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get<T: Cacheable>(&self, key: &str) -> Result<Option<T>, Error> {
        let inner = &*self.inner;
        let full = inner.keys.entry(key);
        let found = match &*inner.backend {
            Backend::Memory(memory) => match memory.get(&full).await {
                Some(slot) => self.typed_or_decode(full, slot).await,
                None => None,
            },
            Backend::Redis(redis) => match redis.get(&full).await {
                Ok(Some(bytes)) => self.decode_or_remove(&full, &bytes).await,
                Ok(None) => None,
                Err(error) => {
                    self.backend_failed(error)?;
                    None
                }
            },
            Backend::Unavailable(reason) => {
                self.backend_failed(unavailable(reason))?;
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

    /// Stores `value` at `key` for `timeout`: a [`Duration`], `None` for no
    /// expiry, or [`Timeout::Default`].
    ///
    /// ```
    /// # extern crate cache_runtime as cachet;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachet::Error> {
    /// use cachet::Timeout;
    /// use std::time::Duration;
    ///
    /// let cache = cachet::Cache::memory();
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
    /// # extern crate cache_runtime as cachet;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachet::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = cachet::Cache::memory();
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
    /// # extern crate cache_runtime as cachet;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachet::Error> {
    /// let cache = cachet::Cache::memory();
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
    /// # extern crate cache_runtime as cachet;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachet::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = cachet::Cache::memory();
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
    /// # extern crate cache_runtime as cachet;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachet::Error> {
    /// let cache = cachet::Cache::memory();
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
                        && let Some(value) = self.typed_or_decode(full, slot).await
                    {
                        found.insert(key.clone(), value);
                    }
                }
            }
            Backend::Redis(redis) => match redis.get_many(&full).await {
                Ok(values) => {
                    for ((key, full), bytes) in keys.iter().zip(&full).zip(values) {
                        if let Some(bytes) = bytes
                            && let Some(value) = self.decode_or_remove(full, &bytes).await
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
    /// # extern crate cache_runtime as cachet;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachet::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = cachet::Cache::memory();
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
    /// # extern crate cache_runtime as cachet;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachet::Error> {
    /// let cache = cachet::Cache::memory();
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
    /// # extern crate cache_runtime as cachet;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachet::Error> {
    /// let cache = cachet::Cache::memory();
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
    /// # extern crate cache_runtime as cachet;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachet::Error> {
    /// let cache = cachet::Cache::memory();
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
    /// # extern crate cache_runtime as cachet;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachet::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = cachet::Cache::memory();
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
        if let Some(value) = self.get(key).await? {
            return Ok(value);
        }
        let value = compute().await;
        self.set_typed(key, &value, timeout.into()).await?;
        Ok(value)
    }

    /// Like [`get_or_set`](Self::get_or_set) for a fallible computation: only
    /// an `Ok` value is stored; an `Err` is returned and nothing is cached.
    /// Cache errors convert into the caller's error type.
    ///
    /// ```
    /// # extern crate cache_runtime as cachet;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    ///
    /// #[derive(Debug)]
    /// enum AppError { Cache(cachet::Error), Upstream }
    /// impl From<cachet::Error> for AppError {
    ///     fn from(e: cachet::Error) -> Self { AppError::Cache(e) }
    /// }
    ///
    /// let cache = cachet::Cache::memory();
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
        if let Some(value) = self.get(key).await? {
            return Ok(value);
        }
        let value = compute().await?;
        self.set_typed(key, &value, timeout.into()).await?;
        Ok(value)
    }

    /// Removes every entry under this cache's prefix (with Redis, found by
    /// `SCAN`, never `KEYS`; other prefixes and other data are left alone).
    ///
    /// ```
    /// # extern crate cache_runtime as cachet;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachet::Error> {
    /// let cache = cachet::Cache::memory();
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

    /// Stores a computed value, keeping it typed in memory so hits skip decoding.
    async fn set_typed<T: Cacheable>(
        &self,
        key: &str,
        value: &T,
        timeout: Timeout,
    ) -> Result<(), Error> {
        let bytes = codec::encode(value)?;
        let typed: Option<Arc<dyn Any + Send + Sync>> = match *self.inner.backend {
            Backend::Memory(_) => Some(Arc::new(value.clone())),
            _ => None,
        };
        self.store(key, bytes, typed, timeout).await
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

    /// A memory hit: the typed value when it is a `T`, else the decoded bytes.
    async fn typed_or_decode<T: Cacheable>(&self, full: String, slot: Slot) -> Option<T> {
        if let Some(value) = slot
            .typed
            .as_ref()
            .and_then(|typed| typed.downcast_ref::<T>())
        {
            return Some(value.clone());
        }
        let Backend::Memory(memory) = &*self.inner.backend else {
            return None;
        };
        if let Ok(value) = codec::decode::<T>(&slot.bytes) {
            memory
                .remember_typed(full, &slot.bytes, Arc::new(value.clone()))
                .await;
            Some(value)
        } else {
            self.inner.counters.undecodable(&full);
            memory.remove_if_same(full, &slot.bytes).await;
            None
        }
    }

    /// Decodes bytes read from Redis; undecodable ones are removed (if unchanged).
    async fn decode_or_remove<T: DeserializeOwned>(&self, full: &str, bytes: &[u8]) -> Option<T> {
        if let Ok(value) = codec::decode(bytes) {
            return Some(value);
        }
        self.inner.counters.undecodable(full);
        if let Backend::Redis(redis) = &*self.inner.backend
            && let Err(error) = redis.delete_if_equal(full, bytes).await
        {
            self.inner.counters.backend_error(&error, true);
        }
        None
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

fn unavailable(reason: &str) -> Error {
    Error::Unavailable {
        reason: reason.to_owned(),
    }
}
