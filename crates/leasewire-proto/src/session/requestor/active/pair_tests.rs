//! A server session and a requestor session wired back to back, with an in-memory store and a fake clock (the
//! quinn-proto `Pair` idea): RFC 7724's timers and base-time rules exercised in microseconds.

use super::*;
use crate::lq_reply::ReplyPolicy;
use crate::session::server::active::ActiveConfig;
use crate::session::server::{Output, ServerConfig, ServerSession, TlsPolicy};
use crate::{BindingChange, DhcpState};
use std::net::Ipv4Addr;
use std::sync::Arc;

const T: u32 = 1_800_000_000;

struct Pair {
    server: ServerSession,
    req: ActiveRequestor,
    now: Instant,
    clock: u32,
    store: Vec<BindingChange>,
    horizon: u32,
    events: Vec<ActiveEvent>,
    server_closed: bool,
    /// While false, the server's output is not delivered (a blocked connection).
    deliver: bool,
}

fn change(last: u8, state: DhcpState, seq: u64, time: u32) -> BindingChange {
    let mut b = Binding::new(Ipv4Addr::new(10, 0, 0, last), state, time);
    b.htype = 1;
    b.hardware_address = vec![2, 0, 0, 0, 0, last];
    b.cltt = Some(time);
    BindingChange { seq, time, binding: b }
}

impl Pair {
    fn new(policy: TlsPolicy, secure: bool, saved: Option<u32>, page_size: usize) -> Self {
        let now = Instant::now();
        let cfg = ServerConfig {
            policy: ReplyPolicy {
                server_id: Ipv4Addr::new(10, 0, 0, 1),
                disclose: vec![],
                withhold: vec![],
                shared: false,
            },
            max_queries: 4,
            data_timeout: Duration::from_secs(300),
            max_frame: 16 * 1024,
            page_size,
            configured: Arc::from(Vec::new()),
            available_since: T - 10_000,
            tls: policy,
            active: Some(ActiveConfig::default()),
            pre_auth_timeout: None,
            query_types: Default::default(),
        };
        Self {
            server: ServerSession::new(cfg, now),
            req: ActiveRequestor::new(0x77, saved, secure, ACTIVE_LQ_RCV_TIMEOUT, now),
            now,
            clock: T,
            store: (1..=5).map(|i| change(i, DhcpState::Active, i as u64, T - 100 + i as u32)).collect(),
            horizon: T - 1000,
            events: Vec::new(),
            server_closed: false,
            deliver: true,
        }
    }

