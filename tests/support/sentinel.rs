//! Redis Sentinel on loopback: one master, two replicas and three sentinels.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::{RedisServer, START_DEADLINE, cli, free_port, ping};

/// The master's name, as the sentinels know it.
pub const MASTER_NAME: &str = "cachette";

/// The data nodes' password (the sentinels know it too, to watch them).
pub const DATA_PASSWORD: &str = "data-secret";

/// The sentinels' own password: not the data nodes'.
pub const SENTINEL_PASSWORD: &str = "sentinel-secret";

/// How long a sentinel waits before it calls a silent master down.
pub const DOWN_AFTER_MS: u64 = 500;

/// One master, two replicas and three sentinels (quorum 2) watching them,
/// with a short `down-after-milliseconds`: a killed master is replaced in
/// a few seconds.
pub struct RedisSentinel {
    /// The data nodes; the first one is the master at start.
    pub nodes: Vec<RedisServer>,
    pub sentinels: Vec<SentinelProcess>,
}

/// One `redis-server --sentinel` process, stopped when dropped.
pub struct SentinelProcess {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl SentinelProcess {
    fn start(master_port: u16) -> Self {
        for _ in 0..5 {
            let port = free_port();
            let dir = std::env::temp_dir()
                .join(format!("cachette-sentinel-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create the sentinel's directory");
            let conf = dir.join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     requirepass {SENTINEL_PASSWORD}\n\
                     sentinel sentinel-pass {SENTINEL_PASSWORD}\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                     sentinel auth-pass {MASTER_NAME} {DATA_PASSWORD}\n\
                     sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
                     sentinel failover-timeout {MASTER_NAME} 2000\n\
                     sentinel parallel-syncs {MASTER_NAME} 2\n",
                    dir.display()
                ),
            )
            .expect("write the sentinel's configuration");
            let child = Command::new(crate::server_program())
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed");
            let mut sentinel = Self {
                port,
                dir,
                child: Some(child),
            };
            let deadline = Instant::now() + START_DEADLINE;
            while Instant::now() < deadline {
                if ping(port) {
                    return sentinel;
                }
                if let Some(child) = sentinel.child.as_mut()
                    && let Ok(Some(_)) = child.try_wait()
                {
                    break; // exited: most likely the port was taken meanwhile
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            sentinel.stop();
        }
        panic!("redis-server --sentinel did not start on any of 5 free ports");
    }

    /// `redis://:{SENTINEL_PASSWORD}@127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://:{SENTINEL_PASSWORD}@127.0.0.1:{}", self.port)
    }

    /// What `redis-cli` printed for `args`, sent to this sentinel.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut with_auth = vec!["-a", SENTINEL_PASSWORD, "--no-auth-warning"];
        with_auth.extend_from_slice(args);
        cli(self.port, &with_auth)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl RedisSentinel {
    /// Starts the master, its two replicas (in sync) and three sentinels,
    /// and waits until every sentinel knows both replicas and the others.
    pub fn start() -> Self {
        let sync_at_once = [
            "--repl-diskless-sync-delay",
            "0",
            "--requirepass",
            DATA_PASSWORD,
            "--masterauth",
            DATA_PASSWORD,
        ];
        let master = RedisServer::start_with(&sync_at_once);
        let replica_of = master.port().to_string();
        let mut args = vec!["--replicaof", "127.0.0.1", replica_of.as_str()];
        args.extend(sync_at_once);
        let mut nodes = vec![master];
        nodes.extend((0..2).map(|_| RedisServer::start_with(&args)));
        let sentinels = (0..3)
            .map(|_| SentinelProcess::start(nodes[0].port()))
            .collect();
        let topology = Self { nodes, sentinels };
        topology.wait_until_watched();
        topology
    }

    /// The sentinels' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.sentinels.iter().map(SentinelProcess::url).collect()
    }

    /// Waits until every sentinel knows the master, both replicas in sync
    /// and the two other sentinels: a failover can then happen.
    pub fn wait_until_watched(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ready = self.sentinels.iter().all(|s| {
                let master = s.cli(&["SENTINEL", "MASTER", MASTER_NAME]);
                let replicas = s.cli(&["SENTINEL", "REPLICAS", MASTER_NAME]);
                field(&master, "num-slaves") == ["2"]
                    && field(&master, "num-other-sentinels") == ["2"]
                    && field(&replicas, "master-link-status") == ["ok", "ok"]
                    && field(&replicas, "flags") == ["slave", "slave"]
            });
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the sentinels never watched both replicas together");
    }

    /// The port of the master, as the first sentinel names it.
    pub fn master_port(&self) -> u16 {
        let reply = self.sentinels[0].cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME]);
        reply
            .lines()
            .nth(1)
            .and_then(|port| port.trim().parse().ok())
            .expect("the sentinel names a master")
    }

    /// The data node on `port`.
    pub fn node(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .expect("a data node of this topology")
    }

    /// The master as the cache names it: a URL whose host is the master's
    /// name, with the data nodes' password.
    pub fn master(&self) -> String {
        format!("redis://:{DATA_PASSWORD}@{MASTER_NAME}/0")
    }

    /// `builder` on the master these sentinels name, in database `db`.
    pub fn builder(&self, builder: cachette::CacheBuilder, db: u8) -> cachette::CacheBuilder {
        builder.redis_sentinel(
            self.urls(),
            format!("redis://:{DATA_PASSWORD}@{MASTER_NAME}/{db}"),
        )
    }

    /// `redis://:{DATA_PASSWORD}@127.0.0.1:{port}/0`: one data node.
    pub fn node_url(port: u16) -> String {
        format!("redis://:{DATA_PASSWORD}@127.0.0.1:{port}/0")
    }

    /// A direct connection to the data node on `port`.
    pub async fn connect(port: u16) -> redis::aio::MultiplexedConnection {
        redis::Client::open(Self::node_url(port))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to a data node")
    }

    /// What `redis-cli` printed for `args`, sent to the data node on `port`.
    pub fn node_cli(port: u16, args: &[&str]) -> String {
        let mut with_auth = vec!["-a", DATA_PASSWORD, "--no-auth-warning"];
        with_auth.extend_from_slice(args);
        cli(port, &with_auth)
    }

    /// Empties the master (and so its replicas).
    pub fn flush(&self) {
        Self::node_cli(self.master_port(), &["FLUSHALL"]);
    }
}

/// The values of `name` in what `redis-cli` printed of a map or of maps.
fn field<'a>(printed: &'a str, name: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = printed.lines().collect();
    lines
        .windows(2)
        .filter(|pair| pair[0] == name)
        .map(|pair| pair[1])
        .collect()
}

static SESSION: Mutex<Option<Arc<RedisSentinel>>> = Mutex::new(None);

/// The topology of this test binary, for the length of one suite: stopped
/// when the session ends, even when a case panics.
pub struct SentinelSession;

impl SentinelSession {
    pub fn start() -> Self {
        let topology = Arc::new(RedisSentinel::start());
        *SESSION.lock().unwrap_or_else(PoisonError::into_inner) = Some(topology);
        Self
    }
}

impl Drop for SentinelSession {
    fn drop(&mut self) {
        SESSION
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// The topology of the running [`SentinelSession`].
pub fn current() -> Arc<RedisSentinel> {
    SESSION
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .expect("a Sentinel session is running")
}
