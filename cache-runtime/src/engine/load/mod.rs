//! The miss engine behind `get_or_set` and `#[cached]`: read; on a miss,
//! join the key's flight (single flight), re-check, take the fleet's lease,
//! compute, store with a guarded write, and hand the value to the callers
//! that waited. Stale values are served and refreshed here too
//! (stale-while-revalidate, failover, early refresh).

mod batch;
mod detached;
mod job;
mod lease;
mod plan;

use std::sync::Arc;

use tracing::Span;

use crate::Error;
use crate::clock;
use crate::codec::Cacheable;
use crate::engine::Engine;
use crate::engine::flight::{FlightState, Followed, Role, follow};
use crate::engine::freshness::{ANY_FRESHNESS, REFRESH, Windows};
use crate::engine::guard::Guard;
use crate::engine::read::{First, Lookup, Sight};
use crate::key::Internal;
use crate::observe::{Served, in_span};
use crate::scope::Scope;
pub(crate) use batch::LoadedMany;
pub(crate) use job::{Job, Loaded};
use lease::Lease;
#[allow(unreachable_pub)] // see `engine/mod.rs`
pub use plan::{Pick, Plan, pick_ok, pick_some, pick_value};
pub(crate) use plan::{pick_ok_with, pick_with};

impl Engine {
    /// Marks a computation of `full` whose tags come from its value; the
    /// mark to take off when it ends (`None` if the backend failed).
    async fn mark_pending(&self, full: &str) -> Option<String> {
        let mark = format!("{full}\n{:016x}", crate::clock::random_id());
        let pending = self.keys.internal(Internal::Pending, "");
        match self.backend.add_to_sets(&[pending], &mark).await {
            Ok(()) => Some(mark),
            Err(error) => {
                self.failed_aside(&error);
                None
            }
        }
    }

    async fn unmark_pending(&self, mark: Option<String>) {
        if let Some(mark) = mark {
            let pending = self.keys.internal(Internal::Pending, "");
            if let Err(error) = self.backend.remove_from_set(&pending, &mark).await {
                self.failed_aside(&error);
            }
        }
    }

    /// Lists `full` among the entries of each tag in `tags`.
    async fn register_tags(&self, full: &str, tags: &[String]) {
        let sets: Vec<String> = tags
            .iter()
            .map(|tag| self.keys.internal(Internal::Members, tag))
            .collect();
        if let Err(error) = self.backend.add_to_sets(&sets, full).await {
            self.failed_aside(&error);
        }
    }
}

/// What a miss read of a key, as a flight compares it.
fn state_of(guard: Option<&Guard>) -> FlightState {
    guard.map(|g| (g.expected, g.stamps.clone()))
}

impl Engine {
    /// The freshness windows of `plan`, the cache's defaults filled in.
    fn windows(&self, plan: &Plan) -> Windows {
        Windows::of(plan.policy.or(self.options.policy))
    }

    /// The early-refresh factor of `plan`, the cache's filled in: the only
    /// window a hit needs (the others wait for a miss).
    pub(crate) fn early(&self, plan: &Plan) -> Option<f64> {
        if plan.refresh {
            return Some(REFRESH);
        }
        plan.policy.early.or(self.options.policy.early)
    }

    /// The value at the stored key `full`, or the outcome of `job.compute`:
    /// the one path of every call through the cache (`#[cached]` and the
    /// direct API). The first read ([`Engine::look`], then
    /// [`Engine::fetch`]) serves a fresh value at once; on anything else the
    /// first caller in this process computes (single flight) — with a
    /// lease, the first in the fleet — stores what `job.pick` picks from the
    /// outcome when `job.store_if` agrees, and hands it to the callers that
    /// waited. Everything past an in-process hit runs in `span`.
    pub(crate) async fn load<T, O, Fut, S>(
        &self,
        full: &str,
        scope: &Scope,
        plan: Plan,
        job: Job<Fut, S, T, O>,
        span: &Span,
    ) -> Loaded<O>
    where
        T: Cacheable,
        Fut: Future<Output = O>,
        S: FnOnce(&O) -> bool,
    {
        // A refresh reads past the in-process stores' fresh values.
        let look = if plan.refresh {
            Err(Sight::none())
        } else {
            self.look::<T>(full, scope, self.early(&plan))
        };
        let sight = match look {
            Ok(value) => return Loaded::hit((job.pick.wrap)(value), true),
            Err(sight) => sight,
        };
        match in_span!(span, self.fetch::<T>(full, self.early(&plan), sight)) {
            First::Hit(value) => Loaded::hit((job.pick.wrap)(value), false),
            First::Saw(sight) => self.load_past(full, scope, plan, job, sight, span).await,
        }
    }

