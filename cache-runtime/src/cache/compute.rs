//! `get_or_set` and friends: the direct API's way into the miss engine
//! (single flight, guarded writes, freshness).

use super::Cache;
use crate::Error;
use crate::codec::Cacheable;
use crate::engine::{Job, Loaded, Plan, pick_ok, pick_ok_with, pick_value, pick_with};
use crate::options::Timeout;
use crate::scope::Scope;

impl Cache {
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
        let job = Job::direct(compute, pick_value());
        let plan = Plan::direct(timeout.into());
        let full = self.engine.keys().stored(key);
        let span = self.engine.observer().op_span("get_or_set");
        let loaded = self.engine.load(&full, scope, plan, job, &span).await;
        self.done(&span, "get_or_set", key, &loaded);
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
        let job = Job::direct(compute, pick_value());
        let plan = Plan::direct(timeout.into());
        let full = self.engine.keys().stored(key);
        let span = self.engine.observer().op_span("get_or_set");
        let loaded = self
            .engine
            .load_detached(&full, scope, plan, job, &span)
            .await;
        self.done(&span, "get_or_set", key, &loaded);
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
        let job = Job::direct(compute, pick_ok());
        self.try_load(key, scope, Plan::direct(timeout.into()), job)
            .await
    }

    /// [`get_or_set_in`](Self::get_or_set_in) for a computation that decides
    /// how long its value is kept: it returns the value and its timeout
    /// (seconds are not taken here: a `Duration`, `None` for never, or a
    /// [`Timeout`]). A zero timeout keeps nothing: the value goes to this
    /// caller and to the callers that waited for it, and is not stored. Say
    /// an upstream's `Cache-Control: max-age`, a short life for an empty
    /// result, or none for a partial one.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use cachette::{Scope, Timeout};
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// // The upstream said `max-age=120`.
    /// let rate = cache
    ///     .get_or_set_with("rate:EUR", || async { (1.08, Duration::from_secs(120)) }, &Scope::new())
    ///     .await?;
    /// assert_eq!(rate, 1.08);
    /// let Some(Timeout::After(left)) = cache.ttl("rate:EUR").await? else { panic!() };
    /// assert!(left <= Duration::from_secs(120));
    ///
    /// // An empty answer is not kept.
    /// let found: Vec<String> = cache
    ///     .get_or_set_with("search:zzz", || async { (Vec::new(), Duration::ZERO) }, &Scope::new())
    ///     .await?;
    /// assert!(found.is_empty());
    /// assert!(!cache.contains("search:zzz").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_or_set_with<T, D, F, Fut>(
        &self,
        key: &str,
        compute: F,
        scope: &Scope,
    ) -> Result<T, Error>
    where
        T: Cacheable,
        D: Into<Timeout>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = (T, D)>,
    {
        let compute = || async move {
            let (value, timeout) = compute().await;
            (value, timeout.into())
        };
        let job = Job::direct(compute, pick_with());
        let plan = Plan::direct(Timeout::Default);
        let full = self.engine.keys().stored(key);
        let span = self.engine.observer().op_span("get_or_set");
        let loaded = self.engine.load(&full, scope, plan, job, &span).await;
        self.done(&span, "get_or_set", key, &loaded);
        loaded.into_result().map(|(value, _)| value)
    }

    /// [`get_or_set_with`](Self::get_or_set_with) for a fallible
    /// computation: only an `Ok` value is stored, for the timeout it gives.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use cachette::Scope;
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let forecast = cache
    ///     .try_get_or_set_with(
    ///         "forecast:paris",
    ///         || async { Ok::<_, cachette::Error>(("sunny".to_owned(), Duration::from_secs(600))) },
    ///         &Scope::new(),
    ///     )
    ///     .await?;
    /// assert_eq!(forecast, "sunny");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn try_get_or_set_with<T, D, E, F, Fut>(
        &self,
        key: &str,
        compute: F,
        scope: &Scope,
    ) -> Result<T, E>
    where
        T: Cacheable,
        D: Into<Timeout>,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, D), E>>,
    {
        let compute = || async move {
            compute()
                .await
                .map(|(value, timeout)| (value, timeout.into()))
        };
        let job = Job::direct(compute, pick_ok_with());
        let plan = Plan::direct(Timeout::Default);
        let full = self.engine.keys().stored(key);
        let span = self.engine.observer().op_span("get_or_set");
        let loaded = self.engine.load(&full, scope, plan, job, &span).await;
        self.done(&span, "get_or_set", key, &loaded);
        match loaded.into_result() {
            Ok(outcome) => outcome.map(|(value, _)| value),
            Err(error) => Err(error.into()),
        }
    }

    /// Computes the value at `key` now and stores it for `timeout`, even
    /// when a fresh value is stored: to warm a cache after a deploy, or to
    /// write through from update code. It goes through the same single
    /// flight and guarded write as [`get_or_set_in`](Self::get_or_set_in):
    /// a computation of the key under way when the refresh starts is waited
    /// for, not taken (it may have read older data), and an invalidation
    /// that lands while `compute` runs wins over its value. A backend
    /// failure (when failing open) only means the value is not stored.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use cachette::Scope;
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let hour = Duration::from_secs(3600);
    /// cache.get_or_set("greeting", || async { "hello".to_owned() }, hour).await?;
    /// // The source changed: store its new value now.
    /// let now = cache
    ///     .refresh("greeting", || async { "bonjour".to_owned() }, hour, &Scope::new())
    ///     .await?;
    /// assert_eq!(now, "bonjour");
    /// assert_eq!(cache.get::<String>("greeting").await?.as_deref(), Some("bonjour"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn refresh<T, F, Fut>(
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
        let job = Job::direct(compute, pick_value());
        let plan = Plan::direct(timeout.into()).refreshing();
        let full = self.engine.keys().stored(key);
        let span = self.engine.observer().op_span("refresh");
        let loaded = self.engine.load(&full, scope, plan, job, &span).await;
        self.done(&span, "refresh", key, &loaded);
        loaded.into_result()
    }

    /// The HTTP layer's hit without a future: `key`'s value in `scope` when
    /// an in-process store (memory, a local tier) holds it fresh, recorded
    /// as a hit of the direct operation `op` (`get`, or `get_or_set` with
    /// the cache's early refresh). `None` on anything else: the caller goes
    /// the awaited way.
    #[cfg(feature = "http")]
    pub(crate) fn hit_in_process<T: Cacheable>(
        &self,
        op: &'static str,
        key: &str,
        scope: &Scope,
    ) -> Option<T> {
        let engine = &self.engine;
        let early = match op {
            "get" => None,
            _ => engine.early(&Plan::direct(Timeout::default())),
        };
        let value = engine.look_in_process::<T>(key, scope, early)?;
        let observer = engine.observer();
        observer.op_done(&observer.op_span(op), op, key, "hit");
        Some(value)
    }

    /// [`try_get_or_set_in`](Self::try_get_or_set_in) for the HTTP layer:
    /// the errors `unshared` picks (responses that must not be stored) are
    /// not handed to the callers that waited, which compute their own at
    /// once; without `single_flight`, the call neither waits for a
    /// computation of `key` nor is waited for (a key known to give such
    /// responses).
    #[cfg(feature = "http")]
    pub(crate) async fn try_get_or_set_page<T, E, F, Fut>(
        &self,
        key: &str,
        compute: F,
        timeout: Timeout,
        scope: &Scope,
        unshared: fn(&Result<T, E>) -> bool,
        single_flight: bool,
    ) -> Result<T, E>
    where
        T: Cacheable,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let job = Job::direct(compute, pick_ok()).unshared(unshared);
        let plan = Plan::direct(timeout);
        let plan = if single_flight { plan } else { plan.alone() };
        self.try_load(key, scope, plan, job).await
    }

    /// Loads `key` (the direct API's `key`) with `job`, whose outcome is a `Result`.
    async fn try_load<T, E, S, Fut>(
        &self,
        key: &str,
        scope: &Scope,
        plan: Plan,
        job: Job<Fut, S, T, Result<T, E>>,
    ) -> Result<T, E>
    where
        T: Cacheable,
        E: From<Error>,
        S: FnOnce(&Result<T, E>) -> bool,
        Fut: Future<Output = Result<T, E>>,
    {
        let full = self.engine.keys().stored(key);
        let span = self.engine.observer().op_span("get_or_set");
        let loaded = self.engine.load(&full, scope, plan, job, &span).await;
        self.done(&span, "get_or_set", key, &loaded);
        match loaded.into_result() {
            Ok(outcome) => outcome,
            Err(error) => Err(error.into()),
        }
    }

    /// Records how a direct computation (`op`) of `key` was served.
    fn done<O>(&self, span: &tracing::Span, op: &'static str, key: &str, loaded: &Loaded<O>) {
        let outcome = loaded.served.outcome(loaded.error.as_ref());
        let observer = self.engine.observer();
        observer.op_done(span, op, key, outcome);
    }
}
