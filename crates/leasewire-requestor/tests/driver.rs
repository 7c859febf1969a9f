//! The requestor's drivers over real sockets (RFC 7724 §7): secure mode against leasewire's own TcpService
//! with certificates made here, the receive timeout on tokio's paused clock, the retry interval, and a
//! server that sends garbage. Test names carry the requirement IDs.

use leasewire_proto::framing::{FrameDecoder, encode_frame};
use leasewire_proto::session::requestor::active::{ActiveError, ActiveEvent};
use leasewire_proto::{Binding, BindingChange, DhcpState, Message, MessageType, Op};
use leasewire_requestor::Watcher;
use leasewire_requestor::active::{self, ActiveEnd, ActiveOptions, Progress};
use leasewire_requestor::conn::{ConnError, Target};
use leasewire_requestor::replica::{Replica, Via};
use leasewire_requestor::status::{Report, Status};
use leasewire_requestor::tls::ClientTls;
use leasewire_testkit::{ActiveLab, LabCa, TcpLab};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch as tokio_watch};

/// The TCP service, and the CA that signs both sides when it is secure.
type Lab = ActiveLab;

/// A TcpService with Active Leasequery; secure with `ca` signing both sides, else insecure.
async fn lab(secure: bool) -> Lab {
    lab_with(secure, "").await
}

/// [`lab`], with `allow` (lines of `[active-leasequery.tls]`) in secure mode.
async fn lab_with(secure: bool, allow: &str) -> Lab {
    ActiveLab::start(LabCa::new("test CA").unwrap(), secure.then_some(allow)).await
}

fn client(issuer: &LabCa, trust: &LabCa) -> Arc<ClientTls> {
    let c = issuer.issue(&["requestor.lab"], true, false).unwrap();
    let tls = ClientTls::from_pem(c.cert_pem.as_bytes(), c.key_pem.as_bytes(), trust.cert_pem().as_bytes(), None);
    Arc::new(tls.unwrap())
}

fn change(last: u8) -> BindingChange {
    let mut b = Binding::new(Ipv4Addr::new(10, 0, 0, last), DhcpState::Active, 1_800_000_000);
    b.htype = 1;
    b.hardware_address = vec![2, 0, 0, 0, 0, last];
    BindingChange { seq: u64::from(last), time: 1_800_000_000, binding: b }
}

async fn run_once(target: Target, opts: ActiveOptions) -> (ActiveEnd, Vec<Progress>) {
    let (tx, mut rx) = mpsc::channel(64);
    let (_stop_tx, mut stop) = tokio_watch::channel(false);
    let (_, end) = active::run(&target, None, opts, &mut stop, &tx).await;
    drop(tx);
    let mut seen = Vec::new();
    while let Some(p) = rx.recv().await {
        seen.push(p);
    }
    (end, seen)
}

/// ALQ-7.2-1, ALQ-7.2-3, ALQ-7.2-7: secure mode negotiates TLS with DHCPTLS and runs the handshake on the same
/// connection.
#[tokio::test]
async fn alq_7_2_9_secure_mode_streams_inside_mutual_tls() {
    let lab = lab(true).await;
    let target = Target { addr: lab.addr, tls: Some(client(&lab.ca, &lab.ca)) };
    let (tx, mut rx) = mpsc::channel(64);
    let (stop_tx, mut stop) = tokio_watch::channel(false);
    let task = tokio::spawn(async move { active::run(&target, None, ActiveOptions::default(), &mut stop, &tx).await });
    assert_eq!(rx.recv().await, Some(Progress::Streaming { tls: true, query_start_time: None }));
    tokio::time::sleep(Duration::from_millis(100)).await;
    lab.feed.publish(vec![change(7)]);
    match rx.recv().await {
        Some(Progress::Event { event: ActiveEvent::Binding { binding, .. }, saved }) => {
            assert_eq!(binding.ip, Ipv4Addr::new(10, 0, 0, 7));
            assert!(saved.is_some(), "ALQ-7.4-9: no query-start-time, so every base-time counts at once");
        }
        other => panic!("expected the live binding, got {other:?}"),
    }
    stop_tx.send(true).unwrap();
    assert!(matches!(task.await.unwrap().1, ActiveEnd::Stopped));
}

