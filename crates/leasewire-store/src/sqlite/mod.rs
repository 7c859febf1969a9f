//! The default store: one SQLite file (WAL, `synchronous = FULL`) under the server's data directory.
//!
//! * Every current record and the lookup indexes live in memory (see `memory`), loaded by one pass over
//!   the table at open (see `read`): lookups and scans never touch the file.
//! * One writer thread owns the only writing connection and does group commit (see `writer`); it updates
//!   the in-memory copy only after a group is durable, so readers never see a change that could be lost.
//! * Opening tells our files from foreign, damaged and newer ones and never reinitialises an existing file
//!   (see `open`).

mod checkpoint;
mod memory;
mod open;
mod read;
mod schema;
mod writer;

pub use schema::{APPLICATION_ID, SCHEMA_VERSION};

use crate::error::StoreError;
use crate::pending::{Pending, PendingCommit};
use crate::scan::{ScanFilter, ScanKey};
use crate::store::{Forgetting, Forgotten, LeaseStore};
use crate::{Binding, BindingChange, Packed};
use memory::{KeyHasher, ReadError};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, mpsc};
use std::thread::JoinHandle;
use writer::{Request, Shared, Writer};

/// How to open a [`SqliteStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// The server's current time (Unix seconds). A store created by this open gets it as its creation time
    /// and history horizon: it knows nothing that happened before.
    pub now: u32,
    /// No longer used: lookups and scans are served from memory and need no connection. Kept so callers
    /// that set it still compile.
    pub readers: usize,
    /// Run `PRAGMA integrity_check` at open and refuse a file that fails it. Reads every page: seconds for
    /// millions of bindings, so off by default.
    pub verify_integrity: bool,
    /// The most bindings one group transaction takes from the queue before committing (bounds the latency a
    /// burst adds to the committers behind it). A single larger batch is still committed whole.
    pub max_group_bindings: usize,
    /// How much of the database file the load at open maps into memory (`PRAGMA mmap_size`) for its one
    /// pass over the table; 0 reads through system calls. The mapping is dropped once the store is loaded.
    /// The price: an I/O error on the mapped file (failing disk, file truncated by someone else) during
    /// the load kills the process with SIGBUS instead of returning an error.
    pub mmap_bytes: u64,
}

impl OpenOptions {
    /// Defaults: no integrity check at open, groups of up to 8192 bindings, the load maps up to 1 GiB of the
    /// file.
    pub fn new(now: u32) -> Self {
        Self { now, readers: 4, verify_integrity: false, max_group_bindings: 8192, mmap_bytes: 1 << 30 }
    }
}

