//! A certificate authority for labs and tests (`leasewire lab-certs`): a CA, a server certificate for
//! 127.0.0.1/localhost and a requestor certificate, so mutual TLS can be tried in a minute. Not for
//! production: keys are written unencrypted.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use std::path::{Path, PathBuf};

/// A CA that issues certificates.
pub struct LabCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for LabCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabCa").finish_non_exhaustive()
    }
}

/// A certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// The private key.
    pub key_pem: String,
}

impl LabCa {
    /// A new self-signed CA.
    pub fn new(name: &str) -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ok(Self { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate()?)? })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// Issue a certificate for `names` (DNS names or IP addresses) for a server or a client; `expired` makes
    /// one whose validity ended in the past (for tests).
    pub fn issue(&self, names: &[&str], client: bool, expired: bool) -> Result<Issued, rcgen::Error> {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("leasewire"));
        params.extended_key_usages =
            vec![if client { ExtendedKeyUsagePurpose::ClientAuth } else { ExtendedKeyUsagePurpose::ServerAuth }];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// The files `write` produced.
#[derive(Debug, Clone)]
pub struct LabFiles {
    /// CA certificate.
    pub ca: PathBuf,
    /// Server certificate and key.
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
    /// Requestor certificate.
    pub requestor_cert: PathBuf,
    /// Requestor key.
    pub requestor_key: PathBuf,
}

/// Write a CA, a server certificate for 127.0.0.1 and localhost, and a requestor certificate named
/// `requestor.lab` into `dir` (keys with mode 0600).
pub fn write(dir: &Path) -> std::io::Result<LabFiles> {
    let err = |e: rcgen::Error| std::io::Error::other(e.to_string());
    std::fs::create_dir_all(dir)?;
    let ca = LabCa::new("leasewire lab CA").map_err(err)?;
    let server = ca.issue(&["localhost", "127.0.0.1"], false, false).map_err(err)?;
    let requestor = ca.issue(&["requestor.lab"], true, false).map_err(err)?;
    let files = LabFiles {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server-key.pem"),
        requestor_cert: dir.join("requestor.pem"),
        requestor_key: dir.join("requestor-key.pem"),
    };
    std::fs::write(&files.ca, ca.cert_pem())?;
    std::fs::write(&files.server_cert, &server.cert_pem)?;
    write_private(&files.server_key, &server.key_pem)?;
    std::fs::write(&files.requestor_cert, &requestor.cert_pem)?;
    write_private(&files.requestor_key, &requestor.key_pem)?;
    Ok(files)
}

fn write_private(path: &Path, data: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(data.as_bytes())
}
