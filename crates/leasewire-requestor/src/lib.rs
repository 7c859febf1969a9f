//! leasewire's Leasequery requestor, embeddable: keep a live, exact replica of one or more DHCPv4 servers'
//! bindings (RFC 7724 Active Leasequery, seeded and gap-filled by RFC 6926 Bulk Leasequery), look addresses
//! and clients up in it, and watch the changes as they come; or ask a single question over UDP (RFC 4388).
//!
//! The entry type is [`Watcher`]: [`Watcher::builder`] takes the servers, [`WatcherBuilder::spawn`] starts the
//! watcher on the current Tokio runtime and returns a [`Watching`] handle — a stream of [`status::Report`]s
//! ([`Watching::subscribe`]), lookups ([`Watching::get`], [`Watching::by_hardware_address`]), each server's
//! [`status::ServerStatus`] ([`Watching::status`]), and a graceful [`Watching::stop`] that writes the replica
//! one last time.
//!
//! ```no_run
//! use leasewire_requestor::{Watcher, conn::Target, status::Report};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Target { addr: "192.0.2.1:67".parse()?, tls: None };
//! let watcher = Watcher::builder([server]).replica_file("/var/lib/replica.db").spawn()?;
//! let mut reports = watcher.subscribe();
//! while let Ok(report) = reports.recv().await {
//!     if let Report::Change { binding, .. } = report {
//!         println!("{} is now {}", binding.ip, binding.state.name());
//!         break;
//!     }
//! }
//! let who = watcher.get("192.0.2.10".parse()?).map(|(binding, _server)| binding.hardware_address);
//! println!("192.0.2.10 is held by {who:?}");
//! watcher.stop().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The modules underneath, for what the watcher does not cover:
//!
//! * [`udp_query`]: RFC 4388 / RFC 6148 queries over UDP, with RFC 2131 retransmission.
//! * [`bulk`]: RFC 6926 Bulk Leasequery over TCP, plain or inside TLS.
//! * [`active`]: one RFC 7724 Active Leasequery connection, driving the sans-IO session of
//!   `leasewire_proto::session::requestor::active`.
//! * [`replica`]: the requestor's copy of the servers' bindings, merged per RFC 6926 §7.6.
//! * [`watch`]: the engine under [`Watcher`]: bulk seed, Active stream, catch-up and gap filling after any
//!   disconnect, for one or several servers, through one merger.
//! * [`status`]: what a watcher reports; [`json`]: the one JSON form of a binding (docs/json.md).
//!
//! # Features
//!
//! All on by default; `default-features = false` leaves a watcher with an in-memory replica and none of
//! axum, prometheus-client or SQLite compiled in.
//!
//! * `sqlite`: the replica persisted in a file ([`WatcherBuilder::replica_file`]) with its history of
//!   changes ([`WatcherBuilder::history`], `history::HistoryReader`).
//! * `metrics`: Prometheus metrics of a watcher (`metrics::WatchMetrics`, [`Watching::metrics`]).
//! * `http` (needs `metrics`): the watcher's HTTP endpoint (`http::serve`): `/metrics`, `/bindings`, the
//!   browser view, and `/history` when `sqlite` is on too.
#![forbid(unsafe_code)]

pub mod active;
pub mod bulk;
pub mod conn;
pub mod history;
#[cfg(feature = "http")]
pub mod http;
pub mod json;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod replica;
pub mod status;
pub mod tls;
pub mod udp_query;
pub mod watch;
mod watcher;
#[cfg(feature = "http")]
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
