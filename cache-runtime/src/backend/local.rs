//! The local tier: hot entries of a Redis cache kept in this process, and
//! kept coherent by Redis itself.
//!
//! A dedicated RESP3 connection asks for `CLIENT TRACKING ON BCAST` on the
//! cache's prefixes (its entries and its version keys): Redis then tells it
//! of every key that changes, whoever changed it, and the tier forgets that
//! key. The races the protocol brings are closed here:
//!
//! - a read from Redis leaves a placeholder first; an invalidation that
//!   arrives before the answer removes it, and the answer is then not kept;
//! - while the tracking connection is down, the tier is empty and bypassed,
//!   and it is emptied again when tracking resumes;
//! - this process's own writes forget the key at once, before Redis tells;
//! - a handle under another prefix (`Cache::with_prefix`) adds its prefixes
//!   to the tracked ones: the tier is emptied and bypassed until tracking
//!   has restarted with them, so nothing it keeps goes untracked.
//!
//! Hits need every version key of their scope known locally too, so a hit
//! in a namespace or with tags sends no command at all.

use std::collections::HashMap;
use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::SeqCst,
};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use deadpool_redis::redis::{self, AsyncConnectionConfig, PushKind, Value};

use super::breaker::{Health, Tracking};
use super::memory::{Memory, Slot};
use super::pending::{Action, Fate, Invalidations, Pending};
use super::redis::RedisBackend;
use super::{Expiry, Found};
use crate::Error;
use crate::clock::Monotonic;
use crate::key::KeySpace;
use crate::stats::Striped;

/// How many version keys are remembered before the tier starts over.
const VERSIONS: usize = 100_000;

/// Redis, with a local tier in front when one was asked for: what the
/// backend's `Redis` variant holds. Its commands are Redis' own (through
/// `Deref`); reads go through the tier, and writes make it forget.
pub(crate) struct Remote {
    redis: Arc<RedisBackend>,
    tier: Option<Tier>,
    /// Invalidations Redis did not take yet.
    invalidations: Invalidations,
}

/// The local tier.
#[derive(Debug)]
struct Tier {
    local: Arc<Local>,
}

impl std::fmt::Debug for Remote {
    /// Redis as it is; with a tier, Redis and the tier.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tier {
            None if !self.invalidations.pending.any() => std::fmt::Debug::fmt(&*self.redis, f),
            tier => {
                let mut d = f.debug_struct(if tier.is_some() {
                    "WithLocalTier"
                } else {
                    "Redis"
                });
                d.field("redis", &*self.redis);
                if let Some(tier) = tier {
                    d.field("local", &tier.local);
                }
                d.field("pending", &*self.invalidations.pending).finish()
            }
        }
    }
}

impl std::ops::Deref for Remote {
    type Target = RedisBackend;

    fn deref(&self) -> &RedisBackend {
        &self.redis
    }
}

impl Remote {
    pub(crate) fn new(redis: RedisBackend, pending_bound: usize) -> Self {
        Self {
            redis: Arc::new(redis),
            tier: None,
            invalidations: Invalidations::new(pending_bound),
        }
    }

    /// Applies an invalidation (`action` on `target`, a key of the key
    /// space scanned by `space`) now, or keeps it and retries it until Redis
    /// takes it.
    pub(crate) async fn invalidate(&self, space: &str, target: String, action: Action) -> Fate {
        let tier = self.tier.as_ref().map(|tier| &tier.local);
        self.invalidations
            .apply(&self.redis, tier, space, target, action)
            .await
    }

    /// The invalidations still waiting for Redis.
    pub(crate) fn pending(&self) -> &Pending {
        &self.invalidations.pending
    }

    /// After a write of `key` that Redis took: a pending tombstone of it is superseded.
    pub(crate) fn wrote_over<T>(&self, key: &str, result: Result<T, Error>) -> Result<T, Error> {
        if result.is_ok() {
            self.invalidations.pending.superseded(key);
        }
        self.wrote(&[key.to_owned()], result)
    }

    /// This Redis with a local tier of `max_bytes` in front, tracking the
    /// keys of `keys`' space.
    pub(crate) fn with_local(
        self,
        max_bytes: u64,
        lifetime: Option<Duration>,
        keys: &KeySpace,
    ) -> Self {
        let local = Local::new(max_bytes, lifetime);
        local.cover(keys);
        Self {
            tier: Some(Tier {
                local: Arc::new(local),
            }),
            ..self
        }
    }

