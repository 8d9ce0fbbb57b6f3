//! `cachette::http::CacheLayer` in front of a real axum server on loopback,
//! asked by a real HTTP client: what a careful team checks before putting a
//! shared cache in front of per-user pages.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cachette::Cache;
use cachette::http::CacheLayer;

mod common;

use common::{greeting, layer, text, x_cache};

/// How many times each handler ran.
#[derive(Default)]
struct Runs(AtomicU64);

impl Runs {
    fn next(&self) -> u64 {
        self.0.fetch_add(1, SeqCst) + 1
    }
    fn get(&self) -> u64 {
        self.0.load(SeqCst)
    }
}

async fn report(State(runs): State<Arc<Runs>>) -> String {
    format!("report #{}", runs.next())
}

async fn me(State(runs): State<Arc<Runs>>, headers: HeaderMap) -> String {
    runs.next();
    let who = headers
        .get(header::AUTHORIZATION)
        .or_else(|| headers.get(header::COOKIE))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("nobody");
    format!("private page of {who}")
}

async fn login(State(runs): State<Arc<Runs>>) -> Response {
    let n = runs.next();
    (
        [(header::SET_COOKIE, format!("session={n}"))],
        format!("welcome #{n}"),
    )
        .into_response()
}

async fn private(State(runs): State<Arc<Runs>>) -> Response {
    let n = runs.next();
    (
        [(header::CACHE_CONTROL, "private, max-age=60")],
        format!("private #{n}"),
    )
        .into_response()
}

async fn lang(State(runs): State<Arc<Runs>>, headers: HeaderMap) -> Response {
    runs.next();
    greeting(&headers)
}

async fn big(State(runs): State<Arc<Runs>>) -> String {
    let n = runs.next();
    format!("{n:08}{}", "x".repeat(2 << 20))
}

/// A body that never ends: a server-sent-events stream.
async fn stream(State(runs): State<Arc<Runs>>) -> Response {
    runs.next();
    let ticks = futures_util::stream::unfold(0_u64, |n| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Some((
            Ok::<_, std::io::Error>(format!("data: tick {n}\n\n")),
            n + 1,
        ))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(ticks),
    )
        .into_response()
}

async fn product(State(runs): State<Arc<Runs>>, Path(id): Path<u32>) -> String {
    format!("product {id}, render #{}", runs.next())
}

async fn missing(State(runs): State<Arc<Runs>>) -> (StatusCode, String) {
    (StatusCode::NOT_FOUND, format!("not found #{}", runs.next()))
}

