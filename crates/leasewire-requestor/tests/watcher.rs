//! The embedding API end to end: a real server on loopback (`leasewire_server::Server`), a watcher spawned with
//! `Watcher::builder`, a client leased through a relay socket; the change arrives on the handle's stream, the
//! lookups find it, the status shows the stream, and `stop()` writes the replica file before returning.

use leasewire_proto::options::code;
use leasewire_proto::{DhcpState, Message, MessageType, Op, RelayAgentInfoBuilder};
use leasewire_requestor::Watcher;
use leasewire_requestor::conn::Target;
use leasewire_requestor::replica::{Replica, Via};
use leasewire_requestor::status::{Report, Status};
use leasewire_server::config::Config;
use leasewire_server::server::Server;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::broadcast;

const GIADDR: Ipv4Addr = Ipv4Addr::new(127, 31, 0, 254);
const MAC: [u8; 6] = [2, 0, 0, 0, 31, 7];
/// Generous: a deadline for something that happens in milliseconds, not a pause.
const DEADLINE: Duration = Duration::from_secs(20);

fn config(data: &std::path::Path) -> String {
    format!(
        "[server]\nserver-id = \"127.0.0.1\"\nlisten = [\"127.0.0.1:0\"]\ndata-dir = \"{}\"\n\
         [bulk-leasequery]\nlisten = [\"127.0.0.1:0\"]\nallow = [\"127.0.0.0/8\"]\n\
         [active-leasequery]\nenabled = true\ninsecure = true\n\
         [[subnet]]\nsubnet = \"127.31.0.0/16\"\npools = [{{ start = \"127.31.0.1\", end = \"127.31.0.8\" }}]\n",
        data.display()
    )
}

/// A relayed request from `MAC`, with option 82 asking for replies on the relay's own port (RFC 8357).
fn relayed(t: MessageType, xid: u32) -> Message<'static> {
    let mut m = Message::new(Op::BootRequest);
    m.xid = xid;
    m.hops = 1;
    m.giaddr = GIADDR;
    m.set_hardware_address(1, &MAC);
    m.options.set_message_type(t);
    let rai = RelayAgentInfoBuilder::new().circuit_id(b"port-7").remote_id(&MAC).relay_source_port().build();
    m.options.set(code::RELAY_AGENT_INFO, rai);
    m
}

fn encoded(m: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out).unwrap();
    out
}

async fn reply(sock: &UdpSocket, xid: u32) -> (MessageType, Ipv4Addr) {
    let mut buf = vec![0u8; 2048];
    loop {
        let n = tokio::time::timeout(DEADLINE, sock.recv(&mut buf)).await.expect("a reply").unwrap();
        let m = Message::decode(&buf[..n]).unwrap();
        if m.xid == xid {
            return (m.message_type().unwrap(), m.yiaddr);
        }
    }
}

/// DISCOVER, OFFER, REQUEST, ACK through a relay socket; the leased address.
async fn dora(server: SocketAddr) -> Ipv4Addr {
    let sock = UdpSocket::bind((GIADDR, 0)).await.unwrap();
    sock.connect(server).await.unwrap();
    sock.send(&encoded(&relayed(MessageType::Discover, 7))).await.unwrap();
    let (kind, offered) = reply(&sock, 7).await;
    assert_eq!(kind, MessageType::Offer);
    let mut m = relayed(MessageType::Request, 7);
    m.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::LOCALHOST);
    m.options.set_ip(code::REQUESTED_IP, offered);
    sock.send(&encoded(&m)).await.unwrap();
    let (kind, acked) = reply(&sock, 7).await;
    assert_eq!((kind, acked), (MessageType::Ack, offered));
    acked
}

/// The next report that `want` picks out.
async fn next<T>(rx: &mut broadcast::Receiver<Report>, mut want: impl FnMut(Report) -> Option<T>) -> T {
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(t) = want(rx.recv().await.expect("the watcher's reports")) {
                return t;
            }
        }
    })
    .await
    .expect("the report in time")
}

/// ALQ-7.3-1, ALQ-7.4-1: the builder's watcher seeds, streams, and hands the live change to its subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_made_through_a_relay_reaches_the_handle_stream_and_its_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::new(Config::parse(&config(&dir.path().join("data"))).unwrap()).start().await.unwrap();
    let (dhcp, tcp) = (server.addrs().dhcp[0], server.addrs().tcp[0]);
    let file = dir.path().join("replica.db");

    let watcher = Watcher::builder([Target { addr: tcp, tls: None }])
        .retry_interval(Duration::from_secs(1))
        .replica_file(&file)
        .spawn()
        .unwrap();
    let mut reports = watcher.subscribe();
    // Subscribed first, then looked: a stream that came up before the subscription shows in the status.
    if !watcher.status().iter().any(|s| s.streaming) {
        next(&mut reports, |r| {
            matches!(r, Report::Status { status: Status::Streaming { tls: false, .. }, .. }).then_some(())
        })
        .await;
    }

    let leased = dora(dhcp).await;
    let (server_name, via) = next(&mut reports, |r| match r {
        Report::Change { server, binding, via, .. } if binding.ip == leased && binding.state == DhcpState::Active => {
            assert_eq!(binding.hardware_address, MAC);
            Some((server, via))
        }
        _ => None,
    })
    .await;
    assert_eq!((server_name.as_str(), via), (tcp.to_string().as_str(), Via::Active), "live, from the stream");

    let (found, from) = watcher.get(leased).expect("the lookup by address finds the lease");
    assert_eq!((found.state, found.hardware_address.as_slice(), from), (DhcpState::Active, &MAC[..], tcp.to_string()));
    let by_mac = watcher.by_hardware_address(&MAC);
    assert_eq!(by_mac.iter().map(|(b, _)| b.ip).collect::<Vec<_>>(), [leased]);
    let status = watcher.status();
    assert_eq!(status.len(), 1);
    let s = &status[0];
    assert_eq!((s.server.as_str(), s.streaming, s.tls, s.seeded), (tcp.to_string().as_str(), true, Some(false), true));
    // The base-time to save follows the binding in its own message: only the received one is certain here.
    assert!(s.last_base_time.is_some() && s.lag.is_some(), "{s:?}");

    // A graceful stop writes what the merger holds: the file has the lease when stop() returns.
    watcher.stop().await.unwrap();
    let reopened = Replica::open(&file, &[]).unwrap();
    assert_eq!(reopened.get(leased).map(|(b, _)| b.state), Some(DhcpState::Active));
    server.stop().await;
}
