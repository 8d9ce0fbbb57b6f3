//! Batch loads (`Cache::get_many_or_set` and `#[cached(batch)]`) on memory,
//! a server and the cluster: one read for every key, one computation of
//! exactly the missing ones, guarded writes (counted with `INFO
//! commandstats`), single flight shared with single-key calls,
//! invalidations that win over a batch in flight, keys not returned, and
//! Redis down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cachette::{Cache, Scope};
use support::store::{Store, cluster, memory, redis, tiered};
use support::{cli, parse_command_calls};
use tokio::sync::{Notify, oneshot};

const HOUR: Duration = Duration::from_secs(3600);

/// The keys each computation was asked for, in order.
#[derive(Clone, Default)]
struct Asked(Arc<Mutex<Vec<Vec<String>>>>);

impl Asked {
    /// A computation that notes what it was asked and answers `value:{key}`
    /// for every key but those in `skip`.
    fn compute(
        &self,
        skip: &'static [&'static str],
    ) -> impl FnMut(Vec<String>) -> std::future::Ready<HashMap<String, String>> + use<> {
        let asked = self.clone();
        move |missing: Vec<String>| {
            asked.0.lock().unwrap().push(missing.clone());
            let found = missing
                .into_iter()
                .filter(|key| !skip.contains(&key.as_str()))
                .map(|key| (key.clone(), format!("value:{key}")))
                .collect();
            std::future::ready(found)
        }
    }

    fn calls(&self) -> Vec<Vec<String>> {
        self.0.lock().unwrap().clone()
    }
}

fn keys(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("user:{i}")).collect()
}

fn scope() -> Scope {
    Scope::new().namespace("users").tag("team:7")
}

/// Resets the command counts of the store's Redis (every master of the cluster).
async fn reset_stats(fx: &Store) {
    if let Some(server) = &fx.server {
        server.command(&["CONFIG", "RESETSTAT"]).await;
    }
    if let Some(cluster) = &fx.cluster {
        for port in cluster.master_ports() {
            cli(port, &["CONFIG", "RESETSTAT"]);
        }
    }
}

/// The calls of each command the cache sent since [`reset_stats`], summed
/// over the masters (`None` in memory).
async fn commands(fx: &Store) -> Option<Vec<(String, u64)>> {
    let infos: Vec<String> = if let Some(server) = &fx.server {
        let mut conn = server.connect(0).await;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .unwrap();
        vec![info]
    } else if let Some(cluster) = &fx.cluster {
        let ports = cluster.master_ports();
        ports
            .iter()
            .map(|&port| cli(port, &["INFO", "commandstats"]))
            .collect()
    } else {
        return None;
    };
    let mut sum: Vec<(String, u64)> = Vec::new();
    for info in infos {
        for (name, calls) in parse_command_calls(&info) {
            let theirs = matches!(
                name.as_str(),
                "replconf" | "ping" | "info" | "cluster" | "command" | "client" | "hello" | "role"
            ) || name.starts_with("config");
            if theirs {
                continue;
            }
            match sum.iter_mut().find(|(n, _)| *n == name) {
                Some((_, total)) => *total += calls,
                None => sum.push((name, calls)),
            }
        }
    }
    sum.sort();
    Some(sum)
}

