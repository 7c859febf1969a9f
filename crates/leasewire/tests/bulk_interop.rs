//! Bulk Leasequery end to end: an independent requestor (Python on scapy, written from RFC 6926:
//! tests/interop/bulk_requestor.py) and `leasewire bulk` against `leasewire serve`, whose leases come from
//! relayed DORAs.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use support::relay::Relay;
use support::{Server, ServerConfig, free_tcp_port, free_udp_port};

fn scapy(port: u16, args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/interop/bulk_requestor.py");
    let out = Command::new(support::python_module("scapy", "pip install scapy, or python3-scapy"))
        .arg(script)
        .arg("127.0.0.1")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("python3");
    assert!(out.status.success(), "scapy requestor: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn scapy_requestor_and_leasewire_bulk_see_the_same_bindings() {
    let dir = tempfile::tempdir().unwrap();
    let (udp, tcp) = (free_udp_port(), free_tcp_port());
    let config = ServerConfig::new(udp).bulk(tcp).subnet("127.0.0.0/8", "127.1.0.0", "127.1.0.99", "");
    let server = Server::start(dir.path(), &config.text(), None);
    let relay = Relay::new(SocketAddr::from((Ipv4Addr::LOCALHOST, udp)), Ipv4Addr::LOCALHOST);
    let mut leased = BTreeMap::new();
    for i in 0..10u8 {
        let mac = [2, 0, 0, 0, 0x10, i];
        let ip = relay.dora(mac, 0x100 + i as u32, Ipv4Addr::LOCALHOST).expect("a lease");
        leased.insert(ip.to_string(), mac.iter().map(|b| format!("{b:02x}")).collect::<String>());
    }
    server.wait_log("binding committed seq=10", 10);

    // All configured addresses, with a second query pipelined on the same connection (RFC 6926 §7.7).
    let all = scapy(tcp, &["--extra-query"]);
    assert_eq!(all["errors"], Value::Array(vec![]), "{all}");
    let done = all["done"].as_array().unwrap();
    assert_eq!(done.len(), 2, "both queries end with DONE");
    assert!(done.iter().all(|d| d["status"] == 0));
    let replies = all["replies"].as_array().unwrap();
    let first: Vec<&Value> = replies.iter().filter(|r| r["xid"] == 0x5eed0001).collect();
    assert_eq!(first.len(), 100, "every configured address exactly once");
    let mut seen = std::collections::HashSet::new();
    for r in &first {
        assert!(seen.insert(r["ip"].as_str().unwrap().to_string()));
        assert_eq!(r["has_associated_ip"], false, "BLQ-5-3");
        assert_eq!(r["server_id"], "127.0.0.1", "BLQ-7.3-5 (cached from the first reply)");
        assert!(r["base_time"].as_u64().unwrap() > 1_700_000_000);
        match leased.get(r["ip"].as_str().unwrap()) {
            Some(mac) => {
                assert_eq!((r["type"].as_str(), r["state"].as_str()), (Some("lease_active"), Some("ACTIVE")));
                assert_eq!(r["mac"].as_str(), Some(mac.as_str()));
                assert!(r["lease_time"].as_u64().unwrap() > 3000);
                assert!(r["cltt"].as_u64().unwrap() < 60);
            }
            None => {
                assert_eq!((r["type"].as_str(), r["state"].as_str()), (Some("lease_unassigned"), Some("AVAILABLE")))
            }
        }
    }

    // By relay-id and by MAC.
    let by_relay = scapy(tcp, &["--relay-id", &hex::encode(b"relay-A")]);
    assert_eq!(by_relay["replies"].as_array().unwrap().len(), 10);
    let (ip, mac) = leased.iter().next().unwrap();
    let by_mac = scapy(tcp, &["--mac", mac]);
    let r = by_mac["replies"].as_array().unwrap();
    assert_eq!((r.len(), r[0]["ip"].as_str()), (1, Some(ip.as_str())));

    // `leasewire bulk --json` agrees with the independent requestor.
    let out = Command::new(support::leasewire())
        .args(["bulk", "--server", &format!("127.0.0.1:{tcp}"), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ours: BTreeMap<String, (String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .inspect(|v| leasewire_requestor::json::validate(v).unwrap())
        .map(|v| {
            (
                v["ip"].as_str().unwrap().to_string(),
                // The schema's absent MAC is null; the Python requestor's is "".
                (v["state"].as_str().unwrap().to_string(), v["mac"].as_str().unwrap_or("").replace(':', "")),
            )
        })
        .collect();
    let theirs: BTreeMap<String, (String, String)> = first
        .iter()
        .map(|r| {
            (
                r["ip"].as_str().unwrap().to_string(),
                (r["state"].as_str().unwrap().to_string(), r["mac"].as_str().unwrap().to_string()),
            )
        })
        .collect();
    assert_eq!(ours, theirs);
    assert!(String::from_utf8_lossy(&out.stderr).contains("100 binding(s)"));
    server.stop();
}

/// ALQ-8.1-8 with a TLS stack that is not rustls: a Python `ssl` (OpenSSL) requestor whose certificate names
/// it only in the subject CN, as enterprise PKIs and network devices issue them, is admitted through
/// `allow-cn` and gets a Bulk Leasequery answered inside TLS; another CN from the same CA is refused.
/// A `leasewire serve` in secure mode (Active Leasequery with TLS, `allow-cn = ["router-7.corp"]`), its
/// certificates from `ca`, and its Leasequery TCP port.
fn secure_server(dir: &std::path::Path, ca: &support::lab_certs::LabCa) -> (Server, u16) {
    let server_cert = ca.issue(&["localhost", "127.0.0.1"], false, false).unwrap();
    let ca_pem = write(dir, "ca.pem", &ca.cert_pem());
    let (cert, key) =
        (write(dir, "server.pem", &server_cert.cert_pem), write(dir, "server-key.pem", &server_cert.key_pem));
    let (udp, tcp) = (free_udp_port(), free_tcp_port());
    let config = ServerConfig::new(udp)
        .bulk(tcp)
        .active_tls(
            std::path::Path::new(&cert),
            std::path::Path::new(&key),
            std::path::Path::new(&ca_pem),
            r#"allow-cn = ["router-7.corp"]"#,
        )
        .subnet("127.0.0.0/8", "127.1.0.0", "127.1.0.9", "");
    (Server::start(dir, &config.text(), None), tcp)
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// A requestor certificate with only a subject CN, written as NAME.pem / NAME-key.pem.
fn cn_only(dir: &std::path::Path, ca: &support::lab_certs::LabCa, cn: &str) -> (String, String) {
    let issued = ca.issue_cn_only(cn, true).unwrap();
    (write(dir, &format!("{cn}.pem"), &issued.cert_pem), write(dir, &format!("{cn}-key.pem"), &issued.key_pem))
}

/// ALQ-8.1-8 with a TLS stack that is not rustls: a Python `ssl` (OpenSSL) requestor whose certificate names
/// it only in the subject CN, as enterprise PKIs and network devices issue them, is admitted through
/// `allow-cn` and gets a Bulk Leasequery answered inside TLS; another CN from the same CA is refused.
#[test]
fn alq_8_1_8_python_ssl_requestor_with_a_cn_only_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = support::lab_certs::LabCa::new("enterprise CA").unwrap();
    let (server, tcp) = secure_server(dir.path(), &ca);
    let ca_pem = dir.path().join("ca.pem").to_str().unwrap().to_string();
    let client = |cn: &str| {
        let (c, k) = cn_only(dir.path(), &ca, cn);
        scapy(tcp, &["--tls", &c, &k, &ca_pem])
    };
    let admitted = client("router-7.corp");
    assert_eq!(admitted["errors"], Value::Array(vec![]), "{admitted}");
    assert_eq!(admitted["replies"].as_array().unwrap().len(), 10, "{admitted}");
    assert_eq!(admitted["done"][0]["status"], 0);
    let refused = client("router-8.corp");
    assert!(refused["replies"].as_array().unwrap().is_empty(), "{refused}");
    let error = refused["errors"][0].as_str().unwrap_or_default();
    assert!(error.to_lowercase().contains("certificate"), "refused with a certificate alert: {refused}");
    server.wait_log("CN [\"router-8.corp\"]", 10);
    server.stop();
}

/// What `leasewire bulk` says when it cannot get in: a query in the clear to a server that requires TLS
/// names the flags to pass; a certificate the server refuses is reported as such; and the summary never
/// says `status Success` when no DONE arrived.
#[test]
fn bulk_against_a_secure_server_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let ca = support::lab_certs::LabCa::new("enterprise CA").unwrap();
    let (server, tcp) = secure_server(dir.path(), &ca);
    let addr = format!("127.0.0.1:{tcp}");
    let bulk = |extra: &[&str]| {
        let out = Command::new(support::leasewire()).args(["bulk", "--server", &addr]).args(extra).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = bulk(&[]);
    assert!(!ok, "{err}");
    assert!(err.contains("requires TLS") && err.contains("--tls-cert"), "{err}");
    assert!(!err.contains("status Success"), "{err}");
    let ca_pem = dir.path().join("ca.pem").to_str().unwrap().to_string();
    let (c, k) = cn_only(dir.path(), &ca, "router-8.corp");
    let (ok, err) = bulk(&["--tls-cert", &c, "--tls-key", &k, "--ca", &ca_pem]);
    assert!(!ok, "{err}");
    assert!(err.contains("refused this requestor's certificate"), "{err}");
    assert!(!err.contains("status Success"), "{err}");
    let (c, k) = cn_only(dir.path(), &ca, "router-7.corp");
    let (ok, err) = bulk(&["--tls-cert", &c, "--tls-key", &k, "--ca", &ca_pem, "--json"]);
    assert!(ok && err.contains("10 binding(s)") && err.contains("status Success"), "{err}");
    server.stop();
}

/// The independent Bulk Leasequery server (`tests/interop/bulk_server.py`, on scapy) on a free port, serving
/// `bindings` (written to `dir`); returns once it says it is ready, with its port.
fn scapy_bulk_server(dir: &std::path::Path, bindings: &Value) -> (support::Proc, u16) {
    let path = dir.join("bindings.json");
    std::fs::write(&path, bindings.to_string()).unwrap();
    let port = free_tcp_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/interop/bulk_server.py");
    let mut server = support::Proc::spawn(
        "bulk_server.py",
        Command::new(support::python_module("scapy", "pip install scapy, or python3-scapy"))
            .arg(script)
            .arg(port.to_string())
            .arg(&path)
            .stdout(std::process::Stdio::piped()),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.child.stdout.as_mut().unwrap()), &mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    (server, port)
}

/// A server that sends neither start-time-of-state (153) nor dhcp-state (156) nor data-source (157), as Kea
/// 3.2's lease_query hook does: the requestor reports what the RFC defines for their absence (ACTIVE for
/// DHCPLEASEACTIVE, BLQ-6.2.7-5; local, BLQ-6.2.8-4) and leaves the start of the state unknown (`null`) instead
/// of inventing base-time as its value.
#[test]
fn blq_6_2_5_a_server_that_omits_153_156_157_gets_nothing_invented() {
    let dir = tempfile::tempdir().unwrap();
    let bindings = serde_json::json!([
        {"ip": "10.9.1.5", "mac": "020000000105", "state": 2, "expires": 500, "omit_state": true},
        {"ip": "10.9.1.6", "mac": "020000000106", "state": 4, "omit_state": true},
    ]);
    let (_server, port) = scapy_bulk_server(dir.path(), &bindings);
    let out = Command::new(support::leasewire())
        .args(["bulk", "--server", &format!("127.0.0.1:{port}"), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert_eq!((&l["state_since"], &l["state_since_epoch"]), (&Value::Null, &Value::Null), "{l}");
        assert_eq!(l["data_source"], "local", "{l}");
        assert!(l["base_time_epoch"].as_u64().is_some(), "{l}");
    }
    assert_eq!(lines[0]["state"], "ACTIVE", "BLQ-6.2.7-5: DHCPLEASEACTIVE without dhcp-state");
    assert_eq!(lines[0]["expires_at_epoch"].as_u64(), lines[0]["base_time_epoch"].as_u64().map(|b| b + 500));
    assert_eq!(lines[1]["state"], "AVAILABLE", "DHCPLEASEUNASSIGNED without dhcp-state: free, nothing more known");
}

mod hex {
    pub fn encode(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}

#[test]
fn leasewire_bulk_against_an_independent_scapy_server() {
    let dir = tempfile::tempdir().unwrap();
    let bindings = serde_json::json!([
        {"ip": "10.9.0.5", "mac": "020000000005", "state": 2, "start": 100, "expires": 500, "relay_id": "72656c6179"},
        {"ip": "10.9.0.6", "mac": "020000000006", "state": 4, "start": 30},
        {"ip": "10.9.0.7", "mac": "020000000007", "state": 2, "start": 5, "expires": 595, "relay_id": "6f74686572"},
    ]);
    let (_server, port) = scapy_bulk_server(dir.path(), &bindings);

    let run = |args: &[&str]| -> Vec<Value> {
        let mut a = vec!["bulk", "--server"];
        let server = format!("127.0.0.1:{port}");
        a.push(&server);
        a.extend_from_slice(args);
        a.push("--json");
        let out = Command::new(support::leasewire()).args(&a).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let all = run(&[]);
    assert_eq!(all.len(), 3);
    let a = &all[0];
    assert_eq!(
        (a["ip"].as_str(), a["state"].as_str(), a["mac"].as_str()),
        (Some("10.9.0.5"), Some("ACTIVE"), Some("02:00:00:00:00:05"))
    );
    // BLQ-7.4: absolute times from base-time and the relative options.
    let base = a["base_time_epoch"].as_u64().unwrap();
    assert_eq!(a["state_since_epoch"].as_u64().unwrap(), base - 100);
    assert_eq!(a["expires_at_epoch"].as_u64().unwrap(), base + 500);
    assert_eq!(a["server_id"].as_str(), Some("192.0.2.1"));
    assert_eq!(all[2]["server_id"].as_str(), Some("192.0.2.1"), "BLQ-7.3-6: cached for later replies");
    assert_eq!(all[1]["state"].as_str(), Some("RELEASED"));
    let by_relay = run(&["--relay-id", "72656c6179"]);
    assert_eq!(by_relay.len(), 1);
    assert_eq!(by_relay[0]["ip"].as_str(), Some("10.9.0.5"));
    let by_mac = run(&["--mac", "02:00:00:00:00:07"]);
    assert_eq!(by_mac.len(), 1);
}