#[tokio::test]
async fn alq_7_2_6_a_server_without_tls_is_left_never_spoken_to_in_the_clear() {
    let lab = lab(false).await;
    let target = Target { addr: lab.addr, tls: Some(client(&lab.ca, &lab.ca)) };
    let (end, seen) = run_once(target.clone(), ActiveOptions::default()).await;
    assert!(matches!(end, ActiveEnd::Session(ActiveError::TlsRefused)), "{end:?}");
    assert!(seen.is_empty(), "no query was sent");
    // The bulk side too.
    let e = leasewire_requestor::bulk::BulkStream::open(&target, &[], Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(e, leasewire_requestor::bulk::BulkError::Conn(ConnError::TlsRefused)), "{e}");
}

#[tokio::test]
async fn alq_7_2_8_a_server_certificate_from_another_ca_fails_the_handshake() {
    let lab = lab(true).await;
    let stranger = LabCa::new("another CA").unwrap();
    let target = Target { addr: lab.addr, tls: Some(client(&lab.ca, &stranger)) };
    let (end, seen) = run_once(target, ActiveOptions::default()).await;
    assert!(matches!(end, ActiveEnd::Conn(ConnError::Handshake(_))), "ALQ-7.2-10: {end:?}");
    assert!(seen.is_empty());
}

#[tokio::test]
async fn watch_says_which_capability_a_server_lacks() {
    // Active Leasequery off: the server closes on DHCPACTIVELEASEQUERY (RFC 7724 §8.1.1).
    let plain = TcpLab::start("[active-leasequery]\nenabled = false\n", Vec::new()).await;
    let (end, _) = run_once(Target { addr: plain.addr, tls: None }, ActiveOptions::default()).await;
    assert!(matches!(end, ActiveEnd::NoActiveLeasequery), "{end:?}");
    assert!(end.to_string().contains("does not offer Active Leasequery"), "{end}");
    // Secure mode, query in the clear: the server closes (ALQ-8.1-9); the requestor finds out why.
    let secure = lab(true).await;
    let (end, _) = run_once(Target { addr: secure.addr, tls: None }, ActiveOptions::default()).await;
    assert!(matches!(end, ActiveEnd::Conn(ConnError::TlsRequired)), "{end:?}");
    // In the library's words (the CLI adds its flags): what is missing, not which flag supplies it.
    assert!(end.to_string().contains("client certificate") && !end.to_string().contains("--"), "{end}");
    // A certificate the server's allow-list refuses: said so, not "connection reset".
    let strict = lab_with(true, "allow-names = [\"other.lab\"]").await;
    let (end, _) =
        run_once(Target { addr: strict.addr, tls: Some(client(&strict.ca, &strict.ca)) }, ActiveOptions::default())
            .await;
    assert!(matches!(end, ActiveEnd::Conn(ConnError::CertificateRefused(_))), "{end:?}");
}

/// A listener that accepts and then never says anything.
async fn silent_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let h = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (addr, h)
}

#[tokio::test(start_paused = true)]
async fn alq_7_4_4_nothing_received_for_active_lq_rcv_timeout_ends_the_connection() {
    let (addr, _h) = silent_server().await;
    let start = tokio::time::Instant::now();
    let (end, seen) = run_once(Target { addr, tls: None }, ActiveOptions::default()).await;
    assert!(matches!(end, ActiveEnd::Session(ActiveError::Timeout(d)) if d == Duration::from_secs(120)), "{end:?}");
    assert!(start.elapsed() >= Duration::from_secs(120), "not before the timeout");
    assert_eq!(seen.len(), 1, "only the query went out");
}

#[tokio::test(start_paused = true)]
async fn alq_7_2_5_no_answer_to_dhcptls_is_a_timeout_too() {
    let (addr, _h) = silent_server().await;
    let ca = LabCa::new("ca").unwrap();
    let (end, seen) = run_once(Target { addr, tls: Some(client(&ca, &ca)) }, ActiveOptions::default()).await;
    assert!(matches!(end, ActiveEnd::Session(ActiveError::Timeout(_))), "outcome 1 of ALQ-7.2-5: {end:?}");
    assert!(seen.is_empty());
}

