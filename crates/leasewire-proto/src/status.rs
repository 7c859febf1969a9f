//! The status-code option (151): RFC 6926 §6.2.2, extended by RFC 7724 §5.2.2.

byte_coded! {
    /// A status code carried in option 151.
    pub enum StatusCode {
        /// Any other value, kept as received.
        Unknown = "Unknown";
        /// 0: success (also implied by the option's absence).
        Success = 0;
        /// 1: failure, reason unspecified.
        UnspecFail = 1;
        /// 2: the server ended the query early (shutdown, abort).
        QueryTerminated = 2;
        /// 3: the query was not understood.
        MalformedQuery = 3;
        /// 4: the query was understood but is not allowed.
        NotAllowed = 4;
        /// 5 (RFC 7724): the requested binding history is no longer available.
        DataMissing = 5;
        /// 6 (RFC 7724): keep-alive on an idle Active Leasequery connection.
        ConnectionActive = 6;
        /// 7 (RFC 7724): all catch-up data has been sent.
        CatchUpComplete = 7;
        /// 8 (RFC 7724): TLS is not available or not allowed.
        TlsConnectionRefused = 8, "TLSConnectionRefused";
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

    /// (That every octet reads back as itself is `byte_coded!`'s test.)
    #[test]
    fn rfc7724_codes_and_names() {
        assert_eq!(StatusCode::from_code(5).name(), "DataMissing");
        assert_eq!(StatusCode::from_code(6).name(), "ConnectionActive");
        assert_eq!(StatusCode::from_code(7).name(), "CatchUpComplete");
        assert_eq!(StatusCode::from_code(8).name(), "TLSConnectionRefused");
        assert_eq!(StatusCode::from_code(9), StatusCode::Unknown(9));
    }
}
