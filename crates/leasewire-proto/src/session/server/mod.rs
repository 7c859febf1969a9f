//! The server side of a Leasequery TCP connection (RFC 6926, RFC 7724 §8.1.1) as a sans-IO state machine.
//!
//! The driver feeds it what arrives ([`ServerSession::receive`]), the store pages it asked for
//! ([`ServerSession::page`]), progress of its writes ([`ServerSession::transmitted`]) and the time; it drains
//! [`ServerSession::poll_output`] for bytes to write, store fetches to run, or a close. The session never
//! touches a socket, a store or a clock.
//!
//! Flow control: the session produces output only when the driver has taken what was produced before, and
//! reads at most `max_queries` queries ahead (BLQ-8.4-1), so memory per connection is bounded whatever the
//! size of the result or the speed of the peer.
//!
//! The rules of a Bulk query live in [`bulk`], those of an Active stream in [`active`].

pub mod active;
pub mod bulk;
pub mod query_types;

pub use query_types::QueryTypes;

use self::active::{Active, ActiveConfig, CatchUp, ChangesFetch};
use self::bulk::{BulkKey, BulkQuery, BulkRequest, VpnScope};
use crate::framing::{FrameDecoder, FrameError, encode_frame};
use crate::lq_reply::{ReplyPolicy, done, status_message, write_binding_reply};
use crate::options::default_prl;
use crate::{Binding, BindingChange, DecodeError, DhcpState, Message, MessageType, StatusCode};
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// RFC 6926 §6.3: BULK_LQ_DATA_TIMEOUT.
pub const BULK_LQ_DATA_TIMEOUT: Duration = Duration::from_secs(300);

/// Settings of a server session.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// What replies may contain.
    pub policy: ReplyPolicy,
    /// Queries processed at once on one connection (BLQ-7.7-2, BLQ-8.4-1).
    pub max_queries: usize,
    /// BULK_LQ_DATA_TIMEOUT: no progress in either direction for this long closes the connection.
    pub data_timeout: Duration,
    /// Largest frame accepted.
    pub max_frame: usize,
    /// Bindings per store page, and messages per output step.
    pub page_size: usize,
    /// The configured addresses (inclusive ranges, ascending, disjoint) for "all configured addresses".
    pub configured: Arc<[(u32, u32)]>,
    /// The store's history horizon when the connection opened: configured addresses without a record have been
    /// available at least since then (never leased, or forgotten), and are reported so.
    pub available_since: u32,
    /// Whether DHCPTLS is refused, offered, or required before anything else (secure mode, ALQ-8.1-9/10).
    pub tls: TlsPolicy,
    /// Active Leasequery settings; `None` when it is not enabled (then DHCPACTIVELEASEQUERY closes the
    /// connection like any message this server does not support, ALQ-8.1-2).
    pub active: Option<ActiveConfig>,
    /// Pre-authentication deadline: a connection that has not had a query accepted this long after it was
    /// opened is closed, whatever trickles in. `None`: only the data timeout applies. The data timeout alone
    /// does not stop a slowloris peer (one octet every few minutes is progress), and RFC 6926 §9 / RFC 7724 §9
    /// name connections that send partial or no queries as the TCP threat; in secure mode the deadline also
    /// covers DHCPTLS and the TLS handshake, since no query is accepted before them.
    pub pre_auth_timeout: Option<Duration>,
    /// The kinds of query this requestor may make (BLQ-9-6); the others are refused with NotAllowed.
    pub query_types: QueryTypes,
}

/// What the session does with DHCPTLS (RFC 7724 §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsPolicy {
    /// No TLS configured: DHCPTLS gets TLSConnectionRefused and the connection goes on in the clear.
    #[default]
    Refuse,
    /// TLS configured and allowed but not required.
    Offer,
    /// Secure mode: the first message must be DHCPTLS; anything else closes the connection (ALQ-8.1-9).
    Require,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsState {
    Plain,
    /// DHCPTLS answered; the handshake starts once the answer is written.
    Accepted,
    /// The driver runs the handshake.
    Handshaking,
    Established,
}

/// Counters of an Active stream since the last [`ServerSession::take_stats`], for the driver's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActiveStats {
    /// DHCPLEASEACTIVE/UNASSIGNED sent for live changes.
    pub live_sent: u64,
    /// Live changes that replaced a queued one for the same address (coalesced, RFC 7724 §6).
    pub coalesced: u64,
    /// Bindings sent during catch-up.
    pub catch_up_sent: u64,
    /// Catch-ups that ended with CatchUpComplete.
    pub catch_up_complete: u64,
    /// Catch-ups that ended with DataMissing.
    pub data_missing: u64,
}

/// What a store fetch asks for: one page in address order after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// The query it is for.
    pub xid: u32,
    /// The key to scan by and the change-time window.
    pub request: BulkRequest,
    /// Keyset paging: addresses strictly after this one.
    pub after: Option<Ipv4Addr>,
    /// Page size.
    pub limit: usize,
}

