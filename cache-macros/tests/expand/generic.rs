use cachette::cached;

#[cached(timeout = 60)]
pub async fn first<T, const N: usize>(items: [T; N]) -> Option<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    items.into_iter().next()
}

#[cached(timeout = 60)]
pub async fn shown(value: impl serde::Serialize + std::fmt::Debug + Send + Sync) -> String {
    format!("{value:?}")
}
