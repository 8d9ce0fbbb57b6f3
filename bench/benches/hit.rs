//! A memory-backend hit: through `#[cached]`, through a hand-written
//! `get_or_set`, and a bare moka `get` of the same value (the floor): from
//! moka's asynchronous cache without expiry and with a per-entry expiry, and
//! from its synchronous cache (which the memory backend is built on).
//!
//! `cargo bench -p cachette-bench --bench hit`

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use cachette::{Cache, cached};
use criterion::{Criterion, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderStats {
    order_count: u32,
    total_spent: f64,
    avg_order_value: f64,
}

fn compute(user_id: i64) -> OrderStats {
    OrderStats {
        order_count: 12,
        total_spent: 1234.5,
        avg_order_value: 102.875 + f64::from(u8::try_from(user_id).unwrap_or(0)),
    }
}

fn bench_cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::memory)
}

#[cached(timeout = 3600, key = "user_order_stats:{user_id}", cache = bench_cache())]
async fn macro_cached(user_id: i64) -> OrderStats {
    compute(user_id)
}

async fn hand_written(user_id: i64) -> OrderStats {
    bench_cache()
        .get_or_set(
            &format!("user_order_stats:{user_id}"),
            || async move { compute(user_id) },
            Duration::from_secs(3600),
        )
        .await
        .expect("a memory cache does not fail")
}

/// Every entry lives an hour, as the cached values do.
struct AnHour;

impl moka::Expiry<String, OrderStats> for AnHour {
    fn expire_after_create(
        &self,
        _: &String,
        _: &OrderStats,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(3600))
    }
}

fn hits(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        macro_cached(7).await;
        hand_written(7).await;
    });
    let moka: moka::future::Cache<String, OrderStats> = moka::future::Cache::new(10_000);
    runtime.block_on(moka.insert("user_order_stats:7".to_owned(), compute(7)));
    let expiring: moka::future::Cache<String, OrderStats> = moka::future::Cache::builder()
        .max_capacity(10_000)
        .expire_after(AnHour)
        .build();
    runtime.block_on(expiring.insert("user_order_stats:7".to_owned(), compute(7)));

    let sync: moka::sync::Cache<String, OrderStats> = moka::sync::Cache::new(10_000);
    sync.insert("user_order_stats:7".to_owned(), compute(7));

    let mut group = c.benchmark_group("memory hit");
    group.bench_function("moka sync get (floor)", |b| {
        b.iter(|| black_box(sync.get(black_box("user_order_stats:7"))));
    });
    group.bench_function("moka get (floor)", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(moka.get(black_box("user_order_stats:7")).await) });
    });
    group.bench_function("moka get, per-entry expiry (floor)", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(expiring.get(black_box("user_order_stats:7")).await) });
    });
    group.bench_function("#[cached]", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(macro_cached(black_box(7)).await) });
    });
    group.bench_function("get_or_set by hand", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(hand_written(black_box(7)).await) });
    });
    group.finish();
}

criterion_group!(benches, hits);
criterion_main!(benches);
