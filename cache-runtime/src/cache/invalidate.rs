//! Invalidation: one entry (with a tombstone, so that no computation
//! already under way stores an older value over it), or every entry of a
//! namespace or a tag at once (a version bump), and [`Namespace`]. An
//! invalidation Redis does not take is kept and retried
//! (`backend/pending.rs`), and the caller is told ([`Invalidated`]).

use std::time::Duration;

use super::Cache;
use crate::Error;
use crate::backend::pending::Action;
use crate::engine::Applied;
use crate::key::Internal;

/// What became of an invalidation: applied now, or kept in this process
/// and retried until Redis takes it (see [`Cache::invalidate`]).
///
/// ```
/// # extern crate cachette_runtime as cachette;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachette::Error> {
/// let cache = cachette::Cache::memory();
/// let done = cache.invalidate("user_permissions:42").await?;
/// assert!(done.is_applied());
/// let bumped = cache.invalidate_namespace("product").await?;
/// assert_eq!(bumped.version(), Some(1));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalidated {
    fate: Kept,
    version: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    Applied,
    Queued,
    /// The cache has no store it can reach (its configuration failed).
    Nowhere,
}

impl Invalidated {
    /// Whether the store took it: every process misses from now on.
    #[must_use]
    pub fn is_applied(&self) -> bool {
        self.fate == Kept::Applied
    }

    /// Whether Redis did not take it now: it waits in this process and is
    /// retried until Redis does. Meanwhile this process serves nothing it
    /// invalidated; other processes catch up when it lands.
    #[must_use]
    pub fn is_queued(&self) -> bool {
        self.fate == Kept::Queued
    }

    /// The namespace's or tag's new version, when a bump was applied.
    #[must_use]
    pub fn version(&self) -> Option<u64> {
        self.version
    }
}

