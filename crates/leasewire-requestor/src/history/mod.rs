//! Who had this address at that time: every change the replica applies, kept as an event in the replica
//! file, and the answers built from them.
//!
//! * Events are appended by the replica's own flush, in the same SQLite transaction as the bindings and the
//!   saved base-times ([`crate::replica::Flush`]): after a crash the history holds exactly what the replica
//!   file holds, and the catch-up that follows re-sends (and so records) the rest. Only changes the merge
//!   accepted are recorded: a duplicate from a Bulk seed or a gap fill adds nothing.
//! * `store` owns the schema: compact rows (integer times, clients and option 82 values interned) so an
//!   event costs about a hundred bytes on disk, with indexes by address, client (MAC, client-id) and relay
//!   (remote-id, relay-id) over time. Old events are pruned in small batches behind the stream.
//! * [`timeline`] turns one address's events into intervals: a client holding it (renewals merged) or the
//!   address free (released, expired, or a lease end that passed without a message).
//! * [`HistoryReader`] answers queries from a read-only connection, so `leasewire history` and `/history`
//!   never wait on (nor hold up) the watcher's writes.
//!
//! Times are the server's clock, as it reported them (start-time-of-state, client-last-transaction-time,
//! lease end); each event also keeps the requestor's clock when it arrived.

#[cfg(feature = "sqlite")]
pub(crate) mod store;
pub mod time;
pub mod timeline;

use leasewire_proto::{Binding, DhcpState};
use std::net::Ipv4Addr;

#[cfg(feature = "sqlite")]
pub use store::HistoryReader;
pub use timeline::Interval;

/// The retention when none is given (30 days).
pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// Where an observation came from: the last tie-breaker of the merge, the Active stream winning over a
/// Bulk Leasequery's snapshot of the same instant. Defined with the history's events (each records it) so
/// the history never imports the replica that feeds it; the replica re-exports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Via {
    /// A Bulk Leasequery reply (seed or gap fill).
    Bulk,
    /// An Active Leasequery message.
    Active,
}

/// One change the replica applied, as it will be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The address.
    pub ip: Ipv4Addr,
    /// The binding after the change, as its server reported it.
    pub binding: Binding,
    /// Which watched server reported it (index into the replica's server list).
    pub server: u16,
    /// The requestor's clock when it was applied (Unix seconds).
    pub seen: u32,
    /// Whether it came from the Active stream or a Bulk Leasequery (seed, gap fill).
    pub via: Via,
}

impl Event {
    /// When the change happened, in the server's clock: the later of start-time-of-state and
    /// client-last-transaction-time (a renewal keeps the state and moves only the latter).
    pub fn changed_at(&self) -> u32 {
        changed_at(&self.binding)
    }
}

/// [`Event::changed_at`] of a binding.
pub fn changed_at(b: &Binding) -> u32 {
    b.state_since.max(b.cltt.unwrap_or(0))
}

/// What to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// An address: its whole timeline.
    Ip(Ipv4Addr),
    /// A hardware address (any htype): the intervals in which it held an address.
    Mac(Vec<u8>),
    /// A client identifier (option 61).
    ClientId(Vec<u8>),
    /// A relay agent remote-id (option 82 sub-option 2): intervals of clients behind it.
    RemoteId(Vec<u8>),
    /// A relay-id (option 82 sub-option 12, RFC 6925).
    RelayId(Vec<u8>),
}

/// When: one instant or a period (both in the server's clock, Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The interval in force at this time ("who held it then").
    At(u32),
    /// Every interval that overlaps `from..=to`.
    Between {
        /// Start.
        from: u32,
        /// End.
        to: u32,
    },
}

/// A question to the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// What.
    pub key: Key,
    /// When.
    pub window: Window,
    /// The current time (Unix seconds): a lease whose end passed without a message is shown as ended then.
    pub now: u32,
}

/// Why a history question could not be answered.
#[cfg(feature = "sqlite")]
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// SQLite failed.
    #[error("history {path}: {source}")]
    Sqlite {
        /// The file.
        path: String,
        /// What failed.
        source: rusqlite::Error,
    },
    /// The file is not a replica with history (never written by `watch --db`, or by an older version).
    #[error("history {path}: no history in this file (not a replica file written with history kept)")]
    NoHistory {
        /// The file.
        path: String,
    },
}

/// Whether a state means a client holds the address.
pub(crate) fn held(state: DhcpState) -> bool {
    state == DhcpState::Active
}

#[cfg(all(test, feature = "sqlite"))]
mod tests;
