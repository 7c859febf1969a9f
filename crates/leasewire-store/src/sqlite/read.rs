//! Reads: a small pool of reader connections and the lookup and scan queries.
//!
//! In WAL mode readers see the last committed state and never wait for the writer, so lookups from the
//! leasequery responders do not queue behind group commits.

use super::schema::COLUMNS;
use crate::binding::decode_options;
use crate::error::StoreError;
use crate::store::{ScanFilter, ScanKey};
use crate::{Binding, BindingChange};
use leasewire_proto::{DataSource, DhcpState};
use rusqlite::types::{Type, ValueRef};
use rusqlite::{Connection, Row, params};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Condvar, LazyLock, Mutex};

/// A fixed set of reader connections, handed out one per call.
pub(crate) struct Readers {
    idle: Mutex<Vec<Connection>>,
    returned: Condvar,
}

impl Readers {
    pub(crate) fn new(conns: Vec<Connection>) -> Self {
        Self { idle: Mutex::new(conns), returned: Condvar::new() }
    }

    /// Run `f` on an idle reader connection, waiting for one if all are busy.
    pub(crate) fn with<R>(
        &self,
        path: &Path,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        let conn = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(conn) = idle.pop() {
                    break conn;
                }
                idle = self.returned.wait(idle).unwrap_or_else(|p| p.into_inner());
            }
        };
        let result = f(&conn);
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        self.returned.notify_one();
        result.map_err(|e| map_read_error(path, e))
    }
}

/// A value in the file that no write of ours produces means the file is damaged, not that SQLite failed.
pub(crate) fn map_read_error(path: &Path, e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => StoreError::corrupt(path, format!("unreadable record: {e}")),
        e if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            StoreError::corrupt(path, e.to_string())
        }
        e => StoreError::sqlite(path, e),
    }
}

fn bad(col: usize, ty: Type, what: &'static str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, ty, what.into())
}

fn blob(row: &Row<'_>, col: usize) -> rusqlite::Result<Option<Vec<u8>>> {
    match row.get_ref(col)? {
        ValueRef::Null => Ok(None),
        ValueRef::Blob(b) => Ok(Some(b.to_vec())),
        other => Err(bad(col, other.data_type(), "expected a blob")),
    }
}

/// Decode one row selected with [`COLUMNS`].
pub(crate) fn decode_row(row: &Row<'_>) -> rusqlite::Result<BindingChange> {
    let ip: u32 = row.get(0)?;
    let seq: i64 = row.get(1)?;
    let seq = u64::try_from(seq).map_err(|_| bad(1, Type::Integer, "negative sequence number"))?;
    let state: u8 = row.get(3)?;
    let state = DhcpState::from_code(state).ok_or_else(|| bad(3, Type::Integer, "unknown dhcp-state"))?;
    let options = match row.get_ref(12)? {
        ValueRef::Null => Vec::new(),
        ValueRef::Blob(b) => decode_options(b).ok_or_else(|| bad(12, Type::Blob, "malformed options blob"))?,
        other => return Err(bad(12, other.data_type(), "expected a blob")),
    };
    Ok(BindingChange {
        seq,
        time: row.get(2)?,
        binding: Binding {
            ip: Ipv4Addr::from(ip),
            state,
            state_since: row.get(4)?,
            expires_at: row.get(5)?,
            cltt: row.get(6)?,
            htype: row.get(7)?,
            data_source: DataSource(row.get(8)?),
            hardware_address: blob(row, 9)?.unwrap_or_default(),
            client_id: blob(row, 10)?,
            relay_agent_info: blob(row, 11)?,
            options,
            reserved_for: row.get(13)?,
        },
    })
}

fn collect(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<Vec<BindingChange>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode_row(row)?);
    }
    Ok(out)
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

static GET: LazyLock<String> = LazyLock::new(|| format!("SELECT {COLUMNS} FROM binding WHERE ip = ?1"));
static BY_HWADDR: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM binding WHERE hwaddr = ?1 AND htype = ?2"));
static BY_CLIENT_ID: LazyLock<String> = LazyLock::new(|| format!("SELECT {COLUMNS} FROM binding WHERE client_id = ?1"));
static BY_REMOTE_ID: LazyLock<String> = LazyLock::new(|| format!("SELECT {COLUMNS} FROM binding WHERE remote_id = ?1"));
static BY_RELAY_ID: LazyLock<String> = LazyLock::new(|| format!("SELECT {COLUMNS} FROM binding WHERE relay_id = ?1"));

