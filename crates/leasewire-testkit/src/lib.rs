//! What the integration tests of the server, the requestor and the CLI set up the same way, so each test file
//! keeps only what it is about: a Leasequery TCP service on loopback over a real SQLite file
//! ([`TcpLab`]), the lab CA's files for secure mode ([`TlsFiles`]) and a rustls client for it
//! ([`client_config`]), and the framing of messages on a Leasequery connection ([`frame`], [`request`],
//! [`read_frame`]). A dev-dependency only; never published.
//!
//! ```no_run
//! # async fn demo() {
//! use leasewire_testkit::{LabCa, TcpLab, TlsFiles};
//! let ca = LabCa::new("test CA").unwrap();
//! let dir = tempfile::tempdir().unwrap();
//! let tls = TlsFiles::write(dir.path(), &ca);
//! let lab = TcpLab::start(&format!("[active-leasequery]\nenabled = true\n{}", tls.section("")), Vec::new()).await;
//! println!("secure Active Leasequery on {}", lab.addr);
//! # }
//! ```

#[path = "../../leasewire/src/lab_certs.rs"]
#[allow(dead_code)] // the CLI's `lab-certs` command uses what the tests do not
pub mod lab_certs;

pub use lab_certs::{Issued, LabCa};

use leasewire_proto::framing::{FrameDecoder, encode_frame};
use leasewire_proto::{Message, MessageType, Op};
use leasewire_server::config::{Config, Validated};
use leasewire_server::context::ServiceContext;
use leasewire_server::feed::ChangeFeed;
use leasewire_server::metrics::Metrics;
use leasewire_server::tcp::TcpService;
use leasewire_store::{Binding, LeaseStore, OpenOptions, SqliteStore};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;

/// The time the lab's store opens at, and its bindings are stamped with.
pub const LAB_TIME: u32 = 1_800_000_000;

/// A CA's certificate and a server certificate it issued for `localhost` and 127.0.0.1, as PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Write `ca.pem`, `server.pem` and `server-key.pem` into `dir`.
    pub fn write(dir: &Path, ca: &LabCa) -> Self {
        let server = ca.issue(&["localhost", "127.0.0.1"], false, false).expect("a server certificate");
        let files = Self { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server-key.pem") };
        std::fs::write(&files.ca, ca.cert_pem()).expect("ca.pem");
        std::fs::write(&files.cert, &server.cert_pem).expect("server.pem");
        std::fs::write(&files.key, &server.key_pem).expect("server-key.pem");
        files
    }

    /// `[active-leasequery.tls]` naming these files, then `keys` (more lines of it, e.g. an allow-list).
    pub fn section(&self, keys: &str) -> String {
        format!(
            "[active-leasequery.tls]\ncert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\n{}\n",
            self.cert.display(),
            self.key.display(),
            self.ca.display(),
            keys.trim()
        )
    }
}

