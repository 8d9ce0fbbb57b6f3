#![doc = include_str!("../README.md")]

pub use cache_runtime::{
    BackendError, Cache, CacheBuilder, Cacheable, DEFAULT_MAX_KEY_LENGTH, DEFAULT_TIMEOUT, Error,
    MAX_SCOPE, Namespace, Result, Scope, Stats, Timeout, cache, redis,
};

pub use cache_macros::{cached, invalidate};

#[doc(hidden)]
pub mod __private {
    pub use cache_runtime::__private::*;
}