impl Cache {
    /// Drops the entry at `key` so that nothing computed before this call can
    /// be served after it: the key holds a short-lived tombstone (for the
    /// cache's tombstone TTL, 10 minutes by default) that a computation which
    /// read the key before the invalidation cannot overwrite. Use it from
    /// update code; [`delete`](Self::delete) is the plain delete.
    ///
    /// An invalidation is never dropped in silence. When Redis does not take
    /// it (down, slow past the deadline, the circuit open, a `READONLY`
    /// reply), it is kept in this process, one per key, namespace or tag,
    /// and retried until Redis does, in the order issued; the answer says so
    /// ([`Invalidated::is_queued`]), and with
    /// [`fail_open(false)`](crate::CacheBuilder::fail_open) it is also an
    /// error. Meanwhile this process serves nothing it invalidated (its
    /// reads of the key, namespace or tag are misses, and what it computes is
    /// not stored over it, or is stored already stale); other processes
    /// catch up once it lands. [`flush_invalidations`](Self::flush_invalidations)
    /// waits for the queue, for a graceful shutdown.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// cache.set("user_permissions:42", &["read"], Duration::from_secs(3600)).await?;
    /// cache.invalidate("user_permissions:42").await?;
    /// assert_eq!(cache.get::<Vec<String>>("user_permissions:42").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn invalidate(&self, key: &str) -> Result<Invalidated, Error> {
        let engine = &*self.engine;
        engine.invalidating("key");
        let full = engine.keys().entry(key);
        let work = self.apply(full, Action::Tombstone(engine.tombstone()), true);
        engine.observer().op("invalidate", key, work, outcome).await
    }

    /// Drops every entry of `namespace` at once, in one atomic command;
    /// returns the namespace's new version when it was applied (kept and
    /// retried when Redis does not take it, as for [`invalidate`](Self::invalidate)).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use cachette::Scope;
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let product = Scope::new().namespace("product");
    /// cache.set_in("products:all", &["Dune"], Duration::from_secs(3600), &product).await?;
    /// cache.invalidate_namespace("product").await?;
    /// assert_eq!(cache.get_in::<Vec<String>>("products:all", &product).await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn invalidate_namespace(&self, namespace: &str) -> Result<Invalidated, Error> {
        let engine = &*self.engine;
        engine.invalidating("namespace");
        let vkey = engine.keys().internal(Internal::Namespace, namespace);
        let work = self.apply(vkey, Action::Bump, true);
        engine
            .observer()
            .op("invalidate_namespace", namespace, work, outcome)
            .await
    }

    /// Drops every entry tagged `tag` at once, and every entry that carries
    /// it from its value (`#[cached(tags_from = ..)]`, with any computation
    /// of one under way); returns the tag's new version when it was applied
    /// (kept and retried when Redis does not take it, as for
    /// [`invalidate`](Self::invalidate)).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use cachette::Scope;
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// let tagged = Scope::new().tag("user:42");
    /// cache.set_in("orders:42", &3, Duration::from_secs(3600), &tagged).await?;
    /// cache.invalidate_tag("user:42").await?;
    /// assert_eq!(cache.get_in::<i32>("orders:42", &tagged).await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn invalidate_tag(&self, tag: &str) -> Result<Invalidated, Error> {
        let engine = &*self.engine;
        engine.invalidating("tag");
        engine
            .observer()
            .op("invalidate_tag", tag, self.drop_tag(tag), outcome)
            .await
    }

    /// [`invalidate_tag`](Self::invalidate_tag) without its span.
    async fn drop_tag(&self, tag: &str) -> Result<Invalidated, Error> {
        let keys = self.engine.keys();
        let bumped = self
            .apply(keys.internal(Internal::Tag, tag), Action::Bump, true)
            .await;
        // Entries that carry the tag from their value, and computations
        // that may yet: tombstones, so that none is served or stored. When
        // Redis did not take the bump, they are kept behind it at once (one
        // wait on Redis per call), and kept even when the bump's failure is
        // returned (`fail_open(false)`).
        let taken = matches!(&bumped, Ok(bumped) if bumped.is_applied());
        let members = Action::Members {
            keep: keys.internal(Internal::Pending, ""),
            expiry: self.engine.tombstone(),
        };
        let dropped = self
            .apply(keys.internal(Internal::Members, tag), members, taken)
            .await;
        let (bumped, dropped) = (bumped?, dropped?);
        Ok(if dropped.is_applied() {
            bumped
        } else {
            dropped
        })
    }

    /// Waits until every invalidation kept for a retry has landed, or
    /// `within` has passed; whether none is left. Call it on shutdown, so
    /// that what this process invalidated reaches the other processes. It
    /// waits for those of every handle on the same store (`with_prefix`).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// cache.invalidate("k").await?;
    /// assert!(cache.flush_invalidations(Duration::from_secs(5)).await);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn flush_invalidations(&self, within: Duration) -> bool {
        let Some(pending) = self.engine.pending() else {
            return true;
        };
        let deadline = tokio::time::Instant::now() + within;
        while pending.any() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// A namespace of this cache, to read or bump its version. A bump
    /// changes the version; after it, the version grows by one per bump
    /// (on Redis, a namespace's first bump starts it at a random number, so
    /// that a version key lost to eviction never matches old entries again).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::memory();
    /// let product = cache.namespace("product");
    /// let before = product.version().await?;
    /// let bumped = product.bump().await?.version().expect("applied");
    /// assert_ne!(bumped, before);
    /// assert_eq!(product.version().await?, bumped);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn namespace(&self, name: &str) -> Namespace {
        Namespace {
            cache: self.clone(),
            key: self.engine.keys().internal(Internal::Namespace, name),
        }
    }

    /// Sends one invalidation (`action` on the stored key `target`), or
    /// keeps it for a retry; under fail-open, only a failure to keep it is
    /// an error.
    async fn apply(
        &self,
        target: String,
        action: Action,
        try_now: bool,
    ) -> Result<Invalidated, Error> {
        let applied = self.engine.invalidate(target, action, try_now).await?;
        let (fate, version) = match applied {
            Applied::Now(version) => (Kept::Applied, version),
            Applied::Queued => (Kept::Queued, None),
            Applied::Nowhere => (Kept::Nowhere, None),
        };
        Ok(Invalidated { fate, version })
    }
}

/// How an invalidation ended, for its span and metrics.
fn outcome(done: &Invalidated) -> &'static str {
    match done.fate {
        Kept::Applied => "ok",
        Kept::Queued => "queued",
        Kept::Nowhere => "bypass",
    }
}

/// A namespace of a cache, from [`Cache::namespace`].
#[derive(Debug, Clone)]
pub struct Namespace {
    cache: Cache,
    key: String,
}

impl Namespace {
    /// The current version (0 before the namespace is first used).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// assert_eq!(cachette::Cache::memory().namespace("fresh").version().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn version(&self) -> Result<u64, Error> {
        self.cache.engine.version_of(&self.key).await
    }

    /// Bumps the version: every entry of the namespace becomes a miss.
    /// One atomic command, whatever the number of entries; kept and retried
    /// when Redis does not take it (see [`Cache::invalidate`]).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let product = cachette::Cache::memory().namespace("product");
    /// assert_eq!(product.bump().await?.version(), Some(1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bump(&self) -> Result<Invalidated, Error> {
        self.cache.apply(self.key.clone(), Action::Bump, true).await
    }
}
