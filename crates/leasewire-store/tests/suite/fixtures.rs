//! The lease a DHCP server typically stores, shared by the behaviour suite and the store benchmarks (which
//! include this file by path), so both measure and check the same shape of record.

use leasewire_proto::RelayAgentInfoBuilder;
use leasewire_store::{Binding, DhcpState};
use std::net::Ipv4Addr;

/// An ACTIVE lease of `ip` since `since` for an hour, to an Ethernet client `mac` whose client-id is made of
/// it, behind a relay with this circuit-id, remote-id and relay-id, with a hostname `host-{client}` and a
/// vendor class.
pub fn active_lease(ip: Ipv4Addr, mac: Vec<u8>, client: u32, rai: [&[u8]; 3], since: u32) -> Binding {
    let mut b = Binding::new(ip, DhcpState::Active, since);
    b.htype = 1;
    b.client_id = Some([&[1u8][..], &mac].concat());
    b.hardware_address = mac;
    b.expires_at = Some(since + 3600);
    b.cltt = Some(since);
    let [circuit_id, remote_id, relay_id] = rai;
    b.relay_agent_info =
        Some(RelayAgentInfoBuilder::new().circuit_id(circuit_id).remote_id(remote_id).relay_id(relay_id).build());
    b.options = vec![(12, format!("host-{client}").into_bytes()), (60, b"MSFT 5.0".to_vec())];
    b
}
