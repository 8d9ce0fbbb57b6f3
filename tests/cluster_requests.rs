//! What a cache sends to a real Redis Cluster (three masters, each with a
//! replica, started once for this test binary), counted with `INFO
//! commandstats` on the masters: a tagged hit is one request per master
//! holding its keys, and is again after one of its slots moved behind the
//! cache's back (the request meets a `MOVED`, the keys are read again
//! through the routed `MGET`, the hit is served, right, and the cache looks
//! at the topology again); with tracked versions it is one `GET`; a
//! replicated invalidation is one `WAIT`, on the master of its key.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use cachette::{Cache, CacheBuilder, Scope};
use support::{RedisCluster, cli, eventually, parse_command_calls};

const HOUR: Duration = Duration::from_secs(3600);
const HITS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_cache_sends_to_one_cluster() {
    let cluster = RedisCluster::start();
    a_tagged_hit_is_one_request_per_master(&cluster).await;
    replicated_invalidations_wait_on_the_master_of_their_key(&cluster).await;
    a_tracked_tagged_hit_is_one_get(&cluster).await;
    a_tagged_hit_follows_a_slot_that_moved(&cluster).await;
    a_hit_is_served_after_its_connections_were_killed(&cluster).await;
    a_read_on_a_hung_master_is_sent_once(&cluster).await;
}

/// A namespace and two tags spread over the cluster: a hit reads the entry
/// and its three version keys with one request per master holding some of
/// them, sent at once — one `MGET` where the master's keys share a slot,
/// else one pipeline of a `GET` per key (redis-rs would split an `MGET`
/// into one command per slot) — and sends nothing else.
async fn a_tagged_hit_is_one_request_per_master(cluster: &RedisCluster) {
    let (cache, scope) = tagged_entry(cluster, "per-node", |builder| builder).await;
    // The keys each master holds, and the slots they are in.
    let held: Vec<(u16, usize, usize)> = cluster
        .master_ports()
        .into_iter()
        .map(|port| {
            let keys = keys_on(port, "per-node");
            let slots: BTreeSet<String> = keys.iter().map(|key| slot_of(port, key)).collect();
            (port, keys.len(), slots.len())
        })
        .collect();
    assert_eq!(
        held.iter().map(|&(_, keys, _)| keys).sum::<usize>(),
        4,
        "the entry and three version keys: {held:?}"
    );
    assert!(
        held.iter().any(|&(_, _, slots)| slots > 1),
        "four keys on three masters: one holds keys of two slots ({held:?})"
    );
    reset(cluster);
    for _ in 0..HITS {
        hit(&cache, &scope).await;
    }
    let commands = data_commands(cluster);
    for (port, name, _) in &commands {
        assert!(
            name == "get" || name == "mget",
            "a hit only reads ({port}: {name})"
        );
    }
    for (port, keys, slots) in held {
        let (mgets, gets) = (
            calls(&commands, port, "mget"),
            calls(&commands, port, "get"),
        );
        eprintln!(
            "cluster: {HITS} tagged hits on the master at {port} ({keys} keys in {slots} slots): \
             {mgets} MGET, {gets} GET"
        );
        let (mget, get) = per_hit(port, "per-node");
        assert_eq!((mgets, gets), (mget * HITS, get * HITS), "{port}");
    }
    assert_eq!(cache.stats().hits, HITS);
}

