//! What the layer stores of a response, how it decides whether it may, the
//! key of a request, and the body it answers with.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, request};
use http_body::{Body, Frame, SizeHint};
use serde::{Deserialize, Serialize};

use crate::__private::push_decimal;
use crate::key::StoredKey;

/// A stored response.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Page {
    status: u16,
    /// Headers as stored: names and raw values, hop-by-hop and `Age` left out.
    /// Shared, like the body, so that a memory hit copies neither.
    headers: std::sync::Arc<[(String, serde_bytes::ByteBuf)]>,
    body: Bytes,
    /// A strong validator: the response's own `ETag`, or a digest of the body.
    etag: std::sync::Arc<str>,
    /// When it was stored, in Unix milliseconds, for `Age`.
    stored_at_ms: u64,
    /// The headers and the `ETag` as a response carries them, made at the
    /// first answer and shared by the copies a memory hit hands out.
    #[serde(skip)]
    answered: std::sync::Arc<std::sync::OnceLock<Answered>>,
}

/// What every answer of a page carries: its stored headers, its `ETag`,
/// then `Age` and `X-Cache`, whose values each answer sets (a map cloned
/// whole, none of its names hashed again).
struct Answered {
    headers: HeaderMap,
}

/// Headers never stored: they describe one hop, or one answer.
fn stored(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "age"
            | "x-cache"
            | "set-cookie"
    )
}

impl Page {
    pub(super) fn new(status: StatusCode, headers: &HeaderMap, body: Bytes) -> Self {
        let etag = headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map_or_else(
                || format!("\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(&body)).into(),
                std::sync::Arc::from,
            );
        Self {
            status: status.as_u16(),
            headers: headers
                .iter()
                .filter(|(name, _)| stored(name))
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        serde_bytes::ByteBuf::from(value.as_bytes()),
                    )
                })
                .collect(),
            body,
            etag,
            stored_at_ms: crate::clock::now_ms(),
            answered: std::sync::Arc::default(),
        }
    }

    /// The stored response, answering `request`: `304` when its
    /// `If-None-Match` names this page's validator, no body for `HEAD`.
    pub(super) fn answer<B>(
        &self,
        request: &request::Parts,
        outcome: &'static str,
    ) -> Response<CacheBody<B>> {
        let not_modified = request
            .headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.trim_start_matches("W/") == self.etag.trim_start_matches("W/")
            });
        let status = if not_modified {
            StatusCode::NOT_MODIFIED
        } else {
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK)
        };
        let body = if not_modified || request.method == Method::HEAD {
            Bytes::new()
        } else {
            self.body.clone()
        };
        let answered = self.answered.get_or_init(|| {
            let mut headers = HeaderMap::with_capacity(self.headers.len() + 4);
            for (name, value) in self.headers.iter() {
                if let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_bytes(value),
                ) {
                    headers.append(name, value);
                }
            }
            if let Ok(etag) = HeaderValue::from_str(&self.etag) {
                headers.insert(header::ETAG, etag);
            }
            // The length of the body answered (a `HEAD` gets the length a
            // `GET` would, RFC 9110, 8.6): set here, the router need not
            // add it to every answer's copy of the map.
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(self.body.len()));
            headers.insert(header::AGE, HeaderValue::from_static("0"));
            headers.insert(X_CACHE, HeaderValue::from_static("HIT"));
            Answered { headers }
        });
        let mut response = Response::new(CacheBody::full(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        *headers = answered.headers.clone();
        if not_modified {
            headers.remove(header::CONTENT_LENGTH);
        }
        let age = crate::clock::now_ms().saturating_sub(self.stored_at_ms) / 1000;
        if age > 0
            && let Some(value) = headers.get_mut(header::AGE)
        {
            *value = HeaderValue::from(age);
        }
        if outcome != "HIT"
            && let Some(value) = headers.get_mut(X_CACHE)
        {
            *value = HeaderValue::from_static(outcome);
        }
        response
    }
}

