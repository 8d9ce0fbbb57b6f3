//! `#[cached]` and `invalidate!` on the memory backend and on a real Redis.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cachette::{Cache, cached, invalidate};
use serde::{Deserialize, Serialize};
use support::RedisServer;

/// Stands in for a database: what it holds, how often it was queried, and
/// the cache in front of it.
struct Db {
    cache: Cache,
    queries: AtomicUsize,
    orders: std::sync::Mutex<HashMap<i64, u32>>,
    _server: Option<RedisServer>,
}

impl Db {
    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    fn query(&self, user_id: i64) -> u32 {
        self.queries.fetch_add(1, Ordering::SeqCst);
        self.orders
            .lock()
            .unwrap()
            .get(&user_id)
            .copied()
            .unwrap_or(0)
    }

    fn set_orders(&self, user_id: i64, n: u32) {
        self.orders.lock().unwrap().insert(user_id, n);
    }
}

async fn memory() -> Arc<Db> {
    Arc::new(Db {
        cache: Cache::builder().key_prefix("macros").build().await.unwrap(),
        queries: AtomicUsize::new(0),
        orders: std::sync::Mutex::default(),
        _server: None,
    })
}

async fn redis() -> Arc<Db> {
    let server = RedisServer::start();
    Arc::new(Db {
        cache: Cache::builder()
            .redis_url(server.url(0))
            .key_prefix("macros")
            .build()
            .await
            .unwrap(),
        queries: AtomicUsize::new(0),
        orders: std::sync::Mutex::default(),
        _server: Some(server),
    })
}

async fn cluster() -> Arc<Db> {
    Arc::new(Db {
        cache: Cache::builder()
            .redis_cluster(support::current_cluster().seeds())
            .key_prefix("macros")
            .build()
            .await
            .unwrap(),
        queries: AtomicUsize::new(0),
        orders: std::sync::Mutex::default(),
        _server: None,
    })
}

async fn sentinel() -> Arc<Db> {
    Arc::new(Db {
        cache: support::sentinel::current()
            .builder(Cache::builder().key_prefix("macros"), 0)
            .build()
            .await
            .unwrap(),
        queries: AtomicUsize::new(0),
        orders: std::sync::Mutex::default(),
        _server: None,
    })
}

