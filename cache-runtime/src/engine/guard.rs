//! What a read saw, and what the write after it must still find: the
//! guarded write that makes invalidation win over a computation already
//! under way.
//!
//! A miss records what its key held ([`Expected`]) and the versions of its
//! scope (the *stamps*). The computed value is written only if the key still
//! holds what the miss saw — an invalidation in between leaves a tombstone
//! with a new write id, which refuses the write — and carries the stamps,
//! so that a namespace or tag bumped in between makes it stale at once.

use crate::Error;
pub(crate) use crate::backend::Expected;
use crate::backend::{Expiry, GuardedWrite, Typed};
use crate::codec::{self, Cacheable, Freshness};
use crate::engine::Engine;
use crate::scope::VersionKeys;

/// The state a miss read, for the guarded write that stores the computed value.
#[derive(Debug)]
pub(crate) struct Guard {
    pub(crate) full_key: String,
    pub(crate) expected: Expected,
    /// The versions of the scope the computation starts under, in the order
    /// of [`Scope::version_keys`](crate::Scope).
    pub(crate) stamps: Vec<u64>,
}

impl Engine {
    /// Stores a computed value unless the key changed since the read that
    /// made `guard` (an invalidation, or another write). In memory the value
    /// is kept typed, so hits skip decoding.
    pub(crate) async fn write_guarded<T: Cacheable>(
        &self,
        guard: Guard,
        value: &T,
        expiry: Expiry,
        freshness: Freshness,
    ) -> Result<(), Error> {
        if expiry == Expiry::Now {
            return Ok(());
        }
        // Signed values are never counters: digits cannot carry a signature.
        let bytes = codec::encode_as(value, &guard.stamps, freshness, !self.seal.signs())?;
        let bytes = self.seal(&guard.full_key, bytes);
        let typed = self
            .backend
            .keeps_typed()
            .then(|| std::sync::Arc::new(value.clone()) as Typed);
        let written = self
            .backend
            .write_guarded(guard.full_key, bytes, typed, expiry, guard.expected)
            .await;
        match written {
            Ok(stored) => {
                if stored {
                    self.counters().writes(1);
                }
                Ok(())
            }
            Err(error) => self.backend_failed(error),
        }
    }

    /// The write of a computed value that [`write_guarded`](Self::write_guarded)
    /// makes, for a batch of them: encoded, stamped and sealed the same way.
    pub(crate) fn guarded_write<T: Cacheable>(
        &self,
        guard: Guard,
        value: &T,
        expiry: Expiry,
        freshness: Freshness,
    ) -> Result<GuardedWrite, Error> {
        let bytes = codec::encode_as(value, &guard.stamps, freshness, !self.seal.signs())?;
        Ok(GuardedWrite {
            bytes: self.seal(&guard.full_key, bytes),
            typed: (self.backend.keeps_typed())
                .then(|| std::sync::Arc::new(value.clone()) as Typed),
            key: guard.full_key,
            expiry,
            expected: guard.expected,
        })
    }

    /// The current versions at `vkeys`, creating the missing ones.
    pub(crate) async fn current_versions(&self, vkeys: &VersionKeys) -> Result<Vec<u64>, Error> {
        let versions = self.backend.versions(vkeys).await?;
        self.settle_versions(vkeys, versions).await
    }

    /// Fills the versions that were missing by creating their keys.
    pub(crate) async fn settle_versions(
        &self,
        vkeys: &VersionKeys,
        versions: Vec<Option<u64>>,
    ) -> Result<Vec<u64>, Error> {
        if versions.iter().all(Option::is_some) {
            return Ok(versions.into_iter().flatten().collect());
        }
        let missing: Vec<String> = vkeys
            .iter()
            .zip(&versions)
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_owned())
            .collect();
        let mut created = self.backend.create_versions(&missing).await?.into_iter();
        Ok(versions
            .into_iter()
            .map(|v| v.or_else(|| created.next()).unwrap_or_default())
            .collect())
    }
}
