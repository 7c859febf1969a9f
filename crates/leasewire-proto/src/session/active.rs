//! The Active Leasequery part of a server session (RFC 7724 §7.4, §8.2): after a valid
//! DHCPACTIVELEASEQUERY, the connection carries catch-up from the store (when asked with query-start-time)
//! interleaved with live changes from the feed, keep-alives when idle, and ends with QueryTerminated.
//!
//! Live changes wait in a backlog that coalesces by address (latest state wins, RFC 7724 §6 allows it); a
//! backlog past its bound means the requestor cannot keep up, and the connection is closed so the requestor
//! recovers by catch-up instead of the server buffering without limit.

use crate::{Binding, Message, StatusCode};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::Duration;

/// RFC 7724 §5.3: ACTIVE_LQ_IDLE_TIMEOUT.
pub const ACTIVE_LQ_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// RFC 7724 §5.3: ACTIVE_LQ_SEND_TIMEOUT.
pub const ACTIVE_LQ_SEND_TIMEOUT: Duration = Duration::from_secs(120);

/// Active Leasequery settings (present only when Active Leasequery is enabled, ALQ-8.1-2).
#[derive(Debug, Clone)]
pub struct ActiveConfig {
    /// Send ConnectionActive after this long without sending anything (ALQ-7.4-2).
    pub idle_timeout: Duration,
    /// Close when a write is blocked this long (ALQ-8.2-1). Enforced by the driver with [`super::server::ServerSession::write_timeout`].
    pub send_timeout: Duration,
    /// Addresses waiting to be sent before the requestor counts as too slow.
    pub max_backlog: usize,
}

impl Default for ActiveConfig {
    fn default() -> Self {
        Self { idle_timeout: ACTIVE_LQ_IDLE_TIMEOUT, send_timeout: ACTIVE_LQ_SEND_TIMEOUT, max_backlog: 65_536 }
    }
}

/// Where catch-up stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatchUp {
    /// No query-start-time: live only.
    NotRequested,
    /// Sending what changed since `since`, page by page in sequence order.
    Running {
        /// query-start-time.
        since: u32,
        /// Last sequence number fetched.
        after_seq: Option<u64>,
    },
    /// CatchUpComplete or DataMissing was sent.
    Finished,
}

/// A catch-up page request: changes since `since`, in sequence order after `after_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangesFetch {
    /// query-start-time.
    pub since: u32,
    /// Keyset cursor.
    pub after_seq: Option<u64>,
    /// Page size.
    pub limit: usize,
}

/// The running Active Leasequery of a connection.
#[derive(Debug)]
pub struct Active {
    /// The query's xid: every message of the stream carries it (ALQ-7.1-3).
    pub xid: u32,
    /// The query's parameter request list, with base-time added (every reply carries it, ALQ-7.3-5).
    pub prl: Vec<u8>,
    /// Catch-up state.
    pub catch_up: CatchUp,
    /// Live changes not yet sent, latest state per address.
    pub backlog: BTreeMap<Ipv4Addr, Binding>,
    /// Whether a catch-up page is being fetched.
    pub fetching: bool,
    /// Whether the first reply (with server-id) went out.
    pub sent_first: bool,
    /// During catch-up: the newest live sequence number per address. A catch-up page read before a live change
    /// can reach the driver after that change went out; its older row is then skipped, so the requestor never
    /// sees a binding go back in time within one second (where RFC 6926 §7.6's time rules cannot tell).
    pub live_seq: HashMap<Ipv4Addr, u64>,
}

/// Validate a DHCPACTIVELEASEQUERY: ALQ-7.3-2 (no ciaddr, chaddr or client-id) and ALQ-8.2-6 (no
/// query-end-time). The error is the status of the DHCPLEASEQUERYSTATUS that answers it.
pub fn validate(m: &Message<'_>) -> Result<Option<u32>, (StatusCode, &'static str)> {
    let hw = m.hardware_address();
    if !m.ciaddr.is_unspecified() || hw.iter().any(|&b| b != 0) || m.options.client_identifier().is_some() {
        return Err((StatusCode::MalformedQuery, "an active leasequery has no ciaddr, chaddr or client-id"));
    }
    if m.options.query_end_time().is_some() {
        return Err((StatusCode::MalformedQuery, "query-end-time is not allowed in an active leasequery"));
    }
    Ok(m.options.query_start_time())
}
