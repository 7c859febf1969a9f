//! The Active Leasequery part of a server session (RFC 7724 §7.4, §8.2): after a valid
//! DHCPACTIVELEASEQUERY, the connection carries catch-up from the store (when asked with query-start-time)
//! interleaved with live changes from the feed, keep-alives when idle, and ends with QueryTerminated.
//!
//! Live changes wait in a backlog that coalesces by address (latest state wins, RFC 7724 §6 allows it); a
//! backlog past its bound means the requestor cannot keep up, and the connection is closed so the requestor
//! recovers by catch-up instead of the server buffering without limit.

use crate::{BindingChange, Message, StatusCode};
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
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
    /// Close when a write is blocked this long (ALQ-8.2-1). Enforced by the driver with [`super::ServerSession::write_timeout`].
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

/// Live changes waiting to be sent: one per address (a newer change supersedes the queued one, RFC 7724 §6),
/// taken in commit order.
///
/// Commit order matters for the requestor's saved base-time (RFC 7724 §7.4): each live message carries its
/// change's commit time as base-time, so when a connection drops, every change not yet delivered has a
/// commit time at or after the last base-time the requestor saved, and its catch-up (inclusive) gets it.
///
/// The changes are the feed's shared `Arc`s, so a hundred connections queue a change without a hundred copies.
/// The queue is in commit order because the feed is; a superseded change stays in it and is skipped when it
/// comes out (it is no longer the address's latest in `latest`), and the queue is compacted when such dead
/// entries outnumber the live ones, so one address changing fast cannot grow it without bound.
#[derive(Debug, Default)]
pub struct Backlog {
    queue: VecDeque<Arc<BindingChange>>,
    /// Queued addresses and the sequence number of their latest queued change.
    latest: HashMap<Ipv4Addr, u64>,
}

impl Backlog {
    /// Queue a change (changes arrive in sequence order); `true` when it superseded a queued change of the same
    /// address.
    pub fn insert(&mut self, c: Arc<BindingChange>) -> bool {
        let replaced = self.latest.insert(c.binding.ip, c.seq).is_some();
        self.queue.push_back(c);
        if replaced && self.queue.len() > 2 * self.latest.len() + 64 {
            let latest = &self.latest;
            self.queue.retain(|c| latest.get(&c.binding.ip) == Some(&c.seq));
        }
        replaced
    }

    /// The oldest queued change that is its address's latest.
    pub fn pop_first(&mut self) -> Option<Arc<BindingChange>> {
        while let Some(c) = self.queue.pop_front() {
            if self.latest.get(&c.binding.ip) == Some(&c.seq) {
                self.latest.remove(&c.binding.ip);
                return Some(c);
            }
        }
        None
    }

    /// Commit time of the oldest queued change.
    pub fn oldest_time(&self) -> Option<u32> {
        self.queue.iter().find(|c| self.latest.get(&c.binding.ip) == Some(&c.seq)).map(|c| c.time)
    }

    /// Addresses queued.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
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

#[cfg(test)]
mod tests {
    use super::Backlog;
    use crate::{Binding, BindingChange, DhcpState};
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    fn change(last: u8, seq: u64, time: u32) -> Arc<BindingChange> {
        let binding = Binding::new(Ipv4Addr::new(10, 0, 0, last), DhcpState::Active, time);
        Arc::new(BindingChange { seq, time, binding })
    }

    fn drain(b: &mut Backlog) -> Vec<u64> {
        std::iter::from_fn(|| b.pop_first()).map(|c| c.seq).collect()
    }

    // ALQ-6 (coalescing by address): a newer change of a queued address supersedes it; the rest keep commit order.
    #[test]
    fn superseded_changes_are_skipped_and_order_is_commit_order() {
        let mut b = Backlog::default();
        assert!(!b.insert(change(1, 1, 100)));
        assert!(!b.insert(change(2, 2, 101)));
        assert!(b.insert(change(1, 3, 102)));
        assert_eq!(b.len(), 2);
        // Address 1's first change is dead: the oldest live one is address 2's.
        assert_eq!(b.oldest_time(), Some(101));
        assert_eq!(drain(&mut b), vec![2, 3]);
        assert!(b.is_empty());
        assert_eq!(b.oldest_time(), None);
    }

    #[test]
    fn one_address_changing_fast_does_not_grow_the_queue() {
        let mut b = Backlog::default();
        for seq in 1..=10_000 {
            b.insert(change(7, seq, 100));
        }
        assert_eq!(b.len(), 1);
        assert!(b.queue.len() <= 2 * b.len() + 65, "dead entries compacted: {}", b.queue.len());
        assert_eq!(drain(&mut b), vec![10_000]);
    }

    #[test]
    fn a_change_queued_again_after_it_was_sent_is_sent_again() {
        let mut b = Backlog::default();
        b.insert(change(1, 1, 100));
        assert_eq!(drain(&mut b), vec![1]);
        assert!(!b.insert(change(1, 2, 101)), "nothing queued to supersede");
        assert_eq!(drain(&mut b), vec![2]);
    }
}
