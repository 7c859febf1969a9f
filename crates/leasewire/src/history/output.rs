//! History intervals for people and spreadsheets: CSV, a table, and the sentence that answers "who held it at
//! T". The JSON line, the contract shared with the watcher's `/history`, is the library's
//! (`leasewire_requestor::json::interval_line`).

use leasewire_proto::hex;
use leasewire_requestor::history::Interval;
use leasewire_requestor::history::time::rfc3339;
use std::fmt::Write as _;

/// CSV columns, in order (the header line).
pub const FIELDS: [&str; 16] = [
    "ip",
    "state",
    "held",
    "from",
    "to",
    "lease_end",
    "htype",
    "mac",
    "client_id",
    "circuit_id",
    "remote_id",
    "relay_id",
    "server",
    "seen",
    "events",
    "inferred",
];

/// The CSV header line (no newline).
pub fn csv_header() -> String {
    FIELDS.join(",")
}

/// One CSV record (no newline), times as RFC 3339, empty when absent.
pub fn csv(i: &Interval) -> String {
    let t = |t: Option<u32>| t.map(rfc3339).unwrap_or_default();
    let o = |v: Option<&[u8]>| v.map(hex::format).unwrap_or_default();
    let server =
        if i.server.contains([',', '"']) { format!("\"{}\"", i.server.replace('"', "\"\"")) } else { i.server.clone() };
    [
        i.ip.to_string(),
        i.state.name().to_string(),
        i.held().to_string(),
        t(Some(i.from)),
        t(i.to),
        t(i.lease_end),
        i.htype.to_string(),
        o((!i.mac.is_empty()).then_some(&i.mac[..])),
        o(i.client_id.as_deref()),
        o(i.circuit_id.as_deref()),
        o(i.remote_id.as_deref()),
        o(i.relay_id.as_deref()),
        server,
        t(Some(i.seen)),
        i.events.to_string(),
        i.inferred.to_string(),
    ]
    .join(",")
}

/// The table's header (no newline).
pub fn table_header() -> String {
    format!("{:<15} {:<9} {:<20} {:<20} {:<17} {:<20} relay", "address", "state", "from", "to", "mac", "client-id")
}

/// One table row (no newline).
pub fn table_row(i: &Interval) -> String {
    let to = match (i.to, i.lease_end) {
        (Some(t), _) => rfc3339(t),
        (None, Some(e)) if i.held() => format!("(lease to {})", &rfc3339(e)[11..]),
        (None, _) => "now".into(),
    };
    let state = if i.inferred { "ENDED" } else { i.state.name() };
    format!(
        "{:<15} {:<9} {:<20} {:<20} {:<17} {:<20} {}",
        i.ip.to_string(),
        state,
        rfc3339(i.from),
        to,
        hex::format(&i.mac),
        i.client_id.as_deref().map(hex::format).unwrap_or_default(),
        relay(i)
    )
}

/// The relay as shown: remote-id, relay-id, circuit-id, whichever are present.
pub fn relay(i: &Interval) -> String {
    let mut parts = Vec::new();
    for (name, v) in [("remote-id", &i.remote_id), ("relay-id", &i.relay_id), ("circuit-id", &i.circuit_id)] {
        if let Some(v) = v {
            parts.push(format!("{name} {}", hex::format(v)));
        }
    }
    parts.join(", ")
}

/// The answer to "who held it at `at`" for one interval: held by whom since when (until when), or free
/// since when.
pub fn sentence(i: &Interval, at: u32) -> String {
    if i.held() {
        let until = match (i.to, i.lease_end) {
            (Some(t), _) => format!("until {}", rfc3339(t)),
            (None, Some(e)) => format!("lease until {}", rfc3339(e)),
            (None, None) => "still".into(),
        };
        let mut who = hex::format(&i.mac);
        if let Some(c) = &i.client_id {
            let _ = write!(who, " (client-id {})", hex::format(c));
        }
        let via = relay(i);
        let via = if via.is_empty() { String::new() } else { format!(" via {via}") };
        format!("{} at {}: held by {who}{via}, since {} {until} [{}]", i.ip, rfc3339(at), rfc3339(i.from), i.server)
    } else {
        let why = if i.inferred { "lease ended".to_string() } else { i.state.name().to_ascii_lowercase() };
        let until = i.to.map(|t| format!(" until {}", rfc3339(t))).unwrap_or_default();
        format!("{} at {}: free since {} ({why}){until}", i.ip, rfc3339(at), rfc3339(i.from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasewire_proto::DhcpState;
    use std::net::Ipv4Addr;

    fn interval() -> Interval {
        Interval {
            ip: Ipv4Addr::new(10, 1, 2, 3),
            state: DhcpState::Active,
            from: 1_764_597_900,
            to: None,
            lease_end: Some(1_764_601_500),
            htype: 1,
            mac: vec![2, 0, 0, 0, 0, 1],
            client_id: None,
            circuit_id: Some(b"p1".to_vec()),
            relay_agent_info: Some(leasewire_proto::RelayAgentInfoBuilder::new().circuit_id(b"p1").build()),
            remote: false,
            remote_id: None,
            relay_id: None,
            server: "127.0.0.1:67".into(),
            seen: 1_764_597_901,
            events: 2,
            inferred: false,
        }
    }

    #[test]
    fn a_csv_record_has_every_column() {
        assert_eq!(csv(&interval()).split(',').count(), FIELDS.len());
    }

    #[test]
    fn the_sentence_says_who_or_free_since() {
        let mut i = interval();
        assert!(
            sentence(&i, i.from + 1)
                .contains("held by 02:00:00:00:00:01 via circuit-id 70:31, since 2025-12-01T14:05:00Z")
        );
        i.state = DhcpState::Released;
        i.mac.clear();
        assert!(sentence(&i, i.from + 1).contains("free since 2025-12-01T14:05:00Z (released)"));
    }
}
