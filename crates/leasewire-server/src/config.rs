//! The server's configuration: one TOML file, validated at start with errors that name the key and the line.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use toml::Spanned;

/// A configuration problem, naming the key and (when known) the line of the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}{}{message}",
    line.map(|l| format!("line {l}: ")).unwrap_or_default(),
    if key.is_empty() { String::new() } else { format!("{key}: ") }
)]
pub struct ConfigError {
    /// Dotted path of the offending key, e.g. `subnet[0].pools[1].end`.
    pub key: String,
    /// 1-based line in the file.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Server-wide settings.
    pub server: ServerSection,
    /// Metrics endpoint (off unless `listen` is set).
    #[serde(default)]
    pub metrics: MetricsSection,
    /// Leasequery (RFC 4388, RFC 6148) over UDP: off unless requestors are allowed.
    #[serde(default)]
    pub leasequery: LeasequerySection,
    /// Bulk Leasequery (RFC 6926) over TCP: off unless requestors are allowed.
    #[serde(default)]
    pub bulk_leasequery: BulkSection,
    /// Active Leasequery (RFC 7724) on the same TCP listener: off unless enabled (ALQ-8.1-2).
    #[serde(default)]
    pub active_leasequery: ActiveSection,
    /// What is logged (besides the `LEASEWIRE_LOG` filter).
    #[serde(default)]
    pub log: LogSection,
    /// The control socket (`leasewire ctl`).
    #[serde(default)]
    pub control: ControlSection,
    /// Address pools.
    #[serde(default, rename = "subnet")]
    pub subnets: Vec<SubnetConfig>,
}

/// `[control]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ControlSection {
    /// The Unix socket `leasewire ctl` talks to. Default `control.sock` in the data directory; without a data
    /// directory (PostgreSQL store) there is no control socket unless this is set.
    pub socket: Option<PathBuf>,
}

/// The control socket's file name inside the data directory, when `[control] socket` is not set.
pub const CONTROL_SOCKET: &str = "control.sock";

/// `[log]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogSection {
    /// The lease log: one INFO line per committed change (target `leasewire::lease`). Default true.
    #[serde(default = "default_true")]
    pub leases: bool,
}

impl Default for LogSection {
    fn default() -> Self {
        Self { leases: true }
    }
}

fn default_true() -> bool {
    true
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerSection {
    /// The server identifier (option 54): an address of this server every client can reach.
    pub server_id: Ipv4Addr,
    /// Where the lease database lives (created if absent). Required with the embedded store; unused (and
    /// optional) with `store = { kind = "postgres", ... }`.
    pub data_dir: Option<PathBuf>,
    /// UDP sockets for DHCP. Default `0.0.0.0:67`.
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    /// Network interfaces to serve directly connected clients on (one socket per interface on port 67, bound
    /// with SO_BINDTODEVICE, so the receiving interface selects the subnet).
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Seconds an address stays abandoned after a DHCPDECLINE.
    #[serde(default = "default_decline_time")]
    pub decline_time: u32,
    /// Seconds an offered address is held for the client before it may be offered to another.
    #[serde(default = "default_offer_timeout")]
    pub offer_timeout: u32,
    /// Seconds a released or expired binding keeps its record (so active requestors see the transition)
    /// before it may be forgotten.
    #[serde(default = "default_retention")]
    pub retention: u32,
    /// Whether offers are committed to the store (and so visible to leasequery) like other state changes.
    #[serde(default)]
    pub commit_offers: bool,
    /// DISCOVER flood protection: offers outstanding at once to new clients behind one relay circuit (giaddr
    /// and option 82 circuit-id; for direct clients, the interface). A flood of DISCOVERs with random hardware
    /// addresses from one port then holds at most this many addresses, not the pool. 0: no limit.
    #[serde(default)]
    pub max_offers_per_circuit: usize,
    /// The same per relay (giaddr), for floods that also vary the circuit-id. 0: no limit.
    #[serde(default)]
    pub max_offers_per_relay: usize,
    /// Started as root: the user to run as once every socket is bound (port 67, SO_BINDTODEVICE), so a flaw
    /// in packet handling cannot act as root. The data directory is handed to this user. Absent: no change.
    pub user: Option<String>,
    /// The group to run as with `user`; default that user's primary group.
    pub group: Option<String>,
    /// Where leases are kept: absent (or `kind = "sqlite"`) means the embedded SQLite file in `data-dir`;
    /// `kind = "postgres"` a PostgreSQL database shared with other servers (see docs/postgres.md).
    pub store: Option<Spanned<StoreSection>>,
    /// What to log, in `tracing` filter syntax (e.g. `info`, `leasewire_server=debug,info`); overrides the
    /// `LEASEWIRE_LOG` environment variable and can be changed by a reload. Absent: `LEASEWIRE_LOG`, else `info`.
    pub log_filter: Option<String>,
}

/// `[server] store = { kind = ..., ... }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StoreSection {
    /// `"sqlite"` (the default, embedded) or `"postgres"` (shared by several servers).
    pub kind: Spanned<String>,
    /// PostgreSQL: a `postgresql://` URL or a `key=value` connection string.
    pub url: Option<Spanned<String>>,
    /// PostgreSQL: this server's name in the database; rows another name wrote read as data-source REMOTE.
    /// Every server on one database needs its own. Default: the server-id.
    pub name: Option<Spanned<String>>,
    /// PostgreSQL: where in each pool this server starts handing out never-used addresses, as a fraction of
    /// the pool (0 ≤ x < 1). Servers that start apart rarely race for the same address (the database refuses
    /// the loser, whose client gets a NAK and starts over). Default: spread by a hash of `name`.
    pub start_at: Option<Spanned<f64>>,
    /// PostgreSQL: connections in the pool. Default 8.
    pub pool_size: Option<Spanned<usize>>,
    /// PostgreSQL: the CA (PEM) that signs the database server's certificate. Setting it turns TLS on for
    /// every connection to the database, required whatever `sslmode` the URL says; the server's name is
    /// checked against the URL's host.
    pub ca: Option<Spanned<PathBuf>>,
    /// PostgreSQL with `ca`: this server's client certificate chain (PEM), for databases that authenticate
    /// by certificate (`hostssl ... cert` in pg_hba.conf). With `key`.
    pub cert: Option<Spanned<PathBuf>>,
    /// PostgreSQL with `cert`: its private key (PEM).
    pub key: Option<Spanned<PathBuf>>,
}

