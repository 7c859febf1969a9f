//! The Leasequery TCP listener over real loopback sockets: limits, access control, forbidden messages,
//! the data timeout (on tokio's paused clock), shutdown, and a full bulk exchange through the store.

use leasewire_proto::framing::FrameDecoder;
use leasewire_proto::options::code;
use leasewire_proto::{DhcpState, Message, MessageType, Op, StatusCode};
use leasewire_server::config::Config;
use leasewire_store::Binding;
use leasewire_testkit::{LAB_TIME, TcpLab, frame};
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The service with `extra` keys of `[bulk-leasequery]`, one subnet whose pool ends at `pool_end`, and one
/// active binding (10.0.0.2).
async fn listener(extra: &str, pool_end: &str) -> TcpLab {
    let mut b = Binding::new(Ipv4Addr::new(10, 0, 0, 2), DhcpState::Active, LAB_TIME);
    b.htype = 1;
    b.hardware_address = vec![2, 0, 0, 0, 0, 2];
    b.expires_at = Some(1_900_000_000);
    let subnet =
        format!("[[subnet]]\nsubnet = \"10.0.0.0/16\"\npools = [{{ start = \"10.0.0.1\", end = \"{pool_end}\" }}]");
    TcpLab::start(&format!("{extra}\n{subnet}\n"), vec![b]).await
}

fn bulk_query(xid: u32) -> Message<'static> {
    let mut q = Message::new(Op::BootRequest);
    q.xid = xid;
    q.options.set_message_type(MessageType::BulkLeaseQuery);
    q.options.set(code::PARAMETER_REQUEST_LIST, vec![152, 156, 51]);
    q
}

/// A connection to `l` that sent `queries` (framed) and has read the first message of the answer, which is
/// still streaming; with the bytes read past that message.
async fn answer_streaming(l: &TcpLab, queries: &[u8]) -> (TcpStream, Vec<u8>) {
    let mut s = TcpStream::connect(l.addr).await.unwrap();
    s.write_all(queries).await.unwrap();
    let mut buf = Vec::new();
    let (first, _) = read_messages_buf(&mut s, &mut buf, |_| true).await;
    assert_eq!(first.len(), 1, "the answer is streaming");
    (s, buf)
}

