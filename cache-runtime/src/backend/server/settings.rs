//! The settings of a Redis backend: its connections, deadlines, circuit
//! breaker, invalidation queue, TLS root and replicated invalidations.

use std::time::Duration;

/// The timeouts and sizes of a Redis backend.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The multiplexed connections every command travels on.
    pub(crate) connections: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    /// Failures in a row that open the circuit (0: never), and how long it stays open.
    pub(crate) breaker_failures: u32,
    pub(crate) breaker_cool_down: Duration,
    /// Invalidations kept for a retry before the key spaces are cleared instead.
    pub(crate) pending_invalidations: usize,
    /// The certificate authority to trust for `rediss://`, instead of the system's.
    pub(crate) tls_root: Option<Pem>,
    /// Replicated invalidations: how many replicas must have taken an
    /// invalidation before it counts as applied, and how long to wait for them.
    pub(crate) replicas: Option<(usize, Duration)>,
}

impl Settings {
    /// The settings of the backend that serves everything but replicated
    /// invalidations, and of the one that sends those (its one connection
    /// waits for `WAIT` within its deadline), when they are asked for.
    pub(crate) fn split(&self) -> (Self, Option<Self>) {
        let plain = Self {
            replicas: None,
            ..self.clone()
        };
        let replicated = self.replicas.map(|(_, wait)| Self {
            connections: 1,
            command_timeout: self.command_timeout + wait,
            ..self.clone()
        });
        (plain, replicated)
    }
}

/// A PEM document, shown by its size only.
#[derive(Clone)]
pub(crate) struct Pem(pub(crate) Vec<u8>);

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<PEM, {} bytes>", self.0.len())
    }
}
