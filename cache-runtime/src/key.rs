//! Where entries live in the backend: prefixes, escaping and long keys.
//!
//! A stored key is `{prefix}:{key}`. The prefix is escaped so that it never
//! holds a `:` or `#` of its own, which makes the first `:` or `#` the end of
//! the prefix: no key given to one cache can reach another cache's prefix,
//! and everything after `{prefix}#` is cachette's own space ([`Internal`]:
//! shortened keys, version counters, leases), out of reach of any user key.

use std::fmt::Write as _;

use arrayvec::ArrayString;

/// The default bound on the length of a stored key, in bytes.
pub const DEFAULT_MAX_KEY_LENGTH: usize = 250;

/// Room a shortened key needs after the prefix: `#long:`, `:` and 32 hex digits.
const SHORTENED_OVERHEAD: usize = "#long:".len() + 1 + 32;

/// The smallest head of the user key a shortened key keeps, so it stays readable.
const MIN_HEAD: usize = 16;

/// The key space of one cache: its escaped prefix and its length bound.
#[derive(Debug, Clone)]
pub(crate) struct KeySpace {
    /// `{prefix}:`, where every entry's stored key starts (the escaped
    /// prefix is all of it but the `:`).
    entry_head: String,
    max_len: usize,
    /// `{prefix}#{kind}:` for each kind of internal key, in `Internal::ALL`'s order.
    heads: [String; Internal::ALL.len()],
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
        let heads = Internal::ALL.map(|kind| format!("{prefix}#{}:", kind.as_str()));
        Ok(Self {
            entry_head: format!("{prefix}:"),
            max_len,
            heads,
        })
    }

    /// The escaped prefix, as it appears in Redis.
    pub(crate) fn prefix(&self) -> &str {
        &self.entry_head[..self.entry_head.len() - 1]
    }

    /// `{prefix}:`, where every entry's stored key starts.
    pub(crate) fn entry_head(&self) -> &str {
        &self.entry_head
    }

    /// The bound on stored key length.
    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    /// Whether `stored` is a key of this key space (an entry or an internal key).
    pub(crate) fn owns(&self, stored: &str) -> bool {
        stored
            .strip_prefix(self.prefix())
            .is_some_and(|rest| rest.starts_with([':', '#']))
    }

    /// The stored key of the user key `key`.
    pub(crate) fn entry(&self, key: &str) -> String {
        let len = self.entry_head.len() + key.len();
        if len <= self.max_len {
            let mut out = String::with_capacity(len);
            out.push_str(&self.entry_head);
            out.push_str(key);
            return out;
        }
        self.shortened(key)
    }

    /// [`entry`](Self::entry) without an allocation when the stored key
    /// fits [`INLINE_KEY`] bytes.
    pub(crate) fn stored(&self, key: &str) -> StoredKey {
        if self.entry_head.len() + key.len() > self.max_len {
            return StoredKey(Text::Heap(self.shortened(key)));
        }
        let mut stored = StoredKey::default();
        stored.push_str(&self.entry_head);
        stored.push_str(key);
        stored
    }

    /// `{prefix}#long:{head}:{digest}`: a key over the bound, shortened.
    fn shortened(&self, key: &str) -> String {
        let room = self.max_len - self.prefix().len() - SHORTENED_OVERHEAD;
        let mut head_len = room.min(key.len());
        while !key.is_char_boundary(head_len) {
            head_len -= 1;
        }
        let digest = xxhash_rust::xxh3::xxh3_128(key.as_bytes());
        let mut out = String::with_capacity(self.max_len);
        out.push_str(self.prefix());
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
        let mut out = String::with_capacity(self.internal_len(kind, name));
        self.write_internal(&mut out, kind, name);
        out
    }

    /// The length of [`internal`](Self::internal)'s key.
    pub(crate) fn internal_len(&self, kind: Internal, name: &str) -> usize {
        self.heads[kind as usize].len() + name.len()
    }

    /// Writes [`internal`](Self::internal)'s key at the end of `out`.
    #[inline]
    pub(crate) fn write_internal(&self, out: &mut String, kind: Internal, name: &str) {
        out.push_str(&self.heads[kind as usize]);
        out.push_str(name);
    }

    /// The SCAN pattern matching the entries whose keys match `glob`.
    pub(crate) fn entry_pattern(&self, glob: &str) -> String {
        format!("{}{glob}", self.entry_head)
    }

    /// The key an entry was given, from its stored key (`None` for another
    /// cache's key, an internal key, or a shortened long key).
    pub(crate) fn user_key<'a>(&self, stored: &'a str) -> Option<&'a str> {
        stored.strip_prefix(self.entry_head.as_str())
    }

    /// The SCAN pattern matching every key of this cache, entries and internal keys.
    pub(crate) fn scan_pattern(&self) -> String {
        format!("{}[:#]*", self.prefix())
    }
}

/// The longest stored key kept inline by [`StoredKey`].
pub(crate) const INLINE_KEY: usize = 128;

/// A stored key, kept inline up to [`INLINE_KEY`] bytes (most keys, so a
/// call's key costs no allocation), on the heap past that.
pub(crate) struct StoredKey(Text);

enum Text {
    Inline(ArrayString<INLINE_KEY>),
    Heap(String),
}

impl Default for StoredKey {
    #[inline]
    fn default() -> Self {
        Self(Text::Inline(ArrayString::new()))
    }
}

