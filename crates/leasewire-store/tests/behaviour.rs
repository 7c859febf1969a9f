//! Behaviour of the SQLite lease store: the backend-independent suite, plus what only a file can get
//! wrong (foreign, corrupt, newer or orphaned files).

mod suite;

use leasewire_store::{LeaseStore, OpenOptions, SqliteStore, StoreError};
use std::path::{Path, PathBuf};
use suite::{Backend, T0, lease};

/// A SQLite store in its own temporary directory.
struct Sqlite {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Sqlite {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.db");
        Self { _dir: dir, path }
    }
}

impl Backend for Sqlite {
    fn open(&self, now: u32) -> Box<dyn LeaseStore> {
        Box::new(SqliteStore::open(&self.path, OpenOptions::new(now)).unwrap())
    }
}

behaviour_suite!(Sqlite::new());

/// ALQ-8.2-10: history kept for the configured retention, then forgotten (the suite's check, named here).
#[test]
fn alq_8_2_10_retention_keeps_recent_transitions_and_forgets_old_ones() {
    suite::retention_keeps_recent_transitions_and_forgets_old_ones(&Sqlite::new());
}

/// BLQ-8.2-11 (the suite's check, named here so the requirement index finds it).
#[test]
fn blq_8_2_11_a_window_takes_start_time_of_state_and_cltt() {
    suite::blq_8_2_11_a_window_takes_start_time_of_state_and_cltt(&Sqlite::new());
}

// ---------------------------------------------------------------------------------------------------------
// Files that are not ours, or not whole: a clear error naming the file, never a panic, never a new store.

fn open_err(path: &Path) -> StoreError {
    let err = SqliteStore::open(path, OpenOptions::new(T0)).expect_err("must refuse the file");
    assert!(err.to_string().contains(&path.display().to_string()), "error does not name the file: {err}");
    err
}

fn populated() -> Sqlite {
    let s = Sqlite::new();
    let store = s.open(T0);
    store.commit(T0, (0..200).map(|n| lease(n, n, b"r", b"x", T0)).collect()).wait().unwrap();
    s
}

#[test]
fn a_text_file_is_not_a_database_and_is_left_alone() {
    let s = Sqlite::new();
    let content = b"# this is the operator's config, not a lease store\n".repeat(10);
    std::fs::write(&s.path, &content).unwrap();
    assert!(matches!(open_err(&s.path), StoreError::NotADatabase { .. }));
    assert_eq!(std::fs::read(&s.path).unwrap(), content);
    // Shorter than a SQLite header.
    std::fs::write(&s.path, b"SQLite").unwrap();
    assert!(matches!(open_err(&s.path), StoreError::NotADatabase { .. }));
}

#[test]
fn another_applications_sqlite_database_is_foreign() {
    let s = Sqlite::new();
    {
        let conn = rusqlite::Connection::open(&s.path).unwrap();
        conn.execute_batch("CREATE TABLE leases (ip TEXT); INSERT INTO leases VALUES ('10.0.0.1');").unwrap();
    }
    let before = std::fs::read(&s.path).unwrap();
    let err = open_err(&s.path);
    assert!(matches!(err, StoreError::Foreign { found: 0, .. }), "{err}");
    assert_eq!(std::fs::read(&s.path).unwrap(), before, "the foreign file was modified");
    // Even an empty SQLite database (no tables) is somebody else's.
    let empty = s.path.with_file_name("empty.db");
    rusqlite::Connection::open(&empty).unwrap().execute_batch("PRAGMA user_version = 3; VACUUM;").unwrap();
    assert!(matches!(open_err(&empty), StoreError::Foreign { .. }));
}

#[test]
fn a_newer_schema_is_refused() {
    let s = populated();
    rusqlite::Connection::open(&s.path).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
    let err = open_err(&s.path);
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99, supported, .. } if supported == leasewire_store::sqlite::SCHEMA_VERSION),
        "{err}"
    );
}

