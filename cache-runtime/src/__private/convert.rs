//! What `#[cached]` options accept, as traits whose errors name the option:
//! timeouts, caches and cacheable values.

use std::time::Duration;

use crate::Cache;
use crate::codec::Cacheable;
use crate::options::{Seconds, Timeout};

/// What `#[cached(timeout = ...)]` accepts: seconds or a `Duration`
/// ([`Seconds`]), an `Option<Duration>` (`None`: never expire) or a
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

/// A value `#[cached]` can store.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached",
    label = "a cached value must implement `Serialize`, `DeserializeOwned`, `Clone`, `Send` and `Sync`",
    note = "derive `Clone`, `serde::Serialize` and `serde::Deserialize` for it"
)]
pub trait CachedValue: Cacheable {}

impl<T: Cacheable> CachedValue for T {}

/// The cache of a call: borrowed when it can be, so that a call does not
/// touch the reference count every other call on the cache shares.
#[derive(Debug)]
pub enum CacheRef<'a> {
    Borrowed(&'a Cache),
    Owned(Cache),
}

impl CacheRef<'_> {
    #[must_use]
    pub fn into_owned(self) -> CacheRef<'static> {
        match self {
            Self::Borrowed(cache) => CacheRef::Owned(cache.clone()),
            Self::Owned(cache) => CacheRef::Owned(cache),
        }
    }
}

impl std::ops::Deref for CacheRef<'_> {
    type Target = Cache;

    #[inline]
    fn deref(&self) -> &Cache {
        match self {
            Self::Borrowed(cache) => cache,
            Self::Owned(cache) => cache,
        }
    }
}

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
