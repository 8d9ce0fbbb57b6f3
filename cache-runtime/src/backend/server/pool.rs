//! The deadpool pool of one server, which creates, checks and replaces the
//! connections the lanes hold (`lanes.rs`), for a fixed URL or for each
//! master Sentinel names (`sentinel.rs`).

use deadpool_redis::redis::{self, RedisError};
use deadpool_redis::{Manager, Pool, Runtime};

use super::{CHECKOUT_WAIT, Settings, redact};
use crate::Error;

/// A pool of connections to `url`, holding no more than the lanes.
pub(super) fn pool(url: &str, settings: &Settings) -> Result<Pool, Error> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_response_timeout(Some(settings.command_timeout));
    #[cfg(feature = "tls")]
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // The application chose no TLS crypto: use ring (losing a race
        // to install one is fine: one is installed).
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let invalid = |source: RedisError| Error::Config {
        reason: format!("invalid Redis URL `{}`", redact(url)),
        source: Some(source.into()),
    };
    let manager = match &settings.tls_root {
        #[cfg(feature = "tls")]
        Some(super::Pem(root)) => {
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root.clone()),
            };
            let client = redis::Client::build_with_tls(url, certificates).map_err(invalid)?;
            Manager::new_with_config(client.get_connection_info().clone(), config)
        }
        _ => Manager::new_with_config(url, config),
    }
    .map_err(invalid)?;
    // The pool creates, checks and replaces the held connections: it
    // holds no more than they are.
    Pool::builder(manager)
        .max_size(settings.connections)
        .wait_timeout(Some(CHECKOUT_WAIT))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.command_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| Error::Config {
            reason: format!("cannot build the Redis pool: {e}"),
            source: None,
        })
}
