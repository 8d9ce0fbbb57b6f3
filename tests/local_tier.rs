//! The local tier in front of Redis: hits with no command, coherent with
//! every other client's writes through `CLIENT TRACKING`, flushed when its
//! tracking connection drops, and bounded in bytes like the memory backend.
//! Each test has two caches on one real Redis: A without a local tier (the
//! other process), B with one.

use std::time::{Duration, Instant};

use cachette::{Cache, Scope};
use support::{RedisServer, eventually};

#[path = "local_tier/shared.rs"]
mod shared;

use shared::{MINUTE, plain, tiered, warm};

/// Calls of the data commands since `CONFIG RESETSTAT`.
async fn data_commands(server: &RedisServer) -> u64 {
    support::command_calls(&mut server.connect(0).await)
        .await
        .into_iter()
        .filter(|(name, _)| matches!(name.as_str(), "get" | "mget" | "evalsha" | "eval" | "set"))
        .map(|(_, calls)| calls)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_hit_sends_no_command_even_with_a_namespace_and_tags() {
    let server = RedisServer::start();
    let cache = tiered(&server).await;
    let scope = Scope::new().namespace("catalog").tag("size:1").tag("bench");
    cache.set_in("item", &7_u64, MINUTE, &scope).await.unwrap();
    warm(&cache, "item", &scope).await;
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut server.connect(0).await)
        .await
        .unwrap();
    let before = cache.stats();
    for _ in 0..100 {
        assert_eq!(cache.get_in::<u64>("item", &scope).await.unwrap(), Some(7));
    }
    let after = cache.stats();
    assert_eq!(after.local_hits - before.local_hits, 100);
    assert_eq!(after.hits - before.hits, 100);
    assert_eq!(data_commands(&server).await, 0, "a local hit sends nothing");
}