/// leasewire's Leasequery TCP service on 127.0.0.1 (an ephemeral port) for requestors in 127.0.0.0/8,
/// server-id 10.0.0.1, over a SQLite file in a temporary directory; stopped when dropped.
pub struct TcpLab {
    pub addr: SocketAddr,
    pub feed: ChangeFeed,
    pub metrics: Arc<Metrics>,
    pub store: Arc<dyn LeaseStore>,
    /// `None` when the configuration allows no requestor.
    pub service: Option<Arc<TcpService>>,
    pub config: Validated,
    /// Ends after a stop ([`TcpLab::stop`]).
    pub done: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl TcpLab {
    /// The service with `sections` (more TOML after `[bulk-leasequery]`'s `listen` and `allow`: its other keys,
    /// `[active-leasequery]`, subnets) and `bindings` committed to the store first.
    pub async fn start(sections: &str, bindings: Vec<Binding>) -> Self {
        Self::start_config(&lab_config(sections), bindings).await
    }

    /// The service with the whole configuration `text` (its `[bulk-leasequery]` must listen somewhere).
    pub async fn start_config(text: &str, bindings: Vec<Binding>) -> Self {
        let config = Config::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(dir.path().join("l.db"), OpenOptions::new(LAB_TIME)).expect("the store");
        if !bindings.is_empty() {
            store.commit(LAB_TIME, bindings).wait().expect("the bindings committed");
        }
        let store: Arc<dyn LeaseStore> = Arc::new(store);
        let feed = ChangeFeed::default();
        let metrics = Arc::new(Metrics::new());
        let (stop, rx) = watch::channel(false);
        let (service, addrs, done) = TcpService::start_service(
            &config,
            ServiceContext { store: store.clone(), feed: feed.clone(), metrics: metrics.clone(), shutdown: rx },
        )
        .await
        .expect("the TCP service");
        Self { addr: addrs[0], feed, metrics, store, service, config, done, stop, _dir: dir }
    }

    /// Ask the service to stop (it drains; [`TcpLab::done`] ends when it has).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// A [`TcpLab`] with Active Leasequery on, and the CA of its secure mode, for the TLS tests of the server and
/// of the requestor: secure when given `tls_keys` (more lines of `[active-leasequery.tls]`, e.g. an allow-list;
/// the server's certificate is `ca`'s, and requestors must present one of `ca`'s), insecure otherwise.
pub struct ActiveLab {
    pub tcp: TcpLab,
    pub ca: LabCa,
    /// The server's certificate, key and CA files, in secure mode.
    pub tls: Option<TlsFiles>,
    _dir: tempfile::TempDir,
}

impl ActiveLab {
    pub async fn start(ca: LabCa, tls_keys: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let tls = tls_keys.map(|_| TlsFiles::write(dir.path(), &ca));
        let mode = match (&tls, tls_keys) {
            (Some(files), Some(keys)) => files.section(keys),
            _ => "insecure = true\n".to_string(),
        };
        let tcp = TcpLab::start(&format!("[active-leasequery]\nenabled = true\n{mode}"), Vec::new()).await;
        Self { tcp, ca, tls, _dir: dir }
    }

    /// The server's TLS files; panics unless the lab is secure.
    pub fn tls(&self) -> &TlsFiles {
        self.tls.as_ref().expect("a secure lab")
    }
}

impl std::ops::Deref for ActiveLab {
    type Target = TcpLab;
    fn deref(&self) -> &TcpLab {
        &self.tcp
    }
}

/// The configuration [`TcpLab::start`] runs: server-id 10.0.0.1, `[bulk-leasequery]` on 127.0.0.1:0 for
/// 127.0.0.0/8, then `sections`.
pub fn lab_config(sections: &str) -> String {
    format!(
        "[server]\nserver-id = \"10.0.0.1\"\ndata-dir = \"/nonexistent\"\n\
         [bulk-leasequery]\nlisten = [\"127.0.0.1:0\"]\nallow = [\"127.0.0.0/8\"]\n{sections}"
    )
}

/// `m` as one framed message of a Leasequery connection (RFC 6926 §6.1).
pub fn frame(m: &Message<'_>) -> Vec<u8> {
    let mut b = Vec::new();
    encode_frame(m, &mut b).expect("an encodable message");
    b
}

/// A BOOTREQUEST of type `t`, transaction `xid`, nothing else set.
pub fn request(t: MessageType, xid: u32) -> Message<'static> {
    let mut m = Message::new(Op::BootRequest);
    m.xid = xid;
    m.options.set_message_type(t);
    m
}

/// The body of the next framed message from `s`, reading into `buf` (which keeps what follows it); `None` at
/// the end of the stream or on an error.
pub async fn read_frame(s: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some((body, n)) = FrameDecoder::default().decode(buf).ok()? {
            let body = body.to_vec();
            buf.drain(..n);
            return Some(body);
        }
        let mut chunk = [0u8; 65536];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A rustls client trusting `trust`, presenting `client` when given (the requestor's side of mutual TLS).
pub fn client_config(trust: &LabCa, client: Option<&Issued>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(trust.cert_pem().as_bytes()).expect("the CA's PEM")).expect("the CA");
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
    Arc::new(match client {
        Some(c) => b
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).expect("a certificate PEM")],
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).expect("a key PEM"),
            )
            .expect("a client certificate"),
        None => b.with_no_client_auth(),
    })
}
