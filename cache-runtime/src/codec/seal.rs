//! What a cache does to an envelope on its way to the store and back:
//! large payloads compressed (flag [`COMPRESSED`]), and a keyed signature
//! over the stored key and the envelope (flag [`SIGNED`], the MAC after the
//! payload), so that bytes planted by anyone who can write to Redis are a
//! miss rather than a value.
//!
//! The flags live in the envelope's flag byte, so a compressed payload is
//! never read as a raw one, nor the reverse. Counters (decimal text) are
//! neither compressed nor signed: Redis changes them in place.

use std::borrow::Cow;
use std::fmt;

use super::{FORMAT_V1, HEADER_LEN, Undecodable};

/// The flag of a payload compressed with LZ4 (block format, the
/// decompressed size first, 4 bytes little-endian).
pub(crate) const COMPRESSED: u8 = 2;

/// The flag of an envelope followed by its MAC ([`MAC_LEN`] bytes).
pub(crate) const SIGNED: u8 = 4;

/// The length of the MAC after a signed envelope: a keyed BLAKE3 hash.
pub(crate) const MAC_LEN: usize = 32;

/// Values whose payload is at least this long are compressed, unless the
/// builder says otherwise.
pub(crate) const DEFAULT_COMPRESS_ABOVE: usize = 1024;

/// The largest payload a compressed entry may claim; above it, a miss.
pub(crate) const DEFAULT_MAX_VALUE_BYTES: usize = 64 << 20;

/// The shortest secret the builder accepts.
pub(crate) const MIN_SECRET_LEN: usize = 16;

/// The context string from which signing keys are derived.
const KEY_CONTEXT: &str = "cachette 2026-11 stored value signatures";

/// How a cache writes and reads envelopes.
#[derive(Clone)]
pub(crate) struct Seal {
    /// Payloads at least this long are compressed; `None`: never.
    pub(crate) compress_above: Option<usize>,
    /// A compressed payload claiming more than this is refused.
    pub(crate) max_value_bytes: usize,
    /// The keys that sign (the first) and verify (any); empty: no signing.
    pub(crate) keys: Vec<[u8; 32]>,
}

impl fmt::Debug for Seal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seal")
            .field("compress_above", &self.compress_above)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("signing_keys", &self.keys.len())
            .finish()
    }
}

impl Default for Seal {
    fn default() -> Self {
        Self {
            compress_above: None,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            keys: Vec::new(),
        }
    }
}

/// A signing key from a secret of any length.
pub(crate) fn signing_key(secret: &[u8]) -> [u8; 32] {
    blake3::derive_key(KEY_CONTEXT, secret)
}

impl Seal {
    /// This format, signing with the first of `keys` and accepting any.
    pub(crate) fn signed_with(mut self, keys: Vec<[u8; 32]>) -> Self {
        self.keys = keys;
        self
    }

