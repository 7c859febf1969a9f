//! The embedding API end to end: a real server on loopback (`leasewire_server::Server`), a watcher spawned with
//! `Watcher::builder`, a client leased through a relay socket; the change arrives on the handle's stream, the
//! lookups find it, the status shows the stream, and `stop()` writes the replica file before returning.

use leasewire_proto::options::code;
use leasewire_proto::{DhcpState, Message, MessageType, Op, RelayAgentInfoBuilder};
use leasewire_requestor::conn::Target;
use leasewire_requestor::history::HistoryReader;
use leasewire_requestor::replica::{Replica, Via};
use leasewire_requestor::status::Report;
use leasewire_requestor::watch::WatchOptions;
use leasewire_requestor::{Watcher, Watching};
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
         [[subnet]]\nsubnet = \"127.31.0.0/16\"\npools = [{{ start = \"127.31.0.1\", end = \"127.31.0.64\" }}]\n",
        data.display()
    )
}

/// A relayed request from `mac`, with option 82 asking for replies on the relay's own port (RFC 8357).
fn relayed(t: MessageType, xid: u32, mac: &[u8; 6]) -> Message<'static> {
    let mut m = Message::new(Op::BootRequest);
    m.xid = xid;
    m.hops = 1;
    m.giaddr = GIADDR;
    m.set_hardware_address(1, mac);
    m.options.set_message_type(t);
    let rai = RelayAgentInfoBuilder::new().circuit_id(b"port-7").remote_id(mac).relay_source_port().build();
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

/// DISCOVER, OFFER, REQUEST, ACK through a relay socket for `mac`; the leased address.
async fn dora(server: SocketAddr, mac: &[u8; 6]) -> Ipv4Addr {
    let sock = UdpSocket::bind((GIADDR, 0)).await.unwrap();
    sock.connect(server).await.unwrap();
    sock.send(&encoded(&relayed(MessageType::Discover, 7, mac))).await.unwrap();
    let (kind, offered) = reply(&sock, 7).await;
    assert_eq!(kind, MessageType::Offer);
    let mut m = relayed(MessageType::Request, 7, mac);
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

/// Until the first catch-up is over on every stream: CatchUpComplete, or DataMissing and its gap filled. A
/// server started within the second of the seed's base-time answers DataMissing (ALQ-7.4.1-4), and a lease
/// made while that gap fill runs may reach the replica through the fill's Bulk reply before the stream.
/// Subscribed first, then looked: what happened before the subscription shows in the status.
async fn caught_up(watcher: &Watching, reports: &mut broadcast::Receiver<Report>) {
    let over = |w: &Watching| {
        w.status().iter().all(|s| {
            s.streaming
                && (s.catch_ups > 0 || (s.data_missing > 0 && s.open_gaps == 0 && s.gaps_filled >= s.data_missing))
        })
    };
    tokio::time::timeout(DEADLINE, async {
        while !over(watcher) {
            if let Err(broadcast::error::RecvError::Closed) = reports.recv().await {
                panic!("the watcher stopped before catching up");
            }
        }
    })
    .await
    .expect("caught up in time");
}

/// ALQ-7.3-1, ALQ-7.4-1: the builder's watcher seeds, streams, and hands the live change to its subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_made_through_a_relay_reaches_the_handle_stream_and_its_lookups() {
    let lab = Lab::start().await;
    let (dhcp, tcp, file) = (lab.dhcp, lab.tcp, &lab.file);

    let watcher = Watcher::builder([Target { addr: tcp, tls: None }])
        .retry_interval(Duration::from_secs(1))
        .replica_file(file)
        .spawn()
        .unwrap();
    let mut reports = watcher.subscribe();
    caught_up(&watcher, &mut reports).await;

    let leased = dora(dhcp, &MAC).await;
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
    let reopened = Replica::open(file, &[]).unwrap();
    assert_eq!(reopened.get(leased).map(|(b, _)| b.state), Some(DhcpState::Active));
    lab.server.stop().await;
}

