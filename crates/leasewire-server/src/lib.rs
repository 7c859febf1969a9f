//! leasewire's DHCPv4 server.
//!
//! * [`config`]: the TOML configuration, validated with errors naming key and line.
//! * [`engine`]: the DHCP engine (RFC 2131), a sans-IO decision core.
//! * [`dhcp_service`]: its tokio driver (UDP sockets, durable commit before reply, timers).
//! * [`feed`]: committed binding changes for the leasequery services.
//! * [`lease_log`]: one INFO line per committed change, written off the DHCP path.
//! * [`metrics`]: Prometheus metrics and the `/metrics` endpoint.
#![forbid(unsafe_code)]

pub mod config;
pub mod dhcp_service;
pub mod engine;
pub mod feed;
pub mod lab_certs;
pub mod lease_log;
pub mod leasequery;
pub mod log_limit;
pub mod metrics;
pub mod tcp_service;
pub mod tls;
pub mod tls_allow;
