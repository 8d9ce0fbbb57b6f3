//! The in-process backend, on moka.
//!
//! An entry keeps the encoded bytes (the same envelope Redis stores, so both
//! backends accept and refuse the same values) and, once it has been written
//! or read as a type, that typed value behind an `Arc`, so a hit is one moka
//! lookup and a clone, with no decoding.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry as MokaExpiry;
use moka::future::Cache as Moka;
use moka::ops::compute::{CompResult, Op};

use super::Expiry;
use crate::codec;

/// A stored entry.
#[derive(Clone)]
pub(crate) struct Slot {
    pub(crate) bytes: Arc<[u8]>,
    pub(crate) typed: Option<Arc<dyn Any + Send + Sync>>,
    expires_at: Option<Instant>,
}

impl Slot {
    pub(crate) fn new(
        bytes: Vec<u8>,
        typed: Option<Arc<dyn Any + Send + Sync>>,
        expiry: Expiry,
    ) -> Self {
        Self {
            bytes: bytes.into(),
            typed,
            expires_at: deadline(expiry),
        }
    }
}

fn deadline(expiry: Expiry) -> Option<Instant> {
    match expiry {
        Expiry::After(d) => Some(Instant::now() + d),
        Expiry::Never => None,
        Expiry::Now => Some(Instant::now()),
    }
}

/// Each entry expires at its own deadline.
struct PerEntry;

impl MokaExpiry<String, Slot> for PerEntry {
    fn expire_after_create(&self, _: &String, slot: &Slot, now: Instant) -> Option<Duration> {
        slot.expires_at.map(|at| at.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &String,
        slot: &Slot,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        slot.expires_at.map(|at| at.saturating_duration_since(now))
    }
}

/// The memory store of one cache.
pub(crate) struct Memory {
    store: Moka<String, Slot>,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("entries", &self.store.entry_count())
            .finish()
    }
}

impl Memory {
    pub(crate) fn new(capacity: u64) -> Self {
        let store = Moka::builder()
            .max_capacity(capacity)
            .expire_after(PerEntry)
            .build();
        Self { store }
    }

    pub(crate) async fn get(&self, key: &str) -> Option<Slot> {
        self.store.get(key).await
    }

    pub(crate) async fn set(&self, key: String, slot: Slot) {
        if slot.expires_at.is_some_and(|at| at <= Instant::now()) {
            self.store.invalidate(&key).await;
        } else {
            self.store.insert(key, slot).await;
        }
    }

    /// Stores `slot` unless the key holds a live entry; whether it stored it.
    pub(crate) async fn add(&self, key: String, slot: Slot) -> bool {
        self.store.entry(key).or_insert(slot).await.is_fresh()
    }

    pub(crate) async fn delete(&self, key: &str) -> bool {
        self.store.remove(key).await.is_some()
    }

    /// Gives a live entry a new expiry; whether there was one.
    pub(crate) async fn touch(&self, key: String, expiry: Expiry) -> bool {
        let result = self
            .store
            .entry(key)
            .and_compute_with(|entry| async move {
                match entry {
                    Some(entry) if expiry == Expiry::Now => {
                        drop(entry);
                        Op::Remove
                    }
                    Some(entry) => {
                        let mut slot = entry.into_value();
                        slot.expires_at = deadline(expiry);
                        Op::Put(slot)
                    }
                    None => Op::Nop,
                }
            })
            .await;
        matches!(result, CompResult::ReplacedWith(_) | CompResult::Removed(_))
    }

    /// Adds `delta` to the counter at `key`, creating it at 0 with `expiry`.
    /// `None` when the entry is not a counter or the sum overflows.
    pub(crate) async fn incr(&self, key: String, delta: i64, expiry: Expiry) -> Option<i64> {
        let result = self
            .store
            .entry(key)
            .and_try_compute_with(|entry| async move {
                let (current, expires_at) = match entry {
                    Some(entry) => {
                        let slot = entry.into_value();
                        (
                            codec::parse_counter(&slot.bytes).ok_or(())?,
                            slot.expires_at,
                        )
                    }
                    None => (0, deadline(expiry)),
                };
                let next = current.checked_add(delta).ok_or(())?;
                let slot = Slot {
                    bytes: next.to_string().into_bytes().into(),
                    typed: None,
                    expires_at,
                };
                Ok::<_, ()>(Op::Put(slot))
            })
            .await
            .ok()?;
        match result {
            CompResult::Inserted(entry) | CompResult::ReplacedWith(entry) => {
                codec::parse_counter(&entry.value().bytes)
            }
            _ => None,
        }
    }

    /// Removes the entry at `key` if it still holds exactly `bytes`.
    pub(crate) async fn remove_if_same(&self, key: String, bytes: &Arc<[u8]>) {
        let bytes = Arc::clone(bytes);
        self.store
            .entry(key)
            .and_compute_with(|entry| async move {
                match entry {
                    Some(entry) if Arc::ptr_eq(&entry.value().bytes, &bytes) => Op::Remove,
                    _ => Op::Nop,
                }
            })
            .await;
    }

    /// Keeps the decoded value beside the bytes it came from, if they are still stored.
    pub(crate) async fn remember_typed(
        &self,
        key: String,
        bytes: &Arc<[u8]>,
        typed: Arc<dyn Any + Send + Sync>,
    ) {
        let bytes = Arc::clone(bytes);
        self.store
            .entry(key)
            .and_compute_with(|entry| async move {
                match entry {
                    Some(entry) if Arc::ptr_eq(&entry.value().bytes, &bytes) => {
                        let mut slot = entry.into_value();
                        slot.typed = Some(typed);
                        Op::Put(slot)
                    }
                    _ => Op::Nop,
                }
            })
            .await;
    }

    /// Removes every entry whose key `owned` accepts.
    pub(crate) async fn clear(&self, owned: impl Fn(&str) -> bool) {
        let keys: Vec<Arc<String>> = self
            .store
            .iter()
            .map(|(key, _)| key)
            .filter(|key| owned(key))
            .collect();
        for key in keys {
            self.store.invalidate(key.as_str()).await;
        }
    }
}
