//! `leasewire bulk`: one Bulk Leasequery (RFC 6926), streamed as JSON lines or a table, with a summary.

use anyhow::bail;
use leasewire_proto::StatusCode;
use leasewire_proto::session::bulk_query::BulkKey;
use leasewire_proto::session::bulk_requestor::{BulkRequest, Event};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")
}

pub fn run(
    server: SocketAddr,
    key: BulkKey,
    since: Option<u32>,
    until: Option<u32>,
    json: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    let req = BulkRequest { key, changed_on_or_after: since, changed_on_or_before: until };
    let start = Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let tty = std::io::stderr().is_terminal();
    let mut count: u64 = 0;
    let mut final_status = (StatusCode::Success, String::new());
    if !json {
        writeln!(out, "{:<15} {:<13} {:<17} {:>8} {:<24}", "address", "state", "client", "lease s", "relay")?;
    }
    let result = leasewire_requestor::bulk::run(server, std::slice::from_ref(&req), timeout, |ev| match ev {
        Event::Binding(b) => {
            count += 1;
            let bd = &b.binding;
            let remaining = b.base_time.zip(bd.expires_at).map(|(base, e)| e.saturating_sub(base));
            let _ = if json {
                writeln!(
                    out,
                    "{}",
                    json!({
                        "ip": bd.ip.to_string(),
                        "state": bd.state.name(),
                        "htype": bd.htype,
                        "mac": hex(&bd.hardware_address),
                        "client_id": bd.client_id.as_deref().map(hex),
                        "state_since": bd.state_since,
                        "expires_at": bd.expires_at,
                        "cltt": bd.cltt,
                        "base_time": b.base_time,
                        "remote_id": bd.remote_id().map(hex),
                        "relay_id": bd.relay_id().map(hex),
                        "circuit_id": bd.relay_agent().and_then(|r| r.circuit_id().map(hex)),
                        "data_source": if bd.data_source.is_remote() { "remote" } else { "local" },
                        "server_id": b.server_id.map(|a| a.to_string()),
                    })
                )
            } else {
                let relay = bd.remote_id().map(hex).or_else(|| bd.relay_id().map(hex)).unwrap_or_default();
                writeln!(
                    out,
                    "{:<15} {:<13} {:<17} {:>8} {:<24}",
                    bd.ip,
                    bd.state.name(),
                    hex(&bd.hardware_address),
                    remaining.map(|r| r.to_string()).unwrap_or_default(),
                    relay
                )
            };
            if tty && count % 10_000 == 0 {
                eprint!("\r{count} bindings…");
            }
        }
        Event::Done { status, message, .. } => final_status = (status, message),
    });
    out.flush()?;
    let secs = start.elapsed().as_secs_f64();
    if tty && count >= 10_000 {
        eprintln!();
    }
    eprintln!(
        "{count} binding(s) in {secs:.2} s ({:.0}/s), status {}{}",
        count as f64 / secs.max(1e-9),
        final_status.0,
        if final_status.1.is_empty() { String::new() } else { format!(": {}", final_status.1) }
    );
    result?;
    if final_status.0 != StatusCode::Success {
        bail!("the server ended the query with {}", final_status.0);
    }
    Ok(())
}
