//! Where a cache keeps its entries: this process's memory, one Redis, a
//! Redis Cluster, or the master that Redis Sentinel names; and how the
//! environment chooses among them.

use super::CacheBuilder;
use crate::backend::server::redact;

/// Where the entries go.
#[derive(Clone)]
pub(super) enum Target {
    Memory,
    Url(String),
    /// Seed nodes of a Redis Cluster.
    Cluster(Vec<String>),
    /// The sentinels, and the master's name or URL.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |urls: &[String]| urls.iter().map(|s| redact(s)).collect::<Vec<_>>();
        match self {
            Self::Memory => f.write_str("Memory"),
            Self::Url(url) => f.debug_tuple("Url").field(&redact(url)).finish(),
            Self::Cluster(seeds) => f.debug_tuple("Cluster").field(&redacted(seeds)).finish(),
            Self::Sentinel { sentinels, master } => f
                .debug_struct("Sentinel")
                .field("sentinels", &redacted(sentinels))
                .field("master", &redact(master))
                .finish(),
        }
    }
}

/// A comma-separated list from the environment, its items trimmed, empty ones left out.
fn list(name: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

impl CacheBuilder {
    /// Reads the environment: `REDIS_CLUSTER_URLS` (comma-separated seed
    /// nodes) selects a Redis Cluster; else `REDIS_SENTINEL_URLS`
    /// (comma-separated sentinels) with `REDIS_SENTINEL_MASTER` selects the
    /// master that Redis Sentinel names ([`redis_sentinel`](Self::redis_sentinel));
    /// else `REDIS_URL`, when set and not empty, selects one Redis. When
    /// more than one is set, the first of that order wins, and the log says
    /// so. `CACHETTE_SECRET` signs values
    /// ([`sign_with`](Self::sign_with)), and `CACHETTE_PREVIOUS_SECRET` is
    /// still accepted during a rotation
    /// ([`previous_secret`](Self::previous_secret)).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let builder = cachette::Cache::builder().from_env();
    /// # drop(builder);
    /// ```
    pub fn from_env(self) -> Self {
        let url = std::env::var("REDIS_URL")
            .ok()
            .filter(|url| !url.trim().is_empty());
        let seeds = list("REDIS_CLUSTER_URLS");
        let sentinels = list("REDIS_SENTINEL_URLS");
        let master = std::env::var("REDIS_SENTINEL_MASTER").unwrap_or_default();
        let mut this = self;
        for (name, previous) in [
            ("CACHETTE_SECRET", false),
            ("CACHETTE_PREVIOUS_SECRET", true),
        ] {
            if let Some(secret) = std::env::var_os(name).filter(|s| !s.is_empty()) {
                let secret = secret.as_encoded_bytes();
                this = if previous {
                    this.previous_secret(secret)
                } else {
                    this.sign_with(secret)
                };
            }
        }
        let set = [!seeds.is_empty(), !sentinels.is_empty(), url.is_some()];
        if set.iter().filter(|&&set| set).count() > 1 {
            tracing::info!(
                "more than one of REDIS_CLUSTER_URLS, REDIS_SENTINEL_URLS and REDIS_URL is set; using the first"
            );
        }
        if !seeds.is_empty() {
            this.redis_cluster(seeds)
        } else if !sentinels.is_empty() {
            // Without REDIS_SENTINEL_MASTER, the build says it is missing.
            this.redis_sentinel(sentinels, master)
        } else if let Some(url) = url {
            this.redis_url(url.trim())
        } else {
            this
        }
    }

    /// Stores entries in a Redis Cluster reached through these seed nodes
    /// (`redis://[user][:password@]host:port`, or `rediss://` with the `tls`
    /// feature); the client learns the rest of the topology from them.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let builder = cachette::Cache::builder()
    ///     .redis_cluster(["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]);
    /// # drop(builder);
    /// ```
    pub fn redis_cluster(mut self, seeds: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.target = Target::Cluster(seeds.into_iter().map(Into::into).collect());
        self
    }

    /// Stores entries in Redis at `url`: `redis://[user][:password@]host[:port][/db]`,
    /// or `rediss://` for TLS (with the `tls` feature).
    ///
    /// Behind an endpoint that fails over (a managed primary endpoint whose
    /// name moves to the promoted replica), a reply saying the server was
    /// demoted (`READONLY`) or cannot serve (`LOADING`, `MASTERDOWN`)
    /// replaces that connection: the next one reaches the new master.
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.target = Target::Url(url.into());
        self
    }

    /// Stores entries in the master that Redis Sentinel names `master`.
    ///
    /// `sentinels` are the sentinels' URLs, `redis://[user][:password@]host:port`
    /// (or `rediss://`), with the sentinels' own credentials. `master` is
    /// the master's name as the sentinels know it (`mymaster`), or a URL
    /// whose host is that name and which carries what the data nodes need:
    /// `rediss://app:secret@mymaster/2` (scheme, ACL user, password,
    /// database; the sentinels' credentials can differ).
    ///
    /// The sentinels are asked for the master at start, and again whenever
    /// a connection to it fails or a reply says it was demoted (`READONLY`).
    /// A subscription to the sentinels' `+promoted-slave` and
    /// `+switch-master` events moves every connection to the new master as
    /// soon as the sentinels announce it; a local tier then
    /// starts tracking on the new master, and is flushed. The sentinels are
    /// tried in the order given.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let builder = cachette::Cache::builder().redis_sentinel(
    ///     ["redis://:sentinel-secret@10.0.0.1:26379", "redis://:sentinel-secret@10.0.0.2:26379"],
    ///     "redis://:data-secret@mymaster/0",
    /// );
    /// # drop(builder);
    /// ```
    pub fn redis_sentinel(
        mut self,
        sentinels: impl IntoIterator<Item = impl Into<String>>,
        master: impl Into<String>,
    ) -> Self {
        self.target = Target::Sentinel {
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            master: master.into(),
        };
        self
    }
}