/// A server that, for each connection in turn, answers the query with one kind of garbage.
async fn garbage_server(accepts: mpsc::Sender<tokio::time::Instant>) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut n = 0u32;
        while let Ok((mut s, _)) = l.accept().await {
            let _ = accepts.send(tokio::time::Instant::now()).await;
            n += 1;
            let kind = n % 5;
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                let query = loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                    if let Ok(Some((body, _))) = FrameDecoder::default().decode(&got) {
                        break Message::decode(body).unwrap().xid;
                    }
                };
                let mut reply = Message::new(Op::BootReply);
                reply.ciaddr = Ipv4Addr::new(10, 0, 0, 99);
                reply.options.set_message_type(MessageType::LeaseActive);
                let mut out = Vec::new();
                match kind {
                    // A frame of length zero.
                    0 => out.extend_from_slice(&[0, 0]),
                    // Half a frame, then silence (a server that stalls).
                    4 => out.extend_from_slice(&[0xff, 0xff, 1, 2, 3]),
                    // A good message for another query.
                    1 => {
                        reply.xid = query.wrapping_add(1);
                        encode_frame(&reply, &mut out).unwrap();
                    }
                    // A message type that has no place in an Active stream.
                    2 => {
                        reply.xid = query;
                        reply.options.set_message_type(MessageType::LeaseUnknown);
                        encode_frame(&reply, &mut out).unwrap();
                    }
                    // A frame whose body is not DHCP.
                    _ => out.extend_from_slice(&[0, 8, 1, 2, 3, 4, 5, 6, 7, 8]),
                }
                let _ = s.write_all(&out).await;
                let _ = s.read(&mut buf).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn alq_7_1_2_garbage_or_a_stall_ends_the_connection_with_a_clear_error_and_never_touches_the_replica() {
    let (atx, mut arx) = mpsc::channel(16);
    let addr = garbage_server(atx).await;
    let mut r = Replica::in_memory(&[addr.to_string()]);
    let known = change(5).binding;
    r.apply(0, &known, Some(1_800_000_000), Via::Bulk);
    r.set_seeded(0, Some(1_800_000_000));
    let interval = Duration::from_millis(300);
    let (rtx, mut rrx) = mpsc::channel(64);
    let w = Watcher::builder([Target { addr, tls: None }])
        .replica(r)
        .retry_interval(interval)
        .rcv_timeout(Duration::from_secs(1))
        .reports(rtx)
        .spawn()
        .unwrap();
    let replica = w.replica().clone();
    let mut reasons = Vec::new();
    while reasons.len() < 5 {
        match rrx.recv().await.unwrap() {
            Report::Status { status: Status::Disconnected { reason, retry_in, active: true }, .. } => {
                assert_eq!(retry_in, interval);
                reasons.push(reason.to_string());
            }
            Report::Change { binding, .. } => panic!("garbage reached the replica: {binding:?}"),
            _ => {}
        }
    }
    // The handle's status says the same: each ending counted, the last reason kept, the position unmoved.
    let status = w.status();
    let s = &status[0];
    assert!(s.disconnects >= 5 && s.last_error.is_some(), "{s:?}");
    assert_eq!((s.seeded, s.saved_base_time), (true, Some(1_800_000_000)), "{s:?}");
    w.stop().await.unwrap();
    let mut accepted = Vec::new();
    while let Ok(t) = arx.try_recv() {
        accepted.push(t);
    }
    assert!(accepted.len() >= 5);
    for pair in accepted.windows(2) {
        assert!(pair[1] - pair[0] >= interval, "ALQ-7.1-2: retried after {:?}", pair[1] - pair[0]);
    }
    let all = reasons.join("\n");
    for needle in ["frame with length 0", "xid", "unexpected DHCPLEASEUNKNOWN", "truncated", "nothing received"] {
        assert!(all.contains(needle), "a clear reason mentioning {needle:?} in:\n{all}");
    }
    let r = replica.lock().unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r.get(known.ip).unwrap().0, known, "the replica is as it was");
    assert_eq!(r.server(0).saved, Some(1_800_000_000), "the saved base-time did not move");
}

