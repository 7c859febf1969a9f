//! Several servers over one PostgreSQL database (issue #10): two real `leasewire serve` processes share a
//! throwaway PostgreSQL cluster; relayed DORA load is split between them; an Active Leasequery requestor
//! follows one of them. One server is killed (SIGKILL) in the middle of the load.
//!
//! Checked: no address is ever ACKed to two clients, every ACKed lease is in the database bound to its
//! client, the requestor's replica equals the database with data-source REMOTE exactly on the bindings the
//! other server made, and the surviving server's requestor keeps receiving updates after the kill.

#[path = "../../leasewire-store/tests/pg/mod.rs"]
mod pg;
mod support;

use leasewire_proto::framing::FrameDecoder;
use leasewire_proto::session::requestor::bulk::binding_of;
use leasewire_proto::{DhcpState, Message, MessageType};
use leasewire_server::clock::unix_now;
use leasewire_store::{LeaseStore, PgOptions, PgStore, ScanFilter};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::frames::send_active_query;
use support::relay::Relay;
use support::{Server, ServerConfig, free_tcp_port, free_udp_port, shared_store_config};

/// What the requestor knows of an address: state, hardware address, whether another server made it.
type View = HashMap<Ipv4Addr, (DhcpState, Vec<u8>, bool)>;

/// Every DHCPACK a client got: its MAC, the address, and whether it came after the kill.
type Acks = Arc<Mutex<Vec<([u8; 6], Ipv4Addr, bool)>>>;

/// Follow the Active stream of the server at `tcp` from `start` until `stop`: every LEASEACTIVE and
/// LEASEUNASSIGNED goes into `view`; `received` counts them.
fn requestor(
    tcp: u16,
    start: u32,
    view: Arc<Mutex<View>>,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        send_active_query(&mut s, 77, &[152, 51, 153, 91, 156, 157], Some(start));
        let (mut buf, mut chunk) = (Vec::new(), [0u8; 16384]);
        while !stop.load(Ordering::Relaxed) {
            while let Some((body, used)) = FrameDecoder::new(65535).decode(&buf).unwrap() {
                let m = Message::decode(body).unwrap();
                let t = m.message_type().unwrap();
                assert_ne!(
                    m.options.status_code(),
                    Some(leasewire_proto::StatusCode::DataMissing),
                    "the shared database's history reaches back to the query start"
                );
                if matches!(t, MessageType::LeaseActive | MessageType::LeaseUnassigned) {
                    let (binding, _) = binding_of(&m, t);
                    let remote = binding.data_source.is_remote();
                    view.lock().unwrap().insert(binding.ip, (binding.state, binding.hardware_address, remote));
                    received.fetch_add(1, Ordering::Relaxed);
                }
                buf.drain(..used);
            }
            match s.read(&mut chunk) {
                Ok(0) => panic!("the server closed the Active Leasequery connection"),
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                Err(_) => {}
            }
        }
    })
}

/// The database's records as the requestor of server "a" should see them.
fn database_view(url: &str) -> View {
    let store = PgStore::open(url, PgOptions::new(unix_now(), "a")).unwrap();
    leasewire_store::scan_pages(&store, ScanFilter::all(), 1000)
        .flat_map(|p| p.unwrap())
        .map(|c| {
            let b = c.binding;
            (b.ip, (b.state, b.hardware_address, b.data_source.is_remote()))
        })
        .collect()
}

