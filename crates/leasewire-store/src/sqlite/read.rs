//! Reading the file: the load at open that builds the in-memory copy every lookup and scan is served
//! from (see `memory`).

use super::memory::{KeyHasher, Loader, Mem, Rec};
use super::schema::COLUMNS;
use crate::binding::decode_options;
use crate::error::StoreError;
use crate::packed::{self, options_well_formed};
use crate::{Binding, BindingChange};
use leasewire_proto::{DataSource, DhcpState};
use rusqlite::types::{Type, ValueRef};
use rusqlite::{Connection, Row};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

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

/// Encode a row selected with [`COLUMNS`] for memory without building a `Binding`; `None` if any field is
/// not what [`decode_row`] accepts.
fn encode_row(row: &Row<'_>) -> Option<Arc<[u8]>> {
    let int = |col: usize| -> Option<Option<i64>> {
        match row.get_ref(col).ok()? {
            ValueRef::Null => Some(None),
            ValueRef::Integer(i) => Some(Some(i)),
            _ => None,
        }
    };
    let time = |col: usize| -> Option<Option<u32>> {
        match int(col)? {
            Some(i) => u32::try_from(i).ok().map(Some),
            None => Some(None),
        }
    };
    let octet = |col: usize| u8::try_from(int(col)??).ok();
    let blob = |col: usize| -> Option<Option<&[u8]>> {
        match row.get_ref(col).ok()? {
            ValueRef::Null => Some(None),
            ValueRef::Blob(b) => Some(Some(b)),
            _ => None,
        }
    };
    let options = blob(12)?.unwrap_or_default();
    if !options_well_formed(options) {
        return None;
    }
    let reserved = match row.get_ref(13).ok()? {
        ValueRef::Null => None,
        ValueRef::Text(t) => Some(std::str::from_utf8(t).ok()?),
        _ => return None,
    };
    Some(packed::encode_parts(&packed::Parts {
        state: DhcpState::from_code(octet(3)?)?,
        state_since: time(4)??,
        expires_at: time(5)?,
        cltt: time(6)?,
        htype: octet(7)?,
        data_source: octet(8)?,
        hw: blob(9)?.unwrap_or_default(),
        client_id: blob(10)?,
        rai: blob(11)?,
        options,
        reserved,
    }))
}

/// What the load found besides the records: the highest seq and time of any record, to check against the
/// persisted counters.
pub(crate) struct Loaded {
    pub mem: Mem,
    pub max_seq: Option<u64>,
    pub max_time: Option<u32>,
}

/// Read every record (one pass over the table in address order) into memory.
///
/// A row whose address, seq or time is unreadable makes the file corrupt (the indexes could not place
/// it); a row whose other fields are unreadable is kept as a damaged record, so reading it reports
/// `StoreError::Corrupt` and the rest of the store stays usable.
pub(crate) fn load(path: &Path, conn: &Connection, hasher: KeyHasher) -> Result<Loaded, StoreError> {
    let mut loader = Loader::new(hasher);
    let (mut max_seq, mut max_time) = (None::<u64>, None::<u32>);
    let mut stmt =
        conn.prepare(&format!("SELECT {COLUMNS} FROM binding ORDER BY ip")).map_err(|e| map_read_error(path, e))?;
    let mut rows = stmt.query([]).map_err(|e| map_read_error(path, e))?;
    let mut previous = None;
    while let Some(row) = rows.next().map_err(|e| map_read_error(path, e))? {
        let place = || -> rusqlite::Result<(u32, u64, u32)> {
            let seq: i64 = row.get(1)?;
            let seq = u64::try_from(seq).map_err(|_| bad(1, Type::Integer, "negative sequence number"))?;
            Ok((row.get(0)?, seq, row.get(2)?))
        };
        let (ip, seq, time) = place().map_err(|e| map_read_error(path, e))?;
        if previous.is_some_and(|p| p >= ip) {
            return Err(StoreError::corrupt(path, "binding table is not in address order"));
        }
        previous = Some(ip);
        max_seq = max_seq.max(Some(seq));
        max_time = max_time.max(Some(time));
        let data = match encode_row(row) {
            Some(data) => data,
            // The slow path names what is wrong.
            None => match decode_row(row) {
                Ok(change) => packed::encode_binding(&change.binding).0,
                Err(e) => packed::damaged(&format!("unreadable record: {e}")),
            },
        };
        let keys = loader.hasher().keys_of(&data);
        loader.push(ip, Rec { seq, time, data }, keys);
    }
    let mem =
        loader.finish().map_err(|seq| StoreError::corrupt(path, format!("two records have sequence number {seq}")))?;
    Ok(Loaded { mem, max_seq, max_time })
}
