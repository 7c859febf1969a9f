//! Between `Binding` and table rows: decoding what reads select, and the column arrays one multi-row upsert
//! writes (one statement per group, whatever its size, instead of one round trip per binding).

use crate::binding::{decode_options, encode_options};
use crate::{Binding, BindingChange};
use leasewire_proto::{DataSource, DhcpState};
use std::net::Ipv4Addr;
use tokio_postgres::Row;

/// Why a row could not be read back: something no write of ours produces.
pub(crate) type Unreadable = String;

/// Decode a row selected with `schema::COLUMNS`. A row written by another server (`origin` differs) reads
/// with the REMOTE flag: to this server it is data learned from elsewhere (RFC 6926 §6.2.2, RFC 7724 §6).
pub(crate) fn decode(row: &Row, me: &str) -> Result<BindingChange, Unreadable> {
    let get_i64 = |i: usize| row.try_get::<_, i64>(i).map_err(|e| e.to_string());
    let get_opt = |i: usize| row.try_get::<_, Option<i64>>(i).map_err(|e| e.to_string());
    let u32_of = |v: i64, what: &str| u32::try_from(v).map_err(|_| format!("{what} {v} out of range"));
    let ip = Ipv4Addr::from(u32_of(get_i64(0)?, "address")?);
    let seq = u64::try_from(get_i64(1)?).map_err(|_| "negative sequence number".to_string())?;
    let time = u32_of(get_i64(2)?, "time")?;
    let origin: &str = row.try_get(3).map_err(|e| e.to_string())?;
    let state: i16 = row.try_get(4).map_err(|e| e.to_string())?;
    let state = u8::try_from(state).ok().and_then(DhcpState::from_code).ok_or(format!("unknown dhcp-state {state}"))?;
    let small = |i: usize, what: &str| -> Result<u8, Unreadable> {
        let v: i16 = row.try_get(i).map_err(|e| e.to_string())?;
        u8::try_from(v).map_err(|_| format!("{what} {v} out of range"))
    };
    let htype = small(8, "htype")?;
    let mut data_source = DataSource(small(9, "data-source")?);
    if origin != me {
        data_source = DataSource(data_source.0 | DataSource::REMOTE_FLAG);
    }
    let bytes = |i: usize| row.try_get::<_, Option<Vec<u8>>>(i).map_err(|e| e.to_string());
    let options: Vec<u8> = row.try_get(13).map_err(|e| e.to_string())?;
    let options = decode_options(&options).ok_or("malformed options blob")?;
    let binding = Binding {
        ip,
        state,
        state_since: u32_of(get_i64(5)?, "start-time-of-state")?,
        expires_at: get_opt(6)?.map(|v| u32_of(v, "expiry")).transpose()?,
        cltt: get_opt(7)?.map(|v| u32_of(v, "client-last-transaction-time")).transpose()?,
        htype,
        hardware_address: bytes(10)?.unwrap_or_default(),
        client_id: bytes(11)?,
        relay_agent_info: bytes(12)?,
        data_source,
        options,
        reserved_for: row.try_get(14).map_err(|e| e.to_string())?,
    };
    Ok(BindingChange { seq, time, binding })
}

/// The column arrays of one multi-row upsert (see `writer::UPSERT`).
#[derive(Debug, Default)]
pub(crate) struct Columns {
    pub ip: Vec<i64>,
    pub seq: Vec<i64>,
    pub time: Vec<i64>,
    pub state: Vec<i16>,
    pub state_since: Vec<i64>,
    pub expires_at: Vec<Option<i64>>,
    pub cltt: Vec<Option<i64>>,
    pub htype: Vec<i16>,
    pub data_source: Vec<i16>,
    pub hwaddr: Vec<Option<Vec<u8>>>,
    pub client_id: Vec<Option<Vec<u8>>>,
    pub relay_agent_info: Vec<Option<Vec<u8>>>,
    pub remote_id: Vec<Option<Vec<u8>>>,
    pub relay_id: Vec<Option<Vec<u8>>>,
    pub options: Vec<Vec<u8>>,
    pub reserved_for: Vec<Option<String>>,
}

impl Columns {
    pub(crate) fn push(&mut self, c: &BindingChange) {
        let b = &c.binding;
        self.ip.push(i64::from(u32::from(b.ip)));
        self.seq.push(c.seq as i64);
        self.time.push(i64::from(c.time));
        self.state.push(i16::from(b.state.code()));
        self.state_since.push(i64::from(b.state_since));
        self.expires_at.push(b.expires_at.map(i64::from));
        self.cltt.push(b.cltt.map(i64::from));
        self.htype.push(i16::from(b.htype));
        self.data_source.push(i16::from(b.data_source.0));
        self.hwaddr.push((!b.hardware_address.is_empty()).then(|| b.hardware_address.clone()));
        self.client_id.push(b.client_id.clone());
        self.relay_agent_info.push(b.relay_agent_info.clone());
        self.remote_id.push(b.remote_id().map(<[u8]>::to_vec));
        self.relay_id.push(b.relay_id().map(<[u8]>::to_vec));
        self.options.push(encode_options(&b.options));
        self.reserved_for.push(b.reserved_for.clone());
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ip.is_empty()
    }
}
