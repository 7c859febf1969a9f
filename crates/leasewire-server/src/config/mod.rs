//! The server's configuration: one TOML file, validated at start with errors that name the key and the line.
//!
//! * [`schema`](Config): the file as written — one type per section, with its defaults (`schema.rs`).
//! * validation (`validate.rs`): [`Config::parse`] and [`Config::load`] check it and build a [`Validated`]
//!   configuration, whose errors ([`ConfigError`]) name the key and the line.
//! * the summary (`summary.rs`): [`Validated::summary`], what `check-config` prints.

mod classes;
mod options;
mod schema;
mod summary;
#[cfg(test)]
mod tests;
mod validate;

pub use classes::{ClassSet, ClientClass, ClientClasses, Condition, MAX_CLASSES, Pattern, PoolAccess, Seen};
pub use options::OptionSet;
pub use schema::*;

use ipnet::Ipv4Net;
use leasewire_proto::session::server::QueryTypes;
use std::net::Ipv4Addr;
use std::path::PathBuf;

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

/// An option code and its encoded value.
pub type EncodedOption = (u8, Vec<u8>);

/// A subnet ready for the engine: parsed and checked.
#[derive(Debug, Clone)]
pub struct Subnet {
    /// The network.
    pub net: Ipv4Net,
    /// Interface for directly connected clients.
    pub interface: Option<String>,
    /// The shared network it is in, if any.
    pub shared_network: Option<String>,
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
    /// What every reply in this subnet carries (the subnet mask among the options).
    pub options: OptionSet,
    /// Pools with options of their own: the range and what it adds over the subnet's.
    pub pool_options: Vec<((u32, u32), OptionSet)>,
    /// Pools only for some classes or closed to some (`allow`, `deny`), by range; a pool not listed is open
    /// to every client.
    pub pool_access: Vec<((u32, u32), PoolAccess)>,
    /// Reservations.
    pub reservations: Vec<Reservation>,
}

impl Subnet {
    /// Who may have the addresses of the pool `range`.
    pub fn access_of(&self, range: (u32, u32)) -> PoolAccess {
        self.pool_access.iter().find(|(r, _)| *r == range).map_or(PoolAccess::OPEN, |(_, a)| *a)
    }

    /// Whether two subnets are on one link: the same subnet, or both in one shared network.
    pub fn same_network(&self, other: &Subnet) -> bool {
        self.net == other.net || (self.shared_network.is_some() && self.shared_network == other.shared_network)
    }

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
    /// Matches clients behind this relay agent circuit-id (option 82).
    pub circuit_id: Option<Vec<u8>>,
    /// Matches clients behind this relay agent remote-id (option 82).
    pub remote_id: Option<Vec<u8>>,
    /// With circuit-id / remote-id: only through this relay (giaddr).
    pub giaddr: Option<Ipv4Addr>,
    /// Name recorded as the binding's reserved-for.
    pub name: String,
    /// What this client's replies carry over its pool's and subnet's.
    pub options: OptionSet,
}

impl Reservation {
    /// Whether the reservation is for a relay port (option 82) rather than (or as well as) a client.
    pub fn by_port(&self) -> bool {
        self.circuit_id.is_some() || self.remote_id.is_some()
    }

    /// Whether a client behind this circuit-id, remote-id and giaddr is on the reserved port: every option 82
    /// key the reservation names matches (and giaddr when it names one).
    pub fn port_matches(&self, circuit_id: Option<&[u8]>, remote_id: Option<&[u8]>, giaddr: Ipv4Addr) -> bool {
        self.by_port()
            && self.circuit_id.as_deref().is_none_or(|c| Some(c) == circuit_id)
            && self.remote_id.as_deref().is_none_or(|r| Some(r) == remote_id)
            && self.giaddr.is_none_or(|g| g == giaddr)
    }
}

