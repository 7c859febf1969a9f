//! The writer thread: group commit.
//!
//! One thread owns the only writing connection. It takes the first queued request, drains whatever else is
//! queued behind it, applies all of it in one transaction, fsyncs once, and only then answers every
//! request. Under load many committers share one fsync, so throughput grows with concurrency instead of
//! being capped at one commit per fsync.

use super::checkpoint::Checkpointer;
use super::open::Counters;
use super::read::{decode_row, first_seq_since, map_read_error};
use super::schema::{COLUMNS, meta};
use crate::binding::encode_options;
use crate::error::StoreError;
use crate::pending::Completer;
use crate::store::Forgotten;
use crate::{Binding, BindingChange};
use leasewire_proto::DhcpState;
use rusqlite::{Connection, TransactionBehavior, params};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;

/// State the writer publishes to readers without a database round trip.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The highest durable sequence number.
    pub last_seq: AtomicU64,
    /// The history horizon. Raised *before* the removing transaction commits, so a reader that can see a
    /// removal also sees the raised horizon (conservative: at worst a catch-up gets DataMissing needlessly).
    pub horizon: AtomicU32,
}

/// A write for the writer thread.
pub(crate) enum Request {
    Commit { now: u32, bindings: Vec<Binding>, done: Completer<Vec<BindingChange>> },
    Forget { ips: Vec<Ipv4Addr>, done: Completer<Forgotten> },
    ForgetExpired { now: u32, retention_secs: u32, limit: usize, done: Completer<Forgotten> },
}

impl Request {
    /// How many rows the request may touch, to bound the size of one group.
    fn weight(&self) -> usize {
        match self {
            Self::Commit { bindings, .. } => bindings.len().max(1),
            Self::Forget { ips, .. } => ips.len().max(1),
            Self::ForgetExpired { limit, .. } => (*limit).max(1),
        }
    }
}

enum Work {
    Commit { now: u32, bindings: Vec<Binding> },
    Forget { ips: Vec<Ipv4Addr> },
    ForgetExpired { now: u32, retention_secs: u32, limit: usize },
}

enum Reply {
    Commit(Completer<Vec<BindingChange>>),
    Forget(Completer<Forgotten>),
}

enum Outcome {
    Committed(Vec<BindingChange>),
    Removed(Vec<BindingChange>),
}

const UPSERT: &str = "INSERT INTO binding (ip, seq, time, state, state_since, expires_at, cltt, htype, data_source, \
    hwaddr, client_id, relay_agent_info, remote_id, relay_id, options, reserved_for) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
    ON CONFLICT (ip) DO UPDATE SET seq = excluded.seq, time = excluded.time, state = excluded.state, \
    state_since = excluded.state_since, expires_at = excluded.expires_at, cltt = excluded.cltt, \
    htype = excluded.htype, data_source = excluded.data_source, hwaddr = excluded.hwaddr, \
    client_id = excluded.client_id, relay_agent_info = excluded.relay_agent_info, remote_id = excluded.remote_id, \
    relay_id = excluded.relay_id, options = excluded.options, reserved_for = excluded.reserved_for";

/// The common case, a renewal or state change that keeps every lookup key: update the record without
/// touching the hardware-address, client-id, remote-id and relay-id indexes (SQLite maintains only the
/// indexes whose columns an UPDATE sets). Saves up to four random index pages per binding in the WAL.
const UPDATE_SAME_KEYS: &str = "UPDATE binding SET seq = ?2, time = ?3, state = ?4, state_since = ?5, \
    expires_at = ?6, cltt = ?7, data_source = ?8, relay_agent_info = ?9, options = ?10, reserved_for = ?11 \
    WHERE ip = ?1";

const KEYS_OF: &str = "SELECT htype, hwaddr, client_id, remote_id, relay_id FROM binding WHERE ip = ?1";

const SET_META: &str = "UPDATE meta SET value = ?2 WHERE key = ?1";

