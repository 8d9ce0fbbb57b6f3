//! A restart of the server, noticed: the `run_id` of `INFO server`, read on
//! each new held connection (at start, after a broken connection, after the
//! master moved), differs from the one before. The server may have come
//! back from an older snapshot, or a replica that missed writes may have
//! been promoted: the hook (this process's recent invalidations, sent
//! again) runs before the new connection carries a command.

use std::sync::{Mutex, OnceLock, PoisonError};

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{self, RedisResult};

/// What runs when the server restarted.
pub(crate) type Hook = Box<dyn Fn() + Send + Sync>;

/// The run id last seen, and what to do when it changes.
pub(super) struct Restarts {
    run_id: Mutex<Option<String>>,
    hook: OnceLock<Hook>,
}

impl Restarts {
    pub(super) fn new() -> Self {
        Self {
            run_id: Mutex::new(None),
            hook: OnceLock::new(),
        }
    }

    /// Runs `hook` on every restart noticed from now on (the first hook set stays).
    pub(super) fn on_restart(&self, hook: Hook) {
        let _ = self.hook.set(hook);
    }

    /// Reads the server's run id on `conn`, a new connection, and runs the
    /// hook when it changed. A broken connection is an error; an error
    /// reply (`INFO` refused by an ACL) or no run id skips the check.
    pub(super) async fn check(&self, conn: &mut MultiplexedConnection) -> RedisResult<()> {
        let text: String = match redis::cmd("INFO").arg("server").query_async(conn).await {
            Ok(text) => text,
            Err(error) if matches!(error.kind(), redis::ErrorKind::Server(_)) => return Ok(()),
            Err(error) => return Err(error),
        };
        let Some(run_id) = run_id(&text) else {
            return Ok(());
        };
        let restarted = {
            let mut known = self.run_id.lock().unwrap_or_else(PoisonError::into_inner);
            let restarted = known.as_deref().is_some_and(|known| known != run_id);
            if known.as_deref() != Some(run_id) {
                *known = Some(run_id.to_owned());
            }
            restarted
        };
        if restarted {
            tracing::warn!(
                "the Redis server restarted (or another took its place): this process's recent invalidations are sent again"
            );
            if let Some(hook) = self.hook.get() {
                hook();
            }
        }
        Ok(())
    }
}

/// The `run_id` line of `INFO server`.
fn run_id(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .map(str::trim)
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_run_id_comes_from_info_server() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:4f1c2a\r\ntcp_port:6379\r\n";
        assert_eq!(super::run_id(info), Some("4f1c2a"));
        assert_eq!(super::run_id("# Server\r\nredis_version:7.0.15\r\n"), None);
    }
}
