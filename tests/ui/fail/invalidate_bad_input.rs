use cachette::invalidate;

async fn update() {
    let _ = invalidate!(42).await;
    let _ = invalidate!(namespaces = "product").await;
    let _ = invalidate!(tag = "user:1", caches = 1).await;
}

fn main() {
    let _ = update();
}
