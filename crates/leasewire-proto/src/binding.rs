//! The one type a lease moves through the system as: [`Binding`], and the journal entry [`BindingChange`].

use crate::{DataSource, DhcpState, OptionError, RelayAgentInfo};
use std::net::Ipv4Addr;

/// Longest hardware address a client can present: the `chaddr` field is 16 octets (RFC 2131 §2).
pub const MAX_HARDWARE_ADDRESS_LEN: usize = 16;

/// What the server knows about one IPv4 address: everything RFC 4388, RFC 6926 and RFC 7724 replies report.
///
/// Times are absolute, whole seconds since the Unix epoch, the unit of base-time (option 152): replies
/// subtract them from base-time to build the relative options (start-time-of-state 153, lease time 51,
/// client-last-transaction-time 91).
///
/// The relay-id and remote-id are *not* fields: they are read from `relay_agent_info` by
/// [`Binding::relay_id`] and [`Binding::remote_id`], so the stored option 82 is the single source of truth
/// and the indexed keys can never disagree with what a reply echoes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The address this binding is about; the store keeps exactly one record per address.
    pub ip: Ipv4Addr,
    /// Hardware type (`htype`, RFC 1700 ARP hardware types; 1 = Ethernet). 0 when there is no client.
    pub htype: u8,
    /// `chaddr[..hlen]`, at most 16 octets; empty for states with no client (e.g. AVAILABLE).
    pub hardware_address: Vec<u8>,
    /// The client identifier (option 61) value as received.
    pub client_id: Option<Vec<u8>>,
    /// The dhcp-state (option 156) of the address.
    pub state: DhcpState,
    /// When the current state began (absolute); start-time-of-state = base-time − this.
    /// [`Binding::STATE_SINCE_UNKNOWN`] (0) when a reply did not carry start-time-of-state (option 153 is
    /// optional: Kea does not send it): a requestor must not invent a time no server sent.
    pub state_since: u32,
    /// End of the lease (ACTIVE) or of another timed state (e.g. ABANDONED until), absolute.
    pub expires_at: Option<u32>,
    /// Client-last-transaction-time (absolute): when the server last heard from the client.
    pub cltt: Option<u32>,
    /// The raw option 82 value the client last came with, echoed as stored (RFC 4388 §6.4.2).
    pub relay_agent_info: Option<Vec<u8>>,
    /// Whether this server (local) or another one (REMOTE) made the latest change (option 157).
    pub data_source: DataSource,
    /// Client options the server stored that requestors may ask for in option 55 (hostname 12, vendor
    /// class 60, ...), in strictly ascending code order.
    pub options: Vec<(u8, Vec<u8>)>,
    /// The key of the reservation this address belongs to, if any (RFC 7724 §8.2 reports reserved
    /// addresses as leased to their client).
    pub reserved_for: Option<String>,
}

impl Binding {
    /// `state_since` of a binding learned from a reply without start-time-of-state. A server's own records
    /// never carry it (1970 is before any lease).
    pub const STATE_SINCE_UNKNOWN: u32 = 0;

    /// When the current state began, if known.
    pub fn state_since(&self) -> Option<u32> {
        (self.state_since != Self::STATE_SINCE_UNKNOWN).then_some(self.state_since)
    }

    /// A binding for `ip` in `state` since `state_since`, with no client, no timers and no options: the
    /// starting point for the engine to fill in (all fields are public).
    pub fn new(ip: Ipv4Addr, state: DhcpState, state_since: u32) -> Self {
        Self {
            ip,
            htype: 0,
            hardware_address: Vec::new(),
            client_id: None,
            state,
            state_since,
            expires_at: None,
            cltt: None,
            relay_agent_info: None,
            data_source: DataSource::LOCAL,
            options: Vec::new(),
            reserved_for: None,
        }
    }

