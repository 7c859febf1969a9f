//! Opening a store file: telling ours from foreign, damaged or newer files, creating new ones atomically,
//! migrating old ones.
//!
//! The rule: only an absent or empty file becomes a new store. Anything else that is not recognisably ours
//! is an error naming the file; nothing is ever reinitialised in place.

use super::memory::{KeyHasher, Mem};
use super::schema::{APPLICATION_ID, MIGRATIONS, PAGE_SIZE, SCHEMA_VERSION, meta};
use crate::error::StoreError;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The 16 octets every SQLite 3 database file starts with.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// How long a connection waits for a lock SQLite holds briefly (checkpoints, WAL index recovery).
const BUSY_TIMEOUT_MS: u32 = 5_000;

/// The persisted counters of a store, as read at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counters {
    pub last_seq: u64,
    pub last_time: u32,
    pub horizon: u32,
}

/// Open (or create) the store at `path` and return the writer connection, the persisted counters and the
/// records loaded into memory.
pub(crate) fn open_writer(
    path: &Path,
    now: u32,
    verify_integrity: bool,
    mmap_bytes: u64,
    hasher: KeyHasher,
) -> Result<(Connection, Counters, Mem), StoreError> {
    let wal = sidecar(path, "-wal");
    let is_new = match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return Err(StoreError::NotADatabase { path: path.to_owned() }),
        Ok(m) => m.len() == 0,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(StoreError::io(path, e)),
    };
    if is_new {
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
            return Err(StoreError::OrphanWal { path: path.to_owned(), wal });
        }
        create(path, now)?;
    } else {
        check_header(path)?;
    }

    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| damaged(path, e))?;
    check_identity(path, &conn)?;
    configure_writer(path, &conn)?;
    migrate(path, &conn)?;
    if verify_integrity {
        let problems = integrity_check(&conn).map_err(|e| damaged(path, e))?;
        if !problems.is_empty() {
            return Err(StoreError::corrupt(path, format!("integrity check failed: {}", problems.join("; "))));
        }
    }
    let loaded = {
        // Its own connection, mapping the file for the one pass, closed (and unmapped) afterwards.
        let reader = open_reader(path, mmap_bytes)?;
        super::read::load(path, &reader, hasher)?
    };
    let counters = read_counters(path, &conn, loaded.max_seq, loaded.max_time)?;
    Ok((conn, counters, loaded.mem))
}

/// Open a read-only connection on an existing store (after the writer connection validated it): for the
/// load at open and for integrity checks.
pub(crate) fn open_reader(path: &Path, mmap_bytes: u64) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| StoreError::sqlite(path, e))?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS.into()))
        .and_then(|()| {
            // Readers never write; `query_only` turns a bug that tries into an error instead of a lock.
            conn.execute_batch(&format!(
                "PRAGMA query_only = ON; PRAGMA cache_size = -16384; PRAGMA mmap_size = {mmap_bytes};"
            ))
        })
        .map_err(|e| StoreError::sqlite(path, e))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Open the checkpointer's connection. `synchronous = FULL` makes the checkpoint fsync the database file
/// before the WAL may be reused.
pub(crate) fn open_checkpointer(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| StoreError::sqlite(path, e))?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS.into()))
        .and_then(|()| conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA cache_size = -1024;"))
        .map_err(|e| StoreError::sqlite(path, e))?;
    Ok(conn)
}

/// `PRAGMA integrity_check`: the problems found, empty if the file is consistent.
pub(crate) fn integrity_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(if rows == ["ok"] { Vec::new() } else { rows })
}

/// `path` with `suffix` appended to its file name (SQLite's `-wal`, `-shm`, `-journal` files).
pub(crate) fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn damaged(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            StoreError::corrupt(path, e.to_string())
        }
        _ => StoreError::sqlite(path, e),
    }
}

fn check_header(path: &Path) -> Result<(), StoreError> {
    let mut header = [0u8; 100];
    let mut file = std::fs::File::open(path).map_err(|e| StoreError::io(path, e))?;
    match file.read_exact(&mut header) {
        Ok(()) if header.starts_with(SQLITE_MAGIC) => Ok(()),
        Ok(()) => Err(StoreError::NotADatabase { path: path.to_owned() }),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(StoreError::NotADatabase { path: path.to_owned() })
        }
        Err(e) => Err(StoreError::io(path, e)),
    }
}

fn check_identity(path: &Path, conn: &Connection) -> Result<(), StoreError> {
    let app_id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(|e| damaged(path, e))?;
    // SQLite reports the 32-bit header field as signed.
    let found = app_id as u32;
    if found != APPLICATION_ID {
        return Err(StoreError::Foreign { path: path.to_owned(), found, expected: APPLICATION_ID });
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| damaged(path, e))?;
    let version = version as u32;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema { path: path.to_owned(), found: version, supported: SCHEMA_VERSION });
    }
    if version == 0 {
        // We write the marker and the schema in one transaction, so the marker alone means tampering.
        return Err(StoreError::corrupt(path, "leasewire application_id without a schema version"));
    }
    Ok(())
}

