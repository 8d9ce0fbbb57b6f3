//! The Redis backend: one server (on deadpool-redis), the master that
//! Redis Sentinel names (`sentinel.rs`: one server that moves) or a Redis
//! Cluster (on redis-rs' cluster client), with the same commands.
//!
//! On one server, the pool creates, health-checks and replaces connections;
//! the hot path does not check one out per call (a checkout costs a round
//! trip of its own). Instead the backend holds a few *lanes* (`lanes.rs`),
//! each a connection taken from the pool and kept, cloned for every command.
//! On a cluster, one held `ClusterConnection` (`cluster.rs`) routes each
//! command by its key's slot; what spans slots is split here, slot by slot
//! (scripts, pipelines) or master by master (`SCAN`), the parts sent at once.

mod cluster;
mod invalidate;
mod lanes;
mod link;
mod many;
mod master;
mod mget;
mod nodes;
mod pool;
mod probe;
mod reconnect;
mod restarts;
#[cfg(test)]
mod script_keys;
mod scripts;
mod sentinel;
mod settings;
mod url;

#[cfg(feature = "internals")]
pub(crate) use cluster::parse_masters;
pub(crate) use restarts::Hook;
#[cfg(feature = "internals")]
pub(crate) use sentinel::master_url;
#[cfg(feature = "tls")]
pub(crate) use settings::Pem;
pub(crate) use settings::Settings;
pub(crate) use url::{redact, with_address};

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool_redis::redis::cluster::ClusterClientBuilder;
use deadpool_redis::redis::{self, RedisError};
use futures_util::future::try_join_all;

use super::breaker::{Breakers, Health};
use super::info::ServerInfo;
use super::{Counted, Expected, Expiry};
use crate::scope::VersionKeys;
use crate::{BackendError, Error, codec};
use cluster::ClusterLink;
use lanes::{Lanes, Source};
use link::Link;
use scripts::Scripts;

/// Keys asked of each `SCAN` page (and deleted per batch).
const SCAN_BATCH: usize = 500;

/// How long a held connection being replaced may keep a command waiting,
/// besides the time to connect.
const CHECKOUT_WAIT: Duration = Duration::from_millis(100);

pub(crate) struct RedisBackend {
    link: Link,
    /// The URL (with credentials) of the server, or of the first seed: what
    /// a dedicated connection to a master is made from.
    url: String,
    command_timeout: Duration,
    breakers: Arc<Breakers>,
    scripts: Scripts,
    redacted_url: String,
    /// Which server it is, from `INFO server` when the cache was built (`probe.rs`).
    server: OnceLock<ServerInfo>,
    /// For the backend of replicated invalidations: the replicas each write
    /// waits for (`WAIT`), and how long.
    replicas: Option<(usize, Duration)>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.link {
            Link::Single(lanes) => f
                .debug_struct("Redis")
                .field("url", &self.redacted_url)
                .field("connections", &lanes.len())
                .field("pool", &lanes.status())
                .finish_non_exhaustive(),
            Link::Cluster(_) => f
                .debug_struct("RedisCluster")
                .field("seeds", &self.redacted_url)
                .finish_non_exhaustive(),
        }
    }
}

impl RedisBackend {
    /// Sets up the pool; connects nothing yet.
    pub(crate) fn new(url: &str, settings: &Settings) -> Result<Self, Error> {
        let lanes = Lanes::new(
            Source::Fixed(pool::pool(url, settings)?),
            settings,
            redact(url),
        );
        Ok(Self::single(url.to_owned(), lanes, settings, redact(url)))
    }

    /// A backend on held connections to one server.
    fn single(url: String, lanes: Lanes, settings: &Settings, redacted_url: String) -> Self {
        Self {
            url,
            link: Link::Single(lanes),
            command_timeout: settings.command_timeout,
            breakers: Arc::new(Breakers::new(
                1,
                settings.breaker_failures,
                settings.breaker_cool_down,
                redacted_url.clone(),
            )),
            scripts: Scripts::new(),
            redacted_url,
            server: OnceLock::new(),
            replicas: settings.replicas,
        }
    }

