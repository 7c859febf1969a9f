//! The requestor's copy of the servers' bindings: one record per address, merged from every Bulk and Active
//! message of every watched server by RFC 6926 §7.6 (an older message never overwrites a newer one, and
//! duplicates are harmless, ALQ-7.4-6), with each server's saved base-time and unfilled gaps.
//!
//! Optionally persisted to SQLite, written behind in batches: each batch commits the changed bindings
//! *together with* the base-times saved after them, so a crash can only roll both back, and the next
//! catch-up re-sends what was lost. Nothing else needs to be durable: the server is the source of truth.

mod browse;
mod clock;
#[cfg(feature = "sqlite")]
mod db;
mod record;

pub use browse::{Filter, Page, RelayCounts};
pub use record::Via;

use crate::history::Event;
use clock::ClockOffset;
use leasewire_proto::Binding;
use record::Record;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
#[cfg(feature = "sqlite")]
use std::path::Path;
use std::sync::Arc;
#[cfg(feature = "sqlite")]
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::broadcast;

/// Lock a shared replica. A panic elsewhere while it was held leaves the data as consistent as any single
/// merge step leaves it, so the poison is ignored rather than taking the watcher down with it.
pub fn lock(replica: &std::sync::Mutex<Replica>) -> std::sync::MutexGuard<'_, Replica> {
    replica.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why the replica file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// SQLite failed.
    #[cfg(feature = "sqlite")]
    #[error("replica {path}: {source}")]
    Sqlite {
        /// The file.
        path: String,
        /// What failed.
        source: rusqlite::Error,
    },
    /// The file holds something this version cannot read.
    #[error("replica {path}: {message}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A write to the file was cancelled because the runtime was stopping (the next start catches up).
    #[error("replica not written: the runtime stopped first")]
    Stopped,
    /// The file could not be created.
    #[error("replica {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
}

/// A period whose changes the replica may have missed (RFC 7724 DataMissing): fill it with a Bulk Leasequery
/// bounded by query-start-time `from` and query-end-time `to` (ALQ-7.4.1-13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gap {
    /// query-start-time of the Active query that got DataMissing.
    pub from: u32,
    /// The DataMissing message's base-time.
    pub to: u32,
}

/// What the replica knows of one watched server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    /// Its address, as watched (`IP:PORT`).
    pub addr: String,
    /// Whether the first full Bulk Leasequery completed.
    pub seeded: bool,
    /// The base-time to send as query-start-time next (ALQ-7.3-6).
    pub saved: Option<u32>,
    /// Gaps not yet filled.
    pub gaps: Vec<Gap>,
    /// Its clock offset as last estimated (seconds to add to its times for the requestor's clock, BLQ-7.4-2),
    /// kept so a restarted watcher merges correctly before the server is heard from again.
    pub clock_offset: i64,
}

/// What applying a message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new address.
    New,
    /// The binding changed.
    Changed,
    /// Same binding again (catch-up and live overlap, a duplicate): nothing new.
    Duplicate,
    /// Older than what the replica has: ignored (BLQ-7.6).
    Stale,
}

/// A change as live viewers get it (`/events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveChange {
    /// The binding as the replica now has it.
    pub binding: Binding,
    /// The server that reported it.
    pub server: String,
}

/// Changes queued for live viewers; one that falls further behind is told to reload.
const LIVE_CAPACITY: usize = 4096;

/// The replica.
#[derive(Debug)]
pub struct Replica {
    /// Ordered by address: pages of the browser view are ranges of it.
    entries: BTreeMap<Ipv4Addr, Record>,
    servers: Vec<ServerState>,
    /// Each server's clock against ours, learned from base-times since the watcher started (not persisted:
    /// a server's first message after a restart sets it again).
    clocks: Vec<ClockOffset>,
    /// Bulk queries of each server under way (`bulk_requested` to `bulk_ended`; not persisted).
    bulk_queries: HashMap<u16, u32>,
    dirty: HashSet<Ipv4Addr>,
    servers_dirty: bool,
    /// The file, shared with [`Flush`]es being written (one at a time: the lock orders them).
    #[cfg(feature = "sqlite")]
    db: Option<Arc<Mutex<db::Db>>>,
    /// How long history events are kept; `None`: none are recorded.
    history: Option<Duration>,
    /// History events of the changes not yet flushed, in the order applied.
    events: Vec<Event>,
    live: broadcast::Sender<Arc<LiveChange>>,
}

/// How long opening the replica file and a [`Flush::write`] wait for another connection's lock on the file
/// (an operator's `sqlite3` shell, a backup) before they fail: long, because a library caller or the
/// watcher's start expects the write to succeed, not to be retried.
pub const PATIENT_LOCK_WAIT: Duration = Duration::from_secs(60);