    /// Makes the tier track the keys of `keys`' space too (a handle under
    /// another prefix shares this backend and its tier).
    pub(crate) fn cover(&self, keys: &KeySpace) {
        if let Some(tier) = &self.tier {
            tier.local.cover(keys);
        }
    }

    /// The breaker's state, and the tracking's when a tier is in front.
    pub(crate) fn health(&self) -> Health {
        let mut health = self.redis.health();
        health.tracking = self.tier.as_ref().map(|tier| tier.local.tracking());
        health
    }

    /// Hits the local tier served.
    pub(crate) fn local_hits(&self) -> u64 {
        self.tier.as_ref().map_or(0, |tier| tier.local.hits.sum())
    }

    /// Whether reads are answered with entries that keep a decoded value.
    pub(crate) fn keeps_typed(&self) -> bool {
        self.tier.is_some()
    }

    /// Connects now, and starts tracking for the local tier.
    pub(crate) async fn connect(&self) -> Result<(), Error> {
        if let Some(tier) = &self.tier {
            tier.local.start(&self.redis);
        }
        self.redis.connect_all().await
    }

    /// The entry at `key` and the versions at `vkeys`: from the local tier
    /// when it holds them all, else from Redis in one round trip (kept
    /// locally when no invalidation came meanwhile).
    pub(crate) async fn read_through(
        &self,
        key: &str,
        vkeys: &[String],
    ) -> Result<(Option<Found>, Vec<Option<u64>>), Error> {
        let Some(tier) = &self.tier else {
            let watched = self.invalidations.pending.watch();
            let (bytes, mut versions) = self.redis.read(key, vkeys).await?;
            let mut found = bytes.map(Found::Bytes);
            self.mask(key, &mut found, vkeys, &mut versions, watched);
            return Ok((found, versions));
        };
        if let Some((found, versions)) = self.peek(key, vkeys) {
            return Ok((Some(found), versions));
        }
        let local = &tier.local;
        let reading = local.begin(key, vkeys);
        let watched = self.invalidations.pending.watch();
        match self.redis.read(key, vkeys).await {
            Ok((bytes, mut versions)) => {
                let mut found = local.fill(reading, key, bytes, vkeys, &versions);
                self.mask(key, &mut found, vkeys, &mut versions, watched);
                Ok((found, versions))
            }
            Err(error) => {
                local.abandon(reading, key, vkeys);
                Err(error)
            }
        }
    }

    /// Makes a read see the invalidations still waiting for Redis.
    #[inline]
    fn mask(
        &self,
        key: &str,
        found: &mut Option<Found>,
        vkeys: &[String],
        versions: &mut [Option<u64>],
        watched: Option<u64>,
    ) {
        let pending = &self.invalidations.pending;
        if watched.is_some() || pending.any() {
            pending.mask(key, found, vkeys, versions, watched);
        }
    }

    /// The entry at `key` and the versions at `vkeys` from the local tier,
    /// when it holds them all (and no invalidation waits for Redis).
    #[inline]
    pub(crate) fn peek(&self, key: &str, vkeys: &[String]) -> Option<(Found, Vec<Option<u64>>)> {
        let tier = self.tier.as_ref()?;
        if self.invalidations.pending.any() {
            return None;
        }
        tier.local.start(&self.redis);
        tier.local.read(key, vkeys)
    }

