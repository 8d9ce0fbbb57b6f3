//! Which Redis the command talks to: one server, a cluster, or the master
//! Redis Sentinel names, from the arguments or the environment; connections to read keys, to scan every
//! master, and a [`Cache`] for the commands that change entries.

use std::time::Duration;

use cachette::Cache;
use cachette::internals::{cluster_masters, node_url, sentinel_master};
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// One Redis, a cluster's seed nodes, or the sentinels and the master's name (or URL).
pub(crate) enum Target {
    One(String),
    Cluster(Vec<String>),
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
}

/// A connection that reads any key: to the server, or routed in the cluster.
pub(crate) enum KeyConn {
    One(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl KeyConn {
    pub(crate) async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> redis::RedisResult<T> {
        match self {
            Self::One(conn) => cmd.query_async(conn).await,
            Self::Cluster(conn) => cmd.query_async(conn).await,
        }
    }
}

impl Target {
    /// `--url`, else `--cluster`, else `--sentinel` (with `--master`), else
    /// `REDIS_CLUSTER_URLS`, else `REDIS_SENTINEL_URLS` (with
    /// `REDIS_SENTINEL_MASTER`), else `REDIS_URL`.
    pub(crate) fn from_args(
        url: Option<String>,
        cluster: Vec<String>,
        sentinel: Vec<String>,
        master: Option<String>,
    ) -> Result<Self, String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let list = |name: &str| -> Vec<String> {
            env(name)
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let sentinel_target = |sentinels: Vec<String>, master: Option<String>| {
            let master = master.ok_or(
                "Redis Sentinel needs the master's name: pass --master or set REDIS_SENTINEL_MASTER",
            )?;
            Ok(Self::Sentinel { sentinels, master })
        };
        if let Some(url) = url {
            return Ok(Self::One(url));
        }
        if !cluster.is_empty() {
            return Ok(Self::Cluster(cluster));
        }
        if !sentinel.is_empty() {
            return sentinel_target(sentinel, master.or_else(|| env("REDIS_SENTINEL_MASTER")));
        }
        let seeds = list("REDIS_CLUSTER_URLS");
        if !seeds.is_empty() {
            return Ok(Self::Cluster(seeds));
        }
        let sentinels = list("REDIS_SENTINEL_URLS");
        if !sentinels.is_empty() {
            return sentinel_target(sentinels, master.or_else(|| env("REDIS_SENTINEL_MASTER")));
        }
        env("REDIS_URL").map(Self::One).ok_or_else(|| {
            "no Redis given: pass --url (or --cluster, or --sentinel), or set REDIS_URL (or REDIS_CLUSTER_URLS, or REDIS_SENTINEL_URLS)"
                .to_owned()
        })
    }

    /// Where, for messages (without a user or password).
    pub(crate) fn describe(&self) -> String {
        let hide = |url: &str| match url.split_once('@') {
            Some((scheme_user, host)) => {
                let scheme = scheme_user.split("//").next().unwrap_or("redis:");
                format!("{scheme}//…@{host}")
            }
            None => url.to_owned(),
        };
        match self {
            Self::One(url) => hide(url),
            Self::Cluster(seeds) => format!("the cluster at {}", hide(&seeds[0])),
            Self::Sentinel { sentinels, master } => format!(
                "the master {} of the sentinels at {}",
                hide(master),
                hide(&sentinels[0])
            ),
        }
    }

    fn unreachable(&self, error: impl std::fmt::Display) -> String {
        format!("cannot reach {}: {error}", self.describe())
    }

    /// A cache on this Redis under `prefix`, failing rather than failing open.
    pub(crate) async fn cache(&self, prefix: &str) -> Result<Cache, String> {
        let builder = Cache::builder()
            .key_prefix(prefix)
            .fail_open(false)
            .circuit_breaker(0, Duration::from_secs(1))
            .connect_timeout(CONNECT_TIMEOUT)
            .command_timeout(COMMAND_TIMEOUT);
        let builder = match self {
            Self::One(url) => builder.redis_url(url.as_str()),
            Self::Cluster(seeds) => builder.redis_cluster(seeds.clone()),
            Self::Sentinel { sentinels, master } => {
                builder.redis_sentinel(sentinels.clone(), master.as_str())
            }
        };
        builder.build().await.map_err(|e| self.unreachable(e))
    }

    /// A connection that reads any key.
    pub(crate) async fn key_conn(&self) -> Result<KeyConn, String> {
        match self {
            Self::One(url) => Ok(KeyConn::One(
                connect(url).await.map_err(|e| self.unreachable(e))?,
            )),
            Self::Sentinel { .. } => Ok(KeyConn::One(self.master_conn().await?)),
            Self::Cluster(seeds) => {
                let client = redis::cluster::ClusterClient::builder(seeds.clone())
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(COMMAND_TIMEOUT)
                    .build()
                    .map_err(|e| self.unreachable(e))?;
                let conn = client
                    .get_async_connection()
                    .await
                    .map_err(|e| self.unreachable(e))?;
                Ok(KeyConn::Cluster(conn))
            }
        }
    }

    /// A connection to each server holding keys: the server, or every
    /// master of the cluster (from `CLUSTER NODES`).
    pub(crate) async fn masters(&self) -> Result<Vec<MultiplexedConnection>, String> {
        match self {
            Self::One(url) => Ok(vec![connect(url).await.map_err(|e| self.unreachable(e))?]),
            Self::Sentinel { .. } => Ok(vec![self.master_conn().await?]),
            Self::Cluster(seeds) => {
                let mut seed = connect(&seeds[0]).await.map_err(|e| self.unreachable(e))?;
                let nodes: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut seed)
                    .await
                    .map_err(|e| self.unreachable(e))?;
                // The masters the runtime itself scans: serving slots, not failed.
                let mut masters = Vec::new();
                for (host, port) in cluster_masters(&nodes) {
                    let url = node_url(&seeds[0], &host, port);
                    masters.push(connect(&url).await.map_err(|e| self.unreachable(e))?);
                }
                Ok(masters)
            }
        }
    }
}

impl Target {
    /// A connection to the master the sentinels name now (asked of each in turn).
    async fn master_conn(&self) -> Result<MultiplexedConnection, String> {
        let Self::Sentinel { sentinels, master } = self else {
            unreachable!("only behind Sentinel")
        };
        let (name, url) = sentinel_master(master).map_err(|e| e.to_string())?;
        let mut failures = Vec::new();
        for sentinel in sentinels {
            let asked = async {
                let mut conn = connect(sentinel).await?;
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&name)
                    .query_async::<Option<(String, u16)>>(&mut conn)
                    .await
            };
            match asked.await {
                Ok(Some((host, port))) => {
                    let url = node_url(&url, &host, port);
                    return connect(&url).await.map_err(|e| self.unreachable(e));
                }
                Ok(None) => failures.push("knows no master of that name".to_owned()),
                Err(error) => failures.push(error.to_string()),
            }
        }
        Err(self.unreachable(format!(
            "no sentinel named the master `{name}` ({})",
            failures.join("; ")
        )))
    }
}

async fn connect(url: &str) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT));
    Client::open(url)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}
