//! The `MessagePack` payload of an envelope: decoded only when it fills the
//! payload exactly (checked by a walk without recursion), and never deeper
//! than [`MAX_DEPTH`].

use std::any::{Any, TypeId};

use serde::de::DeserializeOwned;

use super::Undecodable;

/// Decodes a counter into a `T` (any integer type, or a newtype of one).
pub(crate) fn decode_counter<T: DeserializeOwned + 'static>(n: i64) -> Result<T, Undecodable> {
    let mut buf = Vec::with_capacity(9);
    rmp::encode::write_sint(&mut buf, n).map_err(|_| Undecodable)?;
    decode_payload(&buf)
}

/// How deep stored values may nest; deeper ones are undecodable (a miss).
const MAX_DEPTH: usize = 128;

/// Decodes a `MessagePack` payload that must be consumed whole.
pub(crate) fn decode_payload<T: DeserializeOwned + 'static>(
    payload: &[u8],
) -> Result<T, Undecodable> {
    if TypeId::of::<T>() == TypeId::of::<String>()
        && let Some(text) = text_of(payload)
    {
        // A `String` stored as a string: checked as UTF-8 with SIMD, which
        // costs a fraction of the byte-by-byte check of the generic decoder.
        let mut text = Some(text?);
        return (&mut text as &mut dyn Any)
            .downcast_mut::<Option<T>>()
            .and_then(Option::take)
            .ok_or(Undecodable);
    }
    decode_generic(payload)
}

/// [`decode_payload`] through the generic decoder, whatever `T` is.
fn decode_generic<T: DeserializeOwned>(payload: &[u8]) -> Result<T, Undecodable> {
    if msgpack_len(payload) != Some(payload.len()) {
        return Err(Undecodable);
    }
    // Reading from the slice itself: strings and bytes are copied once, into the value.
    let mut de = rmp_serde::Deserializer::from_read_ref(payload);
    // Hostile nesting must not overflow the stack of a recursive type's decoder.
    de.set_max_depth(MAX_DEPTH);
    T::deserialize(&mut de).map_err(|_| Undecodable)
}

/// The text of a payload that is one `MessagePack` string (`None` for any
/// other payload: the generic decoder judges it), undecodable when it is not
/// UTF-8 or does not fill the payload exactly.
fn text_of(payload: &[u8]) -> Option<Result<String, Undecodable>> {
    use rmp::Marker;
    let be = |from: usize, to: usize| {
        let bytes = payload.get(from..to)?;
        Some(
            bytes
                .iter()
                .fold(0_usize, |acc, &b| (acc << 8) | usize::from(b)),
        )
    };
    let (len, at) = match Marker::from_u8(*payload.first()?) {
        Marker::FixStr(n) => (Some(usize::from(n)), 1),
        Marker::Str8 => (be(1, 2), 2),
        Marker::Str16 => (be(1, 3), 3),
        Marker::Str32 => (be(1, 5), 5),
        _ => return None,
    };
    Some(match (len, payload.get(at..)) {
        (Some(len), Some(text)) if text.len() == len => simdutf8::basic::from_utf8(text)
            .map(str::to_owned)
            .map_err(|_| Undecodable),
        _ => Err(Undecodable),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings across every `MessagePack` string size, ASCII and not.
    fn texts() -> Vec<String> {
        let mut texts = Vec::new();
        for len in [0, 1, 31, 32, 255, 256, 65_535, 65_536] {
            texts.push("a".repeat(len));
            let wide: String = "é日🦀x".chars().cycle().take(len).collect();
            texts.push(wide);
        }
        texts
    }

    /// Payloads a `String` may meet: its own encodings, cut short or
    /// followed by a stray byte, with bad UTF-8 planted at the start, the
    /// middle and the end, and the same text as binary.
    fn payloads() -> Vec<Vec<u8>> {
        let mut payloads = Vec::new();
        for text in texts() {
            let encoded = rmp_serde::to_vec(&text).unwrap();
            let mut cut = encoded.clone();
            cut.pop();
            let mut longer = encoded.clone();
            longer.push(b'a');
            let mut binary = Vec::new();
            rmp::encode::write_bin(&mut binary, text.as_bytes()).unwrap();
            payloads.extend([encoded.clone(), cut, longer, binary]);
            let header = encoded.len() - text.len();
            for bad in [&[0xff][..], &[0x80], &[0xc0, 0x80], &[0xed, 0xa0, 0x80]] {
                for at in [0, text.len() / 2, text.len().saturating_sub(bad.len())] {
                    if at + bad.len() <= text.len() {
                        let mut planted = encoded.clone();
                        planted[header + at..header + at + bad.len()].copy_from_slice(bad);
                        payloads.push(planted);
                    }
                }
            }
        }
        payloads
    }

    #[test]
    fn strings_decode_as_the_generic_decoder_decodes_them() {
        let payloads = payloads();
        assert!(payloads.len() > 150);
        let mut decoded = 0;
        for payload in &payloads {
            let fast = decode_payload::<String>(payload).ok();
            assert_eq!(fast, decode_generic::<String>(payload).ok(), "{payload:?}");
            decoded += usize::from(fast.is_some());
        }
        // Some decode (the encodings and the binary forms), many do not.
        assert!(decoded >= 2 * texts().len(), "{decoded}");
        assert!(decoded < payloads.len() / 2, "{decoded}");
    }

    #[test]
    fn a_string_payload_is_not_read_as_another_type() {
        let encoded = rmp_serde::to_vec("42").unwrap();
        assert_eq!(decode_payload::<String>(&encoded), Ok("42".to_owned()));
        assert!(decode_payload::<u64>(&encoded).is_err());
        assert_eq!(
            decode_payload::<Vec<String>>(&rmp_serde::to_vec(&["a"]).unwrap()),
            Ok(vec!["a".to_owned()])
        );
    }
}
