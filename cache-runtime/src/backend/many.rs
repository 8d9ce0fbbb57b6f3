//! The seam's operations on many keys at once: reads of many entries (and
//! a scope's versions), pipelined guarded writes, `set_many` and
//! `delete_many`, dispatched to the store as in `mod.rs`.

use super::memory::Slot;
use super::{Backend, Expiry, Found, GuardedWrite, unavailable};
use crate::Error;
use crate::scope::VersionKeys;

impl Backend {
    /// The entries at `keys`, in order; one round trip (none for those a
    /// local tier holds).
    pub(crate) async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Found>>, Error> {
        match self {
            Self::Memory(memory) => Ok(keys
                .iter()
                .map(|k| memory.get(k).map(Found::Slot))
                .collect()),
            Self::Redis(redis) => redis.get_many(keys).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// The entries at `keys` and the versions at `vkeys` (`None` where
    /// missing), in one round trip: one `MGET` (on a cluster one request
    /// per node, all sent at once).
    pub(crate) async fn read_many(
        &self,
        keys: &[String],
        vkeys: &VersionKeys,
    ) -> Result<(Vec<Option<Found>>, Vec<Option<u64>>), Error> {
        match self {
            Self::Memory(memory) => Ok((
                keys.iter()
                    .map(|k| memory.get(k).map(Found::Slot))
                    .collect(),
                memory.versions(vkeys),
            )),
            Self::Redis(redis) => redis.read_many(keys, vkeys).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Each write of `writes` where its key still holds what the read saw,
    /// pipelined; how many were stored.
    pub(crate) async fn write_guarded_many(
        &self,
        writes: Vec<GuardedWrite>,
    ) -> Result<usize, Error> {
        match self {
            Self::Memory(memory) => Ok(memory.write_guarded_many(writes)),
            Self::Redis(redis) => redis.write_guarded_many(&writes).await,
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Stores every `(key, bytes)` pair; one round trip.
    pub(crate) async fn set_many(
        &self,
        entries: Vec<(String, Vec<u8>)>,
        expiry: Expiry,
    ) -> Result<(), Error> {
        match self {
            Self::Memory(memory) => {
                for (key, bytes) in entries {
                    memory.set(key, Slot::new(bytes, None, expiry));
                }
                Ok(())
            }
            Self::Redis(redis) => {
                let result = redis.server().set_many(&entries, expiry).await;
                if result.is_ok() {
                    for (key, _) in &entries {
                        redis.pending().superseded(key);
                    }
                }
                let keys: Vec<String> = entries.into_iter().map(|(key, _)| key).collect();
                redis.wrote(&keys, result)
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }

    /// Deletes `keys`; how many held a live value.
    pub(crate) async fn delete_many(&self, keys: &[String]) -> Result<u64, Error> {
        match self {
            Self::Memory(memory) => {
                let mut n = 0;
                for key in keys {
                    n += u64::from(memory.delete(key));
                }
                Ok(n)
            }
            Self::Redis(redis) => {
                let result = redis.server().delete_many(keys).await;
                redis.wrote(keys, result)
            }
            Self::Unavailable(reason) => Err(unavailable(reason)),
        }
    }
}
