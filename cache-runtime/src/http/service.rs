//! The service the layer wraps around a handler: decide whether a request
//! may use the cache, look it up (one handler run per key), decide whether
//! the response may be stored, and answer.
//!
//! A response that may not be stored is not shared either: the requests
//! that waited for it run the handler themselves, side by side. Unless only
//! its status refused it, the key is remembered, so that its later requests
//! do without single flight (a response that turns storable is stored, and
//! the key forgotten). The requests that waited for a response that taught
//! the layer its URL's `Vary` make their key again with it and go through
//! the cache under it: one more run is stored, and serves the rest.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, request};
use http_body::Body;
use http_body_util::BodyExt;

use super::Config;
use super::page::{self, CacheBody, Page, X_CACHE};
use crate::key::StoredKey;
use crate::{Cache, Error, Scope};

/// The service made by [`CacheLayer`](super::CacheLayer) around a handler.
#[derive(Clone)]
pub struct CacheService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> std::fmt::Debug for CacheService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheService").finish_non_exhaustive()
    }
}

impl<S> CacheService<S> {
    pub(super) fn new(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }
}

/// Why a computation gave no page to store.
enum Outcome<B, E> {
    /// A response not to store, passed on untouched; `lasting` when its
    /// headers or its size refuse it (not its status alone, which the next
    /// run may change).
    Pass {
        response: Response<B>,
        lasting: bool,
    },
    /// A response whose `Vary` named request headers the key did not hold,
    /// now learned: passed on untouched, and not stored under a key without them.
    Varied(Response<B>),
    /// The request's key was made before its URL's `Vary` was learned: the
    /// handler did not run, and the request goes through the cache again
    /// under the key made with it.
    Rekey,
    /// The handler failed.
    Inner(E),
    /// The body failed while it was read.
    Broken,
    Cache(Error),
}

impl<B, E> From<Error> for Outcome<B, E> {
    fn from(error: Error) -> Self {
        Self::Cache(error)
    }
}

type Answer<B, E> = Result<Response<CacheBody<B>>, E>;

/// Whether a computation's outcome is not to be handed to the requests
/// that waited for it: each of them runs the handler itself (or makes its
/// key again). A failed handler or body hands over to one of them instead.
fn unshared<B, E>(outcome: &Result<Page, Outcome<B, E>>) -> bool {
    matches!(
        outcome,
        Err(Outcome::Pass { .. } | Outcome::Varied(_) | Outcome::Rekey)
    )
}

/// How many times a request makes its key again because its URL's `Vary`
/// was learned meanwhile; after that, its key stays.
const REKEYS: u32 = 2;

impl<S, ReqB, ResB> tower_service::Service<Request<ReqB>> for CacheService<S>
where
    S: tower_service::Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<CacheBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let (head, body) = request.into_parts();
        let route = route(&self.config, &head);
        if let Route::Cached(place) = &route {
            // An in-process hit is answered without a future of its own, and
            // the service behind stays ready for the next request.
            let op = if head.method == Method::GET && !self.config.honour_max_age {
                "get_or_set"
            } else {
                "get"
            };
            if let Some(page) = place
                .cache
                .hit_in_process::<Page>(op, &place.key, &place.scope)
            {
                return ResponseFuture {
                    state: State::Ready(Some(Ok(page.answer(&head, "HIT")))),
                };
            }
        }
        // The ready service answers this request; its clone waits for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        let work = Box::pin(async move {
            let serve = serve(&config, inner, head, body, route);
            match config.budget {
                Some(budget) => crate::with_budget(budget, serve).await,
                None => serve.await,
            }
        });
        ResponseFuture {
            state: State::Pending(work),
        }
    }
}

/// The future of a [`CacheService`]'s answer: ready at once for a page
/// the process holds (nothing allocated for it), else the layer's work,
/// on the heap.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// use cachette::http::{CacheBody, ResponseFuture};
///
/// // What `CacheService::call` returns: a future of the response (or of
/// // the service's error), to await as any other.
/// async fn answer<B, E>(
///     future: ResponseFuture<B, E>,
/// ) -> Result<http::Response<CacheBody<B>>, E> {
///     future.await
/// }
/// # drop(answer::<(), ()>);
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<B, E> {
    state: State<B, E>,
}

/// Where a [`ResponseFuture`]'s answer comes from.
enum State<B, E> {
    /// A hit, answered before the future was made (taken when polled).
    Ready(Option<Answer<B, E>>),
    /// The rest: the layer's work.
    Pending(Pin<Box<dyn Future<Output = Answer<B, E>> + Send>>),
}

// Nothing in it is pinned in place: a ready answer is moved out whole, and
// the work is pinned on the heap.
impl<B, E> Unpin for ResponseFuture<B, E> {}

impl<B, E> std::fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Ready(_) => "ready",
            State::Pending(_) => "pending",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Answer<B, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer<B, E>> {
        match &mut self.get_mut().state {
            State::Ready(answer) => Poll::Ready(
                answer
                    .take()
                    .expect("a response future is not polled after it answered"),
            ),
            State::Pending(work) => work.as_mut().poll(cx),
        }
    }
}

