//! A budget of time for the cache calls of one request: every call inside
//! [`with_budget`] (in the same task) draws on it, and once it is spent the
//! remaining calls skip the backend — misses under fail-open, at no cost —
//! so that a hung Redis costs a request one budget, not one deadline per
//! cache call.

use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `future` with a cache budget: the cache calls it makes (in this
/// task) share `budget`. A call made after the budget is spent skips the
/// backend ([`Error::BudgetSpent`](crate::Error::BudgetSpent), a miss when
/// failing open, counted in `stats().skipped`); a call under way when it
/// runs out gives up then. Nested budgets keep the earlier deadline.
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
///     Ok::<_, cachette::Error>(format!("{a:?} {b:?} {c:?}"))
/// })
/// .await?;
/// assert_eq!(page, "None None None");
/// # Ok(())
/// # }
/// ```
pub async fn with_budget<F: Future>(budget: Duration, future: F) -> F::Output {
    let now = Instant::now();
    let deadline = now
        .checked_add(budget)
        .unwrap_or(now + Duration::from_secs(1 << 32));
    let deadline = DEADLINE
        .try_with(|outer| (*outer).min(deadline))
        .unwrap_or(deadline);
    DEADLINE.scope(deadline, future).await
}

/// What is left of the current task's budget; `None` without one.
pub(crate) fn remaining() -> Option<Duration> {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .ok()
}
