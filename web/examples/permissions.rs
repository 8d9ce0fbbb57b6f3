//! The guide's user permissions: computed from users, groups and their
//! permissions in SQLite, cached, and invalidated when a membership changes.
//! An admin page lists the permissions of a page of users with one batch:
//! one query for the users not cached, each stored under the key of the
//! single-user function, so one invalidation serves both.
//!
//! `cargo run -p cachette-web --example permissions` (memory; Redis with `REDIS_URL`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use cachette::{cached, invalidate};
use cachette_web::db::Db;

static QUERIES: AtomicU64 = AtomicU64::new(0);
static PAGE_QUERIES: AtomicU64 = AtomicU64::new(0);

#[cached(timeout = 3600, key = "user_permissions:{user_id}", skip(db))]
async fn user_permissions(db: &Db, user_id: u32) -> Vec<String> {
    QUERIES.fetch_add(1, SeqCst);
    db.permissions(user_id).unwrap()
}

/// A page of users: the permissions of those not cached in one query.
#[cached(batch, timeout = 3600, key = "user_permissions:{user_id}", skip(db))]
async fn page_permissions(db: &Db, user_ids: Vec<u32>) -> HashMap<u32, Vec<String>> {
    PAGE_QUERIES.fetch_add(1, SeqCst);
    println!("page query for users {user_ids:?}");
    db.permissions_of(&user_ids).unwrap()
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
    let page = page_permissions(&db, (1..=10).collect()).await;
    println!("page of {} users, user 3: {:?}", page.len(), page[&3]);
    move_to_group(&db, 3, 3).await;
    println!("user 3 made admin: {:?}", user_permissions(&db, 3).await);
    let page = page_permissions(&db, (1..=10).collect()).await;
    println!("page again (every user cached): user 3: {:?}", page[&3]);
    println!("page queries: {}", PAGE_QUERIES.load(SeqCst));
    println!("database queries: {}", QUERIES.load(SeqCst));
    let _ = std::fs::remove_file(path);
}
