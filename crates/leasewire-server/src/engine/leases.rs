//! The engine's in-memory view of the lease database: every binding record, indexed by client, plus offers,
//! timers and per-subnet address allocation. The store is the durable truth; this mirrors it so decisions take
//! microseconds and never wait on disk.

use super::{ClientKey, Port, reserved_for};
use crate::config::{ClassSet, PoolAccess, Subnet};
use leasewire_proto::DhcpState;
use leasewire_store::Binding;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
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
    records: HashMap<Ipv4Addr, Binding>,
    /// (subnet, client) -> address of the client's most recent binding in that subnet.
    by_client: HashMap<(usize, ClientKey), Ipv4Addr>,
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

    /// Every record, the table consumed (a reload re-files them under new subnets).
    pub fn into_records(self) -> impl Iterator<Item = Binding> {
        self.records.into_values()
    }

    /// The record for an address.
    pub fn get(&self, ip: Ipv4Addr) -> Option<&Binding> {
        self.records.get(&ip)
    }

    /// The address of the client's current or most recent binding in a subnet.
    pub fn client_address(&self, subnet: usize, client: &ClientKey) -> Option<Ipv4Addr> {
        self.by_client.get(&(subnet, client.clone())).copied()
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

    /// Record (or replace) a binding, keeping indexes and timers in step. `subnet` is the binding's subnet.
    pub fn put(&mut self, subnet: Option<usize>, b: Binding) {
        if let Some(old) = self.records.get(&b.ip)
            && let Some(s) = subnet
            && let Some(k) = ClientKey::of_binding(old)
            && self.by_client.get(&(s, k.clone())) == Some(&b.ip)
            && ClientKey::of_binding(&b).as_ref() != Some(&k)
        {
            self.by_client.remove(&(s, k));
        }
        if let (Some(s), Some(k)) = (subnet, ClientKey::of_binding(&b)) {
            self.by_client.insert((s, k), b.ip);
        }
        if let Some(t) = b.expires_at
            && matches!(b.state, DhcpState::Active | DhcpState::Abandoned)
        {
            self.timers.insert((t, b.ip));
        }
        if let Some(s) = subnet
            && matches!(b.state, DhcpState::Expired | DhcpState::Released | DhcpState::Available | DhcpState::Reset)
            && let Some(r) = self.pools[s].range_of(u32::from(b.ip))
        {
            r.recycled.push_back(u32::from(b.ip));
        }
        self.remove_offer(b.ip);
        self.count(b.ip, b.state, true);
        if let Some(old) = self.records.insert(b.ip, b) {
            self.count(old.ip, old.state, false);
        }
    }

    /// Forget a record (after the store forgot it).
    pub fn remove(&mut self, subnet: Option<usize>, ip: Ipv4Addr) {
        let Some(old) = self.records.remove(&ip) else { return };
        self.count(ip, old.state, false);
        if let (Some(s), Some(k)) = (subnet, ClientKey::of_binding(&old))
            && self.by_client.get(&(s, k.clone())) == Some(&ip)
        {
            self.by_client.remove(&(s, k));
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
        now: u32,
    ) -> bool {
        let pool = &self.pools[subnet];
        let a = u32::from(ip);
        if let Some(&r) = pool.reserved.get(&a) {
            if !reserved_for(&subnets[subnet].reservations[r], client, port) {
                return false;
            }
        } else if !pool.ranges.iter().any(|r| r.contains(a) && r.access.admits(classes)) || pool.excluded.contains(&a) {
            return false;
        }
        if let Some(o) = self.offers.get(&ip)
            && o.until > now
            && &o.client != client
        {
            return false;
        }
        match self.records.get(&ip) {
            None => true,
            Some(b) => match b.state {
                DhcpState::Active => ClientKey::of_binding(b).as_ref() == Some(client),
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
                let never_used = !self.records.contains_key(&ip) && !self.pools[subnet].reserved.contains_key(&a);
                if never_used && self.is_available(subnets, subnet, ip, client, &Port::NONE, classes, now) {
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
                if self.is_available(subnets, subnet, ip, client, &Port::NONE, classes, now) {
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
            if let Some(b) = self.records.get(&ip)
                && b.expires_at == Some(t)
                && matches!(b.state, DhcpState::Active | DhcpState::Abandoned)
            {
                out.push(b.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
