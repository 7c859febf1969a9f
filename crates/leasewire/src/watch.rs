//! `leasewire watch`: keep a live replica of one or more servers' bindings (RFC 7724 Active Leasequery with
//! Bulk Leasequery seeding and gap filling) and print every change, as a table or as JSON lines.

use anyhow::Context;
use leasewire_proto::{Binding, DhcpState};
use leasewire_requestor::conn::{ConnError, Target};
use leasewire_requestor::status::{Report, Status};
use leasewire_requestor::tls::{ClientTls, TlsError};
use leasewire_requestor::watch::WatchOptions;
use leasewire_requestor::{WatchError, Watcher, json};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use tokio::sync::mpsc;

/// What `watch` was asked to do.
pub struct Args {
    pub targets: Vec<Target>,
    pub db: Option<PathBuf>,
    pub json: bool,
    pub states: States,
    pub http: Option<SocketAddr>,
    pub opts: WatchOptions,
    /// History retention (`None`: keep no history).
    pub history: Option<Duration>,
}

/// The TLS flags, loaded.
pub fn client_tls(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
    name: Option<&str>,
) -> anyhow::Result<Option<Arc<ClientTls>>> {
    match (cert, key, ca) {
        (None, None, None) => Ok(None),
        (Some(c), Some(k), Some(ca)) => match ClientTls::load(&c, &k, &ca, name) {
            Ok(tls) => Ok(Some(Arc::new(tls))),
            Err(e @ TlsError::BadName(_)) => Err(anyhow::anyhow!("--tls-name: {e}")),
            Err(e) => Err(e.into()),
        },
        _ => anyhow::bail!("secure mode needs all of --tls-cert, --tls-key and --ca"),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let (tx, rx) = mpsc::channel(4096);
        let mut builder = Watcher::builder(args.targets).options(args.opts).reports(tx);
        if let Some(db) = &args.db {
            builder = builder.replica_file(db).history(args.history);
        }
        // Before anything is logged or served: a SIGTERM from then on stops the watcher cleanly (replica written).
        let stop = crate::serve::ShutdownSignal::install()?;
        // Bound first: a busy port is reported before any server is contacted.
        let listener = match args.http {
            Some(addr) => Some(leasewire_requestor::http::bind(addr).await.with_context(|| format!("--http {addr}"))?),
            None => None,
        };
        let mut watcher = builder.spawn()?;
        if !watcher.is_empty() {
            tracing::info!(bindings = watcher.len(), "replica loaded; catching up from the saved base-times");
        }
        if let (Some(listener), Some(addr)) = (listener, args.http) {
            tracing::info!(%addr, "serving the browser view on / with /metrics, /bindings and /history");
            tokio::spawn(leasewire_requestor::http::serve(listener, &watcher));
        }
        let mut printer =
            tokio::task::spawn_blocking(move || print_reports(rx, Printer::new(args.json, true).states(args.states)));
        enum End {
            Failed(Result<(), WatchError>),
            Signal,
            Printer(Result<std::io::Result<()>, tokio::task::JoinError>),
        }
        let end = tokio::select! {
            r = watcher.ended() => End::Failed(r),
            _ = stop.recv() => End::Signal,
            // Standard output went away (e.g. the reader of a pipe exited): nothing left to do.
            p = &mut printer => End::Printer(p),
        };
        let (result, printed) = match end {
            End::Failed(r) => (r, printer.await),
            End::Signal => {
                tracing::info!("stopping: writing the replica");
                (watcher.stop().await, printer.await)
            }
            End::Printer(p) => {
                tracing::info!("standard output closed: stopping");
                (watcher.stop().await, p)
            }
        };
        result?;
        match printed? {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
            _ => Ok(()),
        }
    })
}

/// Which bindings are printed (`--state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum States {
    /// Every state.
    All,
    /// Every state but AVAILABLE: bindings, not free addresses (the table's default).
    Bound,
    /// Only these.
    Only(Vec<DhcpState>),
}

impl States {
    pub fn shows(&self, s: DhcpState) -> bool {
        match self {
            Self::All => true,
            Self::Bound => s != DhcpState::Available,
            Self::Only(v) => v.contains(&s),
        }
    }

    /// What is left out, for a summary line.
    pub fn describe_hidden(&self) -> String {
        match self {
            Self::All => String::new(),
            Self::Bound => "free addresses (AVAILABLE)".into(),
            Self::Only(v) => {
                format!("states other than {}", v.iter().map(|s| s.name()).collect::<Vec<_>>().join(", "))
            }
        }
    }
}

