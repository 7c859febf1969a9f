//! A certificate authority for labs and tests (`leasewire lab-certs`): a CA, a server certificate for
//! 127.0.0.1/localhost and a requestor certificate, so mutual TLS can be tried in a minute; the CA's key is
//! kept (`ca-key.pem`) so further requestors can be issued later (`lab-certs --requestor NAME`). Not for
//! production: keys are written unencrypted.
//!
//! It lives in the CLI because the server never makes certificates (rcgen is not in the server library); the
//! tests of every crate reach it through `leasewire-testkit`, which includes this file by path.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use std::path::{Path, PathBuf};

/// A CA that issues certificates.
pub struct LabCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
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
        let certified = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let cert_pem = certified.pem();
        Self::load(&cert_pem, &certified.key().serialize_pem())
    }

    /// The CA of an earlier run, from its certificate and key (PEM).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, rcgen::Error> {
        let issuer = Issuer::from_ca_cert_pem(cert_pem, KeyPair::from_pem(key_pem)?)?;
        Ok(Self { issuer, cert_pem: cert_pem.to_owned() })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA's private key, PEM.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issue a certificate for `names` (DNS names, IP addresses, or URIs such as SPIFFE IDs: anything with
    /// `://`) for a server or a client, with the first name as subject CN; `expired` makes one whose validity
    /// ended in the past (for tests).
    pub fn issue(&self, names: &[&str], client: bool, expired: bool) -> Result<Issued, rcgen::Error> {
        let mut params = CertificateParams::default();
        for name in names {
            params.subject_alt_names.push(if let Ok(ip) = name.parse() {
                SanType::IpAddress(ip)
            } else if name.contains("://") {
                SanType::URI((*name).try_into()?)
            } else {
                SanType::DnsName((*name).try_into()?)
            });
        }
        self.sign(params, names.first().copied().unwrap_or("leasewire"), client, expired)
    }

    /// A certificate that names its holder only in the subject CN, with no subjectAltName: what many
    /// enterprise PKIs and network devices issue.
    #[allow(dead_code, reason = "the binary never issues one; the tests of CN-only allow-lists do")]
    pub fn issue_cn_only(&self, cn: &str, client: bool) -> Result<Issued, rcgen::Error> {
        self.sign(CertificateParams::default(), cn, client, false)
    }

    fn sign(
        &self,
        mut params: CertificateParams,
        cn: &str,
        client: bool,
        expired: bool,
    ) -> Result<Issued, rcgen::Error> {
        params.distinguished_name.push(DnType::CommonName, cn);
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
    /// CA private key (mode 0600), for `lab-certs --requestor`.
    pub ca_key: PathBuf,
    /// Server certificate and key.
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
    /// Requestor certificate.
    pub requestor_cert: PathBuf,
    /// Requestor key.
    pub requestor_key: PathBuf,
}

/// Write a CA (certificate and key), a server certificate for 127.0.0.1 and localhost, and a requestor
/// certificate named `requestor.lab` into `dir` (keys with mode 0600).
pub fn write(dir: &Path) -> std::io::Result<LabFiles> {
    let err = |e: rcgen::Error| std::io::Error::other(e.to_string());
    std::fs::create_dir_all(dir)?;
    let ca = LabCa::new("leasewire lab CA").map_err(err)?;
    let server = ca.issue(&["localhost", "127.0.0.1"], false, false).map_err(err)?;
    let requestor = ca.issue(&["requestor.lab"], true, false).map_err(err)?;
    let files = LabFiles {
        ca: dir.join("ca.pem"),
        ca_key: dir.join("ca-key.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server-key.pem"),
        requestor_cert: dir.join("requestor.pem"),
        requestor_key: dir.join("requestor-key.pem"),
    };
    std::fs::write(&files.ca, ca.cert_pem())?;
    write_private(&files.ca_key, &ca.key_pem())?;
    std::fs::write(&files.server_cert, &server.cert_pem)?;
    write_private(&files.server_key, &server.key_pem)?;
    std::fs::write(&files.requestor_cert, &requestor.cert_pem)?;
    write_private(&files.requestor_key, &requestor.key_pem)?;
    Ok(files)
}

/// Issue a further requestor certificate named `name` (DNS, IP or URI subjectAltName, and subject CN) from the
/// CA an earlier [`write()`] left in `dir`: `NAME.pem` and `NAME-key.pem` (0600), returned in that order. The
/// file stem is the name with anything outside `[A-Za-z0-9.-]` replaced by `_`.
pub fn write_requestor(dir: &Path, name: &str) -> std::io::Result<(PathBuf, PathBuf)> {
    let read = |file: &str| {
        let path = dir.join(file);
        std::fs::read_to_string(&path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("{}: {e} (run `leasewire lab-certs --out DIR` first)", path.display()),
            )
        })
    };
    let ca = LabCa::load(&read("ca.pem")?, &read("ca-key.pem")?)
        .map_err(|e| std::io::Error::other(format!("{}: {e}", dir.display())))?;
    let issued = ca.issue(&[name], true, false).map_err(|e| std::io::Error::other(format!("{name:?}: {e}")))?;
    let stem: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    let (cert, key) = (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}-key.pem")));
    std::fs::write(&cert, &issued.cert_pem)?;
    write_private(&key, &issued.key_pem)?;
    Ok((cert, key))
}

fn write_private(path: &Path, data: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(data.as_bytes())
}
