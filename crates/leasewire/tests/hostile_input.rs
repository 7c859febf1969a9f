//! Bad input never crashes the server: malformed packets, wrong op codes, truncated options and a DISCOVER
//! flood with random MACs are answered or dropped with a counted reason, and a legitimate client is still
//! served afterwards.

mod support;

use leasewire_proto::{MessageType, Op};
use std::net::{Ipv4Addr, SocketAddr};
use support::relay::Relay;
use support::{Server, ServerConfig, free_tcp_port, free_udp_port, http_get, metric};

#[test]
fn malformed_packets_and_floods_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let metrics_port = free_tcp_port();
    let config = ServerConfig::new(port).server_key("offer-timeout = 5").metrics(metrics_port);
    let config = config.subnet("127.0.0.0/8", "127.2.0.0", "127.2.0.255", "");
    let server = Server::start(dir.path(), &config.text(), None);
    let server_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let relay = Relay::new(server_addr, Ipv4Addr::LOCALHOST);

    let good = {
        let mut b = Vec::new();
        relay.request(MessageType::Discover, [2, 0, 0, 0, 0, 1], 1).encode(&mut b).unwrap();
        b
    };
    // Garbage, short, bad cookie, truncated options (no end), an option overrunning the packet.
    relay.send_raw(b"hello");
    relay.send_raw(&good[..200]);
    let mut bad_cookie = good.clone();
    bad_cookie[236] = 0;
    relay.send_raw(&bad_cookie);
    let end = good.iter().rposition(|&b| b == 255).unwrap();
    relay.send_raw(&good[..end]);
    let mut overrun = good[..243].to_vec();
    overrun.extend_from_slice(&[61, 200, 1, 2]);
    relay.send_raw(&overrun);
    // A BOOTREPLY sent to the server, and a request without a message type.
    let mut reply = relay.request(MessageType::Discover, [2, 0, 0, 0, 0, 2], 2);
    reply.op = Op::BootReply;
    relay.send(&reply);
    let mut untyped = relay.request(MessageType::Discover, [2, 0, 0, 0, 0, 3], 3);
    untyped.options.remove(53);
    relay.send(&untyped);
    assert!(relay.recv(2).is_none() && relay.recv(3).is_none(), "no answer to bad packets");

    // A flood of DISCOVERs with random MACs exhausts the 256-address pool with offers; the rest are dropped.
    let mut seed = 0x2545_f491u64;
    for i in 0..2000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let b = seed.to_be_bytes();
        relay.send(&relay.request(MessageType::Discover, [2, b[0], b[1], b[2], b[3], b[4]], 0x1000_0000 + i));
        if i % 200 == 199 {
            // Pace slightly so the loopback socket buffer does not overflow (this is about the server).
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let body = http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, metrics_port)), "/metrics");
    assert_eq!(metric(&body, "leasewire_dhcp_packets_dropped_total{reason=\"decode_error\"}"), 5.0, "{body}");
    assert_eq!(metric(&body, "leasewire_dhcp_packets_dropped_total{reason=\"not_a_request\"}"), 1.0);
    assert_eq!(metric(&body, "leasewire_dhcp_packets_dropped_total{reason=\"no_message_type\"}"), 1.0);
    let exhausted = metric(&body, "leasewire_dhcp_packets_dropped_total{reason=\"pool_exhausted\"}");
    let offers = metric(&body, "leasewire_dhcp_packets_sent_total{type=\"DHCPOFFER\"}");
    assert!(offers >= 256.0 && exhausted > 0.0, "offers {offers}, exhausted {exhausted}");

    // Still serving: once the flood's offers lapse (offer-timeout 5 s), a real client completes DORA.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut attempt = 0;
    let ip = loop {
        // A new xid each attempt: a late reply to the previous attempt must not be taken for this one's.
        attempt += 1;
        if let Some(ip) = relay.dora([2, 0, 0, 0, 0, 0x42], 0x4242_0000 + attempt, Ipv4Addr::LOCALHOST) {
            break ip;
        }
        assert!(std::time::Instant::now() < deadline, "server stopped serving after hostile input");
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(ip.octets()[..3] == [127, 2, 0]);
    server.stop();
}
