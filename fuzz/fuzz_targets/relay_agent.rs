//! Fuzz the option 82 (relay agent information, RFC 3046) sub-option parser: never panic; what parses is a
//! sequence of sub-options that covers the option exactly, every typed accessor answers without panicking, and
//! the builder rebuilds the same octets from the parsed sub-options.
#![no_main]

use leasewire_proto::{RelayAgentInfo, RelayAgentInfoBuilder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(rai) = RelayAgentInfo::parse(data) else { return };
    assert_eq!(rai.as_bytes(), data);
    let mut covered = 0;
    let mut builder = RelayAgentInfoBuilder::new();
    for sub in rai.iter() {
        covered += 2 + sub.data.len();
        builder = builder.sub_option(sub.code, sub.data);
    }
    assert_eq!(covered, data.len(), "sub-options cover the option exactly");
    assert_eq!(builder.build(), data, "the builder rebuilds the same octets");
    let _ = (rai.circuit_id(), rai.remote_id(), rai.relay_id(), rai.link_selection(), rai.server_id_override());
    let _ = (rai.has_relay_source_port(), rai.is_remote_id_only());
});
