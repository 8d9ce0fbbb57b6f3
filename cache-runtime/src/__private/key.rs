//! Keys of cached calls: the key of one call ([`CallKey`]) rendered into a
//! [`KeyBuf`] that begins with the cache's prefix, derived keys
//! ([`KeyBuilder`]: the function's path and a digest of its arguments) and
//! key templates (`{name}` rendered without the formatting machinery for
//! integers and strings).

use std::borrow::Cow;
use std::fmt;

use arrayvec::ArrayVec;
use serde::Serialize;

use crate::global::CacheRef;
use crate::key::StoredKey;
use crate::scope::Scope;

/// The key of one call, and the cache it goes to.
#[derive(Debug)]
pub struct CallKey<'a> {
    pub cache: CacheRef<'a>,
    pub key: KeyBuf,
    pub scope: Scope,
}

impl<'a> CallKey<'a> {
    /// The key of a call to `cache` in `scope`, not yet written (made blank
    /// where it stays: made whole and moved, it was copied on every call).
    #[must_use]
    #[inline]
    pub fn blank(cache: CacheRef<'a>, scope: Scope) -> Self {
        Self {
            cache,
            key: KeyBuf {
                text: StoredKey::default(),
                key_at: 0,
            },
            scope,
        }
    }

    /// Begins the key: the cache's prefix and `:`.
    #[inline]
    pub fn begin(&mut self) {
        self.key
            .text
            .push_str(self.cache.engine.keys().entry_head());
        self.key.key_at = self.key.text.len();
    }

    /// The same key, with its own handle on the cache.
    #[must_use]
    pub fn into_owned(self) -> CallKey<'static> {
        CallKey {
            cache: self.cache.into_owned(),
            key: self.key,
            scope: self.scope,
        }
    }

    /// The key as it is stored: prefix, `:` and the key, or its shortened
    /// form when that is over the cache's bound.
    // On an in-process hit's path: inlined, it costs the hit no call (hit_loop).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub(crate) fn stored(&self) -> Cow<'_, str> {
        let keys = self.cache.engine.keys();
        let stored = self.key.as_str();
        if stored.len() <= keys.max_len() {
            Cow::Borrowed(stored)
        } else {
            Cow::Owned(keys.entry(self.key.as_given()))
        }
    }
}

/// A call's stored key being rendered: the cache's prefix and `:`, then the
/// key; inline while it is short (see `StoredKey`).
pub struct KeyBuf {
    text: StoredKey,
    /// Where the key as given starts, after the prefix and `:`.
    key_at: usize,
}

impl KeyBuf {
    #[inline]
    pub fn push_str(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// Prefix, `:` and key.
    #[inline]
    fn as_str(&self) -> &str {
        &self.text
    }

    /// The key as it was given, without the prefix.
    pub(crate) fn as_given(&self) -> &str {
        &self.as_str()[self.key_at..]
    }
}

impl fmt::Write for KeyBuf {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.push_str(text);
        Ok(())
    }
}

impl fmt::Debug for KeyBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Where template values are written: a call's key, or a tag.
pub trait Out: fmt::Write {
    fn push_str(&mut self, text: &str);
    fn push_char(&mut self, c: char);
}

impl Out for String {
    #[inline]
    fn push_str(&mut self, text: &str) {
        String::push_str(self, text);
    }

    #[inline]
    fn push_char(&mut self, c: char) {
        self.push(c);
    }
}

#[cfg(feature = "http")]
impl fmt::Write for StoredKey {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.push_str(text);
        Ok(())
    }
}

#[cfg(feature = "http")]
impl Out for StoredKey {
    #[inline]
    fn push_str(&mut self, text: &str) {
        StoredKey::push_str(self, text);
    }

    #[inline]
    fn push_char(&mut self, c: char) {
        StoredKey::push_char(self, c);
    }
}

impl Out for KeyBuf {
    #[inline]
    fn push_str(&mut self, text: &str) {
        KeyBuf::push_str(self, text);
    }

    #[inline]
    fn push_char(&mut self, c: char) {
        self.text.push_char(c);
    }
}

/// The scope of a call: its namespace and its rendered tags.
#[must_use]
#[inline]
pub fn scope(namespace: Option<&'static str>, tags: Vec<Cow<'static, str>>) -> Scope {
    Scope::from_parts(namespace, tags)
}

/// Builds a derived key: the function's path, then a digest of its
/// arguments, each encoded with serde (`MessagePack`, which is
/// self-delimiting, so the sequence of encodings identifies the arguments).
/// The encodings stream into the digest: nothing is allocated but the key.
pub struct KeyBuilder {
    /// What holds the function: its module, or the type of its `impl`.
    owner: &'static str,
    encoded: Encoded,
}

