//! The circuit breakers in front of Redis, one per node: the one server
//! (or the Sentinel master), or each master of a cluster.
//!
//! After `threshold` failures in a row of one node (timeouts, refused or
//! broken connections, replies saying it cannot serve), that node's circuit
//! *opens*: calls to it skip Redis for `cool_down` and are misses that cost
//! nothing. Then one call goes through as a *probe*: if the node answers,
//! the circuit closes; if not, it stays open for another `cool_down`. Only
//! a probe closes a circuit: a call admitted before it opened that succeeds
//! afterwards does not. Each change of state is logged once.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::info::ServerInfo;
use crate::clock::Monotonic;

/// The state of a cache's circuit breakers, and of its local tier's
/// tracking when it has one, from [`Cache::health`](crate::Cache::health).
///
/// Redis has a breaker per node: the one server (or the Sentinel master), or
/// each master of a cluster, so that calls on a failing master's slots skip
/// it while the other masters go on serving theirs. `Health` sums them up:
/// the worst node's circuit, and how many nodes' circuits are not closed.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// let health = cachette::Cache::memory().health();
/// assert_eq!(health.circuit, cachette::Circuit::Closed);
/// assert!(health.is_up());
/// assert_eq!(health.tracking, None); // no local tier
/// assert_eq!(health.server, None); // not on Redis
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// Whether calls go to the backend: the worst node's circuit (open
    /// before half open before closed; of several open, the soonest probe).
    pub circuit: Circuit,
    /// Failures in a row up to now, on the node that has the most (0 after
    /// any success while its circuit is closed, and after a successful probe).
    pub consecutive_failures: u32,
    /// How many times a circuit has opened since the cache was built, all
    /// nodes together.
    pub times_opened: u64,
    /// How many nodes' circuits are not closed now (0 or 1 on one server).
    pub open_nodes: u32,
    /// With a local tier ([`CacheBuilder::local_tier`](crate::CacheBuilder::local_tier))
    /// or tracked versions ([`CacheBuilder::track_versions`](crate::CacheBuilder::track_versions)):
    /// whether its `CLIENT TRACKING` is up, and since when. While it is
    /// down the tier is empty and bypassed, and versions are read from
    /// Redis with every hit.
    pub tracking: Option<Tracking>,
    /// On Redis: which server it is and its version, read from `INFO server`
    /// once when the cache was built; `None` on memory, and when the server
    /// did not answer then (see [`ServerInfo`]).
    pub server: Option<ServerInfo>,
}

/// Whether the tracking of a local tier, or of tracked versions, is up
/// (see [`Health::tracking`]).
///
/// ```no_run
/// # extern crate cachette_runtime as cachette;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachette::Error> {
/// let cache = cachette::Cache::builder()
///     .redis_url("redis://127.0.0.1:6379/0")
///     .local_tier(64 << 20)
///     .build()
///     .await?;
/// if let Some(tracking) = cache.health().tracking {
///     let state = if tracking.up { "up" } else { "down" };
///     println!("tracking {state} for {:?}", tracking.since.elapsed());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tracking {
    /// Whether Redis tracks the tier's keys (or the versions) for it now, so
    /// that the tier serves hits (or the versions known here are used).
    pub up: bool,
    /// When tracking last went up or down (when the tier was built, if it never went up).
    pub since: std::time::Instant,
}

impl Health {
    /// A backend with nothing to break (memory), or one never set up
    /// (`Open` for good).
    pub(crate) fn fixed(circuit: Circuit) -> Self {
        Self {
            circuit,
            consecutive_failures: 0,
            times_opened: 0,
            open_nodes: u32::from(circuit != Circuit::Closed),
            tracking: None,
            server: None,
        }
    }

    /// Whether calls go to the backend (every node's circuit is closed).
    #[must_use]
    pub fn is_up(&self) -> bool {
        self.circuit == Circuit::Closed
    }
}

/// Whether calls go to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Circuit {
    /// Calls go to the backend.
    Closed,
    /// Calls skip the backend: they are misses (or errors without fail-open)
    /// until `retry_in` passes and one call probes the backend again.
    Open {
        /// When the next probe may go through.
        retry_in: Duration,
    },
    /// One call is probing the backend; the others still skip it.
    HalfOpen,
}

/// The breakers of a backend: one per node (the one server, or each master
/// of a cluster), so that one node's failure costs only its own keys.
/// Node 0 is the server, or on a cluster what no master is known for yet
/// (slots before the first look at the topology, commands without a key).
pub(crate) struct Breakers {
    nodes: Box<[Breaker]>,
    /// Each node's address, for the logs (index by index; "" while unused).
    names: Mutex<Vec<String>>,
    /// Nodes whose circuit is open now.
    open: AtomicU32,
    threshold: u32,
    cool_down: Duration,
    started: Monotonic,
}

