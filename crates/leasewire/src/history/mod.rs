//! `leasewire history`: who held an address at a time, or the intervals of an address, client or relay over
//! a period, from the history `leasewire watch --db` keeps in its replica file.

mod output;

use leasewire_requestor::history::{HistoryError, HistoryReader, Key, Query, Window, time};
use leasewire_requestor::json;
use std::io::Write;
use std::path::Path;

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A table, or a sentence per answer for `--at`.
    Table,
    /// One JSON object per interval.
    Json,
    /// CSV with a header.
    Csv,
}

pub fn run(
    db: &Path,
    key: Key,
    at: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    format: Format,
) -> anyhow::Result<()> {
    let now = u32::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs())?;
    let when = |flag: &str, s: &str| time::parse(s, now).map_err(|e| anyhow::anyhow!("{flag} {e}"));
    let window = match at {
        Some(at) => Window::At(when("--at", at)?),
        None => Window::Between {
            from: from.map(|f| when("--from", f)).transpose()?.unwrap_or(0),
            to: to.map(|t| when("--to", t)).transpose()?.unwrap_or(now),
        },
    };
    let mut reader = HistoryReader::open(db).map_err(|e| match e {
        HistoryError::NoHistory { .. } => anyhow::anyhow!("{e}: was it written by `leasewire watch --db`?"),
        e => e.into(),
    })?;
    let what = match &key {
        Key::Ip(ip) => ip.to_string(),
        _ => "it".into(),
    };
    let answers = reader.query(&Query { key, window, now })?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match print(&mut out, &answers, window, &what, format).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

fn print(
    out: &mut impl Write,
    answers: &[leasewire_requestor::history::Interval],
    window: Window,
    what: &str,
    format: Format,
) -> std::io::Result<()> {
    match format {
        Format::Json => answers.iter().try_for_each(|i| out.write_all(json::interval_line(i).as_bytes())),
        Format::Csv => {
            writeln!(out, "{}", output::csv_header())?;
            answers.iter().try_for_each(|i| writeln!(out, "{}", output::csv(i)))
        }
        Format::Table => match window {
            Window::At(t) if answers.is_empty() => {
                writeln!(
                    out,
                    "{what} at {}: nothing in the history (before its first change, or pruned)",
                    time::rfc3339(t)
                )
            }
            Window::At(t) => answers.iter().try_for_each(|i| writeln!(out, "{}", output::sentence(i, t))),
            Window::Between { .. } => {
                writeln!(out, "{}", output::table_header())?;
                answers.iter().try_for_each(|i| writeln!(out, "{}", output::table_row(i)))
            }
        },
    }
}
