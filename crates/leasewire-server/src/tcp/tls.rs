//! TLS for Active Leasequery (RFC 7724 §8.1): a rustls server configuration that requires a client
//! certificate signed by the configured CA (mutual authentication, ALQ-8.1-16), TLS 1.2 and 1.3 only with
//! rustls's default (BCP 195 compatible) cipher suites, and an optional allow-list of requestors
//! ([`super::tls_allow`]), checked inside the handshake.

use super::tls_allow::{AllowList, AllowListVerifier};
use crate::error::TlsError;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use std::path::Path;
use std::sync::Arc;

/// Certificates from a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |source| TlsError::Pem { path: path.to_owned(), source };
    let certs = CertificateDer::pem_file_iter(path).map_err(pem)?.collect::<Result<Vec<_>, _>>().map_err(pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}

/// The private key from a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Pem { path: path.to_owned(), source })
}

/// A root store of the certificates in a CA file.
fn load_roots(ca: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(ca)? {
        roots.add(c).map_err(|source| TlsError::BadCa { path: ca.to_owned(), source })?;
    }
    Ok(roots)
}

/// The server's TLS settings, ready for connections.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The rustls configuration.
    pub config: Arc<rustls::ServerConfig>,
    /// The requestors allowed beyond the CA's signature (already part of `config`; kept for inspection).
    pub allow: AllowList,
}

impl TlsSettings {
    /// Build from PEM files: the server's certificate chain and key, and the CA that signs requestors.
    pub fn load(cert: &Path, key: &Path, ca: &Path, allow: AllowList) -> Result<Self, TlsError> {
        let chain = load_certs(cert)?;
        let key_der = load_key(key)?;
        let roots = load_roots(ca)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
        let verifier = Arc::new(AllowListVerifier::new(verifier, allow.clone()));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key_der)
            .map_err(|source| TlsError::KeyMismatch { key: key.to_owned(), cert: cert.to_owned(), source })?;
        Ok(Self { config: Arc::new(config), allow })
    }
}

/// The client side of TLS to the PostgreSQL database (`server.store.ca`, `cert`, `key`): the database
/// server's certificate must chain to `ca` and name the URL's host; with `client`, this server presents that
/// certificate chain and key. TLS 1.2 and 1.3 only, as for requestors (BCP 195).
pub fn database_client_config(
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(load_roots(ca)?);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|source| TlsError::KeyMismatch { key: key.to_owned(), cert: cert.to_owned(), source })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Why a TLS handshake (or the check after it) refused a requestor, named so an operator can act on it: a
/// requestor with a certificate from the wrong CA needs a new certificate, an expired one a renewal, one not on
/// the allow-list a configuration change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The client certificate is not signed by the configured CA.
    UnknownCa,
    /// The client certificate is expired (or not yet valid).
    Expired,
    /// The certificate was revoked or is otherwise unusable (bad signature, wrong usage, ...).
    BadCertificate,
    /// The requestor presented no certificate (secure mode requires one, ALQ-8.1-16).
    NoCertificate,
    /// The certificate is valid but names no requestor on the allow-list (ALQ-8.1-8).
    NotAllowed,
    /// No protocol version or cipher suite in common (e.g. a TLS 1.0/1.1-only peer, BCP 195).
    NoCommonParameters,
    /// The peer spoke something that is not TLS, or broke the protocol.
    NotTls,
    /// The handshake did not finish before the pre-authentication deadline.
    Timeout,
    /// Anything else (I/O errors, the peer closing).
    Other,
}

impl HandshakeFailure {
    /// Every failure, so each counter exists at zero from the start.
    pub const ALL: [Self; 9] = [
        Self::UnknownCa,
        Self::Expired,
        Self::BadCertificate,
        Self::NoCertificate,
        Self::NotAllowed,
        Self::NoCommonParameters,
        Self::NotTls,
        Self::Timeout,
        Self::Other,
    ];

    /// Classify the error `tokio_rustls` returned from `accept`.
    pub fn classify(e: &std::io::Error) -> Self {
        use rustls::{CertificateError, Error};
        let Some(err) = e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) else {
            return if e.kind() == std::io::ErrorKind::InvalidData { Self::NotTls } else { Self::Other };
        };
        match err {
            Error::InvalidCertificate(c) => match c {
                CertificateError::Other(o) if o.0.is::<super::tls_allow::Refusal>() => Self::NotAllowed,
                CertificateError::UnknownIssuer => Self::UnknownCa,
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => Self::Expired,
                _ => Self::BadCertificate,
            },
            Error::NoCertificatesPresented => Self::NoCertificate,
            Error::PeerIncompatible(_) => Self::NoCommonParameters,
            Error::InvalidMessage(_) | Error::PeerMisbehaved(_) | Error::InappropriateMessage { .. } => Self::NotTls,
            _ => Self::Other,
        }
    }

    /// The `tcp_connections_rejected` reason label.
    pub fn label(self) -> &'static str {
        match self {
            Self::UnknownCa => "tls_unknown_ca",
            Self::Expired => "tls_expired",
            Self::BadCertificate => "tls_bad_certificate",
            Self::NoCertificate => "tls_no_certificate",
            Self::NotAllowed => "tls_not_allowed",
            Self::NoCommonParameters => "tls_no_common_parameters",
            Self::NotTls => "tls_not_tls",
            Self::Timeout => "tls_timeout",
            Self::Other => "tls_other",
        }
    }
}

impl std::fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::UnknownCa => "client certificate from an unknown CA",
            Self::Expired => "client certificate expired or not yet valid",
            Self::BadCertificate => "client certificate unusable",
            Self::NoCertificate => "no client certificate",
            Self::NotAllowed => "client certificate not on the allow-list",
            Self::NoCommonParameters => "no TLS version or cipher suite in common",
            Self::NotTls => "not a TLS handshake",
            Self::Timeout => "handshake not finished before the deadline",
            Self::Other => "handshake failed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::database_client_config;

    #[test]
    fn database_tls_files_that_are_missing_or_not_pem_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-ca.pem");
        let e = database_client_config(&missing, None).unwrap_err().to_string();
        assert!(e.contains("no-such-ca.pem"), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = database_client_config(&junk, None).unwrap_err().to_string();
        assert!(e.contains("junk.pem") && e.contains("no certificate"), "{e}");
        let files = crate::lab_certs::write(dir.path()).unwrap();
        assert!(database_client_config(&files.ca, None).is_ok());
        let e = database_client_config(&files.ca, Some((&files.server_cert, &missing))).unwrap_err().to_string();
        assert!(e.contains("no-such-ca.pem"), "the key file is named: {e}");
        assert!(database_client_config(&files.ca, Some((&files.requestor_cert, &files.requestor_key))).is_ok());
    }
}
