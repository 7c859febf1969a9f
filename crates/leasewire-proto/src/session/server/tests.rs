//! RFC 6926 server requirements, by ID, driven through the sans-IO session with an in-memory store and a fake
//! clock.

use super::*;
use crate::framing::encode_frame;
use crate::options::code;
use crate::session::server::active::{ACTIVE_LQ_IDLE_TIMEOUT, ACTIVE_LQ_SEND_TIMEOUT};
use crate::{DataSource, Op, RelayAgentInfoBuilder};

const T0: u32 = 1_800_000_000;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, last)
}

fn cfg(page_size: usize, max_queries: usize) -> ServerConfig {
    ServerConfig {
        policy: ReplyPolicy { server_id: ip(1), disclose: vec![12], withhold: vec![], shared: false },
        max_queries,
        data_timeout: BULK_LQ_DATA_TIMEOUT,
        max_frame: 16 * 1024,
        page_size,
        configured: Arc::from(vec![(u32::from(ip(1)), u32::from(ip(10)))]),
        available_since: T0 - 1000,
        tls: TlsPolicy::Refuse,
        active: None,
        pre_auth_timeout: None,
        query_types: Default::default(),
    }
}

fn binding(last: u8, state: DhcpState, mac: u8, time: u32) -> BindingChange {
    let mut b = Binding::new(ip(last), state, time);
    b.htype = 1;
    b.hardware_address = vec![2, 0, 0, 0, 0, mac];
    b.client_id = Some(vec![1, mac]);
    b.cltt = Some(time);
    b.relay_agent_info = Some(RelayAgentInfoBuilder::new().remote_id(&[mac]).relay_id(b"relay-A").build());
    if state == DhcpState::Active {
        b.expires_at = Some(time + 600);
    }
    BindingChange { seq: time as u64, time, binding: b }
}

/// The store the tests run against: records in address order and the scan semantics of `LeaseStore::scan`.
struct FakeStore(Vec<BindingChange>);

impl FakeStore {
    fn standard() -> Self {
        Self(vec![
            binding(3, DhcpState::Active, 3, T0 - 100),
            binding(5, DhcpState::Released, 5, T0 - 50),
            binding(7, DhcpState::Active, 3, T0 - 10),
            binding(50, DhcpState::Active, 9, T0 - 5),
        ])
    }

    fn scan(&self, f: &Fetch) -> Vec<BindingChange> {
        self.0
            .iter()
            .filter(|c| f.after.is_none_or(|a| c.binding.ip > a))
            .filter(|c| f.request.changed_on_or_after.is_none_or(|t| c.time >= t))
            .filter(|c| f.request.changed_on_or_before.is_none_or(|t| c.time <= t))
            .filter(|c| match &f.request.key {
                BulkKey::All => true,
                BulkKey::Mac { htype, addr } => c.binding.htype == *htype && &c.binding.hardware_address == addr,
                BulkKey::ClientId(id) => c.binding.client_id.as_ref() == Some(id),
                BulkKey::RemoteId(id) => c.binding.remote_id() == Some(&id[..]),
                BulkKey::RelayId(id) => c.binding.relay_id() == Some(&id[..]),
            })
            .take(f.limit)
            .cloned()
            .collect()
    }
}

fn frame(m: &Message<'_>) -> Vec<u8> {
    let mut b = Vec::new();
    encode_frame(m, &mut b).unwrap();
    b
}

/// A session at `now` that has read these queries, framed back to back in one read.
fn started(cfg: ServerConfig, queries: &[Message<'_>]) -> (ServerSession, Instant) {
    let now = Instant::now();
    let mut s = ServerSession::new(cfg, now);
    s.receive(&queries.iter().flat_map(frame).collect::<Vec<u8>>(), now);
    (s, now)
}

fn query(xid: u32) -> Message<'static> {
    let mut q = Message::new(Op::BootRequest);
    q.xid = xid;
    q.options.set_message_type(MessageType::BulkLeaseQuery);
    q.options.set(code::PARAMETER_REQUEST_LIST, vec![152, 51, 153, 91, 156, 157, 61, 82]);
    q
}

struct Run {
    replies: Vec<Message<'static>>,
    closed: Option<CloseReason>,
    fetches: Vec<Fetch>,
}

/// Drive the session until it waits; decode everything it wrote. Scans are served from `store`, catch-up
/// pages from `pages` (each: changes, still coverable; empty and coverable when none are left).
fn drive_with(s: &mut ServerSession, store: &FakeStore, pages: &mut Vec<(Vec<BindingChange>, bool)>) -> Run {
    let mut run = Run { replies: Vec::new(), closed: None, fetches: Vec::new() };
    let d = FrameDecoder::new(65535);
    while let Some(out) = s.poll_output(T0) {
        match out {
            Output::Transmit(bytes) => {
                let mut rest = &bytes[..];
                while let Some((body, n)) = d.decode(rest).unwrap() {
                    let owned: &'static [u8] = Box::leak(body.to_vec().into_boxed_slice());
                    run.replies.push(Message::decode(owned).unwrap());
                    rest = &rest[n..];
                }
                assert!(rest.is_empty(), "whole frames only");
            }
            Output::Fetch(f) => {
                let page = store.scan(&f);
                run.fetches.push(f.clone());
                s.page(f.xid, Ok(page));
            }
            Output::FetchChanges(f) => {
                assert_eq!(f.since, T0 - 600);
                let page = if pages.is_empty() { (vec![], true) } else { pages.remove(0) };
                s.changes_page(Ok(page));
            }
            Output::Close(r) => run.closed = Some(r),
            Output::StartTls => {
                run.replies.push(Message::new(Op::BootReply)); // a marker: handshake requested
                s.tls_established();
            }
        }
    }
    run
}

fn drive(s: &mut ServerSession, store: &FakeStore) -> Run {
    drive_with(s, store, &mut Vec::new())
}

fn ask(q: &Message<'_>, store: &FakeStore, page: usize) -> Run {
    let now = Instant::now();
    let mut s = ServerSession::new(cfg(page, 4), now);
    s.receive(&frame(q), now);
    drive(&mut s, store)
}

/// What `types` lists for a DHCPLEASEQUERYDONE, a DHCPLEASEACTIVE about `ip(n)` and a DHCPLEASEUNASSIGNED.
const DONE: (Ipv4Addr, MessageType) = (Ipv4Addr::UNSPECIFIED, MessageType::LeaseQueryDone);

fn leased(n: u8) -> (Ipv4Addr, MessageType) {
    (ip(n), MessageType::LeaseActive)
}

fn unassigned(n: u8) -> (Ipv4Addr, MessageType) {
    (ip(n), MessageType::LeaseUnassigned)
}

fn types(run: &Run) -> Vec<(Ipv4Addr, MessageType)> {
    run.replies.iter().map(|m| (m.ciaddr, m.message_type().unwrap())).collect()
}

/// BLQ-8.2-12: every address at most once, then DONE.
#[test]
fn blq_8_2_8_all_configured_addresses_exactly_once() {
    for page in [1, 2, 3, 1000] {
        let run = ask(&query(1), &FakeStore::standard(), page);
        let got = types(&run);
        let mut expected: Vec<(Ipv4Addr, MessageType)> = (1..=10)
            .map(|i| (ip(i), if i == 3 || i == 7 { MessageType::LeaseActive } else { MessageType::LeaseUnassigned }))
            .collect();
        // A record outside the pools is still ours (BLQ-8.2-8 "every configured address with a binding").
        expected.push(leased(50));
        expected.push(DONE);
        assert_eq!(got, expected, "page size {page}");
        assert!(run.replies.iter().all(|m| m.xid == 1), "BLQ-7.1-3");
        let done = run.replies.last().unwrap();
        assert!(!done.options.contains(code::STATUS_CODE), "BLQ-8.2-2: no status on success");
        let never = &run.replies[0];
        assert_eq!(never.options.dhcp_state(), Some(Ok(DhcpState::Available)));
        assert_eq!(never.options.start_time_of_state(), Some(1000));
        assert_eq!(run.replies[4].options.dhcp_state(), Some(Ok(DhcpState::Released)), "BLQ-8.3-4");
    }
}

