//! Which server a cache talks to: read from `INFO server` when the cache is
//! built (one server, any node of a cluster, the Sentinel master) and shown
//! in `Cache::health().server`; a server that answers but refuses the local
//! tier's `CLIENT TRACKING ... BCAST` fails the build with a configuration
//! error, while an unreachable one still builds and fails open.

use std::time::Duration;

use cachette::{Cache, Error, ServerKind};
use support::RedisServer;

const MINUTE: Duration = Duration::from_secs(60);

/// The `redis_version` a server gives in `INFO server`.
async fn redis_version(conn: &mut impl redis::aio::ConnectionLike) -> String {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .expect("INFO server gives redis_version")
        .trim()
        .to_owned()
}

/// Checks that `cache`'s health names Redis at `version`.
fn names_redis(cache: &Cache, version: &str) {
    let server = cache.health().server.expect("the server was probed");
    assert_eq!(server.kind, ServerKind::Redis);
    assert_eq!(server.version.to_string(), version);
    assert_eq!(server.to_string(), format!("Redis {version}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_the_server_and_its_version() {
    let server = RedisServer::start();
    let version = redis_version(&mut server.connect(0).await).await;
    let plain = server.cache().await;
    names_redis(&plain, &version);
    let tiered = Cache::builder()
        .redis_url(server.url(0))
        .local_tier(1 << 20)
        .build()
        .await
        .unwrap();
    names_redis(&tiered, &version);
    assert_eq!(Cache::memory().health().server, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_and_a_sentinel_master_are_probed_too() {
    let cluster = support::RedisCluster::start();
    let version = redis_version(&mut cluster.nodes[0].connect(0).await).await;
    let cache = Cache::builder()
        .redis_cluster(cluster.seeds())
        .build()
        .await
        .unwrap();
    names_redis(&cache, &version);
    drop(cluster);

    let sentinel = support::RedisSentinel::start();
    let port = sentinel.master_port();
    let version = redis_version(&mut support::RedisSentinel::connect(port).await).await;
    let cache = sentinel.builder(Cache::builder(), 0).build().await.unwrap();
    names_redis(&cache, &version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_at_build_leaves_the_server_unknown_and_still_builds() {
    let mut server = RedisServer::start();
    let url = server.url(0);
    server.stop();
    for local in [None, Some(1 << 20)] {
        let mut builder = Cache::builder().redis_url(&url);
        if let Some(bytes) = local {
            builder = builder.local_tier(bytes);
        }
        let cache = builder
            .build()
            .await
            .expect("fail-open: builds without Redis");
        assert_eq!(cache.health().server, None);
        assert_eq!(cache.get::<u64>("k").await.unwrap(), None, "a miss");
    }
}

/// A server with a user that may run everything but `CLIENT`; its URL.
async fn without_client(server: &RedisServer) -> String {
    server
        .command(&[
            "ACL",
            "SETUSER",
            "app",
            "on",
            ">app-secret",
            "~*",
            "&*",
            "+@all",
            "-client",
        ])
        .await;
    format!("redis://app:app-secret@127.0.0.1:{}/0", server.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_tracking_fails_a_build_with_a_local_tier() {
    let server = RedisServer::start();
    let version = redis_version(&mut server.connect(0).await).await;
    let url = without_client(&server).await;
    let refused = Cache::builder()
        .redis_url(&url)
        .local_tier(1 << 20)
        .build()
        .await
        .expect_err("the local tier cannot be coherent without tracking");
    let Error::Config { reason, source } = &refused else {
        panic!("a configuration error, not {refused:?}");
    };
    for part in [
        "CLIENT TRACKING ON BCAST",
        &format!("Redis {version} at redis://app:***@127.0.0.1:"),
        "without local_tier",
    ] {
        assert!(reason.contains(part), "{part:?} in {reason:?}");
    }
    assert!(!reason.contains("app-secret"), "{reason}");
    let source = source.as_ref().expect("the server's refusal").to_string();
    assert!(source.contains("no permissions"), "{source}");

    // Even failing open: the refusal is an answer, not an outage.
    let refused = Cache::builder()
        .redis_url(&url)
        .local_tier(1 << 20)
        .fail_open(true)
        .build()
        .await;
    assert!(matches!(refused, Err(Error::Config { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_user_without_a_local_tier_builds_and_caches() {
    let server = RedisServer::start();
    let url = without_client(&server).await;
    let cache = Cache::builder().redis_url(&url).build().await.unwrap();
    cache.set("k", &7_u64, MINUTE).await.unwrap();
    assert_eq!(cache.get::<u64>("k").await.unwrap(), Some(7));
    assert_eq!(cache.stats().errors, 0);
    let version = redis_version(&mut server.connect(0).await).await;
    names_redis(&cache, &version);
}
