#![doc = include_str!("../README.md")]
// On docs.rs: each feature-gated item says which feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use cachette_runtime::{
    BackendError, Batch, Cache, CacheBuilder, Cacheable, Circuit, DEFAULT_MAX_KEY_LENGTH,
    DEFAULT_TIMEOUT, Error, FunctionStats, Health, Invalidated, Lock, MAX_SCOPE, Namespace, Result,
    Scope, ServerInfo, ServerKind, Stats, Timeout, Tracking, Version, cache, redis, with_budget,
};

/// Caches the results of an `async fn`.
///
/// The arguments become a key, the result is stored under it, and the next
/// call with equal arguments returns the stored value without running the
/// body. The function keeps its signature.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cachette::{cached, invalidate};
/// use serde::{Deserialize, Serialize};
///
/// # struct Db;
/// # #[derive(Debug)] struct DbError;
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// struct OrderStats { order_count: u32, total_spent: f64 }
///
/// #[cached(timeout = 3600, key = "user_order_stats:{user_id}", skip(db))]
/// async fn user_order_stats(db: &Db, user_id: i64) -> Result<OrderStats, DbError> {
///     // a slow aggregation query
///     Ok(OrderStats { order_count: 3, total_spent: 99.5 })
/// }
///
/// let db = Db;
/// let stats = user_order_stats(&db, 42).await.unwrap(); // runs the query
/// let again = user_order_stats(&db, 42).await.unwrap(); // from the cache
/// # assert_eq!(stats.order_count, again.order_count);
///
/// // In update code: drop exactly the entry that call made.
/// invalidate!(user_order_stats(&db, 42)).await.unwrap();
/// # }
/// ```
///
/// # Options
///
/// | option | meaning |
/// |---|---|
/// | `timeout = 900` | seconds, or any expression giving a `Duration`, `Option<Duration>` or [`Timeout`]; default: the cache's default timeout (15 minutes) |
/// | `timeout_from = \|value: &T\| ...` | the timeout decided by the value stored (for `Result`/`Option` returns, the `Ok`/`Some` value: the closure takes `&T`, not the whole `Result`; it captures nothing, so it cannot see the arguments; a function path works too), instead of `timeout`: seconds, a `Duration`, `None` (never expire) or a [`Timeout`]; zero keeps nothing (the value only goes to the callers that waited for it). Say an upstream's `max-age`, a short life for empty results, none for partial ones |
/// | `key = "user:{user_id}"` | the key, from a template: `{name}` (`Display`), `{name.field}`, `{name:?}` (`Debug`); every name is checked at compile time against the parameters |
/// | `namespace = "product"` | puts the entries in a namespace that [`invalidate!`]`(namespace = "product")` drops at once |
/// | `tags = ["user:{user_id}", "orders"]` | tags (templates like `key`) that [`invalidate!`]`(tag = ...)` drops at once |
/// | `tags_from = \|value: &T\| ...` | tags computed from the value stored (say the groups a user belongs to): `invalidate!(tag = ...)` drops every entry that carried it, and any computation of one still under way is not stored; a hit still reads one key |
/// | `skip(db, client)` | parameters left out of the derived key (pools, clients, contexts) |
/// | `cache = expr` | a [`Cache`] (or `&Cache`) to use instead of the global [`cache()`]; may use the parameters, as in `cache = &self.cache` |
/// | `cache_none = true` | for an `Option` return: cache `None` too (by default only `Some` is cached) |
/// | `unless = \|result\| ...` | a predicate on the function's whole return value, by reference (`&Result<T, E>`, `&Option<T>` or `&T`): when it holds, the result is returned but not cached |
/// | `lock = true` / `lock = Duration` | compute a cold key once across the fleet, under a Redis lease (default 30 s); the others wait for its value, never longer than the lease |
/// | `stale = 30` | stale-while-revalidate: for this long past the timeout, callers get the stale value at once while one refresh runs: in a background task when the function owns its arguments (no `&`, receiver, lifetime, `impl`/`dyn` or generics; its future must then be `Send + 'static`), otherwise in the one caller that found the value stale |
/// | `failover = 600` | keep values this long past the timeout, and serve the last good one when the recomputation returns `Err` (or `None`) |
/// | `early = true` / `early = 2.0` | refresh hot values shortly before the timeout with the probabilistic `XFetch` rule (the number is its beta) |
/// | `soft_timeout = 200` / `soft_timeout = Duration` | milliseconds: with a stale or failover value at hand, the caller waits this long for its refresh, then takes that value while the refresh finishes in a background task and stores its result (the function must own its arguments; with `stale`, stale values wait this long instead of being served at once) |
/// | `hard_timeout = 5000` / `hard_timeout = Duration` | milliseconds: a computation still running past it is dropped and the call returns `Err(Error::Abandoned { .. }.into())` — or the failover value, when there is one; nothing is stored (the function must return `Result<T, E>` with `E: From<cachette::Error>`) |
/// | `jitter = 0.1` | shorten each timeout by a random part up to this fraction, so entries written together do not expire together |
/// | `crate = path` | where `cachette` is, when it is renamed or re-exported |
/// | `trait_impl` | the function is in a trait impl (see below) |
/// | `batch` | the function loads many ids at once: see [Batch functions](#batch-functions) |
///
/// # Keys
///
/// Without `key`, the key is what holds the function and its name — its
/// module path, or, in an `impl`, the type with its arguments
/// (`shop::Repo<shop::User>::by_id`; in a trait's `impl`,
/// `<shop::Db as shop::Load>::get`) — followed by a 128-bit digest of the
/// arguments that are not skipped, each encoded with serde: the same call
/// gives the same key in every process and on every machine built by the
/// same compiler, and two functions never share keys. The instances of a
/// generic function are functions of their own: its type arguments (their
/// [`type_name`](std::any::type_name)s), its const arguments and the types
/// behind `impl Trait` arguments are hashed too, so `load::<User>(7)` and
/// `load::<Order>(7)` keep two entries. These names are the compiler's: a
/// fleet built by two compiler versions may key such functions apart; and
/// what they cannot tell apart shares keys — two functions of one name
/// declared in two blocks of one function body, two local types of one
/// name, two closures as type arguments — so give those a `key`. Every key
/// argument must implement
/// `serde::Serialize`; `HashMap` and `HashSet` arguments serialize in an
/// order that differs between processes, so prefer `BTreeMap`/`BTreeSet` or
/// a `key` template for them. `self` is never part of a derived key; name it
/// in a template (`key = "repo:{self.id}:{id}"`) when it matters.
///
/// With `key`, the rendered template is the key exactly as [`Cache::get`] or
/// [`Cache::delete`] take it (a generic function's template names what
/// tells its instances apart, as it does for the arguments). An entry with a `namespace` or `tags` is read
/// back with [`Cache::get_in`] and the same scope (its namespace and every
/// rendered tag): [`Cache::get`] reads the key without a scope and misses it,
/// as it would a value stamped with other versions (the entry stays, and
/// [`Cache::contains`] still sees it). An entry is stamped with its
/// namespace's and tags' versions, not their names: two calls that render
/// the same key share one entry whatever their tags, so a template must
/// name every argument the value depends on, those its tags name included
/// (`key = "item:{shop}:{id}"` with `tags = ["shop:{shop}"]`, not
/// `key = "item:{id}"`).
///
/// # What is cached
///
/// A function returning `Result<T, E>` (any type named `Result`) caches only
/// `Ok` values: an `Err` goes back to the caller and the next call runs
/// again. One returning `Option<T>` caches `Some` values, and `None` too with
/// `cache_none = true`. Any other return type is cached whatever its value.
/// The cached type must implement `Serialize`, `DeserializeOwned` and
/// `Clone`, and be `Send + Sync + 'static` (it is shared between the
/// callers of one computation; in a generic function, say so in its
/// bounds); a compile error at the return type says so otherwise.
///
/// A cached function cannot return the cache's own errors: when the cache
/// fails (Redis down, a value that refuses to encode), the failure is
/// logged and the function runs uncached.
///
/// # One computation per key
///
/// Concurrent misses on one key in a process run the body once: the others
/// wait for its value. If that call fails, panics or is dropped, one of the
/// waiting calls takes over; waiting on one key never holds up another, and
/// cached functions calling cached functions do not deadlock. With `lock`,
/// the same holds across processes.
///
/// # Invalidation wins
///
/// A value computed from data read before an invalidation and stored after
/// it is never served: the read records what the key held and the versions
/// of the namespace and tags, and the write is refused or marked stale if
/// any of them changed meanwhile.
///
/// # Batch functions
///
/// With `batch`, a function taking one collection of ids (`Vec<K>`, `&[K]`,
/// `HashSet<K>` or `BTreeSet<K>`) and returning a map from id to value
/// (`HashMap<K, V>` or `BTreeMap<K, V>`) is cached per id: the `key`
/// template names one id, and each id's entry is the one a function of that
/// id alone with the same key, namespace and tags would use (so
/// [`invalidate!`] of that function, or [`Cache::invalidate`] of the key,
/// drops one id for both). A call reads every id's entry at once (one `MGET`
/// with Redis; on a cluster one request per node, all sent at once), runs the body once with the
/// collection holding exactly the ids without a fresh value, and stores each
/// value it returns with a guarded write (pipelined); an id another call is
/// computing is waited for, not computed again. An id the body does not
/// return is left out of the map and not cached. Other arguments are cloned
/// into the body (references are copied); tags may name them, not the id.
/// `batch` takes `timeout`, `namespace`, `tags`, `skip`, `cache`, `jitter`
/// and `crate`; the other options are a compile error, and so is `batch` on
/// a method: make it a free function taking what the method would read (its
/// repository as an argument, with `cache = &repo.cache`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::collections::HashMap;
/// use cachette::{cached, invalidate};
///
/// #[cached(key = "user:{id}", namespace = "users")]
/// async fn user(id: u64) -> String {
///     format!("user {id}")
/// }
///
/// #[cached(batch, key = "user:{id}", namespace = "users")]
/// async fn users(ids: Vec<u64>) -> HashMap<u64, String> {
///     // One query for the ids not cached: `WHERE id IN (...)`.
///     ids.into_iter().map(|id| (id, format!("user {id}"))).collect()
/// }
///
/// assert_eq!(user(2).await, "user 2");
/// let found = users(vec![1, 2, 3]).await; // the body runs for 1 and 3
/// assert_eq!(found.len(), 3);
/// invalidate!(user(2)).await.unwrap(); // id 2, for both functions
/// # }
/// ```
///
/// # Methods and trait impls
///
/// Methods work like free functions. Beside each function, `#[cached]`
/// defines a hidden `__cachette_key_{name}` function, with the function's
/// visibility, that [`invalidate!`] calls. A trait impl cannot hold such an
/// extra item: mark functions there with `trait_impl`, and invalidate their
/// entries with a namespace, a tag, or [`Cache::invalidate`] on the
/// template's key.
///
/// ```
/// use cachette::{Cache, cached};
///
/// trait Store {
///     async fn total(&self, id: u64) -> u64;
/// }
///
/// struct Db { cache: Cache }
///
/// impl Store for Db {
///     #[cached(trait_impl, cache = &self.cache, namespace = "totals")]
///     async fn total(&self, id: u64) -> u64 {
///         id * 2
///     }
/// }
/// ```
#[doc(inline)]
pub use cachette_macros::cached;