/// BLQ-8.3-2: server-identifier in the first message of the response only.
#[test]
fn blq_7_3_5_server_identifier_in_the_first_reply_only() {
    let run = ask(&query(1), &FakeStore::standard(), 2);
    let with: Vec<bool> = run.replies.iter().map(|m| m.options.contains(code::SERVER_IDENTIFIER)).collect();
    assert!(with[0]);
    assert!(with[1..].iter().all(|w| !w));
}

/// BLQ-6.2.7-4: DHCPLEASEACTIVE about an ACTIVE binding; ALQ-8.2-3: the same builder writes Active replies.
#[test]
fn blq_8_3_active_reply_contents() {
    let run = ask(&query(1), &FakeStore::standard(), 1000);
    let a = run.replies.iter().find(|m| m.ciaddr == ip(3)).unwrap();
    assert_eq!(a.hardware_address(), &[2, 0, 0, 0, 0, 3]);
    assert_eq!(a.options.base_time(), Some(T0));
    assert_eq!(a.options.lease_time(), Some(500));
    assert_eq!(a.options.start_time_of_state(), Some(100));
    assert_eq!(a.options.client_last_transaction_time(), Some(100));
    assert_eq!(a.options.client_identifier(), Some(&[1, 3][..]));
    assert!(a.options.relay_agent_info().is_some());
    assert!(!a.options.contains(code::ASSOCIATED_IP), "BLQ-5-3");
}

#[test]
fn blq_8_2_8_queries_by_key_return_only_matching_bindings() {
    let store = FakeStore::standard();
    let mut by_mac = query(2);
    by_mac.set_hardware_address(1, &[2, 0, 0, 0, 0, 3]);
    assert_eq!(types(&ask(&by_mac, &store, 1))[..2], [leased(3), leased(7)]);
    let mut by_cid = query(3);
    by_cid.options.set(code::CLIENT_IDENTIFIER, vec![1, 9]);
    assert_eq!(types(&ask(&by_cid, &store, 10)).len(), 2);
    // The remote-id's only binding was released: not currently bound, so DONE alone.
    let mut by_rid = query(4);
    by_rid.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().remote_id(&[5]).build());
    assert_eq!(types(&ask(&by_rid, &store, 10)), [DONE]);
    let mut by_relay = query(5);
    by_relay.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().relay_id(b"relay-A").build());
    let run = ask(&by_relay, &store, 3);
    assert_eq!(
        types(&run),
        [leased(3), leased(7), leased(50), DONE],
        "the three bound addresses, not the released one (BLQ-8.2-8: currently bound)"
    );
    assert!(run.fetches.iter().all(|f| f.request.key == BulkKey::RelayId(b"relay-A".to_vec())));
}

/// BLQ-8.2-8 with a time qualifier: a key query returns every binding of the key that changed in the window,
/// in its state, so a requestor filling a gap (RFC 7724 §7.4.1) learns that an address was released.
#[test]
fn blq_8_2_8_a_key_query_with_a_window_reports_releases_in_it() {
    let store = FakeStore::standard();
    let mut q = query(6);
    q.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().relay_id(b"relay-A").build());
    q.options.set(code::QUERY_START_TIME, (T0 - 60).to_be_bytes().to_vec());
    let run = ask(&q, &store, 10);
    assert_eq!(types(&run), [unassigned(5), leased(7), leased(50), DONE]);
    assert_eq!(run.replies[0].options.dhcp_state().unwrap().unwrap(), DhcpState::Released);
}

#[test]
fn blq_8_2_4_nothing_matches_means_done_alone() {
    let mut q = query(9);
    q.set_hardware_address(1, &[2, 9, 9, 9, 9, 9]);
    let run = ask(&q, &FakeStore::standard(), 10);
    assert_eq!(types(&run), vec![DONE]);
    assert!(!run.replies[0].options.contains(code::STATUS_CODE));
    assert!(run.replies[0].options.contains(code::SERVER_IDENTIFIER), "the first (only) message carries 54");
}

#[test]
fn blq_8_2_9_time_qualifiers_restrict_and_stop_synthesis() {
    let mut q = query(1);
    q.options.set_u32(code::QUERY_START_TIME, T0 - 60);
    q.options.set_u32(code::QUERY_END_TIME, T0 - 8);
    let run = ask(&q, &FakeStore::standard(), 10);
    assert_eq!(types(&run), vec![unassigned(5), leased(7), DONE]);
    assert_eq!(run.fetches[0].request.changed_on_or_after, Some(T0 - 60));
    assert_eq!(run.fetches[0].request.changed_on_or_before, Some(T0 - 8));
}

#[test]
fn blq_8_2_9_a_window_containing_the_history_horizon_reports_addresses_without_a_record() {
    // available_since is the horizon (T0 - 1000): a DataMissing gap fill from before it must learn that the
    // addresses the server no longer holds (forgotten after retention) are free, as of the horizon.
    let mut q = query(1);
    q.options.set_u32(code::QUERY_START_TIME, T0 - 2000);
    q.options.set_u32(code::QUERY_END_TIME, T0);
    let run = ask(&q, &FakeStore::standard(), 10);
    let synthesized: Vec<&Message<'_>> =
        run.replies.iter().filter(|m| m.options.dhcp_state() == Some(Ok(DhcpState::Available))).collect();
    assert!(!synthesized.is_empty());
    for m in &synthesized {
        let since = m.options.base_time().unwrap() - m.options.start_time_of_state().unwrap();
        assert_eq!(since, T0 - 1000, "available since the horizon");
    }
    // Addresses with a record are reported only if changed inside the window: .3 (T0 - 100 is in it) and
    // the others are; none is reported as AVAILABLE when it has a record.
    let available: Vec<Ipv4Addr> = synthesized.iter().map(|m| m.ciaddr).collect();
    for stored in [3, 5, 7] {
        assert!(!available.contains(&ip(stored)), "{stored} has a record: not synthesized");
    }
    assert_eq!(available.len(), 7, "the seven configured addresses without a record");
    // A record outside the window is neither sent nor taken for a free address.
    let mut q = query(3);
    q.options.set_u32(code::QUERY_START_TIME, T0 - 2000);
    q.options.set_u32(code::QUERY_END_TIME, T0 - 60);
    let run = ask(&q, &FakeStore::standard(), 2);
    let sent: Vec<(Ipv4Addr, Option<DhcpState>)> =
        run.replies.iter().map(|m| (m.ciaddr, m.options.dhcp_state().and_then(Result::ok))).collect();
    assert!(sent.contains(&(ip(3), Some(DhcpState::Active))), "changed at T0 - 100: inside");
    for outside in [5, 7, 50] {
        assert!(sent.iter().all(|(a, _)| *a != ip(outside)), "{outside} changed after the window");
    }
    // A window after the horizon does not: the store's history covers it exactly.
    let mut q = query(2);
    q.options.set_u32(code::QUERY_START_TIME, T0 - 900);
    let run = ask(&q, &FakeStore::standard(), 10);
    assert!(run.replies.iter().all(|m| m.options.dhcp_state() != Some(Ok(DhcpState::Available))));
}

#[test]
fn blq_8_2_9_vpn_qualifier() {
    let mut other = query(1);
    other.options.set(code::VSS, vec![0, b'v', b'p', b'n']);
    assert_eq!(types(&ask(&other, &FakeStore::standard(), 10)).len(), 1, "no address of ours is in that VPN");
    let mut all = query(1);
    all.options.set(code::VSS, vec![254]);
    assert_eq!(types(&ask(&all, &FakeStore::standard(), 10)).len(), 12);
}

