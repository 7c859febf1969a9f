//! The writer thread: group commit.
//!
//! One thread owns the only writing connection. It takes the first queued request, drains whatever else is
//! queued behind it, applies all of it in one transaction, fsyncs once, then applies the changes to the
//! in-memory copy readers are served from, and only then answers every request. Under load many
//! committers share one fsync, so throughput grows with concurrency instead of being capped at one commit
//! per fsync.
//!
//! What the file gets per change is one row upserted into the table keyed by address: no secondary index,
//! so a new lease at the next free address touches the same few pages as the other new leases of its
//! group, and a renewal rewrites one table leaf.

use super::checkpoint::Checkpointer;
use super::memory::{self, KeyHasher, Mem, Op, Rec};
use super::open::Counters;
use super::read::map_read_error;
use super::schema::meta;
use crate::error::StoreError;
use crate::packed::{self, View};
use crate::pending::Completer;
use crate::store::{Forgetting, Forgotten};
use crate::{Binding, BindingChange};
use rusqlite::{Connection, TransactionBehavior, params};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, RwLock};

/// State the writer publishes to readers.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The highest durable sequence number (published after the change is in `mem`).
    pub last_seq: AtomicU64,
    /// The history horizon. Raised *before* the removing transaction commits, so a reader that can see a
    /// removal also sees the raised horizon (conservative: at worst a catch-up gets DataMissing needlessly).
    pub horizon: AtomicU32,
    /// The current records and indexes, as of the last durable commit.
    pub mem: RwLock<Mem>,
}

