//! Time limits of a computation: a soft timeout that answers with the value
//! at hand while the refresh finishes in the background, and a hard
//! timeout that abandons it. Values and counts; the only waits move a value
//! past its freshness or let a held computation run into its limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use cachette::{Cache, Error, cached};
use support::store::Store;

/// A source of data, how often the bodies ran, and a gate that holds a
/// computation while the test keeps it closed.
struct Fx {
    store: Store,
    source: AtomicU32,
    runs: AtomicUsize,
    gate: tokio::sync::RwLock<()>,
}

impl Fx {
    fn cache(&self) -> &Cache {
        &self.store.cache
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    /// Reads the source, then waits at the gate.
    async fn read(&self) -> u32 {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let value = self.source.load(Ordering::SeqCst);
        drop(self.gate.read().await);
        value
    }

    fn set_source(&self, value: u32) {
        self.source.store(value, Ordering::SeqCst);
    }
}

/// The fixtures: each cache serves values for a minute past their freshness
/// when a refresh fails, and abandons direct computations after 200 ms.
fn builder() -> cachette::CacheBuilder {
    Cache::builder()
        .failover(Duration::from_secs(60))
        .hard_timeout(Duration::from_millis(200))
}

fn fixture(store: Store) -> Arc<Fx> {
    Arc::new(Fx {
        store,
        source: AtomicU32::new(1),
        runs: AtomicUsize::new(0),
        gate: tokio::sync::RwLock::new(()),
    })
}

async fn memory() -> Arc<Fx> {
    fixture(Store::memory(builder()).await)
}

async fn redis() -> Arc<Fx> {
    fixture(Store::redis(builder()).await)
}

async fn cluster() -> Arc<Fx> {
    fixture(Store::cluster(builder()).await)
}

async fn tiered() -> Arc<Fx> {
    fixture(Store::tiered(builder()).await)
}

/// Fresh for 50 ms: a test moves past that with a short sleep.
const FRESH: Duration = Duration::from_millis(50);

/// How long a value stays fresh: those computed from the first source
/// (below 200) briefly, the others a minute.
#[allow(clippy::trivially_copy_pass_by_ref)] // `timeout_from` hands the value by reference
fn life(value: &u32) -> Duration {
    if *value < 200 {
        FRESH
    } else {
        Duration::from_secs(60)
    }
}

/// Lets a value go past its freshness.
async fn go_stale() {
    tokio::time::sleep(FRESH * 3).await;
}

#[derive(Debug, PartialEq)]
enum AppError {
    Cache(String),
}

impl From<Error> for AppError {
    fn from(error: Error) -> Self {
        Self::Cache(error.to_string())
    }
}

#[cached(skip(fx), cache = fx.cache(), key = "quota:{id}", timeout_from = life, hard_timeout = 200)]
async fn quota(fx: &Fx, id: u32) -> Result<u32, AppError> {
    Ok(fx.read().await + id)
}

#[cached(
    skip(fx),
    cache = fx.cache(),
    key = "feed:{id}",
    timeout_from = life,
    stale = 60,
    soft_timeout = 200
)]
async fn feed(fx: Arc<Fx>, id: u32) -> u32 {
    fx.read().await * 100 + id
}

#[cached(skip(fx), cache = fx.cache(), key = "report:{id}", timeout_from = life, soft_timeout = 200)]
async fn report(fx: Arc<Fx>, id: u32) -> u32 {
    fx.read().await * 100 + id
}

async fn a_soft_timeout_answers_with_the_failover_value(fx: Arc<Fx>) {
    assert_eq!(report(Arc::clone(&fx), 1).await, 101);
    go_stale().await;
    fx.set_source(2);
    let held = fx.gate.write().await;
    // Past its freshness and without `stale`, the value is kept only for
    // failover: the caller waits for the held refresh up to the soft timeout.
    let call = report(Arc::clone(&fx), 1);
    let answered = tokio::time::timeout(Duration::from_secs(20), call).await;
    assert_eq!(answered.expect("the soft timeout answers"), 101);
    drop(held);
    support::eventually("the refresh stored", async || {
        fx.cache().get::<u32>("report:1").await.unwrap() == Some(201)
    })
    .await;
    assert_eq!(fx.runs(), 2);
}

async fn a_hard_timeout_abandons_the_computation(fx: Arc<Fx>) {
    let held = fx.gate.write().await;
    let abandoned = quota(&fx, 1).await;
    assert!(
        matches!(&abandoned, Err(AppError::Cache(text)) if text.contains("abandoned")),
        "{abandoned:?}"
    );
    assert!(
        !fx.cache().contains("quota:1").await.unwrap(),
        "nothing stored"
    );
    drop(held);
    assert_eq!(quota(&fx, 1).await, Ok(2));
    assert_eq!(fx.runs(), 2);
}

