use cachette::cached;

#[cached(cache_none = true)]
async fn total(id: u64) -> u64 {
    id
}

fn main() {}
