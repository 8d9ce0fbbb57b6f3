use cachette::cached;

#[cached(ttl = 60, timeout = 60, refresh)]
async fn total(user_id: u64) -> u64 {
    user_id * 2
}

fn main() {}
