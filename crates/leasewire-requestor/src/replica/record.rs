//! One binding as the replica keeps it: fixed fields inline (no allocation for the common Ethernet client),
//! the rare variable parts (client-id, option 82, options, reservation) in one boxed byte string. The same
//! bytes are the persisted form, so memory and disk share one encoding.
//!
//! Why not `leasewire_store::Packed`, the server's compact binding (`leasewire-store`'s `packed.rs`): that one
//! is private to a server process (rebuilt from its database at every start, free to change with any
//! release) and holds a server's record. This one is also the replica's file format, so it must stay
//! readable across versions, and it holds what a requestor learns besides the binding: which watched server
//! reported it, the base-time it came with, and whether the Active stream or a Bulk reply brought it.

use leasewire_proto::{Binding, DataSource, DhcpState};
use std::cmp::Ordering;
use std::net::Ipv4Addr;

pub use crate::history::Via;

const REMOTE: u8 = 1 << 0;
const HAS_EXPIRES: u8 = 1 << 1;
const HAS_CLTT: u8 = 1 << 2;
/// Came on the Active stream after its server's latest Bulk Leasequery was asked for: it may postdate what
/// that query's snapshot read, so it wins a tie with it. Cleared by [`Record::settle`] when a new Bulk query
/// starts: an Active record that arrived before the query was even sent is older than the snapshot's read.
const LIVE: u8 = 1 << 3;

const TAG_CLIENT_ID: u8 = 1;
const TAG_RELAY_AGENT_INFO: u8 = 2;
const TAG_RESERVED_FOR: u8 = 3;
const TAG_OPTION: u8 = 4;

/// Length of the fixed part of the encoding.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
const FIXED: usize = 4 * 4 + 4 + 2;

/// A binding in the replica (56 bytes plus the rare variable part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    state_since: u32,
    expires_at: u32,
    cltt: u32,
    /// The base-time of the message it came in (0 if none): when the server observed this state.
    observed: u32,
    hw: [u8; 16],
    hw_len: u8,
    htype: u8,
    state: u8,
    flags: u8,
    /// Which watched server reported it (index into the replica's server list).
    pub(crate) server: u16,
    extra: Option<Box<[u8]>>,
}

impl Record {
    /// Build from a binding as a reply reported it.
    pub(crate) fn new(b: &Binding, base_time: Option<u32>, via: Via, server: u16) -> Self {
        let mut hw = [0u8; 16];
        let hw_len = b.hardware_address.len().min(16);
        hw[..hw_len].copy_from_slice(&b.hardware_address[..hw_len]);
        let mut flags = 0;
        if b.data_source.is_remote() {
            flags |= REMOTE;
        }
        if b.expires_at.is_some() {
            flags |= HAS_EXPIRES;
        }
        if b.cltt.is_some() {
            flags |= HAS_CLTT;
        }
        if via == Via::Active {
            flags |= LIVE;
        }
        let mut extra = Vec::new();
        let mut put = |tag: u8, v: &[u8]| {
            let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
            extra.push(tag);
            extra.extend_from_slice(&len.to_be_bytes());
            extra.extend_from_slice(&v[..usize::from(len)]);
        };
        if let Some(c) = &b.client_id {
            put(TAG_CLIENT_ID, c);
        }
        if let Some(r) = &b.relay_agent_info {
            put(TAG_RELAY_AGENT_INFO, r);
        }
        if let Some(r) = &b.reserved_for {
            put(TAG_RESERVED_FOR, r.as_bytes());
        }
        for (code, v) in &b.options {
            let mut o = Vec::with_capacity(v.len() + 1);
            o.push(*code);
            o.extend_from_slice(v);
            put(TAG_OPTION, &o);
        }
        Self {
            state_since: b.state_since,
            expires_at: b.expires_at.unwrap_or(0),
            cltt: b.cltt.unwrap_or(0),
            observed: base_time.unwrap_or(0),
            hw,
            hw_len: hw_len as u8,
            htype: b.htype,
            state: b.state.code(),
            flags,
            server,
            extra: (!extra.is_empty()).then(|| extra.into_boxed_slice()),
        }
    }

