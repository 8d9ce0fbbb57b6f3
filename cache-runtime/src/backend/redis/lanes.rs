//! Connection keeping on one server: a few *lanes*, each a connection taken
//! from the deadpool pool and held, cloned for every command (a multiplexed
//! connection pipelines concurrent commands). A broken connection empties
//! its lane and leaves the pool for good; the next call takes a fresh one.

use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::{Connection, Pool};

use super::reconnect::Reconnect;
use crate::Error;

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
    /// The connection and its generation, bumped on every replacement.
    conn: Mutex<(u64, Option<Connection>)>,
    /// Serialises replacing the connection.
    connecting: tokio::sync::Mutex<()>,
}

impl Lane {
    fn new() -> Self {
        Self {
            conn: Mutex::new((0, None)),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        let slot = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
    pub(super) pool: Pool,
    held: Box<[Lane]>,
    /// The most a call waits for a connection: the pool's wait, then a connect.
    checkout_timeout: Duration,
    reconnect: Reconnect,
}

impl Lanes {
    pub(super) fn new(
        pool: Pool,
        count: usize,
        checkout_timeout: Duration,
        redacted_url: String,
    ) -> Self {
        Self {
            pool,
            held: (0..count).map(|_| Lane::new()).collect(),
            checkout_timeout,
            reconnect: Reconnect::new(redacted_url),
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
        for i in 0..count {
            let lane = &self.held[(start + i) % count];
            if let Some(found) = lane.current() {
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
        if let Some(found) = lane.current() {
            return Ok(found);
        }
        self.reconnect.may_try()?;
        match self.pool.get().await {
            Ok(conn) => {
                self.reconnect.succeeded();
                let multiplexed = (*conn).clone();
                let mut slot = lane
                    .conn
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                slot.0 += 1;
                slot.1 = Some(conn);
                Ok((slot.0, multiplexed))
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
