mod reexported {
    pub use cachette::*;
}

#[reexported::cached(crate = crate::reexported, timeout = 60)]
async fn total(id: u64) -> u64 {
    id * 2
}

async fn use_it() {
    let _ = total(1).await;
    let _ = reexported::invalidate!(total(1), crate = crate::reexported).await;
    let _ = reexported::invalidate!(tag = "t", crate = crate::reexported).await;
}

fn main() {
    let _ = use_it;
}
