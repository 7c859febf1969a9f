//! Which requestors may talk to this server in secure mode (RFC 7724 §8.1, ALQ-8.1-8: "configurable as to
//! which requestors it will talk to"), beyond the CA's signature.
//!
//! Operators have certificates from many PKIs: some name the requestor in a DNS subjectAltName, some in a URI
//! (SPIFFE IDs), some by address, and enterprise PKIs and network equipment often only in the subject CN. And
//! some prefer to pin a key. So the allow-list has three keys (`[active-leasequery.tls]`): `allow-names`
//! (DNS, URI and IP subjectAltNames), `allow-cn` (subject common name: its own key, so nobody gets CN matching
//! by surprise — RFC 6125 retired CN as a place for names) and `allow-spki` (base64 of the SHA-256 of the DER
//! SubjectPublicKeyInfo, the pin format of RFC 7469). A certificate is allowed when it matches any entry of
//! any of them; with all three empty, any certificate the CA signed is.
//!
//! The check runs inside the handshake ([`AllowListVerifier`], after the CA's), so a refused requestor gets a
//! TLS alert rather than a silent close, and the refusal ([`Refusal`]) says what the certificate carries, so
//! the operator sees at once why it did not match.

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::net::IpAddr;
use std::sync::Arc;

/// The requestors allowed, from `[active-leasequery.tls]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// DNS names (compared without case), URIs (exactly) and IP addresses, matched against subjectAltNames.
    pub names: Vec<String>,
    /// Subject common names (compared without case).
    pub cns: Vec<String>,
    /// SHA-256 pins of the SubjectPublicKeyInfo, base64 (standard alphabet, with padding).
    pub spki: Vec<String>,
}

impl AllowList {
    /// Whether every certificate the CA signed is allowed.
    pub fn is_open(&self) -> bool {
        self.names.is_empty() && self.cns.is_empty() && self.spki.is_empty()
    }

    /// The allow-list of `[active-leasequery.tls]`.
    pub fn of(tls: &crate::config::TlsSection) -> Self {
        Self { names: tls.allow_names.clone(), cns: tls.allow_cn.clone(), spki: tls.allow_spki.clone() }
    }

    /// Whether the certificate (DER) is allowed; a refusal says what it carries.
    pub fn check(&self, der: &[u8]) -> Result<(), Refusal> {
        if self.is_open() {
            return Ok(());
        }
        let carried = CertificateNames::parse(der).map_err(|_| Refusal::Unparsable)?;
        if self.matches(&carried) {
            Ok(())
        } else {
            Err(Refusal::NotAllowed { carried: Box::new(carried), allowed: Box::new(self.clone()) })
        }
    }

    fn matches(&self, c: &CertificateNames) -> bool {
        let by_name = self.names.iter().any(|allowed| {
            let dns = allowed.trim_end_matches('.');
            c.dns.iter().any(|d| d.trim_end_matches('.').eq_ignore_ascii_case(dns))
                || c.uris.iter().any(|u| u == allowed)
                || allowed.parse::<IpAddr>().is_ok_and(|ip| c.ips.contains(&ip))
        });
        let by_cn = self.cns.iter().any(|allowed| c.cns.iter().any(|cn| cn.eq_ignore_ascii_case(allowed)));
        let by_pin = self.spki.contains(&c.spki_sha256);
        by_name || by_cn || by_pin
    }
}

/// What a certificate names: what an allow-list entry can match, and what a refusal reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateNames {
    /// Subject common names.
    pub cns: Vec<String>,
    /// DNS subjectAltNames.
    pub dns: Vec<String>,
    /// URI subjectAltNames.
    pub uris: Vec<String>,
    /// IP address subjectAltNames.
    pub ips: Vec<IpAddr>,
    /// Base64 of the SHA-256 of the DER SubjectPublicKeyInfo (what `allow-spki` pins).
    pub spki_sha256: String,
}

impl CertificateNames {
    /// Read them from a DER certificate.
    pub fn parse(der: &[u8]) -> Result<Self, x509_parser::nom::Err<x509_parser::error::X509Error>> {
        use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
        let (_, cert) = X509Certificate::from_der(der)?;
        let cns = cert.subject().iter_common_name().filter_map(|a| a.as_str().ok()).map(str::to_owned).collect();
        let (mut dns, mut uris, mut ips) = (Vec::new(), Vec::new(), Vec::new());
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => dns.push(d.to_string()),
                    GeneralName::URI(u) => uris.push(u.to_string()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                            ips.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                            ips.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(Self { cns, dns, uris, ips, spki_sha256: spki_pin(cert.public_key().raw) })
    }
}

impl std::fmt::Display for CertificateNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CN {:?}, DNS {:?}, URI {:?}, IP [", self.cns, self.dns, self.uris)?;
        for (i, ip) in self.ips.iter().enumerate() {
            write!(f, "{}{ip}", if i == 0 { "" } else { ", " })?;
        }
        write!(f, "], SPKI sha256 {}", self.spki_sha256)
    }
}