/// TLS to the PostgreSQL database (`server.store.ca`, `cert`, `key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTls {
    /// The CA that signs the database server's certificate.
    pub ca: PathBuf,
    /// A client certificate chain and its key.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// The store the server runs on, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreChoice {
    /// The embedded SQLite file in `data-dir` (the default).
    Sqlite,
    /// A PostgreSQL database shared with other servers.
    Postgres {
        /// The connection string.
        url: String,
        /// This server's name in the database.
        name: String,
        /// Where allocation starts in each pool (fraction of the pool).
        start_at: f64,
        /// Pooled connections.
        pool_size: usize,
        /// TLS to the database, if configured.
        tls: Option<StoreTls>,
    },
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MetricsSection {
    /// Address for the Prometheus `/metrics` endpoint; absent means off.
    pub listen: Option<SocketAddr>,
}

/// `[leasequery]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LeasequerySection {
    /// Requestors allowed to query, as prefixes; both the source address and giaddr (where the reply goes) must
    /// be inside. Empty: leasequery is off and queries are dropped (RFC 4388 §5: a server that does not answer
    /// leasequery stays silent).
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Stored client options (e.g. hostname 12, vendor class 60) that may be returned when a requestor asks for
    /// them: RFC 4388 §6.4.2's list of non-sensitive options.
    #[serde(default = "default_disclose")]
    pub disclose: Vec<u8>,
    /// Options never returned to anyone, whatever else says so (e.g. 82 where circuit ids are confidential).
    #[serde(default)]
    pub withhold: Vec<u8>,
    /// Queries per second accepted from one requestor (burst: twice that); 0 means no limit.
    #[serde(default = "default_lq_rate")]
    pub rate_limit: u32,
    /// Answer queries about a reserved address without a lease as leased to its reserved client (RFC 7724 §8.2).
    #[serde(default)]
    pub reserved_as_leased: bool,
    /// Per-requestor rules: options never disclosed to requestors in a prefix, on top of `withhold`. The
    /// most specific matching prefix applies. They govern UDP, Bulk and Active replies alike.
    #[serde(default, rename = "requestor")]
    pub requestors: Vec<RequestorRule>,
    /// Which active binding a query by MAC answers with when the MAC has several (LQ-6.4.1-6).
    #[serde(default)]
    pub mac_query_prefers: MacQueryPrefers,
}

/// `[leasequery] mac-query-prefers`: the binding a query by MAC (RFC 4388 §6.4.1) picks among several active
/// ones of that MAC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MacQueryPrefers {
    /// The one of the client's most recent transaction (LQ-6.4.1-6, the RFC's rule).
    #[default]
    MostRecent,
    /// A binding whose client is identified by the MAC (no client-id, RFC 2131 §4.2) before one that only
    /// came from that MAC with a client-id of its own, then the most recent (what ISC dhcpd 4.4 answers).
    MacIdentified,
}

/// `[[leasequery.requestor]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RequestorRule {
    /// The requestors it applies to (prefix or address).
    pub prefix: Spanned<String>,
    /// Options never returned to them.
    #[serde(default)]
    pub withhold: Vec<u8>,
}

impl Default for LeasequerySection {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            disclose: default_disclose(),
            mac_query_prefers: MacQueryPrefers::default(),
            withhold: Vec::new(),
            rate_limit: default_lq_rate(),
            reserved_as_leased: false,
            requestors: Vec::new(),
        }
    }
}

fn default_disclose() -> Vec<u8> {
    vec![12, 60]
}

fn default_lq_rate() -> u32 {
    10_000
}

/// `[bulk-leasequery]`: the TCP listener shared by Bulk (and, later, Active) Leasequery.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BulkSection {
    /// TCP addresses to listen on (RFC 6926 §6.3: port 67 by default).
    #[serde(default = "default_tcp_listen")]
    pub listen: Vec<SocketAddr>,
    /// Requestors allowed to connect, as prefixes; anything else is closed at once (BLQ-8.1-3). Empty: off.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// BULK_LQ_MAX_CONNS: admitted connections (a query was accepted on them) at once; a connection admitted
    /// beyond it is closed at once (BLQ-8.1-2).
    #[serde(default = "default_max_conns")]
    pub max_connections: usize,
    /// Connections accepted that have not yet had a query accepted (in secure mode: DHCPTLS, handshake and
    /// first query still to come). Separate from `max-connections` so peers that send nothing, half a frame
    /// or garbage cannot take the admitted requestors' places; when full, a new connection evicts the oldest
    /// pending one of the source holding the most.
    #[serde(default = "default_max_pending")]
    pub max_pending_connections: usize,
    /// Seconds from accept within which a connection must have had a query accepted (after DHCPTLS and the
    /// TLS handshake in secure mode), or it is closed: the slowloris defence the data timeout cannot give
    /// (any octet is progress). Not an RFC timer (RFC 6926 §9 and RFC 7724 §9 ask for limits on idle and
    /// partial connections without naming one).
    #[serde(default = "default_pre_auth_timeout")]
    pub pre_auth_timeout: u64,
    /// Connections at once from one requestor address (RFC 6926 §9).
    #[serde(default = "default_max_conns_per_requestor")]
    pub max_connections_per_requestor: usize,
    /// Queries processed at once on one connection (BLQ-7.7-2).
    #[serde(default = "default_max_queries")]
    pub max_queries_per_connection: usize,
    /// BULK_LQ_DATA_TIMEOUT in seconds (RFC default 300; lower values are NOT RECOMMENDED).
    #[serde(default = "default_data_timeout")]
    pub data_timeout: u64,
    /// Largest frame accepted from a requestor, octets (a query is a few hundred; RFC maximum 65535).
    #[serde(default = "default_max_frame")]
    pub max_frame: usize,
}

impl Default for BulkSection {
    fn default() -> Self {
        Self {
            listen: default_tcp_listen(),
            allow: Vec::new(),
            max_connections: default_max_conns(),
            max_pending_connections: default_max_pending(),
            pre_auth_timeout: default_pre_auth_timeout(),
            max_connections_per_requestor: default_max_conns_per_requestor(),
            max_queries_per_connection: default_max_queries(),
            data_timeout: default_data_timeout(),
            max_frame: default_max_frame(),
        }
    }
}

fn default_tcp_listen() -> Vec<SocketAddr> {
    vec!["0.0.0.0:67".parse().expect("valid")]
}
fn default_max_conns() -> usize {
    10
}
fn default_max_pending() -> usize {
    32
}
fn default_pre_auth_timeout() -> u64 {
    10
}
fn default_max_conns_per_requestor() -> usize {
    4
}
fn default_max_queries() -> usize {
    4
}
fn default_data_timeout() -> u64 {
    300
}
fn default_max_frame() -> usize {
    leasewire_proto::framing::DEFAULT_MAX_FRAME
}

