//! The Virtual Subnet Selection option (221, RFC 6607) as RFC 6926 uses it to qualify a Bulk Leasequery.

/// The VSS type octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VssType {
    /// 0: NVT ASCII VPN identifier.
    NvtAscii,
    /// 1: RFC 2685 VPN-ID (7 octets).
    Rfc2685,
    /// 254: all VPNs (wildcard), added by RFC 6926.
    AllVpns,
    /// 255: the global, default VPN.
    Global,
    /// An unassigned value, kept as received.
    Other(u8),
}

impl VssType {
    /// The wire value.
    pub const fn code(self) -> u8 {
        match self {
            Self::NvtAscii => 0,
            Self::Rfc2685 => 1,
            Self::AllVpns => 254,
            Self::Global => 255,
            Self::Other(c) => c,
        }
    }

    /// The type for a wire value.
    pub const fn from_code(code: u8) -> Self {
        match code {
            0 => Self::NvtAscii,
            1 => Self::Rfc2685,
            254 => Self::AllVpns,
            255 => Self::Global,
            c => Self::Other(c),
        }
    }
}

/// The decoded VSS option: a type and its VPN information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vss<'a> {
    /// What `info` identifies.
    pub kind: VssType,
    /// The VPN identifier (empty for the global and all-VPN types).
    pub info: &'a [u8],
}

impl<'a> Vss<'a> {
    /// Parse an option 221 value; `None` for an empty value.
    pub fn parse(raw: &'a [u8]) -> Option<Self> {
        let (&kind, info) = raw.split_first()?;
        Some(Self { kind: VssType::from_code(kind), info })
    }

    /// Whether this names the default (global) VPN, which is what a query without VSS means.
    pub fn is_global(&self) -> bool {
        self.kind == VssType::Global
    }

    /// Encode into an option value.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + self.info.len());
        v.push(self.kind.code());
        v.extend_from_slice(self.info);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_type_value() {
        for c in 0..=255u8 {
            let raw = [c, b'v', b'p', b'n'];
            let v = Vss::parse(&raw).unwrap();
            assert_eq!(v.kind.code(), c);
            assert_eq!(v.to_bytes(), raw);
        }
        assert!(Vss::parse(&[]).is_none());
        assert!(Vss::parse(&[255]).unwrap().is_global());
    }
}
