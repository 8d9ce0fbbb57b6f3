use cachette::cached;
use std::collections::HashMap;

#[cached(batch, timeout = 600, key = "user:{id}", namespace = "users", tags = ["team:{team}"])]
async fn users(team: u32, ids: Vec<u64>) -> HashMap<u64, String> {
    ids.into_iter().map(|id| (id, format!("{team}:{id}"))).collect()
}
