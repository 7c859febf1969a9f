//! One address's events as intervals: who held it from when to when, and when it was free.
//!
//! Consecutive events of the same holding (same client through the same relay, state ACTIVE: renewals, a
//! re-sent binding) are one interval; consecutive events of a free address (RELEASED then EXPIRED, say) are
//! one too, starting at the first. A lease whose end passed before the next event (or before now) ends the
//! holding at its end: the address is free from then (`inferred`), whatever message comes later.
// Rows and spans are what the SQLite store reads back; without it only `Interval` is used.
#![cfg_attr(not(feature = "sqlite"), allow(dead_code))]

use super::held;
use leasewire_proto::DhcpState;
use std::net::Ipv4Addr;

/// One stored event, as the timeline needs it (clients and relays as their interned ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Row {
    /// Append order (ties within a second keep it).
    pub seq: i64,
    /// When the change happened (server clock).
    pub t: u32,
    /// The requestor's clock when it arrived.
    pub seen: u32,
    pub state: DhcpState,
    pub server: u16,
    pub client: Option<i64>,
    pub relay: Option<i64>,
    pub expires: Option<u32>,
    /// Data-source REMOTE.
    pub remote: bool,
}

impl Row {
    /// Rows with equal keys are the same interval.
    pub fn key(&self) -> (bool, Option<i64>, Option<i64>) {
        if held(self.state) { (true, self.client, self.relay) } else { (false, None, None) }
    }
}

/// An interval with its client and relay as interned ids, before they are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub state: DhcpState,
    pub from: u32,
    pub to: Option<u32>,
    pub lease_end: Option<u32>,
    pub client: Option<i64>,
    pub relay: Option<i64>,
    pub server: u16,
    pub seen: u32,
    pub events: u32,
    pub inferred: bool,
    pub remote: bool,
}

impl Span {
    fn start(r: &Row) -> Self {
        Self {
            state: r.state,
            from: r.t,
            to: None,
            lease_end: r.expires.filter(|_| held(r.state)),
            client: r.client,
            relay: r.relay,
            server: r.server,
            seen: r.seen,
            events: 1,
            inferred: false,
            remote: r.remote,
        }
    }

    pub fn held(&self) -> bool {
        held(self.state)
    }

    /// Whether it covers `t`.
    pub fn covers(&self, t: u32) -> bool {
        self.from <= t && self.to.is_none_or(|to| t < to)
    }

    /// Whether it overlaps `from..=to`.
    pub fn overlaps(&self, from: u32, to: u32) -> bool {
        self.from <= to && self.to.is_none_or(|end| from < end)
    }

    fn key(&self) -> (bool, Option<i64>, Option<i64>) {
        if self.held() { (true, self.client, self.relay) } else { (false, None, None) }
    }
}

/// The intervals of one address from its events (sorted by time, then append order), with leases whose end
/// passed before `now` closed at their end.
pub(crate) fn build(rows: &[Row], now: u32) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    for r in rows {
        close_lapsed(&mut out, r.t, r);
        match out.last_mut() {
            Some(cur) if cur.to.is_none() && cur.key() == r.key() => {
                cur.events += 1;
                if cur.held() {
                    cur.lease_end = r.expires;
                }
            }
            cur => {
                if let Some(cur) = cur {
                    cur.to.get_or_insert(r.t);
                }
                out.push(Span::start(r));
            }
        }
    }
    if let Some(last) = out.last().cloned() {
        let end = Row {
            seq: i64::MAX,
            t: now,
            seen: now,
            state: DhcpState::Expired,
            server: last.server,
            client: None,
            relay: None,
            expires: None,
            remote: false,
        };
        close_lapsed(&mut out, now, &end);
    }
    out
}

/// If the current holding's lease ended before `t` (strictly: a renewal in the lease's last second keeps it),
/// end it there and open a free interval from its end.
fn close_lapsed(out: &mut Vec<Span>, t: u32, next: &Row) {
    let Some(cur) = out.last_mut() else { return };
    let Some(end) = cur.lease_end.filter(|e| cur.held() && cur.to.is_none() && *e < t) else { return };
    cur.to = Some(end);
    let server = cur.server;
    out.push(Span {
        state: DhcpState::Expired,
        from: end,
        to: None,
        lease_end: None,
        client: None,
        relay: None,
        server,
        seen: next.seen,
        events: 0,
        inferred: true,
        remote: false,
    });
}

