//! The runtime of [cachette](https://docs.rs/cachette): the [`Cache`] handle, its
//! memory and Redis backends, the value format and fail-open error handling.
//!
//! Applications depend on `cachette`, which re-exports everything here.
//! `ARCHITECTURE.md` at the root of the repository maps the modules.
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

// On docs.rs: each feature-gated item says which feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The handle and what it is built from.
mod builder;
mod cache;
mod global;
mod options;

// The engine room: a read, a miss, a write, single flight.
mod engine;

// The stores, and what goes into them.
mod backend;
mod codec;
mod key;
mod scope;

// What calls count and record.
mod observe;

// Everything else.
mod budget;
mod clock;
mod error;

#[doc(hidden)]
pub mod __private;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "internals")]
pub mod internals;

pub use backend::breaker::{Circuit, Health, Tracking};
pub use backend::info::{ServerInfo, ServerKind, Version};
pub use budget::with_budget;
pub use builder::CacheBuilder;
pub use cache::{Batch, Cache, Invalidated, Lock, Namespace};
pub use codec::Cacheable;
pub use error::{BackendError, Error, Result};
pub use global::cache;
pub use key::DEFAULT_MAX_KEY_LENGTH;
pub use observe::{FunctionStats, Stats};
pub use options::{DEFAULT_TIMEOUT, Timeout};
pub use scope::{MAX_SCOPE, Scope};

/// The Redis client crate, for the types that appear in errors.
pub use redis;
