//! When a value is fresh, stale or due for an early refresh, and how long a
//! computed value lives: pure functions of the settings, the clock and a
//! random draw, so that each rule is tested on its own.

use std::time::Duration;

use crate::backend::Expiry;
use crate::clock::millis;
use crate::codec::Freshness;
use crate::options::Policy;

/// The freshness settings of one computation, the cache's defaults filled in.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Windows {
    /// Stale-while-revalidate: how long past its freshness a value is served while one caller refreshes.
    pub(crate) stale_ms: u64,
    /// Failover: how long past its freshness a value is kept, for when the refresh fails.
    pub(crate) failover_ms: u64,
    /// Early refresh (`XFetch`) with this beta.
    pub(crate) early: Option<f64>,
    /// Each timeout shortened by a random part up to this fraction.
    pub(crate) jitter: f64,
}

impl Windows {
    /// The windows of `policy` (whose open settings the caller filled from the cache's).
    pub(crate) fn of(policy: Policy) -> Self {
        Self {
            stale_ms: policy.stale.map_or(0, millis),
            failover_ms: policy.failover.map_or(0, millis),
            early: policy.early,
            jitter: policy.jitter.unwrap_or(0.0).clamp(0.0, 1.0),
        }
    }

    /// Whether a value `stale_for_ms` past its freshness (0: picked for an
    /// early refresh) is served while another caller refreshes it.
    pub(crate) fn serves_stale(&self, stale_for_ms: u64) -> bool {
        stale_for_ms == 0 || stale_for_ms < self.stale_ms
    }

    /// Whether a value `stale_for_ms` past its freshness is served when its refresh fails.
    pub(crate) fn fails_over(&self, stale_for_ms: u64) -> bool {
        stale_for_ms < self.failover_ms
    }

    /// How long a value computed in `compute_ms` lives in the store (its
    /// timeout, shortened by jitter, lengthened by the stale and failover
    /// windows), and when it stops being fresh. `draw` is uniform in `[0, 1)`.
    pub(crate) fn lifetime(
        &self,
        expiry: Expiry,
        compute_ms: u32,
        now_ms: u64,
        draw: f64,
    ) -> (Expiry, Freshness) {
        let Expiry::After(timeout) = expiry else {
            return (expiry, Freshness::default());
        };
        let fresh = timeout
            .mul_f64(1.0 - self.jitter * draw)
            .max(Duration::from_millis(1));
        let extra = self.stale_ms.max(self.failover_ms);
        if extra == 0 && self.early.is_none() {
            return (Expiry::After(fresh), Freshness::default());
        }
        let freshness = Freshness {
            fresh_until_ms: now_ms + millis(fresh).min(u64::MAX / 2),
            compute_ms,
        };
        (
            Expiry::after(fresh.saturating_add(Duration::from_millis(extra))),
            freshness,
        )
    }
}

/// The early-refresh beta of a refresh on purpose: every stored value is
/// due at once, whatever its freshness (a value with none included).
pub(crate) const REFRESH: f64 = f64::INFINITY;

/// The largest beta short of [`REFRESH`]: a value with a freshness and a
/// compute time is due at once, any other keeps its verdict.
pub(crate) const ANY_FRESHNESS: f64 = f64::MAX;

/// What a stored value's freshness makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Fresh,
    /// Past its freshness by `for_ms` (0: still fresh, but picked for an early refresh).
    Stale {
        for_ms: u64,
    },
}

