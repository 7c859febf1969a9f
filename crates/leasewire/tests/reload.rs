//! Live reload (issue #16, item 2) with the real binary: `leasewire serve` with a relay and two Active
//! Leasequery watchers, then, each followed by SIGHUP: a subnet added (served without a restart), an option
//! changed (in the next ACK), one watcher's address taken off the allow list (its stream ends with
//! QueryTerminated while the other keeps receiving on the same connection, ALQ-7.4-11/12), and a broken
//! file (the configuration in effect keeps serving; the error is logged and counted).

mod support;

use leasewire_proto::options::code;
use leasewire_proto::{Message, MessageType, StatusCode};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;
use support::frames::{Frames, send_active_query};
use support::relay::Relay;
use support::{Server, ServerConfig, free_tcp_port, free_udp_port};

/// An Active Leasequery stream opened from a chosen loopback source address.
struct Watcher(Frames<TcpStream>);

impl Watcher {
    fn open(from: Ipv4Addr, port: u16, xid: u32) -> Self {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&SocketAddr::from((from, 0)).into()).unwrap();
        sock.connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into()).unwrap();
        let mut s: TcpStream = sock.into();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // A catch-up from now: CatchUpComplete then says the live stream is subscribed (no sleeping).
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32;
        send_active_query(&mut s, xid, &[152, 51, 82], Some(now));
        let mut w = Self(Frames::new(s));
        loop {
            let m = w.next().expect("the catch-up ends");
            match status(&m) {
                Some(StatusCode::CatchUpComplete) => return w,
                Some(other) => panic!("unexpected status {other}"),
                None => {}
            }
        }
    }

    /// The next message, or None at the end of the stream.
    fn next(&mut self) -> Option<Message<'static>> {
        self.0.next()
    }

    /// The next binding update for `ip`, skipping others (keep-alives do not come this fast).
    fn update_for(&mut self, ip: Ipv4Addr) -> Message<'static> {
        loop {
            let m = self.next().expect("the stream goes on");
            if m.ciaddr == ip {
                return m;
            }
        }
    }
}

fn status(m: &Message<'_>) -> Option<StatusCode> {
    (m.message_type() == Some(MessageType::LeaseQueryStatus)).then(|| m.options.status_code()).flatten()
}

/// The configuration: subnet 127.1.0.0/16 (relay 127.1.0.1) always, 127.2.0.0/16 (relay 127.2.0.1) when
/// `second`, routers option `router`, Active Leasequery for `allow`.
fn config(udp: u16, tcp: u16, metrics: u16, second: bool, router: &str, allow: &str) -> String {
    let bulk = format!("[bulk-leasequery]\nlisten = [\"127.0.0.1:{tcp}\"]\nallow = [{allow}]");
    let mut config = ServerConfig::new(udp)
        .section(&bulk)
        .section("[active-leasequery]\nenabled = true\ninsecure = true")
        .metrics(metrics)
        .subnet("127.1.0.0/16", "127.1.0.10", "127.1.0.200", &format!(r#"options = {{ routers = ["{router}"] }}"#));
    if second {
        config = config.subnet("127.2.0.0/16", "127.2.0.10", "127.2.0.200", "");
    }
    config.text()
}

/// Write the new configuration over the server's file and SIGHUP it; returns the reload's log line.
fn reload(server: &Server, text: &str, expect: &str) -> String {
    let data = server.dir.join("data");
    std::fs::write(&server.config, text.replace("@DATA@", data.to_str().unwrap())).unwrap();
    server.proc.signal("HUP");
    server.wait_log(expect, 10)
}

/// DORA through `relay` with the router requested; the ACK.
fn dora(relay: &Relay, mac: [u8; 6], xid: u32) -> Option<Message<'static>> {
    let mut d = relay.request(MessageType::Discover, mac, xid);
    d.options.set(code::PARAMETER_REQUEST_LIST, vec![1, 3]);
    relay.send(&d);
    let offer = relay.recv(xid)?;
    let mut req = relay.request(MessageType::Request, mac, xid);
    req.options.set(code::PARAMETER_REQUEST_LIST, vec![1, 3]);
    req.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::LOCALHOST);
    req.options.set_ip(code::REQUESTED_IP, offer.yiaddr);
    relay.send(&req);
    relay.recv(xid).filter(|m| m.message_type() == Some(MessageType::Ack))
}

