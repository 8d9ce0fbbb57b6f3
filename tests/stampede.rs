//! Single flight: concurrent misses on one key run the computation once,
//! whatever happens to the caller that runs it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cachette::{Cache, cached};
use support::RedisServer;
use support::store::{redis_cache, tracking_up};

/// A cache under test, the server behind it, and a count of computations.
struct Fx {
    cache: Cache,
    runs: AtomicUsize,
    _server: Option<RedisServer>,
}

impl Fx {
    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    /// Counts a run, then takes as long as a slow query.
    async fn work(&self) -> usize {
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
        run
    }
}

#[allow(clippy::unused_async)] // one signature for both fixtures
async fn memory() -> Arc<Fx> {
    Arc::new(Fx {
        cache: Cache::memory(),
        runs: AtomicUsize::new(0),
        _server: None,
    })
}

async fn redis() -> Arc<Fx> {
    let (server, cache) = redis_cache(Cache::builder()).await;
    Arc::new(Fx {
        cache,
        runs: AtomicUsize::new(0),
        _server: Some(server),
    })
}

async fn cluster() -> Arc<Fx> {
    on_the_cluster(false).await
}

async fn tracked_cluster() -> Arc<Fx> {
    on_the_cluster(true).await
}

/// A cache on the test binary's cluster, with versions tracked or not.
async fn on_the_cluster(track_versions: bool) -> Arc<Fx> {
    let cache = Cache::builder()
        .redis_cluster(support::current_cluster().seeds())
        .track_versions(track_versions)
        .build()
        .await
        .unwrap();
    if track_versions {
        tracking_up(&cache).await;
    }
    Arc::new(Fx {
        cache,
        runs: AtomicUsize::new(0),
        _server: None,
    })
}

async fn tiered() -> Arc<Fx> {
    let (server, cache) = redis_cache(Cache::builder().local_tier(16 << 20)).await;
    Arc::new(Fx {
        cache,
        runs: AtomicUsize::new(0),
        _server: Some(server),
    })
}

async fn tracked() -> Arc<Fx> {
    let (server, cache) = redis_cache(Cache::builder().track_versions(true)).await;
    tracking_up(&cache).await;
    Arc::new(Fx {
        cache,
        runs: AtomicUsize::new(0),
        _server: Some(server),
    })
}

async fn sentinel() -> Arc<Fx> {
    let topology = support::sentinel::current();
    Arc::new(Fx {
        cache: topology.builder(Cache::builder(), 0).build().await.unwrap(),
        runs: AtomicUsize::new(0),
        _server: None,
    })
}

support::on_every_store!(memory, redis, cluster, tiered, sentinel: sentinel, tracked: tracked, on_cluster: tracked_cluster;
    a_thousand_cold_calls_run_the_body_once,
    a_thousand_cold_get_or_set_calls_run_once,
    callers_that_wait_for_a_computation_are_counted_as_joined,
    a_failed_leader_hands_over_to_one_follower,
    a_panicking_leader_hands_over,
    a_cancelled_leader_hands_over,
    recursive_and_mutually_recursive_functions_complete,
);

#[cached(key = "report:{id}", skip(fx), cache = &fx.cache)]
async fn report(fx: &Fx, id: u32) -> usize {
    fx.work().await
}

/// Runs `n` concurrent calls of `call` and returns their results.
async fn concurrently<F, Fut, T>(n: usize, call: F) -> Vec<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(call())).collect();
    let mut out = Vec::with_capacity(n);
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

async fn a_thousand_cold_calls_run_the_body_once(fx: Arc<Fx>) {
    let results = concurrently(1000, || {
        let fx = Arc::clone(&fx);
        async move { report(&fx, 1).await }
    })
    .await;
    assert_eq!(fx.runs(), 1);
    assert!(
        results.iter().all(|&r| r == 1),
        "every caller got the one computed value"
    );
}

async fn callers_that_wait_for_a_computation_are_counted_as_joined(fx: Arc<Fx>) {
    concurrently(20, || {
        let fx = Arc::clone(&fx);
        async move { report(&fx, 2).await }
    })
    .await;
    assert_eq!(fx.runs(), 1);
    let stats = fx.cache.stats();
    assert_eq!((stats.misses, stats.writes), (1, 1), "{stats:?}");
    // The other nineteen waited for that computation (joined), or came after it (hits).
    assert_eq!(stats.hits + stats.joined, 19, "{stats:?}");
    assert!(stats.joined > 0, "{stats:?}");
}

