//! The browser view's reads of the replica: a page of bindings matching a search, and counts by state per
//! relay. Both run under the replica's lock, so they are single passes over the records with no decoding
//! beyond what the match needs.

use super::Replica;
use super::record::Record;
use leasewire_proto::{Binding, DhcpState, RelayAgentInfo};
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// What a search matches, read once from what was typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Everything.
    All,
    /// One address.
    Ip(Ipv4Addr),
    /// Addresses whose dotted form starts with this (`10.1.2.`).
    IpPrefix(String),
    /// Octets (hex typed, `02:00:00`, `0200`): the start of a MAC, or inside a client-id, circuit-id,
    /// remote-id or relay-id.
    Octets(Vec<u8>),
    /// A state by name (`active`).
    State(DhcpState),
    /// Text inside the server's name or an option 82 sub-option read as text (`eth0/1`).
    Text(String),
}

impl Filter {
    /// Read a search box.
    pub fn parse(q: &str) -> Self {
        let q = q.trim();
        if q.is_empty() {
            return Self::All;
        }
        if let Ok(ip) = q.parse() {
            return Self::Ip(ip);
        }
        if q.contains('.') && q.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Self::IpPrefix(q.to_string());
        }
        if let Some(s) = DhcpState::from_name(&q.to_ascii_uppercase()) {
            return Self::State(s);
        }
        let hexlike = q.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'-');
        match leasewire_proto::hex::parse(q).filter(|v| hexlike && !v.is_empty()) {
            Some(v) => Self::Octets(v),
            None => Self::Text(q.to_ascii_lowercase()),
        }
    }

    fn matches(&self, ip: Ipv4Addr, r: &Record, server: &str) -> bool {
        match self {
            Self::All => true,
            Self::Ip(a) => ip == *a,
            Self::IpPrefix(p) => ip.to_string().starts_with(p.as_str()),
            Self::State(s) => r.state() == *s,
            Self::Octets(v) => {
                r.hw().starts_with(v)
                    || r.client_id().is_some_and(|c| contains(c, v))
                    || r.relay_agent_info().is_some_and(|rai| sub_options(rai).iter().any(|s| contains(s, v)))
            }
            Self::Text(t) => {
                server.contains(t.as_str())
                    || r.relay_agent_info().is_some_and(|rai| {
                        sub_options(rai).iter().any(|s| String::from_utf8_lossy(s).to_ascii_lowercase().contains(t))
                    })
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() <= hay.len() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Circuit-id, remote-id and relay-id of an option 82 value.
fn sub_options(rai: &[u8]) -> Vec<&[u8]> {
    RelayAgentInfo::parse(rai)
        .map(|r| [r.circuit_id(), r.remote_id(), r.relay_id()].into_iter().flatten().collect())
        .unwrap_or_default()
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Bindings matching, in all.
    pub total: usize,
    /// The page's bindings (address order) with the server that reported each.
    pub bindings: Vec<(Binding, String)>,
}

/// Bindings by state behind one relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayCounts {
    /// The relay as shown: `remote-id HEX`, `relay-id HEX`, `circuit-id HEX` or `no option 82`.
    pub relay: String,
    /// Count per dhcp-state code (index 1–8).
    pub by_state: [u64; 9],
}

impl Replica {
    /// Bindings matching `filter`, `limit` of them from the `offset`-th, in address order.
    pub fn page(&self, filter: &Filter, offset: usize, limit: usize) -> Page {
        let server = |r: &Record| self.servers[usize::from(r.server)].addr.as_str();
        let take = |(ip, r): (&Ipv4Addr, &Record)| (r.binding(*ip), server(r).to_string());
        match filter {
            Filter::All => Page {
                total: self.entries.len(),
                bindings: self.entries.iter().skip(offset).take(limit).map(take).collect(),
            },
            Filter::Ip(ip) => {
                let found: Vec<_> = self.entries.get_key_value(ip).map(take).into_iter().collect();
                Page { total: found.len(), bindings: found.into_iter().skip(offset).collect() }
            }
            f => {
                let (mut total, mut bindings) = (0, Vec::new());
                for (ip, r) in &self.entries {
                    if f.matches(*ip, r, server(r)) {
                        if total >= offset && bindings.len() < limit {
                            bindings.push(take((ip, r)));
                        }
                        total += 1;
                    }
                }
                Page { total, bindings }
            }
        }
    }

    /// Counts by state per relay, the relays with most bindings first, at most `limit` relays.
    pub fn counts_by_relay(&self, limit: usize) -> Vec<RelayCounts> {
        let mut by: HashMap<Option<&[u8]>, [u64; 9]> = HashMap::new();
        for r in self.entries.values() {
            by.entry(r.relay_agent_info()).or_default()[usize::from(r.state().code())] += 1;
        }
        let mut v: Vec<RelayCounts> =
            by.into_iter().map(|(rai, by_state)| RelayCounts { relay: relay_label(rai), by_state }).collect();
        v.sort_by(|a, b| b.by_state.iter().sum::<u64>().cmp(&a.by_state.iter().sum()).then(a.relay.cmp(&b.relay)));
        // The same relay may be behind several option 82 values (circuits): merge by label.
        let mut merged: Vec<RelayCounts> = Vec::new();
        for c in v {
            match merged.iter_mut().find(|m| m.relay == c.relay) {
                Some(m) => m.by_state.iter_mut().zip(c.by_state).for_each(|(a, b)| *a += b),
                None => merged.push(c),
            }
        }
        merged.truncate(limit);
        merged
    }
}

/// How a relay is named in counts: by remote-id, else relay-id, else circuit-id.
fn relay_label(rai: Option<&[u8]>) -> String {
    let Some(r) = rai.and_then(|r| RelayAgentInfo::parse(r).ok()) else { return "no option 82".into() };
    let hex = leasewire_proto::hex::format;
    match (r.remote_id(), r.relay_id(), r.circuit_id()) {
        (Some(v), ..) => format!("remote-id {}", hex(v)),
        (_, Some(v), _) => format!("relay-id {}", hex(v)),
        (.., Some(v)) => format!("circuit-id {}", hex(v)),
        _ => "option 82".into(),
    }
}