#[test]
fn blq_8_2_6_nonzero_ciaddr_yiaddr_siaddr_is_malformed() {
    for field in 0..3 {
        let mut q = query(1);
        match field {
            0 => q.ciaddr = ip(3),
            1 => q.yiaddr = ip(3),
            _ => q.siaddr = ip(3),
        }
        let run = ask(&q, &FakeStore::standard(), 10);
        assert_eq!(run.replies.len(), 1);
        assert_eq!(run.replies[0].message_type(), Some(MessageType::LeaseQueryDone));
        assert_eq!(run.replies[0].options.status_code(), Some(StatusCode::MalformedQuery));
    }
}

#[test]
fn blq_8_2_7_two_primary_queries_are_not_allowed() {
    let mut q = query(1);
    q.set_hardware_address(1, &[2, 0, 0, 0, 0, 3]);
    q.options.set(code::CLIENT_IDENTIFIER, vec![1, 3]);
    assert_eq!(ask(&q, &FakeStore::standard(), 10).replies[0].options.status_code(), Some(StatusCode::NotAllowed));
    let mut q = query(1);
    q.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().remote_id(b"r").relay_id(b"R").build());
    assert_eq!(ask(&q, &FakeStore::standard(), 10).replies[0].options.status_code(), Some(StatusCode::NotAllowed));
}

#[test]
fn blq_7_7_pipelined_queries_interleave_and_each_ends_with_done() {
    let now = Instant::now();
    let mut s = ServerSession::new(cfg(1, 4), now);
    let mut bytes = frame(&query(11));
    let mut by_mac = query(12);
    by_mac.set_hardware_address(1, &[2, 0, 0, 0, 0, 3]);
    bytes.extend(frame(&by_mac));
    s.receive(&bytes, now);
    let run = drive(&mut s, &FakeStore::standard());
    let xids: Vec<u32> = run.replies.iter().map(|m| m.xid).collect();
    let first_12 = xids.iter().position(|x| *x == 12).unwrap();
    let last_11 = xids.iter().rposition(|x| *x == 11).unwrap();
    assert!(first_12 < last_11, "BLQ-7.7-3: replies interleave: {xids:?}");
    for xid in [11, 12] {
        let mine: Vec<&Message<'_>> = run.replies.iter().filter(|m| m.xid == xid).collect();
        assert_eq!(mine.last().unwrap().message_type(), Some(MessageType::LeaseQueryDone));
        assert_eq!(mine.iter().filter(|m| m.message_type() == Some(MessageType::LeaseQueryDone)).count(), 1);
    }
}

#[test]
fn blq_8_4_1_reads_no_more_queries_than_it_processes() {
    let (mut s, _) = started(cfg(1, 1), &[query(21), query(22)]);
    // The first step of query 21 goes out before 22 is even parsed.
    let first = s.poll_output(T0);
    assert!(matches!(first, Some(Output::Fetch(Fetch { xid: 21, .. }))));
    assert!(!s.rx.is_empty(), "22 stays unread while 21 runs");
    s.page(21, Ok(vec![]));
    let run = drive(&mut s, &FakeStore::standard());
    let order: Vec<u32> = run.replies.iter().map(|m| m.xid).collect();
    let first_22 = order.iter().position(|x| *x == 22).unwrap();
    assert!(order[..first_22].iter().all(|x| *x == 21), "{order:?}");
}

#[test]
fn duplicate_xid_on_a_connection_is_refused() {
    let (mut s, _) = started(cfg(1, 4), &[query(5), query(5)]);
    let run = drive(&mut s, &FakeStore::standard());
    assert!(run.replies.iter().any(|m| m.options.status_code() == Some(StatusCode::MalformedQuery)));
}

/// ALQ-8.1.1-1: an unsupported message type closes the connection.
#[test]
fn blq_u_1_other_message_types_close_the_connection_without_reply() {
    for t in [
        MessageType::Discover,
        MessageType::Request,
        MessageType::LeaseQuery,
        MessageType::LeaseActive,
        MessageType::Unknown(99),
    ] {
        let mut m = query(1);
        m.options.set_message_type(t);
        let run = ask(&m, &FakeStore::standard(), 10);
        assert!(run.replies.is_empty(), "{t}");
        assert_eq!(run.closed, Some(CloseReason::ForbiddenMessage(t)));
    }
}

#[test]
fn dhcptls_is_refused_until_tls_is_configured() {
    let mut m = query(77);
    m.options = crate::Options::new();
    m.options.set_message_type(MessageType::Tls);
    let run = ask(&m, &FakeStore::standard(), 10);
    assert_eq!(run.replies[0].message_type(), Some(MessageType::Tls));
    assert_eq!(run.replies[0].options.status_code(), Some(StatusCode::TlsConnectionRefused));
    assert!(run.closed.is_none());
}

/// A query whose options do not decode — here query-start-time twice, which RFC 3396 joins into one 8-octet
/// option — gets DONE MalformedQuery on its xid (read at its fixed offset), and the connection's other
/// queries go on (BLQ-8.2-6, BLQ-7.7).
#[test]
fn blq_8_2_6_an_undecodable_query_gets_malformed_query_and_the_connection_goes_on() {
    let mut q = query(7);
    q.options.set(code::QUERY_START_TIME, T0.to_be_bytes().to_vec());
    let mut m = Vec::new();
    q.encode_with(&mut m, &crate::EncodeSettings { min_len: 0, ..Default::default() }).unwrap();
    let end = m.iter().rposition(|&b| b == 255).unwrap();
    m.splice(end..end, [code::QUERY_START_TIME, 4, 0, 0, 0, 1]);
    let mut bytes = (m.len() as u16).to_be_bytes().to_vec();
    bytes.extend_from_slice(&m);
    bytes.extend_from_slice(&frame(&query(8)));
    let now = Instant::now();
    let mut s = ServerSession::new(cfg(100, 4), now);
    s.receive(&bytes, now);
    let run = drive(&mut s, &FakeStore::standard());
    assert_eq!(run.closed, None, "the connection stays open");
    let done7: Vec<_> = run.replies.iter().filter(|r| r.xid == 7).collect();
    assert_eq!(done7.len(), 1);
    assert_eq!(done7[0].message_type(), Some(MessageType::LeaseQueryDone));
    assert_eq!(done7[0].options.status_code(), Some(StatusCode::MalformedQuery));
    let last8 = run.replies.iter().rfind(|r| r.xid == 8).unwrap();
    assert_eq!(last8.message_type(), Some(MessageType::LeaseQueryDone), "the other query runs to its end");
    assert!(run.replies.iter().filter(|r| r.xid == 8).count() > 1);
}

#[test]
fn bad_frames_close_the_connection() {
    let now = Instant::now();
    for bytes in [vec![0u8, 0], vec![0xff, 0xff], {
        let mut f = frame(&query(1));
        f[2 + 236] = 0; // magic cookie
        f
    }] {
        let mut s = ServerSession::new(cfg(10, 4), now);
        s.receive(&bytes, now);
        assert!(matches!(
            drive(&mut s, &FakeStore::standard()).closed,
            Some(CloseReason::BadFrame(_) | CloseReason::BadMessage(_))
        ));
    }
}

