//! The engine's in-memory view of the lease database: every binding record, indexed by client, plus offers,
//! timers and per-subnet address allocation. The store is the durable truth; this mirrors it so decisions take
//! microseconds and never wait on disk.
//!
//! Memory: a record is a [`Packed`] block, the same one the SQLite store keeps for the address when the
//! table was loaded from it (`LeaseStore::scan_packed` hands them out by reference), in a `BTreeMap` by
//! address (about 21 octets per record when built in one pass); the by-client index holds 12 octets per
//! client (a hash of the client's key, the subnet, the address), confirmed against the record itself, not a
//! copy of the key.

use super::{ClientKey, ClientRef, Port, reserved_for};
use crate::config::{ClassSet, PoolAccess, Subnet};
use leasewire_proto::DhcpState;
use leasewire_store::{Binding, Packed};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::net::Ipv4Addr;

/// An address promised to a client by DHCPOFFER, not (by default) committed.
#[derive(Debug, Clone)]
struct Offer {
    client: ClientKey,
    until: u32,
    /// Where the DISCOVER came from, for the per-relay and per-circuit limits.
    origin: Origin,
}

/// Where a client is attached: the relay (giaddr, or unspecified for a directly connected client) and the
/// circuit (option 82 circuit-id, or the receiving interface for a direct client). What a DISCOVER flood
/// with random hardware addresses cannot vary, unlike the client identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// giaddr.
    pub relay: Ipv4Addr,
    /// circuit-id, or the interface name.
    pub circuit: Vec<u8>,
}

/// Allocation state of one configured pool (one range of addresses).
#[derive(Debug)]
struct Range {
    lo: u32,
    hi: u32,
    /// Who may have its addresses (client classes).
    access: PoolAccess,
    /// The next never-used address to try.
    next: u32,
    /// How many never-used addresses are left to try: the walk starts `start_at` of the way into the range,
    /// runs to its end and wraps around to its start.
    left: u64,
    /// Addresses that were used and became free, oldest first: handed out only after never-used ones, so a
    /// returning client is likely to find its old address still free.
    recycled: VecDeque<u32>,
}

impl Range {
    fn new(lo: u32, hi: u32, access: PoolAccess, start_at: f64) -> Self {
        let size = u64::from(hi - lo) + 1;
        let skip = ((size as f64) * start_at.clamp(0.0, 1.0)) as u64 % size;
        Self { lo, hi, access, next: lo + skip as u32, left: size, recycled: VecDeque::new() }
    }

    fn contains(&self, a: u32) -> bool {
        (self.lo..=self.hi).contains(&a)
    }

    /// The next never-used candidate, advancing the walk.
    fn step(&mut self) -> Option<u32> {
        if self.left == 0 {
            return None;
        }
        let a = self.next;
        self.left -= 1;
        self.next = if a >= self.hi { self.lo } else { a + 1 };
        Some(a)
    }
}

/// Allocation state of one subnet: its pools, in address order.
#[derive(Debug, Default)]
struct Pool {
    ranges: Vec<Range>,
    excluded: HashSet<u32>,
    /// Reserved address -> reservation index.
    reserved: HashMap<u32, usize>,
}

impl Pool {
    fn range_of(&mut self, a: u32) -> Option<&mut Range> {
        self.ranges.iter_mut().find(|r| r.contains(a))
    }
}

/// The in-memory lease table.
#[derive(Debug, Default)]
pub struct Leases {
    /// Address -> record.
    records: BTreeMap<u32, Packed>,
    /// (hash of the client's key, subnet, address of the client's most recent binding in that subnet): at most
    /// one entry per client and subnet. A hash collision only costs a comparison with the record's client.
    by_client: BTreeSet<(u32, u32, u32)>,
    /// Keys the client hash; random per process, so clients cannot choose colliding keys on purpose.
    client_hasher: RandomState,
    offers: HashMap<Ipv4Addr, Offer>,
    /// client -> address offered to it, so a repeated DISCOVER finds its offer without a scan.
    offers_by_client: HashMap<ClientKey, Ipv4Addr>,
    /// (when, address) for leases and abandoned addresses that end; checked against the record when due.
    timers: BTreeSet<(u32, Ipv4Addr)>,
    offer_timers: BTreeSet<(u32, Ipv4Addr)>,
    /// Outstanding offers per circuit and per relay.
    offers_by_circuit: HashMap<Origin, usize>,
    offers_by_relay: HashMap<Ipv4Addr, usize>,
    pools: Vec<Pool>,
    /// Each subnet's network, to count a record where its address belongs whatever subnet a caller names.
    nets: Vec<ipnet::Ipv4Net>,
    /// Records per subnet (index `nets.len()`: outside every subnet) and dhcp-state code, kept with every
    /// change so the metrics read them in O(1) instead of walking the table.
    counts: Vec<StateCounts>,
}

