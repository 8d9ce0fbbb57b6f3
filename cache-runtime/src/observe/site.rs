//! Per-function figures: each `#[cached]` function has a [`Site`] (a
//! static the macro writes), which finds its [`Tally`] in the cache it
//! calls (kept in the site for the first cache, looked up for any other),
//! and the tally counts the function's calls by outcome, its computation
//! time, and — with the `metrics` feature — feeds the same figures to the
//! `metrics` facade, labelled by cache and function.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::Served;
use super::meters::{FunctionMeters, Request};
use super::stats::Striped;

/// The call site of a cached function: its name (`module::function`).
/// Written by `#[cached]` as a `static`; not for direct use.
#[doc(hidden)]
#[derive(Debug)]
pub struct Site {
    name: &'static str,
    /// The cache this site first counted in (its id), and its tally there.
    first: OnceLock<(u64, Arc<Tally>)>,
}

impl Site {
    /// The site of the function `name`.
    #[must_use]
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            first: OnceLock::new(),
        }
    }

    /// `module::function`.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// This function's tally in the cache `cache` (its observer's id),
    /// whose tallies are `tallies` and whose label is `label`.
    // On an in-process hit's path: inlined, it costs the hit no call (hit_loop).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub(super) fn tally_in(
        &'static self,
        cache: u64,
        tallies: &Tallies,
        label: &super::meters::Label,
    ) -> TallyRef {
        if let Some((id, tally)) = self.first.get()
            && *id == cache
        {
            return TallyRef::Site(tally);
        }
        let tally = tallies.of(self.name, label);
        if self.first.set((cache, Arc::clone(&tally))).is_ok() {
            return TallyRef::Site(&self.first.get().expect("just set").1);
        }
        TallyRef::Other(tally)
    }
}

/// A function's tally, borrowed from its site or held.
pub(super) enum TallyRef {
    Site(&'static Tally),
    Other(Arc<Tally>),
}

impl std::ops::Deref for TallyRef {
    type Target = Tally;

    fn deref(&self) -> &Tally {
        match self {
            Self::Site(tally) => tally,
            Self::Other(tally) => tally,
        }
    }
}

/// What one function did in one cache.
#[derive(Debug)]
pub(crate) struct Tally {
    name: &'static str,
    hits: Striped,
    misses: AtomicU64,
    stale: AtomicU64,
    joined: AtomicU64,
    uncached: AtomicU64,
    compute_micros: AtomicU64,
    meters: FunctionMeters,
}

impl Tally {
    fn new(name: &'static str, cache: &super::meters::Label) -> Self {
        Self {
            name,
            hits: Striped::default(),
            misses: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            joined: AtomicU64::new(0),
            uncached: AtomicU64::new(0),
            compute_micros: AtomicU64::new(0),
            meters: FunctionMeters::new(cache, name),
        }
    }

    /// Counts one call served as `served`.
    #[inline]
    pub(crate) fn count(&self, served: Served) {
        match served {
            Served::Hit => {
                self.hits.add(1);
                self.meters.count(Request::Hit);
            }
            Served::Stale => {
                self.stale.fetch_add(1, Relaxed);
                self.meters.count(Request::Stale);
            }
            Served::Joined => {
                self.joined.fetch_add(1, Relaxed);
                self.meters.count(Request::Joined);
            }
            Served::Computed { micros } => {
                self.misses.fetch_add(1, Relaxed);
                self.compute_micros.fetch_add(micros, Relaxed);
                self.meters.count(Request::Miss);
                self.meters.computed(micros);
            }
            Served::Uncached { skipped } => {
                self.uncached.fetch_add(1, Relaxed);
                self.meters.count(if skipped {
                    Request::Skipped
                } else {
                    Request::Error
                });
            }
        }
    }

    fn snapshot(&self) -> FunctionStats {
        FunctionStats {
            name: self.name,
            hits: self.hits.sum(),
            misses: self.misses.load(Relaxed),
            stale: self.stale.load(Relaxed),
            joined: self.joined.load(Relaxed),
            uncached: self.uncached.load(Relaxed),
            compute_time: Duration::from_micros(self.compute_micros.load(Relaxed)),
        }
    }
}

/// The tallies of a cache's functions.
#[derive(Debug, Default)]
pub(super) struct Tallies(Mutex<Vec<Arc<Tally>>>);

impl Tallies {
    /// The tally of the function `name`, made on its first call.
    fn of(&self, name: &'static str, label: &super::meters::Label) -> Arc<Tally> {
        let mut tallies = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tally) = tallies.iter().find(|t| t.name == name) {
            return Arc::clone(tally);
        }
        let tally = Arc::new(Tally::new(name, label));
        tallies.push(Arc::clone(&tally));
        tally
    }

    pub(crate) fn snapshot(&self) -> Vec<FunctionStats> {
        let tallies = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut stats: Vec<FunctionStats> = tallies.iter().map(|t| t.snapshot()).collect();
        stats.sort_by_key(|s| s.name);
        stats
    }
}

/// What one `#[cached]` function did through a cache, from
/// [`Cache::function_stats`](crate::Cache::function_stats). Each call
/// counts once, by how it was served.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// let stats = cachette::FunctionStats::default();
/// assert_eq!(stats.hit_ratio(), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FunctionStats {
    /// `module::function`.
    pub name: &'static str,
    /// Calls served a stored value.
    pub hits: u64,
    /// Calls that computed the value.
    pub misses: u64,
    /// Calls served a value past its freshness (stale-while-revalidate, failover).
    pub stale: u64,
    /// Calls handed the value another call computed (single flight, lease).
    pub joined: u64,
    /// Calls that computed without the cache: it failed, or was skipped.
    pub uncached: u64,
    /// The time spent computing, over all misses.
    pub compute_time: Duration,
}

impl FunctionStats {
    /// Hits over calls that were hits or misses; `None` before any.
    #[must_use]
    pub fn hit_ratio(&self) -> Option<f64> {
        let calls = self.hits + self.misses;
        #[allow(clippy::cast_precision_loss)] // a ratio
        (calls > 0).then(|| self.hits as f64 / calls as f64)
    }
}