/// The SQLite lease store. See the crate documentation for the model and [`LeaseStore`] for the contract.
///
/// Every current record is kept in memory as well as in the file (about 300 octets per binding with
/// option 82 and two stored options, see BENCHMARKS.md): opening reads the whole table once (about a
/// second per million bindings), then lookups and scans are served from memory. Writes go to the file
/// first and become visible to reads once durable.
///
/// Dropping it finishes every queued write, then closes the file.
pub struct SqliteStore {
    path: PathBuf,
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    mmap_bytes: u64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).field("shared", &self.shared).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Open the store at `path`, creating it (mode 0600) if the file is absent or empty.
    ///
    /// Any other file that is not a leasewire store of a schema this build knows is an error naming the
    /// file: [`StoreError::NotADatabase`], [`StoreError::Foreign`], [`StoreError::NewerSchema`],
    /// [`StoreError::Corrupt`], [`StoreError::OrphanWal`]. An older schema is migrated in place.
    pub fn open(path: impl AsRef<Path>, options: OpenOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let hasher = KeyHasher::default();
        let (conn, counters, mem) =
            open::open_writer(&path, options.now, options.verify_integrity, options.mmap_bytes, hasher.clone())?;
        let shared = Arc::new(Shared {
            last_seq: AtomicU64::new(counters.last_seq),
            horizon: AtomicU32::new(counters.horizon),
            mem: RwLock::new(mem),
        });
        let checkpointer =
            checkpoint::Checkpointer::spawn(open::open_checkpointer(&path)?).map_err(|e| StoreError::io(&path, e))?;
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(
            path.clone(),
            conn,
            counters,
            shared.clone(),
            hasher,
            options.max_group_bindings,
            Some(checkpointer),
        );
        let handle = std::thread::Builder::new()
            .name("leasewire-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(Self { path, requests: Some(tx), writer: Some(handle), shared, mmap_bytes: options.mmap_bytes })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `PRAGMA integrity_check` now: the problems found, empty if the file is consistent. Reads every
    /// page; for operators and tests.
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        let conn = open::open_reader(&self.path, self.mmap_bytes)?;
        open::integrity_check(&conn).map_err(|e| read::map_read_error(&self.path, e))
    }

    fn corrupt(&self, e: ReadError) -> StoreError {
        StoreError::corrupt(&self.path, format!("record of {}: {}", e.ip, e.detail))
    }

    /// Decode what a read took out of the lock.
    fn decode(&self, hits: Vec<memory::Hit>) -> Result<Vec<BindingChange>, StoreError> {
        memory::decode(hits).map_err(|e| self.corrupt(e))
    }

    fn lookup(&self, key: &ScanKey) -> Result<Vec<BindingChange>, StoreError> {
        let hits = self.shared.read().lookup(key);
        self.decode(hits)
    }

    fn send<T>(&self, make: impl FnOnce(crate::pending::Completer<T>) -> Request) -> Pending<T> {
        crate::pending::queued(make, |request| {
            if let Some(requests) = &self.requests {
                let _ = requests.send(request);
            }
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl LeaseStore for SqliteStore {
    fn commit(&self, now: u32, bindings: Vec<Binding>) -> PendingCommit {
        if let Some(answer) = crate::store::answer_before_commit(&bindings) {
            return answer;
        }
        self.send(|done| Request::Commit { now, bindings, done })
    }

    fn get(&self, ip: Ipv4Addr) -> Result<Option<BindingChange>, StoreError> {
        let hit = self.shared.read().get(ip);
        hit.map(|h| h.decode()).transpose().map_err(|e| self.corrupt(e))
    }

    fn by_hardware_address(&self, htype: u8, addr: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        self.lookup(&ScanKey::HardwareAddress { htype, addr: addr.to_vec() })
    }

    fn by_client_id(&self, client_id: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        self.lookup(&ScanKey::ClientId(client_id.to_vec()))
    }

    fn by_remote_id(&self, remote_id: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        self.lookup(&ScanKey::RemoteId(remote_id.to_vec()))
    }

    fn by_relay_id(&self, relay_id: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        self.lookup(&ScanKey::RelayId(relay_id.to_vec()))
    }

    fn scan(
        &self,
        filter: &ScanFilter,
        after: Option<Ipv4Addr>,
        limit: usize,
    ) -> Result<Vec<BindingChange>, StoreError> {
        let hits = self.shared.read().scan(filter, after, limit);
        self.decode(hits)
    }

    fn scan_packed(&self, after: Option<Ipv4Addr>, limit: usize) -> Result<Vec<(Ipv4Addr, Packed)>, StoreError> {
        let page = self.shared.read().packed(after.map(u32::from), limit);
        page.map_err(|ip| {
            // A damaged record: the error a scan meets there.
            let ip = Ipv4Addr::from(ip);
            match self.shared.read().get(ip).map(|hit| hit.decode()) {
                Some(Err(e)) => self.corrupt(e),
                _ => StoreError::corrupt(&self.path, format!("record of {ip}: unreadable")),
            }
        })
    }

    fn changed_since(&self, time: u32, after_seq: Option<u64>, limit: usize) -> Result<Vec<BindingChange>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let hits = {
            let mem = self.shared.read();
            let Some(first) = mem.first_seq_since(time) else { return Ok(Vec::new()) };
            let from = after_seq.map_or(first, |s| first.max(s.saturating_add(1)));
            mem.changes_from(from, time, limit)
        };
        self.decode(hits)
    }

    fn changes_after_seq(&self, seq: u64, limit: usize) -> Result<Vec<BindingChange>, StoreError> {
        if limit == 0 || seq == u64::MAX {
            return Ok(Vec::new());
        }
        let hits = self.shared.read().changes_from(seq + 1, 0, limit);
        self.decode(hits)
    }

    fn history_horizon(&self) -> Result<u32, StoreError> {
        Ok(self.shared.horizon.load(Ordering::SeqCst))
    }

    fn forget(&self, ips: &[Ipv4Addr]) -> Pending<Forgotten> {
        self.send(|done| Request::Forget(Forgetting::Ips(ips.to_vec()), done))
    }

    fn forget_expired(&self, now: u32, retention_secs: u32, limit: usize) -> Pending<Forgotten> {
        self.send(|done| Request::Forget(Forgetting::Expired { now, retention_secs, limit }, done))
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        Ok(self.shared.last_seq.load(Ordering::SeqCst))
    }

    fn len(&self) -> Result<u64, StoreError> {
        Ok(self.shared.read().len() as u64)
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use leasewire_proto::{DhcpState, RelayAgentInfoBuilder};
    use std::collections::BTreeMap;
    use std::hash::{BuildHasher, RandomState};

    const T0: u32 = 1_700_000_000;

    fn ip(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0x0a00_0000 + n)
    }

    /// A small deterministic generator (xorshift), seeded per run and printed, so a failure can be replayed.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u32) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % u64::from(n)) as u32
        }
    }

    /// A binding whose keys are drawn from small sets, so keys are shared, move between addresses, and
    /// disappear.
    fn random_binding(rng: &mut Rng, n: u32, now: u32) -> Binding {
        let state = DhcpState::ALL[rng.below(8) as usize];
        let mut b = Binding::new(ip(n), state, now - rng.below(100));
        if rng.below(5) > 0 {
            b.htype = 1 + rng.below(2) as u8;
            b.hardware_address = vec![2, 0, 0, 0, 0, rng.below(12) as u8];
        }
        if rng.below(3) > 0 {
            b.client_id = Some(vec![1; rng.below(4) as usize]);
        }
        if rng.below(2) > 0 {
            b.expires_at = Some(now + rng.below(50));
        }
        b.cltt = (rng.below(2) > 0).then_some(now);
        let mut rai = RelayAgentInfoBuilder::new();
        if rng.below(2) > 0 {
            rai = rai.remote_id(format!("rem-{}", rng.below(6)).as_bytes());
        }
        if rng.below(2) > 0 {
            rai = rai.relay_id(format!("rel-{}", rng.below(3)).as_bytes());
        }
        b.relay_agent_info = (rng.below(4) > 0).then(|| rai.build());
        if rng.below(2) > 0 {
            b.options = vec![(12, format!("h{n}").into_bytes())];
        }
        b.reserved_for = (rng.below(10) == 0).then(|| "r".to_owned());
        b
    }

    /// Every query against the model: what the live store and a reopened store must both answer.
    fn check_against_model(store: &SqliteStore, model: &BTreeMap<Ipv4Addr, BindingChange>) {
        store.shared.read().check_consistent();
        assert_eq!(store.len().unwrap(), model.len() as u64);
        let all: Vec<BindingChange> = model.values().cloned().collect();
        for n in 0..70 {
            assert_eq!(store.get(ip(n)).unwrap().as_ref(), model.get(&ip(n)));
        }
        let newest_first = |f: &dyn Fn(&BindingChange) -> bool| {
            let mut v: Vec<BindingChange> = all.iter().filter(|c| f(c)).cloned().collect();
            v.sort_by_key(|c| std::cmp::Reverse(c.seq));
            v
        };
        let mut keys = vec![ScanKey::All];
        for m in 0..12u8 {
            for htype in 1..=2 {
                let addr = vec![2, 0, 0, 0, 0, m];
                let expected = newest_first(&|c| c.binding.htype == htype && c.binding.hardware_address == addr);
                assert_eq!(store.by_hardware_address(htype, &addr).unwrap(), expected);
                keys.push(ScanKey::HardwareAddress { htype, addr });
            }
        }
        for len in 0..4 {
            let id = vec![1; len];
            assert_eq!(
                store.by_client_id(&id).unwrap(),
                newest_first(&|c| c.binding.client_id.as_deref() == Some(&id[..]))
            );
            keys.push(ScanKey::ClientId(id));
        }
        for k in 0..6 {
            let id = format!("rem-{k}").into_bytes();
            assert_eq!(store.by_remote_id(&id).unwrap(), newest_first(&|c| c.binding.remote_id() == Some(&id[..])));
            keys.push(ScanKey::RemoteId(id));
        }
        for k in 0..3 {
            let id = format!("rel-{k}").into_bytes();
            assert_eq!(store.by_relay_id(&id).unwrap(), newest_first(&|c| c.binding.relay_id() == Some(&id[..])));
            keys.push(ScanKey::RelayId(id));
        }
        assert!(store.by_hardware_address(1, &[]).unwrap().is_empty());
        let times: Vec<u32> = all.iter().map(|c| c.time).collect();
        let (lo, hi) = (times.iter().min().copied().unwrap_or(T0), times.iter().max().copied().unwrap_or(T0));
        for key in keys {
            for window in [(None, None), (Some(lo + (hi - lo) / 2), None), (None, Some(lo + (hi - lo) / 3))] {
                let filter =
                    ScanFilter { key: key.clone(), changed_on_or_after: window.0, changed_on_or_before: window.1 };
                let expected: Vec<BindingChange> = all.iter().filter(|c| filter.matches(c)).cloned().collect();
                for page in [1, 3, 1000] {
                    let got: Vec<BindingChange> =
                        crate::scan_pages(store, filter.clone(), page).flat_map(Result::unwrap).collect();
                    assert_eq!(got, expected, "{filter:?} page {page}");
                }
            }
        }
        let mut by_seq = all.clone();
        by_seq.sort_by_key(|c| c.seq);
        for t in [0, lo, lo + 1, lo + (hi - lo) / 2, hi, hi + 1] {
            let expected: Vec<BindingChange> = by_seq.iter().filter(|c| c.time >= t).cloned().collect();
            for page in [1, 4, 1000] {
                let got: Vec<BindingChange> =
                    crate::changed_since_pages(store, t, page).flat_map(Result::unwrap).collect();
                assert_eq!(got, expected, "since {t} page {page}");
            }
        }
        assert_eq!(store.changes_after_seq(0, usize::MAX).unwrap(), by_seq);
    }

    /// Random commits (keys shared, moved and dropped; the same address several times in a batch),
    /// forgets and retention passes: after each step the in-memory indexes agree with a model, and after
    /// reopening, the copy loaded from the file agrees too.
    #[test]
    fn memory_agrees_with_a_model_and_with_the_file_after_reopen() {
        let seed = RandomState::new().hash_one(0u8) | 1;
        eprintln!("seed {seed}");
        let mut rng = Rng(seed);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.db");
        let mut model: BTreeMap<Ipv4Addr, BindingChange> = BTreeMap::new();
        let mut now = T0;
        for round in 0..6 {
            let store = SqliteStore::open(&path, OpenOptions::new(T0)).unwrap();
            check_against_model(&store, &model);
            for _ in 0..25 {
                now += rng.below(3);
                match rng.below(10) {
                    0 => {
                        let ips: Vec<Ipv4Addr> = (0..rng.below(4)).map(|_| ip(rng.below(70))).collect();
                        let f = store.forget(&ips).wait().unwrap();
                        for c in &f.removed {
                            assert_eq!(model.remove(&c.binding.ip).as_ref(), Some(c));
                        }
                    }
                    1 => {
                        let f = store.forget_expired(now, rng.below(20), rng.below(5) as usize).wait().unwrap();
                        for c in &f.removed {
                            assert_eq!(model.remove(&c.binding.ip).as_ref(), Some(c));
                        }
                    }
                    _ => {
                        // Several committers in one group, some with the same addresses.
                        let pendings: Vec<_> = (0..1 + rng.below(4))
                            .map(|_| {
                                let batch = (0..1 + rng.below(5))
                                    .map(|_| {
                                        let n = rng.below(70);
                                        random_binding(&mut rng, n, now)
                                    })
                                    .collect();
                                store.commit(now, batch)
                            })
                            .collect();
                        for p in pendings {
                            for c in p.wait().unwrap() {
                                model.insert(c.binding.ip, c);
                            }
                        }
                    }
                }
            }
            check_against_model(&store, &model);
            eprintln!("round {round}: {} records", model.len());
        }
    }

    /// The binary search must find exactly the first record changed at or after T, with gaps in the
    /// sequence (overwritten and forgotten records) and long runs of equal times.
    #[test]
    fn first_seq_since_matches_a_linear_search() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("leases.db"), OpenOptions::new(1000)).unwrap();
        for k in 0..300u32 {
            // Times advance in bursts: many commits share a second, some seconds have none.
            let now = 1000 + (k / 7) * 3;
            store.commit(now, vec![Binding::new(ip(k % 120), DhcpState::Active, now)]).wait().unwrap();
        }
        store.forget(&[ip(5), ip(77), ip(119)]).wait().unwrap();
        let all = store.changes_after_seq(0, 1000).unwrap();
        for t in 990..1140 {
            let expected = all.iter().filter(|c| c.time >= t).map(|c| c.seq).min();
            assert_eq!(store.shared.read().first_seq_since(t), expected, "time {t}");
        }
    }

    /// While the group's transaction cannot commit (another connection holds the write lock), its changes
    /// are invisible: no lookup, scan, feed or counter shows them until the commit is durable.
    #[test]
    fn readers_never_see_a_commit_before_it_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.db");
        let store = Arc::new(SqliteStore::open(&path, OpenOptions::new(T0)).unwrap());
        store.commit(T0, vec![Binding::new(ip(1), DhcpState::Active, T0)]).wait().unwrap();

        let blocker = rusqlite::Connection::open(&path).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut b = Binding::new(ip(2), DhcpState::Active, T0);
        b.hardware_address = vec![1, 2, 3, 4, 5, 6];
        b.htype = 1;
        let pending = store.commit(T0 + 1, vec![b.clone()]);
        let waiter = std::thread::spawn(move || pending.wait());
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!waiter.is_finished(), "the commit resolved while the file was locked");
        assert_eq!(store.get(ip(2)).unwrap(), None);
        assert!(store.by_hardware_address(1, &b.hardware_address).unwrap().is_empty());
        assert_eq!(store.len().unwrap(), 1);
        assert_eq!(store.last_seq().unwrap(), 1);
        assert_eq!(store.changes_after_seq(1, 10).unwrap(), vec![]);
        blocker.execute_batch("COMMIT").unwrap();

        let change = waiter.join().unwrap().unwrap().remove(0);
        assert_eq!(change.seq, 2);
        assert_eq!(store.get(ip(2)).unwrap(), Some(change.clone()));
        assert_eq!(store.by_hardware_address(1, &b.hardware_address).unwrap(), vec![change]);
        assert_eq!(store.last_seq().unwrap(), 2);
    }

    /// A group whose transaction fails leaves memory untouched (as the file), and the store goes on.
    #[test]
    fn a_failed_group_is_invisible_and_the_store_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.db");
        let store = SqliteStore::open(&path, OpenOptions::new(T0)).unwrap();
        let ext = rusqlite::Connection::open(&path).unwrap();
        ext.execute_batch(&format!(
            "CREATE TRIGGER refuse BEFORE INSERT ON binding WHEN NEW.ip = {} BEGIN SELECT RAISE(ABORT, 'no'); END;",
            u32::from(ip(9))
        ))
        .unwrap();
        let ok = store.commit(T0, vec![Binding::new(ip(1), DhcpState::Active, T0)]);
        let bad = store.commit(T0, vec![Binding::new(ip(9), DhcpState::Active, T0)]);
        // Whether or not both landed in one group, the refused one fails and nothing of a failed group shows.
        let ok = ok.wait();
        assert!(bad.wait().is_err());
        assert_eq!(store.get(ip(9)).unwrap(), None);
        assert_eq!(store.get(ip(1)).unwrap().is_some(), ok.is_ok());
        store.shared.read().check_consistent();
        ext.execute_batch("DROP TRIGGER refuse").unwrap();
        let c = store.commit(T0, vec![Binding::new(ip(9), DhcpState::Active, T0)]).wait().unwrap().remove(0);
        assert_eq!(store.get(ip(9)).unwrap(), Some(c.clone()));
        assert_eq!(store.last_seq().unwrap(), c.seq);
        drop(store);
        let store = SqliteStore::open(&path, OpenOptions::new(T0)).unwrap();
        assert_eq!(store.get(ip(9)).unwrap(), Some(c));
    }

    /// A populated version-1 file (five secondary indexes, remote-id and relay-id columns) migrates in
    /// place at open and keeps every record.
    #[test]
    fn a_version_1_file_migrates_and_keeps_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(&format!("PRAGMA page_size = {};", schema::PAGE_SIZE)).unwrap();
            conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
            conn.execute_batch(&format!(
                "PRAGMA application_id = {}; PRAGMA user_version = 1; PRAGMA journal_mode = WAL;
                 INSERT INTO meta VALUES ('created_at', {T0}), ('horizon', {T0}), ('last_seq', 7),
                                         ('last_time', {T0});
                 INSERT INTO binding (ip, seq, time, state, state_since, htype, data_source, hwaddr, client_id,
                                      relay_agent_info, remote_id, relay_id, options)
                 VALUES ({}, 7, {T0}, 2, {T0}, 1, 1, x'020000000001', x'01', x'0203726d31', x'726d31', NULL,
                         x'0c000168');",
                schema::APPLICATION_ID as i32,
                u32::from(ip(1)),
            ))
            .unwrap();
        }
        let store = SqliteStore::open(&path, OpenOptions::new(T0)).unwrap();
        let c = store.get(ip(1)).unwrap().unwrap();
        assert_eq!((c.seq, c.time, c.binding.state), (7, T0, DhcpState::Active));
        assert_eq!(c.binding.remote_id(), Some(&b"rm1"[..]));
        assert_eq!(c.binding.option(12), Some(&b"h"[..]));
        assert_eq!(store.by_remote_id(b"rm1").unwrap(), vec![c.clone()]);
        assert_eq!(store.by_hardware_address(1, &[2, 0, 0, 0, 0, 1]).unwrap(), vec![c]);
        assert_eq!(store.last_seq().unwrap(), 7);
        store.commit(T0, vec![Binding::new(ip(2), DhcpState::Active, T0)]).wait().unwrap();
        assert!(store.integrity_check().unwrap().is_empty());
        drop(store);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let indexes: u32 = conn
            .query_row("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'binding'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(indexes, 0);
    }
}
