//! Redis as the backend's `Redis` variant holds it: the Redis connection,
//! the local tier in front when one was asked for (`local.rs`), and the
//! invalidations Redis did not take yet (`pending.rs`). Reads go through
//! the tier and see what waits; writes make the tier forget.

use std::sync::Arc;
use std::time::Duration;

use super::breaker::Health;
use super::invalidations::Invalidations;
use super::local::{Failed, Local, Reading};
use super::memory::Slot;
use super::pending::{Action, Fate, Pending};
use super::server::RedisBackend;
use super::{Answer, Found, GuardedWrite};
use crate::Error;
use crate::key::KeySpace;
use crate::scope::VersionKeys;

/// Redis, with a local tier in front when one was asked for: what the
/// backend's `Redis` variant holds. Reads go through the tier; commands
/// sent to Redis itself ([`Remote::server`]) say so, and writes make the
/// tier forget.
pub(crate) struct Remote {
    redis: Arc<RedisBackend>,
    /// With replicated invalidations, what sends them (its writes wait for replicas).
    invalidator: Option<Arc<RedisBackend>>,
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
            None if !self.invalidations.pending.any() && self.invalidator.is_none() => {
                std::fmt::Debug::fmt(&*self.redis, f)
            }
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
                if let Some(invalidator) = &self.invalidator {
                    d.field("replicated_invalidations", &**invalidator);
                }
                d.field("pending", &*self.invalidations.pending).finish()
            }
        }
    }
}

impl Remote {
    /// Redis itself, past the tier and the invalidations waiting: for the
    /// commands the tier has no part in, or whose writes the caller makes
    /// the tier forget (`wrote`, `wrote_over`, `wrote_many`).
    pub(crate) fn server(&self) -> &RedisBackend {
        &self.redis
    }
}

impl Remote {
    pub(crate) fn new(
        redis: RedisBackend,
        invalidator: Option<RedisBackend>,
        pending_bound: usize,
    ) -> Self {
        Self {
            redis: Arc::new(redis),
            invalidator: invalidator.map(Arc::new),
            tier: None,
            invalidations: Invalidations::new(pending_bound),
        }
    }

