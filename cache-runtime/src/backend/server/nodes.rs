//! Held connections straight to each master of a cluster, for reads.
//!
//! A `GET` (or a node's part of an `MGET`) sent on one costs what it costs
//! on one server: one multiplexed connection and its response timeout.
//! Through redis-rs' cluster connection the same command also crosses the
//! cluster's routing task and runs under two deadlines (the node's and the
//! overall one), about half as much again in client CPU.
//!
//! The slot map of `cluster.rs` picks the master. The cluster connection
//! stays the way of every write, and of a read the direct way cannot take:
//! while a master's connection is being made, after it broke, and when the
//! master answered `MOVED` or `ASK` (its slots are then looked up again).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{self, AsyncConnectionConfig, RedisError};

use super::{Settings, redact, with_address};

/// How long after a failed connect to a master its reads keep going
/// through the cluster connection before the next attempt.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The direct connections of a cluster's masters, by node (the breakers'
/// index; node 0, what no master is known for, has none).
pub(super) struct Nodes {
    masters: Box<[Mutex<Node>]>,
    /// The first seed's URL, with its credentials: each master's URL is it
    /// with the master's address.
    url: String,
    config: AsyncConnectionConfig,
    #[cfg(feature = "tls")]
    tls_root: Option<Vec<u8>>,
}

/// One master: where it is, and its connection once made.
#[derive(Default)]
struct Node {
    address: Option<(String, u16)>,
    conn: Option<MultiplexedConnection>,
    connecting: bool,
    /// After a failed connect: not before then.
    retry_at: Option<Instant>,
}

impl Nodes {
    pub(super) fn new(count: usize, url: String, settings: &Settings) -> Self {
        Self {
            masters: (0..count).map(|_| Mutex::default()).collect(),
            url,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(settings.connect_timeout))
                .set_response_timeout(Some(settings.command_timeout)),
            #[cfg(feature = "tls")]
            tls_root: settings.tls_root.as_ref().map(|pem| pem.0.clone()),
        }
    }

    fn node(&self, node: usize) -> Option<std::sync::MutexGuard<'_, Node>> {
        let node = self.masters.get(node).filter(|_| node != 0)?;
        Some(node.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// `node` is the master at `(host, port)` (from `CLUSTER NODES`).
    pub(super) fn learn(&self, node: usize, host: &str, port: u16) {
        if let Some(mut node) = self.node(node)
            && node.address.is_none()
        {
            node.address = Some((host.to_owned(), port));
        }
    }

    /// The connection to `node`, cloned, if it is made; otherwise `None`,
    /// and a connect starts in a task of its own (unless one is under way
    /// or failed less than [`RETRY_AFTER`] ago).
    pub(super) fn conn(self: &Arc<Self>, node: usize) -> Option<MultiplexedConnection> {
        let mut held = self.node(node)?;
        if let Some(conn) = &held.conn {
            return Some(conn.clone());
        }
        let address = held.address.clone()?;
        if held.connecting || held.retry_at.is_some_and(|at| Instant::now() < at) {
            return None;
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        held.connecting = true;
        drop(held);
        runtime.spawn(Arc::clone(self).connect(node, address));
        None
    }

    async fn connect(self: Arc<Self>, node: usize, (host, port): (String, u16)) {
        // An IPv6 address goes in brackets in a URL.
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        let url = with_address(&self.url, &host, port);
        let made = match self.client(&url) {
            Ok(client) => {
                client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await
            }
            Err(error) => Err(error),
        };
        let Some(mut held) = self.node(node) else {
            return;
        };
        held.connecting = false;
        match made {
            Ok(conn) => {
                held.conn = Some(conn);
                held.retry_at = None;
            }
            Err(error) => {
                tracing::debug!(%error, master = %redact(&url), "cannot connect to a cluster master directly");
                held.retry_at = Some(Instant::now() + RETRY_AFTER);
            }
        }
    }

    #[cfg_attr(not(feature = "tls"), allow(clippy::unused_self))]
    fn client(&self, url: &str) -> Result<redis::Client, RedisError> {
        #[cfg(feature = "tls")]
        if let Some(root) = &self.tls_root {
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root.clone()),
            };
            return redis::Client::build_with_tls(url, certificates);
        }
        redis::Client::open(url)
    }

    /// Drops `node`'s connection (it broke, or its server cannot serve):
    /// the next read connects anew.
    pub(super) fn drop_conn(&self, node: usize) {
        if let Some(mut held) = self.node(node) {
            held.conn = None;
        }
    }
}
