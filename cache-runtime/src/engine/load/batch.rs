//! Batch loads: the entries of many keys of one scope and the scope's
//! versions read in one round trip, the keys without a fresh value
//! computed by one call of the computation, and each computed value stored
//! with a guarded write stamped with the versions read (the writes
//! pipelined). Each missing key has its own flight: a key another call is
//! computing is waited for, not computed again, and the keys this batch
//! computes are waited for by the calls that miss them meanwhile.

use std::sync::Arc;

use futures_util::future::join_all;
use tokio::sync::watch::Receiver;

use crate::Error;
use crate::backend::{Expected, GuardedWrite};
use crate::clock;
use crate::codec::Cacheable;
use crate::engine::Engine;
use crate::engine::flight::{Followed, Landing, Leader, Role, follow};
use crate::engine::guard::Guard;
use crate::engine::read::Judged;
use crate::scope::Scope;

use super::{Plan, state_of};

/// What a batch load came back with.
pub(crate) struct LoadedMany<T, E> {
    /// The value of each key, in the order given: found or computed.
    pub(crate) values: Vec<Option<T>>,
    /// The keys (by position) the computation was asked for and did not
    /// return: nothing is stored for them.
    pub(crate) unreturned: Vec<usize>,
    /// The computation's error, when it failed (nothing it was asked for is stored).
    pub(crate) failed: Option<E>,
    /// The cache's error: a value that cannot be encoded, or a failing
    /// store when the cache does not fail open.
    pub(crate) error: Option<Error>,
}

/// A key this batch computes: its position, what its write must find, and
/// its flight (followed by the calls that miss it meanwhile).
struct Led<'a> {
    at: usize,
    guard: Option<Guard>,
    /// `None` for a key computed again after the flight it followed.
    leader: Option<Leader<'a>>,
}

