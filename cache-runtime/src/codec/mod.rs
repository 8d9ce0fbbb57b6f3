//! The one format of stored values.
//!
//! An entry is an envelope:
//!
//! | bytes | content |
//! |---|---|
//! | 1 | format version, [`FORMAT_V1`] |
//! | 1 | flags: 1 tombstone, 2 payload compressed, 4 signed (see `seal`) |
//! | 8 | write time, Unix milliseconds, little-endian |
//! | 8 | write id, random, little-endian: what a guarded write compares |
//! | 8 | fresh until, Unix milliseconds, little-endian (0: no freshness limit) |
//! | 4 | computation time, milliseconds, little-endian (for early refresh) |
//! | 1 | number `n` of version stamps |
//! | 8 × n | version stamps, little-endian |
//! | rest | the value, `MessagePack` (rmp-serde, structs as maps), LZ4-compressed when flagged |
//! | 32 | when signed: a keyed BLAKE3 MAC over the stored key and the bytes before it |
//!
//! Integers are the exception: they are stored as decimal text, as Redis
//! keeps counters, so that `incr` and `decr` work on them atomically.
//!
//! Decoding never panics: anything that is not a well-formed envelope or
//! counter, or that does not decode into the requested type, is
//! [`Undecodable`], which the cache treats as a miss.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::clock::{now_ms, random_id};

mod decimal;
#[cfg(test)]
mod hostile;
mod payload;
mod seal;

pub(crate) use decimal::{fresh_version, parse_counter, parse_decimal};
use payload::msgpack_int;
pub(crate) use payload::{decode_counter, decode_payload};
#[cfg(feature = "internals")]
pub(crate) use seal::{COMPRESSED, SIGNED};
pub(crate) use seal::{
    DEFAULT_COMPRESS_ABOVE, DEFAULT_MAX_VALUE_BYTES, MIN_SECRET_LEN, Seal, signing_key,
};

/// What a value must be to go through the cache: serializable both ways,
/// cloneable (a memory hit hands out a clone) and shareable across tasks.
///
/// Every type that meets the bounds implements it.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Stats { order_count: u32 }
///
/// fn assert_cacheable<T: cachette::Cacheable>() {}
/// assert_cacheable::<Stats>();
/// assert_cacheable::<Vec<String>>();
/// ```
pub trait Cacheable: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Cacheable for T {}

/// The first byte of every envelope written by this version of cachette.
pub(crate) const FORMAT_V1: u8 = 1;

/// The flag of a tombstone.
pub(crate) const TOMBSTONE: u8 = 1;

/// Where the write id starts.
pub(crate) const WRITE_ID_AT: usize = 1 + 1 + 8;

pub(crate) const HEADER_LEN: usize = WRITE_ID_AT + 8 + 8 + 4 + 1;

/// When a value goes stale, and what it cost: for stale-while-revalidate,
/// failover and early refresh. The default (zeros) never goes stale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Freshness {
    pub(crate) fresh_until_ms: u64,
    pub(crate) compute_ms: u32,
}

/// Bytes that are not a value of the requested type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Undecodable;

/// The metadata an envelope carries besides its value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Meta<'a> {
    pub(crate) flags: u8,
    /// When the entry was written, in Unix milliseconds.
    pub(crate) written_at_ms: u64,
    /// The random id of the write, compared by guarded writes.
    pub(crate) write_id: u64,
    pub(crate) freshness: Freshness,
    /// The raw version stamps, 8 bytes each.
    pub(crate) versions: &'a [u8],
}

impl Meta<'_> {
    /// Whether the stamps are exactly `current`, every one of them known.
    pub(crate) fn stamped(&self, current: &[Option<u64>]) -> bool {
        stamped(self.versions, current)
    }
}

/// Whether the raw stamps `stamps` are exactly `current`, every one known.
fn stamped(stamps: &[u8], current: &[Option<u64>]) -> bool {
    stamps.len() == current.len() * 8
        && stamps
            .chunks_exact(8)
            .zip(current)
            .all(|(stamp, v)| v.is_some_and(|v| stamp == v.to_le_bytes()))
}

/// What stored bytes hold, read once when an in-process store keeps them,
/// so that its hits judge them without reading the envelope again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Counter,
    Value {
        write_id: u64,
        freshness: Freshness,
        /// How many version stamps follow the header.
        stamps: u8,
    },
    Tombstone,
    /// Bytes that are not cachette's.
    Foreign,
}

impl Shape {
    pub(crate) fn of(bytes: &[u8]) -> Self {
        match parse(bytes) {
            Ok(Stored::Counter(_)) => Self::Counter,
            Ok(Stored::Value(meta, _)) => Self::Value {
                write_id: meta.write_id,
                freshness: meta.freshness,
                stamps: u8::try_from(meta.versions.len() / 8).unwrap_or(u8::MAX),
            },
            Ok(Stored::Tombstone(_)) => Self::Tombstone,
            Err(Undecodable) => Self::Foreign,
        }
    }

