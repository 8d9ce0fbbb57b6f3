//! The engine room: what every clone of a [`Cache`](crate::Cache) shares
//! and every call goes through. [`Engine`] holds the backend, the key space,
//! the options, the seal (compression and signing), the flights and the observer; its fields
//! are private, and the handle speaks to it through the methods of this
//! folder: `read.rs` the first read and its judgement, `load/` the miss
//! engine, `guard.rs` the guarded write, `direct.rs` the direct
//! operations, `flight.rs` single flight, `freshness.rs` the pure rules of
//! a value's lifetime.

mod direct;
mod flight;
mod freshness;
mod guard;
mod load;
mod read;

use std::sync::Arc;

use crate::Error;
use crate::backend::breaker::Health;
use crate::backend::{Backend, Expiry};
use crate::codec::Seal;
use crate::key::KeySpace;
use crate::observe::{Counters, Observer, Stats};
use crate::options::{Options, Timeout};
use flight::Flights;

pub(crate) use direct::{Applied, LeaseOp, Write};
pub(crate) use load::{Job, Loaded, LoadedMany};
pub(crate) use read::{First, Sight};
// `Plan` and `Pick` are public for the code `#[cached]` generates, which
// gets them from `__private::plan` and `__private::pick_*` without naming them.
#[allow(unreachable_pub)]
pub use load::{Pick, Plan, pick_ok, pick_some, pick_value};
pub(crate) use load::{pick_ok_with, pick_with};

pub(crate) struct Engine {
    backend: Arc<Backend>,
    keys: KeySpace,
    options: Options,
    /// How envelopes are compressed and signed.
    seal: Seal,
    /// What calls and operations count and record.
    observer: Observer,
    flights: Flights,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.backend)
            .field("prefix", &self.keys.prefix())
            .field("default_timeout", &self.options.default_timeout)
            .field("fail_open", &self.options.fail_open)
            .field("flights", &self.flights.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// The one constructor: fresh counters and flights over the given parts.
    pub(crate) fn new(backend: Arc<Backend>, keys: KeySpace, options: Options, seal: Seal) -> Self {
        Self {
            observer: Observer::new(keys.prefix(), options.trace_keys, backend.is_shared()),
            flights: Flights::new(options.single_flight),
            backend,
            keys,
            options,
            seal,
        }
    }

    /// An engine over the same backend, options and seal, in the key
    /// space `keys` (its own counters and flights); the backend's local
    /// tier starts covering it.
    pub(crate) fn with_keys(&self, keys: KeySpace) -> Self {
        self.backend.cover(&keys);
        Self::new(
            Arc::clone(&self.backend),
            keys,
            self.options,
            self.seal.clone(),
        )
    }

    /// The key space: prefix, escaping and the limit on key length.
    pub(crate) fn keys(&self) -> &KeySpace {
        &self.keys
    }

    /// What calls and operations of this cache count and record.
    pub(crate) fn observer(&self) -> &Observer {
        &self.observer
    }

    fn counters(&self) -> &Counters {
        self.observer.counters()
    }

    /// The expiry of `timeout`, the cache's default filled in.
    pub(crate) fn expiry(&self, timeout: Timeout) -> Expiry {
        timeout.resolve(self.options.default_timeout)
    }

    /// Connects to the backend (a build that waits for Redis).
    pub(crate) async fn connect(&self) -> Result<(), Error> {
        self.backend.connect().await
    }

    /// The cache's counters, the shared tier's hits and the invalidations
    /// waiting for Redis.
    pub(crate) fn stats(&self) -> Stats {
        let mut stats = self.counters().snapshot();
        stats.local_hits = self.backend.local_hits();
        if let Some(pending) = self.backend.pending() {
            use std::sync::atomic::Ordering::Relaxed;
            stats.invalidations_queued = pending.queued.load(Relaxed);
            stats.invalidations_retried = pending.retried.load(Relaxed);
            stats.invalidations_applied_late = pending.applied_late.load(Relaxed);
            stats.invalidations_pending = pending.len() as u64;
        }
        stats
    }

    /// Whether the backend is reachable, and the local tier's tracking.
    pub(crate) fn health(&self) -> Health {
        self.backend.health()
    }

    /// Counts and logs a backend error; swallows it when failing open.
    pub(crate) fn backend_failed(&self, error: Error) -> Result<(), Error> {
        let ignore = self.options.fail_open && error.is_backend();
        if error.is_backend() {
            self.counters().backend_error(&error, ignore);
        }
        if ignore { Ok(()) } else { Err(error) }
    }

    /// Counts and logs the failure of a write made beside a call (removing
    /// garbage, marking a computation, listing tags, freeing a lease): it
    /// is never the caller's error.
    pub(crate) fn failed_aside(&self, error: &Error) {
        self.counters().backend_error(error, true);
    }

    /// `result`, or `or` where it failed and the cache fails open (the
    /// error counted and logged, see [`Self::backend_failed`]).
    pub(crate) fn or_fail_open<R>(&self, result: Result<R, Error>, or: R) -> Result<R, Error> {
        match result {
            Ok(r) => Ok(r),
            Err(error) => self.backend_failed(error).map(|()| or),
        }
    }
}