/// The state of one node's circuit.
struct Breaker {
    failures: AtomicU32,
    /// 0 while closed; else 1 + when a probe may go through (ms since `started`).
    open_until_ms: AtomicU64,
    probing: AtomicBool,
    times_opened: AtomicU64,
}

/// Leave to call a node: as usual, or as the probe of its open circuit.
#[must_use = "a pass is settled by `succeeded` or `failed`"]
pub(crate) struct Pass<'a> {
    breakers: &'a Breakers,
    node: usize,
    probe: bool,
}

impl Breakers {
    /// `count` breakers (at least one), node 0 named `first`.
    pub(crate) fn new(count: usize, threshold: u32, cool_down: Duration, first: String) -> Self {
        Self {
            nodes: (0..count.max(1))
                .map(|_| Breaker {
                    failures: AtomicU32::new(0),
                    open_until_ms: AtomicU64::new(0),
                    probing: AtomicBool::new(false),
                    times_opened: AtomicU64::new(0),
                })
                .collect(),
            names: Mutex::new(vec![first]),
            open: AtomicU32::new(0),
            threshold,
            cool_down,
            started: Monotonic::start(),
        }
    }

    /// The node at `address`, given the next free breaker the first time
    /// (node 0 once every breaker is taken).
    pub(crate) fn node(&self, address: &str) -> usize {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = names.iter().position(|name| name == address) {
            return found;
        }
        if names.len() == self.nodes.len() {
            return 0;
        }
        names.push(address.to_owned());
        names.len() - 1
    }

    fn name(&self, node: usize) -> String {
        let names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        names.get(node).cloned().unwrap_or_default()
    }

    fn breaker(&self, node: usize) -> &Breaker {
        self.nodes.get(node).unwrap_or(&self.nodes[0])
    }

