//! Secure mode (RFC 7724 §8.1) over real sockets with real TLS: certificates made in the test (rcgen), the
//! server's TcpService, a rustls client. Good certificate, wrong CA, no client certificate, expired
//! certificate, a name not on the allow-list, and plaintext to a secure server.

use leasewire_proto::framing::FrameDecoder;
use leasewire_proto::options::code;
use leasewire_proto::{BindingChange, DhcpState, Message, MessageType, StatusCode};
use leasewire_store::Binding;
use leasewire_testkit::{ActiveLab, Issued, LabCa, frame, lab_certs, read_frame, request};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The service in secure mode, the CA that signs both sides, and where its files are.
type Lab = ActiveLab;

fn service(lab: &Lab) -> &leasewire_server::tcp::TcpService {
    lab.tcp.service.as_deref().expect("a requestor is allowed")
}

async fn lab(allow_names: &str) -> Lab {
    lab_with(&format!("allow-names = [{allow_names}]"), LabCa::new("test CA").unwrap()).await
}

/// A secure server whose `[active-leasequery.tls]` ends with `allow` (TOML lines), its requestors signed by `ca`.
async fn lab_with(allow: &str, ca: LabCa) -> Lab {
    ActiveLab::start(ca, Some(allow)).await
}

/// The next frame's body, or `None` when the connection ends; a test that waits longer than 5 s has failed.
async fn read_message(s: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    tokio::time::timeout(Duration::from_secs(5), read_frame(s, buf)).await.expect("no hang")
}

/// Waits (bounded) until the server counted a refusal for `reason`: the log line and the counter name why a
/// handshake failed, which is what an operator needs to fix it.
async fn refused_for(lab: &Lab, reason: &str) {
    for _ in 0..500 {
        if lab.metrics.rejected_for(reason) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no refusal counted as {reason}: {}", lab.metrics.encode());
}

fn client_config(_lab: &Lab, client: Option<&Issued>, trust: &LabCa) -> Arc<rustls::ClientConfig> {
    leasewire_testkit::client_config(trust, client)
}

/// DHCPTLS, its answer, then the handshake. `Err` when the server refuses or closes.
async fn negotiate(
    lab: &Lab,
    config: Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let mut tcp = TcpStream::connect(lab.addr).await.unwrap();
    tcp.write_all(&frame(&request(MessageType::Tls, 1))).await.unwrap();
    let mut buf = Vec::new();
    let answer = read_message(&mut tcp, &mut buf).await.ok_or("closed before the DHCPTLS answer")?;
    let m = Message::decode(&answer).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::Tls));
    assert!(!m.options.contains(code::STATUS_CODE), "ALQ-8.1-10: no status means go ahead");
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(|e| e.to_string())?;
    // With TLS 1.3 a rejected client certificate shows up on the first read, not in the handshake.
    tls.write_all(&frame(&request(MessageType::ActiveLeaseQuery, 2))).await.map_err(|e| e.to_string())?;
    Ok(tls)
}

async fn closed(s: &mut (impl AsyncRead + AsyncWrite + Unpin)) -> bool {
    let mut buf = Vec::new();
    read_message(s, &mut buf).await.is_none()
}

fn change() -> BindingChange {
    let mut b = Binding::new(Ipv4Addr::new(10, 0, 0, 7), DhcpState::Active, 1_800_000_000);
    b.htype = 1;
    b.hardware_address = vec![2, 0, 0, 0, 0, 7];
    BindingChange { seq: 1, time: 1_800_000_000, binding: b }
}

/// A handshake by a requestor with `cert` (None: none at all) and the lab's CA is refused — it fails, or the
/// server closes the connection at once (ALQ-8.1-17: no TLS connection) — and counted for `reason`.
async fn handshake_refused(lab: &Lab, cert: Option<&Issued>, reason: &str) {
    match negotiate(lab, client_config(lab, cert, &lab.ca)).await {
        Err(_) => {}
        Ok(mut s) => assert!(closed(&mut s).await, "ALQ-8.1-17: no TLS connection, closed"),
    }
    refused_for(lab, reason).await;
}

#[tokio::test]
async fn alq_8_1_15_mutual_tls_carries_the_active_stream() {
    let lab = lab("").await;
    let good = lab.ca.issue(&["requestor.lab"], true, false).unwrap();
    let mut tls = negotiate(&lab, client_config(&lab, Some(&good), &lab.ca)).await.expect("handshake");
    tokio::time::sleep(Duration::from_millis(100)).await;
    lab.feed.publish(vec![change()]);
    let mut buf = Vec::new();
    let m = read_message(&mut tls, &mut buf).await.expect("a live change inside TLS");
    let m = Message::decode(&m).unwrap();
    assert_eq!((m.message_type(), m.ciaddr, m.xid), (Some(MessageType::LeaseActive), Ipv4Addr::new(10, 0, 0, 7), 2));
}

