//! Redis Sentinel: one master, two replicas and three sentinels, started
//! once for this binary (one test runs the cases in turn). The cache finds
//! the master through the sentinels, with the sentinels' password and the
//! data nodes' own; everything works over it; a killed master is replaced
//! under load without a failed call or a wrong value, and the old master,
//! back as a replica, is left alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cachette::{Cache, CacheBuilder};
use support::app::{self, App};
use support::eventually;
use support::sentinel::{MASTER_NAME, RedisSentinel};

const MINUTE: Duration = Duration::from_secs(60);

/// Run by the main test in a child process, with the environment set.
const CHILD: &str = "CACHETTE_SENTINEL_CHILD";

fn on(topology: &RedisSentinel) -> CacheBuilder {
    Cache::builder().redis_sentinel(topology.urls(), topology.master())
}

/// The bytes at `key` on the data node on `port`, as another program reads them.
async fn raw_get(port: u16, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut RedisSentinel::connect(port).await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel() {
    if std::env::var_os(CHILD).is_some() {
        return from_the_environment().await;
    }
    let mut topology = RedisSentinel::start();
    eprintln!("case: everything works through the sentinels");
    everything_works(&topology).await;
    eprintln!("case: the environment names the sentinels");
    topology.flush();
    the_environment_names_the_sentinels(&topology);
    eprintln!("case: a killed master is replaced under load");
    topology.flush();
    a_killed_master_is_replaced_under_load(&mut topology).await;
    eprintln!("case: a master demoted by the sentinels is left for the promoted replica");
    a_demoted_master_is_left(&topology).await;
}

/// The direct API, `#[cached]`, a script, a lock and a local tier, on the
/// master the sentinels name.
async fn everything_works(topology: &RedisSentinel) {
    let cache = on(topology).build().await.unwrap();
    let master = topology.master_port();
    cache.set("direct", &7_u64, MINUTE).await.unwrap();
    assert_eq!(cache.get::<u64>("direct").await.unwrap(), Some(7));
    assert!(
        raw_get(master, &cache.key_for("direct")).await.is_some(),
        "the entry is on the master"
    );
    assert!(
        cache.add("added", &1_u64, MINUTE).await.unwrap(),
        "a script"
    );
    assert!(!cache.add("added", &2_u64, MINUTE).await.unwrap());
    let lock = cache.try_lock("job", MINUTE).await.unwrap();
    assert!(lock.is_some(), "a lease");
    assert!(cache.try_lock("job", MINUTE).await.unwrap().is_none());
    let app = App::new(cache.clone());
    app.call(3).await;
    assert!(app::is_hit(&app, 3).await, "#[cached] hits");
    cache.invalidate("item:3").await.unwrap();
    assert!(!app::is_hit(&app, 3).await, "an invalidation lands");
    let stats = cache.stats();
    assert_eq!(stats.errors, 0, "{stats:?}");
    let shown = format!("{cache:?}");
    assert!(!shown.contains("secret"), "no password in {shown}");
    the_two_passwords_are_checked(topology).await;

    let tiered = on(topology).local_tier(1 << 20).build().await.unwrap();
    eventually("the local tier tracks the master", async || {
        tiered.health().tracking.is_some_and(|t| t.up)
    })
    .await;
    tiered.set("local", &1_u64, MINUTE).await.unwrap();
    // (The write's own invalidation may reach the tier after the first read.)
    eventually("a local hit", async || {
        assert_eq!(tiered.get::<u64>("local").await.unwrap(), Some(1));
        tiered.stats().local_hits >= 1
    })
    .await;
    cache.set("local", &2_u64, MINUTE).await.unwrap();
    eventually("another client's write reaches the tier", async || {
        tiered.get::<u64>("local").await.unwrap() == Some(2)
    })
    .await;
}

/// An error and its sources, as a log line shows them.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(error) = source {
        text.push_str(": ");
        text.push_str(&error.to_string());
        source = error.source();
    }
    text
}

