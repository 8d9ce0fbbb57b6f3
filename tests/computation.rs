//! What the computation decides: lifetimes from the result
//! (`timeout_from`, `get_or_set_with`) and refreshes on purpose
//! (`refresh!`, `Cache::refresh`), on every store. Counts, not timings.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use cachette::{Cache, Scope, Timeout, cached, invalidate, refresh};
use serde::{Deserialize, Serialize};
use support::store::{self, Store};

/// A source of data the cached functions read, how often they ran, and a
/// gate that holds a computation until the test opens it.
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

    fn read(&self) -> u32 {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.source.load(Ordering::SeqCst)
    }

    fn set_source(&self, value: u32) {
        self.source.store(value, Ordering::SeqCst);
    }

    /// Waits for the gate, while the test holds it closed.
    async fn pass_gate(&self) {
        drop(self.gate.read().await);
    }

    /// Waits until the body ran `n` times in all.
    async fn ran(&self, n: usize) {
        support::eventually(&format!("{n} runs"), async || self.runs() == n).await;
    }
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
    fixture(store::memory().await)
}

async fn redis() -> Arc<Fx> {
    fixture(store::redis().await)
}

async fn cluster() -> Arc<Fx> {
    fixture(store::cluster().await)
}

async fn tiered() -> Arc<Fx> {
    fixture(store::tiered().await)
}

/// The time `key` has left to live.
async fn left(cache: &Cache, key: &str) -> Duration {
    match cache.ttl(key).await.unwrap() {
        Some(Timeout::After(left)) => left,
        other => panic!("{key} should expire, not {other:?}"),
    }
}

/// An answer from an upstream that says how long it may be kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Quote {
    price: u32,
    max_age: u64,
}

#[cached(
    skip(fx),
    cache = fx.cache(),
    key = "quote:{sku}",
    timeout_from = |quote: &Quote| Duration::from_secs(quote.max_age)
)]
async fn quote(fx: &Fx, sku: u32, max_age: u64) -> Quote {
    Quote {
        price: fx.read() + sku,
        max_age,
    }
}

#[cached(
    skip(fx),
    cache = fx.cache(),
    key = "search:{query}",
    timeout_from = |found: &Vec<String>| if found.is_empty() { 0 } else { 60 }
)]
async fn search(fx: &Fx, query: &str) -> Vec<String> {
    fx.read();
    if query == "none" {
        Vec::new()
    } else {
        vec![query.to_owned()]
    }
}

#[cached(
    skip(fx),
    cache = fx.cache(),
    key = "fetched:{id}",
    timeout_from = |body: &String| if body.ends_with("...") { Duration::ZERO } else { Duration::from_secs(30) }
)]
async fn fetched(fx: &Fx, id: u32, ok: bool) -> Result<String, String> {
    fx.read();
    match (ok, id) {
        (false, _) => Err("upstream down".to_owned()),
        (true, 0) => Ok("partial...".to_owned()),
        (true, _) => Ok(format!("page {id}")),
    }
}

#[cached(skip(fx), cache = fx.cache(), key = "forever:{id}", timeout_from = |_: &u32| None)]
async fn forever(fx: &Fx, id: u32) -> u32 {
    fx.read() + id
}

async fn the_decided_timeout_is_the_entrys(fx: Arc<Fx>) {
    assert_eq!(quote(&fx, 5, 120).await.max_age, 120);
    let ttl = left(fx.cache(), "quote:5").await;
    assert!(
        ttl > Duration::from_secs(60) && ttl <= Duration::from_secs(120),
        "{ttl:?}"
    );
    // Another result of the same function decides another lifetime.
    quote(&fx, 6, 30).await;
    let ttl = left(fx.cache(), "quote:6").await;
    assert!(ttl <= Duration::from_secs(30), "{ttl:?}");
    // Kept: the second call of each is a hit.
    quote(&fx, 5, 120).await;
    quote(&fx, 6, 30).await;
    assert_eq!(fx.runs(), 2);
    // `None`: kept without an expiry.
    assert_eq!(forever(&fx, 1).await, forever(&fx, 1).await);
    assert_eq!(
        fx.cache().ttl("forever:1").await.unwrap(),
        Some(Timeout::Never)
    );
    assert_eq!(fx.runs(), 3);
}

async fn a_zero_timeout_keeps_nothing(fx: Arc<Fx>) {
    assert!(search(&fx, "none").await.is_empty());
    assert!(search(&fx, "none").await.is_empty());
    assert_eq!(fx.runs(), 2, "an empty result is not kept");
    assert!(!fx.cache().contains("search:none").await.unwrap());
    assert_eq!(search(&fx, "dune").await, ["dune"]);
    assert_eq!(search(&fx, "dune").await, ["dune"]);
    assert_eq!(fx.runs(), 3);
}