/// Issue #19: a replica file that falls behind the stream (here another connection holds its write lock, as
/// a slow disk or an operator's `sqlite3` shell would) pauses reading once `max_unwritten_events` history
/// events wait, instead of holding ever more of them in memory; once the file is free everything is written
/// and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_file_behind_the_stream_pauses_reading_and_loses_nothing() {
    const CAP: usize = 4;
    /// Enough for the cap to be reached whatever the flush timer does meanwhile (the pool has 64).
    const BEFORE_PAUSE: u8 = 40;
    const AFTER_PAUSE: u8 = 12;
    let lab = Lab::start().await;
    let (dhcp, file) = (lab.dhcp, &lab.file);
    let options = quick(CAP);
    let watcher = lab.watcher(options).await;
    let mac = |i: u8| [2, 0, 0, 0, 32, i];

    // The file is taken: the next flush waits behind the lock, and the history piles up behind it until the
    // cap pauses reading (the metric says so).
    let lock = rusqlite::Connection::open(file).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let paused = || watcher.metrics().history_paused.get() == 1;
    let mut leased = Vec::new();
    for i in 0..BEFORE_PAUSE {
        leased.push(dora(dhcp, &mac(i)).await);
        if paused() {
            break;
        }
    }
    // Paused, and a write has failed behind the lock: a write that began before the lock was taken (and so
    // succeeded, letting reading resume for a moment) is over, and from here every write fails until COMMIT.
    let failed_once = || watcher.metrics().history_write_retries.get() >= 1;
    wait_until(&watcher, |_| paused() && failed_once()).await;
    let (applied, held) = {
        let r = watcher.replica().lock().unwrap();
        (leased.iter().filter(|ip| active(&r, **ip)).count(), r.unwritten_events())
    };
    // A batch never exceeds the cap, so what is held behind the write stays under twice the cap.
    assert!((CAP..2 * CAP).contains(&held), "{held} events held behind the write");

    // Paused: further changes wait in the stream, not in the watcher's memory.
    for i in BEFORE_PAUSE..BEFORE_PAUSE + AFTER_PAUSE {
        leased.push(dora(dhcp, &mac(i)).await);
    }
    {
        let r = watcher.replica().lock().unwrap();
        assert_eq!(r.unwritten_events(), held, "nothing read while paused");
        assert_eq!(leased.iter().filter(|ip| active(&r, **ip)).count(), applied, "nothing applied while paused");
    }

    lock.execute_batch("COMMIT").unwrap();
    wait_until(&watcher, |r| leased.iter().all(|ip| active(r, *ip))).await;
    watcher.stop().await.unwrap();
    let events = HistoryReader::open(file).unwrap().events().unwrap();
    assert!(events >= leased.len() as u64, "{events} events for {} leases", leased.len());
    let reopened = Replica::open(file, &[]).unwrap();
    assert!(leased.iter().all(|ip| active(&reopened, *ip)), "every lease in the file");
    lab.server.stop().await;
}

/// ALQ-7.4.1-13, BLQ-7.6-3: an address released and leased again within one second, whose RELEASE came on the
/// Active stream before the connection was lost (here: already in the replica, applied from the stream) and
/// whose new lease is only on the server. The reconnect gets DataMissing; the gap fill's Bulk reply carries
/// the ACTIVE binding with the same times, and it must win: the watcher tells the replica that the Bulk query
/// was asked for after the RELEASE arrived. (Without that, the Active record wins the tie and the replica keeps
/// the released lease until the client's next change.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alq_7_4_1_13_a_gap_fill_supersedes_a_release_of_the_same_second_that_came_before_it() {
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32;
    let lab = Lab::start().await;
    let ip = dora(lab.dhcp, &MAC).await;
    // The lease as the server reports it, with its times.
    let first = Watcher::builder([Target { addr: lab.tcp, tls: None }]).spawn().unwrap();
    wait_until(&first, |r| active(r, ip)).await;
    let (leased, _) = first.get(ip).unwrap();
    first.stop().await.unwrap();

    let mut released = leased.clone();
    (released.state, released.expires_at) = (DhcpState::Released, None);
    let mut r = Replica::in_memory(&[lab.tcp.to_string()]);
    r.apply(0, &released, Some(leased.state_since), Via::Active);
    // Saved before the server's history begins: DataMissing, then a gap fill up to the server's now.
    r.set_seeded(0, Some(before - 1000));
    let watcher = Watcher::builder([Target { addr: lab.tcp, tls: None }]).replica(r).spawn().unwrap();
    tokio::time::timeout(DEADLINE, async {
        while !watcher.status().iter().all(|s| s.gaps_filled >= 1) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the gap filled");
    let (held, _) = watcher.get(ip).unwrap();
    assert_eq!(held, leased, "the gap fill's lease, not the earlier RELEASE");
    watcher.stop().await.unwrap();
    lab.server.stop().await;
}

/// A server on loopback (its data in `dir`) and the path of a replica file beside it.
struct Lab {
    _dir: tempfile::TempDir,
    server: leasewire_server::server::RunningServer,
    dhcp: SocketAddr,
    tcp: SocketAddr,
    file: std::path::PathBuf,
}

impl Lab {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::new(Config::parse(&config(&dir.path().join("data"))).unwrap()).start().await.unwrap();
        let (dhcp, tcp) = (server.addrs().dhcp[0], server.addrs().tcp[0]);
        let file = dir.path().join("replica.db");
        Self { _dir: dir, server, dhcp, tcp, file }
    }

    /// A watcher of the server into the file, keeping history a day, once its Active stream is up and caught up.
    async fn watcher(&self, options: WatchOptions) -> Watching {
        let watcher = Watcher::builder([Target { addr: self.tcp, tls: None }])
            .options(options)
            .replica_file(&self.file)
            .history(Some(Duration::from_secs(86_400)))
            .spawn()
            .unwrap();
        caught_up(&watcher, &mut watcher.subscribe()).await;
        watcher
    }
}

