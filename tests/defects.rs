//! Defects that ports of Django's and django-redis' cache test suites found,
//! each pinned on both backends: versions past 2^52, zero timeouts, huge
//! timeouts, and deleting an expired entry.

use std::sync::Arc;
use std::time::Duration;

use cachette::Cache;
use support::{RedisCluster, RedisServer};

const MINUTE: Duration = Duration::from_secs(60);

/// A cache under test, its settings, and for Redis the server behind it.
struct Fx {
    server: Option<RedisServer>,
    cluster: Option<Arc<RedisCluster>>,
}

impl Fx {
    async fn cache(&self, builder: cachette::CacheBuilder) -> Cache {
        let builder = match (&self.server, &self.cluster) {
            (Some(server), _) => builder.redis_url(server.url(0)),
            (None, Some(cluster)) => builder.redis_cluster(cluster.seeds()),
            (None, None) => builder.memory(),
        };
        builder.build().await.unwrap()
    }
}

#[allow(clippy::unused_async)] // one signature for both fixtures
async fn memory() -> Fx {
    Fx {
        server: None,
        cluster: None,
    }
}

#[allow(clippy::unused_async)] // one signature for both fixtures
async fn redis() -> Fx {
    Fx {
        server: Some(RedisServer::start()),
        cluster: None,
    }
}

#[allow(clippy::unused_async)] // one signature for every fixture
async fn cluster() -> Fx {
    Fx {
        server: None,
        cluster: Some(support::current_cluster()),
    }
}

support::on_every_store!(memory, redis, cluster;
    bumps_return_each_new_version,
    add_with_a_zero_timeout_adds_and_keeps_nothing,
    a_zero_default_timeout_keeps_no_counter,
    huge_timeouts_never_expire,
    deleting_an_expired_entry_deletes_nothing,
);

/// Redis starts a namespace at a random 52-bit version; every bump after
/// that must still come back as a number, the same one `version` reads.
async fn bumps_return_each_new_version(fx: Fx) {
    let cache = fx.cache(Cache::builder()).await;
    let product = cache.namespace("product");
    let first = product.bump().await.unwrap().version().unwrap();
    for step in 1..=3 {
        let next = product.bump().await.unwrap().version().unwrap();
        assert_eq!(next, first + step, "bump {step} after {first}");
        assert_eq!(product.version().await.unwrap(), next);
    }
    let tag = cache
        .invalidate_tag("user:1")
        .await
        .unwrap()
        .version()
        .unwrap();
    assert_eq!(
        cache.invalidate_tag("user:1").await.unwrap().version(),
        Some(tag + 1)
    );
}

async fn add_with_a_zero_timeout_adds_and_keeps_nothing(fx: Fx) {
    let cache = fx.cache(Cache::builder()).await;
    assert!(cache.add("absent", "v", Duration::ZERO).await.unwrap());
    assert_eq!(cache.get::<String>("absent").await.unwrap(), None);
    cache.set("present", "kept", MINUTE).await.unwrap();
    assert!(!cache.add("present", "v", Duration::ZERO).await.unwrap());
    assert_eq!(
        cache.get::<String>("present").await.unwrap().as_deref(),
        Some("kept")
    );
}

/// `default_timeout(0)`, how Django users switch caching off: a counter
/// made by `incr` counts, and is not kept.
async fn a_zero_default_timeout_keeps_no_counter(fx: Fx) {
    let cache = fx
        .cache(Cache::builder().default_timeout(Duration::ZERO))
        .await;
    assert_eq!(cache.incr("visits", 3).await.unwrap(), 3);
    assert_eq!(cache.get::<i64>("visits").await.unwrap(), None);
    let exists = redis::cmd("EXISTS").arg(cache.key_for("visits")).clone();
    let exists: Option<i64> = match (&fx.server, &fx.cluster) {
        (Some(server), _) => Some(
            exists
                .query_async(&mut server.connect(0).await)
                .await
                .unwrap(),
        ),
        (None, Some(cluster)) => Some(
            exists
                .query_async(&mut cluster.connect().await)
                .await
                .unwrap(),
        ),
        (None, None) => None,
    };
    assert_ne!(exists, Some(1), "a counter was left in Redis");
}

async fn huge_timeouts_never_expire(fx: Fx) {
    let cache = fx
        .cache(Cache::builder().fail_open(false).ttl_jitter(0.5))
        .await;
    for (i, huge) in [Duration::MAX, Duration::from_secs(u64::MAX)]
        .into_iter()
        .enumerate()
    {
        let key = |name: &str| format!("{name}:{i}");
        cache.set(&key("set"), "v", huge).await.unwrap();
        assert!(cache.add(&key("add"), "v", huge).await.unwrap());
        cache.set(&key("touch"), "v", MINUTE).await.unwrap();
        assert!(cache.touch(&key("touch"), huge).await.unwrap());
        let computed = cache
            .get_or_set(&key("get_or_set"), || async { "v".to_owned() }, huge)
            .await
            .unwrap();
        assert_eq!(computed, "v");
        for name in ["set", "add", "touch", "get_or_set"] {
            assert_eq!(
                cache.get::<String>(&key(name)).await.unwrap().as_deref(),
                Some("v"),
                "{name} with {huge:?}"
            );
        }
    }
}

async fn deleting_an_expired_entry_deletes_nothing(fx: Fx) {
    let cache = fx.cache(Cache::builder()).await;
    cache
        .set("short", "v", Duration::from_millis(20))
        .await
        .unwrap();
    cache
        .set_many([("a", 1), ("b", 2)], Duration::from_millis(20))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!cache.delete("short").await.unwrap());
    assert_eq!(cache.delete_many(["a", "b"]).await.unwrap(), 0);
}