    /// Leave to call `node`, or how long until its next probe.
    pub(crate) fn admit(&self, node: usize) -> Result<Pass<'_>, Duration> {
        let node = if node < self.nodes.len() { node } else { 0 };
        let breaker = &self.nodes[node];
        let until = breaker.open_until_ms.load(SeqCst);
        let pass = |probe| Pass {
            breakers: self,
            node,
            probe,
        };
        if until == 0 {
            return Ok(pass(false));
        }
        let (now, until) = (self.now_ms(), until - 1);
        if now < until {
            return Err(Duration::from_millis(until - now));
        }
        if breaker
            .probing
            .compare_exchange(false, true, SeqCst, SeqCst)
            .is_ok()
        {
            Ok(pass(true))
        } else {
            Err(Duration::ZERO)
        }
    }

    /// The worst node's circuit (open before half open before closed; of
    /// open ones, the soonest probe), the most failures in a row on one
    /// node, the openings of all nodes, and how many are not closed.
    pub(crate) fn health(&self) -> Health {
        let mut health = Health::fixed(Circuit::Closed);
        let now = self.now_ms();
        for breaker in &self.nodes {
            let until = breaker.open_until_ms.load(SeqCst);
            let circuit = if until == 0 {
                Circuit::Closed
            } else if breaker.probing.load(SeqCst) {
                Circuit::HalfOpen
            } else {
                Circuit::Open {
                    retry_in: Duration::from_millis((until - 1).saturating_sub(now)),
                }
            };
            health.circuit = match (health.circuit, circuit) {
                (Circuit::Open { retry_in: a }, Circuit::Open { retry_in: b }) => {
                    Circuit::Open { retry_in: a.min(b) }
                }
                (worst @ Circuit::Open { .. }, _) | (_, worst @ Circuit::Open { .. }) => worst,
                (Circuit::HalfOpen, _) | (_, Circuit::HalfOpen) => Circuit::HalfOpen,
                (Circuit::Closed, Circuit::Closed) => Circuit::Closed,
            };
            if circuit != Circuit::Closed {
                health.open_nodes += 1;
            }
            health.consecutive_failures = health
                .consecutive_failures
                .max(breaker.failures.load(SeqCst));
            health.times_opened += breaker.times_opened.load(SeqCst);
        }
        health
    }

    fn now_ms(&self) -> u64 {
        self.started.now_ms()
    }

    /// `open_until_ms` for a circuit opening now.
    fn reopen_at(&self) -> u64 {
        let cool_down = crate::clock::millis(self.cool_down).min(u64::MAX / 2);
        self.now_ms().saturating_add(cool_down).saturating_add(1)
    }

    /// A probe of `node` succeeded: its circuit closes.
    fn close(&self, node: usize) {
        self.shut(node, "cache backend answers again; circuit closed");
    }

    /// Closes `node`'s circuit (saying `why` if it was open) and starts its
    /// count of failures again.
    fn shut(&self, node: usize, why: &'static str) {
        let breaker = self.breaker(node);
        breaker.failures.store(0, SeqCst);
        if breaker.open_until_ms.swap(0, SeqCst) != 0 {
            let open = self.open.fetch_sub(1, SeqCst).saturating_sub(1);
            tracing::info!(node = %self.name(node), "{why}");
            crate::observe::meters::circuit(false, open);
        }
    }

    /// `node` serves nothing any more (a cluster master whose slots went to
    /// a promoted replica): no call goes to it, so no probe would ever close
    /// its circuit, and its failures no longer say anything of the cache.
    /// Its circuit closes, its count starts again.
    pub(crate) fn retire(&self, node: usize) {
        self.shut(
            node,
            "cache backend node serves no slot any more; circuit closed",
        );
    }

    /// A call admitted as usual succeeded: the failures in a row start
    /// again from 0, but an open circuit stays open (the call may have been
    /// admitted before it opened): only a probe closes it.
    fn answered(&self, node: usize) {
        let breaker = self.breaker(node);
        // Loads first: on the hot path nothing changes, and nothing is written.
        if breaker.failures.load(SeqCst) != 0 && breaker.open_until_ms.load(SeqCst) == 0 {
            breaker.failures.store(0, SeqCst);
        }
    }

    /// Counts a failure of `node`; returns whether it opened its circuit.
    fn fail(&self, node: usize, probe: bool) -> bool {
        let breaker = self.breaker(node);
        let failures = breaker.failures.fetch_add(1, SeqCst).saturating_add(1);
        if probe {
            breaker.open_until_ms.store(self.reopen_at(), SeqCst);
            tracing::debug!(node = %self.name(node), "cache backend probe failed; circuit stays open");
            return false;
        }
        if self.threshold == 0 || failures < self.threshold {
            return false;
        }
        let opened = breaker
            .open_until_ms
            .compare_exchange(0, self.reopen_at(), SeqCst, SeqCst)
            .is_ok();
        if opened {
            breaker.times_opened.fetch_add(1, SeqCst);
            let open = self.open.fetch_add(1, SeqCst).saturating_add(1);
            crate::observe::meters::circuit(true, open);
            tracing::warn!(
                node = %self.name(node),
                failures,
                cool_down = ?self.cool_down,
                "cache backend failing; circuit open: calls to this node skip it until a probe succeeds"
            );
        }
        opened
    }
}

impl Pass<'_> {
    /// The node answered (an error reply that is not about the node's
    /// state counts: the server is there). Returns whether this probe closed
    /// the circuit.
    pub(crate) fn succeeded(self) -> bool {
        if self.probe {
            self.breakers.close(self.node);
        } else {
            self.breakers.answered(self.node);
        }
        self.settle()
    }

    /// The node failed or did not answer; returns whether its circuit opened now.
    pub(crate) fn failed(self) -> bool {
        let opened = self.breakers.fail(self.node, self.probe);
        self.settle();
        opened
    }

    /// The node this pass is for.
    pub(crate) fn node(&self) -> usize {
        self.node
    }

    /// Whether this pass probes an open circuit.
    pub(crate) fn is_probe(&self) -> bool {
        self.probe
    }

    /// Whether this pass probes an open circuit.
    fn settle(self) -> bool {
        let probe = self.probe;
        if probe {
            self.breakers
                .breaker(self.node)
                .probing
                .store(false, SeqCst);
        }
        std::mem::forget(self);
        probe
    }
}

