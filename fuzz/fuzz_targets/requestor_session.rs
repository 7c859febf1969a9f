//! Fuzz the requestor sessions (RFC 6926 Bulk, RFC 7724 Active) fed whatever a hostile or broken server
//! sends, in any split, with time passing: never panic, never loop, only whole frames out, and the Active
//! requestor's saved base-time never moves below the one it started from (a server cannot make it forget).
//!
//! Input: byte 0 picks the session (Bulk or Active, secure or not, with or without a saved base-time); then
//! operations: bytes from the server, time passing, the TLS handshake finishing.
#![no_main]

use leasewire_proto::framing::FrameDecoder;
use leasewire_proto::session::requestor::active::ActiveRequestor;
use leasewire_proto::session::BulkKey;
use leasewire_proto::session::requestor::bulk::{BulkRequest, BulkRequestor};
use leasewire_proto::Message;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fn whole_frames(bytes: &[u8]) {
    let d = FrameDecoder::new(65535);
    let mut rest = bytes;
    while !rest.is_empty() {
        let (body, n) = d.decode(rest).expect("valid frames").expect("whole frames");
        Message::decode(body).expect("our messages decode");
        rest = &rest[n..];
    }
}

/// The next `len` bytes of the input (fewer at its end): what the server sends next.
fn take<'a>(rest: &mut &'a [u8], len: u8) -> &'a [u8] {
    let (chunk, tail) = rest.split_at((len as usize).min(rest.len()));
    *rest = tail;
    chunk
}

/// Take every event the session has: they come to an end (a session never loops).
fn drain(mut poll_event: impl FnMut() -> bool) {
    let mut n = 0;
    while poll_event() {
        n += 1;
        assert!(n < 1_000_000);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut rest)) = data.split_first() else { return };
    let t0 = Instant::now();
    let mut now = t0;
    if setup & 1 == 0 {
        let mut r = BulkRequestor::new(0x100, Duration::from_secs(300), now);
        for i in 0..(setup >> 1) % 4 + 1 {
            let key = if i % 2 == 0 { BulkKey::All } else { BulkKey::RelayId(b"relay-A".to_vec()) };
            r.query(&BulkRequest { key, changed_on_or_after: None, changed_on_or_before: None }, now);
        }
        while let Some((&op, tail)) = rest.split_first() {
            rest = tail;
            while let Some(t) = r.poll_transmit() {
                whole_frames(&t);
            }
            if op & 0x80 != 0 {
                now += Duration::from_secs((op & 0x7f) as u64 * 5);
                if r.poll_timeout().is_some_and(|d| now >= d) {
                    r.handle_timeout(now);
                }
            } else {
                r.receive(take(&mut rest, op), now);
            }
            drain(|| r.poll_event().is_some());
            if r.error().is_some() {
                break;
            }
        }
    } else {
        let saved = (setup & 2 != 0).then_some(1_800_000_000u32);
        let secure = setup & 4 != 0;
        let mut r = ActiveRequestor::new(0x77, saved, secure, Duration::from_secs(120), now);
        while let Some((&op, tail)) = rest.split_first() {
            rest = tail;
            while let Some(t) = r.poll_transmit() {
                whole_frames(&t);
            }
            match op {
                0xff => r.tls_established(),
                0x80..=0xfe => {
                    now += Duration::from_secs((op & 0x7f) as u64 * 5);
                    if r.poll_timeout().is_some_and(|d| now >= d) {
                        r.handle_timeout(now);
                    }
                }
                _ => r.receive(take(&mut rest, op), now),
            }
            drain(|| r.poll_event().is_some());
            if let (Some(before), Some(after)) = (saved, r.saved_base_time()) {
                assert!(after >= before, "saved base-time went back from {before} to {after}");
            }
            assert!(saved.is_none() || r.saved_base_time().is_some());
            if r.error().is_some() {
                break;
            }
        }
    }
});