/// Changes taken out of the replica to be written to its file without holding the replica: the SQLite
/// transaction (and its fsync) runs on a blocking thread while merges and lookups go on.
#[derive(Debug)]
#[must_use = "the changes are only in the file once written"]
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub struct Flush {
    records: Vec<(Ipv4Addr, Vec<u8>)>,
    events: Vec<Event>,
    servers: Option<Vec<ServerState>>,
    #[cfg(feature = "sqlite")]
    db: Arc<Mutex<db::Db>>,
    /// Without SQLite there is no file, so no flush is ever taken.
    #[cfg(not(feature = "sqlite"))]
    never: std::convert::Infallible,
}

impl Flush {
    /// Write the changes in one transaction (blocking); returns how many bindings were written. Flushes must
    /// be written in the order they were taken: a later one may overwrite an address an earlier one holds.
    ///
    /// A failed write changed nothing in the file (the transaction rolled back), and the flush still holds
    /// its changes (they are no longer marked dirty in the replica): write it again before any later flush,
    /// as `watch` does, or stop using the replica. Either way nothing is lost: the file stays as of the last
    /// successful flush, whose saved base-times the next start catches up from.
    ///
    /// It waits up to a minute for another writer's lock on the file (an operator's `sqlite3` shell, a
    /// backup); [`Flush::write_waiting`] chooses the wait.
    pub fn write(&self) -> Result<usize, ReplicaError> {
        self.write_waiting(PATIENT_LOCK_WAIT)
    }

    /// [`Flush::write`], waiting up to `lock_wait` for another writer's lock. The watcher waits briefly and
    /// retries between waits, because a blocked wait cannot be interrupted by a stop.
    pub fn write_waiting(&self, lock_wait: Duration) -> Result<usize, ReplicaError> {
        #[cfg(not(feature = "sqlite"))]
        match (self.never, lock_wait).0 {}
        #[cfg(feature = "sqlite")]
        {
            let mut db = self.db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            db.write(&self.records, &self.events, self.servers.as_deref(), lock_wait)?;
            Ok(self.records.len())
        }
    }
}

/// Deletes old history events from the replica file, a small batch at a time, so the writer of the
/// stream's flushes waits at most one batch.
#[derive(Debug, Clone)]
pub struct Pruner {
    #[cfg(feature = "sqlite")]
    db: Arc<Mutex<db::Db>>,
    retention: Duration,
    /// Without SQLite there is no history to prune.
    #[cfg(not(feature = "sqlite"))]
    never: std::convert::Infallible,
}

impl Pruner {
    /// Events per batch.
    pub const BATCH: u32 = 2_000;

    /// How long events are kept.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Delete events that arrived before `now` − retention (blocking), batch by batch; how many.
    pub fn prune(&self, now: u32) -> Result<usize, ReplicaError> {
        #[cfg(not(feature = "sqlite"))]
        match (self.never, now) {}
        #[cfg(feature = "sqlite")]
        {
            let cutoff = now.saturating_sub(u32::try_from(self.retention.as_secs()).unwrap_or(u32::MAX));
            let mut total = 0;
            loop {
                let mut db = self.db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let n = db.prune(cutoff, Self::BATCH)?;
                drop(db);
                total += n;
                if n < Self::BATCH as usize {
                    return Ok(total);
                }
            }
        }
    }
}

impl Replica {
    /// A replica in memory only, watching `servers`.
    pub fn in_memory(servers: &[String]) -> Self {
        let mut r = Self {
            entries: BTreeMap::new(),
            servers: Vec::new(),
            clocks: Vec::new(),
            bulk_queries: HashMap::new(),
            dirty: HashSet::new(),
            servers_dirty: false,
            #[cfg(feature = "sqlite")]
            db: None,
            history: None,
            events: Vec::new(),
            live: broadcast::channel(LIVE_CAPACITY).0,
        };
        for s in servers {
            r.server_id(s);
        }
        r
    }

    /// Open (or create, mode 0600) the replica file and load it; `servers` are added if new. History is kept
    /// for [`crate::history::DEFAULT_RETENTION`] unless [`Replica::set_history`] says otherwise.
    #[cfg(feature = "sqlite")]
    pub fn open(path: &Path, servers: &[String]) -> Result<Self, ReplicaError> {
        let (db, (servers_known, entries)) = db::Db::open(path)?;
        let db = Arc::new(Mutex::new(db));
        let clocks = servers_known.iter().map(|s| ClockOffset::restored(s.clock_offset)).collect();
        let mut r = Self {
            entries: entries.into_iter().collect(),
            servers: servers_known,
            clocks,
            bulk_queries: HashMap::new(),
            dirty: HashSet::new(),
            servers_dirty: false,
            db: Some(db),
            history: Some(crate::history::DEFAULT_RETENTION),
            events: Vec::new(),
            live: broadcast::channel(LIVE_CAPACITY).0,
        };
        for s in servers {
            r.server_id(s);
        }
        r.flush()?;
        Ok(r)
    }

