use cachette::cached;

#[cached(key = "user_order_stats:{user}")]
async fn user_order_stats(user_id: u64) -> u64 {
    user_id * 2
}

#[cached(tags = ["user:{id}"], key = "orders:{user_id}")]
async fn orders(user_id: u64) -> u64 {
    user_id
}

fn main() {}
