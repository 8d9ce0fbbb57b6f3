use cachette::cached;

trait Store {
    async fn total(&self, id: u64) -> u64;
}

struct Db;

impl Store for Db {
    #[cached(trait_impl, key = "total:{id}", namespace = "totals")]
    async fn total(&self, id: u64) -> u64 {
        id * 2
    }
}

async fn use_it(db: &Db) {
    let _ = db.total(1).await;
    let _ = cachette::invalidate!(namespace = "totals").await;
}

fn main() {
    let _ = use_it;
}
