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
//!
//! Tracked versions (`track_versions` without a local tier) are the same
//! machinery keeping only version keys: it tracks `{prefix}#` alone, and a
//! hit in a namespace or with tags is one `GET` of its entry, judged
//! against the versions known here.

use std::collections::HashMap;
use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::SeqCst,
};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use deadpool_redis::redis::{self, AsyncConnectionConfig, PushKind, Value};

use super::breaker::Tracking;
use super::memory::{Memory, Slot};
use super::server::RedisBackend;
use super::{Expiry, Found};
use crate::clock::Monotonic;
use crate::codec::Shape;
use crate::key::KeySpace;
use crate::observe::Striped;
use crate::scope::VersionKeys;

/// How many version keys are remembered before the tier starts over.
const VERSIONS: usize = 100_000;

/// The in-process copies, and what Redis is still being asked.
pub(crate) struct Local {
    entries: Memory,
    /// Whether entries are kept (a local tier), or version keys only
    /// (tracked versions).
    keeps_entries: bool,
    /// Read-locked by hits (which only look up versions), write-locked by the rest.
    state: RwLock<State>,
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

/// Maps keyed by Redis keys, hashed with `foldhash` (seeded at random, as
/// in the memory store): a tagged hit looks up each of its version keys.
type Keyed<V> = HashMap<String, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct State {
    /// Keys being read from Redis, by the read's number.
    reads: Keyed<u64>,
    /// Version keys known locally (`None`: absent in Redis).
    versions: Keyed<Option<u64>>,
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
            keeps_entries: true,
            state: RwLock::default(),
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

    /// Tracked versions: version keys kept and tracked, no entry.
    pub(crate) fn versions_only() -> Self {
        Self {
            keeps_entries: false,
            ..Self::new(1, None)
        }
    }

    /// Whether entries are kept here (else only version keys).
    pub(crate) fn keeps_entries(&self) -> bool {
        self.keeps_entries
    }

    /// Adds the prefixes of `keys`' entries (unless only versions are kept)
    /// and version keys to those tracked, unless already covered: until
    /// tracking has restarted with them, the tier is empty and bypassed.
    pub(crate) fn cover(&self, keys: &KeySpace) {
        let entries = self.keeps_entries.then(|| format!("{}:", keys.prefix()));
        let wanted = entries.into_iter().chain([format!("{}#", keys.prefix())]);
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

    fn state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state, for a hit's look-ups: hits on other threads do not wait.
    fn looked_up(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry at `key` and the versions at `vkeys`, if all are known here.
    pub(crate) fn read(&self, key: &str, vkeys: &VersionKeys) -> Option<(Found, Vec<Option<u64>>)> {
        let versions = if vkeys.is_empty() {
            // Acquire: a tier seen up was flushed before it went up.
            if !self.up.load(Acquire) {
                return None;
            }
            Vec::new()
        } else {
            self.versions(vkeys)?
        };
        let slot = self.entries.get(key)?;
        // A hit only when what it holds can be served: a value of the
        // current versions (or a counter), not a tombstone or older stamps.
        if slot.shape.stamped(&slot.bytes, &versions)
            || (matches!(slot.shape, Shape::Counter) && versions.is_empty())
        {
            self.hits.add(1);
        }
        Some((Found::Slot(slot), versions))
    }

    /// The versions at `vkeys`, if all are known here (tracking up).
    #[inline]
    pub(crate) fn versions(&self, vkeys: &VersionKeys) -> Option<Vec<Option<u64>>> {
        // Acquire: a tier seen up was flushed before it went up.
        if !self.up.load(Acquire) {
            return None;
        }
        let state = self.looked_up();
        vkeys
            .iter()
            .map(|vkey| state.versions.get(vkey).copied())
            .collect()
    }

    /// Leaves placeholders for a read of `key` and `vkeys` from Redis.
    pub(crate) fn begin(&self, key: &str, vkeys: &VersionKeys) -> Reading {
        if !self.up.load(SeqCst) {
            return Reading(None);
        }
        let number = self.next_read.fetch_add(1, SeqCst);
        let mut state = self.state();
        state.reads.insert(key.to_owned(), number);
        for vkey in vkeys {
            state.reads.insert(vkey.to_owned(), number);
        }
        Reading(Some(number))
    }

    /// Keeps what a read found, where no invalidation came meanwhile, no
    /// longer than Redis keeps it (`left`: what `PTTL` said, `None` for no
    /// expiry); the entry to answer with (kept here, so that its decoded
    /// value can be too).
    pub(crate) fn fill(
        &self,
        reading: Reading,
        key: &str,
        (bytes, left): (Option<Vec<u8>>, Option<Duration>),
        vkeys: &VersionKeys,
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
                    state.versions.insert(vkey.to_owned(), *version);
                }
            }
            state.reads.get(key) == Some(&number)
        };
        let bytes = match bytes {
            Some(bytes) if self.keeps_entries => bytes,
            other => {
                self.state().reads.remove(key);
                return other.map(Found::Bytes);
            }
        };
        if !keep_entry {
            return Some(Found::Bytes(bytes));
        }
        // Redis expires a key lazily: the copy goes when its timeout passes,
        // not when Redis gets round to deleting it.
        let life = match (self.lifetime, left) {
            (Some(lifetime), Some(left)) => Some(lifetime.min(left)),
            (lifetime, left) => lifetime.or(left),
        };
        let expiry = life.map_or(Expiry::Never, Expiry::after);
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
    pub(crate) fn abandon(&self, reading: Reading, key: &str, vkeys: &VersionKeys) {
        let Reading(Some(number)) = reading else {
            return;
        };
        let mut state = self.state();
        for k in std::iter::once(key).chain(vkeys) {
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

    /// Whether the server takes this tier's tracking, tried once on the
    /// first master `redis` names: `Err` only when it answered with a
    /// refusal (not when it did not answer: tracking is then tried again
    /// in the background, as always).
    pub(crate) async fn check(&self, redis: &RedisBackend) -> Result<(), Failed> {
        let Some(url) = redis
            .tracking_urls()
            .await
            .ok()
            .and_then(|urls| urls.into_iter().next())
        else {
            return Ok(());
        };
        let (sender, _pushes) = tokio::sync::mpsc::unbounded_channel();
        match tracking(&url, &self.prefixes().list, sender).await {
            Ok(_) | Err(Failed::Unreachable) => Ok(()),
            Err(refused) => Err(refused),
        }
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
    // A refusal is logged once: it will not go away by itself.
    let mut warned = false;
    loop {
        let Some(prefixes) = local.upgrade().map(|tier| tier.prefixes()) else {
            return;
        };
        let urls = redis.tracking_urls().await.unwrap_or_default();
        let (sender, mut pushes) = tokio::sync::mpsc::unbounded_channel();
        let mut connections = Vec::with_capacity(urls.len());
        for url in &urls {
            match tracking(url, &prefixes.list, sender.clone()).await {
                Ok(conn) => connections.push(conn),
                Err(failed) => {
                    failed.log(url, &mut warned);
                    break;
                }
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

/// Why no tracking connection could be had.
pub(crate) enum Failed {
    /// The server did not answer (down, unreachable, too slow): tried again later.
    Unreachable,
    /// The server answered with an error reply: it refuses RESP3 (`HELLO 3`,
    /// before Redis 6) or `CLIENT TRACKING ... BCAST` (an ACL, a server that
    /// does not implement it).
    Refused(redis::RedisError),
}

impl From<redis::RedisError> for Failed {
    fn from(error: redis::RedisError) -> Self {
        use redis::{ErrorKind, ServerErrorKind};
        let refused = matches!(
            error.kind(),
            ErrorKind::RESP3NotSupported
                | ErrorKind::Extension
                | ErrorKind::Server(ServerErrorKind::ResponseError | ServerErrorKind::NoPerm)
        );
        if refused {
            Self::Refused(error)
        } else {
            Self::Unreachable
        }
    }
}

impl Failed {
    /// Logs a refusal, once: while it lasts the tier stays bypassed.
    fn log(&self, url: &str, warned: &mut bool) {
        if let Self::Refused(error) = self
            && !std::mem::replace(warned, true)
        {
            tracing::error!(
                error = error as &dyn std::error::Error,
                server = %super::server::redact(url),
                "the server refuses CLIENT TRACKING ... BCAST: the local tier stays empty and bypassed"
            );
        }
    }
}

/// A RESP3 connection to `url` tracking `prefixes`, its pushes sent to `sender`.
async fn tracking(
    url: &str,
    prefixes: &[String],
    sender: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
) -> Result<redis::aio::MultiplexedConnection, Failed> {
    let url = if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)))
        .set_push_sender(sender);
    let client = redis::Client::open(url.as_str()).map_err(|_| Failed::Unreachable)?;
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let mut command = redis::cmd("CLIENT");
    command.arg("TRACKING").arg("ON").arg("BCAST");
    for prefix in prefixes {
        command.arg("PREFIX").arg(prefix);
    }
    command.query_async::<()>(&mut conn).await?;
    Ok(conn)
}

/// Returns when the master moves (never when it cannot).
async fn moved(moves: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    if let Some(moves) = moves
        && moves.changed().await.is_ok()
    {
        return;
    }
    std::future::pending::<()>().await;
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
    // Behind Sentinel: a move of the master starts over at once, on the new one.
    let mut moves = redis.master_moves();
    loop {
        let push = tokio::select! {
            push = pushes.recv() => push,
            () = moved(&mut moves) => return true,
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
