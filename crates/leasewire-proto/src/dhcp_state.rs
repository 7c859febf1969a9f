//! The dhcp-state option (156) values: RFC 6926 §6.2.7.

/// The state of an IP address binding as a Bulk or Active Leasequery reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DhcpState {
    /// 1: available to this server.
    Available = 1,
    /// 2: assigned to a client.
    Active = 2,
    /// 3: the lease expired.
    Expired = 3,
    /// 4: the client released it.
    Released = 4,
    /// 5: the server or a client marked it unusable (e.g. after DHCPDECLINE).
    Abandoned = 5,
    /// 6: freed by an external agent.
    Reset = 6,
    /// 7: available to a remote (partner) server.
    Remote = 7,
    /// 8: moving between states.
    Transitioning = 8,
}

impl DhcpState {
    /// Every state, in code order.
    pub const ALL: [DhcpState; 8] = [
        Self::Available,
        Self::Active,
        Self::Expired,
        Self::Released,
        Self::Abandoned,
        Self::Reset,
        Self::Remote,
        Self::Transitioning,
    ];

    /// The wire value.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The state for a wire value, `None` for values the registry does not define.
    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::Available,
            2 => Self::Active,
            3 => Self::Expired,
            4 => Self::Released,
            5 => Self::Abandoned,
            6 => Self::Reset,
            7 => Self::Remote,
            8 => Self::Transitioning,
            _ => return None,
        })
    }

    /// The RFC's name for the state.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Available => "AVAILABLE",
            Self::Active => "ACTIVE",
            Self::Expired => "EXPIRED",
            Self::Released => "RELEASED",
            Self::Abandoned => "ABANDONED",
            Self::Reset => "RESET",
            Self::Remote => "REMOTE",
            Self::Transitioning => "TRANSITIONING",
        }
    }

    /// Parse the RFC name, case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// RFC 6926 §8.3: a binding in state ACTIVE is reported with DHCPLEASEACTIVE, every other state with
    /// DHCPLEASEUNASSIGNED.
    pub const fn reply_type(self) -> crate::MessageType {
        match self {
            Self::Active => crate::MessageType::LeaseActive,
            _ => crate::MessageType::LeaseUnassigned,
        }
    }
}

impl std::fmt::Display for DhcpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The data-source option (157) flags: RFC 6926 §6.2.8.
///
/// Only the REMOTE flag is defined; the other seven bits are unassigned and MUST be ignored by receivers, but
/// we keep them so a message re-encodes byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DataSource(pub u8);

impl DataSource {
    /// The REMOTE flag. RFC 6926 draws bit 0 first (most significant); the figure puts R in the last position,
    /// which is the least-significant bit, 0x01, as ISC Kea and Wireshark read it.
    pub const REMOTE_FLAG: u8 = 0x01;
    /// Local data (no flags).
    pub const LOCAL: DataSource = DataSource(0);
    /// Data learned from another server.
    pub const REMOTE: DataSource = DataSource(Self::REMOTE_FLAG);

    /// Whether the latest change was made by another server.
    pub const fn is_remote(self) -> bool {
        self.0 & Self::REMOTE_FLAG != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_unknown_values_are_rejected() {
        for s in DhcpState::ALL {
            assert_eq!(DhcpState::from_code(s.code()), Some(s));
            assert_eq!(DhcpState::from_name(&s.name().to_lowercase()), Some(s));
        }
        assert_eq!(DhcpState::from_code(0), None);
        assert_eq!(DhcpState::from_code(9), None);
    }

    #[test]
    fn blq_8_3_only_active_is_leaseactive() {
        for s in DhcpState::ALL {
            let t = s.reply_type();
            if s == DhcpState::Active {
                assert_eq!(t, crate::MessageType::LeaseActive);
            } else {
                assert_eq!(t, crate::MessageType::LeaseUnassigned);
            }
        }
    }

    #[test]
    fn remote_flag_ignores_unassigned_bits() {
        assert!(!DataSource(0xfe).is_remote());
        assert!(DataSource(0x01).is_remote());
        assert!(DataSource::REMOTE.is_remote());
    }
}
