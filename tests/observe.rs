//! What an operator sees: a span per cached call and per direct operation
//! (outcome, tier, a key digest, never an argument value), and the figures
//! of each cached function in `Cache::function_stats`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cachette::{Cache, cached};
use support::RedisServer;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// A span's fields, as text.
type Fields = HashMap<String, String>;

/// Every span opened, by name, with its fields.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<(String, Fields)>>>);

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S> Layer<S> for Spans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = HashMap::new();
        attrs.record(&mut Visitor(&mut fields));
        fields.insert("#id".to_owned(), id.into_u64().to_string());
        let mut spans = self.0.lock().unwrap();
        spans.push((attrs.metadata().name().to_owned(), fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        let id = id.into_u64().to_string();
        if let Some((_, fields)) = spans.iter_mut().rev().find(|(_, f)| f["#id"] == id) {
            values.record(&mut Visitor(fields));
        }
    }
}

impl Spans {
    fn named(&self, name: &str) -> Vec<Fields> {
        let spans = self.0.lock().unwrap();
        spans
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, f)| f.clone())
            .collect()
    }
}

static RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(timeout = 60, cache = cache, skip(cache))]
async fn profile(cache: &Cache, email: &str) -> String {
    let _ = cache;
    RUNS.fetch_add(1, Ordering::SeqCst);
    format!("profile of {email}")
}

/// A cached miss then hit and two direct operations, under a capturing subscriber.
async fn observe(cache: &Cache) -> Spans {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry()
        .with(spans.clone())
        .with(tracing_subscriber::filter::LevelFilter::DEBUG);
    let _guard = tracing::subscriber::set_default(subscriber);
    profile(cache, "ada@example.com").await;
    profile(cache, "ada@example.com").await;
    cache
        .set("greeting", "hello", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(cache.get::<String>("absent").await.unwrap().is_none());
    assert!(cache.contains("greeting").await.unwrap());
    let found = cache
        .get_many::<String>(["greeting", "absent"])
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    spans
}

fn check_spans(spans: &Spans, hit_tier: &str) {
    let calls = spans.named("cachette.call");
    assert_eq!(calls.len(), 2, "{calls:?}");
    for call in &calls {
        assert_eq!(call["function"], "observe::profile");
        assert_eq!(call["key"].len(), 16, "a digest: {call:?}");
        assert!(
            call.values().all(|v| !v.contains("ada")),
            "no argument value: {call:?}"
        );
    }
    assert_eq!(calls[0]["outcome"], "miss");
    assert_eq!(calls[1]["outcome"], "hit");
    assert_eq!(calls[1]["tier"], hit_tier);
    // The miss wrote the value: its encoded size (an envelope around 26 bytes of text).
    let written: usize = calls[0]["size"].parse().unwrap();
    assert!((40..100).contains(&written), "{calls:?}");
    if hit_tier == "redis" {
        assert_eq!(
            calls[1]["size"], calls[0]["size"],
            "the hit read what the miss wrote"
        );
    }
    let ops = spans.named("cachette.op");
    let outcome = |op: &str| {
        ops.iter()
            .find(|f| f["op"] == op)
            .map(|f| f["outcome"].clone())
    };
    assert_eq!(outcome("set").as_deref(), Some("ok"), "{ops:?}");
    assert_eq!(outcome("get").as_deref(), Some("miss"), "{ops:?}");
    assert_eq!(outcome("contains").as_deref(), Some("hit"), "{ops:?}");
    assert_eq!(outcome("get_many").as_deref(), Some("ok"), "{ops:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn spans_say_how_each_call_was_served_without_its_arguments() {
    let memory = Cache::memory();
    check_spans(&observe(&memory).await, "memory");
    let server = RedisServer::start();
    let redis = Cache::builder()
        .redis_url(server.url(0))
        .key_prefix("redis")
        .build()
        .await
        .unwrap();
    check_spans(&observe(&redis).await, "redis");
}

#[tokio::test(flavor = "current_thread")]
async fn keys_appear_in_spans_only_when_asked() {
    let cache = Cache::builder()
        .trace_keys(true)
        .key_prefix("traced")
        .build()
        .await
        .unwrap();
    let spans = observe(&cache).await;
    let calls = spans.named("cachette.call");
    assert!(
        calls[0]["key"].starts_with("traced:observe::profile:"),
        "{calls:?}"
    );
    let ops = spans.named("cachette.op");
    assert!(ops.iter().any(|f| f["key"] == "greeting"), "{ops:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn calls_work_and_count_without_a_subscriber() {
    // No subscriber: calls work and count as usual.
    let cache = Cache::memory();
    profile(&cache, "bob@example.com").await;
    profile(&cache, "bob@example.com").await;
    assert_eq!(cache.stats().hits, 1);
}

#[cached(timeout = 60, cache = cache, skip(cache))]
async fn price(cache: &Cache, id: u32) -> u32 {
    let _ = cache;
    id * 100
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_stats_count_each_function_by_outcome() {
    let server = RedisServer::start();
    for cache in [Cache::memory(), server.cache().await] {
        for id in [1, 2, 1, 1, 2] {
            price(&cache, id).await;
        }
        profile(&cache, "carol@example.com").await;
        let stats = cache.function_stats();
        let names: Vec<&str> = stats.iter().map(|s| s.name).collect();
        assert_eq!(names, ["observe::price", "observe::profile"]);
        let price_stats = stats[0];
        assert_eq!((price_stats.hits, price_stats.misses), (3, 2));
        assert_eq!(price_stats.hit_ratio(), Some(0.6));
        assert_eq!((stats[1].hits, stats[1].misses), (0, 1));
        // A second cache has figures of its own.
        let other = cache.with_prefix("other").unwrap();
        price(&other, 1).await;
        assert_eq!(other.function_stats()[0].misses, 1);
        assert_eq!(cache.function_stats()[0].misses, 2);
    }
}

/// Redis down, the default fail-open: every call computes without the
/// cache, and its function's figures say so (first failing, then skipped
/// once the circuit opens), not that it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_made_without_the_cache_are_counted_uncached() {
    let mut server = RedisServer::start();
    let cache = server.cache().await;
    assert_eq!(price(&cache, 1).await, 100);
    server.stop();
    for _ in 0..8 {
        assert_eq!(price(&cache, 2).await, 200);
    }
    let stats = cache.function_stats()[0];
    assert_eq!(stats.name, "observe::price");
    assert_eq!((stats.hits, stats.misses, stats.uncached), (0, 1, 8));
    let cache_stats = cache.stats();
    assert_eq!(
        cache_stats.errors + cache_stats.skipped,
        8,
        "each call failed or was skipped once: {cache_stats:?}"
    );
    assert!(
        cache_stats.skipped > 0,
        "the circuit opened: {cache_stats:?}"
    );
}
