//! The stores behind a [`Cache`](crate::Cache), and the one seam where the
//! rest of the runtime meets them.
//!
//! [`Backend`] is an enum (one per cache, behind an `Arc`): every method
//! below dispatches to the store, and this file (with `many.rs`, the
//! operations on many keys at once) is the only place that matches on a
//! variant. A store that could not be set up
//! ([`Backend::Unavailable`]) fails every call with its reason. To add a
//! store: a module beside `memory` and `redis`, a variant, and one arm in
//! each method here and in `many.rs`.

pub(crate) mod breaker;
pub(crate) mod info;
mod invalidations;
mod journal;
pub(crate) mod local;
mod many;
pub(crate) mod memory;
pub(crate) mod pending;
mod remote;
pub(crate) mod server;
mod types;

pub(crate) use types::{
    Answer, Counted, Expected, Expiry, Found, GuardedWrite, Typed, member_keys,
};

use std::time::Duration;

use crate::Error;
use crate::key::{KeySpace, glob_matches};
use crate::scope::VersionKeys;
use breaker::{Circuit, Health};
use memory::{Memory, Slot};
use pending::{Action, Fate, Pending};
use remote::Remote;
use server::RedisBackend;

/// The store of one cache.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per cache, behind an `Arc`
pub(crate) enum Backend {
    Memory(Memory),
    /// Redis (one server or a cluster), with a local tier in front when asked.
    Redis(Remote),
    /// A backend that could not be set up: every call fails with this reason.
    Unavailable(String),
}

fn unavailable(reason: &str) -> Error {
    Error::Unavailable {
        reason: reason.to_owned(),
    }
}

impl Backend {
    /// A memory store of `capacity` entries.
    pub(crate) fn memory(capacity: u64) -> Self {
        Self::Memory(Memory::new(capacity, "memory"))
    }

    /// A Redis store at `url` (not connected yet).
    pub(crate) fn redis(url: &str, settings: &server::Settings) -> Result<Self, Error> {
        Self::remote(settings, |settings| RedisBackend::new(url, settings))
    }

    /// The master that `sentinels` name `master` (not connected yet).
    pub(crate) fn redis_sentinel(
        sentinels: &[String],
        master: &str,
        settings: &server::Settings,
    ) -> Result<Self, Error> {
        Self::remote(settings, |settings| {
            RedisBackend::sentinel(sentinels, master, settings)
        })
    }

    /// A Redis Cluster reached through `seeds` (not connected yet).
    pub(crate) fn redis_cluster(
        seeds: &[String],
        settings: &server::Settings,
    ) -> Result<Self, Error> {
        Self::remote(settings, |settings| RedisBackend::cluster(seeds, settings))
    }

    /// A Redis store made by `make` (and, with replicated invalidations, a
    /// second one of a single connection that sends them).
    fn remote(
        settings: &server::Settings,
        make: impl Fn(&server::Settings) -> Result<RedisBackend, Error>,
    ) -> Result<Self, Error> {
        let (plain, replicated) = settings.split();
        let redis = make(&plain)?;
        let replicated = replicated.as_ref().map(&make).transpose()?;
        Ok(Self::Redis(Remote::new(
            redis,
            replicated,
            settings.pending_invalidations,
        )))
    }

    /// `redis` (a `Redis` backend) with a local tier of `max_bytes` in
    /// front, tracking the keys of `keys`' space.
    pub(crate) fn with_local(
        self,
        max_bytes: u64,
        lifetime: Option<Duration>,
        keys: &KeySpace,
    ) -> Self {
        match self {
            Self::Redis(redis) => Self::Redis(redis.with_local(max_bytes, lifetime, keys)),
            other => other,
        }
    }

    /// `redis` (a `Redis` backend) with the versions of `keys`' space
    /// tracked in process.
    pub(crate) fn with_tracked_versions(self, keys: &KeySpace) -> Self {
        match self {
            Self::Redis(redis) => Self::Redis(redis.with_tracked_versions(keys)),
            other => other,
        }
    }

