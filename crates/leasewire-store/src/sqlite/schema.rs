//! The on-disk schema and its migrations.
//!
//! The file identifies itself in the SQLite header: `application_id` says "this is a leasewire lease
//! store" (so a foreign SQLite file is refused, never reinitialised), and `user_version` is the schema
//! version (so a newer file is refused and an older one migrated). Both are written in the same
//! transaction as the schema.

/// `PRAGMA application_id` of a leasewire lease store: "LWLS" in ASCII.
pub const APPLICATION_ID: u32 = u32::from_be_bytes(*b"LWLS");

/// Migrations in order: entry `i` takes the schema from version `i` to version `i + 1`. Never edit a
/// released entry; append a new one.
pub(crate) const MIGRATIONS: &[&str] = &[
    // Version 1.
    //
    // One row per address. `ip` is the rowid (the address as an unsigned 32-bit integer), so address-ordered
    // scans walk the table itself. Empty hardware addresses and absent keys are NULL so the partial indexes
    // skip them. Every secondary index implicitly ends in the rowid, which makes "key = ? AND ip > ?
    // ORDER BY ip" a range scan of the index (keyset paging of RFC 6926 scans).
    //
    // `seq`/`time` are the latest change. Times are non-decreasing in seq order, so "changed at or after T"
    // is a suffix of the seq index, found by binary search on it: no index on `time`, whose entry would
    // be one more random page rewritten in the WAL for every renewal.
    //
    // 1 KiB pages: a renewal rewrites a few random pages (table leaf, old seq index entry) and the WAL
    // carries whole pages, so small pages cut the bytes fsynced per binding by 4 against the default
    // 4 KiB; measured 1.7x the group-commit throughput on this machine.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY NOT NULL,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE binding (
        ip               INTEGER PRIMARY KEY NOT NULL CHECK (ip BETWEEN 0 AND 4294967295),
        seq              INTEGER NOT NULL,
        time             INTEGER NOT NULL,
        state            INTEGER NOT NULL,
        state_since      INTEGER NOT NULL,
        expires_at       INTEGER,
        cltt             INTEGER,
        htype            INTEGER NOT NULL,
        data_source      INTEGER NOT NULL,
        hwaddr           BLOB,
        client_id        BLOB,
        relay_agent_info BLOB,
        remote_id        BLOB,
        relay_id         BLOB,
        options          BLOB,
        reserved_for     TEXT
    );

    CREATE UNIQUE INDEX binding_seq ON binding (seq);
    CREATE INDEX binding_hwaddr ON binding (hwaddr, htype) WHERE hwaddr IS NOT NULL;
    CREATE INDEX binding_client_id ON binding (client_id) WHERE client_id IS NOT NULL;
    CREATE INDEX binding_remote_id ON binding (remote_id) WHERE remote_id IS NOT NULL;
    CREATE INDEX binding_relay_id ON binding (relay_id) WHERE relay_id IS NOT NULL;
    "#,
    // Version 2: lookups and scans are served from memory (loaded at open, see `memory`), so the file
    // needs no secondary index. Each change now writes one row of the address-keyed table and nothing
    // else: a new lease no longer inserts at random places in five indexes (seq, hardware address,
    // client-id, remote-id, relay-id), which is what bounded new-lease commits by disk bandwidth. The
    // derived remote-id and relay-id columns go too (they are read from `relay_agent_info`).
    r#"
    DROP INDEX binding_seq;
    DROP INDEX binding_hwaddr;
    DROP INDEX binding_client_id;
    DROP INDEX binding_remote_id;
    DROP INDEX binding_relay_id;
    ALTER TABLE binding DROP COLUMN remote_id;
    ALTER TABLE binding DROP COLUMN relay_id;
    "#,
];

/// The page size of new stores (set before the first table is created; see the schema comment).
pub(crate) const PAGE_SIZE: u32 = 1024;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Meta keys (the `meta` table), each an integer.
pub(crate) mod meta {
    /// Creation time of the store (`OpenOptions::now` of the first open).
    pub const CREATED_AT: &str = "created_at";
    /// The history horizon.
    pub const HORIZON: &str = "horizon";
    /// The last sequence number handed out (records with it may since have been forgotten).
    pub const LAST_SEQ: &str = "last_seq";
    /// The time of the last commit: the floor for the next commit's time.
    pub const LAST_TIME: &str = "last_time";
}

/// The columns the load at open reads, in the order `read::decode_row` expects.
pub(crate) const COLUMNS: &str = "ip, seq, time, state, state_since, expires_at, cltt, htype, data_source, hwaddr, \
                                  client_id, relay_agent_info, options, reserved_for";
