//! What only Redis can do to the cache: hold foreign bytes, refuse a
//! password, go away and come back.

use std::time::{Duration, Instant};

use cachette::{Cache, Error};
use support::{RedisCluster, RedisServer, cli, free_port};

const MINUTE: Duration = Duration::from_secs(60);

async fn redis_cache(server: &RedisServer) -> Cache {
    Cache::builder()
        .redis_url(server.url(0))
        .key_prefix("faults")
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn entries_are_stored_under_the_prefix() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .redis_url(server.url(2))
        .key_prefix("shop")
        .build()
        .await
        .unwrap();
    cache
        .set("user_order_stats:42", &[1, 2, 3], MINUTE)
        .await
        .unwrap();
    let mut conn = server.connect(2).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, ["shop:user_order_stats:42"]);
    assert_eq!(
        cache.key_for("user_order_stats:42"),
        "shop:user_order_stats:42"
    );
}

#[tokio::test]
async fn garbage_bytes_are_a_miss_and_are_removed() {
    let server = RedisServer::start();
    let cache = redis_cache(&server).await;
    let mut conn = server.connect(0).await;
    let garbage: [&[u8]; 6] = [
        b"",
        b"\x01",
        b"\xff\xfe\x00garbage",
        b"\x01\x00\x00\x00",
        b"not msgpack",
        b"\x09future format",
    ];
    for (i, bytes) in garbage.iter().enumerate() {
        let key = format!("g{i}");
        let () = redis::cmd("SET")
            .arg(cache.key_for(&key))
            .arg(*bytes)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(cache.get::<String>(&key).await.unwrap(), None, "{bytes:?}");
        let exists: bool = redis::cmd("EXISTS")
            .arg(cache.key_for(&key))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!exists, "garbage {bytes:?} was removed");
    }
    assert_eq!(cache.stats().undecodable, garbage.len() as u64);
    assert_eq!(cache.stats().errors, 0);
    // A key of another Redis type (a list) is a miss too.
    let () = redis::cmd("RPUSH")
        .arg(cache.key_for("list"))
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(cache.get::<String>("list").await.unwrap(), None);
}

#[tokio::test]
async fn every_call_returns_while_the_server_is_down_and_hits_come_back() {
    let mut server = RedisServer::start();
    let cache = redis_cache(&server).await;
    cache.set("k", "before", MINUTE).await.unwrap();
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("before")
    );

    server.stop();
    assert_eq!(cache.get::<String>("k").await.unwrap(), None);
    cache.set("k", "during", MINUTE).await.unwrap();
    assert!(!cache.add("k", "during", MINUTE).await.unwrap());
    assert!(!cache.delete("k").await.unwrap());
    assert!(!cache.touch("k", MINUTE).await.unwrap());
    assert!(
        cache
            .get_many::<String>(["k", "j"])
            .await
            .unwrap()
            .is_empty()
    );
    cache.set_many([("k", 1)], MINUTE).await.unwrap();
    assert_eq!(cache.incr("n", 2).await.unwrap(), 2);
    cache.clear().await.unwrap();
    let computed = cache
        .get_or_set("k", || async { "computed".to_owned() }, MINUTE)
        .await
        .unwrap();
    assert_eq!(computed, "computed");
    let stats = cache.stats();
    assert_eq!(
        stats.errors + stats.skipped,
        10,
        "each of the 10 calls tried Redis once: {stats:?}"
    );
    assert_eq!(stats.errors, 5, "five failures open the circuit: {stats:?}");
    assert!(!cache.health().is_up(), "{:?}", cache.health());

    server.restart();
    cache.set("k", "after", MINUTE).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut recovered = None;
    while Instant::now() < deadline {
        cache.set("k", "after", MINUTE).await.unwrap();
        recovered = cache.get::<String>("k").await.unwrap();
        if recovered.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        recovered.as_deref(),
        Some("after"),
        "the cache reconnects on its own"
    );
}

#[derive(Debug)]
enum AppError {
    Cache(Error),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        Self::Cache(e)
    }
}

#[tokio::test]
async fn without_fail_open_backend_errors_are_returned() {
    let mut server = RedisServer::start();
    let cache = Cache::builder()
        .redis_url(server.url(0))
        .fail_open(false)
        .build()
        .await
        .unwrap();
    server.stop();
    let err = cache.get::<String>("k").await.unwrap_err();
    assert!(err.is_backend(), "{err}");
    assert!(cache.set("k", "v", MINUTE).await.unwrap_err().is_backend());
    let failed = cache
        .try_get_or_set("k", || async { Ok::<_, AppError>(1) }, MINUTE)
        .await;
    assert!(matches!(failed, Err(AppError::Cache(e)) if e.is_backend()));
}

#[tokio::test]
async fn an_unreachable_server_at_start_is_a_miss_or_an_error_without_fail_open() {
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    let cache = Cache::builder()
        .redis_url(&url)
        .build()
        .await
        .expect("fail-open starts without Redis");
    assert_eq!(cache.get::<String>("k").await.unwrap(), None);
    let err = Cache::builder()
        .redis_url(&url)
        .fail_open(false)
        .build()
        .await
        .unwrap_err();
    assert!(err.is_backend(), "{err}");
}

