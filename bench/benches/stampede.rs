//! A cold-key burst: 1000 concurrent callers of a 50 ms computation, with
//! and without single flight. Prints how often the computation ran and how
//! long serving every caller took.
//!
//! `cargo bench -p cachette-bench --bench stampede` (memory; set `REDIS_URL` to add Redis rows)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cachette::Cache;

const CALLERS: usize = 1000;
const BODY: Duration = Duration::from_millis(50);

async fn burst(cache: Cache) -> (usize, Duration) {
    let runs = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (cache, runs) = (cache.clone(), Arc::clone(&runs));
            tokio::spawn(async move {
                let compute = || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(BODY).await;
                    vec![1_u64; 32]
                };
                cache
                    .get_or_set("cold", compute, Duration::from_secs(60))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (runs.load(Ordering::SeqCst), start.elapsed())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let redis = std::env::var("REDIS_URL").ok();
    println!("| backend | single flight | body runs | time to serve {CALLERS} callers |");
    println!("|---|---|---|---|");
    for (backend, url) in [("memory", None), ("redis", redis.as_deref())] {
        if backend == "redis" && url.is_none() {
            continue;
        }
        for single_flight in [true, false] {
            let (runs, took) = runtime.block_on(async {
                let builder = Cache::builder()
                    .single_flight(single_flight)
                    .key_prefix(format!("bench{}", std::process::id()));
                let builder = match url {
                    Some(url) => builder.redis_url(url),
                    None => builder,
                };
                let cache = builder.build().await.unwrap();
                cache.clear().await.unwrap();
                let result = burst(cache.clone()).await;
                cache.clear().await.unwrap();
                result
            });
            println!(
                "| {backend} | {} | {runs} | {took:.1?} |",
                if single_flight { "on" } else { "off" }
            );
        }
    }
}
