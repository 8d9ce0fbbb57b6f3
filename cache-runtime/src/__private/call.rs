//! The entry points of cached calls and of `invalidate!`.

use std::borrow::Cow;
use std::time::Duration;

use tracing::Span;

use super::convert::CachedValue;
use super::key::CallKey;
use crate::engine::{First, Job, Loaded, Pick, Plan, Sight};
use crate::global::CacheRef;
use crate::observe::{Served, Site, in_span};
use crate::options::Timeout;
use crate::{Cache, Error};

/// The lease of `#[cached(lock = true)]`.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// How a cached call computes: its timeout, its fleet-wide lease (or the
/// cache's), and the function's site, where its figures are counted.
#[must_use]
pub fn plan(timeout: Timeout, lease: Option<Duration>, site: &'static Site) -> Plan {
    Plan::cached(timeout, lease, site)
}

/// What a cached call's [`look`] leaves to its future ([`call`]): the
/// call's span, what the look saw (`None`: the call is a refresh), and the
/// stored key when it had to be shortened (made once per call).
pub struct Past<T> {
    span: Span,
    sight: Option<Sight<T>>,
    shortened: Option<String>,
}

/// The first step of a cached call, taken before its future is built: an
/// in-process hit is served here, so that it builds neither the call's
/// future nor its computation's.
#[inline]
pub fn look<T: CachedValue, O>(
    key: &CallKey<'_>,
    plan: Plan,
    pick: &Pick<T, O>,
) -> Result<O, Past<T>> {
    let span = call_span(plan);
    if super::refresh::asked() {
        return Err(Past {
            span,
            sight: None,
            shortened: None,
        });
    }
    let full = key.stored();
    let engine = &key.cache.engine;
    match engine.look::<T>(&full, &key.scope, engine.early(&plan)) {
        Ok(value) => Ok(hit(key, plan, &span, &full, pick, true, value)),
        Err(sight) => Err(Past {
            span,
            sight: Some(sight),
            shortened: match full {
                Cow::Owned(shortened) => Some(shortened),
                Cow::Borrowed(_) => None,
            },
        }),
    }
}

/// A hit of a cached call, counted and traced; `near`: from an in-process store.
// On an in-process hit's path: inlined, it costs the hit no call (hit_loop).
#[allow(clippy::inline_always)]
#[inline(always)]
fn hit<T, O>(
    key: &CallKey<'_>,
    plan: Plan,
    span: &Span,
    full: &str,
    pick: &Pick<T, O>,
    near: bool,
    value: T,
) -> O {
    let observer = key.cache.engine.observer();
    observer.served(plan.site, span, full, Served::Hit, near);
    (pick.wrap)(value)
}

/// Runs a cached call past its [`look`]: `pick` says what of its outcome is stored.
pub async fn call<T, O, U, Fut>(
    key: CallKey<'_>,
    plan: Plan,
    past: Past<T>,
    unless: U,
    compute: Fut,
    pick: Pick<T, O>,
) -> O
where
    T: CachedValue,
    U: FnOnce(&O) -> bool,
    Fut: Future<Output = O>,
{
    let Past {
        span,
        sight,
        shortened,
    } = past;
    let Some(sight) = sight else {
        // Rare: boxed, to keep every call's future small.
        return Box::pin(refreshed(key, plan, span, unless, compute, pick)).await;
    };
    let full = shortened.map_or_else(|| key.stored(), Cow::Owned);
    let engine = &key.cache.engine;
    // Without an in-process store: a Redis hit, served before the miss engine's future is built.
    let first = in_span!(&span, engine.fetch::<T>(&full, engine.early(&plan), sight));
    let sight = match first {
        First::Hit(value) => return hit(&key, plan, &span, &full, &pick, false, value),
        First::Saw(sight) => sight,
    };
    let job = job(compute, unless, pick);
    let loaded = engine.load_past(&full, &key.scope, plan, job, sight, &span);
    outcome(&key.cache, plan, &span, &full, loaded.await)
}