async fn a_thousand_cold_get_or_set_calls_run_once(fx: Arc<Fx>) {
    let results = concurrently(1000, || {
        let fx = Arc::clone(&fx);
        async move {
            fx.cache
                .get_or_set("stats", || fx.work(), Duration::from_secs(60))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(fx.runs(), 1);
    assert!(results.iter().all(|&r| r == 1));
}

#[cached(key = "flaky", skip(fx), cache = &fx.cache)]
async fn flaky(fx: &Fx) -> Result<usize, String> {
    let run = fx.work().await;
    if run == 1 {
        Err("the first run fails".to_owned())
    } else {
        Ok(run)
    }
}

async fn a_failed_leader_hands_over_to_one_follower(fx: Arc<Fx>) {
    let results = concurrently(100, || {
        let fx = Arc::clone(&fx);
        async move { flaky(&fx).await }
    })
    .await;
    assert_eq!(fx.runs(), 2, "the body ran once more after the failure");
    assert_eq!(
        results.iter().filter(|r| r.is_err()).count(),
        1,
        "only the leader saw its error"
    );
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .all(|&r| r == 2)
    );
}

#[cached(key = "panicky", skip(fx), cache = &fx.cache)]
async fn panicky(fx: &Fx) -> usize {
    let run = fx.work().await;
    assert!(run != 1, "the first run panics");
    run
}

async fn a_panicking_leader_hands_over(fx: Arc<Fx>) {
    let leader = tokio::spawn({
        let fx = Arc::clone(&fx);
        async move { panicky(&fx).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let results = concurrently(100, || {
        let fx = Arc::clone(&fx);
        async move { panicky(&fx).await }
    })
    .await;
    assert!(leader.await.is_err(), "the leader panicked");
    assert_eq!(fx.runs(), 2);
    assert!(results.iter().all(|&r| r == 2));
}

async fn a_cancelled_leader_hands_over(fx: Arc<Fx>) {
    let leader = tokio::spawn({
        let fx = Arc::clone(&fx);
        async move { report(&fx, 7).await }
    });
    // Cancelled once it computes, while the followers come.
    support::eventually("the leader computes", async || fx.runs() == 1).await;
    let followers = tokio::spawn(concurrently(100, {
        let fx = Arc::clone(&fx);
        move || {
            let fx = Arc::clone(&fx);
            async move { report(&fx, 7).await }
        }
    }));
    leader.abort();
    assert!(
        leader.await.unwrap_err().is_cancelled(),
        "the leader was cancelled"
    );
    let results = followers.await.unwrap();
    assert_eq!(fx.runs(), 2, "one follower took over");
    assert!(results.iter().all(|&r| r == 2));
}

#[cached(key = "fib:{n}", skip(fx), cache = &fx.cache)]
async fn fib(fx: &Fx, n: u64) -> u64 {
    fx.runs.fetch_add(1, Ordering::SeqCst);
    if n < 2 {
        n
    } else {
        Box::pin(fib(fx, n - 1)).await + Box::pin(fib(fx, n - 2)).await
    }
}

#[cached(key = "even:{n}", skip(fx), cache = &fx.cache)]
async fn is_even(fx: &Fx, n: u64) -> bool {
    if n == 0 {
        true
    } else {
        Box::pin(is_odd(fx, n - 1)).await
    }
}

#[cached(key = "odd:{n}", skip(fx), cache = &fx.cache)]
async fn is_odd(fx: &Fx, n: u64) -> bool {
    if n == 0 {
        false
    } else {
        Box::pin(is_even(fx, n - 1)).await
    }
}

async fn recursive_and_mutually_recursive_functions_complete(fx: Arc<Fx>) {
    let results = concurrently(8, || {
        let fx = Arc::clone(&fx);
        async move { (fib(&fx, 15).await, is_even(&fx, 15).await) }
    })
    .await;
    assert!(results.iter().all(|&r| r == (610, false)));
    assert_eq!(fx.runs(), 16, "each fib(n) ran once");
}
