//! The Active Leasequery part of a server session (RFC 7724 §7.4, §8.2): after a valid
//! DHCPACTIVELEASEQUERY, the connection carries catch-up from the store (when asked with query-start-time)
//! interleaved with live changes from the feed, keep-alives when idle, and ends with QueryTerminated.
//!
//! Live changes wait in a backlog that coalesces by address (latest state wins, RFC 7724 §6 allows it); a
//! backlog past its bound means the requestor cannot keep up, and the connection is closed so the requestor
//! recovers by catch-up instead of the server buffering without limit.

use crate::{Binding, BindingChange, Message, StatusCode};
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
    /// Live changes not yet sent, latest state per address, in commit order.
    pub backlog: Backlog,
    /// Whether a catch-up page is being fetched.
    pub fetching: bool,
    /// Whether the first reply (with server-id) went out.
    pub sent_first: bool,
    /// During catch-up: the newest live sequence number per address. A catch-up page read before a live change
    /// can reach the driver after that change went out; its older row is then skipped, so the requestor never
    /// sees a binding go back in time within one second (where RFC 6926 §7.6's time rules cannot tell).
    pub live_seq: HashMap<Ipv4Addr, u64>,
}

/// Live changes waiting to be sent: one entry per address (a newer change replaces the queued one, RFC 7724
/// §6), taken in commit order.
///
/// Commit order matters for the requestor's saved base-time (RFC 7724 §7.4): each live message carries its
/// change's commit time as base-time, so when a connection drops, every change not yet delivered has a
/// commit time at or after the last base-time the requestor saved, and its catch-up (inclusive) gets it.
#[derive(Debug, Default)]
pub struct Backlog {
    by_seq: BTreeMap<u64, (u32, Binding)>,
    seq_of: HashMap<Ipv4Addr, u64>,
}

impl Backlog {
    /// Queue a change; `true` when it replaced a queued change of the same address.
    pub fn insert(&mut self, c: &BindingChange) -> bool {
        let replaced = match self.seq_of.insert(c.binding.ip, c.seq) {
            Some(old) => self.by_seq.remove(&old).is_some(),
            None => false,
        };
        self.by_seq.insert(c.seq, (c.time, c.binding.clone()));
        replaced
    }

    /// The oldest queued change: its commit time and binding.
    pub fn pop_first(&mut self) -> Option<(u32, Binding)> {
        let (_, (time, b)) = self.by_seq.pop_first()?;
        self.seq_of.remove(&b.ip);
        Some((time, b))
    }

    /// Commit time of the oldest queued change.
    pub fn oldest_time(&self) -> Option<u32> {
        self.by_seq.first_key_value().map(|(_, (t, _))| *t)
    }

    /// Addresses queued.
    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }
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