    /// Makes a local tier track the keys of `keys`' space too (a handle
    /// under another prefix).
    pub(crate) fn cover(&self, keys: &KeySpace) {
        if let Self::Redis(redis) = self {
            redis.cover(keys);
        }
    }

    /// Hits served by a local tier.
    pub(crate) fn local_hits(&self) -> u64 {
        match self {
            Self::Redis(redis) => redis.local_hits(),
            _ => 0,
        }
    }

    /// A store that fails every call with `reason`.
    pub(crate) fn unavailable(reason: String) -> Self {
        Self::Unavailable(reason)
    }

    /// Connects now where the store connects at all (a refused password is an error here).
    pub(crate) async fn connect(&self) -> Result<(), Error> {
        match self {
            Self::Redis(redis) => redis.connect().await,
            Self::Memory(_) | Self::Unavailable(_) => Ok(()),
        }
    }

    /// Whether the store keeps a decoded value beside its bytes (see
    /// [`remember_typed`](Self::remember_typed)), so that a write or a read
    /// should hand one over: a hit then skips decoding.
    pub(crate) fn keeps_typed(&self) -> bool {
        match self {
            Self::Memory(_) => true,
            Self::Redis(redis) => redis.keeps_typed(),
            Self::Unavailable(_) => false,
        }
    }

