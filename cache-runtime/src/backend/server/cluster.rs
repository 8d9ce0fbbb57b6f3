//! Connection keeping on a Redis Cluster: one `ClusterConnection` from
//! redis-rs (multiplexed, held and cloned per command; it follows `MOVED`
//! and `ASK` and refreshes the topology itself), the slot of a key, the
//! master serving each slot (whose circuit breaker a command goes through,
//! and whose direct connection a read takes, `nodes.rs`), and the masters,
//! for the commands that must visit each (`SCAN`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::cluster::ClusterClient;
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use deadpool_redis::redis::{self, FromRedisValue};

use super::Settings;
use super::nodes::Nodes;
use super::reconnect::Reconnect;
use crate::backend::breaker::Breakers;
use crate::{BackendError, Error};

/// The slots of a cluster.
const SLOTS: u16 = 16_384;

/// The most nodes a cluster's breakers tell apart (node 0 included): past
/// it, a new master's slots share node 0's breaker.
pub(super) const MAX_NODES: usize = 256;

/// The held connection to a cluster.
pub(super) struct ClusterLink {
    client: ClusterClient,
    held: Arc<Mutex<Held>>,
    /// Serialises connecting.
    connecting: tokio::sync::Mutex<()>,
    /// The most a call waits to connect.
    checkout_timeout: Duration,
    reconnect: Reconnect,
    topology: Arc<Topology>,
}

/// The held cluster connection, and how many have been made.
#[derive(Default)]
struct Held {
    conn: Option<ClusterConnection>,
    generation: u64,
}

/// Which master serves each slot, as far as the runtime has looked.
struct Topology {
    /// The node (its breaker) serving each slot; 0 while unknown.
    slots: Box<[AtomicU16]>,
    breakers: Arc<Breakers>,
    /// The masters' direct connections, told each master's address.
    nodes: Arc<Nodes>,
    /// Whether a look at the topology is under way.
    looking: AtomicBool,
}

impl ClusterLink {
    /// The link through `client`, whose masters' direct connections are
    /// made from `url` (the first seed's) with each master's address.
    pub(super) fn new(
        client: ClusterClient,
        url: String,
        settings: &Settings,
        redacted: String,
        breakers: Arc<Breakers>,
    ) -> Self {
        Self {
            client,
            held: Arc::default(),
            connecting: tokio::sync::Mutex::new(()),
            checkout_timeout: super::CHECKOUT_WAIT + settings.connect_timeout,
            reconnect: Reconnect::new(redacted),
            topology: Arc::new(Topology {
                slots: (0..SLOTS).map(|_| AtomicU16::new(0)).collect(),
                breakers,
                nodes: Arc::new(Nodes::new(MAX_NODES, url, settings)),
                looking: AtomicBool::new(false),
            }),
        }
    }

    /// The direct connection to `node`, when it is made (see `nodes.rs`).
    pub(super) fn direct(&self, node: usize) -> Option<MultiplexedConnection> {
        self.topology.nodes.conn(node)
    }

    /// A read sent straight to `node` could not be served there: its
    /// connection `broken` (dropped: the next read connects anew), or its
    /// slot moved. Either way the slots are looked up again.
    pub(super) fn direct_failed(&self, node: usize, broken: bool) {
        if broken {
            self.topology.nodes.drop_conn(node);
        }
        self.look_again();
    }

    /// The node serving `key`'s slot (0 while unknown): no allocation, one
    /// CRC16 and one load.
    pub(super) fn node_of(&self, key: &str) -> usize {
        self.node_serving(slot(key.as_bytes()))
    }

    /// The node serving `slot` (0 while unknown).
    pub(super) fn node_serving(&self, slot: u16) -> usize {
        usize::from(self.topology.slots[usize::from(slot)].load(Relaxed))
    }

    /// The node at `(host, port)`.
    pub(super) fn node_at(&self, host: &str, port: u16) -> usize {
        self.topology.breakers.node(&format!("{host}:{port}"))
    }

