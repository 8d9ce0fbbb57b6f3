//! Connection keeping: a few *lanes*, each a connection taken from the
//! pool and held, cloned for every command (a multiplexed connection
//! pipelines concurrent commands). A broken connection empties its lane and
//! leaves the pool for good; the next call takes a fresh one. Every command
//! runs through [`RedisBackend::run`]: the circuit breaker, a lane, the
//! command deadline.

use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;

use deadpool_redis::Connection;
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{RedisError, RedisResult};

use super::RedisBackend;
use crate::{BackendError, Error};

/// How long calls fail at once after a failed connect, before one tries again.
const RECONNECT_INTERVAL_MS: u64 = 500;

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
    pub(super) fn new() -> Self {
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
    fn discard(&self, generation: u64) {
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

impl RedisBackend {
    /// Connects every lane now, returning the first error.
    pub(crate) async fn connect_all(&self) -> Result<(), Error> {
        for lane in &*self.lanes {
            self.connect(lane, "connect").await?;
        }
        Ok(())
    }

    /// A connection for one command, and where it came from.
    async fn checkout(
        &self,
        op: &'static str,
    ) -> Result<(&Lane, u64, MultiplexedConnection), Error> {
        let start = next_lane();
        let count = self.lanes.len();
        for i in 0..count {
            let lane = &self.lanes[(start + i) % count];
            if let Some(found) = lane.current() {
                return Ok((lane, found.0, found.1));
            }
        }
        let lane = &self.lanes[start % count];
        // Rare (a lane without a connection): boxed, to keep every command's future small.
        let connect = Box::pin(tokio::time::timeout(
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
        let failed = self.failed_connect_ms.load(Relaxed);
        if failed != u64::MAX && self.now_ms().saturating_sub(failed) < RECONNECT_INTERVAL_MS {
            return Err(Error::Unavailable {
                reason: format!("cannot connect to {}; retrying shortly", self.redacted_url),
            });
        }
        match self.pool.get().await {
            Ok(conn) => {
                self.failed_connect_ms.store(u64::MAX, Relaxed);
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
                self.failed_connect_ms.store(self.now_ms(), Relaxed);
                Err(Error::Backend {
                    op,
                    source: source.into(),
                })
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.now_ms()
    }

    /// Runs one request on a lane under the command deadline, unless the
    /// circuit is open.
    pub(super) async fn run<T, F, Fut>(&self, op: &'static str, request: F) -> Result<T, Error>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let pass = self
            .breaker
            .admit()
            .map_err(|retry_in| Error::CircuitOpen { op, retry_in })?;
        let (lane, generation, conn) = match self.checkout(op).await {
            Ok(found) => found,
            Err(error) => {
                self.failed(pass);
                return Err(error);
            }
        };
        // The connection enforces the command deadline (its response timeout).
        match request(conn).await {
            Ok(value) => {
                pass.succeeded();
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
                if is_broken(&error) {
                    lane.discard(generation);
                    self.failed(pass);
                } else {
                    // An error reply: the server is there.
                    pass.succeeded();
                }
                Err(Error::Backend {
                    op,
                    source: BackendError::Redis(error),
                })
            }
        }
    }

    /// Counts a failure; when it opens the circuit, every lane is emptied so
    /// that the probe starts on a new connection.
    fn failed(&self, pass: crate::backend::breaker::Pass<'_>) {
        if pass.failed() {
            for lane in &*self.lanes {
                lane.discard_any();
            }
        }
    }
}

/// Whether an error means the connection itself is gone.
fn is_broken(error: &RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_unrecoverable_error()
}
