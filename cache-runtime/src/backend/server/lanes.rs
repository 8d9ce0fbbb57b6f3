//! Connection keeping on one server: a few *lanes*, each a connection taken
//! from the deadpool pool and held, cloned for every command (a multiplexed
//! connection pipelines concurrent commands). A broken connection empties
//! its lane and leaves the pool for good; the next call takes a fresh one.
//! Behind Sentinel (`sentinel.rs`), the server is the master of the moment:
//! a lane filled before the master moved is refilled from the new one.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::{Connection, Pool};

use super::reconnect::Reconnect;
use super::restarts::Restarts;
use super::sentinel::Sentinel;
use super::{CHECKOUT_WAIT, Settings};
use crate::{BackendError, Error};

/// Where the lanes' connections come from.
pub(super) enum Source {
    /// One server, at one address.
    Fixed(Pool),
    /// The master that Sentinel names, wherever it is now.
    Sentinel(Arc<Sentinel>),
}

/// The lane a command starts looking from: round robin per thread, so
/// that threads do not contend on a shared counter.
fn next_lane() -> usize {
    thread_local! {
        static NEXT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    NEXT.with(|next| {
        let lane = next.get();
        next.set(lane.wrapping_add(1));
        lane
    })
}

/// One held connection and its replacement state.
pub(super) struct Lane {
    /// The connection, its generation (bumped on every replacement) and
    /// the master's epoch it was made in (behind Sentinel).
    conn: Mutex<(u64, Option<Connection>, u64)>,
    /// Serialises replacing the connection.
    connecting: tokio::sync::Mutex<()>,
}

impl Lane {
    fn new() -> Self {
        Self {
            conn: Mutex::new((0, None, 0)),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// The held connection, unless it was made before the master's `epoch`.
    fn current(&self, epoch: u64) -> Option<(u64, MultiplexedConnection)> {
        let slot = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.2 != epoch {
            return None;
        }
        slot.1.as_ref().map(|conn| (slot.0, (**conn).clone()))
    }

    /// Empties the lane if it still holds the broken connection of `generation`,
    /// and takes that connection out of the pool so nobody gets it again.
    pub(super) fn discard(&self, generation: u64) {
        self.discard_where(|held| held == generation);
    }

    /// Empties the lane, whatever connection it holds.
    fn discard_any(&self) {
        self.discard_where(|_| true);
    }

    fn discard_where(&self, matches: impl FnOnce(u64) -> bool) {
        let broken = {
            let mut slot = self
                .conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if matches(slot.0) { slot.1.take() } else { None }
        };
        if let Some(conn) = broken {
            drop(Connection::take(conn));
        }
    }
}

/// The held connections to one server, and the pool they come from.
pub(super) struct Lanes {
    source: Source,
    held: Box<[Lane]>,
    /// The most a call waits for a connection: the pool's wait, then a connect.
    checkout_timeout: Duration,
    reconnect: Reconnect,
    /// The server's run id, checked on every new connection.
    pub(super) restarts: Restarts,
}

impl Lanes {
    pub(super) fn new(source: Source, settings: &Settings, redacted_url: String) -> Self {
        Self {
            source,
            held: (0..settings.connections).map(|_| Lane::new()).collect(),
            checkout_timeout: CHECKOUT_WAIT + settings.connect_timeout,
            reconnect: Reconnect::new(redacted_url),
            restarts: Restarts::new(),
        }
    }

    /// The state of the pool of the moment (none before Sentinel named a master).
    pub(super) fn status(&self) -> Option<deadpool_redis::Status> {
        match &self.source {
            Source::Fixed(pool) => Some(pool.status()),
            Source::Sentinel(sentinel) => sentinel.current_pool().map(|pool| pool.status()),
        }
    }

    /// The sentinels, when they name the server.
    pub(super) fn sentinel(&self) -> Option<&Arc<Sentinel>> {
        match &self.source {
            Source::Fixed(_) => None,
            Source::Sentinel(sentinel) => Some(sentinel),
        }
    }

    /// The master's epoch: bumped by Sentinel whenever the master moves.
    fn epoch(&self) -> u64 {
        match &self.source {
            Source::Fixed(_) => 0,
            Source::Sentinel(sentinel) => sentinel.epoch(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.held.len()
    }

    /// Connects every lane now, returning the first error.
    pub(super) async fn connect_all(&self) -> Result<(), Error> {
        for lane in &*self.held {
            self.connect(lane, "connect").await?;
        }
        Ok(())
    }

    /// A connection for one command, and where it came from.
    pub(super) async fn checkout(
        &self,
        op: &'static str,
    ) -> Result<(&Lane, u64, MultiplexedConnection), Error> {
        let start = next_lane();
        let count = self.held.len();
        let epoch = self.epoch();
        for i in 0..count {
            let lane = &self.held[(start + i) % count];
            if let Some(found) = lane.current(epoch) {
                return Ok((lane, found.0, found.1));
            }
        }
        let lane = &self.held[start % count];
        // Rare (a lane without a connection): boxed, to keep every command's
        // future small, and behind `dyn`, so that the futures of the calls
        // around it do not carry the connection's whole type.
        let connect: Pin<Box<dyn Future<Output = _> + Send + '_>> = Box::pin(tokio::time::timeout(
            self.checkout_timeout,
            self.connect(lane, op),
        ));
        let (generation, conn) = connect.await.map_err(|_| Error::Timeout {
            op,
            after: self.checkout_timeout,
        })??;
        Ok((lane, generation, conn))
    }

    /// Fills an empty lane from the pool (one caller at a time; the others wait for it).
    async fn connect(
        &self,
        lane: &Lane,
        op: &'static str,
    ) -> Result<(u64, MultiplexedConnection), Error> {
        let _connecting = lane.connecting.lock().await;
        if let Some(found) = lane.current(self.epoch()) {
            return Ok(found);
        }
        self.reconnect.may_try()?;
        let (epoch, pool) = match &self.source {
            Source::Fixed(pool) => (0, pool.clone()),
            // Asks the sentinels which server is the master now.
            Source::Sentinel(sentinel) => match sentinel.master(op).await {
                Ok(found) => found,
                Err(error) => {
                    self.reconnect.failed();
                    return Err(error);
                }
            },
        };
        match pool.get().await {
            Ok(conn) => {
                let mut multiplexed = (*conn).clone();
                // A restart is noticed before the connection carries a command.
                if let Err(source) = self.restarts.check(&mut multiplexed).await {
                    self.reconnect.failed();
                    drop(Connection::take(conn));
                    return Err(Error::Backend {
                        op,
                        source: BackendError::Redis(source),
                    });
                }
                self.reconnect.succeeded();
                let (generation, old) = {
                    let mut slot = lane
                        .conn
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    slot.0 += 1;
                    slot.2 = epoch;
                    (slot.0, slot.1.replace(conn))
                };
                // A connection to a master that moved leaves its pool for good.
                if let Some(old) = old {
                    drop(Connection::take(old));
                }
                Ok((generation, multiplexed))
            }
            Err(source) => {
                self.reconnect.failed();
                Err(Error::Backend {
                    op,
                    source: source.into(),
                })
            }
        }
    }

    /// Empties every lane, so that the next call starts on a new connection.
    pub(super) fn discard_all(&self) {
        for lane in &*self.held {
            lane.discard_any();
        }
    }
}
