//! The guide's user permissions: computed from users, groups and their
//! permissions in SQLite, cached, and invalidated when a membership changes.
//!
//! `cargo run -p cachette-web --example permissions` (memory; Redis with `REDIS_URL`).

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use cachette::{cached, invalidate};
use cachette_web::db::Db;

static QUERIES: AtomicU64 = AtomicU64::new(0);

#[cached(timeout = 3600, key = "user_permissions:{user_id}", skip(db))]
async fn user_permissions(db: &Db, user_id: u32) -> Vec<String> {
    QUERIES.fetch_add(1, SeqCst);
    db.permissions(user_id).unwrap()
}

/// Update code: the write, then the invalidation of what it changed.
async fn move_to_group(db: &Db, user_id: u32, group_id: u32) {
    db.set_group(user_id, group_id).unwrap();
    invalidate!(user_permissions(db, user_id)).await.unwrap();
}

#[tokio::main]
async fn main() {
    cachette_web::cache("perms").await.install();
    let path = std::env::temp_dir().join(format!(
        "cachette-permissions-{}.sqlite",
        std::process::id()
    ));
    let db = Db::create(&path, 30, 0).unwrap();
    println!("user 3: {:?}", user_permissions(&db, 3).await);
    println!("user 3: {:?}", user_permissions(&db, 3).await);
    move_to_group(&db, 3, 3).await;
    println!("user 3 made admin: {:?}", user_permissions(&db, 3).await);
    println!("database queries: {}", QUERIES.load(SeqCst));
    let _ = std::fs::remove_file(path);
}