/// Judges `freshness` by the clock `now_ms` (read only for a value with a
/// freshness limit). With early refresh, a value is picked
/// before it goes stale by the `XFetch` rule (Vattani, Chierichetti and
/// Lowenstein): when `now - compute time × beta × ln(draw)` reaches the end
/// of its freshness, so hot entries refresh one at a time before they
/// expire. `draw` (uniform in `[0, 1)`) is taken only then.
// On an in-process hit's path: inlined, it costs the hit no call (hit_loop).
#[allow(clippy::inline_always)]
#[inline(always)]
pub(crate) fn verdict(
    freshness: Freshness,
    early: Option<f64>,
    now_ms: impl FnOnce() -> u64,
    draw: impl FnOnce() -> f64,
) -> Verdict {
    if early == Some(REFRESH) {
        return Verdict::Stale { for_ms: 0 };
    }
    if freshness.fresh_until_ms == 0 {
        return Verdict::Fresh;
    }
    let now_ms = now_ms();
    if now_ms >= freshness.fresh_until_ms {
        return Verdict::Stale {
            for_ms: now_ms - freshness.fresh_until_ms,
        };
    }
    if let Some(beta) = early
        && freshness.compute_ms > 0
    {
        // In (0, 1]: the logarithm stays finite.
        let draw = 1.0 - draw();
        let ahead = -(f64::from(freshness.compute_ms) * beta * draw.ln());
        #[allow(clippy::cast_precision_loss)] // milliseconds since 1970 fit 53 bits
        let due = now_ms as f64 + ahead >= freshness.fresh_until_ms as f64;
        if due {
            return Verdict::Stale { for_ms: 0 };
        }
    }
    Verdict::Fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn windows(stale: u64, failover: u64, early: Option<f64>, jitter: f64) -> Windows {
        Windows {
            stale_ms: stale,
            failover_ms: failover,
            early,
            jitter,
        }
    }

    #[test]
    fn a_refresh_makes_every_value_due_and_a_huge_beta_only_those_with_a_freshness() {
        let none = Freshness::default();
        let fresh = Freshness {
            fresh_until_ms: 10_000,
            compute_ms: 50,
        };
        let due = Verdict::Stale { for_ms: 0 };
        assert_eq!(verdict(none, Some(REFRESH), || 0, || 0.5), due);
        assert_eq!(verdict(fresh, Some(REFRESH), || 0, || 0.5), due);
        assert_eq!(verdict(fresh, Some(ANY_FRESHNESS), || 0, || 0.5), due);
        assert_eq!(
            verdict(none, Some(ANY_FRESHNESS), || 0, || 0.5),
            Verdict::Fresh
        );
    }

    #[test]
    fn a_plain_value_lives_its_timeout_with_no_freshness() {
        let w = Windows::default();
        assert_eq!(
            w.lifetime(Expiry::After(MINUTE), 5, 1_000, 0.5),
            (Expiry::After(MINUTE), Freshness::default())
        );
        assert_eq!(
            w.lifetime(Expiry::Never, 5, 1_000, 0.5),
            (Expiry::Never, Freshness::default())
        );
    }

    #[test]
    fn jitter_shortens_by_its_fraction_of_the_draw() {
        let w = windows(0, 0, None, 0.5);
        let (expiry, _) = w.lifetime(Expiry::After(MINUTE), 0, 0, 0.5);
        assert_eq!(expiry, Expiry::After(Duration::from_secs(45)));
        let (expiry, _) = w.lifetime(Expiry::After(MINUTE), 0, 0, 0.0);
        assert_eq!(expiry, Expiry::After(MINUTE));
    }

    #[test]
    fn stale_and_failover_windows_extend_the_life_past_freshness() {
        let w = windows(10_000, 30_000, None, 0.0);
        let (expiry, freshness) = w.lifetime(Expiry::After(MINUTE), 7, 1_000, 0.9);
        assert_eq!(expiry, Expiry::After(MINUTE + Duration::from_secs(30)));
        assert_eq!(freshness.fresh_until_ms, 61_000);
        assert_eq!(freshness.compute_ms, 7);
    }

    #[test]
    fn windows_serve_within_their_length() {
        let w = windows(10, 20, None, 0.0);
        assert!(w.serves_stale(0) && w.serves_stale(9) && !w.serves_stale(10));
        assert!(w.fails_over(19) && !w.fails_over(20));
        assert!(!Windows::default().fails_over(0));
    }

    #[test]
    fn verdicts_follow_the_clock() {
        let f = Freshness {
            fresh_until_ms: 1_000,
            compute_ms: 0,
        };
        let never = || unreachable!("no draw without early refresh");
        assert_eq!(
            verdict(Freshness::default(), None, || 5, never),
            Verdict::Fresh
        );
        assert_eq!(verdict(f, None, || 999, never), Verdict::Fresh);
        assert_eq!(
            verdict(f, None, || 1_250, never),
            Verdict::Stale { for_ms: 250 }
        );
    }

    #[test]
    fn early_refresh_picks_by_compute_time_and_draw() {
        let f = Freshness {
            fresh_until_ms: 1_000,
            compute_ms: 100,
        };
        // A draw near 1 (ln of a tiny number): far ahead, picked.
        assert_eq!(
            verdict(f, Some(1.0), || 900, || 0.999_999),
            Verdict::Stale { for_ms: 0 }
        );
        // A draw of 0 (ln 1 = 0): not ahead at all.
        assert_eq!(verdict(f, Some(1.0), || 900, || 0.0), Verdict::Fresh);
        // Without a compute time there is nothing to go by.
        let free = Freshness { compute_ms: 0, ..f };
        assert_eq!(verdict(free, Some(1.0), || 999, || 0.999), Verdict::Fresh);
    }
}