/// Drops cached entries, from update code; awaited.
///
/// - `invalidate!(f(args))`: the entry of that call of the `#[cached]`
///   function `f` (a path, `Type::method(&value, args)` or
///   `value.method(args)` work too). The key comes from the same generated
///   code the call uses.
/// - `invalidate!(namespace = "product")`: every entry of the namespace, in
///   one atomic command.
/// - `invalidate!(tag = format!("user:{id}"))`: every entry carrying the tag.
/// - `, cache = expr` after any of them: the cache to act on, when it is not
///   the one the function or the global [`cache()`] uses.
///
/// Every form returns `Result<`[`Invalidated`]`, Error>`: applied, or (when
/// Redis did not take it) queued in this process and retried until it
/// lands, and meanwhile this process serves nothing it invalidated. With
/// fail-open (the default) a queued invalidation is `Ok`; with
/// `fail_open(false)` it is an error, and still queued. A bumped
/// namespace's or tag's new version is [`Invalidated::version`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachette::Error> {
/// use cachette::{cached, invalidate};
///
/// #[cached(namespace = "product", key = "products:{category:?}")]
/// async fn products(category: Option<String>) -> Vec<String> {
///     vec!["Dune".to_owned()]
/// }
///
/// #[cached(tags = ["user:{user_id}"], key = "user_permissions:{user_id}")]
/// async fn user_permissions(user_id: i64) -> Vec<String> {
///     vec!["read".to_owned()]
/// }
///
/// products(None).await;
/// user_permissions(7).await;
/// invalidate!(products(None)).await?;          // that one entry
/// invalidate!(namespace = "product").await?;   // every product entry
/// invalidate!(tag = "user:7").await?;          // everything tagged user:7
/// # Ok(())
/// # }
/// ```
#[doc(inline)]
pub use cachette_macros::invalidate;

