use cachette::cached;

#[cached(batch, key = "user:{id}")]
async fn users(ids: Vec<u64>) -> Vec<String> {
    ids.iter().map(u64::to_string).collect()
}

fn main() {}
