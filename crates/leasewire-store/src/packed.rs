//! A binding in a compact encoding: one heap block per record, fixed fields first, then the variable ones
//! length-prefixed. The SQLite store keeps every current record in memory in this form (`sqlite/memory.rs`),
//! and the DHCP engine's lease table holds the same blocks ([`Packed`]): at start the engine takes the
//! store's records by reference, so the bindings loaded from the file are in memory once.
//!
//! The encoding is private to this process (rebuilt from the file at every open), so it can change with any
//! release. The requestor's replica has an encoding of its own (`leasewire-requestor`'s `replica/record.rs`)
//! on purpose: that one is also its file format and must stay readable across versions, and holds what a
//! requestor learns (base-time, where each observation came from) rather than a server's record.

use crate::Binding;
use crate::binding::{decode_options, encode_options, write_options};
use crate::scan::ScanKey;
use leasewire_proto::{DataSource, DhcpState, RelayAgentInfo};
use std::net::Ipv4Addr;
use std::sync::Arc;

const OK: u8 = 0;
const DAMAGED: u8 = 1;

const HAS_EXPIRES: u8 = 1 << 0;
const HAS_CLTT: u8 = 1 << 1;
const HAS_CLIENT_ID: u8 = 1 << 2;
const HAS_RAI: u8 = 1 << 3;
const HAS_RESERVED: u8 = 1 << 4;

/// Fixed part: tag, state, htype, data source, flags, state_since, expires_at, cltt.
const FIXED: usize = 5 + 12;

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    // LEB128: one octet for the usual short values.
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn take_len(data: &mut &[u8]) -> Option<usize> {
    let mut n = 0usize;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = data.split_first()?;
        *data = rest;
        n |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

fn take<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = take_len(data)?;
    let (value, rest) = (data.get(..len)?, &data[len..]);
    *data = rest;
    Some(value)
}

/// The fields of a record, borrowed: from a [`Binding`] (commits) or straight from a row (the load).
pub(crate) struct Parts<'a> {
    pub state: DhcpState,
    pub htype: u8,
    pub data_source: u8,
    pub state_since: u32,
    pub expires_at: Option<u32>,
    pub cltt: Option<u32>,
    pub hw: &'a [u8],
    pub client_id: Option<&'a [u8]>,
    pub rai: Option<&'a [u8]>,
    /// As [`encode_options`] makes it.
    pub options: &'a [u8],
    pub reserved: Option<&'a str>,
}

/// Encode a binding (already validated) with its options blob as [`encode_options`] makes it.
pub(crate) fn encode(b: &Binding, options_blob: &[u8]) -> Arc<[u8]> {
    encode_parts(&parts(b, options_blob))
}

fn parts<'a>(b: &'a Binding, options_blob: &'a [u8]) -> Parts<'a> {
    Parts {
        state: b.state,
        htype: b.htype,
        data_source: b.data_source.0,
        state_since: b.state_since,
        expires_at: b.expires_at,
        cltt: b.cltt,
        hw: &b.hardware_address,
        client_id: b.client_id.as_deref(),
        rai: b.relay_agent_info.as_deref(),
        options: options_blob,
        reserved: b.reserved_for.as_deref(),
    }
}

pub(crate) fn encode_parts(p: &Parts<'_>) -> Arc<[u8]> {
    encode_with(p, p.options.len(), |out| out.extend_from_slice(p.options))
}

