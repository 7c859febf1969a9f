//! Prometheus metrics for the DHCP service, and the `/metrics` endpoint.
//!
//! Every counter with a known label set is created at zero when the metrics are, so an alert on it (a rate,
//! an increase) can be written and tested before the first incident. The binding gauges follow every change
//! of the engine's records (see [`Metrics::update_bindings`]), not a periodic recount.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

/// Label: a DHCP message type name.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    /// e.g. `DHCPDISCOVER`.
    pub r#type: String,
}

/// Label: why a packet was dropped.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// e.g. `decode_error`, `pool_exhausted`.
    pub reason: String,
}

/// Label: lease state per subnet.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaseLabel {
    /// The subnet, `10.0.0.0/24`.
    pub subnet: String,
    /// The dhcp-state name.
    pub state: String,
}

/// Label: a subnet.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubnetLabel {
    /// The subnet, `10.0.0.0/24`.
    pub subnet: String,
}

/// Label: a control socket request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControlLabel {
    /// The command, e.g. `leases_delete` (see [`CONTROL_COMMANDS`]).
    pub command: String,
    /// `ok`, `error` (the command failed or the request was malformed) or `refused` (peer not allowed).
    pub result: String,
}

/// The control socket's commands as counted in `leasewire_control_requests_total{command}` (results `ok` and
/// `error`); `invalid` is a request that did not parse, and `connect` with result `refused` a connection from
/// a user other than root and the socket's owner.
pub const CONTROL_COMMANDS: &[&str] =
    &["status", "reload", "leases_list", "leases_get", "leases_delete", "config_show", "invalid"];

/// The name of the slot of addresses outside every configured subnet in the per-subnet gauges.
pub const OTHER_SUBNET: &str = "other";

/// States an address cannot be handed to a new client in: what the pool utilisation counts.
const IN_USE: [leasewire_proto::DhcpState; 4] = [
    leasewire_proto::DhcpState::Active,
    leasewire_proto::DhcpState::Abandoned,
    leasewire_proto::DhcpState::Transitioning,
    leasewire_proto::DhcpState::Remote,
];

/// What the metrics (and `leasewire ctl status`) report for a subnet of `pool_size` addresses (None: the
/// slot outside every subnet) whose records are `counts`: bindings per state code, AVAILABLE being the pool
/// size minus the records in every other state, and the utilisation (the share in states an address cannot be
/// handed out in: ACTIVE, ABANDONED, TRANSITIONING, REMOTE).
pub fn binding_counts(pool_size: Option<u64>, counts: &crate::engine::StateCounts) -> ([u64; 9], f64) {
    use leasewire_proto::DhcpState;
    let at = |s: DhcpState| usize::from(s.code());
    let mut out = counts.map(u64::from);
    let Some(size) = pool_size else { return (out, 0.0) };
    let others: u64 = DhcpState::ALL.iter().filter(|&&s| s != DhcpState::Available).map(|&s| out[at(s)]).sum();
    out[at(DhcpState::Available)] = size.saturating_sub(others);
    let in_use: u64 = IN_USE.iter().map(|&s| out[at(s)]).sum();
    (out, if size == 0 { 0.0 } else { in_use as f64 / size as f64 })
}

/// One subnet's gauges, created once (and again on a reload that changes the subnets), so a commit updates
/// them with a few atomic stores rather than a label lookup per state.
#[derive(Debug)]
struct SubnetGauges {
    label: String,
    /// Indexed by dhcp-state code (0 unused).
    by_state: Vec<Gauge>,
    /// None for the slot outside every subnet.
    utilisation: Option<Gauge<f64, AtomicU64>>,
    pool_size: u64,
}

/// Label: the phase of an Active stream.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    /// `live` or `catch_up`.
    pub phase: String,
}

/// Label: how a catch-up ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `complete` or `data_missing`.
    pub outcome: String,
}

/// Label: whether something succeeded.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: String,
}

