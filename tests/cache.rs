//! The direct cache API, one suite run against the memory backend and
//! against a real `redis-server` the test starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cachette::{Cache, Error, Timeout};
use serde::{Deserialize, Serialize};
use support::store::Store;

/// A cache under test and, for Redis, the server it talks to.
type Fixture = Store;

fn builder() -> cachette::CacheBuilder {
    Cache::builder().key_prefix("test")
}

async fn memory_fixture() -> Fixture {
    Store::memory(builder()).await
}

async fn redis_fixture() -> Fixture {
    Store::redis(builder()).await
}

async fn cluster_fixture() -> Fixture {
    Store::cluster(builder()).await
}

async fn tiered_fixture() -> Fixture {
    Store::tiered(builder()).await
}

async fn sentinel_fixture() -> Fixture {
    Store::sentinel(builder()).await
}

support::on_every_store!(memory_fixture, redis_fixture, cluster_fixture, tiered_fixture, sentinel: sentinel_fixture;
    hit_and_miss,
    entries_expire,
    zero_timeout_removes,
    delete_removes,
    add_only_sets_absent_keys,
    touch_changes_the_timeout,
    bulk_operations,
    counters,
    concurrent_increments_all_count,
    incr_on_a_value_that_is_not_a_counter_is_an_error,
    clear_removes_only_this_prefix,
    prefixes_do_not_see_each_other,
    another_type_is_a_miss_and_is_removed,
    get_or_set_computes_once,
    try_get_or_set_caches_only_ok,
    unencodable_value_is_an_error_naming_its_type,
    long_keys_are_distinct,
    invalidated_keys_read_as_absent,
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OrderStats {
    order_count: u32,
    total_spent: f64,
    avg_order_value: f64,
}

/// `OrderStats` after its fields were renamed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Renamed {
    orders: u32,
}

fn stats(n: u32) -> OrderStats {
    OrderStats {
        order_count: n,
        total_spent: f64::from(n) * 10.0,
        avg_order_value: 10.0,
    }
}

const MINUTE: Duration = Duration::from_secs(60);

async fn hit_and_miss(f: Fixture) {
    let cache = &f.cache;
    assert_eq!(
        cache.get::<OrderStats>("user_order_stats:1").await.unwrap(),
        None
    );
    cache
        .set("user_order_stats:1", &stats(3), MINUTE)
        .await
        .unwrap();
    assert_eq!(
        cache.get("user_order_stats:1").await.unwrap(),
        Some(stats(3))
    );
    let counted = cache.stats();
    assert_eq!(
        (counted.hits, counted.misses, counted.writes, counted.errors),
        (1, 1, 1, 0)
    );
}

async fn entries_expire(f: Fixture) {
    let cache = &f.cache;
    cache
        .set("short", "v", Duration::from_millis(50))
        .await
        .unwrap();
    cache.set("forever", "v", None).await.unwrap();
    cache.set("default", "v", Timeout::Default).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cache.get::<String>("short").await.unwrap(), None);
    assert_eq!(
        cache.get::<String>("forever").await.unwrap().as_deref(),
        Some("v")
    );
    assert_eq!(
        cache.get::<String>("default").await.unwrap().as_deref(),
        Some("v")
    );
    if let Some(server) = &f.server {
        let mut conn = server.connect(0).await;
        let ttl = |key: &str| redis::cmd("PTTL").arg(cache.key_for(key)).clone();
        let forever: i64 = ttl("forever").query_async(&mut conn).await.unwrap();
        let default: i64 = ttl("default").query_async(&mut conn).await.unwrap();
        assert_eq!(forever, -1, "no timeout means no expiry in Redis");
        assert!(
            default > 800_000 && default <= 900_000,
            "default timeout is 15 minutes: {default}"
        );
    }
}

async fn zero_timeout_removes(f: Fixture) {
    let cache = &f.cache;
    cache.set("k", "v", MINUTE).await.unwrap();
    cache.set("k", "w", Duration::ZERO).await.unwrap();
    assert_eq!(cache.get::<String>("k").await.unwrap(), None);
}

async fn delete_removes(f: Fixture) {
    let cache = &f.cache;
    cache.set("my_key", "my_value", MINUTE).await.unwrap();
    assert!(cache.delete("my_key").await.unwrap());
    assert_eq!(cache.get::<String>("my_key").await.unwrap(), None);
    assert!(!cache.delete("my_key").await.unwrap());
}

async fn add_only_sets_absent_keys(f: Fixture) {
    let cache = &f.cache;
    assert!(cache.add("k", &1.5, MINUTE).await.unwrap());
    assert!(!cache.add("k", &2.5, MINUTE).await.unwrap());
    assert_eq!(cache.get::<f64>("k").await.unwrap(), Some(1.5));
    cache
        .set("expiring", "old", Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        cache.add("expiring", "new", MINUTE).await.unwrap(),
        "an expired entry counts as absent"
    );
}