    /// Pump bytes both ways until nothing moves.
    fn run(&mut self) {
        loop {
            let mut moved = false;
            if let Some(b) = self.req.poll_transmit() {
                self.server.receive(&b, self.now);
                moved = true;
            }
            while self.deliver
                && let Some(out) = self.server.poll_output(self.clock)
            {
                moved = true;
                match out {
                    Output::Transmit(b) => {
                        self.server.transmitted(b.len(), self.now);
                        self.req.receive(&b, self.now);
                    }
                    Output::FetchChanges(f) => {
                        let page: Vec<BindingChange> = self
                            .store
                            .iter()
                            .filter(|c| c.time >= f.since && f.after_seq.is_none_or(|s| c.seq > s))
                            .take(f.limit)
                            .cloned()
                            .collect();
                        self.server.changes_page(Ok((page, f.since >= self.horizon)));
                    }
                    Output::StartTls => self.server.tls_established(),
                    Output::Fetch(_) => panic!("no scans here"),
                    Output::Close(_) => self.server_closed = true,
                }
            }
            while let Some(e) = self.req.poll_event() {
                if e == ActiveEvent::StartTls {
                    self.req.tls_established();
                }
                self.events.push(e);
                moved = true;
            }
            if !moved {
                break;
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.clock += d.as_secs() as u32;
        self.server.handle_timeout(self.now);
        self.req.handle_timeout(self.now);
        self.run();
    }

    fn bindings(&self) -> Vec<Ipv4Addr> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ActiveEvent::Binding { binding, .. } => Some(binding.ip),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn alq_7_4_1_catch_up_then_live_and_the_saved_base_time() {
    let mut p = Pair::new(TlsPolicy::Refuse, false, Some(T - 98), 2);
    p.run();
    // The store's changes are at T-99 .. T-95: those on or after T-98 come back.
    let expected: Vec<Ipv4Addr> = (2..=5).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
    assert_eq!(p.bindings(), expected);
    assert_eq!(p.events.last(), Some(&ActiveEvent::CatchUpComplete));
    // ALQ-7.4-9: the base-time of the latest message after catch-up (CatchUpComplete's, a second early).
    assert_eq!(p.req.saved_base_time(), Some(T - 1));
    p.clock += 7;
    p.server.live(change(9, DhcpState::Released, 10, T + 7));
    p.run();
    assert_eq!(p.bindings().last(), Some(&Ipv4Addr::new(10, 0, 0, 9)));
    assert_eq!(p.req.saved_base_time(), Some(T + 7));
    assert!(p.req.error().is_none());
}

#[test]
fn alq_7_3_7_nothing_is_saved_while_catch_up_is_incomplete() {
    let mut p = Pair::new(TlsPolicy::Refuse, false, Some(T - 200), 1);
    // Deliver the query and the first page only, then the connection drops.
    if let Some(b) = p.req.poll_transmit() {
        p.server.receive(&b, p.now);
    }
    let Some(Output::FetchChanges(f)) = p.server.poll_output(p.clock) else { panic!("a catch-up fetch") };
    p.server.changes_page(Ok((vec![p.store[0].clone()], f.since >= p.horizon)));
    let Some(Output::Transmit(b)) = p.server.poll_output(p.clock) else { panic!("the first binding") };
    p.req.receive(&b, p.now);
    assert!(matches!(p.req.poll_event(), Some(ActiveEvent::Binding { .. })));
    assert_eq!(p.req.saved_base_time(), Some(T - 200), "ALQ-7.4.1-9: reconnect with the previous base-time");
}

#[test]
fn alq_7_4_1_data_missing_names_the_gap_to_fill() {
    let mut p = Pair::new(TlsPolicy::Refuse, false, Some(T - 5000), 10);
    p.run();
    assert_eq!(p.events, vec![ActiveEvent::DataMissing { from: T - 5000, to: T }]);
    assert_eq!(p.req.saved_base_time(), Some(T));
}

#[test]
fn alq_7_4_2_and_7_4_4_keep_alives_hold_the_connection_and_silence_ends_it() {
    let mut p = Pair::new(TlsPolicy::Refuse, false, None, 10);
    p.run();
    // Idle for 10 minutes: a keep-alive every 60 s, never a receive timeout.
    for _ in 0..10 {
        p.advance(Duration::from_secs(60));
    }
    assert_eq!(p.events.iter().filter(|e| **e == ActiveEvent::KeepAlive).count(), 10);
    assert!(p.req.error().is_none() && !p.server_closed);
    // The server's output is blocked from now on: after ACTIVE_LQ_RCV_TIMEOUT the requestor gives up.
    p.deliver = false;
    p.advance(Duration::from_secs(119));
    assert!(p.req.error().is_none());
    p.advance(Duration::from_secs(1));
    assert_eq!(p.req.error(), Some(&ActiveError::Timeout(ACTIVE_LQ_RCV_TIMEOUT)));
}

#[test]
fn alq_7_2_secure_mode_negotiates_tls_before_the_query() {
    let mut p = Pair::new(TlsPolicy::Require, true, None, 10);
    p.run();
    assert_eq!(p.events.first(), Some(&ActiveEvent::StartTls));
    assert!(p.server.is_tls() && p.server.is_active());
    p.server.live(change(8, DhcpState::Active, 9, T));
    p.run();
    assert_eq!(p.bindings(), vec![Ipv4Addr::new(10, 0, 0, 8)]);
}

#[test]
fn alq_7_2_6_a_refused_dhcptls_ends_the_connection() {
    let mut p = Pair::new(TlsPolicy::Refuse, true, None, 10);
    p.run();
    assert_eq!(p.req.error(), Some(&ActiveError::TlsRefused));
    assert!(!p.server.is_active(), "no query was sent in the clear");
}

#[test]
fn alq_7_4_13_query_terminated_ends_the_stream() {
    let mut p = Pair::new(TlsPolicy::Refuse, false, None, 10);
    p.run();
    p.server.shutdown();
    p.run();
    assert_eq!(p.req.error(), Some(&ActiveError::Terminated(StatusCode::QueryTerminated)));
    assert!(p.server_closed);
}

// ---- the requestor alone, fed crafted server bytes -------------------------------------------------------

fn server_frame(xid: u32, t: MessageType, base: Option<u32>, status: Option<StatusCode>, ip: u8) -> Vec<u8> {
    let mut m = Message::new(Op::BootReply);
    m.xid = xid;
    m.ciaddr = Ipv4Addr::new(10, 0, 0, ip);
    m.options.set_message_type(t);
    if let Some(b) = base {
        m.options.set_u32(code::BASE_TIME, b);
    }
    if let Some(s) = status {
        m.options.set_status(s, "");
    }
    let mut out = Vec::new();
    encode_frame(&m, &mut out).unwrap();
    out
}

/// ALQ-7.3-6, ALQ-7.4.1-8: the requestor tracks the highest base-time, for the next query.
#[test]
fn alq_7_3_7_the_saved_base_time_never_runs_ahead_of_the_events_taken() {
    let now = Instant::now();
    let mut r = ActiveRequestor::new(9, Some(T - 100), false, ACTIVE_LQ_RCV_TIMEOUT, now);
    let mut bytes = server_frame(9, MessageType::LeaseActive, Some(T), None, 1);
    bytes.extend(server_frame(9, MessageType::LeaseActive, Some(T), None, 2));
    bytes.extend(server_frame(9, MessageType::LeaseQueryStatus, Some(T + 1), Some(StatusCode::CatchUpComplete), 0));
    bytes.extend(server_frame(9, MessageType::LeaseActive, Some(T + 2), None, 3));
    r.receive(&bytes, now);
    // Everything is decoded, nothing taken yet: a drop now must reconnect from where the connection started.
    assert_eq!(r.saved_base_time(), Some(T - 100));
    r.poll_event();
    r.poll_event();
    assert_eq!(r.saved_base_time(), Some(T - 100), "catch-up bindings do not move it (ALQ-7.3-7)");
    assert_eq!(r.poll_event(), Some(ActiveEvent::CatchUpComplete));
    assert_eq!(r.saved_base_time(), Some(T + 1));
    r.poll_event();
    assert_eq!(r.saved_base_time(), Some(T + 2));
}

#[test]
fn alq_7_2_6_plaintext_after_the_dhcptls_answer_is_refused_not_taken_into_tls() {
    let now = Instant::now();
    let mut r = ActiveRequestor::new(9, None, true, ACTIVE_LQ_RCV_TIMEOUT, now);
    let request = r.poll_transmit().unwrap();
    let (f, _) = FrameDecoder::default().decode(&request).unwrap().unwrap();
    let tls_xid = Message::decode(f).unwrap().xid;
    assert_ne!(tls_xid, 9, "DHCPTLS and the query do not share an xid");
    let mut bytes = server_frame(tls_xid, MessageType::Tls, None, None, 0);
    // A forged binding for the query's xid, in the clear, right behind the answer.
    bytes.extend(server_frame(9, MessageType::LeaseActive, Some(u32::MAX), None, 7));
    r.receive(&bytes, now);
    assert!(matches!(r.error(), Some(ActiveError::BadInput(_))), "{:?}", r.error());
}

#[test]
fn alq_7_4_1_4_data_missing_without_base_time_is_bad_input() {
    let now = Instant::now();
    let mut r = ActiveRequestor::new(9, Some(T - 100), false, ACTIVE_LQ_RCV_TIMEOUT, now);
    r.receive(&server_frame(9, MessageType::LeaseQueryStatus, None, Some(StatusCode::DataMissing), 0), now);
    assert!(matches!(r.error(), Some(ActiveError::BadInput(_))));
    assert_eq!(r.poll_event(), None, "no gap from 0 to 0");
}

/// ALQ-7.3-2/3/4 from the requestor's side: the DHCPACTIVELEASEQUERY carries no ciaddr, chaddr or client-id,
/// the connection's xid, and a parameter request list.
#[test]
fn alq_7_3_4_the_query_has_no_client_fields_its_xid_and_a_parameter_request_list() {
    let mut r = ActiveRequestor::new(0x1234_5678, Some(T - 60), false, Duration::from_secs(120), Instant::now());
    let bytes = r.poll_transmit().expect("the query");
    let (body, _) = crate::framing::FrameDecoder::default().decode(&bytes).unwrap().unwrap();
    let m = Message::decode(body).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::ActiveLeaseQuery));
    assert_eq!((m.xid, m.ciaddr, m.hlen), (0x1234_5678, Ipv4Addr::UNSPECIFIED, 0), "ALQ-7.3-2, ALQ-7.3-3");
    assert!(m.options.client_identifier().is_none(), "ALQ-7.3-2");
    let prl = m.options.parameter_request_list().expect("ALQ-7.3-4: a parameter request list");
    assert!(prl.contains(&code::BASE_TIME) && prl.contains(&code::DHCP_STATE));
    assert_eq!(m.options.get_u32(code::QUERY_START_TIME), Some(T - 60));
}

/// ALQ-7.4-7: one DHCPACTIVELEASEQUERY, many replies with its xid — catch-up, live changes, keep-alives — all
/// taken, in order, for as long as the stream lasts.
#[test]
fn alq_7_4_7_many_replies_with_the_one_xid_are_all_taken() {
    let mut p = Pair::new(TlsPolicy::Refuse, false, Some(T - 200), 2);
    p.run();
    for i in 0..200u32 {
        p.clock += 1;
        p.server.live(change((i % 200) as u8 + 20, DhcpState::Active, 100 + u64::from(i), p.clock));
        if i % 50 == 0 {
            p.advance(Duration::from_secs(60));
        }
        p.run();
    }
    assert!(p.req.error().is_none() && !p.server_closed);
    assert_eq!(p.bindings().len(), 5 + 200, "5 caught up, 200 live");
    assert!(p.events.contains(&ActiveEvent::KeepAlive));
    assert_eq!(p.events.iter().filter(|e| **e == ActiveEvent::CatchUpComplete).count(), 1);
}
