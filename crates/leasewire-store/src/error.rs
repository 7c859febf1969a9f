//! What can go wrong with the lease store, precisely enough for an operator to act on it.

pub use leasewire_proto::BindingProblem;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

/// Why a lease store could not be opened, read or written.
///
/// Every variant that concerns the database file names it, because the first thing an operator needs when
/// a server refuses to start is *which* file. Sources are behind `Arc` so one failed group transaction can
/// hand the same error to every committer waiting on it (the type is `Clone`).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file system refused an operation on the database file or its directory.
    #[error("lease store {}: {source}", path.display())]
    Io {
        /// The file the operation concerned.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The file exists, is not empty, and does not start with the SQLite header.
    #[error(
        "lease store {} is not a SQLite database (its header is not \"SQLite format 3\"); \
         refusing to use or overwrite it",
        path.display()
    )]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The file is a SQLite database, but not one this crate created (its `application_id` differs).
    #[error(
        "lease store {} is a SQLite database of another application (application_id {found:#010x}, \
         expected {expected:#010x}); refusing to use or overwrite it",
        path.display()
    )]
    Foreign {
        /// The file.
        path: PathBuf,
        /// The `application_id` found in the header.
        found: u32,
        /// The `application_id` this crate writes.
        expected: u32,
    },
    /// The file was written by a newer leasewire whose schema this build does not know.
    #[error(
        "lease store {} has schema version {found}, newer than the {supported} this build supports; \
         run a newer leasewire or point it at another file",
        path.display()
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// The schema version in the file.
        found: u32,
        /// The newest schema version this build knows.
        supported: u32,
    },
    /// The file is ours but its contents are damaged or inconsistent.
    #[error("lease store {} is damaged: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was found to be wrong.
        detail: String,
    },
    /// The database file is missing or empty but its write-ahead log is not: the log may hold every
    /// committed lease, so starting a new store would silently lose them.
    #[error(
        "lease store {}: the database is missing or empty but its write-ahead log {} is not; \
         refusing to start a new store over it (restore the database file or remove the log)",
        path.display(), wal.display()
    )]
    OrphanWal {
        /// The database file.
        path: PathBuf,
        /// The write-ahead log file.
        wal: PathBuf,
    },
    /// SQLite reported an error while the store was in use.
    #[error("lease store {}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// A binding handed to `commit` cannot be stored as given; nothing of its batch was stored.
    #[error("binding for {ip} rejected: {problem}")]
    InvalidBinding {
        /// The binding's address.
        ip: Ipv4Addr,
        /// What is wrong with it.
        problem: BindingProblem,
    },
    /// A previous group commit failed in a way that leaves its durability unknown (e.g. fsync failed);
    /// the store refuses further writes until it is reopened from the file.
    #[error("lease store {} refuses writes after a failed commit: {cause}", path.display())]
    WriterFailed {
        /// The database file.
        path: PathBuf,
        /// The error of the failed commit.
        cause: Arc<StoreError>,
    },
    /// A shared store refused a batch because it would bind an address that another client holds (another
    /// server leased it first); nothing of the batch was stored. The DHCP engine answers with a NAK, never
    /// an ACK.
    #[error("address {ip} is bound to another client in the shared lease database; batch refused")]
    Conflict {
        /// The contested address.
        ip: Ipv4Addr,
    },
    /// The PostgreSQL connection string does not parse.
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL store: invalid connection URL: {detail}")]
    PostgresConfig {
        /// What the parser said.
        detail: String,
    },
    /// PostgreSQL reported an error (or the connection failed) while the store was in use.
    #[cfg(feature = "postgres")]
    #[error("lease store {database}: {source}")]
    Postgres {
        /// Hosts, port and database name (never the password).
        database: String,
        /// The driver's error.
        #[source]
        source: Arc<tokio_postgres::Error>,
    },
    /// No connection to PostgreSQL could be had (pool timeout, server gone).
    #[cfg(feature = "postgres")]
    #[error("lease store {database} unavailable: {detail}")]
    PostgresUnavailable {
        /// Hosts, port and database name.
        database: String,
        /// Why.
        detail: String,
    },
    /// A row in the PostgreSQL store holds a value no leasewire write produces.
    #[cfg(feature = "postgres")]
    #[error("lease store {database} holds an unreadable record: {detail}")]
    PostgresData {
        /// Hosts, port and database name.
        database: String,
        /// What is wrong.
        detail: String,
    },
    /// The database was migrated by a newer leasewire whose schema this build does not know.
    #[cfg(feature = "postgres")]
    #[error(
        "lease store {database} has schema version {found}, newer than the {supported} this build supports; \
         run a newer leasewire or point it at another database"
    )]
    NewerPostgresSchema {
        /// Hosts, port and database name.
        database: String,
        /// The schema version in the database.
        found: u32,
        /// The newest schema version this build knows.
        supported: u32,
    },
    /// The store was closed (or its writer thread is gone) before the operation completed.
    #[error("lease store is closed")]
    Closed,
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source: Arc::new(source) }
    }

    pub(crate) fn sqlite(path: impl Into<PathBuf>, source: rusqlite::Error) -> Self {
        Self::Sqlite { path: path.into(), source: Arc::new(source) }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Self::Corrupt { path: path.into(), detail: detail.into() }
    }
}
