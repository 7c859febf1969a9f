//! leasewire's DHCPv4 server.
//!
//! * [`server`]: the entry point — [`server::Server`] starts everything from a configuration and returns a
//!   [`server::RunningServer`] (bound addresses, live reload, stop); errors are [`error::ServeError`].
//! * [`config`]: the TOML configuration, validated with errors naming key and line.
//! * [`engine`]: the DHCP engine (RFC 2131), a sans-IO decision core.
//! * [`udp`]: what runs on the UDP sockets: the engine's tokio driver ([`udp::dhcp`]: durable commit before
//!   reply, timers) and Leasequery (RFC 4388, [`udp::leasequery`]).
//! * [`tcp`]: Leasequery over TCP (Bulk and Active, RFC 6926 / RFC 7724), secure mode in [`tcp::tls`].
//! * [`feed`]: committed binding changes for the leasequery services.
//! * [`control`]: the control socket (`leasewire ctl`): status, reload, lease administration.
//! * [`lease_log`]: one INFO line per committed change, written off the DHCP path.
//! * [`metrics`]: Prometheus metrics and the `/metrics` endpoint.
//!
//! A server on loopback, started and stopped (`examples/server.rs` also reloads it):
//!
//! ```
//! use leasewire_server::{config::Config, server::Server};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let config = Config::parse(&format!(
//!     r#"
//!     [server]
//!     server-id = "127.0.0.1"
//!     listen = ["127.0.0.1:0"]
//!     data-dir = "{}"
//!     [[subnet]]
//!     subnet = "127.0.0.0/8"
//!     pools = [{{ start = "127.1.0.10", end = "127.1.0.20" }}]
//!     "#,
//!     dir.path().display()
//! ))?;
//! let running = Server::new(config).start().await?;
//! assert_eq!(running.addrs().dhcp.len(), 1);
//! assert!(running.addrs().tcp.is_empty(), "no Bulk Leasequery requestor allowed: no listener");
//! assert!(dir.path().join("leasewire.lock").exists(), "the embedded store is locked while it runs");
//! running.stop().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

/// A test configuration: the `[server]` table the engine and config unit tests share (its `data-dir` is never
/// opened) on lines 2 to 4, then `$body` (more `[server]` keys first, if any, then the other tables). A
/// `&'static str`, so the tests keep their configurations as constants.
#[cfg(test)]
macro_rules! test_config {
    ($body:literal) => {
        concat!("\n[server]\nserver-id = \"10.0.0.1\"\ndata-dir = \"/nonexistent\"\n", $body)
    };
}

pub mod clock;
pub mod config;
pub mod context;
pub mod control;
pub mod engine;
pub mod error;
pub mod feed;
pub mod lease_log;
pub mod log_limit;
pub mod metrics;
pub mod server;
pub mod tcp;
pub mod udp;

// The lab CA lives with `leasewire lab-certs` in the CLI; the TLS unit tests issue their certificates with it.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../leasewire/src/lab_certs.rs"]
mod lab_certs;
