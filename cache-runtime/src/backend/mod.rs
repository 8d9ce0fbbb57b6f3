//! The stores behind a [`Cache`](crate::Cache), and the one seam where the
//! rest of the runtime meets them.
//!
//! [`Backend`] is an enum (one per cache, behind an `Arc`): every method
//! below dispatches to the store, and this file is the only place that
//! matches on a variant. A store that could not be set up
//! ([`Backend::Unavailable`]) fails every call with its reason. To add a
//! store: a module beside `memory` and `redis`, a variant, and one arm in
//! each method here.

pub(crate) mod breaker;
pub(crate) mod local;
pub(crate) mod memory;
pub(crate) mod redis;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::key::{KeySpace, glob_matches};
use breaker::{Circuit, Health};
use local::Local;
use memory::{Memory, Slot};
use redis::RedisBackend;

/// When a written entry expires, resolved from a [`Timeout`](crate::Timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// After this long (never zero).
    After(Duration),
    /// Never.
    Never,
    /// At once: the write is a delete.
    Now,
}

/// The longest life an entry is given; a longer timeout never expires.
pub(crate) const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl Expiry {
    /// An expiry after `d`: at once for zero, never past [`FOREVER`].
    pub(crate) fn after(d: Duration) -> Self {
        if d.is_zero() {
            Self::Now
        } else if d > FOREVER {
            Self::Never
        } else {
            Self::After(d)
        }
    }

    /// Milliseconds for Redis `PX`, at least 1.
    pub(crate) fn millis(d: Duration) -> u64 {
        crate::clock::millis(d).max(1)
    }
}

/// What a guarded write must still find at its key, as the read before it
/// saw the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expected {
    /// The key held nothing.
    Absent,
    /// The key held the entry or tombstone with this write id.
    WriteId(u64),
    /// The key held something a computed value must not replace (a counter):
    /// the write is refused.
    NotReplaceable,
}

/// What adding to a counter came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    /// The counter's new value.
    Value(i64),
    /// The key holds something else, or the sum overflows an `i64`.
    NotACounter,
    /// No counter, and none was to be created.
    Missing,
}

/// A typed value kept beside its bytes by the memory store.
pub(crate) type Typed = Arc<dyn Any + Send + Sync>;

/// What a read found at a key.
pub(crate) enum Found {
    /// A memory entry: its bytes, and the typed value once it was written or read as one.
    Slot(Slot),
    /// Bytes from Redis.
    Bytes(Vec<u8>),
}

impl Found {
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Self::Slot(slot) => &slot.bytes,
            Self::Bytes(bytes) => bytes,
        }
    }

    /// The typed value stored with the bytes, if any.
    #[inline]
    pub(crate) fn typed(&self) -> Option<&Typed> {
        match self {
            Self::Slot(slot) => slot.typed.as_ref(),
            Self::Bytes(_) => None,
        }
    }
}

/// The store of one cache.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per cache, behind an `Arc`
pub(crate) enum Backend {
    Memory(Memory),
    Redis(RedisBackend),
    /// Redis with a local tier in front, kept coherent by tracking.
    Tiered(Box<Tiered>),
    /// A backend that could not be set up: every call fails with this reason.
    Unavailable(String),
}

/// Redis, and the local tier in front of it.
#[derive(Debug)]
pub(crate) struct Tiered {
    local: Arc<Local>,
    redis: Arc<RedisBackend>,
    /// The key prefixes tracking watches.
    prefixes: Vec<String>,
}

impl Tiered {
    /// Forgets `keys` locally after a write of this process went to Redis.
    async fn wrote<T>(&self, keys: &[String], result: Result<T, Error>) -> Result<T, Error> {
        self.local.forget(keys).await;
        result
    }

    /// Forgets everything locally after a write of many keys.
    async fn wrote_many<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        self.local.flush().await;
        result
    }
}