/// A response passed on untouched, marked with what the cache did.
fn passed<B>(response: Response<B>, outcome: &'static str) -> Response<CacheBody<B>> {
    let mut response = response.map(CacheBody::passed);
    response
        .headers_mut()
        .insert(X_CACHE, HeaderValue::from_static(outcome));
    response
}

/// What the layer does with a request, decided before anything is awaited.
// One per request, its page key inline: boxed, it would cost every
// cached request an allocation.
#[allow(clippy::large_enum_variant)]
enum Route {
    /// Passed on untouched: a method the layer never caches.
    Unmarked,
    /// Passed on, marked `BYPASS`: a request that may not share a page.
    Bypass,
    /// Looked up (a `GET` or a `HEAD`).
    Cached(Place),
}

/// Where a request's page is kept: the cache, the page's namespace and
/// tags, the part of its key that is the requester's own (from
/// `vary_by`), the request headers its key holds, and the key.
struct Place {
    cache: Cache,
    scope: Scope,
    own: Option<String>,
    vary: Vec<http::HeaderName>,
    key: StoredKey,
}

fn route(config: &Config, head: &request::Parts) -> Route {
    if head.method != Method::GET && head.method != Method::HEAD {
        return Route::Unmarked;
    }
    let own = match &config.vary_by {
        Some(part) => match part(head) {
            Some(own) => Some(own),
            None => return Route::Bypass,
        },
        None => None,
    };
    let personal = [header::AUTHORIZATION, header::COOKIE]
        .iter()
        .any(|name| head.headers.contains_key(name) && !config.vary_headers.contains(name));
    if personal && own.is_none() {
        // Never shared: it may be about one user.
        return Route::Bypass;
    }
    let vary = config.vary_of(head);
    Route::Cached(Place {
        cache: config.cache.clone().unwrap_or_else(crate::cache),
        scope: scope_of(config, head),
        key: page::key(head, &vary, own.as_deref()),
        own,
        vary,
    })
}

async fn serve<S, ReqB, ResB>(
    config: &Config,
    mut inner: S,
    head: request::Parts,
    body: ReqB,
    route: Route,
) -> Answer<ResB, S::Error>
where
    S: tower_service::Service<Request<ReqB>, Response = Response<ResB>> + Send,
    S::Future: Send,
    ReqB: Send,
    ResB: Body<Data = Bytes> + Send,
{
    let place = match route {
        Route::Unmarked => {
            let request = Request::from_parts(head, body);
            return Ok(inner.call(request).await?.map(CacheBody::passed));
        }
        Route::Bypass => {
            let request = Request::from_parts(head, body);
            return Ok(passed(inner.call(request).await?, "BYPASS"));
        }
        Route::Cached(place) => place,
    };
    if head.method == Method::HEAD {
        // Answered from `GET`'s entry; a miss goes to the handler, and nothing is stored.
        if let Ok(Some(page)) = place.cache.get_in::<Page>(&place.key, &place.scope).await {
            return Ok(page.answer(&head, "HIT"));
        }
        return Ok(passed(
            inner.call(Request::from_parts(head, body)).await?,
            "MISS",
        ));
    }
    let visit = Visit {
        config,
        inner,
        head,
        body,
        place,
    };
    if config.honour_max_age {
        return serve_by_max_age(visit).await;
    }
    serve_cached(visit).await
}

/// One request on its way through the layer: the layer's settings, the
/// service behind it, the request, and where its page is kept.
struct Visit<'c, S, ReqB> {
    config: &'c Config,
    inner: S,
    head: request::Parts,
    body: ReqB,
    place: Place,
}

/// The namespace and tags of the entry of `head`.
fn scope_of(config: &Config, head: &request::Parts) -> Scope {
    let mut scope = Scope::new();
    if let Some(namespace) = &config.namespace {
        scope = scope.namespace(namespace.clone());
    }
    if let Some(tags) = &config.tags {
        for tag in tags(head) {
            scope = scope.tag(tag);
        }
    }
    scope
}