/// Scans: `?1` after-address, `?2`/`?3` change-time bounds, `?4` limit, `?5`/`?6` the key. The unary `+`
/// on `time` keeps the planner from choosing the time index (and then sorting by address) for a bounded
/// scan: the order must come from the rowid or the key index, so each page is a range read.
fn scan_sql(key_condition: &str) -> String {
    format!(
        "SELECT {COLUMNS} FROM binding WHERE {key_condition} ip > ?1 AND +time >= ?2 AND +time <= ?3 \
         ORDER BY ip LIMIT ?4"
    )
}
static SCAN_ALL: LazyLock<String> = LazyLock::new(|| scan_sql(""));
static SCAN_RELAY_ID: LazyLock<String> = LazyLock::new(|| scan_sql("relay_id = ?5 AND"));
static SCAN_REMOTE_ID: LazyLock<String> = LazyLock::new(|| scan_sql("remote_id = ?5 AND"));
static SCAN_HWADDR: LazyLock<String> = LazyLock::new(|| scan_sql("hwaddr = ?5 AND htype = ?6 AND"));
static SCAN_CLIENT_ID: LazyLock<String> = LazyLock::new(|| scan_sql("client_id = ?5 AND"));

/// The record with the smallest seq at or above `?1`: one probe of [`first_seq_since`]'s binary search.
const SEQ_PROBE: &str = "SELECT seq, time FROM binding WHERE seq >= ?1 ORDER BY seq LIMIT 1";
static FROM_SEQ: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM binding WHERE seq >= ?1 AND +time >= ?2 ORDER BY seq LIMIT ?3"));
static AFTER_SEQ: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM binding WHERE seq > ?1 ORDER BY seq LIMIT ?2"));

pub(crate) fn get(conn: &Connection, ip: Ipv4Addr) -> rusqlite::Result<Option<BindingChange>> {
    Ok(collect(conn, &GET, [u32::from(ip)])?.pop())
}

pub(crate) fn by_hardware_address(conn: &Connection, htype: u8, addr: &[u8]) -> rusqlite::Result<Vec<BindingChange>> {
    if addr.is_empty() {
        return Ok(Vec::new());
    }
    newest_first(collect(conn, &BY_HWADDR, params![addr, htype])?)
}

/// Lookups return few records; sorting them here saves SQLite's sorter set-up, which costs more than the
/// index seeks for a one-record answer.
fn newest_first(mut changes: Vec<BindingChange>) -> rusqlite::Result<Vec<BindingChange>> {
    changes.sort_unstable_by_key(|c| std::cmp::Reverse(c.seq));
    Ok(changes)
}

/// Which secondary key to look up by.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy)]
pub(crate) enum Key {
    ClientId,
    RemoteId,
    RelayId,
}

pub(crate) fn by_key(conn: &Connection, key: Key, value: &[u8]) -> rusqlite::Result<Vec<BindingChange>> {
    let sql: &str = match key {
        Key::ClientId => &BY_CLIENT_ID,
        Key::RemoteId => &BY_REMOTE_ID,
        Key::RelayId => &BY_RELAY_ID,
    };
    newest_first(collect(conn, sql, [value])?)
}

