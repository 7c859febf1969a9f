//! UDP leasequery on a shared (PostgreSQL) store, answered from memory: a local view of every current record,
//! kept by the server from what it already has in sequence order — the store's change feed (every server's
//! commits) and its own commits as they complete — instead of a database round trip per query.
//!
//! Why not the store's lookups: each is a query on the database (a round trip, a pooled connection, a task on
//! the store's runtime), which bounds UDP leasequery far below the embedded store's in-memory lookups. Why here
//! and not in the store: the server already receives every change in order (`DhcpService::follow`), so the
//! view costs no second LISTEN connection, and the store's own lookups stay the database's word, which a
//! server re-reading an address after a refused commit needs.
//!
//! What it answers may be behind the database by the change feed's latency for another server's commits
//! (about a millisecond, BENCHMARKS.md); this server's own commits are in it before their ACK leaves. Records
//! another server forgot are pruned by the same rule the database forgets by (`forget_expired`), when this
//! server's retention pass runs.

use super::leasequery::Lookups;
use leasewire_store::{BindingChange, StoreError, forgettable};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::RwLock;

/// The records and the lookup keys RFC 4388 / RFC 6148 queries use.
#[derive(Debug, Default)]
struct Tables {
    by_ip: HashMap<Ipv4Addr, BindingChange>,
    hardware: HashMap<(u8, Vec<u8>), HashSet<Ipv4Addr>>,
    client_id: HashMap<Vec<u8>, HashSet<Ipv4Addr>>,
    remote_id: HashMap<Vec<u8>, HashSet<Ipv4Addr>>,
}

/// The keys of one record, for the indexes.
struct Keys {
    hardware: Option<(u8, Vec<u8>)>,
    client_id: Option<Vec<u8>>,
    remote_id: Option<Vec<u8>>,
}

impl Keys {
    fn of(c: &BindingChange) -> Self {
        let b = &c.binding;
        Self {
            hardware: (!b.hardware_address.is_empty()).then(|| (b.htype, b.hardware_address.clone())),
            client_id: b.client_id.clone(),
            remote_id: b.remote_id().map(<[u8]>::to_vec),
        }
    }
}

fn unindex<K: std::hash::Hash + Eq>(map: &mut HashMap<K, HashSet<Ipv4Addr>>, key: Option<K>, ip: Ipv4Addr) {
    if let Some(k) = key
        && let Some(set) = map.get_mut(&k)
    {
        set.remove(&ip);
        if set.is_empty() {
            map.remove(&k);
        }
    }
}

fn index<K: std::hash::Hash + Eq>(map: &mut HashMap<K, HashSet<Ipv4Addr>>, key: Option<K>, ip: Ipv4Addr) {
    if let Some(k) = key {
        map.entry(k).or_default().insert(ip);
    }
}

impl Tables {
    fn remove(&mut self, ip: Ipv4Addr) {
        if let Some(old) = self.by_ip.remove(&ip) {
            let k = Keys::of(&old);
            unindex(&mut self.hardware, k.hardware, ip);
            unindex(&mut self.client_id, k.client_id, ip);
            unindex(&mut self.remote_id, k.remote_id, ip);
        }
    }

    /// Take a change unless the view already holds this address at the same or a later sequence number (own
    /// commits arrive twice: at completion and through the feed).
    fn apply(&mut self, c: &BindingChange) {
        let ip = c.binding.ip;
        if self.by_ip.get(&ip).is_some_and(|old| old.seq >= c.seq) {
            return;
        }
        self.remove(ip);
        let k = Keys::of(c);
        index(&mut self.hardware, k.hardware, ip);
        index(&mut self.client_id, k.client_id, ip);
        index(&mut self.remote_id, k.remote_id, ip);
        self.by_ip.insert(ip, c.clone());
    }

    /// The records of these addresses, newest change first (as the store's lookups answer).
    fn newest_first(&self, ips: Option<&HashSet<Ipv4Addr>>) -> Vec<BindingChange> {
        let mut out: Vec<BindingChange> =
            ips.into_iter().flatten().filter_map(|ip| self.by_ip.get(ip).cloned()).collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.seq));
        out
    }
}

/// A shared store's records in memory, for the point lookups of UDP leasequery ([`Lookups`]); everything
/// else goes to the store itself.
#[derive(Default)]
pub(crate) struct SharedView {
    tables: RwLock<Tables>,
}

impl std::fmt::Debug for SharedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedView").field("records", &self.read().by_ip.len()).finish_non_exhaustive()
    }
}

