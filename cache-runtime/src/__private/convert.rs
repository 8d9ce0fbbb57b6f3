//! What `#[cached]` options accept, as traits whose errors name the option:
//! timeouts, caches and cacheable values.

use std::time::Duration;

use crate::Cache;
use crate::codec::Cacheable;
use crate::global::CacheRef;
use crate::options::{Seconds, Timeout};

/// What `#[cached(timeout = ...)]` accepts: seconds or a `Duration`
/// (`Seconds`), an `Option<Duration>` (`None`: never expire) or a
/// [`Timeout`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a cache timeout",
    label = "expected seconds as an integer, a `Duration`, an `Option<Duration>` or a `cachette::Timeout`"
)]
pub trait IntoTimeout {
    fn into_timeout(self) -> Timeout;
}

impl<S: Seconds> IntoTimeout for S {
    fn into_timeout(self) -> Timeout {
        Timeout::After(self.into_duration())
    }
}

impl IntoTimeout for Option<Duration> {
    fn into_timeout(self) -> Timeout {
        self.into()
    }
}

impl IntoTimeout for Timeout {
    fn into_timeout(self) -> Timeout {
        self
    }
}

/// The timeout `#[cached(timeout_from = decide)]` decides for `value`.
pub fn timeout_of<T, D: IntoTimeout>(decide: impl FnOnce(&T) -> D, value: &T) -> Timeout {
    decide(value).into_timeout()
}

/// A value `#[cached]` can store.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached",
    label = "a cached value must implement `Serialize`, `DeserializeOwned`, `Clone`, `Send` and `Sync`",
    note = "derive `Clone`, `serde::Serialize` and `serde::Deserialize` for it"
)]
pub trait CachedValue: Cacheable {}

impl<T: Cacheable> CachedValue for T {}

/// A `Cache`, or a reference to one, as `cache = ...` accepts.
pub trait IntoCache<'a> {
    fn into_cache(self) -> CacheRef<'a>;
}

impl IntoCache<'_> for Cache {
    fn into_cache(self) -> CacheRef<'static> {
        CacheRef::Owned(self)
    }
}

impl<'a> IntoCache<'a> for &'a Cache {
    fn into_cache(self) -> CacheRef<'a> {
        CacheRef::Borrowed(self)
    }
}

/// A `&Cache` parameter, seen through the key's reference to it.
impl<'a> IntoCache<'a> for &&'a Cache {
    fn into_cache(self) -> CacheRef<'a> {
        CacheRef::Borrowed(self)
    }
}