    /// The entries at `keys`, in order: those the local tier holds from it,
    /// the others from Redis in one round trip (kept locally when no
    /// invalidation came meanwhile).
    pub(crate) async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Found>>, Error> {
        // While invalidations wait, the tier is bypassed and reads are masked.
        let Some(tier) = self
            .tier
            .as_ref()
            .filter(|_| !self.invalidations.pending.any())
        else {
            let watched = self.invalidations.pending.watch();
            let found = self.redis.get_many(keys).await?;
            let mut found: Vec<Option<Found>> = found
                .into_iter()
                .map(|bytes| bytes.map(Found::Bytes))
                .collect();
            for (key, found) in keys.iter().zip(&mut found) {
                self.mask(key, found, &[], &mut [], watched);
            }
            return Ok(found);
        };
        let local = &tier.local;
        local.start(&self.redis);
        let mut found: Vec<Option<Found>> = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (at, key) in keys.iter().enumerate() {
            match local.read(key, &[]) {
                Some((entry, _)) => found.push(Some(entry)),
                None => {
                    found.push(None);
                    missing.push(at);
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let asked: Vec<String> = missing.iter().map(|&at| keys[at].clone()).collect();
        let readings: Vec<Reading> = asked.iter().map(|key| local.begin(key, &[])).collect();
        match self.redis.get_many(&asked).await {
            Ok(answers) => {
                for (((at, key), reading), bytes) in
                    missing.into_iter().zip(&asked).zip(readings).zip(answers)
                {
                    found[at] = local.fill(reading, key, bytes, &[], &[]);
                }
                Ok(found)
            }
            Err(error) => {
                for (key, reading) in asked.iter().zip(readings) {
                    local.abandon(reading, key, &[]);
                }
                Err(error)
            }
        }
    }

    /// Forgets `keys` locally after a write of this process went to Redis.
    pub(crate) fn wrote<T>(&self, keys: &[String], result: Result<T, Error>) -> Result<T, Error> {
        if let Some(tier) = &self.tier {
            tier.local.forget(keys);
        }
        result
    }

    /// Forgets everything locally after a write of many keys.
    pub(crate) fn wrote_many<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        if let Some(tier) = &self.tier {
            tier.local.flush();
        }
        result
    }

    /// Keeps `typed`, decoded from a local entry, beside it.
    pub(crate) fn remember_typed(&self, key: &str, slot: &Slot, typed: super::Typed) {
        if let Some(tier) = &self.tier {
            tier.local.remember_typed(key, slot, typed);
        }
    }
}

/// The in-process copies, and what Redis is still being asked.
pub(crate) struct Local {
    entries: Memory,
    state: Mutex<State>,
    /// Whether tracking runs: only then is the tier used.
    up: AtomicBool,
    /// Whether the tracking task was started.
    started: AtomicBool,
    next_read: AtomicU64,
    /// The longest an entry is kept locally.
    lifetime: Option<Duration>,
    pub(crate) hits: Striped,
    /// The key prefixes tracking must watch, and their generation.
    prefixes: Mutex<Prefixes>,
    /// Told when the prefixes change: tracking restarts with them.
    changed: Arc<tokio::sync::Notify>,
    /// When tracking last went up or down (ms of `clock`).
    since_ms: AtomicU64,
    clock: Monotonic,
}

/// The prefixes tracking watches (none a prefix of another, as Redis
/// requires), and how many times they changed.
#[derive(Debug, Default, Clone)]
struct Prefixes {
    generation: u64,
    list: Vec<String>,
}

#[derive(Default)]
struct State {
    /// Keys being read from Redis, by the read's number.
    reads: HashMap<String, u64>,
    /// Version keys known locally (`None`: absent in Redis).
    versions: HashMap<String, Option<u64>>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("entries", &self.entries)
            .field("tracking", &self.up.load(SeqCst))
            .finish_non_exhaustive()
    }
}

/// A read from Redis in flight: its number, once placeholders were left.
#[derive(Clone, Copy)]
pub(crate) struct Reading(Option<u64>);

impl Local {
    pub(crate) fn new(max_bytes: u64, lifetime: Option<Duration>) -> Self {
        Self {
            entries: Memory::new(max_bytes, "local"),
            state: Mutex::default(),
            up: AtomicBool::new(false),
            started: AtomicBool::new(false),
            next_read: AtomicU64::new(0),
            lifetime,
            hits: Striped::default(),
            prefixes: Mutex::default(),
            changed: Arc::default(),
            since_ms: AtomicU64::new(0),
            clock: Monotonic::start(),
        }
    }

    /// Adds the prefixes of `keys`' entries and version keys to those
    /// tracked, unless already covered: until tracking has restarted with
    /// them, the tier is empty and bypassed.
    pub(crate) fn cover(&self, keys: &KeySpace) {
        let wanted = [format!("{}:", keys.prefix()), format!("{}#", keys.prefix())];
        {
            let mut prefixes = self.prefixes.lock().unwrap_or_else(PoisonError::into_inner);
            let mut added = false;
            for prefix in wanted {
                if prefixes.list.iter().any(|p| prefix.starts_with(p.as_str())) {
                    continue;
                }
                prefixes.list.retain(|p| !p.starts_with(prefix.as_str()));
                prefixes.list.push(prefix);
                added = true;
            }
            if !added {
                return;
            }
            prefixes.generation += 1;
            // Down before the lock is let go: tracking cannot confirm the old list now.
            self.set_up(false);
        }
        self.flush();
        self.changed.notify_one();
    }

    /// Marks tracking up or down, noting when it changed.
    fn set_up(&self, up: bool) {
        if self.up.swap(up, SeqCst) != up {
            self.since_ms.store(self.clock.now_ms(), SeqCst);
        }
    }

