//! The entry point of `#[cached(batch)]` calls.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::hash::Hash;

use super::convert::CachedValue;
use super::key::CallKey;
use crate::engine::Plan;

/// Runs a batch call: `keys` holds each id with its call's key (the key a
/// call for that id alone would have); `compute` is called with the ids
/// without a fresh value and answers a map from id to value. The map
/// returned holds every id found or computed. Every key is in the scope of
/// the first (tags and namespace do not depend on the id).
pub async fn call_batch<K, V, M, F, Fut>(
    keys: Vec<(K, CallKey<'_>)>,
    plan: Plan,
    mut compute: F,
) -> M
where
    K: Eq + Hash + Clone,
    V: CachedValue,
    M: IntoIterator<Item = (K, V)> + FromIterator<(K, V)>,
    F: FnMut(Vec<K>) -> Fut,
    Fut: Future<Output = M>,
{
    let mut index: HashMap<K, usize> = HashMap::with_capacity(keys.len());
    let mut ids: Vec<K> = Vec::with_capacity(keys.len());
    let mut fulls: Vec<String> = Vec::with_capacity(keys.len());
    let mut first = None;
    for (id, key) in keys {
        if index.contains_key(&id) {
            continue;
        }
        index.insert(id.clone(), ids.len());
        ids.push(id);
        fulls.push(key.stored().into_owned());
        first.get_or_insert(key);
    }
    let Some(first) = first else {
        return std::iter::empty().collect();
    };
    let (ids_ref, index) = (&ids, &index);
    let by_position = |asked: Vec<usize>| {
        let computing = compute(asked.iter().map(|&at| ids_ref[at].clone()).collect());
        let asked: HashSet<usize> = asked.into_iter().collect();
        async move {
            let found = computing.await;
            Ok::<_, Infallible>(
                found
                    .into_iter()
                    .filter_map(|(id, value)| Some((*index.get(&id)?, value)))
                    .filter(|(at, _)| asked.contains(at))
                    .collect(),
            )
        }
    };
    let engine = &first.cache.engine;
    let loaded = engine
        .load_many::<V, Infallible, _, _>(&fulls, &first.scope, plan, by_position)
        .await;
    if let Some(error) = &loaded.error {
        let error: &dyn std::error::Error = error;
        tracing::error!(
            key = fulls[0],
            error,
            "cached batch goes on without the cache"
        );
    }
    ids.iter()
        .zip(loaded.values)
        .filter_map(|(id, value)| Some((id.clone(), value?)))
        .collect()
}
