//! The requestor's TLS (RFC 7724 §7.2): a client certificate for mutual authentication, and validation of
//! the server's certificate against the configured CA (ALQ-7.2-8). TLS 1.2 and 1.3 only, rustls's
//! default cipher suites.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// Why the TLS settings could not be loaded.
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
    /// The name to check the server's certificate against is not a DNS name or an address.
    #[error("server name {0:?} is neither a DNS name nor an IP address")]
    BadName(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Client TLS settings for Active and Bulk Leasequery connections.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The rustls configuration (client certificate, trusted CA).
    pub config: Arc<rustls::ClientConfig>,
    /// The name the server's certificate must carry; `None`: the address connected to.
    pub name: Option<ServerName<'static>>,
}

impl ClientTls {
    /// From PEM files: our certificate chain and key, and the CA that signs servers. Errors name the file.
    pub fn load(cert: &Path, key: &Path, ca: &Path, name: Option<&str>) -> Result<Self, TlsError> {
        let read =
            |p: &Path| Ok::<_, TlsError>((p.display().to_string(), std::fs::read(p).map_err(|e| file_err(p, e))?));
        let (cert, key, ca) = (read(cert)?, read(key)?, read(ca)?);
        Self::build((&cert.0, &cert.1), (&key.0, &key.1), (&ca.0, &ca.1), name)
    }

    /// From PEM text (for `leasewire demo` and tests, which make certificates in memory).
    pub fn from_pem(cert: &[u8], key: &[u8], ca: &[u8], name: Option<&str>) -> Result<Self, TlsError> {
        Self::build(("certificate", cert), ("key", key), ("ca", ca), name)
    }

    /// Each part comes with the name its errors carry (a file path, or what it is).
    fn build(
        (cert_name, cert): (&str, &[u8]),
        (key_name, key): (&str, &[u8]),
        (ca_name, ca): (&str, &[u8]),
        name: Option<&str>,
    ) -> Result<Self, TlsError> {
        let pem_err =
            |what: &str, e: &dyn std::fmt::Display| TlsError::File { path: what.into(), message: e.to_string() };
        let chain =
            CertificateDer::pem_slice_iter(cert).collect::<Result<Vec<_>, _>>().map_err(|e| pem_err(cert_name, &e))?;
        if chain.is_empty() {
            return Err(pem_err(cert_name, &"no certificate in the file"));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| pem_err(key_name, &e))?;
        let mut roots = rustls::RootCertStore::empty();
        let cas =
            CertificateDer::pem_slice_iter(ca).collect::<Result<Vec<_>, _>>().map_err(|e| pem_err(ca_name, &e))?;
        if cas.is_empty() {
            return Err(pem_err(ca_name, &"no certificate in the file"));
        }
        for c in cas {
            roots.add(c).map_err(|e| pem_err(ca_name, &e))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let name = match name {
            None => None,
            Some(n) => Some(ServerName::try_from(n.to_string()).map_err(|_| TlsError::BadName(n.into()))?),
        };
        Ok(Self { config: Arc::new(config), name })
    }

    /// The name to validate the server's certificate against when connecting to `ip`.
    pub fn server_name(&self, ip: IpAddr) -> ServerName<'static> {
        self.name.clone().unwrap_or(ServerName::IpAddress(ip.into()))
    }
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File { path: path.display().to_string(), message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_or_missing_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let missing = dir.path().join("missing.pem");
        let e = ClientTls::load(&missing, &junk, &junk, None).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
        let e = ClientTls::load(&junk, &junk, &junk, None).unwrap_err().to_string();
        assert!(e.contains("junk.pem") && e.contains("no certificate"), "{e}");
        assert!(matches!(ClientTls::from_pem(b"", b"", b"", Some("not a name!")), Err(TlsError::File { .. })));
    }
}
