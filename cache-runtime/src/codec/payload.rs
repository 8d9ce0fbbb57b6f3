//! The `MessagePack` payload of an envelope: decoded only when it fills the
//! payload exactly (checked by a walk without recursion), and never deeper
//! than [`MAX_DEPTH`].

use serde::de::DeserializeOwned;

use super::Undecodable;

/// Decodes a counter into a `T` (any integer type, or a newtype of one).
pub(crate) fn decode_counter<T: DeserializeOwned>(n: i64) -> Result<T, Undecodable> {
    let mut buf = Vec::with_capacity(9);
    rmp::encode::write_sint(&mut buf, n).map_err(|_| Undecodable)?;
    decode_payload(&buf)
}

/// How deep stored values may nest; deeper ones are undecodable (a miss).
const MAX_DEPTH: usize = 128;

/// Decodes a `MessagePack` payload that must be consumed whole.
pub(crate) fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, Undecodable> {
    if msgpack_len(payload) != Some(payload.len()) {
        return Err(Undecodable);
    }
    // Reading from the slice itself: strings and bytes are copied once, into the value.
    let mut de = rmp_serde::Deserializer::from_read_ref(payload);
    // Hostile nesting must not overflow the stack of a recursive type's decoder.
    de.set_max_depth(MAX_DEPTH);
    T::deserialize(&mut de).map_err(|_| Undecodable)
}

/// The length of the one `MessagePack` value `bytes` starts with, found by
/// walking its markers without recursion; `None` when it is cut short.
fn msgpack_len(bytes: &[u8]) -> Option<usize> {
    use rmp::Marker;
    let mut at = 0;
    // Values still to walk: one, plus the items of every container opened.
    let mut pending: u64 = 1;
    let be = |at: usize, n: usize| -> Option<u64> {
        let slice = bytes.get(at..at.checked_add(n)?)?;
        Some(slice.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b)))
    };
    while pending > 0 {
        pending -= 1;
        let marker = Marker::from_u8(*bytes.get(at)?);
        at += 1;
        // (bytes to skip, items to walk)
        let (skip, items) = match marker {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
                (0, 0)
            }
            Marker::U8 | Marker::I8 => (1, 0),
            // (An ext is a type byte, then its data: `FixExt1` is 2 bytes.)
            Marker::U16 | Marker::I16 | Marker::FixExt1 => (2, 0),
            Marker::U32 | Marker::I32 | Marker::F32 => (4, 0),
            Marker::U64 | Marker::I64 | Marker::F64 => (8, 0),
            Marker::FixStr(n) => (u64::from(n), 0),
            Marker::Str8 | Marker::Bin8 => (1 + be(at, 1)?, 0),
            Marker::Str16 | Marker::Bin16 => (2 + be(at, 2)?, 0),
            Marker::Str32 | Marker::Bin32 => (4 + be(at, 4)?, 0),
            Marker::FixArray(n) => (0, u64::from(n)),
            Marker::FixMap(n) => (0, 2 * u64::from(n)),
            Marker::Array16 => (2, be(at, 2)?),
            Marker::Array32 => (4, be(at, 4)?),
            Marker::Map16 => (2, 2 * be(at, 2)?),
            Marker::Map32 => (4, 2 * be(at, 4)?),
            Marker::FixExt2 => (3, 0),
            Marker::FixExt4 => (5, 0),
            Marker::FixExt8 => (9, 0),
            Marker::FixExt16 => (17, 0),
            Marker::Ext8 => (2 + be(at, 1)?, 0),
            Marker::Ext16 => (3 + be(at, 2)?, 0),
            Marker::Ext32 => (5 + be(at, 4)?, 0),
            Marker::Reserved => return None,
        };
        at = at.checked_add(usize::try_from(skip).ok()?)?;
        if at > bytes.len() {
            return None;
        }
        // Every item takes at least one byte: more than are left cannot be there.
        pending = pending.checked_add(items)?;
        if pending > (bytes.len() - at) as u64 {
            return None;
        }
    }
    Some(at)
}

/// The value of a `MessagePack` payload that is exactly one integer fitting an `i64`.
pub(super) fn msgpack_int(payload: &[u8]) -> Option<i64> {
    let mut rest = payload;
    let n: i64 = rmp::decode::read_int(&mut rest).ok()?;
    rest.is_empty().then_some(n)
}
