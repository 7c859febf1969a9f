//! Why a server could not start (or a reload could not be applied): one type, each variant naming the address,
//! file or configuration key at fault, so the binary can print one line an operator can act on.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A socket could not be opened or bound (e.g. the address is held by another process).
    #[error("cannot listen on {what}: {source}")]
    Listen {
        /// What the socket is for and its address, e.g. `DHCP (UDP) 127.0.0.1:67`.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TLS certificate, key or CA could not be loaded (missing, unreadable, not PEM, key not matching).
    #[error("{key}: {source}")]
    Tls {
        /// The configuration key, e.g. `active-leasequery.tls`.
        key: &'static str,
        /// What is wrong, naming the file (boxed: it is the largest error, and start-up failures are rare).
        source: Box<TlsError>,
    },
    /// The data directory could not be created or is not writable.
    #[error("server.data-dir {}: {message}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Another process (a second leasewire on the same data directory) holds the embedded store's lock.
    #[error(
        "server.data-dir {}: the lease store is in use by another leasewire (lock {} is held); one instance per data directory",
        dir.display(),
        lock.display()
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The lease store could not be opened.
    #[error("lease store {what}: {source}")]
    OpenStore {
        /// The database file, or the PostgreSQL database.
        what: String,
        /// The store's error.
        source: leasewire_store::StoreError,
    },
    /// A thread or runtime the server needs could not be started.
    #[error("cannot start {what}: {source}")]
    Thread {
        /// Which one.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// `server.log-filter` does not parse.
    #[error("server.log-filter: {message}")]
    LogFilter {
        /// What is wrong.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] leasewire_store::StoreError),
    /// The control socket could not be opened (in use by another server, not a socket, not bindable).
    #[error(transparent)]
    Control(#[from] crate::control::server::ControlError),
}

impl ServeError {
    /// The TLS files of the configuration section `key` could not be loaded.
    pub(crate) fn tls(key: &'static str, source: TlsError) -> Self {
        ServeError::Tls { key, source: Box::new(source) }
    }

    /// A bind failure for the socket `what` at `addr`.
    pub(crate) fn listen(what: &str, addr: SocketAddr, source: std::io::Error) -> Self {
        ServeError::Listen { what: format!("{what} {addr}"), source }
    }
}

/// Why a reload was not applied. Nothing changed: the server goes on with the configuration it had.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not pass validation (or cannot be read).
    #[error("{}: {source}", path.display())]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong, with key and line.
        source: crate::config::ConfigError,
    },
    /// The file is valid but a file it names is not (TLS files).
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The new log filter does not parse.
    #[error("server.log-filter: {0}")]
    LogFilter(String),
    /// [`crate::server::Reloader::reload_file`] on a server started without a configuration file.
    #[error("the server was not started from a configuration file")]
    NoFile,
    /// The server has stopped.
    #[error("the server has stopped")]
    Stopped,
}

/// Why TLS could not be set up: which file, and what the PEM parser or rustls said about it (rustls' own
/// error types, not their text, so a caller can tell a missing file from a key that does not fit).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file could not be read, or is not PEM of the kind expected.
    #[error("{}: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What reading or parsing it said.
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate or CA file holds no certificate.
    #[error("{}: no certificate in the file", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A CA certificate rustls cannot take as a trust anchor.
    #[error("{}: {source}", path.display())]
    BadCa {
        /// The CA file.
        path: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
    /// The key does not go with the certificate (or is of a kind rustls cannot use).
    #[error("{}: not usable with the certificate {}: {source}", key.display(), cert.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
    /// rustls refused the protocol versions (cannot happen with the ring provider; kept typed, not unwrapped).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The client certificate verifier could not be built from the CA.
    #[error("TLS configuration: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}
