//! Building replies (RFC 2131 Table 3) and choosing where they go (RFC 2131 §4.1, RFC 8357).

use super::{Ctx, Engine, Outcome};
use leasewire_proto::options::code;
use leasewire_proto::{EncodeSettings, Message, MessageType, Op};
use std::net::{Ipv4Addr, SocketAddrV4};

/// The DHCP server port.
pub const SERVER_PORT: u16 = 67;
/// The DHCP client port.
pub const CLIENT_PORT: u16 = 68;

/// Where a reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Unicast to this address and port (a relay, or a client that has an address).
    Unicast(SocketAddrV4),
    /// Limited broadcast to the client port on the interface the request came in on.
    Broadcast,
}

impl Engine {
    pub(super) fn reply(&self, ctx: &Ctx<'_, '_>, t: MessageType, ip: Ipv4Addr) -> (Vec<u8>, Destination, MessageType) {
        let m = ctx.m;
        // The subnet of the address given (on a shared network, not necessarily the one the relay is in); for
        // an INFORM, the client's own address's.
        let at = if ip.is_unspecified() { m.ciaddr } else { ip };
        let subnet = &self.subnets[self.on_link(ctx, at).unwrap_or(ctx.subnet)];
        let mut r = reply_header(m);
        r.yiaddr = ip;
        if t == MessageType::Ack {
            r.ciaddr = m.ciaddr;
        }
        let o = &mut r.options;
        o.set_message_type(t);
        o.set_ip(code::SERVER_IDENTIFIER, ctx.server_id);
        if t != MessageType::Ack || !ip.is_unspecified() {
            o.set_u32(code::LEASE_TIME, subnet.lease_time);
            o.set_u32(code::RENEWAL_TIME, subnet.renewal_time);
            o.set_u32(code::REBINDING_TIME, subnet.rebinding_time);
        }
        let prl = m.options.parameter_request_list();
        // Subnet, then the pool of the address, then the client's classes, then its reservation: each level
        // overrides the one below option by option (and siaddr / file field by field).
        let pool = subnet.pool_options.iter().find(|((lo, hi), _)| (*lo..=*hi).contains(&u32::from(at)));
        let levels = [Some(&subnet.options), pool.map(|(_, p)| p)]
            .into_iter()
            .flatten()
            .chain(self.classes.options_of(ctx.classes))
            // A reservation's options belong to its subnet: on a shared network, a reserved client given an
            // address in another subnet (its reserved one held) gets that subnet's options, not these.
            .chain(self.reservation(ctx).filter(|r| subnet.net.contains(&r.ip)).map(|r| &r.options));
        for set in levels {
            for (c, data) in &set.options {
                // RFC 2131 §4.3.1: what the client asked for; the subnet mask always (clients rely on it).
                if prl.is_none_or(|p| p.contains(c)) || *c == code::SUBNET_MASK {
                    r.options.set(*c, data.as_slice());
                }
            }
            // Header fields, not options: a PXE client boots from them whatever it asked for.
            if let Some(s) = set.next_server {
                r.siaddr = s;
            }
            if let Some(f) = &set.boot_file {
                r.file = f;
            }
        }
        echo_client_options(m, &mut r);
        let dest = destination(m, ctx.rx.src, t);
        (encode(&r, m), dest, t)
    }

    pub(super) fn nak(&self, ctx: &Ctx<'_, '_>, why: &str) -> Outcome {
        let m = ctx.m;
        let mut r = reply_header(m);
        // RFC 2131 §4.3.2: a NAK through a relay asks the relay to broadcast it.
        r.flags = if m.giaddr.is_unspecified() { m.flags } else { m.flags | 0x8000 };
        r.options.set_message_type(MessageType::Nak);
        r.options.set_ip(code::SERVER_IDENTIFIER, ctx.server_id);
        r.options.set(code::MESSAGE, why.as_bytes().to_vec());
        echo_client_options(m, &mut r);
        let dest = destination(m, ctx.rx.src, MessageType::Nak);
        Outcome { reply: Some((encode(&r, m), dest, MessageType::Nak)), ..Default::default() }
    }
}

/// RFC 2131 Table 3: what every reply copies from the request.
fn reply_header<'a>(m: &Message<'_>) -> Message<'a> {
    let mut r = Message::new(Op::BootReply);
    r.htype = m.htype;
    r.hlen = m.hlen;
    r.chaddr = m.chaddr;
    r.xid = m.xid;
    r.flags = m.flags;
    r.giaddr = m.giaddr;
    r
}

/// RFC 6842: echo the client identifier; RFC 3046: echo relay agent information.
fn echo_client_options<'a>(m: &Message<'a>, r: &mut Message<'a>) {
    for c in [code::CLIENT_IDENTIFIER, code::RELAY_AGENT_INFO] {
        if let Some(d) = m.options.get(c) {
            r.options.set(c, d.to_vec());
        }
    }
}

/// RFC 2131 §4.1: to the relay (at its source port when it asked with RFC 8357 sub-option 19), else to the
/// client's address when it has one (not for NAK), else broadcast.
pub fn destination(m: &Message<'_>, src: SocketAddrV4, t: MessageType) -> Destination {
    if !m.giaddr.is_unspecified() {
        let port = if m.options.relay_agent_info().is_some_and(|r| r.has_relay_source_port()) {
            src.port()
        } else {
            SERVER_PORT
        };
        return Destination::Unicast(SocketAddrV4::new(m.giaddr, port));
    }
    if t != MessageType::Nak && !m.ciaddr.is_unspecified() {
        return Destination::Unicast(SocketAddrV4::new(m.ciaddr, CLIENT_PORT));
    }
    Destination::Broadcast
}

/// Respect the client's maximum message size (option 57, at least 576 by RFC 2132 §9.10).
fn encode(r: &Message<'_>, req: &Message<'_>) -> Vec<u8> {
    // The limit counts the IP and UDP headers (28 octets) too.
    let max_len = req.options.max_message_size().map_or(576, |n| (n as usize).max(576)) - 28;
    let mut out = Vec::with_capacity(max_len.min(1500));
    let settings = EncodeSettings { min_len: 300, max_len };
    if r.encode_with(&mut out, &settings).is_err() {
        // Our own options exceed the client's limit even with overload: send what the wire allows.
        out.clear();
        r.encode(&mut out).expect("replies are well-formed");
    }
    out
}
