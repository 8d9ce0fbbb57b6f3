//! `cachette::http::CacheLayer` under bursts of concurrent requests, on
//! memory and on Redis: how many times slow handlers run, which responses
//! share one run and which run side by side, and the request budget.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cachette::http::CacheLayer;
use common::{greeting, layer, text, x_cache};
use support::store::Store;

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
