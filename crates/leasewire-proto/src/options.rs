//! Option codes, per-option validation, and typed accessors over a message's options.

use crate::{
    DataSource, DhcpOption, DhcpState, MessageType, OptionError, Options, RelayAgentInfo, Status, StatusCode, Vss,
};
use std::borrow::Cow;
use std::net::Ipv4Addr;

/// The parameter request lists used when nobody asked for anything else, one per transport: both sides read
/// them here, so what a requestor asks for and what a server assumes are written once.
pub mod default_prl {
    use super::code;

    /// Bulk and Active Leasequery (TCP): what a server sends when a query has no parameter request list, and what
    /// the requestor sessions ask for: the ones RFC 6926 §7.2 says a requestor should
    /// ask for (152, 51, 153, 91) plus state, source, client identifier and relay agent information, which a
    /// requestor needs to make sense of a binding.
    pub const TCP: &[u8] = &[
        code::BASE_TIME,
        code::LEASE_TIME,
        code::START_TIME_OF_STATE,
        code::CLIENT_LAST_TRANSACTION_TIME,
        code::DHCP_STATE,
        code::DATA_SOURCE,
        code::CLIENT_IDENTIFIER,
        code::RELAY_AGENT_INFO,
    ];

    /// Leasequery over UDP (RFC 4388): what a requestor asks for by default (LQ-6.2-4; 92 is required for remote-id queries by RFC 6148 §4.1).
    pub const UDP: &[u8] = &[
        code::LEASE_TIME,
        code::RENEWAL_TIME,
        code::REBINDING_TIME,
        code::CLIENT_LAST_TRANSACTION_TIME,
        code::CLIENT_IDENTIFIER,
        code::RELAY_AGENT_INFO,
        code::ASSOCIATED_IP,
        code::SERVER_IDENTIFIER,
        code::HOST_NAME,
        code::VENDOR_CLASS,
    ];
}

/// Option codes used by leasewire (RFC 2132 and the leasequery family).
pub mod code {
    /// Pad, RFC 2132 §3.1.
    pub const PAD: u8 = 0;
    /// Subnet mask.
    pub const SUBNET_MASK: u8 = 1;
    /// Time offset (RFC 2132 §3.4): signed seconds from UTC.
    pub const TIME_OFFSET: u8 = 2;
    /// Routers.
    pub const ROUTERS: u8 = 3;
    /// Domain name servers.
    pub const DOMAIN_NAME_SERVERS: u8 = 6;
    /// Host name.
    pub const HOST_NAME: u8 = 12;
    /// Domain name.
    pub const DOMAIN_NAME: u8 = 15;
    /// Interface MTU (RFC 2132 §5.1).
    pub const INTERFACE_MTU: u8 = 26;
    /// Broadcast address.
    pub const BROADCAST_ADDRESS: u8 = 28;
    /// NTP servers (RFC 2132 §8.3).
    pub const NTP_SERVERS: u8 = 42;
    /// Vendor-specific information (RFC 2132 §8.4).
    pub const VENDOR_ENCAPSULATED: u8 = 43;
    /// Requested IP address.
    pub const REQUESTED_IP: u8 = 50;
    /// IP address lease time.
    pub const LEASE_TIME: u8 = 51;
    /// Option overload.
    pub const OVERLOAD: u8 = 52;
    /// DHCP message type.
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server identifier.
    pub const SERVER_IDENTIFIER: u8 = 54;
    /// Parameter request list.
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    /// Message (error text, DHCPNAK).
    pub const MESSAGE: u8 = 56;
    /// Maximum DHCP message size.
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    /// Renewal (T1) time.
    pub const RENEWAL_TIME: u8 = 58;
    /// Rebinding (T2) time.
    pub const REBINDING_TIME: u8 = 59;
    /// Vendor class identifier.
    pub const VENDOR_CLASS: u8 = 60;
    /// Client identifier.
    pub const CLIENT_IDENTIFIER: u8 = 61;
    /// TFTP server name (RFC 2132 §9.4).
    pub const TFTP_SERVER_NAME: u8 = 66;
    /// Bootfile name (RFC 2132 §9.5).
    pub const BOOTFILE_NAME: u8 = 67;
    /// User class, RFC 3004.
    pub const USER_CLASS: u8 = 77;
    /// Relay agent information, RFC 3046.
    pub const RELAY_AGENT_INFO: u8 = 82;
    /// Authentication, RFC 3118.
    pub const AUTHENTICATION: u8 = 90;
    /// client-last-transaction-time, RFC 4388.
    pub const CLIENT_LAST_TRANSACTION_TIME: u8 = 91;
    /// associated-ip, RFC 4388.
    pub const ASSOCIATED_IP: u8 = 92;
    /// Subnet selection, RFC 3011.
    pub const SUBNET_SELECTION: u8 = 118;
    /// Domain search (RFC 3397).
    pub const DOMAIN_SEARCH: u8 = 119;
    /// Classless static routes (RFC 3442).
    pub const CLASSLESS_STATIC_ROUTES: u8 = 121;
    /// V-I vendor-specific information (RFC 3925).
    pub const VENDOR_IDENTIFYING: u8 = 125;
    /// status-code, RFC 6926.
    pub const STATUS_CODE: u8 = 151;
    /// base-time, RFC 6926.
    pub const BASE_TIME: u8 = 152;
    /// start-time-of-state, RFC 6926.
    pub const START_TIME_OF_STATE: u8 = 153;
    /// query-start-time, RFC 6926.
    pub const QUERY_START_TIME: u8 = 154;
    /// query-end-time, RFC 6926.
    pub const QUERY_END_TIME: u8 = 155;
    /// dhcp-state, RFC 6926.
    pub const DHCP_STATE: u8 = 156;
    /// data-source, RFC 6926.
    pub const DATA_SOURCE: u8 = 157;
    /// Virtual subnet selection (VPN-ID), RFC 6607.
    pub const VSS: u8 = 221;
    /// End, RFC 2132 §3.2.
    pub const END: u8 = 255;
}

