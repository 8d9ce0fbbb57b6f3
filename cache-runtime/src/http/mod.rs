//! Whole-response caching for tower and axum (feature `http`): the analog of
//! Django's `@cache_page`, with a shared cache's safe defaults.
//!
//! [`CacheLayer`] stores the responses of `GET` routes in a cachette
//! [`Cache`] (memory, Redis or a cluster) and answers the next identical
//! request from it, with one handler run per key for a burst of identical
//! requests (see [`Vary`](#vary) for the first burst on a URL whose
//! responses vary). By default it never shares what belongs to one user:
//!
//! - only `GET` and `HEAD` are cached (a `HEAD` is answered from `GET`'s
//!   entry; without one it goes to the handler and stores nothing), and
//!   only `200` responses unless [`statuses`](CacheLayer::statuses) says otherwise;
//! - a response with `Set-Cookie`, `Cache-Control: private`, `no-store` or
//!   `no-cache`, or `Vary: *` is never stored;
//! - a request with `Authorization` or `Cookie` bypasses the cache unless the
//!   layer varies on it ([`vary_by_header`](CacheLayer::vary_by_header), or
//!   [`vary_by`](CacheLayer::vary_by) with the user's identity);
//! - request headers cannot bypass, refresh or purge the cache.
//!
//! The key is the host, the path, the query with its parameters sorted by
//! name (the values of a repeated parameter keep their order; empty
//! parameters, as in `a=1&&b=2`, are left out), and the
//! request headers the response's `Vary` names (learned per URL, as
//! Django's `learn_cache_key` does). The path is the one the layer sees:
//! inside axum's `Router::nest`, the path without the prefix the router
//! took off, so put the layer on the outer router, or give each nested
//! layer a [`namespace`](CacheLayer::namespace) of its own (two nested
//! routers that share a cache and a namespace share the entries of their
//! common paths; a [`tags`](CacheLayer::tags) closure sees the same path). Answers carry `x-cache: HIT | MISS |
//! BYPASS`, `Age`, and an `ETag`, and a matching `If-None-Match` gets a
//! `304`. Bodies larger than [`max_body`](CacheLayer::max_body), or of
//! unknown length (streams, server-sent events), pass through untouched and
//! are never buffered.
//!
//! # Vary
//!
//! The headers a URL's responses vary on are known only once one response
//! has named them. So the first response of a URL with a `Vary` (one not
//! configured with [`vary_by_header`](CacheLayer::vary_by_header)) is not
//! stored: its key lacked those headers. It teaches the layer the URL's
//! `Vary`; the requests that waited for it make their key again with the
//! learned headers, and one more handler run is stored and serves them (a
//! burst on a fresh URL runs the handler twice, then once per new value of
//! the headers). This happens once per URL in each process, and again after
//! a restart: the learned lists live in memory, in each layer (a clone of a
//! configured layer shares them), for at most 10 000 URLs (`LEARNED_URLS`),
//! after which the layer forgets them all and learns again.
//!
//! # Responses that are not stored
//!
//! A response that may not be stored (see above) is not shared either: the
//! requests that waited for it run the handler themselves, side by side.
//! When its headers or its size refused it, the layer remembers the key
//! (in memory, in each layer, for at most 10 000 keys), and later requests
//! for it run the handler without waiting for one another; once a response
//! for it can be stored, it is, and the key is forgotten. A status alone
//! (a `503` during a deploy) is not remembered: the next burst still runs
//! the handler once.
//!
//! # Budget
//!
//! Each request's cache calls share one [budget](CacheLayer::budget)
//! ([`with_budget`](crate::with_budget)): only the time they wait on the
//! store counts, not the handler's (nor the wait for another request's
//! handler run), so a slow page is stored all the same. The cache calls a
//! handler makes draw on the same budget.
//!
//! ```
//! # extern crate cachette_runtime as cachette;
//! use std::time::Duration;
//!
//! use cachette::http::CacheLayer;
//!
//! // `Router::new().route("/reports", get(report)).layer(layer)` in axum.
//! let layer = CacheLayer::new(Duration::from_secs(15 * 60))
//!     .tags(|request| vec![format!("path:{}", request.uri.path())]);
//! # drop(layer);
//! ```

mod page;
mod service;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::HeaderName;
use http::request;

use crate::Cache;
use crate::options::Timeout;
pub use page::CacheBody;
pub use service::{CacheService, ResponseFuture};

/// A closure of the request's head.
type Of<T> = Arc<dyn Fn(&request::Parts) -> T + Send + Sync>;

/// A tower [`Layer`](tower_layer::Layer) that caches whole responses; see
/// the [module docs](self).
#[derive(Clone)]
#[must_use]
pub struct CacheLayer {
    config: Arc<Config>,
}