support::on_every_store!(memory, redis, cluster, sentinel: sentinel;
    repeated_calls_run_the_body_once_and_invalidate_drops_the_entry,
    the_template_renders_the_key_a_user_would_delete,
    errors_are_not_cached,
    none_is_cached_only_when_asked,
    unless_skips_caching,
    functions_with_equal_arguments_do_not_share_entries,
    invalidate_namespace_drops_the_namespace_only,
    invalidate_tag_drops_tagged_entries_only,
    methods_and_generics_are_cached,
    the_instances_of_a_generic_function_do_not_share_entries,
    associated_functions_of_two_impls_do_not_share_entries,
    methods_of_two_traits_and_of_the_type_do_not_share_entries,
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stats {
    order_count: u32,
}

#[derive(Debug, PartialEq)]
struct DbError;

#[cached(timeout = 3600, key = "user_order_stats:{user_id}", skip(db), cache = &db.cache)]
async fn user_order_stats(db: &Db, user_id: i64) -> Result<Stats, DbError> {
    Ok(Stats {
        order_count: db.query(user_id),
    })
}

async fn repeated_calls_run_the_body_once_and_invalidate_drops_the_entry(db: Arc<Db>) {
    db.set_orders(42, 3);
    for _ in 0..3 {
        assert_eq!(
            user_order_stats(&db, 42).await,
            Ok(Stats { order_count: 3 })
        );
    }
    assert_eq!(db.queries(), 1);
    db.set_orders(42, 4);
    invalidate!(user_order_stats(&db, 42)).await.unwrap();
    assert_eq!(
        user_order_stats(&db, 42).await,
        Ok(Stats { order_count: 4 })
    );
    assert_eq!(user_order_stats(&db, 7).await, Ok(Stats { order_count: 0 }));
    assert_eq!(db.queries(), 3);
}

async fn the_template_renders_the_key_a_user_would_delete(db: Arc<Db>) {
    db.set_orders(5, 1);
    user_order_stats(&db, 5).await.unwrap();
    let stored: Option<Stats> = db.cache.get("user_order_stats:5").await.unwrap();
    assert_eq!(stored, Some(Stats { order_count: 1 }));
    assert!(db.cache.delete("user_order_stats:5").await.unwrap());
    user_order_stats(&db, 5).await.unwrap();
    assert_eq!(db.queries(), 2);
}

#[cached(key = "flaky:{attempt}", skip(db), cache = &db.cache)]
async fn flaky(db: &Db, attempt: u32, fail: bool) -> Result<u32, DbError> {
    db.query(0);
    if fail { Err(DbError) } else { Ok(attempt) }
}

async fn errors_are_not_cached(db: Arc<Db>) {
    assert_eq!(flaky(&db, 1, true).await, Err(DbError));
    assert_eq!(flaky(&db, 1, true).await, Err(DbError));
    assert_eq!(db.queries(), 2, "an Err is returned, never cached");
    assert_eq!(flaky(&db, 1, false).await, Ok(1));
    assert_eq!(flaky(&db, 1, true).await, Ok(1), "the Ok is cached");
    assert_eq!(db.queries(), 3);
}

#[cached(key = "lookup:{id}", skip(db), cache = &db.cache)]
async fn lookup(db: &Db, id: i64) -> Option<u32> {
    Some(db.query(id)).filter(|&n| n > 0)
}

#[cached(key = "lookup_none:{id}", skip(db), cache = &db.cache, cache_none = true)]
async fn lookup_caching_none(db: &Db, id: i64) -> Option<u32> {
    Some(db.query(id)).filter(|&n| n > 0)
}

async fn none_is_cached_only_when_asked(db: Arc<Db>) {
    assert_eq!(lookup(&db, 1).await, None);
    assert_eq!(lookup(&db, 1).await, None);
    assert_eq!(db.queries(), 2, "None is not cached by default");
    assert_eq!(lookup_caching_none(&db, 1).await, None);
    db.set_orders(1, 9);
    assert_eq!(
        lookup_caching_none(&db, 1).await,
        None,
        "None is cached with cache_none"
    );
    assert_eq!(db.queries(), 3);
    assert_eq!(lookup(&db, 1).await, Some(9));
    assert_eq!(lookup(&db, 1).await, Some(9));
    assert_eq!(db.queries(), 4);
}

#[cached(key = "search:{term}", skip(db), cache = &db.cache, unless = |found: &Vec<String>| found.is_empty())]
async fn search(db: &Db, term: &str) -> Vec<String> {
    db.query(0);
    if term == "none" {
        Vec::new()
    } else {
        vec![term.to_uppercase()]
    }
}

async fn unless_skips_caching(db: Arc<Db>) {
    assert!(search(&db, "none").await.is_empty());
    assert!(search(&db, "none").await.is_empty());
    assert_eq!(db.queries(), 2);
    assert_eq!(search(&db, "rust").await, ["RUST"]);
    assert_eq!(search(&db, "rust").await, ["RUST"]);
    assert_eq!(db.queries(), 3);
}

#[cached(skip(db), cache = &db.cache)]
async fn double(db: &Db, n: u64) -> u64 {
    db.query(0);
    n * 2
}

#[cached(skip(db), cache = &db.cache)]
async fn triple(db: &Db, n: u64) -> u64 {
    db.query(0);
    n * 3
}

async fn functions_with_equal_arguments_do_not_share_entries(db: Arc<Db>) {
    assert_eq!(double(&db, 5).await, 10);
    assert_eq!(triple(&db, 5).await, 15);
    assert_eq!(double(&db, 5).await, 10);
    assert_eq!(triple(&db, 5).await, 15);
    assert_eq!(db.queries(), 2);
    invalidate!(double(&db, 5)).await.unwrap();
    assert_eq!(triple(&db, 5).await, 15);
    assert_eq!(double(&db, 5).await, 10);
    assert_eq!(
        db.queries(),
        3,
        "invalidating one function leaves the other"
    );
}

#[cached(namespace = "product", key = "products:{category:?}", skip(db), cache = &db.cache)]
async fn products(db: &Db, category: Option<String>) -> Vec<String> {
    db.query(0);
    vec![category.unwrap_or_else(|| "all".into())]
}

#[cached(namespace = "user", key = "profile:{id}", skip(db), cache = &db.cache)]
async fn profile(db: &Db, id: i64) -> String {
    db.query(id);
    format!("user {id}")
}

async fn invalidate_namespace_drops_the_namespace_only(db: Arc<Db>) {
    products(&db, None).await;
    products(&db, Some("books".into())).await;
    profile(&db, 1).await;
    assert_eq!(db.queries(), 3);
    invalidate!(namespace = "product", cache = &db.cache)
        .await
        .unwrap();
    products(&db, None).await;
    products(&db, Some("books".into())).await;
    profile(&db, 1).await;
    assert_eq!(
        db.queries(),
        5,
        "both product entries recomputed, the profile hit"
    );
}

#[cached(tags = ["user:{user_id}", "orders"], key = "orders:{user_id}", skip(db), cache = &db.cache)]
async fn orders(db: &Db, user_id: i64) -> u32 {
    db.query(user_id)
}

#[cached(tags = ["user:{user_id}"], key = "settings:{user_id}", skip(db), cache = &db.cache)]
async fn settings(db: &Db, user_id: i64) -> u32 {
    db.query(user_id)
}

async fn invalidate_tag_drops_tagged_entries_only(db: Arc<Db>) {
    for user in [1, 2] {
        orders(&db, user).await;
        settings(&db, user).await;
    }
    assert_eq!(db.queries(), 4);
    invalidate!(tag = "user:1", cache = &db.cache)
        .await
        .unwrap();
    for user in [1, 2] {
        orders(&db, user).await;
        settings(&db, user).await;
    }
    assert_eq!(db.queries(), 6, "both entries of user 1 recomputed");
    invalidate!(tag = format!("orders"), cache = &db.cache)
        .await
        .unwrap();
    for user in [1, 2] {
        orders(&db, user).await;
        settings(&db, user).await;
    }
    assert_eq!(db.queries(), 8, "the orders of both users recomputed");
}

struct Repo {
    db: Arc<Db>,
    prefix: String,
}

impl Repo {
    #[cached(cache = &self.db.cache)]
    async fn name_of(&self, id: i64) -> String {
        self.db.query(id);
        format!("#{id}")
    }

    #[cached(key = "repo:{self.prefix}:{id}", cache = &self.db.cache)]
    pub async fn labelled(&self, id: i64) -> String {
        self.db.query(id);
        format!("{}{id}", self.prefix)
    }
}

#[cached(skip(db), cache = &db.cache)]
async fn first_of<T>(db: &Db, items: Vec<T>) -> Option<T>
where
    T: Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    db.query(0);
    items.into_iter().next()
}

