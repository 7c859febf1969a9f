//! The DHCPv4 message (RFC 2131 §2): strict borrowed decoding and encoding into a reusable buffer.

use crate::error::OptionArea;
use crate::options::{code, validate};
use crate::{DecodeError, EncodeError};
use std::borrow::Cow;
use std::net::Ipv4Addr;

/// Octets before the magic cookie: op .. file.
pub const HEADER_LEN: usize = 236;
/// RFC 2131 §3: the first four octets of the options field.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// RFC 1542 §2.1: BOOTP relays and old clients expect messages of at least 300 octets.
pub const BOOTP_MIN_LEN: usize = 300;

const SNAME: std::ops::Range<usize> = 44..108;
const FILE: std::ops::Range<usize> = 108..236;
const OPTIONS_START: usize = HEADER_LEN + 4;

/// The `op` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// 1: client or requestor to server.
    BootRequest,
    /// 2: server to client or requestor.
    BootReply,
}

impl Op {
    /// The wire value.
    pub const fn code(self) -> u8 {
        match self {
            Self::BootRequest => 1,
            Self::BootReply => 2,
        }
    }
}

/// One option, after RFC 3396 concatenation of all its pieces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DhcpOption<'a> {
    /// The option code (never 0, 52 or 255: those are framing).
    pub code: u8,
    /// The value. Borrowed from the datagram unless the option was split into several pieces.
    pub data: Cow<'a, [u8]>,
}

/// A message's options in the order they were received (or set), with RFC 3396 pieces joined.
///
/// Order is kept so that a message re-encodes byte for byte; unknown options are kept as they came.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options<'a> {
    list: Vec<DhcpOption<'a>>,
    /// Bitmap of codes present, so lookups of absent options and duplicate checks cost nothing.
    present: [u64; 4],
}

impl<'a> Options<'a> {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }

    /// No options, with room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Self { list: Vec::with_capacity(n), present: [0; 4] }
    }

    fn has(&self, code: u8) -> bool {
        self.present[(code >> 6) as usize] & (1 << (code & 63)) != 0
    }

    fn mark(&mut self, code: u8) {
        self.present[(code >> 6) as usize] |= 1 << (code & 63);
    }

    /// Whether an option with this code is present.
    pub fn contains(&self, code: u8) -> bool {
        self.has(code)
    }

    /// The value of the option with this code.
    pub fn get(&self, code: u8) -> Option<&[u8]> {
        if !self.has(code) {
            return None;
        }
        self.list.iter().find(|o| o.code == code).map(|o| &*o.data)
    }

    /// All options in order.
    pub fn iter(&self) -> std::slice::Iter<'_, DhcpOption<'a>> {
        self.list.iter()
    }

    /// Number of options.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are no options.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Set an option: replace the value of an existing option with this code in place, or append.
    pub fn set(&mut self, code: u8, data: impl Into<Cow<'a, [u8]>>) {
        let data = data.into();
        if self.has(code)
            && let Some(o) = self.list.iter_mut().find(|o| o.code == code)
        {
            o.data = data;
            return;
        }
        self.mark(code);
        self.list.push(DhcpOption { code, data });
    }

    /// Append an option. A second option with a code already present is joined to it (RFC 3396), which is what
    /// a receiver would do with the encoded message anyway.
    pub fn push(&mut self, option: DhcpOption<'a>) {
        if self.has(option.code)
            && let Some(o) = self.list.iter_mut().find(|o| o.code == option.code)
        {
            o.data.to_mut().extend_from_slice(&option.data);
            return;
        }
        self.mark(option.code);
        self.list.push(option);
    }

    /// Remove the option with this code, returning it.
    pub fn remove(&mut self, code: u8) -> Option<DhcpOption<'a>> {
        if !self.has(code) {
            return None;
        }
        self.present[(code >> 6) as usize] &= !(1 << (code & 63));
        let i = self.list.iter().position(|o| o.code == code)?;
        Some(self.list.remove(i))
    }

    /// Keep only the options for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&DhcpOption<'a>) -> bool) {
        self.list.retain(|o| keep(o));
        self.present = [0; 4];
        for i in 0..self.list.len() {
            let c = self.list[i].code;
            self.mark(c);
        }
    }

    /// A copy that owns all its data.
    pub fn into_owned(self) -> Options<'static> {
        Options {
            list: self
                .list
                .into_iter()
                .map(|o| DhcpOption { code: o.code, data: Cow::Owned(o.data.into_owned()) })
                .collect(),
            present: self.present,
        }
    }

    /// Octets the options take on the wire (pieces of at most 255 octets, each with code and length).
    fn wire_len(&self) -> usize {
        self.list.iter().map(|o| option_wire_len(o.data.len())).sum()
    }
}