    /// Connects and looks at the topology, returning the first error.
    pub(super) async fn connect_all(&self) -> Result<(), Error> {
        let mut conn = self.checkout("connect").await?;
        let look = self.topology.look(&mut conn);
        let _ = tokio::time::timeout(self.checkout_timeout, look).await;
        Ok(())
    }

    /// Looks at the topology again in a task of its own (unless a look is
    /// under way): after a node's circuit opened or closed, its slots may
    /// have moved to a promoted replica. When no node answers the look,
    /// the held connection is dropped (unless replaced meanwhile): after a
    /// master died under load, redis-rs' connection can stay stuck on it,
    /// its slot map never refreshed, and the next call connects anew from
    /// the seeds, looking at the topology again.
    pub(super) fn look_again(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (generation, Some(mut conn)) = ({
            let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            (held.generation, held.conn.clone())
        }) else {
            return;
        };
        if self.topology.looking.swap(true, Relaxed) {
            return;
        }
        let (topology, deadline) = (Arc::clone(&self.topology), self.checkout_timeout);
        let held = Arc::clone(&self.held);
        runtime.spawn(async move {
            let looked = tokio::time::timeout(deadline, topology.look(&mut conn)).await;
            if !looked.unwrap_or(false) {
                let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
                if held.generation == generation && held.conn.take().is_some() {
                    tracing::debug!("no node answered a look at the cluster's topology: the cluster connection is made anew");
                }
            }
            topology.looking.store(false, Relaxed);
        });
    }

    fn current(&self) -> Option<ClusterConnection> {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .conn
            .clone()
    }

    /// The connection for one command, connecting first if needed.
    pub(super) async fn checkout(&self, op: &'static str) -> Result<ClusterConnection, Error> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        // Rare: boxed, to keep every command's future small.
        let connect = Box::pin(tokio::time::timeout(
            self.checkout_timeout,
            self.connect(op),
        ));
        connect.await.map_err(|_| Error::Timeout {
            op,
            after: self.checkout_timeout,
        })?
    }

    async fn connect(&self, op: &'static str) -> Result<ClusterConnection, Error> {
        let _connecting = self.connecting.lock().await;
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        self.reconnect.may_try()?;
        match self.client.get_async_connection().await {
            Ok(conn) => {
                self.reconnect.succeeded();
                {
                    let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
                    held.conn = Some(conn.clone());
                    held.generation += 1;
                }
                self.look_again();
                Ok(conn)
            }
            Err(source) => {
                self.reconnect.failed();
                Err(Error::Backend {
                    op,
                    source: BackendError::Redis(source),
                })
            }
        }
    }

    /// Drops the held connection; the next call connects anew.
    pub(super) fn discard(&self) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .conn
            .take();
    }
}

impl Topology {
    /// Maps each slot to the breaker of the master serving it, from
    /// `CLUSTER NODES` (asked of up to three nodes, in case one is down); a
    /// failed look keeps the map as it was. Whether a node answered.
    async fn look(&self, conn: &mut ClusterConnection) -> bool {
        for _ in 0..3 {
            match cluster_nodes(conn).await {
                Ok(nodes) => {
                    let mut serving = [false; MAX_NODES];
                    for (address, ranges) in parse_slots(&nodes) {
                        let at = self.breakers.node(&address);
                        if let Some((host, port)) = address.rsplit_once(':')
                            && let Ok(port) = port.parse()
                        {
                            self.nodes.learn(at, host, port);
                        }
                        if !ranges.is_empty()
                            && let Some(serves) = serving.get_mut(at)
                        {
                            *serves = true;
                        }
                        let node = u16::try_from(at).unwrap_or(0);
                        for (first, last) in ranges {
                            for slot in &self.slots[usize::from(first)..=usize::from(last)] {
                                slot.store(node, Relaxed);
                            }
                        }
                    }
                    // A master whose slots all went elsewhere (to its
                    // promoted replica) is called no more: its circuit,
                    // open or not, no longer speaks of the cache (node 0,
                    // what no master is known for, stays as it is).
                    for (node, serves) in serving.iter().enumerate().skip(1) {
                        if !serves {
                            self.breakers.retire(node);
                        }
                    }
                    return true;
                }
                Err(error) => tracing::debug!(%error, "cannot look at the cluster's topology"),
            }
        }
        false
    }
}