#[test]
fn blq_8_5_2_data_timeout_closes_a_silent_or_blocked_connection() {
    let t0 = Instant::now();
    let mut s = ServerSession::new(cfg(10, 4), t0);
    // Half a frame, then silence (slowloris).
    s.receive(&[0x01], t0);
    assert_eq!(s.poll_timeout(), Some(t0 + BULK_LQ_DATA_TIMEOUT));
    s.handle_timeout(t0 + BULK_LQ_DATA_TIMEOUT - Duration::from_secs(1));
    assert!(drive(&mut s, &FakeStore::standard()).closed.is_none());
    // Progress moves the deadline.
    s.receive(&[0x2c], t0 + Duration::from_secs(100));
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(400)));
    s.handle_timeout(t0 + Duration::from_secs(400));
    assert_eq!(drive(&mut s, &FakeStore::standard()).closed, Some(CloseReason::Timeout));
    assert!(s.is_closed());
}

#[test]
fn blq_8_5_4_shutdown_terminates_running_queries() {
    let (mut s, _) = started(cfg(1, 4), &[query(31)]);
    assert!(matches!(s.poll_output(T0), Some(Output::Fetch(_))));
    s.shutdown();
    let run = drive(&mut s, &FakeStore::standard());
    assert_eq!(run.replies.last().unwrap().options.status_code(), Some(StatusCode::QueryTerminated));
    assert_eq!(run.closed, Some(CloseReason::Shutdown));
}

#[test]
fn blq_8_2_3_store_failure_ends_the_query_with_unspecfail() {
    let (mut s, _) = started(cfg(1, 4), &[query(41)]);
    let Some(Output::Fetch(f)) = s.poll_output(T0) else { panic!("a fetch") };
    s.page(f.xid, Err(FetchError::Store("disk on fire".into())));
    let run = drive(&mut s, &FakeStore::standard());
    assert_eq!(run.replies[0].options.status_code(), Some(StatusCode::UnspecFail));
}

#[test]
fn output_is_produced_a_page_at_a_time() {
    let now = Instant::now();
    let mut c = cfg(2, 4);
    c.configured = Arc::from(vec![(0x0a00_0000, 0x0a00_ffff)]);
    let mut s = ServerSession::new(c, now);
    s.receive(&frame(&query(1)), now);
    let mut biggest = 0;
    let mut total = 0;
    while let Some(out) = s.poll_output(T0) {
        match out {
            Output::Transmit(b) => {
                biggest = biggest.max(b.len());
                total += 1;
            }
            Output::Fetch(f) => s.page(f.xid, Ok(vec![])),
            Output::Close(_) => break,
            Output::FetchChanges(_) | Output::StartTls => unreachable!(),
        }
    }
    assert!(biggest < 2 * 400, "one step holds at most page_size messages: {biggest}");
    assert!(total > 30_000);
}

#[test]
fn data_source_remote_is_reported() {
    let mut store = FakeStore::standard();
    store.0[0].binding.data_source = DataSource::REMOTE;
    let run = ask(&query(1), &store, 10);
    let m = run.replies.iter().find(|m| m.ciaddr == ip(3)).unwrap();
    assert_eq!(m.options.data_source(), Some(DataSource::REMOTE));
}

// ---- Active Leasequery (RFC 7724 §7.4, §8.2), insecure mode -------------------------------------------

fn active_cfg(max_backlog: usize) -> ServerConfig {
    let mut c = cfg(100, 4);
    c.active = Some(ActiveConfig { max_backlog, ..ActiveConfig::default() });
    c
}

fn active_query(xid: u32) -> Message<'static> {
    let mut q = Message::new(Op::BootRequest);
    q.xid = xid;
    q.options.set_message_type(MessageType::ActiveLeaseQuery);
    q.options.set(code::PARAMETER_REQUEST_LIST, vec![152, 51, 153, 91, 156]);
    q
}

fn change(last: u8, state: DhcpState, seq: u64) -> BindingChange {
    let mut c = binding(last, state, last, T0 - 1);
    c.seq = seq;
    c
}

/// A session whose Active query (xid 9) is accepted and caught up: what it sends next are live changes.
fn streaming(max_backlog: usize) -> (ServerSession, Instant) {
    let (mut s, now) = started(active_cfg(max_backlog), &[active_query(9)]);
    drive_active(&mut s, &mut vec![]);
    (s, now)
}

fn drive_active(s: &mut ServerSession, pages: &mut Vec<(Vec<BindingChange>, bool)>) -> Run {
    drive_with(s, &FakeStore(Vec::new()), pages)
}

fn status_of(m: &Message<'_>) -> Option<StatusCode> {
    (m.message_type() == Some(MessageType::LeaseQueryStatus)).then(|| m.options.status_code()).flatten()
}

#[test]
fn alq_8_1_2_active_leasequery_is_off_unless_configured() {
    let run = ask(&active_query(1), &FakeStore::standard(), 10);
    assert!(run.replies.is_empty());
    assert_eq!(run.closed, Some(CloseReason::ForbiddenMessage(MessageType::ActiveLeaseQuery)));
}