/// [`encode_parts`] with the options blob (`options_len` octets) written by `options` instead of copied from
/// `p.options`, so packing a binding writes its options straight into the record.
fn encode_with(p: &Parts<'_>, options_len: usize, options: impl FnOnce(&mut Vec<u8>)) -> Arc<[u8]> {
    let len = FIXED
        + 1
        + p.hw.len()
        + p.client_id.map_or(0, |v| v.len() + 2)
        + p.rai.map_or(0, |v| v.len() + 2)
        + options_len
        + 3
        + p.reserved.map_or(0, |v| v.len() + 2);
    let mut out = Vec::with_capacity(len);
    let mut flags = 0;
    for (present, flag) in [
        (p.expires_at.is_some(), HAS_EXPIRES),
        (p.cltt.is_some(), HAS_CLTT),
        (p.client_id.is_some(), HAS_CLIENT_ID),
        (p.rai.is_some(), HAS_RAI),
        (p.reserved.is_some(), HAS_RESERVED),
    ] {
        if present {
            flags |= flag;
        }
    }
    out.extend_from_slice(&[OK, p.state.code(), p.htype, p.data_source, flags]);
    for t in [p.state_since, p.expires_at.unwrap_or(0), p.cltt.unwrap_or(0)] {
        out.extend_from_slice(&t.to_le_bytes());
    }
    for field in [Some(p.hw), p.client_id, p.rai].into_iter().flatten() {
        put_len(&mut out, field.len());
        out.extend_from_slice(field);
    }
    put_len(&mut out, options_len);
    options(&mut out);
    if let Some(r) = p.reserved {
        put_len(&mut out, r.len());
        out.extend_from_slice(r.as_bytes());
    }
    out.into()
}

/// A record whose row in the file could not be decoded: kept (so lookups report it as damaged instead of
/// pretending it is absent) but in no key index.
pub(crate) fn damaged(detail: &str) -> Arc<[u8]> {
    let mut out = Vec::with_capacity(1 + detail.len());
    out.push(DAMAGED);
    out.extend_from_slice(detail.as_bytes());
    out.into()
}

/// The fields of an encoded record, borrowed.
pub(crate) struct View<'a> {
    state: u8,
    pub htype: u8,
    data_source: u8,
    flags: u8,
    /// state_since, expires_at, cltt (the last two meaningful only with their flags).
    pub times: [u32; 3],
    pub hw: &'a [u8],
    pub client_id: Option<&'a [u8]>,
    rai: Option<&'a [u8]>,
    options: &'a [u8],
    reserved: Option<&'a [u8]>,
}

/// Why a record cannot be read.
pub(crate) enum Unreadable {
    /// The row in the file was damaged when it was loaded.
    Damaged(String),
    /// The in-memory encoding is malformed (a bug; never produced by [`encode`]).
    Malformed,
}

impl<'a> View<'a> {
    pub(crate) fn parse(data: &'a [u8]) -> Result<Self, Unreadable> {
        match data.split_first() {
            Some((&OK, _)) => Self::parse_ok(data).ok_or(Unreadable::Malformed),
            Some((&DAMAGED, detail)) => Err(Unreadable::Damaged(String::from_utf8_lossy(detail).into_owned())),
            _ => Err(Unreadable::Malformed),
        }
    }

    fn parse_ok(data: &'a [u8]) -> Option<Self> {
        let fixed = data.get(..FIXED)?;
        let time = |i: usize| u32::from_le_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
        let flags = fixed[4];
        let mut rest = &data[FIXED..];
        let hw = take(&mut rest)?;
        let mut opt = |flag: u8| if flags & flag != 0 { take(&mut rest).map(Some) } else { Some(None) };
        let client_id = opt(HAS_CLIENT_ID)?;
        let rai = opt(HAS_RAI)?;
        let options = take(&mut rest)?;
        let reserved = if flags & HAS_RESERVED != 0 { Some(take(&mut rest)?) } else { None };
        Some(Self {
            state: fixed[1],
            htype: fixed[2],
            data_source: fixed[3],
            flags,
            times: [time(5), time(9), time(13)],
            hw,
            client_id,
            rai,
            options,
            reserved,
        })
    }

    /// A record with no client and no times (a fallback that [`Packed`] never needs).
    fn empty() -> Self {
        let state = DhcpState::Available.code();
        let (hw, client_id, rai, options, reserved) = (&[][..], None, None, &[][..], None);
        Self { state, htype: 0, data_source: 0, flags: 0, times: [0; 3], hw, client_id, rai, options, reserved }
    }