/// The arguments' encodings: kept inline while they are short (hashed at
/// once at the end, which is cheaper), streamed into the digest past that.
/// Both give the same digest.
enum Encoded {
    Inline(ArrayVec<u8, INLINE_ARGS>),
    Streamed(Box<xxhash_rust::xxh3::Xxh3Default>),
}

/// The most bytes of encoded arguments kept inline.
const INLINE_ARGS: usize = 128;

impl std::io::Write for Encoded {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Inline(inline) => {
                if inline.try_extend_from_slice(bytes).is_err() {
                    let mut digest = Box::new(xxhash_rust::xxh3::Xxh3Default::new());
                    digest.update(inline);
                    digest.update(bytes);
                    *self = Self::Streamed(digest);
                }
            }
            Self::Streamed(digest) => digest.update(bytes),
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Encoded {
    fn digest(&self) -> u128 {
        match self {
            Self::Inline(inline) => xxhash_rust::xxh3::xxh3_128(inline),
            Self::Streamed(digest) => digest.digest128(),
        }
    }
}

impl KeyBuilder {
    /// For the function held by `owner` (a module path, or a type).
    #[must_use]
    pub fn new(owner: &'static str) -> Self {
        Self {
            owner,
            encoded: Encoded::Inline(ArrayVec::new()),
        }
    }

    /// `probe` is a closure made in the function's body, whose type's name
    /// is the function's own path with every generic argument of the `impl`
    /// it may sit in (`shop::Repo<shop::User>::by_id::{{closure}}`, or
    /// `<shop::Db as shop::Load>::get::{{closure}}` in a trait's). The key
    /// names what holds the function: its module, or the type of its `impl`
    /// with that type's arguments (and the trait), so that two `impl`s, or
    /// two instances of one generic `impl`, never share keys. `ends` are what the probe's name most likely ends with after the
    /// owner, in the function and in its key's companion
    /// (`::total::{{closure}}::{{closure}}`, `::__cachette_key_total::{{closure}}`):
    /// found at once, they spare a scan of the name.
    #[must_use]
    pub fn within<F>(probe: &F, ends: [&str; 2]) -> Self {
        let name = std::any::type_name_of_val(probe);
        let owner = ends
            .iter()
            .find_map(|end| name.strip_suffix(end))
            .unwrap_or_else(|| owner(name));
        Self::new(owner)
    }

    /// Adds one argument to the key.
    pub fn arg<T: KeyArg + ?Sized>(&mut self, value: &T) {
        use std::io::Write as _;
        let mut ser = rmp_serde::Serializer::new(&mut self.encoded).with_struct_map();
        if let Err(error) = value.serialize(&mut ser) {
            // Keep keys distinct even for an argument that refuses to encode:
            // mark the failure and its type, and log it.
            tracing::warn!(
                argument = std::any::type_name::<T>(),
                %error,
                "a cache key argument could not be encoded"
            );
            let _ = self.encoded.write(b"\xc1");
            let _ = self.encoded.write(std::any::type_name::<T>().as_bytes());
        }
    }

    /// Adds a type argument of a generic function (or the type hidden behind
    /// an `impl Trait` argument) to the key: the instances of one generic
    /// function are functions of their own, and never share keys.
    pub fn generic<T: ?Sized>(&mut self) {
        use std::io::Write as _;
        // `0xc1` is never MessagePack; `0x00` tells it from an argument that
        // failed to encode (`0xc1` and its type's name).
        let _ = self.encoded.write(b"\xc1\x00");
        let _ = self.encoded.write(std::any::type_name::<T>().as_bytes());
    }

    /// Adds one argument and its type to the key: for an argument whose type
    /// is `impl Trait`, which the key would otherwise not tell apart.
    pub fn arg_typed<T: KeyArg + ?Sized>(&mut self, value: &T) {
        self.generic::<T>();
        self.arg(value);
    }

    /// Writes `{owner}::{fn}:{digest}`.
    pub fn finish(self, function: &str, key: &mut impl Out) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = self.encoded.digest();
        key.push_str(self.owner);
        key.push_str("::");
        key.push_str(function);
        key.push_str(":");
        let mut hex = [0_u8; 32];
        for (i, digit) in hex.iter_mut().enumerate() {
            let nibble = (digest >> ((31 - i) * 4)) & 0xf;
            *digit = HEX[usize::try_from(nibble).unwrap_or(0)];
        }
        key.push_str(std::str::from_utf8(&hex).unwrap_or_default());
    }
}

