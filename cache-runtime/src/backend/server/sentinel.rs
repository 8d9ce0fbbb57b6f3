//! Redis behind Sentinel: the master is whichever server the sentinels name.
//!
//! The sentinels are asked (`SENTINEL get-master-addr-by-name`) when a lane
//! connects: at start, and again after a connection failed or a reply said
//! the server cannot serve (`READONLY`: a demoted master), since both empty
//! a lane (`link.rs`). A task subscribed to `+promoted-slave` and
//! `+switch-master` on one sentinel at a time moves the master as soon as
//! the sentinels announce a promotion.
//! Each move bumps the master's *epoch*: lanes filled in an earlier epoch
//! are refilled from the new master, and the local tier's tracking moves
//! (and the tier is flushed) on the same signal.

use std::sync::atomic::{
    AtomicBool, AtomicU64, AtomicUsize, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed,
};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use deadpool_redis::Pool;
use deadpool_redis::redis::{self, AsyncConnectionConfig, RedisError};
use futures_util::StreamExt;
use tokio::sync::watch;

use super::pool::pool;
use super::{Settings, redact, with_address};
use crate::Error;

/// An answer of the sentinels younger than this is not asked again.
const FRESH: Duration = Duration::from_millis(100);

/// The sentinels, the master they name, and the pool of connections to it.
pub(super) struct Sentinel {
    /// Each sentinel's client, and its URL without its password.
    sentinels: Vec<(redis::Client, String)>,
    /// The master's name, as the sentinels know it.
    name: String,
    /// The data nodes' URL: scheme, credentials and database, its host the master's name.
    data_url: String,
    settings: Settings,
    master: Mutex<Master>,
    /// Bumped on every move of the master (0: none known yet).
    epoch: AtomicU64,
    /// Told the epoch on every move.
    moved: watch::Sender<u64>,
    /// One question to the sentinels at a time.
    asking: tokio::sync::Mutex<()>,
    /// Whether the task following the sentinels' events was started.
    watching: AtomicBool,
    /// The sentinel that answered last: asked first next time.
    first: AtomicUsize,
}

/// The master of the moment.
#[derive(Default)]
struct Master {
    address: Option<(String, u16)>,
    url: Option<String>,
    pool: Option<Pool>,
    /// When the sentinels last answered.
    asked: Option<Instant>,
}

impl Sentinel {
    /// The data nodes' URL, its host the master's name.
    pub(super) fn data_url(&self) -> &str {
        &self.data_url
    }

    /// The data nodes' URL and the sentinels', without passwords.
    pub(super) fn redacted(&self) -> String {
        let sentinels: Vec<&str> = self.sentinels.iter().map(|(_, url)| url.as_str()).collect();
        format!(
            "{} (Sentinel: {})",
            redact(&self.data_url),
            sentinels.join(",")
        )
    }

    /// The URL of the master now, the sentinels asked when none is known.
    pub(super) async fn url_now(self: &Arc<Self>) -> Result<String, Error> {
        if let Some(url) = self.state().url.clone() {
            return Ok(url);
        }
        self.master("tracking").await?;
        self.state().url.clone().ok_or_else(|| Error::Unavailable {
            reason: "Sentinel named no Redis master".to_owned(),
        })
    }

    /// Told the epoch whenever the master moves.
    pub(super) fn moves(&self) -> watch::Receiver<u64> {
        self.moved.subscribe()
    }

