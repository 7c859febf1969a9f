//! Which kinds of query a requestor may make over TCP (RFC 6926 §9: a server should be able to restrict
//! requestors to certain query types, BLQ-9-6).

use super::bulk::BulkKey;

/// A set of query kinds: the five primary queries of a DHCPBULKLEASEQUERY and the DHCPACTIVELEASEQUERY. A
/// Bulk query of a kind not in the set gets DONE with NotAllowed; an Active query, DHCPLEASEQUERYSTATUS
/// NotAllowed and a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueryTypes(u8);

impl QueryTypes {
    /// All configured IP addresses.
    pub const ALL_ADDRESSES: Self = Self(1);
    /// By client hardware address.
    pub const MAC: Self = Self(2);
    /// By client identifier.
    pub const CLIENT_ID: Self = Self(4);
    /// By remote-id.
    pub const REMOTE_ID: Self = Self(8);
    /// By relay-id.
    pub const RELAY_ID: Self = Self(16);
    /// DHCPACTIVELEASEQUERY.
    pub const ACTIVE: Self = Self(32);
    /// No query at all.
    pub const NONE: Self = Self(0);
    /// Every kind (the default).
    pub const EVERY: Self = Self(63);

    /// Each kind with its configuration name.
    pub const NAMES: [(&'static str, Self); 6] = [
        ("all", Self::ALL_ADDRESSES),
        ("mac", Self::MAC),
        ("client-id", Self::CLIENT_ID),
        ("remote-id", Self::REMOTE_ID),
        ("relay-id", Self::RELAY_ID),
        ("active", Self::ACTIVE),
    ];

    /// The kind of a Bulk query's primary query.
    pub fn of_key(key: &BulkKey) -> Self {
        match key {
            BulkKey::All => Self::ALL_ADDRESSES,
            BulkKey::Mac { .. } => Self::MAC,
            BulkKey::ClientId(_) => Self::CLIENT_ID,
            BulkKey::RemoteId(_) => Self::REMOTE_ID,
            BulkKey::RelayId(_) => Self::RELAY_ID,
        }
    }

    /// The kind a configuration name stands for.
    pub fn named(name: &str) -> Option<Self> {
        Self::NAMES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    /// Both sets together.
    #[must_use]
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether every kind of `other` is in this set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The configuration names of the kinds in the set.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES.iter().filter(|(_, t)| self.contains(*t)).map(|(n, _)| *n).collect()
    }
}

impl Default for QueryTypes {
    fn default() -> Self {
        Self::EVERY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sets_combine() {
        for (name, t) in QueryTypes::NAMES {
            assert_eq!(QueryTypes::named(name), Some(t));
            assert_eq!(t.names(), vec![name]);
        }
        assert_eq!(QueryTypes::named("by-ip"), None);
        let s = QueryTypes::MAC.with(QueryTypes::ACTIVE);
        assert!(s.contains(QueryTypes::MAC) && s.contains(QueryTypes::ACTIVE) && !s.contains(QueryTypes::RELAY_ID));
        assert_eq!(QueryTypes::default().names().len(), 6);
        assert!(!QueryTypes::NONE.contains(QueryTypes::of_key(&BulkKey::All)));
    }
}
