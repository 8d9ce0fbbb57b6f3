//! `get_many_or_set` and friends: batch loads, the direct API's way into
//! the batch engine (`engine/load/batch.rs`) — one read for every key, one
//! computation of exactly the missing ones.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;

use super::Cache;
use crate::Error;
use crate::codec::Cacheable;
use crate::engine::{LoadedMany, Plan};
use crate::options::Timeout;
use crate::scope::Scope;

/// What a batch load ([`Cache::get_many_or_set`]) found and computed.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachette::Error> {
/// use std::collections::HashMap;
/// use std::time::Duration;
///
/// let cache = cachette::Cache::memory();
/// let batch = cache
///     .get_many_or_set(
///         ["user:1", "user:2"],
///         |missing| async move {
///             // The store knows user 1 only.
///             missing.into_iter().filter(|k| k == "user:1").map(|k| (k, "Ada".to_owned())).collect::<HashMap<_, _>>()
///         },
///         Duration::from_secs(60),
///     )
///     .await?;
/// assert_eq!(batch.values["user:1"], "Ada");
/// assert_eq!(batch.unreturned, ["user:2"]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<T> {
    /// The value of each key found fresh or computed, by key.
    pub values: HashMap<String, T>,
    /// The keys the computation was asked for and did not return, in the
    /// order given. Nothing is stored for them: the next load asks again.
    /// To cache that a key has no value, make the value an `Option` and
    /// return `None` for it.
    pub unreturned: Vec<String>,
}

