//! Past the timeout: stale-while-revalidate, failover, early refresh and
//! spread expiries. Counts and states, not timings: waits only move past
//! a timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cachette::{Cache, cached};
use support::store::{redis_cache, tracking_up};
use support::{RedisServer, eventually};

struct Fx {
    cache: Cache,
    /// On the same backend, serving values for 30 s past their timeout.
    swr: Cache,
    runs: AtomicUsize,
    failing: AtomicBool,
    /// Holds background refreshes until the test opens it.
    gate: tokio::sync::Semaphore,
    _server: Option<RedisServer>,
}

impl Fx {
    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

#[allow(clippy::unused_async)] // one signature for both fixtures
async fn memory() -> Arc<Fx> {
    let swr = Cache::builder().stale_while_revalidate(Duration::from_secs(30));
    fixture(Cache::memory(), swr.build().await.unwrap(), None)
}

async fn redis() -> Arc<Fx> {
    let (server, cache) = redis_cache(Cache::builder()).await;
    let swr = Cache::builder()
        .redis_url(server.url(1))
        .stale_while_revalidate(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    fixture(cache, swr, Some(server))
}

async fn cluster() -> Arc<Fx> {
    on_the_cluster(false).await
}

async fn tracked_cluster() -> Arc<Fx> {
    on_the_cluster(true).await
}

/// The caches on the test binary's cluster, with versions tracked or not.
async fn on_the_cluster(track_versions: bool) -> Arc<Fx> {
    let seeds = support::current_cluster().seeds();
    let cache = Cache::builder()
        .redis_cluster(seeds.clone())
        .track_versions(track_versions)
        .build()
        .await
        .unwrap();
    // A cluster has one database: the second cache has a prefix of its own.
    let swr = Cache::builder()
        .redis_cluster(seeds)
        .key_prefix("swr")
        .track_versions(track_versions)
        .stale_while_revalidate(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    if track_versions {
        tracking_up(&cache).await;
        tracking_up(&swr).await;
    }
    fixture(cache, swr, None)
}

async fn sentinel() -> Arc<Fx> {
    let topology = support::sentinel::current();
    let cache = topology.builder(Cache::builder(), 0).build().await.unwrap();
    let swr = topology
        .builder(Cache::builder(), 1)
        .stale_while_revalidate(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    fixture(cache, swr, None)
}

fn fixture(cache: Cache, swr: Cache, server: Option<RedisServer>) -> Arc<Fx> {
    Arc::new(Fx {
        cache,
        swr,
        runs: AtomicUsize::new(0),
        failing: AtomicBool::new(false),
        gate: tokio::sync::Semaphore::new(0),
        _server: server,
    })
}

async fn tracked() -> Arc<Fx> {
    let (server, cache) = redis_cache(Cache::builder().track_versions(true)).await;
    let swr = Cache::builder()
        .redis_url(server.url(1))
        .track_versions(true)
        .stale_while_revalidate(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    tracking_up(&cache).await;
    tracking_up(&swr).await;
    fixture(cache, swr, Some(server))
}

async fn tiered() -> Arc<Fx> {
    let (server, cache) = redis_cache(Cache::builder().local_tier(16 << 20)).await;
    let swr = Cache::builder()
        .redis_url(server.url(1))
        .local_tier(16 << 20)
        .stale_while_revalidate(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    fixture(cache, swr, Some(server))
}

support::on_every_store!(memory, redis, cluster, tiered, sentinel: sentinel, tracked: tracked, on_cluster: tracked_cluster;
    stale_values_are_served_while_one_caller_refreshes,
    stale_values_are_refreshed_in_the_background,
    get_or_set_detached_refreshes_in_the_background,
    failover_serves_the_last_good_value_within_its_window,
    early_refresh_recomputes_before_the_timeout,
);

const PAST_TIMEOUT: Duration = Duration::from_millis(400);

#[cached(key = "stats", skip(fx), cache = &fx.cache, timeout = Duration::from_millis(200), stale = 30)]
async fn stats(fx: &Fx) -> usize {
    let run = fx.runs.fetch_add(1, Ordering::SeqCst) + 1;
    // Long enough that every caller below reads before the refresh is stored.
    tokio::time::sleep(Duration::from_millis(600)).await;
    run
}

async fn stale_values_are_served_while_one_caller_refreshes(fx: Arc<Fx>) {
    assert_eq!(stats(&fx).await, 1);
    tokio::time::sleep(PAST_TIMEOUT).await;
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let fx = Arc::clone(&fx);
            tokio::spawn(async move { stats(&fx).await })
        })
        .collect();
    let mut results = Vec::new();
    for caller in callers {
        results.push(caller.await.unwrap());
    }
    assert_eq!(fx.runs(), 2, "one refresh");
    assert_eq!(
        results.iter().filter(|&&r| r == 1).count(),
        19,
        "the others got the stale value: {results:?}"
    );
    assert_eq!(
        results.iter().filter(|&&r| r == 2).count(),
        1,
        "the refreshing caller got the new one"
    );
    assert_eq!(stats(&fx).await, 2, "and the next calls see the new value");
    assert_eq!(fx.runs(), 2);
}

/// A caller's result; it must not wait for the refresh held at the gate.
async fn unblocked<T>(caller: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), caller)
        .await
        .expect("a caller waited for the refresh")
        .unwrap()
}

/// Owns its arguments, so its refresh runs in the background.
#[cached(key = "report", skip(fx), cache = &fx.cache, timeout = Duration::from_millis(200), stale = 30)]
async fn report(fx: Arc<Fx>) -> usize {
    report_body(fx).await
}

async fn stale_values_are_refreshed_in_the_background(fx: Arc<Fx>) {
    assert_eq!(report(Arc::clone(&fx)).await, 1);
    tokio::time::sleep(PAST_TIMEOUT).await;
    // The refresh is held at the gate: every caller must be served without it.
    let callers: Vec<_> = (0..20)
        .map(|_| tokio::spawn(report(Arc::clone(&fx))))
        .collect();
    for caller in callers {
        assert_eq!(unblocked(caller).await, 1, "served the stale value at once");
    }
    eventually("the refresh starts", async || fx.runs() == 2).await;
    fx.gate.add_permits(1);
    // The runs when the refreshed value is first served: the refreshed entry
    // goes stale in its turn 200 ms later, and a call after that refreshes
    // it again (a slow machine may take that long to read it).
    let mut runs = 0;
    eventually("the refreshed value is served", async || {
        let served = report(Arc::clone(&fx)).await;
        runs = fx.runs();
        served == 2
    })
    .await;
    assert_eq!(runs, 2, "one refresh for all the stale calls");
}

async fn get_or_set_detached_refreshes_in_the_background(fx: Arc<Fx>) {
    let scope = cachette::Scope::new().tag("reports");
    let call = |fx: &Arc<Fx>| {
        let (fx, cache, scope) = (Arc::clone(fx), fx.swr.clone(), scope.clone());
        async move {
            let compute = {
                let fx = Arc::clone(&fx);
                move || report_body(fx)
            };
            let timeout = Duration::from_millis(200);
            let plan = cache.get_or_set_detached("detached", compute, timeout, &scope);
            plan.await.unwrap()
        }
    };
    assert_eq!(call(&fx).await, 1);
    tokio::time::sleep(PAST_TIMEOUT).await;
    let callers: Vec<_> = (0..20).map(|_| tokio::spawn(call(&fx))).collect();
    for caller in callers {
        assert_eq!(unblocked(caller).await, 1, "served the stale value at once");
    }
    eventually("the refresh starts", async || fx.runs() == 2).await;
    fx.gate.add_permits(1);
    eventually("the refreshed value is served", async || {
        call(&fx).await == 2
    })
    .await;
    assert_eq!(fx.runs(), 2, "one refresh for all the stale calls");
}

/// Counts a run; every run after the first (a refresh) waits at the gate.
async fn report_body(fx: Arc<Fx>) -> usize {
    let run = fx.runs.fetch_add(1, Ordering::SeqCst) + 1;
    if run > 1 {
        fx.gate.acquire().await.unwrap().forget();
    }
    run
}

#[cached(key = "rates", skip(fx), cache = &fx.cache, timeout = Duration::from_millis(200), failover = Duration::from_millis(1500))]
async fn rates(fx: &Fx) -> Result<usize, String> {
    let run = fx.runs.fetch_add(1, Ordering::SeqCst) + 1;
    if fx.failing.load(Ordering::SeqCst) {
        Err(format!("upstream down (run {run})"))
    } else {
        Ok(run)
    }
}

async fn failover_serves_the_last_good_value_within_its_window(fx: Arc<Fx>) {
    assert_eq!(rates(&fx).await, Ok(1));
    fx.failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(PAST_TIMEOUT).await;
    assert_eq!(
        rates(&fx).await,
        Ok(1),
        "the refresh failed: the last good value"
    );
    assert_eq!(fx.runs(), 2);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        rates(&fx).await,
        Err("upstream down (run 3)".to_owned()),
        "past the window: the error"
    );
    fx.failing.store(false, Ordering::SeqCst);
    assert_eq!(rates(&fx).await, Ok(4));
}

#[cached(key = "hot", skip(fx), cache = &fx.cache, timeout = 60, early = 1e9)]
async fn hot(fx: &Fx) -> usize {
    let run = fx.runs.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(Duration::from_millis(20)).await;
    run
}

#[cached(key = "cold", skip(fx), cache = &fx.cache, timeout = 60)]
async fn cold(fx: &Fx) -> usize {
    let run = fx.runs.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(Duration::from_millis(20)).await;
    run
}

async fn early_refresh_recomputes_before_the_timeout(fx: Arc<Fx>) {
    // With a huge beta the XFetch rule all but always picks the next read
    // for refresh, a minute before the timeout; without it, never.
    assert_eq!(cold(&fx).await, 1);
    assert_eq!(cold(&fx).await, 1);
    assert_eq!(hot(&fx).await, 2);
    assert_eq!(
        hot(&fx).await,
        3,
        "refreshed early, by the caller that drew it"
    );
    assert_eq!(fx.runs(), 3);
}

#[tokio::test]
async fn jitter_spreads_the_expiries_of_values_written_together() {
    let (server, cache) = redis_cache(Cache::builder().ttl_jitter(0.5)).await;
    for i in 0..100 {
        cache
            .get_or_set(&format!("k{i}"), || async { i }, Duration::from_secs(100))
            .await
            .unwrap();
    }
    let mut conn = server.connect(0).await;
    let mut ttls = Vec::new();
    for i in 0..100 {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(cache.key_for(&format!("k{i}")))
            .query_async(&mut conn)
            .await
            .unwrap();
        ttls.push(ttl);
    }
    let (min, max) = (*ttls.iter().min().unwrap(), *ttls.iter().max().unwrap());
    assert!(
        min >= 49_000 && max <= 100_000,
        "every timeout is cut by at most half: {min}..{max}"
    );
    assert!(max - min > 20_000, "expiries are spread: {min}..{max}");
}

#[tokio::test]
async fn get_or_set_follows_the_cache_s_stale_setting() {
    let cache = Cache::builder()
        .stale_while_revalidate(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let value = cache
        .get_or_set("k", || async { 1 }, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(value, 1);
    tokio::time::sleep(PAST_TIMEOUT).await;
    assert_eq!(
        cache.get::<i32>("k").await.unwrap(),
        None,
        "a plain read wants fresh values"
    );
    let refreshed = cache
        .get_or_set("k", || async { 2 }, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(refreshed, 2, "the one caller refreshes");
}