    pub(crate) fn relay_agent(&self) -> Option<RelayAgentInfo<'a>> {
        RelayAgentInfo::parse(self.rai?).ok()
    }

    pub(crate) fn state(&self) -> Option<DhcpState> {
        DhcpState::from_code(self.state)
    }

    pub(crate) fn cltt(&self) -> Option<u32> {
        (self.flags & HAS_CLTT != 0).then_some(self.times[2])
    }

    pub(crate) fn expires_at(&self) -> Option<u32> {
        (self.flags & HAS_EXPIRES != 0).then_some(self.times[1])
    }

    /// Whether the record carries `key` ([`ScanKey::carried_by`]).
    pub(crate) fn has_key(&self, key: &ScanKey) -> bool {
        key.carried_by(self.htype, self.hw, self.client_id, || self.relay_agent())
    }

    pub(crate) fn binding(&self, ip: Ipv4Addr) -> Option<Binding> {
        Some(Binding {
            ip,
            htype: self.htype,
            hardware_address: self.hw.to_vec(),
            client_id: self.client_id.map(<[u8]>::to_vec),
            state: DhcpState::from_code(self.state)?,
            state_since: self.times[0],
            expires_at: self.expires_at(),
            cltt: (self.flags & HAS_CLTT != 0).then_some(self.times[2]),
            relay_agent_info: self.rai.map(<[u8]>::to_vec),
            data_source: DataSource(self.data_source),
            options: decode_options(self.options)?,
            reserved_for: match self.reserved {
                Some(r) => Some(String::from_utf8(r.to_vec()).ok()?),
                None => None,
            },
        })
    }
}

/// Whether an options blob decodes (see [`decode_options`]), without allocating.
pub(crate) fn options_well_formed(mut blob: &[u8]) -> bool {
    while let [_, hi, lo, rest @ ..] = blob {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        if rest.len() < len {
            return false;
        }
        blob = &rest[len..];
    }
    blob.is_empty()
}

/// Encode a binding for memory and return its options blob for the file.
pub(crate) fn encode_binding(b: &Binding) -> (Arc<[u8]>, Option<Vec<u8>>) {
    let options = encode_options(&b.options);
    let data = encode(b, &options);
    (data, (!b.options.is_empty()).then_some(options))
}

/// A readable binding record in the compact encoding, shared: cloning copies a reference. The address is
/// not in it (it is the key of whatever map holds it).
///
/// What a DHCP engine keeps per address: the fields its decisions read are a few octets into the block, and
/// the whole binding decodes from it when a decision changes it (a release keeps the client, its option 82
/// and options). 16 octets inline, plus the block (about 60 octets for a relayed client with a MAC).
#[derive(Clone, PartialEq, Eq)]
pub struct Packed(Arc<[u8]>);

impl Packed {
    /// Pack a binding. A binding that fails [`Binding::validate`] packs with its option lengths saturated,
    /// like the store's options blob (the store refuses to commit such a binding).
    pub fn new(b: &Binding) -> Self {
        let options_len = b.options.iter().map(|(_, v)| 3 + v.len()).sum();
        Self(encode_with(&parts(b, &[]), options_len, |out| write_options(out, &b.options)))
    }

    /// The store's record, unless it is the marker of a damaged row. Every other record was encoded from
    /// a binding or from a row whose fields were checked (`read::encode_row`), so the tag is all there is
    /// to check.
    pub(crate) fn of_record(data: &Arc<[u8]>) -> Option<Self> {
        (data.first() == Some(&OK)).then(|| Self(data.clone()))
    }

