//! The behaviour every `LeaseStore` backend must have, written against `&dyn LeaseStore` only, so a new
//! backend (PostgreSQL) runs the same suite by implementing [`Backend`].
#![allow(dead_code)]

pub mod fixtures;

use leasewire_proto::RelayAgentInfoBuilder;
use leasewire_store::{
    Binding, BindingChange, DataSource, DhcpState, LeaseStore, ScanFilter, ScanKey, StoreError, changed_since_pages,
    scan_pages,
};
use std::collections::HashSet;
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// A place to open stores: `open` must return the same persistent store each time (after the previous
/// handle was dropped), created with `now` if it does not exist yet.
pub trait Backend {
    fn open(&self, now: u32) -> Box<dyn LeaseStore>;
}

/// The time the tests pretend it is when a store is created.
pub const T0: u32 = 1_700_000_000;

pub fn ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + n)
}

pub fn mac(n: u32) -> Vec<u8> {
    let b = n.to_be_bytes();
    vec![0x02, 0x00, b[0], b[1], b[2], b[3]]
}

/// An ACTIVE lease of `ip(n)` to client `c`, behind relay `relay` with remote-id `remote`.
pub fn lease(n: u32, c: u32, relay: &[u8], remote: &[u8], since: u32) -> Binding {
    fixtures::active_lease(ip(n), mac(c), c, [b"eth0/1", remote, relay], since)
}

pub fn released(b: &Binding, since: u32) -> Binding {
    let mut b = b.clone();
    b.state = DhcpState::Released;
    b.state_since = since;
    b.expires_at = None;
    b
}

fn commit(store: &dyn LeaseStore, now: u32, bindings: Vec<Binding>) -> Vec<BindingChange> {
    store.commit(now, bindings).wait().expect("commit")
}

fn ips(changes: &[BindingChange]) -> Vec<Ipv4Addr> {
    changes.iter().map(|c| c.binding.ip).collect()
}

fn seqs(changes: &[BindingChange]) -> Vec<u64> {
    changes.iter().map(|c| c.seq).collect()
}

/// Every page of a scan, concatenated, checking each page is at most `page` long.
fn scan_all(store: &dyn LeaseStore, filter: &ScanFilter, page: usize) -> Vec<BindingChange> {
    let mut out: Vec<BindingChange> = Vec::new();
    for rows in scan_pages(store, filter.clone(), page) {
        let rows = rows.expect("scan");
        assert!(out.len() < 100_000, "scan paging does not advance");
        assert!(rows.len() <= page);
        out.extend(rows);
    }
    out
}

fn since_all(store: &dyn LeaseStore, time: u32, page: usize) -> Vec<BindingChange> {
    let mut out: Vec<BindingChange> = Vec::new();
    for rows in changed_since_pages(store, time, page) {
        assert!(out.len() < 100_000, "changed_since paging does not advance");
        out.extend(rows.expect("changed_since"));
    }
    out
}

pub fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

// ---------------------------------------------------------------------------------------------------------
// Commit, get, sequence and time.

pub fn commit_then_get_returns_every_field(backend: &dyn Backend) {
    let store = backend.open(T0);
    let mut b = lease(1, 1, b"relay-A", b"remote-1", T0);
    b.data_source = DataSource::REMOTE;
    b.reserved_for = Some("res-1".into());
    let mut bare = Binding::new(ip(2), DhcpState::Available, T0 - 50);
    bare.client_id = Some(Vec::new()); // present but empty is not absent
    let changes = commit(&*store, T0 + 5, vec![b.clone(), bare.clone()]);
    assert_eq!(seqs(&changes), vec![1, 2]);
    assert!(changes.iter().all(|c| c.time == T0 + 5));
    assert_eq!(changes[0].binding, b);

    let got = store.get(ip(1)).unwrap().unwrap();
    assert_eq!(got, changes[0]);
    assert_eq!(got.binding.relay_id(), Some(&b"relay-A"[..]));
    assert_eq!(got.binding.remote_id(), Some(&b"remote-1"[..]));
    assert_eq!(store.get(ip(2)).unwrap().unwrap().binding, bare);
    assert_eq!(store.get(ip(3)).unwrap(), None);
    assert_eq!(store.len().unwrap(), 2);
    assert!(!store.is_empty().unwrap());
    assert_eq!(store.last_seq().unwrap(), 2);
}