/// Recomputes the entry of one call of a `#[cached]` function now and
/// stores it, even when a fresh value is stored; awaited, it returns what
/// the call returns. For warming a cache after a deploy, or writing
/// through from update code.
///
/// `refresh!(f(args))` takes the call as written (a path,
/// `Type::method(&value, args)` or `value.method(args)`), and runs it
/// through the same single flight and guarded write as any call: a
/// computation of the entry already under way is waited for, not taken
/// (it may have read older data); an invalidation that lands while the
/// body runs wins over its value; an `Err` (or `None`) is returned and the
/// stored value stays. Other callers keep being served the stored value
/// until the refreshed one is stored. The call must be of a `#[cached]`
/// function: any other runs as a plain call (and a warning is logged).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cachette::{cached, refresh};
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// static PRICE: AtomicU32 = AtomicU32::new(10);
///
/// #[cached(key = "price:{sku}")]
/// async fn price(sku: &str) -> u32 {
///     PRICE.load(Ordering::SeqCst)
/// }
///
/// assert_eq!(price("dune").await, 10);
/// PRICE.store(12, Ordering::SeqCst);
/// assert_eq!(price("dune").await, 10); // still the stored value
/// assert_eq!(refresh!(price("dune")).await, 12);
/// assert_eq!(price("dune").await, 12); // the refreshed one
/// # }
/// ```
#[doc(inline)]
pub use cachette_macros::refresh;

/// Whole-response caching for tower and axum (feature `http`).
#[cfg(feature = "http")]
pub use cachette_runtime::http;

/// The value format and key derivation, for benchmarks and tools (feature
/// `internals`; not a stable API).
#[cfg(feature = "internals")]
pub use cachette_runtime::internals;

#[doc(hidden)]
pub mod __private {
    pub use cachette_runtime::__private::*;
}