async fn the_callers_that_waited_share_the_abandonment(fx: Arc<Fx>) {
    let held = fx.gate.write().await;
    let callers: Vec<_> = (0..3)
        .map(|_| {
            let fx = Arc::clone(&fx);
            tokio::spawn(async move { quota(&fx, 3).await })
        })
        .collect();
    for caller in callers {
        let abandoned = caller.await.unwrap();
        assert!(
            matches!(abandoned, Err(AppError::Cache(_))),
            "{abandoned:?}"
        );
    }
    assert_eq!(fx.runs(), 1, "one computation, not one per caller in turn");
    drop(held);
}

async fn a_hard_timeout_serves_the_failover_value(fx: Arc<Fx>) {
    assert_eq!(quota(&fx, 2).await, Ok(3));
    go_stale().await;
    fx.set_source(5);
    let held = fx.gate.write().await;
    assert_eq!(quota(&fx, 2).await, Ok(3), "the last good value");
    drop(held);
    assert_eq!(
        quota(&fx, 2).await,
        Ok(7),
        "recomputed once the source answers"
    );
    assert_eq!(fx.runs(), 3);
}

async fn the_direct_api_is_abandoned_with_an_error(fx: Arc<Fx>) {
    let held = fx.gate.write().await;
    let hour = Duration::from_secs(3600);
    let abandoned = fx.cache().get_or_set("direct", || fx.read(), hour).await;
    assert!(
        matches!(abandoned, Err(Error::Abandoned { after }) if after == Duration::from_millis(200)),
        "{abandoned:?}"
    );
    drop(held);
    let value = fx.cache().get_or_set("direct", || fx.read(), hour).await;
    assert_eq!(value.unwrap(), 1);
    assert_eq!(fx.runs(), 2);
}

async fn a_soft_timeout_answers_with_the_stale_value(fx: Arc<Fx>) {
    assert_eq!(feed(Arc::clone(&fx), 1).await, 101);
    go_stale().await;
    fx.set_source(2);
    let held = fx.gate.write().await;
    // The refresh is held: every caller gets the stale value after the soft timeout...
    let callers = (0..5).map(|_| tokio::spawn(feed(Arc::clone(&fx), 1)));
    for caller in callers {
        assert_eq!(caller.await.unwrap(), 101);
    }
    // ...and one refresh runs, in the background, and stores its value.
    drop(held);
    support::eventually("the refresh stored", async || {
        fx.cache().get::<u32>("feed:1").await.unwrap() == Some(201)
    })
    .await;
    assert_eq!(fx.runs(), 2);
    assert_eq!(feed(Arc::clone(&fx), 1).await, 201);
}

async fn a_refresh_within_the_soft_timeout_is_served(fx: Arc<Fx>) {
    assert_eq!(feed(Arc::clone(&fx), 2).await, 102);
    go_stale().await;
    fx.set_source(3);
    // Nothing holds the refresh: it lands well within 200 ms.
    assert_eq!(feed(Arc::clone(&fx), 2).await, 302);
    assert_eq!(fx.runs(), 2);
}

async fn the_direct_api_takes_the_soft_timeout_from_the_cache(fx: Arc<Fx>) {
    let soft = Cache::builder()
        .soft_timeout(Duration::from_millis(100))
        .stale_while_revalidate(Duration::from_secs(60));
    let cache = match (&fx.store.server, &fx.store.cluster) {
        (Some(server), _) => soft.redis_url(server.url(1)).build().await.unwrap(),
        (None, Some(cluster)) => soft
            .redis_cluster(cluster.seeds())
            .key_prefix("soft")
            .build()
            .await
            .unwrap(),
        (None, None) => soft.build().await.unwrap(),
    };
    let load = |fx: Arc<Fx>| move || async move { fx.read().await };
    let scope = cachette::Scope::new();
    let first = cache.get_or_set_detached("page", load(Arc::clone(&fx)), FRESH, &scope);
    assert_eq!(first.await.unwrap(), 1);
    go_stale().await;
    fx.set_source(4);
    let held = fx.gate.write().await;
    let minute = Duration::from_secs(60);
    let stale = cache.get_or_set_detached("page", load(Arc::clone(&fx)), minute, &scope);
    assert_eq!(
        stale.await.unwrap(),
        1,
        "the stale value, after the soft timeout"
    );
    drop(held);
    support::eventually("the refresh stored", async || {
        cache.get::<u32>("page").await.unwrap() == Some(4)
    })
    .await;
    assert_eq!(fx.runs(), 2);
}

support::on_every_store!(
    memory, redis, cluster, tiered;
    a_hard_timeout_abandons_the_computation,
    the_callers_that_waited_share_the_abandonment,
    a_hard_timeout_serves_the_failover_value,
    the_direct_api_is_abandoned_with_an_error,
    a_soft_timeout_answers_with_the_stale_value,
    a_soft_timeout_answers_with_the_failover_value,
    a_refresh_within_the_soft_timeout_is_served,
    the_direct_api_takes_the_soft_timeout_from_the_cache,
);
