//! TLS and ACL users against a `redis-server` started with a certificate
//! authority and a server certificate this test generates.
#![cfg(feature = "tls")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cachette::Cache;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use support::{RedisServer, free_port};

const MINUTE: Duration = Duration::from_secs(60);
const PASSWORD: &str = "acl-pass-7f3a";

/// A CA, and a certificate it signed for 127.0.0.1, written to `dir`.
struct Pki {
    dir: PathBuf,
    ca_pem: String,
}

impl Pki {
    fn generate(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let write = |name: &str, pem: &str| std::fs::write(dir.join(name), pem).unwrap();
        write("ca.crt", &ca.pem());
        write("server.crt", &server.pem());
        write("server.key", &server_key.serialize_pem());
        Self {
            dir: dir.to_owned(),
            ca_pem: ca.pem(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server with a TLS port, and an ACL user `cachette` (the default user off).
struct TlsServer {
    server: RedisServer,
    tls_port: u16,
    pki: Pki,
    admin: redis::aio::MultiplexedConnection,
}

impl TlsServer {
    async fn start() -> Self {
        let tls_port = free_port();
        let pki = Pki::generate(
            &std::env::temp_dir().join(format!("cachette-tls-{}-{tls_port}", std::process::id())),
        );
        let server = RedisServer::start_with(&[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &pki.path("server.crt"),
            "--tls-key-file",
            &pki.path("server.key"),
            "--tls-ca-cert-file",
            &pki.path("ca.crt"),
            "--tls-auth-clients",
            "no",
        ]);
        let mut admin = server.connect(0).await;
        let () = redis::cmd("ACL")
            .arg(&[
                "SETUSER",
                "cachette",
                "on",
                &format!(">{PASSWORD}"),
                "~*",
                "&*",
                "+@all",
            ])
            .query_async(&mut admin)
            .await
            .unwrap();
        // From now on only the ACL user gets in; `admin` stays logged in.
        let () = redis::cmd("ACL")
            .arg(&["SETUSER", "default", "off"])
            .query_async(&mut admin)
            .await
            .unwrap();
        Self {
            server,
            tls_port,
            pki,
            admin,
        }
    }

    fn url(&self, password: &str) -> String {
        format!("rediss://cachette:{password}@127.0.0.1:{}/0", self.tls_port)
    }
}

/// Log lines written while `f` runs (on this thread).
async fn logged<T>(f: impl AsyncFnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing_subscriber::util::SubscriberInitExt::set_default(subscriber);
    let out = f().await;
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

#[tokio::test]
async fn tls_with_a_private_ca_and_an_acl_user_works() {
    let mut tls = TlsServer::start().await;
    let cache = Cache::builder()
        .redis_url(tls.url(PASSWORD))
        .tls_root_certificate(tls.pki.ca_pem.clone())
        .fail_open(false)
        .build()
        .await
        .unwrap();
    cache.set("greeting", "over TLS", MINUTE).await.unwrap();
    assert_eq!(
        cache.get::<String>("greeting").await.unwrap().as_deref(),
        Some("over TLS")
    );
    assert!(!format!("{cache:?}").contains(PASSWORD));
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut tls.admin)
        .await
        .unwrap();
    assert!(
        clients.contains("user=cachette"),
        "the cache logged in as its ACL user: {clients}"
    );
    drop(tls.server);
}

#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_refused() {
    let tls = TlsServer::start().await;
    let other = Pki::generate(&tls.pki.dir.with_extension("other"));
    let err = Cache::builder()
        .redis_url(tls.url(PASSWORD))
        .tls_root_certificate(other.ca_pem.clone())
        .fail_open(false)
        .build()
        .await
        .unwrap_err();
    assert!(err.is_backend(), "{err}");
    // With fail-open, the same cache starts and every call is a miss.
    let cache = Cache::builder()
        .redis_url(tls.url(PASSWORD))
        .tls_root_certificate(other.ca_pem.clone())
        .build()
        .await
        .unwrap();
    cache.set("k", "v", MINUTE).await.unwrap();
    assert_eq!(cache.get::<String>("k").await.unwrap(), None);
}

#[tokio::test]
async fn a_wrong_password_is_a_build_error_then_a_logged_miss_and_never_printed() {
    let mut tls = TlsServer::start().await;
    let builder = Cache::builder()
        .redis_url(tls.url("not-the-password"))
        .tls_root_certificate(tls.pki.ca_pem.clone());
    let err = builder.build().await.unwrap_err();
    let chain = format!("{err} {:?}", std::error::Error::source(&err));
    assert!(!chain.contains("not-the-password"), "{chain}");
    assert!(
        chain.contains("WRONGPASS") || chain.to_lowercase().contains("auth"),
        "the error says why: {chain}"
    );

    // The password changes under a running cache: its calls become misses.
    let cache = Cache::builder()
        .redis_url(tls.url(PASSWORD))
        .tls_root_certificate(tls.pki.ca_pem.clone())
        .build()
        .await
        .unwrap();
    cache.set("k", "v", MINUTE).await.unwrap();
    let () = redis::cmd("ACL")
        .arg(&["SETUSER", "cachette", "resetpass", ">rotated-pass"])
        .query_async(&mut tls.admin)
        .await
        .unwrap();
    let _: u64 = redis::cmd("CLIENT")
        .arg(&["KILL", "USER", "cachette"])
        .query_async(&mut tls.admin)
        .await
        .unwrap();
    let (reads, logs) = logged(async || {
        let mut reads = Vec::new();
        for _ in 0..3 {
            reads.push(cache.get::<String>("k").await.unwrap());
        }
        reads
    })
    .await;
    assert_eq!(reads, [None, None, None], "misses, not errors");
    assert!(logs.contains("WARN"), "the failure is logged: {logs}");
    assert!(!logs.contains(PASSWORD), "{logs}");
    assert!(!format!("{cache:?}").contains(PASSWORD));
}