/// A hand-written Bulk Leasequery server for one connection: reads the query, answers with `replies`
/// ACTIVE messages (and DONE when `done`), then reports how the requestor's side ended: `Ok(0)` for a FIN.
async fn scripted_bulk_server(
    replies: u8,
    done: bool,
) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<usize>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = l.accept().await?;
        let mut buf = Vec::new();
        let query = loop {
            if let Some((body, _)) = FrameDecoder::default().decode(&buf).unwrap() {
                break Message::decode(body).unwrap().xid;
            }
            let mut chunk = [0u8; 1024];
            let n = s.read(&mut chunk).await?;
            buf.extend_from_slice(&chunk[..n]);
        };
        let mut out = Vec::new();
        for i in 0..replies {
            let mut m = Message::new(Op::BootReply);
            m.xid = query;
            m.ciaddr = Ipv4Addr::new(10, 0, 0, 10 + i);
            m.options.set_message_type(MessageType::LeaseActive);
            m.options.set_u32(leasewire_proto::options::code::BASE_TIME, 1_800_000_000);
            encode_frame(&m, &mut out).unwrap();
        }
        if done {
            encode_frame(&leasewire_proto::lq_reply::done(query, None, None), &mut out).unwrap();
        }
        s.write_all(&out).await?;
        if !done {
            return Ok(0); // close on the requestor
        }
        let mut rest = [0u8; 64];
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut rest)).await.map_err(std::io::Error::other)?
    });
    (addr, task)
}

/// A Bulk Leasequery for every binding on `addr`, without TLS.
async fn bulk_all(addr: std::net::SocketAddr) -> leasewire_requestor::bulk::BulkStream {
    let req = leasewire_proto::session::requestor::bulk::BulkRequest::all();
    leasewire_requestor::bulk::BulkStream::open(&Target { addr, tls: None }, &[req], Duration::from_secs(5))
        .await
        .unwrap()
}

/// BLQ-7.8-1/2: after the DONE of its last query the requestor closes, gracefully (a FIN, not a reset), at once.
#[tokio::test]
async fn blq_7_8_1_the_requestor_closes_gracefully_after_the_last_done() {
    use leasewire_proto::session::requestor::bulk::Event;
    let (addr, server) = scripted_bulk_server(2, true).await;
    let mut s = bulk_all(addr).await;
    let mut events = 0;
    while let Some(ev) = s.next().await.unwrap() {
        events += matches!(ev, Event::Binding(_) | Event::Done { .. }) as usize;
    }
    assert_eq!(events, 3);
    assert_eq!(server.await.unwrap().unwrap(), 0, "BLQ-7.8-2: the server reads a FIN, not a reset");
}

/// BLQ-7.8-4: a server that closes mid-query leaves the bindings already received valid: they were handed
/// over, and the error says how many queries were unfinished.
#[tokio::test]
async fn blq_7_8_4_bindings_received_before_a_close_are_kept() {
    use leasewire_proto::session::requestor::bulk::Event;
    let (addr, server) = scripted_bulk_server(2, false).await;
    let mut s = bulk_all(addr).await;
    let mut bindings = Vec::new();
    let end = loop {
        match s.next().await {
            Ok(Some(Event::Binding(b))) => bindings.push(b.binding.ip),
            Ok(Some(_)) => {}
            Ok(None) => panic!("no DONE came"),
            Err(e) => break e,
        }
    };
    server.await.unwrap().unwrap();
    assert_eq!(bindings, vec![Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 11)]);
    assert!(matches!(end, leasewire_requestor::bulk::BulkError::Closed(1)), "{end}");
}

/// BLQ-7.2-6: the queries of a Bulk connection whose server takes nothing (it accepts and never reads, so
/// the write really blocks once both socket buffers are full) are given up after the data timeout, by the
/// requestor's own timer, not TCP's — and not before.
#[tokio::test(start_paused = true)]
async fn blq_7_2_6_a_query_write_blocked_for_the_data_timeout_ends_the_attempt() {
    use leasewire_proto::session::BulkKey;
    use leasewire_proto::session::requestor::bulk::BulkRequest;
    use leasewire_requestor::bulk::{BulkError, BulkStream};
    let (addr, _h) = silent_server().await;
    // About 25 MB of queries: more than loopback's send and receive buffers hold.
    let requests: Vec<BulkRequest> = (0..100_000u32)
        .map(|i| BulkRequest {
            key: BulkKey::ClientId(i.to_be_bytes().to_vec()),
            changed_on_or_after: None,
            changed_on_or_before: None,
        })
        .collect();
    let start = tokio::time::Instant::now();
    let r = BulkStream::open(&Target { addr, tls: None }, &requests, Duration::from_secs(300)).await;
    assert!(matches!(r, Err(BulkError::WriteTimeout(d)) if d == Duration::from_secs(300)), "{r:?}");
    assert!(start.elapsed() >= Duration::from_secs(300), "not before the timeout: {:?}", start.elapsed());
}