impl StoredKey {
    #[inline]
    pub(crate) fn push_str(&mut self, text: &str) {
        if let Text::Inline(inline) = &mut self.0
            && inline.try_push_str(text).is_ok()
        {
            return;
        }
        self.push_on_heap(text);
    }

    #[inline]
    pub(crate) fn push_char(&mut self, c: char) {
        if let Text::Inline(inline) = &mut self.0
            && inline.try_push(c).is_ok()
        {
            return;
        }
        self.push_on_heap(c.encode_utf8(&mut [0; 4]));
    }

    /// Past the inline room: the key moves to the heap.
    fn push_on_heap(&mut self, text: &str) {
        match &mut self.0 {
            Text::Inline(inline) => {
                let mut heap = String::with_capacity(inline.len() + text.len() + 64);
                heap.push_str(inline);
                heap.push_str(text);
                self.0 = Text::Heap(heap);
            }
            Text::Heap(heap) => heap.push_str(text),
        }
    }
}

impl PartialEq for StoredKey {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for StoredKey {}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl std::ops::Deref for StoredKey {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        match &self.0 {
            Text::Inline(inline) => inline,
            Text::Heap(heap) => heap,
        }
    }
}

/// Whether `text` matches the glob `pattern` as Redis `SCAN … MATCH` reads
/// it, byte by byte: `*` any run, `?` one byte, `[abc]`, `[a-z]` and
/// `[^a]` classes, and `\\` escaping the next byte.
pub(crate) fn glob_matches(pattern: &str, text: &str) -> bool {
    fn class(pattern: &[u8], c: u8) -> Option<(bool, usize)> {
        // `pattern` starts after `[`; the match and the length up to `]`.
        let mut i = 0;
        let negate = pattern.first() == Some(&b'^');
        if negate {
            i += 1;
        }
        let mut matched = false;
        while i < pattern.len() && pattern[i] != b']' {
            if pattern[i] == b'\\' && i + 1 < pattern.len() {
                i += 1;
                matched |= pattern[i] == c;
            } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
                let (lo, hi) = (
                    pattern[i].min(pattern[i + 2]),
                    pattern[i].max(pattern[i + 2]),
                );
                matched |= (lo..=hi).contains(&c);
                i += 2;
            } else {
                matched |= pattern[i] == c;
            }
            i += 1;
        }
        (i < pattern.len()).then_some((matched != negate, i + 1))
    }
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') => (0..=t.len()).any(|skip| go(&p[1..], &t[skip..])),
            Some(b'?') => !t.is_empty() && go(&p[1..], &t[1..]),
            Some(b'[') if !t.is_empty() => match class(&p[1..], t[0]) {
                Some((true, len)) => go(&p[1 + len..], &t[1..]),
                Some((false, _)) => false,
                // No closing `]`: a literal `[`.
                None => t[0] == b'[' && go(&p[1..], &t[1..]),
            },
            Some(b'\\') if p.len() > 1 => !t.is_empty() && t[0] == p[1] && go(&p[2..], &t[1..]),
            Some(&c) => !t.is_empty() && t[0] == c && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
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
    /// The entries carrying a tag computed from their value.
    Members,
    /// The entries with tags from their value being computed now.
    Pending,
    /// An entry whose key is too long, shortened with a digest.
    Shortened,
}

impl Internal {
    /// Every kind, in declaration order (`kind as usize` is its place).
    const ALL: [Self; 6] = [
        Self::Namespace,
        Self::Tag,
        Self::Lock,
        Self::Members,
        Self::Pending,
        Self::Shortened,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Namespace => "ns",
            Self::Tag => "tag",
            Self::Lock => "lock",
            Self::Members => "members",
            Self::Pending => "pending",
            Self::Shortened => "long",
        }
    }
}

// `ALL` is in declaration order: `kind as usize` finds a kind's head.
const _: () = {
    let mut at = 0;
    while at < Internal::ALL.len() {
        assert!(Internal::ALL[at] as usize == at);
        at += 1;
    }
};

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
    fn stored_keys_are_entries_inline_or_not() {
        let keys = space("shop");
        for len in [0, 1, 100, 122, 123, 124, 200, 245, 246, 400] {
            let key = "é".repeat(len / 2) + &"k".repeat(len % 2);
            assert_eq!(&*keys.stored(&key), keys.entry(&key), "{len} bytes");
        }
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
    fn globs_match_as_redis_reads_them() {
        let cases = [
            ("user:*", "user:42", true),
            ("user:*", "users:42", false),
            ("user:?", "user:4", true),
            ("user:?", "user:42", false),
            ("user:[0-3]", "user:2", true),
            ("user:[0-3]", "user:7", false),
            ("user:[^0-3]", "user:7", true),
            ("user:[ab]x", "user:bx", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("*:*:*", "a:b:c", true),
            ("*", "", true),
            ("[", "[", true),
            ("p:*", "p#tag:x", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(glob_matches(pattern, text), want, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn user_keys_are_read_back_from_stored_keys() {
        let space = space("shop");
        assert_eq!(space.user_key(&space.entry("user:7")), Some("user:7"));
        assert_eq!(space.user_key("shop#tag:x"), None);
        assert_eq!(space.user_key("other:user:7"), None);
        assert_eq!(space.entry_pattern("user:*"), "shop:user:*");
    }

    #[test]
    fn too_small_a_bound_is_refused() {
        assert!(KeySpace::new("prefix", 20).is_err());
    }
}
