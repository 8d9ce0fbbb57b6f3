//! A real `redis-server` broken on purpose under cached calls: killed,
//! paused, full, starved of connections, its connections dropped. Every
//! call must complete with the right value; the figures are printed for
//! RELIABILITY.md (`cargo nextest run -p cachette-tests --test faults --no-capture`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cachette::{Cache, cached};
use support::app::{App, HANG, expected, is_hit, load};
use support::store::redis_cache;
use support::{RedisServer, eventually};

/// A cache on `server` with the default deadlines and breaker.
async fn cache_on(server: &RedisServer) -> Cache {
    server.cache().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_under_load_no_call_fails_and_hits_come_back() {
    let mut server = RedisServer::start();
    let app = App::new(cache_on(&server).await);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&app, 20, &stop);

    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_kill = app.calls.load(SeqCst);
    server.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during = app.calls.load(SeqCst) - before_kill;
    assert!(!app.cache.health().is_up(), "the breaker opened");
    server.restart();
    let restarted = Instant::now();
    eventually("hits come back after the restart", async || {
        is_hit(&app, 1).await && app.cache.health().is_up()
    })
    .await;
    let recovered_ms = restarted.elapsed().as_millis();
    stop.store(true, SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    let stats = app.cache.stats();
    eprintln!(
        "fault 1 (kill under load, 20 tasks): calls={} during_outage={during} hung={} wrong={} \
         slowest_call_ms={} backend_errors={} skipped_by_breaker={} hits_back_after_restart_ms={recovered_ms}",
        app.calls.load(SeqCst),
        app.hung.load(SeqCst),
        app.wrong.load(SeqCst),
        app.slowest_ms.load(SeqCst),
        stats.errors,
        stats.skipped,
    );
    assert!(during > 0, "calls went on while Redis was down");
    assert_eq!(app.hung.load(SeqCst), 0);
    assert_eq!(app.wrong.load(SeqCst), 0);
    assert!(stats.skipped > 0, "the open breaker spared Redis calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_every_call_completes_before_the_pause_ends() {
    const PAUSE: Duration = Duration::from_secs(4);
    let server = RedisServer::start();
    let app = App::new(cache_on(&server).await);
    app.call(1).await;
    assert!(is_hit(&app, 1).await);

    let mut admin = server.connect(0).await;
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(PAUSE.as_millis().to_string())
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    let paused = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&app, 20, &stop);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    let all_done = paused.elapsed();
    let health = app.cache.health();
    eprintln!(
        "fault 2 (CLIENT PAUSE {PAUSE:?}, 20 tasks for 2 s): calls={} hung={} wrong={} slowest_call_ms={} \
         all_done_after_ms={} breaker={health:?}",
        app.calls.load(SeqCst),
        app.hung.load(SeqCst),
        app.wrong.load(SeqCst),
        app.slowest_ms.load(SeqCst),
        all_done.as_millis(),
    );
    assert!(
        all_done < PAUSE,
        "every call returned while Redis was paused"
    );
    assert_eq!(app.wrong.load(SeqCst), 0);
    assert_eq!(app.hung.load(SeqCst), 0);
    assert!(health.times_opened >= 1, "the breaker opened: {health:?}");
    eventually("the breaker closes after the pause", async || {
        is_hit(&app, 1).await && app.cache.health().is_up()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_writes_fail_and_calls_still_succeed() {
    let server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let app = App::new(cache_on(&server).await);
    app.call(1).await;
    assert!(is_hit(&app, 1).await);

    // Full: a limit 256 KiB below what the server uses, so that the few
    // bytes its clients' buffers give back now and then leave it full.
    let mut admin = server.connect(0).await;
    for filled in 0..256 {
        let () = redis::cmd("SET")
            .arg(format!("filler:{filled}"))
            .arg(vec![b'x'; 4096])
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    let memory: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut admin)
        .await
        .unwrap();
    let used: u64 = memory
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|used| used.trim().parse().ok())
        .expect("INFO memory has used_memory");
    let limit = used - 256 * 1024;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(limit)
        .query_async(&mut admin)
        .await
        .unwrap();
    let refused: redis::RedisResult<()> = redis::cmd("SET")
        .arg("small")
        .arg("x")
        .query_async(&mut admin)
        .await;
    assert!(
        refused.is_err_and(|e| e.to_string().contains("OOM")),
        "the server refuses even the smallest write"
    );

    for id in 2..22 {
        app.call(id).await;
        app.call(id).await;
    }
    let stats = app.cache.stats();
    eprintln!(
        "fault 3 (maxmemory below the memory used, noeviction, full): calls={} wrong={} computed={} write_errors={} breaker={:?}",
        app.calls.load(SeqCst),
        app.wrong.load(SeqCst),
        app.computed.load(SeqCst),
        stats.errors,
        app.cache.health(),
    );
    assert_eq!(app.wrong.load(SeqCst), 0);
    assert_eq!(
        app.computed.load(SeqCst),
        1 + 40,
        "nothing new could be stored: each call computed"
    );
    assert!(
        stats.errors >= 20,
        "the refused writes were seen: {stats:?}"
    );
    assert!(
        app.cache.health().is_up(),
        "refusals are answers: the breaker stays closed"
    );
    assert!(is_hit(&app, 1).await, "what was stored is still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_callers_than_connections_all_complete() {
    let (_server, cache) = redis_cache(Cache::builder().connections(2)).await;
    let app = App::new(cache);
    let slow = Arc::new(AtomicU64::new(0));
    let calls: Vec<_> = (0..400_u64)
        .map(|i| {
            let (app, slow) = (Arc::clone(&app), Arc::clone(&slow));
            tokio::spawn(async move {
                // 200 keys, each asked twice at once; every body holds for 200 ms.
                let id = i % 200;
                let value = tokio::time::timeout(HANG, held(&app, id)).await;
                if value.as_deref() != Ok(expected(id).as_str()) {
                    slow.fetch_add(1, SeqCst);
                }
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    eprintln!(
        "fault 4 (pool of 2, 400 concurrent calls on 200 keys, 200 ms bodies): \
         failed_or_hung={} computed={}",
        slow.load(SeqCst),
        app.computed.load(SeqCst),
    );
    assert_eq!(slow.load(SeqCst), 0, "every call completed with its value");
    assert_eq!(app.computed.load(SeqCst), 200, "one computation per key");
    for id in 0..200 {
        assert_eq!(held(&app, id).await, expected(id));
    }
    assert_eq!(app.computed.load(SeqCst), 200, "then every call is a hit");
}

#[cached(key = "held:{id}", skip(app), cache = &app.cache, timeout = 60)]
async fn held(app: &App, id: u64) -> String {
    app.computed.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    expected(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_one_miss_and_the_next_call_works() {
    let server = RedisServer::start();
    let app = App::new(cache_on(&server).await);
    for id in 0..10 {
        app.call(id).await;
    }
    // The server drops every connection the cache holds, between two of its commands.
    let mut admin = server.connect(0).await;
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut admin)
        .await
        .unwrap();
    app.call(0).await;
    let computed = app.computed.load(SeqCst);
    let mut hits = 0;
    for id in 0..10 {
        if is_hit(&app, id).await {
            hits += 1;
        }
    }
    let stats = app.cache.stats();
    eprintln!(
        "fault 5 (CLIENT KILL of the cache's {killed} connections): wrong={} hung={} \
         recomputed={} hits_of_next_10={hits} backend_errors={}",
        app.wrong.load(SeqCst),
        app.hung.load(SeqCst),
        computed - 10,
        stats.errors,
    );
    assert!(killed >= 1);
    assert_eq!(app.wrong.load(SeqCst), 0);
    assert_eq!(app.hung.load(SeqCst), 0);
    assert_eq!(
        computed, 11,
        "the read on a dropped connection was a miss, computed once"
    );
    assert!(
        stats.errors <= 2,
        "each dead connection failed once, then was replaced: {stats:?}"
    );
    assert!(hits >= 9, "the next calls are hits: {hits} of 10");
}

/// A page making three cache calls, Redis paused: the request's budget,
/// not each call's deadline, bounds what the cache may cost it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_budget_is_shared_by_its_cache_calls() {
    let server = RedisServer::start();
    let cache = cache_on(&server).await;
    cache
        .set("warm", "v", Duration::from_secs(60))
        .await
        .unwrap();
    let mut admin = server.connect(0).await;
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg("3000")
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    let before = cache.stats();
    let page = cachette::with_budget(Duration::from_millis(300), async {
        let mut found = Vec::new();
        for key in ["a", "b", "c"] {
            found.push(cache.get::<String>(key).await.unwrap());
        }
        found
    })
    .await;
    let after = cache.stats();
    let (errors, skipped) = (after.errors - before.errors, after.skipped - before.skipped);
    eprintln!("a paused Redis, three calls in a 300 ms budget: errors={errors} skipped={skipped}");
    assert_eq!(page, [None, None, None], "every call a miss");
    assert_eq!(errors + skipped, 3);
    assert!(
        skipped >= 1,
        "the last call found the budget spent and skipped Redis"
    );
}

/// A budget is the time of the cache calls alone: a computation longer than
/// the budget, and the wait of a caller for another's computation, leave it
/// whole for the calls that come after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_is_not_spent_by_computations_or_by_waiting_for_one() {
    let server = RedisServer::start();
    let cache = cache_on(&server).await;
    let budget = Duration::from_millis(100);
    let slow = |value: &'static str| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        value.to_owned()
    };
    let computed = cachette::with_budget(budget, async {
        let value = cache
            .get_or_set("computed", || slow("v"), Duration::from_secs(60))
            .await
            .unwrap();
        (value, cache.get::<String>("computed").await.unwrap())
    })
    .await;
    assert_eq!(computed, ("v".to_owned(), Some("v".to_owned())));
    // A follower waits 300 ms for the leader's value, in a 100 ms budget.
    let leader = tokio::spawn({
        let cache = cache.clone();
        cachette::with_budget(budget, async move {
            cache
                .get_or_set("shared", || slow("w"), Duration::from_secs(60))
                .await
                .unwrap()
        })
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let followed = cachette::with_budget(budget, async {
        let value = cache
            .get_or_set("shared", || slow("unused"), Duration::from_secs(60))
            .await
            .unwrap();
        (value, cache.get::<String>("shared").await.unwrap())
    })
    .await;
    assert_eq!(leader.await.unwrap(), "w");
    assert_eq!(followed, ("w".to_owned(), Some("w".to_owned())));
    let stats = cache.stats();
    assert_eq!((stats.skipped, stats.errors), (0, 0), "{stats:?}");
    assert_eq!(stats.joined, 1, "{stats:?}");
}

/// With the budget spent, concurrent calls whose computations fail hand
/// over to one another, one at a time, and each skips Redis once: a caller
/// whose read was skipped does not read again when its leader fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_is_counted_once_per_call_when_leaders_fail() {
    let server = RedisServer::start();
    let cache = cache_on(&server).await;
    let runs = Arc::new(AtomicU64::new(0));
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let (cache, runs) = (cache.clone(), Arc::clone(&runs));
            tokio::spawn(cachette::with_budget(Duration::ZERO, async move {
                cache
                    .try_get_or_set(
                        "failing",
                        || async {
                            runs.fetch_add(1, SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Err::<String, cachette::Error>(cachette::Error::Unavailable {
                                reason: "the database is down".to_owned(),
                            })
                        },
                        Duration::from_secs(60),
                    )
                    .await
            }))
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().is_err());
    }
    assert_eq!(
        runs.load(SeqCst),
        10,
        "each call computed, none shared a failure"
    );
    assert_eq!(cache.stats().skipped, 10, "{:?}", cache.stats());
}
