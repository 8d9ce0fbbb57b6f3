use cachette::cached;

#[cached(skip(db))]
async fn total(pool: &str, user_id: u64) -> u64 {
    let _ = pool;
    user_id
}

fn main() {}