    /// [`load`](Self::load) past a first read ([`Engine::look`], then
    /// [`Engine::fetch`]) without a fresh value (`sight`: what it saw), in
    /// `span`: the one way on for a caller that made the first read itself
    /// (`#[cached]`, which serves its hits before building this future). The
    /// rest lives on the heap, so that a hit's future stays small.
    pub(crate) async fn load_past<T, O, Fut, S>(
        &self,
        full: &str,
        scope: &Scope,
        plan: Plan,
        job: Job<Fut, S, T, O>,
        sight: Sight<T>,
        span: &Span,
    ) -> Loaded<O>
    where
        T: Cacheable,
        Fut: Future<Output = O>,
        S: FnOnce(&O) -> bool,
    {
        let rest = Box::pin(self.load_after(full, scope, plan, job, sight));
        in_span!(span, rest)
    }

    /// [`load`](Self::load) after a first read without a fresh value.
    async fn load_after<T, O, Fut, S>(
        &self,
        full: &str,
        scope: &Scope,
        plan: Plan,
        job: Job<Fut, S, T, O>,
        sight: Sight<T>,
    ) -> Loaded<O>
    where
        T: Cacheable,
        Fut: Future<Output = O>,
        S: FnOnce(&O) -> bool,
    {
        let first = self
            .read_for_write::<T>(full, scope, self.early(&plan), sight)
            .await;
        if let Ok(Lookup::Hit(value)) = first {
            self.counters().hit();
            return Loaded::hit((job.pick.wrap)(value), false);
        }
        self.load_miss(full, scope, plan, first, job).await
    }

