//! Sans-IO sessions for Leasequery over TCP: they take bytes, store pages and time, and return what to do.

pub mod active;
pub mod active_requestor;
pub mod bulk_query;
pub mod bulk_requestor;
pub mod dhcptls;
pub mod server;
