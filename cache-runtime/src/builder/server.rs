//! The builder's settings of Redis itself: its connections, deadlines and
//! circuit breaker, the invalidations it has not taken yet and their
//! replication, and what this process keeps of it (a local tier, tracked
//! versions).

use std::time::Duration;

use super::CacheBuilder;

impl CacheBuilder {
    /// Keeps the hot entries of Redis in this process too, in up to
    /// `max_bytes`: a hit there sends no command at all, even with a
    /// namespace and tags. Redis tells this process of every key another
    /// process (or this one) changes, through `CLIENT TRACKING` on a
    /// dedicated connection (one per master on a cluster), and the local
    /// copy goes at once; once tracking is lost, the local tier is emptied
    /// and bypassed until it is back. An entry heavier than a sixteenth of `max_bytes` is not
    /// kept locally. With the memory backend it has nothing to add and is
    /// ignored.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let builder = cachette::Cache::builder()
    ///     .redis_url("redis://127.0.0.1:6379/0")
    ///     .local_tier(64 << 20);
    /// # drop(builder);
    /// ```
    pub fn local_tier(mut self, max_bytes: u64) -> Self {
        self.local = Some(max_bytes);
        self
    }

    /// The longest an entry stays in the local tier (default: until Redis
    /// says it changed, or evicted). It needs
    /// [`local_tier`](Self::local_tier): without one, building fails with
    /// [`Error::Config`](crate::Error::Config).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let builder = cachette::Cache::builder()
    ///     .redis_url("redis://127.0.0.1:6379/0")
    ///     .local_tier(64 << 20)
    ///     .local_lifetime(std::time::Duration::from_secs(30));
    /// # drop(builder);
    /// ```
    pub fn local_lifetime(mut self, lifetime: Duration) -> Self {
        self.local_lifetime = Some(lifetime);
        self
    }

    /// Tracks the versions of the namespaces and tags this process uses in
    /// memory, so that a hit in a namespace or with tags is one `GET` of its
    /// entry, like a plain hit, instead of an `MGET` of the entry and its
    /// version keys. The versions are kept coherent by Redis: `CLIENT
    /// TRACKING ON BCAST` on the cache's version keys (`{prefix}#`), on a
    /// connection of its own (one per master on a cluster), tells this
    /// process of every bump, whoever made it.
    ///
    /// The trade-off: another process's invalidation of a namespace or tag
    /// reaches this process when Redis tells it (the tracking delay: under
    /// a millisecond at the median on loopback, a few at the most), not before that
    /// invalidation returns; this process's own invalidations apply to its
    /// reads at once, and single keys' invalidations are unaffected. Until
    /// tracking is confirmed, and whenever its connection is lost, the
    /// versions are read from Redis with every hit, as without it (never a
    /// guess).
    ///
    /// Off by default (strict: every tagged hit reads the versions from
    /// Redis, on one server and on a cluster); always on with a
    /// [`local_tier`](Self::local_tier), which tracks versions with the
    /// entries, so `track_versions(false)` with a local tier fails to
    /// build with [`Error::Config`](crate::Error::Config). Redis 6 or later, as for the tier.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let builder = cachette::Cache::builder()
    ///     .redis_url("redis://127.0.0.1:6379/0")
    ///     .track_versions(true);
    /// # drop(builder);
    /// ```
    pub fn track_versions(mut self, on: bool) -> Self {
        self.track_versions = Some(on);
        self
    }

    /// How many Redis connections carry the cache's commands (default 2),
    /// opened once and held: there is no checkout per call. Each is
    /// multiplexed, so concurrent commands pipeline on it; more connections
    /// thin that pipelining. A dropped connection is replaced on the next
    /// command. (A local tier, and each master of a cluster, add one
    /// tracking connection of their own.)
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let builder = cachette::Cache::builder()
    ///     .redis_url("redis://127.0.0.1:6379/0")
    ///     .connections(4);
    /// # drop(builder);
    /// ```
    pub fn connections(mut self, connections: usize) -> Self {
        self.redis.connections = connections;
        self
    }

