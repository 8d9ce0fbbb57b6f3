use cachette::{cached, invalidate};

#[cached(key = "user_permissions:{user_id}")]
pub async fn user_permissions(user_id: i64) -> Vec<String> {
    vec![user_id.to_string()]
}

pub async fn update(user_id: i64) {
    let _ = invalidate!(user_permissions(user_id)).await;
    let _ = invalidate!(namespace = "product").await;
    let _ = invalidate!(tag = format!("user:{user_id}")).await;
}
