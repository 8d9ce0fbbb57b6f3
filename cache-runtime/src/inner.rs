//! The parts every clone of a [`Cache`](crate::Cache) shares: the backend,
//! the key space, the options, the value format, the counters, the
//! per-function tallies and the flights; and what the spans of calls and
//! direct operations record. The read path, the miss engine and the guarded
//! writes are methods of [`Inner`], in the rooms named for them.

use std::sync::Arc;

use tracing::Instrument;

use crate::Error;
use crate::backend::Backend;
use crate::codec::Format;
use crate::flight::Flights;
use crate::key::KeySpace;
use crate::load::Served;
use crate::meters;
use crate::options::Options;
use crate::site::Tallies;
use crate::stats::Counters;

pub(crate) struct Inner {
    pub(crate) backend: Arc<Backend>,
    pub(crate) keys: KeySpace,
    pub(crate) options: Options,
    /// How envelopes are compressed and signed.
    pub(crate) format: Format,
    pub(crate) counters: Counters,
    /// The figures of each `#[cached]` function that called through this cache.
    pub(crate) tallies: Tallies,
    pub(crate) flights: Flights,
    /// Tells this cache from every other in the process, for the sites.
    pub(crate) id: u64,
}

impl Inner {
    /// The one constructor: fresh counters and flights over the given parts.
    pub(crate) fn new(
        backend: Arc<Backend>,
        keys: KeySpace,
        options: Options,
        format: Format,
    ) -> Self {
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self {
            backend,
            counters: Counters::new(keys.prefix()),
            keys,
            options,
            format,
            tallies: Tallies::default(),
            flights: Flights::new(options.single_flight),
            id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The span of the direct operation `op` (level debug).
    pub(crate) fn op_span(&self, op: &'static str) -> tracing::Span {
        tracing::debug_span!(
            "cachette.op",
            op,
            cache = self.keys.prefix(),
            outcome = tracing::field::Empty,
            key = tracing::field::Empty,
            size = tracing::field::Empty,
        )
    }

    /// Records how the direct operation `op` on `key` ended (`outcome`), in
    /// its span and in metrics.
    pub(crate) fn op_done(
        &self,
        span: &tracing::Span,
        op: &'static str,
        key: &str,
        outcome: &'static str,
    ) {
        meters::operation(self.counters.label(), op, outcome);
        if !span.is_disabled() {
            span.record("outcome", outcome);
            self.trace_key(span, key);
        }
    }

    /// Runs the direct operation `op` on `key` in its span; `outcome` names
    /// how a success ended (an error is `error`, a skipped backend `bypass`).
    pub(crate) async fn op<R>(
        &self,
        op: &'static str,
        key: &str,
        work: impl Future<Output = Result<R, Error>>,
        outcome: fn(&R) -> &'static str,
    ) -> Result<R, Error> {
        let span = self.op_span(op);
        let result = if span.is_disabled() {
            work.await
        } else {
            Box::pin(work).instrument(span.clone()).await
        };
        let ended = match &result {
            Ok(r) => outcome(r),
            Err(error) if error.is_skip() => "bypass",
            Err(_) => "error",
        };
        self.op_done(&span, op, key, ended);
        result
    }

    /// Records `key` in `span`: its digest, or itself with `trace_keys`.
    fn trace_key(&self, span: &tracing::Span, key: &str) {
        if self.options.trace_keys {
            span.record("key", key);
        } else {
            let digest = xxhash_rust::xxh3::xxh3_64(key.as_bytes());
            span.record(
                "key",
                tracing::field::display(format_args!("{digest:016x}")),
            );
        }
    }

    /// Records how a call or operation on the stored key `full` was served
    /// in its span: the outcome, the tier (`near`: an in-process store
    /// answered) and a digest of the key, or the key where the cache was
    /// built with [`trace_keys`](crate::CacheBuilder::trace_keys).
    pub(crate) fn trace(
        &self,
        span: &tracing::Span,
        full: &str,
        served: Served,
        skipped: bool,
        near: bool,
    ) {
        let outcome = match served {
            Served::Hit => "hit",
            Served::Stale => "stale",
            Served::Joined => "joined",
            Served::Computed { .. } => "miss",
            Served::Uncached if skipped => "bypass",
            Served::Uncached => "error",
        };
        let tier = match (self.backend.is_shared(), near) {
            (false, _) => "memory",
            (true, true) => "local",
            (true, false) => "redis",
        };
        span.record("outcome", outcome);
        span.record("tier", tier);
        self.trace_key(span, full);
    }

    /// How a direct computation was served, for its span and metrics.
    pub(crate) fn served_outcome(served: Served, error: Option<&Error>) -> &'static str {
        match (served, error) {
            (_, Some(error)) if error.is_skip() => "bypass",
            (_, Some(_)) | (Served::Uncached, None) => "error",
            (Served::Hit, None) => "hit",
            (Served::Stale, None) => "stale",
            (Served::Joined, None) => "joined",
            (Served::Computed { .. }, None) => "miss",
        }
    }

    /// Counts and logs a backend error; swallows it when failing open.
    pub(crate) fn backend_failed(&self, error: Error) -> Result<(), Error> {
        let ignore = self.options.fail_open && error.is_backend();
        if error.is_backend() {
            self.counters.backend_error(&error, ignore);
        }
        if ignore { Ok(()) } else { Err(error) }
    }
}

/// Records the size of the value read or written in the current span,
/// when a subscriber listens (the spans of calls and operations have a
/// `size` field).
pub(crate) fn trace_size(bytes: usize) {
    // Finding the current span costs more than the test that nobody listens.
    if !tracing::dispatcher::has_been_set() || !tracing::level_enabled!(tracing::Level::DEBUG) {
        return;
    }
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.record("size", bytes);
    }
}