/// 100 keys, 90 of them cached: one read, one computation of exactly the
/// 10 others, 10 guarded writes; then all 100 are hits.
async fn a_batch_computes_exactly_its_misses(fx: Store) {
    let cache = &fx.cache;
    let asked = Asked::default();
    let cached: Vec<String> = keys(0..100)
        .into_iter()
        .filter(|k| !k.ends_with('5'))
        .collect();
    assert_eq!(cached.len(), 90);
    cache
        .get_many_or_set_in(&cached, asked.compute(&[]), HOUR, &scope())
        .await
        .unwrap();
    let before = cache.stats();
    reset_stats(&fx).await;
    let batch = cache
        .get_many_or_set_in(keys(0..100), asked.compute(&[]), HOUR, &scope())
        .await
        .unwrap();
    let missing: Vec<String> = keys(0..100)
        .into_iter()
        .filter(|k| k.ends_with('5'))
        .collect();
    assert_eq!(asked.calls(), [cached.clone(), missing.clone()]);
    assert_eq!(batch.values.len(), 100);
    assert!(batch.unreturned.is_empty());
    for key in keys(0..100) {
        assert_eq!(batch.values[&key], format!("value:{key}"));
    }
    let stats = cache.stats();
    assert_eq!(stats.hits - before.hits, 90);
    assert_eq!(stats.misses - before.misses, 10);
    assert_eq!(stats.writes - before.writes, 10);
    // Each guarded write is one EVALSHA; its script's GET and SET are counted too.
    match commands(&fx).await {
        Some(sent) if fx.server.is_some() => assert_eq!(
            sent,
            [("evalsha", 10), ("get", 10), ("mget", 1), ("set", 10)]
                .map(|(c, n)| (c.to_owned(), n)),
            "one MGET of the entries and both versions, one guarded write per miss"
        ),
        // On the cluster, one request per master: each holds keys of many
        // slots, read with a pipeline of a `GET` per key (the 100 entries and
        // both versions); the writes go in one pipeline per master too.
        Some(sent) => {
            eprintln!("cluster: a batch of 100 keys with 10 misses sent {sent:?}");
            let count = |name: &str| sent.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c);
            assert_eq!(count("evalsha"), 10, "{sent:?}");
            assert_eq!(count("mget"), 0, "{sent:?}");
            assert_eq!(count("get"), 102 + count("evalsha"), "{sent:?}");
            let all: u64 = sent.iter().map(|(_, c)| c).sum();
            assert_eq!(all, count("get") + 2 * count("evalsha"), "{sent:?}");
        }
        None => {}
    }
    // Every key is a hit now: no computation.
    reset_stats(&fx).await;
    let again = cache
        .get_many_or_set_in(keys(0..100), asked.compute(&[]), HOUR, &scope())
        .await
        .unwrap();
    assert_eq!(again, batch);
    assert_eq!(asked.calls().len(), 2);
    if let (Some(sent), Some(_)) = (commands(&fx).await, &fx.server) {
        assert_eq!(sent, [("mget".to_owned(), 1)]);
    }
}

/// A key the computation does not return is reported, not cached: the
/// next batch asks for it again, and only for it.
async fn a_key_not_returned_is_reported_and_not_cached(fx: Store) {
    let cache = &fx.cache;
    let asked = Asked::default();
    let batch = cache
        .get_many_or_set(["a", "b", "c"], asked.compute(&["b"]), HOUR)
        .await
        .unwrap();
    assert_eq!(batch.unreturned, ["b"]);
    assert_eq!(batch.values.len(), 2);
    assert!(!batch.values.contains_key("b"));
    assert!(!cache.contains("b").await.unwrap());
    let again = cache
        .get_many_or_set(["a", "b", "c", "b"], asked.compute(&[]), HOUR)
        .await
        .unwrap();
    assert_eq!(asked.calls(), [vec!["a", "b", "c"], vec!["b"]]);
    assert_eq!(again.values["b"], "value:b");
    assert!(again.unreturned.is_empty());
}

/// What invalidates while a batch computes.
#[derive(Clone, Copy, Debug)]
enum Race {
    Key,
    Namespace,
    Tag,
}

/// An invalidation (of one key, the namespace, a tag) that lands while a
/// batch computes wins: the batch's values are returned to it, and not
/// stored over the invalidation.
async fn an_invalidation_racing_a_batch_wins(fx: Store) {
    for race in [Race::Key, Race::Namespace, Race::Tag] {
        let cache = fx.cache.clone();
        cache.clear().await.unwrap();
        let (inside, computing) = oneshot::channel::<()>();
        let release = Arc::new(Notify::new());
        let gate = Arc::clone(&release);
        let mut inside = Some(inside);
        let batch = tokio::spawn(async move {
            let compute = move |missing: Vec<String>| {
                let inside = inside.take();
                let gate = Arc::clone(&gate);
                async move {
                    inside.unwrap().send(()).unwrap();
                    gate.notified().await;
                    missing
                        .into_iter()
                        .map(|k| (k, 1_u32))
                        .collect::<HashMap<_, _>>()
                }
            };
            cache
                .get_many_or_set_in(["x", "y"], compute, HOUR, &scope())
                .await
                .unwrap()
        });
        computing.await.unwrap();
        match race {
            Race::Key => fx.cache.invalidate("x").await.map(drop).unwrap(),
            Race::Namespace => fx
                .cache
                .invalidate_namespace("users")
                .await
                .map(drop)
                .unwrap(),
            Race::Tag => fx.cache.invalidate_tag("team:7").await.map(drop).unwrap(),
        }
        release.notify_one();
        let batch = batch.await.unwrap();
        assert_eq!(
            batch.values.len(),
            2,
            "{race:?}: the caller gets its values"
        );
        let x = fx.cache.get_in::<u32>("x", &scope()).await.unwrap();
        assert_eq!(x, None, "{race:?}: the invalidated key holds nothing");
        let y = fx.cache.get_in::<u32>("y", &scope()).await.unwrap();
        match race {
            Race::Key => assert_eq!(y, Some(1), "a key not invalidated is stored"),
            Race::Namespace | Race::Tag => assert_eq!(y, None, "{race:?}"),
        }
    }
}

