//! A TCP proxy on loopback that a test moves and freezes: an endpoint that
//! fails over (a managed primary endpoint, a virtual IP), or a link whose
//! bytes stop going through (a partition).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering::SeqCst};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy from a port of its own to the port it points at.
pub struct Proxy {
    port: u16,
    target: Arc<AtomicU16>,
    frozen: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts a proxy to `target` on a free loopback port.
    pub async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Self {
            port,
            target: Arc::new(AtomicU16::new(target)),
            frozen: Arc::new(AtomicBool::new(false)),
        };
        let (target, frozen) = (Arc::clone(&proxy.target), Arc::clone(&proxy.frozen));
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let to = target.load(SeqCst);
                let frozen = Arc::clone(&frozen);
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(("127.0.0.1", to)).await else {
                        return;
                    };
                    let (from_client, to_client) = inbound.into_split();
                    let (from_server, to_server) = outbound.into_split();
                    tokio::join!(
                        pump(from_client, to_server, &frozen),
                        pump(from_server, to_client, &frozen)
                    );
                });
            }
        });
        proxy
    }

    /// The port the proxy listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}/{db}`, through the proxy.
    pub fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// New connections go to `target`; those made stay where they are.
    pub fn move_to(&self, target: u16) {
        self.target.store(target, SeqCst);
    }

    /// From now on, no byte goes through, either way, on any connection:
    /// what was read is held, never delivered.
    pub fn freeze(&self) {
        self.frozen.store(true, SeqCst);
    }
}

/// Copies `from` to `to` until either end closes, or forever holds what
/// it read once frozen.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: &AtomicBool,
) {
    let mut buf = vec![0_u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.load(SeqCst) {
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
