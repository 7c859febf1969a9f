//! Building DHCPLEASEACTIVE / DHCPLEASEUNASSIGNED replies from a [`Binding`] for Bulk (RFC 6926 §8.3) and
//! Active (RFC 7724 §8.2, same contents) Leasequery.

use crate::options::code;
use crate::{Binding, DataSource, Message, MessageType, Op, StatusCode};
use std::net::Ipv4Addr;

/// What governs the replies to one query.
#[derive(Debug, Clone)]
pub struct ReplyPolicy {
    /// Option 54, sent in the first reply of each query only (BLQ-7.3-5, BLQ-8.3-2).
    pub server_id: Ipv4Addr,
    /// Stored client options that may be returned when asked for (RFC 4388's non-sensitive list).
    pub disclose: Vec<u8>,
    /// Options never returned.
    pub withhold: Vec<u8>,
    /// Other servers hold information about these addresses too (a store shared by several servers): every
    /// binding carries data-source, LOCAL included (BLQ-6.2.8-2). Otherwise only REMOTE data does, absence
    /// meaning local (BLQ-6.2.8-4, BLQ-8.3-8).
    pub shared: bool,
}

/// Write the reply about `b` for the query `xid` asking for `prl` (BLQ-8.3), framed, into `out`: the message
/// type follows the state (BLQ-8.3-3); times are relative to `base_time` (BLQ-6.2.3-2); server-id only in
/// the first reply (BLQ-7.3-5); never associated-ip (BLQ-5-3); option 82 last (RFC 3046).
///
/// Written directly rather than through a [`Message`]: it runs once per binding per connection (millions of
/// times in a bulk answer, once per change per requestor on Active streams), so it allocates nothing. The
/// bytes are exactly what [`Message::encode`] would produce for the same message (tested).
pub fn write_binding_reply(
    out: &mut Vec<u8>,
    b: &Binding,
    xid: u32,
    prl: &[u8],
    base_time: u32,
    first: bool,
    policy: &ReplyPolicy,
) {
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    let hlen = b.hardware_address.len().min(16);
    out.extend_from_slice(&[Op::BootReply.code(), b.htype, hlen as u8, 0]);
    out.extend_from_slice(&xid.to_be_bytes());
    out.extend_from_slice(&[0; 4]); // secs, flags
    out.extend_from_slice(&b.ip.octets());
    out.extend_from_slice(&[0; 12]); // yiaddr, siaddr, giaddr
    out.extend_from_slice(&b.hardware_address[..hlen]);
    out.resize(out.len() + (16 - hlen) + 64 + 128, 0);
    out.extend_from_slice(&crate::MAGIC_COOKIE);
    put(out, code::MESSAGE_TYPE, &[b.state.reply_type().code()]);
    if first {
        put(out, code::SERVER_IDENTIFIER, &policy.server_id.octets());
    }
    let mut written = [0u64; 4];
    let mark = |w: &mut [u64; 4], c: u8| {
        let seen = w[(c >> 6) as usize] & (1 << (c & 63)) != 0;
        w[(c >> 6) as usize] |= 1 << (c & 63);
        seen
    };
    mark(&mut written, code::MESSAGE_TYPE);
    if first {
        mark(&mut written, code::SERVER_IDENTIFIER);
    }
    let mut rai = None;
    for &c in prl {
        if policy.withhold.contains(&c) || mark(&mut written, c) {
            continue;
        }
        let since = |t: u32| base_time.saturating_sub(t).to_be_bytes();
        match c {
            code::BASE_TIME => put(out, c, &base_time.to_be_bytes()),
            code::START_TIME_OF_STATE => put(out, c, &since(b.state_since)),
            code::CLIENT_LAST_TRANSACTION_TIME if b.cltt.is_some() => put(out, c, &since(b.cltt.unwrap_or(0))),
            code::LEASE_TIME if lease_left(b, base_time).is_some() => {
                put(out, c, &lease_left(b, base_time).unwrap_or(0).to_be_bytes())
            }
            code::DHCP_STATE => put(out, c, &[b.state.code()]),
            code::DATA_SOURCE if policy.shared || b.data_source != DataSource::LOCAL => put(out, c, &[b.data_source.0]),
            code::CLIENT_IDENTIFIER if b.client_id.is_some() => put(out, c, b.client_id.as_deref().unwrap_or(&[])),
            // RFC 3046: relay agent information goes last.
            code::RELAY_AGENT_INFO => rai = b.relay_agent_info.as_deref(),
            // Never associated-ip (BLQ-5-3); server-id only as the first reply's own option.
            code::ASSOCIATED_IP | code::SERVER_IDENTIFIER => {}
            c if policy.disclose.contains(&c) && b.option(c).is_some() => put(out, c, b.option(c).unwrap_or(&[])),
            _ => {}
        }
    }
    if let Some(r) = rai {
        put(out, code::RELAY_AGENT_INFO, r);
    }
    out.push(code::END);
    let len = (out.len() - start - 2) as u16;
    out[start..start + 2].copy_from_slice(&len.to_be_bytes());
}