/// `CLUSTER NODES`, asked of any node.
async fn cluster_nodes(conn: &mut ClusterConnection) -> redis::RedisResult<String> {
    let nodes = conn
        .route_command(
            redis::cmd("CLUSTER").arg("NODES").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await?;
    Ok(String::from_redis_value(nodes)?)
}

/// The masters serving slots, as `(host, port)`, from `CLUSTER NODES`.
pub(super) async fn masters(
    conn: &mut ClusterConnection,
) -> redis::RedisResult<Vec<(String, u16)>> {
    Ok(parse_masters(&cluster_nodes(conn).await?))
}

/// Each master of a `CLUSTER NODES` reply, failed or not, as `host:port`,
/// with the slot ranges it serves (slots being moved, `[…]`, left out).
fn parse_slots(nodes: &str) -> Vec<(String, Vec<(u16, u16)>)> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !fields.get(2)?.split(',').any(|f| f == "master") {
                return None;
            }
            let address = fields.get(1)?.split('@').next()?;
            let ranges = fields
                .iter()
                .skip(8)
                .filter_map(|range| {
                    let (first, last) = range.split_once('-').unwrap_or((range, range));
                    let (first, last) = (first.parse().ok()?, last.parse().ok()?);
                    (first <= last && last < SLOTS).then_some((first, last))
                })
                .collect();
            Some((address.to_owned(), ranges))
        })
        .collect()
}

/// The masters of a `CLUSTER NODES` reply that serve slots and are not failed.
pub(crate) fn parse_masters(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            let serving = fields.len() > 8;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") || !serving {
                return None;
            }
            // `host:port@cport[,hostname]`
            let address = fields.get(1)?.split('@').next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

/// Routes a command to the node at `(host, port)`.
pub(super) fn at(host: &str, port: u16) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
        host: host.to_owned(),
        port,
    })
}

/// The slot of `key`: CRC16 (XMODEM) of the key, or of its hash tag (the
/// part between the first `{` and the next `}`, when not empty), mod 16384.
pub(super) fn slot(key: &[u8]) -> u16 {
    // Most keys have no brace: one fast scan (`memchr`) says so.
    let hashed = if key.contains(&b'{') {
        hash_tag(key).unwrap_or(key)
    } else {
        key
    };
    crc16(hashed) % SLOTS
}

/// The part between the first `{` of `key` and the next `}`, when not empty.
fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let rest = &key[open + 1..];
    let close = rest.iter().position(|&b| b == b'}')?;
    (close > 0).then(|| &rest[..close])
}

/// CRC16 (XMODEM) of `bytes`, two bytes at a time (a tagged hit computes
/// the slot of four keys): after a byte `a` and a byte `b`, the CRC is
/// `PAIRS[hi ^ a] ^ BYTES[lo ^ b]`, the CRC being linear in its input.
fn crc16(bytes: &[u8]) -> u16 {
    let mut pairs = bytes.chunks_exact(2);
    let mut crc = 0_u16;
    for pair in &mut pairs {
        let [hi, lo] = crc.to_be_bytes();
        crc = PAIRS[usize::from(hi ^ pair[0])] ^ BYTES[usize::from(lo ^ pair[1])];
    }
    for &byte in pairs.remainder() {
        crc = (crc << 8) ^ BYTES[usize::from((crc >> 8) as u8 ^ byte)];
    }
    crc
}

