//! Prometheus metrics of a watcher (`leasewire watch --http`), prefix `leasewire_requestor_`.

use crate::replica::Applied;
use crate::watch::Status;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label: how a message merged.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MergeLabel {
    /// `new`, `changed`, `duplicate` or `stale`.
    pub outcome: String,
}

/// Label: a watched server.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabel {
    /// `IP:PORT`.
    pub server: String,
}

/// What the watcher knows of its connections to one server (the browser view's connections panel).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    /// `IP:PORT`.
    pub server: String,
    /// Secure mode (DHCPTLS) on the last Active stream; `None` before one started.
    pub tls: Option<bool>,
    /// The Active stream is up.
    pub streaming: bool,
    /// The latest base-time received (server clock).
    pub last_base_time: Option<u32>,
    /// Seconds between the server sending its latest binding and the requestor applying it (in the
    /// requestor's clock, the server's offset taken out).
    pub lag: Option<i64>,
    /// The server's clock offset (requestor minus server, seconds).
    pub clock_offset: i64,
    /// Catch-ups completed.
    pub catch_ups: u64,
    /// DataMissing statuses received.
    pub data_missing: u64,
    /// Gaps filled by Bulk Leasequery.
    pub gaps_filled: u64,
    /// Connections that ended or failed.
    pub disconnects: u64,
    /// Why the last one ended.
    pub last_error: Option<String>,
}

/// The watcher's metrics.
#[derive(Debug)]
pub struct WatchMetrics {
    /// Binding messages by merge outcome.
    pub messages: Family<MergeLabel, Counter>,
    /// Addresses in the replica.
    pub bindings: Gauge,
    /// 1 while the Active stream to a server is up.
    pub streaming: Family<ServerLabel, Gauge>,
    /// Connections that ended or failed, per server.
    pub disconnects: Family<ServerLabel, Counter>,
    /// DataMissing received.
    pub data_missing: Counter,
    /// Catch-ups that completed.
    pub caught_up: Counter,
    /// Gaps filled by Bulk Leasequery.
    pub gaps_filled: Counter,
    /// Each server's clock offset in seconds (requestor minus server; 0 within a second).
    pub clock_offset: Family<ServerLabel, Gauge>,
    links: std::sync::Mutex<std::collections::BTreeMap<String, Link>>,
    registry: Registry,
}

impl Default for WatchMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchMetrics {
    /// Fresh metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("leasewire_requestor");
        let m = Self {
            messages: Family::default(),
            bindings: Gauge::default(),
            streaming: Family::default(),
            disconnects: Family::default(),
            data_missing: Counter::default(),
            caught_up: Counter::default(),
            gaps_filled: Counter::default(),
            clock_offset: Family::default(),
            links: Default::default(),
            registry: Registry::default(),
        };
        registry.register("messages", "Binding messages received, by merge outcome", m.messages.clone());
        registry.register("bindings", "Addresses in the replica", m.bindings.clone());
        registry.register("streaming", "1 while the Active Leasequery stream is up", m.streaming.clone());
        registry.register("disconnects", "Connections that ended or failed", m.disconnects.clone());
        registry.register("data_missing", "DataMissing statuses received", m.data_missing.clone());
        registry.register("catch_ups", "Catch-ups that completed", m.caught_up.clone());
        registry.register("gaps_filled", "Gaps filled by Bulk Leasequery", m.gaps_filled.clone());
        registry.register(
            "clock_offset_seconds",
            "The server's clock against the requestor's, from base-times (requestor minus server; 0 within a second)",
            m.clock_offset.clone(),
        );
        Self { registry, ..m }
    }

    pub(crate) fn applied(&self, a: Applied) {
        let outcome = match a {
            Applied::New => "new",
            Applied::Changed => "changed",
            Applied::Duplicate => "duplicate",
            Applied::Stale => "stale",
        };
        self.messages.get_or_create(&MergeLabel { outcome: outcome.into() }).inc();
    }

    /// Each watched server's connection state, by address.
    pub fn links(&self) -> Vec<Link> {
        self.links.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect()
    }

    fn link(&self, server: &str, f: impl FnOnce(&mut Link)) {
        let mut links = self.links.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let l = links.entry(server.to_string()).or_insert_with(|| Link { server: server.into(), ..Link::default() });
        f(l);
    }

    /// A binding with `base_time` (server clock) from `server` arrived at `received` (ours).
    pub(crate) fn observed(&self, server: &str, base_time: u32, received: u32, clock_offset: i64) {
        self.link(server, |l| {
            l.last_base_time = Some(l.last_base_time.map_or(base_time, |t| t.max(base_time)));
            l.lag = Some(i64::from(received) - i64::from(base_time) - clock_offset);
            l.clock_offset = clock_offset;
        });
    }

    pub(crate) fn status(&self, server: &str, s: &Status) {
        self.link(server, |l| match s {
            Status::Streaming { tls, .. } => {
                l.tls = Some(*tls);
                l.streaming = true;
            }
            Status::Disconnected { reason, active, .. } => {
                l.streaming &= !*active;
                l.disconnects += 1;
                l.last_error = Some(reason.clone());
            }
            Status::CaughtUp => l.catch_ups += 1,
            Status::DataMissing(_) => l.data_missing += 1,
            Status::GapFilled { .. } => l.gaps_filled += 1,
            Status::Seeded { .. } => {}
        });
        let label = ServerLabel { server: server.into() };
        match s {
            Status::Streaming { .. } => {
                self.streaming.get_or_create(&label).set(1);
            }
            Status::Disconnected { active, .. } => {
                if *active {
                    self.streaming.get_or_create(&label).set(0);
                }
                self.disconnects.get_or_create(&label).inc();
            }
            Status::CaughtUp => {
                self.caught_up.inc();
            }
            Status::Seeded { .. } | Status::DataMissing(_) | Status::GapFilled { .. } => {}
        }
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &self.registry).expect("writing to a String");
        s
    }
}
