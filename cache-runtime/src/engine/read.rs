//! The read path: one lookup of an entry and the versions of its scope (one
//! round trip), and its judgement — a hit, a stale value with what its
//! refresh needs, or a miss with what the key held.

use std::sync::Arc;

use crate::backend::{Answer, Expected, Found, Typed};
use crate::codec::{self, Cacheable, Freshness, Shape, Stored};
use crate::engine::Engine;
use crate::engine::freshness::{REFRESH, Verdict, verdict};
use crate::engine::guard::Guard;
use crate::scope::{Scope, VersionKeys};
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

/// What the first read of a call answered past an in-process store: a
/// fresh value from Redis, or what it saw, handed to the read that follows
/// so that the store is not asked (nor the same bytes judged, nor the
/// version keys built) twice.
pub(crate) enum First<T> {
    /// A fresh value, counted as a hit.
    Hit(T),
    /// Anything else.
    Saw(Sight<T>),
}

/// What a first read saw, short of a fresh value.
pub(crate) struct Sight<T> {
    /// The scope's version keys; `None` when they cannot be built (the read
    /// that follows reports why).
    vkeys: Option<VersionKeys>,
    seen: Seen<T>,
}

/// What the store said to a first read. Small, since a hit's call carries
/// it: the answers that are not a hit are boxed (a miss or a stale value
/// goes on to compute).
enum Seen<T> {
    /// The entry and versions, judged (without side effects) where the
    /// first read judged them.
    Answered(Box<(Answer, Option<Judged<T>>)>),
    /// The read failed (it is not tried again: one deadline per call).
    Failed(Box<Error>),
    /// Nothing read yet; `past_tier`: a local tier was just asked and did
    /// not hold the entry, so the read that follows goes to Redis at once.
    Unread { past_tier: bool },
}

impl<T> Sight<T> {
    /// Nothing seen: the read that follows reads.
    pub(crate) fn none() -> Self {
        Self {
            vkeys: None,
            seen: Seen::Unread { past_tier: false },
        }
    }
}

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
    /// The backend failed (or, `skipped`, skipped the read) and the cache
    /// fails open: a miss with nothing to write, computed without the cache.
    Failed {
        skipped: bool,
    },
}

