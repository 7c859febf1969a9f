//! leasewire's Leasequery requestor.
//!
//! Not built yet: the tokio drivers for the requestor sessions, the replica and its sinks land here in a later
//! step (see the README's status table).
#![forbid(unsafe_code)]