    /// Whether `bytes`, of this shape, hold a value stamped exactly `current`.
    #[inline]
    pub(crate) fn stamped(self, bytes: &[u8], current: &[Option<u64>]) -> bool {
        match self {
            Self::Value { stamps: 0, .. } => current.is_empty(),
            Self::Value { stamps, .. } => bytes
                .get(HEADER_LEN..HEADER_LEN + usize::from(stamps) * 8)
                .is_some_and(|raw| stamped(raw, current)),
            _ => false,
        }
    }
}

/// Encodes `value` as an envelope, or as decimal text when it is an integer.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    encode_as(value, &[], Freshness::default(), true)
}

/// Encodes `value` as an envelope stamped with `versions` (the versions of
/// its namespace and tags when its computation began).
pub(crate) fn encode_stamped<T: Serialize + ?Sized>(
    value: &T,
    versions: &[u64],
    freshness: Freshness,
) -> Result<Vec<u8>, Error> {
    encode_as(value, versions, freshness, true)
}

/// Encodes `value` as an envelope stamped with `versions`; an integer
/// without stamps or freshness becomes a counter when `counter` allows.
pub(crate) fn encode_as<T: Serialize + ?Sized>(
    value: &T,
    versions: &[u64],
    freshness: Freshness,
    counter: bool,
) -> Result<Vec<u8>, Error> {
    let mut out = header(0, versions, freshness);
    let start = out.len();
    let mut ser = rmp_serde::Serializer::new(&mut out).with_struct_map();
    value.serialize(&mut ser).map_err(|source| Error::Encode {
        type_name: std::any::type_name::<T>(),
        source,
    })?;
    if counter
        && versions.is_empty()
        && freshness == Freshness::default()
        && let Some(n) = msgpack_int(&out[start..])
    {
        return Ok(n.to_string().into_bytes());
    }
    Ok(out)
}

/// A tombstone: the mark of an invalidated key.
pub(crate) fn tombstone() -> Vec<u8> {
    header(TOMBSTONE, &[], Freshness::default())
}

fn header(flags: u8, versions: &[u64], freshness: Freshness) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + versions.len() * 8 + 64);
    out.extend_from_slice(&[FORMAT_V1, flags]);
    out.extend_from_slice(&now_ms().to_le_bytes());
    out.extend_from_slice(&random_id().to_le_bytes());
    out.extend_from_slice(&freshness.fresh_until_ms.to_le_bytes());
    out.extend_from_slice(&freshness.compute_ms.to_le_bytes());
    // `Scope` refuses more than `MAX_SCOPE` (255) versions.
    out.push(u8::try_from(versions.len()).unwrap_or(u8::MAX));
    for v in versions {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Splits an envelope into its metadata and its `MessagePack` payload.
pub(crate) fn open(bytes: &[u8]) -> Result<(Meta<'_>, &[u8]), Undecodable> {
    let (&format, rest) = bytes.split_first().ok_or(Undecodable)?;
    if format != FORMAT_V1 {
        return Err(Undecodable);
    }
    let (&flags, rest) = rest.split_first().ok_or(Undecodable)?;
    if flags & !(TOMBSTONE | seal::COMPRESSED | seal::SIGNED) != 0 {
        return Err(Undecodable);
    }
    let (written, rest) = rest.split_first_chunk::<8>().ok_or(Undecodable)?;
    let (write_id, rest) = rest.split_first_chunk::<8>().ok_or(Undecodable)?;
    let (fresh_until, rest) = rest.split_first_chunk::<8>().ok_or(Undecodable)?;
    let (compute, rest) = rest.split_first_chunk::<4>().ok_or(Undecodable)?;
    let (&count, rest) = rest.split_first().ok_or(Undecodable)?;
    let stamps_len = usize::from(count) * 8;
    let mac_len = if flags & seal::SIGNED == 0 {
        0
    } else {
        seal::MAC_LEN
    };
    if rest.len() < stamps_len + mac_len {
        return Err(Undecodable);
    }
    let (versions, payload) = rest.split_at(stamps_len);
    let payload = &payload[..payload.len() - mac_len];
    let meta = Meta {
        flags,
        written_at_ms: u64::from_le_bytes(*written),
        write_id: u64::from_le_bytes(*write_id),
        freshness: Freshness {
            fresh_until_ms: u64::from_le_bytes(*fresh_until),
            compute_ms: u32::from_le_bytes(*compute),
        },
        versions,
    };
    Ok((meta, payload))
}

/// What stored bytes hold.
pub(crate) enum Stored<'a> {
    /// A counter (decimal text).
    Counter(i64),
    /// An envelope with a value.
    Value(Meta<'a>, &'a [u8]),
    /// The mark of an invalidated key.
    Tombstone(Meta<'a>),
}

/// Tells what stored bytes hold, without decoding the value.
pub(crate) fn parse(bytes: &[u8]) -> Result<Stored<'_>, Undecodable> {
    if let Some(n) = parse_counter(bytes) {
        return Ok(Stored::Counter(n));
    }
    let (meta, payload) = open(bytes)?;
    if meta.flags & TOMBSTONE != 0 {
        return if payload.is_empty() {
            Ok(Stored::Tombstone(meta))
        } else {
            Err(Undecodable)
        };
    }
    Ok(Stored::Value(meta, payload))
}