fn option_wire_len(len: usize) -> usize {
    len.div_ceil(255).max(1) * 2 + len
}

/// A DHCPv4 message.
///
/// Decoding borrows option values, `sname` and `file` from the datagram; the fixed header fields are copied
/// (they are scalars). `sname` and `file` are kept without trailing zero octets, so an empty slice means an
/// all-zero field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// Request or reply.
    pub op: Op,
    /// Hardware address type (1 = Ethernet).
    pub htype: u8,
    /// Hardware address length (at most 16).
    pub hlen: u8,
    /// Relay hops.
    pub hops: u8,
    /// Transaction id; every reply to a leasequery repeats the query's.
    pub xid: u32,
    /// Seconds since the client began.
    pub secs: u16,
    /// Flags (bit 15: broadcast).
    pub flags: u16,
    /// Client address; the queried or reported address in leasequery.
    pub ciaddr: Ipv4Addr,
    /// "Your" address.
    pub yiaddr: Ipv4Addr,
    /// Next server address.
    pub siaddr: Ipv4Addr,
    /// Relay address; the requestor's address in RFC 4388.
    pub giaddr: Ipv4Addr,
    /// Client hardware address, zero-padded to 16 octets.
    pub chaddr: [u8; 16],
    /// Server host name (without trailing zeros; empty when used for options).
    pub sname: &'a [u8],
    /// Boot file name (without trailing zeros; empty when used for options).
    pub file: &'a [u8],
    /// The options, in order.
    pub options: Options<'a>,
}

/// Limits for [`Message::encode_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeSettings {
    /// Pad the message with zeros to at least this many octets (RFC 1542: 300 for BOOTP compatibility).
    pub min_len: usize,
    /// Never produce more than this many octets. When the options do not fit, `file` and then `sname` carry
    /// options (RFC 2131 option overload, RFC 2132 §9.3), each only if the message leaves it empty (a boot
    /// file name or a server name keeps its field).
    pub max_len: usize,
}

impl Default for EncodeSettings {
    fn default() -> Self {
        Self { min_len: BOOTP_MIN_LEN, max_len: u16::MAX as usize }
    }
}

/// The DHCP broadcast flag (RFC 2131 §2).
pub const BROADCAST_FLAG: u16 = 0x8000;

impl<'a> Message<'a> {
    /// An empty message: all header fields zero, no options.
    pub fn new(op: Op) -> Self {
        Self {
            op,
            htype: 0,
            hlen: 0,
            hops: 0,
            xid: 0,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: [0; 16],
            sname: &[],
            file: &[],
            options: Options::with_capacity(16),
        }
    }

    /// The client hardware address: the first `hlen` octets of `chaddr`.
    pub fn hardware_address(&self) -> &[u8] {
        &self.chaddr[..(self.hlen as usize).min(16)]
    }

    /// Set htype, hlen and chaddr together. Addresses longer than 16 octets are cut to 16.
    pub fn set_hardware_address(&mut self, htype: u8, addr: &[u8]) {
        let n = addr.len().min(16);
        self.htype = htype;
        self.hlen = n as u8;
        self.chaddr = [0; 16];
        self.chaddr[..n].copy_from_slice(&addr[..n]);
    }

