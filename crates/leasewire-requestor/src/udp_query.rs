//! RFC 4388 leasequery from the requestor's side: build the query for one key, send it, retransmit with the
//! RFC 2131 §4.1 back-off (LQ-6.6-4) — no faster than one query per 10 s to a server not known to answer
//! (LQ-6.6-2) — and hand back the reply.

use leasewire_proto::options::code;
use leasewire_proto::{Message, MessageType, Op, RelayAgentInfoBuilder};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

/// What to ask about: the RFC's query forms, shared with the server.
pub use leasewire_proto::query_key::QueryKey as Query;

/// Build a DHCPLEASEQUERY.
///
/// `reply_to_source_port` adds the RFC 8357 relay-source-port sub-option so a server that honours it answers
/// at the socket's port instead of port 67 (for requestors that cannot bind port 67). It is not added to a
/// remote-id query, whose option 82 must hold only the remote-id.
pub fn build(query: &Query, xid: u32, giaddr: Ipv4Addr, prl: &[u8], reply_to_source_port: bool) -> Message<'static> {
    let mut m = Message::new(Op::BootRequest);
    m.xid = xid;
    m.giaddr = giaddr;
    m.options.set_message_type(MessageType::LeaseQuery);
    query.apply(&mut m);
    m.options.set(code::PARAMETER_REQUEST_LIST, prl.to_vec());
    if reply_to_source_port && !matches!(query, Query::RemoteId(_)) {
        m.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().relay_source_port().build());
    }
    m
}

/// The wait after the `attempt`th query (0 = the first) before sending again.
///
/// To a server known to answer leasequery: RFC 2131 §4.1, 4 s, 8 s, 16 s ... up to 64 s, each ± up to 1 s
/// (LQ-6.6-4). To a server not known to (LQ-6.6-2: "no faster than about one packet every 10 seconds", and no
/// slower than one per 70 s): the same doubling from 10 s, 10 s, 20 s, 40 s, then 64 s, never under 10 s.
/// `jitter` is a value in [-1, 1] supplied by the caller (sans-IO: no hidden randomness).
pub fn retransmit_delay(attempt: u32, jitter: f64, known_to_answer: bool) -> Duration {
    let (first, floor) = if known_to_answer { (4u64, 0.0) } else { (10, 10.0) };
    let base = first.saturating_mul(1 << attempt.min(4)).min(64) as f64;
    Duration::from_secs_f64((base + jitter.clamp(-1.0, 1.0)).max(floor))
}

/// Why a query got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Socket trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Nothing came back in time.
    #[error("no reply from {server} after {attempts} attempt(s) in {waited:?}")]
    Timeout {
        /// The server.
        server: SocketAddr,
        /// Queries sent.
        attempts: u32,
        /// Total time waited.
        waited: Duration,
    },
}