    /// The binding for `ip`.
    pub(crate) fn binding(&self, ip: Ipv4Addr) -> Binding {
        let mut b = Binding::new(ip, self.state(), self.state_since);
        b.htype = self.htype;
        b.hardware_address = self.hw().to_vec();
        b.expires_at = self.expires_at();
        b.cltt = self.cltt();
        b.data_source = if self.flags & REMOTE != 0 { DataSource::REMOTE } else { DataSource::LOCAL };
        let mut rest = self.extra.as_deref().unwrap_or_default();
        while let [tag, hi, lo, tail @ ..] = rest {
            let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
            let (v, next) = tail.split_at(len);
            match *tag {
                TAG_CLIENT_ID => b.client_id = Some(v.to_vec()),
                TAG_RELAY_AGENT_INFO => b.relay_agent_info = Some(v.to_vec()),
                TAG_RESERVED_FOR => b.reserved_for = Some(String::from_utf8_lossy(v).into_owned()),
                TAG_OPTION => {
                    if let Some((code, data)) = v.split_first() {
                        b.options.push((*code, data.to_vec()));
                    }
                }
                _ => {}
            }
            rest = next;
        }
        b
    }

    /// A variable part by tag, without decoding the rest (the browser view filters a million of these).
    pub(crate) fn extra(&self, want: u8) -> Option<&[u8]> {
        let mut rest = self.extra.as_deref().unwrap_or_default();
        while let [tag, hi, lo, tail @ ..] = rest {
            let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
            let (v, next) = tail.split_at(len);
            if *tag == want {
                return Some(v);
            }
            rest = next;
        }
        None
    }

    /// The client identifier.
    pub(crate) fn client_id(&self) -> Option<&[u8]> {
        self.extra(TAG_CLIENT_ID)
    }

    /// The raw option 82.
    pub(crate) fn relay_agent_info(&self) -> Option<&[u8]> {
        self.extra(TAG_RELAY_AGENT_INFO)
    }

    pub(crate) fn state(&self) -> DhcpState {
        DhcpState::from_code(self.state).unwrap_or(DhcpState::Available)
    }

    pub(crate) fn hw(&self) -> &[u8] {
        &self.hw[..usize::from(self.hw_len)]
    }

    fn expires_at(&self) -> Option<u32> {
        (self.flags & HAS_EXPIRES != 0).then_some(self.expires_at)
    }

    fn cltt(&self) -> Option<u32> {
        (self.flags & HAS_CLTT != 0).then_some(self.cltt)
    }

    /// Its server is about to be asked a Bulk Leasequery: this record arrived before that query, so it no
    /// longer wins a same-second tie with the query's snapshot (see [`LIVE`]).
    pub(crate) fn settle(&mut self) {
        self.flags &= !LIVE;
    }

    /// The same binding, whatever message brought it (duplicates are not news).
    pub(crate) fn same_binding(&self, other: &Record) -> bool {
        const ORIGIN: u8 = LIVE;
        (self.state_since, self.expires_at, self.cltt, self.hw, self.hw_len, self.htype, self.state, &self.extra)
            == (
                other.state_since,
                other.expires_at,
                other.cltt,
                other.hw,
                other.hw_len,
                other.htype,
                other.state,
                &other.extra,
            )
            && self.flags & !ORIGIN == other.flags & !ORIGIN
    }

    /// RFC 6926 §7.6 (BLQ-7.6-2/3): which of two records about one address is the newer, both in the clock of
    /// the server that reported them.
    #[cfg(test)]
    pub(crate) fn compare(&self, other: &Record) -> Ordering {
        self.compare_shifted(0, other, 0)
    }