    /// Whether the client asked for broadcast replies.
    pub fn broadcast(&self) -> bool {
        self.flags & BROADCAST_FLAG != 0
    }

    /// The message type (option 53), if present.
    pub fn message_type(&self) -> Option<crate::MessageType> {
        self.options.message_type()
    }

    /// Decode a datagram (or the payload of one TCP frame).
    ///
    /// Strict: the magic cookie, every option's length, the end option, option overload and the form of
    /// the known options are checked, and the first problem is returned as a [`DecodeError`] that names it.
    /// Octets after the end option are ignored (they are padding).
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        if buf.len() < OPTIONS_START {
            return Err(DecodeError::TruncatedHeader { len: buf.len() });
        }
        let op = match buf[0] {
            1 => Op::BootRequest,
            2 => Op::BootReply,
            other => return Err(DecodeError::BadOp(other)),
        };
        let hlen = buf[2];
        if hlen > 16 {
            return Err(DecodeError::BadHardwareLength(hlen));
        }
        let cookie: [u8; 4] = buf[HEADER_LEN..OPTIONS_START].try_into().expect("4 octets");
        if cookie != MAGIC_COOKIE {
            return Err(DecodeError::BadMagicCookie(cookie));
        }
        let ip = |at: usize| Ipv4Addr::new(buf[at], buf[at + 1], buf[at + 2], buf[at + 3]);
        let mut options = Options::with_capacity(16);
        let overload = parse_area(&buf[OPTIONS_START..], OptionArea::Options, &mut options)?;
        let mut sname = trim_zeros(&buf[SNAME]);
        let mut file = trim_zeros(&buf[FILE]);
        if let Some(overload) = overload {
            // RFC 3396 §7: pieces are joined in the order options, file, sname.
            if overload & 1 != 0 {
                parse_area(&buf[FILE], OptionArea::File, &mut options)?;
                file = &[];
            }
            if overload & 2 != 0 {
                parse_area(&buf[SNAME], OptionArea::Sname, &mut options)?;
                sname = &[];
            }
        }
        for o in options.iter() {
            validate(o.code, &o.data)?;
        }
        Ok(Self {
            op,
            htype: buf[1],
            hlen,
            hops: buf[3],
            xid: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            secs: u16::from_be_bytes([buf[8], buf[9]]),
            flags: u16::from_be_bytes([buf[10], buf[11]]),
            ciaddr: ip(12),
            yiaddr: ip(16),
            siaddr: ip(20),
            giaddr: ip(24),
            chaddr: buf[28..44].try_into().expect("16 octets"),
            sname,
            file,
            options,
        })
    }

    /// Encode with the default settings (pad to 300 octets, at most 65535), appending to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.encode_with(buf, &EncodeSettings::default())
    }

    /// Encode, appending to `buf` (which callers reuse to avoid allocating per message).
    ///
    /// Options go out in their order except relay agent information (82), which goes last (RFC 3046 §2.1).
    /// Values over 255 octets are split into consecutive pieces (RFC 3396). On error `buf` is left as it was.
    pub fn encode_with(&self, buf: &mut Vec<u8>, settings: &EncodeSettings) -> Result<(), EncodeError> {
        if self.sname.len() > 64 {
            return Err(EncodeError::SnameTooLong(self.sname.len()));
        }
        if self.file.len() > 128 {
            return Err(EncodeError::FileTooLong(self.file.len()));
        }
        if self.hlen > 16 {
            return Err(EncodeError::BadHardwareLength(self.hlen));
        }
        if let Some(o) = self.options.iter().find(|o| matches!(o.code, code::PAD | code::OVERLOAD | code::END)) {
            return Err(EncodeError::ReservedOptionCode(o.code));
        }
        let start = buf.len();
        let needed = OPTIONS_START + self.options.wire_len() + 1;
        buf.reserve(needed.max(settings.min_len));
        self.write_header(buf);
        if needed <= settings.max_len {
            for o in self.ordered_options() {
                write_option(buf, o.code, &o.data);
            }
            buf.push(code::END);
        } else if let Err(e) = self.write_overloaded(buf, start, settings.max_len) {
            buf.truncate(start);
            return Err(e);
        }
        let target = settings.min_len.min(settings.max_len);
        if buf.len() - start < target {
            buf.resize(start + target, 0);
        }
        Ok(())
    }

    /// Options in wire order: everything but 82 in order, then 82.
    fn ordered_options(&self) -> impl Iterator<Item = &DhcpOption<'a>> {
        let rai = |o: &&DhcpOption<'a>| o.code == code::RELAY_AGENT_INFO;
        self.options.iter().filter(move |o| !rai(o)).chain(self.options.iter().filter(rai))
    }

    fn write_header(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&[self.op.code(), self.htype, self.hlen, self.hops]);
        buf.extend_from_slice(&self.xid.to_be_bytes());
        buf.extend_from_slice(&self.secs.to_be_bytes());
        buf.extend_from_slice(&self.flags.to_be_bytes());
        for a in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            buf.extend_from_slice(&a.octets());
        }
        buf.extend_from_slice(&self.chaddr);
        write_field(buf, self.sname, 64);
        write_field(buf, self.file, 128);
        buf.extend_from_slice(&MAGIC_COOKIE);
    }

    /// Spread the options over the options field, `file` and `sname` (RFC 2131 option overload), splitting
    /// pieces where an area fills up (RFC 3396 lets a receiver join them again in that order). A field that
    /// holds a name (a boot file, a server name) is not used.
    fn write_overloaded(&self, buf: &mut Vec<u8>, start: usize, max_len: usize) -> Result<(), EncodeError> {
        let total = OPTIONS_START + self.options.wire_len() + 1;
        let too_large = || EncodeError::TooLarge { needed: total, limit: max_len };
        if !self.sname.is_empty() && !self.file.is_empty() {
            return Err(too_large());
        }
        // Room in each area for option pieces, keeping one octet for its end option; the options field
        // also keeps three for option 52 itself.
        let main_room = max_len.checked_sub(OPTIONS_START + 3 + 1).ok_or_else(too_large)?;
        let free = |field: &[u8], len: usize| if field.is_empty() { len - 1 } else { 0 };
        let rooms = [main_room, free(self.file, FILE.len()), free(self.sname, SNAME.len())];
        let mut areas: [Vec<u8>; 3] = Default::default();
        let mut area = 0;
        for o in self.ordered_options() {
            let mut rest: &[u8] = &o.data;
            loop {
                let free = rooms[area] - areas[area].len();
                // A piece needs code, length and (unless the option is empty) at least one octet.
                if free < 2 + usize::from(!rest.is_empty()) {
                    area += 1;
                    if area == 3 {
                        return Err(too_large());
                    }
                    continue;
                }
                let n = rest.len().min(255).min(free - 2);
                write_option_piece(&mut areas[area], o.code, &rest[..n]);
                rest = &rest[n..];
                if rest.is_empty() {
                    break;
                }
            }
        }
        // RFC 2132 §9.3: 1 file, 2 sname, 3 both.
        let overload = u8::from(!areas[1].is_empty()) | u8::from(!areas[2].is_empty()) << 1;
        if overload != 0 {
            buf.extend_from_slice(&[code::OVERLOAD, 1, overload]);
        }
        buf.extend_from_slice(&areas[0]);
        buf.push(code::END);
        for (range, data) in [(FILE, &areas[1]), (SNAME, &areas[2])].into_iter().filter(|(_, d)| !d.is_empty()) {
            let field = &mut buf[start + range.start..start + range.end];
            field.fill(0);
            field[..data.len()].copy_from_slice(data);
            field[data.len()] = code::END;
        }
        Ok(())
    }
}

