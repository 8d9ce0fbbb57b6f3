use cachette::cached;
use std::collections::HashMap;

#[cached(batch, key = "users:{ids:?}", stale = 60)]
async fn users(ids: Vec<u64>) -> HashMap<u64, String> {
    ids.into_iter().map(|id| (id, id.to_string())).collect()
}

#[cached(batch, key = "user:{id}", tags = ["user:{id}"])]
async fn tagged(ids: Vec<u64>) -> HashMap<u64, String> {
    ids.into_iter().map(|id| (id, id.to_string())).collect()
}

fn main() {}