    /// The deadline to open a Redis connection (default 250 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.redis.connect_timeout = timeout;
        self
    }

    /// The deadline of each Redis command (default 250 ms).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.redis.command_timeout = timeout;
        self
    }

    /// Trusts this certificate authority (PEM) for `rediss://` URLs instead
    /// of the system's roots: for a Redis whose certificate a private CA
    /// signed. The certificate and the host name are still verified.
    ///
    /// ```no_run
    /// # extern crate cachette_runtime as cachette;
    /// # async fn run() -> Result<(), cachette::Error> {
    /// let ca = std::fs::read("/etc/redis/ca.crt").expect("the CA certificate");
    /// let cache = cachette::Cache::builder()
    ///     .redis_url("rediss://cachette:secret@redis.internal:6380/0")
    ///     .tls_root_certificate(ca)
    ///     .build()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.redis.tls_root = Some(crate::backend::server::Pem(pem.into()));
        self
    }

    /// How many invalidations Redis did not take are kept for a retry
    /// (default 200 000; 100 000 of them took 23–28 MB in three runs of
    /// `tests/invalidations.rs`, keys of 25 bytes). Each waits in
    /// this process, one per key, namespace or tag, and is retried until
    /// Redis takes it; meanwhile this process reads as if it had landed.
    /// Past the bound, the cache's entries are cleared instead once Redis
    /// answers (`SCAN` and `UNLINK` of the prefix), and until then no entry
    /// is served from Redis. See [`Cache::invalidate`](crate::Cache::invalidate).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let builder = cachette::Cache::builder().max_pending_invalidations(10_000);
    /// # drop(builder);
    /// ```
    pub fn max_pending_invalidations(mut self, bound: usize) -> Self {
        self.redis.pending_invalidations = bound;
        self
    }

    /// Replicated invalidations: an invalidation counts as applied only once
    /// `replicas` replicas of the master took it, so that a failover (the
    /// master lost before it replicated the write; Redis replicates after it
    /// answers) does not bring back what it invalidated. After each
    /// invalidation's write, a `WAIT replicas wait` on the same connection;
    /// fewer replicas within `wait` and the invalidation is
    /// [queued](crate::Invalidated::is_queued): this process serves nothing
    /// it invalidated meanwhile, and it is sent again (to the new master,
    /// after a failover) until enough replicas take it. So with fewer
    /// replicas connected than `replicas`, invalidations wait.
    ///
    /// The cost: one more round trip per invalidation (the `WAIT`, a
    /// fraction of a millisecond when the replicas keep up), none per hit.
    /// Invalidations travel on a connection of their own, so that a `WAIT`
    /// never holds up other commands. Off by default (0 replicas); it has
    /// no effect on the memory store. On a cluster, the `WAIT` goes to the
    /// master of the invalidated key.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// use std::time::Duration;
    ///
    /// let builder = cachette::Cache::builder()
    ///     .redis_url("redis://127.0.0.1:6379/0")
    ///     .replicated_invalidations(1, Duration::from_millis(200));
    /// # drop(builder);
    /// ```
    pub fn replicated_invalidations(mut self, replicas: usize, wait: Duration) -> Self {
        self.redis.replicas = (replicas > 0).then_some((replicas, wait));
        self
    }

    /// The circuit breaker: after `failures` backend failures in a row
    /// (timeouts, refused or broken connections; 0 turns it off), calls skip
    /// Redis for `cool_down` — they are misses that cost nothing — then one
    /// call probes it, and the circuit closes when Redis answers. On a
    /// cluster each master has a circuit of its own, for the keys of its
    /// slots. Default: 5 failures, 1 s. See [`Cache::health`](crate::Cache::health).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// use std::time::Duration;
    ///
    /// let builder = cachette::Cache::builder().circuit_breaker(3, Duration::from_secs(5));
    /// ```
    pub fn circuit_breaker(mut self, failures: u32, cool_down: Duration) -> Self {
        self.redis.breaker_failures = failures;
        self.redis.breaker_cool_down = cool_down;
        self
    }
}
