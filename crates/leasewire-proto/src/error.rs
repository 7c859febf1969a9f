//! Typed errors for everything a peer can get wrong on the wire.

/// Where in a message an option was being read: the options field, or `file`/`sname` under option overload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionArea {
    /// The variable-length options field after the magic cookie.
    Options,
    /// The 128-octet `file` field (option 52 value 1 or 3).
    File,
    /// The 64-octet `sname` field (option 52 value 2 or 3).
    Sname,
}

impl std::fmt::Display for OptionArea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Options => "options field",
            Self::File => "file field (overloaded)",
            Self::Sname => "sname field (overloaded)",
        })
    }
}

/// Why a datagram or frame is not a valid DHCPv4 message.
///
/// Every variant names what was wrong so that a server can count drops by reason and log something an
/// operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer octets than the fixed header and the magic cookie.
    #[error("message truncated: {len} octets, the fixed header and magic cookie need 240")]
    TruncatedHeader {
        /// Octets received.
        len: usize,
    },
    /// `op` is neither BOOTREQUEST nor BOOTREPLY.
    #[error("op {0} is neither BOOTREQUEST (1) nor BOOTREPLY (2)")]
    BadOp(u8),
    /// `hlen` is larger than the 16-octet `chaddr` field.
    #[error("hlen {0} exceeds the 16-octet chaddr field")]
    BadHardwareLength(u8),
    /// The four octets after the header are not 99.130.83.99.
    #[error("bad magic cookie {0:?}, expected [99, 130, 83, 99]")]
    BadMagicCookie([u8; 4]),
    /// An option's length runs past the end of the area it is in.
    #[error("option {code} at offset {offset} of the {area} claims {len} octets, only {available} remain")]
    OptionOverrun {
        /// The option code.
        code: u8,
        /// Offset of the option's code octet within the area.
        offset: usize,
        /// The length the option claims.
        len: usize,
        /// Octets left in the area after the length octet.
        available: usize,
        /// The area being read.
        area: OptionArea,
    },
    /// An option code octet is the last octet of its area: its length octet is missing.
    #[error("option {code} at offset {offset} of the {area} has no length octet")]
    MissingOptionLength {
        /// The option code.
        code: u8,
        /// Offset of the code octet within the area.
        offset: usize,
        /// The area being read.
        area: OptionArea,
    },
    /// The options field ended without an end option (255).
    #[error("the options field has no end option (255)")]
    MissingEnd,
    /// Option overload (52) has a value other than 1, 2 or 3, or a length other than 1.
    #[error("option overload (52) is invalid: {0:?}")]
    BadOverload(Vec<u8>),
    /// A known option has a value that cannot be right (wrong length, bad sub-options, ...).
    #[error(transparent)]
    Option(#[from] OptionError),
}

/// A known option whose value does not have the form its RFC gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// The option's length does not fit its format.
    #[error("option {code} has length {len}, expected {expected}")]
    BadLength {
        /// The option code.
        code: u8,
        /// The length found (after RFC 3396 concatenation).
        len: usize,
        /// What the RFC allows, in words.
        expected: &'static str,
    },
    /// A sub-option of relay agent information (82) overruns the option.
    #[error(
        "relay agent information (82): sub-option {sub_code} at offset {offset} claims {len} octets, only {available} remain"
    )]
    SubOptionOverrun {
        /// The sub-option code.
        sub_code: u8,
        /// Offset of the sub-option within option 82.
        offset: usize,
        /// The claimed length.
        len: usize,
        /// Octets left.
        available: usize,
    },
    /// The status-code (151) message is not UTF-8 or contains NUL (RFC 6926 §6.2.2).
    #[error("status-code (151) message is not UTF-8 text without NUL")]
    BadStatusText,
    /// dhcp-state (156) holds a value the registry does not define.
    #[error("dhcp-state (156) value {0} is not defined (1-8)")]
    UnknownDhcpState(u8),
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// `sname` is longer than its 64-octet field.
    #[error("sname is {0} octets, the field holds 64")]
    SnameTooLong(usize),
    /// `file` is longer than its 128-octet field.
    #[error("file is {0} octets, the field holds 128")]
    FileTooLong(usize),
    /// `hlen` is larger than the 16-octet `chaddr` field.
    #[error("hlen {0} exceeds the 16-octet chaddr field")]
    BadHardwareLength(u8),
    /// Pad (0), overload (52) and end (255) are framing, not options a caller can set.
    #[error("option code {0} is reserved for the encoder (pad, overload, end)")]
    ReservedOptionCode(u8),
    /// The message does not fit the size limit even using `file` and `sname` for options.
    #[error("message needs {needed} octets, limit is {limit}")]
    TooLarge {
        /// Octets needed.
        needed: usize,
        /// The limit in force.
        limit: usize,
    },
}
