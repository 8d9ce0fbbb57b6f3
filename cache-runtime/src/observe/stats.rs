//! Counters of what the cache did, and the rate-limited log of ignored errors.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::meters;
use crate::Error;
use crate::clock::Monotonic;

/// How often, in milliseconds, a backend error is logged at most.
const LOG_INTERVAL_MS: u64 = 10_000;

/// A snapshot of a cache's counters, from [`Cache::stats`](crate::Cache::stats).
///
/// The counters are shared by every clone of a [`Cache`](crate::Cache) and
/// only grow.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachette::Error> {
/// use std::time::Duration;
///
/// let cache = cachette::Cache::memory();
/// assert_eq!(cache.get::<String>("k").await?, None);
/// cache.set("k", "v", Duration::from_secs(60)).await?;
/// assert_eq!(cache.get::<String>("k").await?.as_deref(), Some("v"));
/// let stats = cache.stats();
/// assert_eq!((stats.hits, stats.misses, stats.writes), (1, 1, 1));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Reads that found a value.
    pub hits: u64,
    /// Reads that found nothing usable (absent, expired, undecodable, or a
    /// backend failure), or only a stale value, and computed the value or
    /// served the stale one.
    pub misses: u64,
    /// Calls that found nothing and were handed the value another call
    /// computed (in this process, or in the fleet under a lease) instead of
    /// computing it: neither a hit nor a miss. `hits + joined` calls were
    /// served without a computation of their own.
    pub joined: u64,
    /// Values written.
    pub writes: u64,
    /// Stored values that could not be decoded and were removed.
    pub undecodable: u64,
    /// Stored values refused for a missing or wrong signature (see
    /// [`CacheBuilder::sign_with`](crate::CacheBuilder::sign_with)), removed and recomputed.
    pub forged: u64,
    /// Backend errors and timeouts, returned or ignored.
    pub errors: u64,
    /// Hits served by the local tier in front of Redis, without a command
    /// to Redis (what the tier answers after an invalidation, a tombstone
    /// or a value of older versions, is a miss and not counted; a value
    /// past its soft timeout, served stale, is). The tier is shared by every handle on the same backend
    /// ([`Cache::with_prefix`](crate::Cache::with_prefix)), and so is this
    /// figure: each such hit is counted in `hits` of the handle it served,
    /// so with several handles `local_hits` can exceed one handle's `hits`.
    pub local_hits: u64,
    /// Calls that skipped the backend: its circuit was open, or the
    /// request's cache budget was spent.
    pub skipped: u64,
    /// Invalidations Redis did not take when they were issued, kept to be
    /// retried (see [`Cache::invalidate`](crate::Cache::invalidate)). Like
    /// the three below, a figure of the Redis connection that every handle
    /// made with [`Cache::with_prefix`](crate::Cache::with_prefix) shares.
    /// A tag's invalidation counts twice: its version, and the entries
    /// tagged from their values.
    pub invalidations_queued: u64,
    /// Retries of kept invalidations (each attempt, landed or not).
    pub invalidations_retried: u64,
    /// Kept invalidations that landed on a retry.
    pub invalidations_applied_late: u64,
    /// Kept invalidations still waiting for Redis now.
    pub invalidations_pending: u64,
}

/// A counter that threads on different cores add to without contending:
/// one cell per stripe, each on its own cache line, a thread always adding
/// to the same stripe; read by summing the cells.
#[derive(Debug, Default)]
pub(crate) struct Striped([Cell; STRIPES]);

const STRIPES: usize = 8;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Cell(AtomicU64);

impl Striped {
    // On an in-process hit's path: inlined, it costs the hit no call (hit_loop).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub(crate) fn add(&self, n: u64) {
        self.0[stripe()].0.fetch_add(n, Relaxed);
    }

    pub(crate) fn sum(&self) -> u64 {
        self.0.iter().map(|cell| cell.0.load(Relaxed)).sum()
    }
}

/// This thread's stripe, given out in turn as threads first count.
// On an in-process hit's path: inlined, it costs the hit no call (hit_loop).
#[allow(clippy::inline_always)]
#[inline(always)]
fn stripe() -> usize {
    thread_local! {
        // Set on the thread's first count (`STRIPES`: not yet): a constant
        // start needs no lazy initialisation on every read.
        static STRIPE: std::cell::Cell<usize> = const { std::cell::Cell::new(STRIPES) };
    }
    /// The thread's first count: its stripe, the next in turn.
    #[cold]
    fn assign() -> usize {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let stripe = usize::try_from(NEXT.fetch_add(1, Relaxed)).unwrap_or(0) % STRIPES;
        STRIPE.set(stripe);
        stripe
    }
    match STRIPE.get() {
        STRIPES => assign(),
        stripe => stripe,
    }
}

