//! The parts every clone of a [`Cache`](crate::Cache) shares: the backend,
//! the key space, the options, the counters and the flights. The read path,
//! the miss engine and the guarded writes are methods of [`Inner`], in the
//! rooms named for them.

use std::sync::Arc;

use crate::Error;
use crate::backend::Backend;
use crate::codec::Format;
use crate::flight::Flights;
use crate::key::KeySpace;
use crate::options::Options;
use crate::stats::Counters;

pub(crate) struct Inner {
    pub(crate) backend: Arc<Backend>,
    pub(crate) keys: KeySpace,
    pub(crate) options: Options,
    /// How envelopes are compressed and signed.
    pub(crate) format: Format,
    pub(crate) counters: Counters,
    pub(crate) flights: Flights,
}

impl Inner {
    /// The one constructor: fresh counters and flights over the given parts.
    pub(crate) fn new(
        backend: Arc<Backend>,
        keys: KeySpace,
        options: Options,
        format: Format,
    ) -> Self {
        Self {
            backend,
            keys,
            options,
            format,
            counters: Counters::default(),
            flights: Flights::new(options.single_flight),
        }
    }

    /// Counts and logs a backend error; swallows it when failing open.
    pub(crate) fn backend_failed(&self, error: Error) -> Result<(), Error> {
        let ignore = self.options.fail_open && error.is_backend();
        if error.is_backend() {
            self.counters.backend_error(&error, ignore);
        }
        if ignore { Ok(()) } else { Err(error) }
    }
}