    /// Whether other processes share this store, so that a fleet-wide lease means something.
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self, Self::Redis(_))
    }

    /// Whether calls reach the store: the circuit breaker's state.
    pub(crate) fn health(&self) -> Health {
        match self {
            Self::Redis(redis) => redis.health(),
            Self::Memory(_) => Health::fixed(Circuit::Closed),
            // Set up wrong: nothing will ever be tried.
            Self::Unavailable(_) => Health::fixed(Circuit::Open {
                retry_in: Duration::MAX,
            }),
        }
    }

    /// What an in-process store answers, without waiting, for the entry at
    /// `key` and the versions at `vkeys`: the memory store always, a local
    /// tier when it holds them all; `None` when Redis must be asked.
    // On an in-process hit's path: inlined, it costs the hit no call (hit_loop).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub(crate) fn peek(&self, key: &str, vkeys: &VersionKeys) -> Option<Answer> {
        match self {
            Self::Memory(memory) => {
                Some((memory.get(key).map(Found::Slot), memory.versions(vkeys)))
            }
            Self::Redis(redis) => redis.peek(key, vkeys).map(|(found, v)| (Some(found), v)),
            Self::Unavailable(_) => None,
        }
    }

    /// The entry at `key` and the versions at `vkeys` (`None` where
    /// missing), in one round trip; `past_tier`: a local tier was just
    /// asked (see [`Self::peek`]) and did not hold them, so Redis is asked
    /// at once.
    #[inline]
    pub(crate) async fn read(
        &self,
        key: &str,
        vkeys: &VersionKeys,
        past_tier: bool,
    ) -> Result<Answer, Error> {
        match self {
            Self::Memory(memory) => {
                let versions = memory.versions(vkeys);
                Ok((memory.get(key).map(Found::Slot), versions))
            }
            Self::Redis(redis) => redis.read_through(key, vkeys, past_tier).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Stores `bytes` (and, in memory, `typed` beside them) at `key`.
    pub(crate) async fn set(
        &self,
        key: String,
        bytes: Vec<u8>,
        typed: Option<Typed>,
        expiry: Expiry,
    ) -> Result<(), Error> {
        match self {
            Self::Memory(memory) => {
                memory.set(key, Slot::new(bytes, typed, expiry));
                Ok(())
            }
            Self::Redis(redis) => {
                let result = redis.server().set(&key, &bytes, expiry).await;
                redis.wrote_over(&key, result)
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Stores `bytes` unless `key` holds a live value; whether it did.
    pub(crate) async fn add(
        &self,
        key: String,
        bytes: Vec<u8>,
        expiry: Expiry,
    ) -> Result<bool, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.add(key, Slot::new(bytes, None, expiry))),
            Self::Redis(redis) => {
                let result = redis.server().add(&key, &bytes, expiry).await;
                redis.wrote_over(&key, result)
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Stores a computed value if `key` still holds what the read saw; whether it did.
    pub(crate) async fn write_guarded(
        &self,
        key: String,
        bytes: Vec<u8>,
        typed: Option<Typed>,
        expiry: Expiry,
        expected: Expected,
    ) -> Result<bool, Error> {
        match self {
            Self::Memory(memory) => {
                Ok(memory.write_guarded(key, Slot::new(bytes, typed, expiry), expected))
            }
            Self::Redis(redis) => {
                let result = redis
                    .server()
                    .write_guarded(&key, &bytes, expiry, expected)
                    .await;
                redis.wrote(&[key], result)
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Gives the live value at `key` a new expiry; whether there was one.
    pub(crate) async fn touch(&self, key: String, expiry: Expiry) -> Result<bool, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.touch(key, expiry)),
            Self::Redis(redis) => {
                let result = redis.server().touch(&key, expiry).await;
                redis.wrote(&[key], result)
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Adds `delta` to the counter at `key`; a missing one is created at 0
    /// with `expiry` when `create` says so.
    pub(crate) async fn incr(
        &self,
        key: String,
        delta: i64,
        expiry: Expiry,
        create: bool,
    ) -> Result<Counted, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.incr(key, delta, expiry, create)),
            Self::Redis(redis) => {
                let result = redis.server().incr(&key, delta, expiry, create).await;
                redis.wrote_over(&key, result)
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Whether `key` holds a live value (a tombstone or an expired value does not).
    pub(crate) async fn contains(&self, key: &str) -> Result<bool, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.contains(key)),
            Self::Redis(redis) => redis.server().contains(key).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// The remaining life of the live value at `key`: `None` when there is
    /// none, `Some(None)` when it never expires.
    pub(crate) async fn ttl(&self, key: &str) -> Result<Option<Option<Duration>>, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.ttl(key)),
            Self::Redis(redis) => redis.server().ttl(key).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// The stored keys matching the glob `pattern` (Redis `MATCH` syntax)
    /// that hold a live value; never `KEYS`, always `SCAN` in pages.
    pub(crate) async fn live_keys(&self, pattern: &str) -> Result<Vec<String>, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.live_keys(|key| glob_matches(pattern, key))),
            Self::Redis(redis) => redis.server().live_keys(pattern).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Deletes every stored key matching the glob `pattern`; how many held a live value.
    pub(crate) async fn delete_matching(&self, pattern: &str) -> Result<u64, Error> {
        match self {
            Self::Memory(memory) => {
                let mut removed = 0;
                for key in memory.live_keys(|key| glob_matches(pattern, key)) {
                    removed += u64::from(memory.delete(&key));
                }
                Ok(removed)
            }
            Self::Redis(redis) => {
                let result = redis.server().delete_matching(pattern).await;
                redis.wrote_many(result)
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// The versions at `vkeys`, `None` where missing.
    pub(crate) async fn versions(&self, vkeys: &VersionKeys) -> Result<Vec<Option<u64>>, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.versions(vkeys)),
            Self::Redis(redis) => redis.server().read_versions(vkeys).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Creates the version keys `vkeys` where they are missing (at a fresh
    /// random version); the versions they hold afterwards.
    pub(crate) async fn create_versions(&self, vkeys: &[String]) -> Result<Vec<u64>, Error> {
        match self {
            // A memory version is never missing: an absent one is 0.
            Self::Memory(memory) => Ok(memory
                .read_versions(vkeys.iter().map(String::as_str))
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect()),
            Self::Redis(redis) => {
                let result = redis.server().create_versions(vkeys).await;
                redis.wrote(vkeys, result)
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// An invalidation of `keys`' space: `action` on `target`. Memory
    /// applies it at once; Redis now (unless not `try_now`: kept at once), or
    /// else keeps it and retries it until Redis takes it (reads of this
    /// process see it meanwhile).
    pub(crate) async fn invalidate(
        &self,
        keys: &KeySpace,
        target: String,
        action: Action,
        try_now: bool,
    ) -> Result<Fate, Error> {
        match self {
            Self::Memory(memory) => Ok(Fate::Applied(match action {
                Action::Tombstone(expiry) => {
                    memory.set(target, Slot::new(crate::codec::tombstone(), None, expiry));
                    0
                }
                Action::Bump => memory.bump(&target),
                Action::Members { keep, expiry } => {
                    // A member may carry a suffix after a newline (a
                    // computation's token): the key is what comes before it.
                    let mut members = memory.members(&target, true);
                    members.extend(memory.members(&keep, false));
                    let tombstone = crate::codec::tombstone();
                    let keys = member_keys(&members);
                    for key in &keys {
                        memory.set(key.clone(), Slot::new(tombstone.clone(), None, expiry));
                    }
                    keys.len() as u64
                }
            })),
            Self::Redis(redis) => {
                let space = keys.scan_pattern();
                Ok(redis.invalidate(&space, target, action, try_now).await)
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// The invalidations waiting for Redis (none with memory).
    pub(crate) fn pending(&self) -> Option<&Pending> {
        match self {
            Self::Redis(redis) => Some(redis.pending()),
            Self::Memory(_) | Self::Unavailable(_) => None,
        }
    }

    /// Takes the lease at `key` for `ttl` with `token`, unless another holds it.
    pub(crate) async fn acquire_lease(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.acquire_lease(key, token, ttl)),
            Self::Redis(redis) => redis.server().acquire_lease(key, token, ttl).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Gives the lease at `key` `ttl` more life if `token` still holds it; whether it did.
    pub(crate) async fn extend_lease(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.settle_lease(key, token, Some(ttl))),
            Self::Redis(redis) => redis.server().extend_lease(key, token, ttl).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Releases the lease at `key` if `token` still holds it; whether it did.
    pub(crate) async fn release_lease(&self, key: &str, token: &str) -> Result<bool, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.settle_lease(key, token, None)),
            Self::Redis(redis) => redis.server().delete_if_equal(key, token.as_bytes()).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Adds `member` to each set of `sets` (Redis `SADD`, one per set).
    pub(crate) async fn add_to_sets(&self, sets: &[String], member: &str) -> Result<(), Error> {
        match self {
            Self::Memory(memory) => {
                for set in sets {
                    memory.add_to_set(set, member);
                }
                Ok(())
            }
            Self::Redis(redis) => redis.server().add_to_sets(sets, member).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Takes `member` out of the set at `set`.
    pub(crate) async fn remove_from_set(&self, set: &str, member: &str) -> Result<(), Error> {
        match self {
            Self::Memory(memory) => {
                memory.remove_from_set(set, member);
                Ok(())
            }
            Self::Redis(redis) => redis.server().remove_from_set(set, member).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Removes the entry at `key` if it is still `found` (undecodable bytes).
    pub(crate) async fn remove_if_same(&self, key: &str, found: &Found) -> Result<(), Error> {
        match (self, found) {
            (Self::Memory(memory), Found::Slot(slot)) => {
                memory.remove_if_same(key.to_owned(), &slot.bytes);
                Ok(())
            }
            (Self::Redis(redis), found) => {
                let result = redis
                    .server()
                    .delete_if_equal(key, found.bytes())
                    .await
                    .map(drop);
                redis.wrote(&[key.to_owned()], result)
            }
            _ => Ok(()),
        }
    }

    /// Keeps `typed`, decoded from `found`, beside it while it is still stored.
    pub(crate) fn remember_typed(&self, key: &str, found: &Found, typed: Typed) {
        match (self, found) {
            (Self::Memory(memory), Found::Slot(slot)) => {
                memory.remember_typed(key.to_owned(), &slot.bytes, typed);
            }
            (Self::Redis(redis), Found::Slot(slot)) => redis.remember_typed(key, slot, typed),
            _ => {}
        }
    }

    /// Removes every key of `keys`' space (entries and internal keys).
    pub(crate) async fn clear(&self, keys: &KeySpace) -> Result<(), Error> {
        match self {
            Self::Memory(memory) => {
                let keys = keys.clone();
                memory.clear(move |stored| keys.owns(stored));
                Ok(())
            }
            Self::Redis(redis) => {
                let result = redis.server().clear(&keys.scan_pattern()).await.map(drop);
                redis.wrote_many(result)
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }
}