pub fn empty_store_has_nothing(backend: &dyn Backend) {
    let store = backend.open(T0);
    assert!(store.is_empty().unwrap());
    assert_eq!(store.last_seq().unwrap(), 0);
    assert_eq!(commit(&*store, T0, vec![]), vec![]);
    assert_eq!(store.last_seq().unwrap(), 0);
    assert!(scan_all(&*store, &ScanFilter::all(), 10).is_empty());
    assert!(since_all(&*store, 0, 10).is_empty());
    assert!(store.changes_after_seq(0, 10).unwrap().is_empty());
}

pub fn seq_strictly_increases_and_time_never_goes_back(backend: &dyn Backend) {
    let store = backend.open(T0);
    let a = commit(&*store, T0 + 10, vec![lease(1, 1, b"r", b"x", T0), lease(2, 2, b"r", b"x", T0)]);
    // The clock went backwards: the commit time stays at the previous commit's.
    let b = commit(&*store, T0 + 3, vec![lease(3, 3, b"r", b"x", T0)]);
    let c = commit(&*store, T0 + 20, vec![lease(1, 1, b"r", b"x", T0 + 20)]);
    assert_eq!(seqs(&a), vec![1, 2]);
    assert_eq!(seqs(&b), vec![3]);
    assert_eq!(b[0].time, T0 + 10);
    assert_eq!(seqs(&c), vec![4]);
    assert_eq!(c[0].time, T0 + 20);
    drop(store);

    // Reopened later: seq continues, never reused, even though seq 1 was overwritten; and time stays
    // monotonic across restarts even if the clock is behind.
    let store = backend.open(T0);
    let d = commit(&*store, T0 + 1, vec![lease(4, 4, b"r", b"x", T0)]);
    assert_eq!(seqs(&d), vec![5]);
    assert_eq!(d[0].time, T0 + 20);
    assert_eq!(store.last_seq().unwrap(), 5);
}

pub fn same_address_twice_in_a_batch_keeps_the_last(backend: &dyn Backend) {
    let store = backend.open(T0);
    let first = lease(1, 1, b"r", b"x", T0);
    let second = released(&first, T0 + 1);
    let changes = commit(&*store, T0 + 1, vec![first, second.clone()]);
    assert_eq!(seqs(&changes), vec![1, 2]);
    let got = store.get(ip(1)).unwrap().unwrap();
    assert_eq!((got.seq, got.binding), (2, second));
    assert_eq!(store.len().unwrap(), 1);
}

pub fn an_invalid_binding_rejects_the_whole_batch(backend: &dyn Backend) {
    let store = backend.open(T0);
    commit(&*store, T0, vec![lease(1, 1, b"r", b"x", T0)]);
    let mut bad = lease(3, 3, b"r", b"x", T0);
    bad.relay_agent_info = Some(vec![2, 200, 1]);
    let err = store.commit(T0, vec![lease(2, 2, b"r", b"x", T0), bad]).wait().unwrap_err();
    assert!(matches!(err, StoreError::InvalidBinding { ip: i, .. } if i == ip(3)), "{err}");
    let mut long = lease(4, 4, b"r", b"x", T0);
    long.hardware_address = vec![0; 17];
    assert!(store.commit(T0, vec![long]).wait().is_err());
    assert_eq!(store.get(ip(2)).unwrap(), None);
    assert_eq!(store.len().unwrap(), 1);
    assert_eq!(store.last_seq().unwrap(), 1);
    // Rejected batches consume no sequence numbers.
    assert_eq!(seqs(&commit(&*store, T0, vec![lease(5, 5, b"r", b"x", T0)])), vec![2]);
}

pub fn a_batch_is_one_contiguous_run_of_sequence_numbers(backend: &dyn Backend) {
    let store = backend.open(T0);
    let batch: Vec<Binding> = (0..100).map(|n| lease(n, n, b"r", b"x", T0)).collect();
    let changes = commit(&*store, T0, batch);
    assert_eq!(seqs(&changes), (1..=100).collect::<Vec<_>>());
    assert_eq!(store.len().unwrap(), 100);
    assert_eq!(since_all(&*store, T0, 1000), changes);
}

