//! Lease administration: the control socket `leasewire ctl` talks to.
//!
//! * [`protocol`]: the versioned newline-delimited JSON requests and responses (the contract with `ctl`).
//! * [`server`]: the Unix socket (mode 0600, peer credentials checked: root or the socket's owner), one task
//!   per connection.
//! * [`Control`] (here): what each command does, over the running DHCP service and the configuration in
//!   effect.

pub mod protocol;
pub mod server;

use crate::config::{Subnet, Validated};
use crate::metrics::OTHER_SUBNET;
use crate::udp::dhcp::DhcpService;
use ipnet::Ipv4Net;
use leasewire_proto::DhcpState;
use leasewire_store::{BindingChange, LeaseStore, ScanFilter, ScanKey};
use protocol::{Command, ConfigText, Deleted, Lease, LeaseList, ListQuery, Reloaded, Response, Status, SubnetStatus};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A future the control socket awaits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the control socket finds the configuration in effect and how it reloads it: the server's reload
/// handle (SIGHUP and `ctl reload` go through the same one).
pub trait ConfigHandle: Send + Sync {
    /// The configuration in effect now.
    fn current(&self) -> BoxFuture<'_, Validated>;
    /// The file it was read from, if any.
    fn config_file(&self) -> Option<PathBuf>;
    /// Read the file again and apply it; the error says why nothing changed.
    fn reload(&self) -> BoxFuture<'_, Result<Reloaded, String>>;
}

/// A configuration that cannot be reloaded (a server without a reload handle, or tests).
#[derive(Debug, Clone)]
pub struct FixedConfig {
    /// The configuration.
    pub config: Validated,
    /// The file it was read from.
    pub path: Option<PathBuf>,
}

impl ConfigHandle for FixedConfig {
    fn current(&self) -> BoxFuture<'_, Validated> {
        Box::pin(std::future::ready(self.config.clone()))
    }
    fn config_file(&self) -> Option<PathBuf> {
        self.path.clone()
    }
    fn reload(&self) -> BoxFuture<'_, Result<Reloaded, String>> {
        Box::pin(std::future::ready(Err("this server cannot reload its configuration".into())))
    }
}

/// The server's reload handle: `ctl reload` is the same reload as SIGHUP (validated in full, applied
/// atomically, logged and counted in `leasewire_reloads_total`).
/// Default page size of `leases_list`.
const DEFAULT_LIMIT: usize = 1000;

/// Records read from the store per scan while filtering.
const SCAN_PAGE: usize = 1000;

/// The commands, over a running server.
pub struct Control {
    dhcp: Arc<DhcpService>,
    config: Arc<dyn ConfigHandle>,
    started: Instant,
    /// Open control connections (for `status`).
    connections: AtomicU64,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").finish_non_exhaustive()
    }
}

impl Control {
    /// Commands over `dhcp`, with the configuration from `config`.
    pub fn new(dhcp: Arc<DhcpService>, config: Arc<dyn ConfigHandle>) -> Self {
        Self { dhcp, config, started: Instant::now(), connections: AtomicU64::new(0) }
    }

    /// Carry out one command.
    pub async fn handle(&self, command: Command) -> Response {
        let result = match command {
            Command::Status => self.status().await.map(Response::ok),
            Command::Reload => self.config.reload().await.map(Response::ok),
            Command::LeasesList(q) => self.list(q).await.map(Response::ok),
            Command::LeasesGet { key } => self.get(key).await.map(Response::ok),
            Command::LeasesDelete { ip } => self.delete(ip).await.map(Response::ok),
            Command::ConfigShow => Ok(Response::ok(ConfigText { toml: self.config.current().await.to_toml() })),
        };
        result.unwrap_or_else(Response::error)
    }

