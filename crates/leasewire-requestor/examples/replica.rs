//! Embed the requestor: keep a replica of one server's bindings and print every change as it comes.
//!
//! ```sh
//! cargo run -p leasewire-requestor --example replica -- 127.0.0.1:67
//! ```
//!
//! The address is the server's Bulk/Active Leasequery TCP port, in insecure mode (the server's
//! `[active-leasequery] insecure = true`; secure mode takes a `ClientTls` in the `Target`). Ctrl-C stops.

use leasewire_requestor::conn::Target;
use leasewire_requestor::status::Report;
use leasewire_requestor::{Watcher, json};
use std::net::SocketAddr;
use tokio::sync::broadcast::error::RecvError;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(addr) = std::env::args().nth(1) else {
        return Err("usage: replica SERVER:PORT (the server's Leasequery TCP address)".into());
    };
    let addr: SocketAddr = addr.parse()?;
    // A full Bulk Leasequery seeds the replica, then the Active stream keeps it exact.
    let watcher = Watcher::builder([Target { addr, tls: None }]).spawn()?;
    let mut reports = watcher.subscribe();
    loop {
        tokio::select! {
            report = reports.recv() => match report {
                Ok(Report::Change { server, binding, .. }) => {
                    println!("{server} {} {} {}", binding.ip, binding.state.name(), json::hex(&binding.hardware_address));
                }
                Ok(Report::Status { server, status }) => eprintln!("{server}: {status:?}"),
                // Printing fell behind the stream: the replica itself is still exact.
                Err(RecvError::Lagged(n)) => eprintln!("{n} changes not printed; {} in the replica", watcher.len()),
                Err(RecvError::Closed) => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    for s in watcher.status() {
        eprintln!(
            "{}: streaming {}, last base-time {:?}, catch-ups {}",
            s.server, s.streaming, s.last_base_time, s.catch_ups
        );
    }
    watcher.stop().await?;
    Ok(())
}
