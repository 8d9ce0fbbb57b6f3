//! The code `#[cached]` generates is clean under `clippy::pedantic`
//! (scripts/test runs clippy over this file with `-D warnings`).
#![deny(clippy::pedantic)]

use cachette::{Cache, cached, invalidate};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Stats {
    orders: u32,
}

#[derive(Debug)]
struct DbError;

#[cached(timeout = 3600, key = "stats:{user_id}", cache = Cache::memory())]
async fn stats(user_id: u32) -> Result<Stats, DbError> {
    Ok(Stats { orders: user_id })
}

#[cached(namespace = "n", tags = ["t:{id}"], cache_none = true)]
async fn maybe(id: u32) -> Option<String> {
    (id > 0).then(|| id.to_string())
}

struct Service {
    cache: Cache,
}

impl Service {
    #[cached(cache = &self.cache, unless = |s: &String| s.is_empty())]
    async fn name(&self, id: u32) -> String {
        id.to_string()
    }
}

#[tokio::test]
async fn generated_code_is_pedantic_clean_and_works() {
    assert_eq!(stats(3).await.unwrap(), Stats { orders: 3 });
    assert_eq!(maybe(0).await, None);
    assert_eq!(maybe(2).await.as_deref(), Some("2"));
    let service = Service {
        cache: Cache::memory(),
    };
    assert_eq!(service.name(4).await, "4");
    invalidate!(service.name(4)).await.unwrap();
    invalidate!(namespace = "n").await.unwrap();
}