/// The header that tells whether the cache answered: `HIT`, `MISS` or `BYPASS`.
pub(super) const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Why a response is not stored, or `None` when it may be. `vary` is the
/// request headers the key was made with.
pub(super) fn refusal(
    statuses: &[u16],
    status: StatusCode,
    headers: &HeaderMap,
    vary: &[HeaderName],
) -> Option<&'static str> {
    if !statuses.contains(&status.as_u16()) {
        return Some("status");
    }
    if headers.contains_key(header::SET_COOKIE) {
        return Some("set-cookie");
    }
    let directives = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase());
    for directive in directives {
        let name = directive.split('=').next().unwrap_or_default();
        if matches!(name, "private" | "no-store" | "no-cache") {
            return Some("cache-control");
        }
    }
    for name in response_vary(headers) {
        match name {
            None => return Some("vary *"),
            Some(name) if !vary.contains(&name) => return Some("vary"),
            Some(_) => {}
        }
    }
    None
}

/// The headers a response's `Vary` names; `None` for `*`.
pub(super) fn response_vary(headers: &HeaderMap) -> Vec<Option<HeaderName>> {
    headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            if v == "*" {
                None
            } else {
                HeaderName::from_bytes(v.to_ascii_lowercase().as_bytes()).ok()
            }
        })
        .collect()
}

/// `s-maxage`, else `max-age`, of a response, in seconds.
pub(super) fn max_age(headers: &HeaderMap) -> Option<u64> {
    let mut max_age = None;
    for directive in headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let Some((name, value)) = directive.trim().split_once('=') else {
            continue;
        };
        let seconds = value.trim_matches('"').parse().ok();
        match name.trim().to_ascii_lowercase().as_str() {
            "s-maxage" => return seconds,
            "max-age" => max_age = seconds,
            _ => {}
        }
    }
    max_age
}

/// The key of a request: method (`HEAD` reads `GET`'s entry), host, path,
/// the query with its parameters sorted, then the values of the headers it
/// varies on and the caller's own part. Each part is length-prefixed, so no
/// value can pass for a delimiter. Inline while it is short (as a call's
/// key is): a page's key costs a hit no allocation.
pub(super) fn key(request: &request::Parts, vary: &[HeaderName], own: Option<&str>) -> StoredKey {
    let host = request
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri.authority().map(http::uri::Authority::as_str))
        .unwrap_or_default();
    let mut out = StoredKey::default();
    out.push_str("page:");
    let mut part = |text: &str| {
        push_decimal(&mut out, false, text.len() as u64);
        out.push_char(':');
        out.push_str(text);
    };
    part("GET");
    part(host);
    part(request.uri.path());
    part(&normalised_query(request.uri.query()));
    for name in vary {
        let values: Vec<&[u8]> = request
            .headers
            .get_all(name)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        part(name.as_str());
        part(&String::from_utf8_lossy(&values.join(&b"\n"[..])));
    }
    if let Some(own) = own {
        part(own);
    }
    out
}

/// The query with its parameters sorted by name, a repeated one's values in
/// their order: `a` (no value) and `a=` (an empty one) stay apart; values stay encoded, so `&` and `=` inside them cannot
/// be forged.
pub(super) fn normalised_query(query: Option<&str>) -> String {
    let Some(query) = query else {
        return String::new();
    };
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    // By name only, and stable: `sort=price&sort=name` is another request
    // than `sort=name&sort=price`.
    pairs.sort_by_key(|pair| pair.split_once('=').map_or(*pair, |(name, _)| name));
    let mut out = String::from("?");
    out.push_str(&pairs.join("&"));
    out
}

pin_project_lite::pin_project! {
    /// The body the layer answers with: the handler's own, untouched, or a
    /// stored one.
    pub struct CacheBody<B> {
        // The handler's body, passed through; `None` for a stored body.
        #[pin]
        passed: Option<B>,
        // What is left to send of a stored body.
        stored: Option<Bytes>,
    }
}

impl<B> std::fmt::Debug for CacheBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBody")
            .field("stored", &self.passed.is_none())
            .finish_non_exhaustive()
    }
}