#[test]
fn alq_7_3_2_and_8_2_6_malformed_active_queries_are_refused_and_closed() {
    let now = Instant::now();
    type Edit = Box<dyn Fn(&mut Message<'static>)>;
    let variants: Vec<Edit> = vec![
        Box::new(|q| q.ciaddr = ip(3)),
        Box::new(|q| q.set_hardware_address(1, &[2, 0, 0, 0, 0, 3])),
        Box::new(|q| q.options.set(code::CLIENT_IDENTIFIER, vec![1, 3])),
        Box::new(|q| q.options.set_u32(code::QUERY_END_TIME, T0)),
    ];
    for v in variants {
        let mut q = active_query(7);
        v(&mut q);
        let mut s = ServerSession::new(active_cfg(100), now);
        s.receive(&frame(&q), now);
        let run = drive_active(&mut s, &mut vec![]);
        assert_eq!(run.replies.len(), 1);
        assert_eq!(status_of(&run.replies[0]), Some(StatusCode::MalformedQuery));
        assert_eq!(run.replies[0].xid, 7);
        assert_eq!(run.closed, Some(CloseReason::ActiveRefused));
    }
}

#[test]
fn alq_7_4_live_changes_are_sent_with_the_query_xid_and_base_time() {
    let (mut s, _) = started(active_cfg(100), &[active_query(9)]);
    assert!(drive_active(&mut s, &mut vec![]).replies.is_empty(), "no query-start-time: nothing until a change");
    assert!(s.is_active());
    s.live(change(3, DhcpState::Active, 10));
    s.live(change(4, DhcpState::Released, 11));
    let run = drive_active(&mut s, &mut vec![]);
    assert_eq!(run.replies.len(), 2);
    for m in &run.replies {
        assert_eq!(m.xid, 9, "ALQ-7.1-3");
        // ALQ-7.3-5: base-time in every message; for a live change it is the change's commit time, so a
        // requestor never saves a time past a change still queued.
        assert_eq!(m.options.base_time(), Some(T0 - 1), "ALQ-7.3-5");
        assert!(!m.options.contains(code::ASSOCIATED_IP), "ALQ-7.4-14");
        assert!(!m.ciaddr.is_unspecified(), "ALQ-7.4-5");
    }
    assert_eq!(run.replies[0].message_type(), Some(MessageType::LeaseActive));
    assert_eq!(run.replies[1].message_type(), Some(MessageType::LeaseUnassigned));
    assert!(run.replies[0].options.contains(code::SERVER_IDENTIFIER));
    assert!(!run.replies[1].options.contains(code::SERVER_IDENTIFIER));
}

#[test]
fn alq_6_3_a_backlog_coalesces_by_address_latest_state_wins() {
    let (mut s, _) = streaming(100);
    s.live(change(3, DhcpState::Active, 10));
    s.live(change(3, DhcpState::Released, 11));
    assert_eq!(s.backlog(), 1);
    let run = drive_active(&mut s, &mut vec![]);
    assert_eq!(run.replies.len(), 1);
    let stats = s.take_stats();
    assert_eq!((stats.live_sent, stats.coalesced), (1, 1));
    assert_eq!(s.take_stats(), ActiveStats::default(), "taken counters reset");
    assert_eq!(run.replies[0].options.dhcp_state(), Some(Ok(DhcpState::Released)));
}

/// A session with an Active query with query-start-time T0 - 600 read, asking for its first catch-up page.
fn catching_up(c: ServerConfig) -> ServerSession {
    let now = Instant::now();
    let mut s = ServerSession::new(c, now);
    let mut q = active_query(5);
    q.options.set_u32(code::QUERY_START_TIME, T0 - 600);
    s.receive(&frame(&q), now);
    assert!(matches!(s.poll_output(T0), Some(Output::FetchChanges(_))));
    s
}

#[test]
fn alq_7_4_1_catch_up_then_catch_up_complete_with_live_changes_interleaved() {
    let mut c = active_cfg(100);
    c.page_size = 2;
    // The query is read on the first poll; a change committed after that is live.
    let mut s = catching_up(c);
    s.live(change(9, DhcpState::Active, 30));
    s.changes_page(Ok((vec![change(3, DhcpState::Active, 1), change(4, DhcpState::Expired, 2)], true)));
    let run = drive_active(&mut s, &mut vec![(vec![change(5, DhcpState::Active, 3)], true)]);
    let ips: Vec<Ipv4Addr> = run.replies.iter().filter(|m| status_of(m).is_none()).map(|m| m.ciaddr).collect();
    assert_eq!(ips, vec![ip(3), ip(4), ip(9), ip(5)], "catch-up and live interleave (ALQ-8.2-8)");
    let last = run.replies.last().unwrap();
    assert_eq!(status_of(last), Some(StatusCode::CatchUpComplete), "ALQ-8.2-9");
    assert_eq!(last.options.base_time(), Some(T0 - 1), "a second early: changes still on their way to the feed");
    assert_eq!(run.replies.iter().filter(|m| status_of(m).is_some()).count(), 1, "sent once");
    let stats = s.take_stats();
    assert_eq!((stats.catch_up_sent, stats.catch_up_complete, stats.live_sent), (3, 1, 1));
    assert!(run.closed.is_none());
    // After catch-up, live changes keep flowing.
    s.live(change(6, DhcpState::Active, 31));
    assert_eq!(drive_active(&mut s, &mut vec![]).replies[0].ciaddr, ip(6));
}

/// ALQ-8.2-9 / ALQ-7.4.1-9: a change still on its way to the connection at the end of catch-up (committed at
/// T0 - 30, say, behind a slow disk) keeps CatchUpComplete's base-time below it, so a requestor that saves that
/// base-time and reconnects before the change arrives still catches it up.
#[test]
fn alq_8_2_9_catch_up_complete_stays_below_a_change_still_on_its_way() {
    let mut s = catching_up(active_cfg(100));
    s.undelivered_floor(T0 - 30);
    s.changes_page(Ok((vec![change(3, DhcpState::Active, 1)], true)));
    let run = drive_active(&mut s, &mut vec![]);
    let last = run.replies.last().unwrap();
    assert_eq!(status_of(last), Some(StatusCode::CatchUpComplete));
    assert_eq!(last.options.base_time(), Some(T0 - 31));
}

#[test]
fn alq_7_4_6_a_catch_up_row_older_than_a_live_change_is_not_sent_after_it() {
    let mut s = catching_up(active_cfg(100));
    // The page was read (address 3 ACTIVE at seq 1); then address 3 was released (seq 2) and went out live.
    s.live(change(3, DhcpState::Released, 2));
    let mut out = Vec::new();
    while let Some(Output::Transmit(b)) = s.poll_output(T0) {
        out.extend(b);
    }
    assert!(!out.is_empty(), "the live change went out while the page was being read");
    s.changes_page(Ok((vec![change(3, DhcpState::Active, 1), change(4, DhcpState::Active, 1)], true)));
    let run = drive_active(&mut s, &mut vec![]);
    let (body, _) = FrameDecoder::default().decode(&out).unwrap().unwrap();
    let live = Message::decode(body).unwrap();
    let sent: Vec<(Ipv4Addr, DhcpState)> = std::iter::once(&live)
        .chain(run.replies.iter())
        .filter(|m| status_of(m).is_none())
        .map(|m| (m.ciaddr, m.options.dhcp_state().unwrap().unwrap()))
        .collect();
    assert_eq!(sent, vec![(ip(3), DhcpState::Released), (ip(4), DhcpState::Active)], "no stale ACTIVE for .3 after");
}

/// BLQ-6.2.3-2 (a documented deviation, docs/conformance.md): a live change carries its commit time as
/// base-time, not the current time, so a saved base-time never passes a change still queued.
#[test]
fn alq_7_4_9_live_changes_go_out_in_commit_order_with_their_commit_time() {
    let (mut s, _) = streaming(100);
    // Queued out of address order, at different times; .3 changes twice (coalesced, moves to the back).
    let mut c = |last: u8, seq: u64, time: u32| {
        let mut c = change(last, DhcpState::Active, seq);
        c.time = time;
        s.live(c);
    };
    c(3, 1, T0 - 30);
    c(7, 2, T0 - 20);
    c(2, 3, T0 - 10);
    c(3, 4, T0 - 5);
    let run = drive_active(&mut s, &mut vec![]);
    let sent: Vec<(Ipv4Addr, Option<u32>)> = run.replies.iter().map(|m| (m.ciaddr, m.options.base_time())).collect();
    assert_eq!(sent, vec![(ip(7), Some(T0 - 20)), (ip(2), Some(T0 - 10)), (ip(3), Some(T0 - 5))]);
}

#[test]
fn alq_7_4_1_4_data_missing_when_history_does_not_reach_back() {
    let now = Instant::now();
    let mut s = ServerSession::new(active_cfg(100), now);
    let mut q = active_query(5);
    q.options.set_u32(code::QUERY_START_TIME, T0 - 600);
    s.receive(&frame(&q), now);
    let run = drive_active(&mut s, &mut vec![(vec![], false)]);
    assert_eq!(run.replies.len(), 1, "DataMissing at once, before any data");
    assert_eq!(status_of(&run.replies[0]), Some(StatusCode::DataMissing));
    assert_eq!(run.replies[0].options.base_time(), Some(T0), "base-time = now");
    // Live only from here.
    s.live(change(3, DhcpState::Active, 40));
    let run = drive_active(&mut s, &mut vec![]);
    assert_eq!(run.replies.len(), 1);
    assert_eq!(run.replies[0].message_type(), Some(MessageType::LeaseActive));
}

#[test]
fn alq_7_4_1_10_data_missing_when_the_horizon_passes_during_catch_up() {
    let now = Instant::now();
    let mut c = active_cfg(100);
    c.page_size = 1;
    let mut s = ServerSession::new(c, now);
    let mut q = active_query(5);
    q.options.set_u32(code::QUERY_START_TIME, T0 - 600);
    s.receive(&frame(&q), now);
    let run = drive_active(&mut s, &mut vec![(vec![change(3, DhcpState::Active, 1)], true), (vec![], false)]);
    let statuses: Vec<StatusCode> = run.replies.iter().filter_map(status_of).collect();
    assert_eq!(statuses, vec![StatusCode::DataMissing]);
    assert_eq!(run.replies.len(), 2);
}

#[test]
fn alq_7_4_2_connection_active_after_the_idle_timeout_only() {
    let t0 = Instant::now();
    let mut s = ServerSession::new(active_cfg(100), t0);
    s.receive(&frame(&active_query(9)), t0);
    drive_active(&mut s, &mut vec![]);
    assert_eq!(s.poll_timeout(), Some(t0 + ACTIVE_LQ_IDLE_TIMEOUT));
    s.handle_timeout(t0 + Duration::from_secs(59));
    assert!(drive_active(&mut s, &mut vec![]).replies.is_empty());
    s.handle_timeout(t0 + Duration::from_secs(60));
    let run = drive_active(&mut s, &mut vec![]);
    assert_eq!(run.replies.len(), 1);
    assert_eq!(status_of(&run.replies[0]), Some(StatusCode::ConnectionActive));
    assert_eq!(run.replies[0].xid, 9);
    // Sending data resets the idle timer.
    s.transmitted(100, t0 + Duration::from_secs(90));
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(150)));
    // An idle Active connection whose requestor reads is never closed by the data timeout: keep-alives are
    // progress.
    for k in 1..=10u64 {
        let t = t0 + Duration::from_secs(90 + 60 * k);
        s.handle_timeout(t);
        assert!(drive_active(&mut s, &mut vec![]).closed.is_none());
        s.transmitted(50, t);
    }
}