/// Check that a known option's (concatenated) value has the form its RFC gives it.
///
/// Unknown options and options whose content is free-form pass. This is what makes the decoder strict: a
/// message with a 3-octet lease time or a broken option 82 is rejected with the option named, instead of
/// being half-understood.
pub fn validate(code: u8, data: &[u8]) -> Result<(), OptionError> {
    let len = data.len();
    let bad = |expected| Err(OptionError::BadLength { code, len, expected });
    match code {
        code::SUBNET_MASK
        | code::REQUESTED_IP
        | code::LEASE_TIME
        | code::SERVER_IDENTIFIER
        | code::RENEWAL_TIME
        | code::REBINDING_TIME
        | code::CLIENT_LAST_TRANSACTION_TIME
        | code::SUBNET_SELECTION
        | code::BASE_TIME
        | code::START_TIME_OF_STATE
        | code::QUERY_START_TIME
        | code::QUERY_END_TIME
            if len != 4 =>
        {
            bad("4")
        }
        code::MESSAGE_TYPE | code::DHCP_STATE | code::DATA_SOURCE if len != 1 => bad("1"),
        code::MAX_MESSAGE_SIZE if len != 2 => bad("2"),
        code::ROUTERS | code::DOMAIN_NAME_SERVERS | code::ASSOCIATED_IP if len == 0 || !len.is_multiple_of(4) => {
            bad("a non-zero multiple of 4")
        }
        code::CLIENT_IDENTIFIER if len < 2 => bad("at least 2 (type and identifier)"),
        code::PARAMETER_REQUEST_LIST | code::STATUS_CODE | code::VSS if len == 0 => bad("at least 1"),
        code::RELAY_AGENT_INFO => RelayAgentInfo::parse(data).map(|_| ()),
        _ => Ok(()),
    }
}

fn be32(data: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(data).ok().map(u32::from_be_bytes)
}

fn ip(data: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(data).ok().map(Ipv4Addr::from)
}