impl Engine {
    /// Reads the entry at `full` and the versions at `vkeys`, in one round
    /// trip, and judges them once — or takes what a first read saw
    /// (`seen`). A `direct` read (`get`) takes a counter for a value even
    /// when values are signed; a computation's read does not (see
    /// [`Self::judge_found`]).
    async fn read<T: Cacheable>(
        &self,
        full: &str,
        vkeys: &VersionKeys,
        early: Option<f64>,
        seen: Seen<T>,
        direct: bool,
    ) -> Result<Read<T>, Error> {
        let ((found, versions), judged) = match seen {
            Seen::Answered(answered) => *answered,
            Seen::Failed(error) => return Err(*error),
            Seen::Unread { past_tier } => (self.backend.read(full, vkeys, past_tier).await?, None),
        };
        let judged = match (&found, judged) {
            (None, _) => Judged::Miss(Expected::Absent),
            // Judged from the typed value the store kept: nothing was decoded.
            (Some(found), Some(judged)) if found.typed().is_some() => judged,
            (Some(found), Some(judged)) => {
                crate::observe::trace_size(found.bytes().len());
                self.settle(full, found, judged).await
            }
            (Some(found), None) => {
                self.judge_found(full, found, &versions, early, direct)
                    .await
            }
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

    /// The direct API's read (`get`): the value at the stored key `full`
    /// when it is fresh.
    pub(crate) async fn read_direct<T: Cacheable>(
        &self,
        full: &str,
        vkeys: &VersionKeys,
    ) -> Result<Option<T>, Error> {
        let unread = Seen::Unread { past_tier: false };
        let read = self.read::<T>(full, vkeys, None, unread, true).await?;
        // A value past its freshness is kept only for the computations that refresh it.
        Ok(read.value.filter(|_| read.stale_for_ms.is_none()))
    }

    /// [`look`](Self::look) at the direct API's `key` when the memory store
    /// or a local tier may hold its value, its hit only: `None` at once
    /// without such a store, or on anything but a fresh typed value (the
    /// caller then reads the awaited way, which looks again).
    #[cfg(feature = "http")]
    pub(crate) fn look_in_process<T: Cacheable>(
        &self,
        key: &str,
        scope: &Scope,
        early: Option<f64>,
    ) -> Option<T> {
        if !self.backend.keeps_typed() {
            return None;
        }
        self.look(&self.keys.stored(key), scope, early).ok()
    }

    /// The first read of a call, its in-process part: the value at the
    /// stored key `full` when the memory store or a local tier holds it
    /// fresh and typed, judged at once, without awaiting (counted as a hit);
    /// else what the store answered, for [`fetch`](Self::fetch) and the
    /// reads that follow (without an in-process store: nothing yet, Redis
    /// is to be asked).
    // On an in-process hit's path: inlined, it costs the hit no call (hit_loop).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub(crate) fn look<T: Cacheable>(
        &self,
        full: &str,
        scope: &Scope,
        early: Option<f64>,
    ) -> Result<T, Sight<T>> {
        let Ok(vkeys) = scope.version_keys(&self.keys) else {
            return Err(Sight::none());
        };
        let seen = if self.backend.keeps_typed() {
            match self.backend.peek(full, &vkeys) {
                Some((Some(found), versions)) => {
                    let judged =
                        judge_typed::<T>(&found, &versions, early, self.takes_digits(false));
                    if let Some(Judged::Hit(value)) = judged {
                        self.counters().hit();
                        return Ok(value);
                    }
                    Seen::Answered(Box::new(((Some(found), versions), judged)))
                }
                Some(answer) => Seen::Answered(Box::new((answer, None))),
                None => Seen::Unread { past_tier: true },
            }
        } else {
            Seen::Unread { past_tier: false }
        };
        Err(Sight {
            vkeys: Some(vkeys),
            seen,
        })
    }

    /// The first read of a call, after a [`look`](Self::look) without a
    /// hit: without an in-process store, one Redis round trip judged
    /// without side effects, so that a Redis hit is served before the miss
    /// engine's future is built (counted as a hit here, and only here). Else
    /// what the look or this read saw.
    pub(crate) async fn fetch<T: Cacheable>(
        &self,
        full: &str,
        early: Option<f64>,
        sight: Sight<T>,
    ) -> First<T> {
        let vkeys = match sight {
            Sight {
                vkeys: Some(vkeys),
                seen: Seen::Unread { past_tier: false },
            } if !self.backend.keeps_typed() => vkeys,
            sight => return First::Saw(sight),
        };
        let seen = match self.backend.read(full, &vkeys, false).await {
            Ok((Some(found), versions)) => {
                let judged = self.judge::<T>(
                    full,
                    found.bytes(),
                    &versions,
                    early,
                    self.takes_digits(false),
                );
                if let Judged::Hit(value) = judged {
                    crate::observe::trace_size(found.bytes().len());
                    self.counters().hit();
                    return First::Hit(value);
                }
                Seen::Answered(Box::new(((Some(found), versions), Some(judged))))
            }
            Ok(answer) => Seen::Answered(Box::new((answer, None))),
            Err(error) => Seen::Failed(Box::new(error)),
        };
        First::Saw(Sight {
            vkeys: Some(vkeys),
            seen,
        })
    }

    /// A read of the stored key `full`, to be followed by the write of a
    /// computed value, starting from what a first read saw. On a miss the
    /// scope's missing version keys are created, so the value can be
    /// stamped. A hit is not counted: what the caller makes of it is.
    pub(crate) async fn read_for_write<T: Cacheable>(
        &self,
        full: &str,
        scope: &Scope,
        early: Option<f64>,
        sight: Sight<T>,
    ) -> Result<Lookup<T>, Error> {
        let vkeys = match sight.vkeys {
            Some(vkeys) => vkeys,
            None => scope.version_keys(&self.keys)?,
        };
        let read = match self.read::<T>(full, &vkeys, early, sight.seen, false).await {
            Ok(read) => read,
            Err(error) => {
                let skipped = error.is_skip();
                self.backend_failed(error)?;
                return Ok(Lookup::Failed { skipped });
            }
        };
        let stale = match (read.value, read.stale_for_ms) {
            (Some(value), None) => return Ok(Lookup::Hit(value)),
            (Some(value), Some(stale_for_ms)) => Some((value, stale_for_ms)),
            (None, _) => None,
        };
        let stamps = match Box::pin(self.settle_versions(&vkeys, read.versions)).await {
            Ok(stamps) => stamps,
            Err(error) => {
                let skipped = error.is_skip();
                self.backend_failed(error)?;
                return Ok(Lookup::Failed { skipped });
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
    fn takes_digits(&self, direct: bool) -> bool {
        direct || !self.seal.signs()
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
        let digits = self.takes_digits(direct);
        if let Some(judged) = judge_typed(found, versions, early, digits) {
            return judged;
        }
        crate::observe::trace_size(found.bytes().len());
        let judged = self.judge(full, found.bytes(), versions, early, digits);
        self.settle(full, found, judged).await
    }

    /// What a judgement of the bytes `found` at `full` leaves behind: a
    /// store that keeps typed values is handed the decoded one; undecodable
    /// or unsigned bytes are counted and removed (if unchanged).
    async fn settle<T: Cacheable>(
        &self,
        full: &str,
        found: &Found,
        judged: Judged<T>,
    ) -> Judged<T> {
        match &judged {
            Judged::Hit(value) | Judged::Stale { value, .. } if self.backend.keeps_typed() => {
                let typed: Typed = Arc::new(T::clone(value));
                self.backend.remember_typed(full, found, typed);
            }
            Judged::Undecodable | Judged::Forged => {
                if matches!(judged, Judged::Forged) {
                    self.counters().forged(full);
                } else {
                    self.counters().undecodable(full);
                }
                if let Err(error) = Box::pin(self.backend.remove_if_same(full, found)).await {
                    self.failed_aside(&error);
                }
            }
            _ => {}
        }
        judged
    }
}

/// Judges the typed value the store kept beside the bytes, when it is a
/// `T`: the envelope's stamps and freshness decide, and nothing is decoded.
// On an in-process hit's path: inlined, it costs the hit no call (hit_loop).
#[allow(clippy::inline_always)]
#[inline(always)]
fn judge_typed<T: Cacheable>(
    found: &Found,
    versions: &[Option<u64>],
    early: Option<f64>,
    digits: bool,
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
        // A refresh replaces a counter: judged from its bytes, which it must still find.
        Shape::Counter if early == Some(REFRESH) => return None,
        Shape::Counter if digits && versions.is_empty() => Judged::Hit(value.clone()),
        Shape::Value { write_id, .. } => Judged::Miss(Expected::WriteId(write_id)),
        _ => Judged::Miss(Expected::NotReplaceable),
    })
}

impl Engine {
    /// Judges the bytes stored at `full` against the reader's versions,
    /// without side effects: the signature, when values are signed, is
    /// checked before anything is decoded.
    fn judge<T: Cacheable>(
        &self,
        full: &str,
        bytes: &[u8],
        versions: &[Option<u64>],
        early: Option<f64>,
        digits: bool,
    ) -> Judged<T> {
        match codec::parse(bytes) {
            Err(_) => Judged::Undecodable,
            Ok(Stored::Tombstone(meta)) => Judged::Miss(Expected::WriteId(meta.write_id)),
            Ok(Stored::Counter(n)) if early == Some(REFRESH) && versions.is_empty() => {
                Judged::Miss(Expected::Digits(n))
            }
            Ok(Stored::Counter(n)) if digits && versions.is_empty() => {
                codec::decode_counter(n).map_or(Judged::Undecodable, Judged::Hit)
            }
            // Digits where a signed value belongs: planted, so replaced.
            Ok(Stored::Counter(_)) if !digits => Judged::Forged,
            Ok(Stored::Counter(_)) => Judged::Miss(Expected::NotReplaceable),
            Ok(Stored::Value(meta, _)) if !meta.stamped(versions) => {
                Judged::Miss(Expected::WriteId(meta.write_id))
            }
            Ok(Stored::Value(meta, _)) if !self.seal.trusts(full, meta.flags, bytes) => {
                Judged::Forged
            }
            Ok(Stored::Value(meta, payload)) => match self
                .seal
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
// On an in-process hit's path: inlined, it costs the hit no call (hit_loop).
#[allow(clippy::inline_always)]
#[inline(always)]
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
