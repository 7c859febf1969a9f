//! Golden tests: real ISC dhcpd 4.4.3 bytes (tests/data/isc-dhcpd-leasequery.pcap, captured from ISC dhcpd) decode to the values
//! tshark and the capture's notes give, and re-encode byte for byte. No byte here was produced by our code.

use leasewire_proto::options::code;
use leasewire_proto::{EncodeSettings, Message, MessageType, Op};
use pcap_file::pcapng::{Block, PcapNgReader};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// The UDP payloads of the capture (pcapng), in frame order (frame N is index N-1).
fn payloads() -> Vec<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/isc-dhcpd-leasequery.pcap");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut reader = PcapNgReader::new(file).expect("pcapng section header");
    let mut out = Vec::new();
    while let Some(block) = reader.next_block() {
        if let Block::EnhancedPacket(pkt) = block.expect("pcapng block") {
            out.push(udp_payload(&pkt.data).to_vec());
        }
    }
    out
}

/// Ethernet II / IPv4 / UDP, as the capture holds them.
fn udp_payload(frame: &[u8]) -> &[u8] {
    assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4 ethertype");
    let ip = &frame[14..];
    let ihl = (ip[0] & 0x0f) as usize * 4;
    assert_eq!(ip[9], 17, "UDP");
    let udp = &ip[ihl..];
    let len = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    &udp[8..len]
}

fn decode(b: &[u8]) -> Message<'_> {
    Message::decode(b).unwrap_or_else(|e| panic!("ISC bytes must decode: {e}"))
}

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const RELAY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

#[test]
fn every_frame_decodes_and_re_encodes_byte_for_byte() {
    let frames = payloads();
    assert_eq!(frames.len(), 28);
    for (i, b) in frames.iter().enumerate() {
        let m = decode(b);
        // Frame 25 is a DHCPRELEASE the client unicasts itself; frame 28 a DHCPLEASEQUERY without giaddr,
        // which ISC drops (RFC 4388 §6.3 requires giaddr), hence no reply in the capture.
        let expected = if matches!(i + 1, 25 | 28) { Ipv4Addr::UNSPECIFIED } else { RELAY };
        assert_eq!(m.giaddr, expected, "frame {}", i + 1);
        let mut again = Vec::new();
        m.encode_with(&mut again, &EncodeSettings { min_len: b.len(), max_len: 65535 }).unwrap();
        assert_eq!(&again, b, "frame {} re-encodes byte for byte", i + 1);
    }
}

#[test]
fn lq_4388_lease_active_by_ciaddr_frame_14() {
    let frames = payloads();
    let q = decode(&frames[12]);
    assert_eq!(q.message_type(), Some(MessageType::LeaseQuery));
    assert_eq!(q.op, Op::BootRequest);
    assert_eq!(q.ciaddr, Ipv4Addr::new(10, 77, 0, 100));
    let m = decode(&frames[13]);
    assert_eq!(m.op, Op::BootReply);
    assert_eq!(m.xid, 0xe733_e791);
    assert_eq!(m.xid, q.xid);
    assert_eq!(m.message_type(), Some(MessageType::LeaseActive));
    assert_eq!(m.ciaddr, Ipv4Addr::new(10, 77, 0, 100));
    assert_eq!((m.htype, m.hardware_address()), (1, &[2, 0, 0, 0, 0, 1][..]));
    let o = &m.options;
    assert_eq!(o.server_identifier(), Some(SERVER));
    assert_eq!(o.lease_time(), Some(598));
    assert_eq!(o.get_u32(code::RENEWAL_TIME), Some(298));
    assert_eq!(o.get_u32(code::REBINDING_TIME), Some(523));
    assert_eq!(o.client_last_transaction_time(), Some(2));
    assert_eq!(o.client_identifier(), Some(&[1, 2, 0, 0, 0, 0, 1][..]));
    let rai = o.relay_agent_info().expect("option 82 stored and returned");
    assert_eq!(rai.circuit_id(), Some(&b"port1"[..]));
    assert_eq!(rai.remote_id(), Some(&b"sw1"[..]));
    assert_eq!(rai.relay_id(), None);
    assert_eq!(o.associated_ips().count(), 0);
    let codes: Vec<u8> = o.iter().map(|x| x.code).collect();
    assert_eq!(codes, vec![53, 54, 51, 58, 59, 91, 61, 82]);
}