impl SharedView {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        self.tables.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Committed changes, in sequence order (the initial load, a feed batch, an own commit).
    pub(crate) fn apply<'a>(&self, changes: impl IntoIterator<Item = &'a BindingChange>) {
        let mut t = self.write();
        changes.into_iter().for_each(|c| t.apply(c));
    }

    /// Records this server's forget removed, unless the address changed since.
    pub(crate) fn forgotten(&self, removed: &[BindingChange]) {
        let mut t = self.write();
        for r in removed {
            if t.by_ip.get(&r.binding.ip).is_some_and(|c| c.seq == r.seq) {
                t.remove(r.binding.ip);
            }
        }
    }

    /// Drop what the database forgets by its own rule ([`forgettable`], as `forget_expired` applies it): another
    /// server may have forgotten them, which the change feed does not carry.
    pub(crate) fn prune(&self, now: u32, retention_secs: u32) {
        let mut t = self.write();
        let old: Vec<Ipv4Addr> = t
            .by_ip
            .values()
            .filter(|c| forgettable(Some(c.binding.state), c.time, c.binding.expires_at, now, retention_secs))
            .map(|c| c.binding.ip)
            .collect();
        old.into_iter().for_each(|ip| t.remove(ip));
    }
}

impl Lookups for SharedView {
    fn get(&self, ip: Ipv4Addr) -> Result<Option<BindingChange>, StoreError> {
        Ok(self.read().by_ip.get(&ip).cloned())
    }

    fn by_hardware_address(&self, htype: u8, addr: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        let t = self.read();
        Ok(t.newest_first(t.hardware.get(&(htype, addr.to_vec()))))
    }

    fn by_client_id(&self, client_id: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        let t = self.read();
        Ok(t.newest_first(t.client_id.get(client_id)))
    }

    fn by_remote_id(&self, remote_id: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        let t = self.read();
        Ok(t.newest_first(t.remote_id.get(remote_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasewire_proto::{DhcpState, RelayAgentInfoBuilder};
    use leasewire_store::Binding;

    fn change(seq: u64, ip: u8, mac: u8, state: DhcpState, time: u32) -> BindingChange {
        let mut b = Binding::new(Ipv4Addr::new(10, 0, 0, ip), state, time);
        b.htype = 1;
        b.hardware_address = vec![2, 0, 0, 0, 0, mac];
        b.client_id = Some(vec![1, mac]);
        b.relay_agent_info = Some(RelayAgentInfoBuilder::new().remote_id(&[mac]).relay_id(b"r1").build());
        BindingChange { seq, time, binding: b }
    }

    #[test]
    fn lookups_by_every_key_newest_first_and_an_older_change_never_replaces_a_newer() {
        let v = SharedView::default();
        v.apply(&[change(1, 1, 7, DhcpState::Active, 100), change(2, 2, 7, DhcpState::Active, 100)]);
        let ips = |cs: Vec<BindingChange>| cs.into_iter().map(|c| c.binding.ip.octets()[3]).collect::<Vec<_>>();
        assert_eq!(ips(v.by_hardware_address(1, &[2, 0, 0, 0, 0, 7]).unwrap()), [2, 1]);
        assert_eq!(ips(v.by_client_id(&[1, 7]).unwrap()), [2, 1]);
        assert_eq!(ips(v.by_remote_id(&[7]).unwrap()), [2, 1]);
        // Address 1 goes to another client: the old keys no longer find it.
        v.apply(&[change(3, 1, 8, DhcpState::Active, 101)]);
        assert_eq!(ips(v.by_hardware_address(1, &[2, 0, 0, 0, 0, 7]).unwrap()), [2]);
        assert_eq!(ips(v.by_client_id(&[1, 8]).unwrap()), [1]);
        // The feed repeats an own commit, or carries an older change: the newer record stays.
        v.apply(&[change(1, 1, 7, DhcpState::Active, 100)]);
        assert_eq!(v.get(Ipv4Addr::new(10, 0, 0, 1)).unwrap().unwrap().seq, 3);
    }

    #[test]
    fn forgotten_and_pruned_records_go_unless_they_changed_since() {
        let v = SharedView::default();
        v.apply(&[change(1, 1, 1, DhcpState::Released, 100), change(2, 2, 2, DhcpState::Released, 100)]);
        v.apply(&[change(3, 3, 3, DhcpState::Active, 100), change(4, 4, 4, DhcpState::Released, 1000)]);
        // A forget of address 1 as it was at seq 1 removes it; one of address 2 at an older seq does not.
        v.forgotten(&[change(1, 1, 1, DhcpState::Released, 100), change(0, 2, 2, DhcpState::Released, 90)]);
        assert!(v.get(Ipv4Addr::new(10, 0, 0, 1)).unwrap().is_none());
        assert!(v.get(Ipv4Addr::new(10, 0, 0, 2)).unwrap().is_some());
        // The database's rule: not ACTIVE and changed more than the retention ago.
        v.prune(1050, 600);
        let left: Vec<u8> =
            [2, 3, 4].into_iter().filter(|i| v.get(Ipv4Addr::new(10, 0, 0, *i)).unwrap().is_some()).collect();
        assert_eq!(left, [3, 4], "released long ago: gone; ACTIVE or recent: kept");
        assert!(v.by_hardware_address(1, &[2, 0, 0, 0, 0, 2]).unwrap().is_empty(), "its keys went with it");
    }
}
