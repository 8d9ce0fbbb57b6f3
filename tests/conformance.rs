//! The memory store and Redis agree on every direct operation: one table of
//! rules — what the key holds × the operation × its timeout — run against
//! both. The tombstone rules live here too: an invalidated key holds a
//! tombstone (so that a computation that read the key before cannot store
//! an older value over it), and every operation sees it as absent.

use std::time::Duration;

use cachette::{Cache, Error, Timeout};
use serde::{Deserialize, Serialize};
use support::store::{Store, cluster, memory, redis, sentinel, tiered, tracked, tracked_cluster};

const MINUTE: Duration = Duration::from_secs(60);

/// What the key holds before the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holds {
    Nothing,
    /// The text `v`, for a minute.
    Value,
    /// The counter 5, for a minute.
    Counter,
    /// A value whose timeout has passed.
    Expired,
    /// An invalidated value.
    Tombstone,
    /// Bytes another program wrote (Redis only: nothing else writes to memory).
    Foreign,
}

/// The timeout an operation is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Zero,
    Minute,
    Forever,
    Huge,
}

impl Life {
    fn timeout(self) -> Timeout {
        match self {
            Life::Zero => Timeout::After(Duration::ZERO),
            Life::Minute => Timeout::After(MINUTE),
            Life::Forever => Timeout::Never,
            Life::Huge => Timeout::After(Duration::MAX),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Get,
    Contains,
    Ttl,
    Add(Life),
    Set(Life),
    Touch(Life),
    Delete,
    Incr,
    GetOrSet(Life),
    GetMany,
    SetMany(Life),
    DeleteMany,
    Decr,
    IncrExisting,
}

/// What an operation returned, in one comparable shape.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Found(Option<String>),
    Did(bool),
    /// `ttl`: none, never, or some time left.
    Left(Option<&'static str>),
    Count(i64),
    NotACounter,
    NotFound,
    Computed(bool),
}

use Holds::{Counter, Expired, Foreign, Nothing, Tombstone, Value};
use Outcome::{Computed, Count, Did, Found, Left, NotACounter, NotFound};

const HOLDS: [Holds; 6] = [Nothing, Value, Counter, Expired, Tombstone, Foreign];
const LIVES: [Life; 4] = [Life::Zero, Life::Minute, Life::Forever, Life::Huge];

/// The rules: what `op` returns on a key holding `holds`, and what `get`
/// finds afterwards. Expired values and tombstones are absent; foreign bytes
/// are present but no value (`get` finds nothing, and removes them); a zero
/// timeout writes nothing and keeps nothing; any other timeout, however
/// long, keeps the value.
fn rule(holds: Holds, op: Op) -> (Outcome, Option<String>) {
    let present = matches!(holds, Value | Counter | Foreign);
    let before = match holds {
        Value => Some("v".to_owned()),
        Counter => Some("5".to_owned()),
        _ => None,
    };
    let kept = |life: Life, value: &str| (life != Life::Zero).then(|| value.to_owned());
    match op {
        Op::Get | Op::GetMany => (Found(before.clone()), before),
        Op::Contains => (Did(present), before),
        Op::Ttl => (
            Left(match holds {
                Value | Counter => Some("some"),
                Foreign => Some("never"),
                _ => None,
            }),
            before,
        ),
        Op::Add(_) if present => (Did(false), before),
        Op::Add(life) => (Did(true), kept(life, "added")),
        Op::Set(life) | Op::SetMany(life) => (Did(true), kept(life, "set")),
        Op::Touch(life) if present => (Did(true), before.filter(|_| life != Life::Zero)),
        Op::Touch(_) => (Did(false), None),
        Op::Delete | Op::DeleteMany => (Did(present), None),
        Op::Incr => match holds {
            Value | Foreign => (NotACounter, before),
            Counter => (Count(6), Some("6".to_owned())),
            _ => (Count(1), Some("1".to_owned())),
        },
        Op::GetOrSet(_) if holds == Value => (Computed(false), before),
        Op::GetOrSet(life) => (Computed(true), kept(life, "computed")),
        Op::Decr => match holds {
            Value | Foreign => (NotACounter, before),
            Counter => (Count(4), Some("4".to_owned())),
            _ => (Count(-1), Some("-1".to_owned())),
        },
        Op::IncrExisting => match holds {
            Value | Foreign => (NotACounter, before),
            Counter => (Count(6), Some("6".to_owned())),
            _ => (NotFound, None),
        },
    }
}

fn ops() -> Vec<Op> {
    let mut ops = vec![
        Op::Get,
        Op::Contains,
        Op::Ttl,
        Op::Delete,
        Op::Incr,
        Op::GetMany,
        Op::DeleteMany,
        Op::Decr,
        Op::IncrExisting,
    ];
    for life in LIVES {
        ops.extend([
            Op::Add(life),
            Op::Set(life),
            Op::Touch(life),
            Op::GetOrSet(life),
            Op::SetMany(life),
        ]);
    }
    ops
}

/// A stored value of either kind the table writes.
#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Stored {
    Counter(i64),
    Text(String),
}

impl Stored {
    /// A string, or a counter shown as its digits.
    fn shown(self) -> String {
        match self {
            Stored::Counter(n) => n.to_string(),
            Stored::Text(text) => text,
        }
    }
}

/// What `get` finds.
async fn found(cache: &Cache, key: &str) -> Option<String> {
    cache.get::<Stored>(key).await.unwrap().map(Stored::shown)
}

async fn run(cache: &Cache, key: &str, op: Op) -> Outcome {
    match op {
        Op::Get => Found(found(cache, key).await),
        Op::Contains => Did(cache.contains(key).await.unwrap()),
        Op::Ttl => Left(match cache.ttl(key).await.unwrap() {
            None => None,
            Some(Timeout::Never) => Some("never"),
            Some(Timeout::After(left)) if left <= MINUTE && !left.is_zero() => Some("some"),
            Some(other) => panic!("ttl of {key}: {other:?}"),
        }),
        Op::Add(life) => Did(cache.add(key, "added", life.timeout()).await.unwrap()),
        Op::Set(life) => {
            cache.set(key, "set", life.timeout()).await.unwrap();
            Did(true)
        }
        Op::Touch(life) => Did(cache.touch(key, life.timeout()).await.unwrap()),
        Op::Delete => Did(cache.delete(key).await.unwrap()),
        Op::Incr => match cache.incr(key, 1).await {
            Ok(n) => Count(n),
            Err(Error::NotACounter { .. }) => NotACounter,
            Err(error) => panic!("incr on {key}: {error}"),
        },
        Op::GetMany => Found(
            cache
                .get_many::<Stored>([key])
                .await
                .unwrap()
                .remove(key)
                .map(Stored::shown),
        ),
        Op::SetMany(life) => Did(cache
            .set_many([(key, "set")], life.timeout())
            .await
            .unwrap()
            .is_empty()),
        Op::DeleteMany => Did(cache.delete_many([key]).await.unwrap() == 1),
        Op::Decr | Op::IncrExisting => {
            let counted = if op == Op::Decr {
                cache.decr(key, 1).await
            } else {
                cache.incr_existing(key, 1).await
            };
            match counted {
                Ok(n) => Count(n),
                Err(Error::NotACounter { .. }) => NotACounter,
                Err(Error::NotFound { .. }) => NotFound,
                Err(error) => panic!("{op:?} on {key}: {error}"),
            }
        }
        Op::GetOrSet(life) => {
            let mut computed = false;
            let value = cache
                .get_or_set(
                    key,
                    || {
                        computed = true;
                        async { "computed".to_owned() }
                    },
                    life.timeout(),
                )
                .await
                .unwrap();
            assert_eq!(computed, value == "computed");
            Computed(computed)
        }
    }
}

/// A cache under test; for Redis, the server, to write foreign bytes.
type Fx = Store;

/// Makes `key` hold what `holds` says.
async fn put(fx: &Fx, key: &str, holds: Holds) {
    let cache = &fx.cache;
    match holds {
        Nothing => {}
        Value => cache.set(key, "v", MINUTE).await.unwrap(),
        Counter => cache.set(key, &5, MINUTE).await.unwrap(),
        Expired => cache
            .set(key, "v", Duration::from_millis(20))
            .await
            .unwrap(),
        Tombstone => {
            cache.set(key, "v", MINUTE).await.unwrap();
            cache.invalidate(key).await.unwrap();
        }
        Foreign => {
            fx.set_raw(&cache.key_for(key), b"\xff\x00 another program's bytes")
                .await;
        }
    }
}

async fn every_operation_follows_the_rules(fx: Fx) {
    let holds: Vec<Holds> = HOLDS
        .into_iter()
        .filter(|h| *h != Foreign || fx.is_redis())
        .collect();
    let mut cases = Vec::new();
    for (i, op) in ops().into_iter().enumerate() {
        for (j, &h) in holds.iter().enumerate() {
            let key = format!("case:{i}:{j}");
            put(&fx, &key, h).await;
            cases.push((key, h, op));
        }
    }
    // Every `Expired` value's 20 ms are over.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut failures = Vec::new();
    for (key, holds, op) in &cases {
        let (returns, after) = rule(*holds, *op);
        let got = run(&fx.cache, key, *op).await;
        let left = found(&fx.cache, key).await;
        if got != returns || left != after {
            failures.push(format!(
                "{holds:?} {op:?}: returned {got:?} (want {returns:?}), then get found {left:?} (want {after:?})"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases break the rules:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

support::on_every_store!(memory, redis, cluster, tiered, sentinel: sentinel, tracked: tracked, on_cluster: tracked_cluster; every_operation_follows_the_rules);
