//! The value format and key derivation, for benchmarks and tools that
//! measure or inspect what cachette stores (feature `internals`). Not part
//! of the stable API: names and signatures may change in any release.
//!
//! ```
//! # extern crate cachette_runtime as cachette;
//! use cachette::internals::{KeyBuilder, decode, encode};
//!
//! let bytes = encode(&vec!["Dune"]).unwrap();
//! assert_eq!(decode::<Vec<String>>(&bytes), Some(vec!["Dune".to_owned()]));
//!
//! let mut key = KeyBuilder::new("shop::catalog");
//! key.arg(&42_u64);
//! let mut derived = String::new();
//! key.finish("products", &mut derived);
//! assert!(derived.starts_with("shop::catalog::products:"));
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::__private::KeyBuilder;
use crate::Error;
use crate::codec::{self, Stored};

/// The bytes stored for `value`: an envelope, or decimal text for an integer.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// assert_eq!(cachette::internals::encode(&7).unwrap(), b"7");
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    codec::encode(value)
}

/// The value in stored bytes, or `None` when they are not a `T`.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// assert_eq!(cachette::internals::decode::<u32>(b"7"), Some(7));
/// assert_eq!(cachette::internals::decode::<u32>(b"garbage"), None);
/// ```
#[must_use]
pub fn decode<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Option<T> {
    match codec::parse(bytes).ok()? {
        Stored::Value(meta, payload) => {
            codec::decode_payload(&codec::Seal::default().unpack(meta.flags, payload).ok()?).ok()
        }
        Stored::Counter(n) => codec::decode_counter(n).ok(),
        Stored::Tombstone(_) => None,
    }
}

/// What stored bytes hold, read without knowing the value's type (for
/// tools such as `cachette inspect`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Described {
    /// A counter: decimal text, as `incr` keeps it.
    Counter(i64),
    /// The mark of an invalidated key.
    Tombstone {
        /// When it was written, in Unix milliseconds.
        written_at_ms: u64,
    },
    /// A value in its envelope.
    Value(Box<Envelope>),
}

/// A value's envelope: its metadata, and its `MessagePack` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Envelope {
    /// When it was written, in Unix milliseconds.
    pub written_at_ms: u64,
    /// The random id of the write.
    pub write_id: u64,
    /// Fresh until then, in Unix milliseconds; `None`: no freshness limit.
    pub fresh_until_ms: Option<u64>,
    /// What its computation took, in milliseconds.
    pub compute_ms: u32,
    /// The versions of its namespace and tags when it was computed.
    pub stamps: Vec<u64>,
    /// Whether the payload travels compressed.
    pub compressed: bool,
    /// Whether a signature follows the envelope.
    pub signed: bool,
    /// The payload, decompressed (`None` when it does not decompress
    /// within `max_value_bytes`).
    pub payload: Option<Vec<u8>>,
}

/// What `bytes` hold, or `None` when they are not cachette's.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// use cachette::internals::{Described, describe, encode};
///
/// assert_eq!(describe(b"42"), Some(Described::Counter(42)));
/// let Some(Described::Value(envelope)) = describe(&encode("text").unwrap()) else { panic!() };
/// assert!(envelope.stamps.is_empty() && !envelope.signed);
/// assert_eq!(describe(b"not ours"), None);
/// ```
#[must_use]
pub fn describe(bytes: &[u8]) -> Option<Described> {
    Some(match codec::parse(bytes).ok()? {
        Stored::Counter(n) => Described::Counter(n),
        Stored::Tombstone(meta) => Described::Tombstone {
            written_at_ms: meta.written_at_ms,
        },
        Stored::Value(meta, payload) => Described::Value(Box::new(Envelope {
            written_at_ms: meta.written_at_ms,
            write_id: meta.write_id,
            fresh_until_ms: (meta.freshness.fresh_until_ms != 0)
                .then_some(meta.freshness.fresh_until_ms),
            compute_ms: meta.freshness.compute_ms,
            stamps: meta
                .versions
                .chunks_exact(8)
                .map(|s| u64::from_le_bytes(s.try_into().unwrap_or_default()))
                .collect(),
            compressed: meta.flags & codec::COMPRESSED != 0,
            signed: meta.flags & codec::SIGNED != 0,
            payload: codec::Seal::default()
                .unpack(meta.flags, payload)
                .ok()
                .map(std::borrow::Cow::into_owned),
        })),
    })
}

/// `url` pointed at the node `host:port`, its scheme, credentials,
/// database and query kept: how the runtime reaches each master of a
/// cluster from a seed's URL.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// use cachette::internals::node_url;
///
/// assert_eq!(node_url("rediss://app:pw@seed:7000/0?x=1", "10.0.0.2", 7001), "rediss://app:pw@10.0.0.2:7001/0?x=1");
/// ```
#[must_use]
pub fn node_url(url: &str, host: &str, port: u16) -> String {
    crate::backend::server::with_address(url, host, port)
}

/// The master's name and the data nodes' URL (its host the name) from
/// what [`redis_sentinel`](crate::CacheBuilder::redis_sentinel) takes as
/// the master: a bare name, or a URL whose host is the name.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// use cachette::internals::sentinel_master;
///
/// let (name, url) = sentinel_master("rediss://app:pw@mymaster/2").unwrap();
/// assert_eq!(name, "mymaster");
/// assert_eq!(cachette::internals::node_url(&url, "10.0.0.5", 6379), "rediss://app:pw@10.0.0.5:6379/2");
/// assert!(sentinel_master("redis://10.0.0.5:6379").is_err());
/// ```
///
/// # Errors
///
/// [`Error::Config`] when `master` is neither.
pub fn sentinel_master(master: &str) -> Result<(String, String), crate::Error> {
    crate::backend::server::master_url(master)
}

/// The masters of a `CLUSTER NODES` reply that serve slots and have not
/// failed, as `(host, port)`: the nodes the runtime scans and tracks.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// use cachette::internals::cluster_masters;
///
/// let nodes = "a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n\
///              b2 127.0.0.1:7003@17003 slave a1 0 0 1 connected\n\
///              c3 127.0.0.1:7006@17006 master - 0 0 4 connected\n";
/// assert_eq!(cluster_masters(nodes), [("127.0.0.1".to_owned(), 7000)]);
/// ```
#[must_use]
pub fn cluster_masters(nodes: &str) -> Vec<(String, u16)> {
    crate::backend::server::parse_masters(nodes)
}