/// Options for a test: a flush every 10 ms, a reconnect after 1 s, and this cap on unwritten history.
fn quick(max_unwritten_events: usize) -> WatchOptions {
    WatchOptions {
        retry_interval: Duration::from_secs(1),
        flush_interval: Duration::from_millis(10),
        max_unwritten_events,
        ..WatchOptions::default()
    }
}

/// Whether the replica holds `ip` as leased (the seed brings the free pool addresses too).
fn active(r: &Replica, ip: Ipv4Addr) -> bool {
    r.get(ip).is_some_and(|(b, _)| b.state == DhcpState::Active)
}

/// Wait (bounded by `DEADLINE`) until the watcher's replica satisfies `cond`.
async fn wait_until(watcher: &leasewire_requestor::Watching, cond: impl Fn(&Replica) -> bool) {
    tokio::time::timeout(DEADLINE, async {
        while !cond(&watcher.replica().lock().unwrap()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the replica in time");
}

/// Issue #19: a write of the replica file that fails (here another connection holds the file's write lock
/// for longer than a write waits for it) is done again later, with its history events: the watcher goes on,
/// counts the retries, and once the file is free everything is in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_of_the_replica_file_is_done_again_and_loses_nothing() {
    let lab = Lab::start().await;
    let (dhcp, file) = (lab.dhcp, &lab.file);
    let options = quick(WatchOptions::default().max_unwritten_events);
    let mut watcher = lab.watcher(options).await;

    let lock = rusqlite::Connection::open(file).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut leased = Vec::new();
    for i in 0..3 {
        leased.push(dora(dhcp, &[2, 0, 0, 0, 33, i]).await);
    }
    let retries = || watcher.metrics().history_write_retries.get();
    tokio::time::timeout(DEADLINE, async {
        while retries() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the failed write tried again");
    // Still watching: a failed write no longer ends the watcher.
    assert!(tokio::time::timeout(Duration::ZERO, watcher.ended()).await.is_err(), "the watcher went on");
    leased.push(dora(dhcp, &[2, 0, 0, 0, 33, 9]).await);
    wait_until(&watcher, |r| leased.iter().all(|ip| active(r, *ip))).await;

    lock.execute_batch("COMMIT").unwrap();
    watcher.stop().await.unwrap();
    let mut history = HistoryReader::open(file).unwrap();
    for ip in &leased {
        assert_eq!(held_now(&mut history, *ip), Some(true), "{ip}: its lease is in the history");
    }
    let reopened = Replica::open(file, &[]).unwrap();
    assert!(leased.iter().all(|ip| active(&reopened, *ip)), "every lease in the file");
    lab.server.stop().await;
}

/// Issue #19: a stop while reading is paused behind a write that cannot finish (the file locked by another
/// process) ends the watcher without waiting for the file; the file stays as of its last write, and the
/// next start catches up what it missed, history included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_reading_is_paused_ends_at_once_and_the_next_start_catches_up() {
    const CAP: usize = 2;
    let lab = Lab::start().await;
    let (dhcp, file) = (lab.dhcp, &lab.file);
    let options = quick(CAP);
    let watcher = lab.watcher(options).await;

    let lock = rusqlite::Connection::open(file).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let paused = || watcher.metrics().history_paused.get() == 1;
    let mut leased = Vec::new();
    for i in 0..40 {
        leased.push(dora(dhcp, &[2, 0, 0, 0, 34, i]).await);
        if paused() {
            break;
        }
    }
    wait_until(&watcher, |_| paused()).await;
    // More changes while paused: they wait in the stream.
    for i in 40..44 {
        leased.push(dora(dhcp, &[2, 0, 0, 0, 34, i]).await);
    }
    // The file is still locked: the stop cannot write it, and does not wait for it.
    let stopped = tokio::time::timeout(DEADLINE, watcher.stop()).await.expect("the stop ends while the file is locked");
    assert!(stopped.is_err(), "the last write could not be done, and the stop says so");
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);

    let watcher = lab.watcher(options).await;
    wait_until(&watcher, |r| leased.iter().all(|ip| active(r, *ip))).await;
    watcher.stop().await.unwrap();
    let mut history = HistoryReader::open(file).unwrap();
    for ip in &leased {
        assert_eq!(held_now(&mut history, *ip), Some(true), "{ip}: its lease is in the history");
    }
    lab.server.stop().await;
}

/// Whether the history says `ip` is held now (`None`: no history of it).
fn held_now(history: &mut HistoryReader, ip: Ipv4Addr) -> Option<bool> {
    use leasewire_requestor::history::{Key, Query, Window};
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32;
    let answer = history.query(&Query { key: Key::Ip(ip), window: Window::At(now), now }).unwrap();
    answer.first().map(|i| i.held())
}