#[cached(skip(db), cache = &db.cache)]
async fn type_of<T>(db: &Db, value: T) -> String
where
    T: Serialize + Send + Sync + 'static,
{
    db.query(0);
    drop(value);
    std::any::type_name::<T>().to_owned()
}

#[cached(skip(db), cache = &db.cache)]
async fn zero<T>(db: &Db) -> T
where
    T: Default + Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    db.query(0);
    T::default()
}

#[cached(skip(db), cache = &db.cache)]
async fn type_behind(db: &Db, value: impl Serialize + Send + Sync) -> String {
    fn name<T>(_: &T) -> &'static str {
        std::any::type_name::<T>()
    }
    db.query(0);
    name(&value).to_owned()
}

#[cached(skip(db), cache = &db.cache)]
async fn repeated<const N: usize>(db: &Db, c: char) -> String {
    db.query(0);
    std::iter::repeat_n(c, N).collect()
}

/// Two types with functions of the same name in one module, and a generic
/// one: associated functions that name neither `self` nor `Self`.
struct Users;
struct Orders;
struct Typed<T>(std::marker::PhantomData<T>);
struct Width<const N: usize>;

impl Users {
    #[cached(skip(db), cache = &db.cache)]
    async fn count(db: &Db, id: u32) -> String {
        db.query(0);
        format!("users {id}")
    }
}

impl Orders {
    #[cached(skip(db), cache = &db.cache)]
    async fn count(db: &Db, id: u32) -> String {
        db.query(0);
        format!("orders {id}")
    }
}

impl<T: Default + Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static>
    Typed<T>
{
    #[cached(skip(db), cache = &db.cache)]
    async fn fresh(db: &Db, id: u32) -> T {
        db.query(id.into());
        T::default()
    }
}

impl<const N: usize> Width<N> {
    #[cached(skip(db), cache = &db.cache)]
    async fn width(db: &Db, id: u32) -> usize {
        db.query(id.into());
        N
    }
}

trait UserNames {
    async fn name(&self, db: &Db, id: u32) -> String;
}

trait OrderNames {
    async fn name(&self, db: &Db, id: u32) -> String;
}

struct Names;

impl Names {
    #[cached(skip(db), cache = &db.cache)]
    async fn name(&self, db: &Db, id: u32) -> String {
        db.query(0);
        format!("names {id}")
    }
}

impl UserNames for Names {
    #[cached(trait_impl, skip(db), cache = &db.cache)]
    async fn name(&self, db: &Db, id: u32) -> String {
        db.query(0);
        format!("user {id}")
    }
}

impl OrderNames for Names {
    #[cached(trait_impl, skip(db), cache = &db.cache)]
    async fn name(&self, db: &Db, id: u32) -> String {
        db.query(0);
        format!("order {id}")
    }
}