impl<B> CacheBody<B> {
    pub(super) fn full(data: Bytes) -> Self {
        Self {
            passed: None,
            stored: (!data.is_empty()).then_some(data),
        }
    }

    pub(super) fn passed(body: B) -> Self {
        Self {
            passed: Some(body),
            stored: None,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for CacheBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        match this.passed.as_pin_mut() {
            Some(body) => body.poll_frame(cx),
            None => Poll::Ready(this.stored.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.passed {
            Some(body) => body.is_end_stream(),
            None => self.stored.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.passed {
            Some(body) => body.size_hint(),
            None => SizeHint::with_exact(self.stored.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> request::Parts {
        let mut builder = http::Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn lengths_are_written_in_decimal() {
        for n in [0, 7, 10, 99, 4096, u64::MAX] {
            let mut out = String::new();
            push_decimal(&mut out, false, n);
            assert_eq!(out, n.to_string());
        }
    }

    #[test]
    fn queries_are_sorted_and_keep_absent_apart_from_empty() {
        assert_eq!(normalised_query(Some("b=2&a=1")), "?a=1&b=2");
        assert_eq!(
            normalised_query(Some("sort=price&a=1&sort=name")),
            "?a=1&sort=price&sort=name"
        );
        assert_ne!(
            normalised_query(Some("sort=price&sort=name")),
            normalised_query(Some("sort=name&sort=price"))
        );
        assert_ne!(normalised_query(Some("a")), normalised_query(Some("a=")));
        assert_ne!(
            normalised_query(Some("a=1%262")),
            normalised_query(Some("a=1&2"))
        );
        assert_ne!(normalised_query(None), normalised_query(Some("a")));
    }

    #[test]
    fn keys_cannot_be_forged_across_parts() {
        let host = [("host", "shop")];
        let plain = key(&parts("/p?x=1", &host), &[], None);
        assert_eq!(plain, key(&parts("/p?x=1", &host), &[], None));
        assert_ne!(plain, key(&parts("/p?x=2", &host), &[], None));
        assert_ne!(
            plain,
            key(&parts("/p?x=1", &[("host", "other")]), &[], None)
        );
        let lang = HeaderName::from_static("accept-language");
        let en = key(
            &parts("/p", &[("accept-language", "en")]),
            std::slice::from_ref(&lang),
            None,
        );
        let fr = key(&parts("/p", &[("accept-language", "fr")]), &[lang], None);
        assert_ne!(en, fr);
        assert_ne!(
            key(&parts("/p", &host), &[], Some("alice")),
            key(&parts("/p", &host), &[], Some("bob"))
        );
    }

    #[test]
    fn unsafe_responses_are_refused() {
        let ok = StatusCode::OK;
        let with = |name: &str, value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
            headers
        };
        assert_eq!(refusal(&[200], ok, &HeaderMap::new(), &[]), None);
        assert_eq!(
            refusal(&[200], StatusCode::NOT_FOUND, &HeaderMap::new(), &[]),
            Some("status")
        );
        assert_eq!(
            refusal(&[200], ok, &with("set-cookie", "s=1"), &[]),
            Some("set-cookie")
        );
        for cc in ["private", "no-store", "No-Cache", "max-age=5, private"] {
            assert_eq!(
                refusal(&[200], ok, &with("cache-control", cc), &[]),
                Some("cache-control")
            );
        }
        assert_eq!(refusal(&[200], ok, &with("vary", "*"), &[]), Some("vary *"));
        assert_eq!(
            refusal(&[200], ok, &with("vary", "Accept-Language"), &[]),
            Some("vary")
        );
        let lang = HeaderName::from_static("accept-language");
        assert_eq!(
            refusal(&[200], ok, &with("vary", "Accept-Language"), &[lang]),
            None
        );
    }

    #[test]
    fn max_age_prefers_s_maxage() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=60, s-maxage=300"),
        );
        assert_eq!(max_age(&headers), Some(300));
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60"),
        );
        assert_eq!(max_age(&headers), Some(60));
    }
}
