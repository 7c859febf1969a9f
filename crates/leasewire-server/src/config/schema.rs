//! The configuration file as written: one type per section, with its defaults. [`super::validate`] checks it.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use toml::Spanned;

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
    /// Client classes, in the order they are declared (where two classes set one option, the first wins).
    #[serde(default, rename = "client-class", skip_serializing_if = "Vec::is_empty")]
    pub client_classes: Vec<ClientClassConfig>,
}

/// `[[client-class]]`: clients named by what their packets say. Every condition given must hold (all-of);
/// each text value may be `"hex:..."` for octets.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClientClassConfig {
    /// The class's name, as pools' `allow` and `deny` refer to it.
    pub name: Spanned<String>,
    /// Option 60 (vendor class identifier) equals this.
    pub vendor_class: Option<Spanned<String>>,
    /// Option 60 starts with this (e.g. `PXEClient`).
    pub vendor_class_prefix: Option<Spanned<String>>,
    /// Option 77 (user class) equals this, whole or one of its RFC 3004 instances.
    pub user_class: Option<Spanned<String>>,
    /// Option 77, whole or one of its instances, starts with this.
    pub user_class_prefix: Option<Spanned<String>>,
    /// Option 82 circuit-id equals this.
    pub circuit_id: Option<Spanned<String>>,
    /// Option 82 circuit-id starts with this.
    pub circuit_id_prefix: Option<Spanned<String>>,
    /// Option 82 remote-id equals this.
    pub remote_id: Option<Spanned<String>>,
    /// Option 82 remote-id starts with this.
    pub remote_id_prefix: Option<Spanned<String>>,
    /// The client's hardware address starts with these octets (an OUI: `00:1a:2b`).
    pub mac_prefix: Option<Spanned<String>>,
    /// The relay's giaddr lies in this prefix (or is this address).
    pub giaddr: Option<Spanned<String>>,
    /// Options for the class's clients: over their pool's and subnet's, under a reservation's.
    #[serde(default, skip_serializing_if = "OptionsConfig::is_empty")]
    pub options: OptionsConfig,
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

pub(super) fn default_true() -> bool {
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
    /// RFC 3118 delayed authentication of replies (LQ-7-2): the ID of the shared secret, as requestors know it.
    /// With `auth-secret`, a query that asks for authentication (option 90, protocol 1) gets a reply carrying
    /// option 90 with this ID and an HMAC-MD5 keyed with the secret.
    #[serde(default)]
    pub auth_key_id: Option<u32>,
    /// The shared secret of `auth-key-id`, in hex.
    #[serde(default)]
    pub auth_secret: Option<Spanned<String>>,
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
            auth_key_id: None,
            auth_secret: None,
            withhold: Vec::new(),
            rate_limit: default_lq_rate(),
            reserved_as_leased: false,
            requestors: Vec::new(),
        }
    }
}

pub(super) fn default_disclose() -> Vec<u8> {
    // Host name, and the vendor's class and information as the client sent them (BLQ-8.3-10).
    vec![12, 60, 124, 125]
}

pub(super) fn default_lq_rate() -> u32 {
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
    /// Per-requestor rules for the TCP listener: the kinds of query requestors in a prefix may make (RFC 6926
    /// §9, BLQ-9-6). The most specific matching prefix applies; a requestor no rule covers may make any.
    #[serde(default, rename = "requestor")]
    pub requestors: Vec<BulkRequestorRule>,
}

/// `[[bulk-leasequery.requestor]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BulkRequestorRule {
    /// The requestors it applies to (prefix or address).
    pub prefix: Spanned<String>,
    /// The queries they may make: `all` (all configured addresses), `mac`, `client-id`, `remote-id`,
    /// `relay-id` (the Bulk primary queries) and `active` (DHCPACTIVELEASEQUERY). Others get NotAllowed.
    pub query_types: Vec<Spanned<String>>,
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
            requestors: Vec::new(),
        }
    }
}

