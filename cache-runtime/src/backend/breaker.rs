//! The circuit breaker in front of Redis.
//!
//! After `threshold` failures in a row (timeouts, refused or broken
//! connections), the circuit *opens*: calls skip Redis for `cool_down` and
//! are misses that cost nothing. Then one call goes through as a *probe*:
//! if Redis answers, the circuit closes; if not, it stays open for another
//! `cool_down`. Each change of state is logged once.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use crate::clock::Monotonic;

/// The state of a cache's circuit breaker, and of its local tier's
/// tracking when it has one, from [`Cache::health`](crate::Cache::health).
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// let health = cachette::Cache::memory().health();
/// assert_eq!(health.circuit, cachette::Circuit::Closed);
/// assert!(health.is_up());
/// assert_eq!(health.tracking, None); // no local tier
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// Whether calls go to the backend.
    pub circuit: Circuit,
    /// Backend failures in a row, up to now (0 after any success).
    pub consecutive_failures: u32,
    /// How many times the circuit has opened since the cache was built.
    pub times_opened: u64,
    /// With a local tier ([`CacheBuilder::local_tier`](crate::CacheBuilder::local_tier)):
    /// whether its `CLIENT TRACKING` is up, and since when. While it is
    /// down the tier is empty and bypassed (every read goes to Redis).
    pub tracking: Option<Tracking>,
}

/// Whether a local tier's tracking is up (see [`Health::tracking`]).
///
/// ```no_run
/// # extern crate cachette_runtime as cachette;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachette::Error> {
/// let cache = cachette::Cache::builder()
///     .redis_url("redis://127.0.0.1:6379/0")
///     .local_tier(64 << 20)
///     .build()
///     .await?;
/// if let Some(tracking) = cache.health().tracking {
///     let state = if tracking.up { "up" } else { "down" };
///     println!("tracking {state} for {:?}", tracking.since.elapsed());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tracking {
    /// Whether Redis tracks the tier's keys for it now, so that the tier serves hits.
    pub up: bool,
    /// When tracking last went up or down (when the tier was built, if it never went up).
    pub since: std::time::Instant,
}

impl Health {
    /// A backend with nothing to break (memory), or one never set up
    /// (`Open` for good).
    pub(crate) fn fixed(circuit: Circuit) -> Self {
        Self {
            circuit,
            consecutive_failures: 0,
            times_opened: 0,
            tracking: None,
        }
    }

    /// Whether calls go to the backend (the circuit is closed).
    #[must_use]
    pub fn is_up(&self) -> bool {
        self.circuit == Circuit::Closed
    }
}

/// Whether calls go to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Circuit {
    /// Calls go to the backend.
    Closed,
    /// Calls skip the backend: they are misses (or errors without fail-open)
    /// until `retry_in` passes and one call probes the backend again.
    Open {
        /// When the next probe may go through.
        retry_in: Duration,
    },
    /// One call is probing the backend; the others still skip it.
    HalfOpen,
}

pub(crate) struct Breaker {
    /// Failures in a row that open the circuit; 0 never opens it.
    threshold: u32,
    cool_down: Duration,
    failures: AtomicU32,
    /// 0 while closed; else 1 + when a probe may go through (ms since `started`).
    open_until_ms: AtomicU64,
    probing: AtomicBool,
    times_opened: AtomicU64,
    started: Monotonic,
}

