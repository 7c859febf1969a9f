//! The requestor side of Bulk Leasequery (RFC 6926 §7) as a sans-IO state machine: it writes queries with
//! unique xids, demultiplexes replies by xid, turns each reply into a [`Binding`] in absolute server time,
//! and reports each query's end.

use super::BadReply;
use crate::framing::{FrameDecoder, encode_frame};
use crate::options::{code, default_prl};
use crate::session::BulkKey;
pub use crate::session::BulkRequest;
use crate::{Binding, DataSource, DhcpState, Message, MessageType, Op, RelayAgentInfoBuilder, StatusCode};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// One binding as a reply reported it, in the server's absolute time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkBinding {
    /// The query it answers.
    pub xid: u32,
    /// The binding, times made absolute with the reply's base-time.
    pub binding: Binding,
    /// The reply's base-time (the server's clock when it built the message), if sent.
    pub base_time: Option<u32>,
    /// The server identifier, cached from the first reply of the query (BLQ-7.3-6).
    pub server_id: Option<Ipv4Addr>,
}

/// Something the requestor learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A DHCPLEASEACTIVE or DHCPLEASEUNASSIGNED.
    Binding(BulkBinding),
    /// DHCPLEASEQUERYDONE: the query is over (BLQ-7.3-7); `status` Success unless option 151 said otherwise.
    Done {
        /// The query.
        xid: u32,
        /// Its outcome.
        status: StatusCode,
        /// The status message, if any.
        message: String,
        /// Bindings received for it.
        count: u64,
    },
}

/// Why the requestor gave up on the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestorError {
    /// A reply whose xid matches no outstanding query (BLQ-7.3-3: close).
    #[error("reply with unknown xid {0:#x}")]
    UnknownXid(u32),
    /// A frame or message that does not decode.
    #[error("bad input from the server: {0}")]
    BadInput(#[from] BadReply),
    /// A message type a server must not send here (e.g. DHCPLEASEUNKNOWN, BLQ-7.3-9).
    #[error("unexpected {0} from the server")]
    Unexpected(MessageType),
    /// Nothing arrived for BULK_LQ_DATA_TIMEOUT (BLQ-7.3-1).
    #[error("no data from the server for {0:?}")]
    Timeout(Duration),
}

#[derive(Debug, Default)]
struct Outstanding {
    server_id: Option<Ipv4Addr>,
    count: u64,
}

/// The requestor session.
#[derive(Debug)]
pub struct BulkRequestor {
    frames: FrameDecoder,
    rx: Vec<u8>,
    tx: Vec<u8>,
    next_xid: u32,
    outstanding: HashMap<u32, Outstanding>,
    events: std::collections::VecDeque<Event>,
    data_timeout: Duration,
    last_progress: Instant,
    failed: Option<RequestorError>,
    /// The requestor's clock (Unix seconds) as the driver last gave it: the reference for a reply without
    /// base-time (BLQ-6.2.6-4).
    wall_clock: u32,
}

impl BulkRequestor {
    /// A session on a fresh connection; `first_xid` should be unpredictable (e.g. from the clock).
    pub fn new(first_xid: u32, data_timeout: Duration, now: Instant) -> Self {
        Self {
            frames: FrameDecoder::new(u16::MAX as usize),
            rx: Vec::new(),
            tx: Vec::new(),
            next_xid: first_xid,
            outstanding: HashMap::new(),
            events: Default::default(),
            data_timeout,
            last_progress: now,
            failed: None,
            wall_clock: 0,
        }
    }

    /// The requestor's own clock (Unix seconds), given by the driver before [`BulkRequestor::receive`]. A reply
    /// without base-time has its durations taken from it: without information to the contrary the server's
    /// time context is assumed to be the requestor's (BLQ-6.2.6-4). Until it is given, such times come out
    /// relative to 0.
    pub fn wall_clock(&mut self, unix_now: u32) {
        self.wall_clock = unix_now;
    }

