//! Active Leasequery (RFC 7724, insecure mode) end to end: `leasewire serve` streams the bindings its DHCP
//! engine commits to a requestor on TCP, with catch-up, DataMissing and QueryTerminated at shutdown.

mod support;

use leasewire_proto::framing::encode_frame;
use leasewire_proto::options::code;
use leasewire_proto::{DhcpState, Message, MessageType, Op, StatusCode};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;
use support::frames::{Frames, send_active_query};
use support::relay::Relay;
use support::{Server, ServerConfig, free_tcp_port, free_udp_port};

type Conn = Frames<TcpStream>;

/// An Active Leasequery on 127.0.0.1:`port` (from `start` when given), its replies read with a 10 s timeout.
fn open(port: u16, xid: u32, start: Option<u32>) -> Conn {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    send_active_query(&mut s, xid, &[152, 51, 153, 91, 156, 82], start);
    Frames::new(s)
}

fn status(m: &Message<'_>) -> Option<StatusCode> {
    (m.message_type() == Some(MessageType::LeaseQueryStatus)).then(|| m.options.status_code()).flatten()
}

#[test]
fn alq_live_stream_catch_up_data_missing_and_query_terminated() {
    let dir = tempfile::tempdir().unwrap();
    let udp = free_udp_port();
    let tcp = free_tcp_port();
    let metrics = free_tcp_port();
    let config = ServerConfig::new(udp).active_insecure(tcp).metrics(metrics);
    let config = config.subnet("127.0.0.0/8", "127.1.0.0", "127.1.0.200", "");
    let server = Server::start(dir.path(), &config.text(), None);
    let relay = Relay::new(SocketAddr::from((Ipv4Addr::LOCALHOST, udp)), Ipv4Addr::LOCALHOST);

    // Live: a requestor without query-start-time sees each committed change, with its xid and base-time.
    let mut live = open(tcp, 0xa1, None);
    std::thread::sleep(Duration::from_millis(200));
    let ip = relay.dora([2, 0, 0, 0, 0, 1], 1, Ipv4Addr::LOCALHOST).unwrap();
    let m = live.next().unwrap();
    assert_eq!((m.message_type(), m.ciaddr, m.xid), (Some(MessageType::LeaseActive), ip, 0xa1));
    let base = m.options.base_time().expect("ALQ-7.3-5: base-time in every reply");
    assert!(m.options.relay_agent_info().is_some());
    let mut rel = relay.request(MessageType::Release, [2, 0, 0, 0, 0, 1], 2);
    rel.ciaddr = ip;
    relay.send(&rel);
    let m = live.next().unwrap();
    assert_eq!(
        (m.message_type(), m.options.dhcp_state()),
        (Some(MessageType::LeaseUnassigned), Some(Ok(DhcpState::Released)))
    );

    // Catch-up: a requestor coming back with query-start-time gets what changed since, then CatchUpComplete.
    let ip2 = relay.dora([2, 0, 0, 0, 0, 2], 3, Ipv4Addr::LOCALHOST).unwrap();
    let _ = live.next().unwrap();
    let mut back = open(tcp, 0xb2, Some(base));
    let mut seen = Vec::new();
    loop {
        let m = back.next().unwrap();
        assert_eq!(m.xid, 0xb2);
        match status(&m) {
            Some(StatusCode::CatchUpComplete) => break,
            Some(other) => panic!("unexpected status {other}"),
            None => seen.push((m.ciaddr, m.options.dhcp_state().unwrap().unwrap())),
        }
    }
    assert!(seen.contains(&(ip, DhcpState::Released)), "{seen:?}");
    assert!(seen.contains(&(ip2, DhcpState::Active)), "{seen:?}");

    // DataMissing: a query-start-time before the store's history horizon (its creation).
    let mut old = open(tcp, 0xc3, Some(1_000_000));
    let m = old.next().unwrap();
    assert_eq!(status(&m), Some(StatusCode::DataMissing), "ALQ-7.4.1-4: at once");
    assert!(m.options.base_time().unwrap() >= base);

    // The metrics saw it all (the counters are added when a connection next waits).
    std::thread::sleep(Duration::from_millis(300));
    let body = support::http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, metrics)), "/metrics");
    assert_eq!(support::metric(&body, "leasewire_dhcp_active_connections "), 3.0, "{body}");
    assert!(support::metric(&body, "leasewire_dhcp_active_updates_total{phase=\"live\"}") >= 3.0, "{body}");
    assert!(support::metric(&body, "leasewire_dhcp_active_updates_total{phase=\"catch_up\"}") >= 2.0, "{body}");
    assert_eq!(support::metric(&body, "leasewire_dhcp_active_catch_ups_total{outcome=\"complete\"}"), 1.0);
    assert_eq!(support::metric(&body, "leasewire_dhcp_active_catch_ups_total{outcome=\"data_missing\"}"), 1.0);

    // Shutdown: QueryTerminated with base-time is the last message, then the connection closes.
    let data = server.stop();
    let _ = data;
    for conn in [&mut live, &mut back, &mut old] {
        let last = conn.last().expect("a final message");
        assert_eq!(status(&last), Some(StatusCode::QueryTerminated), "ALQ-7.4-11/12");
        assert!(last.options.base_time().is_some());
    }
}