#[test]
fn lq_4388_query_by_mac_returns_newest_with_associated_ip_frame_16() {
    let frames = payloads();
    let q = decode(&frames[14]);
    assert_eq!(q.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(q.hardware_address(), &[2, 0, 0, 0, 0, 1]);
    let m = decode(&frames[15]);
    assert_eq!(m.xid, 0xfb63_7c55);
    assert_eq!(m.message_type(), Some(MessageType::LeaseActive));
    assert_eq!(m.ciaddr, Ipv4Addr::new(10, 77, 0, 101));
    assert_eq!(m.options.associated_ips().collect::<Vec<_>>(), vec![Ipv4Addr::new(10, 77, 0, 100)]);
    assert_eq!(m.options.client_last_transaction_time(), Some(1));
    assert_eq!(m.options.client_identifier(), Some(&[1, 2, 0, 0, 0, 0, 0x99][..]));
    assert_eq!(m.options.relay_agent_info().unwrap().circuit_id(), Some(&b"port9"[..]));
}

#[test]
fn lq_4388_query_by_client_id_frame_18() {
    let frames = payloads();
    let q = decode(&frames[16]);
    assert_eq!(q.options.client_identifier(), Some(&[1, 2, 0, 0, 0, 0, 0x99][..]));
    let m = decode(&frames[17]);
    assert_eq!(m.message_type(), Some(MessageType::LeaseActive));
    assert_eq!(m.ciaddr, Ipv4Addr::new(10, 77, 0, 101));
    assert!(!m.options.contains(code::ASSOCIATED_IP));
}

#[test]
fn lq_4388_unassigned_and_unknown_frames_20_22_24_27() {
    let frames = payloads();
    let m = decode(&frames[19]);
    assert_eq!(m.message_type(), Some(MessageType::LeaseUnassigned));
    assert_eq!(m.ciaddr, Ipv4Addr::new(10, 77, 0, 150));
    assert_eq!(m.options.server_identifier(), Some(SERVER));
    assert!(m.options.contains(code::ROUTERS), "ISC adds the subnet's router option");
    assert!(!m.options.contains(code::LEASE_TIME));
    for (i, ip) in [(21, Ipv4Addr::new(10, 77, 0, 50)), (23, decode(&frames[22]).ciaddr)] {
        let m = decode(&frames[i]);
        assert_eq!(m.message_type(), Some(MessageType::LeaseUnknown), "frame {}", i + 1);
        assert_eq!(m.ciaddr, ip);
        assert_eq!(m.xid, decode(&frames[i - 1]).xid);
    }
    let rel = decode(&frames[24]);
    assert_eq!(rel.message_type(), Some(MessageType::Release));
    assert_eq!(rel.ciaddr, Ipv4Addr::new(10, 77, 0, 102));
    let m = decode(&frames[26]);
    assert_eq!(m.message_type(), Some(MessageType::LeaseUnassigned));
    assert_eq!(m.ciaddr, Ipv4Addr::new(10, 77, 0, 102));
}

#[test]
fn relayed_dora_carries_option_82_frames_1_to_12() {
    let frames = payloads();
    let types: Vec<MessageType> = frames[..12].iter().map(|b| decode(b).message_type().unwrap()).collect();
    use MessageType::*;
    assert_eq!(types, [Discover, Offer, Request, Ack].repeat(3));
    for b in &frames[..12] {
        let m = decode(b);
        assert!(m.options.relay_agent_info().is_some_and(|r| r.circuit_id().is_some()));
    }
    let ack = decode(&frames[3]);
    assert_eq!(ack.yiaddr, Ipv4Addr::new(10, 77, 0, 100));
    assert_eq!(ack.options.lease_time(), Some(600));
}
