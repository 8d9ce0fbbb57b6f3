//! How commands reach Redis: through held connections to one server
//! (`lanes.rs`) or through a cluster connection (`cluster.rs`). Every
//! command runs through [`RedisBackend::run`] (or `run_on` a node): the
//! circuit breaker of the node that serves its key, a connection, the
//! command deadline, and what a failure means. A read runs through
//! [`RedisBackend::read_on`]: the same, sent on a cluster straight to the
//! master (`nodes.rs`), through the cluster connection when it cannot be.

use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use super::RedisBackend;
use super::cluster::ClusterLink;
use super::lanes::Lanes;
use crate::backend::breaker::Pass;
use crate::{BackendError, Error};

/// The connections of a backend (one per backend, behind its `Arc`).
#[allow(clippy::large_enum_variant)] // one per backend
pub(super) enum Link {
    Single(Lanes),
    Cluster(ClusterLink),
}

/// One command's connection: cloned from a held one, multiplexed.
pub(super) enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
    /// Straight to one master of a cluster: what it is sent must be served there.
    Node(MultiplexedConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) | Self::Node(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) | Self::Node(conn) => {
                conn.req_packed_commands(pipeline, offset, count)
            }
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) | Self::Node(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

impl RedisBackend {
    /// Connects now, returning the first error.
    pub(crate) async fn connect_all(&self) -> Result<(), Error> {
        match &self.link {
            Link::Single(lanes) => lanes.connect_all().await,
            Link::Cluster(cluster) => cluster.connect_all().await,
        }
    }

    /// The node serving `key`: the one server, or the master of its slot
    /// (node 0 while the cluster's topology is unknown).
    pub(super) fn node_of(&self, key: &str) -> usize {
        match &self.link {
            Link::Single(_) => 0,
            Link::Cluster(cluster) => cluster.node_of(key),
        }
    }

    /// The node serving the cluster's `slot` (node 0 on one server, and
    /// while the topology is unknown).
    pub(super) fn node_serving(&self, slot: u16) -> usize {
        match &self.link {
            Link::Single(_) => 0,
            Link::Cluster(cluster) => cluster.node_serving(slot),
        }
    }

    /// A key was not where the cluster's topology put it: look again.
    pub(super) fn slots_moved(&self) {
        if let Link::Cluster(cluster) = &self.link {
            cluster.look_again();
        }
    }

    /// The node at `(host, port)` (node 0 on one server).
    pub(super) fn node_at(&self, host: &str, port: u16) -> usize {
        match &self.link {
            Link::Single(_) => 0,
            Link::Cluster(cluster) => cluster.node_at(host, port),
        }
    }

    /// Runs one request on the keys of one slot, `key` among them, under
    /// the command deadline, unless the circuit of the node serving it is open.
    pub(super) async fn run<T, F, Fut>(
        &self,
        op: &'static str,
        key: &str,
        request: F,
    ) -> Result<T, Error>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.run_on(op, self.node_of(key), request).await
    }

    /// A read, as [`run_on`](Self::run_on) runs it; on a cluster, sent
    /// straight to `node`'s master when its direct connection is made, and
    /// again through the cluster connection when that one broke at once or
    /// the master no longer serves the keys (`MOVED`, `ASK`), counted once
    /// by the breaker. A read that timed out is not sent again.
    pub(super) async fn read_on<T, F, Fut>(
        &self,
        op: &'static str,
        node: usize,
        request: F,
    ) -> Result<T, Error>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let Link::Cluster(cluster) = &self.link else {
            return self.run_on(op, node, request).await;
        };
        let Some(direct) = cluster.direct(node) else {
            return self.run_on(op, node, request).await;
        };
        let request = &request;
        let read = |conn| async move {
            match request(conn).await {
                Err(error) => self.read_again(op, node, error, request).await,
                read => read,
            }
        };
        self.run_via(op, node, Some(direct), read).await
    }

    /// A read sent straight to `node`'s master failed with `error`: sent
    /// again through the cluster connection when the direct one broke at
    /// once or the master no longer serves the keys (`MOVED`, `ASK`);
    /// otherwise the error stands. A timeout spent the deadline: the read
    /// ends there (a hung master costs a call one deadline, not two).
    pub(super) async fn read_again<T, F, Fut>(
        &self,
        op: &'static str,
        node: usize,
        error: RedisError,
        request: &F,
    ) -> RedisResult<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let Link::Cluster(cluster) = &self.link else {
            return Err(error);
        };
        if error.is_timeout() || (error.redirect_node().is_none() && !is_broken(&error)) {
            return Err(error);
        }
        cluster.direct_failed(node, is_broken(&error));
        match cluster.checkout(op).await {
            Ok(fallback) => request(Conn::Cluster(fallback)).await,
            Err(_) => Err(error),
        }
    }

    /// The direct connection to a cluster's master `node`, when it is made
    /// (see [`read_on`](Self::read_on)).
    pub(super) fn direct(&self, node: usize) -> Option<MultiplexedConnection> {
        match &self.link {
            Link::Cluster(cluster) => cluster.direct(node),
            Link::Single(_) => None,
        }
    }

    /// [`run`](Self::run) through the circuit of `node` (0: the one server,
    /// or on a cluster, commands that no key routes).
    pub(super) async fn run_on<T, F, Fut>(
        &self,
        op: &'static str,
        node: usize,
        request: F,
    ) -> Result<T, Error>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.run_via(op, node, None, request).await
    }

    /// [`run_on`](Self::run_on) on `direct`, a master's own connection,
    /// when given.
    async fn run_via<T, F, Fut>(
        &self,
        op: &'static str,
        node: usize,
        direct: Option<MultiplexedConnection>,
        request: F,
    ) -> Result<T, Error>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        // Inside a budget, the budget's clock runs until the command ends.
        let call = crate::budget::call();
        if call.as_ref().is_some_and(|call| call.left().is_zero()) {
            return Err(Error::BudgetSpent { op });
        }
        let pass = self
            .breakers
            .admit(node)
            .map_err(|retry_in| Error::CircuitOpen { op, retry_in })?;
        if let Some(call) = call {
            // Rare (inside a budget): boxed, to keep every command's future small.
            return Box::pin(self.run_within(op, pass, call, direct, request)).await;
        }
        self.run_admitted(op, pass, direct, request).await
    }

    /// [`run`](Self::run) under what is left of the request's budget.
    async fn run_within<T, F, Fut>(
        &self,
        op: &'static str,
        pass: Pass<'_>,
        call: crate::budget::Call,
        direct: Option<MultiplexedConnection>,
        request: F,
    ) -> Result<T, Error>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let left = call.left();
        match tokio::time::timeout(left, self.run_admitted(op, pass, direct, request)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout { op, after: left }),
        }
    }

    /// Runs one admitted request under the command deadline.
    async fn run_admitted<T, F, Fut>(
        &self,
        op: &'static str,
        pass: Pass<'_>,
        direct: Option<MultiplexedConnection>,
        request: F,
    ) -> Result<T, Error>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        match &self.link {
            Link::Single(lanes) => {
                let (lane, generation, conn) = match lanes.checkout(op).await {
                    Ok(found) => found,
                    Err(error) => {
                        self.failed(pass);
                        return Err(error);
                    }
                };
                // The connection enforces the command deadline (its response timeout).
                let result = request(Conn::Single(conn)).await;
                self.settle(op, pass, result, || lane.discard(generation))
            }
            Link::Cluster(cluster) => {
                let conn = match direct {
                    // The master's connection enforces the command deadline
                    // (its response timeout).
                    Some(direct) => Conn::Node(direct),
                    None => match cluster.checkout(op).await {
                        Ok(conn) => Conn::Cluster(conn),
                        Err(error) => {
                            self.failed(pass);
                            return Err(error);
                        }
                    },
                };
                // The cluster connection enforces the command deadline: its
                // overall response timeout bounds each command with its
                // redirections, reconnects and retries (redis-rs'
                // `overall_response_timeout`, the response timeout unless set).
                let result = request(conn).await;
                self.settle(op, pass, result, || {})
            }
        }
    }

    /// What a request's result means for the breaker and the connection.
    pub(super) fn settle<T>(
        &self,
        op: &'static str,
        pass: Pass<'_>,
        result: RedisResult<T>,
        discard: impl FnOnce(),
    ) -> Result<T, Error> {
        match result {
            Ok(value) => {
                if pass.succeeded() {
                    self.probed();
                }
                Ok(value)
            }
            Err(error) if error.is_timeout() => {
                self.failed(pass);
                Err(Error::Timeout {
                    op,
                    after: self.command_timeout,
                })
            }
            Err(error) => {
                if is_broken(&error) || cannot_serve(&error) {
                    discard();
                    self.failed(pass);
                } else if pass.succeeded() {
                    // An error reply: the server is there.
                    self.probed();
                }
                Err(Error::Backend {
                    op,
                    source: BackendError::Redis(error),
                })
            }
        }
    }

    /// Counts a failure of the pass's node; when it opens the circuit of
    /// one server, held connections are dropped so that the probe starts on
    /// a new one. On a cluster, redis-rs replaces the connection to a node
    /// on its own; the slots are looked up again when a master's circuit
    /// opens and each time a probe finds it still failing (its slots may
    /// have moved to a promoted replica meanwhile: until they are looked up,
    /// its keys' calls would go on probing the dead master), and the whole
    /// connection is dropped only when the circuit of node 0 (no master
    /// known) opens.
    fn failed(&self, pass: Pass<'_>) {
        let (node, probe) = (pass.node(), pass.is_probe());
        let opened = pass.failed();
        match &self.link {
            Link::Single(lanes) if opened => lanes.discard_all(),
            Link::Cluster(cluster) if node == 0 && opened => cluster.discard(),
            Link::Cluster(cluster) if opened || probe => cluster.look_again(),
            Link::Single(_) | Link::Cluster(_) => {}
        }
    }

    /// A probe closed a node's circuit: on a cluster, its slots may be
    /// served by another master now.
    fn probed(&self) {
        if let Link::Cluster(cluster) = &self.link {
            cluster.look_again();
        }
    }
}

/// Whether an error means the connection itself is gone.
fn is_broken(error: &RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_unrecoverable_error()
}

/// Whether an error reply says that the server at the other end cannot
/// serve the cache now: demoted to a replica (`READONLY`: behind an
/// endpoint that fails over, a new connection may reach the new master),
/// loading its data, cut from its master, or a cluster without its slots.
/// The connection is replaced, and the failure counts for the breaker.
fn cannot_serve(error: &RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::ReadOnly
                | ServerErrorKind::BusyLoading
                | ServerErrorKind::MasterDown
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
        )
    )
}