/// The app behind a layer on `cache`, with one counter for every handler.
async fn app(layer: CacheLayer) -> (String, Arc<Runs>) {
    let runs = Arc::new(Runs::default());
    let router = Router::new()
        .route("/report", get(report))
        .route("/me", get(me))
        .route("/login", get(login))
        .route("/private", get(private))
        .route("/lang", get(lang))
        .route("/big", get(big))
        .route("/stream", get(stream))
        .route("/products/{id}", get(product))
        .route("/missing", get(missing))
        .layer(layer)
        .with_state(Arc::clone(&runs));
    let address = cachette_web::serve(router).await;
    (format!("http://{address}"), runs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_runs_once_then_hits_with_age_and_etag() {
    let cache = Cache::memory();
    let (base, runs) = app(layer(&cache)).await;
    let client = reqwest::Client::new();
    assert_eq!(
        text(&client, &format!("{base}/report")).await,
        ("MISS".into(), "report #1".into())
    );
    let hit = client.get(format!("{base}/report")).send().await.unwrap();
    assert_eq!(x_cache(&hit), "HIT");
    assert!(hit.headers().contains_key(header::AGE));
    let etag = hit.headers()[header::ETAG].to_str().unwrap().to_owned();
    assert_eq!(hit.text().await.unwrap(), "report #1");
    let revalidated = client
        .get(format!("{base}/report"))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    assert!(revalidated.text().await.unwrap().is_empty());
    // The query is part of the key, in any order of its parameters.
    assert_eq!(
        text(&client, &format!("{base}/report?b=2&a=1")).await.1,
        "report #2"
    );
    assert_eq!(
        text(&client, &format!("{base}/report?a=1&b=2")).await.1,
        "report #2"
    );
    assert_eq!(runs.get(), 2);
    // A repeated parameter's values keep their order: another request.
    assert_eq!(
        text(&client, &format!("{base}/report?sort=price&sort=name"))
            .await
            .1,
        "report #3"
    );
    assert_eq!(
        text(&client, &format!("{base}/report?sort=name&sort=price"))
            .await
            .1,
        "report #4"
    );
    assert_eq!(runs.get(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_identical_requests_runs_the_handler_once() {
    let (base, runs) = app(layer(&Cache::memory())).await;
    let client = reqwest::Client::new();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let (client, url) = (client.clone(), format!("{base}/report"));
            tokio::spawn(async move { client.get(url).send().await.unwrap().text().await.unwrap() })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), "report #1");
    }
    assert_eq!(runs.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_of_different_users_never_see_each_other() {
    let (base, runs) = app(layer(&Cache::memory())).await;
    let client = reqwest::Client::new();
    let mut leaks = 0;
    for i in 0..100 {
        let user = format!("user-{}", i % 7);
        let (auth, cookie) = (
            client
                .get(format!("{base}/me"))
                .header(header::AUTHORIZATION, &user),
            client
                .get(format!("{base}/me"))
                .header(header::COOKIE, format!("session={user}")),
        );
        for (request, who) in [(auth, user.clone()), (cookie, format!("session={user}"))] {
            let response = request.send().await.unwrap();
            assert_eq!(x_cache(&response), "BYPASS");
            if response.text().await.unwrap() != format!("private page of {who}") {
                leaks += 1;
            }
        }
    }
    assert_eq!(leaks, 0);
    assert_eq!(
        runs.get(),
        200,
        "a request with credentials is never served from the cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_pages_are_cached_per_user() {
    let layer = layer(&Cache::memory()).vary_by(|request| {
        let user = request.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        Some(format!("user:{user}"))
    });
    let (base, runs) = app(layer).await;
    let client = reqwest::Client::new();
    let mut leaks = 0;
    for i in 0..140 {
        let user = format!("user-{}", i % 7);
        let response = client
            .get(format!("{base}/me"))
            .header(header::AUTHORIZATION, &user)
            .send()
            .await
            .unwrap();
        if response.text().await.unwrap() != format!("private page of {user}") {
            leaks += 1;
        }
    }
    assert_eq!(leaks, 0);
    assert_eq!(runs.get(), 7, "one page per user, then hits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_and_private_responses_are_never_stored() {
    let (base, runs) = app(layer(&Cache::memory())).await;
    let client = reqwest::Client::new();
    let first = client.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(first.headers()[header::SET_COOKIE], "session=1");
    let second = client.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(
        second.headers()[header::SET_COOKIE],
        "session=2",
        "a cookie is never replayed"
    );
    assert_eq!(
        text(&client, &format!("{base}/private")).await.1,
        "private #3"
    );
    assert_eq!(
        text(&client, &format!("{base}/private")).await.1,
        "private #4"
    );
    assert_eq!(
        text(&client, &format!("{base}/missing")).await.1,
        "not found #5"
    );
    assert_eq!(
        text(&client, &format!("{base}/missing")).await.1,
        "not found #6"
    );
    assert_eq!(runs.get(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_is_learned_and_honoured() {
    let (base, runs) = app(layer(&Cache::memory())).await;
    let client = reqwest::Client::new();
    let ask = |lang: &'static str| {
        client
            .get(format!("{base}/lang"))
            .header(header::ACCEPT_LANGUAGE, lang)
            .send()
    };
    // The first answer teaches the layer what the URL varies on.
    assert_eq!(
        ask("fr").await.unwrap().text().await.unwrap(),
        "greeting in fr"
    );
    for _ in 0..3 {
        assert_eq!(
            ask("fr").await.unwrap().text().await.unwrap(),
            "greeting in fr"
        );
        assert_eq!(
            ask("de").await.unwrap().text().await.unwrap(),
            "greeting in de"
        );
    }
    assert_eq!(runs.get(), 3, "learning, then one entry per language");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_bypass_or_refresh_the_cache() {
    let (base, runs) = app(layer(&Cache::memory())).await;
    let client = reqwest::Client::new();
    text(&client, &format!("{base}/report")).await;
    for directive in ["no-cache", "no-store", "max-age=0"] {
        let response = client
            .get(format!("{base}/report"))
            .header(header::CACHE_CONTROL, directive)
            .header(header::PRAGMA, "no-cache")
            .send()
            .await
            .unwrap();
        assert_eq!(x_cache(&response), "HIT", "{directive}");
    }
    assert_eq!(runs.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_passes_through_intact() {
    let (base, runs) = app(layer(&Cache::memory())).await;
    let client = reqwest::Client::new();
    for run in 1..=2 {
        let (outcome, body) = text(&client, &format!("{base}/big")).await;
        assert_eq!(outcome, "MISS");
        assert_eq!(body.len(), 8 + (2 << 20));
        assert!(body.starts_with(&format!("{run:08}")));
    }
    assert_eq!(runs.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_passed_on_as_it_comes() {
    let (base, _) = app(layer(&Cache::memory())).await;
    let client = reqwest::Client::new();
    let mut response = client.get(format!("{base}/stream")).send().await.unwrap();
    assert_eq!(x_cache(&response), "MISS");
    // The stream never ends: a layer that buffered it would never answer.
    let first = tokio::time::timeout(Duration::from_secs(10), response.chunk())
        .await
        .expect("the first event arrives while the stream goes on")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("data: tick 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_from_the_path_drops_the_page() {
    let cache = Cache::memory();
    let layer = layer(&cache).tags(|request| {
        let id = request.uri.path().rsplit('/').next().unwrap_or_default();
        vec![format!("product:{id}")]
    });
    let (base, runs) = app(layer).await;
    let client = reqwest::Client::new();
    for _ in 0..2 {
        assert_eq!(
            text(&client, &format!("{base}/products/7")).await.1,
            "product 7, render #1"
        );
        assert_eq!(
            text(&client, &format!("{base}/products/8")).await.1,
            "product 8, render #2"
        );
    }
    cachette::invalidate!(tag = "product:7", cache = &cache)
        .await
        .unwrap();
    assert_eq!(
        text(&client, &format!("{base}/products/7")).await.1,
        "product 7, render #3"
    );
    assert_eq!(
        text(&client, &format!("{base}/products/8")).await.1,
        "product 8, render #2"
    );
    assert_eq!(runs.get(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_is_answered_from_the_get_entry() {
    let (base, runs) = app(layer(&Cache::memory())).await;
    let client = reqwest::Client::new();
    text(&client, &format!("{base}/report")).await;
    let head = client.head(format!("{base}/report")).send().await.unwrap();
    assert_eq!(x_cache(&head), "HIT");
    // The length of the body a `GET` gets, not of the empty one it carries.
    assert_eq!(
        head.headers()[header::CONTENT_LENGTH],
        "report #1".len().to_string().as_str()
    );
    assert_eq!(runs.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_round_trip_through_redis() {
    let server = support::RedisServer::start();
    let cache = Cache::builder()
        .redis_url(server.url(0))
        .build()
        .await
        .unwrap();
    let (base, runs) = app(layer(&cache)).await;
    let client = reqwest::Client::new();
    assert_eq!(
        text(&client, &format!("{base}/report")).await,
        ("MISS".into(), "report #1".into())
    );
    let hit = client.get(format!("{base}/report")).send().await.unwrap();
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(
        hit.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    assert_eq!(hit.text().await.unwrap(), "report #1");
    assert_eq!(runs.get(), 1);
}