#[test]
fn alq_8_2_1_write_timeout_is_the_send_timeout_on_active_connections() {
    let now = Instant::now();
    let mut s = ServerSession::new(active_cfg(100), now);
    assert_eq!(s.write_timeout(), BULK_LQ_DATA_TIMEOUT);
    s.receive(&frame(&active_query(9)), now);
    drive_active(&mut s, &mut vec![]);
    assert_eq!(s.write_timeout(), ACTIVE_LQ_SEND_TIMEOUT);
}

/// ALQ-8.4-4/5: a requestor too slow for the live stream (its backlog past `max-backlog`, or the feed lagging)
/// is closed, and told so first with QueryTerminated — whose base-time stays below every change it did not get,
/// so catching up from it loses nothing — written only if the socket takes it at once.
#[test]
fn alq_8_4_5_a_requestor_that_falls_behind_gets_query_terminated_then_is_closed() {
    let (mut s, now) = streaming(3);
    let sent = |c: &BindingChange| c.time;
    let oldest = (10..14).map(|i| sent(&change(i, DhcpState::Active, i as u64))).min().unwrap();
    for i in 10..14 {
        s.live(change(i, DhcpState::Active, i as u64));
    }
    assert_eq!(s.write_timeout(), leasewire_proto_farewell());
    let run = drive_active(&mut s, &mut vec![]);
    assert_eq!(run.closed, Some(CloseReason::SlowRequestor));
    let last = run.replies.last().expect("a farewell");
    assert_eq!((last.xid, status_of(last)), (9, Some(StatusCode::QueryTerminated)));
    assert!(last.options.base_time().unwrap() < oldest, "below the oldest change not delivered");
    let mut s = ServerSession::new(active_cfg(3), now);
    s.receive(&frame(&active_query(9)), now);
    drive_active(&mut s, &mut vec![]);
    s.live(change(3, DhcpState::Active, 1));
    s.lagged();
    let run = drive_active(&mut s, &mut vec![]);
    assert_eq!(run.closed, Some(CloseReason::SlowRequestor));
    let last = run.replies.last().expect("a farewell");
    assert_eq!(status_of(last), Some(StatusCode::QueryTerminated));
    assert!(last.options.base_time().unwrap() < change(3, DhcpState::Active, 1).time);
}

/// ALQ-8.4-6: when the requestor closes its end of an Active connection, the server closes its own.
#[test]
fn alq_8_4_6_the_server_closes_when_the_requestor_does() {
    let (mut s, _) = streaming(100);
    s.peer_closed();
    assert_eq!(drive_active(&mut s, &mut vec![]).closed, Some(CloseReason::PeerClosed));
    assert!(s.is_closed());
}

fn leasewire_proto_farewell() -> Duration {
    super::SLOW_REQUESTOR_FAREWELL
}

#[test]
fn alq_7_4_12_shutdown_sends_query_terminated_last_then_closes() {
    let (mut s, _) = streaming(100);
    s.live(change(3, DhcpState::Active, 10));
    s.shutdown();
    let run = drive_active(&mut s, &mut vec![]);
    let last = run.replies.last().unwrap();
    assert_eq!(status_of(last), Some(StatusCode::QueryTerminated));
    assert_eq!(last.options.base_time(), Some(T0), "ALQ-7.4-11");
    assert_eq!(run.closed, Some(CloseReason::Shutdown));
}

#[test]
fn alq_8_3_1_nothing_else_runs_on_an_active_connection() {
    let (mut s, now) = started(active_cfg(100), &[active_query(9), query(10)]);
    let run = drive_active(&mut s, &mut vec![]);
    assert_eq!(run.replies.len(), 1);
    assert_eq!(run.replies[0].message_type(), Some(MessageType::LeaseQueryDone));
    assert_eq!(run.replies[0].options.status_code(), Some(StatusCode::NotAllowed));
    assert!(run.closed.is_none(), "the active query goes on");
    s.receive(&frame(&active_query(11)), now);
    let run = drive_active(&mut s, &mut vec![]);
    assert_eq!(status_of(&run.replies[0]), Some(StatusCode::NotAllowed));
    assert_eq!(run.closed, Some(CloseReason::ActiveRefused));
}

// ---- DHCPTLS negotiation (RFC 7724 §8.1) -------------------------------------------------------------------

fn tls_request(xid: u32) -> Message<'static> {
    let mut m = Message::new(Op::BootRequest);
    m.xid = xid;
    m.options.set_message_type(MessageType::Tls);
    m
}

fn secure_cfg(policy: TlsPolicy) -> ServerConfig {
    let mut c = active_cfg(100);
    c.tls = policy;
    c
}

#[test]
fn alq_8_1_10_dhcptls_is_answered_without_status_then_the_handshake_starts() {
    for policy in [TlsPolicy::Offer, TlsPolicy::Require] {
        let now = Instant::now();
        let mut s = ServerSession::new(secure_cfg(policy), now);
        let mut req = tls_request(3);
        req.options.set(200, vec![1, 2, 3]); // ALQ-8.1-12: options are ignored
        s.receive(&frame(&req), now);
        let Some(Output::Transmit(bytes)) = s.poll_output(T0) else { panic!("the DHCPTLS answer") };
        let (body, _) = FrameDecoder::default().decode(&bytes).unwrap().unwrap();
        let m = Message::decode(body).unwrap();
        assert_eq!((m.message_type(), m.xid), (Some(MessageType::Tls), 3));
        assert!(!m.options.contains(code::STATUS_CODE), "no status means: go ahead with TLS");
        assert!(!s.wants_read(), "nothing is read until the handshake owns the stream");
        assert!(matches!(s.poll_output(T0), Some(Output::StartTls)));
        assert!(s.poll_output(T0).is_none(), "quiet while the driver runs the handshake");
        s.tls_established();
        assert!(s.is_tls() && s.wants_read());
        s.receive(&frame(&active_query(4)), now);
        assert!(drive_active(&mut s, &mut vec![]).closed.is_none());
        assert!(s.is_active(), "the active query runs inside TLS");
    }
}

#[test]
fn alq_8_1_9_secure_mode_closes_anything_that_does_not_start_with_dhcptls() {
    let now = Instant::now();
    for first in [active_query(1), query(1)] {
        let mut s = ServerSession::new(secure_cfg(TlsPolicy::Require), now);
        s.receive(&frame(&first), now);
        let run = drive_active(&mut s, &mut vec![]);
        assert!(run.replies.is_empty());
        assert_eq!(run.closed, Some(CloseReason::TlsRequired));
    }
}