async fn methods_of_two_traits_and_of_the_type_do_not_share_entries(db: Arc<Db>) {
    for _ in 0..2 {
        assert_eq!(Names.name(&db, 1).await, "names 1");
        assert_eq!(UserNames::name(&Names, &db, 1).await, "user 1");
        assert_eq!(OrderNames::name(&Names, &db, 1).await, "order 1");
    }
    assert_eq!(db.queries(), 3, "each computed once, then hits");
}

async fn associated_functions_of_two_impls_do_not_share_entries(db: Arc<Db>) {
    for _ in 0..2 {
        assert_eq!(Users::count(&db, 1).await, "users 1");
        assert_eq!(Orders::count(&db, 1).await, "orders 1");
        assert_eq!(Typed::<u8>::fresh(&db, 1).await, 0);
        assert_eq!(Typed::<String>::fresh(&db, 1).await, "");
        assert_eq!(Width::<3>::width(&db, 1).await, 3);
        assert_eq!(Width::<4>::width(&db, 1).await, 4);
    }
    assert_eq!(db.queries(), 6, "each computed once, then hits");
    invalidate!(Users::count(&db, 1)).await.unwrap();
    invalidate!(Typed::<String>::fresh(&db, 1)).await.unwrap();
    assert_eq!(Orders::count(&db, 1).await, "orders 1");
    assert_eq!(Typed::<u8>::fresh(&db, 1).await, 0);
    assert_eq!(db.queries(), 6, "the others kept");
    assert_eq!(Users::count(&db, 1).await, "users 1");
    assert_eq!(Typed::<String>::fresh(&db, 1).await, "");
    assert_eq!(db.queries(), 8, "the invalidated ones computed again");
}

async fn the_instances_of_a_generic_function_do_not_share_entries(db: Arc<Db>) {
    // `5_u32` and `5_u64` encode alike: only their types tell the calls apart.
    assert_eq!(type_of(&db, 5_u32).await, "u32");
    assert_eq!(type_of(&db, 5_u64).await, "u64");
    assert_eq!(type_of(&db, 5_u32).await, "u32");
    assert_eq!(type_of(&db, 5_u64).await, "u64");
    assert_eq!(db.queries(), 2);
    // A type argument only the return type names.
    for _ in 0..2 {
        assert_eq!(zero::<u8>(&db).await, 0);
        assert_eq!(zero::<String>(&db).await, "");
    }
    assert_eq!(db.queries(), 4);
    // The type behind `impl Trait`.
    assert_eq!(type_behind(&db, 5_u32).await, "u32");
    assert_eq!(type_behind(&db, 5_u64).await, "u64");
    assert_eq!(type_behind(&db, 5_u32).await, "u32");
    assert_eq!(db.queries(), 6);
    invalidate!(type_of(&db, 5_u32)).await.unwrap();
    assert_eq!(type_of(&db, 5_u64).await, "u64");
    assert_eq!(type_of(&db, 5_u32).await, "u32");
    assert_eq!(db.queries(), 7, "one instance invalidated, the other kept");
    // A const argument.
    assert_eq!(repeated::<2>(&db, 'a').await, "aa");
    assert_eq!(repeated::<3>(&db, 'a').await, "aaa");
    assert_eq!(repeated::<2>(&db, 'a').await, "aa");
    assert_eq!(db.queries(), 9);
}

async fn methods_and_generics_are_cached(db: Arc<Db>) {
    let repo = Repo {
        db: Arc::clone(&db),
        prefix: "p".into(),
    };
    assert_eq!(repo.name_of(1).await, "#1");
    assert_eq!(repo.name_of(1).await, "#1");
    assert_eq!(db.queries(), 1);
    invalidate!(repo.name_of(1)).await.unwrap();
    assert_eq!(repo.name_of(1).await, "#1");
    assert_eq!(db.queries(), 2);
    assert_eq!(repo.labelled(3).await, "p3");
    assert_eq!(repo.labelled(3).await, "p3");
    assert_eq!(db.queries(), 3);
    assert!(db.cache.get::<String>("repo:p:3").await.unwrap().is_some());
    invalidate!(Repo::labelled(&repo, 3)).await.unwrap();
    assert_eq!(repo.labelled(3).await, "p3");
    assert_eq!(db.queries(), 4);

    assert_eq!(first_of(&db, vec![1_u8, 2]).await, Some(1));
    assert_eq!(first_of(&db, vec![1_u8, 2]).await, Some(1));
    assert_eq!(
        first_of(&db, vec!["a".to_owned()]).await,
        Some("a".to_owned())
    );
    assert_eq!(db.queries(), 6);
}
