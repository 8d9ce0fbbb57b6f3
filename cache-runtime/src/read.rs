//! The read path: one lookup of an entry and the versions of its scope (one
//! round trip), and its judgement — a hit, a stale value with what its
//! refresh needs, or a miss with what the key held.

use std::sync::Arc;

use crate::backend::{Expected, Found, Peeked, Typed};
use crate::codec::{self, Cacheable, Freshness, Shape, Stored};
use crate::freshness::{Verdict, verdict};
use crate::guard::Guard;
use crate::inner::Inner;
use crate::scope::Scope;
use crate::{Error, clock};

/// A judgement of stored bytes against the versions of the reader's scope.
pub(crate) enum Judged<T> {
    Hit(T),
    /// A value past its freshness, or picked for an early refresh.
    Stale {
        value: T,
        /// The write id of the stored value, which its refresh expects to replace.
        write_id: u64,
        /// How long ago it went stale (0: picked for an early refresh).
        stale_for_ms: u64,
    },
    /// Nothing usable; what the key held, for a guarded write.
    Miss(Expected),
    /// Bytes that are not a `T` (removed).
    Undecodable,
    /// A value without this cache's signature (removed).
    Forged,
}

/// What a read found: a value, or what the key held instead.
pub(crate) struct Read<T> {
    pub(crate) value: Option<T>,
    /// For a value past its freshness: how long ago it went stale (ms).
    pub(crate) stale_for_ms: Option<u64>,
    pub(crate) expected: Expected,
    /// The current versions of the scope, `None` where a version key is missing.
    pub(crate) versions: Vec<Option<u64>>,
}

/// What a first read saw, handed to the read that follows it so that the
/// store is not asked twice: what it answered, or how it failed.
pub(crate) type Seen = Result<Peeked, Error>;

/// The outcome of a read made to be followed by a write.
pub(crate) enum Lookup<T> {
    Hit(T),
    /// A value past its freshness (or picked for early refresh).
    Stale {
        value: T,
        /// What its refresh must find to store; `None` when the backend failed.
        guard: Option<Guard>,
        /// How long ago it went stale (0: picked for an early refresh).
        stale_for_ms: u64,
    },
    /// A miss, with what the write of the computed value must hold to;
    /// `None` when the backend failed and nothing should be written.
    Miss(Option<Guard>),
}

impl Inner {
    /// Reads the entry at `full` and the versions at `vkeys`, in one round
    /// trip — or takes what a first look or fetch saw (`seen`). A
    /// `direct` read (`get`) takes a counter for a value even when values
    /// are signed; a computation's read does not (see [`Self::judge_found`]).
    pub(crate) async fn read<T: Cacheable>(
        &self,
        full: &str,
        vkeys: &[String],
        early: Option<f64>,
        seen: Option<Seen>,
        direct: bool,
    ) -> Result<Read<T>, Error> {
        let (found, versions) = match seen {
            Some(seen) => seen?,
            None => self.backend.read(full, vkeys).await?,
        };
        let judged = match &found {
            // A typed value kept by the store is judged without decoding, or awaiting.
            Some(found) => match judge_typed(found, &versions, early, self.counts(direct)) {
                Some(judged) => judged,
                None => {
                    self.judge_found(full, found, &versions, early, direct)
                        .await
                }
            },
            None => Judged::Miss(Expected::Absent),
        };
        let (value, expected, stale_for_ms) = match judged {
            Judged::Hit(value) => (Some(value), Expected::Absent, None),
            Judged::Stale {
                value,
                write_id,
                stale_for_ms,
            } => (Some(value), Expected::WriteId(write_id), Some(stale_for_ms)),
            Judged::Miss(expected) => (None, expected, None),
            Judged::Undecodable | Judged::Forged => (None, Expected::Absent, None),
        };
        Ok(Read {
            value,
            stale_for_ms,
            expected,
            versions,
        })
    }

