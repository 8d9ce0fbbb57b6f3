//! Invalidations Redis did not take: kept in this process, one per key
//! (coalesced), bounded, and retried in the order they were issued until
//! Redis takes them (by `invalidations.rs`, which sends them); meanwhile
//! this process reads as if they had landed.
//!
//! - A pending tombstone makes a read of its key see a tombstone: a miss,
//!   and the computed value is not stored (its guarded write expects a
//!   tombstone that Redis does not hold).
//! - A pending bump makes a read see the version key at [`MASKED`]: every
//!   stored entry of the namespace or tag is a miss, and a computed value is
//!   stored stamped with `MASKED`, already stale once the bump lands.
//! - A pending drop of a tag's members (entries tagged from their value)
//!   makes every read a miss: which keys are members only Redis knows.
//! - Past the bound, the entries give way to clearing the key spaces they
//!   came from, and every read is a miss until that is done.
//!
//! A later write of a key by this process that Redis takes supersedes its
//! pending tombstone, so the retried tombstone never removes a newer value.
//!
//! What landed is remembered a while (`journal.rs`): when the server turns
//! out to have restarted — from an older snapshot, or a replica that missed
//! them promoted — those are kept again at once and sent again. Past the
//! journal's bound within its window, the key spaces are cleared instead.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Mutex, PoisonError};

use super::journal::Journal;
use super::{Expiry, Found};
use crate::Error;
use crate::codec;
use crate::observe::meters;
use crate::scope::VersionKeys;

/// The version a read sees for a version key whose bump is pending: no
/// entry is stamped with it before the bump (versions start at a random
/// 32-bit number and grow by one per bump).
pub(crate) const MASKED: u64 = u64::MAX;

/// The invalidations kept by default before the key spaces are cleared instead.
pub(crate) const DEFAULT_BOUND: usize = 200_000;

/// What an invalidation does to Redis.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// A tombstone at the key, for this long.
    Tombstone(Expiry),
    /// One more version at the key.
    Bump,
    /// Tombstones over the keys in the set at the key (then removed) and in
    /// the set `keep` (computations under way), for `expiry`.
    Members { keep: String, expiry: Expiry },
}

/// What became of an invalidation.
#[derive(Debug)]
pub(crate) enum Fate {
    /// Redis took it (a bump: the new version; else 0).
    Applied(u64),
    /// Redis did not take it (the error): it is kept and retried.
    Queued(Error),
}

struct Entry {
    seq: u64,
    action: Action,
    /// The `SCAN` pattern of the key space it came from.
    space: String,
    /// The tombstone it writes, and that reads see meanwhile: one per
    /// invalidation, so that the callers that read it share one flight,
    /// and a computation that read an older one cannot store over it.
    tombstone: Vec<u8>,
}

impl State {
    /// Takes the entry of `target` away.
    fn remove(&mut self, target: &str) {
        if let Some(entry) = self.entries.remove(target) {
            self.members -= usize::from(matches!(entry.action, Action::Members { .. }));
        }
    }
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    next_seq: u64,
    /// Past the bound: the key spaces (`SCAN` patterns) to clear instead.
    overflow: BTreeSet<String>,
    /// Pending drops of a tag's members: while any waits, every read sees
    /// `everything` (as while overflowed).
    members: usize,
    /// The tombstone every read sees while overflowed or while members wait.
    everything: Vec<u8>,
    /// Whether a task is retrying.
    retrying: bool,
}

/// An invalidation to retry.
pub(super) struct Due {
    pub(super) target: String,
    pub(super) seq: u64,
    pub(super) action: Action,
    pub(super) space: String,
    pub(super) tombstone: Vec<u8>,
}

