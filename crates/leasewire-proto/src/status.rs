//! The status-code option (151): RFC 6926 §6.2.2, extended by RFC 7724 §5.2.2.

/// A status code carried in option 151.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    /// 0: success (also implied by the option's absence).
    Success,
    /// 1: failure, reason unspecified.
    UnspecFail,
    /// 2: the server ended the query early (shutdown, abort).
    QueryTerminated,
    /// 3: the query was not understood.
    MalformedQuery,
    /// 4: the query was understood but is not allowed.
    NotAllowed,
    /// 5 (RFC 7724): the requested binding history is no longer available.
    DataMissing,
    /// 6 (RFC 7724): keep-alive on an idle Active Leasequery connection.
    ConnectionActive,
    /// 7 (RFC 7724): all catch-up data has been sent.
    CatchUpComplete,
    /// 8 (RFC 7724): TLS is not available or not allowed.
    TlsConnectionRefused,
    /// Any other value, kept as received.
    Unknown(u8),
}

impl StatusCode {
    /// Every named code, in code order.
    pub const ALL: [StatusCode; 9] = [
        Self::Success,
        Self::UnspecFail,
        Self::QueryTerminated,
        Self::MalformedQuery,
        Self::NotAllowed,
        Self::DataMissing,
        Self::ConnectionActive,
        Self::CatchUpComplete,
        Self::TlsConnectionRefused,
    ];

    /// The wire value.
    pub const fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::UnspecFail => 1,
            Self::QueryTerminated => 2,
            Self::MalformedQuery => 3,
            Self::NotAllowed => 4,
            Self::DataMissing => 5,
            Self::ConnectionActive => 6,
            Self::CatchUpComplete => 7,
            Self::TlsConnectionRefused => 8,
            Self::Unknown(c) => c,
        }
    }

    /// The code for a wire value.
    pub const fn from_code(code: u8) -> Self {
        match code {
            0 => Self::Success,
            1 => Self::UnspecFail,
            2 => Self::QueryTerminated,
            3 => Self::MalformedQuery,
            4 => Self::NotAllowed,
            5 => Self::DataMissing,
            6 => Self::ConnectionActive,
            7 => Self::CatchUpComplete,
            8 => Self::TlsConnectionRefused,
            c => Self::Unknown(c),
        }
    }

    /// The RFC's name for the code.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Success => "Success",
            Self::UnspecFail => "UnspecFail",
            Self::QueryTerminated => "QueryTerminated",
            Self::MalformedQuery => "MalformedQuery",
            Self::NotAllowed => "NotAllowed",
            Self::DataMissing => "DataMissing",
            Self::ConnectionActive => "ConnectionActive",
            Self::CatchUpComplete => "CatchUpComplete",
            Self::TlsConnectionRefused => "TLSConnectionRefused",
            Self::Unknown(_) => "Unknown",
        }
    }
}

impl std::fmt::Display for StatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown(c) => write!(f, "Unknown({c})"),
            other => f.write_str(other.name()),
        }
    }
}

/// The decoded contents of option 151: a code and an optional UTF-8 message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Status<'a> {
    /// The status code.
    pub code: StatusCode,
    /// The human-readable message (may be empty). RFC 6926 §6.2.2: UTF-8, no NUL, no terminator.
    pub message: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_rfc7724_names() {
        for c in 0..=255u8 {
            assert_eq!(StatusCode::from_code(c).code(), c);
        }
        assert_eq!(StatusCode::from_code(5).name(), "DataMissing");
        assert_eq!(StatusCode::from_code(6).name(), "ConnectionActive");
        assert_eq!(StatusCode::from_code(7).name(), "CatchUpComplete");
        assert_eq!(StatusCode::from_code(8).name(), "TLSConnectionRefused");
        assert_eq!(StatusCode::from_code(9), StatusCode::Unknown(9));
    }
}
