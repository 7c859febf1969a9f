//! What an ordered scan asks for: RFC 6926's query types ([`ScanKey`]) and its time window ([`ScanFilter`]).
//!
//! Its own module because both the [`LeaseStore`](crate::LeaseStore) trait and the packed records answer it:
//! neither owns the rule, and neither needs the other to apply it.

use crate::BindingChange;
use leasewire_proto::RelayAgentInfo;

/// The primary key of an ordered scan: RFC 6926 §7.2's query types.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScanKey {
    /// Every address that has a record ("all configured addresses" minus those the store never saw).
    All,
    /// Records whose stored option 82 carries this Relay Agent Identifier (sub-option 12).
    RelayId(Vec<u8>),
    /// Records whose stored option 82 carries this Agent Remote ID (sub-option 2).
    RemoteId(Vec<u8>),
    /// Records of this hardware type and address (an empty address matches nothing).
    HardwareAddress {
        /// `htype`.
        htype: u8,
        /// `chaddr[..hlen]`.
        addr: Vec<u8>,
    },
    /// Records of this client identifier (option 61).
    ClientId(Vec<u8>),
}

impl ScanKey {
    /// Whether a record with these identities carries this key: the one rule for every backend and for the
    /// packed records in memory. The option 82 is parsed only for the keys that need it (`relay_agent` is
    /// called at most once), because a scan by MAC or by client-id looks at every record.
    pub fn carried_by<'r>(
        &self,
        htype: u8,
        hardware_address: &[u8],
        client_id: Option<&[u8]>,
        relay_agent: impl FnOnce() -> Option<RelayAgentInfo<'r>>,
    ) -> bool {
        match self {
            ScanKey::All => true,
            ScanKey::RelayId(id) => relay_agent().and_then(|r| r.relay_id()) == Some(id.as_slice()),
            ScanKey::RemoteId(id) => relay_agent().and_then(|r| r.remote_id()) == Some(id.as_slice()),
            ScanKey::HardwareAddress { htype: h, addr } => !addr.is_empty() && htype == *h && hardware_address == addr,
            ScanKey::ClientId(id) => client_id == Some(id.as_slice()),
        }
    }
}

/// What an ordered scan returns: a key and optional bounds on the time of each record's latest change.
///
/// The bounds are RFC 6926's query-start-time (154, "changed on or after") and query-end-time (155,
/// "changed on or before"); both are inclusive. A record is in the window when its start-time-of-state or its
/// client-last-transaction-time falls inside (RFC 6926 §8.2, BLQ-8.2-11), or the commit time of its latest
/// change ([`BindingChange::time`]) does: a lease granted inside the window and renewed after it is reported,
/// and so is every change committed inside it, whatever times it carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScanFilter {
    /// Which records.
    pub key: ScanKey,
    /// Only records whose latest change is at or after this time (inclusive).
    pub changed_on_or_after: Option<u32>,
    /// Only records whose latest change is at or before this time (inclusive).
    pub changed_on_or_before: Option<u32>,
}

impl ScanFilter {
    /// All records with this key, unbounded in time.
    pub fn new(key: ScanKey) -> Self {
        Self { key, changed_on_or_after: None, changed_on_or_before: None }
    }

    /// Every record.
    pub fn all() -> Self {
        Self::new(ScanKey::All)
    }

    /// Restrict to records changed at or after `time` (RFC 6926 query-start-time).
    pub fn changed_on_or_after(mut self, time: u32) -> Self {
        self.changed_on_or_after = Some(time);
        self
    }

    /// Restrict to records changed at or before `time` (RFC 6926 query-end-time).
    pub fn changed_on_or_before(mut self, time: u32) -> Self {
        self.changed_on_or_before = Some(time);
        self
    }

    /// Whether a change passes this filter; the reference semantics every backend must match.
    pub fn matches(&self, change: &BindingChange) -> bool {
        let b = &change.binding;
        let key = self.key.carried_by(b.htype, &b.hardware_address, b.client_id.as_deref(), || b.relay_agent());
        key && self.in_window(change.time, b.state_since, b.cltt)
    }

    /// Whether a record with these times is in the time window (see [`ScanFilter`]).
    pub fn in_window(&self, commit_time: u32, state_since: u32, cltt: Option<u32>) -> bool {
        let lo = self.changed_on_or_after.unwrap_or(0);
        let hi = self.changed_on_or_before.unwrap_or(u32::MAX);
        let inside = |t: u32| lo <= t && t <= hi;
        inside(commit_time) || inside(state_since) || cltt.is_some_and(inside)
    }
}