/// Getters of the options whose value reads one way (its octets, one address, a 32-bit number), one line
/// each: the getter, what it returns, the reader ([`Options::get`], [`Options::get_ip`], [`Options::get_u32`])
/// and the option's [`code`].
macro_rules! getters {
    ($($(#[$doc:meta])* $name:ident -> $t:ty = $read:ident($code:ident);)+) => {
        $(
            $(#[$doc])*
            pub fn $name(&self) -> Option<$t> {
                self.$read(code::$code)
            }
        )+
    };
}

impl<'a> Options<'a> {
    /// The value of an option as a 4-octet unsigned integer.
    pub fn get_u32(&self, code: u8) -> Option<u32> {
        self.get(code).and_then(be32)
    }

    /// The value of an option as one IPv4 address.
    pub fn get_ip(&self, code: u8) -> Option<Ipv4Addr> {
        self.get(code).and_then(ip)
    }

    getters! {
        /// Server identifier (54).
        server_identifier -> Ipv4Addr = get_ip(SERVER_IDENTIFIER);
        /// Requested IP address (50).
        requested_ip -> Ipv4Addr = get_ip(REQUESTED_IP);
        /// Lease time (51), in seconds.
        lease_time -> u32 = get_u32(LEASE_TIME);
        /// Client identifier (61), type octet included.
        client_identifier -> &[u8] = get(CLIENT_IDENTIFIER);
        /// Parameter request list (55).
        parameter_request_list -> &[u8] = get(PARAMETER_REQUEST_LIST);
        /// client-last-transaction-time (91): seconds since the client last talked to the server.
        client_last_transaction_time -> u32 = get_u32(CLIENT_LAST_TRANSACTION_TIME);
        /// base-time (152): the server's absolute time when it built the message.
        base_time -> u32 = get_u32(BASE_TIME);
        /// start-time-of-state (153): seconds before base-time at which the current state began.
        start_time_of_state -> u32 = get_u32(START_TIME_OF_STATE);
        /// query-start-time (154).
        query_start_time -> u32 = get_u32(QUERY_START_TIME);
        /// query-end-time (155).
        query_end_time -> u32 = get_u32(QUERY_END_TIME);
    }

    /// DHCP message type (53).
    pub fn message_type(&self) -> Option<MessageType> {
        match self.get(code::MESSAGE_TYPE) {
            Some([t]) => Some(MessageType::from_code(*t)),
            _ => None,
        }
    }

    /// Maximum DHCP message size (57).
    pub fn max_message_size(&self) -> Option<u16> {
        self.get(code::MAX_MESSAGE_SIZE).and_then(|d| <[u8; 2]>::try_from(d).ok()).map(u16::from_be_bytes)
    }

    /// Relay agent information (82). The decoder validated its structure.
    pub fn relay_agent_info(&self) -> Option<RelayAgentInfo<'_>> {
        self.get(code::RELAY_AGENT_INFO).and_then(|d| RelayAgentInfo::parse(d).ok())
    }

    /// associated-ip (92).
    pub fn associated_ips(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.get(code::ASSOCIATED_IP).unwrap_or(&[]).chunks_exact(4).filter_map(ip)
    }

    /// status-code (151); an error when its text is not UTF-8 without NUL (RFC 6926 §6.2.2).
    pub fn status(&self) -> Option<Result<Status<'_>, OptionError>> {
        let (&c, text) = self.get(code::STATUS_CODE)?.split_first()?;
        Some(match std::str::from_utf8(text) {
            Ok(message) if !message.contains('\0') => Ok(Status { code: StatusCode::from_code(c), message }),
            _ => Err(OptionError::BadStatusText),
        })
    }

    /// The status code alone (151), whatever its text.
    pub fn status_code(&self) -> Option<StatusCode> {
        self.get(code::STATUS_CODE).and_then(|d| d.first()).map(|&c| StatusCode::from_code(c))
    }

    /// dhcp-state (156); an error for values outside the registry.
    pub fn dhcp_state(&self) -> Option<Result<DhcpState, OptionError>> {
        match self.get(code::DHCP_STATE)? {
            [c] => Some(DhcpState::from_code(*c).ok_or(OptionError::UnknownDhcpState(*c))),
            _ => None,
        }
    }

    /// data-source (157). Absent means local (RFC 6926 §6.2.8).
    pub fn data_source(&self) -> Option<DataSource> {
        match self.get(code::DATA_SOURCE)? {
            [f] => Some(DataSource(*f)),
            _ => None,
        }
    }

    /// VSS / VPN-ID (221).
    pub fn vss(&self) -> Option<Vss<'_>> {
        self.get(code::VSS).and_then(Vss::parse)
    }

    /// Set (replace or append) a 4-octet unsigned option.
    pub fn set_u32(&mut self, code: u8, value: u32) {
        self.set(code, value.to_be_bytes().to_vec());
    }

    /// Set (replace or append) a single-address option.
    pub fn set_ip(&mut self, code: u8, value: Ipv4Addr) {
        self.set(code, value.octets().to_vec());
    }

    /// Set the message type (53).
    pub fn set_message_type(&mut self, t: MessageType) {
        self.set(code::MESSAGE_TYPE, vec![t.code()]);
    }

    /// Set status-code (151) with an optional message.
    pub fn set_status(&mut self, status: StatusCode, message: &str) {
        let mut v = Vec::with_capacity(1 + message.len());
        v.push(status.code());
        v.extend_from_slice(message.as_bytes());
        self.set(code::STATUS_CODE, v);
    }

    /// Set dhcp-state (156).
    pub fn set_dhcp_state(&mut self, state: DhcpState) {
        self.set(code::DHCP_STATE, vec![state.code()]);
    }

    /// Set data-source (157).
    pub fn set_data_source(&mut self, source: DataSource) {
        self.set(code::DATA_SOURCE, vec![source.0]);
    }

    /// Set associated-ip (92).
    pub fn set_associated_ips(&mut self, ips: &[Ipv4Addr]) {
        self.set(code::ASSOCIATED_IP, ips.iter().flat_map(|a| a.octets()).collect::<Vec<u8>>());
    }

    /// Set an option to borrowed bytes (no copy).
    pub fn set_borrowed(&mut self, code: u8, data: &'a [u8]) {
        self.set(code, Cow::Borrowed(data));
    }

    /// Append an option without looking for an earlier one of the same code (caller guarantees uniqueness).
    pub fn push_borrowed(&mut self, code: u8, data: &'a [u8]) {
        self.push(DhcpOption { code, data: Cow::Borrowed(data) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_length_options_are_checked() {
        assert!(validate(code::LEASE_TIME, &[0, 0, 0]).is_err());
        assert!(validate(code::LEASE_TIME, &[0, 0, 0, 1]).is_ok());
        assert!(validate(code::MESSAGE_TYPE, &[]).is_err());
        assert!(validate(code::ASSOCIATED_IP, &[1, 2, 3, 4, 5]).is_err());
        assert!(validate(code::ASSOCIATED_IP, &[]).is_err());
        assert!(validate(code::CLIENT_IDENTIFIER, &[1]).is_err());
        assert!(validate(code::STATUS_CODE, &[]).is_err());
        assert!(validate(code::RELAY_AGENT_INFO, &[1, 9]).is_err());
        assert!(validate(37, &[]).is_ok(), "unknown options are free-form");
    }
}
