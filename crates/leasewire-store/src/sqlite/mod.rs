//! The default store: one SQLite file (WAL, `synchronous = FULL`) under the server's data directory.
//!
//! * One writer thread owns the only writing connection and does group commit (see `writer`).
//! * A few reader connections serve lookups and scans concurrently with the writer (see `read`).
//! * Opening tells our files from foreign, damaged and newer ones and never reinitialises an existing file
//!   (see `open`).

mod checkpoint;
mod open;
mod read;
mod schema;
mod writer;

pub use schema::{APPLICATION_ID, SCHEMA_VERSION};

use crate::error::StoreError;
use crate::pending::{Pending, PendingCommit};
use crate::store::{Forgotten, LeaseStore, ScanFilter};
use crate::{Binding, BindingChange};
use read::{Key, Readers};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use writer::{Request, Shared, Writer};

/// How to open a [`SqliteStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// The server's current time (Unix seconds). A store created by this open gets it as its creation time
    /// and history horizon: it knows nothing that happened before.
    pub now: u32,
    /// Reader connections for lookups and scans (at least 1). Callers beyond this many wait for one.
    pub readers: usize,
    /// Run `PRAGMA integrity_check` at open and refuse a file that fails it. Reads every page: seconds for
    /// millions of bindings, so off by default.
    pub verify_integrity: bool,
    /// The most bindings one group transaction takes from the queue before committing (bounds the latency a
    /// burst adds to the committers behind it). A single larger batch is still committed whole.
    pub max_group_bindings: usize,
    /// How much of the database file reader connections map into memory (`PRAGMA mmap_size`); 0 reads
    /// through system calls. Mapping makes lookups and scans several times faster once the file is in
    /// the page cache. The price: an I/O error on the mapped file (failing disk, file truncated by
    /// someone else) kills the process with SIGBUS instead of returning an error.
    pub mmap_bytes: u64,
}

impl OpenOptions {
    /// Defaults: 4 readers, no integrity check at open, groups of up to 8192 bindings, readers map up to
    /// 1 GiB of the file.
    pub fn new(now: u32) -> Self {
        Self { now, readers: 4, verify_integrity: false, max_group_bindings: 8192, mmap_bytes: 1 << 30 }
    }
}

/// The SQLite lease store. See the crate documentation for the model and [`LeaseStore`] for the contract.
///
/// Dropping it finishes every queued write, then closes the file.
pub struct SqliteStore {
    path: PathBuf,
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    readers: Readers,
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
        let (conn, counters) = open::open_writer(&path, options.now, options.verify_integrity)?;
        let readers = (0..options.readers.max(1))
            .map(|_| open::open_reader(&path, options.mmap_bytes))
            .collect::<Result<Vec<_>, _>>()?;
        let shared =
            Arc::new(Shared { last_seq: AtomicU64::new(counters.last_seq), horizon: AtomicU32::new(counters.horizon) });
        let checkpointer =
            checkpoint::Checkpointer::spawn(open::open_checkpointer(&path)?).map_err(|e| StoreError::io(&path, e))?;
        let (tx, rx) = mpsc::channel();
        let writer =
            Writer::new(path.clone(), conn, counters, shared.clone(), options.max_group_bindings, Some(checkpointer));
        let handle = std::thread::Builder::new()
            .name("leasewire-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(Self { path, requests: Some(tx), writer: Some(handle), shared, readers: Readers::new(readers) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `PRAGMA integrity_check` now: the problems found, empty if the file is consistent. Reads every
    /// page; for operators and tests.
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        self.readers.with(&self.path, open::integrity_check)
    }

    fn send<T>(&self, make: impl FnOnce(crate::pending::Completer<T>) -> Request) -> Pending<T> {
        let (pending, done) = Pending::new();
        if let Some(requests) = &self.requests {
            // If the writer is gone the request (and its completer) is dropped: the Pending resolves Closed.
            let _ = requests.send(make(done));
        }
        pending
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
        for b in &bindings {
            if let Err(problem) = b.validate() {
                return Pending::ready(Err(StoreError::InvalidBinding { ip: b.ip, problem }));
            }
        }
        if bindings.is_empty() {
            return Pending::ready(Ok(Vec::new()));
        }
        self.send(|done| Request::Commit { now, bindings, done })
    }

    fn get(&self, ip: Ipv4Addr) -> Result<Option<BindingChange>, StoreError> {
        self.readers.with(&self.path, |c| read::get(c, ip))
    }

