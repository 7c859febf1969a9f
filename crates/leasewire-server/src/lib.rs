//! leasewire's DHCPv4 server.
//!
//! * [`server`]: the entry point — [`server::Server`] starts everything from a configuration and returns a
//!   [`server::RunningServer`] (bound addresses, live reload, stop); errors are [`error::ServeError`].
//! * [`config`]: the TOML configuration, validated with errors naming key and line.
//! * [`engine`]: the DHCP engine (RFC 2131), a sans-IO decision core.
//! * [`dhcp_service`]: its tokio driver (UDP sockets, durable commit before reply, timers).
//! * [`feed`]: committed binding changes for the leasequery services.
//! * [`control`]: the control socket (`leasewire ctl`): status, reload, lease administration.
//! * [`lease_log`]: one INFO line per committed change, written off the DHCP path.
//! * [`metrics`]: Prometheus metrics and the `/metrics` endpoint.
#![forbid(unsafe_code)]

pub mod config;
pub mod control;
pub mod dhcp_service;
pub mod engine;
pub mod error;
pub mod feed;
pub mod lab_certs;
pub mod lease_log;
pub mod leasequery;
pub mod log_limit;
pub mod metrics;
pub mod server;
pub mod tcp_service;
pub mod tls;
pub mod tls_allow;