/// What the driver should do next.
#[derive(Debug)]
pub enum Output {
    /// Write these bytes (one or more frames).
    Transmit(Vec<u8>),
    /// Run this store scan and hand the page back with [`ServerSession::page`].
    Fetch(Fetch),
    /// Run `changed_since` (and check the history horizon) and hand it back with
    /// [`ServerSession::changes_page`].
    FetchChanges(ChangesFetch),
    /// Start the TLS handshake as server on the same TCP connection (everything written so far has been
    /// taken); call [`ServerSession::tls_established`] when it succeeds, close the connection when it fails
    /// (ALQ-8.1-17).
    StartTls,
    /// Close the connection (gracefully: RFC 6926 §8.5).
    Close(CloseReason),
}

/// How long the QueryTerminated to a requestor closed for being too slow may wait for the socket (ALQ-8.4-5
/// asks to try; a requestor that cannot read must not hold the connection for the send timeout).
pub const SLOW_REQUESTOR_FAREWELL: Duration = Duration::from_secs(1);

/// Why the session closed the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// A message type not allowed on this connection (RFC 7724 §8.1.1).
    ForbiddenMessage(MessageType),
    /// Bytes that are not a valid frame (RFC 6926 §6.1): a zero or oversized length prefix.
    BadFrame(FrameError),
    /// A frame whose message does not decode, and that the session could not answer with MalformedQuery
    /// (no xid to answer on, or not a DHCPBULKLEASEQUERY).
    BadMessage(DecodeError),
    /// BULK_LQ_DATA_TIMEOUT passed without progress.
    Timeout,
    /// The peer closed its side (BLQ-8.5-5).
    PeerClosed,
    /// The server is shutting down (BLQ-8.5-4).
    Shutdown,
    /// The store failed (BLQ-8.5-4).
    StoreFailed,
    /// An Active Leasequery requestor fell too far behind the live changes (RFC 7724 §6: it recovers by
    /// catch-up on a new connection).
    SlowRequestor,
    /// A DHCPACTIVELEASEQUERY was refused (malformed, or not allowed on this connection): ALQ-8.2-2.
    ActiveRefused,
    /// The Active Leasequery was ended with QueryTerminated (ALQ-7.4-12: the last message).
    QueryTerminated,
    /// Secure mode and the first message was not DHCPTLS (ALQ-8.1-9), or TLS bytes came before our answer.
    TlsRequired,
    /// No query was accepted within the pre-authentication timeout ([`ServerConfig::pre_auth_timeout`]).
    PreAuthTimeout,
}

impl std::fmt::Display for CloseReason {
    /// What an operator reads in the log line of a closed connection.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ForbiddenMessage(t) => write!(f, "{t} is not allowed on this connection"),
            Self::BadFrame(e) => write!(f, "bad frame: {e}"),
            Self::BadMessage(e) => write!(f, "undecodable message: {e}"),
            Self::Timeout => f.write_str("no progress within the data timeout"),
            Self::PeerClosed => f.write_str("the requestor closed the connection"),
            Self::Shutdown => f.write_str("the server is shutting down"),
            Self::StoreFailed => f.write_str("the lease store failed"),
            Self::SlowRequestor => f.write_str("the requestor fell too far behind the live changes"),
            Self::ActiveRefused => f.write_str("the Active Leasequery was refused"),
            Self::QueryTerminated => f.write_str("the Active Leasequery was ended with QueryTerminated"),
            Self::TlsRequired => f.write_str("secure mode requires DHCPTLS first"),
            Self::PreAuthTimeout => f.write_str("no query accepted within the pre-authentication timeout"),
        }
    }
}

/// Why the driver could not answer a store fetch ([`ServerSession::page`], [`ServerSession::changes_page`]).
///
/// The session cannot name the store's error type (the store crate depends on this one), so the cause is
/// kept whole, boxed, for the driver's log; the session ends the query and tells the requestor that the lease
/// store failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The store answered with an error.
    #[error("lease store: {0}")]
    Store(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The read did not finish (its task panicked or was cancelled).
    #[error("lease store: the read did not finish")]
    Aborted,
}

/// One query being answered.
#[derive(Debug)]
struct Running {
    q: BulkQuery,
    prl: Vec<u8>,
    sent_first: bool,
    /// Records fetched and not yet sent, each with whether it is to be sent (a windowed query that also
    /// reports record-less addresses reads every record, to know which addresses have one, and sends only
    /// those inside the window).
    buffer: VecDeque<(Binding, bool)>,
    /// Last address fetched from the store (keyset cursor).
    store_after: Option<Ipv4Addr>,
    store_exhausted: bool,
    /// For "all configured addresses": the next address not yet reported (u64 so it can pass 255.255.255.255).
    synth_next: u64,
    /// Whether never-leased configured addresses are reported (all-addresses query without time bounds).
    synthesize: bool,
}