/// An interval as answers show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    /// The address.
    pub ip: Ipv4Addr,
    /// ACTIVE while a client held it; otherwise the state that made it free (RELEASED, EXPIRED, ...).
    pub state: DhcpState,
    /// Start (server clock, Unix seconds).
    pub from: u32,
    /// End; `None` while it lasts.
    pub to: Option<u32>,
    /// For a holding: the lease end last reported.
    pub lease_end: Option<u32>,
    /// The holder's hardware type and address (empty when free).
    pub htype: u8,
    /// The holder's hardware address.
    pub mac: Vec<u8>,
    /// The holder's client identifier.
    pub client_id: Option<Vec<u8>>,
    /// Option 82 circuit-id of the holding.
    pub circuit_id: Option<Vec<u8>>,
    /// Option 82 remote-id.
    pub remote_id: Option<Vec<u8>>,
    /// Option 82 relay-id (RFC 6925).
    pub relay_id: Option<Vec<u8>>,
    /// The whole option 82 value of the holding.
    pub relay_agent_info: Option<Vec<u8>>,
    /// The server reported the change as made by another server (data-source REMOTE).
    pub remote: bool,
    /// The server that reported it (`IP:PORT`).
    pub server: String,
    /// The requestor's clock when its first event arrived.
    pub seen: u32,
    /// Events merged into it (a lease and its renewals); 0 for an inferred end of lease.
    pub events: u32,
    /// Free because the lease end passed (no message said so yet).
    pub inferred: bool,
}

impl Interval {
    /// Whether a client held the address.
    pub fn held(&self) -> bool {
        held(self.state)
    }

    /// The address as it stood during the interval, as a binding: its state since the start, the holder and
    /// relay, the lease end last reported.
    pub fn binding(&self) -> leasewire_proto::Binding {
        let mut b = leasewire_proto::Binding::new(self.ip, self.state, self.from);
        b.htype = self.htype;
        b.hardware_address = self.mac.clone();
        b.client_id = self.client_id.clone();
        b.expires_at = self.lease_end;
        b.relay_agent_info = self.relay_agent_info.clone();
        if self.remote {
            b.data_source = leasewire_proto::DataSource::REMOTE;
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DhcpState::*;

    fn row(seq: i64, t: u32, state: DhcpState, client: i64, expires: Option<u32>) -> Row {
        Row {
            seq,
            t,
            seen: t,
            state,
            server: 0,
            client: held(state).then_some(client),
            relay: None,
            expires,
            remote: false,
        }
    }

    #[test]
    fn renewals_merge_and_a_release_frees_the_address() {
        let rows = [
            row(1, 100, Active, 7, Some(200)),
            row(2, 150, Active, 7, Some(250)),
            row(3, 180, Released, 7, None),
            row(4, 300, Active, 8, Some(400)),
        ];
        let s = build(&rows, 320);
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!((s[0].from, s[0].to, s[0].events, s[0].lease_end), (100, Some(180), 2, Some(250)));
        assert_eq!((s[1].state, s[1].from, s[1].to), (Released, 180, Some(300)));
        assert_eq!((s[2].client, s[2].from, s[2].to, s[2].lease_end), (Some(8), 300, None, Some(400)));
    }

    #[test]
    fn a_lease_end_that_passed_frees_the_address_then() {
        // No message between the lease end (200) and the server's EXPIRED (203): free from 200.
        let rows = [row(1, 100, Active, 7, Some(200)), row(2, 203, Expired, 7, None)];
        let s = build(&rows, 500);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!((s[0].to, s[1].from, s[1].inferred, s[1].events), (Some(200), 200, true, 1));
        // Nothing after the end at all: ended at `now`'s view.
        let s = build(&[row(1, 100, Active, 7, Some(200))], 300);
        assert_eq!((s[0].to, s[1].from, s[1].to), (Some(200), 200, None));
        // Still running: open.
        let s = build(&[row(1, 100, Active, 7, Some(200))], 150);
        assert_eq!((s.len(), s[0].to), (1, None));
    }

    #[test]
    fn a_new_client_or_a_new_relay_starts_a_new_interval() {
        let mut moved = row(2, 150, Active, 7, Some(300));
        moved.relay = Some(3);
        let rows = [row(1, 100, Active, 7, Some(300)), moved, row(3, 160, Active, 9, Some(300))];
        let s = build(&rows, 170);
        assert_eq!(
            s.iter().map(|s| (s.from, s.to)).collect::<Vec<_>>(),
            [(100, Some(150)), (150, Some(160)), (160, None)]
        );
        assert!(s[1].covers(150) && !s[1].covers(160) && s[2].covers(1_000));
        assert!(s[0].overlaps(0, 100) && !s[0].overlaps(150, 200));
    }
}