#[test]
fn dhcptls_only_as_the_first_message_and_nothing_may_follow_it_early() {
    let (mut s, now) = started(secure_cfg(TlsPolicy::Offer), &[query(1), tls_request(2)]);
    let run = drive(&mut s, &FakeStore::standard());
    assert_eq!(run.closed, Some(CloseReason::ForbiddenMessage(MessageType::Tls)));

    let mut s = ServerSession::new(secure_cfg(TlsPolicy::Require), now);
    let mut bytes = frame(&tls_request(2));
    bytes.extend_from_slice(&[0x16, 0x03, 0x01]); // a ClientHello sent before our answer
    s.receive(&bytes, now);
    let run = drive_active(&mut s, &mut vec![]);
    assert_eq!(run.closed, Some(CloseReason::TlsRequired));
}

// ---- Pre-authentication deadline (RFC 6926 §9, RFC 7724 §9: partial and no queries) -------------------------

const PRE_AUTH: Duration = Duration::from_secs(10);

fn pre_auth_cfg(policy: TlsPolicy) -> ServerConfig {
    let mut c = secure_cfg(policy);
    c.pre_auth_timeout = Some(PRE_AUTH);
    c
}

#[test]
fn pre_auth_timeout_closes_a_trickling_connection_the_data_timeout_would_keep() {
    let t0 = Instant::now();
    let mut s = ServerSession::new(pre_auth_cfg(TlsPolicy::Refuse), t0);
    // A slowloris peer: one octet of a frame every 3 s is progress, so BULK_LQ_DATA_TIMEOUT never fires...
    let bytes = frame(&query(1));
    for (i, b) in bytes.iter().take(3).enumerate() {
        let now = t0 + Duration::from_secs(3 * i as u64);
        s.receive(std::slice::from_ref(b), now);
        assert!(drive(&mut s, &FakeStore::standard()).closed.is_none());
        assert_eq!(s.poll_timeout(), Some(t0 + PRE_AUTH), "the deadline does not move with progress");
        s.handle_timeout(now);
        assert!(drive(&mut s, &FakeStore::standard()).closed.is_none(), "not yet at {i}");
    }
    // ...but the pre-authentication deadline counts from the accept and does.
    s.handle_timeout(t0 + PRE_AUTH);
    let run = drive(&mut s, &FakeStore::standard());
    assert_eq!(run.closed, Some(CloseReason::PreAuthTimeout));
    assert!(run.replies.is_empty(), "nothing is said to a peer that never asked");
}

#[test]
fn an_accepted_query_ends_the_pre_auth_phase() {
    let t0 = Instant::now();
    let mut s = ServerSession::new(pre_auth_cfg(TlsPolicy::Refuse), t0);
    assert!(!s.is_admitted());
    s.receive(&frame(&query(1)), t0 + Duration::from_secs(1));
    let run = drive(&mut s, &FakeStore::standard());
    assert!(run.closed.is_none() && s.is_admitted() && s.pre_auth_deadline().is_none());
    s.handle_timeout(t0 + PRE_AUTH * 2);
    assert!(drive(&mut s, &FakeStore::standard()).closed.is_none(), "only the data timeout applies now");
    s.handle_timeout(t0 + Duration::from_secs(1) + BULK_LQ_DATA_TIMEOUT);
    assert_eq!(drive(&mut s, &FakeStore::standard()).closed, Some(CloseReason::Timeout));
}

#[test]
fn a_malformed_query_does_not_admit() {
    let t0 = Instant::now();
    let mut s = ServerSession::new(pre_auth_cfg(TlsPolicy::Refuse), t0);
    let mut q = query(1);
    q.ciaddr = ip(3); // BLQ-8.2-6: DONE with MalformedQuery, the connection stays
    s.receive(&frame(&q), t0);
    let run = drive(&mut s, &FakeStore::standard());
    assert!(run.closed.is_none() && !s.is_admitted());
    s.handle_timeout(t0 + PRE_AUTH);
    assert_eq!(drive(&mut s, &FakeStore::standard()).closed, Some(CloseReason::PreAuthTimeout));
}

#[test]
fn in_secure_mode_tls_alone_does_not_admit_a_query_inside_it_does() {
    let t0 = Instant::now();
    let mut s = ServerSession::new(pre_auth_cfg(TlsPolicy::Require), t0);
    s.receive(&frame(&tls_request(1)), t0);
    drive_active(&mut s, &mut vec![]); // the answer, then the (fake) handshake
    assert!(s.is_tls() && !s.is_admitted());
    assert_eq!(s.pre_auth_deadline(), Some(t0 + PRE_AUTH), "the driver bounds the handshake by this");
    s.receive(&frame(&active_query(2)), t0 + Duration::from_secs(2));
    drive_active(&mut s, &mut vec![]);
    assert!(s.is_active() && s.is_admitted());
    s.handle_timeout(t0 + PRE_AUTH);
    assert!(drive_active(&mut s, &mut vec![]).closed.is_none());
}

// ---- requirements named one by one ---------------------------------------------------------------------

/// BLQ-8.3-10: the query's option 55 governs every reply to it, and an option that flows both ways (125)
/// comes back as the client sent it when asked for. Two pipelined queries with different lists each get
/// their own.
#[test]
fn blq_8_3_10_each_query_s_parameter_request_list_governs_all_its_replies() {
    let mut store = FakeStore::standard();
    for c in &mut store.0 {
        c.binding.options = vec![(12, b"pc".to_vec()), (125, vec![0, 0, 0x0d, 0xe9, 2, 1, c.binding.ip.octets()[3]])];
    }
    let now = Instant::now();
    let mut c = cfg(2, 4);
    c.policy.disclose = vec![12, 125];
    let mut s = ServerSession::new(c, now);
    let mut with_125 = query(41);
    with_125.options.set(code::PARAMETER_REQUEST_LIST, vec![152, 125, 51]);
    let mut without = query(42);
    without.options.set(code::PARAMETER_REQUEST_LIST, vec![152, 12, 51]);
    let mut bytes = frame(&with_125);
    bytes.extend(frame(&without));
    s.receive(&bytes, now);
    let run = drive(&mut s, &store);
    let bindings = |xid| {
        run.replies
            .iter()
            .filter(move |m| m.xid == xid && m.message_type() != Some(MessageType::LeaseQueryDone))
            .collect::<Vec<_>>()
    };
    assert_eq!(bindings(41).len(), 11, "10 configured addresses and the record outside them");
    for m in bindings(41) {
        let sent = store.0.iter().find(|c| c.binding.ip == m.ciaddr).and_then(|c| c.binding.option(125));
        assert_eq!(m.options.get(125), sent, "{}: the client's own option 125", m.ciaddr);
        assert!(!m.options.contains(12), "not asked for");
    }
    assert!(bindings(41).iter().any(|m| m.options.contains(125)));
    for m in bindings(42) {
        assert!(!m.options.contains(125), "not asked for by this query");
    }
    assert!(bindings(42).iter().any(|m| m.options.get(12) == Some(&b"pc"[..])));
}

