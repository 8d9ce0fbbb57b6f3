//! Keys of cached calls: the key of one call ([`CallKey`]), derived keys
//! ([`KeyBuilder`]: the function's path and a digest of its arguments) and
//! key templates (`{name}` rendered without the formatting machinery for
//! integers and strings).

use serde::Serialize;

use crate::Cache;
use crate::scope::Scope;

/// The key of one call, and the cache it goes to.
#[derive(Debug)]
pub struct CallKey {
    pub cache: Cache,
    pub key: String,
    pub scope: Scope,
}

/// The scope of a call: its namespace and its rendered tags.
#[must_use]
pub fn scope(namespace: Option<&'static str>, tags: Vec<String>) -> Scope {
    Scope::from_parts(namespace, tags)
}

/// Builds a derived key: the function's path, then a digest of its
/// arguments, each encoded with serde (`MessagePack`, which is
/// self-delimiting, so the sequence of encodings identifies the arguments).
/// The encodings stream into the digest: nothing is allocated but the key.
pub struct KeyBuilder {
    path: &'static str,
    self_type: Option<&'static str>,
    digest: xxhash_rust::xxh3::Xxh3Default,
}

/// Feeds what a serializer writes into the digest.
struct Feed<'a>(&'a mut xxhash_rust::xxh3::Xxh3Default);

impl std::io::Write for Feed<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl KeyBuilder {
    #[must_use]
    pub fn new(path: &'static str) -> Self {
        Self {
            path,
            self_type: None,
            digest: xxhash_rust::xxh3::Xxh3Default::new(),
        }
    }

    /// For methods: `path` is the module, and the key names `S` and the method.
    #[must_use]
    pub fn method<S: ?Sized>(path: &'static str) -> Self {
        Self {
            self_type: Some(std::any::type_name::<S>()),
            ..Self::new(path)
        }
    }

    /// Adds one argument to the key.
    pub fn arg<T: KeyArg + ?Sized>(&mut self, value: &T) {
        let mut ser = rmp_serde::Serializer::new(Feed(&mut self.digest)).with_struct_map();
        if let Err(error) = value.serialize(&mut ser) {
            // Keep keys distinct even for an argument that refuses to encode:
            // mark the failure and its type, and log it.
            tracing::warn!(
                argument = std::any::type_name::<T>(),
                %error,
                "a cache key argument could not be encoded"
            );
            self.digest.update(b"\xc1");
            self.digest.update(std::any::type_name::<T>().as_bytes());
        }
    }

    /// `{path}::{fn}:{digest}`, or `{Self type}::{fn}:{digest}` for methods.
    #[must_use]
    pub fn finish(self, function: &str) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = self.digest.digest128();
        let owner = self.self_type.unwrap_or(self.path);
        let mut key = String::with_capacity(owner.len() + function.len() + 35);
        key.push_str(owner);
        key.push_str("::");
        key.push_str(function);
        key.push(':');
        let mut hex = [0_u8; 32];
        for (i, digit) in hex.iter_mut().enumerate() {
            let nibble = (digest >> ((31 - i) * 4)) & 0xf;
            *digit = HEX[usize::try_from(nibble).unwrap_or(0)];
        }
        key.push_str(std::str::from_utf8(&hex).unwrap_or_default());
        key
    }
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
    fn push_to(&self, out: &mut String);
}

/// Writes a template value with `Display`, as `format!("{}")` does.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be rendered into a cache key template",
    label = "a template value must implement `Display` (or be written `{{name:?}}` for `Debug`)"
)]
pub trait PartDisplay {
    fn push_to(&self, out: &mut String);
}

impl<T: std::fmt::Display + ?Sized> PartDisplay for &Part<'_, T> {
    fn push_to(&self, out: &mut String) {
        use std::fmt::Write as _;
        // Writing to a `String` cannot fail.
        let _ = write!(out, "{}", self.0);
    }
}

impl PartFast for Part<'_, str> {
    fn push_to(&self, out: &mut String) {
        out.push_str(self.0);
    }
}

impl PartFast for Part<'_, String> {
    fn push_to(&self, out: &mut String) {
        out.push_str(self.0);
    }
}

/// Through references: templates read arguments by reference.
impl<T: ?Sized> PartFast for Part<'_, &T>
where
    for<'b> Part<'b, T>: PartFast,
{
    fn push_to(&self, out: &mut String) {
        Part(*self.0).push_to(out);
    }
}

macro_rules! fast_signed {
    ($($t:ty),*) => {$(
        impl PartFast for Part<'_, $t> {
            fn push_to(&self, out: &mut String) {
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
            fn push_to(&self, out: &mut String) {
                push_decimal(out, false, u64::try_from(*self.0).unwrap_or(u64::MAX));
            }
        }
    )*};
}
fast_unsigned!(u8, u16, u32, u64, usize);

/// Writes `n` in decimal, with a `-` first when `negative`.
fn push_decimal(out: &mut String, negative: bool, mut n: u64) {
    let mut digits = [0_u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        out.push('-');
    }
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

/// Writes a template value with `Debug` (`{name:?}`).
pub fn push_debug<T: std::fmt::Debug + ?Sized>(out: &mut String, value: &T) {
    use std::fmt::Write as _;
    let _ = write!(out, "{value:?}");
}

#[cfg(test)]
mod tests {
    use super::{Part, PartDisplay as _, PartFast as _};

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
