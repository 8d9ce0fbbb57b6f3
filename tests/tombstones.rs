//! The tombstone rules, written down once. An invalidated key holds a
//! tombstone (so that a computation that read the key before cannot store
//! an older value over it); every operation must then see the key as
//! absent. The rules are implemented twice by nature — in Redis's Lua
//! scripts and in the memory store — and this one table runs against both.

#[macro_use]
mod support;

use std::time::Duration;

use cachette::{Cache, Error};
use serde::{Deserialize, Serialize};
use support::RedisServer;

const MINUTE: Duration = Duration::from_secs(60);

/// What the key holds before the operation.
#[derive(Debug, Clone, Copy)]
enum Holds {
    Nothing,
    Value,
    Counter,
    Tombstone,
}

/// The operation, and what it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Get,
    Add,
    Touch,
    Delete,
    Incr,
    GetOrSet,
}

/// What an operation returned, in one comparable shape.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Found(Option<String>),
    Did(bool),
    Count(i64),
    NotACounter,
    Computed(bool),
}

use Holds::{Counter, Nothing, Tombstone, Value};
use Op::{Add, Delete, Get, GetOrSet, Incr, Touch};
use Outcome::{Computed, Count, Did, Found, NotACounter};

/// (what the key holds, the operation, what it returns, what `get` finds after).
fn table() -> Vec<(Holds, Op, Outcome, Option<&'static str>)> {
    vec![
        (Nothing, Get, Found(None), None),
        (Value, Get, Found(Some("v".into())), Some("v")),
        (Counter, Get, Found(Some("5".into())), Some("5")),
        (Tombstone, Get, Found(None), None),
        (Nothing, Add, Did(true), Some("added")),
        (Value, Add, Did(false), Some("v")),
        (Counter, Add, Did(false), Some("5")),
        (Tombstone, Add, Did(true), Some("added")),
        (Nothing, Touch, Did(false), None),
        (Value, Touch, Did(true), Some("v")),
        (Counter, Touch, Did(true), Some("5")),
        (Tombstone, Touch, Did(false), None),
        (Nothing, Delete, Did(false), None),
        (Value, Delete, Did(true), None),
        (Counter, Delete, Did(true), None),
        (Tombstone, Delete, Did(false), None),
        (Nothing, Incr, Count(1), Some("1")),
        (Value, Incr, NotACounter, Some("v")),
        (Counter, Incr, Count(6), Some("6")),
        (Tombstone, Incr, Count(1), Some("1")),
        (Nothing, GetOrSet, Computed(true), Some("computed")),
        (Value, GetOrSet, Computed(false), Some("v")),
        (Tombstone, GetOrSet, Computed(true), Some("computed")),
    ]
}

/// A stored value of either kind the table writes.
#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Stored {
    Counter(i64),
    Text(String),
}

/// What `get` finds: a string, or a counter shown as its digits.
async fn found(cache: &Cache, key: &str) -> Option<String> {
    cache
        .get::<Stored>(key)
        .await
        .unwrap()
        .map(|stored| match stored {
            Stored::Counter(n) => n.to_string(),
            Stored::Text(text) => text,
        })
}

async fn run(cache: &Cache, key: &str, op: Op) -> Outcome {
    match op {
        Get => Found(found(cache, key).await),
        Add => Did(cache.add(key, "added", MINUTE).await.unwrap()),
        Touch => Did(cache.touch(key, MINUTE).await.unwrap()),
        Delete => Did(cache.delete(key).await.unwrap()),
        Incr => match cache.incr(key, 1).await {
            Ok(n) => Count(n),
            Err(Error::NotACounter { .. }) => NotACounter,
            Err(error) => panic!("incr on {key}: {error}"),
        },
        GetOrSet => {
            let mut computed = false;
            let value = cache
                .get_or_set(
                    key,
                    || {
                        computed = true;
                        async { "computed".to_owned() }
                    },
                    MINUTE,
                )
                .await
                .unwrap();
            assert_eq!(computed, value == "computed");
            Computed(computed)
        }
    }
}

async fn put(cache: &Cache, key: &str, holds: Holds) {
    match holds {
        Nothing => {}
        Value => cache.set(key, "v", MINUTE).await.unwrap(),
        Counter => cache.set(key, &5, MINUTE).await.unwrap(),
        Tombstone => {
            cache.set(key, "v", MINUTE).await.unwrap();
            cache.invalidate(key).await.unwrap();
        }
    }
}

async fn the_table_holds(cache: Cache) {
    let mut failures = Vec::new();
    for (i, (holds, op, returns, after)) in table().into_iter().enumerate() {
        let key = format!("case:{i}");
        put(&cache, &key, holds).await;
        let got = run(&cache, &key, op).await;
        let left = found(&cache, &key).await;
        if got != returns || left.as_deref() != after {
            failures.push(format!(
                "{holds:?} {op:?}: returned {got:?} (want {returns:?}), then get found {left:?} (want {after:?})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[allow(clippy::unused_async)] // one signature for both fixtures
async fn memory() -> (Cache, Option<RedisServer>) {
    (Cache::memory(), None)
}

async fn redis() -> (Cache, Option<RedisServer>) {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .redis_url(server.url(0))
        .build()
        .await
        .unwrap();
    (cache, Some(server))
}

async fn tombstones_are_absent_to_every_operation((cache, _server): (Cache, Option<RedisServer>)) {
    the_table_holds(cache).await;
}

on_both_backends!(memory, redis; tombstones_are_absent_to_every_operation);