async fn a_result_decides_from_its_ok_value(fx: Arc<Fx>) {
    assert_eq!(fetched(&fx, 7, true).await.unwrap(), "page 7");
    assert_eq!(fetched(&fx, 7, true).await.unwrap(), "page 7");
    assert_eq!(fx.runs(), 1);
    // A partial page is never kept, an error neither.
    fetched(&fx, 0, true).await.unwrap();
    fetched(&fx, 0, true).await.unwrap();
    assert!(fetched(&fx, 8, false).await.is_err());
    assert!(fetched(&fx, 8, false).await.is_err());
    assert_eq!(fx.runs(), 5);
    assert!(!fx.cache().contains("fetched:0").await.unwrap());
    let ttl = left(fx.cache(), "fetched:7").await;
    assert!(ttl <= Duration::from_secs(30), "{ttl:?}");
}

async fn the_direct_api_takes_the_timeout_from_the_computation(fx: Arc<Fx>) {
    let scope = Scope::new().tag("rates");
    let compute = || async { (fx.read(), Duration::from_secs(90)) };
    let rate: u32 = fx
        .cache()
        .get_or_set_with("rate", compute, &scope)
        .await
        .unwrap();
    let again: u32 = fx
        .cache()
        .get_or_set_with("rate", || async { (99, Duration::from_secs(90)) }, &scope)
        .await
        .unwrap();
    assert_eq!((rate, again), (1, 1));
    let ttl = left(fx.cache(), "rate").await;
    assert!(
        ttl > Duration::from_secs(60) && ttl <= Duration::from_secs(90),
        "{ttl:?}"
    );
    // Zero: handed back, not stored.
    let skipped: u32 = fx
        .cache()
        .get_or_set_with(
            "rate:none",
            || async { (fx.read(), Duration::ZERO) },
            &scope,
        )
        .await
        .unwrap();
    assert_eq!(skipped, 1);
    assert!(!fx.cache().contains("rate:none").await.unwrap());
    // Fallible: an `Err` is returned and nothing is stored.
    let failed: Result<u32, cachette::Error> = fx
        .cache()
        .try_get_or_set_with(
            "rate:err",
            || async {
                Err::<(u32, Duration), _>(cachette::Error::Unavailable {
                    reason: "down".to_owned(),
                })
            },
            &scope,
        )
        .await;
    assert!(failed.is_err());
    let ok: Result<u32, cachette::Error> = fx
        .cache()
        .try_get_or_set_with("rate:err", || async { Ok((5, None::<Duration>)) }, &scope)
        .await;
    assert_eq!(ok.unwrap(), 5);
    assert_eq!(
        fx.cache().ttl("rate:err").await.unwrap(),
        Some(Timeout::Never)
    );
    // The tag still drops it.
    fx.cache().invalidate_tag("rates").await.unwrap();
    assert_eq!(
        fx.cache().get_in::<u32>("rate", &scope).await.unwrap(),
        None
    );
    assert_eq!(fx.runs(), 2);
}

#[cached(skip(fx), cache = fx.cache(), key = "price:{sku}", namespace = "prices", tags = ["sku:{sku}"])]
async fn price(fx: &Fx, sku: u32) -> u32 {
    let value = fx.read();
    fx.pass_gate().await;
    value * 100 + sku
}

#[cached(skip(fx), cache = fx.cache(), key = "stock:{sku}")]
async fn stock(fx: &Fx, sku: u32) -> Result<u32, String> {
    let value = fx.read();
    if value == 0 {
        return Err("no source".to_owned());
    }
    Ok(value + sku)
}

async fn a_refresh_recomputes_a_fresh_entry(fx: Arc<Fx>) {
    assert_eq!(price(&fx, 3).await, 103);
    fx.set_source(2);
    assert_eq!(price(&fx, 3).await, 103, "still the stored value");
    assert_eq!(fx.runs(), 1);
    assert_eq!(refresh!(price(&fx, 3)).await, 203);
    assert_eq!(fx.runs(), 2);
    assert_eq!(price(&fx, 3).await, 203, "the refreshed value is stored");
    assert_eq!(fx.runs(), 2);
    // A refresh of an entry that is not stored stores it.
    assert_eq!(refresh!(price(&fx, 4)).await, 204);
    assert_eq!(price(&fx, 4).await, 204);
    assert_eq!(fx.runs(), 3);
    // The refreshed entry keeps its namespace and tags.
    invalidate!(tag = "sku:3", cache = fx.cache())
        .await
        .unwrap();
    fx.set_source(3);
    assert_eq!(price(&fx, 3).await, 303);
    assert_eq!(fx.runs(), 4);
}

async fn plain(fx: &Fx) -> u32 {
    tokio::task::yield_now().await;
    fx.read()
}

async fn a_refresh_of_a_plain_call_leaves_the_next_call_alone(fx: Arc<Fx>) {
    assert_eq!(price(&fx, 9).await, 109);
    // Not a `#[cached]` function: it runs as a plain call...
    assert_eq!(refresh!(plain(&fx)).await, 1);
    // ...and the next cached call on this thread is served as usual.
    assert_eq!(price(&fx, 9).await, 109);
    assert_eq!(fx.runs(), 2);
}