impl Cache {
    /// The values at `keys`, the missing ones computed in one call: every
    /// key is read at once (one `MGET` with Redis; on a cluster one request
    /// per node, all sent at once); `compute` is called once with exactly the keys without a
    /// fresh value, and answers the values it found by key; each is stored
    /// for `timeout` with a guarded write (the writes pipelined). A key
    /// another call is computing meanwhile (a `get_or_set`, a `#[cached]`
    /// call, another batch) is waited for, not computed again; should that
    /// computation store nothing, `compute` is called a second time for such
    /// keys. A backend failure (when failing open) only means every key is
    /// computed. Keys repeated in `keys` are loaded once.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// cache.get_or_set("user:1", || async { "Ada".to_owned() }, None).await?;
    /// let batch = cache
    ///     .get_many_or_set(
    ///         ["user:1", "user:2", "user:3"],
    ///         |missing| async move {
    ///             assert_eq!(missing, ["user:2", "user:3"]); // user:1 is a hit
    ///             missing.into_iter().map(|key| (key, "Grace".to_owned())).collect::<HashMap<_, _>>()
    ///         },
    ///         Duration::from_secs(3600),
    ///     )
    ///     .await?;
    /// assert_eq!(batch.values.len(), 3);
    /// assert_eq!(batch.values["user:1"], "Ada");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_many_or_set<T, F, Fut>(
        &self,
        keys: impl IntoIterator<Item = impl AsRef<str>>,
        compute: F,
        timeout: impl Into<Timeout>,
    ) -> Result<Batch<T>, Error>
    where
        T: Cacheable,
        F: FnMut(Vec<String>) -> Fut,
        Fut: Future<Output = HashMap<String, T>>,
    {
        self.get_many_or_set_in(keys, compute, timeout, &Scope::new())
            .await
    }

    /// [`get_many_or_set`](Self::get_many_or_set) for entries in `scope`
    /// (see [`get_in`](Self::get_in)): the versions are read with the
    /// entries, before `compute` runs, and every value is stamped with
    /// them, so an invalidation that lands while `compute` runs wins.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use cachette::Scope;
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let scope = Scope::new().namespace("users");
    /// let compute = |missing: Vec<String>| async move {
    ///     missing.into_iter().map(|key| (key, 1_u32)).collect::<HashMap<_, _>>()
    /// };
    /// let batch = cache.get_many_or_set_in(["user:1", "user:2"], compute, Duration::from_secs(60), &scope).await?;
    /// assert_eq!(batch.values.len(), 2);
    /// cache.invalidate_namespace("users").await?;
    /// assert_eq!(cache.get_in::<u32>("user:1", &scope).await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_many_or_set_in<T, F, Fut>(
        &self,
        keys: impl IntoIterator<Item = impl AsRef<str>>,
        mut compute: F,
        timeout: impl Into<Timeout>,
        scope: &Scope,
    ) -> Result<Batch<T>, Error>
    where
        T: Cacheable,
        F: FnMut(Vec<String>) -> Fut,
        Fut: Future<Output = HashMap<String, T>>,
    {
        let compute = |missing| {
            let computing = compute(missing);
            async move { Ok::<_, Infallible>(computing.await) }
        };
        let loaded = self.load_many(keys, compute, timeout.into(), scope).await;
        match loaded {
            Ok(Ok(batch)) => Ok(batch),
            Err(error) => Err(error),
            Ok(Err(never)) => match never {},
        }
    }

    /// [`get_many_or_set_in`](Self::get_many_or_set_in) for a fallible
    /// computation: when it fails, its error is returned and nothing is
    /// stored. Cache errors convert into the caller's error type.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use cachette::Scope;
    /// use std::collections::HashMap;
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let failed = cache
    ///     .try_get_many_or_set_in(["rate:eur"], |_| async { Err::<HashMap<String, f64>, _>(cachette::Error::Unavailable { reason: "upstream".into() }) }, Duration::from_secs(60), &Scope::new())
    ///     .await;
    /// assert!(failed.is_err());
    /// let rates = cache
    ///     .try_get_many_or_set_in(["rate:eur"], |keys| async move { Ok::<_, cachette::Error>(keys.into_iter().map(|k| (k, 1.08)).collect()) }, Duration::from_secs(60), &Scope::new())
    ///     .await?;
    /// assert_eq!(rates.values["rate:eur"], 1.08);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn try_get_many_or_set_in<T, E, F, Fut>(
        &self,
        keys: impl IntoIterator<Item = impl AsRef<str>>,
        compute: F,
        timeout: impl Into<Timeout>,
        scope: &Scope,
    ) -> Result<Batch<T>, E>
    where
        T: Cacheable,
        E: From<Error>,
        F: FnMut(Vec<String>) -> Fut,
        Fut: Future<Output = Result<HashMap<String, T>, E>>,
    {
        match self.load_many(keys, compute, timeout.into(), scope).await {
            Ok(outcome) => outcome,
            Err(error) => Err(error.into()),
        }
    }

    /// Loads the distinct `keys` through the batch engine: the cache's
    /// error, or the computation's outcome.
    async fn load_many<T, E, F, Fut>(
        &self,
        keys: impl IntoIterator<Item = impl AsRef<str>>,
        mut compute: F,
        timeout: Timeout,
        scope: &Scope,
    ) -> Result<Result<Batch<T>, E>, Error>
    where
        T: Cacheable,
        F: FnMut(Vec<String>) -> Fut,
        Fut: Future<Output = Result<HashMap<String, T>, E>>,
    {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut given: Vec<String> = Vec::new();
        for key in keys {
            let key = key.as_ref();
            if !index.contains_key(key) {
                index.insert(key.to_owned(), given.len());
                given.push(key.to_owned());
            }
        }
        let engine = &self.engine;
        let fulls: Vec<String> = given.iter().map(|key| engine.keys().entry(key)).collect();
        let (given_ref, index) = (&given, &index);
        // The engine speaks in positions: the keys asked for, and the values returned by key.
        let by_position = |asked: Vec<usize>| {
            let wanted: HashSet<usize> = asked.iter().copied().collect();
            let computing = compute(asked.iter().map(|&at| given_ref[at].clone()).collect());
            async move {
                let found = computing.await?;
                Ok(found
                    .into_iter()
                    .filter_map(|(key, value)| {
                        let at = *index.get(&key)?;
                        wanted.contains(&at).then_some((at, value))
                    })
                    .collect())
            }
        };
        let span = engine.observer().op_span("get_many_or_set");
        let plan = Plan::direct(timeout);
        let work = engine.load_many(&fulls, scope, plan, by_position);
        let loaded: LoadedMany<T, E> = crate::observe::in_span!(&span, work);
        let outcome = match (&loaded.error, &loaded.failed) {
            (Some(_), _) | (_, Some(_)) => "error",
            _ => "ok",
        };
        let first = given.first().map_or("", String::as_str);
        engine
            .observer()
            .op_done(&span, "get_many_or_set", first, outcome);
        if let Some(error) = loaded.error {
            return Err(error);
        }
        if let Some(failed) = loaded.failed {
            return Ok(Err(failed));
        }
        let unreturned = loaded
            .unreturned
            .iter()
            .map(|&at| given[at].clone())
            .collect();
        let values = given
            .iter()
            .zip(loaded.values)
            .filter_map(|(key, value)| Some((key.clone(), value?)))
            .collect();
        Ok(Ok(Batch { values, unreturned }))
    }
}
