//! The runtime of [cachette](https://docs.rs/cachette): the [`Cache`] handle, its
//! memory and Redis backends, the value format and fail-open error handling.
//!
//! Applications depend on `cachette`, which re-exports everything here.
//!
//! ```
//! # extern crate cachette_runtime as cachette;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cachette_runtime::Error> {
//! use std::time::Duration;
//!
//! let cache = cachette_runtime::Cache::memory();
//! let answer = cache.get_or_set("answer", || async { 42 }, Duration::from_secs(60)).await?;
//! assert_eq!(answer, 42);
//! # Ok(())
//! # }
//! ```

mod backend;
mod cache;
mod codec;
mod config;
mod error;
mod flight;
mod global;
mod key;
mod stats;
mod version;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use backend::breaker::{Circuit, Health};
pub use cache::{Cache, Cacheable, Namespace};
pub use config::{CacheBuilder, DEFAULT_TIMEOUT, Timeout};
pub use error::{BackendError, Error, Result};
pub use global::cache;
pub use key::DEFAULT_MAX_KEY_LENGTH;
pub use stats::Stats;
pub use version::{MAX_SCOPE, Scope};

/// The Redis client crate, for the types that appear in errors.
pub use redis;