/// How changes are printed.
pub struct Printer {
    json: bool,
    /// Print changes from Bulk Leasequery too (the seed can be every configured address).
    pub bulk: bool,
    header: bool,
    states: States,
}

impl Printer {
    pub fn new(json: bool, bulk: bool) -> Self {
        Self { json, bulk, header: false, states: States::All }
    }

    /// Print only bindings in `states`.
    pub fn states(mut self, states: States) -> Self {
        self.states = states;
        self
    }

    pub fn change(
        &mut self,
        out: &mut impl Write,
        server: &str,
        b: &Binding,
        base_time: Option<u32>,
    ) -> std::io::Result<()> {
        if !self.states.shows(b.state) {
            return Ok(());
        }
        if self.json {
            return out.write_all(
                json::binding_line(b, &json::Source { base_time, server: Some(server), server_id: None }).as_bytes(),
            );
        }
        if !std::mem::replace(&mut self.header, true) {
            writeln!(
                out,
                "{:<20} {:<21} {:<15} {:<10} {:<17} {:>7}  relay",
                "time", "server", "address", "state", "client", "lease s"
            )?;
        }
        let when = base_time.map_or_else(String::new, |t| {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(u64::from(t))).to_string()
        });
        let remaining =
            base_time.zip(b.expires_at).map(|(now, e)| e.saturating_sub(now).to_string()).unwrap_or_default();
        let relay = b.remote_id().or_else(|| b.relay_id()).map(json::hex).unwrap_or_default();
        writeln!(
            out,
            "{when:<20} {server:<21} {:<15} {:<10} {:<17} {remaining:>7}  {relay}",
            b.ip.to_string(),
            b.state.name(),
            json::hex(&b.hardware_address)
        )
    }
}

/// Log a status report.
pub fn log_status(server: &str, s: &Status) {
    match s {
        Status::Streaming { tls, query_start_time } => {
            tracing::info!(server, tls, query_start_time, "active leasequery streaming")
        }
        Status::Seeded { bindings } => tracing::info!(server, bindings, "bulk leasequery seed complete"),
        Status::CaughtUp => tracing::info!(server, "catch-up complete"),
        Status::DataMissing(g) => {
            tracing::warn!(server, from = g.from, to = g.to, "data missing: filling the gap with bulk leasequery")
        }
        Status::GapFilled { gap, bindings } => {
            tracing::info!(server, from = gap.from, to = gap.to, bindings, "gap filled")
        }
        Status::Disconnected { reason, retry_in, active } => tracing::warn!(
            server,
            active,
            retry_in = %humantime::format_duration(*retry_in),
            "connection ended: {reason}{}",
            reason.conn_error().map_or("", flag_hint)
        ),
    }
}

/// What to pass on the command line about a connection error, after the library's own words.
pub fn flag_hint(e: &ConnError) -> &'static str {
    match e {
        ConnError::TlsRequired => {
            "; pass --tls-cert FILE --tls-key FILE --ca FILE (`leasewire lab-certs` makes a lab set)"
        }
        _ => "",
    }
}

/// Print reports until the watcher ends.
pub fn print_reports(mut rx: mpsc::Receiver<Report>, mut printer: Printer) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    while let Some(r) = rx.blocking_recv() {
        let mut out = stdout.lock();
        let mut next = Some(r);
        // Drain what is queued before flushing: one write per burst, not per change.
        while let Some(r) = next {
            match r {
                Report::Change { server, binding, base_time, via } => {
                    if printer.bulk || via == leasewire_requestor::replica::Via::Active {
                        printer.change(&mut out, &server, &binding, base_time)?;
                    }
                }
                Report::Status { server, status } => log_status(&server, &status),
            }
            next = rx.try_recv().ok();
        }
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn the_table_shows_bindings_not_free_addresses_unless_asked() {
        let free = Binding::new(Ipv4Addr::new(10, 0, 0, 1), DhcpState::Available, 1);
        let leased = Binding::new(Ipv4Addr::new(10, 0, 0, 2), DhcpState::Active, 1);
        let printed = |states: States| {
            let mut out = Vec::new();
            let mut p = Printer::new(false, true).states(states);
            for b in [&free, &leased] {
                p.change(&mut out, "127.0.0.1:67", b, Some(5)).unwrap();
            }
            String::from_utf8(out).unwrap()
        };
        let bound = printed(States::Bound);
        assert!(bound.contains("10.0.0.2") && !bound.contains("10.0.0.1 "), "{bound}");
        assert!(printed(States::All).contains("10.0.0.1 "));
        let only = printed(States::Only(vec![DhcpState::Available]));
        assert!(only.contains("10.0.0.1 ") && !only.contains("10.0.0.2"), "{only}");
    }
}