/// Parse the options of one area into `options`; returns the option overload value if the area had one.
fn parse_area<'a>(area: &'a [u8], which: OptionArea, options: &mut Options<'a>) -> Result<Option<u8>, DecodeError> {
    let mut overload = None;
    let mut i = 0;
    while i < area.len() {
        let c = area[i];
        match c {
            code::PAD => {
                i += 1;
                continue;
            }
            code::END => return Ok(overload),
            _ => {}
        }
        let Some(&len) = area.get(i + 1) else {
            return Err(DecodeError::MissingOptionLength { code: c, offset: i, area: which });
        };
        let len = len as usize;
        let available = area.len() - i - 2;
        if len > available {
            return Err(DecodeError::OptionOverrun { code: c, offset: i, len, available, area: which });
        }
        let data = &area[i + 2..i + 2 + len];
        if c == code::OVERLOAD {
            match (which, data) {
                (OptionArea::Options, [v @ 1..=3]) => overload = Some(*v),
                _ => return Err(DecodeError::BadOverload(data.to_vec())),
            }
        } else {
            options.push(DhcpOption { code: c, data: Cow::Borrowed(data) });
        }
        i += 2 + len;
    }
    // The options field must end with END; `file` and `sname` are bounded by their size.
    match which {
        OptionArea::Options => Err(DecodeError::MissingEnd),
        _ => Ok(overload),
    }
}