/// [`serve`] for a `GET` that may use the cache: the stored page, or the
/// handler's response (stored when it may be), one handler run per key.
async fn serve_cached<S, ReqB, ResB>(visit: Visit<'_, S, ReqB>) -> Answer<ResB, S::Error>
where
    S: tower_service::Service<Request<ReqB>, Response = Response<ResB>> + Send,
    S::Future: Send,
    ReqB: Send,
    ResB: Body<Data = Bytes> + Send,
{
    let Visit {
        config,
        inner,
        head,
        body,
        place:
            Place {
                cache,
                scope,
                own,
                mut vary,
                mut key,
            },
    } = visit;
    let (own, scope) = (own.as_deref(), &scope);
    let computed = AtomicBool::new(false);
    // The request is made again only for a run of the handler: a hit does not copy its head.
    let waiting = Mutex::new(Some((inner, body)));
    let mut rekeys = 0;
    let result = loop {
        let may_rekey = rekeys < REKEYS;
        let (vary_now, key_now) = (&vary, &key);
        // Boxed: the handler's future is not carried by every hit's.
        let compute = || {
            Box::pin(async {
                if may_rekey && config.vary_of(&head) != *vary_now {
                    // Learned since the key was made: this key is not the page's.
                    return Err(Outcome::Rekey);
                }
                computed.store(true, Relaxed);
                let taken = waiting
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                let Some((mut inner, body)) = taken else {
                    return Err(Outcome::Broken);
                };
                let request = Request::from_parts(head.clone(), body);
                let response = inner.call(request).await.map_err(Outcome::Inner)?;
                let page = storable(config, response, &head, vary_now).await;
                match &page {
                    Ok(_) => config.storable(key_now, true),
                    Err(Outcome::Pass { lasting: true, .. }) => config.storable(key_now, false),
                    Err(_) => {}
                }
                page
            })
        };
        // A key known to give responses that cannot be stored: its requests
        // run side by side, each storing what it may.
        let single_flight = !config.is_unstorable(&key);
        match cache
            .try_get_or_set_page(
                &key,
                compute,
                config.timeout,
                scope,
                unshared,
                single_flight,
            )
            .await
        {
            Err(Outcome::Rekey) => {
                rekeys += 1;
                vary = config.vary_of(&head);
                key = page::key(&head, &vary, own);
            }
            result => break result,
        }
    };
    match result {
        Ok(page) => {
            let outcome = if computed.load(Relaxed) {
                "MISS"
            } else {
                "HIT"
            };
            Ok(page.answer(&head, outcome))
        }
        Err(Outcome::Pass { response, .. } | Outcome::Varied(response)) => {
            Ok(passed(response, "MISS"))
        }
        Err(Outcome::Inner(error)) => Err(error),
        Err(Outcome::Broken | Outcome::Rekey) => Ok(unavailable()),
        Err(Outcome::Cache(error)) => {
            // The cache failed (without fail-open): serve the handler's answer
            // if it has not run yet.
            {
                let error: &dyn std::error::Error = &error;
                tracing::warn!(key = &*key, error, "response cache failed");
            }
            let taken = waiting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            match taken {
                Some((mut inner, body)) => {
                    let request = Request::from_parts(head, body);
                    Ok(passed(inner.call(request).await?, "BYPASS"))
                }
                None => Ok(unavailable()),
            }
        }
    }
}

/// [`serve`] for a layer that takes lifetimes from the responses: a lookup,
/// then the handler and a write (no single flight).
async fn serve_by_max_age<S, ReqB, ResB>(visit: Visit<'_, S, ReqB>) -> Answer<ResB, S::Error>
where
    S: tower_service::Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body<Data = Bytes>,
{
    let Visit {
        config,
        mut inner,
        head,
        body,
        place:
            Place {
                cache,
                scope,
                vary,
                key,
                ..
            },
    } = visit;
    let (scope, key, vary) = (&scope, &*key, vary.as_slice());
    if let Ok(Some(page)) = cache.get_in::<Page>(key, scope).await {
        return Ok(page.answer(&head, "HIT"));
    }
    let response = inner.call(Request::from_parts(head.clone(), body)).await?;
    let lifetime = page::max_age(response.headers()).map_or(config.timeout, |seconds| {
        Duration::from_secs(seconds).into()
    });
    match storable::<ResB, S::Error>(config, response, &head, vary).await {
        Ok(page) => {
            // A failed write only means the next request computes again.
            let _ = cache.set_in(key, &page, lifetime, scope).await;
            Ok(page.answer(&head, "MISS"))
        }
        Err(Outcome::Pass { response, .. } | Outcome::Varied(response)) => {
            Ok(passed(response, "MISS"))
        }
        Err(_) => Ok(unavailable()),
    }
}

/// The page to store of `response`, or why not (the response then passes
/// on untouched; its body is read only when it is to be stored).
async fn storable<B: Body<Data = Bytes>, E>(
    config: &Config,
    response: Response<B>,
    request: &request::Parts,
    vary: &[http::HeaderName],
) -> Result<Page, Outcome<B, E>> {
    let refused = page::refusal(
        &config.statuses,
        response.status(),
        response.headers(),
        vary,
    );
    if refused == Some("vary") {
        // Learn what it varies on: the next request's key includes it.
        let names = page::response_vary(response.headers())
            .into_iter()
            .flatten()
            .collect();
        config.learn(request, names);
        return Err(Outcome::Varied(response));
    }
    let size = response.body().size_hint().exact();
    if refused.is_some() || size.is_none_or(|size| size > config.max_body) {
        let lasting = refused != Some("status");
        return Err(Outcome::Pass { response, lasting });
    }
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|_| Outcome::Broken)?
        .to_bytes();
    Ok(Page::new(parts.status, &parts.headers, bytes))
}

/// The answer when a response was lost to a failure after it was computed.
fn unavailable<B>() -> Response<CacheBody<B>> {
    let mut response = Response::new(CacheBody::full(Bytes::new()));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
}