#[test]
fn a_damaged_header_is_corrupt() {
    let s = populated();
    let mut bytes = std::fs::read(&s.path).unwrap();
    // Page size and file format fields right after the magic string.
    bytes[16..24].copy_from_slice(&[0xff; 8]);
    std::fs::write(&s.path, &bytes).unwrap();
    let err = open_err(&s.path);
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

#[test]
fn damaged_pages_are_caught_by_the_integrity_check() {
    let s = populated();
    let mut bytes = std::fs::read(&s.path).unwrap();
    assert!(bytes.len() > 4 * 4096, "fixture too small: {}", bytes.len());
    // Overwrite the middle of the file (table and index pages) with garbage.
    let mid = bytes.len() / 2;
    for (i, b) in bytes[mid..mid + 4096].iter_mut().enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    std::fs::write(&s.path, &bytes).unwrap();
    let err = SqliteStore::open(&s.path, OpenOptions { verify_integrity: true, ..OpenOptions::new(T0) })
        .expect_err("integrity check must fail");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(&s.path.display().to_string()));
}

#[test]
fn tampered_journal_counters_are_corrupt() {
    let s = populated();
    let conn = rusqlite::Connection::open(&s.path).unwrap();
    conn.execute_batch("UPDATE meta SET value = 3 WHERE key = 'last_seq'").unwrap();
    drop(conn);
    let err = open_err(&s.path);
    assert!(matches!(err, StoreError::Corrupt { .. }) && err.to_string().contains("last_seq"), "{err}");

    let conn = rusqlite::Connection::open(&s.path).unwrap();
    conn.execute_batch("DELETE FROM meta WHERE key = 'horizon'").unwrap();
    drop(conn);
    let err = open_err(&s.path);
    assert!(matches!(err, StoreError::Corrupt { .. }) && err.to_string().contains("horizon"), "{err}");
}

#[test]
fn an_unreadable_record_is_reported_as_corrupt_not_a_panic() {
    let s = populated();
    rusqlite::Connection::open(&s.path)
        .unwrap()
        .execute_batch("UPDATE binding SET state = 42 WHERE ip = 167772161; UPDATE binding SET options = x'0c05' WHERE ip = 167772162;")
        .unwrap();
    let store = s.open(T0);
    for n in [1, 2] {
        let err = store.get(suite::ip(n)).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }
    assert!(store.get(suite::ip(3)).unwrap().is_some());
    // The engine's load meets it too (the server does not start on a store it cannot read whole).
    let err = store.scan_packed(None, 100).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }) && err.to_string().contains("10.0.0.1"), "{err}");
    assert_eq!(store.scan_packed(Some(suite::ip(2)), 100).unwrap().first().map(|r| r.0), Some(suite::ip(3)));
}

#[test]
fn an_orphaned_write_ahead_log_is_not_overwritten() {
    let s = Sqlite::new();
    let wal = PathBuf::from(format!("{}-wal", s.path.display()));
    std::fs::write(&wal, b"frames of a database that was deleted").unwrap();
    assert!(matches!(open_err(&s.path), StoreError::OrphanWal { .. }));
    std::fs::write(&s.path, b"").unwrap();
    assert!(matches!(open_err(&s.path), StoreError::OrphanWal { .. }));
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
}

#[test]
fn an_empty_file_becomes_a_new_private_store() {
    use std::os::unix::fs::PermissionsExt;
    let s = Sqlite::new();
    std::fs::write(&s.path, b"").unwrap();
    let store = s.open(T0 + 5);
    assert_eq!(store.history_horizon().unwrap(), T0 + 5);
    store.commit(T0 + 6, vec![lease(1, 1, b"r", b"x", T0)]).wait().unwrap();
    assert_eq!(std::fs::metadata(&s.path).unwrap().permissions().mode() & 0o777, 0o600);
    drop(store);
    // A missing file in a fresh directory too; leftovers of a crashed creation are cleared.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".new.db.creating"), b"half-built").unwrap();
    let path = dir.path().join("new.db");
    let store = SqliteStore::open(&path, OpenOptions::new(T0)).unwrap();
    assert!(store.is_empty().unwrap());
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(store.integrity_check().unwrap().is_empty());
}

#[test]
fn a_directory_or_unreachable_path_is_an_error_naming_it() {
    let s = Sqlite::new();
    std::fs::create_dir(&s.path).unwrap();
    assert!(matches!(open_err(&s.path), StoreError::NotADatabase { .. }));
    let missing_dir = s.path.with_file_name("no-such-dir").join("leases.db");
    assert!(matches!(open_err(&missing_dir), StoreError::Io { .. }));
}