    /// [`Record::compare`] with each record's times moved into the requestor's clock first: `mine` and `theirs`
    /// are the seconds to add to this record's and the other's times (their servers' clock offsets, BLQ-7.4-2).
    ///
    /// First the RFC's rules: both have client-last-transaction-time, the later wins; one has it, it is
    /// compared with the other's start-time-of-state; neither, the later start-time-of-state; then local data
    /// beats REMOTE. Then, as §7.6 allows ("other information"): the later of the two times; a live Active
    /// record over a Bulk snapshot (a bulk page is read before it is sent, so its base-time can postdate a live
    /// change it does not contain, while the stream carries every change in commit order) — but only a record
    /// that arrived after the Bulk query was asked for ([`LIVE`]): one that came before it, say a RELEASE
    /// whose re-lease in the same second was lost with the connection, is older than the snapshot; then the
    /// later observation (base-time). `Equal` means indistinguishable: the newer arrival is taken.
    pub(crate) fn compare_shifted(&self, mine: i64, other: &Record, theirs: i64) -> Ordering {
        let at = |t: u32, shift: i64| i64::from(t) + shift;
        // A start-time-of-state the server did not send is unknown: a rule that needs it cannot decide, and
        // the next one is asked (BLQ-7.6-2 as written; nothing is invented).
        let known = |t: u32| (t != Binding::STATE_SINCE_UNKNOWN).then_some(t);
        let (since_a, since_b) =
            (known(self.state_since).map(|t| at(t, mine)), known(other.state_since).map(|t| at(t, theirs)));
        let (cltt_a, cltt_b) = (self.cltt().map(|t| at(t, mine)), other.cltt().map(|t| at(t, theirs)));
        let decide = |a: Option<i64>, b: Option<i64>| a.zip(b).map_or(Ordering::Equal, |(a, b)| a.cmp(&b));
        let primary = match (cltt_a, cltt_b) {
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(a), None) => decide(Some(a), since_b),
            (None, Some(b)) => decide(since_a, Some(b)),
            (None, None) => decide(since_a, since_b),
        };
        let changed_a = since_a.unwrap_or(i64::MIN).max(cltt_a.unwrap_or(i64::MIN));
        let changed_b = since_b.unwrap_or(i64::MIN).max(cltt_b.unwrap_or(i64::MIN));
        let observed = |r: &Record, shift: i64| (r.observed != 0).then(|| at(r.observed, shift));
        // Local data beats REMOTE between two servers' reports of an address (§7.6 is about a binding heard from
        // several servers). Between two reports of one server the flag only says where that server learned
        // the binding: a server on a shared store reports another's new lease as REMOTE, and that must not
        // lose to the AVAILABLE its own Bulk seed reported a moment before, in the same second.
        let remote = |r: &Record| if self.server == other.server { 0 } else { r.flags & REMOTE };
        primary
            .then_with(|| remote(other).cmp(&remote(self)))
            .then_with(|| changed_a.cmp(&changed_b))
            .then_with(|| (self.flags & LIVE).cmp(&(other.flags & LIVE)))
            .then_with(|| observed(self, mine).cmp(&observed(other, theirs)))
    }

    /// Append the persisted form.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        for v in [self.state_since, self.expires_at, self.cltt, self.observed] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&[self.htype, self.state, self.flags, self.hw_len]);
        out.extend_from_slice(&self.server.to_be_bytes());
        out.extend_from_slice(self.hw());
        out.extend_from_slice(self.extra.as_deref().unwrap_or_default());
    }

    /// Read the persisted form; `None` if it is not one.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < FIXED {
            return None;
        }
        let u = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let (htype, state, flags, hw_len) = (b[16], b[17], b[18], b[19]);
        let server = u16::from_be_bytes([b[20], b[21]]);
        let hw_end = FIXED + usize::from(hw_len);
        if hw_len > 16 || b.len() < hw_end || DhcpState::from_code(state).is_none() {
            return None;
        }
        let mut hw = [0u8; 16];
        hw[..usize::from(hw_len)].copy_from_slice(&b[FIXED..hw_end]);
        let extra = &b[hw_end..];
        Some(Self {
            state_since: u(0),
            expires_at: u(4),
            cltt: u(8),
            observed: u(12),
            hw,
            hw_len,
            htype,
            state,
            flags,
            server,
            extra: (!extra.is_empty()).then(|| extra.into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(state: DhcpState, since: u32, cltt: Option<u32>, remote: bool, observed: u32, via: Via) -> Record {
        let mut b = Binding::new(Ipv4Addr::new(10, 0, 0, 1), state, since);
        b.cltt = cltt;
        b.data_source = if remote { DataSource::REMOTE } else { DataSource::LOCAL };
        Record::new(&b, Some(observed), via, 0)
    }

    use DhcpState::*;

    #[test]
    fn blq_7_6_2_rule_1_later_cltt_wins() {
        let a = rec(Active, 100, Some(200), false, 300, Via::Active);
        let b = rec(Active, 150, Some(190), false, 400, Via::Active);
        assert_eq!(a.compare(&b), Ordering::Greater);
    }

    #[test]
    fn blq_7_6_2_rule_2_cltt_against_start_time_of_state() {
        let with = rec(Active, 100, Some(200), false, 0, Via::Bulk);
        let without = rec(Released, 250, None, false, 0, Via::Bulk);
        assert_eq!(without.compare(&with), Ordering::Greater);
        assert_eq!(with.compare(&without), Ordering::Less);
    }

    #[test]
    fn blq_7_6_2_rule_3_start_time_of_state_when_neither_has_cltt() {
        let a = rec(Available, 10, None, false, 0, Via::Bulk);
        let b = rec(Expired, 20, None, false, 0, Via::Bulk);
        assert_eq!(b.compare(&a), Ordering::Greater);
    }

    /// A start-time-of-state the server did not send (Kea omits option 153) decides nothing: rules 2 and 3
    /// fall through to the next rule instead of comparing against a time nobody sent.
    #[test]
    fn blq_7_6_2_an_absent_start_time_of_state_decides_nothing() {
        const UNKNOWN: u32 = Binding::STATE_SINCE_UNKNOWN;
        // Rule 3 without the other's time: undecided, so rule 4 (local beats remote, between two servers)
        // decides.
        let mut remote_known = rec(Active, 500, None, true, 0, Via::Bulk);
        remote_known.server = 1;
        let local_unknown = rec(Active, UNKNOWN, None, false, 0, Via::Bulk);
        assert_eq!(local_unknown.compare(&remote_known), Ordering::Greater);
        // Rule 2 without the other's start-time-of-state: undecided too.
        let mut with_cltt = rec(Active, 100, Some(200), true, 0, Via::Bulk);
        with_cltt.server = 1;
        assert_eq!(local_unknown.compare(&with_cltt), Ordering::Greater);
        // Two unknowns from one server tie on time; the later observation wins.
        let (a, b) =
            (rec(Active, UNKNOWN, None, false, 10, Via::Bulk), rec(Active, UNKNOWN, None, false, 20, Via::Bulk));
        assert_eq!(b.compare(&a), Ordering::Greater);
    }

    #[test]
    fn blq_7_6_2_rule_4_local_beats_remote_when_times_tie() {
        // Two servers' reports of the address.
        let local = rec(Active, 100, Some(200), false, 200, Via::Bulk);
        let mut remote = rec(Active, 100, Some(200), true, 900, Via::Active);
        remote.server = 1;
        assert_eq!(local.compare(&remote), Ordering::Greater);
        // One server's reports: the flag decides nothing, the stream over the snapshot does.
        remote.server = 0;
        assert_eq!(local.compare(&remote), Ordering::Less);
    }

    #[test]
    fn blq_7_6_3_other_information_breaks_remaining_ties() {
        // Same CLTT: the expiry (a later start-time-of-state) is newer than the lease it ended.
        let active = rec(Active, 100, Some(200), false, 200, Via::Active);
        let expired = rec(Expired, 300, Some(200), false, 300, Via::Active);
        assert_eq!(expired.compare(&active), Ordering::Greater);
        // All times equal: the Active stream over a Bulk snapshot even if the snapshot's message is later,
        // then the later observation.
        let live = rec(Active, 100, Some(200), false, 200, Via::Active);
        let snapshot = rec(Available, 200, None, false, 201, Via::Bulk);
        assert_eq!(live.compare(&snapshot), Ordering::Greater);
        // Unless the Active record came before the Bulk query was asked for: then the snapshot is newer.
        let mut settled = live.clone();
        settled.settle();
        assert_eq!(settled.compare(&snapshot), Ordering::Less);
        let later = rec(Active, 100, Some(200), false, 201, Via::Active);
        assert_eq!(later.compare(&live), Ordering::Greater);
        let early = live;
        assert_eq!(early.compare(&early.clone()), Ordering::Equal);
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let mut b = Binding::new(Ipv4Addr::new(10, 0, 0, 9), Active, 1000);
        b.htype = 1;
        b.hardware_address = vec![2, 0, 0, 0, 0, 9];
        b.client_id = Some(vec![1, 2, 0, 0, 0, 0, 9]);
        b.expires_at = Some(4600);
        b.cltt = Some(1000);
        b.relay_agent_info = Some(vec![2, 3, b'r', b'i', b'd']);
        b.options = vec![(12, b"host".to_vec())];
        b.reserved_for = Some("printer".into());
        b.data_source = DataSource::REMOTE;
        let r = Record::new(&b, Some(1001), Via::Active, 3);
        let mut bytes = Vec::new();
        r.encode(&mut bytes);
        let back = Record::decode(&bytes).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.binding(b.ip), b);
        assert_eq!(back.server, 3);
        assert!(Record::decode(&bytes[..10]).is_none());
        let mut bad = bytes.clone();
        bad[19] = 17;
        assert!(Record::decode(&bad).is_none(), "hardware length over 16");
    }

    #[test]
    fn the_record_stays_small() {
        assert!(std::mem::size_of::<Record>() <= 56, "{}", std::mem::size_of::<Record>());
    }
}
