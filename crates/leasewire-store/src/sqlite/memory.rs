//! The in-memory copy of the store: every current record in a compact encoding, plus the indexes that
//! serve lookups and scans (by address, by sequence number, and by the four lookup keys).
//!
//! SQLite is the durable form (one row per address, no secondary index); this is what reads are served
//! from. The writer thread is its only mutator and applies a group's changes only after the group's
//! transaction is durable, so readers never see a change that could still be lost.
//!
//! Memory: a record is one heap block (~20 octets of fixed fields plus the variable ones) in a
//! `BTreeMap` by address; the sequence index holds 16 octets per record; each lookup key is one `u64` in a
//! `BTreeSet` (32 bits of a keyed hash of the key, then the address), so a key lookup yields candidate
//! addresses in address order and is confirmed against the record itself (a hash collision only costs a
//! comparison).
//!
//! The records are in the compact encoding of `crate::packed` (behind a tag that marks a row that could not
//! be read), and a server's engine holds the same blocks: [`Mem::packed`] hands them out by reference.

use crate::packed::{Packed, Unreadable, View};
use crate::scan::{ScanFilter, ScanKey};
use crate::{Binding, BindingChange};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// One current record: its latest change's sequence number and time, and the binding, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rec {
    pub seq: u64,
    pub time: u32,
    /// `OK` then the fields (see `crate::packed`), or `DAMAGED` then a UTF-8 description of what is wrong with
    /// the row in the file (reads of it fail with `StoreError::Corrupt`). Shared, so a read copies a
    /// reference under the lock and decodes after releasing it.
    pub data: Arc<[u8]>,
}

/// A record found by a read, taken out of the lock undecoded.
pub(crate) struct Hit {
    ip: u32,
    seq: u64,
    time: u32,
    data: Arc<[u8]>,
}

impl Hit {
    fn new(ip: u32, rec: &Rec) -> Self {
        Self { ip, seq: rec.seq, time: rec.time, data: rec.data.clone() }
    }

    pub(crate) fn decode(&self) -> Result<BindingChange, ReadError> {
        let ip = Ipv4Addr::from(self.ip);
        let view = View::parse(&self.data).map_err(|e| read_error(ip, e))?;
        let binding = view.binding(ip).ok_or_else(|| read_error(ip, Unreadable::Malformed))?;
        Ok(BindingChange { seq: self.seq, time: self.time, binding })
    }
}

/// Decode what a read found (outside the lock).
pub(crate) fn decode(hits: Vec<Hit>) -> Result<Vec<BindingChange>, ReadError> {
    hits.iter().map(Hit::decode).collect()
}

/// The four lookup-key indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Hardware = 0,
    ClientId = 1,
    RemoteId = 2,
    RelayId = 3,
}

/// The 32-bit keyed hashes of a record's lookup keys, by [`KeyKind`].
pub(crate) type Keys = [Option<u32>; 4];

/// Hashes lookup keys. The key is random per process, so clients cannot choose colliding keys on purpose.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyHasher(RandomState);

impl KeyHasher {
    fn hash(&self, kind: KeyKind, extra: u8, bytes: &[u8]) -> u32 {
        let h = self.0.hash_one((kind as u8, extra, bytes));
        (h >> 32) as u32 ^ h as u32
    }

    pub(crate) fn hardware(&self, htype: u8, addr: &[u8]) -> Option<u32> {
        (!addr.is_empty()).then(|| self.hash(KeyKind::Hardware, htype, addr))
    }

    pub(crate) fn of(&self, kind: KeyKind, id: &[u8]) -> u32 {
        self.hash(kind, 0, id)
    }

    /// The keys of a binding.
    pub(crate) fn keys_of_binding(&self, b: &Binding) -> Keys {
        [
            self.hardware(b.htype, &b.hardware_address),
            b.client_id.as_deref().map(|id| self.of(KeyKind::ClientId, id)),
            b.remote_id().map(|id| self.of(KeyKind::RemoteId, id)),
            b.relay_id().map(|id| self.of(KeyKind::RelayId, id)),
        ]
    }