/// ALQ-3-9: options configured as withheld never appear in Active replies, even when the query's parameter
/// request list asks for them (catch-up and live alike).
#[test]
fn alq_3_9_withheld_options_stay_out_of_active_replies_the_query_asks_for() {
    let mut c = active_cfg(100);
    c.policy.disclose = vec![12];
    c.policy.withhold = vec![code::RELAY_AGENT_INFO, 12];
    let now = Instant::now();
    let mut s = ServerSession::new(c, now);
    let mut q = active_query(5);
    q.options.set(code::PARAMETER_REQUEST_LIST, vec![152, 51, 153, 91, 156, 61, 82, 12]);
    q.options.set_u32(code::QUERY_START_TIME, T0 - 600);
    s.receive(&frame(&q), now);
    assert!(matches!(s.poll_output(T0), Some(Output::FetchChanges(_))));
    let mut caught_up = change(3, DhcpState::Active, 1);
    caught_up.binding.options = vec![(12, b"laptop".to_vec())];
    let mut live = change(4, DhcpState::Active, 2);
    live.binding.options = vec![(12, b"phone".to_vec())];
    s.live(live);
    s.changes_page(Ok((vec![caught_up], true)));
    let run = drive_active(&mut s, &mut vec![]);
    let bindings: Vec<_> = run.replies.iter().filter(|m| m.message_type() == Some(MessageType::LeaseActive)).collect();
    assert_eq!(bindings.len(), 2);
    for m in bindings {
        assert!(!m.options.contains(code::RELAY_AGENT_INFO) && !m.options.contains(12), "{:?}", m.options);
        assert!(m.options.client_identifier().is_some(), "what is not withheld is sent");
    }
    // Without the withholding the same query gets both.
    let mut c = active_cfg(100);
    c.policy.disclose = vec![12];
    let mut s = ServerSession::new(c, now);
    s.receive(&frame(&q), now);
    assert!(matches!(s.poll_output(T0), Some(Output::FetchChanges(_))));
    let mut live = change(4, DhcpState::Active, 2);
    live.binding.options = vec![(12, b"phone".to_vec())];
    s.live(live);
    s.changes_page(Ok((vec![], true)));
    let run = drive_active(&mut s, &mut vec![]);
    let m = run.replies.iter().find(|m| m.message_type() == Some(MessageType::LeaseActive)).unwrap();
    assert!(m.options.contains(code::RELAY_AGENT_INFO) && m.options.contains(12));
}

/// ALQ-8.2-2: an error while processing the Active query — at the start (refused) or later (the store fails
/// during catch-up) — is a DHCPLEASEQUERYSTATUS with an error status, then the connection is closed.
#[test]
fn alq_8_2_2_an_error_during_the_active_query_is_a_status_then_a_close() {
    let mut s = catching_up(active_cfg(100));
    s.changes_page(Err(FetchError::Store("disk I/O error".into())));
    let run = drive_active(&mut s, &mut vec![]);
    assert_eq!(run.replies.len(), 1);
    let status = status_of(&run.replies[0]).expect("a status");
    assert_ne!(status, StatusCode::Success);
    assert_eq!(run.replies[0].xid, 5);
    assert_eq!(run.closed, Some(CloseReason::StoreFailed));
    // At the start: a second Active query on the connection.
    let (mut s, _) = started(active_cfg(100), &[active_query(6), active_query(7)]);
    let run = drive_active(&mut s, &mut vec![]);
    let last = run.replies.last().expect("a status");
    assert_eq!((last.xid, status_of(last)), (7, Some(StatusCode::NotAllowed)));
    assert_eq!(run.closed, Some(CloseReason::ActiveRefused));
}

/// BLQ-7.7-2: the number of queries processed at once on a connection is a setting; only that many are read,
/// and the next is read when one finishes.
#[test]
fn blq_7_7_2_only_max_queries_are_read_and_the_next_when_one_finishes() {
    let now = Instant::now();
    let mut s = ServerSession::new(cfg(1, 2), now);
    let mut bytes = Vec::new();
    for xid in 51..=53 {
        bytes.extend(frame(&query(xid)));
    }
    s.receive(&bytes, now);
    // Two fetches for the two queries read; the third stays in the buffer.
    let Some(Output::Fetch(f)) = s.poll_output(T0) else { panic!("a fetch") };
    assert_eq!(f.xid, 51);
    assert_eq!(s.queries.len(), 2);
    assert_eq!(s.rx.len(), frame(&query(53)).len(), "53 unread while 51 and 52 run");
    s.page(51, Ok(vec![]));
    let run = drive(&mut s, &FakeStore(Vec::new()));
    let dones: Vec<u32> =
        run.replies.iter().filter(|m| m.message_type() == Some(MessageType::LeaseQueryDone)).map(|m| m.xid).collect();
    assert_eq!(dones.len(), 3, "53 was read once a query finished: {dones:?}");
    assert!(s.rx.is_empty());
    // With a limit of 3 all three are read at once.
    let mut s = ServerSession::new(cfg(1, 3), now);
    s.receive(&bytes, now);
    assert!(matches!(s.poll_output(T0), Some(Output::Fetch(_))));
    assert_eq!((s.queries.len(), s.rx.len()), (3, 0));
}

/// ALQ-8.1-18: a connection that blocks while a query is being read (half a frame, then nothing) is closed
/// after BULK_LQ_DATA_TIMEOUT, also after earlier queries were answered (the pre-authentication deadline no
/// longer applies then).
#[test]
fn alq_8_1_18_a_query_read_that_stalls_is_closed_after_the_data_timeout() {
    let t0 = Instant::now();
    let mut c = cfg(10, 4);
    c.pre_auth_timeout = Some(Duration::from_secs(10));
    let mut s = ServerSession::new(c, t0);
    s.receive(&frame(&query(1)), t0);
    let run = drive(&mut s, &FakeStore::standard());
    assert_eq!(run.replies.last().unwrap().message_type(), Some(MessageType::LeaseQueryDone));
    s.transmitted(1, t0);
    let partial = frame(&query(2));
    let t1 = t0 + Duration::from_secs(5);
    s.receive(&partial[..20], t1);
    assert_eq!(s.poll_timeout(), Some(t1 + BULK_LQ_DATA_TIMEOUT));
    s.handle_timeout(t1 + BULK_LQ_DATA_TIMEOUT - Duration::from_secs(1));
    assert!(drive(&mut s, &FakeStore::standard()).closed.is_none(), "not before the timeout");
    s.handle_timeout(t1 + BULK_LQ_DATA_TIMEOUT);
    assert_eq!(drive(&mut s, &FakeStore::standard()).closed, Some(CloseReason::Timeout));
}

/// BLQ-9-6: a requestor restricted to certain query types gets DONE with NotAllowed for the others (and the
/// connection goes on), and an Active query refused with a status and a close.
#[test]
fn blq_9_6_queries_of_a_kind_the_requestor_may_not_make_are_not_allowed() {
    let now = Instant::now();
    let mut c = active_cfg(100);
    c.query_types = QueryTypes::MAC.with(QueryTypes::CLIENT_ID);
    let mut s = ServerSession::new(c.clone(), now);
    let mut by_mac = query(61);
    by_mac.set_hardware_address(1, &[2, 0, 0, 0, 0, 3]);
    let mut bytes = frame(&query(60));
    bytes.extend(frame(&by_mac));
    s.receive(&bytes, now);
    let run = drive(&mut s, &FakeStore::standard());
    let done_of =
        |xid| run.replies.iter().find(|m| m.xid == xid && m.message_type() == Some(MessageType::LeaseQueryDone));
    assert_eq!(done_of(60).unwrap().options.status_code(), Some(StatusCode::NotAllowed), "all addresses: refused");
    assert_eq!(run.replies.iter().filter(|m| m.xid == 60).count(), 1, "nothing but the refusal");
    assert_eq!(done_of(61).unwrap().options.status_code(), None, "by MAC: answered");
    assert_eq!(run.replies.iter().filter(|m| m.xid == 61).count(), 3, "its two bindings and DONE");
    assert!(run.closed.is_none());
    // Active Leasequery not in the set.
    let mut s = ServerSession::new(c, now);
    s.receive(&frame(&active_query(62)), now);
    let run = drive_active(&mut s, &mut vec![]);
    assert_eq!(status_of(&run.replies[0]), Some(StatusCode::NotAllowed));
    assert_eq!(run.closed, Some(CloseReason::ActiveRefused));
    assert!(!s.is_active());
    // The same queries with every kind allowed.
    let mut s = ServerSession::new(active_cfg(100), now);
    s.receive(&frame(&query(60)), now);
    let run = drive(&mut s, &FakeStore::standard());
    assert!(run.replies.len() > 1 && run.replies.last().unwrap().options.status_code().is_none());
}
