//! Which server the backend talks to: `INFO server` (answered by every
//! Redis version, where `HELLO` is not before Redis 6), asked once when the
//! cache is built and connected, of the one server, the Sentinel master, or
//! any node of a cluster. Nothing on the hit path reads it: it is for
//! `Health::server` and the local tier's refusal at build.

use deadpool_redis::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use deadpool_redis::redis::{self, FromRedisValue};

use super::RedisBackend;
use super::link::Conn;
use crate::backend::info::ServerInfo;

impl RedisBackend {
    /// Asks the server which it is, unless it said already; `None` when it
    /// does not answer (the cache still builds, and fails open) or names
    /// no version.
    pub(crate) async fn probe(&self) -> Option<ServerInfo> {
        if let Some(known) = self.server.get() {
            return Some(*known);
        }
        let info = self
            .run_on("connect", 0, |c| async move {
                let mut info = redis::cmd("INFO");
                info.arg("server");
                match c {
                    Conn::Cluster(mut c) => {
                        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
                        Ok(String::from_redis_value(
                            c.route_command(info, route).await?,
                        )?)
                    }
                    Conn::Single(mut c) | Conn::Node(mut c) => info.query_async(&mut c).await,
                }
            })
            .await;
        let text = match info {
            Ok(text) => text,
            Err(error) => {
                tracing::debug!(
                    error = &error as &dyn std::error::Error,
                    server = %self.redacted_url,
                    "cannot tell which server this is (INFO server)"
                );
                return None;
            }
        };
        let found = ServerInfo::parse(&text)?;
        Some(*self.server.get_or_init(|| found))
    }

    /// Where the server is, for messages: its URL, or Sentinel's or the
    /// cluster's seeds, without credentials.
    pub(crate) fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// Which server it is, as the probe found when the cache was built.
    pub(crate) fn server_info(&self) -> Option<ServerInfo> {
        self.server.get().copied()
    }
}
