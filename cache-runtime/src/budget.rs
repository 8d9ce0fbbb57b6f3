//! A budget of time for the cache calls of one request: every call inside
//! [`with_budget`] (in the same task) draws on it, and once it is spent the
//! remaining calls skip the backend — misses under fail-open, at no cost —
//! so that a hung Redis costs a request one budget, not one deadline per
//! cache call.
//!
//! The budget is drawn on only while a cache call waits on the store (a
//! command to Redis, connection included): its clock stands still
//! otherwise, so the time a request spends computing a value (the closure
//! of `get_or_set`, the body of a `#[cached]` function, a handler under the
//! HTTP layer), waiting for another caller's computation (single flight, a
//! fleet lease), or doing anything else between its cache calls, does not
//! count against it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    static BUDGET: Budget;
}

/// The budget of the current task: the meter of its cache calls' time,
/// shared with the budgets it is nested in, and how much of that time this
/// budget allows in all.
struct Budget {
    meter: Arc<Meter>,
    /// The meter's reading at which this budget is spent.
    limit: Duration,
}

/// The time the cache calls of one task have taken together.
struct Meter(Mutex<Clock>);

struct Clock {
    /// The time counted up to `since`.
    spent: Duration,
    /// When the count last changed.
    since: Instant,
    /// Cache calls under way: the clock runs while there is one.
    calls: u32,
}

impl Clock {
    fn spent(&self, now: Instant) -> Duration {
        if self.calls == 0 {
            self.spent
        } else {
            self.spent + now.saturating_duration_since(self.since)
        }
    }

    /// Brings `spent` up to `now`, before the number of calls changes.
    fn settle(&mut self, now: Instant) {
        self.spent = self.spent(now);
        self.since = now;
    }
}

impl Meter {
    fn clock(&self) -> std::sync::MutexGuard<'_, Clock> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs `future` with a cache budget: the cache calls it makes (in this
/// task) may take `budget` together. Only the time they wait on the store
/// counts: computing a value (a `get_or_set` closure, a `#[cached]` body,
/// a handler under the `http` feature's `CacheLayer`), waiting for
/// another caller's computation of the same key, and whatever the future
/// does between its cache calls do not. A call made after the budget is
/// spent skips the backend ([`Error::BudgetSpent`](crate::Error::BudgetSpent),
/// a miss when failing open, counted once in `stats().skipped`); a call
/// under way when it runs out gives up then. A nested budget draws on the
/// one it is in as well, and ends no later than it.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachette::Error> {
/// use std::time::Duration;
///
/// let cache = cachette::Cache::memory();
/// let page = cachette::with_budget(Duration::from_millis(300), async {
///     // Three cache calls, 300 ms for all of them when Redis hangs.
///     let a: Option<String> = cache.get("a").await?;
///     let b: Option<String> = cache.get("b").await?;
///     let c: Option<String> = cache.get("c").await?;
///     // A slow computation is not a cache call: it takes none of the 300 ms.
///     let d = cache
///         .get_or_set(
///             "d",
///             || async {
///                 tokio::time::sleep(Duration::from_millis(400)).await;
///                 "computed".to_owned()
///             },
///             Duration::from_secs(60),
///         )
///         .await?;
///     Ok::<_, cachette::Error>(format!("{a:?} {b:?} {c:?} {d}"))
/// })
/// .await?;
/// assert_eq!(page, "None None None computed");
/// # Ok(())
/// # }
/// ```
pub async fn with_budget<F: Future>(budget: Duration, future: F) -> F::Output {
    let nested = BUDGET.try_with(|outer| {
        let spent = outer.meter.clock().spent(Instant::now());
        Budget {
            meter: Arc::clone(&outer.meter),
            limit: outer.limit.min(spent.saturating_add(budget)),
        }
    });
    let budget = nested.unwrap_or_else(|_| Budget {
        meter: Arc::new(Meter(Mutex::new(Clock {
            spent: Duration::ZERO,
            since: Instant::now(),
            calls: 0,
        }))),
        limit: budget,
    });
    BUDGET.scope(budget, future).await
}

/// A cache call under way inside a budget: the budget's clock runs while
/// one lives.
pub(crate) struct Call {
    meter: Arc<Meter>,
    left: Duration,
}

impl Call {
    /// What was left of the budget when the call started.
    pub(crate) fn left(&self) -> Duration {
        self.left
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let mut clock = self.meter.clock();
        clock.settle(Instant::now());
        clock.calls -= 1;
    }
}

/// Starts a cache call in the current task's budget; `None` without one.
/// A call that finds nothing left ([`Call::left`] zero) should not go on.
pub(crate) fn call() -> Option<Call> {
    BUDGET
        .try_with(|budget| {
            let mut clock = budget.meter.clock();
            let now = Instant::now();
            clock.settle(now);
            clock.calls += 1;
            Call {
                meter: Arc::clone(&budget.meter),
                left: budget.limit.saturating_sub(clock.spent),
            }
        })
        .ok()
}

/// Whether the current task runs in a budget (nothing started).
pub(crate) fn running() -> bool {
    BUDGET.try_with(|_| ()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn only_the_time_of_calls_counts() {
        with_budget(Duration::from_millis(100), async {
            // Outside a call, time passes for free.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let first = call().unwrap();
            assert_eq!(first.left(), Duration::from_millis(100));
            tokio::time::sleep(Duration::from_millis(30)).await;
            drop(first);
            tokio::time::sleep(Duration::from_secs(5)).await;
            // Two calls at once count their time together once.
            let (a, b) = (call().unwrap(), call().unwrap());
            assert_eq!(b.left(), Duration::from_millis(70));
            tokio::time::sleep(Duration::from_millis(40)).await;
            drop((a, b));
            assert_eq!(call().unwrap().left(), Duration::from_millis(30));
        })
        .await;
        assert!(call().is_none(), "no budget outside `with_budget`");
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_nested_budget_draws_on_the_outer_and_ends_no_later() {
        with_budget(Duration::from_millis(100), async {
            let outer = call().unwrap();
            tokio::time::sleep(Duration::from_millis(60)).await;
            drop(outer);
            with_budget(Duration::from_millis(200), async {
                let inner = call().unwrap();
                assert_eq!(inner.left(), Duration::from_millis(40));
                tokio::time::sleep(Duration::from_millis(10)).await;
            })
            .await;
            assert_eq!(call().unwrap().left(), Duration::from_millis(30));
            with_budget(Duration::from_millis(5), async {
                assert_eq!(call().unwrap().left(), Duration::from_millis(5));
            })
            .await;
        })
        .await;
    }
}
