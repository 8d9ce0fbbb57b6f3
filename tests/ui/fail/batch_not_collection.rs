use cachette::cached;
use std::collections::HashMap;

#[cached(batch, key = "user:{id}")]
async fn users(ids: u64) -> HashMap<u64, String> {
    HashMap::from([(ids, String::new())])
}

fn main() {}
