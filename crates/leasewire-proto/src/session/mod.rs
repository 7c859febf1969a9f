//! Sans-IO sessions for Leasequery over TCP: they take bytes, store pages and time, and return what to do.
//!
//! * [`server`]: the server's half of a connection, [`server::ServerSession`], with its Bulk Leasequery
//!   ([`server::bulk`], RFC 6926) and Active Leasequery ([`server::active`], RFC 7724) parts.
//! * [`requestor`]: the requestor's halves, [`requestor::bulk`] and [`requestor::active`], and the DHCPTLS
//!   request both of them open secure mode with ([`requestor::dhcptls`]).
//!
//! What both halves name alike — the key of a Bulk query and the Active timers of RFC 7724 §7.5 — is
//! re-exported here.

pub mod requestor;
pub mod server;

pub use server::active::{ACTIVE_LQ_IDLE_TIMEOUT, ACTIVE_LQ_SEND_TIMEOUT};
pub use server::bulk::{BulkKey, BulkRequest, VpnScope};
