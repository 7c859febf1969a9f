//! leasewire's Leasequery requestor.
//!
//! * [`leasequery`]: RFC 4388 / RFC 6148 queries over UDP, with RFC 2131 retransmission.
//!
//! The Active Leasequery requestor (sessions, replica, sinks) lands here in a later step.
#![forbid(unsafe_code)]

pub mod bulk;
pub mod leasequery;