    /// The keys of an encoded record (none for a damaged one).
    pub(crate) fn keys_of(&self, data: &[u8]) -> Keys {
        let Ok(v) = View::parse(data) else { return [None; 4] };
        let rai = v.relay_agent();
        [
            self.hardware(v.htype, v.hw),
            v.client_id.map(|id| self.of(KeyKind::ClientId, id)),
            rai.as_ref().and_then(|r| r.remote_id()).map(|id| self.of(KeyKind::RemoteId, id)),
            rai.as_ref().and_then(|r| r.relay_id()).map(|id| self.of(KeyKind::RelayId, id)),
        ]
    }

    /// The index and hash to scan for a scan key; `None` for [`ScanKey::All`], `Some(None)` for a key that
    /// matches nothing (an empty hardware address).
    fn of_scan_key(&self, key: &ScanKey) -> Option<Option<(KeyKind, u32)>> {
        Some(match key {
            ScanKey::All => return None,
            ScanKey::RelayId(id) => Some((KeyKind::RelayId, self.of(KeyKind::RelayId, id))),
            ScanKey::RemoteId(id) => Some((KeyKind::RemoteId, self.of(KeyKind::RemoteId, id))),
            ScanKey::ClientId(id) => Some((KeyKind::ClientId, self.of(KeyKind::ClientId, id))),
            ScanKey::HardwareAddress { htype, addr } => self.hardware(*htype, addr).map(|h| (KeyKind::Hardware, h)),
        })
    }
}

fn entry(hash: u32, ip: u32) -> u64 {
    u64::from(hash) << 32 | u64::from(ip)
}

/// A change for [`Mem::apply`], prepared by the writer outside the lock.
pub(crate) enum Op {
    Put { ip: u32, rec: Rec, keys: Keys },
    Remove { ip: u32 },
}

/// Why a read failed; the store turns it into a `StoreError` naming the file.
pub(crate) struct ReadError {
    pub ip: Ipv4Addr,
    pub detail: String,
}

fn read_error(ip: Ipv4Addr, e: Unreadable) -> ReadError {
    let detail = match e {
        Unreadable::Damaged(d) => d,
        Unreadable::Malformed => "malformed in-memory record".into(),
    };
    ReadError { ip, detail }
}

/// The current records and their indexes.
#[derive(Debug, Default)]
pub(crate) struct Mem {
    records: BTreeMap<u32, Rec>,
    /// seq -> (address, time) of every record's latest change.
    by_seq: BTreeMap<u64, (u32, u32)>,
    keys: [BTreeSet<u64>; 4],
    hasher: KeyHasher,
}

/// Builds a [`Mem`] from rows in address order (the load at open).
pub(crate) struct Loader {
    records: Vec<(u32, Rec)>,
    by_seq: Vec<(u64, (u32, u32))>,
    keys: [Vec<u64>; 4],
    hasher: KeyHasher,
}

impl Loader {
    pub(crate) fn new(hasher: KeyHasher) -> Self {
        Self { records: Vec::new(), by_seq: Vec::new(), keys: Default::default(), hasher }
    }

    /// Add a record; addresses must come in ascending order.
    pub(crate) fn push(&mut self, ip: u32, rec: Rec, keys: Keys) {
        for (index, key) in self.keys.iter_mut().zip(keys) {
            if let Some(h) = key {
                index.push(entry(h, ip));
            }
        }
        self.by_seq.push((rec.seq, (ip, rec.time)));
        self.records.push((ip, rec));
    }

    pub(crate) fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    /// The finished state, or the first sequence number two records share (a damaged file).
    pub(crate) fn finish(mut self) -> Result<Mem, u64> {
        self.by_seq.sort_unstable_by_key(|e| e.0);
        if let Some(w) = self.by_seq.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(w[0].0);
        }
        let keys = self.keys.map(|mut v| {
            v.sort_unstable();
            v.into_iter().collect()
        });
        Ok(Mem {
            records: self.records.into_iter().collect(),
            by_seq: self.by_seq.into_iter().collect(),
            keys,
            hasher: self.hasher,
        })
    }
}

