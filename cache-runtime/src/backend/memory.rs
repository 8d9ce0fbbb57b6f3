//! The in-process backend, on moka.
//!
//! An entry keeps the encoded bytes (the same envelope Redis stores, so both
//! backends accept and refuse the same values) and, once it has been written
//! or read as a type, that typed value behind an `Arc`, so a hit is one moka
//! lookup and a clone, with no decoding.
//!
//! The store is moka's synchronous cache: no lookup or write ever waits on
//! anything but a short lock, and its lookups cost a third less than its
//! asynchronous cache's. Keys are hashed with `foldhash`, seeded at random
//! per store (moka's default, `SipHash`, costs more than the rest of a hit's
//! lookup). Each entry carries
//! its own deadline, checked by every read: moka keeps no expiry of its own,
//! which would cost every lookup more than the check does. Expired entries
//! are removed by a sweep every [`SWEEP_EVERY`] writes, and give way to live
//! ones under the byte budget before that.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache as Moka;

use super::{Counted, Expected, Expiry, GuardedWrite};
use crate::codec::{self, Shape};
use crate::observe::meters;
use crate::scope::VersionKeys;

/// A stored entry, behind one `Arc`: a lookup hands out a clone, and one
/// reference count is all that threads reading the same entry share.
#[derive(Clone)]
pub(crate) struct Slot(Arc<Entry>);

/// What a slot holds.
pub(crate) struct Entry {
    pub(crate) bytes: Arc<[u8]>,
    pub(crate) typed: Option<Arc<dyn Any + Send + Sync>>,
    /// What the bytes hold, read once.
    pub(crate) shape: Shape,
    expires_at: Option<Instant>,
}

impl std::ops::Deref for Slot {
    type Target = Entry;

    fn deref(&self) -> &Entry {
        &self.0
    }
}

impl Slot {
    pub(crate) fn new(
        bytes: Vec<u8>,
        typed: Option<Arc<dyn Any + Send + Sync>>,
        expiry: Expiry,
    ) -> Self {
        Self(Arc::new(Entry {
            shape: Shape::of(&bytes),
            bytes: bytes.into(),
            typed,
            expires_at: deadline(expiry),
        }))
    }

    /// The same bytes, with `typed` and `expires_at`.
    fn with(&self, typed: Option<Arc<dyn Any + Send + Sync>>, expires_at: Option<Instant>) -> Self {
        Self(Arc::new(Entry {
            bytes: Arc::clone(&self.bytes),
            typed,
            shape: self.shape,
            expires_at,
        }))
    }
}

fn deadline(expiry: Expiry) -> Option<Instant> {
    match expiry {
        // Past what an `Instant` can hold: never.
        Expiry::After(d) => Instant::now().checked_add(d),
        Expiry::Never => None,
        Expiry::Now => Some(Instant::now()),
    }
}

/// How many writes go between two sweeps of expired entries.
const SWEEP_EVERY: u64 = 4096;

impl Slot {
    /// Whether the slot's deadline has passed.
    fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Whether the slot holds a value (not a tombstone).
    fn is_value(&self) -> bool {
        self.shape != Shape::Tombstone
    }

    /// Whether the slot holds a value that has not expired.
    fn is_live(&self) -> bool {
        !self.expired(Instant::now()) && self.is_value()
    }

    /// Whether a guarded write that saw `expected` may replace this slot.
    fn is_expected(&self, expected: Expected) -> bool {
        match (expected, codec::open(&self.bytes)) {
            (Expected::WriteId(id), Ok((meta, _))) => meta.write_id == id,
            (Expected::Digits(n), _) => {
                matches!(codec::parse(&self.bytes), Ok(codec::Stored::Counter(m)) if m == n)
            }
            _ => false,
        }
    }
}

/// The memory store of one cache.
pub(crate) struct Memory {
    store: Moka<String, Slot, foldhash::fast::RandomState>,
    /// The tier's name in metrics.
    tier: &'static str,
    /// Writes since the store was made, for the sweeps of expired entries.
    writes: AtomicU64,
    /// The heaviest entry kept, in bytes.
    max_entry: u64,
    /// Namespace and tag versions. Never evicted: a missing version is 0.
    versions: Mutex<HashMap<String, u64>>,
    /// Leases by key: the holder's token and when the lease ends. Apart
    /// from the entries, so that eviction never frees a held lease.
    leases: Mutex<HashMap<String, (String, Instant)>>,
    /// Sets of keys by set key: the entries carrying a tag from their value,
    /// and those being computed.
    sets: Mutex<HashMap<String, HashMap<String, usize>>>,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("entries", &self.store.entry_count())
            .field("versions", &self.versions.lock().map_or(0, |v| v.len()))
            .finish_non_exhaustive()
    }
}