/// [`call`] asked for by `refresh!`: past every stored value, to the miss engine.
async fn refreshed<T, O, U, Fut>(
    key: CallKey<'_>,
    plan: Plan,
    span: Span,
    unless: U,
    compute: Fut,
    pick: Pick<T, O>,
) -> O
where
    T: CachedValue,
    U: FnOnce(&O) -> bool,
    Fut: Future<Output = O>,
{
    let job = job(compute, unless, pick);
    let (full, plan) = (key.stored(), plan.refreshing());
    let loaded = key.cache.engine.load(&full, &key.scope, plan, job, &span);
    let loaded = loaded.await;
    outcome(&key.cache, plan, &span, &full, loaded)
}

/// [`call`] for a computation that owns its arguments: a stale value is
/// served at once and refreshed in the background.
pub async fn call_detached<T, O, U, Fut>(
    key: CallKey<'_>,
    plan: Plan,
    unless: U,
    compute: Fut,
    pick: Pick<T, O>,
) -> O
where
    T: CachedValue,
    O: Send + 'static,
    U: FnOnce(&O) -> bool + Send + 'static,
    Fut: Future<Output = O> + Send + 'static,
{
    let job = job(compute, unless, pick);
    let plan = if super::refresh::asked() {
        plan.refreshing()
    } else {
        plan
    };
    let full = key.stored();
    let span = call_span(plan);
    let loaded = key
        .cache
        .engine
        .load_detached(&full, &key.scope, plan, job, &span)
        .await;
    outcome(&key.cache, plan, &span, &full, loaded)
}

/// The computation of a cached call: `compute`, stored unless `unless`
/// holds of its outcome.
#[inline]
fn job<T, O, U, Fut>(
    compute: Fut,
    unless: U,
    pick: Pick<T, O>,
) -> Job<Fut, impl FnOnce(&O) -> bool, T, O>
where
    U: FnOnce(&O) -> bool,
{
    Job {
        compute,
        store_if: move |outcome: &O| !unless(outcome),
        pick,
        unshared: None,
    }
}

/// The span of a cached call (level debug): the function, then how it was
/// served, the tier and a digest of the key (the key itself only where
/// the cache was built with `trace_keys`).
#[inline]
fn call_span(plan: Plan) -> Span {
    let function = plan.site.map_or("", Site::name);
    tracing::debug_span!(
        "cachette.call",
        function,
        outcome = tracing::field::Empty,
        tier = tracing::field::Empty,
        key = tracing::field::Empty,
        size = tracing::field::Empty,
    )
}

/// The outcome of the cached call of the stored key `full`: counted in its
/// function's figures and recorded in its span; the cache's error, if
/// any, is logged.
#[inline]
fn outcome<O>(cache: &Cache, plan: Plan, span: &Span, full: &str, loaded: Loaded<O>) -> O {
    let observer = cache.engine.observer();
    observer.served(plan.site, span, full, loaded.served, loaded.near);
    if let Some(error) = &loaded.error {
        report(full, error);
    }
    loaded
        .outcome
        .expect("a cached call's plan computes on error (`Plan::cached`), so it has an outcome")
}

/// Drops the entry of one call, with a tombstone (see `Cache::invalidate`).
pub async fn invalidate_key(
    key: CallKey<'_>,
    cache: Option<CacheRef<'_>>,
) -> Result<crate::Invalidated, Error> {
    let cache: &Cache = cache.as_deref().unwrap_or(&key.cache);
    cache.invalidate(key.key.as_given()).await
}

/// Drops every entry of a namespace.
pub async fn invalidate_namespace(
    cache: CacheRef<'_>,
    namespace: impl AsRef<str>,
) -> Result<crate::Invalidated, Error> {
    cache.invalidate_namespace(namespace.as_ref()).await
}

/// Drops every entry carrying a tag.
pub async fn invalidate_tag(
    cache: CacheRef<'_>,
    tag: impl AsRef<str>,
) -> Result<crate::Invalidated, Error> {
    cache.invalidate_tag(tag.as_ref()).await
}

/// The cache to use: the one given, or the global one.
#[must_use]
pub fn cache_or_global(given: Option<CacheRef<'_>>) -> CacheRef<'_> {
    match given {
        Some(cache) => cache,
        None => crate::global::cache_ref(),
    }
}

/// A cached function cannot return the cache's errors: they are logged, and
/// the call goes on uncached.
fn report(key: &str, error: &Error) {
    let error: &dyn std::error::Error = error;
    tracing::error!(key, error, "cached call goes on without the cache");
}
