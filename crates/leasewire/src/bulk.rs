//! `leasewire bulk`: one Bulk Leasequery (RFC 6926), streamed as JSON lines or a table, with a summary.

use anyhow::bail;
use leasewire_proto::StatusCode;
use leasewire_proto::session::bulk_query::BulkKey;
use leasewire_proto::session::bulk_requestor::{BulkBinding, BulkRequest, Event};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 3);
    push_hex(&mut s, b);
    s
}

fn push_hex(s: &mut String, b: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
}

/// One JSON object per binding, written directly (no intermediate value tree: this runs a million times).
fn json_line(out: &mut impl Write, b: &BulkBinding) -> std::io::Result<()> {
    use std::fmt::Write as _;
    let bd = &b.binding;
    let mut s = String::with_capacity(320);
    let opt_hex = |s: &mut String, name: &str, v: Option<&[u8]>| {
        let _ = write!(s, ",\"{name}\":");
        match v {
            Some(v) => {
                s.push('"');
                push_hex(s, v);
                s.push('"');
            }
            None => s.push_str("null"),
        }
    };
    let opt_num = |s: &mut String, name: &str, v: Option<u32>| {
        let _ = match v {
            Some(v) => write!(s, ",\"{name}\":{v}"),
            None => write!(s, ",\"{name}\":null"),
        };
    };
    let _ = write!(s, "{{\"ip\":\"{}\",\"state\":\"{}\",\"htype\":{}", bd.ip, bd.state.name(), bd.htype);
    opt_hex(&mut s, "mac", Some(&bd.hardware_address));
    opt_hex(&mut s, "client_id", bd.client_id.as_deref());
    opt_num(&mut s, "state_since", Some(bd.state_since));
    opt_num(&mut s, "expires_at", bd.expires_at);
    opt_num(&mut s, "cltt", bd.cltt);
    opt_num(&mut s, "base_time", b.base_time);
    let rai = bd.relay_agent();
    opt_hex(&mut s, "remote_id", rai.and_then(|r| r.remote_id()));
    opt_hex(&mut s, "relay_id", rai.and_then(|r| r.relay_id()));
    opt_hex(&mut s, "circuit_id", rai.and_then(|r| r.circuit_id()));
    let _ = write!(s, ",\"data_source\":\"{}\"", if bd.data_source.is_remote() { "remote" } else { "local" });
    match b.server_id {
        Some(a) => {
            let _ = write!(s, ",\"server_id\":\"{a}\"}}");
        }
        None => s.push_str(",\"server_id\":null}"),
    }
    s.push('\n');
    out.write_all(s.as_bytes())
}

fn table_line(out: &mut impl Write, b: &BulkBinding) -> std::io::Result<()> {
    let bd = &b.binding;
    let remaining = b.base_time.zip(bd.expires_at).map(|(base, e)| e.saturating_sub(base));
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
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A table for people.
    Table,
    /// One JSON object per binding.
    Json,
    /// Only the summary (e.g. "how many bindings behind this relay?").
    Count,
}

pub fn run(
    server: SocketAddr,
    key: BulkKey,
    since: Option<u32>,
    until: Option<u32>,
    mode: Output,
    timeout: Duration,
) -> anyhow::Result<()> {
    let req = BulkRequest { key, changed_on_or_after: since, changed_on_or_before: until };
    let start = Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let tty = std::io::stderr().is_terminal();
    let mut count: u64 = 0;
    let mut final_status = (StatusCode::Success, String::new());
    if mode == Output::Table {
        writeln!(out, "{:<15} {:<13} {:<17} {:>8} {:<24}", "address", "state", "client", "lease s", "relay")?;
    }
    let result = leasewire_requestor::bulk::run(server, std::slice::from_ref(&req), timeout, |ev| match ev {
        Event::Binding(b) => {
            count += 1;
            let _ = match mode {
                Output::Count => Ok(()),
                Output::Json => json_line(&mut out, &b),
                Output::Table => table_line(&mut out, &b),
            };
            if tty && count % 100_000 == 0 {
                eprint!("\r{count} bindings…");
            }
        }
        Event::Done { status, message, .. } => final_status = (status, message),
    });
    out.flush()?;
    let secs = start.elapsed().as_secs_f64();
    if tty && count >= 100_000 {
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
