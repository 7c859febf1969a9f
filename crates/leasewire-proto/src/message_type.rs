//! DHCP message types (option 53), RFC 2132 §9.6 plus the leasequery family.

/// The value of option 53.
///
/// Unknown values are kept (`Unknown`) rather than rejected so that a server can count and drop them with a
/// precise reason instead of failing to decode the whole message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 1, RFC 2131.
    Discover,
    /// 2, RFC 2131.
    Offer,
    /// 3, RFC 2131.
    Request,
    /// 4, RFC 2131.
    Decline,
    /// 5, RFC 2131.
    Ack,
    /// 6, RFC 2131.
    Nak,
    /// 7, RFC 2131.
    Release,
    /// 8, RFC 2131.
    Inform,
    /// 9, RFC 3203.
    ForceRenew,
    /// 10, RFC 4388: a requestor asks about one binding (UDP only).
    LeaseQuery,
    /// 11, RFC 4388: the address is managed by the server but not leased.
    LeaseUnassigned,
    /// 12, RFC 4388: the server knows nothing about the address (UDP only).
    LeaseUnknown,
    /// 13, RFC 4388: the address is actively leased.
    LeaseActive,
    /// 14, RFC 6926: a Bulk Leasequery (TCP).
    BulkLeaseQuery,
    /// 15, RFC 6926: ends the replies to one Bulk Leasequery.
    LeaseQueryDone,
    /// 16, RFC 7724: opens an Active Leasequery stream.
    ActiveLeaseQuery,
    /// 17, RFC 7724: status of the whole Active Leasequery stream.
    LeaseQueryStatus,
    /// 18, RFC 7724: asks for (or answers) a TLS upgrade of the connection.
    Tls,
    /// Any other value, kept as received.
    Unknown(u8),
}

impl MessageType {
    /// Every named type, in code order (useful for tests and metrics labels).
    pub const ALL: [MessageType; 18] = [
        Self::Discover,
        Self::Offer,
        Self::Request,
        Self::Decline,
        Self::Ack,
        Self::Nak,
        Self::Release,
        Self::Inform,
        Self::ForceRenew,
        Self::LeaseQuery,
        Self::LeaseUnassigned,
        Self::LeaseUnknown,
        Self::LeaseActive,
        Self::BulkLeaseQuery,
        Self::LeaseQueryDone,
        Self::ActiveLeaseQuery,
        Self::LeaseQueryStatus,
        Self::Tls,
    ];

    /// The wire value.
    pub const fn code(self) -> u8 {
        match self {
            Self::Discover => 1,
            Self::Offer => 2,
            Self::Request => 3,
            Self::Decline => 4,
            Self::Ack => 5,
            Self::Nak => 6,
            Self::Release => 7,
            Self::Inform => 8,
            Self::ForceRenew => 9,
            Self::LeaseQuery => 10,
            Self::LeaseUnassigned => 11,
            Self::LeaseUnknown => 12,
            Self::LeaseActive => 13,
            Self::BulkLeaseQuery => 14,
            Self::LeaseQueryDone => 15,
            Self::ActiveLeaseQuery => 16,
            Self::LeaseQueryStatus => 17,
            Self::Tls => 18,
            Self::Unknown(c) => c,
        }
    }

    /// The type for a wire value; values without a name become [`MessageType::Unknown`].
    pub const fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            9 => Self::ForceRenew,
            10 => Self::LeaseQuery,
            11 => Self::LeaseUnassigned,
            12 => Self::LeaseUnknown,
            13 => Self::LeaseActive,
            14 => Self::BulkLeaseQuery,
            15 => Self::LeaseQueryDone,
            16 => Self::ActiveLeaseQuery,
            17 => Self::LeaseQueryStatus,
            18 => Self::Tls,
            c => Self::Unknown(c),
        }
    }

    /// The conventional upper-case name (`DHCPLEASEACTIVE`), as used in the RFCs and in logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Discover => "DHCPDISCOVER",
            Self::Offer => "DHCPOFFER",
            Self::Request => "DHCPREQUEST",
            Self::Decline => "DHCPDECLINE",
            Self::Ack => "DHCPACK",
            Self::Nak => "DHCPNAK",
            Self::Release => "DHCPRELEASE",
            Self::Inform => "DHCPINFORM",
            Self::ForceRenew => "DHCPFORCERENEW",
            Self::LeaseQuery => "DHCPLEASEQUERY",
            Self::LeaseUnassigned => "DHCPLEASEUNASSIGNED",
            Self::LeaseUnknown => "DHCPLEASEUNKNOWN",
            Self::LeaseActive => "DHCPLEASEACTIVE",
            Self::BulkLeaseQuery => "DHCPBULKLEASEQUERY",
            Self::LeaseQueryDone => "DHCPLEASEQUERYDONE",
            Self::ActiveLeaseQuery => "DHCPACTIVELEASEQUERY",
            Self::LeaseQueryStatus => "DHCPLEASEQUERYSTATUS",
            Self::Tls => "DHCPTLS",
            Self::Unknown(_) => "UNKNOWN",
        }
    }

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

    #[test]
    fn codes_round_trip_for_every_value() {
        for c in 0..=255u8 {
            assert_eq!(MessageType::from_code(c).code(), c);
        }
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