#[tokio::test]
async fn a_wrong_password_is_a_build_error_and_never_printed() {
    let server = RedisServer::start_with(&["--requirepass", "right-secret"]);
    let url = format!("redis://:wrong-secret@127.0.0.1:{}/0", server.port());
    let builder = Cache::builder().redis_url(&url);
    assert!(!format!("{builder:?}").contains("wrong-secret"));
    let err = builder.build().await.unwrap_err();
    let chain = format!("{err} / {:?}", std::error::Error::source(&err));
    assert!(!format!("{err}").contains("wrong-secret"), "{err}");
    assert!(
        chain.to_lowercase().contains("auth") || chain.contains("WRONGPASS"),
        "{chain}"
    );

    let good = format!("redis://:right-secret@127.0.0.1:{}/0", server.port());
    let cache = Cache::builder().redis_url(&good).build().await.unwrap();
    assert!(!format!("{cache:?}").contains("right-secret"));
    cache.set("k", "v", MINUTE).await.unwrap();
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("v")
    );
}

#[tokio::test]
async fn an_invalid_url_is_a_configuration_error() {
    let err = Cache::builder()
        .redis_url("http://not-redis")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
}

/// Pauses every client of `server` for `ms` milliseconds: the cache's
/// commands meanwhile pass their deadline and fail.
async fn pause(server: &RedisServer, ms: u64) {
    server.command(&["CLIENT", "PAUSE", &ms.to_string()]).await;
}

/// Where the flight case runs: one server, or every master of a cluster.
#[derive(Clone, Copy)]
enum Paused<'a> {
    Server(&'a RedisServer),
    Cluster(&'a RedisCluster),
}

impl Paused<'_> {
    /// Pauses every client of the server, or of every master, for `ms`.
    async fn pause(self, ms: u64) {
        match self {
            Paused::Server(server) => pause(server, ms).await,
            Paused::Cluster(cluster) => {
                for port in cluster.master_ports() {
                    cli(port, &["CLIENT", "PAUSE", &ms.to_string()]);
                }
            }
        }
    }
}

/// A call held in its computation with the data read (its own read of the
/// entry had failed), the source changed, the invalidation returned; then a
/// second call whose read fails too: it must compute the new value, not
/// join the older computation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_joins_no_computation_older_than_an_invalidation() {
    let server = RedisServer::start();
    let cache = redis_cache(&server).await;
    failed_reads_join_no_older_computation(&cache, Paused::Server(&server)).await;
}

/// The same on a cluster, every master paused (one cluster for the three).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_on_a_cluster_joins_no_computation_older_than_an_invalidation() {
    let cluster = RedisCluster::start();
    let cache = Cache::builder()
        .redis_cluster(cluster.seeds())
        .key_prefix("faults")
        .build()
        .await
        .unwrap();
    failed_reads_join_no_older_computation(&cache, Paused::Cluster(&cluster)).await;
}

async fn failed_reads_join_no_older_computation(cache: &Cache, paused: Paused<'_>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

    use cachette::Scope;

    for kind in ["key", "namespace", "tag"] {
        let scope = match kind {
            "namespace" => Scope::new().namespace("rows"),
            "tag" => Scope::new().tag("row:1"),
            _ => Scope::new(),
        };
        let key = format!("flight-{kind}");
        let source = Arc::new(AtomicU64::new(1));
        let release = Arc::new(tokio::sync::Notify::new());
        let (read, was_read) = tokio::sync::oneshot::channel();
        let paused_at = Instant::now();
        paused.pause(700).await;
        let first = tokio::spawn({
            let (cache, key, scope) = (cache.clone(), key.clone(), scope.clone());
            let (source, release) = (Arc::clone(&source), Arc::clone(&release));
            async move {
                cache
                    .get_or_set_in(
                        &key,
                        || async move {
                            let value = source.load(SeqCst);
                            read.send(()).unwrap();
                            release.notified().await;
                            value
                        },
                        MINUTE,
                        &scope,
                    )
                    .await
            }
        });
        was_read.await.unwrap();
        source.store(2, SeqCst);
        tokio::time::sleep(Duration::from_millis(800).saturating_sub(paused_at.elapsed())).await;
        match kind {
            "namespace" => drop(cache.invalidate_namespace("rows").await.unwrap()),
            "tag" => drop(cache.invalidate_tag("row:1").await.unwrap()),
            _ => drop(cache.invalidate(&key).await.unwrap()),
        }
        let paused_at = Instant::now();
        paused.pause(700).await;
        let second = tokio::time::timeout(
            Duration::from_secs(5),
            cache.get_or_set_in(&key, || async { source.load(SeqCst) }, MINUTE, &scope),
        )
        .await;
        release.notify_one();
        assert_eq!(
            second
                .expect("the call waited on the older computation")
                .unwrap(),
            2,
            "{kind}: a value computed before the invalidation was handed over"
        );
        assert_eq!(first.await.unwrap().unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(800).saturating_sub(paused_at.elapsed())).await;
    }
}