/// Decodes stored bytes (an envelope or a counter) into a `T`. A tombstone
/// is [`Undecodable`] here; callers that care look with [`parse`] first.
#[cfg(test)]
pub(crate) fn decode<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, Undecodable> {
    match parse(bytes)? {
        Stored::Counter(n) => decode_counter(n),
        Stored::Value(_, payload) => decode_payload(payload),
        Stored::Tombstone(_) => Err(Undecodable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Stats {
        order_count: u32,
        total_spent: f64,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Other {
        name: String,
    }

    #[test]
    fn values_round_trip() {
        let stats = Stats {
            order_count: 3,
            total_spent: 99.5,
        };
        let bytes = encode(&stats).unwrap();
        assert_eq!(bytes[0], FORMAT_V1);
        assert_eq!(decode::<Stats>(&bytes), Ok(stats));
        assert_eq!(
            decode::<String>(&encode("text").unwrap()),
            Ok("text".to_owned())
        );
        assert_eq!(
            decode::<Option<u8>>(&encode(&None::<u8>).unwrap()),
            Ok(None)
        );
    }

    #[test]
    fn integers_are_counters() {
        assert_eq!(encode(&42_u8).unwrap(), b"42");
        assert_eq!(encode(&-7_i64).unwrap(), b"-7");
        assert_eq!(decode::<u16>(b"42"), Ok(42));
        assert_eq!(decode::<Option<i64>>(b"-7"), Ok(Some(-7)));
        assert_eq!(decode::<u8>(b"300"), Err(Undecodable));
        // Too big for a counter: stays an envelope.
        assert_eq!(decode::<u64>(&encode(&u64::MAX).unwrap()), Ok(u64::MAX));
    }

    #[test]
    fn another_type_is_undecodable() {
        let bytes = encode(&Stats {
            order_count: 1,
            total_spent: 2.0,
        })
        .unwrap();
        assert_eq!(decode::<Other>(&bytes), Err(Undecodable));
        assert_eq!(decode::<String>(&bytes), Err(Undecodable));
        assert_eq!(decode::<Stats>(&encode("text").unwrap()), Err(Undecodable));
    }

    #[test]
    fn garbage_is_undecodable() {
        for bytes in [
            &b""[..],
            b"\x01",
            b"\x02\x00",
            b"hello",
            b"\x01\x00\x00",
            b"--1",
            b"-",
        ] {
            assert_eq!(decode::<String>(bytes), Err(Undecodable), "{bytes:?}");
        }
        let mut bytes = encode("text").unwrap();
        bytes.push(0xc0);
        assert_eq!(decode::<String>(&bytes), Err(Undecodable), "trailing bytes");
        bytes[0] = 2;
        assert_eq!(
            decode::<String>(&bytes[..bytes.len() - 1]),
            Err(Undecodable),
            "future format"
        );
    }

    #[test]
    fn every_truncation_is_undecodable_and_none_panics() {
        let bytes = encode(&Stats {
            order_count: 1,
            total_spent: 2.0,
        })
        .unwrap();
        for len in 0..bytes.len() {
            assert!(decode::<Stats>(&bytes[..len]).is_err());
        }
    }

    #[test]
    fn the_envelope_carries_the_write_time() {
        let before = now_ms();
        let bytes = encode("x").unwrap();
        let (meta, _) = open(&bytes).unwrap();
        assert!(meta.written_at_ms >= before);
        assert!(meta.versions.is_empty());
    }

    #[test]
    fn freshness_round_trips() {
        let freshness = Freshness {
            fresh_until_ms: 1_700_000_000_000,
            compute_ms: 42,
        };
        let bytes = encode_stamped(&7_u8, &[], freshness).unwrap();
        assert_eq!(
            bytes[0], FORMAT_V1,
            "an integer with a freshness stays an envelope"
        );
        assert_eq!(open(&bytes).unwrap().0.freshness, freshness);
        assert_eq!(decode::<u8>(&bytes), Ok(7));
    }

    #[test]
    fn stamps_and_tombstones() {
        let bytes = encode_stamped(&5_u32, &[7, 9], Freshness::default()).unwrap();
        assert_eq!(bytes[0], FORMAT_V1, "a stamped integer stays an envelope");
        let Ok(Stored::Value(meta, _)) = parse(&bytes) else {
            panic!("a value")
        };
        assert!(meta.stamped(&[Some(7), Some(9)]));
        assert!(!meta.stamped(&[Some(7), Some(10)]));
        assert!(!meta.stamped(&[Some(7), None]));
        assert!(!meta.stamped(&[Some(7)]));
        assert_eq!(decode::<u32>(&bytes), Ok(5));
        let dead = tombstone();
        assert!(matches!(parse(&dead), Ok(Stored::Tombstone(_))));
        assert_eq!(decode::<String>(&dead), Err(Undecodable));
        let (a, b) = (
            open(&dead).unwrap().0.write_id,
            open(&tombstone()).unwrap().0.write_id,
        );
        assert_ne!(a, b, "every write has its own id");
    }
}