    /// The parsed option 82, if present and well formed.
    pub fn relay_agent(&self) -> Option<RelayAgentInfo<'_>> {
        RelayAgentInfo::parse(self.relay_agent_info.as_deref()?).ok()
    }

    /// Agent Remote ID (option 82 sub-option 2), the key of query-by-remote-id (RFC 6148, RFC 6926).
    pub fn remote_id(&self) -> Option<&[u8]> {
        self.relay_agent()?.remote_id()
    }

    /// Relay Agent Identifier (option 82 sub-option 12, RFC 6925), the key of RFC 6926 query-by-relay-id.
    pub fn relay_id(&self) -> Option<&[u8]> {
        self.relay_agent()?.relay_id()
    }

    /// The stored value of option `code`, if any.
    pub fn option(&self, code: u8) -> Option<&[u8]> {
        self.options.binary_search_by_key(&code, |(c, _)| *c).ok().map(|i| self.options[i].1.as_slice())
    }

    /// Check that the binding can be stored and read back unchanged: the store rejects a batch holding a
    /// binding for which this fails, rather than storing keys it cannot index.
    pub fn validate(&self) -> Result<(), BindingProblem> {
        if self.hardware_address.len() > MAX_HARDWARE_ADDRESS_LEN {
            return Err(BindingProblem::HardwareAddressTooLong(self.hardware_address.len()));
        }
        if let Some(raw) = &self.relay_agent_info {
            RelayAgentInfo::parse(raw).map_err(BindingProblem::RelayAgentInfo)?;
        }
        let mut previous: Option<u8> = None;
        for (code, value) in &self.options {
            if previous.is_some_and(|p| p >= *code) {
                return Err(BindingProblem::OptionsNotAscending { code: *code });
            }
            if value.len() > usize::from(u16::MAX) {
                return Err(BindingProblem::OptionTooLong { code: *code, len: value.len() });
            }
            previous = Some(*code);
        }
        Ok(())
    }
}

/// One committed change: the binding as it is after the change, the store-assigned sequence number and the
/// server time of the commit.
///
/// The sequence is strictly increasing and never reused, so it orders changes and lets a feed resume
/// (`seq > last seen`); the time is non-decreasing in sequence order, so "changed at or after T" (RFC 7724
/// query-start-time, RFC 6926 query-start/end-time) is a suffix of the sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingChange {
    /// The store-assigned sequence number (first change is 1).
    pub seq: u64,
    /// When the change was committed: whole seconds since the Unix epoch, the unit of base-time.
    pub time: u32,
    /// The binding after the change.
    pub binding: Binding,
}

/// What is wrong with a binding that a store cannot keep as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingProblem {
    /// `chaddr` holds at most 16 octets, so a longer hardware address cannot have come from a client.
    #[error("hardware address of {0} octets exceeds the 16-octet chaddr field")]
    HardwareAddressTooLong(usize),
    /// The stored option 82 does not have RFC 3046's sub-option structure, so its relay-id and remote-id
    /// could not be indexed.
    #[error("relay agent information (option 82) is malformed: {0}")]
    RelayAgentInfo(OptionError),
    /// Stored options must be in strictly ascending code order (one entry per code).
    #[error("stored option {code} is out of order or repeated (options must be in ascending code order)")]
    OptionsNotAscending {
        /// The first offending option code.
        code: u8,
    },
    /// A stored option value longer than 65535 octets cannot be stored (nor sent).
    #[error("stored option {code} has {len} octets, more than 65535")]
    OptionTooLong {
        /// The option code.
        code: u8,
        /// Its length.
        len: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RelayAgentInfoBuilder;

    #[test]
    fn relay_and_remote_id_come_from_the_stored_option_82() {
        let mut b = Binding::new(Ipv4Addr::new(10, 0, 0, 1), DhcpState::Active, 100);
        assert_eq!(b.remote_id(), None);
        b.relay_agent_info = Some(RelayAgentInfoBuilder::new().circuit_id(b"c").remote_id(b"r").relay_id(b"R").build());
        assert_eq!(b.remote_id(), Some(&b"r"[..]));
        assert_eq!(b.relay_id(), Some(&b"R"[..]));
        b.relay_agent_info = Some(vec![2, 9, 1]);
        assert_eq!(b.remote_id(), None);
        assert!(matches!(b.validate(), Err(BindingProblem::RelayAgentInfo(_))));
    }

    #[test]
    fn validation_rejects_what_cannot_round_trip() {
        let mut b = Binding::new(Ipv4Addr::new(10, 0, 0, 1), DhcpState::Active, 100);
        b.hardware_address = vec![0; 17];
        assert_eq!(b.validate(), Err(BindingProblem::HardwareAddressTooLong(17)));
        b.hardware_address = vec![0; 16];
        b.options = vec![(60, vec![]), (12, vec![])];
        assert_eq!(b.validate(), Err(BindingProblem::OptionsNotAscending { code: 12 }));
        b.options = vec![(12, vec![]), (12, vec![])];
        assert_eq!(b.validate(), Err(BindingProblem::OptionsNotAscending { code: 12 }));
        b.options = vec![(12, vec![0; 65536])];
        assert_eq!(b.validate(), Err(BindingProblem::OptionTooLong { code: 12, len: 65536 }));
        b.options = vec![(12, b"host".to_vec()), (60, vec![])];
        assert_eq!(b.validate(), Ok(()));
        assert_eq!(b.option(12), Some(&b"host"[..]));
        assert_eq!(b.option(60), Some(&b""[..]));
        assert_eq!(b.option(61), None);
    }
}