fn configure_writer(path: &Path, conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS.into())).map_err(|e| damaged(path, e))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(|e| damaged(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::corrupt(path, format!("cannot switch to WAL journal mode (got {mode})")));
    }
    // FULL: in WAL mode, NORMAL does not fsync at commit, and a commit must be durable before the engine
    // acknowledges the client. The cache keeps the upper B-tree levels of every index in memory.
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA cache_size = -32768;
         PRAGMA journal_size_limit = 67108864;",
    )
    .map_err(|e| damaged(path, e))?;
    // The checkpointer thread copies the WAL into the database; commits never wait for it.
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0;").map_err(|e| damaged(path, e))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

fn migrate(path: &Path, conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| damaged(path, e))?;
    let from = usize::try_from(version).unwrap_or(usize::MAX);
    if from >= MIGRATIONS.len() {
        return Ok(());
    }
    let run = || -> rusqlite::Result<()> {
        let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        for sql in &MIGRATIONS[from..] {
            tx.execute_batch(sql)?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        tx.commit()
    };
    run().map_err(|e| StoreError::sqlite(path, e))
}

fn read_counters(
    path: &Path,
    conn: &Connection,
    max_seq: Option<u64>,
    max_time: Option<u32>,
) -> Result<Counters, StoreError> {
    let get = |key: &str| -> Result<i64, StoreError> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get::<_, i64>(0))
            .optional()
            .map_err(|e| damaged(path, e))?
            .ok_or_else(|| StoreError::corrupt(path, format!("meta key {key:?} is missing")))
    };
    let time = |key: &str| -> Result<u32, StoreError> {
        let v = get(key)?;
        u32::try_from(v).map_err(|_| StoreError::corrupt(path, format!("meta {key:?} = {v} is not a time")))
    };
    let last_seq = get(meta::LAST_SEQ)?;
    let last_seq =
        u64::try_from(last_seq).map_err(|_| StoreError::corrupt(path, format!("meta last_seq = {last_seq}")))?;
    let counters = Counters { last_seq, last_time: time(meta::LAST_TIME)?, horizon: time(meta::HORIZON)? };
    time(meta::CREATED_AT)?;

    // The counters must cover every record, or seqs would be reused and times go backwards.
    if max_seq.is_some_and(|s| s > last_seq) || max_time.is_some_and(|t| t > counters.last_time) {
        return Err(StoreError::corrupt(
            path,
            format!(
                "records are newer than the journal counters (max seq {max_seq:?} > last_seq {}, or max time \
                 {max_time:?} > last_time {})",
                counters.last_seq, counters.last_time
            ),
        ));
    }
    Ok(counters)
}

/// Create a new store at `path` (absent or empty) without ever exposing a half-initialised file there:
/// build it under a temporary name in the same directory, make it durable, rename it into place. Errors
/// name `path`, the file the operator configured, not the temporary one.
fn create(path: &Path, now: u32) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        StoreError::io(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"))
    })?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(".creating");
    let tmp = dir.join(tmp_name);
    // A leftover from a creation that crashed: it never became the store, so it holds no lease.
    for leftover in [tmp.clone(), sidecar(&tmp, "-wal"), sidecar(&tmp, "-shm"), sidecar(&tmp, "-journal")] {
        match std::fs::remove_file(&leftover) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(path, e)),
        }
    }
    {
        // Leases identify subscribers: owner-only from the first byte. SQLite gives its -wal and -shm
        // files the permissions of the database file.
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| StoreError::io(path, e))?;
    }
    let init = || -> rusqlite::Result<()> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&tmp, flags)?;
        conn.execute_batch("PRAGMA synchronous = FULL;")?;
        conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE};"))?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for sql in MIGRATIONS {
            tx.execute_batch(sql)?;
        }
        tx.execute_batch(&format!(
            "PRAGMA application_id = {}; PRAGMA user_version = {SCHEMA_VERSION};",
            APPLICATION_ID as i32
        ))?;
        {
            let mut insert = tx.prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")?;
            for (key, value) in [
                (meta::CREATED_AT, i64::from(now)),
                // A fresh store has no history before its creation.
                (meta::HORIZON, i64::from(now)),
                (meta::LAST_SEQ, 0),
                (meta::LAST_TIME, i64::from(now)),
            ] {
                insert.execute(rusqlite::params![key, value])?;
            }
        }
        tx.commit()?;
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.close().map_err(|(_, e)| e)
    };
    init().map_err(|e| StoreError::sqlite(path, e))?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| StoreError::io(path, e))?;
    std::fs::rename(&tmp, path).map_err(|e| StoreError::io(path, e))?;
    std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| StoreError::io(path, e))?;
    Ok(())
}
