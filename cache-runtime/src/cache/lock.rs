//! Locks through the cache's store, as django-redis' `cache.lock`: a key in
//! cachette's own space holding the owner's random token, with a lease (an
//! expiry) so that a crashed owner frees it. `#[cached(lock = ..)]` takes
//! the same lease, named by the entry's key.

use std::time::Duration;

use super::Cache;
use crate::Error;
use crate::clock;
use crate::engine::LeaseOp;
use crate::key::Internal;

/// A held lock, from [`Cache::try_lock`] or [`Cache::lock`].
///
/// Other processes see it through Redis; with the memory backend it locks
/// within this process. It is held until [`release`](Self::release), until
/// dropped (released in a task on the current Tokio runtime), or until its
/// lease runs out — whichever comes first. Locks never fail open: a backend
/// error is returned, since no one can tell who holds the lock.
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachette::Error> {
/// use std::time::Duration;
///
/// let cache = cachette::Cache::memory();
/// let lock = cache.try_lock("nightly-report", Duration::from_secs(30)).await?.unwrap();
/// assert!(cache.try_lock("nightly-report", Duration::from_secs(30)).await?.is_none());
/// lock.extend(Duration::from_secs(60)).await?;
/// lock.release().await?;
/// assert!(cache.try_lock("nightly-report", Duration::from_secs(30)).await?.is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a lock is released when dropped"]
pub struct Lock {
    cache: Cache,
    name: String,
    key: String,
    token: String,
    released: bool,
}

impl Cache {
    /// Takes the lock `name` for `lease` if nobody holds it; `None` if somebody does.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let held = cache.try_lock("import", Duration::from_secs(10)).await?;
    /// assert!(held.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn try_lock(&self, name: &str, lease: Duration) -> Result<Option<Lock>, Error> {
        let key = self.engine.keys().internal(Internal::Lock, name);
        let token = format!("{:016x}", clock::random_id());
        let acquire = LeaseOp::Acquire(lease);
        let acquired = self.engine.lock_lease(&key, &token, acquire, false).await?;
        Ok(acquired.then(|| Lock {
            cache: self.clone(),
            name: name.to_owned(),
            key,
            token,
            released: false,
        }))
    }

    /// Takes the lock `name` for `lease`, waiting up to `wait` for its holder
    /// to release it (polling with a backoff up to 100 ms); `None` if it is
    /// still held after `wait`.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let first = cache.lock("import", Duration::from_millis(50), Duration::ZERO).await?;
    /// assert!(first.is_some());
    /// // The first lease runs out while the second waits.
    /// let second = cache.lock("import", Duration::from_secs(10), Duration::from_secs(2)).await?;
    /// assert!(second.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn lock(
        &self,
        name: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Lock>, Error> {
        let start = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some(lock) = self.try_lock(name, lease).await? {
                return Ok(Some(lock));
            }
            let left = wait.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Ok(None);
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
}

impl Lock {
    /// The lock's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This owner's random token, as stored in the lock.
    #[must_use]
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Gives the lock `lease` more life from now. [`Error::LockLost`] when
    /// this owner no longer holds it (its lease ran out, and perhaps
    /// another owner took it).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let lock = cache.try_lock("job", Duration::from_secs(5)).await?.unwrap();
    /// lock.extend(Duration::from_secs(30)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn extend(&self, lease: Duration) -> Result<(), Error> {
        let extend = LeaseOp::Extend(lease);
        let engine = &self.cache.engine;
        if engine
            .lock_lease(&self.key, &self.token, extend, false)
            .await?
        {
            Ok(())
        } else {
            Err(self.lost())
        }
    }

    /// Releases the lock. [`Error::LockLost`] when this owner no longer
    /// held it: its lease had run out, and another owner's lock is left alone.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let lock = cache.try_lock("job", Duration::from_secs(5)).await?.unwrap();
    /// lock.release().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn release(mut self) -> Result<(), Error> {
        self.released = true;
        let engine = &self.cache.engine;
        if engine
            .lock_lease(&self.key, &self.token, LeaseOp::Release, false)
            .await?
        {
            Ok(())
        } else {
            Err(self.lost())
        }
    }

    fn lost(&self) -> Error {
        Error::LockLost {
            name: self.name.clone(),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Released in the background; outside a runtime, the lease runs out.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (cache, key, token) = (
                self.cache.clone(),
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.token),
            );
            runtime.spawn(async move {
                let release = cache
                    .engine
                    .lock_lease(&key, &token, LeaseOp::Release, true);
                // Counted and logged; nobody waits for it.
                let _ = release.await;
            });
        }
    }
}