fn router(m: &Message<'_>) -> Option<Ipv4Addr> {
    m.options.get(code::ROUTERS).map(|r| Ipv4Addr::new(r[0], r[1], r[2], r[3]))
}

#[test]
fn sighup_applies_subnets_options_and_access_lists_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (udp, tcp, metrics) = (free_udp_port(), free_tcp_port(), free_tcp_port());
    let both = "\"127.0.0.2/32\", \"127.0.0.3/32\"";
    let server = Server::start(dir.path(), &config(udp, tcp, metrics, false, "127.1.0.1", both), None);
    let pid = server.proc.pid();
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, udp));
    let relay1 = Relay::new(dhcp, Ipv4Addr::new(127, 1, 0, 1));
    let relay2 = Relay::new(dhcp, Ipv4Addr::new(127, 2, 0, 1));
    let mut a = Watcher::open(Ipv4Addr::new(127, 0, 0, 2), tcp, 0xa);
    let mut b = Watcher::open(Ipv4Addr::new(127, 0, 0, 3), tcp, 0xb);
    let ack = dora(&relay1, [2, 0, 0, 0, 1, 1], 1).expect("served before any reload");
    assert_eq!(router(&ack), Some(Ipv4Addr::new(127, 1, 0, 1)));
    for w in [&mut a, &mut b] {
        assert_eq!(w.update_for(ack.yiaddr).message_type(), Some(MessageType::LeaseActive));
    }
    // No subnet for relay 2 yet: no answer.
    assert!(dora(&relay2, [2, 0, 0, 0, 2, 1], 2).is_none(), "127.2.0.0/16 is not configured yet");

    // 1. A subnet added: served at once, by the same process, with the watchers still connected.
    let line = reload(&server, &config(udp, tcp, metrics, true, "127.1.0.1", both), "configuration reloaded");
    assert!(line.contains("subnet"), "{line}");
    let ack = dora(&relay2, [2, 0, 0, 0, 2, 2], 3).expect("the new subnet is served without a restart");
    assert!(ack.yiaddr.octets()[..2] == [127, 2], "{}", ack.yiaddr);
    for w in [&mut a, &mut b] {
        assert_eq!(w.update_for(ack.yiaddr).message_type(), Some(MessageType::LeaseActive));
    }

    // 2. An option changed: the next ACK carries it.
    reload(&server, &config(udp, tcp, metrics, true, "127.1.0.254", both), "configuration reloaded");
    let ack = dora(&relay1, [2, 0, 0, 0, 1, 2], 4).expect("served");
    assert_eq!(router(&ack), Some(Ipv4Addr::new(127, 1, 0, 254)), "the new routers option");
    for w in [&mut a, &mut b] {
        w.update_for(ack.yiaddr);
    }

    // 3. Watcher a's address off the allow list: its stream ends with QueryTerminated (the last message);
    // b goes on receiving on the same connection.
    let only_b = "\"127.0.0.3/32\"";
    reload(&server, &config(udp, tcp, metrics, true, "127.1.0.254", only_b), "configuration reloaded");
    let last = a.0.last().expect("a final message");
    assert_eq!(status(&last), Some(StatusCode::QueryTerminated), "ALQ-7.4-11/12: {last:?}");
    assert!(last.options.base_time().is_some());
    let ack = dora(&relay1, [2, 0, 0, 0, 1, 3], 5).expect("served");
    assert_eq!(b.update_for(ack.yiaddr).message_type(), Some(MessageType::LeaseActive), "b was not dropped");

    // 4. A broken file: nothing changes, the error is logged and counted; the old configuration serves on.
    std::fs::write(&server.config, "[server]\nserver-id = \"not an address\"\n").unwrap();
    server.proc.signal("HUP");
    let line = server.wait_log("reload failed", 10);
    assert!(line.contains("server-id") || line.contains("line 2"), "the error names the key: {line}");
    let ack = dora(&relay1, [2, 0, 0, 0, 1, 4], 6).expect("still served");
    assert_eq!(router(&ack), Some(Ipv4Addr::new(127, 1, 0, 254)), "the configuration in effect is unchanged");
    assert_eq!(b.update_for(ack.yiaddr).message_type(), Some(MessageType::LeaseActive));
    assert!(dora(&relay2, [2, 0, 0, 0, 2, 3], 7).is_some(), "the added subnet is still served");
    let body = support::http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, metrics)), "/metrics");
    assert_eq!(support::metric(&body, "leasewire_reloads_total{result=\"ok\"}"), 3.0, "{body}");
    assert_eq!(support::metric(&body, "leasewire_reloads_total{result=\"error\"}"), 1.0, "{body}");

    // 5. A change that needs a restart is reported as such, and the listener keeps its address.
    let moved = config(udp, free_tcp_port(), metrics, true, "127.1.0.254", only_b);
    let line = reload(&server, &moved, "configuration reloaded");
    assert!(line.contains("needs_restart") && line.contains("bulk-leasequery.listen"), "{line}");
    let mut c = Watcher::open(Ipv4Addr::new(127, 0, 0, 3), tcp, 0xc);
    let ack = dora(&relay1, [2, 0, 0, 0, 1, 5], 8).expect("served");
    assert_eq!(c.update_for(ack.yiaddr).message_type(), Some(MessageType::LeaseActive), "old listener serves");
    assert_eq!(server.proc.pid(), pid);
    server.stop();
}