/// The keys set members stand for (what comes before a newline, if any),
/// each once.
pub(crate) fn member_keys(members: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = members
        .iter()
        .map(|m| m.split('\n').next().unwrap_or(m).to_owned())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn unavailable(reason: &str) -> Error {
    Error::Unavailable {
        reason: reason.to_owned(),
    }
}

impl Backend {
    /// A memory store of `capacity` entries.
    pub(crate) fn memory(capacity: u64) -> Self {
        Self::Memory(Memory::new(capacity))
    }

    /// A Redis store at `url` (not connected yet).
    pub(crate) fn redis(url: &str, settings: &redis::Settings) -> Result<Self, Error> {
        RedisBackend::new(url, settings).map(Self::Redis)
    }

    /// A Redis Cluster reached through `seeds` (not connected yet).
    pub(crate) fn redis_cluster(
        seeds: &[String],
        settings: &redis::Settings,
    ) -> Result<Self, Error> {
        RedisBackend::cluster(seeds, settings).map(Self::Redis)
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
            Self::Redis(redis) => Self::Tiered(Box::new(Tiered {
                local: Arc::new(Local::new(max_bytes, lifetime)),
                redis: Arc::new(redis),
                prefixes: vec![format!("{}:", keys.prefix()), format!("{}#", keys.prefix())],
            })),
            other => other,
        }
    }

    /// Hits served by a local tier.
    pub(crate) fn local_hits(&self) -> u64 {
        match self {
            Self::Tiered(t) => t.local.hits.load(std::sync::atomic::Ordering::Relaxed),
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
            Self::Redis(redis) => redis.connect_all().await,
            Self::Tiered(t) => {
                t.local.start(&t.redis, &t.prefixes);
                t.redis.connect_all().await
            }
            Self::Memory(_) | Self::Unavailable(_) => Ok(()),
        }
    }

    /// Whether the store keeps a decoded value beside its bytes (see
    /// [`remember_typed`](Self::remember_typed)), so that a write or a read
    /// should hand one over: a hit then skips decoding.
    pub(crate) fn keeps_typed(&self) -> bool {
        matches!(self, Self::Memory(_) | Self::Tiered(_))
    }

    /// Whether other processes share this store, so that a fleet-wide lease means something.
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self, Self::Redis(_) | Self::Tiered(_))
    }

    /// Whether calls reach the store: the circuit breaker's state.
    pub(crate) fn health(&self) -> Health {
        match self {
            Self::Redis(redis) => redis.health(),
            Self::Tiered(t) => t.redis.health(),
            Self::Memory(_) => Health::fixed(Circuit::Closed),
            // Set up wrong: nothing will ever be tried.
            Self::Unavailable(_) => Health::fixed(Circuit::Open {
                retry_in: Duration::MAX,
            }),
        }
    }

    /// The entry at `key` and the versions at `vkeys` (`None` where
    /// missing), in one round trip.
    #[inline]
    pub(crate) async fn read(
        &self,
        key: &str,
        vkeys: &[String],
    ) -> Result<(Option<Found>, Vec<Option<u64>>), Error> {
        match self {
            Self::Memory(memory) => {
                let versions = memory.versions(vkeys);
                Ok((memory.get(key).await.map(Found::Slot), versions))
            }
            Self::Redis(redis) => {
                let (bytes, versions) = redis.read(key, vkeys).await?;
                Ok((bytes.map(Found::Bytes), versions))
            }
            Self::Tiered(t) => {
                t.local.start(&t.redis, &t.prefixes);
                if let Some((found, versions)) = t.local.read(key, vkeys).await {
                    return Ok((Some(found), versions));
                }
                let reading = t.local.begin(key, vkeys);
                match t.redis.read(key, vkeys).await {
                    Ok((bytes, versions)) => {
                        let found = t.local.fill(reading, key, bytes, vkeys, &versions).await;
                        Ok((found, versions))
                    }
                    Err(error) => {
                        t.local.abandon(reading, key, vkeys);
                        Err(error)
                    }
                }
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// The entries at `keys`, in order; one round trip.
    pub(crate) async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Found>>, Error> {
        match self {
            Self::Memory(memory) => {
                let mut found = Vec::with_capacity(keys.len());
                for key in keys {
                    found.push(memory.get(key).await.map(Found::Slot));
                }
                Ok(found)
            }
            Self::Redis(redis) => Ok(redis
                .get_many(keys)
                .await?
                .into_iter()
                .map(|bytes| bytes.map(Found::Bytes))
                .collect()),
            Self::Tiered(t) => Ok(t
                .redis
                .get_many(keys)
                .await?
                .into_iter()
                .map(|bytes| bytes.map(Found::Bytes))
                .collect()),
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
                memory.set(key, Slot::new(bytes, typed, expiry)).await;
                Ok(())
            }
            Self::Redis(redis) => redis.set(&key, &bytes, expiry).await,
            Self::Tiered(t) => {
                let written = t.redis.set(&key, &bytes, expiry).await;
                t.wrote(&[key], written).await
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Stores every `(key, bytes)` pair; one round trip.
    pub(crate) async fn set_many(
        &self,
        entries: Vec<(String, Vec<u8>)>,
        expiry: Expiry,
    ) -> Result<(), Error> {
        match self {
            Self::Memory(memory) => {
                for (key, bytes) in entries {
                    memory.set(key, Slot::new(bytes, None, expiry)).await;
                }
                Ok(())
            }
            Self::Redis(redis) => redis.set_many(&entries, expiry).await,
            Self::Tiered(t) => {
                let written = t.redis.set_many(&entries, expiry).await;
                let keys: Vec<String> = entries.into_iter().map(|(key, _)| key).collect();
                t.wrote(&keys, written).await
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
            Self::Memory(memory) => Ok(memory.add(key, Slot::new(bytes, None, expiry)).await),
            Self::Redis(redis) => redis.add(&key, &bytes, expiry).await,
            Self::Tiered(t) => {
                let added = t.redis.add(&key, &bytes, expiry).await;
                t.wrote(&[key], added).await
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
            Self::Memory(memory) => Ok(memory
                .write_guarded(key, Slot::new(bytes, typed, expiry), expected)
                .await),
            Self::Redis(redis) => redis.write_guarded(&key, &bytes, expiry, expected).await,
            Self::Tiered(t) => {
                let written = t.redis.write_guarded(&key, &bytes, expiry, expected).await;
                t.wrote(&[key], written).await
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Gives the live value at `key` a new expiry; whether there was one.
    pub(crate) async fn touch(&self, key: String, expiry: Expiry) -> Result<bool, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.touch(key, expiry).await),
            Self::Redis(redis) => redis.touch(&key, expiry).await,
            Self::Tiered(t) => {
                let touched = t.redis.touch(&key, expiry).await;
                t.wrote(&[key], touched).await
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Deletes `keys`; how many held a live value.
    pub(crate) async fn delete_many(&self, keys: &[String]) -> Result<u64, Error> {
        match self {
            Self::Memory(memory) => {
                let mut n = 0;
                for key in keys {
                    n += u64::from(memory.delete(key).await);
                }
                Ok(n)
            }
            Self::Redis(redis) => redis.delete_many(keys).await,
            Self::Tiered(t) => {
                let deleted = t.redis.delete_many(keys).await;
                t.wrote(keys, deleted).await
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
            Self::Memory(memory) => Ok(memory.incr(key, delta, expiry, create).await),
            Self::Redis(redis) => redis.incr(&key, delta, expiry, create).await,
            Self::Tiered(t) => {
                let counted = t.redis.incr(&key, delta, expiry, create).await;
                t.wrote(&[key], counted).await
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Whether `key` holds a live value (a tombstone or an expired value does not).
    pub(crate) async fn contains(&self, key: &str) -> Result<bool, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.contains(key).await),
            Self::Redis(redis) => redis.contains(key).await,
            Self::Tiered(t) => t.redis.contains(key).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// The remaining life of the live value at `key`: `None` when there is
    /// none, `Some(None)` when it never expires.
    pub(crate) async fn ttl(&self, key: &str) -> Result<Option<Option<Duration>>, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.ttl(key).await),
            Self::Redis(redis) => redis.ttl(key).await,
            Self::Tiered(t) => t.redis.ttl(key).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// The stored keys matching the glob `pattern` (Redis `MATCH` syntax)
    /// that hold a live value; never `KEYS`, always `SCAN` in pages.
    pub(crate) async fn live_keys(&self, pattern: &str) -> Result<Vec<String>, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.live_keys(|key| glob_matches(pattern, key))),
            Self::Redis(redis) => redis.live_keys(pattern).await,
            Self::Tiered(t) => t.redis.live_keys(pattern).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Deletes every stored key matching the glob `pattern`; how many held a live value.
    pub(crate) async fn delete_matching(&self, pattern: &str) -> Result<u64, Error> {
        match self {
            Self::Memory(memory) => {
                let mut removed = 0;
                for key in memory.live_keys(|key| glob_matches(pattern, key)) {
                    removed += u64::from(memory.delete(&key).await);
                }
                Ok(removed)
            }
            Self::Redis(redis) => redis.delete_matching(pattern).await,
            Self::Tiered(t) => {
                let deleted = t.redis.delete_matching(pattern).await;
                t.wrote_many(deleted).await
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// The versions at `vkeys`, `None` where missing.
    pub(crate) async fn versions(&self, vkeys: &[String]) -> Result<Vec<Option<u64>>, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.versions(vkeys)),
            Self::Redis(redis) => redis.read_versions(vkeys).await,
            Self::Tiered(t) => t.redis.read_versions(vkeys).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Creates the version keys `vkeys` where they are missing (at a fresh
    /// random version); the versions they hold afterwards.
    pub(crate) async fn create_versions(&self, vkeys: &[String]) -> Result<Vec<u64>, Error> {
        match self {
            // A memory version is never missing: an absent one is 0.
            Self::Memory(memory) => Ok(memory
                .versions(vkeys)
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect()),
            Self::Redis(redis) => redis.create_versions(vkeys).await,
            Self::Tiered(t) => {
                let created = t.redis.create_versions(vkeys).await;
                t.wrote(vkeys, created).await
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Bumps the version at `vkey`; the new version.
    pub(crate) async fn bump(&self, vkey: &str) -> Result<u64, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.bump(vkey)),
            Self::Redis(redis) => redis.bump(vkey, crate::codec::fresh_version()).await,
            Self::Tiered(t) => {
                let bumped = t.redis.bump(vkey, crate::codec::fresh_version()).await;
                t.wrote(&[vkey.to_owned()], bumped).await
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
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
            Self::Redis(redis) => redis.acquire_lease(key, token, ttl).await,
            Self::Tiered(t) => t.redis.acquire_lease(key, token, ttl).await,
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
            Self::Redis(redis) => redis.extend_lease(key, token, ttl).await,
            Self::Tiered(t) => t.redis.extend_lease(key, token, ttl).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Releases the lease at `key` if `token` still holds it; whether it did.
    pub(crate) async fn release_lease(&self, key: &str, token: &str) -> Result<bool, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.settle_lease(key, token, None)),
            Self::Redis(redis) => redis.delete_if_equal(key, token.as_bytes()).await,
            Self::Tiered(t) => t.redis.delete_if_equal(key, token.as_bytes()).await,
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
            Self::Redis(redis) => redis.add_to_sets(sets, member).await,
            Self::Tiered(t) => t.redis.add_to_sets(sets, member).await,
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
            Self::Redis(redis) => redis.remove_from_set(set, member).await,
            Self::Tiered(t) => t.redis.remove_from_set(set, member).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Writes `tombstone` (for `ttl`) over every key in the set at `take`,
    /// which is emptied, and in the set at `keep`; how many keys. A member
    /// may carry a suffix after a newline (a computation's token): the key
    /// is what comes before it.
    pub(crate) async fn tombstone_sets(
        &self,
        take: &str,
        keep: &str,
        tombstone: &[u8],
        ttl: Expiry,
    ) -> Result<u64, Error> {
        match self {
            Self::Memory(memory) => {
                let mut members = memory.members(take, true);
                members.extend(memory.members(keep, false));
                let keys = member_keys(&members);
                for key in &keys {
                    memory
                        .set(key.clone(), Slot::new(tombstone.to_vec(), None, ttl))
                        .await;
                }
                Ok(keys.len() as u64)
            }
            Self::Redis(redis) => redis.tombstone_sets(take, keep, tombstone, ttl).await,
            Self::Tiered(t) => {
                let dropped = t.redis.tombstone_sets(take, keep, tombstone, ttl).await;
                t.wrote_many(dropped).await
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Removes the entry at `key` if it is still `found` (undecodable bytes).
    pub(crate) async fn remove_if_same(&self, key: &str, found: &Found) -> Result<(), Error> {
        match (self, found) {
            (Self::Memory(memory), Found::Slot(slot)) => {
                memory.remove_if_same(key.to_owned(), &slot.bytes).await;
                Ok(())
            }
            (Self::Redis(redis), found) => {
                redis.delete_if_equal(key, found.bytes()).await.map(drop)
            }
            (Self::Tiered(t), found) => {
                let removed = t.redis.delete_if_equal(key, found.bytes()).await.map(drop);
                t.wrote(&[key.to_owned()], removed).await
            }
            _ => Ok(()),
        }
    }

    /// Keeps `typed`, decoded from `found`, beside it while it is still stored.
    pub(crate) async fn remember_typed(&self, key: &str, found: &Found, typed: Typed) {
        match (self, found) {
            (Self::Memory(memory), Found::Slot(slot)) => {
                memory
                    .remember_typed(key.to_owned(), &slot.bytes, typed)
                    .await;
            }
            (Self::Tiered(t), Found::Slot(slot)) => t.local.remember_typed(key, slot, typed).await,
            _ => {}
        }
    }

    /// Removes every key of `keys`' space (entries and internal keys).
    pub(crate) async fn clear(&self, keys: &KeySpace) -> Result<(), Error> {
        match self {
            Self::Memory(memory) => {
                let keys = keys.clone();
                memory.clear(move |stored| keys.owns(stored)).await;
                Ok(())
            }
            Self::Redis(redis) => redis.clear(&keys.scan_pattern()).await.map(drop),
            Self::Tiered(t) => {
                let cleared = t.redis.clear(&keys.scan_pattern()).await.map(drop);
                t.wrote_many(cleared).await
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }
}
