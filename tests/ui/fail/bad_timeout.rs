use cachette::cached;

#[cached(timeout = -5)]
async fn negative(id: u64) -> u64 {
    id
}

#[cached(timeout = "900")]
async fn string(id: u64) -> u64 {
    id
}

#[cached(timeout = 1.5)]
async fn fraction(id: u64) -> u64 {
    id
}

#[cached(timeout = true)]
async fn boolean(id: u64) -> u64 {
    id
}

fn main() {}
