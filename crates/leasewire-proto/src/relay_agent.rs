//! Relay agent information (option 82, RFC 3046) and the sub-options leasequery cares about.

use crate::OptionError;
use std::net::Ipv4Addr;

/// Sub-option codes of option 82.
pub mod sub_option {
    /// Agent Circuit ID, RFC 3046.
    pub const CIRCUIT_ID: u8 = 1;
    /// Agent Remote ID, RFC 3046; key of RFC 6148 and RFC 6926 query-by-remote-id.
    pub const REMOTE_ID: u8 = 2;
    /// Link selection, RFC 3527: the subnet to allocate from, when giaddr cannot say.
    pub const LINK_SELECTION: u8 = 5;
    /// Server identifier override, RFC 5107.
    pub const SERVER_ID_OVERRIDE: u8 = 11;
    /// Relay Agent Identifier, RFC 6925; key of RFC 6926 query-by-relay-id.
    pub const RELAY_ID: u8 = 12;
    /// Relay source port, RFC 8357: reply to the UDP source port the relay used. Length 0.
    pub const RELAY_SOURCE_PORT: u8 = 19;
}

/// One sub-option: code and value, borrowed from the option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubOption<'a> {
    /// The sub-option code.
    pub code: u8,
    /// The sub-option value (may be empty; RFC 3046 allows zero-length sub-options).
    pub data: &'a [u8],
}

/// A validated view of option 82's value.
///
/// Sub-options stay in their received order and byte for byte, unknown ones included, because RFC 3046
/// requires the server to echo the option exactly and RFC 4388 §6.4.2 returns it as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelayAgentInfo<'a> {
    raw: &'a [u8],
}

impl<'a> RelayAgentInfo<'a> {
    /// Validate the sub-option structure of an option 82 value.
    pub fn parse(raw: &'a [u8]) -> Result<Self, OptionError> {
        let mut offset = 0;
        while offset < raw.len() {
            if offset + 2 > raw.len() {
                return Err(OptionError::SubOptionOverrun { sub_code: raw[offset], offset, len: 0, available: 0 });
            }
            let len = raw[offset + 1] as usize;
            let available = raw.len() - offset - 2;
            if len > available {
                return Err(OptionError::SubOptionOverrun { sub_code: raw[offset], offset, len, available });
            }
            offset += 2 + len;
        }
        Ok(Self { raw })
    }

    /// The option's value as received.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// The sub-options in order.
    pub fn iter(&self) -> impl Iterator<Item = SubOption<'a>> + 'a {
        let raw = self.raw;
        let mut offset = 0;
        std::iter::from_fn(move || {
            // `parse` validated the structure, so these slices are in bounds.
            let code = *raw.get(offset)?;
            let len = *raw.get(offset + 1)? as usize;
            let data = raw.get(offset + 2..offset + 2 + len)?;
            offset += 2 + len;
            Some(SubOption { code, data })
        })
    }

    /// The value of the first sub-option with this code.
    pub fn get(&self, code: u8) -> Option<&'a [u8]> {
        self.iter().find(|s| s.code == code).map(|s| s.data)
    }

    /// Agent Circuit ID (sub-option 1).
    pub fn circuit_id(&self) -> Option<&'a [u8]> {
        self.get(sub_option::CIRCUIT_ID)
    }

    /// Agent Remote ID (sub-option 2).
    pub fn remote_id(&self) -> Option<&'a [u8]> {
        self.get(sub_option::REMOTE_ID)
    }

    /// Relay Agent Identifier (sub-option 12, RFC 6925).
    pub fn relay_id(&self) -> Option<&'a [u8]> {
        self.get(sub_option::RELAY_ID)
    }

    /// Link selection (sub-option 5, RFC 3527), if present with a 4-octet address.
    pub fn link_selection(&self) -> Option<Ipv4Addr> {
        self.get(sub_option::LINK_SELECTION).and_then(addr)
    }

    /// Server identifier override (sub-option 11, RFC 5107), if present with a 4-octet address.
    pub fn server_id_override(&self) -> Option<Ipv4Addr> {
        self.get(sub_option::SERVER_ID_OVERRIDE).and_then(addr)
    }

    /// Whether the relay asked for replies to its source port (sub-option 19, RFC 8357).
    pub fn has_relay_source_port(&self) -> bool {
        self.get(sub_option::RELAY_SOURCE_PORT).is_some()
    }

    /// Whether the option holds nothing but sub-option 2, the form of an RFC 6148 query by remote-id.
    pub fn is_remote_id_only(&self) -> bool {
        let mut it = self.iter();
        matches!(it.next(), Some(s) if s.code == sub_option::REMOTE_ID) && it.next().is_none()
    }
}