/// The server session.
#[derive(Debug)]
pub struct ServerSession {
    cfg: ServerConfig,
    frames: FrameDecoder,
    rx: Vec<u8>,
    tx: Vec<u8>,
    queries: VecDeque<Running>,
    fetching: Option<u32>,
    last_progress: Instant,
    closing: Option<CloseReason>,
    closed: bool,
    active: Option<Active>,
    /// When anything was last sent on an Active Leasequery connection (keep-alive timer).
    last_sent: Instant,
    keepalive_due: bool,
    /// The latest base-time seen by `poll_output` (used for the QueryTerminated at shutdown).
    clock: u32,
    /// From the driver before a catch-up page: no change this connection has not received is older (see
    /// [`ServerSession::undelivered_floor`]).
    undelivered_floor: Option<u32>,
    /// Commit time of the latest change handed to [`ServerSession::live`]: changes the feed dropped after it
    /// (a lag) are no older.
    newest_live: Option<u32>,
    tls: TlsState,
    seen_first_message: bool,
    /// When the connection was opened (the pre-authentication deadline counts from here).
    opened: Instant,
    /// Whether a query has been accepted (in secure mode: inside TLS), ending the pre-authentication phase.
    admitted: bool,
    stats: ActiveStats,
}

impl ServerSession {
    /// A session for a connection accepted at `now`.
    pub fn new(cfg: ServerConfig, now: Instant) -> Self {
        Self {
            frames: FrameDecoder::new(cfg.max_frame),
            cfg,
            rx: Vec::new(),
            tx: Vec::new(),
            queries: VecDeque::new(),
            fetching: None,
            last_progress: now,
            closing: None,
            closed: false,
            active: None,
            last_sent: now,
            keepalive_due: false,
            clock: 0,
            undelivered_floor: None,
            newest_live: None,
            tls: TlsState::Plain,
            seen_first_message: false,
            opened: now,
            admitted: false,
            stats: ActiveStats::default(),
        }
    }

    /// The Active stream's counters since the last call (then reset).
    pub fn take_stats(&mut self) -> ActiveStats {
        std::mem::take(&mut self.stats)
    }

    /// Live changes queued and not yet sent.
    pub fn backlog(&self) -> usize {
        self.active.as_ref().map_or(0, |a| a.backlog.len())
    }

    /// The TLS handshake succeeded: messages go on inside TLS.
    pub fn tls_established(&mut self) {
        self.tls = TlsState::Established;
    }

    /// Whether the connection runs inside TLS.
    pub fn is_tls(&self) -> bool {
        self.tls == TlsState::Established
    }

    /// Whether a query has been accepted on this connection: the peer has shown it speaks the protocol (and, in
    /// secure mode, holds an allowed certificate). Until then the connection is pre-authentication, subject
    /// to [`ServerConfig::pre_auth_timeout`]; the driver may count the two kinds against separate limits.
    pub fn is_admitted(&self) -> bool {
        self.admitted
    }

    /// The instant the pre-authentication phase ends, while it lasts (the driver bounds a TLS handshake by it).
    pub fn pre_auth_deadline(&self) -> Option<Instant> {
        match (self.admitted, self.cfg.pre_auth_timeout) {
            (false, Some(t)) => Some(self.opened + t),
            _ => None,
        }
    }

    /// Whether an Active Leasequery runs on this connection (the driver then feeds it live changes).
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// How long one write may block before the connection is given up: ACTIVE_LQ_SEND_TIMEOUT on an Active
    /// Leasequery connection (ALQ-8.2-1), BULK_LQ_DATA_TIMEOUT otherwise (BLQ-8.2-1).
    pub fn write_timeout(&self) -> Duration {
        if self.closing == Some(CloseReason::SlowRequestor) {
            // The farewell to a requestor too slow to read: sent if the socket takes it at once.
            return SLOW_REQUESTOR_FAREWELL;
        }
        match (&self.active, &self.cfg.active) {
            (Some(_), Some(a)) => a.send_timeout,
            _ => self.cfg.data_timeout,
        }
    }

    /// A change was committed (from the change feed, in commit order). Queued, latest state per address.
    pub fn live(&mut self, change: impl Into<Arc<BindingChange>>) {
        let change = change.into();
        let max = self.cfg.active.as_ref().map_or(0, |a| a.max_backlog);
        if let Some(a) = &mut self.active {
            if matches!(a.catch_up, CatchUp::Running { .. }) {
                a.live_seq.insert(change.binding.ip, change.seq);
            }
            self.newest_live = Some(change.time);
            if a.backlog.insert(change) {
                self.stats.coalesced += 1;
            }
            if a.backlog.len() > max {
                self.too_slow();
            }
        }
    }

    /// The change feed dropped changes for this connection: live data is no longer exact, so close and let
    /// the requestor catch up.
    pub fn lagged(&mut self) {
        if self.active.is_some() {
            self.too_slow();
        }
    }