    fn view(&self) -> View<'_> {
        // Made by `new` (from a binding) or `of_record` (checked): always parses.
        View::parse_ok(&self.0).unwrap_or_else(View::empty)
    }

    // The fields a DHCP engine decides on are read in place: the fixed ones at their offsets (tag, state,
    // htype, data source, flags, three times), the hardware address and client-id first of the variable ones.

    fn octet(&self, i: usize) -> u8 {
        self.0.get(i).copied().unwrap_or(0)
    }

    fn time(&self, i: usize) -> u32 {
        self.0.get(i..i + 4).map_or(0, |t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
    }

    /// The dhcp-state.
    pub fn state(&self) -> DhcpState {
        DhcpState::from_code(self.octet(1)).unwrap_or(DhcpState::Available)
    }

    /// `htype`, the hardware address (empty when there is no client) and the client identifier (option 61,
    /// if the client sent one): who the record's client is.
    pub fn client(&self) -> (u8, &[u8], Option<&[u8]>) {
        let mut rest = self.0.get(FIXED..).unwrap_or_default();
        let hw = take(&mut rest).unwrap_or_default();
        let id = if self.octet(4) & HAS_CLIENT_ID != 0 { take(&mut rest) } else { None };
        (self.octet(2), hw, id)
    }

    /// The hardware address (empty when there is no client).
    pub fn hardware_address(&self) -> &[u8] {
        self.client().1
    }

    /// When the current state began.
    pub fn state_since(&self) -> u32 {
        self.time(5)
    }

    /// When the lease or other timed state ends.
    pub fn expires_at(&self) -> Option<u32> {
        (self.octet(4) & HAS_EXPIRES != 0).then(|| self.time(9))
    }

    /// The stored option 82, parsed, if present and well formed.
    pub fn relay_agent(&self) -> Option<RelayAgentInfo<'_>> {
        self.view().relay_agent()
    }

    /// The stored option 82 as received, if any.
    pub fn relay_agent_bytes(&self) -> Option<&[u8]> {
        self.view().rai
    }

    /// The whole binding of address `ip`.
    pub fn binding(&self, ip: Ipv4Addr) -> Binding {
        self.view().binding(ip).unwrap_or_else(|| Binding::new(ip, DhcpState::Available, 0))
    }
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.view();
        f.debug_struct("Packed")
            .field("state", &v.state())
            .field("htype", &v.htype)
            .field("hardware_address", &v.hw)
            .field("client_id", &v.client_id)
            .field("times", &v.times)
            .field("len", &self.0.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasewire_proto::RelayAgentInfoBuilder;

    #[test]
    fn lengths_use_leb128() {
        for n in [0usize, 1, 127, 128, 300, 65_535, 1 << 20] {
            let mut out = Vec::new();
            put_len(&mut out, n);
            let mut s = out.as_slice();
            assert_eq!(take_len(&mut s), Some(n));
            assert!(s.is_empty());
        }
        assert_eq!(take_len(&mut &[0x80u8][..]), None);
    }

    #[test]
    fn packed_bindings_read_back_and_damaged_records_are_not_packed() {
        let ip = Ipv4Addr::new(10, 1, 2, 3);
        let mut b = Binding::new(ip, DhcpState::Released, 100);
        b.htype = 1;
        b.hardware_address = vec![1, 2, 3, 4, 5, 6];
        b.client_id = Some(b"cid".to_vec());
        b.expires_at = Some(200);
        b.relay_agent_info = Some(RelayAgentInfoBuilder::new().remote_id(b"rem").build());
        b.options = vec![(12, b"host".to_vec())];
        b.reserved_for = Some("res".into());
        let p = Packed::new(&b);
        assert_eq!(p.binding(ip), b);
        assert_eq!((p.state(), p.state_since(), p.expires_at()), (DhcpState::Released, 100, Some(200)));
        assert_eq!(p.client(), (1, &[1, 2, 3, 4, 5, 6][..], Some(&b"cid"[..])));
        assert_eq!(p.hardware_address(), &[1, 2, 3, 4, 5, 6][..]);
        b.client_id = None;
        b.expires_at = None;
        let p = Packed::new(&b);
        assert_eq!((p.client().2, p.expires_at()), (None, None));
        assert_eq!(p.relay_agent().and_then(|r| r.remote_id().map(<[u8]>::to_vec)), Some(b"rem".to_vec()));
        let (data, _) = encode_binding(&b);
        assert_eq!(Packed::of_record(&data), Some(p));
        assert_eq!(Packed::of_record(&damaged("bad")), None);
    }

    #[test]
    fn options_well_formed_agrees_with_decode_options() {
        let good = encode_options(&[(12, b"host".to_vec()), (60, vec![]), (77, vec![7; 300])]);
        for end in 0..=good.len() {
            let blob = &good[..end];
            assert_eq!(options_well_formed(blob), decode_options(blob).is_some(), "{blob:?}");
        }
        assert!(!options_well_formed(&[12, 0]));
    }
}