fn addr(b: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(b).ok().map(Ipv4Addr::from)
}

/// Builds an option 82 value from sub-options.
#[derive(Debug, Clone, Default)]
pub struct RelayAgentInfoBuilder {
    buf: Vec<u8>,
}

impl RelayAgentInfoBuilder {
    /// An empty option.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a sub-option. Values longer than 255 octets cannot be expressed in RFC 3046 and are truncated
    /// to 255; callers building from configuration should validate first.
    pub fn sub_option(mut self, code: u8, data: &[u8]) -> Self {
        let data = &data[..data.len().min(255)];
        self.buf.push(code);
        self.buf.push(data.len() as u8);
        self.buf.extend_from_slice(data);
        self
    }

    /// Append Agent Circuit ID.
    pub fn circuit_id(self, data: &[u8]) -> Self {
        self.sub_option(sub_option::CIRCUIT_ID, data)
    }

    /// Append Agent Remote ID.
    pub fn remote_id(self, data: &[u8]) -> Self {
        self.sub_option(sub_option::REMOTE_ID, data)
    }

    /// Append Relay Agent Identifier.
    pub fn relay_id(self, data: &[u8]) -> Self {
        self.sub_option(sub_option::RELAY_ID, data)
    }

    /// Append the RFC 8357 relay source port flag.
    pub fn relay_source_port(self) -> Self {
        self.sub_option(sub_option::RELAY_SOURCE_PORT, &[])
    }

    /// The encoded option value.
    pub fn build(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_and_keeps_unknown_sub_options_in_order() {
        let raw = RelayAgentInfoBuilder::new()
            .circuit_id(b"port1")
            .sub_option(99, b"")
            .remote_id(b"sw1")
            .relay_id(b"relay-A")
            .relay_source_port()
            .build();
        let info = RelayAgentInfo::parse(&raw).unwrap();
        assert_eq!(info.circuit_id(), Some(&b"port1"[..]));
        assert_eq!(info.remote_id(), Some(&b"sw1"[..]));
        assert_eq!(info.relay_id(), Some(&b"relay-A"[..]));
        assert!(info.has_relay_source_port());
        let codes: Vec<u8> = info.iter().map(|s| s.code).collect();
        assert_eq!(codes, vec![1, 99, 2, 12, 19]);
        assert_eq!(info.as_bytes(), &raw[..]);
        assert!(!info.is_remote_id_only());
    }

    #[test]
    fn rejects_overruns_with_the_offending_sub_option() {
        assert_eq!(
            RelayAgentInfo::parse(&[1, 5, b'a']),
            Err(OptionError::SubOptionOverrun { sub_code: 1, offset: 0, len: 5, available: 1 })
        );
        assert!(matches!(
            RelayAgentInfo::parse(&[1, 0, 2]),
            Err(OptionError::SubOptionOverrun { sub_code: 2, offset: 2, .. })
        ));
        assert!(RelayAgentInfo::parse(&[]).is_ok());
    }

    #[test]
    fn rfc6148_remote_id_only_form() {
        let raw = RelayAgentInfoBuilder::new().remote_id(b"r").build();
        assert!(RelayAgentInfo::parse(&raw).unwrap().is_remote_id_only());
    }

    #[test]
    fn link_selection_and_server_id_override() {
        let raw = RelayAgentInfoBuilder::new()
            .sub_option(sub_option::LINK_SELECTION, &[10, 0, 0, 0])
            .sub_option(sub_option::SERVER_ID_OVERRIDE, &[10, 0, 0, 1])
            .build();
        let info = RelayAgentInfo::parse(&raw).unwrap();
        assert_eq!(info.link_selection(), Some(Ipv4Addr::new(10, 0, 0, 0)));
        assert_eq!(info.server_id_override(), Some(Ipv4Addr::new(10, 0, 0, 1)));
    }
}