/// ALQ-8.1-17: a certificate that fails verification leaves no TLS connection: the handshake fails or the
/// connection is closed at once ([`handshake_refused`]).
#[tokio::test]
async fn alq_8_1_15_a_certificate_from_another_ca_is_refused() {
    let lab = lab("").await;
    let other = LabCa::new("other CA").unwrap();
    let foreign = other.issue(&["requestor.lab"], true, false).unwrap();
    handshake_refused(&lab, Some(&foreign), "tls_unknown_ca").await;
}

#[tokio::test]
async fn alq_8_1_16_no_client_certificate_is_refused() {
    let lab = lab("").await;
    handshake_refused(&lab, None, "tls_no_certificate").await;
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused() {
    let lab = lab("").await;
    let expired = lab.ca.issue(&["requestor.lab"], true, true).unwrap();
    handshake_refused(&lab, Some(&expired), "tls_expired").await;
}

/// ALQ-9-4: which requestors may connect is configured through their certificates.
#[tokio::test]
async fn alq_8_1_8_a_requestor_not_on_the_allow_list_is_refused() {
    let lab = lab("\"requestor.lab\"").await;
    let stranger = lab.ca.issue(&["stranger.lab"], true, false).unwrap();
    handshake_refused(&lab, Some(&stranger), "tls_not_allowed").await;
    // The named one gets in.
    let named = lab.ca.issue(&["requestor.lab"], true, false).unwrap();
    assert!(admitted(&lab, &named).await);
}

/// Log lines written while the returned guard lives (this thread only: `#[tokio::test]` runs every task of
/// the test on it).
fn capture_log() -> (Arc<std::sync::Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    let buf = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || LogSink(sink.clone()))
        .with_max_level(tracing::Level::WARN)
        .finish();
    (buf, tracing::subscriber::set_default(subscriber))
}

struct LogSink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether a requestor with `cert` gets the Active stream (a live change arrives inside TLS).
async fn admitted(lab: &Lab, cert: &Issued) -> bool {
    let Ok(mut tls) = negotiate(lab, client_config(lab, Some(cert), &lab.ca)).await else { return false };
    tokio::time::sleep(Duration::from_millis(100)).await;
    lab.feed.publish(vec![change()]);
    read_message(&mut tls, &mut Vec::new()).await.is_some()
}

