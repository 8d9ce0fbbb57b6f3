//! What the HTTP tests share: the layer they put in front of their routes,
//! how they read `X-Cache`, and a page that varies on `Accept-Language`.

use std::time::Duration;

use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use cachette::Cache;
use cachette::http::CacheLayer;

pub(crate) const MINUTE: Duration = Duration::from_secs(60);

/// A greeting in the request's language, varying on it.
pub(crate) fn greeting(headers: &HeaderMap) -> Response {
    let lang = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("en")
        .to_owned();
    (
        [(header::VARY, "Accept-Language")],
        format!("greeting in {lang}"),
    )
        .into_response()
}

/// The layer in front of the test routes: pages kept a minute in `cache`.
pub(crate) fn layer(cache: &Cache) -> CacheLayer {
    CacheLayer::new(MINUTE).cache(cache.clone())
}

/// What the layer said it did (`X-Cache`).
pub(crate) fn x_cache(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// `url`'s `X-Cache` and body.
pub(crate) async fn text(client: &reqwest::Client, url: &str) -> (String, String) {
    let response = client.get(url).send().await.unwrap();
    (x_cache(&response), response.text().await.unwrap())
}