/// A configuration that passed validation.
///
/// The file's sections are read through accessors ([`Validated::server`], [`Validated::bulk_leasequery`], ...),
/// never changed from outside: what a reload may not change is put back by [`Validated::keep_restart_only`],
/// here, next to the schema it depends on.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The parsed file.
    raw: Config,
    /// The subnets, checked.
    pub subnets: Vec<Subnet>,
    /// The client classes, compiled.
    pub classes: ClientClasses,
    /// Prefixes allowed to send leasequeries.
    pub leasequery_allow: Vec<Ipv4Net>,
    /// Prefixes allowed to open Bulk Leasequery connections.
    pub bulk_allow: Vec<Ipv4Net>,
    /// Per-requestor withheld options: (prefix, options), most specific prefix first.
    pub requestor_withhold: Vec<(Ipv4Net, Vec<u8>)>,
    /// Per-requestor query kinds over TCP (`[[bulk-leasequery.requestor]]`): (prefix, kinds), most specific
    /// prefix first.
    pub requestor_query_types: Vec<(Ipv4Net, QueryTypes)>,
    /// Warnings about settings that work but go against an RFC recommendation.
    pub warnings: Vec<String>,
    /// The lease store.
    pub store: StoreChoice,
    /// SHA-256 (hex) of the file this was read from (`Config::load`; None from `Config::parse`): which file
    /// content is in effect, for `leasewire ctl status`.
    pub source_sha256: Option<String>,
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

impl Validated {
    /// `[server]`.
    pub fn server(&self) -> &ServerSection {
        &self.raw.server
    }

    /// `[log]`.
    pub fn log(&self) -> &LogSection {
        &self.raw.log
    }

    /// `[metrics]`.
    pub fn metrics(&self) -> &MetricsSection {
        &self.raw.metrics
    }

    /// `[leasequery]` (UDP, RFC 4388); its prefixes, checked, are [`Validated::leasequery_allow`].
    pub fn leasequery(&self) -> &LeasequerySection {
        &self.raw.leasequery
    }

    /// `[bulk-leasequery]` (the TCP listener of Bulk and Active Leasequery); its prefixes, checked, are
    /// [`Validated::bulk_allow`].
    pub fn bulk_leasequery(&self) -> &BulkSection {
        &self.raw.bulk_leasequery
    }

    /// `[active-leasequery]`.
    pub fn active_leasequery(&self) -> &ActiveSection {
        &self.raw.active_leasequery
    }

    /// The effective configuration (defaults filled in) as TOML, for `leasewire ctl config show`.
    pub fn to_toml(&self) -> String {
        self.raw.to_toml()
    }

    /// Put back what only a restart changes, from the `running` configuration, so the running parts go on
    /// with the values they were started with (a reload applies the rest).
    pub fn keep_restart_only(&mut self, running: &Validated) {
        let (o, n) = (&running.raw, &mut self.raw);
        n.server.listen = o.server.listen.clone();
        n.server.interfaces = o.server.interfaces.clone();
        n.server.data_dir = o.server.data_dir.clone();
        n.server.user = o.server.user.clone();
        n.server.group = o.server.group.clone();
        n.metrics.listen = o.metrics.listen;
        n.log.leases = o.log.leases;
        n.bulk_leasequery.listen = o.bulk_leasequery.listen.clone();
        self.store = running.store.clone();
        if running.bulk_allow.is_empty() != self.bulk_allow.is_empty() {
            self.bulk_allow = running.bulk_allow.clone();
        }
    }

    /// Where the control socket is: `[control] socket`, else `control.sock` in the data directory.
    pub fn control_socket(&self) -> Option<PathBuf> {
        let s = &self.raw;
        s.control.socket.clone().or_else(|| s.server.data_dir.as_ref().map(|d| d.join(CONTROL_SOCKET)))
    }

    /// The kinds of Bulk and Active query a requestor at `addr` may make: the most specific
    /// `[[bulk-leasequery.requestor]]` rule that covers it, else every kind (BLQ-9-6).
    pub fn query_types_for(&self, addr: Ipv4Addr) -> QueryTypes {
        self.requestor_query_types.iter().find(|(n, _)| n.contains(&addr)).map_or(QueryTypes::EVERY, |(_, t)| *t)
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
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Parse `02:00:00:00:00:01`, `02-00-...` or plain hex (see [`leasewire_proto::hex::parse`]).
pub use leasewire_proto::hex::parse as parse_hex;
