//! The stores behind a [`Cache`](crate::Cache).

pub(crate) mod breaker;
pub(crate) mod memory;
pub(crate) mod redis;

use std::time::Duration;

/// When a written entry expires, resolved from a [`Timeout`](crate::Timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// After this long (never zero).
    After(Duration),
    /// Never.
    Never,
    /// At once: the write is a delete.
    Now,
}

impl Expiry {
    /// Milliseconds for Redis `PX`, at least 1.
    pub(crate) fn millis(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
    }
}

/// The store of one cache.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per cache, behind an `Arc`
pub(crate) enum Backend {
    Memory(memory::Memory),
    Redis(redis::RedisBackend),
    /// A backend that could not be set up: every call fails with this reason.
    Unavailable(String),
}
