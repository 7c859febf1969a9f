//! The key of an RFC 4388 / RFC 6148 DHCPLEASEQUERY, shared by the server (classifying a query) and the
//! requestor (building one), so both sides read the RFC's query forms from one place.

use crate::options::code;
use crate::{Message, RelayAgentInfoBuilder};
use std::net::Ipv4Addr;

/// What a DHCPLEASEQUERY asks about (LQ-6.2-6..8, RFC 6148 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryKey {
    /// By IP address: ciaddr.
    Ip(Ipv4Addr),
    /// By hardware address: htype, hlen and chaddr.
    Hardware(u8, Vec<u8>),
    /// By client identifier: option 61.
    ClientId(Vec<u8>),
    /// By relay agent remote-id: option 82 holding only sub-option 2.
    RemoteId(Vec<u8>),
}

/// Why a DHCPLEASEQUERY has no usable key (LQ-6.3-2 asks for exactly one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// None of ciaddr, chaddr, option 61, or an option 82 with only a remote-id.
    #[error("the query has no key")]
    NoKey,
    /// More than one of ciaddr, chaddr and option 61.
    #[error("the query has more than one key")]
    SeveralKeys,
}

impl QueryKey {
    /// Classify a query (LQ-6.3-2). An option 82 beside another key does not count (LQR-5-1).
    pub fn of(q: &Message<'_>) -> Result<Self, KeyError> {
        let hw = q.hardware_address();
        let mut keys = Vec::with_capacity(1);
        if !q.ciaddr.is_unspecified() {
            keys.push(Self::Ip(q.ciaddr));
        }
        if !hw.is_empty() && hw.iter().any(|&b| b != 0) {
            keys.push(Self::Hardware(q.htype, hw.to_vec()));
        }
        if let Some(id) = q.options.client_identifier() {
            keys.push(Self::ClientId(id.to_vec()));
        }
        match keys.len() {
            1 => Ok(keys.remove(0)),
            0 => match q.options.relay_agent_info() {
                Some(r) if r.is_remote_id_only() => Ok(Self::RemoteId(r.remote_id().unwrap_or_default().to_vec())),
                _ => Err(KeyError::NoKey),
            },
            _ => Err(KeyError::SeveralKeys),
        }
    }

    /// Put the key into a query being built.
    pub fn apply(&self, m: &mut Message<'_>) {
        match self {
            Self::Ip(ip) => m.ciaddr = *ip,
            Self::Hardware(htype, mac) => m.set_hardware_address(*htype, mac),
            Self::ClientId(id) => m.options.set(code::CLIENT_IDENTIFIER, id.clone()),
            Self::RemoteId(id) => {
                m.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().remote_id(id).build())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MessageType, Op};

    #[test]
    fn lq_6_3_2_every_key_form_round_trips_and_ambiguity_is_an_error() {
        for key in [
            QueryKey::Ip(Ipv4Addr::new(10, 0, 0, 1)),
            QueryKey::Hardware(1, vec![2, 0, 0, 0, 0, 1]),
            QueryKey::ClientId(vec![1, 2, 3]),
            QueryKey::RemoteId(b"sw1".to_vec()),
        ] {
            let mut m = Message::new(Op::BootRequest);
            m.options.set_message_type(MessageType::LeaseQuery);
            key.apply(&mut m);
            assert_eq!(QueryKey::of(&m), Ok(key));
        }
        let mut m = Message::new(Op::BootRequest);
        assert_eq!(QueryKey::of(&m), Err(KeyError::NoKey));
        m.ciaddr = Ipv4Addr::new(10, 0, 0, 1);
        m.options.set(code::CLIENT_IDENTIFIER, vec![1, 2]);
        assert_eq!(QueryKey::of(&m), Err(KeyError::SeveralKeys));
    }
}
