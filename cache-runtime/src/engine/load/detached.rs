//! Loads whose computation can outlive its caller (`get_or_set_detached`,
//! `#[cached]` functions that own their arguments): a stale value is served
//! at once, or after a soft timeout, while its refresh runs in a task.

use std::sync::Arc;

use tracing::Span;

use super::{Job, Loaded, Plan};
use crate::codec::Cacheable;
use crate::engine::Engine;
use crate::engine::read::{First, Lookup, Sight};
use crate::observe::{Served, in_span};
use crate::scope::Scope;

impl Engine {
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
        // A refresh is awaited by its caller, never served stale.
        let runtime = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|_| !plan.refresh);
        let Some(runtime) = runtime else {
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
        let soft = plan.policy.or(self.options.policy).soft_timeout;
        match first {
            Ok(Lookup::Hit(value)) => {
                self.counters().hit();
                Loaded::hit((job.pick.wrap)(value), false)
            }
            // A soft timeout: the refresh runs in a task, and the caller
            // takes the value at hand unless the refresh lands within it.
            Ok(Lookup::Stale {
                value,
                stale_for_ms,
                ..
            }) if soft.is_some()
                && (windows.serves_stale(stale_for_ms) || windows.fails_over(stale_for_ms)) =>
            {
                let wrap = job.pick.wrap;
                let (engine, key, scope) = (Arc::clone(self), full.to_owned(), scope.clone());
                let (sender, refreshed) = tokio::sync::oneshot::channel();
                runtime.spawn(async move {
                    let loaded = engine.load(&key, &scope, plan, job, &Span::none()).await;
                    if let Some(error) = &loaded.error {
                        let error: &dyn std::error::Error = error;
                        tracing::error!(key, error, "background refresh not stored");
                    }
                    let _ = sender.send(loaded);
                });
                let limit = soft.unwrap_or_default();
                match tokio::time::timeout(limit, refreshed).await {
                    Ok(Ok(loaded)) if loaded.outcome.is_some() => loaded,
                    _ => {
                        self.counters().miss();
                        Loaded::served(wrap(value), Served::Stale)
                    }
                }
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
}