/// `[active-leasequery]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ActiveSection {
    /// Turn Active Leasequery on (RFC 7724 §8.1: it must be off by default).
    #[serde(default)]
    pub enabled: bool,
    /// Run without TLS. Secure mode (TLS with mutual authentication) is the default once enabled (ALQ-8.1-4);
    /// insecure mode needs this separate setting (ALQ-8.1-5).
    #[serde(default)]
    pub insecure: bool,
    /// ACTIVE_LQ_IDLE_TIMEOUT, seconds (RFC default 60): a keep-alive after this long without sending.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: u64,
    /// ACTIVE_LQ_SEND_TIMEOUT, seconds (RFC default 120): a write blocked this long closes the connection.
    #[serde(default = "default_send_timeout")]
    pub send_timeout: u64,
    /// Addresses with unsent changes a requestor may have queued before it counts as too slow and is closed.
    #[serde(default = "default_max_backlog")]
    pub max_backlog: usize,
    /// TLS for secure mode (DHCPTLS, RFC 7724 §8.1).
    pub tls: Option<TlsSection>,
}

/// `[active-leasequery.tls]`: PEM files and the requestors allowed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsSection {
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// The CA that signs requestor certificates (mutual authentication, ALQ-8.1-16).
    pub ca: PathBuf,
    /// Requestors allowed by a DNS, URI or IP subjectAltName. A certificate is allowed when it matches any
    /// entry of `allow-names`, `allow-cn` or `allow-spki`; with all three empty, any the CA signed is.
    #[serde(default)]
    pub allow_names: Vec<String>,
    /// Requestors allowed by subject common name (for certificates without subjectAltName).
    #[serde(default)]
    pub allow_cn: Vec<String>,
    /// Requestors allowed by key: base64 of the SHA-256 of the DER SubjectPublicKeyInfo.
    #[serde(default)]
    pub allow_spki: Vec<String>,
}

impl TlsSection {
    /// The allow-list these keys make.
    pub fn allow_list(&self) -> crate::tls_allow::AllowList {
        crate::tls_allow::AllowList {
            names: self.allow_names.clone(),
            cns: self.allow_cn.clone(),
            spki: self.allow_spki.clone(),
        }
    }
}

impl Default for ActiveSection {
    fn default() -> Self {
        Self {
            enabled: false,
            insecure: false,
            idle_timeout: default_idle_timeout(),
            send_timeout: default_send_timeout(),
            max_backlog: default_max_backlog(),
            tls: None,
        }
    }
}

fn default_idle_timeout() -> u64 {
    60
}
fn default_send_timeout() -> u64 {
    120
}
fn default_max_backlog() -> usize {
    65_536
}

/// `[[subnet]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SubnetConfig {
    /// The subnet, e.g. `10.0.0.0/24`.
    pub subnet: Spanned<String>,
    /// For directly connected clients: the interface this subnet is on.
    pub interface: Option<String>,
    /// Address ranges to lease.
    #[serde(default)]
    pub pools: Vec<PoolConfig>,
    /// Addresses inside the pools never to lease.
    #[serde(default)]
    pub exclude: Vec<Spanned<Ipv4Addr>>,
    /// Lease time in seconds.
    #[serde(default = "default_lease_time")]
    pub lease_time: u32,
    /// T1 (option 58); default half the lease time.
    pub renewal_time: Option<u32>,
    /// T2 (option 59); default seven eighths of the lease time.
    pub rebinding_time: Option<u32>,
    /// Options handed to clients.
    #[serde(default)]
    pub options: OptionsConfig,
    /// Fixed addresses.
    #[serde(default, rename = "reservation")]
    pub reservations: Vec<ReservationConfig>,
}

/// `pools = [{ start = "...", end = "..." }]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PoolConfig {
    /// First address.
    pub start: Spanned<Ipv4Addr>,
    /// Last address (inclusive).
    pub end: Spanned<Ipv4Addr>,
}

/// `[subnet.options]`: common options by name, any other by code. (No `deny_unknown_fields`: serde cannot
/// combine it with `flatten`; an unknown name lands in `by_code` and is rejected there as "not a code".)
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct OptionsConfig {
    /// Option 3.
    #[serde(default)]
    pub routers: Vec<Ipv4Addr>,
    /// Option 6.
    #[serde(default)]
    pub dns_servers: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain_name: Option<String>,
    /// Option 28.
    pub broadcast_address: Option<Ipv4Addr>,
    /// Any option by code: `"42" = "hex:0a000001"`, `"66" = "tftp.example"` (text), or a list of addresses.
    #[serde(default, flatten)]
    pub by_code: HashMap<String, OptionValue>,
}

/// The value of an option given by code.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OptionValue {
    /// `"hex:..."` for raw octets, anything else as text.
    Text(String),
    /// A list of IPv4 addresses.
    Addresses(Vec<Ipv4Addr>),
    /// A 32-bit number.
    Number(u32),
}

/// `[[subnet.reservation]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReservationConfig {
    /// The reserved address.
    pub ip: Spanned<Ipv4Addr>,
    /// Ethernet address, `02:00:00:00:00:01`.
    pub hw_address: Option<Spanned<String>>,
    /// Client identifier (option 61) in hex, `01:02:00:00:00:00:01`.
    pub client_id: Option<Spanned<String>>,
    /// A name for logs and for the binding's reserved-for field.
    pub name: Option<String>,
}

fn default_listen() -> Vec<SocketAddr> {
    vec!["0.0.0.0:67".parse().expect("valid")]
}
fn default_decline_time() -> u32 {
    86_400
}
fn default_offer_timeout() -> u32 {
    60
}
fn default_retention() -> u32 {
    leasewire_store::DEFAULT_RETENTION_SECS
}
fn default_lease_time() -> u32 {
    3_600
}

/// An option code and its encoded value.
pub type EncodedOption = (u8, Vec<u8>);

/// A subnet ready for the engine: parsed and checked.
#[derive(Debug, Clone)]
pub struct Subnet {
    /// The network.
    pub net: Ipv4Net,
    /// Interface for directly connected clients.
    pub interface: Option<String>,
    /// Inclusive ranges as u32.
    pub pools: Vec<(u32, u32)>,
    /// Excluded addresses.
    pub exclude: Vec<Ipv4Addr>,
    /// Lease time.
    pub lease_time: u32,
    /// T1.
    pub renewal_time: u32,
    /// T2.
    pub rebinding_time: u32,
    /// Encoded options to hand out, by code, in code order.
    pub options: Vec<EncodedOption>,
    /// Reservations.
    pub reservations: Vec<Reservation>,
}

