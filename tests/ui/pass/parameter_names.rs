use cachette::{cached, invalidate};

#[cached(timeout = 60)]
async fn names(key: String, cache: u32, result: bool, value: Vec<u8>) -> String {
    format!("{key}{cache}{result}{}", value.len())
}

#[cached(key = "k:{key}:{cache}:{result}:{value:?}")]
async fn templated(key: String, cache: u32, result: bool, value: Vec<u8>) -> String {
    format!("{key}{cache}{result}{}", value.len())
}

#[cached]
async fn destructured((a, b): (u32, u32), [c, d]: [u8; 2]) -> u32 {
    a + b + u32::from(c) + u32::from(d)
}

#[cached(key = "r#type:{r#type}")]
async fn r#type(r#type: u8) -> u8 {
    r#type
}

async fn use_them() {
    let _ = names("k".into(), 1, true, vec![]).await;
    let _ = templated("k".into(), 1, true, vec![]).await;
    let _ = destructured((1, 2), [3, 4]).await;
    let _ = r#type(1).await;
    let _ = invalidate!(names("k".into(), 1, true, vec![])).await;
    let _ = invalidate!(destructured((1, 2), [3, 4])).await;
}

fn main() {
    let _ = use_them;
}
