//! The PostgreSQL schema and its versioned migrations.
//!
//! Migrations run at open, inside one transaction that holds an advisory lock, so several servers starting
//! at once against an empty database create the schema exactly once. `lw_schema.version` is the schema
//! version: a newer database is refused (a newer leasewire wrote it), an older one is migrated forward.

/// Migrations in order: entry `i` takes the schema from version `i` to version `i + 1`. Never edit a
/// released entry; append a new one.
pub(crate) const MIGRATIONS: &[&str] = &[
    // Version 1.
    //
    // One row per address (the current record), as in the SQLite store, plus `origin`: the server that made
    // the latest change, so every other server reports it with data-source REMOTE (RFC 6926 §6.2.2).
    //
    // `lw_meta` is one row holding the journal counters. Every writing transaction locks it first
    // (`SELECT ... FOR UPDATE`): that serialises writers across servers, so sequence numbers become visible in
    // order and a listener reading `seq > last_seen` can never skip a change that commits later with a lower
    // number (a plain SEQUENCE hands out numbers at insert time, not at commit time, and would).
    //
    // remote_id and relay_id are derived from relay_agent_info at write time so the lookups by them are index
    // scans; empty hardware addresses and absent keys are NULL so the partial indexes skip them.
    r#"
    CREATE TABLE lw_meta (
        id         integer PRIMARY KEY CHECK (id = 1),
        created_at bigint NOT NULL,
        horizon    bigint NOT NULL,
        last_seq   bigint NOT NULL,
        last_time  bigint NOT NULL
    );

    CREATE TABLE lw_binding (
        ip               bigint PRIMARY KEY CHECK (ip BETWEEN 0 AND 4294967295),
        seq              bigint NOT NULL,
        time             bigint NOT NULL,
        origin           text NOT NULL,
        state            smallint NOT NULL,
        state_since      bigint NOT NULL,
        expires_at       bigint,
        cltt             bigint,
        htype            smallint NOT NULL,
        data_source      smallint NOT NULL,
        hwaddr           bytea,
        client_id        bytea,
        relay_agent_info bytea,
        remote_id        bytea,
        relay_id         bytea,
        options          bytea NOT NULL,
        reserved_for     text
    );

    CREATE UNIQUE INDEX lw_binding_seq ON lw_binding (seq);
    CREATE INDEX lw_binding_time ON lw_binding (time);
    CREATE INDEX lw_binding_hwaddr ON lw_binding (hwaddr, htype) WHERE hwaddr IS NOT NULL;
    CREATE INDEX lw_binding_client_id ON lw_binding (client_id) WHERE client_id IS NOT NULL;
    CREATE INDEX lw_binding_remote_id ON lw_binding (remote_id, ip) WHERE remote_id IS NOT NULL;
    CREATE INDEX lw_binding_relay_id ON lw_binding (relay_id, ip) WHERE relay_id IS NOT NULL;
    "#,
];

/// The schema version this build writes and reads.
pub const PG_SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The advisory lock key held while migrating ("LWLS" as an integer, as the SQLite application id).
pub(crate) const MIGRATION_LOCK: i64 = u32::from_be_bytes(*b"LWLS") as i64;

/// The NOTIFY channel: one notification per writing transaction, carrying its highest sequence number.
pub const CHANNEL: &str = "leasewire_changes";