/// ALQ-7.3-9: the Active driver writes through `conn::write_within` with `ActiveOptions::write_timeout`
/// (BULK_LQ_DATA_TIMEOUT, 300 s). A DHCPACTIVELEASEQUERY is one small frame that a socket always takes, so
/// the blocked write is made here with more than the socket buffers hold, to a server that never reads: it
/// ends after the timeout, not before.
#[tokio::test(start_paused = true)]
async fn alq_7_3_9_a_write_blocked_for_the_write_timeout_ends_the_connection() {
    use leasewire_requestor::conn::{self, Conn, WriteFailed};
    let (addr, _h) = silent_server().await;
    let timeout = ActiveOptions::default().write_timeout;
    assert_eq!(timeout, Duration::from_secs(300), "BULK_LQ_DATA_TIMEOUT");
    let mut c = Conn::Plain(conn::connect(addr, Duration::from_secs(5)).await.unwrap());
    let mut frames = Vec::new();
    let mut q = Message::new(Op::BootRequest);
    q.options.set_message_type(MessageType::ActiveLeaseQuery);
    while frames.len() < 24 << 20 {
        q.xid = q.xid.wrapping_add(1);
        encode_frame(&q, &mut frames).unwrap();
    }
    let start = tokio::time::Instant::now();
    let r = conn::write_within(&mut c, &frames, timeout).await;
    assert!(matches!(r, Err(WriteFailed::Blocked(d)) if d == timeout), "{r:?}");
    assert!(start.elapsed() >= timeout);
}

/// Per connection: the message types the requestor sent on it, and whether it is still open.
type ConnLog = Arc<std::sync::Mutex<Vec<(Vec<MessageType>, bool)>>>;

/// A TCP proxy to `upstream` that records, per connection in accept order, the message types the requestor
/// sent on it and whether the requestor still holds it open.
async fn recording_proxy(upstream: SocketAddr) -> (SocketAddr, ConnLog) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let log: ConnLog = Arc::default();
    let log2 = log.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = l.accept().await {
            let i = {
                let mut log = log2.lock().unwrap();
                log.push((Vec::new(), true));
                log.len() - 1
            };
            let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
            });
            let log = log2.clone();
            tokio::spawn(async move {
                let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 65536]);
                loop {
                    let n = match cr.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Ok(Some((body, used))) = FrameDecoder::default().decode(&buf) {
                        if let Some(t) = Message::decode(body).ok().and_then(|m| m.message_type()) {
                            log.lock().unwrap()[i].0.push(t);
                        }
                        buf.drain(..used);
                    }
                    if sw.write_all(&chunk[..n]).await.is_err() {
                        break;
                    }
                }
                log.lock().unwrap()[i].1 = false;
                let _ = sw.shutdown().await;
            });
        }
    });
    (addr, log)
}

/// BLQ-U-3, ALQ-8.3-3: the Bulk Leasequery that fills a DataMissing gap runs on a connection of its own, in
/// parallel with the Active one, which carries nothing but the DHCPACTIVELEASEQUERY and stays open.
#[tokio::test]
async fn blq_u_3_and_alq_8_3_3_a_gap_fill_runs_on_its_own_connection_beside_the_active_one() {
    let lab = lab(false).await;
    let (addr, log) = recording_proxy(lab.addr).await;
    let mut r = Replica::in_memory(&[addr.to_string()]);
    // Saved long before the store's history begins: the Active query gets DataMissing.
    r.set_seeded(0, Some(1_800_000_000 - 5000));
    let w = Watcher::builder([Target { addr, tls: None }]).replica(r).spawn().unwrap();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let snapshot = log.lock().unwrap().clone();
            if snapshot.iter().any(|(types, _)| types.contains(&MessageType::BulkLeaseQuery)) {
                break snapshot;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a gap fill");
    let (active, still_open) = &found[0];
    assert_eq!(active, &vec![MessageType::ActiveLeaseQuery], "nothing else on the Active connection");
    assert!(*still_open, "the Active connection stays open while the gap is filled");
    let bulk: Vec<_> = found[1..].iter().filter(|(t, _)| t.contains(&MessageType::BulkLeaseQuery)).collect();
    assert_eq!(bulk.len(), 1);
    assert!(bulk[0].0.iter().all(|t| *t == MessageType::BulkLeaseQuery), "{:?}", bulk[0].0);
    w.stop().await.unwrap();
}