    /// Sets up a cluster client from seed nodes; connects nothing yet.
    pub(crate) fn cluster(seeds: &[String], settings: &Settings) -> Result<Self, Error> {
        let redacted = seeds
            .iter()
            .map(|s| redact(s))
            .collect::<Vec<_>>()
            .join(",");
        let invalid = |source: RedisError| Error::Config {
            reason: format!("invalid Redis Cluster seeds `{redacted}`"),
            source: Some(source.into()),
        };
        if seeds.is_empty() {
            return Err(Error::Config {
                reason: "a Redis Cluster needs at least one seed node".to_owned(),
                source: None,
            });
        }
        #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
        let mut builder = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
            .connection_timeout(settings.connect_timeout)
            .response_timeout(settings.command_timeout)
            // The command deadline bounds each command whole: redirections
            // and reconnects are retried within it.
            .overall_response_timeout(Some(settings.command_timeout))
            .retries(3)
            .min_retry_wait(10)
            .max_retry_wait(100);
        #[cfg(feature = "tls")]
        if let Some(Pem(root)) = &settings.tls_root {
            if rustls::crypto::CryptoProvider::get_default().is_none() {
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
            builder = builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root.clone()),
            });
        }
        let client = builder.build().map_err(invalid)?;
        let breakers = Arc::new(Breakers::new(
            cluster::MAX_NODES,
            settings.breaker_failures,
            settings.breaker_cool_down,
            redacted.clone(),
        ));
        let link = ClusterLink::new(
            client,
            seeds[0].clone(),
            settings,
            redacted.clone(),
            Arc::clone(&breakers),
        );
        Ok(Self {
            url: seeds[0].clone(),
            link: Link::Cluster(link),
            command_timeout: settings.command_timeout,
            breakers,
            scripts: Scripts::new(),
            redacted_url: redacted,
            server: OnceLock::new(),
            replicas: settings.replicas,
        })
    }

    /// Runs `hook` whenever the server turns out to have restarted (a new
    /// run id on a new connection), before that connection carries a
    /// command. On a cluster, nothing: redis-rs makes the connections.
    pub(crate) fn on_restart(&self, hook: Hook) {
        if let Link::Single(lanes) = &self.link {
            lanes.restarts.on_restart(hook);
        }
    }

    /// Whether commands go to a cluster, where what spans slots is split.
    fn is_cluster(&self) -> bool {
        matches!(self.link, Link::Cluster(_))
    }

    /// The state of the circuit breakers (the worst node's), and which
    /// server it is.
    pub(crate) fn health(&self) -> Health {
        let mut health = self.breakers.health();
        health.server = self.server_info();
        health
    }

    /// One `PING` of the server (a new connection, if the held one broke).
    pub(crate) async fn ping(&self) -> Result<(), Error> {
        self.run_on("ping", 0, |mut c| async move {
            redis::cmd("PING").query_async::<()>(&mut c).await
        })
        .await
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.read_on("get", self.node_of(key), |mut c| async move {
            command("GET", [key]).query_async(&mut c).await
        })
        .await
    }

    pub(crate) async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.mget("get_many", keys.iter().map(String::as_str)).await
    }

    pub(crate) async fn set(&self, key: &str, bytes: &[u8], expiry: Expiry) -> Result<(), Error> {
        self.run("set", key, |mut c| async move {
            set_cmd(key, bytes, expiry).query_async(&mut c).await
        })
        .await
    }

    pub(crate) async fn set_many(
        &self,
        entries: &[(String, Vec<u8>)],
        expiry: Expiry,
    ) -> Result<(), Error> {
        if entries.is_empty() {
            return Ok(());
        }
        let groups = self.groups(entries, |(key, _)| key);
        try_join_all(groups.into_iter().map(|(node, group)| {
            self.run_on("set_many", node, move |mut c| async move {
                let mut pipe = redis::pipe();
                for (key, bytes) in group {
                    pipe.add_command(set_cmd(key, bytes, expiry)).ignore();
                }
                pipe.query_async::<()>(&mut c).await
            })
        }))
        .await
        .map(drop)
    }

    pub(crate) async fn add(&self, key: &str, bytes: &[u8], expiry: Expiry) -> Result<bool, Error> {
        let script = &self.scripts.add;
        self.run("add", key, |mut c| async move {
            script
                .key(key)
                .arg(bytes)
                .arg(script_ttl(expiry))
                .invoke_async(&mut c)
                .await
        })
        .await
    }

    /// The entry at `key` and the versions at `vkeys`, in one round trip.
    pub(crate) async fn read(
        &self,
        key: &str,
        vkeys: &VersionKeys,
    ) -> Result<(Option<Vec<u8>>, Vec<Option<u64>>), Error> {
        if vkeys.is_empty() {
            return Ok((self.get(key).await?, Vec::new()));
        }
        let keys = std::iter::once(key).chain(vkeys);
        let mut values = self.mget("get", keys).await?;
        let versions = values
            .drain(1..)
            .map(|v| v.as_deref().and_then(parse_version))
            .collect();
        Ok((values.pop().flatten(), versions))
    }

    /// The versions at `vkeys` (`None` where missing or unreadable).
    pub(crate) async fn read_versions(
        &self,
        vkeys: &VersionKeys,
    ) -> Result<Vec<Option<u64>>, Error> {
        if vkeys.is_empty() {
            return Ok(Vec::new());
        }
        let values = self.mget("version", vkeys.iter()).await?;
        Ok(values
            .iter()
            .map(|v| v.as_deref().and_then(parse_version))
            .collect())
    }

    /// Creates the version keys `vkeys` at fresh random versions where they
    /// are still missing; the versions they hold afterwards.
    pub(crate) async fn create_versions(&self, vkeys: &[String]) -> Result<Vec<u64>, Error> {
        let groups = self.groups(vkeys, String::as_str);
        let created = try_join_all(groups.into_iter().map(|(node, group)| {
            self.run_on("version", node, move |mut c| async move {
                let mut pipe = redis::pipe();
                for vkey in &group {
                    pipe.cmd("SET")
                        .arg(vkey)
                        .arg(codec::fresh_version())
                        .arg("NX")
                        .ignore();
                    pipe.cmd("GET").arg(vkey);
                }
                let values: Vec<Option<Vec<u8>>> = pipe.query_async(&mut c).await?;
                Ok(group.into_iter().zip(values).collect::<Vec<_>>())
            })
        }))
        .await?;
        let by_key: std::collections::HashMap<&String, Option<Vec<u8>>> =
            created.into_iter().flatten().collect();
        Ok(vkeys
            .iter()
            .map(|vkey| {
                by_key
                    .get(vkey)
                    .and_then(|v| v.as_deref())
                    .and_then(parse_version)
                    .unwrap_or_default()
            })
            .collect())
    }

    /// Sets `key` if it still holds what a read saw; whether it did.
    pub(crate) async fn write_guarded(
        &self,
        key: &str,
        bytes: &[u8],
        expiry: Expiry,
        expected: Expected,
    ) -> Result<bool, Error> {
        let (expected, mode) = expected_args(expected);
        let script = &self.scripts.write_guarded;
        self.run("set", key, |mut c| async move {
            script
                .key(key)
                .arg(expected)
                .arg(bytes)
                .arg(ttl_arg(expiry))
                .arg(mode)
                .invoke_async(&mut c)
                .await
        })
        .await
    }

    /// Deletes `keys`; how many held a live value (not a tombstone).
    pub(crate) async fn delete_many(&self, keys: &[String]) -> Result<u64, Error> {
        if keys.is_empty() {
            return Ok(0);
        }
        let script = &self.scripts.delete;
        let groups = self.groups(keys, String::as_str);
        let deleted = try_join_all(groups.into_iter().map(|(node, group)| {
            self.run_on("delete", node, move |mut c| async move {
                let mut invocation = script.prepare_invoke();
                for key in group {
                    invocation.key(key);
                }
                invocation.invoke_async::<u64>(&mut c).await
            })
        }))
        .await?;
        Ok(deleted.into_iter().sum())
    }

    pub(crate) async fn touch(&self, key: &str, expiry: Expiry) -> Result<bool, Error> {
        let ttl = script_ttl(expiry);
        let script = &self.scripts.touch;
        self.run("touch", key, |mut c| async move {
            script.key(key).arg(ttl).invoke_async(&mut c).await
        })
        .await
    }

    /// Adds `delta` to the counter at `key`; a missing one is created with
    /// `expiry` when `create` says so.
    pub(crate) async fn incr(
        &self,
        key: &str,
        delta: i64,
        expiry: Expiry,
        create: bool,
    ) -> Result<Counted, Error> {
        let script = &self.scripts.incr;
        let ttl = script_ttl(expiry);
        let result = self
            .run("incr", key, |mut c| async move {
                script
                    .key(key)
                    .arg(delta)
                    .arg(ttl)
                    .arg(if create { "1" } else { "0" })
                    .invoke_async::<Option<i64>>(&mut c)
                    .await
            })
            .await;
        match result {
            Ok(Some(value)) => Ok(Counted::Value(value)),
            // Created with a zero timeout: counted from 0, and nothing kept.
            Ok(None) if create => Ok(Counted::Value(delta)),
            Ok(None) => Ok(Counted::Missing),
            Err(Error::Backend {
                source: BackendError::Redis(e),
                ..
            }) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
                Ok(Counted::NotACounter)
            }
            Err(e) => Err(e),
        }
    }

    /// Takes the lease at `key` for `ttl` with `token`, unless another holds it.
    pub(crate) async fn acquire_lease(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, Error> {
        self.run("lock", key, |mut c| async move {
            let reply: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(Expiry::millis(ttl))
                .query_async(&mut c)
                .await?;
            Ok(reply.is_some())
        })
        .await
    }

    /// Removes `key` if it still holds exactly `bytes`; whether it did.
    pub(crate) async fn delete_if_equal(&self, key: &str, bytes: &[u8]) -> Result<bool, Error> {
        let script = &self.scripts.delete_if_equal;
        self.run("delete", key, |mut c| async move {
            script.key(key).arg(bytes).invoke_async(&mut c).await
        })
        .await
    }

    /// Gives the lease at `key` `ttl` more life if `token` still holds it; whether it did.
    pub(crate) async fn extend_lease(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let script = &self.scripts.extend_lease;
        self.run("lock", key, |mut c| async move {
            script
                .key(key)
                .arg(token)
                .arg(Expiry::millis(ttl))
                .invoke_async(&mut c)
                .await
        })
        .await
    }

    /// Whether `key` holds a live value.
    pub(crate) async fn contains(&self, key: &str) -> Result<bool, Error> {
        let script = &self.scripts.contains;
        self.run("contains", key, |mut c| async move {
            script.key(key).invoke_async(&mut c).await
        })
        .await
    }

    /// The remaining life of the live value at `key`: `None` when there is
    /// none, `Some(None)` when it never expires.
    /// How long `key` still lives (`PTTL`): `None` without an expiry or
    /// when it is gone.
    pub(crate) async fn time_left(&self, key: &str) -> Result<Option<Duration>, Error> {
        let ms: i64 = self
            .run("ttl", key, |mut c| async move {
                redis::cmd("PTTL").arg(key).query_async(&mut c).await
            })
            .await?;
        Ok(u64::try_from(ms).ok().map(Duration::from_millis))
    }

    pub(crate) async fn ttl(&self, key: &str) -> Result<Option<Option<Duration>>, Error> {
        let script = &self.scripts.ttl;
        let ms: i64 = self
            .run("ttl", key, |mut c| async move {
                script.key(key).invoke_async(&mut c).await
            })
            .await?;
        Ok(match ms {
            -1 => Some(None),
            ms => u64::try_from(ms)
                .ok()
                .map(|ms| Some(Duration::from_millis(ms))),
        })
    }
}

