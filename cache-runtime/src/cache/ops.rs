//! The direct operations, as in Django's cache API: `get`, `set`, `add`,
//! `delete`, `touch`, the `_many` forms, counters and `clear`.

use std::collections::HashMap;

use serde::Serialize;

use super::Cache;
use crate::Error;
use crate::codec::{self, Cacheable, Freshness};
use crate::engine::Write;
use crate::options::Timeout;
use crate::scope::Scope;

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
        let work = self.engine.get(key, scope);
        let hit_or_miss = |found: &Option<T>| if found.is_some() { "hit" } else { "miss" };
        self.engine
            .observer()
            .op("get", key, work, hit_or_miss)
            .await
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
        let engine = &*self.engine;
        let vkeys = scope.version_keys(engine.keys())?;
        if vkeys.is_empty() {
            return self.set(key, value, timeout).await;
        }
        let work = async {
            let Some(current) = engine.stamps(&vkeys).await? else {
                return Ok(());
            };
            let bytes = codec::encode_stamped(value, &current, Freshness::default())?;
            engine
                .store(key, bytes, timeout.into(), Write::Over)
                .await
                .map(drop)
        };
        engine.observer().op("set", key, work, |()| "ok").await
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
        let engine = &*self.engine;
        let work = async {
            let bytes = codec::encode(value)?;
            engine
                .store(key, bytes, timeout.into(), Write::Over)
                .await
                .map(drop)
        };
        engine.observer().op("set", key, work, |()| "ok").await
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
        let engine = &*self.engine;
        let work = async {
            let bytes = codec::encode(value)?;
            engine
                .store(key, bytes, timeout.into(), Write::IfAbsent)
                .await
        };
        let stored_or_kept = |added: &bool| if *added { "stored" } else { "kept" };
        engine.observer().op("add", key, work, stored_or_kept).await
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
        let work = self.engine.touch(key, timeout.into());
        let found = |touched: &bool| if *touched { "hit" } else { "miss" };
        self.engine.observer().op("touch", key, work, found).await
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
        let keys: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_owned()).collect();
        let work = self.engine.get_many(&keys);
        let first = keys.first().map_or("", String::as_str);
        self.engine
            .observer()
            .op("get_many", first, work, |_| "ok")
            .await
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
        let mut encoded = Vec::new();
        for (key, value) in entries {
            encoded.push((key.as_ref().to_owned(), codec::encode(&value)?));
        }
        let first = encoded
            .first()
            .map(|(key, _)| key.clone())
            .unwrap_or_default();
        let work = self.engine.store_many(encoded, timeout.into());
        let all_or_some = |unwritten: &Vec<String>| {
            if unwritten.is_empty() {
                "ok"
            } else {
                "skipped"
            }
        };
        self.engine
            .observer()
            .op("set_many", &first, work, all_or_some)
            .await
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
        let space = self.engine.keys();
        let full: Vec<String> = keys.into_iter().map(|k| space.entry(k.as_ref())).collect();
        let work = self.engine.delete_many(&full);
        let first = full.first().map_or("", String::as_str);
        self.engine
            .observer()
            .op("delete", first, work, |_| "ok")
            .await
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
        self.engine.incr(key, delta, create).await
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
        let work = self.engine.clear();
        self.engine
            .observer()
            .op("clear", "", work, |()| "ok")
            .await
    }
}
