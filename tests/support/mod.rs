//! Test support: a real `redis-server` per test, on a free loopback port.
//! Shared by the tests (`tests/`), the web crate's tests and the load bench.
// Test support: its items are documented where a name does not say it all, and
// a panic is how it fails the test that called it.
#![allow(missing_docs, clippy::missing_panics_doc, clippy::must_use_candidate)]

pub mod app;
pub mod proxy;
pub mod sentinel;
pub mod store;

pub use proxy::Proxy;
pub use sentinel::RedisSentinel;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs each listed test on every store: `test(memory().await)` in `mod
/// on_memory` and `test(redis().await)` in `mod on_redis`, where `memory`
/// and `redis` are the fixture functions named first. With a third
/// fixture, `mod on_cluster` runs every test on one Redis Cluster started
/// for the whole test binary (one test, the cases in turn, the cluster
/// flushed between them): `test(cluster().await)`. With a fourth, `mod
/// on_local_tier` runs each test on Redis with a local tier in front.
///
/// With `sentinel: fixture` after them, `mod on_sentinel` runs every test
/// behind Redis Sentinel too (one master, two replicas, three sentinels
/// started for the whole test binary, the master flushed between cases):
/// `test(fixture().await)`, the fixture building its cache with
/// `support::sentinel::current().builder(..)`.
///
/// With `tracked: fixture` (after `sentinel:`, or alone: `on_every_store!(tracked:
/// fixture; tests)`), `mod on_tracked_versions` runs each test once more,
/// on a server of its own with the versions of namespaces and tags tracked
/// in process (`track_versions`). With `tracked: fixture, on_cluster:
/// cluster_fixture` after `sentinel:`, the cluster's one test also runs
/// every case on a cache of `cluster_fixture` (tracked versions on the
/// cluster), after the cases on `cluster`, on the same cluster.
#[macro_export]
macro_rules! on_every_store {
    ($memory:ident, $redis:ident, $cluster:ident, $tiered:ident, sentinel: $sentinel:ident, tracked: $tracked:ident, on_cluster: $tracked_cluster:ident; $($name:ident),* $(,)?) => {
        $crate::on_every_store!($memory, $redis; $($name),*);
        $crate::on_every_store!(@tiered $tiered; $($name),*);
        $crate::on_every_store!(@cluster [$cluster, $tracked_cluster] ($($name),*));
        $crate::on_every_store!(sentinel: $sentinel; $($name),*);
        $crate::on_every_store!(tracked: $tracked; $($name),*);
    };
    ($memory:ident, $redis:ident, $cluster:ident, $tiered:ident, sentinel: $sentinel:ident, tracked: $tracked:ident; $($name:ident),* $(,)?) => {
        $crate::on_every_store!($memory, $redis, $cluster, $tiered, sentinel: $sentinel; $($name),*);
        $crate::on_every_store!(tracked: $tracked; $($name),*);
    };
    ($memory:ident, $redis:ident, $cluster:ident, $tiered:ident, sentinel: $sentinel:ident; $($name:ident),* $(,)?) => {
        $crate::on_every_store!($memory, $redis, $cluster, $tiered; $($name),*);
        $crate::on_every_store!(sentinel: $sentinel; $($name),*);
    };
    ($memory:ident, $redis:ident, $cluster:ident, sentinel: $sentinel:ident; $($name:ident),* $(,)?) => {
        $crate::on_every_store!($memory, $redis, $cluster; $($name),*);
        $crate::on_every_store!(sentinel: $sentinel; $($name),*);
    };
    (tracked: $tracked:ident; $($name:ident),* $(,)?) => {
        mod on_tracked_versions {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::$tracked().await).await })*
        }
    };
    (sentinel: $sentinel:ident; $($name:ident),* $(,)?) => {
        mod on_sentinel {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn every_case_behind_sentinel() {
                let _session = $crate::sentinel::SentinelSession::start();
                $(
                    eprintln!("sentinel case: {}", stringify!($name));
                    $crate::sentinel::current().flush();
                    super::$name(super::$sentinel().await).await;
                )*
            }
        }
    };
    ($memory:ident, $redis:ident, $cluster:ident, $tiered:ident; $($name:ident),* $(,)?) => {
        $crate::on_every_store!($memory, $redis, $cluster; $($name),*);
        $crate::on_every_store!(@tiered $tiered; $($name),*);
    };
    (@tiered $tiered:ident; $($name:ident),* $(,)?) => {
        mod on_local_tier {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::$tiered().await).await })*
        }
    };
    ($memory:ident, $redis:ident, $cluster:ident; $($name:ident),* $(,)?) => {
        $crate::on_every_store!($memory, $redis; $($name),*);
        $crate::on_every_store!(@cluster [$cluster] ($($name),*));
    };
    // One test on one cluster: every case on each fixture in turn.
    (@cluster [$($fixture:ident),+] $names:tt) => {
        mod on_cluster {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn every_case_on_one_cluster() {
                let _session = $crate::ClusterSession::start();
                $($crate::on_every_store!(@cases $fixture $names);)+
            }
        }
    };
    (@cases $fixture:ident ($($name:ident),* $(,)?)) => {
        $(
            eprintln!("cluster case: {} ({})", stringify!($name), stringify!($fixture));
            $crate::current_cluster().flush();
            super::$name(super::$fixture().await).await;
        )*
    };
    ($memory:ident, $redis:ident; $($name:ident),* $(,)?) => {
        mod on_memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::$memory().await).await })*
        }
        mod on_redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::$redis().await).await })*
        }
    };
}

