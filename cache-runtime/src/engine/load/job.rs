//! What a load is given ([`Job`]: the computation, whether to store its
//! outcome, what of it to store) and what it comes back with ([`Loaded`]).

use crate::Error;
use crate::engine::Pick;
use crate::observe::Served;

/// What a computation is: the future that computes the outcome `O`, whether
/// to store a given outcome, and what of it to store.
pub(crate) struct Job<Fut, S, T, O> {
    pub(crate) compute: Fut,
    pub(crate) store_if: S,
    pub(crate) pick: Pick<T, O>,
    /// Outcomes that are not to be shared with the callers that waited for
    /// them: each of those computes its own at once, instead of one taking
    /// over after the other. `None`: an outcome without a value to store
    /// (an error) hands over to one caller.
    pub(crate) unshared: Option<fn(&O) -> bool>,
}

impl<T, O> Job<(), fn(&O) -> bool, T, O> {
    /// A computation of the direct API: `compute` runs only on a miss, and
    /// every outcome `pick` takes a value from is stored.
    pub(crate) fn direct<F, Fut>(
        compute: F,
        pick: Pick<T, O>,
    ) -> Job<impl Future<Output = O>, fn(&O) -> bool, T, O>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        Job {
            compute: async move { compute().await },
            store_if: |_| true,
            pick,
            unshared: None,
        }
    }
}

#[cfg(feature = "http")]
impl<Fut, S, T, O> Job<Fut, S, T, O> {
    /// Outcomes `unshared` picks are not handed to the callers that waited:
    /// each computes its own.
    pub(crate) fn unshared(mut self, unshared: fn(&O) -> bool) -> Self {
        self.unshared = Some(unshared);
        self
    }
}

/// What a load came back with: the outcome, when there is one, the
/// cache's error, when there is one, and how the outcome was come by.
pub(crate) struct Loaded<O> {
    pub(crate) outcome: Option<O>,
    pub(crate) error: Option<Error>,
    pub(crate) served: Served,
    /// An in-process store served it.
    pub(crate) near: bool,
}

impl<O> Loaded<O> {
    /// A hit (`near`: served by an in-process store).
    pub(super) fn hit(outcome: O, near: bool) -> Self {
        Self {
            near,
            ..Self::served(outcome, Served::Hit)
        }
    }

    /// No outcome: the cache's `error` (a computation abandoned past its
    /// hard timeout, when nothing in the outcome can report it).
    pub(super) fn failed(error: Error, served: Served) -> Self {
        Self {
            outcome: None,
            error: Some(error),
            served,
            near: false,
        }
    }

    pub(super) fn served(outcome: O, served: Served) -> Self {
        Self {
            outcome: Some(outcome),
            error: None,
            served,
            near: false,
        }
    }

    /// The outcome, or the cache's error when there is one (a value that
    /// cannot be encoded, or any failure without fail-open).
    pub(crate) fn into_result(self) -> Result<O, Error> {
        match (self.outcome, self.error) {
            (_, Some(error)) => Err(error),
            (Some(outcome), None) => Ok(outcome),
            // A load without an error has an outcome: only a failed read
            // without `compute_on_error` ends with none, and it has its error.
            (None, None) => Err(Error::Unavailable {
                reason: "the computation ended without an outcome".to_owned(),
            }),
        }
    }
}
