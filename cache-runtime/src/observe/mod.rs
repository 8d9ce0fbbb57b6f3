//! Observation, below the engine: what calls and operations count
//! (`stats.rs` the cache's counters, `site.rs` each `#[cached]` function's
//! figures), what goes to the `metrics` facade (`meters.rs`), and what
//! their spans record ([`Observer`]). Nothing here reads or writes a store.

pub(crate) mod meters;
mod site;
mod stats;

use crate::Error;
pub use site::{FunctionStats, Site};
use site::{Tallies, TallyRef};
pub(crate) use stats::Counters;
pub use stats::Stats;
pub(crate) use stats::Striped;

/// How a call's outcome was come by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Served {
    /// A stored value.
    Hit,
    /// A value past its freshness (stale-while-revalidate or failover).
    Stale,
    /// The value another computation stored (single flight, or the fleet's lease).
    Joined,
    /// Computed by this call, in this many microseconds.
    Computed { micros: u64 },
    /// Computed without the cache, which failed (or, `skipped`, skipped
    /// the call: its circuit open, the request's budget spent).
    Uncached { skipped: bool },
}

impl Served {
    /// A computation that started at `started` and just ended.
    pub(crate) fn computed_since(started: std::time::Instant) -> Self {
        Self::Computed {
            micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        }
    }

    /// How a call served this way ended, for spans and metrics: `error`
    /// when the cache failed, `bypass` when it skipped the call.
    pub(crate) fn outcome(self, error: Option<&Error>) -> &'static str {
        match (self, error) {
            (_, Some(error)) if error.is_skip() => "bypass",
            (Self::Uncached { skipped: true }, None) => "bypass",
            (_, Some(_)) | (Self::Uncached { .. }, None) => "error",
            (Self::Hit, None) => "hit",
            (Self::Stale, None) => "stale",
            (Self::Joined, None) => "joined",
            (Self::Computed { .. }, None) => "miss",
        }
    }
}

/// What one cache counts and records: its counters, its functions'
/// tallies, and how its spans name keys and tiers.
pub(crate) struct Observer {
    counters: Counters,
    /// The figures of each `#[cached]` function that called through this cache.
    tallies: Tallies,
    /// Tells this cache from every other in the process, for the sites.
    id: u64,
    /// Keys in spans as they are (else a digest).
    trace_keys: bool,
    /// Whether the backend is shared (Redis) rather than the memory store.
    shared: bool,
}

impl Observer {
    /// The observer of the cache labelled `label` (its key prefix).
    pub(crate) fn new(label: &str, trace_keys: bool, shared: bool) -> Self {
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self {
            counters: Counters::new(label),
            tallies: Tallies::default(),
            id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            trace_keys,
            shared,
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The figures of each `#[cached]` function that called through this cache.
    pub(crate) fn function_stats(&self) -> Vec<FunctionStats> {
        self.tallies.snapshot()
    }

    /// Counts a call of the function `site` served as `served`, and records
    /// it in `span` (`near`: an in-process store answered) — the one hook
    /// every cached call ends in.
    // On an in-process hit's path: inlined, it costs the hit no call (hit_loop).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub(crate) fn served(
        &self,
        site: Option<&'static Site>,
        span: &tracing::Span,
        full: &str,
        served: Served,
        near: bool,
    ) {
        if let Some(site) = site {
            self.tally(site).count(served);
        }
        if !span.is_disabled() {
            self.trace(span, full, served, near);
        }
    }

    /// The tally of the function `site` in this cache.
    #[inline]
    fn tally(&self, site: &'static Site) -> TallyRef {
        site.tally_in(self.id, &self.tallies, self.counters.label())
    }

    /// The span of the direct operation `op` (level debug).
    pub(crate) fn op_span(&self, op: &'static str) -> tracing::Span {
        tracing::debug_span!(
            "cachette.op",
            op,
            cache = &**self.counters.label(),
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
        let result = in_span!(&span, work);
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
        if self.trace_keys {
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
    fn trace(&self, span: &tracing::Span, full: &str, served: Served, near: bool) {
        let outcome = served.outcome(None);
        let tier = match (self.shared, near) {
            (false, _) => "memory",
            (true, true) => "local",
            (true, false) => "redis",
        };
        span.record("outcome", outcome);
        span.record("tier", tier);
        self.trace_key(span, full);
    }
}

/// Awaits the future `work` in `span`, inside an `async` block or function.
/// Instrumenting moves the future into a wrapper on the heap: only when a
/// subscriber listens. (A macro, not an `async fn`: an `async fn` would hold
/// `work` twice in its state, doubling the size of every future around a
/// call.)
macro_rules! in_span {
    ($span:expr, $work:expr) => {{
        let span: &::tracing::Span = $span;
        if span.is_disabled() {
            $work.await
        } else {
            ::tracing::Instrument::instrument(Box::pin($work), span.clone()).await
        }
    }};
}
pub(crate) use in_span;

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