impl Drop for Pass<'_> {
    /// A call dropped before the backend answered counts as a failure, so a
    /// cancelled probe cannot leave the circuit half open for good.
    fn drop(&mut self) {
        if self.probe {
            self.breakers.fail(self.node, true);
            self.breakers
                .breaker(self.node)
                .probing
                .store(false, SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(threshold: u32, cool_down: Duration) -> Breakers {
        Breakers::new(1, threshold, cool_down, "server".to_owned())
    }

    #[test]
    fn opens_after_the_threshold_and_closes_on_a_successful_probe() {
        let breakers = single(3, Duration::ZERO);
        for _ in 0..2 {
            assert!(!breakers.admit(0).unwrap().failed());
        }
        assert!(breakers.health().is_up());
        assert!(
            breakers.admit(0).unwrap().failed(),
            "the third failure opens it"
        );
        assert_eq!(breakers.health().times_opened, 1);
        assert_eq!(breakers.health().open_nodes, 1);
        // Cool-down 0: the next call is the probe, and only it.
        let probe = breakers.admit(0).unwrap();
        assert_eq!(breakers.health().circuit, Circuit::HalfOpen);
        assert_eq!(breakers.admit(0).err(), Some(Duration::ZERO));
        assert!(probe.succeeded(), "the probe closed it");
        assert!(breakers.health().is_up());
        assert_eq!(breakers.health().consecutive_failures, 0);
        assert_eq!(breakers.health().open_nodes, 0);
    }

    #[test]
    fn only_a_probe_closes_an_open_circuit() {
        let breakers = single(2, Duration::from_secs(3600));
        // Calls admitted while the circuit was closed, still in flight…
        let in_flight: Vec<Pass<'_>> = (0..4).map(|_| breakers.admit(0).unwrap()).collect();
        let mut in_flight = in_flight.into_iter();
        assert!(!in_flight.next().unwrap().failed());
        assert!(
            in_flight.next().unwrap().failed(),
            "the second failure opens it"
        );
        // …that succeed after it opened: it stays open.
        for pass in in_flight {
            assert!(!pass.succeeded(), "not a probe");
        }
        let health = breakers.health();
        assert!(
            matches!(health.circuit, Circuit::Open { retry_in } if retry_in > Duration::from_secs(3000)),
            "{health:?}"
        );
        assert_eq!(health.consecutive_failures, 2);
        assert!(breakers.admit(0).is_err(), "calls still skip the node");
    }

    #[test]
    fn a_success_between_failures_starts_the_count_again() {
        let breakers = single(3, Duration::ZERO);
        for _ in 0..10 {
            assert!(!breakers.admit(0).unwrap().failed());
            assert!(!breakers.admit(0).unwrap().failed());
            assert!(!breakers.admit(0).unwrap().succeeded());
        }
        assert!(breakers.health().is_up());
        assert_eq!(breakers.health().times_opened, 0);
    }

    #[test]
    fn an_open_circuit_refuses_until_its_cool_down_passes() {
        let breakers = single(1, Duration::from_secs(3600));
        assert!(breakers.admit(0).unwrap().failed());
        assert!(breakers.admit(0).is_err());
        assert!(
            matches!(breakers.health().circuit, Circuit::Open { retry_in } if retry_in > Duration::from_secs(3000))
        );
    }

    #[test]
    fn a_dropped_probe_reopens_the_circuit() {
        let breakers = single(1, Duration::ZERO);
        assert!(breakers.admit(0).unwrap().failed());
        drop(breakers.admit(0).unwrap());
        assert!(!breakers.health().is_up());
        // The probe slot is free again.
        assert!(breakers.admit(0).unwrap().succeeded());
        assert!(breakers.health().is_up());
    }

    #[test]
    fn a_zero_threshold_never_opens() {
        let breakers = single(0, Duration::ZERO);
        for _ in 0..100 {
            assert!(!breakers.admit(0).unwrap().failed());
        }
        assert!(breakers.health().is_up());
    }

    #[test]
    fn each_node_has_a_circuit_of_its_own() {
        let breakers = Breakers::new(3, 2, Duration::from_secs(3600), "cluster".to_owned());
        let (a, b) = (
            breakers.node("10.0.0.1:7000"),
            breakers.node("10.0.0.2:7000"),
        );
        assert_eq!((a, b), (1, 2));
        assert_eq!(breakers.node("10.0.0.1:7000"), a, "known: the same node");
        assert_eq!(breakers.node("10.0.0.3:7000"), 0, "past the last: node 0");
        for _ in 0..2 {
            let _ = breakers.admit(a).unwrap().failed();
        }
        assert!(breakers.admit(a).is_err(), "a is open");
        for _ in 0..100 {
            assert!(!breakers.admit(b).unwrap().succeeded(), "b is not");
            assert!(!breakers.admit(0).unwrap().succeeded());
        }
        let health = breakers.health();
        assert!(matches!(health.circuit, Circuit::Open { .. }), "{health:?}");
        assert_eq!((health.open_nodes, health.times_opened), (1, 1));
        assert!(!health.is_up());
        assert!(breakers.admit(7).is_ok(), "an unknown node is node 0");
    }
}
