//! The replica file: SQLite in WAL mode, created 0600 (it holds the same client data as the server's lease
//! database). One row per address holding the record's own encoding, one per server with its saved
//! base-time, one per unfilled gap.

use super::record::Record;
use super::{Gap, PATIENT_LOCK_WAIT, ReplicaError, ServerState};
use crate::history::{self, Event};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

/// 2: history events of Ethernet clients carry ids derived from the MAC (`history::store`); a schema 1
/// file is read as it is and written as schema 2 from then on.
const SCHEMA_VERSION: i64 = 2;

/// What a replica file holds: the servers and the bindings.
pub(super) type Loaded = (Vec<ServerState>, HashMap<Ipv4Addr, Record>);

#[derive(Debug)]
pub(super) struct Db {
    conn: Connection,
    path: String,
    interner: history::store::Interner,
}

impl Db {
    pub(super) fn open(path: &Path) -> Result<(Self, Loaded), ReplicaError> {
        let shown = path.display().to_string();
        let io = |source| ReplicaError::Io { path: shown.clone(), source };
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
        }
        let sql = |source| ReplicaError::Sqlite { path: shown.clone(), source };
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(PATIENT_LOCK_WAIT).map_err(sql)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS server (id INTEGER PRIMARY KEY, addr TEXT NOT NULL UNIQUE,
                 seeded INTEGER NOT NULL, saved INTEGER);
             CREATE TABLE IF NOT EXISTS gap (server INTEGER NOT NULL, from_time INTEGER NOT NULL,
                 to_time INTEGER NOT NULL, PRIMARY KEY (server, from_time, to_time));
             CREATE TABLE IF NOT EXISTS binding (ip INTEGER PRIMARY KEY, record BLOB NOT NULL);",
        )
        .map_err(sql)?;
        // The history's tables are new in schema 1 files too (they only add tables): created here for all.
        conn.execute_batch(history::store::SCHEMA).map_err(sql)?;
        // Event inserts touch four B-trees at random keys; a larger cache keeps more of their pages in memory,
        // and reading the rest through a mapping spares a read() per page (BENCHMARKS.md, requestor history).
        conn.execute_batch("PRAGMA cache_size = -262144; PRAGMA mmap_size = 4294967296;").map_err(sql)?;
        let version: Option<i64> =
            conn.query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0)).optional().map_err(sql)?;
        match version {
            None => {
                conn.execute("INSERT INTO meta VALUES ('schema', ?1)", [SCHEMA_VERSION]).map_err(sql)?;
            }
            Some(SCHEMA_VERSION) => {}
            // Schema 1 has the same tables; only new events use derived client ids, which it never held.
            Some(1) => {
                conn.execute("UPDATE meta SET value = ?1 WHERE key = 'schema'", [SCHEMA_VERSION]).map_err(sql)?;
            }
            Some(v) => {
                return Err(ReplicaError::Corrupt {
                    path: shown,
                    message: format!(
                        "schema version {v}, this leasewire reads {SCHEMA_VERSION} and older: run the leasewire \
                         that wrote it, or start a new file (the servers seed it again)"
                    ),
                });
            }
        }
        let mut servers: Vec<ServerState> = Vec::new();
        {
            let mut st = conn.prepare("SELECT id, addr, seeded, saved FROM server ORDER BY id").map_err(sql)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?, r.get(3)?)))
                .map_err(sql)?;
            for row in rows {
                let (id, addr, seeded, saved) = row.map_err(sql)?;
                if id != servers.len() as i64 {
                    return Err(ReplicaError::Corrupt {
                        path: shown,
                        message: format!("server ids not dense at {id}"),
                    });
                }
                servers.push(ServerState { addr, seeded, saved, gaps: Vec::new(), clock_offset: 0 });
            }
            let mut st = conn.prepare("SELECT key, value FROM meta WHERE key LIKE 'clock_offset.%'").map_err(sql)?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(sql)?;
            for row in rows {
                let (key, offset) = row.map_err(sql)?;
                let server = key["clock_offset.".len()..].parse::<usize>().ok().and_then(|id| servers.get_mut(id));
                match server {
                    Some(s) => s.clock_offset = offset,
                    None => return Err(ReplicaError::Corrupt { path: shown, message: format!("{key} of no server") }),
                }
            }
            let mut st = conn.prepare("SELECT server, from_time, to_time FROM gap").map_err(sql)?;
            let rows = st.query_map([], |r| Ok((r.get::<_, u16>(0)?, r.get(1)?, r.get(2)?))).map_err(sql)?;
            for row in rows {
                let (id, from, to) = row.map_err(sql)?;
                match servers.get_mut(usize::from(id)) {
                    Some(s) => s.gaps.push(Gap { from, to }),
                    None => return Err(ReplicaError::Corrupt { path: shown, message: format!("gap of server {id}") }),
                }
            }
        }
        let mut entries = HashMap::new();
        {
            let mut st = conn.prepare("SELECT ip, record FROM binding").map_err(sql)?;
            let mut rows = st.query([]).map_err(sql)?;
            while let Some(row) = rows.next().map_err(sql)? {
                let ip = Ipv4Addr::from(row.get::<_, u32>(0).map_err(sql)?);
                let raw = row.get_ref(1).map_err(sql)?.as_blob().map_err(|e| sql(e.into()))?;
                let record = Record::decode(raw)
                    .filter(|r| usize::from(r.server) < servers.len())
                    .ok_or_else(|| ReplicaError::Corrupt { path: shown.clone(), message: format!("record of {ip}") })?;
                entries.insert(ip, record);
            }
        }
        Ok((Self { conn, path: shown, interner: Default::default() }, (servers, entries)))
    }

    /// Write encoded records (address, [`Record::encode`] bytes), the history events of the same changes and,
    /// when given, every server's state, in one transaction.
    /// Write in one transaction, waiting up to `lock_wait` for another writer's lock.
    pub(super) fn write(
        &mut self,
        records: &[(Ipv4Addr, Vec<u8>)],
        events: &[Event],
        servers: Option<&[ServerState]>,
        lock_wait: Duration,
    ) -> Result<(), ReplicaError> {
        self.conn.busy_timeout(lock_wait).map_err(|source| ReplicaError::Sqlite { path: self.path.clone(), source })?;
        let written = self.write_inner(records, events, servers);
        if written.is_err() {
            self.interner.clear(); // ids it learned in the rolled-back transaction are gone
        }
        written
    }

    /// Delete up to `batch` events that arrived before `cutoff`; how many.
    pub(super) fn prune(&mut self, cutoff: u32, batch: u32) -> Result<usize, ReplicaError> {
        let sql = |source| ReplicaError::Sqlite { path: self.path.clone(), source };
        // Short: pruning is retried at its next round, and the stream's flushes wait behind it meanwhile.
        self.conn.busy_timeout(Duration::from_secs(1)).map_err(sql)?;
        history::store::prune(&self.conn, cutoff, batch).map_err(sql)
    }

    fn write_inner(
        &mut self,
        records: &[(Ipv4Addr, Vec<u8>)],
        events: &[Event],
        servers: Option<&[ServerState]>,
    ) -> Result<(), ReplicaError> {
        let path = self.path.clone();
        let sql = |source| ReplicaError::Sqlite { path: path.clone(), source };
        // Immediate: the write lock is taken (waiting out another writer up to the lock wait) before anything is
        // read, so a read snapshot never has to be upgraded, which SQLite refuses at once while another writes.
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql)?;
        history::store::append(&tx, events, &mut self.interner).map_err(sql)?;
        {
            let mut put =
                tx.prepare_cached("INSERT OR REPLACE INTO binding (ip, record) VALUES (?1, ?2)").map_err(sql)?;
            // In address order: the table's own key, so the writes walk its pages in order.
            let mut in_order: Vec<&(Ipv4Addr, Vec<u8>)> = records.iter().collect();
            in_order.sort_unstable_by_key(|(ip, _)| *ip);
            for (ip, bytes) in in_order {
                put.execute(params![u32::from(*ip), bytes]).map_err(sql)?;
            }
        }
        if let Some(servers) = servers {
            tx.execute("DELETE FROM gap", []).map_err(sql)?;
            for (id, s) in servers.iter().enumerate() {
                tx.execute(
                    "INSERT INTO server (id, addr, seeded, saved) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (id) DO UPDATE SET seeded = excluded.seeded, saved = excluded.saved",
                    params![id as i64, s.addr, s.seeded, s.saved],
                )
                .map_err(sql)?;
                for g in &s.gaps {
                    tx.execute("INSERT OR IGNORE INTO gap VALUES (?1, ?2, ?3)", params![id as i64, g.from, g.to])
                        .map_err(sql)?;
                }
                tx.execute(
                    "INSERT OR REPLACE INTO meta VALUES (?1, ?2)",
                    params![format!("clock_offset.{id}"), s.clock_offset],
                )
                .map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)
    }
}