/// The program every test server runs: `$CACHETTE_TEST_REDIS_SERVER`, or
/// `redis-server` (set it to `valkey-server` to run the suite on Valkey).
pub fn server_program() -> String {
    std::env::var("CACHETTE_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// The command-line client the support and the tests run (cluster creation,
/// resharding): `$CACHETTE_TEST_REDIS_CLI`, or `redis-cli`.
pub fn cli_program() -> String {
    std::env::var("CACHETTE_TEST_REDIS_CLI").unwrap_or_else(|_| "redis-cli".to_owned())
}

/// How long a server may take to answer after it was started.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// A `redis-server` this test started, with persistence off, stopped when dropped.
pub struct RedisServer {
    port: u16,
    args: Vec<String>,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra command-line arguments (`--requirepass x`, ...).
    pub fn start_with(args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
        for _ in 0..5 {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("cachette-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create the server's directory");
            let mut server = Self {
                port,
                args: args.clone(),
                dir,
                child: None,
            };
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// `redis://127.0.0.1:{port}/{db}`.
    pub fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// A cache on database 0 of this server, with the default settings.
    pub async fn cache(&self) -> cachette::Cache {
        cachette::Cache::builder()
            .redis_url(self.url(0))
            .build()
            .await
            .expect("a cache on the test's server")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether this test's server process runs (it was not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (as a crash would) and waits for it to be gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn(),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    /// A direct connection to the server, to look at or tamper with what cachette stored.
    pub async fn connect(&self, db: u8) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url(db))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test's redis-server")
    }

    /// Sends one command (`["CLIENT", "PAUSE", "500"]`) to the server,
    /// panicking on an error reply: a fault injected by the test.
    pub async fn command(&self, args: &[&str]) {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        let () = cmd
            .query_async(&mut self.connect(0).await)
            .await
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }

    /// Waits until this server, made a replica, is in sync with its master.
    pub async fn synced(&self) {
        eventually("the replica is in sync", async || {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut self.connect(0).await)
                .await
                .unwrap();
            info.contains("master_link_status:up")
        })
        .await;
    }

    /// The bytes at `key` in database 0, as another program would read them.
    #[allow(dead_code)] // not every test binary reads raw bytes
    pub async fn get_raw(&self, key: &str) -> Vec<u8> {
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.connect(0).await)
            .await
            .unwrap()
    }

    /// Writes `bytes` at `key` in database 0, as another program would.
    #[allow(dead_code)] // not every test binary writes raw bytes
    pub async fn set_raw(&self, key: &str, bytes: &[u8]) {
        let () = redis::cmd("SET")
            .arg(key)
            .arg(bytes)
            .query_async(&mut self.connect(0).await)
            .await
            .unwrap();
    }

    fn spawn(&mut self) -> bool {
        let child = Command::new(server_program())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "{} is not installed: install redis-server (Debian: apt-get install redis-server) or run scripts/test, which does",
                server_program()
            ),
            Err(e) => panic!("cannot start {}: {e}", server_program()),
        };
        let deadline = Instant::now() + START_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false; // exited: most likely the port was taken meanwhile
            }
            if ping(self.port) {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three masters, each with a replica, on loopback.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    /// The password every node asks for, if any.
    password: Option<String>,
}

impl RedisCluster {
    /// Starts six nodes, joins them with `redis-cli --cluster create`, and
    /// waits until every slot is served.
    pub fn start() -> Self {
        Self::start_with_password(None)
    }

