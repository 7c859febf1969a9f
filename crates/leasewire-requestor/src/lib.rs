//! leasewire's Leasequery requestor.
//!
//! * [`leasequery`]: RFC 4388 / RFC 6148 queries over UDP, with RFC 2131 retransmission.
//! * [`bulk`]: RFC 6926 Bulk Leasequery over TCP, plain or inside TLS.
//! * [`active`]: one RFC 7724 Active Leasequery connection, driving the sans-IO session of
//!   `leasewire_proto::session::requestor::active`.
//! * [`replica`]: the requestor's copy of the servers' bindings, merged per RFC 6926 §7.6 and persisted.
//! * [`watch`]: keeps a replica exact: bulk seed, Active stream, catch-up and gap filling after any disconnect,
//!   for one or several servers.
#![forbid(unsafe_code)]

pub mod active;
pub mod bulk;
pub mod conn;
pub mod history;
pub mod http;
pub mod json;
pub mod leasequery;
pub mod metrics;
pub mod replica;
pub mod status;
pub mod tls;
pub mod watch;
mod watcher;
mod web;

pub use watcher::{WatchError, Watcher, WatcherBuilder, Watching};

/// The requestor's clock, in Unix seconds (the unit of base-time).
pub(crate) fn unix_now() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}

/// A transaction id for a new connection: unique per connection is what RFC 7724 §7.3 asks (ALQ-7.3-3);
/// different across restarts so a stale reply is never taken for a new one.
pub fn fresh_xid() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.subsec_nanos());
    seed.wrapping_mul(2_654_435_761).wrapping_add(NEXT.fetch_add(0x1000, Ordering::Relaxed))
}