/// A wrong password, for the sentinels or for the data nodes, is a build
/// error that says so.
async fn the_two_passwords_are_checked(topology: &RedisSentinel) {
    let wrong_sentinels: Vec<String> = topology
        .urls()
        .iter()
        .map(|url| url.replace("sentinel-secret", "nope"))
        .collect();
    let error = Cache::builder()
        .redis_sentinel(wrong_sentinels, topology.master())
        .build()
        .await
        .unwrap_err();
    let said = chain(&error).to_lowercase();
    assert!(
        said.contains("sentinel") && said.contains("authentication failed"),
        "{said}"
    );
    let error = Cache::builder()
        .redis_sentinel(topology.urls(), format!("redis://:nope@{MASTER_NAME}/0"))
        .build()
        .await
        .unwrap_err();
    let said = chain(&error).to_lowercase();
    assert!(
        said.contains("wrongpass") || said.contains("authentication failed"),
        "{said}"
    );
}

/// `REDIS_SENTINEL_URLS` and `REDIS_SENTINEL_MASTER` choose the master, in
/// a child process that reads them.
fn the_environment_names_the_sentinels(topology: &RedisSentinel) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sentinel", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("REDIS_SENTINEL_URLS", topology.urls().join(" , "))
        .env("REDIS_SENTINEL_MASTER", topology.master())
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER_URLS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("value=42"), "{stdout}");
    let master = topology.master_port();
    let stored = redis::cmd("KEYS")
        .arg("cachette:from-env")
        .query::<Vec<String>>(
            &mut redis::Client::open(RedisSentinel::node_url(master))
                .unwrap()
                .get_connection()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(stored.len(), 1, "the child wrote on the master");
}

async fn from_the_environment() {
    let cache = Cache::builder().from_env().build().await.unwrap();
    cache.set("from-env", &42_u64, MINUTE).await.unwrap();
    let value = cache.get::<u64>("from-env").await.unwrap().unwrap();
    assert_eq!(cache.stats().errors, 0);
    println!("value={value}");
}

/// What the invalidating tasks and the local tier's reader saw.
#[derive(Default)]
struct Seen {
    invalidations: AtomicU64,
    failed_invalidations: AtomicU64,
    /// Reads of the probe by the tiered cache after the switch, and the stale ones.
    probe_reads: AtomicU64,
    stale: AtomicU64,
}

/// Which data node the sentinels name the master, asked like a client would.
async fn named_master(sentinel: &mut redis::aio::MultiplexedConnection) -> Option<u16> {
    let reply: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(MASTER_NAME)
        .query_async(sentinel)
        .await
        .ok()?;
    reply.map(|(_, port)| port)
}

/// Sets up the probe: "before" on the master and in the tier, "after" on
/// the replicas only (copied there directly): the new master will hold
/// "after", and a tier that kept its copy across the switch would serve
/// "before".
async fn diverge(topology: &RedisSentinel, app: &App, tiered: &Cache) -> String {
    let old = topology.master_port();
    app.cache.set("probe-after", "after", MINUTE).await.unwrap();
    app.cache.set("probe", "before", MINUTE).await.unwrap();
    let after = raw_get(old, &app.cache.key_for("probe-after"))
        .await
        .unwrap();
    let stored = app.cache.key_for("probe");
    let local_hits = tiered.stats().local_hits;
    eventually("the tier holds the probe", async || {
        let read = tiered.get::<String>("probe").await.unwrap();
        assert_eq!(read.as_deref(), Some("before"));
        tiered.stats().local_hits > local_hits
    })
    .await;
    for node in topology.nodes.iter().filter(|n| n.port() != old) {
        eventually("the replica holds the probe", async || {
            raw_get(node.port(), &stored).await.is_some()
        })
        .await;
        RedisSentinel::node_cli(node.port(), &["CONFIG", "SET", "replica-read-only", "no"]);
        let () = redis::cmd("SET")
            .arg(&stored)
            .arg(&after)
            .query_async(&mut RedisSentinel::connect(node.port()).await)
            .await
            .unwrap();
    }
    stored
}

