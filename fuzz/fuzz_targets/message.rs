//! Fuzz the DHCPv4 message decoder: never panic, and whatever decodes re-encodes to something that decodes to
//! the same message (relay agent information moved last, as the encoder puts it).
#![no_main]

use leasewire_proto::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut m) = Message::decode(data) else { return };
    let mut out = Vec::new();
    m.encode(&mut out).expect("a decoded message re-encodes");
    let again = Message::decode(&out).expect("an encoded message decodes");
    if let Some(rai) = m.options.remove(82) {
        m.options.push(rai);
    }
    assert_eq!(again, m);
});
