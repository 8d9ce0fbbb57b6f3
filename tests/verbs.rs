//! The cache verbs users of Django and django-redis reach for: `contains`,
//! `ttl`, `keys` and `delete_pattern`, locks, `set_many`'s failed keys and
//! the strict `incr_existing`, on both backends.

use std::time::Duration;

use cachette::{Cache, Error, Timeout};
use support::free_port;
use support::store::{Store, cluster, memory, redis, sentinel};

const MINUTE: Duration = Duration::from_secs(60);

type Fx = Store;

support::on_every_store!(memory, redis, cluster, sentinel: sentinel;
    contains_sees_any_type_and_removes_nothing,
    ttl_tells_absent_never_and_left_apart,
    keys_and_delete_pattern_stay_under_the_prefix,
    a_lock_has_one_owner_until_released,
    a_lost_lease_is_reported_and_the_new_owner_kept,
    a_dropped_lock_is_released,
    incr_existing_refuses_a_missing_counter,
);

async fn contains_sees_any_type_and_removes_nothing(fx: Fx) {
    let cache = &fx.cache;
    cache.set("stats", &vec![1_u32, 2], MINUTE).await.unwrap();
    assert!(cache.contains("stats").await.unwrap());
    // Asking again, as `get` with a wrong type would not allow, keeps it.
    assert!(cache.contains("stats").await.unwrap());
    assert_eq!(
        cache.get::<Vec<u32>>("stats").await.unwrap(),
        Some(vec![1, 2])
    );
    assert!(!cache.contains("absent").await.unwrap());
    cache.incr("hits", 1).await.unwrap();
    assert!(cache.contains("hits").await.unwrap());
}

async fn ttl_tells_absent_never_and_left_apart(fx: Fx) {
    let cache = &fx.cache;
    cache.set("minute", "v", MINUTE).await.unwrap();
    cache.set("forever", "v", None).await.unwrap();
    match cache.ttl("minute").await.unwrap() {
        Some(Timeout::After(left)) => assert!(left > Duration::ZERO && left <= MINUTE),
        other => panic!("ttl of a minute's value: {other:?}"),
    }
    assert_eq!(cache.ttl("forever").await.unwrap(), Some(Timeout::Never));
    assert_eq!(cache.ttl("absent").await.unwrap(), None);
    cache.invalidate("minute").await.unwrap();
    assert_eq!(cache.ttl("minute").await.unwrap(), None);
}

async fn keys_and_delete_pattern_stay_under_the_prefix(fx: Fx) {
    let cache = &fx.cache;
    let other = fx.sibling("other").await;
    let failed = cache
        .set_many(
            [
                ("user:1", 1),
                ("user:2", 2),
                ("user:10", 10),
                ("order:1", 3),
            ],
            MINUTE,
        )
        .await
        .unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    other.set("user:1", &1, MINUTE).await.unwrap();
    cache.invalidate("user:2").await.unwrap();
    let mut users = cache.keys("user:*").await.unwrap();
    users.sort();
    assert_eq!(
        users,
        ["user:1", "user:10"],
        "live entries only, this prefix only"
    );
    assert_eq!(cache.keys("user:?").await.unwrap(), ["user:1"]);
    assert_eq!(cache.delete_pattern("user:*").await.unwrap(), 2);
    assert!(cache.keys("user:*").await.unwrap().is_empty());
    assert!(cache.contains("order:1").await.unwrap());
    assert!(
        other.contains("user:1").await.unwrap(),
        "another prefix is left alone"
    );
}

async fn a_lock_has_one_owner_until_released(fx: Fx) {
    let cache = &fx.cache;
    let lock = cache.try_lock("report", MINUTE).await.unwrap().unwrap();
    assert_eq!(lock.name(), "report");
    assert!(cache.try_lock("report", MINUTE).await.unwrap().is_none());
    assert!(
        cache
            .lock("report", MINUTE, Duration::from_millis(50))
            .await
            .unwrap()
            .is_none(),
        "a bounded wait gives up"
    );
    lock.extend(MINUTE).await.unwrap();
    lock.release().await.unwrap();
    let again = cache.try_lock("report", MINUTE).await.unwrap();
    assert!(again.is_some());
}

async fn a_lost_lease_is_reported_and_the_new_owner_kept(fx: Fx) {
    let cache = &fx.cache;
    let first = cache
        .try_lock("job", Duration::from_millis(30))
        .await
        .unwrap()
        .unwrap();
    // The lease runs out while a second owner waits for it.
    let second = cache
        .lock("job", MINUTE, Duration::from_secs(5))
        .await
        .unwrap()
        .expect("the second owner gets the lock once the lease ran out");
    assert!(matches!(
        first.extend(MINUTE).await,
        Err(Error::LockLost { .. })
    ));
    assert!(matches!(first.release().await, Err(Error::LockLost { .. })));
    // The late release left the second owner's lock alone.
    assert!(cache.try_lock("job", MINUTE).await.unwrap().is_none());
    second.release().await.unwrap();
}

async fn a_dropped_lock_is_released(fx: Fx) {
    let cache = &fx.cache;
    drop(cache.try_lock("scoped", MINUTE).await.unwrap().unwrap());
    let again = cache
        .lock("scoped", MINUTE, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(again.is_some(), "the drop released the lock");
}

async fn incr_existing_refuses_a_missing_counter(fx: Fx) {
    let cache = &fx.cache;
    assert!(matches!(
        cache.incr_existing("visits", 1).await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        !cache.contains("visits").await.unwrap(),
        "nothing was created"
    );
    cache.set("visits", &41, MINUTE).await.unwrap();
    assert_eq!(cache.incr_existing("visits", 1).await.unwrap(), 42);
    assert!(matches!(
        cache.incr_existing("visits", i64::MAX).await,
        Err(Error::NotACounter { .. })
    ));
}

#[tokio::test]
async fn set_many_names_the_keys_a_failing_redis_did_not_write() {
    let cache = Cache::builder()
        .redis_url(format!("redis://127.0.0.1:{}/0", free_port()))
        .build()
        .await
        .unwrap();
    let mut failed = cache.set_many([("a", 1), ("b", 2)], MINUTE).await.unwrap();
    failed.sort();
    assert_eq!(failed, ["a", "b"]);
}
