//! Tags computed from a value (`#[cached(tags_from = ..)]`): a group's
//! permission change drops the permissions of every member, without the
//! update code listing them, and a computation under way when it happens
//! is not stored. On memory, one Redis and a cluster.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use cachette::{Cache, cached, invalidate};
use serde::{Deserialize, Serialize};
use support::RedisServer;
use support::store::redis_cache;

/// A user's access: the groups they belong to, and what those allow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Access {
    groups: Vec<u32>,
    permissions: Vec<String>,
}

/// A database of users in groups, and of the groups' permissions.
struct Db {
    cache: Cache,
    permissions: Mutex<BTreeMap<u32, Vec<String>>>,
    runs: AtomicUsize,
    /// Held by a test to keep a computation under way.
    gate: tokio::sync::Semaphore,
    _server: Option<RedisServer>,
}

impl Db {
    fn group_of(user_id: u32) -> u32 {
        1 + user_id % 2
    }
}

#[cached(
    key = "access:{user_id}",
    tags_from = |access: &Access| access.groups.iter().map(|g| format!("group:{g}")).collect(),
    cache = &db.cache,
    skip(db)
)]
async fn access(db: &Db, user_id: u32) -> Access {
    db.runs.fetch_add(1, SeqCst);
    let group = Db::group_of(user_id);
    let permissions = db.permissions.lock().unwrap()[&group].clone();
    // A test may hold the computation here, after it read the database.
    drop(db.gate.acquire().await.unwrap());
    Access {
        groups: vec![group],
        permissions,
    }
}

fn db(cache: Cache, server: Option<RedisServer>) -> Arc<Db> {
    Arc::new(Db {
        cache,
        permissions: Mutex::new(BTreeMap::from([
            (1, vec!["read".to_owned()]),
            (2, vec!["read".to_owned(), "write".to_owned()]),
        ])),
        runs: AtomicUsize::new(0),
        gate: tokio::sync::Semaphore::new(1000),
        _server: server,
    })
}

#[allow(clippy::unused_async)] // one signature for every fixture
async fn memory() -> Arc<Db> {
    db(Cache::memory(), None)
}

async fn redis() -> Arc<Db> {
    let (server, cache) = redis_cache(Cache::builder()).await;
    db(cache, Some(server))
}

async fn cluster() -> Arc<Db> {
    let seeds = support::current_cluster().seeds();
    db(
        Cache::builder().redis_cluster(seeds).build().await.unwrap(),
        None,
    )
}

/// Redis behind a local tier, its tracking up.
async fn tiered() -> Arc<Db> {
    let (server, cache) = redis_cache(Cache::builder().local_tier(16 << 20)).await;
    support::store::tracking_up(&cache).await;
    db(cache, Some(server))
}

async fn sentinel() -> Arc<Db> {
    let topology = support::sentinel::current();
    db(
        topology.builder(Cache::builder(), 0).build().await.unwrap(),
        None,
    )
}

support::on_every_store!(memory, redis, cluster, tiered, sentinel: sentinel;
    a_group_change_drops_the_access_of_every_member_only,
    a_computation_under_way_when_its_tag_goes_is_not_stored,
);

async fn a_group_change_drops_the_access_of_every_member_only(db: Arc<Db>) {
    for _ in 0..2 {
        for user in 1..=6 {
            access(&db, user).await;
        }
    }
    assert_eq!(db.runs.load(SeqCst), 6, "computed once each, then hits");
    if db.cache.health().tracking.is_some() {
        // A local tier holds the copies the invalidation must reach.
        let before = db.cache.stats().local_hits;
        for user in 1..=6 {
            access(&db, user).await;
        }
        assert_eq!(db.cache.stats().local_hits - before, 6);
    }
    db.permissions
        .lock()
        .unwrap()
        .insert(2, vec!["read".to_owned()]);
    invalidate!(tag = "group:2", cache = &db.cache)
        .await
        .unwrap();
    for user in 1..=6 {
        let got = access(&db, user).await;
        assert_eq!(
            got.permissions,
            db.permissions.lock().unwrap()[&Db::group_of(user)]
        );
    }
    // Users 1, 3 and 5 are in group 2: recomputed; the others still hit.
    assert_eq!(db.runs.load(SeqCst), 9);
}

async fn a_computation_under_way_when_its_tag_goes_is_not_stored(db: Arc<Db>) {
    let all = db.gate.acquire_many(1000).await.unwrap();
    let slow = {
        let db = Arc::clone(&db);
        tokio::spawn(async move { access(&db, 1).await })
    };
    // The computation read the database, and waits at the gate.
    support::eventually("the computation started", async || {
        db.runs.load(SeqCst) == 1
    })
    .await;
    db.permissions.lock().unwrap().insert(2, vec![]);
    invalidate!(tag = "group:2", cache = &db.cache)
        .await
        .unwrap();
    drop(all);
    assert_eq!(
        slow.await.unwrap().permissions,
        ["read", "write"],
        "what it read"
    );
    assert_eq!(access(&db, 1).await.permissions, Vec::<String>::new());
    assert_eq!(
        db.runs.load(SeqCst),
        2,
        "the value computed before the change was not stored"
    );
}
