use cachette::cached;

#[cached(timeout = 60)]
fn total(user_id: u64) -> u64 {
    user_id * 2
}

fn main() {
    let _ = total(1);
}
