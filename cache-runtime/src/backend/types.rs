//! What the seam speaks in: when entries expire, what a guarded write
//! expects, what a counter came to, and what a read found.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use super::memory::Slot;
use crate::codec::Shape;

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
    /// The key held this counter, which a refresh on purpose replaces (an
    /// integer computed without stamps or freshness is stored as one).
    Digits(i64),
}

/// One write of a batch of guarded writes: the bytes (and, in memory, the
/// typed value) to store at `key` if it still holds `expected`.
pub(crate) struct GuardedWrite {
    pub(crate) key: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) typed: Option<Typed>,
    pub(crate) expiry: Expiry,
    pub(crate) expected: Expected,
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

    /// The typed value stored with the bytes, if any, and what the bytes hold.
    #[inline]
    pub(crate) fn typed(&self) -> Option<(&Typed, Shape)> {
        match self {
            Self::Slot(slot) => Some((slot.typed.as_ref()?, slot.shape)),
            Self::Bytes(_) => None,
        }
    }
}

/// What a store answered for one read: the entry, if any, and the
/// versions of the reader's scope (`None` where a version key is missing).
pub(crate) type Answer = (Option<Found>, Vec<Option<u64>>);

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
