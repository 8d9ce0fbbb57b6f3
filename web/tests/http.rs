//! `cachette::http::CacheLayer` in front of a real axum server on loopback,
//! asked by a real HTTP client: what a careful team checks before putting a
//! shared cache in front of per-user pages.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cachette::Cache;
use cachette::http::CacheLayer;
use support::store::Store;

const MINUTE: Duration = Duration::from_secs(60);

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

/// A greeting in the request's language, varying on it.
fn greeting(headers: &HeaderMap) -> Response {
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

fn layer(cache: &Cache) -> CacheLayer {
    CacheLayer::new(MINUTE).cache(cache.clone())
}

fn x_cache(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn text(client: &reqwest::Client, url: &str) -> (String, String) {
    let response = client.get(url).send().await.unwrap();
    (x_cache(&response), response.text().await.unwrap())
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

/// A slow handler's figures: how many times it ran, and how many of its
/// runs were in progress at once, now and at most; whether
/// `/sometimes-login` sets a cookie, and whether `/sometimes-down` fails.
#[derive(Default)]
struct Gauge {
    runs: AtomicU64,
    now: AtomicU64,
    most: AtomicU64,
    cookie: AtomicBool,
    down: AtomicBool,
}

impl Gauge {
    /// One run that takes `ms` milliseconds; its number.
    async fn run(&self, ms: u64) -> u64 {
        let run = self.runs.fetch_add(1, SeqCst) + 1;
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.now.fetch_sub(1, SeqCst);
        run
    }

    fn runs(&self) -> u64 {
        self.runs.load(SeqCst)
    }

    /// The most runs in progress at once since the last call.
    fn take_most(&self) -> u64 {
        self.most.swap(0, SeqCst)
    }
}

/// 100 ms, then a greeting in the request's language, varying on it.
async fn slow_lang(State(gauge): State<Arc<Gauge>>, headers: HeaderMap) -> Response {
    gauge.run(100).await;
    greeting(&headers)
}

/// 100 ms, then a page that sets a cookie: never stored.
async fn slow_login(State(gauge): State<Arc<Gauge>>) -> Response {
    let n = gauge.run(100).await;
    (
        [(header::SET_COOKIE, format!("session={n}"))],
        format!("welcome #{n}"),
    )
        .into_response()
}

/// 100 ms, then a page marked `no-store`: never stored.
async fn slow_no_store(State(gauge): State<Arc<Gauge>>) -> Response {
    let n = gauge.run(100).await;
    ([(header::CACHE_CONTROL, "no-store")], format!("fresh #{n}")).into_response()
}

/// A page that sets a cookie while the gauge says so.
async fn sometimes_login(State(gauge): State<Arc<Gauge>>) -> Response {
    let n = gauge.run(10).await;
    if gauge.cookie.load(SeqCst) {
        (
            [(header::SET_COOKIE, format!("session={n}"))],
            format!("welcome #{n}"),
        )
            .into_response()
    } else {
        format!("welcome #{n}").into_response()
    }
}

/// 100 ms, then a page, or a `503` while the gauge says it is down.
async fn sometimes_down(State(gauge): State<Arc<Gauge>>) -> Response {
    let n = gauge.run(100).await;
    if gauge.down.load(SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "down").into_response()
    } else {
        format!("up, render #{n}").into_response()
    }
}

/// A page that takes `ms` milliseconds.
async fn slow_page(State(gauge): State<Arc<Gauge>>, Path(ms): Path<u64>) -> String {
    let n = gauge.run(ms).await;
    format!("page of {ms} ms, render #{n}")
}

/// The slow routes behind `layer`, with one gauge for all of them.
async fn slow_app(layer: CacheLayer) -> (String, Arc<Gauge>) {
    let gauge = Arc::new(Gauge::default());
    let router = Router::new()
        .route("/lang-burst", get(slow_lang))
        .route("/slow-login", get(slow_login))
        .route("/slow-no-store", get(slow_no_store))
        .route("/sometimes-login", get(sometimes_login))
        .route("/sometimes-down", get(sometimes_down))
        .route("/slow/{ms}", get(slow_page))
        .layer(layer)
        .with_state(Arc::clone(&gauge));
    let address = cachette_web::serve(router).await;
    (format!("http://{address}"), gauge)
}

/// What one answer of a burst was: `x-cache`, `Set-Cookie` and the body.
struct Answer {
    x_cache: String,
    cookie: Option<String>,
    body: String,
}

/// `n` concurrent `GET url` with `headers`; their answers.
async fn burst(n: usize, url: &str, headers: &[(header::HeaderName, &str)]) -> Vec<Answer> {
    let client = reqwest::Client::new();
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let mut request = client.get(url);
            for (name, value) in headers {
                request = request.header(name, *value);
            }
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let x_cache = x_cache(&response);
                let cookie = response
                    .headers()
                    .get(header::SET_COOKIE)
                    .map(|v| v.to_str().unwrap().to_owned());
                let body = response.text().await.unwrap();
                Answer {
                    x_cache,
                    cookie,
                    body,
                }
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for call in calls {
        answers.push(call.await.unwrap());
    }
    answers
}

async fn memory_store() -> Store {
    support::store::memory().await
}

async fn redis_store() -> Store {
    support::store::redis().await
}

support::on_every_store!(memory_store, redis_store;
    a_burst_on_a_vary_url_runs_the_handler_at_most_twice,
    a_mixed_burst_on_a_vary_url_runs_once_per_language_and_once_to_learn,
    followers_of_an_unstorable_page_run_at_once,
    slow_pages_are_stored_within_the_default_budget,
    a_spent_budget_counts_each_skipped_call_once,
    a_page_that_stops_setting_a_cookie_is_stored_again,
    a_page_refused_for_its_status_keeps_single_flight,
);

/// The first answer of a `Vary` URL teaches the layer what it varies on; a
/// burst on a fresh URL then needs one more run, stored, for all the rest.
async fn a_burst_on_a_vary_url_runs_the_handler_at_most_twice(store: Store) {
    let (base, gauge) = slow_app(layer(&store.cache)).await;
    let url = format!("{base}/lang-burst");
    let answers = burst(50, &url, &[(header::ACCEPT_LANGUAGE, "en")]).await;
    let runs = gauge.runs();
    eprintln!("a burst of 50 on a Vary URL: {runs} handler runs");
    assert!(answers.iter().all(|a| a.body == "greeting in en"));
    assert!(runs <= 2, "one run to learn the Vary, one stored: {runs}");
    let again = burst(1, &url, &[(header::ACCEPT_LANGUAGE, "en")]).await;
    assert_eq!(again[0].x_cache, "HIT");
    assert_eq!(gauge.runs(), runs);
}

/// Half the burst asks in English, half in French: one run to learn the
/// `Vary`, then one per language.
async fn a_mixed_burst_on_a_vary_url_runs_once_per_language_and_once_to_learn(store: Store) {
    let (base, gauge) = slow_app(layer(&store.cache)).await;
    let url = format!("{base}/lang-burst");
    let (en, fr) = tokio::join!(
        burst(25, &url, &[(header::ACCEPT_LANGUAGE, "en")]),
        burst(25, &url, &[(header::ACCEPT_LANGUAGE, "fr")]),
    );
    assert!(en.iter().all(|a| a.body == "greeting in en"));
    assert!(fr.iter().all(|a| a.body == "greeting in fr"));
    let runs = gauge.runs();
    assert!(runs <= 3, "one run to learn, one per language: {runs}");
}

/// A page that must not be stored is known as such after one run: the
/// requests that waited for that run then run the handler side by side, as
/// do later bursts, and every answer is the handler's own.
async fn followers_of_an_unstorable_page_run_at_once(store: Store) {
    for path in ["/slow-login", "/slow-no-store"] {
        let (base, gauge) = slow_app(layer(&store.cache)).await;
        let url = format!("{base}{path}");
        for round in 1..=2 {
            let answers = burst(20, &url, &[]).await;
            let most = gauge.take_most();
            eprintln!("{path}, burst {round} of 20: at most {most} handler runs at once");
            assert!(answers.iter().all(|a| a.x_cache == "MISS"));
            if path == "/slow-login" {
                let mut cookies: Vec<_> = answers.iter().map(|a| a.cookie.clone()).collect();
                cookies.sort();
                cookies.dedup();
                assert_eq!(cookies.len(), 20, "a cookie is never shared");
            }
            assert!(
                most > 1,
                "{path}, burst {round}: the handler ran one request at a time"
            );
        }
        assert_eq!(gauge.runs(), 40, "{path}: every request ran the handler");
    }
}

/// The budget bounds the time of a request's cache calls, not its
/// handler's: a slow page is stored, then served, with the default budget.
async fn slow_pages_are_stored_within_the_default_budget(store: Store) {
    let (base, gauge) = slow_app(layer(&store.cache)).await;
    let client = reqwest::Client::new();
    let before = store.cache.stats();
    for ms in [100, 400, 800, 1000] {
        let url = format!("{base}/slow/{ms}");
        let (first, body) = text(&client, &url).await;
        assert_eq!(first, "MISS", "{ms} ms");
        assert_eq!(text(&client, &url).await, ("HIT".into(), body), "{ms} ms");
    }
    assert_eq!(gauge.runs(), 4, "each page ran once");
    let after = store.cache.stats();
    assert_eq!(after.skipped, before.skipped, "no cache call was skipped");
}

/// With no budget at all, every cache call of a request skips Redis and is
/// counted once: a burst on a cookie page (one call per request), and one
/// on a `Vary` URL (one call, and a second under the learned key for the
/// requests that waited for the learning). A memory store is never skipped.
async fn a_spent_budget_counts_each_skipped_call_once(store: Store) {
    let layer = layer(&store.cache).budget(Some(Duration::ZERO));
    let (base, gauge) = slow_app(layer).await;
    let before = store.cache.stats().skipped;
    let answers = burst(20, &format!("{base}/slow-login"), &[]).await;
    assert_eq!(answers.len(), 20);
    let cookie_skipped = store.cache.stats().skipped - before;
    let before = store.cache.stats().skipped;
    burst(
        50,
        &format!("{base}/lang-burst"),
        &[(header::ACCEPT_LANGUAGE, "en")],
    )
    .await;
    let vary_skipped = store.cache.stats().skipped - before;
    eprintln!(
        "a spent budget: skipped {cookie_skipped} for 20 cookie requests, \
         {vary_skipped} for a Vary burst of 50; {} handler runs",
        gauge.runs()
    );
    if store.server.is_some() {
        assert_eq!(cookie_skipped, 20);
        assert!((50..=100).contains(&vary_skipped), "{vary_skipped}");
    } else {
        assert_eq!((cookie_skipped, vary_skipped), (0, 0));
    }
    assert!(gauge.runs() <= 20 + 2, "{}", gauge.runs());
}

/// A key remembered for an unstorable response is forgotten once its
/// response can be stored: stored then, and served to the next burst.
async fn a_page_that_stops_setting_a_cookie_is_stored_again(store: Store) {
    let (base, gauge) = slow_app(layer(&store.cache)).await;
    let url = format!("{base}/sometimes-login");
    let client = reqwest::Client::new();
    gauge.cookie.store(true, SeqCst);
    for _ in 0..2 {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(x_cache(&response), "MISS");
        assert!(response.headers().contains_key(header::SET_COOKIE));
    }
    gauge.cookie.store(false, SeqCst);
    let (first, body) = text(&client, &url).await;
    assert_eq!(first, "MISS");
    let answers = burst(20, &url, &[]).await;
    assert!(answers.iter().all(|a| a.x_cache == "HIT" && a.body == body));
    assert_eq!(gauge.runs(), 3);
}

/// A status is not the page's for good (a `503` during a deploy): the key
/// is not remembered as unstorable, and the burst after it runs once.
async fn a_page_refused_for_its_status_keeps_single_flight(store: Store) {
    let (base, gauge) = slow_app(layer(&store.cache)).await;
    let url = format!("{base}/sometimes-down");
    gauge.down.store(true, SeqCst);
    let down = burst(1, &url, &[]).await;
    assert_eq!(
        (down[0].x_cache.as_str(), down[0].body.as_str()),
        ("MISS", "down")
    );
    gauge.down.store(false, SeqCst);
    let answers = burst(20, &url, &[]).await;
    assert!(answers.iter().all(|a| a.body == "up, render #2"));
    assert_eq!(gauge.runs(), 2, "the burst after the 503 ran once");
}
