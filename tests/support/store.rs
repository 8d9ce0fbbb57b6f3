//! Where a suite's cache lives: in memory, on a `redis-server` of the
//! test's own, on the test binary's cluster or Sentinel topology, on a server behind a local
//! tier or with versions tracked in process — and what the suites do with the store besides the cache.

use std::sync::Arc;

use cachette::{Cache, CacheBuilder};

use super::{RedisCluster, RedisSentinel, RedisServer, current_cluster};

/// The suites' fixtures, with a default cache on each store.
pub async fn memory() -> Store {
    Store::memory(Cache::builder()).await
}

pub async fn redis() -> Store {
    Store::redis(Cache::builder()).await
}

pub async fn cluster() -> Store {
    Store::cluster(Cache::builder()).await
}

pub async fn tiered() -> Store {
    Store::tiered(Cache::builder()).await
}

pub async fn tracked() -> Store {
    let store = Store::redis(Cache::builder().track_versions(true)).await;
    tracking_up(&store.cache).await;
    store
}

pub async fn tracked_cluster() -> Store {
    let store = Store::cluster(Cache::builder().track_versions(true)).await;
    tracking_up(&store.cache).await;
    store
}

/// Waits until `cache` tracks versions (on every master, from when it was
/// built), so that a suite run with tracked versions does not run its cases
/// on the strict reads a cache makes until then.
pub async fn tracking_up(cache: &Cache) {
    super::eventually("versions are tracked", async || {
        cache.health().tracking.is_some_and(|t| t.up)
    })
    .await;
}

pub async fn sentinel() -> Store {
    Store::sentinel(Cache::builder()).await
}

/// A `redis-server` of the test's own, and `builder`'s cache on it.
pub async fn redis_cache(builder: CacheBuilder) -> (RedisServer, Cache) {
    let server = RedisServer::start();
    let cache = builder.redis_url(server.url(0)).build().await.unwrap();
    (server, cache)
}

/// A cache under test and, for Redis, the server or cluster it talks to.
pub struct Store {
    pub cache: Cache,
    pub server: Option<RedisServer>,
    pub cluster: Option<Arc<RedisCluster>>,
    /// Behind Sentinel: the topology of the test binary.
    pub sentinel: Option<Arc<RedisSentinel>>,
}

impl Store {
    /// `builder`'s cache in memory.
    pub async fn memory(builder: CacheBuilder) -> Self {
        Self {
            cache: builder.build().await.unwrap(),
            server: None,
            cluster: None,
            sentinel: None,
        }
    }

    /// `builder`'s cache on a server of its own.
    pub async fn redis(builder: CacheBuilder) -> Self {
        let (server, cache) = redis_cache(builder).await;
        Self {
            cache,
            server: Some(server),
            cluster: None,
            sentinel: None,
        }
    }

    /// `builder`'s cache on the test binary's cluster.
    pub async fn cluster(builder: CacheBuilder) -> Self {
        let cluster = current_cluster();
        Self {
            cache: builder
                .redis_cluster(cluster.seeds())
                .build()
                .await
                .unwrap(),
            server: None,
            cluster: Some(cluster),
            sentinel: None,
        }
    }

    /// `builder`'s cache on a server of its own, behind a 16 MiB local tier.
    pub async fn tiered(builder: CacheBuilder) -> Self {
        Self::redis(builder.local_tier(16 << 20)).await
    }

    /// `builder`'s cache on the master of the test binary's Sentinel topology.
    pub async fn sentinel(builder: CacheBuilder) -> Self {
        let topology = super::sentinel::current();
        Self {
            cache: topology.builder(builder, 0).build().await.unwrap(),
            server: None,
            cluster: None,
            sentinel: Some(topology),
        }
    }

    /// Whether the store is Redis (one server, the cluster or behind Sentinel).
    pub fn is_redis(&self) -> bool {
        self.server.is_some() || self.cluster.is_some() || self.sentinel.is_some()
    }

    /// Another cache on the same store, under another prefix.
    pub async fn sibling(&self, prefix: &str) -> Cache {
        let builder = Cache::builder().key_prefix(prefix);
        if let Some(topology) = &self.sentinel {
            return topology.builder(builder, 0).build().await.unwrap();
        }
        match (&self.server, &self.cluster) {
            (Some(server), _) => builder.redis_url(server.url(0)).build().await.unwrap(),
            (None, Some(cluster)) => builder
                .redis_cluster(cluster.seeds())
                .build()
                .await
                .unwrap(),
            (None, None) => self.cache.with_prefix(prefix).unwrap(),
        }
    }

    /// Writes `bytes` at the stored key `key`, as another program would.
    pub async fn set_raw(&self, key: &str, bytes: &[u8]) {
        let set = redis::cmd("SET").arg(key).arg(bytes).clone();
        if let Some(topology) = &self.sentinel {
            let master = RedisSentinel::connect(topology.master_port());
            let () = set.query_async(&mut master.await).await.unwrap();
            return;
        }
        let () = match (&self.server, &self.cluster) {
            (Some(server), _) => set.query_async(&mut server.connect(0).await).await,
            (None, Some(cluster)) => set.query_async(&mut cluster.connect().await).await,
            (None, None) => panic!("raw bytes need Redis"),
        }
        .unwrap();
    }
}
