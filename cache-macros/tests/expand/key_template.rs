use cachette::cached;

pub struct Db;

#[derive(Debug)]
pub struct DbError;

#[cached(timeout = 3600, key = "user_order_stats:{user_id}", skip(db))]
pub async fn user_order_stats(db: &Db, user_id: i64) -> Result<u64, DbError> {
    let _ = db;
    Ok(user_id.unsigned_abs())
}
