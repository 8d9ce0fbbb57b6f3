use cachette::{cached, invalidate};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[cached(timeout = 60)]
async fn first<T>(items: Vec<T>) -> Option<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    items.into_iter().next()
}

#[cached(key = "describe:{value}")]
async fn describe<'a, D: std::fmt::Display + Serialize>(value: &'a D, _extra: impl Serialize) -> String {
    value.to_string()
}

#[cached(timeout = std::time::Duration::from_millis(1500))]
async fn with_duration<const N: usize>(id: usize) -> usize {
    id + N
}

async fn use_them() {
    let _ = first(vec![1, 2]).await;
    let _ = describe(&7, "extra").await;
    let _ = with_duration::<3>(1).await;
    let _ = invalidate!(first(vec![1, 2])).await;
    let _ = invalidate!(first::<u32>(vec![])).await;
}

fn main() {
    let _ = use_them;
}