/// All DHCP metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Packets received, by message type.
    pub packets_in: Family<TypeLabel, Counter>,
    /// Packets sent, by message type.
    pub packets_out: Family<TypeLabel, Counter>,
    /// Packets dropped, by reason.
    pub drops: Family<ReasonLabel, Counter>,
    /// Bindings by subnet and state; AVAILABLE is the pool size minus the other states.
    pub leases: Family<LeaseLabel, Gauge>,
    /// Addresses each subnet can hand out (pools minus exclusions, plus reservations outside the pools).
    pub pool_size: Family<SubnetLabel, Gauge>,
    /// Per subnet, the share of the pool that cannot go to a new client (ACTIVE, ABANDONED, TRANSITIONING,
    /// REMOTE): what to alert on before the pool runs out.
    pub pool_utilisation: Family<SubnetLabel, Gauge<f64, AtomicU64>>,
    /// Lease log lines not written because the log fell behind (a summary line says how many per second).
    pub lease_log_dropped: Counter,
    /// Control socket requests by command and result.
    pub control_requests: Family<ControlLabel, Counter>,
    /// The per-subnet handles behind `leases`, `pool_size` and `pool_utilisation`, by engine slot.
    subnets: RwLock<Vec<SubnetGauges>>,
    /// Seconds from handing a change to the store to its durable commit.
    pub commit_seconds: Histogram,
    /// Failed commits (the reply was not sent).
    pub commit_errors: Counter,
    /// Active Leasequery streams open now.
    pub active_connections: Gauge,
    /// Bindings sent on Active streams, by phase (`live`, `catch_up`).
    pub active_updates: Family<PhaseLabel, Counter>,
    /// Live changes coalesced with a queued one for the same address.
    pub active_coalesced: Counter,
    /// Catch-ups by outcome (`complete`, `data_missing`).
    pub active_catch_ups: Family<OutcomeLabel, Counter>,
    /// Deepest backlog of any Active stream at the last report.
    pub active_backlog_max: Gauge,
    /// TLS handshakes refused (unknown CA, expired, no certificate, not on the allow-list, timeout).
    pub tls_failures: Counter,
    /// Leasequery TCP connections closed before a query was accepted, by reason (`not_allowed`,
    /// `per_source_limit`, `max_connections`, `pending_evicted`, `pre_auth_timeout`, `bad_input`, `tls_*`, ...):
    /// what an operator looks at when requestors cannot connect or the listener is under attack.
    pub tcp_rejected: Family<ReasonLabel, Counter>,
    /// Configuration reloads by result (`ok`, `error`), both present from the start so an alert on a failed
    /// reload can be written before the first one.
    pub reloads: Family<ResultLabel, Counter>,
    /// Per message type code (0 = none/unknown), the counters of `packets_in` / `packets_out`, created once
    /// so the per-packet path neither allocates a label nor takes the family's lock.
    received_by_code: Vec<Counter>,
    sent_by_code: Vec<Counter>,
    registry: Registry,
}