    pub(crate) fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    async fn status(&self) -> Result<Status, String> {
        let config = self.config.current().await;
        let subnets = {
            let engine = self.dhcp.engine();
            let named = engine.subnets().iter().map(|s| (s.net.to_string(), Some(s.pool_size())));
            let all: Vec<_> = named.chain([(OTHER_SUBNET.to_string(), None)]).collect();
            all.into_iter()
                .enumerate()
                .map(|(slot, (subnet, size))| {
                    let (counts, _) = crate::metrics::binding_counts(size, &engine.state_counts(slot));
                    let bindings = DhcpState::ALL
                        .iter()
                        .map(|s| (s.name().to_string(), counts[usize::from(s.code())]))
                        .filter(|&(ref name, n)| n > 0 || name == "AVAILABLE" || name == "ACTIVE")
                        .collect();
                    SubnetStatus { subnet, pool_size: size.unwrap_or(0), bindings }
                })
                .filter(|s| s.subnet != OTHER_SUBNET || s.bindings.values().any(|&n| n > 0))
                .collect()
        };
        let metrics = self.dhcp.metrics();
        let mut connections = BTreeMap::new();
        connections.insert("active".to_string(), metrics.active_connections.get().max(0) as u64);
        connections.insert("control".to_string(), self.connections.load(Ordering::Relaxed));
        Ok(Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_secs: self.started.elapsed().as_secs(),
            config_file: self.config.config_file().map(|p| p.display().to_string()),
            config_sha256: config.source_sha256.clone(),
            subnets,
            connections,
        })
    }

    /// Scan the store (from memory for the embedded store) on the blocking pool: a PostgreSQL store waits on
    /// its own runtime, which must not happen on a worker of this one.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn LeaseStore, &[Subnet]) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let store = self.dhcp.store().clone();
        let subnets = self.config.current().await.subnets;
        tokio::task::spawn_blocking(move || f(store.as_ref(), &subnets)).await.map_err(|e| e.to_string())?
    }

    async fn list(&self, q: ListQuery) -> Result<LeaseList, String> {
        let filter = ListFilter::parse(&q)?;
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, protocol::MAX_LIMIT);
        let after = q.after;
        self.blocking(move |store, subnets| filter.run(store, subnets, after, limit)).await
    }

    async fn get(&self, key: String) -> Result<LeaseList, String> {
        self.blocking(move |store, subnets| {
            let err = |e: leasewire_store::StoreError| e.to_string();
            let found: Vec<BindingChange> = if let Ok(ip) = key.parse::<Ipv4Addr>() {
                store.get(ip).map_err(err)?.into_iter().collect()
            } else {
                let octets = leasewire_proto::hex::parse(&key)
                    .filter(|o| !o.is_empty())
                    .ok_or_else(|| format!("{key:?} is not an IPv4 address, a MAC or a client-id in hex"))?;
                let by_mac = match octets.len() {
                    6 => store.by_hardware_address(1, &octets).map_err(err)?,
                    _ => Vec::new(),
                };
                if by_mac.is_empty() { store.by_client_id(&octets).map_err(err)? } else { by_mac }
            };
            let mut leases: Vec<Lease> = found.iter().map(|c| lease(c, subnets)).collect();
            leases.sort_by_key(|l| l.ip);
            Ok(LeaseList { leases, next_after: None })
        })
        .await
    }

    async fn delete(&self, ip: Ipv4Addr) -> Result<Deleted, String> {
        let b = self.dhcp.reset(ip).await.map_err(|e| e.to_string())?;
        tracing::info!(%ip, "binding reset by an operator (leasewire ctl leases delete)");
        self.blocking(move |store, subnets| {
            // Durable now: the stored record carries the change's sequence number and time.
            let c = store.get(ip).map_err(|e| e.to_string())?;
            let lease = match c {
                Some(c) => lease(&c, subnets),
                None => Lease::new(&b, subnet_name(ip, subnets), 0, b.state_since),
            };
            Ok(Deleted { lease })
        })
        .await
    }
}