/// Records per dhcp-state, indexed by the state's code (index 0 unused).
pub type StateCounts = [u32; 9];

impl Leases {
    /// An empty table for these subnets, handing out never-used addresses from the start of each pool.
    pub fn new(subnets: &[Subnet]) -> Self {
        Self::starting_at(subnets, 0.0)
    }

    /// An empty table whose allocation of never-used addresses starts `start_at` (0 ≤ x < 1) of the way into
    /// each pool and wraps around. Servers sharing one database start apart, so they rarely pick the same
    /// free address for different clients at the same moment (the database would refuse one of them).
    pub fn starting_at(subnets: &[Subnet], start_at: f64) -> Self {
        let pools = subnets
            .iter()
            .map(|s| Pool {
                ranges: s.pools.iter().map(|&(lo, hi)| Range::new(lo, hi, s.access_of((lo, hi)), start_at)).collect(),
                excluded: s.exclude.iter().map(|&a| u32::from(a)).collect(),
                reserved: s.reservations.iter().enumerate().map(|(i, r)| (u32::from(r.ip), i)).collect(),
            })
            .collect();
        let nets = subnets.iter().map(|s| s.net).collect();
        Self { pools, nets, counts: vec![[0; 9]; subnets.len() + 1], ..Default::default() }
    }

    /// Where an address is counted: its subnet's index, or the number of subnets when it is in none.
    pub fn slot_of(&self, ip: Ipv4Addr) -> usize {
        self.nets.iter().position(|n| n.contains(&ip)).unwrap_or(self.nets.len())
    }

    /// Records per state in a slot (see [`Leases::slot_of`]).
    pub fn counts(&self, slot: usize) -> StateCounts {
        self.counts.get(slot).copied().unwrap_or_default()
    }

    fn count(&mut self, ip: Ipv4Addr, state: DhcpState, up: bool) {
        let slot = self.slot_of(ip);
        if let Some(c) = self.counts.get_mut(slot).map(|c| &mut c[usize::from(state.code())]) {
            *c = if up { c.saturating_add(1) } else { c.saturating_sub(1) };
        }
    }

    /// Every record in address order, the table consumed (a reload re-files them under new subnets).
    pub fn into_records(self) -> impl Iterator<Item = (Ipv4Addr, Packed)> {
        self.records.into_iter().map(|(ip, p)| (Ipv4Addr::from(ip), p))
    }

    /// The record for an address.
    pub fn get(&self, ip: Ipv4Addr) -> Option<&Packed> {
        self.records.get(&u32::from(ip))
    }

    fn hash(&self, client: ClientRef<'_>) -> u32 {
        let h = self.client_hasher.hash_one(client);
        (h >> 32) as u32 ^ h as u32
    }

