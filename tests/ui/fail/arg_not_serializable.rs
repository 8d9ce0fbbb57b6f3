use cachette::cached;

struct Pool;

#[cached(timeout = 60)]
async fn total(pool: &Pool, user_id: u64) -> u64 {
    let _ = pool;
    user_id
}

fn main() {}
