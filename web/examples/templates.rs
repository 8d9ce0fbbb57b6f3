//! The guide's template caching: a whole page behind `CacheLayer`
//! (`@cache_page`), and a fragment rendered with minijinja and cached by key
//! inside the handler (`{% cache %}`).
//!
//! `cargo run -p cachette-web --example templates` (memory; Redis with `REDIS_URL`).

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use cachette::http::CacheLayer;
use minijinja::{Environment, context};

static PAGES: AtomicU64 = AtomicU64::new(0);
static SIDEBARS: AtomicU64 = AtomicU64::new(0);

const PAGE: &str = "<html><body>{{ sidebar }}<main>Welcome, {{ user }}</main></body></html>";
const SIDEBAR: &str = "<aside>{% for item in items %}<a>{{ item }}</a>{% endfor %}</aside>";

/// A fragment, cached by key for 10 minutes: rendered once for every page that shows it.
async fn sidebar() -> String {
    cachette::cache()
        .get_or_set(
            "fragment:sidebar",
            || async {
                SIDEBARS.fetch_add(1, SeqCst);
                let env = Environment::new();
                env.render_str(SIDEBAR, context! { items => ["News", "Offers", "Help"] })
                    .unwrap()
            },
            Duration::from_secs(600),
        )
        .await
        .unwrap()
}

/// A page that is not cached whole: only its sidebar is.
async fn dashboard() -> Html<String> {
    let env = Environment::new();
    let page = env.render_str(PAGE, context! { sidebar => sidebar().await, user => "you" });
    Html(page.unwrap())
}

/// A page cached whole by the layer.
async fn home() -> Html<String> {
    PAGES.fetch_add(1, SeqCst);
    let env = Environment::new();
    let page = env.render_str(
        PAGE,
        context! { sidebar => sidebar().await, user => "guest" },
    );
    Html(page.unwrap())
}

#[tokio::main]
async fn main() {
    cachette_web::cache("templates").await.install();
    let router = Router::new().route("/dashboard", get(dashboard)).merge(
        Router::new()
            .route("/", get(home))
            .layer(CacheLayer::new(Duration::from_secs(15 * 60))),
    );
    let base = format!("http://{}", cachette_web::serve(router).await);
    let client = reqwest::Client::new();
    for path in ["/", "/", "/dashboard", "/dashboard"] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        let outcome = response
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        let length = response.text().await.unwrap().len();
        println!("GET {path:<11} x-cache: {outcome:<4} {length} bytes");
    }
    println!(
        "home renders: {}, sidebar renders: {}",
        PAGES.load(SeqCst),
        SIDEBARS.load(SeqCst)
    );
}
