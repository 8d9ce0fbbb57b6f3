//! The writes of invalidations: a tombstone, a version bump and, on the
//! backend of replicated invalidations, the `WAIT` after each write (the
//! tombstones of a tag's members and the clearing of a key space, in
//! `many.rs`, wait the same way).

use deadpool_redis::redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use deadpool_redis::redis::{self, RedisError};

use super::link::Conn;
use super::{RedisBackend, cluster, set_cmd};
use crate::Error;
use crate::backend::Expiry;

impl RedisBackend {
    /// An invalidation's tombstone at `key` (named so in errors).
    pub(crate) async fn tombstone(
        &self,
        key: &str,
        bytes: &[u8],
        expiry: Expiry,
    ) -> Result<(), Error> {
        self.run("invalidate", key, |mut c| async move {
            set_cmd(key, bytes, expiry)
                .query_async::<()>(&mut c)
                .await?;
            self.replicated(&mut c, key).await
        })
        .await
    }

    /// Bumps the version at `vkey`; the new version.
    pub(crate) async fn bump(&self, vkey: &str, fresh: u64) -> Result<u64, Error> {
        let script = &self.scripts.bump;
        self.run("invalidate", vkey, |mut c| async move {
            let version = script.key(vkey).arg(fresh).invoke_async(&mut c).await?;
            self.replicated(&mut c, vkey).await?;
            Ok(version)
        })
        .await
    }

    /// On the backend of replicated invalidations, waits (`WAIT`, on the
    /// connection that wrote) until enough replicas took every write made
    /// on it, `key`'s among them; too few in time is an error: the
    /// invalidation stays queued. Elsewhere, nothing.
    pub(super) async fn replicated(&self, conn: &mut Conn, key: &str) -> redis::RedisResult<()> {
        let Some((replicas, wait)) = self.replicas else {
            return Ok(());
        };
        let mut wait_cmd = redis::cmd("WAIT");
        wait_cmd
            .arg(replicas)
            .arg(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1));
        let reached: usize = match conn {
            Conn::Cluster(c) => {
                let slot = cluster::slot(key.as_bytes());
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::new(slot, SlotAddr::Master),
                ));
                redis::FromRedisValue::from_redis_value(c.route_command(wait_cmd, route).await?)?
            }
            c @ (Conn::Single(_) | Conn::Node(_)) => wait_cmd.query_async(c).await?,
        };
        if reached < replicas {
            return Err(RedisError::from((
                redis::ErrorKind::Client,
                "not replicated",
                format!("{reached} of {replicas} replicas took the write within {wait:?}"),
            )));
        }
        Ok(())
    }
}
