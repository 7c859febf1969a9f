//! Convergence under reconnection: random DHCP activity while a requestor seeds itself with a Bulk
//! Leasequery, then follows the Active stream, dropping and re-opening the connection at random moments (also
//! in the middle of catch-up) with the base-time rules of RFC 7724 §7.3/§7.4.1. When the activity stops, the
//! requestor's view equals the server's store, every run.

mod support;

use leasewire_proto::framing::{FrameDecoder, encode_frame};
use leasewire_proto::options::code;
use leasewire_proto::session::BulkKey;
use leasewire_proto::session::requestor::bulk::{BulkRequest, Event, binding_of};
use leasewire_proto::{DhcpState, Message, MessageType, Op, StatusCode};
use leasewire_store::LeaseStore;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::relay::Relay;
use support::{Rng, Server, ServerConfig, free_tcp_port, free_udp_port, open_store};

type View = HashMap<Ipv4Addr, (DhcpState, Vec<u8>)>;

/// Seed the view with "all configured addresses"; returns the lowest base-time seen (the query's start).
fn bulk_seed(tcp: u16, view: &mut View) -> u32 {
    let mut lowest = u32::MAX;
    let req = BulkRequest { key: BulkKey::All, changed_on_or_after: None, changed_on_or_before: None };
    leasewire_requestor::bulk::run(
        SocketAddr::from((Ipv4Addr::LOCALHOST, tcp)),
        &[req],
        Duration::from_secs(30),
        |ev| {
            if let Event::Binding(b) = ev {
                lowest = lowest.min(b.base_time.unwrap_or(u32::MAX));
                view.insert(b.binding.ip, (b.binding.state, b.binding.hardware_address.clone()));
            }
        },
    )
    .unwrap();
    lowest
}

/// One Active connection: read up to `budget` messages (or until quiet after catch-up); returns the new saved
/// base-time: the highest base-time seen once catch-up completed, else the previous one (ALQ-7.4.1-9).
fn active_round(tcp: u16, view: &mut View, saved: u32, budget: usize, xid: u32) -> u32 {
    let mut s = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
    let mut q = Message::new(Op::BootRequest);
    q.xid = xid;
    q.options.set_message_type(MessageType::ActiveLeaseQuery);
    q.options.set(code::PARAMETER_REQUEST_LIST, vec![152, 51, 153, 91, 156]);
    q.options.set_u32(code::QUERY_START_TIME, saved);
    let mut b = Vec::new();
    encode_frame(&q, &mut b).unwrap();
    s.write_all(&b).unwrap();
    let (mut buf, mut chunk) = (Vec::new(), [0u8; 8192]);
    let (mut caught_up, mut highest, mut n) = (false, saved, 0);
    loop {
        while let Some((body, used)) = FrameDecoder::new(65535).decode(&buf).unwrap() {
            let m = Message::decode(body).unwrap();
            let t = m.message_type().unwrap();
            match m.options.status_code() {
                Some(StatusCode::CatchUpComplete) => caught_up = true,
                Some(StatusCode::DataMissing) => {
                    // ALQ-7.4.1: history is gone; fill from Bulk Leasequery (a superset is fine), then live.
                    bulk_seed(tcp, view);
                    caught_up = true;
                    highest = highest.max(m.options.base_time().unwrap());
                }
                _ if matches!(t, MessageType::LeaseActive | MessageType::LeaseUnassigned) => {
                    let (binding, base) = binding_of(&m, t);
                    view.insert(binding.ip, (binding.state, binding.hardware_address.clone()));
                    if caught_up {
                        highest = highest.max(base.unwrap());
                    }
                }
                _ => {}
            }
            buf.drain(..used);
            n += 1;
            if n >= budget {
                // Drop the connection abruptly, wherever the stream is (mid-catch-up included).
                return if caught_up { highest } else { saved };
            }
        }
        match s.read(&mut chunk) {
            Ok(0) => return if caught_up { highest } else { saved },
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(_) if caught_up => return highest,
            Err(_) => {}
        }
    }
}

#[test]
fn alq_requestor_view_converges_to_the_store_across_reconnects() {
    for seed in [0x9e37_79b9u64, 0x85eb_ca6b, 0xc2b2_ae35] {
        let dir = tempfile::tempdir().unwrap();
        let udp = free_udp_port();
        let tcp = free_tcp_port();
        let config = ServerConfig::new(udp).active_insecure(tcp).subnet("127.0.0.0/8", "127.3.0.0", "127.3.0.63", "");
        let server = Server::start(dir.path(), &config.text(), None);
        let stop = Arc::new(AtomicBool::new(false));
        let activity = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let relay = Relay::new(SocketAddr::from((Ipv4Addr::LOCALHOST, udp)), Ipv4Addr::LOCALHOST);
                let mut rng = Rng(seed);
                let mut held: HashMap<u8, Ipv4Addr> = HashMap::new();
                let mut xid = 1;
                while !stop.load(Ordering::Relaxed) {
                    let c = (rng.next() % 40) as u8;
                    xid += 1;
                    let mac = [2, 0, 0, 0, 7, c];
                    match held.get(&c) {
                        Some(ip) if rng.next().is_multiple_of(2) => {
                            let mut r = relay.request(MessageType::Release, mac, xid);
                            r.ciaddr = *ip;
                            relay.send(&r);
                            held.remove(&c);
                        }
                        _ => {
                            if let Some(ip) = relay.dora(mac, xid, Ipv4Addr::LOCALHOST) {
                                held.insert(c, ip);
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        let mut view = View::new();
        let mut rng = Rng(seed ^ 0xffff);
        let mut saved = bulk_seed(tcp, &mut view);
        for round in 0..8u32 {
            saved = active_round(tcp, &mut view, saved, 1 + (rng.next() % 40) as usize, 100 + round);
            // Stay away a while: changes made now reach the requestor only through catch-up.
            std::thread::sleep(Duration::from_millis(20 + rng.next() % 80));
        }
        stop.store(true, Ordering::Relaxed);
        activity.join().unwrap();
        // Activity over: one last catch-up from the saved base-time brings the view up to date.
        std::thread::sleep(Duration::from_millis(300));
        active_round(tcp, &mut view, saved, usize::MAX, 999);
        server.stop();

        let store = open_store(dir.path());
        let records = leasewire_store::scan_pages(&store, leasewire_store::ScanFilter::all(), 1000)
            .flat_map(|p| p.unwrap())
            .collect::<Vec<_>>();
        assert!(records.len() > 10, "seed {seed:#x}: activity made bindings");
        for r in &records {
            let b = &r.binding;
            assert_eq!(
                view.get(&b.ip),
                Some(&(b.state, b.hardware_address.clone())),
                "seed {seed:#x}: {} differs (store {:?})",
                b.ip,
                b.state
            );
        }
        // Everything else the requestor knows is a never-leased address the bulk query reported as AVAILABLE.
        let in_store: std::collections::HashSet<Ipv4Addr> = records.iter().map(|r| r.binding.ip).collect();
        for (ip, (state, _)) in &view {
            if !in_store.contains(ip) {
                assert_eq!(*state, DhcpState::Available, "seed {seed:#x}: {ip}");
            }
        }
        let _ = store.len();
    }
}