/// Register `metric` under `name` and hand it back: the registry keeps a clone, and both count the same.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Create the `packets_dropped` and `tcp_connections_rejected` counters of these reasons at zero, so an
    /// alert on them can be written before the first incident. The services own their reasons' names
    /// ([`crate::server::Server`] passes those of UDP Leasequery and of the TCP service, which this module does
    /// not import, so neither imports the other).
    pub fn known_reasons<'a>(
        &self,
        dropped: impl IntoIterator<Item = &'a str>,
        rejected: impl IntoIterator<Item = &'a str>,
    ) {
        for r in dropped {
            let _ = self.drops.get_or_create(&ReasonLabel { reason: r.to_string() });
        }
        for r in rejected {
            let _ = self.tcp_rejected.get_or_create(&ReasonLabel { reason: r.to_string() });
        }
    }

    /// The metrics, with every counter of a known label set at zero.
    pub fn new() -> Self {
        // The whole server's metrics are `leasewire_*`; the DHCP service's under `leasewire_dhcp`.
        let mut root = Registry::with_prefix("leasewire");
        let reloads = registered(&mut root, "reloads", "Configuration reloads, by result", Family::default());
        for result in ["ok", "error"] {
            let _ = reloads.get_or_create(&ResultLabel { result: result.into() });
        }
        let lease_log_dropped = registered(
            &mut root,
            "lease_log_dropped",
            "Lease log lines not written because the log fell behind",
            Counter::default(),
        );
        let control_requests: Family<ControlLabel, Counter> = registered(
            &mut root,
            "control_requests",
            "Control socket requests by command and result",
            Family::default(),
        );
        let pairs = CONTROL_COMMANDS.iter().flat_map(|c| [(*c, "ok"), (*c, "error")]);
        for (command, result) in pairs.chain([("connect", "refused")]) {
            let _ = control_requests.get_or_create(&ControlLabel { command: command.into(), result: result.into() });
        }
        let registry = root.sub_registry_with_prefix("dhcp");
        let pool_size = registered(registry, "pool_size", "Addresses each subnet can hand out", Family::default());
        let pool_utilisation = registered(
            registry,
            "pool_utilisation_ratio",
            "Share of each subnet's pool that cannot go to a new client (ACTIVE, ABANDONED, TRANSITIONING, REMOTE)",
            Family::<SubnetLabel, Gauge<f64, AtomicU64>>::default(),
        );
        let packets_in =
            registered(registry, "packets_received", "DHCP packets received, by message type", Family::default());
        let packets_out = registered(registry, "packets_sent", "DHCP packets sent, by message type", Family::default());
        let drops = registered(registry, "packets_dropped", "DHCP packets dropped, by reason", Family::default());
        let leases = registered(registry, "leases", "Bindings by subnet and state", Family::default());
        let commit_seconds = registered(
            registry,
            "commit_seconds",
            "Durable commit latency",
            Histogram::new([0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0]),
        );
        let commit_errors =
            registered(registry, "commit_errors", "Commits that failed (no reply was sent)", Counter::default());
        let per_code = |family: &Family<TypeLabel, Counter>| -> Vec<Counter> {
            (0..=18u8)
                .map(|c| {
                    let name = if c == 0 { "none" } else { leasewire_proto::MessageType::from_code(c).name() };
                    family.get_or_create(&TypeLabel { r#type: name.to_string() }).clone()
                })
                .collect()
        };
        let tcp_rejected = registered(
            registry,
            "tcp_connections_rejected",
            "Leasequery TCP connections closed before a query was accepted, by reason",
            Family::default(),
        );
        let active_connections =
            registered(registry, "active_connections", "Active Leasequery streams open", Gauge::default());
        let active_updates = registered(
            registry,
            "active_updates",
            "Bindings sent on Active Leasequery streams, by phase",
            Family::<PhaseLabel, Counter>::default(),
        );
        let active_coalesced =
            registered(registry, "active_coalesced", "Live changes coalesced with a queued one", Counter::default());
        let active_catch_ups: Family<OutcomeLabel, Counter> =
            registered(registry, "active_catch_ups", "Active Leasequery catch-ups by outcome", Family::default());
        let active_backlog_max = registered(
            registry,
            "active_backlog_max",
            "Deepest Active Leasequery backlog at the last report",
            Gauge::default(),
        );
        let tls_failures = registered(registry, "tls_failures", "Refused TLS handshakes", Counter::default());
        let received_by_code = per_code(&packets_in);
        let sent_by_code = per_code(&packets_out);
        let reason = |r: &str| ReasonLabel { reason: r.to_string() };
        let drop_reasons = crate::engine::DropReason::ALL.iter().map(|r| r.label());
        for r in drop_reasons.chain(["decode_error", "send_error", "store_conflict"]) {
            let _ = drops.get_or_create(&reason(r));
        }
        for p in ["live", "catch_up"] {
            let _ = active_updates.get_or_create(&PhaseLabel { phase: p.to_string() });
        }
        for o in ["complete", "data_missing"] {
            let _ = active_catch_ups.get_or_create(&OutcomeLabel { outcome: o.to_string() });
        }
        Self {
            packets_in,
            packets_out,
            drops,
            leases,
            pool_size,
            pool_utilisation,
            lease_log_dropped,
            control_requests,
            subnets: RwLock::new(Vec::new()),
            commit_seconds,
            commit_errors,
            active_connections,
            active_updates,
            active_coalesced,
            active_catch_ups,
            active_backlog_max,
            tls_failures,
            tcp_rejected,
            reloads,
            received_by_code,
            sent_by_code,
            registry: root,
        }
    }

    /// (Re)create the per-subnet gauges for these subnets, in engine slot order (see
    /// `Engine::slot_of`), plus the slot of addresses outside every subnet. Gauges of subnets no longer
    /// configured are removed from the exposition; the new ones read 0 (AVAILABLE: the pool size) until
    /// [`Metrics::update_bindings`] fills them.
    pub fn set_subnets(&self, subnets: &[crate::config::Subnet]) {
        let mut slots = self.subnets.write().unwrap_or_else(|p| p.into_inner());
        for old in slots.drain(..) {
            for state in leasewire_proto::DhcpState::ALL {
                self.leases.remove(&LeaseLabel { subnet: old.label.clone(), state: state.name().into() });
            }
            self.pool_size.remove(&SubnetLabel { subnet: old.label.clone() });
            self.pool_utilisation.remove(&SubnetLabel { subnet: old.label });
        }
        let named = subnets.iter().map(|s| (s.net.to_string(), Some(s.pool_size())));
        for (label, size) in named.chain([(OTHER_SUBNET.to_string(), None)]) {
            let mut by_state = vec![Gauge::default()];
            for state in leasewire_proto::DhcpState::ALL {
                by_state.push(
                    self.leases
                        .get_or_create(&LeaseLabel { subnet: label.clone(), state: state.name().into() })
                        .clone(),
                );
            }
            let utilisation = size.map(|size| {
                self.pool_size.get_or_create(&SubnetLabel { subnet: label.clone() }).set(size as i64);
                self.pool_utilisation.get_or_create(&SubnetLabel { subnet: label.clone() }).clone()
            });
            let g = SubnetGauges { label, by_state, utilisation, pool_size: size.unwrap_or(0) };
            Self::fill(&g, &[0; 9]);
            slots.push(g);
        }
    }

    /// Set a slot's gauges from the engine's record counts (`Engine::state_counts`): each state as counted,
    /// except AVAILABLE, which is the pool size minus the records in every other state (an address with no
    /// record is available too).
    pub fn update_bindings(&self, slot: usize, counts: &crate::engine::StateCounts) {
        let slots = self.subnets.read().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = slots.get(slot) {
            Self::fill(g, counts);
        }
    }

    fn fill(g: &SubnetGauges, counts: &crate::engine::StateCounts) {
        let size = g.utilisation.as_ref().map(|_| g.pool_size);
        let (by_state, utilisation) = binding_counts(size, counts);
        for (gauge, n) in g.by_state.iter().zip(by_state) {
            gauge.set(n as i64);
        }
        if let Some(u) = &g.utilisation {
            u.set(utilisation);
        }
    }

    /// Count a control socket request.
    pub fn control_request(&self, command: &str, result: &str) {
        self.control_requests.get_or_create(&ControlLabel { command: command.into(), result: result.into() }).inc();
    }

    /// Count a dropped packet.
    pub fn dropped(&self, reason: &str) {
        self.drops.get_or_create(&ReasonLabel { reason: reason.to_string() }).inc();
    }

    /// Count a TCP connection closed before it was admitted.
    pub fn rejected(&self, reason: &str) {
        self.tcp_rejected.get_or_create(&ReasonLabel { reason: reason.to_string() }).inc();
    }

    /// The value of a rejected-connection counter (for tests and logs).
    pub fn rejected_for(&self, reason: &str) -> u64 {
        self.tcp_rejected.get_or_create(&ReasonLabel { reason: reason.to_string() }).get()
    }

    /// Count a received packet by its message type (None: no option 53).
    pub fn received(&self, t: Option<leasewire_proto::MessageType>) {
        Self::count(&self.received_by_code, &self.packets_in, t);
    }

    /// Count a sent packet.
    pub fn sent(&self, t: leasewire_proto::MessageType) {
        Self::count(&self.sent_by_code, &self.packets_out, Some(t));
    }

    fn count(fast: &[Counter], family: &Family<TypeLabel, Counter>, t: Option<leasewire_proto::MessageType>) {
        let code = t.map_or(0, |t| t.code()) as usize;
        match fast.get(code) {
            Some(c) if !matches!(t, Some(leasewire_proto::MessageType::Unknown(_))) => {
                c.inc();
            }
            _ => {
                family.get_or_create(&TypeLabel { r#type: format!("UNKNOWN({code})") }).inc();
            }
        }
    }

    /// Add an Active stream's counters.
    pub fn active(&self, s: leasewire_proto::session::server::ActiveStats, backlog: usize) {
        let phase = |p: &str| PhaseLabel { phase: p.to_string() };
        let outcome = |o: &str| OutcomeLabel { outcome: o.to_string() };
        if s.live_sent > 0 {
            self.active_updates.get_or_create(&phase("live")).inc_by(s.live_sent);
        }
        if s.catch_up_sent > 0 {
            self.active_updates.get_or_create(&phase("catch_up")).inc_by(s.catch_up_sent);
        }
        if s.coalesced > 0 {
            self.active_coalesced.inc_by(s.coalesced);
        }
        if s.catch_up_complete > 0 {
            self.active_catch_ups.get_or_create(&outcome("complete")).inc_by(s.catch_up_complete);
        }
        if s.data_missing > 0 {
            self.active_catch_ups.get_or_create(&outcome("data_missing")).inc_by(s.data_missing);
        }
        if backlog as i64 > self.active_backlog_max.get() {
            self.active_backlog_max.set(backlog as i64);
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &self.registry).expect("writing to a String");
        s
    }

    /// The value of a drop counter (for tests and logs).
    pub fn drops_for(&self, reason: &str) -> u64 {
        self.drops.get_or_create(&ReasonLabel { reason: reason.to_string() }).get()
    }
}

/// Serve `/metrics` until the task is dropped.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    serve_on(tokio::net::TcpListener::bind(addr).await?, metrics).await
}

/// Serve `/metrics` on a bound listener (bound first, so a taken port is a start-up error, not a log line).
pub async fn serve_on(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let m = metrics.clone();
            async move { ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.encode()) }
        }),
    );
    axum::serve(listener, app).await
}