    /// The value at the stored key `full` when an in-process store holds it
    /// fresh and typed, judged at once, without awaiting (counted as a hit);
    /// else what the store answered, for the read that follows (`None`:
    /// Redis must be asked).
    #[inline]
    pub(crate) fn look<T: Cacheable>(
        &self,
        full: &str,
        scope: &Scope,
        early: Option<f64>,
    ) -> Result<T, Option<Peeked>> {
        // Without an in-process store there is nothing to look at: the
        // version keys are built once, by the read that follows.
        if !self.backend.keeps_typed() {
            return Err(None);
        }
        let Ok(vkeys) = scope.version_keys(&self.keys) else {
            return Err(None);
        };
        let peeked = self.backend.peek(full, &vkeys);
        if let Some((Some(found), versions)) = &peeked
            && let Some(Judged::Hit(value)) =
                judge_typed::<T>(found, versions, early, self.counts(false))
        {
            self.counters.hit();
            return Ok(value);
        }
        Err(peeked)
    }

    /// After a [`look`](Self::look) that found no hit (`peeked`: what an
    /// in-process store answered), on a backend that keeps nothing in
    /// process: the value at the stored key `full` when Redis holds it
    /// fresh, in one round trip, judged without side effects and counted as
    /// a hit, so that a hit is served before the miss engine's future is
    /// built. Else what the look or this read saw, for the read that follows
    /// (which judges it again, with its side effects); `None` when nothing
    /// was read (a local tier's read must go through the tier, which it
    /// fills; or the scope's version keys cannot be built).
    pub(crate) async fn fetch<T: Cacheable>(
        &self,
        full: &str,
        scope: &Scope,
        early: Option<f64>,
        peeked: Option<Peeked>,
    ) -> Result<T, Option<Seen>> {
        if let Some(peeked) = peeked {
            return Err(Some(Ok(peeked)));
        }
        if self.backend.keeps_typed() {
            return Err(None);
        }
        let Ok(vkeys) = scope.version_keys(&self.keys) else {
            return Err(None);
        };
        let seen = self.backend.read(full, &vkeys).await;
        if let Ok((Some(found), versions)) = &seen
            && let Judged::Hit(value) =
                self.judge::<T>(full, found.bytes(), versions, early, self.counts(false))
        {
            crate::inner::trace_size(found.bytes().len());
            self.counters.hit();
            return Ok(value);
        }
        Err(Some(seen))
    }

    /// A read of the stored key `full`, to be followed by the write of a
    /// computed value, starting from what a first look or fetch saw when
    /// there is that (`seen`). On a miss the scope's missing version keys
    /// are created, so the value can be stamped.
    /// With `count`, a hit is counted; what a miss becomes (computed here, or
    /// joined to another computation) is counted by the caller.
    pub(crate) async fn read_for_write<T: Cacheable>(
        &self,
        full: &str,
        scope: &Scope,
        count: bool,
        early: Option<f64>,
        seen: Option<Seen>,
    ) -> Result<Lookup<T>, Error> {
        let vkeys = scope.version_keys(&self.keys)?;
        let read = match self.read::<T>(full, &vkeys, early, seen, false).await {
            Ok(read) => read,
            Err(error) => {
                self.backend_failed(error)?;
                return Ok(Lookup::Miss(None));
            }
        };
        let stale = match (read.value, read.stale_for_ms) {
            (Some(value), None) => {
                if count {
                    self.counters.hit();
                }
                return Ok(Lookup::Hit(value));
            }
            (Some(value), Some(stale_for_ms)) => Some((value, stale_for_ms)),
            (None, _) => None,
        };
        let stamps = match Box::pin(self.settle_versions(&vkeys, read.versions)).await {
            Ok(stamps) => stamps,
            Err(error) => {
                self.backend_failed(error)?;
                return Ok(Lookup::Miss(None));
            }
        };
        let guard = Some(Guard {
            full_key: full.to_owned(),
            expected: read.expected,
            stamps,
        });
        Ok(match stale {
            Some((value, stale_for_ms)) => Lookup::Stale {
                value,
                guard,
                stale_for_ms,
            },
            None => Lookup::Miss(guard),
        })
    }

    /// Whether a counter (decimal text, which cannot be signed) is taken for
    /// a value: always without signing; with it, by `direct` reads only, so
    /// that a computed value is never replaced by planted digits.
    fn counts(&self, direct: bool) -> bool {
        direct || !self.format.signs()
    }

