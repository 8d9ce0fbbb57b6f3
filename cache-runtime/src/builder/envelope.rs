//! The builder's settings of how values travel: compression, the size
//! limit of a compressed value, and the secrets that sign values.

use super::{CacheBuilder, config};
use crate::Error;
use crate::codec::{DEFAULT_COMPRESS_ABOVE, MIN_SECRET_LEN, Seal, signing_key};

/// Which values are compressed.
#[derive(Debug, Clone, Copy)]
pub(super) enum Compress {
    /// Those over 1 KiB with Redis; none in memory.
    ByStore,
    /// Those at least this long; none with `None`.
    Above(Option<usize>),
}

impl CacheBuilder {
    /// Compresses values whose encoding is at least `bytes` long (LZ4), or
    /// none with `None`. The default is 1 KiB with Redis, where every byte
    /// crosses the network, and off in memory. The envelope says whether
    /// its value is compressed, so entries written with any setting are read
    /// by every other.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let builder = cachette::Cache::builder()
    ///     .redis_url("redis://127.0.0.1:6379/0")
    ///     .compress_above(4096);
    /// let off = cachette::Cache::builder().compress_above(None);
    /// # drop((builder, off));
    /// ```
    pub fn compress_above(mut self, bytes: impl Into<Option<usize>>) -> Self {
        self.compress = Compress::Above(bytes.into());
        self
    }

    /// The largest value a compressed entry may expand to (default 64 MiB).
    /// An entry claiming more is a miss, and nothing of the claimed size is
    /// allocated: a small planted entry cannot exhaust memory.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }

    /// Signs every stored value with a key derived from `secret` (at least
    /// 16 bytes; keyed BLAKE3 over the stored key and the entry), and
    /// refuses what is not signed so: a value planted in Redis by anyone
    /// who can write there, copied from another key, or altered by a byte,
    /// is a miss, counted in [`Stats::forged`](crate::Stats::forged) and
    /// logged (rate-limited), and the computed value replaces it. Counters
    /// (`incr`) are Redis integers and cannot be signed: `get` reads them,
    /// but a computed value is always a signed envelope, so digits planted
    /// at its key are refused too. A signature costs 32 bytes per entry.
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachette::Error> {
    /// let cache = cachette::Cache::builder()
    ///     .sign_with("a secret from the vault, 32 bytes")
    ///     .build()
    ///     .await?;
    /// cache.set("price:7", &1999_u64, None).await?;
    /// assert_eq!(cache.get::<u64>("price:7").await?, Some(1999));
    /// # Ok(())
    /// # }
    /// ```
    pub fn sign_with(mut self, secret: impl AsRef<[u8]>) -> Self {
        if self.secrets.is_empty() {
            self.secrets.push(secret.as_ref().to_vec());
        } else {
            self.secrets[0] = secret.as_ref().to_vec();
        }
        self
    }

    /// A secret that no longer signs but whose signatures are still
    /// accepted, for a rotation: deploy the new secret with the old one as
    /// previous, then drop the previous one once the entries it signed have
    /// expired. Needs [`sign_with`](Self::sign_with).
    ///
    /// ```
    /// # extern crate cachette_runtime as cachette;
    /// let builder = cachette::Cache::builder()
    ///     .sign_with("the new secret, 16 bytes or more")
    ///     .previous_secret("the old secret, 16 bytes or more");
    /// # drop(builder);
    /// ```
    pub fn previous_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        if self.secrets.is_empty() {
            // Kept behind an empty slot until `sign_with` fills it.
            self.secrets.push(Vec::new());
        }
        self.secrets.push(secret.as_ref().to_vec());
        self
    }

    /// How values are compressed and signed, from the settings.
    pub(super) fn seal(&self) -> Result<Seal, Error> {
        let shared = !matches!(self.target, super::Target::Memory);
        let compress_above = match self.compress {
            Compress::ByStore => shared.then_some(DEFAULT_COMPRESS_ABOVE),
            Compress::Above(above) => above,
        };
        if self.secrets.first().is_some_and(Vec::is_empty) {
            return Err(config(
                "previous_secret needs sign_with (or CACHETTE_SECRET)",
            ));
        }
        if self.secrets.iter().any(|s| s.len() < MIN_SECRET_LEN) {
            return Err(config(&format!(
                "a signing secret must be at least {MIN_SECRET_LEN} bytes"
            )));
        }
        let seal = Seal {
            compress_above,
            max_value_bytes: self.max_value_bytes,
            ..Seal::default()
        };
        Ok(seal.signed_with(self.secrets.iter().map(|s| signing_key(s)).collect()))
    }
}
