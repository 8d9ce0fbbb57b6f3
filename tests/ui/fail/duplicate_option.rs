use cachette::cached;

#[cached(timeout = 60, key = "total:{user_id}", timeout = 120)]
async fn total(user_id: u64) -> u64 {
    user_id * 2
}

fn main() {}