/// The writer: the connection, the counters as of the last durable commit, and whether it gave up.
pub(crate) struct Writer {
    path: PathBuf,
    conn: Connection,
    counters: Counters,
    shared: Arc<Shared>,
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

impl Writer {
    pub(crate) fn new(
        path: PathBuf,
        conn: Connection,
        counters: Counters,
        shared: Arc<Shared>,
        max_group: usize,
        checkpointer: Option<Checkpointer>,
    ) -> Self {
        Self { path, conn, counters, shared, max_group: max_group.max(1), failed: None, checkpointer, groups: 0 }
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

    fn run_group(&mut self, group: Vec<Request>) {
        let (work, replies): (Vec<Work>, Vec<Reply>) = group
            .into_iter()
            .map(|r| match r {
                Request::Commit { now, bindings, done } => (Work::Commit { now, bindings }, Reply::Commit(done)),
                Request::Forget { ips, done } => (Work::Forget { ips }, Reply::Forget(done)),
                Request::ForgetExpired { now, retention_secs, limit, done } => {
                    (Work::ForgetExpired { now, retention_secs, limit }, Reply::Forget(done))
                }
            })
            .unzip();

        if let Some(cause) = &self.failed {
            let err = StoreError::WriterFailed { path: self.path.clone(), cause: cause.clone() };
            return replies.into_iter().for_each(|r| r.fail(err.clone()));
        }

        let before = self.counters;
        match self.transact(work) {
            Ok(outcomes) => {
                self.groups += 1;
                if self.groups % CHECKPOINT_EVERY_GROUPS == 0 {
                    if let Some(c) = &self.checkpointer {
                        c.nudge();
                    }
                    let wal = super::open::sidecar(&self.path, "-wal");
                    if std::fs::metadata(wal).is_ok_and(|m| m.len() > WAL_LIMIT_BYTES) {
                        // Best effort: a failure leaves the WAL as it is, which loses nothing.
                        let _ = self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    }
                }
                self.shared.last_seq.store(self.counters.last_seq, Ordering::SeqCst);
                let horizon = self.counters.horizon;
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    match (reply, outcome) {
                        (Reply::Commit(done), Outcome::Committed(changes)) => done.complete(Ok(changes)),
                        (Reply::Forget(done), Outcome::Removed(removed)) => {
                            done.complete(Ok(Forgotten { removed, horizon }))
                        }
                        // `transact` yields one outcome of the request's own kind per request.
                        (reply, _) => reply.fail(StoreError::Closed),
                    }
                }
            }
            Err(TransactError::BeforeCommit(err)) => {
                // Rolled back: nothing of the group happened, the store is as it was.
                self.counters = before;
                replies.into_iter().for_each(|r| r.fail(err.clone()));
            }
            Err(TransactError::AtCommit(err)) => {
                // A failed COMMIT (typically fsync) leaves durability unknown: stop writing.
                self.counters = before;
                let err = Arc::new(err);
                self.failed = Some(err.clone());
                let err = StoreError::WriterFailed { path: self.path.clone(), cause: err };
                replies.into_iter().for_each(|r| r.fail(err.clone()));
            }
        }
    }