#[test]
fn two_servers_one_database_requestor_sees_all_and_a_kill_loses_nothing() {
    let cluster = pg::Cluster::get();
    let url = cluster.new_database();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (udp_a, udp_b, tcp_a, tcp_b) = (free_udp_port(), free_udp_port(), free_tcp_port(), free_tcp_port());
    let a = Server::start(dir_a.path(), &shared_store_config("a", udp_a, tcp_a, &url), None);
    let mut b = Server::start(dir_b.path(), &shared_store_config("b", udp_b, tcp_b, &url), None);
    let addr_a = SocketAddr::from((Ipv4Addr::LOCALHOST, udp_a));
    let addr_b = SocketAddr::from((Ipv4Addr::LOCALHOST, udp_b));

    let view: Arc<Mutex<View>> = Arc::default();
    let received = Arc::new(AtomicU64::new(0));
    let stop_requestor = Arc::new(AtomicBool::new(false));
    let follower = requestor(tcp_a, unix_now(), view.clone(), received.clone(), stop_requestor.clone());

    // Four relays, two per server, each running DORAs back to back with its own clients; a relay whose
    // server stops answering moves to the other server (as a client's retransmissions would reach a
    // redundant server).
    let b_dead = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let acks: Acks = Arc::default();
    let naks = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4u8)
        .map(|w| {
            let (acks, stop, naks, b_dead) = (acks.clone(), stop.clone(), naks.clone(), b_dead.clone());
            std::thread::spawn(move || {
                let relay_a = Relay::new(addr_a, Ipv4Addr::LOCALHOST);
                let relay_b = Relay::new(addr_b, Ipv4Addr::LOCALHOST);
                let mut i: u32 = 0;
                let mut xid = u32::from(w) << 24;
                while !stop.load(Ordering::Relaxed) {
                    let mac = [2, w, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
                    let use_b = w % 2 == 1 && !b_dead.load(Ordering::Relaxed);
                    let relay = if use_b { &relay_b } else { &relay_a };
                    xid += 1;
                    match relay.dora(mac, xid, Ipv4Addr::LOCALHOST) {
                        Some(ip) => {
                            acks.lock().unwrap().push((mac, ip, after_kill(&b_dead)));
                            i += 1;
                        }
                        // A NAK (the other server won the address) or no answer: the same client starts over.
                        None => {
                            naks.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();

    let wait_acks = |n: usize, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while acks.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "{what}: only {} ACKs", acks.lock().unwrap().len());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_acks(400, "before the kill");
    // Both servers did their share before one dies (under load one can lag far behind the other).
    let deadline = Instant::now() + Duration::from_secs(60);
    while acks.lock().unwrap().iter().filter(|(mac, _, _)| mac[1] % 2 == 1).count() < 100 {
        assert!(Instant::now() < deadline, "server b granted fewer than 100 leases in 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    b.proc.kill9();
    b_dead.store(true, Ordering::Relaxed);
    let received_at_kill = received.load(Ordering::Relaxed);
    let acks_at_kill = acks.lock().unwrap().len();
    wait_acks(acks_at_kill + 300, "after the kill");
    stop.store(true, Ordering::Relaxed);
    workers.into_iter().for_each(|w| w.join().unwrap());

    let acks = acks.lock().unwrap().clone();
    // No address was ever ACKed to two clients.
    let mut holder: HashMap<Ipv4Addr, [u8; 6]> = HashMap::new();
    for (mac, ip, _) in &acks {
        if let Some(other) = holder.insert(*ip, *mac) {
            assert_eq!(other, *mac, "{ip} was ACKed to two clients");
        }
    }
    // Every ACKed lease is in the database, bound to its client.
    let deadline = Instant::now() + Duration::from_secs(30);
    let db = loop {
        let db = database_view(&url);
        let replica = view.lock().unwrap().clone();
        if db == replica || Instant::now() > deadline {
            break db;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for (mac, ip, _) in &acks {
        let (state, hw, _) = db.get(ip).unwrap_or_else(|| panic!("ACKed {ip} is not in the database"));
        assert_eq!((*state, hw.as_slice()), (DhcpState::Active, &mac[..]), "ACKed {ip}");
    }
    // The requestor's replica equals the database, data-source included.
    let replica = view.lock().unwrap().clone();
    for (ip, rec) in &db {
        assert_eq!(replica.get(ip), Some(rec), "{ip}: replica differs from the database");
    }
    assert_eq!(replica.len(), db.len(), "the replica has addresses the database does not");
    let remote = db.values().filter(|r| r.2).count();
    assert!(remote > 50, "bindings made by server b reach a's requestor as REMOTE (only {remote})");
    assert!(db.values().filter(|r| !r.2).count() > 50, "a's own bindings are LOCAL");
    // The surviving server's requestor kept receiving updates after the kill.
    assert!(
        received.load(Ordering::Relaxed) >= received_at_kill + 300,
        "after the kill the requestor got only {} updates",
        received.load(Ordering::Relaxed) - received_at_kill
    );
    assert!(acks.iter().any(|a| a.2), "load went on after the kill");
    eprintln!(
        "{} ACKs ({} after the kill), {} NAKs or timeouts, {} bindings, {} made by b",
        acks.len(),
        acks.iter().filter(|a| a.2).count(),
        naks.load(Ordering::Relaxed),
        db.len(),
        remote
    );
    stop_requestor.store(true, Ordering::Relaxed);
    follower.join().unwrap();
    a.stop();
}

fn after_kill(flag: &AtomicBool) -> bool {
    flag.load(Ordering::Relaxed)
}

/// Read Active Leasequery frames from `s` until one satisfies `want`; that message.
fn read_until(s: &mut TcpStream, buf: &mut Vec<u8>, want: impl Fn(&Message<'_>) -> bool) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut chunk = [0u8; 16384];
    loop {
        while let Some((body, used)) = FrameDecoder::new(65535).decode(buf).unwrap() {
            let body = body.to_vec();
            buf.drain(..used);
            if want(&Message::decode(&body).unwrap()) {
                return body;
            }
        }
        assert!(Instant::now() < deadline, "no such message from the server in 30 s");
        match s.read(&mut chunk) {
            Ok(0) => panic!("the server closed the Active Leasequery connection"),
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(_) => {}
        }
    }
}

/// ALQ-8.2-9 with several servers: while server A's commit is in flight (its transaction waits for the
/// journal lock, which the test holds), server B's requestor catches up. A's clock is 100 s behind B's, so
/// A's change will be stamped well before B's "now". CatchUpComplete's base-time — where the requestor
/// resumes after a drop — must not pass that change, which B has not delivered yet: it is bounded by the
/// commit time of the last change B's feed delivered (times never decrease in sequence order), not by B's
/// clock less a margin. No sleeping for timing: the lock decides when A's commit lands.
#[test]
fn alq_8_2_9_catch_up_base_time_never_passes_another_servers_commit_in_flight() {
    let cluster = pg::Cluster::get();
    let url = cluster.new_database();
    let dbname = url.rsplit('=').next().unwrap().to_string();
    let a_now = unix_now() - 100;
    let mut options = PgOptions::new(a_now, "a");
    options.guard_claims = true;
    let a = PgStore::open(&url, options).unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let (udp_b, tcp_b) = (free_udp_port(), free_tcp_port());
    let b = Server::start(dir_b.path(), &shared_store_config("b", udp_b, tcp_b, &url), None);

    // Hold the journal lock every writer takes first: A's commit below stays in flight until we let go.
    let mut holder = std::process::Command::new(pg::bin_dir().join("psql"))
        .arg("-h")
        .arg(&cluster.socket_dir)
        .args(["-p", "5432", "-U", "postgres", "-d", &dbname, "-qAt", "-v", "ON_ERROR_STOP=1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("psql");
    let mut holder_in = holder.stdin.take().unwrap();
    holder_in.write_all(b"BEGIN;\nSELECT 'locked' FROM lw_meta WHERE id = 1 FOR UPDATE;\n").unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    let mut lease = leasewire_store::Binding::new(Ipv4Addr::new(127, 9, 0, 1), DhcpState::Active, a_now);
    lease.htype = 1;
    lease.hardware_address = vec![2, 0, 0, 0, 9, 1];
    lease.expires_at = Some(a_now + 3600);
    lease.cltt = Some(a_now);
    let in_flight = a.commit(a_now, vec![lease]);

    // B's requestor catches up while A's commit is in flight.
    let mut s = TcpStream::connect(("127.0.0.1", tcp_b)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    send_active_query(&mut s, 78, &[152, 51, 153, 91, 156, 157], Some(a_now));
    let mut buf = Vec::new();
    let done =
        read_until(&mut s, &mut buf, |m| m.options.status_code() == Some(leasewire_proto::StatusCode::CatchUpComplete));
    let base_time = Message::decode(&done).unwrap().options.base_time().expect("base-time in CatchUpComplete");
    assert!(!in_flight.is_ready(), "A's commit is still in flight");

    // Let A's commit land: it is stamped A's time, and reaches B's requestor live.
    holder_in.write_all(b"COMMIT;\n").unwrap();
    drop(holder_in);
    let change = in_flight.wait().unwrap().remove(0);
    assert!(holder.wait().unwrap().success());
    assert_eq!(change.time, a_now);
    assert!(
        base_time <= change.time,
        "CatchUpComplete base-time {base_time} passes A's commit stamped {} that B had not delivered \
         (a requestor resuming from it would never see that lease)",
        change.time
    );
    let live = read_until(&mut s, &mut buf, |m| m.message_type() == Some(MessageType::LeaseActive));
    let live = Message::decode(&live).unwrap();
    assert_eq!(live.ciaddr, change.binding.ip);
    b.stop();
}

/// UDP leasequery on a shared store, answered from each server's local view (issue #21, LQ-6.4): a lease
/// server a just ACKed is answered by a at once (its own commits are in the view before the ACK leaves), and
/// by b — by address and by MAC — once b's change feed carried it.
#[test]
fn lq_6_4_udp_leasequery_on_a_shared_store_answers_every_servers_leases() {
    use leasewire_requestor::udp_query::{self, Query};
    let cluster = pg::Cluster::get();
    let url = cluster.new_database();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (udp_a, udp_b) = (free_udp_port(), free_udp_port());
    let conf = |name: &str, udp: u16| {
        ServerConfig::new(udp)
            .server_key(&format!(r#"store = {{ kind = "postgres", url = "{url}", name = "{name}" }}"#))
            .section("[leasequery]\nallow = [\"127.0.0.0/8\"]")
            .subnet("127.0.0.0/8", "127.9.0.0", "127.9.15.255", "lease-time = 3600")
            .text()
    };
    let a = Server::start(dir_a.path(), &conf("a", udp_a), None);
    let b = Server::start(dir_b.path(), &conf("b", udp_b), None);
    let (addr_a, addr_b) =
        (SocketAddr::from((Ipv4Addr::LOCALHOST, udp_a)), SocketAddr::from((Ipv4Addr::LOCALHOST, udp_b)));
    let mac = [2, 0, 0, 0, 0x64, 1];
    let ip = Relay::new(addr_a, Ipv4Addr::LOCALHOST).dora(mac, 1, Ipv4Addr::LOCALHOST).expect("a lease from a");

    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut xid = 100;
    let mut ask = |server: SocketAddr, q: Query| {
        xid += 1;
        let m = udp_query::build(&q, xid, Ipv4Addr::LOCALHOST, &[51, 91], true);
        let bytes = udp_query::exchange(&socket, server, &m, Duration::from_secs(10), true).unwrap();
        let reply = Message::decode(&bytes).unwrap();
        let t = reply.message_type().unwrap();
        (t, (t == MessageType::LeaseActive).then(|| binding_of(&reply, t).0))
    };
    let (t, own) = ask(addr_a, Query::Ip(ip));
    assert_eq!(t, MessageType::LeaseActive, "a answers for the lease it just ACKed");
    let own = own.unwrap();
    assert_eq!(own.hardware_address, mac);

    let deadline = Instant::now() + Duration::from_secs(20);
    let theirs = loop {
        match ask(addr_b, Query::Ip(ip)) {
            (MessageType::LeaseActive, Some(b)) => break b,
            _ => {
                assert!(Instant::now() < deadline, "b never answered for a's lease");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    assert_eq!(theirs.hardware_address, mac);
    let (t, by_mac) = ask(addr_b, Query::Hardware(1, mac.to_vec()));
    assert_eq!((t, by_mac.map(|b| b.ip)), (MessageType::LeaseActive, Some(ip)), "by MAC too");
    a.stop();
    b.stop();
}
