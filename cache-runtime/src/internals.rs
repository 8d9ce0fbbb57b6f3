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

pub use crate::__private::{KeyBuilder, Out};
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
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match codec::inspect(bytes).ok()? {
        Stored::Value(meta, payload) => {
            codec::decode_payload(&codec::Format::default().unpack(meta.flags, payload).ok()?).ok()
        }
        Stored::Counter(n) => codec::decode_counter(n).ok(),
        Stored::Tombstone(_) => None,
    }
}