pub(crate) fn scan(
    conn: &Connection,
    filter: &ScanFilter,
    after: Option<Ipv4Addr>,
    n: usize,
) -> rusqlite::Result<Vec<BindingChange>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let after = after.map_or(-1, |ip| i64::from(u32::from(ip)));
    let lo = filter.changed_on_or_after.unwrap_or(0);
    let hi = filter.changed_on_or_before.unwrap_or(u32::MAX);
    if lo > hi {
        return Ok(Vec::new());
    }
    let n = limit(n);
    match &filter.key {
        ScanKey::All => collect(conn, &SCAN_ALL, params![after, lo, hi, n]),
        ScanKey::RelayId(id) => collect(conn, &SCAN_RELAY_ID, params![after, lo, hi, n, id]),
        ScanKey::RemoteId(id) => collect(conn, &SCAN_REMOTE_ID, params![after, lo, hi, n, id]),
        ScanKey::ClientId(id) => collect(conn, &SCAN_CLIENT_ID, params![after, lo, hi, n, id]),
        ScanKey::HardwareAddress { htype, addr } => {
            if addr.is_empty() {
                return Ok(Vec::new());
            }
            collect(conn, &SCAN_HWADDR, params![after, lo, hi, n, addr, htype])
        }
    }
}

pub(crate) fn changed_since(
    conn: &Connection,
    time: u32,
    after_seq: Option<u64>,
    n: usize,
) -> rusqlite::Result<Vec<BindingChange>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let Some(first) = first_seq_since(conn, time)? else { return Ok(Vec::new()) };
    let from = match after_seq {
        Some(s) => first.max(i64::try_from(s).unwrap_or(i64::MAX).saturating_add(1)),
        None => first,
    };
    collect(conn, &FROM_SEQ, params![from, time, limit(n)])
}

/// The smallest seq among records whose latest change is at or after `time`, `None` if there is none.
///
/// Times are non-decreasing in seq order (every commit's time is at least the previous one's), so the
/// records changed at or after `time` are exactly those from some seq on: binary search for it on the seq
/// index, O(log n) index probes.
pub(crate) fn first_seq_since(conn: &Connection, time: u32) -> rusqlite::Result<Option<i64>> {
    let mut probe = conn.prepare_cached(SEQ_PROBE)?;
    let mut at = |seq: i64| -> rusqlite::Result<Option<(i64, u32)>> {
        let mut rows = probe.query([seq])?;
        rows.next()?.map(|r| Ok((r.get(0)?, r.get(1)?))).transpose()
    };
    // Invariant: every record with seq < lo changed before `time`; `found` is the smallest seq known to
    // have changed at or after it, and no record lies in [hi, found) that we have not seen.
    let Some((mut lo, first_time)) = at(0)? else { return Ok(None) };
    if first_time >= time {
        return Ok(Some(lo));
    }
    let mut found = None;
    let last: Option<i64> = conn.prepare_cached("SELECT max(seq) FROM binding")?.query_row([], |r| r.get(0))?;
    let mut hi = last.map_or(lo, |s| s.saturating_add(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match at(mid)? {
            Some((seq, t)) if t >= time => {
                found = Some(seq);
                hi = mid;
            }
            Some((seq, _)) => lo = seq + 1,
            None => hi = mid,
        }
    }
    Ok(found)
}

pub(crate) fn changes_after_seq(conn: &Connection, seq: u64, n: usize) -> rusqlite::Result<Vec<BindingChange>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    collect(conn, &AFTER_SEQ, params![seq, limit(n)])
}

pub(crate) fn len(conn: &Connection) -> rusqlite::Result<u64> {
    let n: i64 = conn.prepare_cached("SELECT count(*) FROM binding")?.query_row([], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// The query plans, for the test that keeps every lookup and scan on an index.
#[cfg(test)]
pub(crate) fn all_queries() -> Vec<(&'static str, String)> {
    vec![
        ("get", GET.clone()),
        ("by_hwaddr", BY_HWADDR.clone()),
        ("by_client_id", BY_CLIENT_ID.clone()),
        ("by_remote_id", BY_REMOTE_ID.clone()),
        ("by_relay_id", BY_RELAY_ID.clone()),
        ("scan_all", SCAN_ALL.clone()),
        ("scan_relay_id", SCAN_RELAY_ID.clone()),
        ("scan_remote_id", SCAN_REMOTE_ID.clone()),
        ("scan_hwaddr", SCAN_HWADDR.clone()),
        ("scan_client_id", SCAN_CLIENT_ID.clone()),
        ("seq_probe", SEQ_PROBE.to_owned()),
        ("from_seq", FROM_SEQ.clone()),
        ("after_seq", AFTER_SEQ.clone()),
    ]
}