/// With replicated invalidations, each invalidation's write is followed by
/// one `WAIT` on the master of its key; more replicas asked for than a
/// master has, and the invalidation stays queued, this process serving
/// nothing it invalidated.
async fn replicated_invalidations_wait_on_the_master_of_their_key(cluster: &RedisCluster) {
    let cache_waiting_for = |replicas: usize| {
        Cache::builder()
            .redis_cluster(cluster.seeds())
            .key_prefix("replicated")
            .replicated_invalidations(replicas, Duration::from_millis(500))
            .build()
    };
    let cache = cache_waiting_for(1).await.unwrap();
    let scope = Scope::new().namespace("catalog").tag("size:256");
    let version = Arc::new(AtomicU64::new(1));
    let row = async |cache: &Cache| {
        let version = Arc::clone(&version);
        let compute = || async move { version.load(SeqCst) };
        cache
            .get_or_set_in("row", compute, HOUR, &scope)
            .await
            .unwrap()
    };
    assert_eq!(row(&cache).await, 1);
    reset(cluster);
    version.store(2, SeqCst);
    assert!(cache.invalidate("row").await.unwrap().is_applied());
    assert!(
        cache
            .invalidate_namespace("catalog")
            .await
            .unwrap()
            .is_applied()
    );
    assert!(cache.invalidate_tag("size:256").await.unwrap().is_applied());
    let commands = data_commands(cluster);
    let waits: u64 = cluster
        .master_ports()
        .into_iter()
        .map(|port| calls(&commands, port, "wait"))
        .sum();
    assert_eq!(waits, 3, "{commands:?}");
    assert_eq!(row(&cache).await, 2);

    let wanting = cache_waiting_for(2).await.unwrap();
    version.store(3, SeqCst);
    let done = wanting.invalidate_namespace("catalog").await.unwrap();
    assert!(done.is_queued(), "one replica per master: {done:?}");
    for _ in 0..3 {
        assert_eq!(row(&wanting).await, 3);
    }
    assert_eq!(wanting.stats().invalidations_pending, 1);
}

/// With tracked versions, a hit in a namespace and with two tags is one
/// `GET` on the master of its entry, once tracking is up on every master.
async fn a_tracked_tagged_hit_is_one_get(cluster: &RedisCluster) {
    let (cache, scope) =
        tagged_entry(cluster, "tracked", |builder| builder.track_versions(true)).await;
    eventually("tracking is up on every master", async || {
        hit(&cache, &scope).await;
        cache.health().tracking.is_some_and(|t| t.up)
    })
    .await;
    // The miss created the version keys: Redis tells this process of that
    // too, and the next hit may read them from Redis once more.
    eventually("a hit sends one GET", async || {
        reset(cluster);
        hit(&cache, &scope).await;
        let seen = data_commands(cluster);
        seen.len() == 1 && seen[0].1 == "get" && seen[0].2 == 1
    })
    .await;
    reset(cluster);
    for _ in 0..HITS {
        hit(&cache, &scope).await;
    }
    let seen = data_commands(cluster);
    let gets: u64 = cluster
        .master_ports()
        .into_iter()
        .map(|port| calls(&seen, port, "get"))
        .sum();
    assert_eq!(gets, HITS, "{seen:?}");
    assert!(
        seen.iter().all(|(_, name, _)| name == "get"),
        "nothing but GETs: {seen:?}"
    );
}

/// A master holding keys of two slots gives one of them to another behind
/// the cache's back: the next hit is served, right, and is no error, and
/// the hits after it go back to one request per master.
async fn a_tagged_hit_follows_a_slot_that_moved(cluster: &RedisCluster) {
    let (cache, scope) = tagged_entry(cluster, "moved", |builder| builder).await;
    let masters = cluster.master_ports();
    // Once the cache knows the topology, one request per master.
    one_request_per_master_again(cluster, &cache, &scope, "moved").await;
    let (from, key) = masters
        .iter()
        .find_map(|&port| {
            let keys = keys_on(port, "moved");
            let slots: BTreeSet<String> = keys.iter().map(|key| slot_of(port, key)).collect();
            (slots.len() > 1).then(|| (port, keys[0].clone()))
        })
        .expect("four keys on three masters: one holds keys of two slots");
    let to = *masters.iter().find(|&&port| port != from).unwrap();
    move_slot(&masters, from, to, &slot_of(from, &key));
    assert!(keys_on(to, "moved").contains(&key));
    let before = cache.stats();
    hit(&cache, &scope).await;
    let after = cache.stats();
    assert_eq!(after.hits - before.hits, 1);
    assert_eq!(after.errors, before.errors, "a moved key is no error");
    one_request_per_master_again(cluster, &cache, &scope, "moved").await;
    assert_eq!(cache.stats().errors, 0);
}

