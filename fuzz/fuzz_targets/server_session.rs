//! Fuzz the server session of a Leasequery TCP connection (RFC 6926, RFC 7724) fed an arbitrary sequence of
//! events: bytes from the peer (any split), time passing, live changes, a lagging feed, shutdown, the peer
//! closing, a blocked write. The store is a well-behaved fake (it keeps the keyset contract), so everything
//! odd comes from the peer or the order of events.
//!
//! Checked: no panic; no endless output loop; every transmitted octet is a whole frame of a message that
//! decodes; nothing follows a close; in secure mode nothing but the DHCPTLS answer is sent before TLS is
//! established (binding data never leaks to an unauthenticated peer); the receive buffer stays within its
//! bound (a frame plus one read).
//!
//! Input: byte 0 picks the configuration (TLS policy, Active on/off, queries per connection); then a stream
//! of operations, each an opcode byte and its arguments.
#![no_main]

use leasewire_proto::framing::FrameDecoder;
use leasewire_proto::lq_reply::ReplyPolicy;
use leasewire_proto::session::server::active::ActiveConfig;
use leasewire_proto::session::server::{Output, ServerConfig, ServerSession, TlsPolicy};
use leasewire_proto::{Binding, BindingChange, DhcpState, Message, MessageType};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX_FRAME: usize = 1024;
const T0: u32 = 1_800_000_000;

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

fn change(last: u8, state: DhcpState, seq: u64) -> BindingChange {
    let mut b = Binding::new(Ipv4Addr::new(10, 0, 0, last), state, T0 - 100);
    b.htype = 1;
    b.hardware_address = vec![2, 0, 0, 0, 0, last];
    BindingChange { seq, time: T0 - 100 + seq as u32, binding: b }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(setup) = input.byte() else { return };
    let tls = match setup % 3 {
        0 => TlsPolicy::Refuse,
        1 => TlsPolicy::Offer,
        _ => TlsPolicy::Require,
    };
    let cfg = ServerConfig {
        policy: ReplyPolicy {
            server_id: Ipv4Addr::new(10, 0, 0, 1),
            disclose: vec![12],
            withhold: vec![],
            shared: setup & 0x40 != 0,
        },
        max_queries: 1 + (setup as usize >> 4) % 4,
        data_timeout: Duration::from_secs(300),
        max_frame: MAX_FRAME,
        page_size: 3,
        configured: Arc::from(vec![(u32::from(Ipv4Addr::new(10, 0, 0, 1)), u32::from(Ipv4Addr::new(10, 0, 0, 20)))]),
        available_since: T0 - 1000,
        tls,
        active: (setup & 8 != 0).then(|| ActiveConfig {
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(120),
            max_backlog: 8,
        }),
        pre_auth_timeout: Some(Duration::from_secs(10)),
        query_types: Default::default(),
    };
    let store_size = (setup >> 2) as u32 * 4;
    let t0 = Instant::now();
    let mut now = t0;
    let mut s = ServerSession::new(cfg, now);
    let mut tls_up = false;
    let mut closed = false;
    let mut seq = 0u64;
    let decoder = FrameDecoder::new(65535);
    loop {
        // Drain what the session wants done, like the driver does.
        let mut steps = 0;
        while let Some(out) = s.poll_output(T0 + now.duration_since(t0).as_secs() as u32) {
            steps += 1;
            assert!(steps < 100_000, "the session keeps producing output without input");
            assert!(!closed, "output after the close");
            match out {
                Output::Transmit(bytes) => {
                    let mut rest = &bytes[..];
                    while !rest.is_empty() {
                        let (body, n) = decoder.decode(rest).expect("our frames are valid").expect("whole frames");
                        let m = Message::decode(body).expect("our messages decode");
                        if tls == TlsPolicy::Require && !tls_up {
                            assert_eq!(m.message_type(), Some(MessageType::Tls), "nothing but DHCPTLS before TLS");
                        }
                        rest = &rest[n..];
                    }
                    s.transmitted(bytes.len(), now);
                }
                Output::Fetch(f) => {
                    let from = f.after.map_or(0, |a| u32::from(a) - u32::from(Ipv4Addr::new(10, 0, 0, 0)) + 1);
                    let page = (from..store_size.min(250))
                        .take(f.limit)
                        .map(|i| change(i as u8 + 1, DhcpState::Active, i as u64))
                        .collect();
                    s.page(f.xid, Ok(page));
                }
                Output::FetchChanges(f) => {
                    let n = f.limit.saturating_sub(1).min(store_size as usize % 5);
                    let page = (0..n).map(|i| change(i as u8 + 1, DhcpState::Released, i as u64)).collect();
                    if store_size % 3 == 0 {
                        s.undelivered_floor(store_size);
                    }
                    s.changes_page(Ok((page, store_size % 7 != 0)));
                }
                Output::StartTls => {
                    assert_ne!(tls, TlsPolicy::Refuse, "no handshake when TLS is not configured");
                    s.tls_established();
                    tls_up = true;
                }
                Output::Close(_) => closed = true,
            }
        }
        let Some(op) = input.byte() else { break };
        match op % 10 {
            0..=3 => {
                let n = input.byte().unwrap_or(0) as usize;
                let bytes = input.take(n);
                if s.wants_read() {
                    s.receive(bytes, now);
                }
            }
            4 => {
                now += Duration::from_secs(input.byte().unwrap_or(0) as u64 * 4);
                if s.poll_timeout().is_some_and(|d| now >= d) {
                    s.handle_timeout(now);
                }
            }
            5 => {
                seq += 1;
                let last = input.byte().unwrap_or(0);
                let state = if last & 1 == 0 { DhcpState::Active } else { DhcpState::Released };
                s.live(change(last, state, seq));
            }
            6 => s.lagged(),
            7 => s.shutdown(),
            8 => s.peer_closed(),
            _ => s.write_blocked(),
        }
    }
});
