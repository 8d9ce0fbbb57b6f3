//! `#[cached(batch)]` on memory, a server and the cluster: a batch function
//! shares its entries with the function of one id (`invalidate!` of one id
//! drops that id's entry for both), its body runs once with exactly the
//! missing ids, and a single-id call under way is waited for, not repeated.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use cachette::{Cache, cached, invalidate};
use support::store::{Store, cluster, memory, redis};
use tokio::sync::{Notify, oneshot};

/// Each body run, with the ids it computed (0 for the single-id function's
/// runs is not used: it records its id alone).
static RUNS: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

/// While set, the single-id function's body tells the first sender and
/// waits for the gate.
static GATE: Mutex<Option<(oneshot::Sender<()>, Arc<Notify>)>> = Mutex::new(None);

fn runs() -> Vec<Vec<u64>> {
    std::mem::take(&mut *RUNS.lock().unwrap())
}

#[cached(timeout = 3600, key = "user:{id}", namespace = "users", tags = ["team"], cache = cache)]
async fn user(cache: &Cache, id: u64) -> String {
    RUNS.lock().unwrap().push(vec![id]);
    let gate = GATE.lock().unwrap().take();
    if let Some((inside, gate)) = gate {
        inside.send(()).unwrap();
        gate.notified().await;
    }
    format!("user {id}")
}

#[cached(batch, timeout = 3600, key = "user:{id}", namespace = "users", tags = ["team"], cache = cache)]
async fn users(cache: &Cache, ids: Vec<u64>) -> HashMap<u64, String> {
    RUNS.lock().unwrap().push(ids.clone());
    // User 13 does not exist.
    ids.into_iter()
        .filter(|&id| id != 13)
        .map(|id| (id, format!("user {id}")))
        .collect()
}

/// The same entries through a slice, into a `BTreeMap`.
#[cached(batch, timeout = 3600, key = "user:{id}", namespace = "users", tags = ["team"], cache = cache)]
async fn users_sorted(cache: &Cache, ids: &[u64]) -> BTreeMap<u64, String> {
    RUNS.lock().unwrap().push(ids.to_vec());
    ids.iter().map(|&id| (id, format!("user {id}"))).collect()
}

async fn a_batch_function_shares_the_single_entries(fx: Store) {
    let cache = &fx.cache;
    runs();
    assert_eq!(user(cache, 3).await, "user 3");
    let found = users(cache, vec![1, 2, 3, 4, 13]).await;
    assert_eq!(
        runs(),
        [vec![3], vec![1, 2, 4, 13]],
        "one run, of the missing ids"
    );
    assert_eq!(found.len(), 4, "user 13 is not returned");
    assert_eq!(found[&2], "user 2");
    // The single-id function hits what the batch stored.
    assert_eq!(user(cache, 4).await, "user 4");
    assert!(runs().is_empty());
    // Invalidating one id drops its entry: the next batch computes it alone
    // (and asks for 13 again: it was not cached).
    invalidate!(user(cache, 2)).await.unwrap();
    let found = users(cache, vec![1, 2, 3, 4, 13]).await;
    assert_eq!(runs(), [vec![2, 13]]);
    assert_eq!(found.len(), 4);
    let sorted = users_sorted(cache, &[4, 3, 5]).await;
    assert_eq!(runs(), [vec![5]]);
    assert_eq!(sorted.keys().copied().collect::<Vec<_>>(), [3, 4, 5]);
    // A namespace (or a tag) drops every id.
    invalidate!(namespace = "users", cache = cache)
        .await
        .unwrap();
    users(cache, vec![1, 2]).await;
    assert_eq!(runs(), [vec![1, 2]]);
    invalidate!(tag = "team", cache = cache).await.unwrap();
    users(cache, vec![2, 1]).await;
    assert_eq!(runs(), [vec![2, 1]]);
    assert!(users(cache, Vec::new()).await.is_empty());
    assert!(runs().is_empty(), "no ids, no run");
}

/// A single-id call computing id 5: a batch of 4, 5 and 6 computes 4 and 6,
/// and takes 5 from that call.
async fn a_batch_function_waits_for_a_single_call(fx: Store) {
    runs();
    let (inside, computing) = oneshot::channel();
    let release = Arc::new(Notify::new());
    *GATE.lock().unwrap() = Some((inside, Arc::clone(&release)));
    let cache = fx.cache.clone();
    let single = tokio::spawn(async move { user(&cache, 5).await });
    computing.await.unwrap();
    let cache = fx.cache.clone();
    let batch = tokio::spawn(async move { users(&cache, vec![4, 5, 6]).await });
    // The batch's body runs once it has joined the flight of 5.
    support::eventually("the batch computes 4 and 6", async || {
        RUNS.lock().unwrap().len() == 2
    })
    .await;
    release.notify_one();
    assert_eq!(single.await.unwrap(), "user 5");
    let found = batch.await.unwrap();
    assert_eq!(found.len(), 3);
    assert_eq!(runs(), [vec![5], vec![4, 6]], "5 was computed once");
}

support::on_every_store!(memory, redis, cluster;
    a_batch_function_shares_the_single_entries,
    a_batch_function_waits_for_a_single_call,
);
