//! The direct operations, as in Django's cache API: `get`, `set`, `add`,
//! `delete`, `touch`, the `_many` forms, counters and `clear`.

use std::collections::HashMap;

use serde::Serialize;

use super::Cache;
use crate::Error;
use crate::backend::{Counted, Expiry};
use crate::codec::{self, Cacheable, Freshness};
use crate::options::Timeout;
use crate::read::Judged;
use crate::scope::Scope;
use tracing::Instrument;

impl Cache {
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
        let work = self.get_uncounted(key, scope);
        let hit_or_miss = |found: &Option<T>| if found.is_some() { "hit" } else { "miss" };
        self.inner.op("get", key, work, hit_or_miss).await
    }

    /// [`get_in`](Self::get_in) without its span.
    async fn get_uncounted<T: Cacheable>(
        &self,
        key: &str,
        scope: &Scope,
    ) -> Result<Option<T>, Error> {
        let inner = &*self.inner;
        let full = inner.keys.stored(key);
        let vkeys = scope.version_keys(&inner.keys)?;
        let found = match inner.read::<T>(&full, &vkeys, None, None, true).await {
            // A value past its freshness is kept only for the computations that refresh it.
            Ok(read) => read.value.filter(|_| read.stale_for_ms.is_none()),
            Err(error) => {
                inner.backend_failed(error)?;
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
        let work = async {
            let current = match inner.current_versions(&vkeys).await {
                Ok(current) => current,
                Err(error) => return inner.backend_failed(error),
            };
            let bytes = codec::encode_stamped(value, &current, Freshness::default())?;
            self.store(key, bytes, timeout.into()).await
        };
        inner.op("set", key, work, |()| "ok").await
    }

    /// Stores `value` at `key` for `timeout`: a
    /// [`Duration`](std::time::Duration), `None` for no expiry, or
    /// [`Timeout::Default`].
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
        let work = async { self.store(key, codec::encode(value)?, timeout.into()).await };
        self.inner.op("set", key, work, |()| "ok").await
    }

    /// Stores `value` unless `key` already holds a live value; whether it did.
    /// With a zero timeout nothing is kept, and the answer is whether it
    /// would have been stored, as in Django.
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
        let inner = &*self.inner;
        let work = async {
            let bytes = codec::encode(value)?;
            let expiry = timeout.into().resolve(inner.options.default_timeout);
            let full = inner.keys.entry(key);
            let bytes = inner.format.seal(&full, bytes);
            let added = match inner.backend.add(full, bytes, expiry).await {
                Ok(added) => added,
                Err(error) => inner.backend_failed(error).map(|()| false)?,
            };
            if added {
                inner.counters.writes(1);
            }
            Ok(added)
        };
        let stored_or_kept = |added: &bool| if *added { "stored" } else { "kept" };
        inner.op("add", key, work, stored_or_kept).await
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
        let expiry = timeout.into().resolve(inner.options.default_timeout);
        let full = inner.keys.entry(key);
        let work = async {
            match inner.backend.touch(full, expiry).await {
                Ok(touched) => Ok(touched),
                Err(error) => inner.backend_failed(error).map(|()| false),
            }
        };
        let found = |touched: &bool| if *touched { "hit" } else { "miss" };
        inner.op("touch", key, work, found).await
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
        let work = async {
            let mut found = HashMap::with_capacity(keys.len());
            match inner.backend.get_many(&full).await {
                Ok(entries) => {
                    for ((key, full), entry) in keys.iter().zip(&full).zip(entries) {
                        if let Some(entry) = entry
                            && let Judged::Hit(value) =
                                inner.judge_found(full, &entry, &[], None, true).await
                        {
                            found.insert(key.clone(), value);
                        }
                    }
                }
                Err(error) => inner.backend_failed(error)?,
            }
            inner
                .counters
                .hits_and_misses(found.len(), keys.len() - found.len());
            Ok(found)
        };
        let first = keys.first().map_or("", String::as_str);
        inner.op("get_many", first, work, |_| "ok").await
    }

    /// Stores every `(key, value)` pair with the same timeout; one round trip
    /// (a pipeline) with Redis. Returns the keys that were not written (all
    /// of them when the backend failed and the cache fails open), as Django
    /// does. Nothing is written if any value fails to encode.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let failed = cache.set_many([("x", "1"), ("y", "2")], Duration::from_secs(60)).await?;
    /// assert!(failed.is_empty());
    /// assert_eq!(cache.get::<String>("y").await?.as_deref(), Some("2"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_many<K: AsRef<str>, T: Serialize>(
        &self,
        entries: impl IntoIterator<Item = (K, T)>,
        timeout: impl Into<Timeout>,
    ) -> Result<Vec<String>, Error> {
        let inner = &*self.inner;
        let expiry = timeout.into().resolve(inner.options.default_timeout);
        let mut keys = Vec::new();
        let mut encoded = Vec::new();
        for (key, value) in entries {
            let full = inner.keys.entry(key.as_ref());
            let bytes = inner.format.seal(&full, codec::encode(&value)?);
            encoded.push((full, bytes));
            keys.push(key.as_ref().to_owned());
        }
        let first = keys.first().cloned().unwrap_or_default();
        let work = async {
            match inner.backend.set_many(encoded, expiry).await {
                Ok(()) => {
                    if expiry != Expiry::Now {
                        inner.counters.writes(keys.len());
                    }
                    Ok(Vec::new())
                }
                Err(error) => inner.backend_failed(error).map(|()| keys),
            }
        };
        let all_or_some = |unwritten: &Vec<String>| {
            if unwritten.is_empty() {
                "ok"
            } else {
                "skipped"
            }
        };
        inner.op("set_many", &first, work, all_or_some).await
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
        let work = async {
            match inner.backend.delete_many(&full).await {
                Ok(deleted) => Ok(deleted),
                Err(error) => inner.backend_failed(error).map(|()| 0),
            }
        };
        let first = full.first().map_or("", String::as_str);
        inner.op("delete", first, work, |_| "ok").await
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
        self.count(key, delta, true).await
    }

    /// Like [`incr`](Self::incr), but a missing counter is an error
    /// ([`Error::NotFound`]) and is not created, as Django's `incr` raises
    /// `ValueError`. When failing open and the backend fails, the result is
    /// `delta`, as for `incr`.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::memory();
    /// assert!(matches!(
    ///     cache.incr_existing("visits", 1).await,
    ///     Err(cachette::Error::NotFound { .. })
    /// ));
    /// cache.set("visits", &1, None).await?;
    /// assert_eq!(cache.incr_existing("visits", 1).await?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn incr_existing(&self, key: &str, delta: i64) -> Result<i64, Error> {
        self.count(key, delta, false).await
    }

    /// Adds `delta` to the counter at `key`, creating a missing one when `create` says so.
    async fn count(&self, key: &str, delta: i64, create: bool) -> Result<i64, Error> {
        let inner = &*self.inner;
        let expiry = Timeout::Default.resolve(inner.options.default_timeout);
        let full = inner.keys.entry(key);
        let span = inner.op_span("incr");
        let counted = inner
            .backend
            .incr(full, delta, expiry, create)
            .instrument(span.clone())
            .await;
        inner.op_done(
            &span,
            "incr",
            key,
            if counted.is_ok() { "ok" } else { "error" },
        );
        match counted {
            Ok(Counted::Value(value)) => Ok(value),
            Ok(Counted::NotACounter) => Err(Error::NotACounter {
                key: key.to_owned(),
            }),
            Ok(Counted::Missing) => Err(Error::NotFound {
                key: key.to_owned(),
            }),
            Err(error) => inner.backend_failed(error).map(|()| delta),
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
        let work = async {
            match inner.backend.clear(&inner.keys).await {
                Ok(()) => Ok(()),
                Err(error) => inner.backend_failed(error),
            }
        };
        inner.op("clear", "", work, |()| "ok").await
    }

    /// Writes encoded bytes at `key`, failing open as configured.
    async fn store(&self, key: &str, bytes: Vec<u8>, timeout: Timeout) -> Result<(), Error> {
        let inner = &*self.inner;
        let expiry = timeout.resolve(inner.options.default_timeout);
        let full = inner.keys.entry(key);
        let bytes = inner.format.seal(&full, bytes);
        crate::meters::value_written(inner.counters.label(), bytes.len());
        crate::inner::trace_size(bytes.len());
        match inner.backend.set(full, bytes, None, expiry).await {
            Ok(()) => {
                if expiry != Expiry::Now {
                    inner.counters.writes(1);
                }
                Ok(())
            }
            Err(error) => inner.backend_failed(error),
        }
    }
}