async fn a_failed_refresh_keeps_the_stored_value(fx: Arc<Fx>) {
    assert_eq!(stock(&fx, 1).await, Ok(2));
    fx.set_source(0);
    assert!(refresh!(stock(&fx, 1)).await.is_err());
    assert_eq!(stock(&fx, 1).await, Ok(2), "an Err replaces nothing");
    assert_eq!(fx.runs(), 2);
    // An integer without a scope is stored as a counter; a refresh replaces it too.
    fx.set_source(5);
    assert_eq!(refresh!(stock(&fx, 1)).await, Ok(6));
    assert_eq!(stock(&fx, 1).await, Ok(6));
    assert_eq!(fx.runs(), 3);
}

async fn a_refresh_waits_for_an_older_computation_and_computes_again(fx: Arc<Fx>) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("cachette=debug,redis=debug")
        .try_init();
    // A computation that read the source at 1 is held...
    let held = fx.gate.write().await;
    let older = tokio::spawn({
        let fx = Arc::clone(&fx);
        async move { price(&fx, 5).await }
    });
    fx.ran(1).await;
    // ...the source changes, and a refresh is asked for meanwhile.
    fx.set_source(2);
    let refreshed = tokio::spawn({
        let fx = Arc::clone(&fx);
        async move { refresh!(price(&fx, 5)).await }
    });
    // Give the refresh time to find the older computation under way (it
    // passes either way; only a refresh that joined it can take its value).
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(held);
    assert_eq!(older.await.unwrap(), 105);
    assert_eq!(
        refreshed.await.unwrap(),
        205,
        "the refresh did not take the older value"
    );
    assert_eq!(fx.runs(), 2);
    assert_eq!(price(&fx, 5).await, 205);
    assert_eq!(fx.runs(), 2);
}

async fn an_invalidation_during_a_refresh_wins(fx: Arc<Fx>) {
    assert_eq!(price(&fx, 6).await, 106);
    let held = fx.gate.write().await;
    let refreshed = tokio::spawn({
        let fx = Arc::clone(&fx);
        async move { refresh!(price(&fx, 6)).await }
    });
    fx.ran(2).await;
    // The refresh read the source at 1; the source changes and the entry is invalidated.
    fx.set_source(2);
    invalidate!(price(&fx, 6)).await.unwrap();
    drop(held);
    assert_eq!(
        refreshed.await.unwrap(),
        106,
        "the refresh returns what it computed"
    );
    // ...but did not store it over the invalidation.
    assert_eq!(price(&fx, 6).await, 206);
    assert_eq!(fx.runs(), 3);
}

async fn the_direct_refresh_stores_over_a_fresh_value(fx: Arc<Fx>) {
    let cache = fx.cache();
    let hour = Duration::from_secs(3600);
    let scope = Scope::new().namespace("greetings");
    let first: u32 = cache
        .get_or_set_in("hello", || async { fx.read() }, hour, &scope)
        .await
        .unwrap();
    fx.set_source(7);
    let refreshed: u32 = cache
        .refresh("hello", || async { fx.read() }, hour, &scope)
        .await
        .unwrap();
    let after: u32 = cache
        .get_or_set_in("hello", || async { fx.read() }, hour, &scope)
        .await
        .unwrap();
    assert_eq!((first, refreshed, after), (1, 7, 7));
    assert_eq!(fx.runs(), 2);
}

#[cached(skip(fx), cache = fx.cache(), key = "leased:{id}", lock = true)]
async fn leased(fx: &Fx, id: u32) -> u32 {
    let value = fx.read();
    fx.pass_gate().await;
    value * 100 + id
}

/// Two processes' caches on one server: a refresh in one does not take the
/// value of a computation the other ran under the fleet's lease when the
/// refresh started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_waits_for_another_process_holding_the_lease() {
    let here = redis().await;
    let server = here.store.server.as_ref().unwrap();
    let there = fixture(Store {
        cache: server.cache().await,
        server: None,
        cluster: None,
        sentinel: None,
    });
    let held = there.gate.write().await;
    let older = tokio::spawn({
        let there = Arc::clone(&there);
        async move { leased(&there, 7).await }
    });
    there.ran(1).await;
    here.set_source(2);
    let refreshed = tokio::spawn({
        let here = Arc::clone(&here);
        async move { refresh!(leased(&here, 7)).await }
    });
    // Give the refresh time to find the lease held (it passes either way;
    // only a refresh that took the other's value returns 107).
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(held);
    assert_eq!(older.await.unwrap(), 107);
    assert_eq!(refreshed.await.unwrap(), 207);
    assert_eq!(leased(&here, 7).await, 207);
    assert_eq!((here.runs(), there.runs()), (1, 1));
}

support::on_every_store!(
    memory, redis, cluster, tiered;
    the_decided_timeout_is_the_entrys,
    a_zero_timeout_keeps_nothing,
    a_result_decides_from_its_ok_value,
    the_direct_api_takes_the_timeout_from_the_computation,
    a_refresh_recomputes_a_fresh_entry,
    a_failed_refresh_keeps_the_stored_value,
    a_refresh_of_a_plain_call_leaves_the_next_call_alone,
    a_refresh_waits_for_an_older_computation_and_computes_again,
    an_invalidation_during_a_refresh_wins,
    the_direct_refresh_stores_over_a_fresh_value,
);
