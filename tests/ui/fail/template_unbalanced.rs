use cachette::cached;

#[cached(key = "user_order_stats:{user_id")]
async fn unclosed(user_id: u64) -> u64 {
    user_id
}

#[cached(key = "user_order_stats:user_id}")]
async fn unopened(user_id: u64) -> u64 {
    user_id
}

#[cached(key = "user_order_stats:{}")]
async fn empty(user_id: u64) -> u64 {
    user_id
}

fn main() {}
