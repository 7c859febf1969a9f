//! The log subscriber: human or JSON lines on standard error, filtered by `server.log-filter`, else the
//! `LEASEWIRE_LOG` environment variable, else `info`; the filter can be replaced while running (reload).

use leasewire_server::server::LogFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// The installed subscriber's filter, replaceable.
pub struct Logs {
    handle: reload::Handle<EnvFilter, Registry>,
}

/// The filter when the configuration names none: `LEASEWIRE_LOG`, else `info`.
fn default_filter() -> EnvFilter {
    EnvFilter::try_from_env("LEASEWIRE_LOG").unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Parse a filter strictly (an unknown level or a malformed directive is an error, not ignored).
fn parse(filter: &str) -> Result<EnvFilter, String> {
    EnvFilter::builder().parse(filter).map_err(|e| e.to_string())
}

/// Whether `filter` parses (for `check-config`).
pub fn check_filter(filter: &str) -> Result<(), String> {
    parse(filter).map(drop)
}

impl LogFilter for Logs {
    fn set(&self, filter: Option<&str>) -> Result<(), String> {
        let new = match filter {
            Some(f) => parse(f)?,
            None => default_filter(),
        };
        self.handle.reload(new).map_err(|e| e.to_string())
    }
}

/// Install the subscriber for this process.
pub fn init(json: bool) -> std::sync::Arc<Logs> {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::fmt::format::debug_fn;
    let (filter, handle) = reload::Layer::new(default_filter());
    // Colour only on a terminal: log files and journald get plain text.
    let ansi = std::io::stderr().is_terminal();
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).json()).init();
    } else {
        let is_lease = |m: &tracing::Metadata<'_>| m.target() == leasewire_server::lease_log::TARGET;
        let general = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
        let leases = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).fmt_fields(
            debug_fn(|w, field, value| match field.name() {
                "message" => write!(w, "{value:?}"),
                _ => Ok(()),
            }),
        );
        registry
            .with(general.with_filter(filter_fn(move |m| !is_lease(m))))
            .with(leases.with_filter(filter_fn(is_lease)))
            .init();
    }
    std::sync::Arc::new(Logs { handle })
}