struct Config {
    /// `None`: the global [`cache()`](crate::cache), at each request.
    cache: Option<Cache>,
    timeout: Timeout,
    statuses: Vec<u16>,
    max_body: u64,
    vary_headers: Vec<HeaderName>,
    vary_by: Option<Of<Option<String>>>,
    honour_max_age: bool,
    namespace: Option<String>,
    tags: Option<Of<Vec<String>>>,
    budget: Option<Duration>,
    /// The request headers each URL's responses vary on, as learned.
    learned: Mutex<HashMap<String, Vec<HeaderName>>>,
    /// Whether anything was learned: until then a request skips the lookup.
    learned_any: AtomicBool,
    /// The keys whose last response could not be stored: their requests
    /// compute without single flight, side by side.
    unstorable: Mutex<HashSet<String>>,
    /// Whether any key is in `unstorable`: until then a request skips the lookup.
    unstorable_any: AtomicBool,
}

/// How many URLs' `Vary` headers are remembered before the memory starts
/// over (the module docs name it).
const LEARNED_URLS: usize = 10_000;

/// How many keys known to give unstorable responses are remembered before
/// the memory starts over.
const UNSTORABLE_KEYS: usize = 10_000;

impl std::fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &*self.config;
        f.debug_struct("CacheLayer")
            .field("timeout", &c.timeout)
            .field("statuses", &c.statuses)
            .field("max_body", &c.max_body)
            .field("vary_headers", &c.vary_headers)
            .field("honour_max_age", &c.honour_max_age)
            .field("namespace", &c.namespace)
            .finish_non_exhaustive()
    }
}

