//! The lease log (issue #16 item 4): `leasewire serve` writes one INFO line per committed change under the
//! target `leasewire::lease`, ISC-like in the human format and with the same values as keys in JSON, and
//! writes none with `[log] leases = false`.

mod support;

use leasewire_proto::MessageType;
use leasewire_proto::options::code;
use std::net::{Ipv4Addr, SocketAddr};
use support::relay::Relay;
use support::{Server, ServerConfig, free_udp_port};

/// Two relayed subnets: 127.1.0.0/16 with hour-long leases, 127.2.0.0/16 with 1-second ones (to see EXPIRE).
fn config(udp: u16, extra: &str) -> String {
    ServerConfig::new(udp)
        .section(extra)
        .subnet("127.1.0.0/16", "127.1.0.10", "127.1.0.200", "lease-time = 3600")
        .subnet("127.2.0.0/16", "127.2.0.10", "127.2.0.200", "lease-time = 1")
        .text()
}

fn mac(n: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, n]
}

const SERVER_ID: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

#[test]
fn lease_log_has_an_isc_like_line_for_ack_release_decline_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let udp = free_udp_port();
    let server = Server::start(dir.path(), &config(udp, ""), None);
    let to = SocketAddr::from((SERVER_ID, udp));
    let a = Relay::new(to, Ipv4Addr::new(127, 1, 0, 1));

    let ip = a.dora(mac(1), 1, SERVER_ID).expect("ACK");
    let line = server.wait_log("DHCPACK", 10);
    let expected = format!(
        "leasewire::lease: DHCPACK {ip} to 02:00:00:00:00:01 via 127.1.0.1 circuit-id \"port-1\" \
         remote-id 02:00:00:00:00:01 lease 3600 s"
    );
    assert!(line.ends_with(&expected), "{line}\nwanted it to end with\n{expected}");
    assert!(line.contains(" INFO "), "{line}");

    let mut release = a.request(MessageType::Release, mac(1), 2);
    release.ciaddr = ip;
    release.options.set_ip(code::SERVER_IDENTIFIER, SERVER_ID);
    a.send(&release);
    let line = server.wait_log("DHCPRELEASE", 10);
    assert!(line.contains(&format!("DHCPRELEASE {ip} from 02:00:00:00:00:01 via 127.1.0.1 circuit-id")), "{line}");
    assert!(!line.contains(" lease "), "a release has no lease time: {line}");

    // A DECLINE's binding keeps no client: the line names the client from the request.
    let ip2 = a.dora(mac(2), 3, SERVER_ID).expect("ACK");
    server.wait_log(&format!("DHCPACK {ip2}"), 10);
    let mut decline = a.request(MessageType::Decline, mac(2), 4);
    decline.options.set_ip(code::REQUESTED_IP, ip2);
    decline.options.set_ip(code::SERVER_IDENTIFIER, SERVER_ID);
    a.send(&decline);
    let line = server.wait_log("DHCPDECLINE", 10);
    assert!(line.contains(&format!("DHCPDECLINE {ip2} from 02:00:00:00:00:02 via 127.1.0.1")), "{line}");

    // A one-second lease ends by itself: EXPIRE, from the timer (no relay address).
    let b = Relay::new(to, Ipv4Addr::new(127, 2, 0, 1));
    let ip3 = b.dora(mac(3), 5, SERVER_ID).expect("ACK");
    let line = server.wait_log(&format!("DHCPACK {ip3}"), 10);
    assert!(line.ends_with("lease 1 s"), "{line}");
    let line = server.wait_log("leasewire::lease: EXPIRE", 10);
    assert!(line.contains(&format!("EXPIRE {ip3} of 02:00:00:00:00:03 circuit-id \"port-3\"")), "{line}");
    assert!(!line.contains(" via "), "{line}");
    server.stop();
}

#[test]
fn lease_log_in_json_has_the_same_values_as_keys() {
    let dir = tempfile::tempdir().unwrap();
    let udp = free_udp_port();
    let data = dir.path().join("data");
    let path = dir.path().join("server.toml");
    std::fs::write(&path, config(udp, "").replace("@DATA@", data.to_str().unwrap())).unwrap();
    let server = Server::start_env(dir.path(), &path, None, &[], &[("LEASEWIRE_LOG_FORMAT", "json")]);
    let a = Relay::new(SocketAddr::from((SERVER_ID, udp)), Ipv4Addr::new(127, 1, 0, 1));
    let ip = a.dora(mac(7), 1, SERVER_ID).expect("ACK");
    let line = server.wait_log("\"DHCPACK\"", 10);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["target"], "leasewire::lease", "{v}");
    assert_eq!(v["level"], "INFO", "{v}");
    let f = &v["fields"];
    assert_eq!(f["event"], "DHCPACK", "{v}");
    assert_eq!(f["ip"], ip.to_string(), "{v}");
    assert_eq!(f["mac"], "02:00:00:00:00:07", "{v}");
    assert_eq!(f["via"], "127.1.0.1", "{v}");
    assert_eq!(f["circuit_id"], "\"port-7\"", "{v}");
    assert_eq!(f["remote_id"], "02:00:00:00:00:07", "{v}");
    assert_eq!(f["lease_secs"], 3600, "{v}");
    assert!(f["message"].as_str().unwrap().starts_with(&format!("DHCPACK {ip} to 02:00:00:00:00:07")), "{v}");
    assert!(f.get("client_id").is_none(), "absent values are absent, not empty: {v}");
    server.stop();
}

#[test]
fn no_lease_log_with_log_leases_false() {
    let dir = tempfile::tempdir().unwrap();
    let udp = free_udp_port();
    let server = Server::start(dir.path(), &config(udp, "[log]\nleases = false"), None);
    let a = Relay::new(SocketAddr::from((SERVER_ID, udp)), Ipv4Addr::new(127, 1, 0, 1));
    a.dora(mac(1), 1, SERVER_ID).expect("ACK");
    // The commit happened (the debug line the test filter enables says so) ...
    server.wait_log("binding committed", 10);
    // ... and by the clean exit nothing was written under the lease log's target.
    let lines = server.stop_with_logs();
    assert!(lines.iter().any(|l| l.contains("stopped")), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("leasewire::lease")), "{lines:#?}");
}
