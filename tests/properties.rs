//! Properties over many random cases: distinct calls never share a key,
//! keys stay bounded, and whatever bytes a key holds in Redis are a miss
//! that the next write replaces.

use std::time::Duration;

use cachette::{Cache, DEFAULT_MAX_KEY_LENGTH, cached};
use proptest::prelude::*;
use support::RedisServer;

const MINUTE: Duration = Duration::from_secs(60);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Strings that stress key building: separators, braces, escapes, unicode,
/// empty, and long.
fn awkward() -> impl Strategy<Value = String> {
    prop_oneof![
        "[:#{}%/\\\\ a]{0,6}",
        "\\PC{0,12}",
        "[a:]{200,400}",
        Just(String::new()),
    ]
}

#[cached(skip(cache), cache = cache, timeout = 60)]
async fn derived(
    cache: &Cache,
    a: String,
    b: String,
    list: Vec<String>,
) -> (String, String, Vec<String>) {
    (a, b, list)
}

#[cached(key = "user:{a}:{b}", skip(cache), cache = cache, timeout = 60)]
async fn templated(cache: &Cache, a: String, b: String) -> (String, String) {
    (a, b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Two calls with different arguments never read each other's value.
    #[test]
    fn distinct_arguments_never_share_a_derived_key(
        first in (awkward(), awkward(), proptest::collection::vec(awkward(), 0..3)),
        second in (awkward(), awkward(), proptest::collection::vec(awkward(), 0..3)),
    ) {
        runtime().block_on(async {
            let cache = Cache::memory();
            let (a, b, list) = first.clone();
            prop_assert_eq!(derived(&cache, a, b, list).await, first.clone());
            let (a, b, list) = second.clone();
            prop_assert_eq!(derived(&cache, a, b, list).await, second.clone());
            // Same characters, boundaries moved: the cases a naive join confuses.
            let (a, b, list) = first.clone();
            let mut chars = b.chars();
            let moved = chars.next().map(|c| format!("{a}{c}")).unwrap_or_default();
            let shifted = (moved, chars.collect::<String>(), list.clone());
            let joined = (a.clone(), b.clone(), vec![list.concat()]);
            let prefixed = (String::new(), format!("{a}{b}"), list);
            for call in [shifted, joined, prefixed] {
                let (a, b, list) = call.clone();
                let value = derived(&cache, a, b, list).await;
                prop_assert_eq!(value, call);
            }
            let (a, b, list) = first.clone();
            prop_assert_eq!(derived(&cache, a, b, list).await, first);
            Ok(())
        })?;
    }

    /// Every stored key is bounded, and long keys that differ stay distinct.
    #[test]
    fn keys_stay_bounded_and_distinct(a in awkward(), b in awkward(), suffix in "[a-z]{1,3}") {
        let cache = Cache::memory();
        let long = format!("{a}{}{b}", "x".repeat(300));
        let other = format!("{long}{suffix}");
        for key in [&a, &b, &long, &other] {
            prop_assert!(cache.key_for(key).len() <= DEFAULT_MAX_KEY_LENGTH);
        }
        prop_assert_ne!(cache.key_for(&long), cache.key_for(&other));
        if a != b {
            prop_assert_ne!(cache.key_for(&a), cache.key_for(&b));
        }
        runtime().block_on(async {
            let (x, y) = (a.repeat(50), b.clone());
            prop_assert_eq!(templated(&cache, x.clone(), y.clone()).await, (x, y));
            Ok(())
        })?;
    }
}

#[test]
fn hostile_bytes_in_redis_are_a_miss_and_are_overwritten() {
    let server = RedisServer::start();
    let rt = runtime();
    let (cache, conn) = rt.block_on(async {
        let cache = server.cache().await;
        (cache, server.connect(0).await)
    });
    let key = cache.key_for("orders:7");
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(500));
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        // A valid-looking header (format 1, flags) and random rest.
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|mut rest| {
            rest.splice(0..0, [1_u8, 0]);
            rest
        }),
    ];
    runner
        .run(&bytes, |bytes| {
            let mut conn = conn.clone();
            rt.block_on(async {
                let () = redis::cmd("SET")
                    .arg(&key)
                    .arg(&bytes)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                // Unless the bytes happen to form a valid entry, they are a miss.
                let read = cache.get::<Vec<(String, u32)>>("orders:7").await.unwrap();
                if read.is_some() {
                    prop_assert_eq!(bytes.first(), Some(&1), "only an envelope decodes");
                    return Ok(());
                }
                let value = cache
                    .get_or_set(
                        "orders:7",
                        || async { vec![("book".to_owned(), 2_u32)] },
                        MINUTE,
                    )
                    .await
                    .unwrap();
                prop_assert_eq!(&value, &[("book".to_owned(), 2_u32)]);
                let stored = cache.get::<Vec<(String, u32)>>("orders:7").await.unwrap();
                prop_assert_eq!(stored, Some(value), "the hostile bytes were replaced");
                Ok(())
            })
        })
        .unwrap();
    let stats = cache.stats();
    assert!(stats.undecodable > 400, "{stats:?}");
    assert_eq!(stats.errors, 0, "{stats:?}");
}
