//! The engine's side of the direct operations (`get`, `set`, `add`,
//! `touch`, the `_many` forms, counters, `clear`, the key listings, locks
//! and invalidations): each reaches the backend here, and fails open here.
//! Keys are the user's; the stored keys are made here. Writes seal, count
//! and fail open in one place ([`Engine::store`]).

use std::collections::HashMap;
use std::time::Duration;

use super::Engine;
use super::read::Judged;
use crate::backend::pending::{Action, Fate, Pending};
use crate::backend::{Counted, Expiry};
use crate::codec::Cacheable;
use crate::options::Timeout;
use crate::scope::{Scope, VersionKeys};
use crate::{Error, observe};

/// How [`Engine::store`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// Whatever the key holds (`set`).
    Over,
    /// Only where the key holds nothing (`add`).
    IfAbsent,
}

/// What became of an invalidation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Redis (or the memory store) took it; a bump's new version.
    Now(Option<u64>),
    /// Kept, to be retried until Redis takes it.
    Queued,
    /// Neither taken nor kept (the cache fails open).
    Nowhere,
}

/// What a lock asks of its lease.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LeaseOp {
    Acquire(Duration),
    Extend(Duration),
    Release,
}

impl Engine {
    /// The value of the user's `key` in `scope` when it is fresh; counted
    /// as a hit or a miss.
    pub(crate) async fn get<T: Cacheable>(
        &self,
        key: &str,
        scope: &Scope,
    ) -> Result<Option<T>, Error> {
        let full = self.keys.stored(key);
        let vkeys = scope.version_keys(&self.keys)?;
        let found = self.read_direct::<T>(&full, &vkeys).await;
        let found = self.or_fail_open(found, None)?;
        if found.is_some() {
            self.counters().hit();
        } else {
            self.counters().miss();
        }
        Ok(found)
    }

    /// The current versions at a scope's version keys `vkeys`, for a value
    /// written in it (`None`: the backend failed and the cache fails open).
    pub(crate) async fn stamps(&self, vkeys: &VersionKeys) -> Result<Option<Vec<u64>>, Error> {
        let current = self.current_versions(vkeys).await.map(Some);
        self.or_fail_open(current, None)
    }

    /// The bytes of a value to store at the stored key `full`: compressed
    /// and signed as the cache says, their size recorded.
    pub(crate) fn seal(&self, full: &str, bytes: Vec<u8>) -> Vec<u8> {
        let bytes = self.seal.seal(full, bytes);
        observe::meters::value_written(self.counters().label(), bytes.len());
        observe::trace_size(bytes.len());
        bytes
    }

    /// Counts `n` writes that an `expiry` keeps (a zero timeout stores nothing).
    fn wrote(&self, n: usize, expiry: Expiry) {
        if expiry != Expiry::Now {
            self.counters().writes(n);
        }
    }

    /// Stores the encoded value `bytes` at the user's `key`: sealed,
    /// counted, failing open. Whether it was stored (`IfAbsent`: the key
    /// held nothing).
    pub(crate) async fn store(
        &self,
        key: &str,
        bytes: Vec<u8>,
        timeout: Timeout,
        write: Write,
    ) -> Result<bool, Error> {
        let expiry = self.expiry(timeout);
        let full = self.keys.entry(key);
        let bytes = self.seal(&full, bytes);
        let stored = match write {
            Write::Over => self
                .backend
                .set(full, bytes, None, expiry)
                .await
                .map(|()| true),
            Write::IfAbsent => self.backend.add(full, bytes, expiry).await,
        };
        let stored = self.or_fail_open(stored, false)?;
        if stored {
            self.wrote(1, expiry);
        }
        Ok(stored)
    }

