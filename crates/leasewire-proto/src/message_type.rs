//! DHCP message types (option 53), RFC 2132 §9.6 plus the leasequery family.

byte_coded! {
    /// The value of option 53.
    ///
    /// Unknown values are kept (`Unknown`) rather than rejected so that a server can count and drop them with a
    /// precise reason instead of failing to decode the whole message.
    pub enum MessageType {
        /// Any other value, kept as received.
        Unknown = "UNKNOWN";
        /// 1, RFC 2131.
        Discover = 1, "DHCPDISCOVER";
        /// 2, RFC 2131.
        Offer = 2, "DHCPOFFER";
        /// 3, RFC 2131.
        Request = 3, "DHCPREQUEST";
        /// 4, RFC 2131.
        Decline = 4, "DHCPDECLINE";
        /// 5, RFC 2131.
        Ack = 5, "DHCPACK";
        /// 6, RFC 2131.
        Nak = 6, "DHCPNAK";
        /// 7, RFC 2131.
        Release = 7, "DHCPRELEASE";
        /// 8, RFC 2131.
        Inform = 8, "DHCPINFORM";
        /// 9, RFC 3203.
        ForceRenew = 9, "DHCPFORCERENEW";
        /// 10, RFC 4388: a requestor asks about one binding (UDP only).
        LeaseQuery = 10, "DHCPLEASEQUERY";
        /// 11, RFC 4388: the address is managed by the server but not leased.
        LeaseUnassigned = 11, "DHCPLEASEUNASSIGNED";
        /// 12, RFC 4388: the server knows nothing about the address (UDP only).
        LeaseUnknown = 12, "DHCPLEASEUNKNOWN";
        /// 13, RFC 4388: the address is actively leased.
        LeaseActive = 13, "DHCPLEASEACTIVE";
        /// 14, RFC 6926: a Bulk Leasequery (TCP).
        BulkLeaseQuery = 14, "DHCPBULKLEASEQUERY";
        /// 15, RFC 6926: ends the replies to one Bulk Leasequery.
        LeaseQueryDone = 15, "DHCPLEASEQUERYDONE";
        /// 16, RFC 7724: opens an Active Leasequery stream.
        ActiveLeaseQuery = 16, "DHCPACTIVELEASEQUERY";
        /// 17, RFC 7724: status of the whole Active Leasequery stream.
        LeaseQueryStatus = 17, "DHCPLEASEQUERYSTATUS";
        /// 18, RFC 7724: asks for (or answers) a TLS upgrade of the connection.
        Tls = 18, "DHCPTLS";
    }
}

impl MessageType {
    /// Whether RFC 7724 §8.1.1 lets a requestor send this type on a Bulk/Active Leasequery TCP connection.
    ///
    /// Everything else received there closes the connection.
    pub const fn allowed_from_requestor_on_tcp(self) -> bool {
        matches!(self, Self::BulkLeaseQuery | Self::ActiveLeaseQuery | Self::Tls)
    }
}

impl From<u8> for MessageType {
    fn from(code: u8) -> Self {
        Self::from_code(code)
    }
}

impl From<MessageType> for u8 {
    fn from(t: MessageType) -> u8 {
        t.code()
    }
}

impl std::fmt::Display for MessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown(c) => write!(f, "UNKNOWN({c})"),
            other => f.write_str(other.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (That every octet reads back as itself is `byte_coded!`'s test.)
    #[test]
    fn all_is_every_code_from_1_to_18() {
        for (i, t) in MessageType::ALL.iter().enumerate() {
            assert_eq!(t.code() as usize, i + 1);
            assert!(!matches!(t, MessageType::Unknown(_)));
        }
    }

    #[test]
    fn only_query_types_are_allowed_on_tcp() {
        let allowed: Vec<u8> =
            (0..=255u8).filter(|c| MessageType::from_code(*c).allowed_from_requestor_on_tcp()).collect();
        assert_eq!(allowed, vec![14, 16, 18]);
    }
}
