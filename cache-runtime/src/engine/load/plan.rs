//! How a computation runs: [`Plan`] (its timeout, lease and freshness
//! settings, set by the direct API or by `#[cached]` options) and [`Pick`]
//! (what of its outcome is stored).

use std::time::Duration;

use crate::Error;
use crate::observe::Site;
use crate::options::{Millis, Policy, Seconds, Timeout};

/// How [`Engine::load`](crate::engine::Engine) runs a computation.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub(crate) timeout: Timeout,
    /// Compute across the fleet under a lease of this length.
    pub(crate) lease: Option<Duration>,
    /// On a failing read (without fail-open): compute uncached and report
    /// the error beside the outcome, or return the error alone.
    pub(crate) compute_on_error: bool,
    /// Freshness settings; those left `None` come from the cache.
    pub(crate) policy: Policy,
    /// The `#[cached]` function computing, whose figures the call counts in.
    pub(crate) site: Option<&'static Site>,
    /// Off: the call computes on its own, neither waiting for a computation
    /// under way nor waited for (nor under a lease).
    pub(crate) single_flight: bool,
    /// A refresh on purpose (`refresh!`, `Cache::refresh`): the value is
    /// computed and stored even when a fresh one is stored, and no value
    /// read or computed before the refresh was asked for is returned.
    pub(crate) refresh: bool,
}

impl Plan {
    /// How the direct API computes: the cache's default lease, and errors returned.
    pub(crate) fn direct(timeout: Timeout) -> Self {
        Self {
            timeout,
            lease: None,
            compute_on_error: false,
            policy: Policy::default(),
            site: None,
            single_flight: true,
            refresh: false,
        }
    }

    /// A refresh on purpose: computed and stored whatever is stored now.
    pub(crate) fn refreshing(mut self) -> Self {
        self.refresh = true;
        self
    }

    /// Without single flight: the call neither waits for a computation
    /// under way nor is waited for.
    #[cfg(feature = "http")]
    pub(crate) fn alone(mut self) -> Self {
        self.single_flight = false;
        self
    }

    /// How the `#[cached]` function of `site` computes: its timeout, its
    /// fleet-wide lease (or the cache's), and on a failing cache, uncached.
    #[must_use]
    pub fn cached(timeout: Timeout, lease: Option<Duration>, site: &'static Site) -> Self {
        Self {
            timeout,
            lease,
            compute_on_error: true,
            policy: Policy::default(),
            site: Some(site),
            single_flight: true,
            refresh: false,
        }
    }

    /// `#[cached(stale = ...)]`.
    #[must_use]
    pub fn stale(mut self, stale: impl Seconds) -> Self {
        self.policy.stale = Some(stale.into_duration());
        self
    }

    /// `#[cached(failover = ...)]`.
    #[must_use]
    pub fn failover(mut self, failover: impl Seconds) -> Self {
        self.policy.failover = Some(failover.into_duration());
        self
    }

    /// `#[cached(early = ...)]`: the `XFetch` beta (`true` is 1.0).
    #[must_use]
    pub fn early(mut self, beta: f64) -> Self {
        self.policy.early = Some(beta);
        self
    }

    /// `#[cached(soft_timeout = ...)]`: with a stale or failover value at
    /// hand, how long to wait for its refresh before taking it.
    #[must_use]
    pub fn soft_timeout(mut self, limit: impl Millis) -> Self {
        self.policy.soft_timeout = Some(limit.into_duration());
        self
    }

    /// `#[cached(hard_timeout = ...)]`: how long a computation may run.
    #[must_use]
    pub fn hard_timeout(mut self, limit: impl Millis) -> Self {
        self.policy.hard_timeout = Some(limit.into_duration());
        self
    }

    /// `#[cached(jitter = ...)]`: the fraction of the timeout to spread expiries over.
    #[must_use]
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.policy.jitter = Some(fraction);
        self
    }
}