    /// [`load`](Self::load) after its first read missed (or failed). Each
    /// way out counts the call once: a miss when it computed (or served a
    /// stale value), joined when it got a value another computation stored.
    #[allow(clippy::too_many_lines)] // one miss, step by step
    async fn load_miss<T, O, Fut, S>(
        &self,
        full: &str,
        scope: &Scope,
        plan: Plan,
        first: Result<Lookup<T>, Error>,
        job: Job<Fut, S, T, O>,
    ) -> Loaded<O>
    where
        T: Cacheable,
        Fut: Future<Output = O>,
        S: FnOnce(&O) -> bool,
    {
        let Job {
            compute,
            store_if,
            pick,
            unshared,
        } = job;
        let counters = self.counters();
        let uncached = |compute: Fut, error: Error| async move {
            Loaded {
                outcome: if plan.compute_on_error {
                    Some(compute.await)
                } else {
                    None
                },
                served: Served::Uncached {
                    skipped: error.is_skip(),
                },
                error: Some(error),
                near: false,
            }
        };
        let windows = self.windows(&plan);
        let early = self.early(&plan);
        // A `#[cached]` function reports an abandoned computation only
        // through its own `hard_timeout` (its `Err`); the direct API, always.
        let hard = plan
            .policy
            .or(self.options.policy)
            .hard_timeout
            .filter(|_| !plan.compute_on_error || pick.from_error.is_some());
        let mut first = Some(first);
        // A refresh takes no value from a computation that was under way
        // when it started (it may have read older data): it waits for it to
        // land, then reads and computes again.
        let mut waited = !plan.refresh;
        // The last good value (stale or refreshed early), for stale-while-revalidate and failover.
        let mut kept: Option<T> = None;
        let mut stale_for_ms = 0;
        // Whether the cache failed this call (fail-open; `skipped`: it
        // skipped it): what it computes is then computed without the cache.
        let mut cache_failed: Option<bool> = None;
        loop {
            let read = match first.take() {
                Some(read) => read,
                None => {
                    self.read_for_write::<T>(full, scope, early, Sight::none())
                        .await
                }
            };
            let guard = match read {
                Ok(Lookup::Hit(value)) => {
                    // Stored by a computation this call waited for.
                    counters.joined();
                    return Loaded::served((pick.wrap)(value), Served::Joined);
                }
                Ok(Lookup::Stale {
                    value,
                    guard,
                    stale_for_ms: past,
                }) => {
                    kept = Some(value);
                    stale_for_ms = past;
                    guard
                }
                Ok(Lookup::Miss(guard)) => guard,
                Ok(Lookup::Failed { skipped }) => {
                    cache_failed = Some(skipped);
                    None
                }
                Err(error) => {
                    counters.miss();
                    return uncached(compute, error).await;
                }
            };
            // Only a flight that read the key as this call did may serve it:
            // one that read it before an invalidation this call saw may not.
            let role = if plan.single_flight {
                self.flights.join(full, state_of(guard.as_ref()))
            } else {
                self.flights.alone()
            };
            let leader = match role {
                Role::Leader(leader) => leader,
                Role::Follower(landing) => {
                    // Stale-while-revalidate: while one caller recomputes,
                    // the others are served the stale value at once.
                    if windows.serves_stale(stale_for_ms)
                        && !plan.refresh
                        && let Some(stale) = kept.take()
                    {
                        counters.miss();
                        return Loaded::served((pick.wrap)(stale), Served::Stale);
                    }
                    match follow(landing).await {
                        Followed::Value(_) if !waited => {
                            waited = true;
                            if guard.is_none() {
                                first = Some(Ok(Lookup::Miss(None)));
                            }
                            continue;
                        }
                        Followed::Value(value) => {
                            if let Some(value) = value.downcast_ref::<T>() {
                                counters.joined();
                                return Loaded::served((pick.wrap)(value.clone()), Served::Joined);
                            }
                            // Another type under the same key: compute for
                            // ourselves, store nothing (below).
                        }
                        // Not to be shared: compute for ourselves, store nothing.
                        Followed::Unshared => {}
                        // Abandoned past its hard timeout: so is this call
                        // (or it gets the failover value), rather than
                        // running the computation again in turn.
                        Followed::Abandoned(after) => {
                            counters.miss();
                            let fails_over = windows.fails_over(stale_for_ms) && !plan.refresh;
                            if let Some(kept) = kept.filter(|_| fails_over) {
                                return Loaded::served((pick.wrap)(kept), Served::Stale);
                            }
                            return abandoned(after, pick.from_error, Served::Joined);
                        }
                        // The leader landed nothing: read again, and lead if
                        // still a miss. A read that failed is not tried again
                        // (one deadline, or one skip, per call).
                        Followed::Failed => {
                            if guard.is_none() {
                                first = Some(Ok(Lookup::Miss(None)));
                            }
                            continue;
                        }
                    }
                    counters.miss();
                    let started = std::time::Instant::now();
                    let computed = within(compute, hard).await;
                    let served = computed_by(cache_failed, started);
                    return match computed {
                        Ok(outcome) => Loaded::served(outcome, served),
                        Err(after) => abandoned(after, pick.from_error, served),
                    };
                }
            };
            // A flight that landed between our read and our join may have stored the value.
            // With a value kept for refresh, only a fresher one counts as a hit: an
            // infinite beta makes any value with a freshness stale again.
            let recheck_early = if plan.refresh {
                Some(REFRESH)
            } else {
                kept.as_ref().map(|_| ANY_FRESHNESS)
            };
            // A read that just failed (fail-open: no guard) is not tried again:
            // one deadline per call is all a failing backend may cost.
            let recheck = match guard {
                None => Err(None),
                Some(guard) => self
                    .read_for_write::<T>(full, scope, recheck_early, Sight::none())
                    .await
                    .map_err(|_| Some(guard)),
            };
            let guard = match recheck {
                Ok(Lookup::Hit(value)) => {
                    counters.joined();
                    leader.land(Some(Arc::new(value.clone())));
                    return Loaded::served((pick.wrap)(value), Served::Joined);
                }
                Ok(Lookup::Miss(again) | Lookup::Stale { guard: again, .. }) => {
                    leader.restate(state_of(again.as_ref()));
                    again
                }
                Ok(Lookup::Failed { skipped }) => {
                    cache_failed = Some(skipped);
                    leader.restate(state_of(None));
                    None
                }
                Err(guard) => guard,
            };
            // Without a guard the backend failed: no lease to take, nothing to
            // write. Without single flight, no lease either: nobody waits.
            let lease_for = guard
                .as_ref()
                .and(plan.lease.or(self.options.lease))
                .filter(|_| plan.single_flight);
            let lease = match self.lease::<T>(full, scope, lease_for).await {
                // Another process's computation, under way when the refresh
                // started: its value goes to this flight's followers, and the
                // refresh reads and computes again.
                Lease::Found(value) if !waited => {
                    waited = true;
                    leader.land(Some(Arc::new(value)));
                    continue;
                }
                Lease::Found(value) => {
                    counters.joined();
                    leader.land(Some(Arc::new(value.clone())));
                    return Loaded::served((pick.wrap)(value), Served::Joined);
                }
                Lease::Held(lease) => lease,
            };
            // Tags from the value are known only once it is computed: mark the
            // computation, so that invalidating any tag meanwhile refuses its write.
            let pending = match (pick.tags_of, &guard) {
                (Some(_), Some(_)) => self.mark_pending(full).await,
                _ => None,
            };
            counters.miss();
            let started = std::time::Instant::now();
            let computed = within(compute, hard).await;
            let compute_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
            let failed = computed
                .as_ref()
                .map_or(true, |outcome| (pick.value_of)(outcome).is_none());
            if failed
                && let Some(kept) =
                    kept.filter(|_| windows.fails_over(stale_for_ms) && !plan.refresh)
            {
                // Failover: the computation gave nothing to cache; serve the last good value.
                tracing::warn!(
                    key = full,
                    "computation failed; serving the last good value"
                );
                if let Some(held) = lease {
                    self.release_lease(held).await;
                }
                self.unmark_pending(pending).await;
                leader.land(Some(Arc::new(kept.clone())));
                return Loaded::served((pick.wrap)(kept), Served::Stale);
            }
            // Abandoned past its hard timeout: so are the callers that waited.
            let outcome = match computed {
                Ok(outcome) => outcome,
                Err(after) => {
                    if let Some(held) = lease {
                        self.release_lease(held).await;
                    }
                    self.unmark_pending(pending).await;
                    leader.land_abandoned(after);
                    let served = Served::computed_since(started);
                    return abandoned(after, pick.from_error, served);
                }
            };
            let stored = (pick.value_of)(&outcome).filter(|_| store_if(&outcome));
            let timeout = stored.map(|value| pick.timeout(&outcome, value, plan.timeout));
            let error = match (stored, guard, timeout) {
                // A zero timeout keeps nothing: the value only goes to the callers that waited.
                (Some(value), Some(guard), Some(timeout)) if !timeout.is_zero() => {
                    if let Some(tags_of) = pick.tags_of {
                        self.register_tags(full, &tags_of(value)).await;
                    }
                    let expiry = timeout.resolve(self.options.default_timeout);
                    let draw = if windows.jitter > 0.0 {
                        clock::draw()
                    } else {
                        0.0
                    };
                    let (expiry, freshness) =
                        windows.lifetime(expiry, compute_ms, clock::now_ms(), draw);
                    self.write_guarded(guard, value, expiry, freshness)
                        .await
                        .err()
                }
                _ => None,
            };
            if let Some(held) = lease {
                self.release_lease(held).await;
            }
            self.unmark_pending(pending).await;
            match stored {
                Some(value) => leader.land(Some(Arc::new(value.clone()))),
                None if unshared.is_some_and(|unshared| unshared(&outcome)) => {
                    leader.land_unshared();
                }
                None => leader.land(None),
            }
            let served = computed_by(cache_failed, started);
            return Loaded {
                error,
                ..Loaded::served(outcome, served)
            };
        }
    }
}

/// How a call that computed since `started` was served: uncached when the
/// cache failed it (`cache_failed`: whether it skipped it).
fn computed_by(cache_failed: Option<bool>, started: std::time::Instant) -> Served {
    match cache_failed {
        Some(skipped) => Served::Uncached { skipped },
        None => Served::computed_since(started),
    }
}

/// Runs `compute`; past `limit` (when there is one) it is dropped, and the
/// limit is the error.
async fn within<O>(
    compute: impl Future<Output = O>,
    limit: Option<std::time::Duration>,
) -> Result<O, std::time::Duration> {
    let Some(limit) = limit else {
        return Ok(compute.await);
    };
    tokio::time::timeout(limit, compute)
        .await
        .map_err(|_| limit)
}

/// What a call whose computation was abandoned after `after` comes back
/// with: [`Error::Abandoned`], as the outcome `from_error` makes of it when
/// there is one, else as the error.
fn abandoned<O>(
    after: std::time::Duration,
    from_error: Option<fn(Error) -> O>,
    served: Served,
) -> Loaded<O> {
    let error = Error::Abandoned { after };
    match from_error {
        Some(from_error) => Loaded::served(from_error(error), served),
        None => Loaded::failed(error, served),
    }
}