    pub(super) fn new(
        sentinels: &[String],
        master: &str,
        settings: &Settings,
    ) -> Result<Self, Error> {
        if sentinels.is_empty() {
            return Err(config(
                "Redis Sentinel needs at least one sentinel URL".to_owned(),
            ));
        }
        let (name, data_url) = master_url(master)?;
        // The data nodes' URL is checked once, as it will be used.
        redis::Client::open(with_address(&data_url, "127.0.0.1", 6379).as_str()).map_err(
            |source| Error::Config {
                reason: format!("invalid Redis Sentinel master `{}`", redact(master)),
                source: Some(source.into()),
            },
        )?;
        let clients = sentinels
            .iter()
            .map(|url| {
                let url = url.trim();
                client(url, settings)
                    .map(|client| (client, redact(url)))
                    .map_err(|source| Error::Config {
                        reason: format!("invalid Redis Sentinel URL `{}`", redact(url)),
                        source: Some(source.into()),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            sentinels: clients,
            name,
            data_url,
            settings: settings.clone(),
            master: Mutex::new(Master::default()),
            epoch: AtomicU64::new(0),
            moved: watch::Sender::new(0),
            asking: tokio::sync::Mutex::new(()),
            watching: AtomicBool::new(false),
            first: AtomicUsize::new(0),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Master> {
        self.master
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The master's epoch, bumped on every move.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Acquire)
    }

    /// The pool of connections to the master of the moment, if one is known.
    pub(super) fn current_pool(&self) -> Option<Pool> {
        self.state().pool.clone()
    }

    /// The master now, and a pool of connections to it: the sentinels are
    /// asked (unless they just answered); when none answers, the master
    /// known last is kept.
    pub(super) async fn master(self: &Arc<Self>, op: &'static str) -> Result<(u64, Pool), Error> {
        self.watch();
        let _asking = self.asking.lock().await;
        {
            let master = self.state();
            if let (Some(asked), Some(pool)) = (master.asked, &master.pool)
                && asked.elapsed() < FRESH
            {
                return Ok((self.epoch(), pool.clone()));
            }
        }
        match self.ask().await {
            Ok(address) => self.move_to(address),
            Err(error) => match self.current_pool() {
                Some(pool) => {
                    tracing::warn!(op, %error, "cachette: keeping the Redis master known last");
                    Ok((self.epoch(), pool))
                }
                None => Err(error),
            },
        }
    }

    /// Asks each sentinel in turn for the master's address, starting with
    /// the one that answered last.
    async fn ask(&self) -> Result<(String, u16), Error> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.connect_timeout))
            .set_response_timeout(Some(self.settings.command_timeout));
        let mut failures = Vec::new();
        let mut refused = None;
        let first = self.first.load(Relaxed);
        for index in (0..self.sentinels.len()).map(|i| (first + i) % self.sentinels.len()) {
            let (client, redacted) = &self.sentinels[index];
            let answer = async {
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&self.name)
                    .query_async::<Option<(String, u16)>>(&mut conn)
                    .await
            };
            match answer.await {
                Ok(Some(address)) => {
                    self.first.store(index, Relaxed);
                    return Ok(address);
                }
                Ok(None) => failures.push(format!("{redacted} knows no master of that name")),
                Err(error) => {
                    failures.push(format!("{redacted}: {error}"));
                    if error.kind() == redis::ErrorKind::AuthenticationFailed
                        || error.to_string().contains("WRONGPASS")
                    {
                        refused = Some(error);
                    }
                }
            }
        }
        if let Some(error) = refused {
            // A refused password is the caller's to fix: `build` returns it.
            return Err(Error::Backend {
                op: "sentinel",
                source: crate::BackendError::Redis(error),
            });
        }
        Err(Error::Unavailable {
            reason: format!(
                "no sentinel named the Redis master `{}` ({})",
                self.name,
                failures.join("; ")
            ),
        })
    }

    /// Makes `address` the master (a new epoch if it moved).
    fn move_to(&self, address: (String, u16)) -> Result<(u64, Pool), Error> {
        let mut master = self.state();
        master.asked = Some(Instant::now());
        if let (Some(known), Some(pool)) = (&master.address, &master.pool)
            && *known == address
        {
            return Ok((self.epoch(), pool.clone()));
        }
        let host = if address.0.contains(':') {
            format!("[{}]", address.0)
        } else {
            address.0.clone()
        };
        let url = with_address(&self.data_url, &host, address.1);
        let pool = pool(&url, &self.settings)?;
        if let Some((host, port)) = &master.address {
            tracing::warn!(
                master = %self.name,
                "cachette: the Redis master moved from {host}:{port} to {}:{}",
                address.0,
                address.1
            );
        }
        master.address = Some(address);
        master.url = Some(url);
        master.pool = Some(pool.clone());
        let epoch = self.epoch.fetch_add(1, AcqRel) + 1;
        drop(master);
        self.moved.send_replace(epoch);
        Ok((epoch, pool))
    }

    /// Starts following the sentinels' events, once, on the current Tokio runtime.
    fn watch(self: &Arc<Self>) {
        if self.watching.load(Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.watching.swap(true, Relaxed) {
            runtime.spawn(follow_switches(Arc::downgrade(self)));
        }
    }
}

/// Follows `+promoted-slave` and `+switch-master` on one sentinel at a time
/// for as long as the backend lives, moving the master at once.
async fn follow_switches(sentinel: Weak<Sentinel>) {
    let mut next = 0;
    loop {
        let Some(this) = sentinel.upgrade() else {
            return;
        };
        let (client, _) = &this.sentinels[next % this.sentinels.len()];
        let client = client.clone();
        let name = this.name.clone();
        let timeout = this.settings.connect_timeout;
        drop(this);
        next += 1;
        let subscribed = tokio::time::timeout(timeout, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub
                .subscribe(&["+switch-master", "+promoted-slave"])
                .await?;
            Ok::<_, RedisError>(pubsub)
        })
        .await;
        if let Ok(Ok(pubsub)) = subscribed {
            // A switch may have happened while nobody listened.
            if let Some(this) = sentinel.upgrade() {
                let _ = this.master("sentinel").await;
            }
            let mut messages = pubsub.into_on_message();
            loop {
                let message = tokio::select! {
                    message = messages.next() => message,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {
                        if sentinel.strong_count() == 0 {
                            return;
                        }
                        continue;
                    }
                };
                // The sentinel is gone: listen to the next one.
                let Some(message) = message else { break };
                let Ok(payload) = message.get_payload::<String>() else {
                    continue;
                };
                if let Some((host, port)) = new_master(&name, &payload)
                    && let Some(this) = sentinel.upgrade()
                {
                    let _asking = this.asking.lock().await;
                    if let Err(error) = this.move_to((host, port)) {
                        tracing::warn!(%error, "cachette: cannot follow the Redis master");
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The master's new address, from a sentinel's event about the master
/// `name`: `+switch-master` (`<name> <old ip> <old port> <new ip> <new
/// port>`, once the failover is over) or `+promoted-slave` (`slave <ip:port>
/// <ip> <port> @ <name> <old ip> <old port>`, as soon as the replica took
/// over: the sentinels already name it then, while the old master, if it
/// still runs, has not been demoted yet and would take writes that are lost).
fn new_master(name: &str, payload: &str) -> Option<(String, u16)> {
    let parts: Vec<&str> = payload.split(' ').collect();
    match parts[..] {
        [switched, _, _, host, port] if switched == name => {
            Some((host.to_owned(), port.parse().ok()?))
        }
        ["slave", _, host, port, "@", master, ..] if master == name => {
            Some((host.to_owned(), port.parse().ok()?))
        }
        _ => None,
    }
}

/// A client of `url`, trusting the certificate authority of `settings` for `rediss://`.
fn client(url: &str, settings: &Settings) -> Result<redis::Client, RedisError> {
    match &settings.tls_root {
        #[cfg(feature = "tls")]
        Some(super::Pem(root)) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root.clone()),
            },
        ),
        _ => redis::Client::open(url),
    }
}

/// The master's name and the data nodes' URL from `master`: a bare name
/// (`mymaster`: `redis://`, no credentials, database 0), or a URL whose
/// host is the name (`rediss://app:secret@mymaster/2`).
pub(crate) fn master_url(master: &str) -> Result<(String, String), Error> {
    let master = master.trim();
    if master.is_empty() {
        return Err(config(
            "Redis Sentinel needs the master's name (REDIS_SENTINEL_MASTER)".to_owned(),
        ));
    }
    let Some((scheme, rest)) = master.split_once("://") else {
        if master.contains(['/', '@', ':', '?', ' ']) {
            return Err(config(format!(
                "invalid Redis Sentinel master name `{master}`: a name, or a URL such as `redis://:password@{master}/0`"
            )));
        }
        return Ok((master.to_owned(), format!("redis://{master}")));
    };
    if scheme != "redis" && scheme != "rediss" {
        return Err(config(format!(
            "invalid Redis Sentinel master `{}`: the scheme must be `redis` or `rediss`",
            redact(master)
        )));
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = rest[..end]
        .rsplit_once('@')
        .map_or(&rest[..end], |(_, host)| host);
    if host.is_empty() || host.contains(':') {
        return Err(config(format!(
            "invalid Redis Sentinel master `{}`: its host must be the master's name (no port)",
            redact(master)
        )));
    }
    Ok((host.to_owned(), master.to_owned()))
}

fn config(reason: String) -> Error {
    Error::Config {
        reason,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::master_url;

    #[test]
    fn promotions_and_switches_name_the_new_master() {
        use super::new_master;
        let switched = "mymaster 10.0.0.1 6379 10.0.0.2 6380";
        let promoted = "slave 10.0.0.2:6380 10.0.0.2 6380 @ mymaster 10.0.0.1 6379";
        for payload in [switched, promoted] {
            assert_eq!(
                new_master("mymaster", payload),
                Some(("10.0.0.2".to_owned(), 6380))
            );
            assert_eq!(new_master("other", payload), None);
        }
        assert_eq!(
            new_master("mymaster", "mymaster 10.0.0.1 6379 10.0.0.2 x"),
            None
        );
    }

    #[test]
    fn a_master_is_a_name_or_a_url_named_after_it() {
        assert_eq!(
            master_url("mymaster").unwrap(),
            ("mymaster".to_owned(), "redis://mymaster".to_owned())
        );
        assert_eq!(
            master_url("rediss://app:pw@mymaster/2").unwrap(),
            (
                "mymaster".to_owned(),
                "rediss://app:pw@mymaster/2".to_owned()
            )
        );
        for bad in [
            "",
            "my master",
            "redis://:pw@host:6379",
            "http://mymaster",
            "redis://",
        ] {
            let error = master_url(bad).unwrap_err().to_string();
            assert!(error.contains("master"), "{bad}: {error}");
        }
    }
}
