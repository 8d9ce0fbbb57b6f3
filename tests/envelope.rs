//! What travels to Redis: large values compressed, and, with a secret,
//! signed — so that bytes planted by anyone who can write to Redis (copied
//! from another key, signed with another secret, altered by one byte, or
//! bare digits) are misses, counted, and replaced by the computed value.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cachette::{Cache, CacheBuilder};
use serde::{Deserialize, Serialize};
use support::RedisServer;
use support::store::Store;

const SECRET: &str = "the secret of this fleet, 32 bytes";
const OTHER: &str = "the secret of another fleet, too!";
const MINUTE: Duration = Duration::from_secs(60);

/// Where the payload of an envelope without version stamps begins.
const PAYLOAD_AT: usize = 31;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Permissions {
    user: u64,
    roles: Vec<String>,
}

fn permissions(user: u64, role: &str) -> Permissions {
    Permissions {
        user,
        roles: vec![role.to_owned()],
    }
}

/// A cache on `server` signing with `secret`.
async fn signed(server: &RedisServer, secret: &str) -> Cache {
    Cache::builder()
        .redis_url(server.url(0))
        .sign_with(secret)
        .build()
        .await
        .unwrap()
}

/// Reads `key` the way a cached function does, counting computations.
async fn permissions_of(cache: &Cache, key: &str, runs: &AtomicU32) -> Permissions {
    cache
        .get_or_set(
            key,
            || async {
                runs.fetch_add(1, Ordering::SeqCst);
                permissions(7, "reader")
            },
            MINUTE,
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_copied_from_another_key_is_a_miss_and_is_replaced() {
    let server = RedisServer::start();
    let cache = signed(&server, SECRET).await;
    cache
        .set("perms:1", &permissions(1, "admin"), MINUTE)
        .await
        .unwrap();
    // Someone with write access copies the admin's entry over user 7's.
    let admin = server.get_raw(&cache.key_for("perms:1")).await;
    server.set_raw(&cache.key_for("perms:7"), &admin).await;

    let runs = AtomicU32::new(0);
    assert_eq!(
        permissions_of(&cache, "perms:7", &runs).await,
        permissions(7, "reader")
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the planted value was not served"
    );
    assert_eq!(cache.stats().forged, 1);
    // The computed value replaced it: the next call is a hit.
    assert_eq!(
        permissions_of(&cache, "perms:7", &runs).await,
        permissions(7, "reader")
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        cache.get::<Permissions>("perms:1").await.unwrap(),
        Some(permissions(1, "admin")),
        "the original stays valid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_signed_with_another_secret_or_unsigned_are_misses() {
    let server = RedisServer::start();
    let cache = signed(&server, SECRET).await;
    let other = signed(&server, OTHER).await;
    let unsigned = server.cache().await;
    other
        .set("a", &permissions(1, "admin"), MINUTE)
        .await
        .unwrap();
    unsigned
        .set("b", &permissions(1, "admin"), MINUTE)
        .await
        .unwrap();
    assert_eq!(cache.get::<Permissions>("a").await.unwrap(), None);
    assert_eq!(cache.get::<Permissions>("b").await.unwrap(), None);
    assert_eq!(cache.stats().forged, 2);
    // A cache without a secret reads signed values (turning signing on is
    // a deploy, not a flush).
    cache.set("c", &permissions(2, "x"), MINUTE).await.unwrap();
    assert_eq!(
        unsigned.get::<Permissions>("c").await.unwrap(),
        Some(permissions(2, "x"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_flipped_byte_is_a_miss() {
    let server = RedisServer::start();
    let cache = signed(&server, SECRET).await;
    cache
        .set("k", &permissions(3, "editor"), MINUTE)
        .await
        .unwrap();
    let key = cache.key_for("k");
    let good = server.get_raw(&key).await;
    let mut believed = 0;
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        server.set_raw(&key, &bad).await;
        if cache.get::<Permissions>("k").await.unwrap().is_some() {
            believed += 1;
        }
    }
    assert_eq!(believed, 0, "of {} flipped bytes", good.len());
    server.set_raw(&key, &good).await;
    assert_eq!(
        cache.get::<Permissions>("k").await.unwrap(),
        Some(permissions(3, "editor"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digits_planted_at_a_computed_integer_are_refused_but_counters_work() {
    let server = RedisServer::start();
    let cache = signed(&server, SECRET).await;
    let runs = AtomicU32::new(0);
    let price = || async {
        runs.fetch_add(1, Ordering::SeqCst);
        1999_u64
    };
    assert_eq!(
        cache.get_or_set("price:7", price, MINUTE).await.unwrap(),
        1999
    );
    server.set_raw(&cache.key_for("price:7"), b"1").await;
    assert_eq!(
        cache.get_or_set("price:7", price, MINUTE).await.unwrap(),
        1999
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(cache.stats().forged, 1);
    // Counters are Redis integers: they work, and `get` reads them.
    assert_eq!(cache.incr("hits", 2).await.unwrap(), 2);
    assert_eq!(cache.get::<i64>("hits").await.unwrap(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_accepts_the_previous_secret_until_it_is_dropped() {
    let server = RedisServer::start();
    let old = signed(&server, OTHER).await;
    old.set("k", &permissions(4, "viewer"), MINUTE)
        .await
        .unwrap();
    let rotating = Cache::builder()
        .redis_url(server.url(0))
        .sign_with(SECRET)
        .previous_secret(OTHER)
        .build()
        .await
        .unwrap();
    assert_eq!(
        rotating.get::<Permissions>("k").await.unwrap(),
        Some(permissions(4, "viewer"))
    );
    rotating
        .set("new", &permissions(5, "viewer"), MINUTE)
        .await
        .unwrap();
    let rotated = signed(&server, SECRET).await;
    assert!(rotated.get::<Permissions>("new").await.unwrap().is_some());
    assert_eq!(rotated.get::<Permissions>("k").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_or_orphan_secrets_are_build_errors() {
    for builder in [
        Cache::builder().sign_with("short"),
        Cache::builder().previous_secret(SECRET),
        Cache::builder().sign_with(SECRET).previous_secret("short"),
    ] {
        let error = builder.build().await.unwrap_err();
        assert!(matches!(error, cachette::Error::Config { .. }), "{error}");
        assert!(error.to_string().contains("secret"), "{error}");
    }
}

/// A page of catalogue entries: about 64 KiB of JSON-like text.
fn catalogue() -> Vec<String> {
    (0..800)
        .map(|i| {
            format!(
                r#"{{"id":{i},"title":"Book number {i}","price":{},"tags":["paper","novel"]}}"#,
                1000 + i * 7
            )
        })
        .collect()
}

async fn strlen(server: &RedisServer, key: &str) -> usize {
    redis::cmd("STRLEN")
        .arg(key)
        .query_async(&mut server.connect(0).await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_travel_compressed_and_every_reader_reads_them() {
    let server = RedisServer::start();
    let compressing = server.cache().await;
    let plain = Cache::builder()
        .redis_url(server.url(0))
        .compress_above(None)
        .build()
        .await
        .unwrap();
    let value = catalogue();
    compressing.set("page", &value, MINUTE).await.unwrap();
    plain.set("raw", &value, MINUTE).await.unwrap();
    let (packed, raw) = (
        strlen(&server, &compressing.key_for("page")).await,
        strlen(&server, &plain.key_for("raw")).await,
    );
    assert!(raw > 60_000, "{raw}");
    assert!(packed * 3 < raw, "{packed} bytes compressed of {raw}");
    for cache in [&compressing, &plain] {
        assert_eq!(
            cache.get::<Vec<String>>("page").await.unwrap().as_ref(),
            Some(&value)
        );
        assert_eq!(
            cache.get::<Vec<String>>("raw").await.unwrap().as_ref(),
            Some(&value)
        );
    }
    // Small values stay as they are.
    compressing.set("small", "tiny", MINUTE).await.unwrap();
    assert_eq!(server.get_raw(&compressing.key_for("small")).await[1], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decompression_bomb_is_a_miss() {
    let store = Store::redis(Cache::builder().max_value_bytes(1 << 20)).await;
    let server = store.server.as_ref().unwrap();
    let cache = &store.cache;
    cache.set("page", &catalogue(), MINUTE).await.unwrap();
    let key = cache.key_for("page");
    let mut bytes = server.get_raw(&key).await;
    assert_eq!(bytes[1], 2, "compressed");
    // Claim 4 GiB behind the same few kilobytes.
    bytes[PAYLOAD_AT..PAYLOAD_AT + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    server.set_raw(&key, &bytes).await;
    assert_eq!(cache.get::<Vec<String>>("page").await.unwrap(), None);
    // A value over the limit, honestly compressed, is a miss too.
    let big: Vec<String> = vec!["z".repeat(1000); 2000];
    cache.set("big", &big, MINUTE).await.unwrap();
    assert_eq!(cache.get::<Vec<String>>("big").await.unwrap(), None);
    assert_eq!(cache.stats().undecodable, 2);
}

/// With a local tier, a forged value is not kept in process either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_tier_keeps_only_signed_values() {
    let store = Store::tiered(CacheBuilder::default().sign_with(SECRET)).await;
    let server = store.server.as_ref().unwrap();
    let cache = &store.cache;
    let other = signed(server, OTHER).await;
    other
        .set("k", &permissions(1, "admin"), MINUTE)
        .await
        .unwrap();
    let runs = AtomicU32::new(0);
    for _ in 0..3 {
        assert_eq!(
            permissions_of(cache, "k", &runs).await,
            permissions(7, "reader")
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats().forged, 1);
}
