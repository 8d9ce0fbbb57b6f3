//! Where entries live in the backend: prefixes, escaping and long keys.
//!
//! A stored key is `{prefix}:{key}`. The prefix is escaped so that it never
//! holds a `:` or `#` of its own, which makes the first `:` or `#` the end of
//! the prefix: no key given to one cache can reach another cache's prefix,
//! and everything after `{prefix}#` is cachette's own space ([`Internal`]:
//! shortened keys, version counters, leases), out of reach of any user key.

use std::fmt::Write as _;

/// The default bound on the length of a stored key, in bytes.
pub const DEFAULT_MAX_KEY_LENGTH: usize = 250;

/// Room a shortened key needs after the prefix: `#long:`, `:` and 32 hex digits.
const SHORTENED_OVERHEAD: usize = "#long:".len() + 1 + 32;

/// The smallest head of the user key a shortened key keeps, so it stays readable.
const MIN_HEAD: usize = 16;

/// The key space of one cache: its escaped prefix and its length bound.
#[derive(Debug, Clone)]
pub(crate) struct KeySpace {
    prefix: String,
    max_len: usize,
}

impl KeySpace {
    /// Builds the key space, or says why the prefix and bound do not fit.
    pub(crate) fn new(prefix: &str, max_len: usize) -> Result<Self, String> {
        let prefix = escape_prefix(prefix);
        let needed = prefix.len() + SHORTENED_OVERHEAD + MIN_HEAD;
        if max_len < needed {
            return Err(format!(
                "max_key_length {max_len} is too small for the prefix `{prefix}`: it needs at least {needed}"
            ));
        }
        Ok(Self { prefix, max_len })
    }

    /// The escaped prefix, as it appears in Redis.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The bound on stored key length.
    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    /// Whether `stored` is a key of this key space (an entry or an internal key).
    pub(crate) fn owns(&self, stored: &str) -> bool {
        stored
            .strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.starts_with([':', '#']))
    }

    /// The stored key of the user key `key`.
    pub(crate) fn entry(&self, key: &str) -> String {
        let len = self.prefix.len() + 1 + key.len();
        if len <= self.max_len {
            let mut out = String::with_capacity(len);
            out.push_str(&self.prefix);
            out.push(':');
            out.push_str(key);
            return out;
        }
        self.shortened(key)
    }

    /// `{prefix}#long:{head}:{digest}`: a key over the bound, shortened.
    fn shortened(&self, key: &str) -> String {
        let room = self.max_len - self.prefix.len() - SHORTENED_OVERHEAD;
        let mut head_len = room.min(key.len());
        while !key.is_char_boundary(head_len) {
            head_len -= 1;
        }
        let digest = xxhash_rust::xxh3::xxh3_128(key.as_bytes());
        let mut out = String::with_capacity(self.max_len);
        out.push_str(&self.prefix);
        out.push('#');
        out.push_str(Internal::Shortened.as_str());
        out.push(':');
        out.push_str(&key[..head_len]);
        // Writing to a `String` cannot fail.
        let _ = write!(out, ":{digest:032x}");
        out
    }

    /// An internal key, `{prefix}#{kind}:{name}`, out of reach of every user key.
    pub(crate) fn internal(&self, kind: Internal, name: &str) -> String {
        let kind = kind.as_str();
        let mut out = String::with_capacity(self.prefix.len() + kind.len() + name.len() + 2);
        out.push_str(&self.prefix);
        out.push('#');
        out.push_str(kind);
        out.push(':');
        out.push_str(name);
        out
    }

    /// The SCAN pattern matching every key of this cache, entries and internal keys.
    pub(crate) fn scan_pattern(&self) -> String {
        format!("{}[:#]*", self.prefix)
    }
}

/// The kinds of keys in cachette's own space, `{prefix}#{kind}:…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Internal {
    /// A namespace's version.
    Namespace,
    /// A tag's version.
    Tag,
    /// A fleet-wide lease on computing an entry.
    Lock,
    /// An entry whose key is too long, shortened with a digest.
    Shortened,
}

impl Internal {
    fn as_str(self) -> &'static str {
        match self {
            Self::Namespace => "ns",
            Self::Tag => "tag",
            Self::Lock => "lock",
            Self::Shortened => "long",
        }
    }
}

/// Escapes a prefix so that it holds no separator (`:`, `#`), no escape
/// character (`%`), no glob character and no control character.
fn escape_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '%' | ':' | '#' | '*' | '?' | '[' | ']' | '\\') || c.is_control() {
            let mut buf = [0; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(prefix: &str) -> KeySpace {
        KeySpace::new(prefix, DEFAULT_MAX_KEY_LENGTH).unwrap()
    }

    #[test]
    fn plain_keys_read_as_written() {
        assert_eq!(space("shop").entry("user:42"), "shop:user:42");
        assert_eq!(space("").entry("k"), ":k");
    }

    #[test]
    fn separators_in_prefixes_are_escaped() {
        // Without escaping both would be `a:b:c`.
        let one = space("a").entry("b:c");
        let two = space("a:b").entry("c");
        assert_ne!(one, two);
        assert_eq!(two, "a%3Ab:c");
        assert_eq!(space("50%#*").prefix(), "50%25%23%2A");
    }

    #[test]
    fn long_keys_are_shortened_and_stay_distinct() {
        let space = space("shop");
        let a = "x".repeat(1000);
        let b = format!("{}y", "x".repeat(999));
        let (ka, kb) = (space.entry(&a), space.entry(&b));
        assert!(ka.len() <= DEFAULT_MAX_KEY_LENGTH, "{}", ka.len());
        assert!(ka.starts_with("shop#long:xxxx"));
        assert_ne!(ka, kb);
        assert_eq!(ka, space.entry(&a));
    }

    #[test]
    fn shortening_respects_char_boundaries() {
        let key = "é".repeat(300);
        let stored = space("p").entry(&key);
        assert!(stored.len() <= DEFAULT_MAX_KEY_LENGTH);
    }

    #[test]
    fn a_user_key_cannot_forge_a_shortened_key() {
        let space = space("p");
        let long = "k".repeat(400);
        // The user key is everything after the prefix of the shortened key.
        let forged = space.entry(&space.entry(&long)["p".len()..]);
        assert_ne!(forged, space.entry(&long));
    }

    #[test]
    fn too_small_a_bound_is_refused() {
        assert!(KeySpace::new("prefix", 20).is_err());
    }
}