/// The invalidations waiting for Redis, and their figures.
pub(crate) struct Pending {
    state: Mutex<State>,
    journal: Mutex<Journal<Action>>,
    /// Entries (plus one while overflowed): read without the lock by every read.
    count: AtomicUsize,
    bound: usize,
    /// How many kept invalidations left the queue (landed or superseded).
    landings: AtomicU64,
    pub(crate) queued: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) applied_late: AtomicU64,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("count", &self.count.load(Relaxed))
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

impl Pending {
    pub(crate) fn new(bound: usize) -> Self {
        Self {
            state: Mutex::new(State {
                everything: codec::tombstone(),
                ..State::default()
            }),
            journal: Mutex::new(Journal::default()),
            count: AtomicUsize::new(0),
            bound: bound.max(1),
            landings: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            applied_late: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether anything is pending: one atomic load, on every read.
    #[inline]
    pub(crate) fn any(&self) -> bool {
        self.count.load(SeqCst) != 0
    }

    /// What a read must note before it is sent (`None`: nothing waits, so
    /// nothing to mask), for [`mask`](Self::mask).
    #[inline]
    pub(crate) fn watch(&self) -> Option<u64> {
        self.any().then(|| self.landings.load(SeqCst))
    }

    /// The sequence number of the invalidation of `target` waiting, if one is.
    pub(super) fn waiting(&self, target: &str) -> Option<u64> {
        self.state().entries.get(target).map(|e| e.seq)
    }

    /// No task retries (none could be started).
    pub(super) fn not_retrying(&self) {
        self.state().retrying = false;
    }

    /// How many invalidations wait (a cleared key space counts as one).
    pub(crate) fn len(&self) -> usize {
        self.count.load(SeqCst)
    }

    /// Counts what waits now, after `n` more of the counter `name`.
    fn recount(&self, state: &State, name: &'static str, n: u64) {
        let waiting = state.entries.len() + usize::from(!state.overflow.is_empty());
        self.count.store(waiting, SeqCst);
        meters::pending(name, n, waiting);
    }

    /// Keeps `action` on `target` (of the key space scanned by `space`) for
    /// a retry, in place of any older one on the same target; whether a
    /// retrying task must be started.
    pub(super) fn keep(
        &self,
        space: &str,
        target: String,
        action: Action,
        tombstone: Vec<u8>,
    ) -> bool {
        let mut state = self.state();
        self.queued.fetch_add(1, Relaxed);
        if state.overflow.contains(space) {
            // Its key space will be cleared: that covers it.
        } else if state.entries.len() >= self.bound && !state.entries.contains_key(&target) {
            let spaces: Vec<String> = state.entries.drain().map(|(_, e)| e.space).collect();
            state.overflow.extend(spaces);
            state.overflow.insert(space.to_owned());
            state.members = 0;
            state.everything = codec::tombstone();
            tracing::error!(
                bound = self.bound,
                "too many invalidations wait for Redis: its cache entries will be cleared once it answers, and none is served meanwhile"
            );
        } else {
            let seq = state.next_seq;
            state.next_seq += 1;
            let members = matches!(action, Action::Members { .. });
            if members {
                state.everything = codec::tombstone();
            }
            let entry = Entry {
                seq,
                action,
                space: space.to_owned(),
                tombstone,
            };
            state.remove(&target);
            state.members += usize::from(members);
            state.entries.insert(target, entry);
        }
        self.recount(&state, "cachette_invalidations_queued_total", 1);
        let start = !state.retrying;
        state.retrying = true;
        start
    }

    /// Forgets the pending tombstone of `key`: a later write of it reached Redis.
    pub(crate) fn superseded(&self, key: &str) {
        if !self.any() {
            return;
        }
        let mut state = self.state();
        if matches!(
            state.entries.get(key),
            Some(Entry {
                action: Action::Tombstone(_),
                ..
            })
        ) {
            state.remove(key);
            self.landings.fetch_add(1, SeqCst);
            self.recount(&state, "", 0);
        }
    }

    /// Makes a read of `key` and `vkeys` see what is pending. `watched` is
    /// what [`watch`](Self::watch) said before the read was sent: when an
    /// invalidation that waited then has landed since, the read may have
    /// been answered before it landed, and is a miss.
    pub(crate) fn mask(
        &self,
        key: &str,
        found: &mut Option<Found>,
        vkeys: &VersionKeys,
        versions: &mut [Option<u64>],
        watched: Option<u64>,
    ) {
        let state = self.state();
        let landed = watched.is_some_and(|before| self.landings.load(SeqCst) != before);
        if landed || !state.overflow.is_empty() || state.members > 0 {
            *found = Some(Found::Bytes(state.everything.clone()));
        } else if let Some(Entry {
            action: Action::Tombstone(_),
            tombstone,
            ..
        }) = state.entries.get(key)
        {
            *found = Some(Found::Bytes(tombstone.clone()));
        }
        for (vkey, version) in vkeys.iter().zip(versions.iter_mut()) {
            if let Some(Entry {
                action: Action::Bump,
                ..
            }) = state.entries.get(vkey)
            {
                *version = Some(MASKED);
            }
        }
    }

    /// The targets to retry, oldest first, or the key spaces to clear.
    pub(super) fn due(&self) -> (Vec<String>, Vec<Due>) {
        let state = self.state();
        let mut entries: Vec<Due> = state
            .entries
            .iter()
            .map(|(target, e)| Due {
                target: target.clone(),
                seq: e.seq,
                action: e.action.clone(),
                space: e.space.clone(),
                tombstone: e.tombstone.clone(),
            })
            .collect();
        entries.sort_unstable_by_key(|due| due.seq);
        (state.overflow.iter().cloned().collect(), entries)
    }

    /// Takes away what landed (`late`: by a retry): a cleared key space, or
    /// `target` unless it was issued again since (`seq`).
    pub(super) fn landed(&self, space: Option<&str>, target: Option<(&str, u64)>, late: bool) {
        let mut state = self.state();
        if let Some(space) = space {
            state.overflow.remove(space);
        }
        if let Some((target, seq)) = target
            && state.entries.get(target).is_some_and(|e| e.seq == seq)
        {
            state.remove(target);
        }
        self.landings.fetch_add(1, SeqCst);
        if late {
            self.applied_late.fetch_add(1, Relaxed);
        }
        self.recount(
            &state,
            "cachette_invalidations_applied_late_total",
            u64::from(late),
        );
    }

    /// Whether some invalidation that landed lately is remembered.
    pub(super) fn remembers(&self) -> bool {
        self.journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remembers()
    }

    /// Remembers an invalidation that landed, to send again after a restart.
    pub(super) fn remember(&self, space: &str, target: &str, action: &Action) {
        self.journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remember(space, target, action);
    }

    /// The server restarted: what landed lately is kept again (read as
    /// pending from now on), or, when some of it was forgotten, the key
    /// spaces are to be cleared; whether a retrying task must be started.
    pub(super) fn restarted(&self) -> bool {
        let recent = self
            .journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recent();
        match recent {
            Ok(recent) => recent
                .into_iter()
                .fold(false, |start, (space, target, action)| {
                    self.keep(&space, target, action, codec::tombstone()) || start
                }),
            Err(spaces) => {
                let mut state = self.state();
                state.overflow.extend(spaces);
                self.recount(&state, "", 0);
                let start = !state.retrying && !state.overflow.is_empty();
                state.retrying |= start;
                start
            }
        }
    }

    /// Counts `n` retries.
    pub(super) fn retry(&self, n: u64) {
        self.retried.fetch_add(n, Relaxed);
        meters::pending("cachette_invalidations_retried_total", n, self.len());
    }

    /// Ends the retrying task when nothing is left; whether it ended.
    pub(super) fn done(&self) -> bool {
        let mut state = self.state();
        if state.entries.is_empty() && state.overflow.is_empty() {
            state.retrying = false;
            return true;
        }
        false
    }
}
