//! decode + encode of a ~300-octet DHCPLEASEACTIVE carrying options 51, 54, 61, 82, 91 and 151-157, side by
//! side with dhcproto 0.15 on the same bytes.
//!
//! Run: `cargo bench -p leasewire-proto --bench codec`

use criterion::{Criterion, criterion_group, criterion_main};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use leasewire_proto::options::code;
use leasewire_proto::{DataSource, DhcpState, Message, MessageType, Op, RelayAgentInfoBuilder, StatusCode};
use std::hint::black_box;
use std::net::Ipv4Addr;

fn lease_active() -> Vec<u8> {
    let mut m = Message::new(Op::BootReply);
    m.xid = 0x1234_5678;
    m.ciaddr = Ipv4Addr::new(10, 77, 0, 100);
    m.set_hardware_address(1, &[2, 0, 0, 0, 0, 1]);
    let o = &mut m.options;
    o.set_message_type(MessageType::LeaseActive);
    o.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::new(10, 77, 0, 1));
    o.set_u32(code::LEASE_TIME, 598);
    o.set(code::CLIENT_IDENTIFIER, vec![1, 2, 0, 0, 0, 0, 1]);
    o.set_u32(code::CLIENT_LAST_TRANSACTION_TIME, 2);
    o.set_status(StatusCode::Success, "");
    o.set_u32(code::BASE_TIME, 1_795_778_895);
    o.set_u32(code::START_TIME_OF_STATE, 30);
    o.set_u32(code::QUERY_START_TIME, 1_795_778_000);
    o.set_u32(code::QUERY_END_TIME, 1_795_778_895);
    o.set_dhcp_state(DhcpState::Active);
    o.set_data_source(DataSource::LOCAL);
    o.set(
        code::RELAY_AGENT_INFO,
        RelayAgentInfoBuilder::new().circuit_id(b"port1").remote_id(b"sw1").relay_id(b"relay-A").build(),
    );
    let mut b = Vec::new();
    m.encode(&mut b).unwrap();
    b
}

fn bench(c: &mut Criterion) {
    let bytes = lease_active();
    assert!((300..=340).contains(&bytes.len()), "{} octets", bytes.len());
    let mut g = c.benchmark_group("decode+encode DHCPLEASEACTIVE");
    let mut out = Vec::with_capacity(512);
    g.bench_function("leasewire-proto", |b| {
        b.iter(|| {
            let m = Message::decode(black_box(&bytes)).unwrap();
            out.clear();
            m.encode(&mut out).unwrap();
            black_box(out.len())
        })
    });
    let mut out = Vec::with_capacity(512);
    g.bench_function("dhcproto 0.15", |b| {
        b.iter(|| {
            let m = dhcproto::v4::Message::decode(&mut Decoder::new(black_box(&bytes))).unwrap();
            out.clear();
            m.encode(&mut Encoder::new(&mut out)).unwrap();
            black_box(out.len())
        })
    });
    g.finish();
    c.bench_function("decode only (leasewire-proto)", |b| b.iter(|| Message::decode(black_box(&bytes)).unwrap().xid));
}

criterion_group!(benches, bench);
criterion_main!(benches);
