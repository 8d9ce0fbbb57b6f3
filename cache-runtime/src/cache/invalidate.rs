//! Invalidation: one entry (with a tombstone, so that no computation
//! already under way stores an older value over it), or every entry of a
//! namespace or a tag at once (a version bump), and [`Namespace`].

use super::Cache;
use crate::Error;
use crate::backend::Expiry;
use crate::codec;
use crate::key::Internal;
use crate::meters;

impl Cache {
    /// Drops the entry at `key` so that nothing computed before this call can
    /// be served after it: the key holds a short-lived tombstone (for the
    /// cache's tombstone TTL, 10 minutes by default) that a computation which
    /// read the key before the invalidation cannot overwrite. Use it from
    /// update code; [`delete`](Self::delete) is the plain delete.
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
    pub async fn invalidate(&self, key: &str) -> Result<(), Error> {
        let inner = &*self.inner;
        let full = inner.keys.entry(key);
        let expiry = Expiry::after(inner.options.tombstone_ttl);
        meters::invalidation(inner.counters.label(), "key");
        let work = async {
            match inner
                .backend
                .set(full, codec::tombstone(), None, expiry)
                .await
            {
                Ok(()) => Ok(()),
                Err(error) => inner.backend_failed(error),
            }
        };
        let done = inner.op("invalidate", key, work, |()| "ok").await;
        inner.flights.invalidated();
        done
    }

    /// Drops every entry of `namespace` at once, in one atomic command;
    /// returns the namespace's new version.
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
    pub async fn invalidate_namespace(&self, namespace: &str) -> Result<u64, Error> {
        let inner = &*self.inner;
        meters::invalidation(inner.counters.label(), "namespace");
        let vkey = inner.keys.internal(Internal::Namespace, namespace);
        let work = self.bump(&vkey);
        inner
            .op("invalidate_namespace", namespace, work, |_| "ok")
            .await
    }

    /// Drops every entry tagged `tag` at once, and every entry that carries
    /// it from its value (`#[cached(tags_from = ..)]`, with any computation
    /// of one under way); returns the tag's new version.
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
    pub async fn invalidate_tag(&self, tag: &str) -> Result<u64, Error> {
        let inner = &*self.inner;
        meters::invalidation(inner.counters.label(), "tag");
        inner
            .op("invalidate_tag", tag, self.drop_tag(tag), |_| "ok")
            .await
    }

    /// [`invalidate_tag`](Self::invalidate_tag) without its span.
    async fn drop_tag(&self, tag: &str) -> Result<u64, Error> {
        let version = self
            .bump(&self.inner.keys.internal(Internal::Tag, tag))
            .await?;
        // Entries that carry the tag from their value, and computations
        // that may yet: tombstones, so that none is served or stored.
        let inner = &*self.inner;
        let dropped = inner
            .backend
            .tombstone_sets(
                &inner.keys.internal(Internal::Members, tag),
                &inner.keys.internal(Internal::Pending, ""),
                &codec::tombstone(),
                Expiry::after(inner.options.tombstone_ttl),
            )
            .await;
        inner.flights.invalidated();
        if let Err(error) = dropped {
            inner.backend_failed(error)?;
        }
        Ok(version)
    }

    /// A namespace of this cache, to read or bump its version.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::memory();
    /// let product = cache.namespace("product");
    /// let before = product.version().await?;
    /// assert_eq!(product.bump().await?, before + 1);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn namespace(&self, name: &str) -> Namespace {
        Namespace {
            cache: self.clone(),
            key: self.inner.keys.internal(Internal::Namespace, name),
        }
    }

    async fn bump(&self, vkey: &str) -> Result<u64, Error> {
        let inner = &*self.inner;
        let bumped = inner.backend.bump(vkey).await;
        inner.flights.invalidated();
        match bumped {
            Ok(version) => Ok(version),
            Err(error) => inner.backend_failed(error).map(|()| 0),
        }
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
        let inner = &*self.cache.inner;
        match inner
            .backend
            .versions(std::slice::from_ref(&self.key))
            .await
        {
            Ok(versions) => Ok(versions.first().copied().flatten().unwrap_or_default()),
            Err(error) => inner.backend_failed(error).map(|()| 0),
        }
    }

    /// Bumps the version: every entry of the namespace becomes a miss.
    /// One atomic command, whatever the number of entries.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let product = cachette::Cache::memory().namespace("product");
    /// assert_eq!(product.bump().await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bump(&self) -> Result<u64, Error> {
        self.cache.bump(&self.key).await
    }
}