/// What an entry weighs against the byte budget: its key, its stored
/// bytes, and a little for the bookkeeping.
fn weight(key: &str, slot: &Slot) -> u64 {
    (key.len() + slot.bytes.len() + 64) as u64
}

impl Memory {
    /// A store of at most `max_bytes` (keys and stored bytes); an entry
    /// heavier than a sixteenth of that is not kept. `tier` names it in
    /// metrics (`memory`, `local`).
    pub(crate) fn new(max_bytes: u64, tier: &'static str) -> Self {
        let builder =
            Moka::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &String, slot: &Slot| {
                    u32::try_from(weight(key, slot)).unwrap_or(u32::MAX)
                });
        // Evictions are counted only where they are reported.
        #[cfg(feature = "metrics")]
        let builder = builder.eviction_listener(move |_, _, cause| {
            if cause == moka::notification::RemovalCause::Size {
                meters::evicted(tier, "size", 1);
            }
        });
        let store = builder.build_with_hasher(foldhash::fast::RandomState::default());
        Self {
            tier,
            writes: AtomicU64::new(0),
            max_entry: max_bytes / 16,
            store,
            versions: Mutex::default(),
            leases: Mutex::default(),
            sets: Mutex::default(),
        }
    }

    /// The slot at `key`, unless it has expired.
    // On an in-process hit's path: inlined, it costs the hit no call (hit_loop).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub(crate) fn get(&self, key: &str) -> Option<Slot> {
        self.store
            .get(key)
            .filter(|slot| !slot.expired(Instant::now()))
    }

    /// Counts a write; every [`SWEEP_EVERY`] writes, removes the entries
    /// whose deadline has passed.
    fn wrote(&self) {
        if self.writes.fetch_add(1, Relaxed) % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        let now = Instant::now();
        let expired: Vec<Arc<String>> = self
            .store
            .iter()
            .filter(|(_, slot)| slot.expired(now))
            .map(|(key, _)| key)
            .collect();
        meters::evicted(self.tier, "expired", expired.len() as u64);
        for key in expired {
            self.store
                .entry_by_ref(key.as_str())
                .and_compute_with(|entry| {
                    match entry {
                        // Unless it was written again meanwhile.
                        Some(entry) if entry.value().expired(now) => Op::Remove,
                        _ => Op::Nop,
                    }
                });
        }
    }

    /// Stores `slot` (or removes the key when it has already expired).
    ///
    /// Every write goes through moka's per-key compute lock, as guarded
    /// writes do, so a write never slips between a guarded write's check
    /// and its store.
    pub(crate) fn set(&self, key: String, slot: Slot) {
        // Too heavy to keep: the key is emptied rather than left with an older value.
        let expired = slot.expired(Instant::now()) || weight(&key, &slot) > self.max_entry;
        self.store
            .entry(key)
            .and_compute_with(|_| if expired { Op::Remove } else { Op::Put(slot) });
        self.wrote();
    }

    /// Stores `slot` unless the key holds a live value; whether it stored it.
    pub(crate) fn add(&self, key: String, slot: Slot) -> bool {
        if slot.expired(Instant::now()) {
            // Expired as it is written: nothing is kept, and whether it
            // would have been added is the answer.
            return !self.contains(&key);
        }
        if weight(&key, &slot) > self.max_entry {
            return false;
        }
        let result = self.store.entry(key).and_compute_with(|entry| match entry {
            Some(entry) if entry.value().is_live() => Op::Nop,
            _ => Op::Put(slot),
        });
        self.wrote();
        matches!(
            result,
            CompResult::Inserted(_) | CompResult::ReplacedWith(_)
        )
    }

    /// Each of `writes` where its key still holds what a read saw; how many were stored.
    pub(crate) fn write_guarded_many(&self, writes: Vec<GuardedWrite>) -> usize {
        let mut stored = 0;
        for w in writes {
            let slot = Slot::new(w.bytes, w.typed, w.expiry);
            stored += usize::from(self.write_guarded(w.key, slot, w.expected));
        }
        stored
    }

    /// Stores `slot` if the key still holds what a read saw; whether it did.
    pub(crate) fn write_guarded(&self, key: String, slot: Slot, expected: Expected) -> bool {
        let heavy = weight(&key, &slot) > self.max_entry;
        let result = self.store.entry(key).and_compute_with(|entry| {
            // An expired entry is absent, as reads found it.
            let current = entry
                .map(moka::Entry::into_value)
                .filter(|slot| !slot.expired(Instant::now()));
            match (current, expected) {
                // Too heavy to keep: the key is emptied, as the write would have replaced it.
                (Some(current), expected) if heavy && current.is_expected(expected) => Op::Remove,
                _ if heavy => Op::Nop,
                (None, Expected::Absent) => Op::Put(slot),
                (Some(current), expected) if current.is_expected(expected) => Op::Put(slot),
                _ => Op::Nop,
            }
        });
        self.wrote();
        matches!(
            result,
            CompResult::Inserted(_) | CompResult::ReplacedWith(_)
        )
    }

    /// The versions at `keys`; 0 for those never bumped.
    // An unscoped hit (the usual one) only tests for no keys, inline.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub(crate) fn versions(&self, keys: &VersionKeys) -> Vec<Option<u64>> {
        if keys.is_empty() {
            return Vec::new();
        }
        self.read_versions(keys)
    }

    /// [`versions`](Self::versions) of keys given one by one.
    pub(crate) fn read_versions<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Vec<Option<u64>> {
        let versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        keys.into_iter()
            .map(|k| Some(versions.get(k).copied().unwrap_or(0)))
            .collect()
    }

    /// Adds one to the version at `key`; the new version.
    pub(crate) fn bump(&self, key: &str) -> u64 {
        let mut versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        let version = versions.entry(key.to_owned()).or_insert(0);
        *version += 1;
        *version
    }

    /// Removes `key`; whether it held a live value.
    pub(crate) fn delete(&self, key: &str) -> bool {
        self.store.remove(key).is_some_and(|slot| slot.is_live())
    }

    /// Whether `key` holds a live value.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.store.get(key).is_some_and(|slot| slot.is_live())
    }

    /// The remaining life of the live value at `key`: `None` when there is
    /// none, `Some(None)` when it never expires.
    #[allow(clippy::option_option)] // both layers mean something, as documented
    pub(crate) fn ttl(&self, key: &str) -> Option<Option<Duration>> {
        let slot = self.store.get(key).filter(Slot::is_live)?;
        Some(
            slot.expires_at
                .map(|at| at.saturating_duration_since(Instant::now())),
        )
    }

    /// The keys `matches` accepts that hold a live value.
    pub(crate) fn live_keys(&self, matches: impl Fn(&str) -> bool) -> Vec<String> {
        self.store
            .iter()
            .filter(|(key, slot)| matches(key) && slot.is_live())
            .map(|(key, _)| key.as_str().to_owned())
            .collect()
    }

    /// Adds `member` to the set at `set` (counted: each add wants a remove).
    pub(crate) fn add_to_set(&self, set: &str, member: &str) {
        let mut sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
        *sets
            .entry(set.to_owned())
            .or_default()
            .entry(member.to_owned())
            .or_insert(0) += 1;
    }

    /// Takes one count of `member` out of the set at `set`.
    pub(crate) fn remove_from_set(&self, set: &str, member: &str) {
        let mut sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(members) = sets.get_mut(set)
            && let Some(count) = members.get_mut(member)
        {
            *count -= 1;
            if *count == 0 {
                members.remove(member);
            }
        }
    }

    /// The members of the set at `set`, which is emptied when `take` says so.
    pub(crate) fn members(&self, set: &str, take: bool) -> Vec<String> {
        let mut sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
        let members = if take {
            sets.remove(set).unwrap_or_default()
        } else {
            sets.get(set).cloned().unwrap_or_default()
        };
        members.into_keys().collect()
    }

    /// Takes the lease at `key` for `ttl` with `token`, unless another holds it.
    pub(crate) fn acquire_lease(&self, key: &str, token: &str, ttl: Duration) -> bool {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        leases.retain(|_, (_, until)| *until > now);
        if leases.contains_key(key) {
            return false;
        }
        let until = now
            .checked_add(ttl)
            .unwrap_or(now + Duration::from_secs(1 << 32));
        leases.insert(key.to_owned(), (token.to_owned(), until));
        true
    }

    /// Gives the lease at `key` `ttl` more life if `token` holds it (or, with
    /// no `ttl`, releases it); whether `token` held it.
    pub(crate) fn settle_lease(&self, key: &str, token: &str, ttl: Option<Duration>) -> bool {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match leases.get_mut(key) {
            Some((held, until)) if held == token && *until > now => {
                match ttl {
                    Some(ttl) => {
                        *until = now
                            .checked_add(ttl)
                            .unwrap_or(now + Duration::from_secs(1 << 32));
                    }
                    None => {
                        leases.remove(key);
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// Gives a live entry a new expiry; whether there was one.
    pub(crate) fn touch(&self, key: String, expiry: Expiry) -> bool {
        let result = self.store.entry(key).and_compute_with(|entry| match entry {
            Some(entry) if !entry.value().is_live() => Op::Nop,
            Some(entry) if expiry == Expiry::Now => {
                drop(entry);
                Op::Remove
            }
            Some(entry) => {
                let slot = entry.into_value();
                Op::Put(slot.with(slot.typed.clone(), deadline(expiry)))
            }
            None => Op::Nop,
        });
        matches!(result, CompResult::ReplacedWith(_) | CompResult::Removed(_))
    }

    /// Adds `delta` to the counter at `key`; a missing one is created at 0
    /// with `expiry` when `create` says so.
    pub(crate) fn incr(&self, key: String, delta: i64, expiry: Expiry, create: bool) -> Counted {
        let result = self.store.entry(key).and_try_compute_with(|entry| {
            let (current, expires_at) = match entry {
                Some(entry) if entry.value().is_live() => {
                    let slot = entry.into_value();
                    (
                        codec::parse_counter(&slot.bytes).ok_or(Counted::NotACounter)?,
                        slot.expires_at,
                    )
                }
                _ if !create => return Err(Counted::Missing),
                // Created with a zero timeout: counted from 0, and nothing kept.
                _ if expiry == Expiry::Now => return Err(Counted::Value(delta)),
                _ => (0, deadline(expiry)),
            };
            let next = current.checked_add(delta).ok_or(Counted::NotACounter)?;
            let slot = Slot(Arc::new(Entry {
                bytes: next.to_string().into_bytes().into(),
                typed: None,
                shape: Shape::Counter,
                expires_at,
            }));
            Ok::<_, Counted>(Op::Put(slot))
        });
        self.wrote();
        match result {
            Ok(CompResult::Inserted(entry) | CompResult::ReplacedWith(entry)) => {
                codec::parse_counter(&entry.value().bytes)
                    .map_or(Counted::NotACounter, Counted::Value)
            }
            Ok(_) => Counted::NotACounter,
            Err(counted) => counted,
        }
    }

    /// Removes the entry at `key` if it still holds exactly `bytes`.
    pub(crate) fn remove_if_same(&self, key: String, bytes: &Arc<[u8]>) {
        let bytes = Arc::clone(bytes);
        self.store.entry(key).and_compute_with(|entry| match entry {
            Some(entry) if Arc::ptr_eq(&entry.value().bytes, &bytes) => Op::Remove,
            _ => Op::Nop,
        });
    }

    /// Keeps the decoded value beside the bytes it came from, if they are still stored.
    pub(crate) fn remember_typed(
        &self,
        key: String,
        bytes: &Arc<[u8]>,
        typed: Arc<dyn Any + Send + Sync>,
    ) {
        let bytes = Arc::clone(bytes);
        self.store.entry(key).and_compute_with(|entry| match entry {
            Some(entry) if Arc::ptr_eq(&entry.value().bytes, &bytes) => {
                let slot = entry.into_value();
                Op::Put(slot.with(Some(typed), slot.expires_at))
            }
            _ => Op::Nop,
        });
    }

    /// Removes every entry whose key `owned` accepts.
    pub(crate) fn clear(&self, owned: impl Fn(&str) -> bool) {
        let keys: Vec<Arc<String>> = self
            .store
            .iter()
            .map(|(key, _)| key)
            .filter(|key| owned(key))
            .collect();
        for key in keys {
            self.store.invalidate(key.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Expiry, Memory, SWEEP_EVERY, Slot};

    fn old_entries(memory: &Memory) -> usize {
        memory
            .store
            .iter()
            .filter(|(key, _)| key.starts_with("old"))
            .count()
    }

    #[test]
    fn expired_entries_are_swept_by_later_writes() {
        let memory = Memory::new(1 << 20, "memory");
        let soon = Expiry::After(Duration::from_millis(1));
        for i in 0..100 {
            memory.set(format!("old{i}"), Slot::new(b"old".to_vec(), None, soon));
        }
        std::thread::sleep(Duration::from_millis(20));
        // Expired: no read sees them, but they are still held.
        assert!(memory.get("old7").is_none());
        assert_eq!(old_entries(&memory), 100);
        for i in 0..SWEEP_EVERY {
            let key = format!("new{}", i % 10);
            memory.set(key, Slot::new(b"new".to_vec(), None, Expiry::Never));
        }
        memory.store.run_pending_tasks();
        assert_eq!(old_entries(&memory), 0);
        assert_eq!(memory.store.iter().count(), 10);
    }
}
