//! A lease acknowledged to a client is durable: kill -9 the server during relayed DORA load, restart it, and
//! every address a client got a DHCPACK for is still bound to that client.

mod support;

use leasewire_proto::MessageType;
use leasewire_proto::options::code;
use leasewire_store::LeaseStore;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use support::relay::Relay;
use support::{Server, ServerConfig, free_udp_port, open_store};

fn config(port: u16) -> String {
    ServerConfig::new(port).subnet("127.0.0.0/8", "127.1.0.0", "127.1.255.254", "lease-time = 3600").text()
}

#[test]
fn every_acked_lease_survives_kill_9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let server_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut server = Server::start(dir.path(), &config(port), None);

    // Four relays, each running DORAs back to back, recording every ACK.
    let acked: Arc<Mutex<HashMap<[u8; 6], Ipv4Addr>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4u8)
        .map(|w| {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let relay = Relay::new(server_addr, Ipv4Addr::LOCALHOST);
                for i in 0..u16::MAX {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let mac = [2, w, 0, 0, (i >> 8) as u8, i as u8];
                    match relay.dora(mac, (w as u32) << 24 | i as u32, Ipv4Addr::LOCALHOST) {
                        Some(ip) => {
                            acked.lock().unwrap().insert(mac, ip);
                        }
                        None => break,
                    }
                }
            })
        })
        .collect();
    // Let load build up until a few hundred leases are acknowledged, then kill without warning.
    while acked.lock().unwrap().len() < 300 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    server.proc.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300);

    // The store holds every acknowledged binding for its client.
    {
        let store = open_store(dir.path());
        assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new(), "PRAGMA integrity_check");
        for (mac, ip) in &acked {
            let b = store.get(*ip).unwrap().unwrap_or_else(|| panic!("ACKed {ip} missing after kill -9")).binding;
            assert_eq!(b.hardware_address, mac.to_vec(), "{ip} bound to another client");
            assert_eq!(b.state, leasewire_proto::DhcpState::Active);
            assert_eq!(b.remote_id(), Some(&mac[..]), "option 82 stored with the binding");
        }
    }

    // Restarted, the server still knows them: INIT-REBOOT gets the same address back.
    let server = Server::start_with(dir.path(), &dir.path().join("server.toml"), None);
    let relay = Relay::new(server_addr, Ipv4Addr::LOCALHOST);
    for (n, (mac, ip)) in acked.iter().take(50).enumerate() {
        let xid = 0x7000_0000 + n as u32;
        let mut req = relay.request(MessageType::Request, *mac, xid);
        req.options.set_ip(code::REQUESTED_IP, *ip);
        relay.send(&req);
        let ack = relay.recv(xid).expect("an answer after restart");
        assert_eq!((ack.message_type(), ack.yiaddr), (Some(MessageType::Ack), *ip));
    }
    // And a new client does not get any of them.
    let fresh = relay.dora([2, 9, 9, 9, 9, 9], 0x7100_0000, Ipv4Addr::LOCALHOST).unwrap();
    assert!(!acked.values().any(|ip| *ip == fresh));
    server.stop();
}