#[derive(Debug)]
pub(crate) struct Counters {
    /// Written on every hit, from every thread.
    hits: Striped,
    misses: AtomicU64,
    joined: AtomicU64,
    writes: AtomicU64,
    undecodable: AtomicU64,
    forged: AtomicU64,
    errors: AtomicU64,
    skipped: AtomicU64,
    /// The log of backend errors.
    error_log: Throttle,
    /// The log of refused signatures.
    forged_log: Throttle,
    /// The cache's label in metrics: its key prefix.
    label: super::meters::Label,
}

/// A log line written at most once per [`LOG_INTERVAL_MS`], with the number
/// of events since the last one.
#[derive(Debug)]
struct Throttle {
    /// Events since the last log line.
    unlogged: AtomicU64,
    /// When the last log line was written, in ms since `started`; `u64::MAX` before the first.
    last_log_ms: AtomicU64,
    started: Monotonic,
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            unlogged: AtomicU64::new(0),
            last_log_ms: AtomicU64::new(u64::MAX),
            started: Monotonic::start(),
        }
    }
}

impl Throttle {
    /// Counts an event; when a line is due, how many events it reports.
    fn due(&self) -> Option<u64> {
        self.unlogged.fetch_add(1, Relaxed);
        let now = self.started.now_ms();
        let last = self.last_log_ms.load(Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= LOG_INTERVAL_MS;
        (due && self
            .last_log_ms
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok())
        .then(|| self.unlogged.swap(0, Relaxed))
    }
}

impl Counters {
    /// The counters of the cache labelled `label` (its key prefix).
    pub(crate) fn new(label: &str) -> Self {
        Self {
            hits: Striped::default(),
            misses: AtomicU64::new(0),
            joined: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            undecodable: AtomicU64::new(0),
            forged: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            error_log: Throttle::default(),
            forged_log: Throttle::default(),
            label: label.into(),
        }
    }

    /// The cache's label in metrics.
    pub(crate) fn label(&self) -> &super::meters::Label {
        &self.label
    }

    // On an in-process hit's path: inlined, it costs the hit no call (hit_loop).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub(crate) fn hit(&self) {
        self.hits.add(1);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Relaxed);
    }

    pub(crate) fn joined(&self) {
        self.joined.fetch_add(1, Relaxed);
    }

    pub(crate) fn hits_and_misses(&self, hits: usize, misses: usize) {
        self.hits.add(hits as u64);
        self.misses.fetch_add(misses as u64, Relaxed);
    }

    pub(crate) fn writes(&self, n: usize) {
        self.writes.fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn undecodable(&self, key: &str) {
        self.undecodable.fetch_add(1, Relaxed);
        meters::refused(&self.label, "undecodable");
        tracing::debug!(
            key,
            "cache entry could not be decoded; treated as a miss and removed"
        );
    }

    /// Counts a value refused for its signature, and logs it (rate-limited):
    /// someone who can write to the store planted or altered it.
    pub(crate) fn forged(&self, key: &str) {
        self.forged.fetch_add(1, Relaxed);
        meters::refused(&self.label, "forged");
        if let Some(refused) = self.forged_log.due() {
            tracing::warn!(
                key,
                refused,
                "cache entry without a valid signature; treated as a miss and replaced"
            );
        }
    }

    /// Counts a backend error and logs it, at most once per [`LOG_INTERVAL_MS`]
    /// with the number of errors ignored in between.
    pub(crate) fn backend_error(&self, error: &Error, ignored: bool) {
        if matches!(error, Error::CircuitOpen { .. } | Error::BudgetSpent { .. }) {
            // The breaker logged its opening once, and a spent budget is the
            // caller's choice: skipped calls are only counted.
            self.skipped.fetch_add(1, Relaxed);
            meters::count("cachette_skipped_total", &self.label);
            return;
        }
        self.errors.fetch_add(1, Relaxed);
        meters::count("cachette_backend_errors_total", &self.label);
        if let Some(since_last) = self.error_log.due() {
            let error: &dyn std::error::Error = error;
            if ignored {
                tracing::warn!(
                    error,
                    errors = since_last,
                    "cache backend failing; calls are treated as misses"
                );
            } else {
                tracing::warn!(error, errors = since_last, "cache backend failing");
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            hits: self.hits.sum(),
            misses: self.misses.load(Relaxed),
            joined: self.joined.load(Relaxed),
            writes: self.writes.load(Relaxed),
            undecodable: self.undecodable.load(Relaxed),
            forged: self.forged.load(Relaxed),
            errors: self.errors.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            local_hits: 0,
            invalidations_queued: 0,
            invalidations_retried: 0,
            invalidations_applied_late: 0,
            invalidations_pending: 0,
        }
    }
}
