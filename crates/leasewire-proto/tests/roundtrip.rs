//! Round-trip properties of the codec: decode(encode(m)) == m for every message type and option, and
//! encode(decode(b)) == b for canonical bytes. Arbitrary and mutated bytes never panic.

mod common;

use leasewire_proto::framing::{FrameDecoder, encode_frame};
use leasewire_proto::{EncodeSettings, Message, MessageType};
use proptest::prelude::*;

fn encode(m: &Message<'_>) -> Vec<u8> {
    let mut b = Vec::new();
    m.encode(&mut b).expect("generated messages encode");
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_encode_round_trip((m, opts) in common::message(700)) {
        let b = encode(&m);
        prop_assert!(b.len() >= 300);
        let d = Message::decode(&b).unwrap();
        prop_assert_eq!(&d, &m);
        for t in &opts {
            t.check(&d);
        }
        // Canonical bytes re-encode to themselves.
        prop_assert_eq!(encode(&d), b);
    }

    #[test]
    fn every_message_type_round_trips(t in 1u8..=18, (m, _) in common::message(40)) {
        let mut m = m;
        m.options.set_message_type(MessageType::from_code(t));
        // The encoder puts relay agent information last; keep the expectation in that order.
        if let Some(rai) = m.options.remove(82) {
            m.options.push(rai);
        }
        let b = encode(&m);
        let d = Message::decode(&b).unwrap();
        prop_assert_eq!(d.message_type(), Some(MessageType::from_code(t)));
        prop_assert_eq!(d, m);
    }

    #[test]
    fn framed_round_trip((m, _) in common::message(300)) {
        let mut b = Vec::new();
        encode_frame(&m, &mut b).unwrap();
        let (body, used) = FrameDecoder::new(65535).decode(&b).unwrap().unwrap();
        prop_assert_eq!(used, b.len());
        prop_assert_eq!(Message::decode(body).unwrap(), m);
    }

    #[test]
    fn overload_round_trips_when_the_limit_forces_it((m, _) in common::message(300), limit in 300usize..700) {
        let mut m = m;
        m.sname = &[];
        m.file = &[];
        let mut b = Vec::new();
        if m.encode_with(&mut b, &EncodeSettings { min_len: 300, max_len: limit }).is_ok() {
            prop_assert!(b.len() <= limit.max(300));
            prop_assert_eq!(Message::decode(&b).unwrap(), m);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..700)) {
        let _ = Message::decode(&b);
        let _ = FrameDecoder::new(65535).decode(&b);
    }

    #[test]
    fn mutated_messages_decode_or_fail_cleanly_and_are_idempotent(
        (m, _) in common::message(300),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut b = encode(&m);
        for (i, v) in edits {
            let at = i.index(b.len());
            b[at] = v;
        }
        let end = 236 + cut.index(b.len() - 236 + 1);
        for bytes in [&b[..], &b[..end]] {
            if let Ok(mut d) = Message::decode(bytes) {
                let again = encode(&d);
                // Re-encoding moves relay agent information last (RFC 3046); nothing else may change.
                if let Some(rai) = d.options.remove(82) {
                    d.options.push(rai);
                }
                prop_assert_eq!(Message::decode(&again).unwrap(), d);
            }
        }
    }
}