    /// The requestor cannot keep up: end the stream with QueryTerminated (ALQ-8.4-5: tell it, where the
    /// socket still takes it — [`ServerSession::write_timeout`] is then short) and close. What is already
    /// queued for the socket goes first, so the requestor has everything before the termination; the backlog
    /// is dropped. The termination's base-time stays a second below the oldest change not delivered (the
    /// backlog's oldest, or for a lag the newest change seen, after which the lost ones came): a requestor
    /// that saves it catches up from there without a gap (ALQ-7.3-6).
    fn too_slow(&mut self) {
        if self.closing.is_some() {
            return;
        }
        if let Some(a) = self.active.take() {
            let undelivered = a.backlog.oldest_time().into_iter().chain(self.newest_live);
            let base_time = undelivered.fold(self.clock, u32::min).saturating_sub(1);
            let mut m =
                self.stream_status(a.xid, StatusCode::QueryTerminated, "requestor too slow for the live stream");
            m.options.set_u32(crate::options::code::BASE_TIME, base_time);
            self.push(&m);
        }
        self.close(CloseReason::SlowRequestor);
    }

    /// Before handing over a catch-up page, the driver may say how far back a committed change that is neither
    /// in the page nor yet received through [`ServerSession::live`] can be (its feed knows which commits are
    /// still on their way). CatchUpComplete's base-time then stays below it, so a change that was in flight at
    /// the end of catch-up is caught up after a reconnect however slow its delivery (ALQ-8.2-9). Without it,
    /// a second before the current time is assumed to be enough.
    pub fn undelivered_floor(&mut self, floor: u32) {
        self.undelivered_floor = Some(floor);
    }

    /// A catch-up page: the changes and whether the store's history still covers query-start-time.
    pub fn changes_page(&mut self, page: Result<(Vec<BindingChange>, bool), FetchError>) {
        let limit = self.cfg.page_size;
        let base_time = self.clock;
        let Some(mut a) = self.active.take() else { return };
        a.fetching = false;
        match page {
            Err(e) => {
                // ALQ-8.2-2: an error while processing ends the query.
                let m = self.stream_status(a.xid, StatusCode::QueryTerminated, &e.to_string());
                self.push(&m);
                self.close(CloseReason::StoreFailed);
            }
            // ALQ-7.4.1-4 / -10: the history does not reach back: DataMissing with base-time = now, then live only.
            Ok((_, false)) => {
                a.catch_up = CatchUp::Finished;
                self.stats.data_missing += 1;
                let m = self.stream_status(a.xid, StatusCode::DataMissing, "");
                self.push(&m);
            }
            Ok((changes, true)) => {
                let done = changes.len() < limit;
                if let (CatchUp::Running { after_seq, .. }, Some(last)) = (&mut a.catch_up, changes.last()) {
                    *after_seq = Some(last.seq);
                }
                // A row older than a live change of the same address is stale: the live one is (or will be) sent.
                for c in changes.iter().filter(|c| a.live_seq.get(&c.binding.ip).is_none_or(|&l| l <= c.seq)) {
                    write_binding_reply(
                        &mut self.tx,
                        &c.binding,
                        a.xid,
                        &a.prl,
                        base_time,
                        !a.sent_first,
                        &self.cfg.policy,
                    );
                    a.sent_first = true;
                }
                self.stats.catch_up_sent += changes.len() as u64;
                if done {
                    self.stats.catch_up_complete += 1;
                    // ALQ-8.2-9: CatchUpComplete once everything since query-start-time was sent. The requestor
                    // saves its base-time: it must not pass a live change still queued, nor one committed a
                    // moment ago and still on its way to the feed (a second earlier covers that).
                    a.catch_up = CatchUp::Finished;
                    a.live_seq = HashMap::new();
                    let floor = self.undelivered_floor.map_or(base_time, |f| f.min(base_time));
                    let safe = a.backlog.oldest_time().map_or(floor, |t| t.min(floor)).saturating_sub(1);
                    let mut m = self.stream_status(a.xid, StatusCode::CatchUpComplete, "");
                    m.options.set_u32(crate::options::code::BASE_TIME, safe);
                    self.push(&m);
                }
            }
        }
        self.active = Some(a);
    }

