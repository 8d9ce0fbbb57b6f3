//! A tagged hit on a real Redis Cluster (three masters, each with a
//! replica) while one of its keys' slots moves to another master behind
//! the cache's back: the request sent to the master the cache believed in
//! meets a `MOVED`, the keys are read again through the routed `MGET`, the
//! hit is served, right, and the cache looks at the topology again, so that
//! its hits go back to one request per master holding their keys.

use std::collections::BTreeSet;
use std::time::Duration;

use cachette::{Cache, Scope};
use support::{RedisCluster, cli, eventually, parse_command_calls};

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tagged_hit_follows_a_slot_that_moved() {
    let cluster = RedisCluster::start();
    let cache = Cache::builder()
        .redis_cluster(cluster.seeds())
        .key_prefix("moved")
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
    let hit = async || {
        let never = || async { unreachable!("a hit") as String };
        let value = cache.get_or_set_in("products:all", never, HOUR, &scope);
        assert_eq!(value.await.unwrap(), "value");
    };
    let masters = cluster.master_ports();
    // Once the cache knows the topology, one request per master.
    eventually("one request per master", async || {
        reset(&masters);
        hit().await;
        one_request_per_master(&masters)
    })
    .await;
    // A master holding keys of two slots gives one of them to another.
    let (from, key) = masters
        .iter()
        .find_map(|&port| {
            let keys = keys_on(port);
            let slots: BTreeSet<String> = keys.iter().map(|key| slot_of(port, key)).collect();
            (slots.len() > 1).then(|| (port, keys[0].clone()))
        })
        .expect("four keys on three masters: one holds keys of two slots");
    let to = *masters.iter().find(|&&port| port != from).unwrap();
    move_slot(&masters, from, to, &slot_of(from, &key));
    assert!(keys_on(to).contains(&key));
    let before = cache.stats();
    hit().await;
    let after = cache.stats();
    assert_eq!(after.hits - before.hits, 1);
    assert_eq!(after.errors, before.errors, "a moved key is no error");
    eventually("one request per master again", async || {
        reset(&masters);
        hit().await;
        one_request_per_master(&masters)
    })
    .await;
    assert_eq!(cache.stats().errors, 0);
}

/// The cache's keys on the master at `port`.
fn keys_on(port: u16) -> Vec<String> {
    cli(port, &["KEYS", "moved*"])
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

fn reset(masters: &[u16]) {
    for &port in masters {
        cli(port, &["CONFIG", "RESETSTAT"]);
    }
}

/// Whether the last hit (since [`reset`]) sent each master one request:
/// one `MGET` where its keys share a slot, else a `GET` per key; nothing
/// to a master without them.
fn one_request_per_master(masters: &[u16]) -> bool {
    masters.iter().all(|&port| {
        let calls = parse_command_calls(&cli(port, &["INFO", "commandstats"]));
        let count = |name: &str| -> u64 {
            calls
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, calls)| calls)
                .sum()
        };
        let keys = keys_on(port);
        let slots: BTreeSet<String> = keys.iter().map(|key| slot_of(port, key)).collect();
        let expected = match slots.len() {
            0 => (0, 0),
            1 => (1, 0),
            _ => (0, keys.len() as u64),
        };
        (count("mget"), count("get")) == expected
    })
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