/// CRC16 (XMODEM, polynomial 0x1021) of each byte.
static BYTES: [u16; 256] = {
    let mut table = [0_u16; 256];
    let mut byte: u16 = 0;
    while byte < 256 {
        let mut crc = byte << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x1021
            };
            bit += 1;
        }
        #[allow(clippy::cast_lossless)] // `usize::from` is not `const`
        {
            table[byte as usize] = crc;
        }
        byte += 1;
    }
    table
};

/// The CRC of a byte followed by a zero byte: the part of a pair's CRC that
/// its first byte makes.
static PAIRS: [u16; 256] = {
    let mut table = [0_u16; 256];
    let mut byte = 0;
    while byte < 256 {
        let once = BYTES[byte];
        #[allow(clippy::cast_lossless)] // `usize::from` is not `const`
        {
            table[byte] = ((once & 0xff) << 8) ^ BYTES[(once >> 8) as usize];
        }
        byte += 1;
    }
    table
};

/// `items` grouped by the slot of the key each has.
pub(super) fn by_slot<T>(items: &[T], key: impl Fn(&T) -> &str) -> Vec<Vec<&T>> {
    let mut groups: BTreeMap<u16, Vec<&T>> = BTreeMap::new();
    for item in items {
        groups
            .entry(slot(key(item).as_bytes()))
            .or_default()
            .push(item);
    }
    groups.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_those_redis_computes() {
        // `CLUSTER KEYSLOT` of each.
        assert_eq!(slot(b"foo"), 12_182);
        assert_eq!(slot(b"bar"), 5_061);
        assert_eq!(slot(b"123456789"), 12_739);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
        // `CLUSTER KEYSLOT` of keys with an empty tag, an unclosed one, a
        // tag after other text.
        assert_eq!(slot(b"foo{}{bar}"), 8_363);
        assert_eq!(slot(b"foo{bar"), 15_278);
        assert_eq!(slot(b"a{user1000}b"), slot(b"user1000"));
        assert_eq!(slot(b""), 0);
    }

    #[test]
    fn pairs_make_the_crc_bytes_make() {
        let bytewise = |bytes: &[u8]| {
            bytes.iter().fold(0_u16, |crc, &byte| {
                (crc << 8) ^ BYTES[usize::from((crc >> 8) as u8 ^ byte)]
            })
        };
        assert_eq!(crc16(b"123456789"), 0x31C3, "CRC-16/XMODEM's check value");
        let mut state = 0x2545_f491_u32;
        for len in 0..80 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state.to_le_bytes()[0]
                })
                .collect();
            assert_eq!(crc16(&bytes), bytewise(&bytes), "{bytes:?}");
        }
    }

    #[test]
    fn masters_come_from_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7003@17003 slave a1 0 0 1 connected
d4 127.0.0.1:7002@17002 master,fail - 0 0 3 connected 10923-16383
e5 127.0.0.1:7004@17004 master - 0 0 4 connected
";
        assert_eq!(
            parse_masters(nodes),
            [
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7001)
            ]
        );
    }

    #[test]
    fn slots_come_from_cluster_nodes_failed_masters_included() {
        let nodes = "\
a1 127.0.0.1:7000@17000,host-a myself,master - 0 0 1 connected 0-5460 [5461->-b2]
b2 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10921 10922
c3 127.0.0.1:7003@17003 slave a1 0 0 1 connected
d4 127.0.0.1:7002@17002 master,fail - 0 0 3 connected 10923-16383
";
        assert_eq!(
            parse_slots(nodes),
            [
                ("127.0.0.1:7000".to_owned(), vec![(0, 5460)]),
                (
                    "127.0.0.1:7001".to_owned(),
                    vec![(5461, 10921), (10922, 10922)]
                ),
                ("127.0.0.1:7002".to_owned(), vec![(10923, 16383)]),
            ]
        );
    }
}