/// A single-key call computing a key of a batch: the batch waits for it,
/// and the key is computed once.
async fn a_batch_waits_for_a_single_key_call(fx: Store) {
    let cache = fx.cache.clone();
    let (inside, computing) = oneshot::channel::<()>();
    let release = Arc::new(Notify::new());
    let gate = Arc::clone(&release);
    let single = tokio::spawn(async move {
        let compute = || async move {
            inside.send(()).unwrap();
            gate.notified().await;
            "single:k5".to_owned()
        };
        cache
            .get_or_set_in("k5", compute, HOUR, &scope())
            .await
            .unwrap()
    });
    computing.await.unwrap();
    let cache = fx.cache.clone();
    let asked = Asked::default();
    let compute = asked.compute(&[]);
    let (batched, was_asked) = (asked.clone(), Arc::new(Notify::new()));
    let told = Arc::clone(&was_asked);
    let mut compute = compute;
    let batch = tokio::spawn(async move {
        let keys = ["k4", "k5", "k6"];
        let compute = move |missing: Vec<String>| {
            let computing = compute(missing);
            told.notify_one();
            computing
        };
        cache
            .get_many_or_set_in(keys, compute, HOUR, &scope())
            .await
            .unwrap()
    });
    // The batch computed its other keys: it follows the flight of k5.
    was_asked.notified().await;
    assert_eq!(batched.calls(), [vec!["k4", "k6"]]);
    release.notify_one();
    assert_eq!(single.await.unwrap(), "single:k5");
    let batch = batch.await.unwrap();
    assert_eq!(batch.values["k5"], "single:k5");
    assert_eq!(batched.calls(), [vec!["k4", "k6"]], "k5 was computed once");
    assert_eq!(fx.cache.stats().joined, 1);
}

/// A batch computing a key: a single-key call of it does not compute it again.
async fn a_single_key_call_waits_for_a_batch(fx: Store) {
    let cache = fx.cache.clone();
    let (inside, computing) = oneshot::channel::<()>();
    let release = Arc::new(Notify::new());
    let gate = Arc::clone(&release);
    let mut inside = Some(inside);
    let batch = tokio::spawn(async move {
        let compute = move |missing: Vec<String>| {
            let inside = inside.take();
            let gate = Arc::clone(&gate);
            async move {
                inside.unwrap().send(()).unwrap();
                gate.notified().await;
                missing
                    .into_iter()
                    .map(|k| (k, "batch".to_owned()))
                    .collect::<HashMap<_, _>>()
            }
        };
        cache
            .get_many_or_set_in(["k1", "k2"], compute, HOUR, &scope())
            .await
            .unwrap()
    });
    computing.await.unwrap();
    let cache = fx.cache.clone();
    let single = tokio::spawn(async move {
        let compute = || async { "single".to_owned() };
        cache
            .get_or_set_in("k2", compute, HOUR, &scope())
            .await
            .unwrap()
    });
    // Whether the single call follows the flight or reads the stored value,
    // it does not compute: the batch writes before its flights land.
    tokio::task::yield_now().await;
    release.notify_one();
    assert_eq!(batch.await.unwrap().values["k2"], "batch");
    assert_eq!(single.await.unwrap(), "batch");
}

support::on_every_store!(memory, redis, cluster, tiered;
    a_batch_computes_exactly_its_misses,
    a_key_not_returned_is_reported_and_not_cached,
    an_invalidation_racing_a_batch_wins,
    a_batch_waits_for_a_single_key_call,
    a_single_key_call_waits_for_a_batch,
);

/// Redis down: every key is computed, and no error comes back (fail-open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_computes_every_key_without_an_error() {
    let (mut server, cache) =
        support::store::redis_cache(Cache::builder().command_timeout(Duration::from_millis(200)))
            .await;
    let asked = Asked::default();
    cache
        .get_many_or_set_in(["a", "b"], asked.compute(&[]), HOUR, &scope())
        .await
        .unwrap();
    server.stop();
    let batch = cache
        .get_many_or_set_in(["a", "b", "c"], asked.compute(&[]), HOUR, &scope())
        .await
        .unwrap();
    assert_eq!(asked.calls(), [vec!["a", "b"], vec!["a", "b", "c"]]);
    assert_eq!(batch.values.len(), 3);
    assert!(cache.stats().errors > 0, "the failure was counted");
}
