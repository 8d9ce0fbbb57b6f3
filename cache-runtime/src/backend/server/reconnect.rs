//! After a failed connect, calls fail at once for a moment instead of each
//! paying a connect timeout: shared by the held connections to one server
//! (`lanes.rs`) and the cluster connection (`cluster.rs`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::Error;
use crate::clock::Monotonic;

/// How long calls fail at once after a failed connect, before one tries again.
const RECONNECT_INTERVAL_MS: u64 = 500;

/// After a failed connect, calls fail at once for a moment instead of each
/// paying a connect timeout.
pub(super) struct Reconnect {
    /// When the last connect failed, in ms since `started`, or `u64::MAX`.
    failed_ms: AtomicU64,
    started: Monotonic,
    redacted_url: String,
}

impl Reconnect {
    pub(super) fn new(redacted_url: String) -> Self {
        Self {
            failed_ms: AtomicU64::new(u64::MAX),
            started: Monotonic::start(),
            redacted_url,
        }
    }

    /// Whether a connect may be tried now.
    pub(super) fn may_try(&self) -> Result<(), Error> {
        let failed = self.failed_ms.load(Relaxed);
        if failed != u64::MAX
            && self.started.now_ms().saturating_sub(failed) < RECONNECT_INTERVAL_MS
        {
            return Err(Error::Unavailable {
                reason: format!("cannot connect to {}; retrying shortly", self.redacted_url),
            });
        }
        Ok(())
    }

    pub(super) fn succeeded(&self) {
        self.failed_ms.store(u64::MAX, Relaxed);
    }

    pub(super) fn failed(&self) {
        self.failed_ms.store(self.started.now_ms(), Relaxed);
    }
}
