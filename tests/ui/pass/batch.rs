use cachette::cached;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

#[derive(Clone)]
struct Db;

#[cached(batch, key = "user:{id}", namespace = "users", tags = ["team:{team}"], jitter = 0.1, skip(db))]
async fn users(db: Db, team: u32, ids: Vec<u64>) -> HashMap<u64, String> {
    let _ = (db, team);
    ids.into_iter().map(|id| (id, id.to_string())).collect()
}

#[cached(batch, timeout = 60, key = "name:{name}")]
async fn lengths(names: &[String]) -> BTreeMap<String, usize> {
    names.iter().map(|n| (n.clone(), n.len())).collect()
}

#[cached(batch, key = "set:{id}")]
async fn sets(ids: HashSet<u32>) -> HashMap<u32, u32> {
    ids.into_iter().map(|id| (id, id)).collect()
}

#[cached(batch, key = "tree:{id}")]
async fn trees(ids: BTreeSet<u32>) -> BTreeMap<u32, u32> {
    ids.into_iter().map(|id| (id, id)).collect()
}

fn main() {
    let _ = (users, lengths, sets, trees);
}