impl Shared {
    pub(crate) fn read(&self) -> std::sync::RwLockReadGuard<'_, Mem> {
        // The writer never panics while holding the lock with `mem` half-updated (`apply` only does map
        // operations), so a poisoned lock still guards a consistent state.
        self.mem.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Mem> {
        self.mem.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// A write for the writer thread.
pub(crate) enum Request {
    Commit { now: u32, bindings: Vec<Binding>, done: Completer<Vec<BindingChange>> },
    Forget(Forgetting, Completer<Forgotten>),
}

impl Request {
    /// How many rows the request may touch, to bound the size of one group.
    fn weight(&self) -> usize {
        match self {
            Self::Commit { bindings, .. } => bindings.len().max(1),
            Self::Forget(what, _) => what.weight(),
        }
    }
}

const UPSERT: &str = "INSERT INTO binding (ip, seq, time, state, state_since, expires_at, cltt, htype, data_source, \
    hwaddr, client_id, relay_agent_info, options, reserved_for) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
    ON CONFLICT (ip) DO UPDATE SET seq = excluded.seq, time = excluded.time, state = excluded.state, \
    state_since = excluded.state_since, expires_at = excluded.expires_at, cltt = excluded.cltt, \
    htype = excluded.htype, data_source = excluded.data_source, hwaddr = excluded.hwaddr, \
    client_id = excluded.client_id, relay_agent_info = excluded.relay_agent_info, options = excluded.options, \
    reserved_for = excluded.reserved_for";

const DELETE: &str = "DELETE FROM binding WHERE ip = ?1";

const SET_META: &str = "UPDATE meta SET value = ?2 WHERE key = ?1";

/// The writer: the connection, the counters as of the last durable commit, and whether it gave up.
pub(crate) struct Writer {
    path: PathBuf,
    conn: Connection,
    counters: Counters,
    shared: Arc<Shared>,
    hasher: KeyHasher,
    max_group: usize,
    failed: Option<Arc<StoreError>>,
    checkpointer: Option<Checkpointer>,
    groups: u64,
}

/// Ask the checkpointer for a pass every this many group commits (besides its own period).
const CHECKPOINT_EVERY_GROUPS: u64 = 32;

/// If the WAL still grew past this (the checkpointer cannot keep up with a sustained burst), the writer
/// checkpoints itself, on the commit path, so the log and recovery time stay bounded.
const WAL_LIMIT_BYTES: u64 = 256 << 20;

/// The most changes applied to memory under one hold of the write lock (whole requests only).
const APPLY_CHUNK: usize = 128;

/// One transaction's worth of requests: a run of commits, or one forget.
enum Batch {
    Commits(Vec<(u32, Vec<Binding>, Completer<Vec<BindingChange>>)>),
    Forget(Forgetting, Completer<Forgotten>),
}

enum TransactError {
    BeforeCommit(StoreError),
    AtCommit(StoreError),
}

impl Writer {
    pub(crate) fn new(
        path: PathBuf,
        conn: Connection,
        counters: Counters,
        shared: Arc<Shared>,
        hasher: KeyHasher,
        max_group: usize,
        checkpointer: Option<Checkpointer>,
    ) -> Self {
        Self {
            path,
            conn,
            counters,
            shared,
            hasher,
            max_group: max_group.max(1),
            failed: None,
            checkpointer,
            groups: 0,
        }
    }

    /// Serve requests until every sender is gone, then close the connection.
    pub(crate) fn run(mut self, requests: Receiver<Request>) {
        while let Ok(first) = requests.recv() {
            let mut weight = first.weight();
            let mut group = vec![first];
            while weight < self.max_group {
                match requests.try_recv() {
                    Ok(next) => {
                        weight += next.weight();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.run_group(group);
        }
        drop(self.checkpointer.take());
        // Closing checkpoints the WAL into the database when this is the last connection; an error here
        // loses nothing (the WAL is replayed at the next open).
        let _ = self.conn.close();
    }

    /// Commits share one transaction; a forget (rare: maintenance) gets its own, so it decides what to
    /// remove from the state every earlier request left.
    fn run_group(&mut self, group: Vec<Request>) {
        let mut commits = Vec::new();
        for request in group {
            match request {
                Request::Commit { now, bindings, done } => commits.push((now, bindings, done)),
                Request::Forget(what, done) => {
                    self.run_batch(Batch::Commits(std::mem::take(&mut commits)));
                    self.run_batch(Batch::Forget(what, done));
                }
            }
        }
        self.run_batch(Batch::Commits(commits));
    }

    fn run_batch(&mut self, batch: Batch) {
        if matches!(&batch, Batch::Commits(c) if c.is_empty()) {
            return;
        }
        if let Some(cause) = &self.failed {
            let err = StoreError::WriterFailed { path: self.path.clone(), cause: cause.clone() };
            return batch.fail(err);
        }
        let before = self.counters;
        let mut batch = batch;
        let result = match &mut batch {
            Batch::Commits(commits) => self.commit(commits).map(|(ops, changes)| (ops, Outcome::Committed(changes))),
            Batch::Forget(what, _) => self.forget(what).map(|(ops, removed)| (ops, Outcome::Removed(removed))),
        };
        match result {
            Ok((ops, outcome)) => {
                let horizon = self.counters.horizon;
                // Durable: now readers may see it, and then the requesters may learn it.
                match (batch, outcome) {
                    (Batch::Commits(commits), Outcome::Committed(changes)) => {
                        // Readers wait while the lock is held (~1-5 µs per change, random inserts into
                        // large maps), so it is released between chunks of requests, never inside one:
                        // each commit becomes visible whole. Each chunk's committers are answered at once.
                        let mut ops = ops.into_iter();
                        let mut requests = commits.into_iter().zip(changes).peekable();
                        while requests.peek().is_some() {
                            let mut ready = Vec::new();
                            {
                                let mut mem = self.shared.write();
                                let mut applied = 0;
                                while applied < APPLY_CHUNK {
                                    let Some(((_, _, done), changes)) = requests.next() else { break };
                                    applied += changes.len();
                                    mem.apply(ops.by_ref().take(changes.len()));
                                    ready.push((done, changes));
                                }
                            }
                            if let Some(last) = ready.last().and_then(|(_, c)| c.last()) {
                                self.shared.last_seq.store(last.seq, Ordering::SeqCst);
                            }
                            for (done, changes) in ready {
                                done.complete(Ok(changes));
                            }
                        }
                    }
                    (Batch::Forget(_, done), Outcome::Removed(removed)) => {
                        self.shared.write().apply(ops);
                        self.shared.last_seq.store(self.counters.last_seq, Ordering::SeqCst);
                        done.complete(Ok(Forgotten { removed, horizon }))
                    }
                    // Each batch yields an outcome of its own kind.
                    (batch, _) => batch.fail(StoreError::Closed),
                }
                self.after_commit();
            }
            Err(TransactError::BeforeCommit(err)) => {
                // Rolled back: nothing of the batch happened, the store is as it was.
                self.counters = before;
                batch.fail(err);
            }
            Err(TransactError::AtCommit(err)) => {
                // A failed COMMIT (typically fsync) leaves durability unknown: stop writing. Readers keep
                // the state of the last durable commit.
                self.counters = before;
                let err = Arc::new(err);
                self.failed = Some(err.clone());
                batch.fail(StoreError::WriterFailed { path: self.path.clone(), cause: err });
            }
        }
    }

    fn after_commit(&mut self) {
        self.groups += 1;
        if self.groups.is_multiple_of(CHECKPOINT_EVERY_GROUPS) {
            if let Some(c) = &self.checkpointer {
                c.nudge();
            }
            let wal = super::open::sidecar(&self.path, "-wal");
            if std::fs::metadata(wal).is_ok_and(|m| m.len() > WAL_LIMIT_BYTES) {
                // Best effort: a failure leaves the WAL as it is, which loses nothing.
                let _ = self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        }
    }

    /// Write a run of commits (taking their bindings); return the memory changes and each request's
    /// committed changes.
    #[allow(clippy::type_complexity)]
    fn commit(
        &mut self,
        commits: &mut [(u32, Vec<Binding>, Completer<Vec<BindingChange>>)],
    ) -> Result<(Vec<Op>, Vec<Vec<BindingChange>>), TransactError> {
        let n = commits.iter().map(|c| c.1.len()).sum();
        let mut ops = Vec::with_capacity(n);
        let mut changes = Vec::with_capacity(commits.len());
        let path = self.path.clone();
        let sql = |e: rusqlite::Error| TransactError::BeforeCommit(map_read_error(&path, e));
        let before = self.counters;
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(sql)?;
        {
            let mut upsert = tx.prepare_cached(UPSERT).map_err(sql)?;
            for (now, bindings, _) in commits.iter_mut() {
                let mut these = Vec::with_capacity(bindings.len());
                for binding in std::mem::take(bindings) {
                    let b = &binding;
                    let seq = self.counters.last_seq + 1;
                    let time = (*now).max(self.counters.last_time);
                    let ip = u32::from(b.ip);
                    let (data, options) = packed::encode_binding(b);
                    let hwaddr = (!b.hardware_address.is_empty()).then_some(b.hardware_address.as_slice());
                    upsert
                        .execute(params![
                            ip,
                            seq as i64,
                            time,
                            b.state.code(),
                            b.state_since,
                            b.expires_at,
                            b.cltt,
                            b.htype,
                            b.data_source.0,
                            hwaddr,
                            b.client_id,
                            b.relay_agent_info,
                            options,
                            b.reserved_for,
                        ])
                        .map_err(sql)?;
                    self.counters.last_seq = seq;
                    self.counters.last_time = time;
                    ops.push(Op::Put { ip, rec: Rec { seq, time, data }, keys: self.hasher.keys_of_binding(b) });
                    these.push(BindingChange { seq, time, binding });
                }
                changes.push(these);
            }
        }
        self.finish(tx, before)?;
        Ok((ops, changes))
    }

    /// Write one forget; return the memory changes and the removed records, oldest change first.
    fn forget(&mut self, what: &Forgetting) -> Result<(Vec<Op>, Vec<BindingChange>), TransactError> {
        let corrupt = |e: super::memory::ReadError| {
            TransactError::BeforeCommit(StoreError::corrupt(&self.path, format!("record of {}: {}", e.ip, e.detail)))
        };
        let removed = {
            let mem = self.shared.read();
            let ips: Vec<u32> = match what {
                Forgetting::Ips(ips) => {
                    let mut seen = HashSet::new();
                    ips.iter().map(|&ip| u32::from(ip)).filter(|&ip| seen.insert(ip)).collect()
                }
                Forgetting::Expired { now, retention_secs, limit } => {
                    let Some(cutoff) = now.checked_sub(*retention_secs) else { return Ok((Vec::new(), Vec::new())) };
                    mem.oldest_before(cutoff, *limit, |v: &View<'_>, time| {
                        crate::forgettable(v.state(), time, v.expires_at(), *now, *retention_secs)
                    })
                }
            };
            let hits = ips.into_iter().filter_map(|ip| mem.get(Ipv4Addr::from(ip))).collect();
            drop(mem);
            let mut removed = memory::decode(hits).map_err(corrupt)?;
            removed.sort_unstable_by_key(|c| c.seq);
            removed
        };
        if removed.is_empty() {
            return Ok((Vec::new(), removed));
        }
        let path = self.path.clone();
        let sql = |e: rusqlite::Error| TransactError::BeforeCommit(map_read_error(&path, e));
        let before = self.counters;
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(sql)?;
        let mut ops = Vec::with_capacity(removed.len());
        {
            let mut delete = tx.prepare_cached(DELETE).map_err(sql)?;
            for c in &removed {
                let ip = u32::from(c.binding.ip);
                delete.execute([ip]).map_err(sql)?;
                ops.push(Op::Remove { ip });
            }
        }
        // A removed record that changed at t leaves changes at t unrepresented: the horizon moves past t.
        if let Some(latest) = removed.iter().map(|c| c.time).max() {
            self.counters.horizon = self.counters.horizon.max(latest.saturating_add(1));
        }
        self.finish(tx, before)?;
        Ok((ops, removed))
    }

    /// Persist the counters and commit (fsync).
    fn finish(&self, tx: rusqlite::Transaction<'_>, before: Counters) -> Result<(), TransactError> {
        let path = self.path.clone();
        let sql = |e: rusqlite::Error| TransactError::BeforeCommit(map_read_error(&path, e));
        let c = self.counters;
        if c != before {
            let mut set = tx.prepare_cached(SET_META).map_err(sql)?;
            if c.last_seq != before.last_seq {
                set.execute(params![meta::LAST_SEQ, c.last_seq as i64]).map_err(sql)?;
            }
            if c.last_time != before.last_time {
                set.execute(params![meta::LAST_TIME, c.last_time]).map_err(sql)?;
            }
            if c.horizon != before.horizon {
                set.execute(params![meta::HORIZON, c.horizon]).map_err(sql)?;
            }
        }
        if c.horizon != before.horizon {
            self.shared.horizon.fetch_max(c.horizon, Ordering::SeqCst);
        }
        tx.commit().map_err(|e| TransactError::AtCommit(StoreError::sqlite(&path, e)))
    }
}

enum Outcome {
    Committed(Vec<Vec<BindingChange>>),
    Removed(Vec<BindingChange>),
}

impl Batch {
    fn fail(self, err: StoreError) {
        match self {
            Self::Commits(commits) => commits.into_iter().for_each(|(_, _, done)| done.complete(Err(err.clone()))),
            Self::Forget(_, done) => done.complete(Err(err)),
        }
    }
}
