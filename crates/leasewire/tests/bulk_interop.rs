//! Bulk Leasequery end to end: an independent requestor (Python on scapy, written from RFC 6926:
//! tests/interop/bulk_requestor.py) and `leasewire bulk` against `leasewire serve`, whose leases come from
//! relayed DORAs.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use support::relay::Relay;
use support::{Server, free_tcp_port, free_udp_port};

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
    let config = format!(
        r#"
[server]
server-id = "127.0.0.1"
listen = ["127.0.0.1:{udp}"]
data-dir = "@DATA@"
[bulk-leasequery]
listen = ["127.0.0.1:{tcp}"]
allow = ["127.0.0.0/8"]
[[subnet]]
subnet = "127.0.0.0/8"
pools = [{{ start = "127.1.0.0", end = "127.1.0.99" }}]
"#
    );
    let server = Server::start(dir.path(), &config, None);
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
        .map(|v| {
            (
                v["ip"].as_str().unwrap().to_string(),
                (v["state"].as_str().unwrap().to_string(), v["mac"].as_str().unwrap().replace(':', "")),
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
    let path = dir.path().join("bindings.json");
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
    let base = a["base_time"].as_u64().unwrap();
    assert_eq!(a["state_since"].as_u64().unwrap(), base - 100);
    assert_eq!(a["expires_at"].as_u64().unwrap(), base + 500);
    assert_eq!(a["server_id"].as_str(), Some("192.0.2.1"));
    assert_eq!(all[2]["server_id"].as_str(), Some("192.0.2.1"), "BLQ-7.3-6: cached for later replies");
    assert_eq!(all[1]["state"].as_str(), Some("RELEASED"));
    let by_relay = run(&["--relay-id", "72656c6179"]);
    assert_eq!(by_relay.len(), 1);
    assert_eq!(by_relay[0]["ip"].as_str(), Some("10.9.0.5"));
    let by_mac = run(&["--mac", "02:00:00:00:00:07"]);
    assert_eq!(by_mac.len(), 1);
}
