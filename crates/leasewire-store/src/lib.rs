//! leasewire's lease-state database: the one thing every leasequery flavour is a view of.
//!
//! * RFC 4388 looks bindings up by address, hardware address, client-id or remote-id:
//!   [`LeaseStore::get`], [`LeaseStore::by_hardware_address`], [`LeaseStore::by_client_id`],
//!   [`LeaseStore::by_remote_id`].
//! * RFC 6926 scans them in address order by relay-id, remote-id, MAC, client-id or all addresses, bounded
//!   by change time: [`LeaseStore::scan`] with a [`ScanFilter`].
//! * RFC 7724 replays everything that changed since a query-start-time, then streams live changes:
//!   [`LeaseStore::changed_since`], bounded by the [history horizon](LeaseStore::history_horizon) that
//!   decides between catch-up and DataMissing.
//!
//! The model: one record per IPv4 address (a [`Binding`]), tagged with the store-assigned sequence number
//! and commit time of its latest change (a [`BindingChange`]). That table is the journal: catch-up sends the
//! current state of every binding changed since T, which is what RFC 7724 §6 asks for. Writes are batched
//! ([`LeaseStore::commit`]) and resolve only once durable, so the DHCP engine acknowledges a client only
//! for a lease that survives a crash.
//!
//! `PgStore` (feature `postgres`) keeps the same model in a PostgreSQL database shared by several servers,
//! arbitrates between them at commit and publishes every server's changes to all of them.
//!
//! [`SqliteStore`] is the embedded default (one file, WAL, group commit; every current record is also
//! kept in memory, loaded at open, and lookups and scans are served from there). Times are `u32` Unix seconds
//! throughout, the unit of the wire's base-time, and are always passed in by the caller: nothing here
//! reads a clock.
#![forbid(unsafe_code)]

mod binding;
mod error;
mod packed;
mod pending;
#[cfg(feature = "postgres")]
pub mod postgres;
mod scan;
pub mod sqlite;
mod store;

pub use error::{BindingProblem, StoreError};
pub use leasewire_proto::{Binding, BindingChange, MAX_HARDWARE_ADDRESS_LEN};
pub use packed::Packed;
pub use pending::{Pending, PendingCommit};
#[cfg(feature = "postgres")]
pub use postgres::{PgOptions, PgStore, PgTls, SharedChanges};
pub use scan::{ScanFilter, ScanKey};
pub use sqlite::{OpenOptions, SqliteStore};
pub use store::{DEFAULT_RETENTION_SECS, Forgotten, LeaseStore, changed_since_pages, forgettable, scan_pages};

// Re-exported so users of the store need not depend on leasewire-proto for the field types of `Binding`.
pub use leasewire_proto::{DataSource, DhcpState};