/// A changes a row 400 times, four ways in turn; B must stop serving the
/// old value each time. Prints how long that took (the staleness window).
async fn changes_reach_the_local_tier(a: &Cache, b: &Cache, store: &str) {
    let scope = Scope::new().namespace("rows").tag("row:1");
    a.set_in("row", &0_u64, MINUTE, &scope).await.unwrap();
    warm(b, "row", &scope).await;
    let (mut windows, mut stale_after_bound) = (Vec::new(), 0);
    for round in 1..=400_u64 {
        match round % 4 {
            0 => a.set_in("row", &round, MINUTE, &scope).await.unwrap(),
            1 => drop(a.invalidate("row").await.unwrap()),
            2 => drop(a.invalidate_namespace("rows").await.unwrap()),
            _ => drop(a.invalidate_tag("row:1").await.unwrap()),
        }
        let expected = if round % 4 == 0 { Some(round) } else { None };
        let changed = Instant::now();
        loop {
            let seen = b.get_in::<u64>("row", &scope).await.unwrap();
            if seen == expected {
                break;
            }
            if changed.elapsed() > Duration::from_secs(1) {
                stale_after_bound += 1;
                break;
            }
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        windows.push(changed.elapsed());
        if expected.is_none() {
            // Put a value back for the next round to invalidate.
            a.set_in("row", &round, MINUTE, &scope).await.unwrap();
            let changed = Instant::now();
            while b.get_in::<u64>("row", &scope).await.unwrap() != Some(round) {
                assert!(changed.elapsed() < Duration::from_secs(1), "round {round}");
                tokio::time::sleep(Duration::from_micros(100)).await;
            }
        }
    }
    windows.sort();
    eprintln!(
        "local tier on {store}: another client's change seen after p50 {:?}, p99 {:?}, max {:?} ({} rounds); local hits {}",
        windows[windows.len() / 2],
        windows[windows.len() * 99 / 100],
        windows[windows.len() - 1],
        windows.len(),
        b.stats().local_hits,
    );
    assert_eq!(stale_after_bound, 0);
    assert!(
        b.stats().local_hits > 0,
        "the tier served hits between the changes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clients_changes_reach_the_local_tier() {
    let server = RedisServer::start();
    let (a, b) = (plain(&server).await, tiered(&server).await);
    changes_reach_the_local_tier(&a, &b, "one server").await;
}

/// On a cluster, the entry and its version keys live on different masters:
/// the tier tracks every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clients_changes_reach_the_local_tier_on_a_cluster() {
    let cluster = support::RedisCluster::start();
    let a = Cache::builder()
        .redis_cluster(cluster.seeds())
        .build()
        .await
        .unwrap();
    let b = Cache::builder()
        .redis_cluster(cluster.seeds())
        .local_tier(16 << 20)
        .build()
        .await
        .unwrap();
    changes_reach_the_local_tier(&a, &b, "a cluster").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_seen_by_the_next_read_of_the_same_process() {
    let server = RedisServer::start();
    let cache = tiered(&server).await;
    let scope = Scope::new().tag("t");
    cache.set_in("k", &0_u64, MINUTE, &scope).await.unwrap();
    warm(&cache, "k", &scope).await;
    for round in 1..=300_u64 {
        cache.set_in("k", &round, MINUTE, &scope).await.unwrap();
        assert_eq!(cache.get_in::<u64>("k", &scope).await.unwrap(), Some(round));
        cache.invalidate_tag("t").await.unwrap();
        assert_eq!(cache.get_in::<u64>("k", &scope).await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_tracking_connection_flushes_the_tier_and_hits_resume() {
    let mut server = RedisServer::start();
    let (a, b) = (plain(&server).await, tiered(&server).await);
    let scope = Scope::new();
    a.set("k", &1_u64, MINUTE).await.unwrap();
    warm(&b, "k", &scope).await;
    // Every client connection dropped, the tracking one among them.
    let () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query_async(&mut server.connect(0).await)
        .await
        .unwrap_or(());
    // A's own connections went too: it writes once it has a new one.
    let strict = Cache::builder()
        .redis_url(server.url(0))
        .fail_open(false)
        .build()
        .await
        .unwrap();
    eventually("A writes again", async || {
        strict.set("k", &2_u64, MINUTE).await.is_ok()
    })
    .await;
    eventually("B reads the new value", async || {
        b.get::<u64>("k").await.unwrap() == Some(2)
    })
    .await;
    warm(&b, "k", &scope).await;
    assert_eq!(b.get::<u64>("k").await.unwrap(), Some(2));
    // Redis restarted, empty: the tier forgets what it held.
    server.restart();
    eventually("B sees the empty Redis", async || {
        b.get::<u64>("k").await.unwrap().is_none()
    })
    .await;
    eventually("A writes again", async || {
        strict.set("k", &3_u64, MINUTE).await.is_ok()
    })
    .await;
    warm(&b, "k", &scope).await;
    assert_eq!(b.get::<u64>("k").await.unwrap(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_backend_is_bounded_in_bytes() {
    let cache = Cache::builder()
        .memory_bytes(1 << 20)
        .build()
        .await
        .unwrap();
    let value = "v".repeat(32 << 10);
    for i in 0..256 {
        cache.set(&format!("k{i}"), &value, MINUTE).await.unwrap();
    }
    eventually("evictions bring it under its budget", async || {
        cache.set("touch", &1, MINUTE).await.unwrap();
        cache.keys("k*").await.unwrap().len() <= 32
    })
    .await;
    // Over a sixteenth of the budget: not kept.
    cache
        .set("heavy", &"h".repeat(100 << 10), MINUTE)
        .await
        .unwrap();
    assert_eq!(cache.get::<String>("heavy").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_is_served_by_the_local_tier_and_stays_coherent() {
    let server = RedisServer::start();
    let (a, b) = (plain(&server).await, tiered(&server).await);
    let keys: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        a.set(key, &(i as u64), MINUTE).await.unwrap();
    }
    eventually("the local tier holds every key", async || {
        let before = b.stats().local_hits;
        let found = b.get_many::<u64>(&keys).await.unwrap();
        found.len() == keys.len() && b.stats().local_hits - before == keys.len() as u64
    })
    .await;
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut server.connect(0).await)
        .await
        .unwrap();
    for _ in 0..100 {
        let found = b.get_many::<u64>(&keys).await.unwrap();
        assert_eq!(found.len(), 10);
        assert_eq!(found["m3"], 3);
    }
    assert_eq!(
        data_commands(&server).await,
        0,
        "keys held locally need no MGET"
    );
    // Another client's change reaches a key get_many keeps.
    a.set("m3", &33_u64, MINUTE).await.unwrap();
    eventually("the change reaches get_many", async || {
        b.get_many::<u64>(&keys).await.unwrap()["m3"] == 33
    })
    .await;
    // A mix of held and absent keys: the absent ones are asked of Redis, once.
    let mixed = ["m1", "absent", "m2"];
    let found = b.get_many::<u64>(mixed).await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!((found["m1"], found["m2"]), (1, 2));
}

#[tokio::test]
async fn a_local_lifetime_without_a_local_tier_is_an_error() {
    let built = Cache::builder()
        .redis_url("redis://127.0.0.1:1/0")
        .local_lifetime(Duration::from_secs(30))
        .build()
        .await;
    let error = built.unwrap_err();
    assert!(matches!(error, cachette::Error::Config { .. }), "{error:?}");
    assert!(error.to_string().contains("local_tier"), "{error}");
    // Memory as well: the setting would do nothing.
    let memory = Cache::builder()
        .local_lifetime(Duration::from_secs(30))
        .build()
        .await;
    assert!(memory.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_hits_count_the_tier_every_handle_shares() {
    let server = RedisServer::start();
    let (a, b) = (plain(&server).await, tiered(&server).await);
    let b2 = b.with_prefix("other").unwrap();
    a.set("k", &1_u64, MINUTE).await.unwrap();
    a.with_prefix("other")
        .unwrap()
        .set("k", &2_u64, MINUTE)
        .await
        .unwrap();
    warm(&b, "k", &Scope::new()).await;
    warm(&b2, "k", &Scope::new()).await;
    let (before, before_hits, before_hits2) =
        (b.stats().local_hits, b.stats().hits, b2.stats().hits);
    for _ in 0..10 {
        assert_eq!(b.get::<u64>("k").await.unwrap(), Some(1));
        assert_eq!(b2.get::<u64>("k").await.unwrap(), Some(2));
    }
    // Each handle counts its own hits; the shared tier counts all of them.
    assert_eq!(b.stats().hits - before_hits, 10);
    assert_eq!(b2.stats().hits - before_hits2, 10);
    assert_eq!(b.stats().local_hits - before, 20);
    assert_eq!(b2.stats().local_hits, b.stats().local_hits);
}

/// After each invalidation, the tier may hold what Redis then holds (a
/// tombstone, a value of older versions), but what it answers with is a
/// miss: counted in `misses`, never in `local_hits`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_hits_count_hits_not_what_an_invalidation_left() {
    let server = RedisServer::start();
    let cache = tiered(&server).await;
    let scope = Scope::new().namespace("catalog").tag("size:1");
    for way in ["key", "namespace", "tag"] {
        cache.set_in("item", &7_u64, MINUTE, &scope).await.unwrap();
        warm(&cache, "item", &scope).await;
        match way {
            "key" => cache.invalidate("item").await,
            "namespace" => cache.invalidate_namespace("catalog").await,
            _ => cache.invalidate_tag("size:1").await,
        }
        .unwrap();
        let before = cache.stats();
        let value = cache
            .get_or_set_in("item", async || 8_u64, MINUTE, &scope)
            .await
            .unwrap();
        assert_eq!(value, 8, "{way}: computed again");
        let after = cache.stats();
        assert_eq!(after.misses - before.misses, 1, "{way}: a miss");
        assert_eq!(after.hits - before.hits, 0, "{way}: no hit");
        assert_eq!(
            after.local_hits - before.local_hits,
            0,
            "{way}: no local hit"
        );
    }
}

/// A tag bump makes the tier forget what it changed (the tag's version,
/// the entries that carry the tag from their value), not every copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_bump_leaves_the_other_local_copies() {
    let server = RedisServer::start();
    let cache = tiered(&server).await;
    cache.set("other", &1_u64, MINUTE).await.unwrap();
    warm(&cache, "other", &Scope::new()).await;
    for tag in ["unused", "size:1"] {
        cache.invalidate_tag(tag).await.unwrap();
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut server.connect(0).await)
            .await
            .unwrap();
        let before = cache.stats().local_hits;
        assert_eq!(cache.get::<u64>("other").await.unwrap(), Some(1));
        assert_eq!(
            cache.stats().local_hits - before,
            1,
            "after a bump of {tag}"
        );
        assert_eq!(data_commands(&server).await, 0, "after a bump of {tag}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_whether_tracking_is_up_and_since_when() {
    let mut server = RedisServer::start();
    assert_eq!(Cache::memory().health().tracking, None);
    assert_eq!(plain(&server).await.health().tracking, None);
    let b = tiered(&server).await;
    eventually("tracking is up", async || {
        b.health().tracking.is_some_and(|t| t.up)
    })
    .await;
    let up_since = b.health().tracking.unwrap().since;
    // The tracking connection killed: down, then up again, since later.
    let killed = Instant::now();
    let () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query_async(&mut server.connect(0).await)
        .await
        .unwrap_or(());
    eventually("tracking comes back after the kill", async || {
        b.health()
            .tracking
            .is_some_and(|t| t.up && t.since > killed)
    })
    .await;
    let back = b.health().tracking.unwrap().since;
    assert!(back > up_since);
    eprintln!("tracking back {:?} after CLIENT KILL", back - killed);
    // The server stopped: down while it is away, up again once it returns.
    server.stop();
    eventually("tracking is down while Redis is away", async || {
        let _ = b.get::<u64>("k").await;
        b.health().tracking.is_some_and(|t| !t.up)
    })
    .await;
    let restarted = Instant::now();
    server.restart();
    eventually("tracking comes back after the restart", async || {
        b.health().tracking.is_some_and(|t| t.up)
    })
    .await;
    eprintln!(
        "tracking back {:?} after the server restarted",
        b.health()
            .tracking
            .unwrap()
            .since
            .saturating_duration_since(restarted)
    );
}

/// Redis deletes an expired key only when it is touched or sampled: a
/// local copy must go when its timeout passes, not when Redis gets to it.
/// Active expiry is off here, so Redis never deletes the key on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_copy_goes_with_its_timeout() {
    let server = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    server.command(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).await;
    let b = tiered(&server).await;
    let life = Duration::from_millis(300);
    b.set("single", &1_u64, life).await.unwrap();
    b.set_many([("one", 1_u64), ("two", 2)], life)
        .await
        .unwrap();
    // Tracking comes up in the background: until it does, reads go to Redis.
    warm(&b, "single", &Scope::new()).await;
    for _ in 0..3 {
        assert_eq!(b.get::<u64>("single").await.unwrap(), Some(1));
        assert_eq!(b.get_many::<u64>(["one", "two"]).await.unwrap().len(), 2);
    }
    let held = b.stats().local_hits;
    assert!(held >= 3, "held locally: {held} local hits");
    tokio::time::sleep(life * 2).await;
    assert_eq!(b.get::<u64>("single").await.unwrap(), None);
    assert!(b.get_many::<u64>(["one", "two"]).await.unwrap().is_empty());
    assert_eq!(
        b.stats().local_hits,
        held,
        "the expired copies were not served"
    );
}