/// ALQ-8.2-13, ALQ-7.3-1: a client's reply is never delayed by Active Leasequery. A requestor opens a stream
/// with a tiny receive buffer and never reads, so the server's writes to it block within a few hundred
/// changes; meanwhile a relay runs 4,000 DORAs one after the other, and every reply comes within the relay's
/// 500 ms read timeout. The blocked stream is given up after the send timeout (a write blocked that long),
/// while a second requestor that reads gets every change as it is committed.
#[test]
fn alq_8_2_13_a_requestor_that_stops_reading_never_delays_a_client() {
    let dir = tempfile::tempdir().unwrap();
    let (udp, tcp, metrics) = (free_udp_port(), free_tcp_port(), free_tcp_port());
    let config = ServerConfig::new(udp).active_insecure_with(tcp, "send-timeout = 2").metrics(metrics);
    let config = config.subnet("127.0.0.0/8", "127.1.0.0", "127.1.15.255", "");
    let server = Server::start(dir.path(), &config.text(), None);
    let relay = Relay::new(SocketAddr::from((Ipv4Addr::LOCALHOST, udp)), Ipv4Addr::LOCALHOST);
    // The stalled requestor: a 4 KiB receive buffer, the query, then never a read.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, tcp)).into()).unwrap();
    let mut stalled: TcpStream = sock.into();
    let mut q = Message::new(Op::BootRequest);
    q.xid = 0x51;
    q.options.set_message_type(MessageType::ActiveLeaseQuery);
    q.options.set(code::PARAMETER_REQUEST_LIST, vec![152, 51, 153, 91, 156, 82, 61, 12, 60, 124, 125]);
    let mut b = Vec::new();
    encode_frame(&q, &mut b).unwrap();
    stalled.write_all(&b).unwrap();
    let mut reader = open(tcp, 0x52, None);
    std::thread::sleep(Duration::from_millis(200));
    let body = support::http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, metrics)), "/metrics");
    assert_eq!(support::metric(&body, "leasewire_dhcp_active_connections "), 2.0, "{body}");
    // Clients that send about 1 KB of options the server stores and discloses (12, 60, 124, 125), so each
    // change is a large message: the server's socket buffer (grown to megabytes on loopback) fills sooner.
    let dora = |mac: [u8; 6], xid: u32| {
        let fill = |m: &mut Message<'static>| {
            for c in [12u8, 60, 124, 125] {
                m.options.set(c, vec![b'a' + c % 26; 250]);
            }
        };
        let mut d = relay.request(MessageType::Discover, mac, xid);
        fill(&mut d);
        relay.send(&d);
        let offer = relay.recv(xid)?;
        let mut req = relay.request(MessageType::Request, mac, xid);
        fill(&mut req);
        req.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::LOCALHOST);
        req.options.set_ip(code::REQUESTED_IP, offer.yiaddr);
        relay.send(&req);
        let ack = relay.recv(xid)?;
        (ack.message_type() == Some(MessageType::Ack)).then_some(ack.yiaddr)
    };
    let mut acked = Vec::new();
    for i in 0..4000u32 {
        let mac = [2, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let ip = dora(mac, 0x1000 + i);
        acked.push(ip.unwrap_or_else(|| panic!("DORA {i}: a reply took longer than 500 ms or never came")));
        // ALQ-7.3-1: the reading requestor has the change as soon as the client has its ACK.
        let m = reader.next().expect("the live change");
        assert_eq!((m.ciaddr, m.message_type()), (acked[i as usize], Some(MessageType::LeaseActive)));
    }
    // The stalled stream really was blocked: it is given up for a write blocked past the send timeout.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let body = support::http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, metrics)), "/metrics");
        if support::metric(&body, "leasewire_dhcp_active_connections ") == 1.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the stalled requestor was never given up: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(stalled);
    server.stop();
}