    /// Applies an invalidation (`action` on `target`, a key of the key
    /// space scanned by `space`) now (unless not `try_now`), or keeps it and
    /// retries it until Redis takes it.
    pub(crate) async fn invalidate(
        &self,
        space: &str,
        target: String,
        action: Action,
        try_now: bool,
    ) -> Fate {
        let tier = self.tier.as_ref().map(|tier| &tier.local);
        let redis = self.invalidator.as_ref().unwrap_or(&self.redis);
        let fate = self
            .invalidations
            .apply(redis, tier, space, (target, action), try_now)
            .await;
        self.invalidations.watch(&self.redis);
        fate
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

    /// This Redis with the versions of `keys`' space tracked in process
    /// (a tier of version keys only).
    pub(crate) fn with_tracked_versions(self, keys: &KeySpace) -> Self {
        self.with_tier(Local::versions_only(), keys)
    }

    /// This Redis with a local tier of `max_bytes` in front, tracking the
    /// keys of `keys`' space.
    pub(crate) fn with_local(
        self,
        max_bytes: u64,
        lifetime: Option<Duration>,
        keys: &KeySpace,
    ) -> Self {
        self.with_tier(Local::new(max_bytes, lifetime), keys)
    }

    /// This Redis with `local` in front, tracking the keys of `keys`' space.
    fn with_tier(self, local: Local, keys: &KeySpace) -> Self {
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
        self.tier
            .as_ref()
            .is_some_and(|tier| tier.local.keeps_entries())
    }

    /// Connects now, asks which server it is, and starts tracking for the
    /// local tier; from now on a restart of the server is noticed. A server that answers but refuses what the tier needs
    /// (RESP3, `CLIENT TRACKING ... BCAST`) is a configuration error; one
    /// that does not answer is not (tracking is tried again in the background).
    pub(crate) async fn connect(&self) -> Result<(), Error> {
        // Before the first connection: a restart noticed later sends the
        // invalidations that landed lately again.
        let sender = self.invalidator.as_ref().unwrap_or(&self.redis);
        let tier = self.tier.as_ref().map(|tier| &tier.local);
        self.redis
            .on_restart(self.invalidations.on_restart(sender, tier));
        let connected = self.redis.connect_all().await;
        if let Some(tier) = &self.tier {
            if connected.is_ok() {
                self.tier_allowed(&tier.local).await?;
            }
            tier.local.start(&self.redis);
        } else if connected.is_ok() {
            self.redis.probe().await;
        }
        connected
    }

    /// Whether the server (probed now) takes the tier's tracking.
    async fn tier_allowed(&self, local: &Local) -> Result<(), Error> {
        let server = self.redis.probe().await;
        let at = self.redis.redacted_url();
        let named = server.map_or_else(
            || format!("the server at {at}"),
            |server| format!("{server} at {at}"),
        );
        let (what, option) = if local.keeps_entries() {
            ("the local tier needs", "local_tier")
        } else {
            ("tracked versions need", "track_versions")
        };
        if server.is_some_and(|server| !server.speaks_resp3()) {
            return Err(Error::Config {
                reason: format!(
                    "{what} RESP3 and `CLIENT TRACKING ... BCAST` (Redis 6 or \
                     later), and {named} has neither: build without {option} (every read \
                     then goes to Redis), or move to Redis 6 or later"
                ),
                source: None,
            });
        }
        match local.check(&self.redis).await {
            Err(Failed::Refused(error)) => Err(Error::Config {
                reason: format!(
                    "{what} `CLIENT TRACKING ON BCAST PREFIX ...` on a RESP3 \
                     connection, and {named} refused it: build without {option} (every read \
                     then goes to Redis), or let this user run CLIENT TRACKING on a server that \
                     has it (Redis 6 or later)"
                ),
                source: Some(error.into()),
            }),
            Ok(()) | Err(Failed::Unreachable) => Ok(()),
        }
    }

    /// The entry at `key` and the versions at `vkeys`: from the local tier
    /// when it holds them all (unless it was just asked: `past_tier`), else
    /// from Redis in one round trip (kept locally when no invalidation came
    /// meanwhile).
    pub(crate) async fn read_through(
        &self,
        key: &str,
        vkeys: &VersionKeys,
        past_tier: bool,
    ) -> Result<Answer, Error> {
        let Some(tier) = &self.tier else {
            return self.read_redis(key, vkeys).await;
        };
        if !tier.local.keeps_entries() {
            return self.read_tracked(&tier.local, key, vkeys).await;
        }
        if !past_tier && let Some((found, versions)) = self.peek(key, vkeys) {
            return Ok((Some(found), versions));
        }
        let watched = self.invalidations.pending.watch();
        self.read_keeping(&tier.local, key, vkeys, watched, true)
            .await
    }

    /// The entry at `key` and the versions at `vkeys` from Redis, in one
    /// round trip, nothing kept in process.
    async fn read_redis(&self, key: &str, vkeys: &VersionKeys) -> Result<Answer, Error> {
        let watched = self.invalidations.pending.watch();
        let (bytes, mut versions) = self.redis.read(key, vkeys).await?;
        let mut found = bytes.map(Found::Bytes);
        self.mask(key, &mut found, vkeys, &mut versions, watched);
        Ok((found, versions))
    }

    /// With tracked versions: the entry at `key` from Redis (one `GET`),
    /// and the versions at `vkeys` known here; when one is not known (or
    /// tracking is down), both from Redis in one round trip, the versions
    /// then kept when no invalidation came meanwhile.
    async fn read_tracked(
        &self,
        local: &Arc<Local>,
        key: &str,
        vkeys: &VersionKeys,
    ) -> Result<Answer, Error> {
        local.start(&self.redis);
        if vkeys.is_empty() {
            // No version to know: nothing to keep either.
            return self.read_redis(key, vkeys).await;
        }
        let watched = self.invalidations.pending.watch();
        if let Some(mut versions) = local.versions(vkeys) {
            let mut found = self.redis.get(key).await?.map(Found::Bytes);
            self.mask(key, &mut found, vkeys, &mut versions, watched);
            return Ok((found, versions));
        }
        self.read_keeping(local, key, vkeys, watched, false).await
    }

    /// The entry at `key` and the versions at `vkeys` from Redis in one
    /// round trip, kept in `local` when no invalidation came meanwhile
    /// (`watched`: the invalidations waiting when the read began); with
    /// `left`, the entry's time left is asked beside them, for its copy.
    async fn read_keeping(
        &self,
        local: &Local,
        key: &str,
        vkeys: &VersionKeys,
        watched: Option<u64>,
        left: bool,
    ) -> Result<Answer, Error> {
        let reading = local.begin(key, vkeys);
        let read = if left {
            let (read, left) = tokio::join!(self.redis.read(key, vkeys), self.left(key));
            read.map(|(bytes, versions)| ((bytes, left), versions))
        } else {
            let read = self.redis.read(key, vkeys).await;
            read.map(|(bytes, versions)| ((bytes, None), versions))
        };
        match read {
            Ok((entry, mut versions)) => {
                let mut found = local.fill(reading, key, entry, vkeys, &versions);
                self.mask(key, &mut found, vkeys, &mut versions, watched);
                Ok((found, versions))
            }
            Err(error) => {
                local.abandon(reading, key, vkeys);
                Err(error)
            }
        }
    }

    /// How long Redis keeps `key` (`None`: no expiry); when it does not
    /// say, nothing (a copy is then not kept).
    async fn left(&self, key: &str) -> Option<Duration> {
        self.redis
            .time_left(key)
            .await
            .unwrap_or(Some(Duration::ZERO))
    }

    /// Makes a read see the invalidations still waiting for Redis.
    #[inline]
    fn mask(
        &self,
        key: &str,
        found: &mut Option<Found>,
        vkeys: &VersionKeys,
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
    pub(crate) fn peek(&self, key: &str, vkeys: &VersionKeys) -> Option<(Found, Vec<Option<u64>>)> {
        let tier = self
            .tier
            .as_ref()
            .filter(|tier| tier.local.keeps_entries())?;
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
            .filter(|tier| tier.local.keeps_entries() && !self.invalidations.pending.any())
        else {
            let watched = self.invalidations.pending.watch();
            let found = self.redis.get_many(keys).await?;
            let mut found: Vec<Option<Found>> = found
                .into_iter()
                .map(|bytes| bytes.map(Found::Bytes))
                .collect();
            for (key, found) in keys.iter().zip(&mut found) {
                self.mask(key, found, &VersionKeys::none(), &mut [], watched);
            }
            return Ok(found);
        };
        let local = &tier.local;
        local.start(&self.redis);
        let mut found: Vec<Option<Found>> = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (at, key) in keys.iter().enumerate() {
            match local.read(key, &VersionKeys::none()) {
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
        let readings: Vec<Reading> = asked
            .iter()
            .map(|key| local.begin(key, &VersionKeys::none()))
            .collect();
        let lefts = futures_util::future::join_all(asked.iter().map(|key| self.left(key)));
        match tokio::join!(self.redis.get_many(&asked), lefts) {
            (Ok(answers), lefts) => {
                for ((((at, key), reading), bytes), left) in missing
                    .into_iter()
                    .zip(&asked)
                    .zip(readings)
                    .zip(answers)
                    .zip(lefts)
                {
                    let read = (bytes, left);
                    found[at] = local.fill(reading, key, read, &VersionKeys::none(), &[]);
                }
                Ok(found)
            }
            (Err(error), _) => {
                for (key, reading) in asked.iter().zip(readings) {
                    local.abandon(reading, key, &VersionKeys::none());
                }
                Err(error)
            }
        }
    }

    /// The entries at `keys` and the versions at `vkeys`: from the local
    /// tier when it holds every one, else from Redis in one round trip
    /// (not kept locally).
    pub(crate) async fn read_many(
        &self,
        keys: &[String],
        vkeys: &VersionKeys,
    ) -> Result<(Vec<Option<Found>>, Vec<Option<u64>>), Error> {
        let local: Option<Vec<_>> = keys.iter().map(|key| self.peek(key, vkeys)).collect();
        if let Some(local) = local.filter(|_| !keys.is_empty()) {
            let versions = local.first().map(|(_, v)| v.clone()).unwrap_or_default();
            if local.iter().all(|(_, v)| *v == versions) {
                return Ok((local.into_iter().map(|(f, _)| Some(f)).collect(), versions));
            }
        }
        let watched = self.invalidations.pending.watch();
        let (values, mut versions) = self.redis.read_many(keys, vkeys).await?;
        let mut found: Vec<Option<Found>> =
            values.into_iter().map(|b| b.map(Found::Bytes)).collect();
        for (key, found) in keys.iter().zip(&mut found) {
            self.mask(key, found, vkeys, &mut versions, watched);
        }
        Ok((found, versions))
    }

    /// Guarded writes, pipelined (forgotten locally); how many were stored.
    pub(crate) async fn write_guarded_many(&self, writes: &[GuardedWrite]) -> Result<usize, Error> {
        let keys: Vec<String> = writes.iter().map(|w| w.key.clone()).collect();
        self.wrote(&keys, self.redis.write_guarded_many(writes).await)
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