impl Engine {
    /// The values at the stored keys `fulls` (distinct), all in `scope`:
    /// one read of them all with the scope's versions; the keys without a
    /// fresh value that no other call is computing go to one call of
    /// `compute` (by position), which answers the values it found, by
    /// position; each is stored with a guarded write. A key another call
    /// was computing whose computation landed nothing goes to a second call
    /// of `compute`. A failing read fails open: every key is computed,
    /// nothing is stored.
    pub(crate) async fn load_many<T, E, F, Fut>(
        &self,
        fulls: &[String],
        scope: &Scope,
        plan: Plan,
        mut compute: F,
    ) -> LoadedMany<T, E>
    where
        T: Cacheable,
        F: FnMut(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<(usize, T)>, E>>,
    {
        let mut loaded = LoadedMany {
            values: fulls.iter().map(|_| None).collect(),
            unreturned: Vec::new(),
            failed: None,
            error: None,
        };
        let (misses, stamps) = match self
            .read_batch(fulls, scope, &plan, &mut loaded.values)
            .await
        {
            Ok(read) => read,
            Err(error) => {
                let misses = (0..fulls.len()).map(|at| (at, Expected::Absent)).collect();
                match self.backend_failed(error) {
                    Ok(()) => (misses, None),
                    Err(error) if plan.compute_on_error => {
                        loaded.error = Some(error);
                        (misses, None)
                    }
                    Err(error) => {
                        loaded.error = Some(error);
                        return loaded;
                    }
                }
            }
        };
        let hits = fulls.len() - misses.len();
        self.counters().hits_and_misses(hits, 0);
        if misses.is_empty() {
            return loaded;
        }
        let (led, followed) = self.join_batch(fulls, misses, stamps.as_ref(), &plan);
        // The keys led are computed while the flights followed are waited
        // for: waiting first could wait on a batch that waits on this one.
        let computing = async {
            let asked: Vec<usize> = led.iter().map(|l| l.at).collect();
            let started = std::time::Instant::now();
            let computed = if asked.is_empty() {
                Ok(Vec::new())
            } else {
                for _ in &asked {
                    self.counters().miss();
                }
                compute(asked).await
            };
            (computed, started.elapsed())
        };
        let following = join_all(
            followed
                .into_iter()
                .map(|(at, guard, landing)| async move { (at, guard, follow(landing).await) }),
        );
        let ((computed, took), followed) = futures_util::future::join(computing, following).await;
        self.settle_batch(led, computed, took, &plan, &mut loaded)
            .await;
        // Flights that landed a value serve it; the keys of those that landed
        // nothing are computed again, here.
        let mut again = Vec::new();
        for (at, guard, landing) in followed {
            match landing {
                Followed::Value(value) if value.downcast_ref::<T>().is_some() => {
                    self.counters().joined();
                    loaded.values[at] = value.downcast_ref::<T>().cloned();
                }
                _ => again.push(Led {
                    at,
                    guard,
                    leader: None,
                }),
            }
        }
        if !again.is_empty() && loaded.failed.is_none() {
            for _ in &again {
                self.counters().miss();
            }
            let started = std::time::Instant::now();
            let computed = compute(again.iter().map(|l| l.at).collect()).await;
            self.settle_batch(again, computed, started.elapsed(), &plan, &mut loaded)
                .await;
        }
        loaded.unreturned.sort_unstable();
        loaded
    }

    /// Each missing key joins its flight: what this call read of it decides
    /// whether the flight under way may serve it (see `Flights::join`).
    /// The keys this call leads, and those it follows.
    #[allow(clippy::type_complexity)]
    fn join_batch(
        &self,
        fulls: &[String],
        misses: Vec<(usize, Expected)>,
        stamps: Option<&Vec<u64>>,
        plan: &Plan,
    ) -> (Vec<Led<'_>>, Vec<(usize, Option<Guard>, Receiver<Landing>)>) {
        let mut led = Vec::new();
        let mut followed = Vec::new();
        for (at, expected) in misses {
            let guard = stamps.map(|stamps| Guard {
                full_key: fulls[at].clone(),
                expected,
                stamps: stamps.clone(),
            });
            let role = if plan.single_flight {
                self.flights.join(&fulls[at], state_of(guard.as_ref()))
            } else {
                self.flights.alone()
            };
            match role {
                Role::Leader(leader) => led.push(Led {
                    at,
                    guard,
                    leader: Some(leader),
                }),
                Role::Follower(landing) => followed.push((at, guard, landing)),
            }
        }
        (led, followed)
    }

    /// The one read of a batch: the values found fresh go to `values`; the
    /// others are answered with what their key held, beside the scope's
    /// versions (`None`: the versions could not be settled and the cache
    /// fails open, so nothing is to be stored).
    async fn read_batch<T: Cacheable>(
        &self,
        fulls: &[String],
        scope: &Scope,
        plan: &Plan,
        values: &mut [Option<T>],
    ) -> Result<(Vec<(usize, Expected)>, Option<Vec<u64>>), Error> {
        let vkeys = scope.version_keys(&self.keys)?;
        let (found, versions) = self.backend.read_many(fulls, &vkeys).await?;
        let early = self.early(plan);
        let mut misses = Vec::new();
        for (at, found) in found.into_iter().enumerate() {
            let Some(found) = found else {
                misses.push((at, Expected::Absent));
                continue;
            };
            let expected = match self
                .judge_found::<T>(&fulls[at], &found, &versions, early, false)
                .await
            {
                Judged::Hit(value) => {
                    values[at] = Some(value);
                    continue;
                }
                // A value past its freshness is computed again, not served.
                Judged::Stale { write_id, .. } => Expected::WriteId(write_id),
                Judged::Miss(expected) => expected,
                Judged::Undecodable | Judged::Forged => Expected::Absent,
            };
            misses.push((at, expected));
        }
        if misses.is_empty() {
            return Ok((misses, None));
        }
        let stamps = match self.settle_versions(&vkeys, versions).await {
            Ok(stamps) => Some(stamps),
            Err(error) => {
                self.backend_failed(error)?;
                None
            }
        };
        Ok((misses, stamps))
    }

    /// What follows a computation of the keys `led`: each value returned is
    /// stored (the writes pipelined) and handed to the key's flight; a key
    /// not returned is noted, and its flight lands nothing.
    async fn settle_batch<T: Cacheable, E>(
        &self,
        led: Vec<Led<'_>>,
        computed: Result<Vec<(usize, T)>, E>,
        took: std::time::Duration,
        plan: &Plan,
        loaded: &mut LoadedMany<T, E>,
    ) {
        let returned = match computed {
            Ok(returned) => returned,
            Err(failed) => {
                // The flights land nothing: their followers compute.
                loaded.failed = Some(failed);
                return;
            }
        };
        for (at, value) in returned {
            if let Some(slot) = loaded.values.get_mut(at) {
                *slot = Some(value);
            }
        }
        let windows = self.windows(plan);
        let expiry = plan.timeout.resolve(self.options.default_timeout);
        let compute_ms = u32::try_from(took.as_millis()).unwrap_or(u32::MAX);
        let mut writes: Vec<GuardedWrite> = Vec::new();
        let mut landings = Vec::new();
        for Led { at, guard, leader } in led {
            let Some(value) = &loaded.values[at] else {
                loaded.unreturned.push(at);
                if let Some(leader) = leader {
                    leader.land(None);
                }
                continue;
            };
            if let Some(guard) = guard {
                let draw = if windows.jitter > 0.0 {
                    clock::draw()
                } else {
                    0.0
                };
                let (expiry, freshness) =
                    windows.lifetime(expiry, compute_ms, clock::now_ms(), draw);
                if expiry != crate::backend::Expiry::Now {
                    match self.guarded_write(guard, value, expiry, freshness) {
                        Ok(write) => writes.push(write),
                        Err(error) => loaded.error = Some(error),
                    }
                }
            }
            if let Some(leader) = leader {
                landings.push((leader, Arc::new(value.clone())));
            }
        }
        if !writes.is_empty() {
            match self.backend.write_guarded_many(writes).await {
                Ok(stored) => self.counters().writes(stored),
                Err(error) => {
                    if let Err(error) = self.backend_failed(error) {
                        loaded.error = Some(error);
                    }
                }
            }
        }
        for (leader, value) in landings {
            leader.land(Some(value));
        }
    }
}