    fn by_hardware_address(&self, htype: u8, addr: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        self.readers.with(&self.path, |c| read::by_hardware_address(c, htype, addr))
    }

    fn by_client_id(&self, client_id: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        self.readers.with(&self.path, |c| read::by_key(c, Key::ClientId, client_id))
    }

    fn by_remote_id(&self, remote_id: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        self.readers.with(&self.path, |c| read::by_key(c, Key::RemoteId, remote_id))
    }

    fn by_relay_id(&self, relay_id: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        self.readers.with(&self.path, |c| read::by_key(c, Key::RelayId, relay_id))
    }

    fn scan(
        &self,
        filter: &ScanFilter,
        after: Option<Ipv4Addr>,
        limit: usize,
    ) -> Result<Vec<BindingChange>, StoreError> {
        self.readers.with(&self.path, |c| read::scan(c, filter, after, limit))
    }

    fn changed_since(&self, time: u32, after_seq: Option<u64>, limit: usize) -> Result<Vec<BindingChange>, StoreError> {
        self.readers.with(&self.path, |c| read::changed_since(c, time, after_seq, limit))
    }

    fn changes_after_seq(&self, seq: u64, limit: usize) -> Result<Vec<BindingChange>, StoreError> {
        self.readers.with(&self.path, |c| read::changes_after_seq(c, seq, limit))
    }

    fn history_horizon(&self) -> Result<u32, StoreError> {
        Ok(self.shared.horizon.load(Ordering::SeqCst))
    }

    fn forget(&self, ips: &[Ipv4Addr]) -> Pending<Forgotten> {
        let ips = ips.to_vec();
        self.send(|done| Request::Forget { ips, done })
    }

    fn forget_expired(&self, now: u32, retention_secs: u32, limit: usize) -> Pending<Forgotten> {
        self.send(|done| Request::ForgetExpired { now, retention_secs, limit, done })
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        Ok(self.shared.last_seq.load(Ordering::SeqCst))
    }

    fn len(&self) -> Result<u64, StoreError> {
        self.readers.with(&self.path, read::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every lookup and scan must be served by an index range, never by a full table scan or a sort of all
    /// matches: that is what keeps lookups in microseconds and pages proportional to their size.
    #[test]
    fn every_query_uses_an_index_and_no_temp_sort() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("leases.db"), OpenOptions::new(1000)).unwrap();
        store
            .readers
            .with(&store.path, |c| {
                for (name, sql) in read::all_queries() {
                    let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    // Unbound parameters are NULL, which is enough for the planner.
                    let mut rows = stmt.raw_query();
                    let mut plan = Vec::new();
                    while let Some(row) = rows.next()? {
                        plan.push(row.get::<_, String>(3)?);
                    }
                    let plan = plan.join(" | ");
                    eprintln!("{name}: {plan}");
                    let expect_full_scan = name == "scan_all";
                    assert!(
                        expect_full_scan || plan.contains("USING") && !plan.contains("SCAN binding "),
                        "{name}: {plan}"
                    );
                    if expect_full_scan {
                        assert!(plan.contains("INTEGER PRIMARY KEY"), "{name}: {plan}");
                    }
                    assert!(!plan.contains("TEMP B-TREE"), "{name} sorts its whole result: {plan}");
                }
                Ok(())
            })
            .unwrap();
    }

    /// The binary search over the seq index must find exactly the first record changed at or after T, with
    /// gaps in the sequence (overwritten and forgotten records) and long runs of equal times.
    #[test]
    fn first_seq_since_matches_a_linear_search() {
        use leasewire_proto::DhcpState;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("leases.db"), OpenOptions::new(1000)).unwrap();
        let ip = |n: u32| Ipv4Addr::from(0x0a00_0000 + n);
        for k in 0..300u32 {
            // Times advance in bursts: many commits share a second, some seconds have none.
            let now = 1000 + (k / 7) * 3;
            store.commit(now, vec![Binding::new(ip(k % 120), DhcpState::Active, now)]).wait().unwrap();
        }
        store.forget(&[ip(5), ip(77), ip(119)]).wait().unwrap();
        let all = store.changes_after_seq(0, 1000).unwrap();
        for t in 990..1140 {
            let expected = all.iter().filter(|c| c.time >= t).map(|c| c.seq as i64).min();
            let got = store.readers.with(&store.path, |c| read::first_seq_since(c, t)).unwrap();
            assert_eq!(got, expected, "time {t}");
        }
    }
}