    /// [`start`](Self::start), every node asking for `password`.
    pub fn start_with_password(password: Option<&str>) -> Self {
        let mut args = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            "1000",
            // Replicas sync at once (by default they wait 5 s for
            // company), so that a failover finds one ready.
            "--repl-diskless-sync-delay",
            "0",
        ];
        if let Some(password) = password {
            args.extend(["--requirepass", password, "--masterauth", password]);
        }
        let nodes: Vec<RedisServer> = (0..6).map(|_| RedisServer::start_with(&args)).collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let created = Command::new(cli_program())
            .args(
                password
                    .map(|p| ["-a", p, "--no-auth-warning"])
                    .into_iter()
                    .flatten(),
            )
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("redis-cli is installed with redis-server");
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        let cluster = Self {
            nodes,
            password: password.map(str::to_owned),
        };
        cluster.wait_until_ok();
        cluster
    }

    /// Waits until every live node says `cluster_state:ok` with every slot
    /// served, and every live replica is in sync with its master.
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ok = self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                let info = self.cli(n.port(), &["CLUSTER", "INFO"]);
                let replication = self.cli(n.port(), &["INFO", "replication"]);
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && (replication.contains("role:master")
                        || replication.contains("master_link_status:up"))
            });
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the cluster never served every slot");
    }

    /// `redis://[:password@]127.0.0.1:{port}` of every node, as seeds.
    pub fn seeds(&self) -> Vec<String> {
        let auth = self
            .password
            .as_deref()
            .map_or(String::new(), |p| format!(":{p}@"));
        self.nodes
            .iter()
            .map(|n| format!("redis://{auth}127.0.0.1:{}", n.port()))
            .collect()
    }

    /// What `redis-cli -p port args…` printed, with the cluster's password.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        match &self.password {
            Some(password) => {
                let mut with_auth = vec!["-a", password.as_str(), "--no-auth-warning"];
                with_auth.extend_from_slice(args);
                cli(port, &with_auth)
            }
            None => cli(port, args),
        }
    }

    /// The ports of the nodes that are masters now.
    pub fn master_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .filter(|n| self.cli(n.port(), &["ROLE"]).starts_with("master"))
            .map(RedisServer::port)
            .collect()
    }

    /// Empties every master (and so its replica).
    pub fn flush(&self) {
        for port in self.master_ports() {
            self.cli(port, &["FLUSHALL"]);
        }
    }

    /// A direct connection to the cluster, to look at or tamper with what cachette stored.
    pub async fn connect(&self) -> redis::cluster_async::ClusterConnection {
        redis::cluster::ClusterClient::new(self.seeds())
            .unwrap()
            .get_async_connection()
            .await
            .expect("connect to the test's cluster")
    }
}

/// What `redis-cli -p port args…` printed.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new(cli_program())
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli is installed with redis-server");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static CLUSTER: std::sync::Mutex<Option<std::sync::Arc<RedisCluster>>> =
    std::sync::Mutex::new(None);

/// The cluster of this test binary, for the length of one suite: stopped
/// when the session ends, even when a case panics.
pub struct ClusterSession;

impl ClusterSession {
    pub fn start() -> Self {
        let cluster = std::sync::Arc::new(RedisCluster::start());
        *CLUSTER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cluster);
        Self
    }
}

impl Drop for ClusterSession {
    fn drop(&mut self) {
        CLUSTER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

/// The cluster of the running [`ClusterSession`].
pub fn current_cluster() -> std::sync::Arc<RedisCluster> {
    CLUSTER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
        .expect("a cluster session is running")
}

/// Calls of each command since the last `CONFIG RESETSTAT`, from `INFO
/// commandstats` on `conn`, as `(name, calls)`: `("get", 3)`,
/// `("config|resetstat", 1)`, … (the `INFO` itself is counted after it answers).
pub async fn command_calls(conn: &mut impl redis::aio::ConnectionLike) -> Vec<(String, u64)> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO commandstats");
    parse_command_calls(&info)
}

/// [`command_calls`] from the text of `INFO commandstats`, as `redis-cli` prints it.
pub fn parse_command_calls(info: &str) -> Vec<(String, u64)> {
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(":calls=")?;
            let calls = rest.split(',').next()?.parse().ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// The row at `"row"` in `scope` through `cache`, computed from `source`
/// on a miss: what the invalidation suites read.
pub async fn row(
    cache: &cachette::Cache,
    scope: &cachette::Scope,
    source: &std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> u64 {
    let source = std::sync::Arc::clone(source);
    let compute = || async move { source.load(std::sync::atomic::Ordering::SeqCst) };
    cache
        .get_or_set_in("row", compute, Duration::from_secs(60), scope)
        .await
        .unwrap()
}

/// Polls `done` until it holds, for at most 20 s, then fails with `what`:
/// for effects no caller awaits (background work, recovery).
pub async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    // Any reply (`+PONG`, or `-NOAUTH` from a server with a password) means it is up.
    let mut reply = [0; 1];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && matches!(&reply, b"+" | b"-")
}