async fn touch_changes_the_timeout(f: Fixture) {
    let cache = &f.cache;
    cache
        .set("extended", "v", Duration::from_millis(100))
        .await
        .unwrap();
    cache
        .set("persisted", "v", Duration::from_millis(100))
        .await
        .unwrap();
    cache.set("shortened", "v", MINUTE).await.unwrap();
    assert!(cache.touch("extended", MINUTE).await.unwrap());
    assert!(cache.touch("persisted", None).await.unwrap());
    assert!(
        cache
            .touch("shortened", Duration::from_millis(50))
            .await
            .unwrap()
    );
    assert!(!cache.touch("absent", MINUTE).await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        cache.get::<String>("extended").await.unwrap().as_deref(),
        Some("v")
    );
    assert_eq!(
        cache.get::<String>("persisted").await.unwrap().as_deref(),
        Some("v")
    );
    assert_eq!(cache.get::<String>("shortened").await.unwrap(), None);
}

async fn bulk_operations(f: Fixture) {
    let cache = &f.cache;
    cache
        .set_many([("a", stats(1)), ("b", stats(2)), ("c", stats(3))], MINUTE)
        .await
        .unwrap();
    let found = cache
        .get_many::<OrderStats>(["a", "b", "c", "absent"])
        .await
        .unwrap();
    assert_eq!(found.len(), 3);
    assert_eq!(found["b"], stats(2));
    assert_eq!(cache.delete_many(["a", "c", "absent"]).await.unwrap(), 2);
    let left = cache.get_many::<OrderStats>(["a", "b", "c"]).await.unwrap();
    assert_eq!(left.keys().collect::<Vec<_>>(), ["b"]);
    assert!(
        cache
            .get_many::<OrderStats>(Vec::<String>::new())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn counters(f: Fixture) {
    let cache = &f.cache;
    assert_eq!(cache.incr("views", 1).await.unwrap(), 1);
    assert_eq!(cache.incr("views", 10).await.unwrap(), 11);
    assert_eq!(cache.decr("views", 4).await.unwrap(), 7);
    assert_eq!(cache.get::<u32>("views").await.unwrap(), Some(7));
    cache.set("stock", &100_u16, MINUTE).await.unwrap();
    assert_eq!(cache.decr("stock", 1).await.unwrap(), 99);
    cache.set("max", &i64::MAX, MINUTE).await.unwrap();
    assert!(matches!(
        cache.incr("max", 1).await,
        Err(Error::NotACounter { .. })
    ));
}

async fn concurrent_increments_all_count(f: Fixture) {
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let cache = f.cache.clone();
            tokio::spawn(async move { cache.incr("hits", 1).await.unwrap() })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(f.cache.get::<i64>("hits").await.unwrap(), Some(100));
}

async fn incr_on_a_value_that_is_not_a_counter_is_an_error(f: Fixture) {
    let cache = &f.cache;
    cache.set("name", "text", MINUTE).await.unwrap();
    let err = cache.incr("name", 1).await.unwrap_err();
    assert!(
        matches!(&err, Error::NotACounter { key } if key == "name"),
        "{err}"
    );
    assert_eq!(
        cache.get::<String>("name").await.unwrap().as_deref(),
        Some("text")
    );
}

async fn clear_removes_only_this_prefix(f: Fixture) {
    let other = f.sibling("other").await;
    for i in 0..1200 {
        f.cache.set(&format!("k{i}"), &i, MINUTE).await.unwrap();
    }
    other.set("k1", "kept", MINUTE).await.unwrap();
    if let Some(server) = &f.server {
        let mut conn = server.connect(0).await;
        let () = redis::cmd("SET")
            .arg("not-a-cache-key")
            .arg("x")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    f.cache.clear().await.unwrap();
    assert_eq!(f.cache.get::<i32>("k1").await.unwrap(), None);
    assert!(
        f.cache
            .get_many::<i32>((0..1200).map(|i| format!("k{i}")))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        other.get::<String>("k1").await.unwrap().as_deref(),
        Some("kept")
    );
    if let Some(server) = &f.server {
        let mut conn = server.connect(0).await;
        let size: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
        assert_eq!(
            size, 2,
            "only the other prefix's key and the foreign key are left"
        );
    }
}

async fn prefixes_do_not_see_each_other(f: Fixture) {
    // Unescaped, prefix `test` with key `x:k` and prefix `test:x` with key `k`
    // would be the same stored key.
    let nested = f.sibling("test:x").await;
    f.cache.set("x:k", "outer", MINUTE).await.unwrap();
    nested.set("k", "inner", MINUTE).await.unwrap();
    assert_eq!(
        f.cache.get::<String>("x:k").await.unwrap().as_deref(),
        Some("outer")
    );
    assert_eq!(
        nested.get::<String>("k").await.unwrap().as_deref(),
        Some("inner")
    );
    assert_eq!(nested.get::<String>("x:k").await.unwrap(), None);
}

async fn another_type_is_a_miss_and_is_removed(f: Fixture) {
    let cache = &f.cache;
    cache.set("k", "a string", MINUTE).await.unwrap();
    assert_eq!(cache.get::<OrderStats>("k").await.unwrap(), None);
    assert_eq!(cache.stats().undecodable, 1);
    assert_eq!(
        cache.get::<String>("k").await.unwrap(),
        None,
        "the undecodable entry was removed"
    );
    cache
        .get_or_set("s", || async { stats(1) }, MINUTE)
        .await
        .unwrap();
    assert_eq!(
        cache.get::<Renamed>("s").await.unwrap(),
        None,
        "a struct with other fields does not decode"
    );
}

async fn get_or_set_computes_once(f: Fixture) {
    let calls = Arc::new(AtomicUsize::new(0));
    for _ in 0..5 {
        let calls = Arc::clone(&calls);
        let value = f
            .cache
            .get_or_set(
                "user_order_stats:9",
                || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    stats(9)
                },
                MINUTE,
            )
            .await
            .unwrap();
        assert_eq!(value, stats(9));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        f.cache.get("user_order_stats:9").await.unwrap(),
        Some(stats(9))
    );
}

#[derive(Debug)]
enum AppError {
    Cache(#[allow(dead_code)] Error), // required by `try_get_or_set`; never built here
    Upstream,
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        Self::Cache(e)
    }
}

async fn try_get_or_set_caches_only_ok(f: Fixture) {
    let calls = AtomicUsize::new(0);
    let call = |ok: bool| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if ok {
                Ok(stats(4))
            } else {
                Err(AppError::Upstream)
            }
        }
    };
    let failed = f
        .cache
        .try_get_or_set("rates", || call(false), MINUTE)
        .await;
    assert!(matches!(failed, Err(AppError::Upstream)));
    assert_eq!(f.cache.get::<OrderStats>("rates").await.unwrap(), None);
    let ok = f
        .cache
        .try_get_or_set("rates", || call(true), MINUTE)
        .await
        .unwrap();
    let hit = f
        .cache
        .try_get_or_set("rates", || call(true), MINUTE)
        .await
        .unwrap();
    assert_eq!((ok, hit), (stats(4), stats(4)));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A value whose `Serialize` always fails.
#[derive(Debug, Clone, Deserialize)]
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refused"))
    }
}

