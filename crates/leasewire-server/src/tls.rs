//! TLS for Active Leasequery (RFC 7724 §8.1): a rustls server configuration that requires a client
//! certificate signed by the configured CA (mutual authentication, ALQ-8.1-16), TLS 1.2 and 1.3 only with
//! rustls's default (BCP 195 compatible) cipher suites, and an optional allow-list of requestor names.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use std::path::Path;
use std::sync::Arc;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file could not be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_err(path: &Path, message: impl ToString) -> TlsError {
    TlsError::File { path: path.display().to_string(), message: message.to_string() }
}

/// Certificates from a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// The server's TLS settings, ready for connections.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The rustls configuration.
    pub config: Arc<rustls::ServerConfig>,
    /// Names (DNS SAN) a requestor's certificate must carry, one of; empty: any certificate the CA signed.
    pub allow_names: Vec<String>,
}

impl TlsSettings {
    /// Build from PEM files: the server's certificate chain and key, and the CA that signs requestors.
    pub fn load(cert: &Path, key: &Path, ca: &Path, allow_names: Vec<String>) -> Result<Self, TlsError> {
        let chain = load_certs(cert)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in load_certs(ca)? {
            roots.add(c).map_err(|e| file_err(ca, e))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(Self { config: Arc::new(config), allow_names })
    }

    /// Whether the verified client certificate names an allowed requestor (ALQ-8.1-8).
    pub fn peer_allowed(&self, peer_certs: Option<&[CertificateDer<'_>]>) -> Result<(), String> {
        let Some(end) = peer_certs.and_then(|c| c.first()) else { return Err("no client certificate".into()) };
        if self.allow_names.is_empty() {
            return Ok(());
        }
        let cert = webpki::EndEntityCert::try_from(end).map_err(|e| format!("client certificate: {e}"))?;
        for name in &self.allow_names {
            if let Ok(n) = ServerName::try_from(name.as_str())
                && cert.verify_is_valid_for_subject_name(&n).is_ok()
            {
                return Ok(());
            }
        }
        Err(format!("client certificate names none of {:?}", self.allow_names))
    }
}
