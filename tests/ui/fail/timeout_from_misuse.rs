use std::time::Duration;

use cachette::cached;

// The closure takes the wrong type: the function returns `u32`.
#[cached(timeout_from = |name: &String| Duration::from_secs(name.len() as u64))]
async fn wrong_value(id: u32) -> u32 {
    id
}

// The closure returns something that is not a timeout.
#[cached(timeout_from = |_: &u32| "60")]
async fn not_a_timeout(id: u32) -> u32 {
    id
}

// Both: `timeout_from` decides every entry's timeout.
#[cached(timeout = 60, timeout_from = |_: &u32| 30)]
async fn both(id: u32) -> u32 {
    id
}

fn main() {}
