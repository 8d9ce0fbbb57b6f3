use cachette::cached;

trait Store {
    async fn total(&self, id: u64) -> u64;
}

struct Db;

impl Store for Db {
    #[cached]
    async fn total(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
