//! A DHCPBULKLEASEQUERY, validated (RFC 6926 §7.2, §8.2).

use crate::options::code;
use crate::{Message, StatusCode, VssType};

/// The primary query (BLQ-7.2-3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkKey {
    /// All configured IP addresses: no other primary query present.
    All,
    /// Bindings of a client hardware address.
    Mac {
        /// htype.
        htype: u8,
        /// chaddr[..hlen].
        addr: Vec<u8>,
    },
    /// Bindings of a client identifier (option 61).
    ClientId(Vec<u8>),
    /// Bindings whose stored option 82 has this remote-id (sub-option 2).
    RemoteId(Vec<u8>),
    /// Bindings whose stored option 82 has this relay-id (sub-option 12, RFC 6925).
    RelayId(Vec<u8>),
}

/// What a Bulk Leasequery asks for: the primary query and the time qualifiers. The requestor sends one
/// ([`crate::session::requestor::bulk::BulkRequestor::query`]); the server reads it back ([`BulkQuery`]) and
/// asks its store page by page ([`super::Fetch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkRequest {
    /// The primary query.
    pub key: BulkKey,
    /// query-start-time (154): bindings changed on or after.
    pub changed_on_or_after: Option<u32>,
    /// query-end-time (155): bindings changed on or before.
    pub changed_on_or_before: Option<u32>,
}

impl BulkRequest {
    /// Every binding, unbounded in time (with `..BulkRequest::all()`, another key's).
    pub fn all() -> Self {
        Self { key: BulkKey::All, changed_on_or_after: None, changed_on_or_before: None }
    }

    /// Whether the query is restricted by change time.
    pub fn has_time_bounds(&self) -> bool {
        self.changed_on_or_after.is_some() || self.changed_on_or_before.is_some()
    }
}

/// Which VPNs a query covers (BLQ-7.2-4, BLQ-8.2-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpnScope {
    /// No VSS option, or the global type (255): the default VPN, where all of this server's addresses are.
    Default,
    /// Type 254: every VPN.
    All,
    /// A specific VPN: this server has none, so nothing matches.
    Other,
}

/// A validated bulk query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkQuery {
    /// The query's xid, repeated in every reply (BLQ-7.1-3).
    pub xid: u32,
    /// The primary query and the time qualifiers: what a requestor's [`BulkRequest`] asked.
    pub request: BulkRequest,
    /// The VPN qualifier.
    pub vpn: VpnScope,
    /// The parameter request list governing every reply (BLQ-8.3-10).
    pub prl: Option<Vec<u8>>,
}

impl BulkQuery {
    /// Validate a DHCPBULKLEASEQUERY; the error is the status its DHCPLEASEQUERYDONE carries.
    pub fn parse(m: &Message<'_>) -> Result<Self, (StatusCode, &'static str)> {
        // BLQ-8.2-6.
        if !m.ciaddr.is_unspecified() || !m.yiaddr.is_unspecified() || !m.siaddr.is_unspecified() {
            return Err((StatusCode::MalformedQuery, "ciaddr, yiaddr and siaddr must be 0"));
        }
        let mut keys = Vec::new();
        let hw = m.hardware_address();
        if !hw.is_empty() && hw.iter().any(|&b| b != 0) {
            keys.push(BulkKey::Mac { htype: m.htype, addr: hw.to_vec() });
        }
        if let Some(id) = m.options.client_identifier() {
            keys.push(BulkKey::ClientId(id.to_vec()));
        }
        if let Some(rai) = m.options.relay_agent_info() {
            if let Some(r) = rai.remote_id() {
                keys.push(BulkKey::RemoteId(r.to_vec()));
            }
            if let Some(r) = rai.relay_id() {
                keys.push(BulkKey::RelayId(r.to_vec()));
            }
        }
        // BLQ-8.2-7: more than one primary query is NotAllowed (not MalformedQuery).
        if keys.len() > 1 {
            return Err((StatusCode::NotAllowed, "more than one primary query"));
        }
        let vpn = match m.options.vss() {
            None => VpnScope::Default,
            Some(v) => match v.kind {
                VssType::Global => VpnScope::Default,
                VssType::AllVpns => VpnScope::All,
                _ => VpnScope::Other,
            },
        };
        Ok(Self {
            xid: m.xid,
            request: BulkRequest {
                key: keys.pop().unwrap_or(BulkKey::All),
                changed_on_or_after: m.options.query_start_time(),
                changed_on_or_before: m.options.query_end_time(),
            },
            vpn,
            prl: m.options.get(code::PARAMETER_REQUEST_LIST).map(<[u8]>::to_vec),
        })
    }
}