/// Read frames until the peer closes or `until` says stop; returns the messages (owned bytes).
async fn read_messages(s: &mut TcpStream, until: impl FnMut(&Message<'_>) -> bool) -> (Vec<Vec<u8>>, bool) {
    read_messages_buf(s, &mut Vec::new(), until).await
}

/// The same, keeping unread bytes in `buf` for the next call.
async fn read_messages_buf(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    mut until: impl FnMut(&Message<'_>) -> bool,
) -> (Vec<Vec<u8>>, bool) {
    let mut out = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        while let Some((body, n)) = FrameDecoder::default().decode(buf).unwrap() {
            let body = body.to_vec();
            buf.drain(..n);
            let stop = until(&Message::decode(&body).unwrap());
            out.push(body);
            if stop {
                return (out, false);
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return (out, true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn msg(b: &[u8]) -> Message<'_> {
    Message::decode(b).unwrap()
}

#[tokio::test]
async fn blq_8_2_8_full_exchange_over_tcp_reports_every_configured_address_once() {
    let l = listener("", "10.0.3.255").await;
    let mut s = TcpStream::connect(l.addr).await.unwrap();
    s.write_all(&frame(&bulk_query(9))).await.unwrap();
    let (msgs, closed) = read_messages(&mut s, |m| m.message_type() == Some(MessageType::LeaseQueryDone)).await;
    assert!(!closed);
    // 10.0.0.1 ..= 10.0.3.255, then DONE.
    assert_eq!(msgs.len(), 1023 + 1);
    let mut seen = std::collections::HashSet::new();
    for b in &msgs[..1023] {
        let m = msg(b);
        assert!(seen.insert(m.ciaddr), "BLQ-8.2-5: {} twice", m.ciaddr);
        let expected = if m.ciaddr == Ipv4Addr::new(10, 0, 0, 2) {
            MessageType::LeaseActive
        } else {
            MessageType::LeaseUnassigned
        };
        assert_eq!(m.message_type(), Some(expected));
        assert!(m.options.base_time().is_some());
    }
    // The connection stays open for more queries (RFC 6926 §7.7); a second one on it works too.
    s.write_all(&frame(&bulk_query(10))).await.unwrap();
    let (msgs, _) = read_messages(&mut s, |m| m.message_type() == Some(MessageType::LeaseQueryDone)).await;
    assert_eq!(msg(msgs.last().unwrap()).xid, 10);
    l.stop();
    l.done.await.unwrap();
}

/// A connection that has had a bulk query answered (so it holds an admitted slot) and stays open.
async fn admitted(l: &TcpLab, xid: u32) -> TcpStream {
    let mut s = TcpStream::connect(l.addr).await.unwrap();
    s.write_all(&frame(&bulk_query(xid))).await.unwrap();
    let (_, closed) = read_messages(&mut s, |m| m.message_type() == Some(MessageType::LeaseQueryDone)).await;
    assert!(!closed, "admitted and answered");
    s
}

/// BLQ-8.1-1/2; ALQ-8.1-11: a capacity refusal closes the TCP connection itself, with no message.
#[tokio::test]
async fn blq_8_1_2_connections_over_the_limit_are_closed_at_once() {
    let l = listener("max-connections = 2\nmax-connections-per-requestor = 10", "10.0.0.10").await;
    let _a = admitted(&l, 1).await;
    let _b = admitted(&l, 2).await;
    let mut c = TcpStream::connect(l.addr).await.unwrap();
    c.write_all(&frame(&bulk_query(3))).await.unwrap();
    let (msgs, closed) = tokio::time::timeout(Duration::from_secs(5), read_messages(&mut c, |_| false))
        .await
        .expect("closed, not left hanging");
    assert!(closed && msgs.is_empty(), "the third admitted connection is closed without an answer");
    assert_eq!(l.metrics.rejected_for("max_connections"), 1);
    // A freed slot is usable again.
    drop(_a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut d = TcpStream::connect(l.addr).await.unwrap();
    d.write_all(&frame(&bulk_query(1))).await.unwrap();
    let (msgs, _) = read_messages(&mut d, |m| m.message_type() == Some(MessageType::LeaseQueryDone)).await;
    assert_eq!(msgs.len(), 11);
}

/// BLQ-9-3, BLQ-9-4: Bulk Leasequery only for the configured requestors; anyone else is closed at once.
#[tokio::test]
async fn rfc6926_9_per_requestor_limit_and_allow_list() {
    let l = listener("max-connections-per-requestor = 1", "10.0.0.10").await;
    let _a = TcpStream::connect(l.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut b = TcpStream::connect(l.addr).await.unwrap();
    let mut one = [0u8; 1];
    assert!(matches!(tokio::time::timeout(Duration::from_secs(5), b.read(&mut one)).await.unwrap(), Ok(0) | Err(_)));

    // BLQ-8.1-3 / BLQ-9-5: a source outside the allow list is closed at once.
    let text = "allow = [\"127.0.0.1/32\"]";
    let l2 = TcpLab::start_config(
        &format!("[server]\nserver-id = \"10.0.0.1\"\ndata-dir = \"/x\"\n[bulk-leasequery]\nlisten = [\"127.0.0.1:0\"]\n{text}\n"),
        Vec::new(),
    )
    .await;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = sock.connect(l2.addr).await.unwrap();
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(5), other.read(&mut one)).await.unwrap(),
        Ok(0) | Err(_)
    ));
}

#[tokio::test]
async fn blq_u_1_a_dhcp_client_message_closes_the_connection() {
    let l = listener("", "10.0.0.10").await;
    for t in [MessageType::Discover, MessageType::LeaseQuery] {
        let mut s = TcpStream::connect(l.addr).await.unwrap();
        let mut m = bulk_query(3);
        m.options.set_message_type(t);
        s.write_all(&frame(&m)).await.unwrap();
        let (msgs, closed) = read_messages(&mut s, |_| false).await;
        assert!(closed && msgs.is_empty(), "{t}: closed without a reply");
    }
}

#[tokio::test]
async fn oversize_and_zero_length_frames_close_the_connection() {
    let l = listener("", "10.0.0.10").await;
    for prefix in [[0u8, 0], [0xff, 0xff]] {
        let mut s = TcpStream::connect(l.addr).await.unwrap();
        s.write_all(&prefix).await.unwrap();
        let (msgs, closed) = read_messages(&mut s, |_| false).await;
        assert!(closed && msgs.is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn blq_8_1_5_silent_and_half_frame_connections_time_out() {
    // The pre-authentication deadline is as long as the data timeout here, so this is the RFC timer alone.
    let l = listener("pre-auth-timeout = 300", "10.0.0.10").await;
    let mut silent = TcpStream::connect(l.addr).await.unwrap();
    let mut half = TcpStream::connect(l.addr).await.unwrap();
    half.write_all(&[0x01]).await.unwrap();
    // Just before BULK_LQ_DATA_TIMEOUT both are still open...
    tokio::time::sleep(Duration::from_secs(299)).await;
    let mut one = [0u8; 1];
    assert!(tokio::time::timeout(Duration::from_millis(10), silent.read(&mut one)).await.is_err(), "still open");
    // ...and after it both are closed (the paused clock jumps; no real waiting).
    tokio::time::sleep(Duration::from_secs(2)).await;
    for s in [&mut silent, &mut half] {
        assert!(matches!(s.read(&mut one).await, Ok(0) | Err(_)));
    }
}

#[tokio::test]
async fn blq_8_5_4_shutdown_sends_query_terminated() {
    let l = listener("", "10.0.255.255").await;
    // Read a little of the 65k-address answer, then shut the server down.
    let (mut s, mut buf) = answer_streaming(&l, &frame(&bulk_query(5))).await;
    l.stop();
    let (msgs, closed) =
        read_messages_buf(&mut s, &mut buf, |m| m.message_type() == Some(MessageType::LeaseQueryDone)).await;
    let last = msg(msgs.last().expect("a final message"));
    assert_eq!(last.message_type(), Some(MessageType::LeaseQueryDone));
    assert_eq!(last.options.status_code(), Some(StatusCode::QueryTerminated));
    assert!(msgs.len() < 65_000, "ended early");
    let _ = closed;
    l.done.await.unwrap();
}

#[tokio::test]
async fn alq_8_2_and_lq_6_4_2_11_per_requestor_withheld_options_apply_to_tcp_replies() {
    let l = listener(
        "[leasequery]\nwithhold = []\n[[leasequery.requestor]]\nprefix = \"127.0.0.1/32\"\nwithhold = [156]",
        "10.0.0.3",
    )
    .await;
    let mut q = bulk_query(1);
    q.options.set(code::PARAMETER_REQUEST_LIST, vec![152, 156]);
    // From 127.0.0.1: dhcp-state withheld.
    let mut s = TcpStream::connect(l.addr).await.unwrap();
    s.write_all(&frame(&q)).await.unwrap();
    let (msgs, _) = read_messages(&mut s, |m| m.message_type() == Some(MessageType::LeaseQueryDone)).await;
    assert!(msgs.len() > 1 && msgs.iter().all(|b| !msg(b).options.contains(156)));
    // From 127.0.0.2: disclosed.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut s = sock.connect(l.addr).await.unwrap();
    s.write_all(&frame(&q)).await.unwrap();
    let (msgs, _) = read_messages(&mut s, |m| m.message_type() == Some(MessageType::LeaseQueryDone)).await;
    assert!(msg(&msgs[0]).options.contains(156));
}

#[tokio::test(start_paused = true)]
async fn pre_auth_timeout_closes_silent_half_frame_and_trickling_connections() {
    let l = listener("pre-auth-timeout = 10\nmax-connections-per-requestor = 10", "10.0.0.10").await;
    let mut silent = TcpStream::connect(l.addr).await.unwrap();
    let mut half = TcpStream::connect(l.addr).await.unwrap();
    half.write_all(&frame(&bulk_query(1))[..20]).await.unwrap();
    // Slowloris: an octet of a frame every 3 s is progress, which keeps the data timeout away for ever.
    let trickle = TcpStream::connect(l.addr).await.unwrap();
    let (mut trickle_rd, mut trickle_wr) = trickle.into_split();
    tokio::spawn(async move {
        for b in frame(&bulk_query(2)) {
            if trickle_wr.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    });
    let good = admitted(&l, 3).await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    let mut one = [0u8; 1];
    assert!(tokio::time::timeout(Duration::from_millis(10), silent.read(&mut one)).await.is_err(), "still open");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for s in [&mut silent, &mut half] {
        assert!(matches!(s.read(&mut one).await, Ok(0) | Err(_)), "closed at the deadline");
    }
    assert!(matches!(trickle_rd.read(&mut one).await, Ok(0) | Err(_)), "the trickler too");
    assert_eq!(l.metrics.rejected_for("pre_auth_timeout"), 3);
    // An admitted requestor is not subject to it.
    let mut good = good;
    good.write_all(&frame(&bulk_query(4))).await.unwrap();
    let (msgs, closed) = read_messages(&mut good, |m| m.message_type() == Some(MessageType::LeaseQueryDone)).await;
    assert!(!closed && msgs.len() == 11);
}

/// ALQ-8.4-2: the connections held are limited (`max-connections` admitted, `max-pending-connections`
/// waiting for a first query), and idle ones — accepted, nothing sent — are closed to enforce the limit, the
/// oldest first, so a newcomer and the established requestor are still served.
#[tokio::test]
async fn rfc7724_9_pending_connections_cannot_take_an_admitted_requestors_place() {
    let l =
        listener("max-connections = 2\nmax-pending-connections = 4\nmax-connections-per-requestor = 100", "10.0.0.10")
            .await;
    let mut first = admitted(&l, 1).await;
    // Ten connections that never say anything: only four may wait at once, the oldest make room.
    let mut idle = Vec::new();
    for _ in 0..10 {
        idle.push(TcpStream::connect(l.addr).await.unwrap());
    }
    let mut closed = 0;
    for s in &mut idle[..6] {
        let mut one = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut one)).await.expect("evicted, not hanging");
        assert!(matches!(r, Ok(0) | Err(_)));
        closed += 1;
    }
    assert_eq!(closed, 6);
    assert_eq!(l.metrics.rejected_for("pending_evicted"), 6);
    // A newcomer still gets in (it evicts an idle one while it waits for its query) and is answered...
    let _second = admitted(&l, 2).await;
    // ...and the established requestor kept its slot and is still served.
    first.write_all(&frame(&bulk_query(5))).await.unwrap();
    let (msgs, gone) = read_messages(&mut first, |m| m.message_type() == Some(MessageType::LeaseQueryDone)).await;
    assert!(!gone && msgs.len() == 11);
}

#[tokio::test]
async fn garbage_oversize_and_unauthorised_connections_are_counted_by_reason() {
    let l = listener("max-connections-per-requestor = 2", "10.0.0.10").await;
    let mut one = [0u8; 1];
    let mut s = TcpStream::connect(l.addr).await.unwrap();
    s.write_all(&[0, 8, 1, 2, 3, 4, 5, 6, 7, 8]).await.unwrap(); // a frame that is no DHCP message
    assert!(matches!(s.read(&mut one).await, Ok(0) | Err(_)));
    let mut s = TcpStream::connect(l.addr).await.unwrap();
    s.write_all(&[0xff, 0xff]).await.unwrap(); // a length prefix over max-frame
    assert!(matches!(s.read(&mut one).await, Ok(0) | Err(_)));
    // Per source: two wait, the third from the same address is closed at accept.
    let _a = TcpStream::connect(l.addr).await.unwrap();
    let _b = TcpStream::connect(l.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut c = TcpStream::connect(l.addr).await.unwrap();
    assert!(matches!(c.read(&mut one).await, Ok(0) | Err(_)));
    // Another address in the allow list is not affected by that one's limit.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.3:0".parse().unwrap()).unwrap();
    let mut other = sock.connect(l.addr).await.unwrap();
    other.write_all(&frame(&bulk_query(1))).await.unwrap();
    let (msgs, _) = read_messages(&mut other, |m| m.message_type() == Some(MessageType::LeaseQueryDone)).await;
    assert_eq!(msgs.len(), 11);
    assert_eq!(l.metrics.rejected_for("bad_input"), 2);
    assert_eq!(l.metrics.rejected_for("per_source_limit"), 1);
}

#[tokio::test]
async fn a_peer_that_pipelines_queries_and_never_reads_is_held_by_backpressure() {
    // Queued bytes per connection are bounded: the session reads at most max-queries queries ahead and a
    // frame's worth of input (BLQ-8.4-1), and produces output only as fast as the socket takes it; so a peer
    // that writes without reading fills the TCP buffers and then cannot write any more.
    let l = listener("", "10.0.3.255").await;
    let s = TcpStream::connect(l.addr).await.unwrap();
    let (_rd, mut wr) = s.into_split();
    let mut batch = Vec::new();
    for xid in 0..64 {
        batch.extend(frame(&bulk_query(1000 + xid)));
    }
    let mut written = 0usize;
    let blocked = loop {
        match tokio::time::timeout(Duration::from_secs(2), wr.write_all(&batch)).await {
            Ok(Ok(())) => written += batch.len(),
            Ok(Err(e)) => panic!("the server closed instead of pushing back: {e}"),
            Err(_) => break true,
        }
        if written > 256 << 20 {
            break false;
        }
    };
    assert!(blocked, "the server kept reading: {written} octets taken");
    // What was taken is the kernel's socket buffers plus a bounded amount in the session, far from the total.
    assert!(written < 64 << 20, "{written} octets taken before the push-back");
}

/// BLQ-8.5-5: when the requestor closes its end, the server closes its own (at once, not after the data
/// timeout).
#[tokio::test]
async fn blq_8_5_5_the_server_closes_when_the_requestor_does() {
    let l = listener("", "10.0.0.10").await;
    let mut s = admitted(&l, 1).await;
    s.shutdown().await.unwrap();
    let mut b = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await.expect("closed promptly");
    assert!(matches!(n, Ok(0)), "{n:?}");
}

/// A reload that lowers max-connections closes nobody: admitted requestors keep their connections (and get
/// answers), new ones are refused until enough have ended, then the lower limit holds.
#[tokio::test]
async fn a_lowered_max_connections_drops_nobody_and_applies_as_connections_end() {
    let config = |max: usize| {
        format!(
            "max-connections = {max}\nmax-connections-per-requestor = 10\n[[subnet]]\nsubnet = \"10.0.0.0/16\"\n\
             pools = [{{ start = \"10.0.0.1\", end = \"10.0.0.3\" }}]\n"
        )
    };
    let l = TcpLab::start(&config(2), Vec::new()).await;
    let (service, addr) = (l.service.clone().unwrap(), l.addr);
    let a = admitted(&l, 1).await;
    let mut b = admitted(&l, 2).await;
    service.reconfigure(&Config::parse(&leasewire_testkit::lab_config(&config(1))).unwrap()).unwrap();
    // Both keep their connections and their answers.
    b.write_all(&frame(&bulk_query(3))).await.unwrap();
    let (_, closed) = read_messages(&mut b, |m| m.message_type() == Some(MessageType::LeaseQueryDone)).await;
    assert!(!closed, "an admitted requestor is not dropped by a lower limit");
    let refused = |n: u64| async move {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(&frame(&bulk_query(9))).await.unwrap();
        let (msgs, closed) = tokio::time::timeout(
            Duration::from_secs(5),
            read_messages(&mut c, |m| m.message_type() == Some(MessageType::LeaseQueryDone)),
        )
        .await
        .unwrap();
        (closed && msgs.is_empty(), n)
    };
    assert!(refused(1).await.0, "over the new limit: refused");
    // One ends: one admitted is left, which is the new limit, so still no room.
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(refused(2).await.0, "the freed place was owed to the lower limit");
    // The other ends: room for exactly one.
    drop(b);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _c = admitted(&l, 4).await;
    assert!(refused(3).await.0, "one at a time now");
    drop(l);
}

/// BLQ-8.2-1: a requestor that stops reading makes the server's writes really block (the 65k-address answer
/// fills both socket buffers); after BULK_LQ_DATA_TIMEOUT blocked the server gives the connection up: the
/// answer ends without DONE, the close is counted as a data timeout, and not a moment before.
#[tokio::test(start_paused = true)]
async fn blq_8_2_1_a_write_blocked_for_the_data_timeout_ends_the_connection() {
    let l = listener("", "10.0.255.255").await;
    let mut s = TcpStream::connect(l.addr).await.unwrap();
    s.write_all(&frame(&bulk_query(9))).await.unwrap();
    // Not reading: the server fills the buffers and blocks.
    tokio::time::sleep(Duration::from_secs(299)).await;
    assert_eq!(l.metrics.drops_for("bulk_data_timeout"), 0, "still waiting for the socket");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(l.metrics.drops_for("bulk_data_timeout"), 1, "given up after the data timeout");
    // What was queued in the buffers arrives, then the end: no DONE, far fewer than 65k bindings.
    let (msgs, closed) = read_messages(&mut s, |m| m.message_type() == Some(MessageType::LeaseQueryDone)).await;
    assert!(closed, "the server closed the connection");
    assert!(msgs.iter().all(|m| msg(m).message_type() != Some(MessageType::LeaseQueryDone)));
    assert!(!msgs.is_empty() && msgs.len() < 65_000, "{} messages", msgs.len());
}

/// BLQ-8.5-3, ALQ-8.4-3 (the driver's one write path serves Bulk and Active connections): an error while
/// sending closes the server's end. The requestor resets the connection in the middle of a 65k-address
/// answer; the server's next write fails and it closes the connection at once, so its only admitted place is
/// free for the next requestor — long before any timeout. BLQ-8.5-1: how the requestor closed (an abort
/// here) means nothing more: no error is counted.
#[tokio::test]
async fn blq_8_5_3_a_send_error_closes_the_connection() {
    let l = listener("max-connections = 1\nmax-connections-per-requestor = 4", "10.0.255.255").await;
    let (s, _) = answer_streaming(&l, &frame(&bulk_query(1))).await;
    s.set_zero_linger().unwrap();
    drop(s); // RST
    // The next requestor gets the place (retried while the server notices: at most a few writes away).
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut c = TcpStream::connect(l.addr).await.unwrap();
            let mut q = bulk_query(2);
            q.set_hardware_address(1, &[2, 0, 0, 0, 0, 2]);
            c.write_all(&frame(&q)).await.unwrap();
            let (msgs, _) = read_messages(&mut c, |m| m.message_type() == Some(MessageType::LeaseQueryDone)).await;
            if msgs.last().is_some_and(|m| msg(m).message_type() == Some(MessageType::LeaseQueryDone)) {
                break msgs.len();
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the reset connection's place was freed");
    assert_eq!(answered, 2, "one binding and DONE");
    for label in ["bulk_data_timeout", "bulk_bad_input", "bulk_store_failed"] {
        assert_eq!(l.metrics.drops_for(label), 0, "{label}");
    }
}

/// BLQ-8.5-1: the server closes gracefully, never by abort, also when the requestor has sent more than the
/// server read: a requestor that pipelined queries beyond the per-connection limit gets the QueryTerminated
/// of a shutdown and then an orderly end of stream, not a reset that would throw the message away.
#[tokio::test]
async fn blq_8_5_1_the_server_closes_gracefully_with_unread_queries_pending() {
    let l = listener("max-queries-per-connection = 1", "10.0.255.255").await;
    let mut batch = Vec::new();
    for xid in 0..200 {
        batch.extend(frame(&bulk_query(100 + xid)));
    }
    let (mut s, buf) = answer_streaming(&l, &batch).await;
    // Keep reading while the server shuts down: everything it wrote is readable, then the end of stream.
    let reader = tokio::spawn(async move {
        let mut rest = buf;
        let mut chunk = vec![0u8; 65536];
        let end = loop {
            match s.read(&mut chunk).await {
                Ok(0) => break Ok(()),
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
                Err(e) => break Err(e),
            }
        };
        (rest, end)
    });
    l.stop();
    let (rest, end) = tokio::time::timeout(Duration::from_secs(30), reader).await.expect("closed").unwrap();
    l.done.await.unwrap();
    assert!(end.is_ok(), "an orderly close, not {end:?}");
    let msgs: Vec<Message<'_>> = leasewire_proto::framing::frames(&rest).map(|f| msg(&f[2..])).collect();
    let last = msgs.last().expect("messages");
    assert_eq!((last.xid, last.options.status_code()), (100, Some(StatusCode::QueryTerminated)));
}

/// BLQ-9-6: through the listener, a requestor restricted to queries by MAC gets DONE with NotAllowed for
/// "all configured addresses" and its answer by MAC on the same connection; another requestor is not
/// restricted.
#[tokio::test]
async fn blq_9_6_a_requestor_restricted_to_some_query_types() {
    let l =
        listener("[[bulk-leasequery.requestor]]\nprefix = \"127.0.0.1\"\nquery-types = [\"mac\"]", "10.0.0.10").await;
    let mut s = TcpStream::connect(l.addr).await.unwrap();
    let mut by_mac = bulk_query(2);
    by_mac.set_hardware_address(1, &[2, 0, 0, 0, 0, 2]);
    s.write_all(&[frame(&bulk_query(1)), frame(&by_mac)].concat()).await.unwrap();
    let mut dones = 0;
    let (msgs, _) = read_messages(&mut s, |m| {
        dones += usize::from(m.message_type() == Some(MessageType::LeaseQueryDone));
        dones == 2
    })
    .await;
    let of = |xid| msgs.iter().map(|b| msg(b)).filter(|m| m.xid == xid).collect::<Vec<_>>();
    assert_eq!(of(1).len(), 1);
    assert_eq!(of(1)[0].options.status_code(), Some(StatusCode::NotAllowed));
    assert_eq!(of(2).len(), 2, "the binding and DONE");
    assert_eq!(of(2)[1].options.status_code(), None);
    // From 127.0.0.2 (no rule) the same query is answered.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = sock.connect(l.addr).await.unwrap();
    other.write_all(&frame(&bulk_query(3))).await.unwrap();
    let (msgs, _) = read_messages(&mut other, |m| m.message_type() == Some(MessageType::LeaseQueryDone)).await;
    assert_eq!(msgs.len(), 11, "ten configured addresses and DONE");
}

/// BLQ-8.4-2, ALQ-8.3-4: what one requestor runs at once is bounded by settings: at most
/// max-connections-per-requestor connections, each processing at most max-queries-per-connection queries (so
/// here at most 2 × 1). With one query at a time per connection, a second pipelined query starts only after
/// the first's DONE, and a third connection from the same requestor is closed at once.
#[tokio::test]
async fn blq_8_4_2_a_requestor_runs_at_most_connections_times_queries_at_once() {
    let l = listener("max-connections-per-requestor = 2\nmax-queries-per-connection = 1", "10.0.3.255").await;
    let mut a = TcpStream::connect(l.addr).await.unwrap();
    a.write_all(&[frame(&bulk_query(1)), frame(&bulk_query(2))].concat()).await.unwrap();
    let _b = TcpStream::connect(l.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut c = TcpStream::connect(l.addr).await.unwrap();
    let mut one = [0u8; 1];
    let third = tokio::time::timeout(Duration::from_secs(5), c.read(&mut one)).await.expect("closed at once");
    assert!(matches!(third, Ok(0) | Err(_)), "{third:?}");
    assert_eq!(l.metrics.rejected_for("per_source_limit"), 1);
    let mut dones = 0;
    let (msgs, _) = read_messages(&mut a, |m| {
        dones += usize::from(m.message_type() == Some(MessageType::LeaseQueryDone));
        dones == 2
    })
    .await;
    let xids: Vec<u32> = msgs.iter().map(|b| msg(b).xid).collect();
    let first_2 = xids.iter().position(|x| *x == 2).unwrap();
    assert!(xids[..first_2].iter().all(|x| *x == 1), "query 2 started before query 1 ended");
    assert_eq!(msg(&msgs[first_2 - 1]).message_type(), Some(MessageType::LeaseQueryDone));
    assert_eq!(xids.len(), 2 * 1024, "1023 configured addresses and DONE, twice");
}

/// Issue #20 item 1: a shared network changes allocation only. A Bulk query for all configured addresses
/// reports both subnets' pools, once each, and the lease in the second subnet (where a client relayed
/// through the first landed) as active, like any other.
#[tokio::test]
async fn blq_8_2_8_a_shared_network_reports_each_subnets_addresses_as_usual() {
    let mut b = Binding::new(Ipv4Addr::new(10, 1, 0, 7), DhcpState::Active, LAB_TIME);
    b.htype = 1;
    b.hardware_address = vec![2, 0, 0, 0, 0, 7];
    b.expires_at = Some(1_900_000_000);
    let subnets = "[[subnet]]\nsubnet = \"10.0.0.0/24\"\nshared-network = \"campus\"\n\
                   pools = [{ start = \"10.0.0.1\", end = \"10.0.0.4\" }]\n\
                   [[subnet]]\nsubnet = \"10.1.0.0/24\"\nshared-network = \"campus\"\n\
                   pools = [{ start = \"10.1.0.5\", end = \"10.1.0.8\" }]\n";
    let l = TcpLab::start(subnets, vec![b]).await;
    let mut s = TcpStream::connect(l.addr).await.unwrap();
    s.write_all(&frame(&bulk_query(11))).await.unwrap();
    let (msgs, closed) = read_messages(&mut s, |m| m.message_type() == Some(MessageType::LeaseQueryDone)).await;
    assert!(!closed);
    let mut seen: Vec<(Ipv4Addr, Option<MessageType>)> =
        msgs[..msgs.len() - 1].iter().map(|b| (msg(b).ciaddr, msg(b).message_type())).collect();
    seen.sort_by_key(|(ip, _)| *ip);
    let mut want: Vec<(Ipv4Addr, Option<MessageType>)> = (1..=4)
        .map(|i| Ipv4Addr::new(10, 0, 0, i))
        .chain((5..=8).map(|i| Ipv4Addr::new(10, 1, 0, i)))
        .map(|ip| {
            let t =
                if ip == Ipv4Addr::new(10, 1, 0, 7) { MessageType::LeaseActive } else { MessageType::LeaseUnassigned };
            (ip, Some(t))
        })
        .collect();
    want.sort_by_key(|(ip, _)| *ip);
    assert_eq!(seen, want);
    l.stop();
    l.done.await.unwrap();
}
