//! Looking at what is stored without knowing its type: `contains`, `ttl`,
//! and the keys matching a glob (`keys`, `delete_pattern`).

use super::Cache;
use crate::Error;
use crate::options::Timeout;

impl Cache {
    /// Whether `key` holds a live value, whatever its type (Django's
    /// `has_key`). Nothing is decoded, and nothing is removed.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::memory();
    /// cache.set("k", &vec![1, 2], None).await?;
    /// assert!(cache.contains("k").await?);
    /// cache.invalidate("k").await?;
    /// assert!(!cache.contains("k").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn contains(&self, key: &str) -> Result<bool, Error> {
        let work = self.engine.contains(key);
        let found = |live: &bool| if *live { "hit" } else { "miss" };
        self.engine
            .observer()
            .op("contains", key, work, found)
            .await
    }

    /// How long the value at `key` still lives: `None` when there is none,
    /// `Some(Timeout::Never)` when it never expires, else
    /// `Some(Timeout::After(remaining))`. With stale-while-revalidate or
    /// failover, an entry lives past its freshness by that window.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// use cachette::Timeout;
    /// use std::time::Duration;
    ///
    /// let cache = cachette::Cache::memory();
    /// cache.set("session", "data", Duration::from_secs(60)).await?;
    /// let Some(Timeout::After(left)) = cache.ttl("session").await? else { panic!() };
    /// assert!(left <= Duration::from_secs(60));
    /// cache.set("config", "data", None).await?;
    /// assert_eq!(cache.ttl("config").await?, Some(Timeout::Never));
    /// assert_eq!(cache.ttl("absent").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ttl(&self, key: &str) -> Result<Option<Timeout>, Error> {
        let work = self.engine.ttl(key);
        let found = |ttl: &Option<Timeout>| if ttl.is_some() { "hit" } else { "miss" };
        self.engine.observer().op("ttl", key, work, found).await
    }

    /// The keys of this cache's live entries that match `glob` (Redis
    /// `MATCH` syntax: `*`, `?`, `[a-z]`, `\` to escape), found with `SCAN`
    /// in pages (never `KEYS`), under this cache's prefix only. Keys longer
    /// than the key length bound are stored shortened and are not listed.
    /// To drop a family of entries, a namespace or a tag is one command
    /// whatever their number; a pattern walks the whole key space.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::memory();
    /// cache.set_many([("user:1", 1), ("user:2", 2), ("order:1", 3)], None).await?;
    /// let mut users = cache.keys("user:*").await?;
    /// users.sort();
    /// assert_eq!(users, ["user:1", "user:2"]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn keys(&self, glob: &str) -> Result<Vec<String>, Error> {
        let work = self.engine.live_keys(glob);
        self.engine
            .observer()
            .op("keys", glob, work, |_| "ok")
            .await
    }

    /// Removes this cache's entries whose keys match `glob` (see
    /// [`keys`](Self::keys)), `SCAN` page by page; how many held a live value.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::memory();
    /// cache.set_many([("user:1", 1), ("user:2", 2), ("order:1", 3)], None).await?;
    /// assert_eq!(cache.delete_pattern("user:*").await?, 2);
    /// assert!(cache.contains("order:1").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_pattern(&self, glob: &str) -> Result<u64, Error> {
        let work = self.engine.delete_matching(glob);
        let observer = self.engine.observer();
        observer.op("delete_pattern", glob, work, |_| "ok").await
    }
}