/// A time to live for a script that tells "at once" apart: milliseconds, `0`
/// for none, `now` for an entry that expires as it is written.
fn script_ttl(expiry: Expiry) -> String {
    match expiry {
        Expiry::Now => "now".to_owned(),
        expiry => ttl_arg(expiry).to_string(),
    }
}

/// A time to live for a script: milliseconds, or 0 for none.
fn ttl_arg(expiry: Expiry) -> u64 {
    match expiry {
        Expiry::After(d) => Expiry::millis(d),
        Expiry::Never | Expiry::Now => 0,
    }
}

/// The command `name` on `keys`, its buffers sized at once: growing them
/// argument by argument cost a tagged hit's `MGET` three reallocations.
fn command<'k>(name: &str, keys: impl IntoIterator<Item = &'k str> + Clone) -> redis::Cmd {
    let (count, bytes) = keys
        .clone()
        .into_iter()
        .fold((1, name.len()), |(count, bytes), key| {
            (count + 1, bytes + key.len())
        });
    let mut cmd = redis::Cmd::with_capacity(count, bytes);
    cmd.arg(name);
    for key in keys {
        cmd.arg(key);
    }
    cmd
}

/// What the guarded-write script expects at the key (its `ARGV[1]`), and
/// how it compares it (`ARGV[4]`: the write id, or the same bytes).
fn expected_args(expected: Expected) -> (Vec<u8>, &'static str) {
    match expected {
        Expected::Absent => (Vec::new(), "id"),
        Expected::WriteId(id) => (id.to_le_bytes().to_vec(), "id"),
        Expected::NotReplaceable => (b"-".to_vec(), "id"),
        Expected::Digits(n) => (n.to_string().into_bytes(), "same"),
    }
}

/// A version as Redis stores it: decimal text.
fn parse_version(bytes: &[u8]) -> Option<u64> {
    codec::parse_decimal(bytes)
}

fn set_cmd(key: &str, bytes: &[u8], expiry: Expiry) -> redis::Cmd {
    match expiry {
        Expiry::Now => {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(key);
            cmd
        }
        Expiry::Never => {
            let mut cmd = redis::Cmd::with_capacity(3, 3 + key.len() + bytes.len());
            cmd.arg("SET").arg(key).arg(bytes);
            cmd
        }
        Expiry::After(d) => {
            // "PX" and up to 20 digits.
            let mut cmd = redis::Cmd::with_capacity(5, 25 + key.len() + bytes.len());
            cmd.arg("SET")
                .arg(key)
                .arg(bytes)
                .arg("PX")
                .arg(Expiry::millis(d));
            cmd
        }
    }
}