    /// DHCPLEASEQUERYSTATUS for the Active stream, with base-time (ALQ-7.4-11, ALQ-7.4.1-4).
    fn stream_status(&self, xid: u32, status: StatusCode, text: &str) -> Message<'static> {
        let mut m = status_message(MessageType::LeaseQueryStatus, xid, Some((status, text)), None);
        m.options.set_u32(crate::options::code::BASE_TIME, self.clock);
        m
    }

    /// Bytes arrived from the peer.
    pub fn receive(&mut self, bytes: &[u8], now: Instant) {
        if !bytes.is_empty() {
            self.last_progress = now;
        }
        self.rx.extend_from_slice(bytes);
    }

    /// The peer closed its sending side.
    pub fn peer_closed(&mut self) {
        self.close(CloseReason::PeerClosed);
    }

    /// The driver wrote `n` bytes (any progress resets the data timeout).
    pub fn transmitted(&mut self, n: usize, now: Instant) {
        if n > 0 {
            self.last_progress = now;
            self.last_sent = now;
        }
    }

    /// Whether the driver should read more: not while enough unprocessed input is buffered (BLQ-8.4-1).
    pub fn wants_read(&self) -> bool {
        self.closing.is_none()
            && self.rx.len() < self.cfg.max_frame + 2
            && !matches!(self.tls, TlsState::Accepted | TlsState::Handshaking)
    }

    /// Whether the session has finished (after `Output::Close`).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// When [`ServerSession::handle_timeout`] should be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let data = self.last_progress + self.cfg.data_timeout;
        let keepalive = match (&self.active, &self.cfg.active) {
            (Some(_), Some(a)) => Some(self.last_sent + a.idle_timeout),
            _ => None,
        };
        let data = self.pre_auth_deadline().map_or(data, |p| p.min(data));
        (!self.closed).then(|| keepalive.map_or(data, |k| k.min(data)))
    }

    /// Time passed: close after BULK_LQ_DATA_TIMEOUT without progress (BLQ-8.1-5, BLQ-8.2-1, BLQ-8.5-2).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.pre_auth_deadline().is_some_and(|d| now >= d) {
            self.tx.clear();
            self.close(CloseReason::PreAuthTimeout);
            return;
        }
        // ALQ-7.4-2: nothing sent for ACTIVE_LQ_IDLE_TIMEOUT: ConnectionActive. It counts as sending, so an
        // idle Active connection never reaches the data timeout while the requestor reads.
        if let (Some(_), Some(a)) = (&self.active, &self.cfg.active)
            && now >= self.last_sent + a.idle_timeout
        {
            self.keepalive_due = true;
            self.last_sent = now;
            return;
        }
        if now >= self.last_progress + self.cfg.data_timeout {
            self.tx.clear();
            self.close(CloseReason::Timeout);
        }
    }

    /// A write stayed blocked past [`ServerSession::write_timeout`]: give up on the connection (BLQ-8.2-1,
    /// ALQ-8.2-1). Nothing more can be sent on it.
    pub fn write_blocked(&mut self) {
        self.tx.clear();
        self.close(CloseReason::Timeout);
    }

    /// The server is shutting down: end every running query with QueryTerminated (BLQ-8.5-4), then close.
    pub fn shutdown(&mut self) {
        self.shutdown_with("server shutting down");
    }

    /// [`ServerSession::shutdown`] with `text` as the status message: the server ends this connection, e.g.
    /// because a new configuration no longer allows its requestor (ALQ-7.4-11/12: QueryTerminated is the last
    /// message).
    pub fn shutdown_with(&mut self, text: &str) {
        if let Some(a) = self.active.take() {
            // ALQ-7.4-11/12: QueryTerminated with base-time, the last message on the connection.
            let m = self.stream_status(a.xid, StatusCode::QueryTerminated, text);
            self.push(&m);
        }
        for r in std::mem::take(&mut self.queries) {
            self.push(&done(r.q.xid, Some((StatusCode::QueryTerminated, text)), None));
        }
        self.close(CloseReason::Shutdown);
    }

    /// Take new settings (a configuration reload): what replies may contain, limits and timers apply from
    /// the next message on. The TLS policy of an established connection is the driver's business: it ends
    /// (with [`ServerSession::shutdown_with`]) a connection the new settings would not have accepted.
    pub fn reconfigure(&mut self, cfg: ServerConfig) {
        self.cfg = cfg;
    }

    /// The store answered a fetch. An error ends the query with UnspecFail (BLQ-8.2-3).
    pub fn page(&mut self, xid: u32, page: Result<Vec<BindingChange>, FetchError>) {
        if self.fetching == Some(xid) {
            self.fetching = None;
        }
        let limit = self.cfg.page_size;
        let Some(i) = self.queries.iter().position(|r| r.q.xid == xid) else { return };
        match page {
            Ok(page) => {
                let r = &mut self.queries[i];
                r.store_exhausted = page.len() < limit;
                if let Some(last) = page.last() {
                    r.store_after = Some(last.binding.ip);
                }
                let (from, to) = (r.q.request.changed_on_or_after, r.q.request.changed_on_or_before);
                let inside = |t: u32| from.is_none_or(|f| f <= t) && to.is_none_or(|e| t <= e);
                // BLQ-8.2-8: a query by MAC, client-id, remote-id or relay-id returns the addresses currently
                // bound. With a time window it returns every binding of the key that changed inside it, in its
                // state, so a requestor filling a gap learns of releases too (docs/conformance.md).
                let bound_only = r.q.request.key != BulkKey::All && from.is_none() && to.is_none();
                let now = self.clock;
                let bound = |b: &Binding| b.state == DhcpState::Active && b.expires_at.is_none_or(|e| e > now);
                r.buffer.extend(page.into_iter().map(|c| {
                    let send = inside(c.time) && (!bound_only || bound(&c.binding));
                    (c.binding, send)
                }));
            }
            Err(e) => {
                let r = self.queries.remove(i).expect("index found above");
                self.push(&done(r.q.xid, Some((StatusCode::UnspecFail, &e.to_string())), None));
            }
        }
    }

    /// The next thing for the driver to do, or `None` to wait for input, a page or the timeout.
    pub fn poll_output(&mut self, base_time: u32) -> Option<Output> {
        if self.closed {
            return None;
        }
        self.clock = base_time;
        if !self.tx.is_empty() {
            return Some(Output::Transmit(std::mem::take(&mut self.tx)));
        }
        if let Some(reason) = self.closing.clone() {
            self.closed = true;
            return Some(Output::Close(reason));
        }
        if self.tls == TlsState::Accepted {
            // The DHCPTLS answer is out; nothing may have come after the request (the requestor waits for it).
            if !self.rx.is_empty() {
                self.close(CloseReason::TlsRequired);
                return self.poll_output(base_time);
            }
            self.tls = TlsState::Handshaking;
            return Some(Output::StartTls);
        }
        if self.tls == TlsState::Handshaking {
            return None;
        }
        self.read_queries();
        if self.closing.is_some() || !self.tx.is_empty() {
            return self.poll_output(base_time);
        }
        if let Some(out) = self.active_step(base_time) {
            return Some(out);
        }
        // Round-robin: the front query does one step, then goes to the back (BLQ-7.7-3: no query waits for
        // another to finish).
        for _ in 0..self.queries.len() {
            let mut r = self.queries.pop_front()?;
            let step = self.step(&mut r, base_time);
            match step {
                Step::Done => {
                    self.push(&done(r.q.xid, None, (!r.sent_first).then_some(self.cfg.policy.server_id)));
                }
                Step::Sent => self.queries.push_back(r),
                Step::Fetch(f) => {
                    self.queries.push_back(r);
                    self.fetching = Some(f.xid);
                    return Some(Output::Fetch(f));
                }
                Step::Wait => self.queries.push_back(r),
            }
            if !self.tx.is_empty() {
                return Some(Output::Transmit(std::mem::take(&mut self.tx)));
            }
        }
        None
    }

    /// One step of the Active stream: a due keep-alive, then queued live changes, then the next catch-up page.
    fn active_step(&mut self, base_time: u32) -> Option<Output> {
        let mut a = self.active.take()?;
        if std::mem::take(&mut self.keepalive_due) {
            let m = self.stream_status(a.xid, StatusCode::ConnectionActive, "");
            self.push(&m);
        }
        for _ in 0..self.cfg.page_size {
            let Some(c) = a.backlog.pop_first() else { break };
            // base-time = the change's commit time (see `Backlog`): never later than a change still queued.
            let base = c.time.min(base_time);
            write_binding_reply(&mut self.tx, &c.binding, a.xid, &a.prl, base, !a.sent_first, &self.cfg.policy);
            a.sent_first = true;
            self.stats.live_sent += 1;
        }
        let fetch = match &a.catch_up {
            CatchUp::Running { since, after_seq } if !a.fetching && self.tx.is_empty() => {
                a.fetching = true;
                Some(ChangesFetch { since: *since, after_seq: *after_seq, limit: self.cfg.page_size })
            }
            _ => None,
        };
        self.active = Some(a);
        if !self.tx.is_empty() {
            return Some(Output::Transmit(std::mem::take(&mut self.tx)));
        }
        fetch.map(Output::FetchChanges)
    }

    fn step(&mut self, r: &mut Running, base_time: u32) -> Step {
        if r.q.vpn == VpnScope::Other {
            // No address of ours is in another VPN (BLQ-8.2-9).
            return Step::Done;
        }
        let mut sent = 0;
        while sent < self.cfg.page_size {
            let next_record = r.buffer.front().map(|(b, _)| u32::from(b.ip) as u64);
            // Never-leased configured addresses below the next record (or all of them once the store is done).
            if r.synthesize {
                let bound = match (next_record, r.store_exhausted) {
                    (Some(ip), _) => ip,
                    (None, true) => 1 << 32,
                    (None, false) => r.synth_next,
                };
                if let Some(ip) = next_configured(&self.cfg.configured, r.synth_next).filter(|ip| *ip < bound) {
                    let b = Binding::new(Ipv4Addr::from(ip as u32), DhcpState::Available, self.cfg.available_since);
                    self.reply(r, &b, base_time);
                    r.synth_next = ip + 1;
                    sent += 1;
                    continue;
                }
            }
            match r.buffer.pop_front() {
                Some((b, send)) => {
                    r.synth_next = u32::from(b.ip) as u64 + 1;
                    if send {
                        self.reply(r, &b, base_time);
                        sent += 1;
                    }
                }
                None if r.store_exhausted => {
                    if r.synthesize && next_configured(&self.cfg.configured, r.synth_next).is_some() {
                        continue;
                    }
                    return if sent > 0 { Step::Sent } else { Step::Done };
                }
                None => {
                    if sent > 0 {
                        return Step::Sent;
                    }
                    if self.fetching.is_some() {
                        return Step::Wait;
                    }
                    // Reporting record-less addresses needs every record, whatever the window.
                    let window = !r.synthesize;
                    return Step::Fetch(Fetch {
                        xid: r.q.xid,
                        request: BulkRequest {
                            key: r.q.request.key.clone(),
                            changed_on_or_after: r.q.request.changed_on_or_after.filter(|_| window),
                            changed_on_or_before: r.q.request.changed_on_or_before.filter(|_| window),
                        },
                        after: r.store_after,
                        limit: self.cfg.page_size,
                    });
                }
            }
        }
        Step::Sent
    }

    fn reply(&mut self, r: &mut Running, b: &Binding, base_time: u32) {
        write_binding_reply(&mut self.tx, b, r.q.xid, &r.prl, base_time, !r.sent_first, &self.cfg.policy);
        r.sent_first = true;
    }

    fn push(&mut self, m: &Message<'_>) {
        // Our own replies are well-formed and far below 65535 octets.
        encode_frame(m, &mut self.tx).expect("replies encode");
    }

    fn close(&mut self, reason: CloseReason) {
        if self.closing.is_none() {
            self.closing = Some(reason);
        }
    }

    /// Parse buffered frames while fewer than `max_queries` queries run.
    fn read_queries(&mut self) {
        let mut used = 0;
        while self.queries.len() < self.cfg.max_queries.max(1) && self.closing.is_none() {
            let frame = match self.frames.decode(&self.rx[used..]) {
                Ok(Some((frame, n))) => {
                    used += n;
                    frame.to_vec()
                }
                Ok(None) => break,
                Err(e) => {
                    self.close(CloseReason::BadFrame(e));
                    break;
                }
            };
            let m = match Message::decode(&frame) {
                Ok(m) => m,
                Err(e) => {
                    if !self.answer_undecodable(&frame, &e) {
                        self.close(CloseReason::BadMessage(e));
                        break;
                    }
                    continue;
                }
            };
            self.handle_message(&m);
            if self.tls == TlsState::Accepted {
                break;
            }
        }
        self.rx.drain(..used);
    }

    /// A query whose header decodes but whose options do not (e.g. query-start-time twice: RFC 3396 joins the
    /// copies into one 8-octet option, which is no valid time): the xid sits at a fixed offset, so the query
    /// gets DONE with MalformedQuery (BLQ-8.2-6's answer to a query it cannot process) and the connection's
    /// other queries go on. Only where a Bulk query could be answered at all: not before TLS in secure mode
    /// (ALQ-8.1-9), not on an Active connection, not with an xid already running. `false`: close instead.
    fn answer_undecodable(&mut self, frame: &[u8], e: &crate::DecodeError) -> bool {
        use crate::DecodeError as D;
        let header_ok =
            !matches!(e, D::TruncatedHeader { .. } | D::BadOp(_) | D::BadHardwareLength(_) | D::BadMagicCookie(_));
        let Some(xid) = frame.get(4..8).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])) else { return false };
        let answerable = header_ok
            && frame[0] == 1
            && !(self.cfg.tls == TlsPolicy::Require && self.tls != TlsState::Established)
            && self.active.is_none()
            && !self.queries.iter().any(|r| r.q.xid == xid);
        if answerable {
            self.seen_first_message = true;
            let text = format!("the query does not decode: {e}");
            self.push(&done(xid, Some((StatusCode::MalformedQuery, &text)), Some(self.cfg.policy.server_id)));
        }
        answerable
    }

    /// DHCPTLS (RFC 7724 §8.1): only as the first message; refused when TLS is not configured (the connection
    /// may go on in the clear), else answered without a status and followed by the handshake.
    fn handle_dhcptls(&mut self, m: &Message<'_>, first: bool) {
        if !first || self.tls != TlsState::Plain {
            self.close(CloseReason::ForbiddenMessage(MessageType::Tls));
            return;
        }
        match self.cfg.tls {
            TlsPolicy::Refuse => {
                let status = Some((StatusCode::TlsConnectionRefused, "TLS is not configured"));
                self.push(&status_message(MessageType::Tls, m.xid, status, None));
            }
            // ALQ-8.1-10/12: answer without a status-code; options in the request are ignored.
            TlsPolicy::Offer | TlsPolicy::Require => {
                self.push(&status_message(MessageType::Tls, m.xid, None, None));
                self.tls = TlsState::Accepted;
            }
        }
    }

    fn start_active(&mut self, m: &Message<'_>) {
        // ALQ-8.3-1: one query per Active connection, and none beside bulk queries.
        if self.active.is_some() || !self.queries.is_empty() {
            let mut s = status_message(
                MessageType::LeaseQueryStatus,
                m.xid,
                Some((StatusCode::NotAllowed, "another query runs on this connection")),
                None,
            );
            s.options.set_u32(crate::options::code::BASE_TIME, self.clock);
            self.push(&s);
            self.close(CloseReason::ActiveRefused);
            return;
        }
        match active::validate(m) {
            Err((status, text)) => {
                let mut s = status_message(MessageType::LeaseQueryStatus, m.xid, Some((status, text)), None);
                s.options.set_u32(crate::options::code::BASE_TIME, self.clock);
                self.push(&s);
                self.close(CloseReason::ActiveRefused);
            }
            Ok(_) if !self.cfg.query_types.contains(QueryTypes::ACTIVE) => {
                // BLQ-9-6, ALQ-8.2-2: not allowed for this requestor: a status, then the close.
                let status = Some((StatusCode::NotAllowed, "this requestor may not make active leasequeries"));
                let mut s = status_message(MessageType::LeaseQueryStatus, m.xid, status, None);
                s.options.set_u32(crate::options::code::BASE_TIME, self.clock);
                self.push(&s);
                self.close(CloseReason::ActiveRefused);
            }
            Ok(start) => {
                self.admitted = true;
                let mut prl =
                    m.options.parameter_request_list().map_or_else(|| default_prl::TCP.to_vec(), <[u8]>::to_vec);
                if !prl.contains(&crate::options::code::BASE_TIME) {
                    prl.insert(0, crate::options::code::BASE_TIME);
                }
                let catch_up = match start {
                    Some(since) => CatchUp::Running { since, after_seq: None },
                    None => CatchUp::NotRequested,
                };
                self.active = Some(Active {
                    xid: m.xid,
                    prl,
                    catch_up,
                    backlog: Default::default(),
                    fetching: false,
                    sent_first: false,
                    live_seq: HashMap::new(),
                });
            }
        }
    }

    fn handle_message(&mut self, m: &Message<'_>) {
        let first = !std::mem::replace(&mut self.seen_first_message, true);
        let t = m.message_type();
        if t == Some(MessageType::Tls) {
            return self.handle_dhcptls(m, first);
        }
        // ALQ-8.1-9: in secure mode nothing but DHCPTLS may open the connection.
        if self.cfg.tls == TlsPolicy::Require && self.tls != TlsState::Established {
            self.close(CloseReason::TlsRequired);
            return;
        }
        match t {
            Some(MessageType::BulkLeaseQuery) if self.active.is_some() => {
                // ALQ-8.3-1: nothing else runs on an Active Leasequery connection.
                let status = Some((StatusCode::NotAllowed, "an active leasequery runs on this connection"));
                self.push(&done(m.xid, status, Some(self.cfg.policy.server_id)));
            }
            Some(MessageType::BulkLeaseQuery) => match BulkQuery::parse(m) {
                _ if self.queries.iter().any(|r| r.q.xid == m.xid) => {
                    self.push(&done(
                        m.xid,
                        Some((StatusCode::MalformedQuery, "xid already in use on this connection")),
                        None,
                    ));
                }
                Ok(q) if !self.cfg.query_types.contains(QueryTypes::of_key(&q.request.key)) => {
                    // BLQ-9-6: a query of a kind this requestor may not make: DONE with NotAllowed (and no
                    // admission: it has not shown it may use the connection).
                    let text = "this requestor may not make this kind of query";
                    self.push(&done(m.xid, Some((StatusCode::NotAllowed, text)), Some(self.cfg.policy.server_id)));
                }
                Ok(q) => {
                    self.admitted = true;
                    // A configured address without a record has been available since the history horizon
                    // at least (never leased, or forgotten after retention); so it "changed" inside any
                    // window that contains the horizon. That is how a requestor filling a DataMissing gap
                    // learns of bindings the server forgot in the meantime (docs/conformance.md).
                    let h = self.cfg.available_since;
                    let synthesize = q.request.key == BulkKey::All
                        && q.request.changed_on_or_after.is_none_or(|from| from <= h)
                        && q.request.changed_on_or_before.is_none_or(|to| h <= to);
                    let prl = q.prl.clone().unwrap_or_else(|| default_prl::TCP.to_vec());
                    self.queries.push_back(Running {
                        q,
                        prl,
                        sent_first: false,
                        buffer: VecDeque::new(),
                        store_after: None,
                        store_exhausted: false,
                        synth_next: 0,
                        synthesize,
                    });
                }
                Err((status, text)) => self.push(&done(m.xid, Some((status, text)), Some(self.cfg.policy.server_id))),
            },
            Some(MessageType::ActiveLeaseQuery) if self.cfg.active.is_some() => self.start_active(m),
            // RFC 7724 §8.1.1: anything else not supported on this connection closes it.
            other => self.close(CloseReason::ForbiddenMessage(other.unwrap_or(MessageType::Unknown(0)))),
        }
    }
}

enum Step {
    /// Replies were produced.
    Sent,
    /// The query needs a store page.
    Fetch(Fetch),
    /// Another query's page is being fetched.
    Wait,
    /// Nothing more to send: DONE.
    Done,
}

/// The lowest configured address ≥ `from`.
fn next_configured(ranges: &[(u32, u32)], from: u64) -> Option<u64> {
    ranges.iter().find(|(_, hi)| *hi as u64 >= from).map(|(lo, _)| (*lo as u64).max(from))
}

#[cfg(test)]
mod tests;