/// Every client connection of the masters is killed between two hits (the
/// cache's own connection to each master, and the cluster connection's):
/// the next hits are served, right, as hits and with no error, and the
/// hits after them go back to one request per master.
async fn a_hit_is_served_after_its_connections_were_killed(cluster: &RedisCluster) {
    let (cache, scope) = tagged_entry(cluster, "killed", |builder| builder).await;
    // A plain entry, on a cache of its own (its key is no tagged hit's).
    let (plain_cache, _) = tagged_entry(cluster, "plain-after-kill", |builder| builder).await;
    let plain = || async { "plain".to_owned() };
    let masters = cluster.master_ports();
    for round in 0..3 {
        one_request_per_master_again(cluster, &cache, &scope, "killed").await;
        let value = plain_cache.get_or_set("plain", plain, HOUR).await;
        assert_eq!(value.unwrap(), "plain");
        for &port in &masters {
            let killed = cli(port, &["CLIENT", "KILL", "TYPE", "normal"]);
            assert_ne!(
                killed.trim(),
                "0",
                "round {round}: the cache's clients of {port}"
            );
        }
        let (before, plain_before) = (cache.stats(), plain_cache.stats());
        hit(&cache, &scope).await;
        let never = || async { unreachable!("a hit") as String };
        let value = plain_cache.get_or_set("plain", never, HOUR).await;
        assert_eq!(value.unwrap(), "plain");
        let (after, plain_after) = (cache.stats(), plain_cache.stats());
        assert_eq!(after.hits - before.hits, 1, "round {round}");
        assert_eq!(plain_after.hits - plain_before.hits, 1, "round {round}");
        assert_eq!(
            after.errors, before.errors,
            "round {round}: a killed connection is no error"
        );
        assert_eq!(plain_after.errors, plain_before.errors, "round {round}");
    }
}