    /// Queue a query; returns its xid (unique on the connection, BLQ-7.1-3).
    pub fn query(&mut self, req: &BulkRequest, now: Instant) -> u32 {
        let mut xid = self.next_xid;
        while self.outstanding.contains_key(&xid) {
            xid = xid.wrapping_add(1);
        }
        self.next_xid = xid.wrapping_add(1);
        let mut m = Message::new(Op::BootRequest);
        m.xid = xid;
        m.options.set_message_type(MessageType::BulkLeaseQuery);
        match &req.key {
            BulkKey::All => {}
            BulkKey::Mac { htype, addr } => m.set_hardware_address(*htype, addr),
            BulkKey::ClientId(id) => m.options.set(code::CLIENT_IDENTIFIER, id.clone()),
            BulkKey::RemoteId(id) => {
                m.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().remote_id(id).build())
            }
            BulkKey::RelayId(id) => {
                m.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().relay_id(id).build())
            }
        }
        if let Some(t) = req.changed_on_or_after {
            m.options.set_u32(code::QUERY_START_TIME, t);
        }
        if let Some(t) = req.changed_on_or_before {
            m.options.set_u32(code::QUERY_END_TIME, t);
        }
        // BLQ-7.2-2: ask for base-time, lease time, start-time-of-state and CLTT (and what a replica needs).
        m.options.set(code::PARAMETER_REQUEST_LIST, default_prl::TCP.to_vec());
        encode_frame(&m, &mut self.tx).expect("queries encode");
        self.outstanding.insert(xid, Outstanding::default());
        self.last_progress = now;
        xid
    }

    /// Bytes to write, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.tx.is_empty()).then(|| std::mem::take(&mut self.tx))
    }

    /// Queries not yet answered with DONE.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Bytes arrived.
    pub fn receive(&mut self, bytes: &[u8], now: Instant) {
        if self.failed.is_some() {
            return;
        }
        if !bytes.is_empty() {
            self.last_progress = now;
        }
        // Decode frames in place: the buffer is taken out of `self` while its frames are handled.
        let mut rx = std::mem::take(&mut self.rx);
        rx.extend_from_slice(bytes);
        let mut used = 0;
        loop {
            match self.frames.decode(&rx[used..]) {
                Ok(Some((frame, n))) => {
                    let result = self.handle_frame(frame);
                    used += n;
                    if let Err(e) = result {
                        self.failed = Some(e);
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.failed = Some(BadReply::Frame(e).into());
                    break;
                }
            }
        }
        rx.drain(..used);
        self.rx = rx;
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The error that ended the session (close the connection), if any.
    pub fn error(&self) -> Option<&RequestorError> {
        self.failed.as_ref()
    }

    /// When to call [`BulkRequestor::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.outstanding.is_empty() && self.failed.is_none()).then(|| self.last_progress + self.data_timeout)
    }

    /// BLQ-7.3-1: nothing readable for BULK_LQ_DATA_TIMEOUT while waiting: give up.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.outstanding.is_empty() && now >= self.last_progress + self.data_timeout {
            self.failed = Some(RequestorError::Timeout(self.data_timeout));
        }
    }

    fn handle_frame(&mut self, frame: &[u8]) -> Result<(), RequestorError> {
        let m = Message::decode(frame).map_err(BadReply::from)?;
        let t = m.message_type().ok_or(BadReply::NoMessageType)?;
        let Some(q) = self.outstanding.get_mut(&m.xid) else { return Err(RequestorError::UnknownXid(m.xid)) };
        if let Some(sid) = m.options.server_identifier() {
            q.server_id.get_or_insert(sid);
        }
        match t {
            MessageType::LeaseActive | MessageType::LeaseUnassigned => {
                q.count += 1;
                let server_id = q.server_id;
                let (binding, base_time) = binding_at(&m, t, self.wall_clock);
                self.events.push_back(Event::Binding(BulkBinding { xid: m.xid, binding, base_time, server_id }));
            }
            MessageType::LeaseQueryDone => {
                let q = self.outstanding.remove(&m.xid).expect("looked up above");
                let (status, message) = match m.options.status() {
                    Some(Ok(s)) => (s.code, s.message.to_string()),
                    // BLQ-6.2.2-3: a NUL or non-UTF-8 text is a protocol violation; keep the code.
                    Some(Err(_)) => {
                        (m.options.status_code().unwrap_or(StatusCode::UnspecFail), "(invalid status text)".into())
                    }
                    None => (StatusCode::Success, String::new()),
                };
                self.events.push_back(Event::Done { xid: m.xid, status, message, count: q.count });
            }
            other => return Err(RequestorError::Unexpected(other)),
        }
        Ok(())
    }
}

