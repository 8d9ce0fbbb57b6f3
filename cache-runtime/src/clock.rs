//! Time and chance, each written once: the milliseconds of a duration, the
//! wall clock, a monotonic clock for timestamps kept in atomics, random ids
//! and uniform draws.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The whole milliseconds of `d`, saturating at `u64::MAX`.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The wall clock in Unix milliseconds (0 for a clock set before 1970).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// A monotonic clock counting milliseconds from its creation, for instants
/// kept in an `AtomicU64`. Its readings stay below `u64::MAX / 2`, so that
/// `u64::MAX` is free to mean "never" and sums do not overflow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Monotonic(Instant);

impl Monotonic {
    pub(crate) fn start() -> Self {
        Self(Instant::now())
    }

    /// Milliseconds since [`start`](Self::start).
    pub(crate) fn now_ms(self) -> u64 {
        millis(self.0.elapsed()).min(u64::MAX / 2)
    }
}

/// A random 64-bit id: the std hasher's random keys, mixed with a counter
/// and the clock, so that ids differ across calls, processes and machines.
pub(crate) fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Relaxed));
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// A uniform draw in `[0, 1)` from 53 random bits.
pub(crate) fn draw() -> f64 {
    #[allow(clippy::cast_precision_loss)] // 53 bits are exact in an f64
    let draw = (random_id() >> 11) as f64 / (1_u64 << 53) as f64;
    draw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_saturate_in_milliseconds() {
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }

    #[test]
    fn draws_are_in_the_unit_interval() {
        for _ in 0..1000 {
            let d = draw();
            assert!((0.0..1.0).contains(&d), "{d}");
        }
    }

    #[test]
    fn the_monotonic_clock_starts_near_zero() {
        assert!(Monotonic::start().now_ms() < 1000);
    }
}