/// Send `query` from `socket` to `server` and wait for the reply with the same xid, retransmitting until
/// `total` has passed, paced by [`retransmit_delay`]. Replies that do not decode or carry another xid are
/// ignored.
pub fn exchange(
    socket: &UdpSocket,
    server: SocketAddr,
    query: &Message<'_>,
    total: Duration,
    known_to_answer: bool,
) -> Result<Vec<u8>, QueryError> {
    let mut out = Vec::new();
    query.encode(&mut out).expect("queries are well-formed");
    let start = Instant::now();
    let mut attempts = 0;
    let mut buf = [0u8; 4096];
    let mut seed = query.xid as u64 | 1;
    while start.elapsed() < total {
        socket.send_to(&out, server)?;
        attempts += 1;
        // xorshift for the ±1 s jitter: enough to de-synchronise requestors, not a security matter.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let jitter = (seed % 2001) as f64 / 1000.0 - 1.0;
        let wait_until = (Instant::now() + retransmit_delay(attempts - 1, jitter, known_to_answer)).min(start + total);
        while let Some(left) = wait_until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
            socket.set_read_timeout(Some(left))?;
            match socket.recv_from(&mut buf) {
                Ok((n, _)) => {
                    if let Ok(m) = Message::decode(&buf[..n])
                        && m.xid == query.xid
                        && m.op == Op::BootReply
                    {
                        return Ok(buf[..n].to_vec());
                    }
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Err(QueryError::Timeout { server, attempts, waited: start.elapsed() })
}

/// The local address the kernel would use to reach `server` (the natural giaddr for a requestor).
pub fn local_address_towards(server: SocketAddrV4) -> std::io::Result<Ipv4Addr> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.connect(server)?;
    match s.local_addr()? {
        SocketAddr::V4(a) => Ok(*a.ip()),
        SocketAddr::V6(_) => Err(std::io::Error::other("IPv6 route to an IPv4 server")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasewire_proto::options::default_prl;

    #[test]
    fn lq_6_6_4_backoff_doubles_to_64_seconds_with_jitter() {
        let d: Vec<u64> = (0..7).map(|a| retransmit_delay(a, 0.0, true).as_secs()).collect();
        assert_eq!(d, vec![4, 8, 16, 32, 64, 64, 64]);
        assert_eq!(retransmit_delay(0, -1.0, true), Duration::from_secs(3));
        assert_eq!(retransmit_delay(1, 1.0, true), Duration::from_secs(9));
    }

    #[test]
    fn lq_6_6_2_a_server_not_known_to_answer_gets_a_query_per_10_to_70_s() {
        let d: Vec<u64> = (0..7).map(|a| retransmit_delay(a, 0.0, false).as_secs()).collect();
        assert_eq!(d, vec![10, 20, 40, 64, 64, 64, 64]);
        for attempt in 0..10 {
            for jitter in [-1.0, 0.0, 1.0] {
                let s = retransmit_delay(attempt, jitter, false).as_secs_f64();
                assert!((10.0..=70.0).contains(&s), "attempt {attempt}: {s} s");
            }
        }
    }

    /// LQ-6.2-2 (giaddr), LQ-6.2-4 (parameter request list), LQ-6.2-6, LQ-6.2-7, LQ-6.2-8 (each key alone).
    #[test]
    fn lq_6_2_query_forms() {
        let g = Ipv4Addr::new(10, 0, 0, 2);
        let by_ip = build(&Query::Ip(Ipv4Addr::new(10, 0, 0, 9)), 1, g, default_prl::UDP, false);
        assert_eq!((by_ip.ciaddr, by_ip.hlen, by_ip.giaddr), (Ipv4Addr::new(10, 0, 0, 9), 0, g));
        assert!(by_ip.options.client_identifier().is_none());
        let by_mac = build(&Query::Hardware(1, vec![2, 0, 0, 0, 0, 1]), 2, g, default_prl::UDP, false);
        assert_eq!(
            (by_mac.ciaddr, by_mac.htype, by_mac.hardware_address()),
            (Ipv4Addr::UNSPECIFIED, 1, &[2, 0, 0, 0, 0, 1][..])
        );
        assert!(by_mac.options.client_identifier().is_none(), "LQ-6.2-7: no option 61 in a query by MAC");
        assert_eq!(by_mac.giaddr, g, "LQ-6.2-2");
        assert_eq!(by_mac.options.parameter_request_list(), Some(default_prl::UDP), "LQ-6.2-4");
        let by_id = build(&Query::ClientId(vec![1, 2, 3]), 3, g, default_prl::UDP, false);
        assert_eq!((by_id.hlen, by_id.options.client_identifier()), (0, Some(&[1, 2, 3][..])));
        assert_eq!((by_id.ciaddr, by_id.htype), (Ipv4Addr::UNSPECIFIED, 0), "LQ-6.2-8");
        // LQR-4.1-1: option 82 with only the remote-id, 92 requested, even when asked for the source port.
        let by_rid = build(&Query::RemoteId(b"sw1".to_vec()), 4, g, default_prl::UDP, true);
        assert!(by_rid.options.relay_agent_info().unwrap().is_remote_id_only());
        assert!(by_rid.options.parameter_request_list().unwrap().contains(&code::ASSOCIATED_IP));
        let sp = build(&Query::Ip(Ipv4Addr::new(10, 0, 0, 9)), 5, g, default_prl::UDP, true);
        assert!(sp.options.relay_agent_info().unwrap().has_relay_source_port());
    }
}