fn trim_zeros(field: &[u8]) -> &[u8] {
    // Nearly always all zeros: an OR over the field vectorises, a byte-wise search from the end does not.
    if field.iter().fold(0, |acc, &b| acc | b) == 0 {
        return &[];
    }
    let end = field.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    &field[..end]
}

fn write_field(buf: &mut Vec<u8>, data: &[u8], size: usize) {
    buf.extend_from_slice(data);
    buf.resize(buf.len() + size - data.len(), 0);
}

fn write_option(buf: &mut Vec<u8>, code: u8, data: &[u8]) {
    if data.is_empty() {
        buf.extend_from_slice(&[code, 0]);
        return;
    }
    for piece in data.chunks(255) {
        write_option_piece(buf, code, piece);
    }
}

fn write_option_piece(buf: &mut Vec<u8>, code: u8, piece: &[u8]) {
    buf.push(code);
    buf.push(piece.len() as u8);
    buf.extend_from_slice(piece);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MessageType;

    fn sample() -> Message<'static> {
        let mut m = Message::new(Op::BootReply);
        m.xid = 0xdead_beef;
        m.ciaddr = Ipv4Addr::new(10, 0, 0, 5);
        m.set_hardware_address(1, &[2, 0, 0, 0, 0, 1]);
        m.options.set_message_type(MessageType::LeaseActive);
        m.options.set_u32(code::LEASE_TIME, 600);
        m
    }

    fn encode(m: &Message<'_>) -> Vec<u8> {
        let mut v = Vec::new();
        m.encode(&mut v).unwrap();
        v
    }

    #[test]
    fn replies_are_padded_to_300_octets() {
        let b = encode(&sample());
        assert_eq!(b.len(), 300);
        assert_eq!(Message::decode(&b).unwrap(), sample());
    }

    #[test]
    fn option_82_goes_last() {
        let mut m = sample();
        m.options.set(code::RELAY_AGENT_INFO, vec![1, 1, b'x']);
        m.options.set(code::CLIENT_IDENTIFIER, vec![1, 2, 3]);
        let b = encode(&m);
        let d = Message::decode(&b).unwrap();
        let codes: Vec<u8> = d.options.iter().map(|o| o.code).collect();
        assert_eq!(codes, vec![53, 51, 61, 82]);
    }

    #[test]
    fn long_options_are_split_and_joined() {
        let mut m = sample();
        let long: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        m.options.set(200, long.clone());
        let b = encode(&m);
        // 600 octets => pieces of 255, 255, 90.
        let d = Message::decode(&b).unwrap();
        assert_eq!(d.options.get(200), Some(&long[..]));
        assert!(matches!(d.options.iter().find(|o| o.code == 200).unwrap().data, Cow::Owned(_)));
        assert_eq!(encode(&d), b);
    }

    #[test]
    fn non_adjacent_repeats_are_joined_in_order() {
        let mut b = encode(&sample());
        // Replace END with: 200/2 "ab", 12/1 "h", 200/1 "c", END.
        let end = OPTIONS_START + b[OPTIONS_START..].iter().position(|&x| x == 255).unwrap();
        b.truncate(end);
        b.extend_from_slice(&[200, 2, b'a', b'b', 12, 1, b'h', 200, 1, b'c', 255]);
        let d = Message::decode(&b).unwrap();
        assert_eq!(d.options.get(200), Some(&b"abc"[..]));
        let codes: Vec<u8> = d.options.iter().map(|o| o.code).collect();
        assert_eq!(codes, vec![53, 51, 200, 12]);
    }

    #[test]
    fn zero_length_unknown_options_survive() {
        let mut m = sample();
        m.options.set(250, Vec::new());
        let b = encode(&m);
        assert_eq!(Message::decode(&b).unwrap().options.get(250), Some(&[][..]));
        assert_eq!(encode(&Message::decode(&b).unwrap()), b);
    }

    #[test]
    fn overload_is_used_when_options_exceed_the_limit_and_decodes_back() {
        let mut m = sample();
        m.options.set(code::HOST_NAME, vec![b'h'; 200]);
        m.options.set(code::DOMAIN_NAME, vec![b'd'; 100]);
        m.options.set(code::RELAY_AGENT_INFO, vec![1, 3, b'a', b'b', b'c']);
        let settings = EncodeSettings { min_len: 300, max_len: 400 };
        let mut b = Vec::new();
        m.encode_with(&mut b, &settings).unwrap();
        assert!(b.len() <= 400, "{}", b.len());
        let d = Message::decode(&b).unwrap();
        assert_eq!(d.options.get(code::HOST_NAME), Some(&[b'h'; 200][..]));
        assert_eq!(d.options.get(code::DOMAIN_NAME), Some(&[b'd'; 100][..]));
        assert_eq!(d.options.get(code::RELAY_AGENT_INFO), Some(&[1, 3, b'a', b'b', b'c'][..]));
        assert!(d.sname.is_empty() && d.file.is_empty());
        // Too much even with overload: a typed error and an untouched buffer.
        m.options.set(201, vec![0; 600]);
        let mut b2 = vec![7];
        assert!(matches!(m.encode_with(&mut b2, &settings), Err(EncodeError::TooLarge { .. })));
        assert_eq!(b2, vec![7]);
    }

    /// RFC 2132 §9.3: a field holding a name is not overloaded; the other one is (1: file, 2: sname).
    #[test]
    fn overload_uses_only_the_fields_that_hold_no_name() {
        let overloaded = |sname: &'static [u8], file: &'static [u8], host: usize| {
            let mut m = sample();
            m.sname = sname;
            m.file = file;
            m.options.set(code::HOST_NAME, vec![b'h'; host]);
            let mut b = Vec::new();
            m.encode_with(&mut b, &EncodeSettings { min_len: 300, max_len: 300 }).map(|_| b)
        };
        let b = overloaded(b"server", b"", 100).unwrap();
        assert!(b.len() <= 300);
        let d = Message::decode(&b).unwrap();
        assert_eq!(d.sname, b"server", "the name stays");
        assert_eq!(d.options.get(code::OVERLOAD), None, "option 52 is consumed by decoding");
        assert_eq!(b[OPTIONS_START..OPTIONS_START + 3], [code::OVERLOAD, 1, 1], "file only");
        assert_eq!(d.options.get(code::HOST_NAME), Some(&[b'h'; 100][..]));
        let b = overloaded(b"", b"pxelinux.0", 60).unwrap();
        assert_eq!(b[OPTIONS_START..OPTIONS_START + 3], [code::OVERLOAD, 1, 2], "sname only");
        let d = Message::decode(&b).unwrap();
        assert_eq!((d.file, d.options.get(code::HOST_NAME)), (&b"pxelinux.0"[..], Some(&[b'h'; 60][..])));
        // Both fields hold names: nowhere to put what does not fit.
        assert!(matches!(overloaded(b"server", b"boot", 100), Err(EncodeError::TooLarge { .. })));
        // Too much for the free field alone.
        assert!(matches!(overloaded(b"", b"boot", 200), Err(EncodeError::TooLarge { .. })));
    }

    #[test]
    fn decode_errors_name_the_problem() {
        let good = encode(&sample());
        assert_eq!(Message::decode(&good[..239]), Err(DecodeError::TruncatedHeader { len: 239 }));
        let mut b = good.clone();
        b[0] = 3;
        assert_eq!(Message::decode(&b), Err(DecodeError::BadOp(3)));
        let mut b = good.clone();
        b[2] = 17;
        assert_eq!(Message::decode(&b), Err(DecodeError::BadHardwareLength(17)));
        let mut b = good.clone();
        b[236] = 0;
        assert_eq!(Message::decode(&b), Err(DecodeError::BadMagicCookie([0, 130, 83, 99])));
        // Lease time claiming 200 octets.
        let mut b = good.clone();
        let lt = OPTIONS_START + 3;
        assert_eq!(b[lt], 51);
        b[lt + 1] = 200;
        assert!(matches!(Message::decode(&b), Err(DecodeError::OptionOverrun { code: 51, .. })));
        // No END anywhere.
        let mut b = good[..OPTIONS_START + 3 + 6].to_vec();
        assert_eq!(Message::decode(&b), Err(DecodeError::MissingEnd));
        b.push(61);
        assert!(matches!(Message::decode(&b), Err(DecodeError::MissingOptionLength { code: 61, .. })));
        // A 3-octet lease time.
        let mut b = good.clone();
        b[lt + 1] = 3;
        b[lt + 5] = 0;
        assert!(matches!(
            Message::decode(&b),
            Err(DecodeError::Option(crate::OptionError::BadLength { code: 51, len: 3, .. }))
        ));
    }

    #[test]
    fn pad_options_and_trailing_bytes_are_tolerated() {
        let mut b = encode(&sample());
        b.insert(OPTIONS_START, 0);
        b.push(0xaa);
        let d = Message::decode(&b).unwrap();
        assert_eq!(d, sample());
    }

    #[test]
    fn bad_overload_values_are_rejected() {
        let mut b = encode(&sample());
        b.splice(OPTIONS_START..OPTIONS_START, [52, 1, 4]);
        assert_eq!(Message::decode(&b), Err(DecodeError::BadOverload(vec![4])));
    }

    #[test]
    fn reserved_codes_cannot_be_encoded() {
        let mut m = sample();
        m.options.set(52, vec![1]);
        assert_eq!(m.encode(&mut Vec::new()), Err(EncodeError::ReservedOptionCode(52)));
    }

    #[test]
    fn options_set_replaces_in_place_and_remove_forgets() {
        let mut o = Options::new();
        o.set(1, vec![1]);
        o.set(2, vec![2]);
        o.set(1, vec![3]);
        assert_eq!(o.iter().map(|x| x.code).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(o.get(1), Some(&[3][..]));
        assert!(o.remove(1).is_some());
        assert!(!o.contains(1));
        assert_eq!(o.get(1), None);
        o.retain(|x| x.code != 2);
        assert!(o.is_empty() && !o.contains(2));
    }
}
