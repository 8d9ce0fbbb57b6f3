//! The miss engine behind `get_or_set` and `#[cached]`: read; on a miss,
//! join the key's flight (single flight), re-check, take the fleet's lease,
//! compute, store with a guarded write, and hand the value to the callers
//! that waited. Stale values are served and refreshed here too
//! (stale-while-revalidate, failover, early refresh).

mod batch;
mod lease;
mod plan;

use std::sync::Arc;

use tracing::Span;

use crate::Error;
use crate::clock;
use crate::codec::Cacheable;
use crate::engine::Engine;
use crate::engine::flight::{FlightState, Followed, Role, follow};
use crate::engine::freshness::Windows;
use crate::engine::guard::Guard;
use crate::engine::read::{First, Lookup, Sight};
use crate::key::Internal;
use crate::observe::{Served, in_span};
use crate::scope::Scope;
pub(crate) use batch::LoadedMany;
use lease::Lease;
#[allow(unreachable_pub)] // see `engine/mod.rs`
pub use plan::{Pick, Plan, pick_ok, pick_some, pick_value};

/// What a computation is: the future that computes the outcome `O`, whether
/// to store a given outcome, and what of it to store.
pub(crate) struct Job<Fut, S, T, O> {
    pub(crate) compute: Fut,
    pub(crate) store_if: S,
    pub(crate) pick: Pick<T, O>,
    /// Outcomes that are not to be shared with the callers that waited for
    /// them: each of those computes its own at once, instead of one taking
    /// over after the other. `None`: an outcome without a value to store
    /// (an error) hands over to one caller.
    pub(crate) unshared: Option<fn(&O) -> bool>,
}

impl<T, O> Job<(), fn(&O) -> bool, T, O> {
    /// A computation of the direct API: `compute` runs only on a miss, and
    /// every outcome `pick` takes a value from is stored.
    pub(crate) fn direct<F, Fut>(
        compute: F,
        pick: Pick<T, O>,
    ) -> Job<impl Future<Output = O>, fn(&O) -> bool, T, O>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        Job {
            compute: async move { compute().await },
            store_if: |_| true,
            pick,
            unshared: None,
        }
    }
}

#[cfg(feature = "http")]
impl<Fut, S, T, O> Job<Fut, S, T, O> {
    /// Outcomes `unshared` picks are not handed to the callers that waited:
    /// each computes its own.
    pub(crate) fn unshared(mut self, unshared: fn(&O) -> bool) -> Self {
        self.unshared = Some(unshared);
        self
    }
}

/// What a load came back with: the outcome, when there is one, the
/// cache's error, when there is one, and how the outcome was come by.
pub(crate) struct Loaded<O> {
    pub(crate) outcome: Option<O>,
    pub(crate) error: Option<Error>,
    pub(crate) served: Served,
    /// An in-process store served it.
    pub(crate) near: bool,
}

impl<O> Loaded<O> {
    /// A hit (`near`: served by an in-process store).
    fn hit(outcome: O, near: bool) -> Self {
        Self {
            near,
            ..Self::served(outcome, Served::Hit)
        }
    }

    fn served(outcome: O, served: Served) -> Self {
        Self {
            outcome: Some(outcome),
            error: None,
            served,
            near: false,
        }
    }