#[tokio::test]
async fn alq_8_1_8_a_cn_only_certificate_is_admitted_through_allow_cn() {
    let lab = lab_with(r#"allow-cn = ["router-7.corp"]"#, LabCa::new("enterprise CA").unwrap()).await;
    let cn_only = lab.ca.issue_cn_only("router-7.corp", true).unwrap();
    assert!(admitted(&lab, &cn_only).await, "CN matching is configured");
    let other = lab.ca.issue_cn_only("router-8.corp", true).unwrap();
    assert!(!admitted(&lab, &other).await, "another CN");
    refused_for(&lab, "tls_not_allowed").await;
}

#[tokio::test]
async fn alq_8_1_8_a_cn_only_certificate_is_refused_by_allow_names_and_the_log_says_what_it_carries() {
    let (log, _guard) = capture_log();
    let lab = lab("\"router-7.corp\"").await;
    let cn_only = lab.ca.issue_cn_only("router-7.corp", true).unwrap();
    let e = match negotiate(&lab, client_config(&lab, Some(&cn_only), &lab.ca)).await {
        Err(e) => e,
        Ok(mut s) => {
            let mut b = [0u8; 16];
            s.read(&mut b).await.expect_err("refused with an alert, not a silent close").to_string()
        }
    };
    assert!(e.contains("alert"), "the requestor is told by a TLS alert: {e}");
    refused_for(&lab, "tls_not_allowed").await;
    let log = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    assert!(log.contains(r#"CN ["router-7.corp"]"#) && log.contains("allow-cn"), "{log}");
}

#[tokio::test]
async fn alq_8_1_8_uri_and_ip_subject_alt_names_match_allow_names() {
    let lab = lab("\"spiffe://lab.example/requestor\", \"10.9.8.7\"").await;
    assert!(admitted(&lab, &lab.ca.issue(&["spiffe://lab.example/requestor"], true, false).unwrap()).await);
    assert!(admitted(&lab, &lab.ca.issue(&["10.9.8.7"], true, false).unwrap()).await);
    assert!(!admitted(&lab, &lab.ca.issue(&["spiffe://lab.example/other"], true, false).unwrap()).await);
    refused_for(&lab, "tls_not_allowed").await;
}

#[tokio::test]
async fn alq_8_1_8_an_spki_pin_admits_its_key_and_a_wrong_pin_refuses() {
    let ca = LabCa::new("pinning CA").unwrap();
    let pinned = ca.issue(&["anything.lab"], true, false).unwrap();
    let key = rcgen::KeyPair::from_pem(&pinned.key_pem).unwrap();
    let pin = leasewire_server::tcp::tls_allow::spki_pin(&rcgen::PublicKeyData::subject_public_key_info(&key));
    let lab = lab_with(&format!("allow-spki = [\"{pin}\"]"), ca).await;
    assert!(admitted(&lab, &pinned).await);
    let same_name_other_key = lab.ca.issue(&["anything.lab"], true, false).unwrap();
    assert!(!admitted(&lab, &same_name_other_key).await);
    refused_for(&lab, "tls_not_allowed").await;
}

#[tokio::test]
async fn lab_certs_requestor_issues_certificates_the_server_admits() {
    let dir = tempfile::tempdir().unwrap();
    lab_certs::write(dir.path()).unwrap();
    let (cert, key) = lab_certs::write_requestor(dir.path(), "second.lab").unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    let ca = LabCa::load(&read("ca.pem"), &read("ca-key.pem")).unwrap();
    let lab = lab_with(r#"allow-names = ["second.lab"]"#, ca).await;
    let issued =
        Issued { cert_pem: std::fs::read_to_string(cert).unwrap(), key_pem: std::fs::read_to_string(key).unwrap() };
    assert!(admitted(&lab, &issued).await, "issued from the CA lab-certs wrote, with the name asked for");
}

#[tokio::test]
async fn alq_8_1_9_plaintext_to_a_secure_server_is_closed() {
    let lab = lab("").await;
    let mut tcp = TcpStream::connect(lab.addr).await.unwrap();
    tcp.write_all(&frame(&request(MessageType::ActiveLeaseQuery, 5))).await.unwrap();
    let mut buf = Vec::new();
    assert!(read_message(&mut tcp, &mut buf).await.is_none(), "closed without a reply");
    let _ = StatusCode::TlsConnectionRefused;
}

/// ALQ-5.1-2: inside TLS, every DHCP message travels in a TLS record of its own. A raw client splits the
/// server's byte stream into TLS records itself and hands them to rustls one at a time: every record that
/// yields plaintext must yield exactly one whole frame (session tickets yield none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alq_5_1_2_one_dhcp_message_per_tls_record() {
    use std::io::{Read, Write};
    let lab = lab("").await;
    let good = lab.ca.issue(&["requestor.lab"], true, false).unwrap();
    let config = client_config(&lab, Some(&good), &lab.ca);
    let addr = lab.addr;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let client = tokio::task::spawn_blocking(move || {
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp.write_all(&frame(&request(MessageType::Tls, 1))).unwrap();
        let mut answer = [0u8; 2];
        tcp.read_exact(&mut answer).unwrap();
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(answer))];
        tcp.read_exact(&mut body).unwrap();
        assert_eq!(Message::decode(&body).unwrap().message_type(), Some(MessageType::Tls));
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = rustls::ClientConnection::new(config, name).unwrap();
        while tls.is_handshaking() {
            while tls.wants_write() {
                tls.write_tls(&mut tcp).unwrap();
            }
            if tls.is_handshaking() && tls.wants_read() {
                tls.read_tls(&mut tcp).unwrap();
                tls.process_new_packets().unwrap();
            }
        }
        tls.writer().write_all(&frame(&request(MessageType::ActiveLeaseQuery, 2))).unwrap();
        while tls.wants_write() {
            tls.write_tls(&mut tcp).unwrap();
        }
        ready_tx.send(()).unwrap();
        // Split the stream into records by their 5-octet headers, feed them one by one.
        let (mut raw, mut messages, mut chunk) = (Vec::new(), 0, [0u8; 4096]);
        while messages < 5 {
            while raw.len() >= 5 && raw.len() >= 5 + usize::from(u16::from_be_bytes([raw[3], raw[4]])) {
                let len = 5 + usize::from(u16::from_be_bytes([raw[3], raw[4]]));
                let record: Vec<u8> = raw.drain(..len).collect();
                tls.read_tls(&mut &record[..]).unwrap();
                let state = tls.process_new_packets().unwrap();
                let n = state.plaintext_bytes_to_read();
                if n == 0 {
                    continue;
                }
                let mut plain = vec![0u8; n];
                tls.reader().read_exact(&mut plain).unwrap();
                let (body, used) = FrameDecoder::default().decode(&plain).unwrap().expect("a whole frame");
                assert_eq!(used, plain.len(), "one record, one message: {} octets left over", plain.len() - used);
                assert_eq!(Message::decode(body).unwrap().message_type(), Some(MessageType::LeaseActive));
                messages += 1;
            }
            if messages == 5 {
                break;
            }
            let k = tcp
                .read(&mut chunk)
                .unwrap_or_else(|e| panic!("{e} with {} raw octets, {messages} messages", raw.len()));
            assert!(k > 0, "closed after {messages} messages");
            raw.extend_from_slice(&chunk[..k]);
        }
        messages
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Five changes at once: the server has five messages to write in one go.
    lab.feed.publish(
        (1..=5)
            .map(|i| {
                let mut c = change();
                c.seq = i;
                c.binding.ip = Ipv4Addr::new(10, 0, 0, i as u8);
                c
            })
            .collect(),
    );
    assert_eq!(client.await.unwrap(), 5);
}

/// ALQ-8.1-7: secure mode is TLS (1.2 and 1.3).
#[tokio::test]
async fn bcp195_only_tls_1_2_and_1_3_with_aead_suites() {
    let lab = lab("").await;
    let good = lab.ca.issue(&["requestor.lab"], true, false).unwrap();
    for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12][..]] {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(lab.ca.cert_pem().as_bytes()).unwrap()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(good.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(good.key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        let tls = negotiate(&lab, Arc::new(config)).await.expect("handshake");
        let conn = tls.get_ref().1;
        let version = conn.protocol_version().unwrap();
        assert!(matches!(version, rustls::ProtocolVersion::TLSv1_2 | rustls::ProtocolVersion::TLSv1_3));
        // RFC 9325 (BCP 195) §4.2: AEAD suites with forward secrecy only.
        let suite = format!("{:?}", conn.negotiated_cipher_suite().unwrap().suite());
        assert!(
            ["TLS13_AES_256_GCM_SHA384", "TLS13_AES_128_GCM_SHA256", "TLS13_CHACHA20_POLY1305_SHA256"]
                .contains(&suite.as_str())
                || (suite.starts_with("TLS_ECDHE_") && (suite.contains("_GCM_") || suite.contains("CHACHA20"))),
            "{version:?} {suite}"
        );
    }
    // What the server accepts at all: the two versions, no CBC, no RSA key exchange.
    let server = leasewire_server::tcp::tls::TlsSettings::load(
        &lab.tls().cert,
        &lab.tls().key,
        &lab.tls().ca,
        Default::default(),
    )
    .unwrap();
    for s in &server.config.crypto_provider().cipher_suites {
        let name = format!("{:?}", s.suite());
        assert!(!name.contains("CBC") && !name.starts_with("TLS_RSA_"), "{name}");
    }
}

#[tokio::test]
async fn reload_swaps_certificates_for_new_handshakes_without_dropping_established_sessions() {
    let lab = lab("").await;
    let old = lab.ca.issue(&["requestor.lab"], true, false).unwrap();
    let mut established = negotiate(&lab, client_config(&lab, Some(&old), &lab.ca)).await.expect("handshake");
    // Rotation: a new CA signs both the server's certificate and the requestors'.
    let ca2 = LabCa::new("rotated CA").unwrap();
    let server2 = ca2.issue(&["localhost"], false, false).unwrap();
    std::fs::write(&lab.tls().ca, ca2.cert_pem()).unwrap();
    std::fs::write(&lab.tls().cert, &server2.cert_pem).unwrap();
    std::fs::write(&lab.tls().key, &server2.key_pem).unwrap();
    service(&lab).reconfigure(&lab.config).expect("the rotated files load");
    // A requestor that trusts only the new CA gets in now.
    let new = ca2.issue(&["requestor.lab"], true, false).unwrap();
    let mut fresh =
        negotiate(&lab, client_config(&lab, Some(&new), &ca2)).await.expect("the new certificates are in use");
    // The old requestor certificate is no longer accepted for new connections...
    match negotiate(&lab, client_config(&lab, Some(&old), &ca2)).await {
        Err(_) => {}
        Ok(mut s) => assert!(closed(&mut s).await),
    }
    refused_for(&lab, "tls_unknown_ca").await;
    // ...but the session established before the reload still streams, as does the new one.
    tokio::time::sleep(Duration::from_millis(100)).await;
    lab.feed.publish(vec![change()]);
    for s in [&mut established, &mut fresh] {
        let m = read_message(s, &mut Vec::new()).await.expect("a live change after the reload");
        assert_eq!(Message::decode(&m).unwrap().message_type(), Some(MessageType::LeaseActive));
    }
    // A reload with a broken file keeps what works.
    std::fs::write(&lab.tls().key, "not a key").unwrap();
    let e = service(&lab).reconfigure(&lab.config).expect_err("a broken key is refused");
    assert!(e.to_string().contains("server-key.pem"), "the error names the file: {e}");
    let again = ca2.issue(&["requestor.lab"], true, false).unwrap();
    assert!(negotiate(&lab, client_config(&lab, Some(&again), &ca2)).await.is_ok(), "still serving TLS");
}
