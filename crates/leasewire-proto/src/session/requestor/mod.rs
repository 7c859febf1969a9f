//! The requestor's halves of Leasequery over TCP, sans-IO: Bulk ([`bulk`], RFC 6926 §7), Active ([`active`],
//! RFC 7724 §7) and the DHCPTLS request that opens secure mode for either ([`dhcptls`]).

pub mod active;
pub mod bulk;
pub mod dhcptls;