fn subnet_name(ip: Ipv4Addr, subnets: &[Subnet]) -> String {
    subnets.iter().find(|s| s.net.contains(&ip)).map_or_else(|| OTHER_SUBNET.to_string(), |s| s.net.to_string())
}

fn lease(c: &BindingChange, subnets: &[Subnet]) -> Lease {
    Lease::new(&c.binding, subnet_name(c.binding.ip, subnets), c.seq, c.time)
}

/// `leases_list`'s filters, parsed.
struct ListFilter {
    state: Option<DhcpState>,
    net: Option<Ipv4Net>,
    relay_id: Option<Vec<u8>>,
    remote_id: Option<Vec<u8>>,
    mac_prefix: Option<Vec<u8>>,
}

impl ListFilter {
    fn parse(q: &ListQuery) -> Result<Self, String> {
        let hex = |name: &str, v: &Option<String>| -> Result<Option<Vec<u8>>, String> {
            v.as_deref()
                .map(|s| leasewire_proto::hex::parse(s).ok_or_else(|| format!("{name}: {s:?} is not hex")))
                .transpose()
        };
        Ok(Self {
            state: q
                .state
                .as_deref()
                .map(|s| DhcpState::from_name(s).ok_or_else(|| format!("state: {s:?} is not a dhcp-state name")))
                .transpose()?,
            net: q
                .subnet
                .as_deref()
                .map(|s| s.parse::<Ipv4Net>().map(|n| n.trunc()).map_err(|_| format!("subnet: {s:?} is not a prefix")))
                .transpose()?,
            relay_id: hex("relay-id", &q.relay_id)?,
            remote_id: hex("remote-id", &q.remote_id)?,
            mac_prefix: hex("mac-prefix", &q.mac_prefix)?,
        })
    }

    fn matches(&self, c: &BindingChange) -> bool {
        let b = &c.binding;
        self.state.is_none_or(|s| b.state == s)
            && self.net.is_none_or(|n| n.contains(&b.ip))
            && self.relay_id.as_deref().is_none_or(|r| b.relay_id() == Some(r))
            && self.remote_id.as_deref().is_none_or(|r| b.remote_id() == Some(r))
            && self.mac_prefix.as_deref().is_none_or(|p| b.hardware_address.starts_with(p))
    }

    /// Up to `limit` matching records after `after`, ascending by address. The scan uses the store's index
    /// for a relay-id or remote-id, and starts at the subnet's first address for a subnet.
    fn run(
        &self,
        store: &dyn LeaseStore,
        subnets: &[Subnet],
        after: Option<Ipv4Addr>,
        limit: usize,
    ) -> Result<LeaseList, String> {
        let key = match (&self.relay_id, &self.remote_id) {
            (Some(r), _) => ScanKey::RelayId(r.clone()),
            (None, Some(r)) => ScanKey::RemoteId(r.clone()),
            (None, None) => ScanKey::All,
        };
        let filter = ScanFilter::new(key);
        let mut cursor = after;
        if let Some(net) = self.net {
            let before_net = u32::from(net.network()).checked_sub(1).map(Ipv4Addr::from);
            if cursor.is_none_or(|a| Some(a) < before_net) {
                cursor = before_net;
            }
        }
        let mut leases = Vec::new();
        loop {
            let page = store.scan(&filter, cursor, SCAN_PAGE).map_err(|e| e.to_string())?;
            let full = page.len() == SCAN_PAGE;
            for c in &page {
                if self.net.is_some_and(|n| c.binding.ip > n.broadcast()) {
                    return Ok(LeaseList { leases, next_after: None });
                }
                cursor = Some(c.binding.ip);
                if self.matches(c) {
                    leases.push(lease(c, subnets));
                    if leases.len() == limit {
                        return Ok(LeaseList { leases, next_after: cursor });
                    }
                }
            }
            if !full {
                return Ok(LeaseList { leases, next_after: None });
            }
        }
    }
}