/// A reply as a binding in absolute server time (RFC 6926 §7.4): durations are relative to base-time.
pub fn binding_of(m: &Message<'_>, t: MessageType) -> (Binding, Option<u32>) {
    binding_at(m, t, 0)
}

/// [`binding_of`] for a reply that may lack base-time (an RFC 4388 reply over UDP): its durations are then
/// taken relative to `now`, the requestor's clock when the reply arrived.
pub fn binding_at(m: &Message<'_>, t: MessageType, now: u32) -> (Binding, Option<u32>) {
    let o = &m.options;
    let base = o.base_time();
    let reference = base.unwrap_or(now);
    // BLQ-6.2.7-5: DHCPLEASEACTIVE without dhcp-state is ACTIVE; an UNASSIGNED without it is AVAILABLE.
    let state = match o.dhcp_state() {
        Some(Ok(s)) => s,
        _ if t == MessageType::LeaseActive => DhcpState::Active,
        _ => DhcpState::Available,
    };
    // Without start-time-of-state (optional; Kea does not send it) the time is unknown, not base-time.
    let since = o.start_time_of_state().map_or(Binding::STATE_SINCE_UNKNOWN, |s| reference.saturating_sub(s).max(1));
    let mut b = Binding::new(m.ciaddr, state, since);
    b.htype = m.htype;
    b.hardware_address = m.hardware_address().to_vec();
    b.client_id = o.client_identifier().map(<[u8]>::to_vec);
    b.expires_at = o.lease_time().map(|l| reference.saturating_add(l));
    b.cltt = o.client_last_transaction_time().map(|c| reference.saturating_sub(c));
    b.relay_agent_info = o.get(code::RELAY_AGENT_INFO).map(<[u8]>::to_vec);
    // BLQ-6.2.8-4/5: absent means local; unassigned bits are ignored.
    b.data_source = if o.data_source().is_some_and(|d| d.is_remote()) { DataSource::REMOTE } else { DataSource::LOCAL };
    (b, base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lq_reply::{ReplyPolicy, done, write_binding_reply};

    fn server_frames(msgs: &[Message<'_>]) -> Vec<u8> {
        let mut b = Vec::new();
        for m in msgs {
            encode_frame(m, &mut b).unwrap();
        }
        b
    }

    fn policy() -> ReplyPolicy {
        ReplyPolicy { server_id: Ipv4Addr::new(10, 0, 0, 1), disclose: vec![], withhold: vec![], shared: false }
    }

    #[test]
    fn blq_7_2_query_form_and_unique_xids() {
        let now = Instant::now();
        let mut r = BulkRequestor::new(100, Duration::from_secs(300), now);
        let a = r.query(
            &BulkRequest {
                key: BulkKey::RelayId(b"R".to_vec()),
                changed_on_or_after: Some(5),
                changed_on_or_before: None,
            },
            now,
        );
        let b = r.query(&BulkRequest::all(), now);
        assert_ne!(a, b);
        let bytes = r.poll_transmit().unwrap();
        let (f, _) = FrameDecoder::default().decode(&bytes).unwrap().unwrap();
        let q = Message::decode(f).unwrap();
        assert_eq!(q.message_type(), Some(MessageType::BulkLeaseQuery));
        assert_eq!(q.options.relay_agent_info().unwrap().relay_id(), Some(&b"R"[..]));
        assert_eq!(q.options.query_start_time(), Some(5));
        let prl = q.options.parameter_request_list().unwrap();
        for c in [152, 51, 153, 91] {
            assert!(prl.contains(&c), "BLQ-7.2-2: {c}");
        }
    }

    /// BLQ-6.2.5-3, BLQ-6.2.6-3: start of state and CLTT made absolute times in the server's context; BLQ-7.3-2:
    /// many replies with one query's xid.
    #[test]
    fn blq_7_4_times_become_absolute_and_server_id_is_cached() {
        let now = Instant::now();
        let mut r = BulkRequestor::new(7, Duration::from_secs(300), now);
        let xid = r.query(&BulkRequest::all(), now);
        let mut b = Binding::new(Ipv4Addr::new(10, 0, 0, 5), DhcpState::Active, 1000);
        b.cltt = Some(1010);
        b.expires_at = Some(1600);
        let mut b2 = b.clone();
        b2.ip = Ipv4Addr::new(10, 0, 0, 6);
        let mut bytes = Vec::new();
        write_binding_reply(&mut bytes, &b, xid, default_prl::TCP, 1100, true, &policy());
        write_binding_reply(&mut bytes, &b2, xid, default_prl::TCP, 1101, false, &policy());
        bytes.extend(server_frames(&[done(xid, None, None)]));
        r.receive(&bytes, now);
        let Some(Event::Binding(one)) = r.poll_event() else { panic!() };
        assert_eq!((one.binding.state_since, one.binding.cltt, one.binding.expires_at), (1000, Some(1010), Some(1600)));
        assert_eq!(one.base_time, Some(1100));
        let Some(Event::Binding(two)) = r.poll_event() else { panic!() };
        assert_eq!(two.server_id, Some(Ipv4Addr::new(10, 0, 0, 1)), "BLQ-7.3-6: applied to later replies");
        assert_eq!(
            r.poll_event(),
            Some(Event::Done { xid, status: StatusCode::Success, message: String::new(), count: 2 })
        );
        assert_eq!(r.outstanding(), 0);
    }

    #[test]
    fn blq_7_3_3_unknown_xid_ends_the_session() {
        let now = Instant::now();
        let mut r = BulkRequestor::new(7, Duration::from_secs(300), now);
        r.query(&BulkRequest::all(), now);
        r.receive(&server_frames(&[done(999, None, None)]), now);
        assert_eq!(r.error(), Some(&RequestorError::UnknownXid(999)));
    }

    #[test]
    fn blq_7_3_9_leaseunknown_is_a_protocol_error_and_done_status_is_reported() {
        let now = Instant::now();
        let mut r = BulkRequestor::new(1, Duration::from_secs(300), now);
        let xid = r.query(&BulkRequest::all(), now);
        r.receive(&server_frames(&[done(xid, Some((StatusCode::NotAllowed, "no")), None)]), now);
        assert_eq!(
            r.poll_event(),
            Some(Event::Done { xid, status: StatusCode::NotAllowed, message: "no".into(), count: 0 })
        );
        let xid = r.query(&BulkRequest::all(), now);
        let mut unknown = Message::new(Op::BootReply);
        unknown.xid = xid;
        unknown.options.set_message_type(MessageType::LeaseUnknown);
        r.receive(&server_frames(&[unknown]), now);
        assert_eq!(r.error(), Some(&RequestorError::Unexpected(MessageType::LeaseUnknown)));
    }

    /// BLQ-6.2.8-5: the requestor ignores data-source's unassigned bits (0xFE is local, 0xFF remote).
    #[test]
    fn blq_6_2_7_5_and_6_2_8_4_defaults_for_absent_state_and_source() {
        let mut m = Message::new(Op::BootReply);
        m.ciaddr = Ipv4Addr::new(10, 0, 0, 1);
        m.options.set_message_type(MessageType::LeaseActive);
        m.options.set_data_source(DataSource(0xfe));
        let (b, _) = binding_of(&m, MessageType::LeaseActive);
        assert_eq!((b.state, b.data_source), (DhcpState::Active, DataSource::LOCAL));
        m.options.set_data_source(DataSource(0xff));
        assert_eq!(binding_of(&m, MessageType::LeaseActive).0.data_source, DataSource::REMOTE);
    }

    #[test]
    fn blq_7_3_1_data_timeout() {
        let t0 = Instant::now();
        let mut r = BulkRequestor::new(1, Duration::from_secs(300), t0);
        assert_eq!(r.poll_timeout(), None, "nothing outstanding, nothing to time out");
        r.query(&BulkRequest::all(), t0);
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(300)));
        r.handle_timeout(t0 + Duration::from_secs(299));
        assert!(r.error().is_none());
        r.handle_timeout(t0 + Duration::from_secs(300));
        assert_eq!(r.error(), Some(&RequestorError::Timeout(Duration::from_secs(300))));
    }

    fn query_of(key: BulkKey) -> Message<'static> {
        let mut r = BulkRequestor::new(1, Duration::from_secs(300), Instant::now());
        r.query(&BulkRequest { key, ..BulkRequest::all() }, Instant::now());
        let bytes = r.poll_transmit().unwrap();
        let (f, n) = FrameDecoder::default().decode(&bytes).unwrap().unwrap();
        assert_eq!(n, bytes.len(), "one query, one frame");
        Message::decode(Box::leak(f.to_vec().into_boxed_slice())).unwrap()
    }

    /// BLQ-7.2-3: each query carries exactly one primary query, in the form RFC 6926 §7.2 gives it, and the
    /// server reads it back as that key (and not as "more than one primary query").
    #[test]
    fn blq_7_2_3_each_query_carries_exactly_one_primary_query() {
        let mac = query_of(BulkKey::Mac { htype: 1, addr: vec![2, 0, 0, 0, 0, 7] });
        assert_eq!((mac.htype, mac.hlen, mac.hardware_address()), (1, 6, &[2, 0, 0, 0, 0, 7][..]));
        assert!(mac.options.client_identifier().is_none() && mac.options.get(code::RELAY_AGENT_INFO).is_none());

        let cid = query_of(BulkKey::ClientId(vec![1, 2, 3]));
        assert_eq!(cid.options.client_identifier(), Some(&[1, 2, 3][..]));
        assert_eq!((cid.hlen, cid.options.get(code::RELAY_AGENT_INFO)), (0, None));

        let remote = query_of(BulkKey::RemoteId(b"modem-7".to_vec()));
        let rai = remote.options.relay_agent_info().unwrap();
        assert_eq!((rai.remote_id(), rai.relay_id()), (Some(&b"modem-7"[..]), None));
        assert_eq!((remote.hlen, remote.options.client_identifier()), (0, None));

        let relay = query_of(BulkKey::RelayId(b"relay-A".to_vec()));
        let rai = relay.options.relay_agent_info().unwrap();
        assert_eq!((rai.relay_id(), rai.remote_id()), (Some(&b"relay-A"[..]), None));
        assert_eq!((relay.hlen, relay.options.client_identifier()), (0, None));

        let all = query_of(BulkKey::All);
        assert_eq!((all.hlen, all.options.client_identifier()), (0, None));
        assert_eq!(all.options.get(code::RELAY_AGENT_INFO), None, "All Configured IP Addresses: none of them");

        for (m, key) in [
            (&mac, BulkKey::Mac { htype: 1, addr: vec![2, 0, 0, 0, 0, 7] }),
            (&cid, BulkKey::ClientId(vec![1, 2, 3])),
            (&remote, BulkKey::RemoteId(b"modem-7".to_vec())),
            (&relay, BulkKey::RelayId(b"relay-A".to_vec())),
            (&all, BulkKey::All),
        ] {
            assert_eq!(crate::session::server::bulk::BulkQuery::parse(m).map(|q| q.request.key), Ok(key));
        }
    }

    /// BLQ-7.7-1: queries pipelined on one connection each get their own xid, also across the wrap of the xid
    /// space, and replies are demultiplexed by it.
    #[test]
    fn blq_7_7_1_pipelined_queries_have_unique_xids() {
        let now = Instant::now();
        let mut r = BulkRequestor::new(u32::MAX - 2, Duration::from_secs(300), now);
        let all = BulkRequest::all();
        let xids: Vec<u32> = (0..6).map(|_| r.query(&all, now)).collect();
        let unique: std::collections::HashSet<u32> = xids.iter().copied().collect();
        assert_eq!(unique.len(), xids.len(), "{xids:x?}");
        // On the wire: six frames, six xids.
        let bytes = r.poll_transmit().unwrap();
        let wire: Vec<u32> = crate::framing::frames(&bytes).map(|f| Message::decode(&f[2..]).unwrap().xid).collect();
        assert_eq!(wire, xids);
        // Replies interleaved across the queries land on theirs.
        let b = Binding::new(Ipv4Addr::new(10, 0, 0, 5), DhcpState::Active, 1000);
        let mut replies = Vec::new();
        write_binding_reply(&mut replies, &b, xids[4], default_prl::TCP, 1100, true, &policy());
        write_binding_reply(&mut replies, &b, xids[1], default_prl::TCP, 1100, true, &policy());
        replies.extend(server_frames(&[done(xids[1], None, None)]));
        r.receive(&replies, now);
        let got: Vec<u32> = std::iter::from_fn(|| r.poll_event())
            .map(|e| match e {
                Event::Binding(b) => b.xid,
                Event::Done { xid, .. } => xid,
            })
            .collect();
        assert_eq!(got, vec![xids[4], xids[1], xids[1]]);
        assert_eq!(r.outstanding(), 5);
        // A later query never reuses an xid still outstanding.
        let next = r.query(&all, now);
        assert!(!xids.iter().enumerate().any(|(i, x)| i != 1 && *x == next));
    }

    /// BLQ-6.2.6-4: a reply without base-time is read in the requestor's own time context (the times it
    /// carries count back from the requestor's clock), not from the epoch.
    #[test]
    fn blq_6_2_6_4_a_reply_without_base_time_is_in_the_requestors_time() {
        let now = Instant::now();
        let mut r = BulkRequestor::new(7, Duration::from_secs(300), now);
        let xid = r.query(&BulkRequest::all(), now);
        let mut m = Message::new(Op::BootReply);
        m.xid = xid;
        m.ciaddr = Ipv4Addr::new(10, 0, 0, 5);
        m.options.set_message_type(MessageType::LeaseActive);
        m.options.set_u32(code::CLIENT_LAST_TRANSACTION_TIME, 30);
        m.options.set_u32(code::START_TIME_OF_STATE, 40);
        m.options.set_u32(code::LEASE_TIME, 600);
        r.wall_clock(1_800_000_000);
        r.receive(&server_frames(&[m]), now);
        let Some(Event::Binding(got)) = r.poll_event() else { panic!("a binding") };
        assert_eq!(got.base_time, None, "no base-time is invented");
        let b = got.binding;
        assert_eq!(
            (b.cltt, b.state_since, b.expires_at),
            (Some(1_800_000_000 - 30), 1_800_000_000 - 40, Some(1_800_000_000 + 600))
        );
    }
}