impl Subnet {
    /// How many addresses this subnet can hand out: those in its pools that are not excluded, and reserved
    /// addresses outside the pools. What the metrics' AVAILABLE count and utilisation are measured against.
    pub fn pool_size(&self) -> u64 {
        let in_pools = |a: u32| self.pools.iter().any(|&(s, e)| (s..=e).contains(&a));
        let ranges: u64 = self.pools.iter().map(|&(s, e)| u64::from(e - s) + 1).sum();
        let excluded: std::collections::HashSet<u32> =
            self.exclude.iter().map(|&a| u32::from(a)).filter(|&a| in_pools(a)).collect();
        let excluded = excluded.len() as u64;
        let reserved_outside = self.reservations.iter().filter(|r| !in_pools(u32::from(r.ip))).count() as u64;
        (ranges - excluded.min(ranges)) + reserved_outside
    }
}

/// A fixed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The address.
    pub ip: Ipv4Addr,
    /// Matches clients by hardware address (Ethernet).
    pub hw_address: Option<Vec<u8>>,
    /// Matches clients by client identifier.
    pub client_id: Option<Vec<u8>>,
    /// Name recorded as the binding's reserved-for.
    pub name: String,
}

/// A configuration that passed validation.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The parsed file.
    pub raw: Config,
    /// The subnets, checked.
    pub subnets: Vec<Subnet>,
    /// Prefixes allowed to send leasequeries.
    pub leasequery_allow: Vec<Ipv4Net>,
    /// Prefixes allowed to open Bulk Leasequery connections.
    pub bulk_allow: Vec<Ipv4Net>,
    /// Per-requestor withheld options: (prefix, options), most specific prefix first.
    pub requestor_withhold: Vec<(Ipv4Net, Vec<u8>)>,
    /// Warnings about settings that work but go against an RFC recommendation.
    pub warnings: Vec<String>,
    /// The lease store.
    pub store: StoreChoice,
    /// SHA-256 (hex) of the file this was read from (`Config::load`; None from `Config::parse`): which file
    /// content is in effect, for `leasewire ctl status`.
    pub source_sha256: Option<String>,
}

impl Config {
    /// Parse and validate a configuration file's text.
    pub fn parse(text: &str) -> Result<Validated, ConfigError> {
        // Through serde_path_to_error, so a wrong value names its key (`server.lease-time`), not only its line.
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError {
            key: String::new(),
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().to_string(),
        })?;
        let raw: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let e = e.into_inner();
            let line = e.span().map(|s| line_of(text, s.start));
            ConfigError { key: if path == "." { String::new() } else { path }, line, message: e.message().to_string() }
        })?;
        let subnets =
            raw.subnets.iter().enumerate().map(|(i, s)| s.validate(i, text)).collect::<Result<Vec<_>, _>>()?;
        check_overlaps(&subnets, &raw, text)?;
        let leasequery_allow = prefixes(&raw.leasequery.allow, "leasequery.allow", text)?;
        let bulk_allow = prefixes(&raw.bulk_leasequery.allow, "bulk-leasequery.allow", text)?;
        let mut requestor_withhold = Vec::new();
        for (i, r) in raw.leasequery.requestors.iter().enumerate() {
            let net = prefixes(std::slice::from_ref(&r.prefix), &format!("leasequery.requestor[{i}].prefix"), text)?;
            requestor_withhold.push((net[0], r.withhold.clone()));
        }
        requestor_withhold.sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        let mut warnings = Vec::new();
        let b = &raw.bulk_leasequery;
        if b.data_timeout < default_data_timeout() {
            warnings.push(format!(
                "bulk-leasequery.data-timeout = {} is below BULK_LQ_DATA_TIMEOUT (300 s), which RFC 6926 §6.3 does not recommend",
                b.data_timeout
            ));
        }
        let a = &raw.active_leasequery;
        if a.enabled && !a.insecure && a.tls.is_none() {
            return err(
                "active-leasequery.tls".into(),
                text,
                None,
                "secure mode (DHCPTLS with mutual TLS) is the default once Active Leasequery is enabled: give [active-leasequery.tls] cert, key and ca (`leasewire lab-certs` makes a set), or set insecure = true to run without TLS on a trusted network",
            );
        }
        if a.enabled && raw.bulk_leasequery.allow.is_empty() {
            return err(
                "active-leasequery.enabled".into(),
                text,
                None,
                "Active Leasequery uses the bulk-leasequery listener: set bulk-leasequery.allow",
            );
        }
        for (key, value, default) in [("idle-timeout", a.idle_timeout, 60), ("send-timeout", a.send_timeout, 120)] {
            if value < default {
                warnings.push(format!("active-leasequery.{key} = {value} is below the RFC 7724 default ({default} s), which §5.3 says should not be used"));
            }
        }
        if b.max_connections == 0 || b.max_queries_per_connection == 0 {
            return err(
                "bulk-leasequery".into(),
                text,
                None,
                "max-connections and max-queries-per-connection must be at least 1",
            );
        }
        let srv = &raw.server;
        for (key, v) in [("server.user", &srv.user), ("server.group", &srv.group)] {
            if v.as_deref().is_some_and(|n| n.is_empty() || n.contains(['/', ':', ' '])) {
                return err(key.into(), text, None, "expected a user or group name");
            }
        }
        if srv.group.is_some() && srv.user.is_none() {
            return err("server.group".into(), text, None, "only used with server.user");
        }
        if b.max_pending_connections == 0 {
            return err("bulk-leasequery.max-pending-connections".into(), text, None, "must be at least 1");
        }
        if b.pre_auth_timeout == 0 || b.pre_auth_timeout > b.data_timeout {
            return err(
                "bulk-leasequery.pre-auth-timeout".into(),
                text,
                None,
                format!("must be between 1 and data-timeout ({} s)", b.data_timeout),
            );
        }
        let store = store_choice(&raw.server, text)?;
        Ok(Validated {
            raw,
            subnets,
            leasequery_allow,
            bulk_allow,
            requestor_withhold,
            warnings,
            store,
            source_sha256: None,
        })
    }

    /// Read, parse and validate a file. Relative paths in it (data directory, certificates, keys, CAs) are
    /// taken relative to the file's own directory, so the meaning of a file does not depend on where the
    /// server was started from.
    pub fn load(path: &std::path::Path) -> Result<Validated, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            key: String::new(),
            line: None,
            message: format!("cannot read the file: {e}"),
        })?;
        let mut config = Self::parse(&text)?;
        config.source_sha256 = Some(sha256_hex(text.as_bytes()));
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    /// The effective configuration (defaults filled in) as TOML, for `leasewire ctl config show`.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot show the configuration: {e}\n"))
    }
}