    /// Whether values are signed (and unsigned ones refused).
    pub(crate) fn signs(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Compresses and signs an encoded entry for the stored key `key`.
    /// Counters are returned as they are.
    pub(crate) fn seal(&self, key: &str, mut bytes: Vec<u8>) -> Vec<u8> {
        if bytes.first() != Some(&FORMAT_V1) || bytes.len() < HEADER_LEN {
            return bytes;
        }
        let body = HEADER_LEN + usize::from(bytes[HEADER_LEN - 1]) * 8;
        if let Some(above) = self.compress_above
            && bytes.len().saturating_sub(body) >= above
            && let Ok(size) = u32::try_from(bytes.len() - body)
        {
            let packed = lz4_flex::block::compress(&bytes[body..]);
            if packed.len() + 4 < bytes.len() - body {
                bytes.truncate(body);
                bytes.extend_from_slice(&size.to_le_bytes());
                bytes.extend_from_slice(&packed);
                bytes[1] |= COMPRESSED;
            }
        }
        if let Some(signer) = self.keys.first() {
            bytes[1] |= SIGNED;
            let mac = mac(signer, key, &bytes);
            bytes.extend_from_slice(mac.as_bytes());
        }
        bytes
    }

    /// Whether an envelope with these `flags`, stored at `key`, is to be
    /// believed: always without signing; with it, only when its MAC is one
    /// of this cache's keys' over `key` and the envelope.
    pub(crate) fn trusts(&self, key: &str, flags: u8, bytes: &[u8]) -> bool {
        if self.keys.is_empty() {
            return true;
        }
        if flags & SIGNED == 0 || bytes.len() < MAC_LEN {
            return false;
        }
        let (body, tail) = bytes.split_at(bytes.len() - MAC_LEN);
        let Ok(tail) = <[u8; MAC_LEN]>::try_from(tail) else {
            return false;
        };
        // `Hash == [u8; 32]` compares in constant time.
        self.keys.iter().any(|k| mac(k, key, body) == tail)
    }

    /// The `MessagePack` payload of an envelope with these `flags`:
    /// decompressed when it was compressed, within the size limit.
    pub(crate) fn unpack<'a>(
        &self,
        flags: u8,
        payload: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, Undecodable> {
        if flags & COMPRESSED == 0 {
            return Ok(Cow::Borrowed(payload));
        }
        unpack(payload, self.max_value_bytes).map(Cow::Owned)
    }
}

/// Decompresses a compressed payload claiming at most `limit` bytes. The
/// claim is checked before anything is allocated: LZ4 cannot expand a byte
/// into more than 255, so a larger claim is refused too.
pub(crate) fn unpack(payload: &[u8], limit: usize) -> Result<Vec<u8>, Undecodable> {
    let (size, packed) = payload.split_first_chunk::<4>().ok_or(Undecodable)?;
    let size = usize::try_from(u32::from_le_bytes(*size)).map_err(|_| Undecodable)?;
    if size > limit || size > packed.len().saturating_mul(255) {
        return Err(Undecodable);
    }
    let mut out = vec![0; size];
    match lz4_flex::block::decompress_into(packed, &mut out) {
        Ok(n) if n == size => Ok(out),
        _ => Err(Undecodable),
    }
}

/// The MAC of `body` stored at `key`: the key's length, the key, the body.
fn mac(signer: &[u8; 32], key: &str, body: &[u8]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(signer);
    hasher.update(&(key.len() as u64).to_le_bytes());
    hasher.update(key.as_bytes());
    hasher.update(body);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::super::{Freshness, Stored, decode_payload, encode, encode_stamped, parse};
    use super::*;

    fn text(n: usize) -> String {
        "the quick brown fox jumps over the lazy dog; "
            .repeat(n / 45 + 1)
            .chars()
            .take(n)
            .collect()
    }

    fn read(format: &Seal, key: &str, bytes: &[u8]) -> Option<String> {
        let Ok(Stored::Value(meta, payload)) = parse(bytes) else {
            return None;
        };
        if !format.trusts(key, meta.flags, bytes) {
            return None;
        }
        decode_payload(&format.unpack(meta.flags, payload).ok()?).ok()
    }

    fn compressing() -> Seal {
        Seal {
            compress_above: Some(DEFAULT_COMPRESS_ABOVE),
            ..Seal::default()
        }
    }

    #[test]
    fn large_payloads_are_compressed_and_read_back() {
        let format = compressing();
        let value = text(64 << 10);
        let plain = encode(&value).unwrap();
        let sealed = format.seal("k", plain.clone());
        assert!(
            sealed.len() < plain.len() / 4,
            "{} of {}",
            sealed.len(),
            plain.len()
        );
        assert_eq!(sealed[1] & COMPRESSED, COMPRESSED);
        assert_eq!(read(&format, "k", &sealed), Some(value.clone()));
        // A reader that compresses nothing still reads it.
        assert_eq!(read(&Seal::default(), "k", &sealed), Some(value));
    }

    #[test]
    fn small_and_incompressible_payloads_stay_raw() {
        let format = compressing();
        let small = format.seal("k", encode(&text(100)).unwrap());
        assert_eq!(small[1], 0);
        let mut state = 0x9e37_79b9_u32;
        let noise: String = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                char::from(b'a' + u8::try_from(state % 26).unwrap())
            })
            .collect();
        let raw = format.seal("k", encode(&noise).unwrap());
        assert_eq!(raw[1] & COMPRESSED, 0, "no gain, no flag");
        assert_eq!(format.seal("k", b"42".to_vec()), b"42", "counters pass");
    }

    #[test]
    fn a_raw_payload_flagged_compressed_is_undecodable() {
        let format = compressing();
        let mut bytes = encode(&text(2000)).unwrap();
        bytes[1] |= COMPRESSED;
        assert_eq!(read(&format, "k", &bytes), None);
    }

    #[test]
    fn a_bomb_is_refused_before_anything_is_allocated() {
        let format = Seal {
            max_value_bytes: 1 << 20,
            ..compressing()
        };
        let mut bytes = format.seal("k", encode(&"a".repeat(4 << 20)).unwrap());
        assert_eq!(bytes[1] & COMPRESSED, COMPRESSED);
        assert_eq!(read(&format, "k", &bytes), None, "over the limit");
        // A claim of 4 GiB behind a few bytes.
        let at = HEADER_LEN;
        bytes.truncate(at + 8);
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(unpack(&bytes[at..], usize::MAX).is_err());
    }

    #[test]
    fn signatures_bind_the_value_to_its_key_and_secret() {
        let format = Seal::default().signed_with(vec![signing_key(b"a secret of sixteen+")]);
        let other = Seal::default().signed_with(vec![signing_key(b"another secret, 16+")]);
        let sealed = format.seal("shop:price:7", encode(&text(10)).unwrap());
        assert_eq!(sealed[1] & SIGNED, SIGNED);
        assert_eq!(read(&format, "shop:price:7", &sealed), Some(text(10)));
        assert_eq!(
            read(&format, "shop:price:8", &sealed),
            None,
            "copied to another key"
        );
        assert_eq!(
            read(&other, "shop:price:7", &sealed),
            None,
            "another secret"
        );
        assert_eq!(
            read(&format, "shop:price:7", &encode(&text(10)).unwrap()),
            None,
            "unsigned"
        );
        for at in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[at] ^= 0x20;
            assert_eq!(
                read(&format, "shop:price:7", &flipped),
                None,
                "byte {at} flipped"
            );
        }
        // During a rotation both secrets are accepted; the first signs.
        let rotating = Seal::default().signed_with(vec![
            signing_key(b"another secret, 16+"),
            signing_key(b"a secret of sixteen+"),
        ]);
        assert_eq!(read(&rotating, "shop:price:7", &sealed), Some(text(10)));
        let resealed = rotating.seal("shop:price:7", encode(&text(10)).unwrap());
        assert_eq!(read(&other, "shop:price:7", &resealed), Some(text(10)));
        assert_eq!(read(&format, "shop:price:7", &resealed), None);
    }

    #[test]
    fn signed_and_compressed_stamped_values_keep_their_stamps() {
        let format = compressing().signed_with(vec![signing_key(b"a secret of sixteen+")]);
        let bytes = encode_stamped(&text(5000), &[3, 4], Freshness::default()).unwrap();
        let sealed = format.seal("k", bytes);
        let Ok(Stored::Value(meta, _)) = parse(&sealed) else {
            panic!("a value")
        };
        assert!(meta.stamped(&[Some(3), Some(4)]));
        assert_eq!(meta.flags, COMPRESSED | SIGNED);
        assert_eq!(read(&format, "k", &sealed), Some(text(5000)));
    }
}
