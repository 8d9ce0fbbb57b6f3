//! The master a backend on one server serves: the server of its URL, or
//! behind Sentinel the master the sentinels name now (`sentinel.rs`); the
//! Sentinel backend's constructor.

use std::sync::Arc;

use tokio::sync::watch;

use super::lanes::{Lanes, Source};
use super::link::Link;
use super::sentinel::Sentinel;
use super::{RedisBackend, Settings};
use crate::Error;

impl RedisBackend {
    /// Sets up a backend on the master that `sentinels` name `master`;
    /// connects nothing yet.
    pub(crate) fn sentinel(
        sentinels: &[String],
        master: &str,
        settings: &Settings,
    ) -> Result<Self, Error> {
        let sentinel = Arc::new(Sentinel::new(sentinels, master, settings)?);
        let redacted = sentinel.redacted();
        let url = sentinel.data_url().to_owned();
        let lanes = Lanes::new(Source::Sentinel(sentinel), settings, redacted.clone());
        Ok(Self::single(url, lanes, settings, redacted))
    }

    fn sentinel_link(&self) -> Option<&Arc<Sentinel>> {
        match &self.link {
            Link::Single(lanes) => lanes.sentinel(),
            Link::Cluster(_) => None,
        }
    }

    /// The URL of the one server (behind Sentinel: the master now).
    pub(crate) async fn server_url(&self) -> Result<String, Error> {
        let Some(sentinel) = self.sentinel_link() else {
            return Ok(self.url.clone());
        };
        sentinel.url_now().await
    }

    /// Told the master's epoch whenever it moves (behind Sentinel only).
    pub(crate) fn master_moves(&self) -> Option<watch::Receiver<u64>> {
        self.sentinel_link().map(|sentinel| sentinel.moves())
    }
}