impl Validated {
    /// Make every relative path in the configuration relative to `base` (the configuration file's directory).
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(d) = self.raw.server.data_dir.as_mut() {
            resolve(d);
        }
        if let Some(s) = self.raw.control.socket.as_mut() {
            resolve(s);
        }
        if let Some(t) = self.raw.active_leasequery.tls.as_mut() {
            resolve(&mut t.cert);
            resolve(&mut t.key);
            resolve(&mut t.ca);
        }
        if let StoreChoice::Postgres { tls: Some(t), .. } = &mut self.store {
            resolve(&mut t.ca);
            if let Some((c, k)) = t.client.as_mut() {
                resolve(c);
                resolve(k);
            }
        }
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Check `[server] store`: the kind is known and each key belongs to it.
fn store_choice(server: &ServerSection, text: &str) -> Result<StoreChoice, ConfigError> {
    let sqlite = || match server.data_dir {
        Some(_) => Ok(StoreChoice::Sqlite),
        None => err(
            "server.data-dir".into(),
            text,
            None,
            "required with the embedded store (the default): where the lease database lives",
        ),
    };
    let Some(section) = &server.store else { return sqlite() };
    let st = section.get_ref();
    let kind = st.kind.get_ref().as_str();
    match kind {
        "sqlite" => {
            let extra = [
                st.url.as_ref().map(|v| ("url", v.span())),
                st.name.as_ref().map(|v| ("name", v.span())),
                st.start_at.as_ref().map(|v| ("start-at", v.span())),
                st.pool_size.as_ref().map(|v| ("pool-size", v.span())),
                st.ca.as_ref().map(|v| ("ca", v.span())),
                st.cert.as_ref().map(|v| ("cert", v.span())),
                st.key.as_ref().map(|v| ("key", v.span())),
            ];
            if let Some((key, span)) = extra.into_iter().flatten().next() {
                return err(format!("server.store.{key}"), text, Some(span), "only for kind = \"postgres\"");
            }
            sqlite()
        }
        "postgres" => {
            let Some(url) = &st.url else {
                return err(
                    "server.store.url".into(),
                    text,
                    Some(section.span()),
                    "kind = \"postgres\" needs url (e.g. \"postgresql://leasewire@db.example/leases\")",
                );
            };
            if url.get_ref().trim().is_empty() {
                return err("server.store.url".into(), text, Some(url.span()), "must not be empty");
            }
            let name = match &st.name {
                Some(n) if n.get_ref().trim().is_empty() => {
                    return err("server.store.name".into(), text, Some(n.span()), "must not be empty");
                }
                Some(n) => n.get_ref().clone(),
                None => server.server_id.to_string(),
            };
            let start_at = match &st.start_at {
                Some(v) if !(0.0..1.0).contains(v.get_ref()) => {
                    return err("server.store.start-at".into(), text, Some(v.span()), "must be at least 0 and below 1");
                }
                Some(v) => *v.get_ref(),
                // FNV-1a of the name: stable across restarts and builds.
                None => {
                    let h = name
                        .bytes()
                        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
                    (h % 1_000_000) as f64 / 1_000_000.0
                }
            };
            let pool_size = match &st.pool_size {
                Some(v) if *v.get_ref() == 0 => {
                    return err("server.store.pool-size".into(), text, Some(v.span()), "must be at least 1");
                }
                Some(v) => *v.get_ref(),
                None => 8,
            };
            let client = match (&st.cert, &st.key) {
                (Some(c), Some(k)) => Some((c.get_ref().clone(), k.get_ref().clone())),
                (None, None) => None,
                (Some(c), None) => return err("server.store.key".into(), text, Some(c.span()), "cert needs key"),
                (None, Some(k)) => return err("server.store.cert".into(), text, Some(k.span()), "key needs cert"),
            };
            let tls = match (&st.ca, client) {
                (Some(ca), _) if url.get_ref().contains("host=/") || url.get_ref().contains("host=%2F") => {
                    return err(
                        "server.store.ca".into(),
                        text,
                        Some(ca.span()),
                        "the url names a Unix socket, where PostgreSQL offers no TLS: use a TCP host, or drop ca",
                    );
                }
                (Some(ca), client) => Some(StoreTls { ca: ca.get_ref().clone(), client }),
                (None, None) => None,
                (None, Some(_)) => {
                    let span = st.cert.as_ref().map(|c| c.span());
                    return err(
                        "server.store.ca".into(),
                        text,
                        span,
                        "a client certificate needs ca (the CA of the database server's certificate)",
                    );
                }
            };
            Ok(StoreChoice::Postgres { url: url.get_ref().clone(), name, start_at, pool_size, tls })
        }
        other => err(
            "server.store.kind".into(),
            text,
            Some(st.kind.span()),
            format!("unknown store kind {other:?}: expected \"sqlite\" or \"postgres\""),
        ),
    }
}

fn prefixes(list: &[Spanned<String>], key: &str, text: &str) -> Result<Vec<Ipv4Net>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            let net = p.get_ref().parse::<Ipv4Net>().or_else(|_| p.get_ref().parse::<Ipv4Addr>().map(Ipv4Net::from));
            net.map(|n| n.trunc())
                .or_else(|_| err(format!("{key}[{i}]"), text, Some(p.span()), "expected an IPv4 prefix or address"))
        })
        .collect()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

fn err<T>(
    key: String,
    text: &str,
    span: Option<std::ops::Range<usize>>,
    message: impl Into<String>,
) -> Result<T, ConfigError> {
    Err(ConfigError { key, line: span.map(|s| line_of(text, s.start)), message: message.into() })
}

/// Parse `02:00:00:00:00:01`, `02-00-...` or plain hex (see [`leasewire_proto::hex::parse`]).
pub use leasewire_proto::hex::parse as parse_hex;

