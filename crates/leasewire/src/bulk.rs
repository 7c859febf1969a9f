//! `leasewire bulk`: one Bulk Leasequery (RFC 6926), streamed as JSON lines or a table, with a summary.

use crate::watch::States;
use anyhow::{Context, bail};
use leasewire_proto::StatusCode;
use leasewire_proto::session::BulkKey;
use leasewire_proto::session::requestor::bulk::{BulkBinding, BulkRequest, Event};
use leasewire_requestor::conn::Target;
use leasewire_requestor::json::{self, hex};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// One JSON object per binding (the library's line, plus the server identifier).
fn json_line(out: &mut impl Write, server: &str, b: &BulkBinding) -> std::io::Result<()> {
    let src = json::Source { base_time: b.base_time, server: Some(server), server_id: b.server_id };
    out.write_all(json::binding_line(&b.binding, &src).as_bytes())
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
    target: &Target,
    key: BulkKey,
    since: Option<u32>,
    until: Option<u32>,
    mode: Output,
    states: States,
    timeout: Duration,
) -> anyhow::Result<()> {
    let req = BulkRequest { key, changed_on_or_after: since, changed_on_or_before: until };
    let server = target.addr.to_string();
    let start = Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let tty = std::io::stderr().is_terminal();
    let mut count: u64 = 0;
    let mut hidden: u64 = 0;
    // The DONE's status; `None` until one arrives (an error before it must not read as success).
    let mut final_status: Option<(StatusCode, String)> = None;
    let result =
        leasewire_requestor::bulk::run_target(target, std::slice::from_ref(&req), timeout, &mut |ev| match ev {
            Event::Binding(b) if !states.shows(b.binding.state) => hidden += 1,
            Event::Binding(b) => {
                count += 1;
                if count == 1 && mode == Output::Table {
                    let _ = writeln!(
                        out,
                        "{:<15} {:<13} {:<17} {:>8} {:<24}",
                        "address", "state", "client", "lease s", "relay"
                    );
                }
                let _ = match mode {
                    Output::Count => Ok(()),
                    Output::Json => json_line(&mut out, &server, &b),
                    Output::Table => table_line(&mut out, &b),
                };
                if tty && count.is_multiple_of(100_000) {
                    eprint!("\r{count} bindings…");
                }
            }
            Event::Done { status, message, .. } => final_status = Some((status, message)),
        });
    out.flush()?;
    let secs = start.elapsed().as_secs_f64();
    if tty && count >= 100_000 {
        eprintln!();
    }
    let status = match &final_status {
        Some((code, text)) if text.is_empty() => format!("status {code}"),
        Some((code, text)) => format!("status {code}: {text}"),
        None => "no DONE".into(),
    };
    eprintln!("{count} binding(s) in {secs:.2} s ({:.0}/s), {status}", count as f64 / secs.max(1e-9));
    if hidden > 0 {
        eprintln!("{hidden} more not shown ({}; --state all shows them)", states.describe_hidden());
    }
    if count == 0 && hidden == 0 && result.is_ok() {
        eprintln!("no bindings match");
    }
    if let Err(leasewire_requestor::bulk::BulkError::Conn(e)) = &result {
        let hint = crate::watch::flag_hint(e);
        if !hint.is_empty() {
            bail!("bulk leasequery to {server}: {e}{hint}");
        }
    }
    result.with_context(|| format!("bulk leasequery to {server}"))?;
    match final_status {
        Some((code, _)) if code != StatusCode::Success => bail!("the server ended the query with {code}"),
        _ => Ok(()),
    }
}