/// The master of a hit's entry hangs (`CLIENT PAUSE`) past the command
/// deadline: the read fails open, once, and is not sent again through
/// another connection (which would cost the call a second deadline): the
/// cache's connections to that master are the same ones afterwards, and
/// the next read hits.
async fn a_read_on_a_hung_master_is_sent_once(cluster: &RedisCluster) {
    let cache = Cache::builder()
        .redis_cluster(cluster.seeds())
        .key_prefix("hung")
        .build()
        .await
        .unwrap();
    let value = || async { "value".to_owned() };
    cache.get_or_set("entry", value, HOUR).await.unwrap();
    let master = *cluster
        .master_ports()
        .iter()
        .find(|&&port| !keys_on(port, "hung").is_empty())
        .expect("a master holds the entry");
    // Hits, while the cache makes its own connection to the master (in
    // the background, at its first read).
    let hit = async || cache.get::<String>("entry").await.unwrap().as_deref() == Some("value");
    for _ in 0..10 {
        assert!(hit().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = clients(master);
    reset(cluster);
    cli(master, &["CLIENT", "PAUSE", "1500"]);
    let before = cache.stats();
    assert_eq!(cache.get::<String>("entry").await.unwrap(), None, "a miss");
    let after = cache.stats();
    assert_eq!(after.errors - before.errors, 1, "{after:?}");
    eventually("the master answers again", async || {
        cli(master, &["PING"]).trim() == "PONG"
    })
    .await;
    assert!(hit().await);
    let now = clients(master);
    assert!(
        held.is_subset(&now),
        "the cache's connections to the master are kept: {held:?} then {now:?}"
    );
}

/// The ids of the master's client connections, but the one asking.
fn clients(port: u16) -> BTreeSet<String> {
    cli(port, &["CLIENT", "LIST"])
        .lines()
        .filter(|line| !line.contains("cmd=client|list"))
        .filter_map(|line| {
            line.strip_prefix("id=")?
                .split(' ')
                .next()
                .map(str::to_owned)
        })
        .collect()
}

/// Waits until a hit of the entry [`tagged_entry`] stored under `prefix`
/// sends one request per master holding its keys (`per_hit`).
async fn one_request_per_master_again(
    cluster: &RedisCluster,
    cache: &Cache,
    scope: &Scope,
    prefix: &str,
) {
    let masters = cluster.master_ports();
    eventually("one request per master", async || {
        reset(cluster);
        hit(cache, scope).await;
        let commands = data_commands(cluster);
        masters.iter().all(|&port| {
            let sent = (
                calls(&commands, port, "mget"),
                calls(&commands, port, "get"),
            );
            sent == per_hit(port, prefix)
        })
    })
    .await;
}

/// A cache on `cluster` with keys under `prefix` (and the settings
/// `builder` adds), holding the value of a call in a namespace and with two
/// tags: the cache, and the call's scope.
async fn tagged_entry(
    cluster: &RedisCluster,
    prefix: &str,
    builder: impl FnOnce(CacheBuilder) -> CacheBuilder,
) -> (Cache, Scope) {
    let cache = builder(Cache::builder().redis_cluster(cluster.seeds()))
        .key_prefix(prefix)
        .build()
        .await
        .unwrap();
    let scope = Scope::new()
        .namespace("catalog")
        .tag("size:256")
        .tag("bench");
    let compute = || async { "value".to_owned() };
    cache
        .get_or_set_in("products:all", compute, HOUR, &scope)
        .await
        .unwrap();
    (cache, scope)
}

/// A hit of the call [`tagged_entry`] stored.
async fn hit(cache: &Cache, scope: &Scope) {
    let never = || async { unreachable!("a hit") as String };
    let value = cache.get_or_set_in("products:all", never, HOUR, scope);
    assert_eq!(value.await.unwrap(), "value");
}

fn reset(cluster: &RedisCluster) {
    for port in cluster.master_ports() {
        cli(port, &["CONFIG", "RESETSTAT"]);
    }
}

/// Calls of the commands a cache sends, on the masters, since [`reset`]:
/// (port, command, calls).
fn data_commands(cluster: &RedisCluster) -> Vec<(u16, String, u64)> {
    let mut seen = Vec::new();
    for port in cluster.master_ports() {
        for (name, calls) in parse_command_calls(&cli(port, &["INFO", "commandstats"])) {
            // Replication, topology and the test's own commands are not the cache's.
            let ours = !matches!(
                name.as_str(),
                "replconf" | "ping" | "info" | "cluster" | "command" | "client" | "hello" | "role"
            ) && !name.starts_with("config");
            if ours {
                seen.push((port, name, calls));
            }
        }
    }
    seen
}

/// The calls of `name` on the master at `port` among `commands`.
fn calls(commands: &[(u16, String, u64)], port: u16, name: &str) -> u64 {
    commands
        .iter()
        .filter(|(p, n, _)| *p == port && n == name)
        .map(|(.., calls)| calls)
        .sum()
}

/// What one tagged hit sends the master at `port`, as (`MGET`s, `GET`s):
/// of the keys under `prefix` it holds, a `GET` of its one key, one `MGET`
/// of keys that share a slot, else a `GET` per key; nothing without them.
fn per_hit(port: u16, prefix: &str) -> (u64, u64) {
    let keys = keys_on(port, prefix);
    let slots: BTreeSet<String> = keys.iter().map(|key| slot_of(port, key)).collect();
    match (keys.len(), slots.len()) {
        (0, _) => (0, 0),
        (1, _) => (0, 1),
        (_, 1) => (1, 0),
        (count, _) => (0, count as u64),
    }
}

/// The keys under `prefix` on the master at `port`.
fn keys_on(port: u16, prefix: &str) -> Vec<String> {
    cli(port, &["KEYS", &format!("{prefix}*")])
        .lines()
        .filter(|key| !key.is_empty())
        .map(str::to_owned)
        .collect()
}

fn slot_of(port: u16, key: &str) -> String {
    cli(port, &["CLUSTER", "KEYSLOT", key]).trim().to_owned()
}

fn node_id(port: u16) -> String {
    cli(port, &["CLUSTER", "MYID"]).trim().to_owned()
}

/// Moves `slot`, with its keys, from the master at `from` to the one at
/// `to`, as `redis-cli --cluster reshard` does it.
fn move_slot(masters: &[u16], from: u16, to: u16, slot: &str) {
    let (from_id, to_id) = (node_id(from), node_id(to));
    assert_eq!(
        cli(to, &["CLUSTER", "SETSLOT", slot, "IMPORTING", &from_id]).trim(),
        "OK"
    );
    assert_eq!(
        cli(from, &["CLUSTER", "SETSLOT", slot, "MIGRATING", &to_id]).trim(),
        "OK"
    );
    let keys = cli(from, &["CLUSTER", "GETKEYSINSLOT", slot, "100"]);
    let to_port = to.to_string();
    let mut migrate = vec!["MIGRATE", "127.0.0.1", &to_port, "", "0", "5000", "KEYS"];
    migrate.extend(keys.lines().filter(|key| !key.is_empty()));
    assert_eq!(cli(from, &migrate).trim(), "OK");
    for &port in [to, from].iter().chain(masters) {
        cli(port, &["CLUSTER", "SETSLOT", slot, "NODE", &to_id]);
    }
}