    /// Stores encoded values at the user's keys, in one round trip; the
    /// keys not written (the backend failed and the cache fails open).
    pub(crate) async fn store_many(
        &self,
        entries: Vec<(String, Vec<u8>)>,
        timeout: Timeout,
    ) -> Result<Vec<String>, Error> {
        let expiry = self.expiry(timeout);
        let mut keys = Vec::with_capacity(entries.len());
        let mut sealed = Vec::with_capacity(entries.len());
        for (key, bytes) in entries {
            let full = self.keys.entry(&key);
            let bytes = self.seal(&full, bytes);
            sealed.push((full, bytes));
            keys.push(key);
        }
        match self.backend.set_many(sealed, expiry).await {
            Ok(()) => {
                self.wrote(keys.len(), expiry);
                Ok(Vec::new())
            }
            Err(error) => self.backend_failed(error).map(|()| keys),
        }
    }

    /// The fresh values of the user's `keys`, in one round trip; counted
    /// as hits and misses.
    pub(crate) async fn get_many<T: Cacheable>(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, T>, Error> {
        let full: Vec<String> = keys.iter().map(|k| self.keys.entry(k)).collect();
        let mut found = HashMap::with_capacity(keys.len());
        match self.backend.get_many(&full).await {
            Ok(entries) => {
                for ((key, full), entry) in keys.iter().zip(&full).zip(entries) {
                    if let Some(entry) = entry
                        && let Judged::Hit(value) =
                            self.judge_found(full, &entry, &[], None, true).await
                    {
                        found.insert(key.clone(), value);
                    }
                }
            }
            Err(error) => self.backend_failed(error)?,
        }
        self.counters()
            .hits_and_misses(found.len(), keys.len() - found.len());
        Ok(found)
    }

    /// Gives the user's `key` a new timeout; whether it held a value.
    pub(crate) async fn touch(&self, key: &str, timeout: Timeout) -> Result<bool, Error> {
        let touched = self
            .backend
            .touch(self.keys.entry(key), self.expiry(timeout))
            .await;
        self.or_fail_open(touched, false)
    }

    /// Deletes the entries at the stored keys `full`; how many held a value.
    pub(crate) async fn delete_many(&self, full: &[String]) -> Result<u64, Error> {
        let deleted = self.backend.delete_many(full).await;
        self.or_fail_open(deleted, 0)
    }

    /// Adds `delta` to the counter at the user's `key` (made at 0 first
    /// when `create`), in the span of the operation `incr`; its new value.
    /// Failing open, the delta stands in.
    pub(crate) async fn incr(&self, key: &str, delta: i64, create: bool) -> Result<i64, Error> {
        let expiry = self.expiry(Timeout::Default);
        let span = self.observer.op_span("incr");
        let counted = self
            .backend
            .incr(self.keys.entry(key), delta, expiry, create);
        let counted = observe::in_span!(&span, counted);
        let outcome = if counted.is_ok() { "ok" } else { "error" };
        self.observer.op_done(&span, "incr", key, outcome);
        match counted {
            Ok(Counted::Value(value)) => Ok(value),
            Ok(Counted::NotACounter) => Err(Error::NotACounter {
                key: key.to_owned(),
            }),
            Ok(Counted::Missing) => Err(Error::NotFound {
                key: key.to_owned(),
            }),
            Err(error) => self.backend_failed(error).map(|()| delta),
        }
    }

    /// Removes every entry of the cache's key space.
    pub(crate) async fn clear(&self) -> Result<(), Error> {
        let cleared = self.backend.clear(&self.keys).await;
        self.or_fail_open(cleared, ())
    }

    /// Whether the user's `key` holds a live entry.
    pub(crate) async fn contains(&self, key: &str) -> Result<bool, Error> {
        let live = self.backend.contains(&self.keys.entry(key)).await;
        self.or_fail_open(live, false)
    }

    /// What is left of the user's `key`'s lifetime (`None`: no entry).
    pub(crate) async fn ttl(&self, key: &str) -> Result<Option<Timeout>, Error> {
        let ttl = self.backend.ttl(&self.keys.entry(key)).await;
        Ok(self.or_fail_open(ttl, None)?.map(Timeout::from))
    }

    /// The user's keys that match `glob` and hold a live entry.
    pub(crate) async fn live_keys(&self, glob: &str) -> Result<Vec<String>, Error> {
        let stored = self.backend.live_keys(&self.keys.entry_pattern(glob)).await;
        Ok(self
            .or_fail_open(stored, Vec::new())?
            .iter()
            .filter_map(|stored| self.keys.user_key(stored))
            .map(str::to_owned)
            .collect())
    }

    /// Deletes the entries whose user keys match `glob`; how many.
    pub(crate) async fn delete_matching(&self, glob: &str) -> Result<u64, Error> {
        let removed = self
            .backend
            .delete_matching(&self.keys.entry_pattern(glob))
            .await;
        self.or_fail_open(removed, 0)
    }

    /// The lock lease at the stored key `key`, held with `token`: whether
    /// `op` found it as it must (free to acquire, held to extend or
    /// release). A failure is counted and returned (a lock does not fail
    /// open); `quiet`: counted as ignored (a release nobody waits for).
    pub(crate) async fn lock_lease(
        &self,
        key: &str,
        token: &str,
        op: LeaseOp,
        quiet: bool,
    ) -> Result<bool, Error> {
        let done = match op {
            LeaseOp::Acquire(lease) => self.backend.acquire_lease(key, token, lease).await,
            LeaseOp::Extend(lease) => self.backend.extend_lease(key, token, lease).await,
            LeaseOp::Release => self.backend.release_lease(key, token).await,
        };
        done.inspect_err(|error| self.counters().backend_error(error, quiet))
    }

    /// The current version at the version key `vkey` (0 where missing, or
    /// where the backend failed and the cache fails open).
    pub(crate) async fn version_of(&self, vkey: &str) -> Result<u64, Error> {
        let versions = self.backend.versions(&VersionKeys::from_keys([vkey])).await;
        let version = versions.map(|versions| versions.first().copied().flatten());
        Ok(self.or_fail_open(version, None)?.unwrap_or_default())
    }

    /// Sends one invalidation (`action` on the stored key `target`), or
    /// keeps it for a retry; under fail-open, only a failure to keep it is
    /// an error. Not `try_now`: an invalidation of the same call before it
    /// was not taken (its failure counted, logged or returned), and this one
    /// is kept at once, without a second wait on Redis.
    pub(crate) async fn invalidate(
        &self,
        target: String,
        action: Action,
        try_now: bool,
    ) -> Result<Applied, Error> {
        let fate = self.backend.invalidate(&self.keys, target, action, try_now);
        let fate = fate.await;
        // No caller whose read fails joins a computation older than this.
        self.flights.invalidated();
        match fate {
            Ok(Fate::Applied(version)) => Ok(Applied::Now(Some(version).filter(|&v| v != 0))),
            Ok(Fate::Queued(_)) if !try_now => Ok(Applied::Queued),
            Ok(Fate::Queued(error)) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "invalidation not taken by Redis: kept and retried"
                );
                self.backend_failed(error)?;
                Ok(Applied::Queued)
            }
            Err(error) => {
                self.backend_failed(error)?;
                Ok(Applied::Nowhere)
            }
        }
    }

    /// The invalidations waiting for Redis (`None` without Redis).
    pub(crate) fn pending(&self) -> Option<&Pending> {
        self.backend.pending()
    }

    /// How long a tombstone keeps a computation under way from storing.
    pub(crate) fn tombstone(&self) -> Expiry {
        Expiry::after(self.options.tombstone_ttl)
    }

    /// Records the invalidation of a `kind` (`key`, `namespace`, `tag`) in metrics.
    pub(crate) fn invalidating(&self, kind: &'static str) {
        observe::meters::invalidation(self.counters().label(), kind);
    }
}
