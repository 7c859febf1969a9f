//! leasewire's DHCPv4 server.
//!
//! Not built yet: the DHCP engine (RFC 2131), the change feed and the Leasequery, Bulk Leasequery and Active
//! Leasequery services land here in later steps (see the README's status table).
#![forbid(unsafe_code)]