    /// Keep history events for `retention` (`None`: record none). Only a replica with a file keeps history.
    #[cfg(feature = "sqlite")]
    pub fn set_history(&mut self, retention: Option<Duration>) {
        self.history = retention.filter(|_| self.db.is_some());
    }

    /// What deletes expired history, if history is kept.
    pub fn pruner(&self) -> Option<Pruner> {
        #[cfg(feature = "sqlite")]
        return Some(Pruner { db: self.db.clone()?, retention: self.history? });
        #[cfg(not(feature = "sqlite"))]
        None
    }

    /// Every change applied from now on, for live viewers. A receiver that lags gets `Lagged` and should
    /// read the replica again.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveChange>> {
        self.live.subscribe()
    }

    /// The id of server `addr`, added if new.
    pub fn server_id(&mut self, addr: &str) -> u16 {
        if let Some(i) = self.servers.iter().position(|s| s.addr == addr) {
            return i as u16;
        }
        let s = ServerState { addr: addr.to_string(), seeded: false, saved: None, gaps: Vec::new(), clock_offset: 0 };
        self.servers.push(s);
        self.clocks.push(ClockOffset::default());
        self.servers_dirty = true;
        (self.servers.len() - 1) as u16
    }

    /// What the replica knows of server `id`.
    pub fn server(&self, id: u16) -> &ServerState {
        &self.servers[usize::from(id)]
    }

    /// All servers ever watched into this replica.
    pub fn servers(&self) -> &[ServerState] {
        &self.servers
    }

    /// A message from server `id` with `base_time` (its clock) arrived at `received` (ours, Unix seconds):
    /// what the clock offset is learned from (BLQ-7.4-2). True when it is the server's first observation or
    /// the offset changed.
    pub fn observe_clock(&mut self, id: u16, received: u32, base_time: u32) -> bool {
        let i = usize::from(id);
        let moved = self.clocks[i].observe(received, base_time);
        let offset = self.clocks[i].seconds();
        if self.servers[i].clock_offset != offset {
            self.servers[i].clock_offset = offset;
            self.servers_dirty = true;
        }
        moved
    }

    /// Seconds to add to server `id`'s times to put them in the requestor's clock (0 when they agree to
    /// within the one-second resolution of base-time, or before the server has been heard from).
    pub fn clock_offset(&self, id: u16) -> i64 {
        self.clocks[usize::from(id)].seconds()
    }

    /// Merge one binding reported by server `id` in a message with `base_time`.
    ///
    /// Records of one server are compared in its own clock; records of two servers each in the requestor's
    /// (BLQ-7.6-2), so a failover peer whose clock is off cannot win with a stale binding, nor lose with a
    /// fresh one. Records keep the times their server reported.
    pub fn apply(&mut self, id: u16, b: &Binding, base_time: Option<u32>, via: Via) -> Applied {
        let new = Record::new(b, base_time, via, id);
        let outcome = match self.entries.get(&b.ip) {
            None => Applied::New,
            // Same binding again: keep the record (and what it came with) as it is.
            Some(old) if new.same_binding(old) => return Applied::Duplicate,
            Some(old) if self.newer(&new, old).is_lt() => return Applied::Stale,
            Some(_) => Applied::Changed,
        };
        self.entries.insert(b.ip, new);
        self.dirty.insert(b.ip);
        if self.history.is_some() {
            let seen = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
            self.events.push(Event { ip: b.ip, binding: b.clone(), server: id, seen, via });
        }
        if self.live.receiver_count() > 0 {
            let server = self.servers[usize::from(id)].addr.clone();
            let _ = self.live.send(Arc::new(LiveChange { binding: b.clone(), server }));
        }
        outcome
    }

    /// Server `id` is about to be asked a Bulk Leasequery (a seed or a gap fill): what it reported on the
    /// Active stream until now no longer wins a same-second tie against that query's snapshot, which is read
    /// after it (RFC 6926 §7.6's "other information"; see `Record::compare_shifted`). Call it before the query
    /// is sent, in the order of the messages applied (the watcher sends it through the same queue), and
    /// [`Replica::bulk_ended`] once its last binding is applied.
    ///
    /// While another query of the server is under way nothing is settled: a record that arrived during that
    /// one may postdate its snapshot, and which query a later snapshot belongs to is not tracked per record.
    /// Such a tie then goes to the Active record, as it did before queries were told apart.
    pub fn bulk_requested(&mut self, id: u16) {
        let under_way = self.bulk_queries.entry(id).or_insert(0);
        *under_way += 1;
        if *under_way == 1 {
            for r in self.entries.values_mut().filter(|r| r.server == id) {
                r.settle();
            }
        }
    }

    /// A Bulk query of server `id` that [`Replica::bulk_requested`] announced has ended (answered, failed or
    /// stopped).
    pub fn bulk_ended(&mut self, id: u16) {
        if let Some(n) = self.bulk_queries.get_mut(&id) {
            *n = n.saturating_sub(1);
        }
    }

    fn newer(&self, new: &Record, old: &Record) -> std::cmp::Ordering {
        if new.server == old.server {
            return new.compare_shifted(0, old, 0);
        }
        new.compare_shifted(self.clock_offset(new.server), old, self.clock_offset(old.server))
    }

    /// Record the base-time to use next for server `id`.
    pub fn set_saved(&mut self, id: u16, saved: Option<u32>) {
        let s = &mut self.servers[usize::from(id)];
        if s.saved != saved {
            s.saved = saved;
            self.servers_dirty = true;
        }
    }

    /// The first full Bulk Leasequery from server `id` completed; `saved` is where the Active stream starts.
    pub fn set_seeded(&mut self, id: u16, saved: Option<u32>) {
        let s = &mut self.servers[usize::from(id)];
        s.seeded = true;
        s.saved = saved;
        self.servers_dirty = true;
    }

    /// Remember a gap to fill (persisted, so a restart fills it too).
    pub fn open_gap(&mut self, id: u16, gap: Gap) {
        let s = &mut self.servers[usize::from(id)];
        if !s.gaps.contains(&gap) {
            s.gaps.push(gap);
            self.servers_dirty = true;
        }
    }

    /// A gap was filled.
    pub fn close_gap(&mut self, id: u16, gap: Gap) {
        let s = &mut self.servers[usize::from(id)];
        s.gaps.retain(|g| *g != gap);
        self.servers_dirty = true;
    }

    /// The binding of `ip`, and the server that reported it.
    pub fn get(&self, ip: Ipv4Addr) -> Option<(Binding, &str)> {
        self.entries.get(&ip).map(|r| (r.binding(ip), self.servers[usize::from(r.server)].addr.as_str()))
    }

    /// Bindings of a hardware address (a scan: lookups by MAC are for people, not hot paths).
    /// Each with the server it came from, as [`Replica::get`] gives it.
    pub fn by_hardware_address(&self, hw: &[u8]) -> Vec<(Binding, &str)> {
        self.entries
            .iter()
            .filter(|(_, r)| r.hw() == hw)
            .map(|(ip, r)| (r.binding(*ip), self.servers[usize::from(r.server)].addr.as_str()))
            .collect()
    }

    /// Every binding, in address order.
    pub fn bindings(&self) -> Vec<Binding> {
        self.entries.iter().map(|(ip, r)| r.binding(*ip)).collect()
    }

    /// How many addresses the replica knows.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it knows none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Changes not yet written to the file.
    pub fn unflushed(&self) -> usize {
        self.dirty.len()
    }

    /// History events recorded but not yet written to the file. Unlike changed bindings, which coalesce by
    /// address, these grow with every change while a write is in progress: the watcher caps them.
    pub fn unwritten_events(&self) -> usize {
        self.events.len()
    }

    /// Write changed bindings and server states in one transaction (no-op in memory). Returns how many
    /// bindings were written.
    pub fn flush(&mut self) -> Result<usize, ReplicaError> {
        self.take_flush().map_or(Ok(0), |f| f.write())
    }

    /// Take the changes not yet written (bindings and, if changed, server states) for [`Flush::write`];
    /// `None` when there is nothing to write or no file. Taken together, so a file never holds a saved
    /// base-time without the bindings that came before it.
    pub fn take_flush(&mut self) -> Option<Flush> {
        #[cfg(not(feature = "sqlite"))]
        {
            self.dirty.clear();
            None
        }
        #[cfg(feature = "sqlite")]
        self.take_flush_to_file()
    }

    #[cfg(feature = "sqlite")]
    fn take_flush_to_file(&mut self) -> Option<Flush> {
        let Some(db) = &self.db else {
            self.dirty.clear();
            return None;
        };
        if self.dirty.is_empty() && !self.servers_dirty && self.events.is_empty() {
            return None;
        }
        let records = self
            .dirty
            .drain()
            .filter_map(|ip| {
                let r = self.entries.get(&ip)?;
                let mut bytes = Vec::with_capacity(64);
                r.encode(&mut bytes);
                Some((ip, bytes))
            })
            .collect();
        let servers = std::mem::take(&mut self.servers_dirty).then(|| self.servers.clone());
        let events = std::mem::take(&mut self.events);
        Some(Flush { records, events, servers, db: db.clone() })
    }
}

#[cfg(test)]
mod tests;