impl SubnetConfig {
    fn validate(&self, i: usize, text: &str) -> Result<Subnet, ConfigError> {
        let key = |k: &str| format!("subnet[{i}].{k}");
        let net: Ipv4Net = match self.subnet.get_ref().parse() {
            Ok(n) => n,
            Err(_) => {
                return err(key("subnet"), text, Some(self.subnet.span()), "expected an IPv4 prefix like 10.0.0.0/24");
            }
        };
        let net = net.trunc();
        let mut pools = Vec::new();
        for (j, p) in self.pools.iter().enumerate() {
            let (s, e) = (*p.start.get_ref(), *p.end.get_ref());
            if !net.contains(&s) {
                return err(
                    key(&format!("pools[{j}].start")),
                    text,
                    Some(p.start.span()),
                    format!("{s} is outside {net}"),
                );
            }
            if !net.contains(&e) {
                return err(key(&format!("pools[{j}].end")), text, Some(p.end.span()), format!("{e} is outside {net}"));
            }
            if u32::from(s) > u32::from(e) {
                return err(
                    key(&format!("pools[{j}].end")),
                    text,
                    Some(p.end.span()),
                    format!("{e} is before start {s}"),
                );
            }
            pools.push((u32::from(s), u32::from(e)));
        }
        pools.sort();
        if let Some(w) = pools.windows(2).find(|w| w[1].0 <= w[0].1) {
            return err(key("pools"), text, None, format!("pools overlap at {}", Ipv4Addr::from(w[1].0)));
        }
        for x in &self.exclude {
            if !net.contains(x.get_ref()) {
                return err(key("exclude"), text, Some(x.span()), format!("{} is outside {net}", x.get_ref()));
            }
        }
        if self.lease_time == 0 {
            return err(key("lease-time"), text, None, "must be at least 1 second");
        }
        let renewal_time = self.renewal_time.unwrap_or(self.lease_time / 2);
        let rebinding_time = self.rebinding_time.unwrap_or((self.lease_time as u64 * 7 / 8) as u32);
        if !(renewal_time <= rebinding_time && rebinding_time <= self.lease_time) {
            return err(key("rebinding-time"), text, None, "need renewal-time <= rebinding-time <= lease-time");
        }
        let options = self.options.encode(net).map_err(|(k, m)| ConfigError {
            key: key(&format!("options.{k}")),
            line: None,
            message: m,
        })?;
        let mut reservations = Vec::new();
        for (j, r) in self.reservations.iter().enumerate() {
            let rk = |k: &str| key(&format!("reservation[{j}].{k}"));
            if !net.contains(r.ip.get_ref()) {
                return err(rk("ip"), text, Some(r.ip.span()), format!("{} is outside {net}", r.ip.get_ref()));
            }
            let hw = match &r.hw_address {
                Some(h) => match parse_hex(h.get_ref()) {
                    Some(b) if b.len() <= 16 => Some(b),
                    _ => {
                        return err(
                            rk("hw-address"),
                            text,
                            Some(h.span()),
                            "expected a hardware address like 02:00:00:00:00:01",
                        );
                    }
                },
                None => None,
            };
            let cid = match &r.client_id {
                Some(h) => match parse_hex(h.get_ref()) {
                    Some(b) if b.len() >= 2 => Some(b),
                    _ => return err(rk("client-id"), text, Some(h.span()), "expected at least 2 octets of hex"),
                },
                None => None,
            };
            if hw.is_none() && cid.is_none() {
                return err(rk("ip"), text, Some(r.ip.span()), "a reservation needs hw-address or client-id");
            }
            let name = r.name.clone().unwrap_or_else(|| format!("reservation {}", r.ip.get_ref()));
            reservations.push(Reservation { ip: *r.ip.get_ref(), hw_address: hw, client_id: cid, name });
        }
        Ok(Subnet {
            net,
            interface: self.interface.clone(),
            pools,
            exclude: self.exclude.iter().map(|x| *x.get_ref()).collect(),
            lease_time: self.lease_time,
            renewal_time,
            rebinding_time,
            options,
            reservations,
        })
    }
}

impl OptionsConfig {
    /// The options as (code, value) in code order; an error names the key (relative) and the problem.
    fn encode(&self, net: Ipv4Net) -> Result<Vec<EncodedOption>, (String, String)> {
        use leasewire_proto::options::code;
        let ips = |v: &[Ipv4Addr]| v.iter().flat_map(|a| a.octets()).collect::<Vec<u8>>();
        let mut out = vec![(code::SUBNET_MASK, net.netmask().octets().to_vec())];
        if !self.routers.is_empty() {
            out.push((code::ROUTERS, ips(&self.routers)));
        }
        if !self.dns_servers.is_empty() {
            out.push((code::DOMAIN_NAME_SERVERS, ips(&self.dns_servers)));
        }
        if let Some(d) = &self.domain_name {
            out.push((code::DOMAIN_NAME, d.as_bytes().to_vec()));
        }
        if let Some(b) = self.broadcast_address {
            out.push((code::BROADCAST_ADDRESS, b.octets().to_vec()));
        }
        for (k, v) in &self.by_code {
            let c: u8 = match k.parse() {
                Ok(c) if !matches!(c, 0 | 50..=59 | 61 | 82 | 255) => c,
                _ => {
                    return Err((
                        k.clone(),
                        "expected an option code 1-254 that the server does not manage itself".into(),
                    ));
                }
            };
            let data = match v {
                OptionValue::Text(t) => match t.strip_prefix("hex:") {
                    Some(h) => parse_hex(h).ok_or((k.clone(), "bad hex".to_string()))?,
                    None => t.as_bytes().to_vec(),
                },
                OptionValue::Addresses(a) => ips(a),
                OptionValue::Number(n) => n.to_be_bytes().to_vec(),
            };
            out.retain(|(x, _)| *x != c);
            out.push((c, data));
        }
        out.sort_by_key(|(c, _)| *c);
        Ok(out)
    }
}

fn check_overlaps(subnets: &[Subnet], raw: &Config, text: &str) -> Result<(), ConfigError> {
    for (i, a) in subnets.iter().enumerate() {
        for (j, b) in subnets.iter().enumerate().skip(i + 1) {
            if a.net.contains(&b.net.network()) || b.net.contains(&a.net.network()) {
                let span = raw.subnets[j].subnet.span();
                return err(
                    format!("subnet[{j}].subnet"),
                    text,
                    Some(span),
                    format!("{} overlaps subnet[{i}] {}", b.net, a.net),
                );
            }
        }
    }
    Ok(())
}

impl Validated {
    /// Where the control socket is: `[control] socket`, else `control.sock` in the data directory.
    pub fn control_socket(&self) -> Option<PathBuf> {
        let s = &self.raw;
        s.control.socket.clone().or_else(|| s.server.data_dir.as_ref().map(|d| d.join(CONTROL_SOCKET)))
    }

    /// Options never disclosed to a requestor at `addr`: the global list plus the most specific
    /// `[[leasequery.requestor]]` rule that covers it (RFC 4388 §6.4.2, RFC 7724 §8.2).
    pub fn withheld_for(&self, addr: Ipv4Addr) -> Vec<u8> {
        let mut out = self.raw.leasequery.withhold.clone();
        if let Some((_, w)) = self.requestor_withhold.iter().find(|(n, _)| n.contains(&addr)) {
            for c in w {
                if !out.contains(c) {
                    out.push(*c);
                }
            }
        }
        out
    }

