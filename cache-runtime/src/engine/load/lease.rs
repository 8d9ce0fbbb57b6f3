//! The fleet-wide lease: with `#[cached(lock = ..)]` or
//! [`lock_lease`](crate::CacheBuilder::lock_lease), one process in the fleet
//! computes a cold key while the others wait for its value. The lease is a
//! key holding a random token, with an expiry, so a crashed holder frees it.

use std::time::Duration;

use crate::clock;
use crate::codec::Cacheable;
use crate::engine::Engine;
use crate::engine::read::{Lookup, Sight};
use crate::key::Internal;
use crate::observe::meters;
use crate::scope::Scope;

/// A lease this process holds: its key and its token.
pub(super) struct Held {
    key: String,
    token: String,
}

/// The fleet's lease on a key: held by this process (`None` when there is
/// no lease to hold), or not needed any more because the holder stored the
/// value.
pub(super) enum Lease<T> {
    Held(Option<Held>),
    Found(T),
}

impl Engine {
    /// With a lease (and a store shared by the fleet), makes this process
    /// the one that computes `key`: takes the lease, or waits for the
    /// holder's value (polling with backoff) and takes the lease over if it
    /// is released or expires — never longer than the lease, after which it
    /// computes anyway.
    pub(super) async fn lease<T: Cacheable>(
        &self,
        full: &str,
        scope: &Scope,
        lease: Option<Duration>,
    ) -> Lease<T> {
        let Some(ttl) = lease.filter(|_| self.backend.is_shared()) else {
            return Lease::Held(None);
        };
        // Named for the key as it was given (a shortened key, as stored).
        let name = self.keys.user_key(full).unwrap_or(full);
        let lock_key = self.keys.internal(Internal::Lock, name);
        let token = format!("{:x}", clock::random_id() >> 11);
        let start = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            match self.backend.acquire_lease(&lock_key, &token, ttl).await {
                Ok(true) => {
                    return Lease::Held(Some(Held {
                        key: lock_key,
                        token,
                    }));
                }
                Ok(false) => {}
                Err(error) => {
                    // Fail open: compute without the fleet's lease.
                    self.failed_aside(&error);
                    return Lease::Held(None);
                }
            }
            if start.elapsed() >= ttl {
                meters::count("cachette_lease_timeouts_total", self.counters().label());
                return Lease::Held(None);
            }
            meters::count("cachette_lease_waits_total", self.counters().label());
            tokio::time::sleep(pause.min(ttl.saturating_sub(start.elapsed()))).await;
            pause = (pause * 2).min(Duration::from_millis(100));
            if let Ok(Lookup::Hit(value)) = self
                .read_for_write::<T>(full, scope, None, Sight::none())
                .await
            {
                return Lease::Found(value);
            }
        }
    }

    /// Releases a lease this process holds (if it expired meanwhile, nothing happens).
    pub(super) async fn release_lease(&self, held: Held) {
        if let Err(error) = self.backend.release_lease(&held.key, &held.token).await {
            // The lease expires on its own.
            self.failed_aside(&error);
        }
    }
}
