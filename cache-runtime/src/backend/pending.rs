//! Invalidations Redis did not take: kept in this process, one per key
//! (coalesced), bounded, and retried in the order they were issued until
//! Redis takes them; meanwhile this process reads as if they had landed.
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
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use super::journal::Journal;
use super::local::Local;
use super::server::RedisBackend;
use super::{Expiry, Found};
use crate::Error;
use crate::codec;
use crate::observe::meters;
use crate::scope::VersionKeys;

/// The version a read sees for a version key whose bump is pending: no
/// entry is stamped with it before the bump (versions start at a random
/// 32-bit number and grow by one per bump).
pub(crate) const MASKED: u64 = u64::MAX;

/// How many kept invalidations a retry sends at once.
const RETRY_BATCH: usize = 256;

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
struct Due {
    target: String,
    seq: u64,
    action: Action,
    space: String,
    tombstone: Vec<u8>,
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
    fn keep(&self, space: &str, target: String, action: Action, tombstone: Vec<u8>) -> bool {
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
    fn due(&self) -> (Vec<String>, Vec<Due>) {
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
    fn landed(&self, space: Option<&str>, target: Option<(&str, u64)>, late: bool) {
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
    fn remembers(&self) -> bool {
        self.journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remembers()
    }

    /// Remembers an invalidation that landed, to send again after a restart.
    fn remember(&self, space: &str, target: &str, action: &Action) {
        self.journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remember(space, target, action);
    }

    /// The server restarted: what landed lately is kept again (read as
    /// pending from now on), or, when some of it was forgotten, the key
    /// spaces are to be cleared; whether a retrying task must be started.
    fn restarted(&self) -> bool {
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
    fn retry(&self, n: u64) {
        self.retried.fetch_add(n, Relaxed);
        meters::pending("cachette_invalidations_retried_total", n, self.len());
    }

    /// Ends the retrying task when nothing is left; whether it ended.
    fn done(&self) -> bool {
        let mut state = self.state();
        if state.entries.is_empty() && state.overflow.is_empty() {
            state.retrying = false;
            return true;
        }
        false
    }
}

/// The invalidations of one Redis (and its local tier): they are tried
/// once, and what fails is kept and retried in a task of its own.
pub(crate) struct Invalidations {
    pub(crate) pending: Arc<Pending>,
    /// Whether a task checks the server every second (`watch`).
    watching: Arc<std::sync::atomic::AtomicBool>,
}

impl Invalidations {
    pub(crate) fn new(bound: usize) -> Self {
        Self {
            pending: Arc::new(Pending::new(bound)),
            watching: Arc::default(),
        }
    }

    /// Applies `action` to `target` now, or keeps it for a retry; kept
    /// without a try unless `try_now` (an invalidation of the same call
    /// before it was not taken: Redis is not waited on twice).
    pub(crate) async fn apply(
        &self,
        redis: &Arc<RedisBackend>,
        tier: Option<&Arc<Local>>,
        space: &str,
        (target, action): (String, Action),
        try_now: bool,
    ) -> Fate {
        let tombstone = codec::tombstone();
        let result = if try_now {
            run(redis, &target, &action, &tombstone).await
        } else {
            Err(Error::Unavailable {
                reason: "kept behind an invalidation Redis did not take".to_owned(),
            })
        };
        if let Some(tier) = tier {
            forget(tier, &target, &action, result.as_ref().ok());
        }
        match result {
            Ok(Ran { applied, .. }) => {
                self.pending.remember(space, &target, &action);
                // A newer invalidation of the same target supersedes an older one still waiting.
                if self.pending.any() {
                    let seq = self.pending.state().entries.get(&target).map(|e| e.seq);
                    if let Some(seq) = seq {
                        self.pending.landed(None, Some((&target, seq)), false);
                    }
                }
                Fate::Applied(applied)
            }
            Err(error) => {
                if self.pending.keep(space, target, action, tombstone) {
                    spawn_retries(
                        Arc::downgrade(&self.pending),
                        Arc::clone(redis),
                        tier.map(Arc::downgrade),
                    );
                }
                Fate::Queued(error)
            }
        }
    }
}

impl Invalidations {
    /// While an invalidation that landed lately is remembered (or one
    /// waits), pings `redis` (the one reads go to) every second, so that a
    /// restart is noticed (on the new connection the ping makes) and what
    /// was invalidated is sent again, even by a process that makes no call
    /// meanwhile.
    pub(crate) fn watch(&self, redis: &Arc<RedisBackend>) {
        if self.watching.swap(true, SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.watching.store(false, SeqCst);
            return;
        };
        let redis = Arc::downgrade(redis);
        let pending = Arc::downgrade(&self.pending);
        let watching = Arc::clone(&self.watching);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let (Some(redis), Some(pending)) = (redis.upgrade(), pending.upgrade()) else {
                    return;
                };
                if !pending.remembers() && !pending.any() {
                    break;
                }
                let _ = redis.ping().await;
            }
            watching.store(false, SeqCst);
        });
    }

    /// What runs when `redis` (the one reads go to) turns out to have
    /// restarted: the invalidations that landed lately are kept again and
    /// sent again through `sender`.
    pub(crate) fn on_restart(
        &self,
        sender: &Arc<RedisBackend>,
        tier: Option<&Arc<Local>>,
    ) -> crate::backend::server::Hook {
        let pending = Arc::downgrade(&self.pending);
        let sender = Arc::downgrade(sender);
        let tier = tier.map(Arc::downgrade);
        Box::new(move || {
            let (Some(queue), Some(sender)) = (pending.upgrade(), sender.upgrade()) else {
                return;
            };
            if queue.restarted() {
                spawn_retries(Arc::downgrade(&queue), sender, tier.clone());
            }
        })
    }
}

/// Makes the local tier forget what an invalidation of `target` changed
/// (`ran`: what it did, when Redis took it).
fn forget(tier: &Local, target: &str, action: &Action, ran: Option<&Ran>) {
    match (action, ran) {
        // The members it tombstoned, and only those.
        (Action::Members { .. }, Some(ran)) => tier.forget(&ran.tombstoned),
        // Not taken, or not known how far it went: everything.
        (Action::Members { .. }, None) => tier.flush(),
        (Action::Tombstone(_) | Action::Bump, _) => tier.forget(&[target.to_owned()]),
    }
}

/// What an invalidation Redis took did.
struct Ran {
    /// What it reports (`Fate::Applied`): a bump's answer, how many
    /// members it tombstoned, 0 for a tombstone.
    applied: u64,
    /// The keys it tombstoned beside its target (the members of a set).
    tombstoned: Vec<String>,
}

/// Sends one invalidation to Redis, with `tombstone` where it writes one.
async fn run(
    redis: &RedisBackend,
    target: &str,
    action: &Action,
    tombstone: &[u8],
) -> Result<Ran, Error> {
    let (applied, tombstoned) = match action {
        Action::Tombstone(expiry) => {
            redis.tombstone(target, tombstone, *expiry).await?;
            (0, Vec::new())
        }
        Action::Bump => (
            redis.bump(target, codec::fresh_version()).await?,
            Vec::new(),
        ),
        Action::Members { keep, expiry } => {
            let tombstoned = redis
                .tombstone_sets(target, keep, tombstone, *expiry)
                .await?;
            (tombstoned.len() as u64, tombstoned)
        }
    };
    Ok(Ran {
        applied,
        tombstoned,
    })
}

/// Retries what is pending, oldest first, with a growing pause between
/// rounds (50 ms to 1 s), until nothing is left or the cache is gone.
fn spawn_retries(pending: Weak<Pending>, redis: Arc<RedisBackend>, tier: Option<Weak<Local>>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // No runtime to retry on: the next invalidation tries again.
        if let Some(pending) = pending.upgrade() {
            pending.state().retrying = false;
        }
        return;
    };
    runtime.spawn(async move {
        let mut pause = Duration::from_millis(50);
        loop {
            tokio::time::sleep(pause).await;
            let Some(queue) = pending.upgrade() else {
                return;
            };
            let (spaces, entries) = queue.due();
            let mut failed = false;
            for space in spaces {
                queue.retry(1);
                if redis.clear(&space).await.is_ok() {
                    if let Some(tier) = tier.as_ref().and_then(Weak::upgrade) {
                        tier.flush();
                    }
                    queue.landed(Some(&space), None, true);
                } else {
                    failed = true;
                    break;
                }
            }
            if !failed {
                // One per target: those of different targets may go out together.
                for batch in entries.chunks(RETRY_BATCH) {
                    queue.retry(batch.len() as u64);
                    let sent = batch
                        .iter()
                        .map(|due| run(&redis, &due.target, &due.action, &due.tombstone));
                    let results = futures_util::future::join_all(sent).await;
                    let tier = tier.as_ref().and_then(Weak::upgrade);
                    for (due, result) in batch.iter().zip(results) {
                        let Ok(ran) = result else {
                            failed = true;
                            continue;
                        };
                        if let Some(tier) = &tier {
                            forget(tier, &due.target, &due.action, Some(&ran));
                        }
                        queue.remember(&due.space, &due.target, &due.action);
                        queue.landed(None, Some((&due.target, due.seq)), true);
                    }
                    if failed {
                        break;
                    }
                }
            }
            if queue.done() {
                return;
            }
            pause = if failed {
                (pause * 2).min(Duration::from_secs(1))
            } else {
                Duration::from_millis(50)
            };
        }
    });
}
