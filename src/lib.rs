#![doc = include_str!("../README.md")]

pub use cache_runtime::{
    BackendError, Cache, CacheBuilder, Cacheable, DEFAULT_MAX_KEY_LENGTH, DEFAULT_TIMEOUT, Error,
    Result, Stats, Timeout, cache, redis,
};