/// Seconds left of a timed state at `base_time`, if it is still running (BLQ-8.3-7).
fn lease_left(b: &Binding, base_time: u32) -> Option<u32> {
    b.expires_at.and_then(|e| e.checked_sub(base_time)).filter(|s| *s > 0)
}

/// One option, split into pieces of at most 255 octets (RFC 3396), as the encoder writes it.
fn put(out: &mut Vec<u8>, c: u8, data: &[u8]) {
    if data.is_empty() {
        out.extend_from_slice(&[c, 0]);
        return;
    }
    for piece in data.chunks(255) {
        out.push(c);
        out.push(piece.len() as u8);
        out.extend_from_slice(piece);
    }
}

/// DHCPLEASEQUERYDONE for `xid`, with a status-code only when the query did not succeed (BLQ-8.2-2).
pub fn done(xid: u32, status: Option<(StatusCode, &str)>, server_id: Option<Ipv4Addr>) -> Message<'static> {
    status_message(MessageType::LeaseQueryDone, xid, status, server_id)
}

/// A message of type `t` carrying only an optional status (DONE, DHCPLEASEQUERYSTATUS, DHCPTLS).
pub fn status_message(
    t: MessageType,
    xid: u32,
    status: Option<(StatusCode, &str)>,
    server_id: Option<Ipv4Addr>,
) -> Message<'static> {
    let mut r = Message::new(Op::BootReply);
    r.xid = xid;
    r.options.set_message_type(t);
    if let Some(sid) = server_id {
        r.options.set_ip(code::SERVER_IDENTIFIER, sid);
    }
    if let Some((c, text)) = status {
        // BLQ-6.2.2-3: the text is for display and carries no termination character (texts can quote a
        // peer's input, e.g. a decode error).
        let text = if text.contains('\0') { text.replace('\0', "") } else { text.to_owned() };
        r.options.set_status(c, &text);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DhcpState;
    use crate::options::default_prl;

    fn policy() -> ReplyPolicy {
        ReplyPolicy { server_id: Ipv4Addr::new(10, 0, 0, 1), disclose: vec![12], withhold: vec![], shared: false }
    }

    /// The reply as a decoded message (test-only leak keeps the borrow checker out of the assertions).
    fn reply(b: &Binding, xid: u32, prl: &[u8], base: u32, first: bool, p: &ReplyPolicy) -> Message<'static> {
        let mut out = Vec::new();
        write_binding_reply(&mut out, b, xid, prl, base, first, p);
        let body: &'static [u8] = Box::leak(out[2..].to_vec().into_boxed_slice());
        assert_eq!(u16::from_be_bytes([out[0], out[1]]) as usize, body.len(), "the prefix counts the message");
        Message::decode(body).expect("written replies decode")
    }

    fn active() -> Binding {
        let mut b = Binding::new(Ipv4Addr::new(10, 0, 0, 9), DhcpState::Active, 1000);
        b.htype = 1;
        b.hardware_address = vec![2, 0, 0, 0, 0, 9];
        b.cltt = Some(1050);
        b.expires_at = Some(1600);
        b.client_id = Some(vec![1, 2, 0, 0, 0, 0, 9]);
        b.relay_agent_info = Some(vec![1, 1, b'x']);
        b.options = vec![(12, b"host".to_vec()), (60, b"vc".to_vec())];
        b
    }

    #[test]
    fn blq_8_3_times_are_relative_to_base_time() {
        let all = [152, 51, 153, 91, 156, 157, 61, 82, 12, 60, 92];
        let r = reply(&active(), 7, &all, 1100, true, &policy());
        assert_eq!(r.message_type(), Some(MessageType::LeaseActive));
        assert_eq!((r.xid, r.ciaddr), (7, Ipv4Addr::new(10, 0, 0, 9)));
        let o = &r.options;
        assert_eq!(o.base_time(), Some(1100), "BLQ-8.3-5");
        assert_eq!(o.lease_time(), Some(500), "BLQ-8.3-7");
        assert_eq!(o.start_time_of_state(), Some(100), "BLQ-8.3-6 / BLQ-6.2.4-2");
        assert_eq!(o.client_last_transaction_time(), Some(50), "BLQ-8.3-9");
        assert_eq!(o.dhcp_state(), Some(Ok(DhcpState::Active)), "BLQ-8.3-4");
        assert!(!o.contains(157), "BLQ-8.3-8: local data needs no data-source");
        assert!(!o.contains(92), "BLQ-5-3: never associated-ip");
        assert_eq!(o.get(12), Some(&b"host"[..]));
        assert!(!o.contains(60), "not on the disclose list");
        assert_eq!(o.server_identifier(), Some(Ipv4Addr::new(10, 0, 0, 1)));
        let later = reply(&active(), 7, &all, 1100, false, &policy());
        assert!(!later.options.contains(54), "BLQ-7.3-5: server-id in the first reply only");
    }

    /// BLQ-6.2.8-2: servers sharing a store (each may hold information about an address) send data-source
    /// with every binding, LOCAL as well as REMOTE; a server alone sends it for REMOTE data only.
    #[test]
    fn blq_6_2_8_2_servers_of_a_shared_store_always_send_data_source() {
        let shared = ReplyPolicy { shared: true, ..policy() };
        let mut remote = active();
        remote.data_source = DataSource::REMOTE;
        let ask = [152, 157];
        assert_eq!(reply(&active(), 1, &ask, 1100, false, &shared).options.data_source(), Some(DataSource::LOCAL));
        assert_eq!(reply(&remote, 1, &ask, 1100, false, &shared).options.data_source(), Some(DataSource::REMOTE));
        assert_eq!(reply(&active(), 1, &ask, 1100, false, &policy()).options.data_source(), None);
        assert_eq!(reply(&remote, 1, &ask, 1100, false, &policy()).options.data_source(), Some(DataSource::REMOTE));
        // Asked for or not: the parameter request list still governs (BLQ-8.3-10).
        assert_eq!(reply(&active(), 1, &[152], 1100, false, &shared).options.data_source(), None);
    }

    #[test]
    fn blq_8_3_3_non_active_states_are_unassigned_with_their_state() {
        for s in DhcpState::ALL.into_iter().filter(|s| *s != DhcpState::Active) {
            let mut b = active();
            b.state = s;
            b.expires_at = None;
            b.data_source = DataSource::REMOTE;
            let r = reply(&b, 1, default_prl::TCP, 1100, false, &policy());
            assert_eq!(r.message_type(), Some(MessageType::LeaseUnassigned));
            assert_eq!(r.options.dhcp_state(), Some(Ok(s)));
            assert!(r.options.lease_time().is_none());
            assert_eq!(r.options.data_source(), Some(DataSource::REMOTE), "BLQ-8.3-8");
        }
    }

    #[test]
    fn written_replies_are_what_the_message_encoder_would_write() {
        use crate::framing::encode_frame;
        let mut b = active();
        b.options = vec![(12, b"host".to_vec()), (60, vec![7; 300])];
        let prls: [&[u8]; 5] =
            [default_prl::TCP, &[82, 152, 82, 12, 60, 92, 54, 51], &[], &[157, 156, 61], &[153, 91, 51, 1, 2, 3]];
        let mut p = policy();
        p.disclose = vec![12, 60];
        p.withhold = vec![153];
        let check = |b: &Binding, prl: &[u8], first: bool| {
            let mut got = vec![0xaa];
            write_binding_reply(&mut got, b, 9, prl, 1100, first, &p);
            let m = Message::decode(&got[3..]).unwrap();
            assert!(!m.options.contains(92), "BLQ-5-3");
            assert_eq!(m.options.contains(54), first, "BLQ-7.3-5");
            let mut again = vec![0xaa];
            encode_frame(&m, &mut again).unwrap();
            assert_eq!(got, again, "{prl:?} first={first}: canonical bytes (82 last, long options split)");
        };
        for state in DhcpState::ALL {
            for prl in prls {
                for first in [true, false] {
                    for data_source in [DataSource::LOCAL, DataSource::REMOTE] {
                        b.state = state;
                        b.data_source = data_source;
                        check(&b, prl, first);
                    }
                }
            }
        }
        // No hardware address, a 300-octet client identifier, an expired lease.
        let mut b = Binding::new(Ipv4Addr::new(10, 0, 0, 1), DhcpState::Available, 5);
        b.client_id = Some(vec![1; 300]);
        b.expires_at = Some(1000);
        check(&b, default_prl::TCP, true);
    }

    /// ALQ-5.2.2-5, BLQ-6.2.2-7: no dhcp-status-code in a successful message; BLQ-8.2-2: DONE has a status only
    /// on failure.
    #[test]
    fn withheld_options_stay_out_and_done_carries_status_only_on_failure() {
        let mut p = policy();
        p.withhold = vec![82];
        assert!(!reply(&active(), 1, default_prl::TCP, 1100, false, &p).options.contains(82));
        assert!(!done(5, None, None).options.contains(151), "BLQ-8.2-2");
        let d = done(5, Some((StatusCode::NotAllowed, "x")), None);
        assert_eq!(d.options.status_code(), Some(StatusCode::NotAllowed));
        assert_eq!(d.message_type(), Some(MessageType::LeaseQueryDone));
    }

    #[test]
    fn blq_6_2_2_3_status_text_carries_no_termination_character() {
        let d = done(5, Some((StatusCode::MalformedQuery, "bad\0query\0")), None);
        assert_eq!(d.options.status().unwrap().unwrap().message, "badquery");
    }
}