/// What holds the item a closure's type `name` was made in: the name
/// without its closures (`{{closure}}` segments, or any other segment in
/// braces) and without the item's own segment (its generic arguments
/// included, which the key hashes apart).
fn owner(name: &'static str) -> &'static str {
    let mut rest = name;
    loop {
        match last_segment(rest) {
            Some((before, last)) if last.starts_with('{') => rest = before,
            Some((before, _)) => return before,
            None => return rest,
        }
    }
}

/// `name` split at its last `::` outside angle brackets.
fn last_segment(name: &str) -> Option<(&str, &str)> {
    let bytes = name.as_bytes();
    let mut depth = 0_usize;
    let mut at = bytes.len();
    while at > 1 {
        at -= 1;
        match bytes[at] {
            // The arrow of a function type (`fn() -> T`) closes nothing.
            b'>' if at > 0 && bytes[at - 1] == b'-' => {}
            b'>' => depth += 1,
            b'<' => depth = depth.saturating_sub(1),
            b':' if depth == 0 && bytes[at - 1] == b':' => {
                return Some((&name[..at - 1], &name[at + 1..]));
            }
            _ => {}
        }
    }
    None
}

/// An argument that can be part of a derived cache key.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key: it does not implement `serde::Serialize`",
    label = "this argument is hashed into the cache key",
    note = "leave it out of the key with `#[cached(skip(name))]`, or set the key with `#[cached(key = \"...\")]`"
)]
pub trait KeyArg: Serialize {}

impl<T: Serialize + ?Sized> KeyArg for T {}

/// A value rendered into a key template. Integers and strings take the
/// fast way ([`PartFast`]); everything else goes through `Display`
/// ([`PartDisplay`]), chosen by method resolution on `&Part(&value)`.
pub struct Part<'a, T: ?Sized>(pub &'a T);

/// Writes a template value without the formatting machinery.
pub trait PartFast {
    fn push_to(&self, out: &mut impl Out);
}

/// Writes a template value with `Display`, as `format!("{}")` does.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be rendered into a cache key template",
    label = "a template value must implement `Display` (or be written `{{name:?}}` for `Debug`)"
)]
pub trait PartDisplay {
    fn push_to(&self, out: &mut impl Out);
}

impl<T: std::fmt::Display + ?Sized> PartDisplay for &Part<'_, T> {
    fn push_to(&self, out: &mut impl Out) {
        // Writing to a key or a `String` cannot fail.
        let _ = write!(out, "{}", self.0);
    }
}

impl PartFast for Part<'_, str> {
    fn push_to(&self, out: &mut impl Out) {
        out.push_str(self.0);
    }
}

impl PartFast for Part<'_, String> {
    fn push_to(&self, out: &mut impl Out) {
        out.push_str(self.0);
    }
}

/// Through references: templates read arguments by reference.
impl<T: ?Sized> PartFast for Part<'_, &T>
where
    for<'b> Part<'b, T>: PartFast,
{
    fn push_to(&self, out: &mut impl Out) {
        Part(*self.0).push_to(out);
    }
}

macro_rules! fast_signed {
    ($($t:ty),*) => {$(
        impl PartFast for Part<'_, $t> {
            fn push_to(&self, out: &mut impl Out) {
                let n = i64::try_from(*self.0).unwrap_or(i64::MIN);
                push_decimal(out, n < 0, n.unsigned_abs());
            }
        }
    )*};
}
fast_signed!(i8, i16, i32, i64, isize);

macro_rules! fast_unsigned {
    ($($t:ty),*) => {$(
        impl PartFast for Part<'_, $t> {
            fn push_to(&self, out: &mut impl Out) {
                push_decimal(out, false, u64::try_from(*self.0).unwrap_or(u64::MAX));
            }
        }
    )*};
}
fast_unsigned!(u8, u16, u32, u64, usize);