pub(super) fn default_tcp_listen() -> Vec<SocketAddr> {
    vec!["0.0.0.0:67".parse().expect("valid")]
}
pub(super) fn default_max_conns() -> usize {
    10
}
pub(super) fn default_max_pending() -> usize {
    32
}
pub(super) fn default_pre_auth_timeout() -> u64 {
    10
}
pub(super) fn default_max_conns_per_requestor() -> usize {
    4
}
pub(super) fn default_max_queries() -> usize {
    4
}
pub(super) fn default_data_timeout() -> u64 {
    300
}
pub(super) fn default_max_frame() -> usize {
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

pub(super) fn default_idle_timeout() -> u64 {
    60
}
pub(super) fn default_send_timeout() -> u64 {
    120
}
pub(super) fn default_max_backlog() -> usize {
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
    /// The shared network (several subnets on one link) this subnet belongs to: every subnet naming it is
    /// one link, and a client on it may get an address in any of them (in the order of the file).
    pub shared_network: Option<Spanned<String>>,
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
    /// Options for clients given an address of this pool: over the subnet's, under a class's.
    #[serde(default, skip_serializing_if = "OptionsConfig::is_empty")]
    pub options: OptionsConfig,
    /// Only clients in one of these classes get addresses of this pool (empty: every client).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Spanned<String>>,
    /// Clients in any of these classes never get addresses of this pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<Spanned<String>>,
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
    /// Option 2: signed seconds east of UTC.
    pub time_offset: Option<i32>,
    /// Option 26 (at least 68).
    pub interface_mtu: Option<u16>,
    /// Option 42.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ntp_servers: Vec<Ipv4Addr>,
    /// Option 43: sub-options by code, each valued like an option by code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vendor_encapsulated_options: BTreeMap<String, OptionValue>,
    /// Option 66.
    pub tftp_server_name: Option<String>,
    /// Option 67.
    pub bootfile_name: Option<String>,
    /// Option 119: domain names, sent compressed (RFC 3397).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domain_search: Vec<String>,
    /// Option 121 (RFC 3442). A client that takes it ignores option 3, so the default route belongs here too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classless_static_routes: Vec<StaticRoute>,
    /// Option 125 (RFC 3925): sub-options per enterprise number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vendor_identifying_options: Vec<VendorOptions>,
    /// The `siaddr` header field: the server a PXE client loads its boot file from.
    pub next_server: Option<Ipv4Addr>,
    /// The `file` header field: the boot file's name (PXE).
    pub boot_file: Option<String>,
    /// Any option by code: `"42" = "hex:0a000001"`, `"66" = "tftp.example"` (text), or a list of addresses.
    #[serde(default, flatten)]
    pub by_code: HashMap<String, OptionValue>,
}

impl OptionsConfig {
    /// Nothing set at this level.
    pub fn is_empty(&self) -> bool {
        let Self {
            routers,
            dns_servers,
            domain_name,
            broadcast_address,
            time_offset,
            interface_mtu,
            ntp_servers,
            vendor_encapsulated_options,
            tftp_server_name,
            bootfile_name,
            domain_search,
            classless_static_routes,
            vendor_identifying_options,
            next_server,
            boot_file,
            by_code,
        } = self;
        routers.is_empty()
            && dns_servers.is_empty()
            && domain_name.is_none()
            && broadcast_address.is_none()
            && time_offset.is_none()
            && interface_mtu.is_none()
            && ntp_servers.is_empty()
            && vendor_encapsulated_options.is_empty()
            && tftp_server_name.is_none()
            && bootfile_name.is_none()
            && domain_search.is_empty()
            && classless_static_routes.is_empty()
            && vendor_identifying_options.is_empty()
            && next_server.is_none()
            && boot_file.is_none()
            && by_code.is_empty()
    }
}

/// `classless-static-routes = [{ destination = "10.1.0.0/16", router = "10.0.0.1" }]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StaticRoute {
    /// The destination prefix, without host bits; `0.0.0.0/0` is the default route.
    pub destination: String,
    /// The router for it.
    pub router: Ipv4Addr,
}

/// `vendor-identifying-options = [{ enterprise-number = 4491, sub-options = { "1" = "hex:0102" } }]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VendorOptions {
    /// The vendor's IANA enterprise number.
    pub enterprise_number: u32,
    /// Its sub-options by code, each valued like an option by code.
    #[serde(default)]
    pub sub_options: BTreeMap<String, OptionValue>,
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
    /// Relay agent circuit-id (option 82 sub-option 1) of the client's port: text, or `"hex:..."` for octets.
    pub circuit_id: Option<Spanned<String>>,
    /// Relay agent remote-id (option 82 sub-option 2): text, or `"hex:..."` for octets.
    pub remote_id: Option<Spanned<String>>,
    /// With circuit-id or remote-id: only through the relay with this giaddr (circuit-ids repeat across
    /// switches).
    pub giaddr: Option<Spanned<Ipv4Addr>>,
    /// A name for logs and for the binding's reserved-for field.
    pub name: Option<String>,
    /// Options for this client: over its pool's and its subnet's.
    #[serde(default, skip_serializing_if = "OptionsConfig::is_empty")]
    pub options: OptionsConfig,
}

pub(super) fn default_listen() -> Vec<SocketAddr> {
    vec!["0.0.0.0:67".parse().expect("valid")]
}
pub(super) fn default_decline_time() -> u32 {
    86_400
}
pub(super) fn default_offer_timeout() -> u32 {
    60
}
pub(super) fn default_retention() -> u32 {
    leasewire_store::DEFAULT_RETENTION_SECS
}
pub(super) fn default_lease_time() -> u32 {
    3_600
}
