//! The batch rows: 100 keys of which 10 are missing, loaded by one
//! `get_many_or_set` (one `MGET`, one computation of the 10, 10 guarded
//! writes in one pipeline) against 100 `get_or_set` calls one after the
//! other (the N+1 pattern: 100 reads, 10 computations, 10 writes), in
//! memory and on the bench's server. Each iteration deletes the same 10
//! keys first (not timed); the median of `ITERATIONS` interleaved
//! iterations is printed side by side.
//!
//! `LOAD_BENCH_ONLY=batch cargo bench -p cachette-bench --bench load`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cachette::Cache;

const KEYS: usize = 100;
const ITERATIONS: usize = 201;
const HOUR: Duration = Duration::from_secs(3600);

/// The value the computation gives a key.
fn computed(key: &str) -> String {
    format!("computed {key}")
}

/// Median of one batch load, and of 100 single loads, of the same keys
/// with the same 10 missing, in µs.
async fn medians(cache: &Cache) -> (f64, f64) {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("batch:{i}")).collect();
    let missing: Vec<String> = keys.iter().step_by(10).cloned().collect();
    let compute = |missing: Vec<String>| async move {
        missing
            .into_iter()
            .map(|key| {
                let value = computed(&key);
                (key, value)
            })
            .collect::<HashMap<_, _>>()
    };
    cache.get_many_or_set(&keys, compute, HOUR).await.unwrap();
    let (mut batch, mut singles) = (Vec::new(), Vec::new());
    for _ in 0..ITERATIONS {
        cache.delete_many(&missing).await.unwrap();
        let started = Instant::now();
        let loaded = cache.get_many_or_set(&keys, compute, HOUR).await.unwrap();
        batch.push(started.elapsed().as_secs_f64() * 1e6);
        assert_eq!(loaded.values.len(), KEYS);
        cache.delete_many(&missing).await.unwrap();
        let started = Instant::now();
        for key in &keys {
            let value = cache
                .get_or_set(key, || async { computed(key) }, HOUR)
                .await
                .unwrap();
            assert_eq!(value, computed(key));
        }
        singles.push(started.elapsed().as_secs_f64() * 1e6);
    }
    (median(batch), median(singles))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The batch table, on memory and on the server at `url`.
pub(super) async fn table(url: &str) -> String {
    let mut table = String::from(
        "| 100 keys, 10 missing | one `get_many_or_set` (median) | 100 `get_or_set` (median) | singles ÷ batch |\n|---|---|---|---|\n",
    );
    let memory = Cache::builder().key_prefix("batch").build().await.unwrap();
    let redis = Cache::builder()
        .redis_url(url)
        .key_prefix("batch")
        .build()
        .await
        .unwrap();
    for (store, cache) in [("memory", memory), ("Redis (loopback)", redis)] {
        let (batch, singles) = medians(&cache).await;
        let ratio = singles / batch;
        let row = format!("| {store} | {batch:.0} µs | {singles:.0} µs | {ratio:.1} × |");
        table.push_str(&row);
        table.push('\n');
    }
    table
}