/// What a computation stores of its outcome `O`, and how a stored `T`
/// becomes an outcome again.
pub struct Pick<T, O> {
    pub(crate) value_of: for<'o> fn(&'o O) -> Option<&'o T>,
    pub(crate) wrap: fn(T) -> O,
    /// Tags computed from the stored value (`#[cached(tags_from = ..)]`).
    pub(crate) tags_of: Option<fn(&T) -> Vec<String>>,
    /// The timeout decided by the outcome and the value stored
    /// (`#[cached(timeout_from = ..)]`, `get_or_set_with`), instead of the plan's.
    pub(crate) timeout_of: Option<fn(&O, &T) -> Timeout>,
    /// The outcome that reports a cache error (a computation abandoned past
    /// its hard timeout): an `Err` the function's error converts from.
    pub(crate) from_error: Option<fn(Error) -> O>,
}

impl<T, O> Pick<T, O> {
    /// `#[cached(tags_from = ..)]`: tags computed from the value stored.
    #[must_use]
    pub fn tags_from(mut self, tags: fn(&T) -> Vec<String>) -> Self {
        self.tags_of = Some(tags);
        self
    }

    /// `#[cached(timeout_from = ..)]`: the timeout decided by the value
    /// stored (a zero timeout: not stored).
    #[must_use]
    pub fn timeout_from(mut self, timeout: fn(&O, &T) -> Timeout) -> Self {
        self.timeout_of = Some(timeout);
        self
    }

    /// `#[cached(hard_timeout = ..)]`: how an abandoned computation's error
    /// becomes the function's outcome.
    #[must_use]
    pub fn on_error(mut self, from_error: fn(Error) -> O) -> Self {
        self.from_error = Some(from_error);
        self
    }

    /// The timeout of the value `value` of `outcome`: the one it decides,
    /// or else `planned`.
    pub(crate) fn timeout(&self, outcome: &O, value: &T, planned: Timeout) -> Timeout {
        self.timeout_of.map_or(planned, |of| of(outcome, value))
    }
}

/// What `get_or_set_with` computes: the value and how long to keep it.
pub(crate) fn pick_with<T>() -> Pick<T, (T, Timeout)> {
    Pick {
        value_of: |outcome| Some(&outcome.0),
        wrap: |value| (value, Timeout::Default),
        tags_of: None,
        timeout_of: Some(|outcome, _| outcome.1),
        from_error: None,
    }
}

/// What `try_get_or_set_with` computes: an `Ok` value and how long to keep it.
pub(crate) fn pick_ok_with<T, E>() -> Pick<T, Result<(T, Timeout), E>> {
    Pick {
        value_of: |outcome| outcome.as_ref().ok().map(|(value, _)| value),
        wrap: |value| Ok((value, Timeout::Default)),
        tags_of: None,
        timeout_of: Some(|outcome, _| outcome.as_ref().map_or(Timeout::Default, |(_, t)| *t)),
        from_error: None,
    }
}

impl<T, O> Clone for Pick<T, O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, O> Copy for Pick<T, O> {}

/// Every value is stored.
#[must_use]
pub fn pick_value<T>() -> Pick<T, T> {
    Pick {
        value_of: itself,
        wrap: |v| v,
        tags_of: None,
        timeout_of: None,
        from_error: None,
    }
}

/// `Ok` values are stored.
#[must_use]
pub fn pick_ok<T, E>() -> Pick<T, Result<T, E>> {
    Pick {
        value_of: ok_of,
        wrap: Ok,
        tags_of: None,
        timeout_of: None,
        from_error: None,
    }
}

/// `Some` values are stored.
#[must_use]
pub fn pick_some<T>() -> Pick<T, Option<T>> {
    Pick {
        value_of: some_of,
        wrap: Some,
        tags_of: None,
        timeout_of: None,
        from_error: None,
    }
}

/// The value to cache of an outcome that is the value (one signature for
/// every kind of outcome).
#[allow(clippy::unnecessary_wraps)]
fn itself<T>(value: &T) -> Option<&T> {
    Some(value)
}

/// The value to cache of a `Result`: its `Ok`.
fn ok_of<T, E>(result: &Result<T, E>) -> Option<&T> {
    result.as_ref().ok()
}

/// The value to cache of an `Option`: its `Some`.
#[allow(clippy::ref_option)] // picks values out of `&O`
fn some_of<T>(option: &Option<T>) -> Option<&T> {
    option.as_ref()
}
