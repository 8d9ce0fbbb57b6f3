//! What `#[cached]` options accept, as traits whose errors name the option:
//! timeouts, caches and cacheable values.

use std::time::Duration;

use crate::Cache;
use crate::codec::Cacheable;
use crate::options::Timeout;

/// Seconds or a duration, as `#[cached(timeout = ...)]` accepts them.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a cache timeout",
    label = "expected seconds as an integer, a `Duration`, an `Option<Duration>` or a `cachette::Timeout`"
)]
pub trait IntoTimeout {
    fn into_timeout(self) -> Timeout;
}

impl IntoTimeout for Duration {
    fn into_timeout(self) -> Timeout {
        Timeout::After(self)
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

macro_rules! seconds {
    ($($t:ty),*) => {$(
        impl IntoTimeout for $t {
            /// Seconds; a negative number is a zero timeout (nothing is stored).
            fn into_timeout(self) -> Timeout {
                Timeout::After(Duration::from_secs(u64::try_from(self).unwrap_or(0)))
            }
        }
    )*};
}
seconds!(u64, u32, i64, i32, usize);

/// A value `#[cached]` can store.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached",
    label = "a cached value must implement `Serialize`, `DeserializeOwned`, `Clone`, `Send` and `Sync`",
    note = "derive `Clone`, `serde::Serialize` and `serde::Deserialize` for it"
)]
pub trait CachedValue: Cacheable {}

impl<T: Cacheable> CachedValue for T {}

/// A `Cache`, or a reference to one, as `cache = ...` accepts.
pub trait IntoCache {
    fn into_cache(self) -> Cache;
}

impl IntoCache for Cache {
    fn into_cache(self) -> Cache {
        self
    }
}

impl IntoCache for &Cache {
    fn into_cache(self) -> Cache {
        self.clone()
    }
}

/// A `&Cache` parameter, seen through the key's reference to it.
impl IntoCache for &&Cache {
    fn into_cache(self) -> Cache {
        (*self).clone()
    }
}