    fn transact(&mut self, work: Vec<Work>) -> Result<Vec<Outcome>, TransactError> {
        let path = self.path.clone();
        let before = self.counters;
        let sql = |e: rusqlite::Error| TransactError::BeforeCommit(map_read_error(&path, e));
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(sql)?;
        let mut outcomes = Vec::with_capacity(work.len());
        for item in work {
            outcomes.push(match item {
                Work::Commit { now, bindings } => {
                    Outcome::Committed(apply_commit(&tx, &mut self.counters, now, bindings).map_err(sql)?)
                }
                Work::Forget { ips } => Outcome::Removed(apply_forget(&tx, &mut self.counters, &ips).map_err(sql)?),
                Work::ForgetExpired { now, retention_secs, limit } => Outcome::Removed(
                    apply_forget_expired(&tx, &mut self.counters, now, retention_secs, limit).map_err(sql)?,
                ),
            });
        }
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
        tx.commit().map_err(|e| TransactError::AtCommit(StoreError::sqlite(&path, e)))?;
        Ok(outcomes)
    }
}

enum TransactError {
    BeforeCommit(StoreError),
    AtCommit(StoreError),
}

impl Reply {
    fn fail(self, err: StoreError) {
        match self {
            Self::Commit(done) => done.complete(Err(err)),
            Self::Forget(done) => done.complete(Err(err)),
        }
    }
}

fn apply_commit(
    conn: &Connection,
    counters: &mut Counters,
    now: u32,
    bindings: Vec<Binding>,
) -> rusqlite::Result<Vec<BindingChange>> {
    let mut upsert = conn.prepare_cached(UPSERT)?;
    let mut update = conn.prepare_cached(UPDATE_SAME_KEYS)?;
    let mut keys_of = conn.prepare_cached(KEYS_OF)?;
    let mut changes = Vec::with_capacity(bindings.len());
    for binding in bindings {
        let seq = counters.last_seq + 1;
        let time = now.max(counters.last_time);
        let b = &binding;
        let ip = u32::from(b.ip);
        let hwaddr = (!b.hardware_address.is_empty()).then_some(b.hardware_address.as_slice());
        let options = (!b.options.is_empty()).then(|| encode_options(&b.options));
        let (remote_id, relay_id) = (b.remote_id(), b.relay_id());
        let same_keys = {
            let mut rows = keys_of.query([ip])?;
            match rows.next()? {
                Some(row) => {
                    row.get::<_, u8>(0)? == b.htype
                        && row.get_ref(1)?.as_blob_or_null()? == hwaddr
                        && row.get_ref(2)?.as_blob_or_null()? == b.client_id.as_deref()
                        && row.get_ref(3)?.as_blob_or_null()? == remote_id
                        && row.get_ref(4)?.as_blob_or_null()? == relay_id
                }
                None => false,
            }
        };
        if same_keys {
            update.execute(params![
                ip,
                seq as i64,
                time,
                b.state.code(),
                b.state_since,
                b.expires_at,
                b.cltt,
                b.data_source.0,
                b.relay_agent_info,
                options,
                b.reserved_for,
            ])?;
        } else {
            upsert.execute(params![
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
                remote_id,
                relay_id,
                options,
                b.reserved_for,
            ])?;
        }
        counters.last_seq = seq;
        counters.last_time = time;
        changes.push(BindingChange { seq, time, binding });
    }
    Ok(changes)
}

fn apply_forget(conn: &Connection, counters: &mut Counters, ips: &[Ipv4Addr]) -> rusqlite::Result<Vec<BindingChange>> {
    let mut delete = conn.prepare_cached(&format!("DELETE FROM binding WHERE ip = ?1 RETURNING {COLUMNS}"))?;
    let mut removed = Vec::new();
    for ip in ips {
        let mut rows = delete.query([u32::from(*ip)])?;
        while let Some(row) = rows.next()? {
            removed.push(decode_row(row)?);
        }
    }
    raise_horizon(counters, &removed);
    Ok(removed)
}

fn apply_forget_expired(
    conn: &Connection,
    counters: &mut Counters,
    now: u32,
    retention_secs: u32,
    limit: usize,
) -> rusqlite::Result<Vec<BindingChange>> {
    let Some(cutoff) = now.checked_sub(retention_secs) else { return Ok(Vec::new()) };
    // Records changed before `cutoff` are a prefix of the seq order (times never decrease along it).
    let end = first_seq_since(conn, cutoff)?.unwrap_or(i64::MAX);
    let mut delete = conn.prepare_cached(&format!(
        "DELETE FROM binding WHERE ip IN (SELECT ip FROM binding WHERE seq < ?1 AND +time < ?2 AND state != ?3 \
         AND (expires_at IS NULL OR expires_at <= ?4) ORDER BY seq LIMIT ?5) RETURNING {COLUMNS}"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut removed = Vec::new();
    let mut rows = delete.query(params![end, cutoff, DhcpState::Active.code(), now, limit])?;
    while let Some(row) = rows.next()? {
        removed.push(decode_row(row)?);
    }
    drop(rows);
    removed.sort_unstable_by_key(|c| c.seq);
    raise_horizon(counters, &removed);
    Ok(removed)
}

/// A removed record that changed at t leaves changes at t unrepresented: the horizon moves past t.
fn raise_horizon(counters: &mut Counters, removed: &[BindingChange]) {
    if let Some(latest) = removed.iter().map(|c| c.time).max() {
        counters.horizon = counters.horizon.max(latest.saturating_add(1));
    }
}