    /// The by-client entries of this client in a subnet: candidates by hash, kept if the record is the
    /// client's.
    fn client_entries<'s>(
        &'s self,
        hash: u32,
        subnet: u32,
        client: ClientRef<'s>,
    ) -> impl Iterator<Item = (u32, u32, u32)> + 's {
        // An open range and a prefix test: one descent of the tree instead of two.
        self.by_client
            .range((hash, subnet, 0)..)
            .take_while(move |e| (e.0, e.1) == (hash, subnet))
            .filter(move |e| self.records.get(&e.2).and_then(ClientRef::of) == Some(client))
            .copied()
    }

    /// The address of the client's current or most recent binding in a subnet.
    pub fn client_address(&self, subnet: usize, client: &ClientKey) -> Option<Ipv4Addr> {
        let client = client.as_ref();
        self.client_entries(self.hash(client), subnet as u32, client).next().map(|e| Ipv4Addr::from(e.2))
    }

    /// The address offered to this client and still held, if any.
    pub fn offered_to(&self, client: &ClientKey, subnets: &[Subnet], subnet: usize, now: u32) -> Option<Ipv4Addr> {
        let ip = *self.offers_by_client.get(client)?;
        let o = self.offers.get(&ip)?;
        (&o.client == client && o.until > now && subnets[subnet].net.contains(&ip)).then_some(ip)
    }

    fn remove_offer(&mut self, ip: Ipv4Addr) -> Option<Offer> {
        let o = self.offers.remove(&ip)?;
        if self.offers_by_client.get(&o.client) == Some(&ip) {
            self.offers_by_client.remove(&o.client);
        }
        self.uncount(&o.origin);
        Some(o)
    }

    fn uncount(&mut self, origin: &Origin) {
        for n in
            [self.offers_by_circuit.get_mut(origin), self.offers_by_relay.get_mut(&origin.relay)].into_iter().flatten()
        {
            *n = n.saturating_sub(1);
        }
        if self.offers_by_circuit.get(origin) == Some(&0) {
            self.offers_by_circuit.remove(origin);
        }
        if self.offers_by_relay.get(&origin.relay) == Some(&0) {
            self.offers_by_relay.remove(&origin.relay);
        }
    }

    /// Outstanding offers made to clients behind this circuit, and behind its relay.
    pub fn offers_from(&self, origin: &Origin) -> (usize, usize) {
        (
            self.offers_by_circuit.get(origin).copied().unwrap_or(0),
            self.offers_by_relay.get(&origin.relay).copied().unwrap_or(0),
        )
    }

    /// Fill an empty table from records in ascending address order, each address once (the load at start
    /// and after a reload): the same table as [`Leases::put`] of each in turn, built in one pass with
    /// compact maps. Records out of order fall back to one put each.
    pub fn load(&mut self, records: Vec<(Ipv4Addr, Packed)>, subnet_of: impl Fn(Ipv4Addr) -> Option<usize>) {
        if !self.records.is_empty() || !records.is_sorted_by(|a, b| a.0 < b.0) {
            for (ip, p) in records {
                self.insert(subnet_of(ip), ip, p);
            }
            return;
        }
        let (mut by_client, mut timers) = (Vec::with_capacity(records.len()), Vec::with_capacity(records.len()));
        for (ip, p) in &records {
            let (ip, state, subnet) = (*ip, p.state(), subnet_of(*ip));
            if let (Some(s), Some(k)) = (subnet, ClientRef::of(p)) {
                by_client.push((self.hash(k), s as u32, u32::from(ip)));
            }
            if let Some(t) = p.expires_at()
                && matches!(state, DhcpState::Active | DhcpState::Abandoned)
            {
                timers.push((t, ip));
            }
            if let Some(s) = subnet
                && matches!(state, DhcpState::Expired | DhcpState::Released | DhcpState::Available | DhcpState::Reset)
                && let Some(r) = self.pools[s].range_of(u32::from(ip))
            {
                r.recycled.push_back(u32::from(ip));
            }
            self.count(ip, state, true);
        }
        self.records = records.into_iter().map(|(ip, p)| (u32::from(ip), p)).collect();
        // One entry per client and subnet: of a client's records in a subnet, the one put would have left, its
        // latest (an ACTIVE one first, then the latest start of state; the address breaks ties). Entries sort
        // by (hash, subnet, address), so a client's are adjacent.
        by_client.sort_unstable();
        let rank = |a: u32| self.records.get(&a).map(|p| (p.state() == DhcpState::Active, p.state_since(), a));
        let mut keep = vec![true; by_client.len()];
        let mut start = 0;
        while start < by_client.len() {
            let e = by_client[start];
            let end = start + by_client[start..].iter().take_while(|n| (n.0, n.1) == (e.0, e.1)).count();
            // Almost every client is alone under its hash: nothing to compare, no record to look up (a
            // lookup in hash order is a cache miss).
            let group = if end - start > 1 { start..end } else { start..start };
            for i in group {
                let k = self.records.get(&by_client[i].2).and_then(ClientRef::of);
                let better = (start..end).any(|j| {
                    j != i
                        && self.records.get(&by_client[j].2).and_then(ClientRef::of) == k
                        && rank(by_client[j].2) > rank(by_client[i].2)
                });
                keep[i] = !better;
            }
            start = end;
        }
        let mut keep = keep.into_iter();
        by_client.retain(|_| keep.next().unwrap_or(true));
        self.by_client = by_client.into_iter().collect();
        timers.sort_unstable();
        self.timers = timers.into_iter().collect();
    }

    /// Record (or replace) a binding, keeping indexes and timers in step. `subnet` is the binding's subnet.
    pub fn put(&mut self, subnet: Option<usize>, b: &Binding) {
        self.insert(subnet, b.ip, Packed::new(b));
    }

    fn insert(&mut self, subnet: Option<usize>, ip: Ipv4Addr, p: Packed) {
        let a = u32::from(ip);
        let client = ClientRef::of(&p);
        if let Some(s) = subnet {
            let s = s as u32;
            // The address changes hands: its old client's entry for it goes.
            if let Some(old) = self.records.get(&a).and_then(ClientRef::of)
                && Some(old) != client
            {
                let h = self.hash(old);
                self.by_client.remove(&(h, s, a));
            }
            if let Some(k) = client {
                // The client's entry for its previous address in the subnet goes.
                let h = self.hash(k);
                let stale: Vec<_> = self.client_entries(h, s, k).filter(|e| e.2 != a).collect();
                for e in stale {
                    self.by_client.remove(&e);
                }
                self.by_client.insert((h, s, a));
            }
        }
        let state = p.state();
        if let Some(t) = p.expires_at()
            && matches!(state, DhcpState::Active | DhcpState::Abandoned)
        {
            self.timers.insert((t, ip));
        }
        if let Some(s) = subnet
            && matches!(state, DhcpState::Expired | DhcpState::Released | DhcpState::Available | DhcpState::Reset)
            && let Some(r) = self.pools[s].range_of(a)
        {
            r.recycled.push_back(a);
        }
        self.remove_offer(ip);
        self.count(ip, state, true);
        if let Some(old) = self.records.insert(a, p) {
            self.count(ip, old.state(), false);
        }
    }

    /// Forget a record (after the store forgot it).
    pub fn remove(&mut self, subnet: Option<usize>, ip: Ipv4Addr) {
        let a = u32::from(ip);
        let Some(old) = self.records.remove(&a) else { return };
        self.count(ip, old.state(), false);
        if let (Some(s), Some(k)) = (subnet, ClientRef::of(&old)) {
            let h = self.hash(k);
            self.by_client.remove(&(h, s as u32, a));
        }
    }

    /// Hold an address for a client until `until`.
    pub fn offer(&mut self, ip: Ipv4Addr, client: ClientKey, until: u32, origin: Origin) {
        if let Some(old) = self.offers_by_client.insert(client.clone(), ip)
            && old != ip
            && let Some(o) = self.offers.remove(&old)
        {
            self.uncount(&o.origin);
        }
        *self.offers_by_circuit.entry(origin.clone()).or_default() += 1;
        *self.offers_by_relay.entry(origin.relay).or_default() += 1;
        if let Some(replaced) = self.offers.insert(ip, Offer { client, until, origin }) {
            self.uncount(&replaced.origin);
        }
        self.offer_timers.insert((until, ip));
    }

    /// Drop a client's offer (it chose another server); the address is free again at once.
    pub fn withdraw_offer(&mut self, subnets: &[Subnet], client: &ClientKey) {
        if let Some(ip) = self.offers_by_client.get(client).copied() {
            self.remove_offer(ip);
            self.recycle(subnets, ip);
        }
    }

    /// Queue an address that may be free again for allocation.
    fn recycle(&mut self, subnets: &[Subnet], ip: Ipv4Addr) {
        if let Some(s) = subnets.iter().position(|s| s.net.contains(&ip))
            && let Some(r) = self.pools[s].range_of(u32::from(ip))
        {
            r.recycled.push_back(u32::from(ip));
        }
    }

    /// Whether `ip` could be given to `client` now: reserved for it, or in a pool its classes may use and not
    /// excluded; not reserved for someone else, not leased or offered to someone else, not abandoned.
    #[allow(clippy::too_many_arguments)]
    pub fn is_available(
        &self,
        subnets: &[Subnet],
        subnet: usize,
        ip: Ipv4Addr,
        client: &ClientKey,
        port: &Port<'_>,
        classes: &ClassSet,
        relayless: bool,
        now: u32,
    ) -> bool {
        let pool = &self.pools[subnet];
        let a = u32::from(ip);
        // A renewal unicast to the server (RFC 2131 §4.3.2) carries neither giaddr nor option 82, so a class
        // by relay cannot be evaluated for it: the client keeps its own lease rather than get a NAK at every
        // T1. Relayed and broadcast messages are checked in full, so a client whose classes changed still
        // moves at its next rebinding or restart.
        let own = relayless && self.records.get(&a).is_some_and(|p| p.state() == DhcpState::Active && client.is_of(p));
        if let Some(&r) = pool.reserved.get(&a) {
            if !reserved_for(&subnets[subnet].reservations[r], client, port) {
                return false;
            }
        } else if !pool.ranges.iter().any(|r| r.contains(a) && (own || r.access.admits(classes)))
            || pool.excluded.contains(&a)
        {
            return false;
        }
        if let Some(o) = self.offers.get(&ip)
            && o.until > now
            && &o.client != client
        {
            return false;
        }
        match self.records.get(&a) {
            None => true,
            Some(p) => match p.state() {
                DhcpState::Active => client.is_of(p),
                DhcpState::Abandoned | DhcpState::Remote | DhcpState::Transitioning => false,
                DhcpState::Available | DhcpState::Expired | DhcpState::Released | DhcpState::Reset => true,
            },
        }
    }

    /// Whether allocation for a client in `classes` tries pool `ri` in the round `own`: first (`own`) the pools
    /// whose `allow` names one of its classes, then the others open to it, each round in address order. A
    /// class's own pool fills before a shared one.
    fn in_round(&self, subnet: usize, ri: usize, classes: &ClassSet, own: bool) -> bool {
        let a = self.pools[subnet].ranges[ri].access;
        a.admits(classes) && a.allow.intersects(classes) == own
    }

    /// A free address for a new client, from the pools its classes may use (see
    /// [`Leases::in_round`]): never-used addresses first, then recycled ones, oldest first. Reserved addresses are never allocated (a reserved
    /// client gets its address by name, not from here), so the relay port plays no part.
    pub fn allocate(
        &mut self,
        subnets: &[Subnet],
        subnet: usize,
        client: &ClientKey,
        classes: &ClassSet,
        now: u32,
    ) -> Option<Ipv4Addr> {
        let rounds = |n: usize| [true, false].into_iter().flat_map(move |own| (0..n).map(move |ri| (own, ri)));
        let n = self.pools[subnet].ranges.len();
        for (own, ri) in rounds(n) {
            if !self.in_round(subnet, ri, classes, own) {
                continue;
            }
            while let Some(a) = self.pools[subnet].ranges[ri].step() {
                let ip = Ipv4Addr::from(a);
                let never_used = !self.records.contains_key(&a) && !self.pools[subnet].reserved.contains_key(&a);
                if never_used && self.is_available(subnets, subnet, ip, client, &Port::NONE, classes, false, now) {
                    return Some(ip);
                }
                // Skipped for good unless it was merely offered (the offer may lapse): then it comes back
                // through the recycled queue.
                if self.offers.contains_key(&ip) && never_used {
                    self.pools[subnet].ranges[ri].recycled.push_back(a);
                }
            }
        }
        for (own, ri) in rounds(n) {
            if !self.in_round(subnet, ri, classes, own) {
                continue;
            }
            let tries = self.pools[subnet].ranges[ri].recycled.len();
            for _ in 0..tries {
                let Some(a) = self.pools[subnet].ranges[ri].recycled.pop_front() else { break };
                let ip = Ipv4Addr::from(a);
                if self.pools[subnet].reserved.contains_key(&a) {
                    continue;
                }
                if self.is_available(subnets, subnet, ip, client, &Port::NONE, classes, false, now) {
                    return Some(ip);
                }
                // Still leased or offered: keep it queued if it may come free again.
                if self.offers.get(&ip).is_some_and(|o| o.until > now) {
                    self.pools[subnet].ranges[ri].recycled.push_back(a);
                }
            }
        }
        None
    }

    /// Bindings whose lease or abandonment ended at or before `now`; lapsed offers are dropped and their
    /// addresses queued for allocation again.
    pub fn due(&mut self, subnets: &[Subnet], now: u32) -> Vec<Binding> {
        while let Some(&(t, ip)) = self.offer_timers.first() {
            if t > now {
                break;
            }
            self.offer_timers.pop_first();
            if self.offers.get(&ip).is_some_and(|o| o.until <= now) {
                self.remove_offer(ip);
                self.recycle(subnets, ip);
            }
        }
        let mut out = Vec::new();
        while let Some(&(t, ip)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            if let Some(p) = self.records.get(&u32::from(ip))
                && p.expires_at() == Some(t)
                && matches!(p.state(), DhcpState::Active | DhcpState::Abandoned)
            {
                out.push(p.binding(ip));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_pass_load_builds_the_table_puts_in_address_order_would() {
        let config = crate::config::Config::parse(test_config!(
            r#"[[subnet]]
subnet = "10.0.0.0/24"
pools = [{ start = "10.0.0.100", end = "10.0.0.200" }]
[[subnet]]
subnet = "10.9.0.0/24"
pools = [{ start = "10.9.0.10", end = "10.9.0.20" }]
"#
        ))
        .unwrap();
        let subnets = &config.subnets;
        let subnet_of = |ip: Ipv4Addr| subnets.iter().position(|s| s.net.contains(&ip));
        let binding = |ip: [u8; 4], state, mac: u8, client_id: Option<&[u8]>| {
            let mut b = Binding::new(Ipv4Addr::from(ip), state, 100);
            (b.htype, b.hardware_address, b.client_id) = (1, vec![2, 0, 0, 0, 0, mac], client_id.map(<[u8]>::to_vec));
            b.expires_at = Some(700 + u32::from(ip[3]));
            b
        };
        let records = [
            // One client's released and then active record in one subnet: it is at the second.
            binding([10, 0, 0, 100], DhcpState::Released, 7, None),
            binding([10, 0, 0, 101], DhcpState::Active, 7, None),
            binding([10, 0, 0, 102], DhcpState::Expired, 8, None),
            binding([10, 0, 0, 103], DhcpState::Abandoned, 9, Some(b"cid")),
            // The same client in another subnet, and an address outside every subnet.
            binding([10, 9, 0, 10], DhcpState::Active, 7, None),
            binding([192, 168, 0, 1], DhcpState::Active, 10, None),
        ];
        let mut loaded = Leases::new(subnets);
        loaded.load(records.iter().map(|b| (b.ip, Packed::new(b))).collect(), subnet_of);
        let mut put = Leases::new(subnets);
        put.client_hasher = loaded.client_hasher.clone();
        for b in &records {
            put.put(subnet_of(b.ip), b);
        }
        assert_eq!(loaded.records, put.records);
        assert_eq!(loaded.by_client, put.by_client);
        assert_eq!(loaded.by_client.len(), 4, "one entry per client and subnet");
        assert_eq!(loaded.timers, put.timers);
        assert_eq!(loaded.counts, put.counts);
        assert_eq!(loaded.pools[0].ranges[0].recycled, put.pools[0].ranges[0].recycled);
        let mac7 = ClientKey::Hardware(1, vec![2, 0, 0, 0, 0, 7]);
        assert_eq!(loaded.client_address(0, &mac7), Some(Ipv4Addr::new(10, 0, 0, 101)));
        assert_eq!(loaded.client_address(1, &mac7), Some(Ipv4Addr::new(10, 9, 0, 10)));
        assert_eq!(loaded.client_address(0, &ClientKey::ClientId(b"cid".to_vec())), Some(Ipv4Addr::new(10, 0, 0, 103)));
        assert_eq!(loaded.client_address(0, &ClientKey::Hardware(1, vec![2, 0, 0, 0, 0, 9])), None, "client-id wins");

        // Out of order, the load falls back to one put each, in the order given.
        let mut reversed = Leases::new(subnets);
        reversed.load(records.iter().rev().map(|b| (b.ip, Packed::new(b))).collect(), subnet_of);
        assert_eq!(reversed.records, put.records);
        assert_eq!(reversed.client_address(0, &mac7), Some(Ipv4Addr::new(10, 0, 0, 100)), "the last one given");
    }

    #[test]
    fn a_range_walk_starts_where_asked_and_visits_every_address_once() {
        for (start_at, first) in [(0.0, 10), (0.5, 15), (0.99, 19), (0.999_999, 19)] {
            let mut r = Range::new(10, 19, PoolAccess::OPEN, start_at);
            let walk: Vec<u32> = std::iter::from_fn(|| r.step()).collect();
            assert_eq!(walk[0], first, "start {start_at}");
            let mut all = walk.clone();
            all.sort_unstable();
            assert_eq!(all, (10..=19).collect::<Vec<_>>(), "start {start_at}");
        }
        let mut one = Range::new(7, 7, PoolAccess::OPEN, 0.5);
        assert_eq!((one.step(), one.step()), (Some(7), None));
    }
}
