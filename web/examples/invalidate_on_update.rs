//! The guide's signals, in Rust: update functions that write to SQLite and
//! invalidate what they changed, so the next read is fresh.
//!
//! `cargo run -p cachette-web --example invalidate_on_update` (memory; Redis with `REDIS_URL`).

use cachette::{cached, invalidate};
use cachette_web::db::{Db, OrderStats};

#[cached(timeout = 3600, key = "user_order_stats:{user_id}", skip(db))]
async fn user_order_stats(db: &Db, user_id: u32) -> OrderStats {
    db.order_stats(user_id).unwrap()
}

#[cached(timeout = 3600, key = "user_name:{user_id}", tags = ["user:{user_id}"], skip(db))]
async fn user_name(db: &Db, user_id: u32) -> String {
    db.name(user_id).unwrap()
}

/// What Django's `post_save` on an order would do.
async fn place_order(db: &Db, user_id: u32, total: f64) {
    db.add_order(user_id, total).unwrap();
    invalidate!(user_order_stats(db, user_id)).await.unwrap();
}

/// What `post_save` on a user would do: everything tagged with the user goes.
async fn rename(db: &Db, user_id: u32, name: &str) {
    db.rename(user_id, name).unwrap();
    invalidate!(tag = format!("user:{user_id}")).await.unwrap();
}

#[tokio::main]
async fn main() {
    cachette_web::cache("signals").await.install();
    let path = std::env::temp_dir().join(format!("cachette-signals-{}.sqlite", std::process::id()));
    let db = Db::create(&path, 10, 100).unwrap();
    println!(
        "before: {:?}, {}",
        user_order_stats(&db, 7).await,
        user_name(&db, 7).await
    );
    place_order(&db, 7, 100.0).await;
    rename(&db, 7, "Ada").await;
    println!(
        "after:  {:?}, {}",
        user_order_stats(&db, 7).await,
        user_name(&db, 7).await
    );
    let _ = std::fs::remove_file(path);
}