pub fn concurrent_committers_all_get_distinct_sequence_numbers(backend: &dyn Backend) {
    let store: Arc<dyn LeaseStore> = Arc::from(backend.open(T0));
    const THREADS: u32 = 8;
    const EACH: u32 = 40;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..EACH)
                    .flat_map(|i| {
                        let n = t * 1000 + i;
                        store.commit(T0, vec![lease(n, n, b"r", b"x", T0)]).wait().unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<BindingChange> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let distinct: HashSet<u64> = all.iter().map(|c| c.seq).collect();
    assert_eq!(distinct.len(), (THREADS * EACH) as usize);
    assert_eq!(distinct.iter().max(), Some(&u64::from(THREADS * EACH)));
    assert_eq!(store.last_seq().unwrap(), u64::from(THREADS * EACH));
    for c in &all {
        assert_eq!(store.get(c.binding.ip).unwrap().as_ref(), Some(c));
    }
}

pub fn a_commit_can_be_awaited(backend: &dyn Backend) {
    let store = backend.open(T0);
    let changes = block_on(store.commit(T0, vec![lease(1, 1, b"r", b"x", T0)])).unwrap();
    assert_eq!(seqs(&changes), vec![1]);
    let forgotten = block_on(store.forget(&[ip(1)])).unwrap();
    assert_eq!(forgotten.removed, changes);
}

pub fn reopen_keeps_everything(backend: &dyn Backend) {
    let store = backend.open(T0);
    let mut expected = Vec::new();
    for round in 0..5u32 {
        let batch = (0..20).map(|i| lease(round * 20 + i, i, b"r", format!("rem{i}").as_bytes(), T0 + round));
        expected.extend(commit(&*store, T0 + round, batch.collect()));
    }
    drop(store);
    let store = backend.open(T0 + 100);
    let mut all = scan_all(&*store, &ScanFilter::all(), 33);
    all.sort_by_key(|c| c.seq);
    assert_eq!(all, expected);
    assert_eq!(store.last_seq().unwrap(), 100);
    assert_eq!(store.history_horizon().unwrap(), T0, "reopening is not creating: the horizon stays");
}

// ---------------------------------------------------------------------------------------------------------
// Lookups (RFC 4388 / RFC 6148).

/// Three addresses for client 7, one for client 8, one with client 7's MAC but another htype.
fn lookup_fixture(store: &dyn LeaseStore) -> [BindingChange; 5] {
    let a = commit(store, T0, vec![lease(10, 7, b"relay-A", b"rem-1", T0)]);
    let b = commit(store, T0 + 1, vec![lease(5, 8, b"relay-B", b"rem-2", T0)]);
    let c = commit(store, T0 + 2, vec![lease(20, 7, b"relay-B", b"rem-1", T0)]);
    let mut other_htype = lease(30, 7, b"relay-A", b"rem-3", T0);
    other_htype.htype = 6;
    other_htype.client_id = None;
    let d = commit(store, T0 + 3, vec![other_htype]);
    let e = commit(store, T0 + 4, vec![lease(1, 7, b"relay-A", b"rem-1", T0)]);
    [a[0].clone(), b[0].clone(), c[0].clone(), d[0].clone(), e[0].clone()]
}

pub fn lookup_by_hardware_address_newest_first(backend: &dyn Backend) {
    let store = backend.open(T0);
    let [a, _b, c, d, e] = lookup_fixture(&*store);
    assert_eq!(store.by_hardware_address(1, &mac(7)).unwrap(), vec![e.clone(), c.clone(), a.clone()]);
    assert_eq!(store.by_hardware_address(6, &mac(7)).unwrap(), vec![d]);
    assert!(store.by_hardware_address(1, &mac(9)).unwrap().is_empty());
    // Re-leasing the oldest makes it the newest.
    let a2 = commit(&*store, T0 + 9, vec![a.binding.clone()]).remove(0);
    assert_eq!(store.by_hardware_address(1, &mac(7)).unwrap(), vec![a2, e, c]);
    // Records without a client are not found by an empty address.
    commit(&*store, T0 + 9, vec![Binding::new(ip(99), DhcpState::Available, T0)]);
    assert!(store.by_hardware_address(0, &[]).unwrap().is_empty());
}

pub fn lookup_by_client_id_newest_first(backend: &dyn Backend) {
    let store = backend.open(T0);
    let [a, b, c, _d, e] = lookup_fixture(&*store);
    let id7 = a.binding.client_id.clone().unwrap();
    assert_eq!(store.by_client_id(&id7).unwrap(), vec![e, c, a]);
    assert_eq!(store.by_client_id(b.binding.client_id.as_ref().unwrap()).unwrap(), vec![b]);
    assert!(store.by_client_id(b"nobody").unwrap().is_empty());
}

pub fn lookup_by_remote_id_and_relay_id_newest_first(backend: &dyn Backend) {
    let store = backend.open(T0);
    let [a, b, c, d, e] = lookup_fixture(&*store);
    assert_eq!(store.by_remote_id(b"rem-1").unwrap(), vec![e.clone(), c.clone(), a.clone()]);
    assert_eq!(store.by_remote_id(b"rem-3").unwrap(), vec![d.clone()]);
    assert_eq!(store.by_relay_id(b"relay-A").unwrap(), vec![e.clone(), d, a.clone()]);
    assert_eq!(store.by_relay_id(b"relay-B").unwrap(), vec![c.clone(), b]);
    assert!(store.by_relay_id(b"rem-1").unwrap().is_empty(), "a remote-id is not a relay-id");

    // The keys follow the stored option 82: a client that comes back without it leaves the indexes.
    let mut moved = e.binding.clone();
    moved.relay_agent_info = None;
    commit(&*store, T0 + 9, vec![moved]);
    assert_eq!(store.by_remote_id(b"rem-1").unwrap(), vec![c, a.clone()]);
    let mut only_remote = a.binding.clone();
    only_remote.relay_agent_info = Some(RelayAgentInfoBuilder::new().remote_id(b"rem-1").build());
    let a2 = commit(&*store, T0 + 10, vec![only_remote]).remove(0);
    assert_eq!(store.by_remote_id(b"rem-1").unwrap()[0], a2);
    assert!(!store.by_relay_id(b"relay-A").unwrap().iter().any(|x| x.binding.ip == a.binding.ip));
}

// ---------------------------------------------------------------------------------------------------------
// Ordered scans (RFC 6926).

/// 50 addresses in random-ish order; every third behind relay-A, remote-id by n % 4, client n % 5.
fn scan_fixture(store: &dyn LeaseStore) -> Vec<BindingChange> {
    let mut all = Vec::new();
    for k in 0..50u32 {
        let n = (k * 37) % 50 + 1; // a permutation of 1..=50, committed out of address order
        let relay: &[u8] = if n % 3 == 0 { b"relay-A" } else { b"relay-B" };
        let remote = format!("rem-{}", n % 4);
        let b = lease(n, n % 5, relay, remote.as_bytes(), T0 + k);
        all.extend(commit(store, T0 + k, vec![b]));
    }
    all.sort_by_key(|c| c.binding.ip);
    all
}

fn check_scan(store: &dyn LeaseStore, all: &[BindingChange], filter: ScanFilter) {
    let expected: Vec<BindingChange> = all.iter().filter(|c| filter.matches(c)).cloned().collect();
    for page in [1, 2, 7, expected.len().max(1), 1000] {
        assert_eq!(scan_all(store, &filter, page), expected, "{filter:?} page {page}");
    }
}

pub fn scan_every_key_in_address_order_across_pages(backend: &dyn Backend) {
    let store = backend.open(T0);
    let all = scan_fixture(&*store);
    let filters = [
        ScanFilter::all(),
        ScanFilter::new(ScanKey::RelayId(b"relay-A".to_vec())),
        ScanFilter::new(ScanKey::RemoteId(b"rem-2".to_vec())),
        ScanFilter::new(ScanKey::HardwareAddress { htype: 1, addr: mac(3) }),
        ScanFilter::new(ScanKey::ClientId([&[1u8][..], &mac(4)].concat())),
    ];
    for filter in filters {
        let n = all.iter().filter(|c| filter.matches(c)).count();
        assert!(n >= 10, "fixture gives {filter:?} only {n} matches");
        check_scan(&*store, &all, filter);
    }
    // Keys that match nothing.
    check_scan(&*store, &all, ScanFilter::new(ScanKey::RelayId(b"nope".to_vec())));
    check_scan(&*store, &all, ScanFilter::new(ScanKey::HardwareAddress { htype: 6, addr: mac(3) }));
    assert!(scan_all(&*store, &ScanFilter::new(ScanKey::HardwareAddress { htype: 0, addr: vec![] }), 5).is_empty());
    // Starting after an address that has no record.
    let after = store.scan(&ScanFilter::all(), Some(Ipv4Addr::new(10, 0, 0, 0)), 3).unwrap();
    assert_eq!(ips(&after), vec![ip(1), ip(2), ip(3)]);
    assert!(store.scan(&ScanFilter::all(), Some(Ipv4Addr::BROADCAST), 3).unwrap().is_empty());
    assert!(store.scan(&ScanFilter::all(), None, 0).unwrap().is_empty());
}

/// What a server's engine loads at start: every record, in address order, packed; the same bindings a scan
/// returns, paged the same way.
pub fn scan_packed_returns_every_record_in_address_order(backend: &dyn Backend) {
    let store = backend.open(T0);
    let all = scan_fixture(&*store);
    for page in [1, 7, 50, 1000] {
        let mut got = Vec::new();
        let mut after = None;
        loop {
            let rows = store.scan_packed(after, page).unwrap();
            assert!(rows.len() <= page);
            after = rows.last().map(|r| r.0);
            let done = rows.len() < page;
            got.extend(rows.into_iter().map(|(ip, p)| p.binding(ip)));
            if done {
                break;
            }
        }
        assert_eq!(got, all.iter().map(|c| c.binding.clone()).collect::<Vec<_>>(), "page {page}");
    }
    assert!(store.scan_packed(Some(Ipv4Addr::BROADCAST), 3).unwrap().is_empty());
    let after = store.scan_packed(Some(Ipv4Addr::new(10, 0, 0, 0)), 2).unwrap();
    assert_eq!(after.iter().map(|r| r.0).collect::<Vec<_>>(), vec![ip(1), ip(2)]);
}

pub fn scan_bounds_are_inclusive_and_combine(backend: &dyn Backend) {
    let store = backend.open(T0);
    // Address k+1 changed at T0 + k.
    let all = scan_fixture(&*store);
    let at = |c: &BindingChange| c.time - T0;
    let window = |lo: Option<u32>, hi: Option<u32>| {
        let mut f = ScanFilter::all();
        f.changed_on_or_after = lo.map(|x| T0 + x);
        f.changed_on_or_before = hi.map(|x| T0 + x);
        scan_all(&*store, &f, 4).iter().map(at).collect::<HashSet<u32>>()
    };
    assert_eq!(window(Some(40), None), (40..50).collect());
    assert_eq!(window(None, Some(9)), (0..=9).collect());
    assert_eq!(window(Some(10), Some(12)), HashSet::from([10, 11, 12]));
    assert_eq!(window(Some(12), Some(12)), HashSet::from([12]));
    assert!(window(Some(13), Some(12)).is_empty());
    assert_eq!(window(None, None).len(), 50);
    // Bounds combine with a key.
    let f = ScanFilter::new(ScanKey::RelayId(b"relay-A".to_vec())).changed_on_or_after(T0 + 25);
    check_scan(&*store, &all, f.clone());
    assert!(scan_all(&*store, &f, 3).iter().all(|c| c.time >= T0 + 25 && c.binding.relay_id() == Some(b"relay-A")));
    check_scan(&*store, &all, ScanFilter::new(ScanKey::RemoteId(b"rem-1".to_vec())).changed_on_or_before(T0 + 30));
    check_scan(
        &*store,
        &all,
        ScanFilter::new(ScanKey::HardwareAddress { htype: 1, addr: mac(2) })
            .changed_on_or_after(T0 + 5)
            .changed_on_or_before(T0 + 45),
    );
    check_scan(
        &*store,
        &all,
        ScanFilter::new(ScanKey::ClientId([&[1u8][..], &mac(0)].concat())).changed_on_or_after(T0),
    );
}

/// BLQ-8.2-11: a binding is in a time window when its start-time-of-state or its client-last-transaction-time
/// falls inside, not only when its latest change was committed inside: a lease granted in the window and
/// renewed after it is reported.
pub fn blq_8_2_11_a_window_takes_start_time_of_state_and_cltt(backend: &dyn Backend) {
    let store = backend.open(T0 - 1000);
    // 1: leased at T0, renewed at T0+300 (start of state T0, CLTT T0+300), committed at T0+300.
    let mut renewed = lease(1, 1, b"relay-A", b"rem-1", T0);
    renewed.cltt = Some(T0 + 300);
    // 2: leased at T0+100.
    let plain = lease(2, 2, b"relay-A", b"rem-2", T0 + 100);
    // 3: released at T0+200, its last transaction at T0+50.
    let mut gone = released(&lease(3, 3, b"relay-B", b"rem-3", T0), T0 + 200);
    gone.cltt = Some(T0 + 50);
    commit(&*store, T0 + 100, vec![plain]);
    commit(&*store, T0 + 200, vec![gone]);
    let all = {
        commit(&*store, T0 + 300, vec![renewed]);
        scan_all(&*store, &ScanFilter::all(), 10)
    };
    let window = |lo: u32, hi: u32| {
        let f = ScanFilter::all().changed_on_or_after(T0 + lo).changed_on_or_before(T0 + hi);
        check_scan(&*store, &all, f.clone());
        ips(&scan_all(&*store, &f, 2))
    };
    assert_eq!(window(0, 20), vec![ip(1)], "start-time-of-state inside, committed after");
    assert_eq!(window(40, 60), vec![ip(3)], "CLTT inside");
    assert_eq!(window(90, 110), vec![ip(2)]);
    assert_eq!(window(150, 250), vec![ip(3)], "start-time-of-state of the release");
    assert_eq!(window(290, 310), vec![ip(1)], "the renewal");
    assert!(window(400, 500).is_empty());
    // With a key too.
    let f = ScanFilter::new(ScanKey::RelayId(b"relay-A".to_vec())).changed_on_or_before(T0 + 20);
    assert_eq!(ips(&scan_all(&*store, &f, 1)), vec![ip(1)]);
}

pub fn scan_pages_never_repeat_an_address_while_bindings_change(backend: &dyn Backend) {
    let store = backend.open(T0);
    scan_fixture(&*store);
    let filter = ScanFilter::all();
    let mut seen = Vec::new();
    let mut after = None;
    let mut k = 0;
    loop {
        let page = store.scan(&filter, after, 5).unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.binding.ip);
        seen.extend(ips(&page));
        // Churn behind and ahead of the cursor between pages.
        commit(&*store, T0 + 100 + k, vec![lease(1, 1, b"r", b"x", T0), lease(50 - k % 50, 3, b"r", b"x", T0)]);
        k += 1;
    }
    assert_eq!(seen, (1..=50).map(ip).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------------------
// The journal (RFC 7724 catch-up) and the change feed.

pub fn changed_since_is_in_commit_order_and_pages_by_seq(backend: &dyn Backend) {
    let store = backend.open(T0);
    let mut log = Vec::new();
    for k in 0..30u32 {
        log.extend(commit(&*store, T0 + k / 3, vec![lease(30 - k, k, b"r", b"x", T0)]));
    }
    // Address 25 changes again: it leaves its old place in the order and reappears at the end.
    let again = commit(&*store, T0 + 20, vec![released(&log[5].binding, T0 + 20)]).remove(0);
    let current: Vec<BindingChange> =
        log.iter().filter(|c| c.binding.ip != again.binding.ip).cloned().chain([again.clone()]).collect();

    for page in [1, 4, 29, 30, 100] {
        assert_eq!(since_all(&*store, 0, page), current, "page {page}");
    }
    // Inclusive: changes at exactly T are in; they are those of k = 15, 16, 17 and later.
    let since = since_all(&*store, T0 + 5, 4);
    assert_eq!(since, current.iter().filter(|c| c.time >= T0 + 5).cloned().collect::<Vec<_>>());
    assert_eq!(since[0].binding.ip, ip(30 - 15));
    assert!(since.windows(2).all(|w| w[0].seq < w[1].seq && w[0].time <= w[1].time));
    assert_eq!(since_all(&*store, T0 + 20, 4), vec![again.clone()]);
    assert!(since_all(&*store, T0 + 21, 4).is_empty());

    // Paging by sequence number, starting anywhere.
    let page = store.changed_since(T0 + 5, Some(since[1].seq), 2).unwrap();
    assert_eq!(page, since[2..4].to_vec());
    assert!(store.changed_since(T0, Some(again.seq), 10).unwrap().is_empty());
    assert!(store.changed_since(T0, None, 0).unwrap().is_empty());
}

pub fn changes_after_seq_resume_a_feed(backend: &dyn Backend) {
    let store = backend.open(T0);
    let a = commit(&*store, T0, (1..=5).map(|n| lease(n, n, b"r", b"x", T0)).collect());
    assert_eq!(store.changes_after_seq(0, 100).unwrap(), a);
    assert_eq!(store.changes_after_seq(2, 2).unwrap(), a[2..4].to_vec());
    let b = commit(&*store, T0 + 1, vec![released(&a[0].binding, T0 + 1)]);
    let mut expected = a[1..].to_vec();
    expected.extend(b.clone());
    assert_eq!(store.changes_after_seq(0, 100).unwrap(), expected);
    assert_eq!(store.changes_after_seq(5, 100).unwrap(), b);
    assert!(store.changes_after_seq(6, 100).unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------------------
// The history horizon (RFC 7724 DataMissing).

pub fn a_fresh_store_cannot_catch_up_from_before_its_creation(backend: &dyn Backend) {
    let store = backend.open(T0);
    assert_eq!(store.history_horizon().unwrap(), T0);
    assert!(!store.can_catch_up_from(T0 - 1).unwrap());
    assert!(store.can_catch_up_from(T0).unwrap());
    assert!(store.can_catch_up_from(T0 + 1000).unwrap());
    // Commits do not move it.
    commit(&*store, T0 + 10, vec![lease(1, 1, b"r", b"x", T0)]);
    assert_eq!(store.history_horizon().unwrap(), T0);
}

pub fn forgetting_moves_the_horizon_past_the_forgotten_change(backend: &dyn Backend) {
    let store = backend.open(T0);
    let a = commit(&*store, T0 + 10, vec![lease(1, 1, b"r", b"x", T0)]).remove(0);
    let b = commit(&*store, T0 + 20, vec![lease(2, 2, b"r", b"x", T0)]).remove(0);
    let c = commit(&*store, T0 + 30, vec![lease(3, 3, b"r", b"x", T0)]).remove(0);

    // Unknown addresses: nothing removed, nothing moves.
    let f = store.forget(&[ip(9)]).wait().unwrap();
    assert!(f.removed.is_empty());
    assert_eq!(f.horizon, T0);

    let f = store.forget(&[ip(2)]).wait().unwrap();
    assert_eq!(f.removed, vec![b]);
    assert_eq!(f.horizon, T0 + 21);
    assert_eq!(store.history_horizon().unwrap(), T0 + 21);
    assert_eq!(store.get(ip(2)).unwrap(), None);
    // RFC 7724 §7.4.1: a catch-up from before the horizon is DataMissing; from at or after it is exact.
    assert!(!store.can_catch_up_from(T0 + 20).unwrap());
    assert!(!store.can_catch_up_from(T0 + 5).unwrap());
    assert!(store.can_catch_up_from(T0 + 21).unwrap());
    assert_eq!(since_all(&*store, T0 + 21, 10), vec![c.clone()]);

    // Forgetting an older record does not move the horizon back.
    let f = store.forget(&[ip(1)]).wait().unwrap();
    assert_eq!(f.removed, vec![a]);
    assert_eq!(f.horizon, T0 + 21);
    drop(store);

    let store = backend.open(T0 + 1000);
    assert_eq!(store.history_horizon().unwrap(), T0 + 21, "the horizon is persisted");
    assert!(!store.can_catch_up_from(T0 + 20).unwrap());
    assert_eq!(ips(&scan_all(&*store, &ScanFilter::all(), 10)), vec![ip(3)]);
}

/// ALQ-8.2-10: the record of past binding activity the Active catch-up reads is kept, bounded by the retention
/// (`[server] retention`): released and expired records are kept that long, then forgotten, and the history
/// horizon moves past them (a catch-up from before it gets DataMissing).
pub fn retention_keeps_recent_transitions_and_forgets_old_ones(backend: &dyn Backend) {
    let store = backend.open(T0);
    let retention = 600;
    let active = lease(1, 1, b"r", b"x", T0);
    let old_release = released(&lease(2, 2, b"r", b"x", T0), T0 + 10);
    let mut abandoned = Binding::new(ip(3), DhcpState::Abandoned, T0 + 10);
    abandoned.expires_at = Some(T0 + 5000);
    let mut expired = released(&lease(4, 4, b"r", b"x", T0), T0 + 10);
    expired.state = DhcpState::Expired;
    commit(&*store, T0 + 10, vec![active, old_release, abandoned, expired]);
    let recent = commit(&*store, T0 + 500, vec![released(&lease(5, 5, b"r", b"x", T0), T0 + 500)]).remove(0);

    // Exactly `retention` old is not yet older than the retention.
    let f = store.forget_expired(T0 + 10 + retention, retention, 100).wait().unwrap();
    assert!(f.removed.is_empty());
    assert_eq!(f.horizon, T0);

    // Later: the old release and expiry go (oldest first, `limit` at a time); ACTIVE stays; ABANDONED stays
    // while its time runs; the recent release stays so active requestors still see it.
    let now = T0 + 11 + retention;
    let f = store.forget_expired(now, retention, 1).wait().unwrap();
    assert_eq!(ips(&f.removed), vec![ip(2)]);
    assert_eq!(f.horizon, T0 + 11);
    let f = store.forget_expired(now, retention, 100).wait().unwrap();
    assert_eq!(ips(&f.removed), vec![ip(4)]);
    assert_eq!(f.removed[0].binding.state, DhcpState::Expired);
    assert_eq!(store.history_horizon().unwrap(), T0 + 11);
    assert_eq!(ips(&scan_all(&*store, &ScanFilter::all(), 10)), vec![ip(1), ip(3), ip(5)]);
    assert!(store.can_catch_up_from(recent.time).unwrap());
    assert_eq!(since_all(&*store, recent.time, 10), vec![recent]);

    // Once the abandonment is over and the release old enough, they go too; ACTIVE never does.
    let f = store.forget_expired(T0 + 6000, retention, 100).wait().unwrap();
    assert_eq!(ips(&f.removed), vec![ip(3), ip(5)]);
    assert_eq!(f.horizon, T0 + 501);
    assert_eq!(ips(&scan_all(&*store, &ScanFilter::all(), 10)), vec![ip(1)]);
    assert!(store.forget_expired(u32::MAX, retention, 100).wait().unwrap().removed.is_empty());
    // A retention longer than all of time forgets nothing.
    assert!(store.forget_expired(100, 600, 100).wait().unwrap().removed.is_empty());
}

/// Generate one `#[test]` per suite function for a backend.
#[macro_export]
macro_rules! behaviour_suite {
    ($backend:expr) => {
        $crate::behaviour_suite!(@tests $backend;
            commit_then_get_returns_every_field,
            empty_store_has_nothing,
            seq_strictly_increases_and_time_never_goes_back,
            same_address_twice_in_a_batch_keeps_the_last,
            an_invalid_binding_rejects_the_whole_batch,
            a_batch_is_one_contiguous_run_of_sequence_numbers,
            concurrent_committers_all_get_distinct_sequence_numbers,
            a_commit_can_be_awaited,
            reopen_keeps_everything,
            lookup_by_hardware_address_newest_first,
            lookup_by_client_id_newest_first,
            lookup_by_remote_id_and_relay_id_newest_first,
            scan_every_key_in_address_order_across_pages,
            scan_packed_returns_every_record_in_address_order,
            scan_bounds_are_inclusive_and_combine,
            scan_pages_never_repeat_an_address_while_bindings_change,
            changed_since_is_in_commit_order_and_pages_by_seq,
            changes_after_seq_resume_a_feed,
            a_fresh_store_cannot_catch_up_from_before_its_creation,
            forgetting_moves_the_horizon_past_the_forgotten_change,
        );
    };
    (@tests $backend:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let backend = $backend;
                suite::$name(&backend);
            }
        )*
    };
}
