//! Fuzz the TCP frame decoder fed a byte stream, then each frame's message: never panic, never accept a frame
//! longer than the maximum, always consume what it returns.
#![no_main]

use leasewire_proto::Message;
use leasewire_proto::framing::FrameDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let d = FrameDecoder::new(1024);
    let mut rest = data;
    loop {
        match d.decode(rest) {
            Ok(Some((body, used))) => {
                assert!(!body.is_empty() && body.len() <= 1024 && used == body.len() + 2);
                let _ = Message::decode(body);
                rest = &rest[used..];
            }
            Ok(None) => {
                let _ = d.finish(rest);
                break;
            }
            Err(_) => break,
        }
    }
});
