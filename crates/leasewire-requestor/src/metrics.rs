//! Prometheus metrics of a watcher, prefix `leasewire_requestor_` (served on `/metrics` by [`crate::http`]).
//! Fed by the watcher's merger; it knows the report types ([`crate::status`]), not the watcher.

use crate::replica::Applied;
use crate::status::Status;
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
    /// 1 while reading the streams is paused because the replica file's history is behind
    /// (`WatchOptions::max_unwritten_events`).
    pub history_paused: Gauge,
    /// Writes of the replica file that failed and are to be done again (its changes kept meanwhile).
    pub history_write_retries: Counter,
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
            history_paused: Gauge::default(),
            history_write_retries: Counter::default(),
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
        registry.register(
            "history_paused",
            "1 while the streams are not read because the replica file's history is behind the cap",
            m.history_paused.clone(),
        );
        registry.register(
            "history_write_retries",
            "Writes of the replica file that failed (locked by another process, say) and are done again later",
            m.history_write_retries.clone(),
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

    /// Server `server`'s clock offset changed.
    pub(crate) fn clock_offset(&self, server: &str, seconds: i64) {
        self.clock_offset.get_or_create(&ServerLabel { server: server.into() }).set(seconds);
    }

    pub(crate) fn status(&self, server: &str, s: &Status) {
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
            Status::DataMissing(_) => {
                self.data_missing.inc();
            }
            Status::GapFilled { .. } => {
                self.gaps_filled.inc();
            }
            Status::Seeded { .. } => {}
        }
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &self.registry).expect("writing to a String");
        s
    }
}