    /// Whether tracking is up, and since when.
    pub(crate) fn tracking(&self) -> Tracking {
        let ago = self
            .clock
            .now_ms()
            .saturating_sub(self.since_ms.load(SeqCst));
        let now = Instant::now();
        Tracking {
            up: self.up.load(SeqCst),
            since: now.checked_sub(Duration::from_millis(ago)).unwrap_or(now),
        }
    }

    /// The prefixes to track now.
    fn prefixes(&self) -> Prefixes {
        self.prefixes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Flushes the tier and marks tracking up, if the prefixes are still
    /// those of `generation`.
    fn go_up(&self, generation: u64) -> bool {
        let prefixes = self.prefixes.lock().unwrap_or_else(PoisonError::into_inner);
        if prefixes.generation != generation {
            return false;
        }
        self.flush();
        self.set_up(true);
        true
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry at `key` and the versions at `vkeys`, if all are known here.
    pub(crate) fn read(&self, key: &str, vkeys: &[String]) -> Option<(Found, Vec<Option<u64>>)> {
        // Acquire: a tier seen up was flushed before it went up.
        if !self.up.load(Acquire) {
            return None;
        }
        let versions = if vkeys.is_empty() {
            Vec::new()
        } else {
            let state = self.state();
            vkeys
                .iter()
                .map(|vkey| state.versions.get(vkey).copied())
                .collect::<Option<Vec<_>>>()?
        };
        let slot = self.entries.get(key)?;
        self.hits.add(1);
        Some((Found::Slot(slot), versions))
    }

    /// Leaves placeholders for a read of `key` and `vkeys` from Redis.
    pub(crate) fn begin(&self, key: &str, vkeys: &[String]) -> Reading {
        if !self.up.load(SeqCst) {
            return Reading(None);
        }
        let number = self.next_read.fetch_add(1, SeqCst);
        let mut state = self.state();
        state.reads.insert(key.to_owned(), number);
        for vkey in vkeys {
            state.reads.insert(vkey.clone(), number);
        }
        Reading(Some(number))
    }

    /// Keeps what a read found, where no invalidation came meanwhile; the
    /// entry to answer with (kept here, so that its decoded value can be too).
    pub(crate) fn fill(
        &self,
        reading: Reading,
        key: &str,
        bytes: Option<Vec<u8>>,
        vkeys: &[String],
        versions: &[Option<u64>],
    ) -> Option<Found> {
        let Reading(Some(number)) = reading else {
            return bytes.map(Found::Bytes);
        };
        let keep_entry = {
            let mut state = self.state();
            if state.versions.len() >= VERSIONS {
                state.versions.clear();
            }
            for (vkey, version) in vkeys.iter().zip(versions) {
                if state.reads.get(vkey) == Some(&number) {
                    state.reads.remove(vkey);
                    state.versions.insert(vkey.clone(), *version);
                }
            }
            state.reads.get(key) == Some(&number)
        };
        let Some(bytes) = bytes else {
            self.state().reads.remove(key);
            return None;
        };
        if !keep_entry {
            return Some(Found::Bytes(bytes));
        }
        let expiry = self.lifetime.map_or(Expiry::Never, Expiry::after);
        let slot = Slot::new(bytes, None, expiry);
        self.entries.set(key.to_owned(), slot.clone());
        // An invalidation that came while the entry was stored removed the
        // placeholder: the entry must go too.
        let kept = {
            let mut state = self.state();
            let kept = state.reads.get(key) == Some(&number);
            if kept {
                state.reads.remove(key);
            }
            kept
        };
        if !kept {
            self.entries.delete(key);
        }
        Some(Found::Slot(slot))
    }

    /// Takes away the placeholders of a read that failed.
    pub(crate) fn abandon(&self, reading: Reading, key: &str, vkeys: &[String]) {
        let Reading(Some(number)) = reading else {
            return;
        };
        let mut state = self.state();
        for k in std::iter::once(key).chain(vkeys.iter().map(String::as_str)) {
            if state.reads.get(k) == Some(&number) {
                state.reads.remove(k);
            }
        }
    }

    /// Forgets `keys` (entries or version keys), and cancels their reads.
    pub(crate) fn forget(&self, keys: &[String]) {
        {
            let mut state = self.state();
            for key in keys {
                state.reads.remove(key);
                state.versions.remove(key);
            }
        }
        for key in keys {
            self.entries.delete(key);
        }
    }

    /// Forgets everything.
    pub(crate) fn flush(&self) {
        {
            let mut state = self.state();
            state.reads.clear();
            state.versions.clear();
        }
        self.entries.clear(|_| true);
    }

    /// Keeps `typed`, decoded from a local entry, beside it.
    pub(crate) fn remember_typed(&self, key: &str, slot: &Slot, typed: super::Typed) {
        self.entries
            .remember_typed(key.to_owned(), &slot.bytes, typed);
    }

    /// Starts tracking in the background, once, on the current Tokio runtime:
    /// on every master `redis` names (one server, or each master of a cluster).
    pub(crate) fn start(self: &Arc<Self>, redis: &Arc<RedisBackend>) {
        // Checked on every read: a load first, the runtime only once.
        if self.started.load(Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.started.swap(true, SeqCst) {
            return;
        }
        runtime.spawn(track(
            Arc::downgrade(self),
            Arc::clone(redis),
            Arc::clone(&self.changed),
        ));
    }
}

/// Keeps tracking connections open to every master for as long as the tier
/// lives: each invalidation forgets its keys; a lost connection, or a change
/// of masters, empties the tier and bypasses it until tracking resumes on
/// every master. A change of prefixes starts over at once.
async fn track(local: Weak<Local>, redis: Arc<RedisBackend>, changed: Arc<tokio::sync::Notify>) {
    loop {
        let Some(prefixes) = local.upgrade().map(|tier| tier.prefixes()) else {
            return;
        };
        let urls = redis.tracking_urls().await.unwrap_or_default();
        let (sender, mut pushes) = tokio::sync::mpsc::unbounded_channel();
        let mut connections = Vec::with_capacity(urls.len());
        for url in &urls {
            match tracking(url, &prefixes.list, sender.clone()).await {
                Some(conn) => connections.push(conn),
                None => break,
            }
        }
        drop(sender);
        let mut moved = false;
        if !urls.is_empty() && connections.len() == urls.len() {
            let Some(tier) = local.upgrade() else { return };
            let up = tier.go_up(prefixes.generation);
            drop(tier);
            moved = !up
                || follow(
                    &local,
                    &redis,
                    &urls,
                    &mut pushes,
                    &changed,
                    prefixes.generation,
                )
                .await;
        }
        drop(connections);
        let Some(tier) = local.upgrade() else { return };
        tier.set_up(false);
        tier.flush();
        drop(tier);
        if !moved {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A RESP3 connection to `url` tracking `prefixes`, its pushes sent to `sender`.
async fn tracking(
    url: &str,
    prefixes: &[String],
    sender: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
) -> Option<redis::aio::MultiplexedConnection> {
    let url = if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)))
        .set_push_sender(sender);
    let client = redis::Client::open(url.as_str()).ok()?;
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .ok()?;
    let mut command = redis::cmd("CLIENT");
    command.arg("TRACKING").arg("ON").arg("BCAST");
    for prefix in prefixes {
        command.arg("PREFIX").arg(prefix);
    }
    command.query_async::<()>(&mut conn).await.ok()?;
    Some(conn)
}

/// Applies invalidations until a connection is lost, the masters change
/// or the prefixes change (then `true`: start over at once).
async fn follow(
    local: &Weak<Local>,
    redis: &RedisBackend,
    urls: &[String],
    pushes: &mut tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
    changed: &tokio::sync::Notify,
    generation: u64,
) -> bool {
    loop {
        let push = tokio::select! {
            push = pushes.recv() => push,
            () = changed.notified() => {
                match local.upgrade() {
                    Some(tier) if tier.prefixes().generation == generation => continue,
                    _ => return true,
                }
            }
            // Now and then: stop once the tier is gone, start over when the masters change.
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if local.strong_count() == 0 {
                    return false;
                }
                match redis.tracking_urls().await {
                    Ok(now) if now.len() == urls.len() && now.iter().all(|u| urls.contains(u)) => continue,
                    _ => return false,
                }
            }
        };
        let Some(tier) = local.upgrade() else {
            return false;
        };
        match push {
            Some(push) if push.kind == PushKind::Invalidate => match push.data.into_iter().next() {
                Some(Value::Array(keys)) => {
                    let keys: Vec<String> = keys
                        .into_iter()
                        .filter_map(|key| redis::from_redis_value(key).ok())
                        .collect();
                    tier.forget(&keys);
                }
                // `nil`: Redis flushed, or lost track: forget everything.
                _ => tier.flush(),
            },
            Some(push) if push.kind != PushKind::Disconnection => {}
            // A connection was lost: start over.
            _ => return false,
        }
    }
}