    /// The outcome, or the cache's error when there is one (a value that
    /// cannot be encoded, or any failure without fail-open).
    pub(crate) fn into_result(self) -> Result<O, Error> {
        match (self.outcome, self.error) {
            (_, Some(error)) => Err(error),
            (Some(outcome), None) => Ok(outcome),
            // A load without an error has an outcome: only a failed read
            // without `compute_on_error` ends with none, and it has its error.
            (None, None) => Err(Error::Unavailable {
                reason: "the computation ended without an outcome".to_owned(),
            }),
        }
    }
}

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
        match self.look::<T>(full, scope, self.early(&plan)) {
            Ok(value) => Loaded::hit((job.pick.wrap)(value), true),
            Err(sight) => {
                let mut job = Some(job);
                let looked = self.load_looked(full, scope, plan, &mut job, sight, span);
                match looked.await {
                    Ok(outcome) => Loaded::hit(outcome, false),
                    Err(loaded) => loaded,
                }
            }
        }
    }

    /// [`load`](Self::load) after its look found no in-process hit (`sight`:
    /// what it saw): for a caller that serves an in-process hit itself,
    /// without building this future (`#[cached]`). `Ok`: a fresh value
    /// from Redis (counted as a hit); `Err`: what the rest of the load came
    /// back with. The job stays where the caller keeps it until a miss
    /// takes it: a hit moves nothing.
    pub(crate) async fn load_looked<T, O, Fut, S>(
        &self,
        full: &str,
        scope: &Scope,
        plan: Plan,
        job: &mut Option<Job<Fut, S, T, O>>,
        sight: Sight<T>,
        span: &Span,
    ) -> Result<O, Loaded<O>>
    where
        T: Cacheable,
        Fut: Future<Output = O>,
        S: FnOnce(&O) -> bool,
    {
        match in_span!(span, self.fetch::<T>(full, self.early(&plan), sight)) {
            First::Hit(value) => {
                let job = job
                    .as_ref()
                    .expect("a load's job is taken by its miss only");
                Ok((job.pick.wrap)(value))
            }
            First::Saw(sight) => {
                let job = job.take().expect("a load's job is taken by its miss only");
                // Past a hit: the rest lives on the heap, so a hit's future stays small.
                let rest = Box::pin(self.load_after(full, scope, plan, job, sight));
                Err(in_span!(span, rest))
            }
        }
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

    /// [`load`](Self::load) for a computation that can outlive its caller:
    /// a value served stale (stale-while-revalidate) or picked for early
    /// refresh is returned at once, and one refresh runs in a task spawned on
    /// the current Tokio runtime. Outside a runtime, this is `load`.
    pub(crate) async fn load_detached<T, O, Fut, S>(
        self: &Arc<Self>,
        full: &str,
        scope: &Scope,
        plan: Plan,
        job: Job<Fut, S, T, O>,
        span: &Span,
    ) -> Loaded<O>
    where
        T: Cacheable,
        O: Send + 'static,
        Fut: Future<Output = O> + Send + 'static,
        S: FnOnce(&O) -> bool + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.load(full, scope, plan, job, span).await;
        };
        let early = self.early(&plan);
        let sight = match self.look::<T>(full, scope, early) {
            Ok(value) => return Loaded::hit((job.pick.wrap)(value), true),
            Err(sight) => sight,
        };
        match in_span!(span, self.fetch::<T>(full, early, sight)) {
            First::Hit(value) => Loaded::hit((job.pick.wrap)(value), false),
            First::Saw(sight) => {
                let rest = self.load_detached_after(runtime, full, scope, plan, job, sight);
                in_span!(span, Box::pin(rest))
            }
        }
    }

    /// [`load_detached`](Self::load_detached) after a first read without a
    /// fresh value.
    async fn load_detached_after<T, O, Fut, S>(
        self: &Arc<Self>,
        runtime: tokio::runtime::Handle,
        full: &str,
        scope: &Scope,
        plan: Plan,
        job: Job<Fut, S, T, O>,
        sight: Sight<T>,
    ) -> Loaded<O>
    where
        T: Cacheable,
        O: Send + 'static,
        Fut: Future<Output = O> + Send + 'static,
        S: FnOnce(&O) -> bool + Send + 'static,
    {
        let windows = self.windows(&plan);
        let first = self
            .read_for_write::<T>(full, scope, windows.early, sight)
            .await;
        match first {
            Ok(Lookup::Hit(value)) => {
                self.counters().hit();
                Loaded::hit((job.pick.wrap)(value), false)
            }
            Ok(Lookup::Stale {
                value,
                stale_for_ms,
                ..
            }) if windows.serves_stale(stale_for_ms) => {
                self.counters().miss();
                let wrap = job.pick.wrap;
                // A refresh already under way (here or in a spawned task) needs no other.
                if !self.flights.busy(full) {
                    let (engine, key, scope) = (Arc::clone(self), full.to_owned(), scope.clone());
                    runtime.spawn(async move {
                        let loaded = engine.load(&key, &scope, plan, job, &Span::none()).await;
                        if let Some(error) = &loaded.error {
                            let error: &dyn std::error::Error = error;
                            tracing::error!(key, error, "background refresh not stored");
                        }
                    });
                }
                Loaded::served(wrap(value), Served::Stale)
            }
            first => self.load_miss(full, scope, plan, first, job).await,
        }
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
                error: Some(error),
                served: Served::Uncached,
                near: false,
            }
        };
        let windows = self.windows(&plan);
        let mut first = Some(first);
        // The last good value (stale or refreshed early), for stale-while-revalidate and failover.
        let mut kept: Option<T> = None;
        let mut stale_for_ms = 0;
        loop {
            let read = match first.take() {
                Some(read) => read,
                None => {
                    self.read_for_write::<T>(full, scope, windows.early, Sight::none())
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
                        && let Some(stale) = kept.take()
                    {
                        counters.miss();
                        return Loaded::served((pick.wrap)(stale), Served::Stale);
                    }
                    match follow(landing).await {
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
                    let outcome = compute.await;
                    return Loaded::served(outcome, Served::computed_since(started));
                }
            };
            // A flight that landed between our read and our join may have stored the value.
            // With a value kept for refresh, only a fresher one counts as a hit: an
            // infinite beta makes any value with a freshness stale again.
            let recheck_early = kept.as_ref().map(|_| f64::INFINITY);
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
                Err(guard) => guard,
            };
            // Without a guard the backend failed: no lease to take, nothing to
            // write. Without single flight, no lease either: nobody waits.
            let lease_for = guard
                .as_ref()
                .and(plan.lease.or(self.options.lease))
                .filter(|_| plan.single_flight);
            let lease = match self.lease::<T>(full, scope, lease_for).await {
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
            let outcome = compute.await;
            let compute_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
            if (pick.value_of)(&outcome).is_none()
                && let Some(kept) = kept.filter(|_| windows.fails_over(stale_for_ms))
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
            let stored = (pick.value_of)(&outcome).filter(|_| store_if(&outcome));
            let error = match (stored, guard) {
                (Some(value), Some(guard)) => {
                    if let Some(tags_of) = pick.tags_of {
                        self.register_tags(full, &tags_of(value)).await;
                    }
                    let expiry = plan.timeout.resolve(self.options.default_timeout);
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
            return Loaded {
                error,
                ..Loaded::served(outcome, Served::computed_since(started))
            };
        }
    }
}