    /// A human summary of what this configuration enables (for `check-config`).
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let s = &self.raw.server;
        let mut out = String::new();
        match &s.data_dir {
            Some(dir) => {
                let _ = writeln!(out, "server-id {} data-dir {}", s.server_id, dir.display());
            }
            None => {
                let _ = writeln!(out, "server-id {}", s.server_id);
            }
        }
        match &self.store {
            StoreChoice::Sqlite => {
                let _ = writeln!(out, "lease store: embedded SQLite in the data directory");
            }
            StoreChoice::Postgres { name, start_at, tls, .. } => {
                let tls = match tls {
                    Some(StoreTls { ca, client: Some(_) }) => {
                        format!("TLS required (CA {}, client certificate)", ca.display())
                    }
                    Some(StoreTls { ca, client: None }) => format!("TLS required (CA {})", ca.display()),
                    None => "no TLS (set server.store.ca unless the database is on a Unix socket)".into(),
                };
                let _ = writeln!(
                    out,
                    "lease store: shared PostgreSQL as {name:?}, allocating from {:.0}% of each pool; {tls}",
                    start_at * 100.0
                );
            }
        }
        let listen: Vec<String> = s.listen.iter().map(|a| a.to_string()).collect();
        let _ = writeln!(
            out,
            "DHCP on UDP {}{}",
            listen.join(", "),
            if s.interfaces.is_empty() {
                String::new()
            } else {
                format!(" and interfaces {}", s.interfaces.join(", "))
            }
        );
        for sn in &self.subnets {
            let size: u64 = sn.pools.iter().map(|(a, b)| (*b - *a) as u64 + 1).sum();
            let _ = writeln!(
                out,
                "subnet {}: {} pool address(es), {} reservation(s), lease {} s",
                sn.net,
                size,
                sn.reservations.len(),
                sn.lease_time
            );
        }
        if self.leasequery_allow.is_empty() {
            let _ = writeln!(out, "leasequery (UDP) off");
        } else {
            let allow: Vec<String> = self.leasequery_allow.iter().map(|n| n.to_string()).collect();
            let _ = writeln!(
                out,
                "leasequery (UDP) for {}, {} queries/s per requestor",
                allow.join(", "),
                self.raw.leasequery.rate_limit
            );
        }
        if self.bulk_allow.is_empty() {
            let _ = writeln!(out, "bulk leasequery (TCP) off");
        } else {
            let b = &self.raw.bulk_leasequery;
            let listen: Vec<String> = b.listen.iter().map(|a| a.to_string()).collect();
            let allow: Vec<String> = self.bulk_allow.iter().map(|n| n.to_string()).collect();
            let _ = writeln!(
                out,
                "bulk leasequery (TCP) on {} for {}, at most {} connections ({} per requestor), data timeout {} s; {} waiting for a first query, for at most {} s",
                listen.join(", "),
                allow.join(", "),
                b.max_connections,
                b.max_connections_per_requestor,
                b.data_timeout,
                b.max_pending_connections,
                b.pre_auth_timeout
            );
        }
        let srv = &self.raw.server;
        if srv.max_offers_per_circuit > 0 || srv.max_offers_per_relay > 0 {
            let limit = |n: usize| if n == 0 { "no limit".to_string() } else { n.to_string() };
            let _ = writeln!(
                out,
                "offers to new clients: {} per relay circuit, {} per relay",
                limit(srv.max_offers_per_circuit),
                limit(srv.max_offers_per_relay)
            );
        }
        if let Some(u) = &srv.user {
            let _ = writeln!(out, "runs as {u} once its sockets are bound");
        }
        let a = &self.raw.active_leasequery;
        if a.enabled {
            let mode = match (&a.tls, a.insecure) {
                (Some(t), false) => format!("secure mode (TLS required, client certificates from {})", t.ca.display()),
                (Some(_), true) => "TLS offered, insecure mode allowed".to_string(),
                (None, _) => "insecure mode (no TLS)".to_string(),
            };
            let _ = writeln!(
                out,
                "active leasequery ON, {mode}, keep-alive {} s, send timeout {} s, backlog {} addresses",
                a.idle_timeout, a.send_timeout, a.max_backlog
            );
        } else {
            let _ = writeln!(out, "active leasequery off");
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        match self.raw.metrics.listen {
            Some(a) => {
                let _ = writeln!(out, "metrics on http://{a}/metrics");
            }
            None => {
                let _ = writeln!(out, "metrics off");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
server-id = "10.0.0.1"
data-dir = "/tmp/x"

[[subnet]]
subnet = "10.0.0.0/24"
pools = [{ start = "10.0.0.100", end = "10.0.0.199" }]
lease-time = 600
[subnet.options]
routers = ["10.0.0.1"]
"66" = "tftp.example"
"43" = "hex:0102"
[[subnet.reservation]]
ip = "10.0.0.5"
hw-address = "02:00:00:00:00:05"
"#;

    #[test]
    fn a_good_file_parses_with_defaults() {
        let v = Config::parse(GOOD).unwrap();
        assert_eq!(v.raw.server.listen, default_listen());
        let s = &v.subnets[0];
        assert_eq!(s.pools, vec![(u32::from(Ipv4Addr::new(10, 0, 0, 100)), u32::from(Ipv4Addr::new(10, 0, 0, 199)))]);
        assert_eq!((s.renewal_time, s.rebinding_time), (300, 525));
        let codes: Vec<u8> = s.options.iter().map(|o| o.0).collect();
        assert_eq!(codes, vec![1, 3, 43, 66]);
        assert_eq!(s.reservations[0].hw_address, Some(vec![2, 0, 0, 0, 0, 5]));
    }

    #[test]
    fn blq_6_3_1_bulk_leasequery_listens_on_port_67_by_default_and_the_port_is_configurable() {
        let v = Config::parse(GOOD).unwrap();
        assert_eq!(v.raw.bulk_leasequery.listen, vec!["0.0.0.0:67".parse::<SocketAddr>().unwrap()], "BLQ-6.3-2");
        let other = format!("{GOOD}\n[bulk-leasequery]\nlisten = [\"127.0.0.1:6767\"]\n");
        let v = Config::parse(&other).unwrap();
        assert_eq!(v.raw.bulk_leasequery.listen, vec!["127.0.0.1:6767".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn the_store_is_sqlite_unless_postgres_is_chosen_and_its_keys_are_checked() {
        assert_eq!(Config::parse(GOOD).unwrap().store, StoreChoice::Sqlite);
        let with =
            |store: &str| GOOD.replace("data-dir = \"/tmp/x\"\n", &format!("data-dir = \"/tmp/x\"\nstore = {store}\n"));
        assert_eq!(Config::parse(&with(r#"{ kind = "sqlite" }"#)).unwrap().store, StoreChoice::Sqlite);
        let v = Config::parse(&with(
            r#"{ kind = "postgres", url = "host=/run/postgresql dbname=leases", start-at = 0.5 }"#,
        ))
        .unwrap();
        assert_eq!(
            v.store,
            StoreChoice::Postgres {
                url: "host=/run/postgresql dbname=leases".into(),
                name: "10.0.0.1".into(),
                start_at: 0.5,
                pool_size: 8,
                tls: None,
            }
        );
        for (store, key) in [
            (r#"{ kind = "postgres" }"#, "server.store.url"),
            (r#"{ kind = "mysql", url = "x" }"#, "server.store.kind"),
            (r#"{ kind = "sqlite", url = "x" }"#, "server.store.url"),
            (r#"{ kind = "postgres", url = "x", start-at = 1.0 }"#, "server.store.start-at"),
            (r#"{ kind = "postgres", url = "x", name = "" }"#, "server.store.name"),
            (r#"{ kind = "postgres", url = "x", pool-size = 0 }"#, "server.store.pool-size"),
            (r#"{ kind = "sqlite", ca = "/ca.pem" }"#, "server.store.ca"),
            (r#"{ kind = "postgres", url = "x", ca = "/ca.pem", cert = "/c.pem" }"#, "server.store.key"),
            (r#"{ kind = "postgres", url = "x", ca = "/ca.pem", key = "/k.pem" }"#, "server.store.cert"),
            (r#"{ kind = "postgres", url = "x", cert = "/c.pem", key = "/k.pem" }"#, "server.store.ca"),
            (r#"{ kind = "postgres", url = "host=/run/postgresql", ca = "/ca.pem" }"#, "server.store.ca"),
        ] {
            let e = Config::parse(&with(store)).unwrap_err();
            assert_eq!((e.key.as_str(), e.line), (key, Some(5)), "{store}: {e}");
        }
        let v = Config::parse(&with(
            r#"{ kind = "postgres", url = "x", ca = "/ca.pem", cert = "/c.pem", key = "/k.pem" }"#,
        ))
        .unwrap();
        let StoreChoice::Postgres { tls, .. } = v.store else { panic!("postgres") };
        let client = Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")));
        assert_eq!(tls, Some(StoreTls { ca: "/ca.pem".into(), client }));
        // data-dir: required by the embedded store only.
        let without_dir = |store: &str| with(store).replace("data-dir = \"/tmp/x\"\n", "");
        let e = Config::parse(&without_dir(r#"{ kind = "sqlite" }"#)).unwrap_err();
        assert_eq!(e.key, "server.data-dir", "{e}");
        let e = Config::parse(&GOOD.replace("data-dir = \"/tmp/x\"\n", "")).unwrap_err();
        assert_eq!(e.key, "server.data-dir", "{e}");
        let v = Config::parse(&without_dir(r#"{ kind = "postgres", url = "x" }"#)).unwrap();
        assert!(v.raw.server.data_dir.is_none() && !v.summary().contains("data-dir"));
        let e = Config::parse(&with(r#"{ kind = "postgres", url = "x", colour = 1 }"#)).unwrap_err();
        assert!(e.to_string().contains("colour") && e.line == Some(5), "{e}");
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let bad = GOOD.replace("end = \"10.0.0.199\"", "end = \"10.0.1.199\"");
        let e = Config::parse(&bad).unwrap_err();
        assert_eq!(e.key, "subnet[0].pools[0].end");
        assert_eq!(e.line, Some(8));
        assert!(e.to_string().starts_with("line 8: subnet[0].pools[0].end: 10.0.1.199 is outside"));

        let e = Config::parse(&GOOD.replace("lease-time", "lease-tme")).unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
        assert!(e.message.contains("lease-tme"), "{e}");

        let e = Config::parse(&GOOD.replace("hw-address = \"02:00:00:00:00:05\"", "hw-address = \"zz\"")).unwrap_err();
        assert_eq!(e.key, "subnet[0].reservation[0].hw-address");
    }

    /// ALQ-8.1-2, ALQ-8.1-3, ALQ-8.1-4, ALQ-8.1-5: off by default; both modes; secure the default; insecure only by its
    /// own setting.
    #[test]
    fn alq_8_1_active_leasequery_off_by_default_and_insecure_needs_its_own_setting() {
        let v = Config::parse(GOOD).unwrap();
        assert!(!v.raw.active_leasequery.enabled);
        let bulk = "[bulk-leasequery]\nallow = [\"10.0.0.0/24\"]\n";
        let e = Config::parse(&format!("{GOOD}{bulk}[active-leasequery]\nenabled = true\n")).unwrap_err();
        assert_eq!(e.key, "active-leasequery.tls", "secure mode is the default and needs TLS settings");
        let v = Config::parse(&format!(
            "{GOOD}{bulk}[active-leasequery]\nenabled = true\ninsecure = true\nidle-timeout = 30\n"
        ))
        .unwrap();
        assert!(v.raw.active_leasequery.enabled);
        assert!(v.warnings.iter().any(|w| w.contains("idle-timeout = 30")), "ALQ-5.3-4: {:?}", v.warnings);
        assert!(v.summary().contains("active leasequery ON, insecure mode"));
    }

    #[test]
    fn robustness_keys_are_validated_and_summarised() {
        let bulk = "[bulk-leasequery]\nallow = [\"10.0.0.0/24\"]\n";
        let v = Config::parse(&format!("{GOOD}{bulk}")).unwrap();
        let b = &v.raw.bulk_leasequery;
        assert_eq!((b.max_pending_connections, b.pre_auth_timeout), (32, 10));
        assert!(v.summary().contains("32 waiting for a first query, for at most 10 s"), "{}", v.summary());
        for (extra, key) in [
            ("pre-auth-timeout = 0\n", "bulk-leasequery.pre-auth-timeout"),
            ("pre-auth-timeout = 301\n", "bulk-leasequery.pre-auth-timeout"),
            ("max-pending-connections = 0\n", "bulk-leasequery.max-pending-connections"),
        ] {
            assert_eq!(Config::parse(&format!("{GOOD}{bulk}{extra}")).unwrap_err().key, key, "{extra}");
        }
        let server = |extra: &str| GOOD.replace("data-dir = \"/tmp/x\"", &format!("data-dir = \"/tmp/x\"\n{extra}"));
        let v = Config::parse(&server("user = \"nobody\"\nmax-offers-per-circuit = 8")).unwrap();
        assert!(
            v.summary().contains("runs as nobody") && v.summary().contains("8 per relay circuit, no limit per relay")
        );
        assert_eq!(Config::parse(&server("group = \"nogroup\"")).unwrap_err().key, "server.group");
        assert_eq!(Config::parse(&server("user = \"a b\"")).unwrap_err().key, "server.user");
    }

    #[test]
    fn overlapping_subnets_are_rejected() {
        let two = format!("{GOOD}\n[[subnet]]\nsubnet = \"10.0.0.128/25\"\n");
        let e = Config::parse(&two).unwrap_err();
        assert_eq!(e.key, "subnet[1].subnet");
    }
}