/// Issue #20: a reload picks up client classes. Before it, a relayed client (circuit-id `port-N`) gets an
/// address of the first pool; after a reload that adds a class for those circuits and gives it the second
/// pool, the next client behind the relay lands there, served by the same process.
#[test]
fn sighup_picks_up_client_classes() {
    let dir = tempfile::tempdir().unwrap();
    let udp = free_udp_port();
    let text = |classes: &str, allow: &str| {
        format!(
            "[server]\nserver-id = \"127.0.0.1\"\nlisten = [\"127.0.0.1:{udp}\"]\ndata-dir = \"@DATA@\"\n{classes}\n\
             [[subnet]]\nsubnet = \"127.1.0.0/16\"\n\
             pools = [{{ start = \"127.1.0.10\", end = \"127.1.0.99\"{allow} }}, {{ start = \"127.1.1.10\", end = \"127.1.1.99\" }}]\n"
        )
    };
    let server = Server::start(dir.path(), &text("", ""), None);
    let pid = server.proc.pid();
    let relay = Relay::new(SocketAddr::from((Ipv4Addr::LOCALHOST, udp)), Ipv4Addr::new(127, 1, 0, 1));
    let ack = dora(&relay, [2, 0, 0, 0, 3, 1], 1).expect("served");
    assert_eq!(ack.yiaddr, Ipv4Addr::new(127, 1, 0, 10), "no classes yet: the first pool");
    let classes = "[[client-class]]\nname = \"tagged\"\ncircuit-id-prefix = \"port-\"\n";
    let line = reload(&server, &text(classes, ", deny = [\"tagged\"]"), "configuration reloaded");
    assert!(line.contains("client-class"), "{line}");
    let ack = dora(&relay, [2, 0, 0, 0, 3, 2], 2).expect("served");
    assert_eq!(ack.yiaddr, Ipv4Addr::new(127, 1, 1, 10), "the class is denied the first pool now");
    assert_eq!(server.proc.pid(), pid);
    server.stop();
}