    /// Judges what a read found: its typed value when the store kept one
    /// of type `T`, else its bytes. A store that keeps typed values is handed
    /// the decoded one; undecodable or unsigned bytes are counted and
    /// removed (if unchanged).
    pub(crate) async fn judge_found<T: Cacheable>(
        &self,
        full: &str,
        found: &Found,
        versions: &[Option<u64>],
        early: Option<f64>,
        direct: bool,
    ) -> Judged<T> {
        let counters = self.counts(direct);
        if let Some(judged) = judge_typed(found, versions, early, counters) {
            return judged;
        }
        crate::inner::trace_size(found.bytes().len());
        let judged = self.judge(full, found.bytes(), versions, early, counters);
        match &judged {
            Judged::Hit(value) | Judged::Stale { value, .. } if self.backend.keeps_typed() => {
                let typed: Typed = Arc::new(T::clone(value));
                self.backend.remember_typed(full, found, typed);
            }
            Judged::Undecodable | Judged::Forged => {
                if matches!(judged, Judged::Forged) {
                    self.counters.forged(full);
                } else {
                    self.counters.undecodable(full);
                }
                if let Err(error) = Box::pin(self.backend.remove_if_same(full, found)).await {
                    self.counters.backend_error(&error, true);
                }
            }
            _ => {}
        }
        judged
    }
}

/// Judges the typed value the store kept beside the bytes, when it is a
/// `T`: the envelope's stamps and freshness decide, and nothing is decoded.
fn judge_typed<T: Cacheable>(
    found: &Found,
    versions: &[Option<u64>],
    early: Option<f64>,
    counters: bool,
) -> Option<Judged<T>> {
    let (typed, shape) = found.typed()?;
    let value = typed.downcast_ref::<T>()?;
    Some(match shape {
        Shape::Value {
            write_id,
            freshness,
            ..
        } if shape.stamped(found.bytes(), versions) => {
            freshen(value.clone(), write_id, freshness, early)
        }
        Shape::Counter if counters && versions.is_empty() => Judged::Hit(value.clone()),
        Shape::Value { write_id, .. } => Judged::Miss(Expected::WriteId(write_id)),
        _ => Judged::Miss(Expected::NotReplaceable),
    })
}

impl Inner {
    /// Judges the bytes stored at `full` against the reader's versions,
    /// without side effects: the signature, when values are signed, is
    /// checked before anything is decoded.
    fn judge<T: Cacheable>(
        &self,
        full: &str,
        bytes: &[u8],
        versions: &[Option<u64>],
        early: Option<f64>,
        counters: bool,
    ) -> Judged<T> {
        match codec::inspect(bytes) {
            Err(_) => Judged::Undecodable,
            Ok(Stored::Tombstone(meta)) => Judged::Miss(Expected::WriteId(meta.write_id)),
            Ok(Stored::Counter(n)) if counters && versions.is_empty() => {
                codec::decode_counter(n).map_or(Judged::Undecodable, Judged::Hit)
            }
            // Digits where a signed value belongs: planted, so replaced.
            Ok(Stored::Counter(_)) if !counters => Judged::Forged,
            Ok(Stored::Counter(_)) => Judged::Miss(Expected::NotReplaceable),
            Ok(Stored::Value(meta, _)) if !meta.stamped(versions) => {
                Judged::Miss(Expected::WriteId(meta.write_id))
            }
            Ok(Stored::Value(meta, _)) if !self.format.trusts(full, meta.flags, bytes) => {
                Judged::Forged
            }
            Ok(Stored::Value(meta, payload)) => match self
                .format
                .unpack(meta.flags, payload)
                .and_then(|payload| codec::decode_payload(&payload))
            {
                Ok(value) => freshen(value, meta.write_id, meta.freshness, early),
                Err(_) => Judged::Undecodable,
            },
        }
    }
}

/// A decoded value as its freshness makes it (see [`verdict`]).
fn freshen<T>(value: T, write_id: u64, freshness: Freshness, early: Option<f64>) -> Judged<T> {
    match verdict(freshness, early, clock::now_ms, clock::draw) {
        Verdict::Fresh => Judged::Hit(value),
        Verdict::Stale { for_ms } => Judged::Stale {
            value,
            write_id,
            stale_for_ms: for_ms,
        },
    }
}