/// Writes `n` in decimal, with a `-` first when `negative` (without
/// `fmt`'s machinery: keys are written on every call).
#[inline]
pub(crate) fn push_decimal(out: &mut impl Out, negative: bool, n: u64) {
    if negative {
        out.push_char('-');
    }
    if n < 10 {
        // One digit (a length, a small id): no buffer.
        out.push_char(char::from(b'0' + u8::try_from(n).unwrap_or(0)));
        return;
    }
    // The digits from the last one back, then written in order, one
    // character each (a copy of a few bytes costs more).
    let mut digits = [0_u8; 20];
    let (mut count, mut rest) = (0, n);
    loop {
        digits[count] = u8::try_from(rest % 10).unwrap_or(0);
        count += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &digit in digits[..count].iter().rev() {
        out.push_char(char::from(b'0' + digit));
    }
}

/// Writes a template value with `Debug` (`{name:?}`).
pub fn push_debug<T: std::fmt::Debug + ?Sized>(out: &mut impl Out, value: &T) {
    let _ = write!(out, "{value:?}");
}

#[cfg(test)]
mod tests {
    use super::{Part, PartDisplay as _, PartFast as _, owner};

    macro_rules! renders_as_format {
        ($($value:expr),* $(,)?) => {$({
            let value = $value;
            let mut out = String::new();
            (&Part(&value)).push_to(&mut out);
            assert_eq!(out, format!("{}", value), "{}", stringify!($value));
            let by_ref = &&value;
            let mut out = String::new();
            (&Part(&by_ref)).push_to(&mut out);
            assert_eq!(out, format!("{}", value), "&&{}", stringify!($value));
        })*};
    }

    #[test]
    fn the_owner_of_a_function_is_its_module_or_its_impl() {
        // What rustc names the closures of a function and of its companion.
        struct Repo<T>(std::marker::PhantomData<T>);
        impl<T> Repo<T> {
            fn by_id() -> &'static str {
                owner(std::any::type_name_of_val(&|| ()))
            }
            fn __cachette_key_by_id() -> &'static str {
                owner(std::any::type_name_of_val(&|| ()))
            }
        }
        for (name, holder) in [
            ("shop::orders::total::{{closure}}", "shop::orders"),
            (
                "shop::orders::total::{{closure}}::{{closure}}",
                "shop::orders",
            ),
            ("shop::orders::total<u32>::{{closure}}", "shop::orders"),
            (
                "shop::Repo<u32>::by_id::{{closure}}::{{closure}}",
                "shop::Repo<u32>",
            ),
            (
                "shop::Repo<alloc::string::String>::__cachette_key_by_id::{{closure}}",
                "shop::Repo<alloc::string::String>",
            ),
            ("shop::Grid<3>::size::{{closure}}", "shop::Grid<3>"),
            (
                "<shop::Db as shop::Load>::load::{{closure}}",
                "<shop::Db as shop::Load>",
            ),
            (
                "shop::Repo<fn() -> u8>::get::{closure#0}",
                "shop::Repo<fn() -> u8>",
            ),
            (
                "shop::Box<shop::Pair<u8, u16>>::get::{{closure}}",
                "shop::Box<shop::Pair<u8, u16>>",
            ),
        ] {
            assert_eq!(owner(name), holder, "{name}");
        }
        assert_eq!(Repo::<u8>::by_id(), Repo::<u8>::__cachette_key_by_id());
        assert_ne!(Repo::<u8>::by_id(), Repo::<u16>::by_id());
        assert!(
            Repo::<u8>::by_id().ends_with("Repo<u8>"),
            "{}",
            Repo::<u8>::by_id()
        );
        assert_eq!(owner(std::any::type_name_of_val(&|| ())), module_path!());
    }

    #[test]
    fn derived_keys_digest_every_argument_encoding_in_order() {
        #[derive(serde::Serialize)]
        struct Filter<'a> {
            category: &'a str,
            max_price: u32,
        }
        let long = "x".repeat(300);
        for (a, b) in [("books", 7_u32), (long.as_str(), 8), ("", 0)] {
            let filter = Filter {
                category: a,
                max_price: b,
            };
            let mut key = super::KeyBuilder::new("shop::catalog");
            key.arg(a);
            key.arg(&b);
            key.arg(&filter);
            let mut derived = String::new();
            key.finish("search", &mut derived);
            // What the key has always been: xxh3-128 of the encodings, one after the other.
            let mut encodings = rmp_serde::to_vec_named(a).unwrap();
            encodings.extend(rmp_serde::to_vec_named(&b).unwrap());
            encodings.extend(rmp_serde::to_vec_named(&filter).unwrap());
            let digest = xxhash_rust::xxh3::xxh3_128(&encodings);
            assert_eq!(derived, format!("shop::catalog::search:{digest:032x}"));
        }
    }

    #[test]
    fn keys_past_the_inline_room_keep_every_byte() {
        let cache = crate::Cache::memory();
        let mut call =
            super::CallKey::blank(crate::global::CacheRef::Owned(cache), crate::Scope::new());
        call.begin();
        let mut given = String::new();
        for piece in ["user:", "é✓", &"x".repeat(50), ":", &"y".repeat(100)] {
            call.key.push_str(piece);
            given.push_str(piece);
            assert_eq!(call.key.as_given(), given);
        }
        assert_eq!(call.key.as_str(), format!("cachette:{given}"));
    }

    #[test]
    fn template_values_render_as_format_does() {
        renders_as_format!(
            0_i64,
            -1_i64,
            i64::MIN,
            i64::MAX,
            u64::MAX,
            42_u8,
            i8::MIN,
            -7_i32,
            usize::MAX,
            isize::MIN,
            i128::MIN,
            u128::MAX,
            1.5_f64,
            'x',
            true,
            "text",
            String::from("owned"),
            "unicode: é ✓",
            std::net::Ipv4Addr::LOCALHOST,
        );
    }
}
