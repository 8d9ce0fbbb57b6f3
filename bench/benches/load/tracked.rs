//! The rows of tagged hits with tracked versions (`track_versions`), on the
//! one server and on the cluster, the floor of a strict tagged hit on the
//! cluster, and the reports of `LOAD_BENCH_ONLY=tracked` and
//! `LOAD_BENCH_ONLY=cluster`.

use std::sync::OnceLock;

use cachette::cached;
use redis::AsyncCommands;

use super::cluster_floor::{self, Part};
use super::measure::{self, paired, rounds};
use super::peer::value;
use super::{Clients, Row, SIZES, TASKS};

/// The floor's requests to the masters, by size: what a strict tagged hit
/// on the cluster (`cluster_tagged_item`) reads, on raw connections.
static FLOORS: OnceLock<Vec<(usize, String, Vec<Part>)>> = OnceLock::new();

/// The floor's requests for the value of `size`.
pub(super) fn floor(size: usize) -> &'static [Part] {
    let floors = FLOORS.get().expect("built first");
    &floors.iter().find(|(s, ..)| *s == size).expect("a size").2
}

/// The caches with tracked versions: on the one server, on the cluster.
static TRACKED_CACHES: OnceLock<[cachette::Cache; 2]> = OnceLock::new();

fn tracked_cache() -> &'static cachette::Cache {
    &TRACKED_CACHES.get().expect("built first")[0]
}

fn cluster_tracked_cache() -> &'static cachette::Cache {
    &TRACKED_CACHES.get().expect("built first")[1]
}

#[cached(timeout = 3600, namespace = "catalog", tags = ["size:{size}", "bench"], cache = tracked_cache())]
pub(super) async fn tagged_item(size: usize) -> String {
    value(size)
}

#[cached(timeout = 3600, namespace = "catalog", tags = ["size:{size}", "bench"], cache = cluster_tracked_cache())]
pub(super) async fn cluster_tagged_item(size: usize) -> String {
    value(size)
}

/// Builds the tracked caches: on `url`, and on the cluster of `seeds`,
/// from `plain` (the other rows' settings).
pub(super) async fn build(url: &str, seeds: &[String], plain: impl Fn() -> cachette::CacheBuilder) {
    let tracked = plain()
        .redis_url(url)
        .key_prefix("tracked")
        .track_versions(true)
        .build()
        .await
        .unwrap();
    let cluster_tracked = plain()
        .redis_cluster(seeds.to_vec())
        .key_prefix("tracked")
        .track_versions(true)
        .build()
        .await
        .unwrap();
    assert!(TRACKED_CACHES.set([tracked, cluster_tracked]).is_ok());
    let mut floors = Vec::new();
    for size in SIZES {
        // The entry's key, derived as `#[cached]` derives it (a function of
        // the bench's root module), and its three version keys.
        let mut derived = cachette::internals::KeyBuilder::new("load");
        derived.arg(&size);
        let mut key = String::new();
        derived.finish("cluster_tagged_item", &mut key);
        let head = |kind: &str, name: &str| format!("cachette#{kind}:{name}");
        let keys = [
            super::cluster_cache().key_for(&key),
            head("ns", "catalog"),
            head("tag", &format!("size:{size}")),
            head("tag", "bench"),
        ];
        let parts = cluster_floor::parts(&seeds[0], &keys).await;
        floors.push((size, keys[0].clone(), parts));
    }
    assert!(FLOORS.set(floors).is_ok());
}

/// The tracked rows (`LOAD_BENCH_ONLY=tracked`): their table, and the
/// tagged rows' ratios to the plain hit, taken within each round.
pub(super) async fn report(clients: &'static Clients) {
    let rounds = rounds(clients, &Row::TRACKED, 256).await;
    let figures = measure::medians(&rounds);
    println!(
        "{}",
        super::report::ratio_table(&Row::TRACKED, &[(256, figures)])
    );
    let plain = &rounds[1];
    for (row, of) in Row::TRACKED.iter().zip(&rounds).skip(2) {
        println!(
            "{} ÷ plain hit, per round (median, spread): client CPU {}, {TASKS}-task throughput {}",
            row.name(),
            paired(of, plain, |f| f.cpu_us),
            paired(of, plain, |f| f.ops_per_s)
        );
    }
}

/// The cluster's rows (`LOAD_BENCH_ONLY=cluster`) at each size: their table,
/// each cachette row's ratios to the raw cluster `GET`, and the tracked
/// tagged hit's to the plain one, taken within each round.
pub(super) async fn cluster_report(clients: &'static Clients) {
    for (size, entry, _) in FLOORS.get().expect("built first") {
        let stored: bool = clients.cluster.clone().exists(entry).await.unwrap();
        assert!(stored, "the floor reads the tagged entry of {size} B");
    }
    let mut results = Vec::new();
    let mut ratios = Vec::new();
    for size in super::SIZES {
        let rounds = rounds(clients, &Row::CLUSTER, size).await;
        results.push((size, measure::medians(&rounds)));
        let (get, plain) = (&rounds[0], &rounds[1]);
        for (row, of) in Row::CLUSTER.iter().zip(&rounds).skip(1) {
            ratios.push(format!(
                "{size} B, {} ÷ raw cluster GET, per round (median, spread): client CPU {}, {TASKS}-task throughput {}",
                row.name(),
                paired(of, get, |f| f.cpu_us),
                paired(of, get, |f| f.ops_per_s)
            ));
        }
        let floor = &rounds[4];
        ratios.push(format!(
            "{size} B, {} ÷ its floor, per round: client CPU {}, {TASKS}-task throughput {}",
            Row::CLUSTER[2].name(),
            paired(&rounds[2], floor, |f| f.cpu_us),
            paired(&rounds[2], floor, |f| f.ops_per_s)
        ));
        let tracked = &rounds[3];
        ratios.push(format!(
            "{size} B, {} ÷ plain cluster hit, per round: client CPU {}, {TASKS}-task throughput {}",
            Row::CLUSTER[3].name(),
            paired(tracked, plain, |f| f.cpu_us),
            paired(tracked, plain, |f| f.ops_per_s)
        ));
    }
    println!("{}", super::report::ratio_table(&Row::CLUSTER, &results));
    for line in ratios {
        println!("{line}");
    }
}