impl CacheLayer {
    /// Caches responses for `timeout` in the global [`cache()`](crate::cache).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let layer = cachette::http::CacheLayer::new(std::time::Duration::from_secs(900));
    /// # drop(layer);
    /// ```
    pub fn new(timeout: impl Into<Timeout>) -> Self {
        Self {
            config: Arc::new(Config {
                cache: None,
                timeout: timeout.into(),
                statuses: vec![200],
                max_body: 1 << 20,
                vary_headers: Vec::new(),
                vary_by: None,
                honour_max_age: false,
                namespace: None,
                tags: None,
                budget: Some(Duration::from_millis(250)),
                learned: Mutex::default(),
                learned_any: AtomicBool::new(false),
                unstorable: Mutex::default(),
                unstorable_any: AtomicBool::new(false),
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Config)) -> Self {
        // A layer being configured is not shared yet; a clone starts its own config.
        match Arc::get_mut(&mut self.config) {
            Some(config) => change(config),
            None => {
                let c = &*self.config;
                let mut config = Config {
                    cache: c.cache.clone(),
                    timeout: c.timeout,
                    statuses: c.statuses.clone(),
                    max_body: c.max_body,
                    vary_headers: c.vary_headers.clone(),
                    vary_by: c.vary_by.clone(),
                    honour_max_age: c.honour_max_age,
                    namespace: c.namespace.clone(),
                    tags: c.tags.clone(),
                    budget: c.budget,
                    learned: Mutex::default(),
                    learned_any: AtomicBool::new(false),
                    unstorable: Mutex::default(),
                    unstorable_any: AtomicBool::new(false),
                };
                change(&mut config);
                self.config = Arc::new(config);
            }
        }
        self
    }

    /// Stores in `cache` instead of the global one.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// use std::time::Duration;
    ///
    /// let pages = cachette::Cache::memory();
    /// let layer = cachette::http::CacheLayer::new(Duration::from_secs(60)).cache(pages);
    /// # drop(layer);
    /// ```
    pub fn cache(self, cache: Cache) -> Self {
        self.with(|c| c.cache = Some(cache))
    }

    /// The statuses whose responses may be stored (default: `200` only).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let layer = cachette::http::CacheLayer::new(std::time::Duration::from_secs(60))
    ///     .statuses([200, 301, 404]);
    /// # drop(layer);
    /// ```
    pub fn statuses(self, statuses: impl IntoIterator<Item = u16>) -> Self {
        let statuses = statuses.into_iter().collect();
        self.with(|c| c.statuses = statuses)
    }

    /// The largest body stored, in bytes (default 1 MiB); larger ones pass through.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let layer = cachette::http::CacheLayer::new(std::time::Duration::from_secs(60))
    ///     .max_body(256 * 1024);
    /// # drop(layer);
    /// ```
    pub fn max_body(self, bytes: u64) -> Self {
        self.with(|c| c.max_body = bytes)
    }

    /// Varies the entries on this request header (its values join the key).
    /// Naming `authorization` or `cookie` lets requests that carry it use
    /// the cache: each value gets entries of its own.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let layer = cachette::http::CacheLayer::new(std::time::Duration::from_secs(60))
    ///     .vary_by_header(http::header::ACCEPT_LANGUAGE);
    /// # drop(layer);
    /// ```
    pub fn vary_by_header(self, name: HeaderName) -> Self {
        self.with(|c| c.vary_headers.push(name))
    }

    /// Varies the entries on what `part` makes of the request — typically
    /// the user's identity, for per-user pages. `None` bypasses the cache
    /// for that request. With it, requests with `Authorization` or `Cookie`
    /// use the cache, each under the part it was given.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let layer = cachette::http::CacheLayer::new(std::time::Duration::from_secs(60))
    ///     .vary_by(|request| {
    ///         let user = request.headers.get("x-user-id")?.to_str().ok()?;
    ///         Some(format!("user:{user}"))
    ///     });
    /// # drop(layer);
    /// ```
    pub fn vary_by(
        self,
        part: impl Fn(&request::Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.with(|c| c.vary_by = Some(Arc::new(part)))
    }

    /// Takes each response's lifetime from its `s-maxage` (or `max-age`)
    /// when it has one. A layer with this on computes every response
    /// without single flight, with a `max-age` or not (a lifetime is known
    /// only once its response is): a burst of identical requests on a cold
    /// key runs the handler once per request.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let layer = cachette::http::CacheLayer::new(std::time::Duration::from_secs(60))
    ///     .honour_max_age(true);
    /// # drop(layer);
    /// ```
    pub fn honour_max_age(self, on: bool) -> Self {
        self.with(|c| c.honour_max_age = on)
    }

    /// Puts the entries in a namespace: `invalidate!(namespace = ..)` drops them all.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let layer = cachette::http::CacheLayer::new(std::time::Duration::from_secs(60))
    ///     .namespace("pages");
    /// # drop(layer);
    /// ```
    pub fn namespace(self, namespace: impl Into<String>) -> Self {
        let namespace = namespace.into();
        self.with(|c| c.namespace = Some(namespace))
    }

    /// Tags each entry with what `tags` makes of the request (say
    /// `product:{id}` from the path), so that `invalidate!(tag = ..)` drops it.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let layer = cachette::http::CacheLayer::new(std::time::Duration::from_secs(60))
    ///     .tags(|request| {
    ///         let id = request.uri.path().rsplit('/').next().unwrap_or_default();
    ///         vec![format!("product:{id}")]
    ///     });
    /// # drop(layer);
    /// ```
    pub fn tags(
        self,
        tags: impl Fn(&request::Parts) -> Vec<String> + Send + Sync + 'static,
    ) -> Self {
        self.with(|c| c.tags = Some(Arc::new(tags)))
    }

    /// The cache budget of each request ([`with_budget`](crate::with_budget)):
    /// the time all its cache calls may take together, the handler's own
    /// cache calls included (default 250 ms; `None` for the calls' own
    /// deadlines only). The handler's time does not count against it.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// use std::time::Duration;
    ///
    /// let layer = cachette::http::CacheLayer::new(Duration::from_secs(60))
    ///     .budget(Some(Duration::from_millis(100)));
    /// # drop(layer);
    /// ```
    pub fn budget(self, budget: Option<Duration>) -> Self {
        self.with(|c| c.budget = budget)
    }
}

impl<S> tower_layer::Layer<S> for CacheLayer {
    type Service = CacheService<S>;

    fn layer(&self, inner: S) -> CacheService<S> {
        CacheService::new(inner, Arc::clone(&self.config))
    }
}

impl Config {
    /// The request headers the responses to `request` vary on: configured, then learned.
    fn vary_of(&self, request: &request::Parts) -> Vec<HeaderName> {
        let mut vary = self.vary_headers.clone();
        if !self.learned_any.load(Relaxed) {
            return vary;
        }
        let url = page::key(request, &[], None);
        let learned = self
            .learned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(names) = learned.get(&*url) {
            vary.extend(
                names
                    .iter()
                    .filter(|n| !self.vary_headers.contains(n))
                    .cloned(),
            );
        }
        vary
    }

    /// Remembers the request headers the responses to `request`'s URL vary on.
    fn learn(&self, request: &request::Parts, names: Vec<HeaderName>) {
        let url = page::key(request, &[], None);
        let mut learned = self
            .learned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if learned.len() >= LEARNED_URLS && !learned.contains_key(&*url) {
            learned.clear();
        }
        learned.insert(url.to_string(), names);
        self.learned_any.store(true, Relaxed);
    }

    /// Whether the last response computed for `key` could not be stored.
    fn is_unstorable(&self, key: &str) -> bool {
        self.unstorable_any.load(Relaxed)
            && self
                .unstorable
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(key)
    }

    /// Remembers whether the response just computed for `key` could be stored.
    fn storable(&self, key: &str, storable: bool) {
        if storable && !self.unstorable_any.load(Relaxed) {
            return;
        }
        let mut keys = self
            .unstorable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if storable {
            keys.remove(key);
            return;
        }
        if keys.len() >= UNSTORABLE_KEYS && !keys.contains(key) {
            keys.clear();
        }
        keys.insert(key.to_owned());
        self.unstorable_any.store(true, Relaxed);
    }
}