async fn unencodable_value_is_an_error_naming_its_type(f: Fixture) {
    let cache = &f.cache;
    let err = cache.set("k", &Unencodable, MINUTE).await.unwrap_err();
    assert!(matches!(err, Error::Encode { type_name, .. } if type_name.ends_with("Unencodable")));
    assert!(err.to_string().contains("Unencodable"), "{err}");
    let err = cache
        .get_or_set("k2", || async { Unencodable }, MINUTE)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Unencodable"), "{err}");
    assert_eq!(cache.stats().writes, 0);
}

async fn long_keys_are_distinct(f: Fixture) {
    let cache = &f.cache;
    let a = format!("{}a", "k".repeat(2000));
    let b = format!("{}b", "k".repeat(2000));
    cache.set(&a, "A", MINUTE).await.unwrap();
    cache.set(&b, "B", MINUTE).await.unwrap();
    assert_eq!(cache.get::<String>(&a).await.unwrap().as_deref(), Some("A"));
    assert_eq!(cache.get::<String>(&b).await.unwrap().as_deref(), Some("B"));
    assert!(cache.key_for(&a).len() <= cachette::DEFAULT_MAX_KEY_LENGTH);
}

async fn invalidated_keys_read_as_absent(f: Fixture) {
    let cache = &f.cache;
    for key in ["a", "b", "c", "d", "e"] {
        cache.set(key, "v", MINUTE).await.unwrap();
        cache.invalidate(key).await.unwrap();
    }
    assert_eq!(cache.get::<String>("a").await.unwrap(), None);
    assert!(
        cache
            .get_many::<String>(["a", "b"])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!cache.touch("b", MINUTE).await.unwrap());
    assert!(!cache.delete("c").await.unwrap());
    assert_eq!(cache.incr("d", 5).await.unwrap(), 5);
    assert!(cache.add("e", "new", MINUTE).await.unwrap());
    assert_eq!(
        cache.get::<String>("e").await.unwrap().as_deref(),
        Some("new")
    );
    assert_eq!(cache.stats().undecodable, 0, "a tombstone is not garbage");
}

#[test]
fn what_a_cache_returns_is_nameable_from_the_facade() {
    let cache = cachette::Cache::memory();
    let health: cachette::Health = cache.health();
    assert_eq!(health.circuit, cachette::Circuit::Closed);
    let tracking: Option<cachette::Tracking> = health.tracking;
    assert_eq!(tracking, None);
    let functions: Vec<cachette::FunctionStats> = cache.function_stats();
    assert!(functions.is_empty());
}