/// The tasks under load: 16 calling, 4 invalidating, 1 reading the probe
/// through the local tier (counting stale reads once `switched` is set).
struct Load {
    stop: Arc<AtomicBool>,
    switched: Arc<AtomicBool>,
    seen: Arc<Seen>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(app: &Arc<App>, tiered: &Cache) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let switched = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Seen::default());
        let mut tasks = app::load(app, 16, &stop);
        for task in 0..4_u64 {
            let (app, stop, seen) = (Arc::clone(app), Arc::clone(&stop), Arc::clone(&seen));
            tasks.push(tokio::spawn(async move {
                let mut id = task;
                while !stop.load(SeqCst) {
                    match app.cache.invalidate(&format!("item:{}", id % 50)).await {
                        Ok(_) => seen.invalidations.fetch_add(1, SeqCst),
                        Err(_) => seen.failed_invalidations.fetch_add(1, SeqCst),
                    };
                    id += 3;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }));
        }
        {
            let (tiered, stop, switched, seen) = (
                tiered.clone(),
                Arc::clone(&stop),
                Arc::clone(&switched),
                Arc::clone(&seen),
            );
            tasks.push(tokio::spawn(async move {
                while !stop.load(SeqCst) {
                    let after_switch = switched.load(SeqCst);
                    let read = tiered.get::<String>("probe").await.unwrap();
                    if after_switch {
                        seen.probe_reads.fetch_add(1, SeqCst);
                        if read.as_deref() == Some("before") {
                            seen.stale.fetch_add(1, SeqCst);
                        }
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        Self {
            stop,
            switched,
            seen,
            tasks,
        }
    }

    async fn stop(self) -> Arc<Seen> {
        self.stop.store(true, SeqCst);
        for task in self.tasks {
            task.await.unwrap();
        }
        self.seen
    }
}

/// The master is killed (SIGKILL) under 16 tasks of cached calls and 4 of
/// invalidations, while a cache with a local tier reads the probe.
async fn a_killed_master_is_replaced_under_load(topology: &mut RedisSentinel) {
    let old = topology.master_port();
    let app = App::new(on(topology).build().await.unwrap());
    let tiered = on(topology).local_tier(1 << 20).build().await.unwrap();
    eventually("the local tier tracks the master", async || {
        tiered.health().tracking.is_some_and(|t| t.up)
    })
    .await;
    diverge(topology, &app, &tiered).await;
    let load = Load::start(&app, &tiered);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls_before = app.calls.load(SeqCst);
    let mut sentinel = redis::Client::open(topology.urls()[1].as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    let killed = Instant::now();
    topology.node(old).stop();
    let mut named = None;
    eventually("the sentinels name a new master", async || {
        named = named_master(&mut sentinel)
            .await
            .filter(|&port| port != old);
        named.is_some()
    })
    .await;
    let new = named.unwrap();
    let failover = killed.elapsed();
    let mut canary = 0_u64;
    eventually("writes reach the new master", async || {
        canary += 1;
        app.cache.set("canary", &canary, MINUTE).await.unwrap();
        raw_get(new, &app.cache.key_for("canary")).await.is_some()
    })
    .await;
    let writes = killed.elapsed();
    load.switched.store(true, SeqCst);
    // Its own count of computations: the load computes too.
    let checker = App::new(app.cache.clone());
    let mut id = 1_000;
    eventually("hits resume on the new master", async || {
        id += 1;
        // The first call computes and stores; the second is a hit once writes land.
        app::is_hit(&checker, id).await;
        app::is_hit(&checker, id).await
    })
    .await;
    let hits = killed.elapsed();
    let local_before = tiered.stats().local_hits;
    eventually("the tier serves the new master's probe", async || {
        tiered.stats().local_hits > local_before
    })
    .await;
    let seen = load.stop().await;
    let calls = app.calls.load(SeqCst);
    eprintln!(
        "sentinel failover: {} calls, {} of them after the kill; {} hung, {} wrong, slowest call {} ms; \
         {} invalidations ({} failed); sentinels named the new master {} ms after the kill, \
         writes reached it at {} ms, hits resumed at {} ms; {} probe reads from the local tier \
         after the switch, {} stale; cache stats {:?}",
        calls,
        calls - calls_before,
        app.hung.load(SeqCst),
        app.wrong.load(SeqCst),
        app.slowest_ms.load(SeqCst),
        seen.invalidations.load(SeqCst),
        seen.failed_invalidations.load(SeqCst),
        failover.as_millis(),
        writes.as_millis(),
        hits.as_millis(),
        seen.probe_reads.load(SeqCst),
        seen.stale.load(SeqCst),
        app.cache.stats(),
    );
    assert_eq!(app.hung.load(SeqCst), 0, "no call hung");
    assert_eq!(app.wrong.load(SeqCst), 0, "no wrong value");
    assert_eq!(
        seen.failed_invalidations.load(SeqCst),
        0,
        "no invalidation failed"
    );
    assert_eq!(
        seen.stale.load(SeqCst),
        0,
        "no stale read from the local tier"
    );
    assert!(seen.probe_reads.load(SeqCst) > 0);

    the_old_master_comes_back_as_a_replica(topology, old, new, &app).await;
}

/// The old master restarts (empty, as a master): the sentinels make it a
/// replica of the new one, and nothing of the cache connects to it.
async fn the_old_master_comes_back_as_a_replica(
    topology: &mut RedisSentinel,
    old: u16,
    new: u16,
    app: &Arc<App>,
) {
    topology.node(old).restart();
    eventually("the old master is made a replica", async || {
        RedisSentinel::node_cli(old, &["ROLE"]).starts_with("slave")
            && RedisSentinel::node_cli(old, &["INFO", "replication"])
                .contains("master_link_status:up")
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = app::load(app, 16, &stop);
    let calls = app.calls.load(SeqCst);
    eventually("1 000 more calls", async || {
        app.calls.load(SeqCst) > calls + 1_000
    })
    .await;
    stop.store(true, SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    let others = clients_of(old);
    assert!(
        others.is_empty(),
        "only the sentinels reach the old master: {others:?}"
    );
    let errors = RedisSentinel::node_cli(old, &["INFO", "errorstats"]);
    assert!(
        !errors.contains("READONLY"),
        "nothing wrote to it: {errors}"
    );
    assert!(
        raw_get(new, &app.cache.key_for("canary")).await.is_some(),
        "the cache's entries are on the new master"
    );
    assert_eq!(app.wrong.load(SeqCst), 0);
    assert_eq!(app.hung.load(SeqCst), 0);
}

/// Settings that cannot work are errors at build, and say why.
#[tokio::test]
async fn bad_settings_are_clear_errors() {
    let no_sentinel = Cache::builder()
        .redis_sentinel(Vec::<String>::new(), "mymaster")
        .build()
        .await
        .unwrap_err();
    assert!(
        no_sentinel.to_string().contains("at least one sentinel"),
        "{no_sentinel}"
    );
    let no_master = Cache::builder()
        .redis_sentinel(["redis://127.0.0.1:26379"], "")
        .build()
        .await
        .unwrap_err();
    assert!(
        no_master.to_string().contains("REDIS_SENTINEL_MASTER"),
        "{no_master}"
    );
    let with_port = Cache::builder()
        .redis_sentinel(["redis://127.0.0.1:26379"], "redis://:pw@10.0.0.1:6379")
        .build()
        .await
        .unwrap_err();
    assert!(
        with_port.to_string().contains("master's name"),
        "{with_port}"
    );
    assert!(
        !with_port.to_string().contains("pw"),
        "the password is not shown"
    );
    let port = support::free_port();
    let nobody = Cache::builder()
        .redis_sentinel([format!("redis://127.0.0.1:{port}")], "mymaster")
        .fail_open(false)
        .build()
        .await
        .unwrap_err();
    assert!(nobody.to_string().contains("no sentinel named"), "{nobody}");
}

/// The clients connected to the data node on `port` other than the
/// sentinels, its link to its master (`flags=M`) and the `CLIENT LIST` asking.
fn clients_of(port: u16) -> Vec<String> {
    RedisSentinel::node_cli(port, &["CLIENT", "LIST"])
        .lines()
        .filter(|line| {
            !line.contains("name=sentinel-")
                && !line.contains(" flags=M ")
                && !line.contains("cmd=client|list")
        })
        .map(str::to_owned)
        .collect()
}

/// `SENTINEL FAILOVER` under load: the master is demoted while alive (its
/// connections answer writes with `READONLY`), a replica promoted. Every
/// connection of the cache, the local tier's tracking one too, moves.
async fn a_demoted_master_is_left(topology: &RedisSentinel) {
    let old = topology.master_port();
    let app = App::new(on(topology).build().await.unwrap());
    let tiered = on(topology).local_tier(1 << 20).build().await.unwrap();
    eventually("the local tier tracks the master", async || {
        tiered.health().tracking.is_some_and(|t| t.up)
    })
    .await;
    let tracking = |port| {
        clients_of(port)
            .iter()
            .filter(|line| line.contains(" flags=t"))
            .count()
    };
    // (The tiers of the cases before stop tracking within a second.)
    eventually("only this tier tracks the master", async || {
        tracking(old) == 1
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = app::load(&app, 16, &stop);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    topology.sentinels[0].cli(&["SENTINEL", "FAILOVER", MASTER_NAME]);
    let mut named = None;
    eventually("a replica is promoted", async || {
        named = Some(topology.master_port()).filter(|&port| port != old);
        named.is_some()
    })
    .await;
    let new = named.unwrap();
    let promoted = asked.elapsed();
    let mut canary = 0_u64;
    eventually("writes reach the new master", async || {
        canary += 1;
        let key = format!("canary-{canary}");
        app.cache.set(&key, &canary, MINUTE).await.unwrap();
        raw_get(new, &app.cache.key_for(&key)).await.is_some()
    })
    .await;
    let writes = asked.elapsed();
    eventually("the old master is demoted", async || {
        RedisSentinel::node_cli(old, &["ROLE"]).starts_with("slave")
    })
    .await;
    eventually("the tier tracks the new master", async || {
        tracking(new) == 1 && tiered.health().tracking.is_some_and(|t| t.up)
    })
    .await;
    stop.store(true, SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    eventually(
        "nothing of the caches is left on the old master",
        async || clients_of(old).is_empty(),
    )
    .await;
    tiered.set("after", &1_u64, MINUTE).await.unwrap();
    app.cache.set("after", &2_u64, MINUTE).await.unwrap();
    eventually("the tier hears of the new master's writes", async || {
        tiered.get::<u64>("after").await.unwrap() == Some(2)
    })
    .await;
    eprintln!(
        "manual failover: the sentinels named the new master {} ms after SENTINEL FAILOVER, \
         writes reached it at {} ms ({} writes tried); {} calls, {} hung, {} wrong, slowest {} ms; {:?}",
        promoted.as_millis(),
        writes.as_millis(),
        canary,
        app.calls.load(SeqCst),
        app.hung.load(SeqCst),
        app.wrong.load(SeqCst),
        app.slowest_ms.load(SeqCst),
        app.cache.stats()
    );
    assert_eq!(app.hung.load(SeqCst), 0);
    assert_eq!(app.wrong.load(SeqCst), 0);
}
