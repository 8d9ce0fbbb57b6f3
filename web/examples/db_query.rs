//! The guide's database aggregation, on a real SQLite file of 100 000
//! orders, cached for an hour under `user_order_stats:{user_id}`.
//!
//! `cargo run -p cachette-web --example db_query` (memory; Redis with `REDIS_URL`).

use std::time::Instant;

use cachette::cached;
use cachette_web::db::{Db, OrderStats};

#[derive(Debug)]
struct DbError(#[allow(dead_code)] String);

#[cached(timeout = 3600, key = "user_order_stats:{user_id}", skip(db))]
async fn user_order_stats(db: &Db, user_id: u32) -> Result<OrderStats, DbError> {
    db.order_stats(user_id).map_err(|e| DbError(e.to_string()))
}

#[tokio::main]
async fn main() {
    cachette_web::cache("db").await.install();
    let path =
        std::env::temp_dir().join(format!("cachette-db-query-{}.sqlite", std::process::id()));
    let db = Db::create(&path, 1_000, 100_000).unwrap();
    for attempt in ["miss", "hit"] {
        let start = Instant::now();
        let stats = user_order_stats(&db, 42).await.unwrap();
        println!("{attempt}: {:>9.1?}  {stats:?}", start.elapsed());
    }
    let _ = std::fs::remove_file(path);
}
