//! `leasewire watch` with several servers at once (ALQ-7.4.1-14, BLQ-7.6-1): one session each, one replica,
//! each server's bindings as its store has them, a base-time saved per server; and the HTTP endpoint
//! (`/bindings?ip=`, `?mac=`, `/metrics`) answering from the replica.

mod support;

use leasewire_proto::MessageType;
use leasewire_requestor::replica::Replica;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::relay::Relay;
use support::{Proc, Server, ServerConfig, free_tcp_port, free_udp_port, http_get, leasewire, metric, open_store};

fn server(dir: &std::path::Path, net: u8) -> (Server, u16, u16) {
    let (udp, tcp) = (free_udp_port(), free_tcp_port());
    let config = ServerConfig::new(udp).active_insecure(tcp);
    let config = config.subnet(&format!("127.{net}.0.0/16"), &format!("127.{net}.0.1"), &format!("127.{net}.0.20"), "");
    (Server::start(dir, &config.text(), None), udp, tcp)
}

#[test]
fn alq_7_4_1_14_one_replica_for_two_servers_and_lookups_over_http() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, udp_a, tcp_a) = server(da.path(), 21);
    let (b, udp_b, tcp_b) = server(db.path(), 22);
    let wdir = tempfile::tempdir().unwrap();
    let http = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let replica_path = wdir.path().join("replica.sqlite3");
    let mut watch = Proc::spawn(
        "leasewire watch",
        Command::new(leasewire())
            .args(["watch", "--json", "--retry-interval", "200ms"])
            .args(["--server", &format!("127.0.0.1:{tcp_a}"), "--server", &format!("127.0.0.1:{tcp_b}")])
            .arg("--db")
            .arg(&replica_path)
            .args(["--http", &http.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    // Clients on both servers, through their own relays.
    let mut leased = Vec::new();
    for (udp, giaddr, macs) in
        [(udp_a, Ipv4Addr::new(127, 21, 0, 254), 1..6u8), (udp_b, Ipv4Addr::new(127, 22, 0, 254), 11..14)]
    {
        let relay = Relay::new(SocketAddr::from((Ipv4Addr::LOCALHOST, udp)), giaddr);
        for m in macs {
            let mac = [2, 0, 0, 0, 9, m];
            leased.push((relay.dora(mac, u32::from(m), Ipv4Addr::LOCALHOST).expect("a lease"), mac));
        }
        let mut rel = relay.request(MessageType::Release, [2, 0, 0, 0, 9, 1], 99);
        rel.ciaddr = leased[0].0;
        if udp == udp_a {
            relay.send(&rel);
        }
    }
    // The replica answers for every lease, wherever it was made.
    let deadline = Instant::now() + Duration::from_secs(20);
    for (ip, mac) in &leased {
        loop {
            let body = http_get(http, &format!("/bindings?ip={ip}"));
            let want_state = if *ip == leased[0].0 { "RELEASED" } else { "ACTIVE" };
            let want_mac = mac.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":");
            if body.contains(&format!("\"state\":\"{want_state}\"")) && body.contains(&want_mac) {
                break;
            }
            assert!(Instant::now() < deadline, "{ip}: {body}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let by_mac = http_get(http, "/bindings?mac=02:00:00:00:09:0b");
    assert!(by_mac.contains("127.22.0."), "{by_mac}");
    let metrics = http_get(http, "/metrics");
    assert!(metric(&metrics, "leasewire_requestor_bindings") >= 40.0, "both pools seeded:\n{metrics}");
    assert!(metrics.contains("leasewire_requestor_streaming{server=\"127.0.0.1:"), "{metrics}");
    // BLQ-7.4-2: both servers share this machine's clock.
    assert_eq!(metrics.matches("leasewire_requestor_clock_offset_seconds{server=\"127.0.0.1:").count(), 2, "{metrics}");
    assert!(
        metrics
            .lines()
            .filter(|l| l.starts_with("leasewire_requestor_clock_offset_seconds{"))
            .all(|l| l.ends_with(" 0"))
    );
    assert!(http_get(http, "/bindings?ip=not-an-ip").contains("not an IPv4 address"));

    watch.signal("TERM");
    assert!(watch.wait_exit(20).success());
    a.stop();
    b.stop();
    let replica = Replica::open(&replica_path, &[]).unwrap();
    assert_eq!(replica.servers().len(), 2);
    assert!(replica.servers().iter().all(|s| s.seeded && s.saved.is_some()), "{:?}", replica.servers());
    for dir in [da.path(), db.path()] {
        let store = open_store(dir);
        for r in leasewire_store::scan_pages(&store, leasewire_store::ScanFilter::all(), 100).flat_map(|p| p.unwrap()) {
            let (got, _) = replica.get(r.binding.ip).expect("in the replica");
            assert_eq!(
                (got.state, got.hardware_address, got.expires_at),
                (r.binding.state, r.binding.hardware_address, r.binding.expires_at)
            );
        }
    }
}

/// When whatever reads `watch`'s output goes away (`leasewire watch --json | head -1`), the watcher stops
/// cleanly at its next write: exit status 0, and the replica file holds what it had merged.
#[test]
fn watch_stops_cleanly_when_its_reader_goes_away() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let (s, udp, tcp) = server(dir.path(), 23);
    let wdir = tempfile::tempdir().unwrap();
    let replica_path = wdir.path().join("replica.sqlite3");
    let mut watch = Proc::spawn(
        "leasewire watch",
        Command::new(leasewire())
            .args(["watch", "--json", "--retry-interval", "200ms", "--server", &format!("127.0.0.1:{tcp}")])
            .arg("--db")
            .arg(&replica_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    // The seed prints the 20 configured addresses; read them all, then hang up.
    let mut out = std::io::BufReader::new(watch.child.stdout.take().unwrap());
    for _ in 0..20 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.contains("\"ip\":\"127.23.0."), "{line}");
    }
    drop(out);
    assert!(watch.child.try_wait().unwrap().is_none(), "nothing written since: still running");
    // A lease makes the watcher write again, into the closed pipe.
    let relay = Relay::new(SocketAddr::from((Ipv4Addr::LOCALHOST, udp)), Ipv4Addr::new(127, 23, 0, 254));
    let ip = relay.dora([2, 0, 0, 0, 23, 1], 1, Ipv4Addr::LOCALHOST).expect("a lease");
    assert!(watch.wait_exit(20).success(), "a closed output is a normal end");
    s.stop();
    let replica = Replica::open(&replica_path, &[]).unwrap();
    let (b, _) = replica.get(ip).expect("the lease merged before the write failed is in the file");
    assert_eq!(b.state, leasewire_proto::DhcpState::Active);
}
