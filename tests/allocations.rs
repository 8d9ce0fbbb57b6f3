//! A hit served from process memory allocates nothing: its key is rendered
//! inline, and the value is cloned out of the entry.

use std::sync::OnceLock;

use cachette::{Cache, cached};
use serde::{Deserialize, Serialize};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    total: f64,
}

fn memory() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::memory)
}

#[cached(timeout = 3600, key = "order:{id}", cache = memory())]
async fn order(id: u64) -> Order {
    Order { id, total: 12.5 }
}

#[test]
fn memory_hits_allocate_nothing() {
    const HITS: u64 = 10_000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(order(7).await, Order { id: 7, total: 12.5 });
        for _ in 0..100 {
            order(7).await;
        }
        let hits_before = memory().stats().hits;
        let region = Region::new(ALLOCATOR);
        for _ in 0..HITS {
            order(7).await;
        }
        let allocations = region.change().allocations;
        assert_eq!(memory().stats().hits - hits_before, HITS);
        // moka's housekeeping allocates now and then (about once per 100
        // reads); a hit of its own allocated twice before keys were rendered
        // inline.
        assert!(
            allocations as u64 <= HITS / 50,
            "{allocations} allocations for {HITS} hits"
        );
    });
}