/// The `allow-spki` pin of a DER SubjectPublicKeyInfo: base64 of its SHA-256.
pub fn spki_pin(spki_der: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(ring::digest::digest(&ring::digest::SHA256, spki_der))
}

/// Why a requestor certificate the CA signed was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// It matches no entry of the allow-list.
    #[error(
        "client certificate carries {carried}; allowed are names {:?}, CN {:?} (CN is matched only through allow-cn), SPKI {:?}",
        allowed.names, allowed.cns, allowed.spki
    )]
    NotAllowed {
        /// What the certificate carries.
        carried: Box<CertificateNames>,
        /// What would have been accepted.
        allowed: Box<AllowList>,
    },
    /// The CA signed it, yet it could not be parsed for names.
    #[error("client certificate could not be parsed for its names")]
    Unparsable,
}

/// The CA's verifier followed by the allow-list, so the refusal happens in the handshake (the requestor gets an
/// alert) and carries a [`Refusal`] (as `CertificateError::Other`) for the server's log.
#[derive(Debug)]
pub struct AllowListVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allow: AllowList,
}

impl AllowListVerifier {
    /// Wrap the CA's verifier.
    pub fn new(inner: Arc<dyn ClientCertVerifier>, allow: AllowList) -> Self {
        Self { inner, allow }
    }
}

impl ClientCertVerifier for AllowListVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        self.allow.check(end_entity).map_err(|refusal| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(Arc::new(refusal))))
        })?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
}

/// The refusal inside a handshake error, if the allow-list made it.
pub fn refusal_of(e: &std::io::Error) -> Option<&Refusal> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => other.0.downcast_ref(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab_certs::LabCa;
    use rustls::pki_types::pem::PemObject;

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
    }

    #[test]
    fn alq_8_1_8_names_match_dns_uri_and_ip_subject_alt_names() {
        let ca = LabCa::new("t").unwrap();
        let cert = der(&ca.issue(&["r1.example", "spiffe://lab/requestor", "10.0.0.7"], true, false).unwrap().cert_pem);
        let names = |n: &[&str]| AllowList { names: n.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        assert!(names(&["R1.example."]).check(&cert).is_ok());
        assert!(names(&["spiffe://lab/requestor"]).check(&cert).is_ok());
        assert!(names(&["10.0.0.7"]).check(&cert).is_ok());
        let e = names(&["r2.example", "10.0.0.8", "spiffe://lab/other"]).check(&cert).unwrap_err().to_string();
        assert!(e.contains("r1.example") && e.contains("spiffe://lab/requestor") && e.contains("10.0.0.7"), "{e}");
    }

    #[test]
    fn alq_8_1_8_cn_matches_only_through_allow_cn() {
        let ca = LabCa::new("t").unwrap();
        let cert = der(&ca.issue_cn_only("router-7.corp", true).unwrap().cert_pem);
        let by_name = AllowList { names: vec!["router-7.corp".into()], ..Default::default() };
        let e = by_name.check(&cert).unwrap_err().to_string();
        assert!(e.contains("CN [\"router-7.corp\"]") && e.contains("allow-cn"), "{e}");
        let by_cn = AllowList { cns: vec!["Router-7.corp".into()], ..Default::default() };
        assert!(by_cn.check(&cert).is_ok());
    }

    #[test]
    fn alq_8_1_8_spki_pin_is_sha256_of_the_subject_public_key_info() {
        let ca = LabCa::new("t").unwrap();
        let issued = ca.issue(&["r1.example"], true, false).unwrap();
        let key = rcgen::KeyPair::from_pem(&issued.key_pem).unwrap();
        let pin = spki_pin(&rcgen::PublicKeyData::subject_public_key_info(&key));
        let cert = der(&issued.cert_pem);
        assert_eq!(CertificateNames::parse(&cert).unwrap().spki_sha256, pin);
        assert!(AllowList { spki: vec![pin.clone()], ..Default::default() }.check(&cert).is_ok());
        let other = spki_pin(b"another key");
        let e = AllowList { spki: vec![other], ..Default::default() }.check(&cert).unwrap_err().to_string();
        assert!(e.contains(&pin), "the refusal shows the certificate's pin: {e}");
    }

    #[test]
    fn an_empty_allow_list_takes_any_certificate_the_ca_signed() {
        assert!(AllowList::default().check(b"not even a certificate").is_ok());
        let strict = AllowList { cns: vec!["x".into()], ..Default::default() };
        assert_eq!(strict.check(b"junk"), Err(Refusal::Unparsable));
    }
}