impl Mem {
    /// The number of records.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn get(&self, ip: Ipv4Addr) -> Option<Hit> {
        let ip = u32::from(ip);
        self.records.get(&ip).map(|rec| Hit::new(ip, rec))
    }

    /// Records whose `key` is `key`, at addresses above `after`, in address order, passing `keep`; at most
    /// `limit`.
    fn by_index(
        &self,
        kind: KeyKind,
        hash: u32,
        key: &ScanKey,
        after: Option<u32>,
        limit: usize,
        keep: impl Fn(&Rec) -> bool,
    ) -> Vec<Hit> {
        let from = match after {
            Some(u32::MAX) => return Vec::new(),
            Some(ip) => entry(hash, ip + 1),
            None => entry(hash, 0),
        };
        let mut out = Vec::new();
        for &e in self.keys[kind as usize].range(from..=entry(hash, u32::MAX)) {
            if out.len() == limit {
                break;
            }
            let ip = e as u32;
            let Some(rec) = self.records.get(&ip) else { continue };
            // A hash collision, or outside the window. Damaged records are in no key index.
            if keep(rec) && View::parse(&rec.data).is_ok_and(|v| v.has_key(key)) {
                out.push(Hit::new(ip, rec));
            }
        }
        out
    }

    /// Up to `limit` readable records at addresses above `after`, in address order, by reference; `Err` with
    /// the address of a damaged record met on the way.
    pub(crate) fn packed(&self, after: Option<u32>, limit: usize) -> Result<Vec<(Ipv4Addr, Packed)>, u32> {
        let range = match after {
            Some(u32::MAX) => return Ok(Vec::new()),
            Some(ip) => self.records.range(ip + 1..),
            None => self.records.range(..),
        };
        range
            .take(limit)
            .map(|(&ip, rec)| Packed::of_record(&rec.data).map(|p| (Ipv4Addr::from(ip), p)).ok_or(ip))
            .collect()
    }

    /// Every record with this key, newest change first.
    pub(crate) fn lookup(&self, key: &ScanKey) -> Vec<Hit> {
        let Some(Some((kind, hash))) = self.hasher.of_scan_key(key) else { return Vec::new() };
        let mut out = self.by_index(kind, hash, key, None, usize::MAX, |_| true);
        out.sort_unstable_by_key(|h| std::cmp::Reverse(h.seq));
        out
    }

    pub(crate) fn scan(&self, filter: &ScanFilter, after: Option<Ipv4Addr>, limit: usize) -> Vec<Hit> {
        let lo = filter.changed_on_or_after.unwrap_or(0);
        let hi = filter.changed_on_or_before.unwrap_or(u32::MAX);
        if limit == 0 || lo > hi {
            return Vec::new();
        }
        // The commit time first (no decoding); the binding's own times only for records it leaves out.
        let in_window = |rec: &Rec| {
            (lo <= rec.time && rec.time <= hi)
                || View::parse(&rec.data).is_ok_and(|v| filter.in_window(rec.time, v.times[0], v.cltt()))
        };
        let after = after.map(u32::from);
        match self.hasher.of_scan_key(&filter.key) {
            Some(None) => Vec::new(),
            Some(Some((kind, hash))) => self.by_index(kind, hash, &filter.key, after, limit, in_window),
            None => {
                let range = match after {
                    Some(u32::MAX) => return Vec::new(),
                    Some(ip) => self.records.range(ip + 1..),
                    None => self.records.range(..),
                };
                range.filter(|(_, rec)| in_window(rec)).take(limit).map(|(&ip, rec)| Hit::new(ip, rec)).collect()
            }
        }
    }

    /// The smallest seq among records whose latest change is at or after `time`.
    ///
    /// Times are non-decreasing in seq order, so those records are exactly the ones from some seq on: a
    /// binary search over the sequence numbers, probing the seq index, O(log² n).
    pub(crate) fn first_seq_since(&self, time: u32) -> Option<u64> {
        let at = |seq: u64| self.by_seq.range(seq..).next().map(|(&s, &(_, t))| (s, t));
        let (mut lo, first_time) = at(0)?;
        if first_time >= time {
            return Some(lo);
        }
        let mut hi = self.by_seq.last_key_value().map_or(lo, |(&s, _)| s.saturating_add(1));
        let mut found = None;
        // Invariant: every record with seq < lo changed before `time`; `found` is the smallest seq known
        // to have changed at or after it, and no record lies in [hi, found) that we have not seen.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match at(mid) {
                Some((seq, t)) if t >= time => {
                    found = Some(seq);
                    hi = mid;
                }
                Some((seq, _)) => lo = seq + 1,
                None => hi = mid,
            }
        }
        found
    }

    /// Up to `limit` records in seq order from seq `from` on, keeping those changed at or after `time`.
    pub(crate) fn changes_from(&self, from: u64, time: u32, limit: usize) -> Vec<Hit> {
        self.by_seq
            .range(from..)
            .filter(|(_, (_, t))| *t >= time)
            .filter_map(|(_, &(ip, _))| self.records.get(&ip).map(|rec| Hit::new(ip, rec)))
            .take(limit)
            .collect()
    }

    /// Records changed before `cutoff`, oldest change first, that pass `pick`; at most `limit`.
    pub(crate) fn oldest_before(&self, cutoff: u32, limit: usize, pick: impl Fn(&View<'_>, u32) -> bool) -> Vec<u32> {
        let mut out = Vec::new();
        for &(ip, t) in self.by_seq.values() {
            if out.len() >= limit || t >= cutoff {
                break;
            }
            let Some(rec) = self.records.get(&ip) else { continue };
            if View::parse(&rec.data).is_ok_and(|v| pick(&v, t)) {
                out.push(ip);
            }
        }
        out
    }

    /// Apply durable changes in order.
    pub(crate) fn apply(&mut self, ops: impl IntoIterator<Item = Op>) {
        for op in ops {
            match op {
                Op::Put { ip, rec, keys } => {
                    self.by_seq.insert(rec.seq, (ip, rec.time));
                    let old = self.records.insert(ip, rec);
                    let old_keys = match &old {
                        Some(old) => {
                            self.by_seq.remove(&old.seq);
                            self.hasher.keys_of(&old.data)
                        }
                        None => [None; 4],
                    };
                    if old_keys != keys {
                        for ((index, old), new) in self.keys.iter_mut().zip(old_keys).zip(keys) {
                            if old != new {
                                if let Some(h) = old {
                                    index.remove(&entry(h, ip));
                                }
                                if let Some(h) = new {
                                    index.insert(entry(h, ip));
                                }
                            }
                        }
                    }
                }
                Op::Remove { ip } => {
                    if let Some(old) = self.records.remove(&ip) {
                        self.by_seq.remove(&old.seq);
                        for (index, key) in self.keys.iter_mut().zip(self.hasher.keys_of(&old.data)) {
                            if let Some(h) = key {
                                index.remove(&entry(h, ip));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Every index entry agrees with the records (for tests).
    #[cfg(test)]
    pub(crate) fn check_consistent(&self) {
        assert_eq!(self.by_seq.len(), self.records.len());
        let mut keys: [BTreeSet<u64>; 4] = Default::default();
        for (&ip, rec) in &self.records {
            assert_eq!(self.by_seq.get(&rec.seq), Some(&(ip, rec.time)));
            for (index, key) in keys.iter_mut().zip(self.hasher.keys_of(&rec.data)) {
                if let Some(h) = key {
                    index.insert(entry(h, ip));
                }
            }
        }
        assert_eq!(keys, self.keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packed::{damaged, encode_binding};
    use leasewire_proto::{DataSource, DhcpState, RelayAgentInfoBuilder};

    #[test]
    fn records_round_trip_and_expose_their_keys() {
        let ip = Ipv4Addr::new(10, 1, 2, 3);
        let mut b = Binding::new(ip, DhcpState::Active, 100);
        let bare = b.clone();
        b.htype = 1;
        b.hardware_address = vec![1, 2, 3, 4, 5, 6];
        b.client_id = Some(vec![]);
        b.expires_at = Some(0);
        b.cltt = Some(7);
        b.relay_agent_info = Some(RelayAgentInfoBuilder::new().remote_id(b"rem").relay_id(b"rel").build());
        b.data_source = DataSource::REMOTE;
        b.options = vec![(12, vec![b'h'; 300]), (60, vec![])];
        b.reserved_for = Some("res".into());
        let h = KeyHasher::default();
        for b in [bare, b] {
            let (data, _) = encode_binding(&b);
            let view = View::parse(&data).ok().unwrap();
            assert_eq!(view.binding(ip).as_ref(), Some(&b));
            assert_eq!(h.keys_of(&data), h.keys_of_binding(&b));
        }
        assert!(matches!(View::parse(&damaged("bad state")), Err(Unreadable::Damaged(d)) if d == "bad state"));
        assert_eq!(h.keys_of(&damaged("x")), [None; 4]);
    }
}