/// Leave to call the backend: as usual, or as the probe of an open circuit.
#[must_use = "a pass is settled by `succeeded` or `failed`"]
pub(crate) struct Pass<'a> {
    breaker: &'a Breaker,
    probe: bool,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            threshold,
            cool_down,
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            times_opened: AtomicU64::new(0),
            started: Monotonic::start(),
        }
    }

    /// Leave to call the backend, or how long until the next probe.
    pub(crate) fn admit(&self) -> Result<Pass<'_>, Duration> {
        let until = self.open_until_ms.load(SeqCst);
        if until == 0 {
            return Ok(Pass {
                breaker: self,
                probe: false,
            });
        }
        let (now, until) = (self.now_ms(), until - 1);
        if now < until {
            return Err(Duration::from_millis(until - now));
        }
        if self
            .probing
            .compare_exchange(false, true, SeqCst, SeqCst)
            .is_ok()
        {
            Ok(Pass {
                breaker: self,
                probe: true,
            })
        } else {
            Err(Duration::ZERO)
        }
    }

    pub(crate) fn health(&self) -> Health {
        let until = self.open_until_ms.load(SeqCst);
        let circuit = if until == 0 {
            Circuit::Closed
        } else if self.probing.load(SeqCst) {
            Circuit::HalfOpen
        } else {
            Circuit::Open {
                retry_in: Duration::from_millis((until - 1).saturating_sub(self.now_ms())),
            }
        };
        Health {
            circuit,
            consecutive_failures: self.failures.load(SeqCst),
            times_opened: self.times_opened.load(SeqCst),
            tracking: None,
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.now_ms()
    }

    /// `open_until_ms` for a circuit opening now.
    fn reopen_at(&self) -> u64 {
        let cool_down = crate::clock::millis(self.cool_down).min(u64::MAX / 2);
        self.now_ms().saturating_add(cool_down).saturating_add(1)
    }

    fn close(&self) {
        // Loads first: on the hot path nothing changes, and nothing is written.
        if self.failures.load(SeqCst) != 0 {
            self.failures.store(0, SeqCst);
        }
        if self.open_until_ms.load(SeqCst) != 0 && self.open_until_ms.swap(0, SeqCst) != 0 {
            tracing::info!("cache backend answers again; circuit closed");
            crate::observe::meters::circuit(false);
        }
    }

    /// Counts a failure; returns whether it opened the circuit.
    fn fail(&self, probe: bool) -> bool {
        let failures = self.failures.fetch_add(1, SeqCst).saturating_add(1);
        if probe {
            self.open_until_ms.store(self.reopen_at(), SeqCst);
            tracing::debug!("cache backend probe failed; circuit stays open");
            return false;
        }
        if self.threshold == 0 || failures < self.threshold {
            return false;
        }
        let opened = self
            .open_until_ms
            .compare_exchange(0, self.reopen_at(), SeqCst, SeqCst)
            .is_ok();
        if opened {
            self.times_opened.fetch_add(1, SeqCst);
            crate::observe::meters::circuit(true);
            tracing::warn!(
                failures,
                cool_down = ?self.cool_down,
                "cache backend failing; circuit open: calls skip it until a probe succeeds"
            );
        }
        opened
    }
}

impl Pass<'_> {
    /// The backend answered (an error reply counts: the server is there).
    pub(crate) fn succeeded(self) {
        self.breaker.close();
        self.settle();
    }

    /// The backend failed or did not answer; returns whether the circuit opened now.
    pub(crate) fn failed(self) -> bool {
        let opened = self.breaker.fail(self.probe);
        self.settle();
        opened
    }

    fn settle(self) {
        if self.probe {
            self.breaker.probing.store(false, SeqCst);
        }
        std::mem::forget(self);
    }
}

impl Drop for Pass<'_> {
    /// A call dropped before the backend answered counts as a failure, so a
    /// cancelled probe cannot leave the circuit half open for good.
    fn drop(&mut self) {
        if self.probe {
            self.breaker.fail(true);
            self.breaker.probing.store(false, SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_closes_on_a_successful_probe() {
        let breaker = Breaker::new(3, Duration::ZERO);
        for _ in 0..2 {
            assert!(!breaker.admit().unwrap().failed());
        }
        assert!(breaker.health().is_up());
        assert!(
            breaker.admit().unwrap().failed(),
            "the third failure opens it"
        );
        assert_eq!(breaker.health().times_opened, 1);
        // Cool-down 0: the next call is the probe, and only it.
        let probe = breaker.admit().unwrap();
        assert_eq!(breaker.health().circuit, Circuit::HalfOpen);
        assert_eq!(breaker.admit().err(), Some(Duration::ZERO));
        probe.succeeded();
        assert!(breaker.health().is_up());
        assert_eq!(breaker.health().consecutive_failures, 0);
    }

    #[test]
    fn an_open_circuit_refuses_until_its_cool_down_passes() {
        let breaker = Breaker::new(1, Duration::from_secs(3600));
        assert!(breaker.admit().unwrap().failed());
        assert!(breaker.admit().is_err());
        assert!(
            matches!(breaker.health().circuit, Circuit::Open { retry_in } if retry_in > Duration::from_secs(3000))
        );
    }

    #[test]
    fn a_dropped_probe_reopens_the_circuit() {
        let breaker = Breaker::new(1, Duration::ZERO);
        assert!(breaker.admit().unwrap().failed());
        drop(breaker.admit().unwrap());
        assert!(!breaker.health().is_up());
        // The probe slot is free again.
        breaker.admit().unwrap().succeeded();
        assert!(breaker.health().is_up());
    }

    #[test]
    fn a_zero_threshold_never_opens() {
        let breaker = Breaker::new(0, Duration::ZERO);
        for _ in 0..100 {
            assert!(!breaker.admit().unwrap().failed());
        }
        assert!(breaker.health().is_up());
    }
}
