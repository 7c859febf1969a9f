//! The engine's RFC 2131 behaviour, decision by decision, with fixed times.

use super::*;
use crate::config::Config;
use leasewire_proto::{RelayAgentInfoBuilder, sub_option};

const CONFIG: &str = test_config!(
    r#"decline-time = 1000
offer-timeout = 30

[[subnet]]
subnet = "10.0.0.0/24"
pools = [{ start = "10.0.0.100", end = "10.0.0.102" }]
lease-time = 600
[subnet.options]
routers = ["10.0.0.1"]
dns-servers = ["10.0.0.53"]
[[subnet.reservation]]
ip = "10.0.0.5"
hw-address = "02:00:00:00:00:05"
name = "printer"

[[subnet]]
subnet = "10.9.0.0/24"
pools = [{ start = "10.9.0.10", end = "10.9.0.20" }]
"#
);

const RELAY: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const T0: u32 = 1_800_000_000;

fn engine() -> Engine {
    Engine::new(&Config::parse(CONFIG).unwrap(), Vec::new())
}

fn msg(t: MessageType, mac: u8) -> Message<'static> {
    let mut m = Message::new(Op::BootRequest);
    m.xid = 0x1000 + mac as u32;
    m.set_hardware_address(1, &[2, 0, 0, 0, 0, mac]);
    m.giaddr = RELAY;
    m.options.set_message_type(t);
    m.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().circuit_id(b"port1").remote_id(b"sw1").build());
    m
}

fn rx(now: u32) -> Received<'static> {
    Received { src: SocketAddrV4::new(RELAY, 67), interface: None, now }
}

/// The decoded reply (test-only leak keeps the borrow checker out of the assertions).
fn reply(o: &Outcome) -> Message<'static> {
    let bytes: &'static [u8] = Box::leak(o.reply.as_ref().expect("a reply").0.clone().into_boxed_slice());
    Message::decode(bytes).unwrap()
}

/// DISCOVER for one client, and the REQUEST (SELECTING) that takes the offer: the offered address and the
/// request, not yet handled.
fn offered(e: &mut Engine, mac: u8, now: u32) -> (Ipv4Addr, Message<'static>) {
    let offer = e.handle(&msg(MessageType::Discover, mac), rx(now));
    let ip = reply(&offer).yiaddr;
    let mut req = msg(MessageType::Request, mac);
    req.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::new(10, 0, 0, 1));
    req.options.set_ip(code::REQUESTED_IP, ip);
    (ip, req)
}

/// DISCOVER then REQUEST (SELECTING) for one client: the ACKed address.
fn dora(e: &mut Engine, mac: u8, now: u32) -> Ipv4Addr {
    let (ip, req) = offered(e, mac, now);
    let ack = e.handle(&req, rx(now));
    assert_eq!(reply(&ack).message_type(), Some(MessageType::Ack));
    ip
}

#[test]
fn discover_offers_a_pool_address_with_the_subnet_options() {
    let mut e = engine();
    let o = e.handle(&msg(MessageType::Discover, 1), rx(T0));
    assert!(o.commit.is_empty(), "an offer is not a state change unless configured");
    let r = reply(&o);
    assert_eq!(r.message_type(), Some(MessageType::Offer));
    assert_eq!(r.yiaddr, Ipv4Addr::new(10, 0, 0, 100));
    assert_eq!(r.xid, 0x1001);
    assert_eq!(r.options.server_identifier(), Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(r.options.lease_time(), Some(600));
    assert_eq!(r.options.get_u32(code::RENEWAL_TIME), Some(300));
    assert_eq!(r.options.get_u32(code::REBINDING_TIME), Some(525));
    assert_eq!(r.options.get(code::SUBNET_MASK), Some(&[255, 255, 255, 0][..]));
    assert_eq!(r.options.get(code::ROUTERS), Some(&[10, 0, 0, 1][..]));
    assert_eq!(o.reply.as_ref().unwrap().1, Destination::Unicast(SocketAddrV4::new(RELAY, 67)));
}

#[test]
fn parameter_request_list_selects_options() {
    let mut e = engine();
    let mut d = msg(MessageType::Discover, 1);
    d.options.set(code::PARAMETER_REQUEST_LIST, vec![code::DOMAIN_NAME_SERVERS]);
    let o = e.handle(&d, rx(T0));
    let r = reply(&o);
    assert!(r.options.contains(code::DOMAIN_NAME_SERVERS));
    assert!(!r.options.contains(code::ROUTERS));
    assert!(r.options.contains(code::SUBNET_MASK));
}

/// LQ-6.7-1, LQ-5-10: the option 82 of the client's request is stored with the binding.
#[test]
fn rfc3046_option_82_is_echoed_last_and_stored() {
    let mut e = engine();
    let ip = dora(&mut e, 1, T0);
    let b = e.binding(ip).unwrap();
    assert_eq!(b.state, DhcpState::Active);
    assert_eq!(b.remote_id(), Some(&b"sw1"[..]));
    let o = e.handle(&msg(MessageType::Discover, 1), rx(T0));
    let r = reply(&o);
    assert_eq!(r.options.iter().last().unwrap().code, code::RELAY_AGENT_INFO);
    assert_eq!(r.options.relay_agent_info().unwrap().circuit_id(), Some(&b"port1"[..]));
}

#[test]
fn rfc8357_relay_source_port_gets_the_reply() {
    let mut e = engine();
    let mut d = msg(MessageType::Discover, 1);
    d.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().relay_source_port().build());
    let o = e.handle(&d, Received { src: SocketAddrV4::new(RELAY, 1300), interface: None, now: T0 });
    assert_eq!(o.reply.unwrap().1, Destination::Unicast(SocketAddrV4::new(RELAY, 1300)));
    // Without the sub-option the reply goes to port 67 whatever the source port.
    let o = e.handle(
        &msg(MessageType::Discover, 2),
        Received { src: SocketAddrV4::new(RELAY, 1300), interface: None, now: T0 },
    );
    assert_eq!(o.reply.unwrap().1, Destination::Unicast(SocketAddrV4::new(RELAY, 67)));
}

/// LQ-6.7-2: the client-last-transaction-time is stored with the binding.
#[test]
fn ack_commits_an_active_binding_with_lease_and_client() {
    let mut e = engine();
    let (ip, mut req) = offered(&mut e, 1, T0);
    req.options.set(code::HOST_NAME, b"laptop".to_vec());
    let o = e.handle(&req, rx(T0 + 1));
    assert_eq!(o.commit.len(), 1);
    let b = &o.commit[0];
    assert_eq!(
        (b.ip, b.state, b.state_since, b.expires_at, b.cltt),
        (ip, DhcpState::Active, T0 + 1, Some(T0 + 601), Some(T0 + 1))
    );
    assert_eq!((b.htype, &b.hardware_address[..]), (1, &[2, 0, 0, 0, 0, 1][..]));
    assert_eq!(b.option(code::HOST_NAME), Some(&b"laptop"[..]));
    assert_eq!(reply(&o).yiaddr, ip);
}

#[test]
fn selecting_another_server_withdraws_our_offer() {
    let mut e = engine();
    let ip = reply(&e.handle(&msg(MessageType::Discover, 1), rx(T0))).yiaddr;
    let mut req = msg(MessageType::Request, 1);
    req.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::new(10, 0, 0, 99));
    req.options.set_ip(code::REQUESTED_IP, ip);
    let o = e.handle(&req, rx(T0));
    assert_eq!(o.dropped, Some(DropReason::OtherServer));
    // The address is free again at once: once the never-used addresses are gone, it is the one left.
    let others: Vec<Ipv4Addr> =
        (2..=3).map(|mac| reply(&e.handle(&msg(MessageType::Discover, mac), rx(T0))).yiaddr).collect();
    assert!(!others.contains(&ip));
    assert_eq!(reply(&e.handle(&msg(MessageType::Discover, 4), rx(T0))).yiaddr, ip);
}

#[test]
fn an_offer_holds_the_address_until_it_lapses() {
    let mut e = engine();
    let a = reply(&e.handle(&msg(MessageType::Discover, 1), rx(T0))).yiaddr;
    let b = reply(&e.handle(&msg(MessageType::Discover, 2), rx(T0))).yiaddr;
    assert_ne!(a, b);
    // The same client asking again gets the same offer.
    assert_eq!(reply(&e.handle(&msg(MessageType::Discover, 1), rx(T0 + 5))).yiaddr, a);
    let c = reply(&e.handle(&msg(MessageType::Discover, 3), rx(T0))).yiaddr;
    assert_eq!(e.handle(&msg(MessageType::Discover, 4), rx(T0 + 10)).dropped, Some(DropReason::PoolExhausted));
    // After offer-timeout (30 s) the offers lapse and addresses come back.
    e.tick(T0 + 40);
    let d = reply(&e.handle(&msg(MessageType::Discover, 4), rx(T0 + 40))).yiaddr;
    assert!([a, b, c].contains(&d));
}

#[test]
fn nak_when_selecting_an_address_bound_to_another_client() {
    let mut e = engine();
    let ip = dora(&mut e, 1, T0);
    let mut req = msg(MessageType::Request, 2);
    req.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::new(10, 0, 0, 1));
    req.options.set_ip(code::REQUESTED_IP, ip);
    let o = e.handle(&req, rx(T0));
    let r = reply(&o);
    assert_eq!(r.message_type(), Some(MessageType::Nak));
    assert_eq!(r.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert!(r.flags & 0x8000 != 0, "a NAK through a relay asks it to broadcast");
    assert!(o.commit.is_empty());
}

#[test]
fn init_reboot_rules() {
    let mut e = engine();
    let ip = dora(&mut e, 1, T0);
    let reboot = |mac: u8, want: Ipv4Addr| {
        let mut r = msg(MessageType::Request, mac);
        r.options.set_ip(code::REQUESTED_IP, want);
        r
    };
    // Its own address: ACK.
    assert_eq!(reply(&e.handle(&reboot(1, ip), rx(T0 + 5))).message_type(), Some(MessageType::Ack));
    // An address on another network: NAK.
    let o = e.handle(&reboot(1, Ipv4Addr::new(192, 168, 1, 1)), rx(T0 + 5));
    assert_eq!(reply(&o).message_type(), Some(MessageType::Nak));
    // Another address than the one we know for it: NAK.
    let o = e.handle(&reboot(1, Ipv4Addr::new(10, 0, 0, 101)), rx(T0 + 5));
    assert_eq!(reply(&o).message_type(), Some(MessageType::Nak));
    // A client we have no record of: silence (RFC 2131 §4.3.2).
    assert_eq!(e.handle(&reboot(7, Ipv4Addr::new(10, 0, 0, 101)), rx(T0 + 5)).dropped, Some(DropReason::NoRecord));
}

#[test]
fn renewing_extends_the_lease_and_keeps_start_time_of_state() {
    let mut e = engine();
    let ip = dora(&mut e, 1, T0);
    let mut r = msg(MessageType::Request, 1);
    r.ciaddr = ip;
    r.giaddr = Ipv4Addr::UNSPECIFIED;
    r.options.remove(code::RELAY_AGENT_INFO);
    let o = e.handle(&r, Received { src: SocketAddrV4::new(ip, 68), interface: None, now: T0 + 300 });
    let b = &o.commit[0];
    assert_eq!((b.state_since, b.expires_at, b.cltt), (T0, Some(T0 + 900), Some(T0 + 300)));
    assert_eq!(reply(&o).ciaddr, ip);
    assert_eq!(o.reply.unwrap().1, Destination::Unicast(SocketAddrV4::new(ip, 68)));
    // Another client renewing that address: NAK.
    let mut r2 = msg(MessageType::Request, 2);
    r2.ciaddr = ip;
    r2.giaddr = Ipv4Addr::UNSPECIFIED;
    let o = e.handle(&r2, Received { src: SocketAddrV4::new(ip, 68), interface: None, now: T0 + 300 });
    assert_eq!(reply(&o).message_type(), Some(MessageType::Nak));
    assert_eq!(o.reply.unwrap().1, Destination::Broadcast, "a NAK without relay is broadcast");
}

#[test]
fn decline_abandons_the_address_for_decline_time() {
    let mut e = engine();
    let ip = dora(&mut e, 1, T0);
    let mut d = msg(MessageType::Decline, 1);
    d.options.set_ip(code::REQUESTED_IP, ip);
    let o = e.handle(&d, rx(T0 + 1));
    assert!(o.reply.is_none());
    let b = &o.commit[0];
    assert_eq!((b.state, b.expires_at), (DhcpState::Abandoned, Some(T0 + 1001)));
    assert!(b.hardware_address.is_empty(), "an abandoned address belongs to no client");
    // The decision rests on the decliner's lease: a shared store refuses the DECLINE if another server gave
    // the address to another client meanwhile.
    assert_eq!(o.expected.len(), 1);
    assert_eq!((o.expected[0].ip, o.expected[0].state), (ip, DhcpState::Active));
    assert_eq!(o.expected[0].hardware_address, vec![2, 0, 0, 0, 0, 1]);
    // Not offered to anyone, not even the decliner, while abandoned.
    for mac in 1..=3 {
        let o = e.handle(&msg(MessageType::Discover, mac), rx(T0 + 2));
        if let Some((bytes, ..)) = &o.reply {
            assert_ne!(Message::decode(bytes).unwrap().yiaddr, ip);
        }
    }
    // When abandonment ends, the address becomes AVAILABLE (a committed change).
    assert!(e.tick(T0 + 1000).is_empty());
    let due = e.tick(T0 + 1001);
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].ip, due[0].state, due[0].state_since), (ip, DhcpState::Available, T0 + 1001));
}

#[test]
fn decline_or_release_by_a_non_holder_is_ignored() {
    let mut e = engine();
    let ip = dora(&mut e, 1, T0);
    let mut d = msg(MessageType::Decline, 2);
    d.options.set_ip(code::REQUESTED_IP, ip);
    assert_eq!(e.handle(&d, rx(T0)).dropped, Some(DropReason::NotHolder));
    let mut r = msg(MessageType::Release, 2);
    r.ciaddr = ip;
    assert_eq!(e.handle(&r, rx(T0)).dropped, Some(DropReason::NotHolder));
    assert_eq!(e.binding(ip).unwrap().state, DhcpState::Active);
}

#[test]
fn release_keeps_the_client_so_it_gets_the_address_back() {
    let mut e = engine();
    let ip = dora(&mut e, 1, T0);
    let mut r = msg(MessageType::Release, 1);
    r.ciaddr = ip;
    let o = e.handle(&r, rx(T0 + 10));
    assert!(o.reply.is_none());
    let b = &o.commit[0];
    assert_eq!((b.state, b.state_since, b.expires_at), (DhcpState::Released, T0 + 10, None));
    assert_eq!(&b.hardware_address[..], &[2, 0, 0, 0, 0, 1]);
    assert_eq!(reply(&e.handle(&msg(MessageType::Discover, 1), rx(T0 + 20))).yiaddr, ip);
}

#[test]
fn inform_returns_configuration_without_a_lease() {
    let mut e = engine();
    let mut i = msg(MessageType::Inform, 1);
    i.ciaddr = Ipv4Addr::new(10, 0, 0, 50);
    i.giaddr = Ipv4Addr::UNSPECIFIED;
    i.options.remove(code::RELAY_AGENT_INFO);
    let o = e.handle(&i, Received { src: SocketAddrV4::new(i.ciaddr, 68), interface: None, now: T0 });
    assert!(o.commit.is_empty());
    let r = reply(&o);
    assert_eq!(r.message_type(), Some(MessageType::Ack));
    assert_eq!((r.yiaddr, r.ciaddr), (Ipv4Addr::UNSPECIFIED, i.ciaddr));
    assert!(!r.options.contains(code::LEASE_TIME));
    assert!(r.options.contains(code::ROUTERS));
    assert_eq!(o.reply.unwrap().1, Destination::Unicast(SocketAddrV4::new(i.ciaddr, 68)));
}

#[test]
fn leases_expire_on_time_and_not_before() {
    let mut e = engine();
    let ip = dora(&mut e, 1, T0);
    assert!(e.tick(T0 + 599).is_empty());
    let due = e.tick(T0 + 650);
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].ip, due[0].state, due[0].state_since), (ip, DhcpState::Expired, T0 + 600));
    assert!(e.tick(T0 + 700).is_empty(), "expired once");
    // A renewal before expiry moves the timer.
    let ip2 = dora(&mut e, 2, T0 + 700);
    let mut r = msg(MessageType::Request, 2);
    r.ciaddr = ip2;
    e.handle(&r, rx(T0 + 1000));
    assert!(e.tick(T0 + 1301).is_empty());
    assert_eq!(e.tick(T0 + 1600).len(), 1);
}

#[test]
fn reservations_go_to_their_owner_only() {
    let mut e = engine();
    let r = reply(&e.handle(&msg(MessageType::Discover, 5), rx(T0)));
    assert_eq!(r.yiaddr, Ipv4Addr::new(10, 0, 0, 5));
    let ip = dora(&mut e, 5, T0);
    assert_eq!(ip, Ipv4Addr::new(10, 0, 0, 5));
    assert_eq!(e.binding(ip).unwrap().reserved_for.as_deref(), Some("printer"));
    let mut req = msg(MessageType::Request, 6);
    req.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::new(10, 0, 0, 1));
    req.options.set_ip(code::REQUESTED_IP, Ipv4Addr::new(10, 0, 0, 5));
    assert_eq!(reply(&e.handle(&req, rx(T0))).message_type(), Some(MessageType::Nak));
}

#[test]
fn client_identifier_is_the_identity_when_present() {
    let mut e = engine();
    let mut d = msg(MessageType::Discover, 1);
    d.options.set(code::CLIENT_IDENTIFIER, vec![0xff, 1, 2, 3]);
    let a = reply(&e.handle(&d, rx(T0))).yiaddr;
    // Same chaddr, other client-id: another client.
    let mut d2 = msg(MessageType::Discover, 1);
    d2.options.set(code::CLIENT_IDENTIFIER, vec![0xff, 9, 9, 9]);
    let r = reply(&e.handle(&d2, rx(T0)));
    assert_ne!(r.yiaddr, a);
    assert_eq!(r.options.client_identifier(), Some(&[0xff, 9, 9, 9][..]), "RFC 6842 echo");
}

#[test]
fn rfc3527_link_selection_chooses_the_subnet() {
    let mut e = engine();
    let mut d = msg(MessageType::Discover, 1);
    let rai = RelayAgentInfoBuilder::new().sub_option(sub_option::LINK_SELECTION, &[10, 9, 0, 0]).build();
    d.options.set(code::RELAY_AGENT_INFO, rai);
    let o = e.handle(&d, rx(T0));
    assert_eq!(reply(&o).yiaddr, Ipv4Addr::new(10, 9, 0, 10));
    assert_eq!(o.reply.unwrap().1, Destination::Unicast(SocketAddrV4::new(RELAY, 67)), "still via giaddr");
}

#[test]
fn rfc5107_server_id_override() {
    let mut e = engine();
    let over = Ipv4Addr::new(10, 0, 0, 2);
    let rai = RelayAgentInfoBuilder::new().sub_option(sub_option::SERVER_ID_OVERRIDE, &over.octets()).build();
    let mut d = msg(MessageType::Discover, 1);
    d.options.set(code::RELAY_AGENT_INFO, rai.clone());
    let r = reply(&e.handle(&d, rx(T0)));
    assert_eq!(r.options.server_identifier(), Some(over));
    let mut req = msg(MessageType::Request, 1);
    req.options.set(code::RELAY_AGENT_INFO, rai);
    req.options.set_ip(code::SERVER_IDENTIFIER, over);
    req.options.set_ip(code::REQUESTED_IP, r.yiaddr);
    assert_eq!(reply(&e.handle(&req, rx(T0))).message_type(), Some(MessageType::Ack));
}

#[test]
fn no_subnet_and_wrong_op_are_dropped_with_reasons() {
    let mut e = engine();
    let mut d = msg(MessageType::Discover, 1);
    d.giaddr = Ipv4Addr::new(192, 168, 0, 1);
    assert_eq!(e.handle(&d, rx(T0)).dropped, Some(DropReason::NoSubnet));
    let mut r = msg(MessageType::Discover, 1);
    r.op = Op::BootReply;
    assert_eq!(e.handle(&r, rx(T0)).dropped, Some(DropReason::NotARequest));
    let mut n = msg(MessageType::Discover, 1);
    n.options.remove(code::MESSAGE_TYPE);
    assert_eq!(e.handle(&n, rx(T0)).dropped, Some(DropReason::NoMessageType));
    assert_eq!(e.handle(&msg(MessageType::LeaseQuery, 1), rx(T0)).dropped, Some(DropReason::UnsupportedType));
}

#[test]
fn restart_from_records_keeps_bindings_and_allocation_state() {
    let mut e = engine();
    let a = dora(&mut e, 1, T0);
    let b = dora(&mut e, 2, T0);
    let records: Vec<Binding> = [a, b].iter().map(|ip| e.binding(*ip).unwrap().clone()).collect();
    let mut e2 = Engine::new(&Config::parse(CONFIG).unwrap(), records);
    assert_eq!(reply(&e2.handle(&msg(MessageType::Discover, 1), rx(T0 + 1))).yiaddr, a);
    let c = reply(&e2.handle(&msg(MessageType::Discover, 3), rx(T0 + 1))).yiaddr;
    assert!(c != a && c != b);
    assert_eq!(e2.tick(T0 + 600).len(), 2, "expiry timers are rebuilt");
}

#[test]
fn lease_counts_by_subnet_and_state_for_metrics() {
    let mut e = engine();
    let a = dora(&mut e, 1, T0);
    dora(&mut e, 2, T0);
    let mut r = msg(MessageType::Release, 1);
    r.ciaddr = a;
    e.handle(&r, rx(T0 + 1));
    let counts = e.state_counts(e.slot_of(a));
    assert_eq!(e.slot_of(a), 0);
    assert_eq!(counts[usize::from(DhcpState::Active.code())], 1);
    assert_eq!(counts[usize::from(DhcpState::Released.code())], 1);
    assert_eq!(counts.iter().sum::<u32>(), 2, "a replaced record is counted once: {counts:?}");
    // An address outside every subnet has a slot of its own.
    assert_eq!(e.slot_of("192.0.2.1".parse().unwrap()), e.subnets().len());
    assert_eq!(e.state_counts(e.subnets().len()).iter().sum::<u32>(), 0);
}

#[test]
fn a_forget_in_flight_never_drops_a_lease_granted_meanwhile() {
    // Unchanged since the store chose it: dropped.
    let mut e = engine();
    let ip = dora(&mut e, 1, T0);
    let expired = e.tick(T0 + 600);
    assert_eq!(expired[0].state, DhcpState::Expired);
    e.forgotten(&expired);
    assert!(e.binding(ip).is_none());
    // Re-leased before the engine heard of the forget: kept (the store has the new lease too).
    let mut e = engine();
    let ip = dora(&mut e, 1, T0);
    let expired = e.tick(T0 + 600);
    let again: Vec<Ipv4Addr> = (2..=4).map(|mac| dora(&mut e, mac, T0 + 700)).collect();
    assert!(again.contains(&ip), "the expired address is handed out again");
    e.forgotten(&expired);
    assert_eq!(e.binding(ip).map(|b| b.state), Some(DhcpState::Active), "the new lease survives the late forget");
}

/// With a shared store the database may refuse an ACK's commit (another server bound the address first):
/// the engine has a NAK ready for that case, and once it learns the other server's binding it neither offers
/// nor ACKs that address to anyone else.
#[test]
fn a_refused_ack_becomes_a_nak_and_learned_bindings_are_not_offered() {
    let mut e = engine();
    let (ip, req) = offered(&mut e, 1, T0);
    let o = e.handle(&req, rx(T0));
    assert_eq!(reply(&o).message_type(), Some(MessageType::Ack));
    let (bytes, _, t) = o.on_conflict.expect("a NAK for a refused commit");
    assert_eq!(t, MessageType::Nak);
    let nak = Message::decode(&bytes).unwrap();
    assert_eq!((nak.message_type(), nak.xid, nak.yiaddr), (Some(MessageType::Nak), req.xid, Ipv4Addr::UNSPECIFIED));

    // The database says another server gave the address to client 9: the engine takes that in.
    let mut theirs = Binding::new(ip, DhcpState::Active, T0);
    theirs.htype = 1;
    theirs.hardware_address = vec![2, 0, 0, 0, 0, 9];
    theirs.expires_at = Some(T0 + 600);
    theirs.data_source = DataSource::REMOTE;
    e.learn(theirs);
    assert_eq!(reply(&e.handle(&req, rx(T0 + 1))).message_type(), Some(MessageType::Nak));
    let again = e.handle(&msg(MessageType::Discover, 1), rx(T0 + 1));
    assert_ne!(reply(&again).yiaddr, ip, "an address another server leased is not offered");
}

/// Servers sharing a database start allocating at different places in the pool.
#[test]
fn a_shared_store_starts_allocation_where_configured() {
    let cfg = CONFIG.replace(
        "offer-timeout = 30\n",
        "offer-timeout = 30\nstore = { kind = \"postgres\", url = \"x\", start-at = 0.5 }\n",
    );
    let mut e = Engine::new(&Config::parse(&cfg).unwrap(), Vec::new());
    let first = reply(&e.handle(&msg(MessageType::Discover, 1), rx(T0))).yiaddr;
    assert_eq!(first, Ipv4Addr::new(10, 0, 0, 101));
    assert_eq!(dora(&mut e, 2, T0), Ipv4Addr::new(10, 0, 0, 102));
    // Wraps around to the start of the pool.
    assert_eq!(dora(&mut e, 3, T0), Ipv4Addr::new(10, 0, 0, 100));
}

// ---- DISCOVER flood protection per relay and circuit -------------------------------------------------------

fn limited(circuit: usize, relay: usize) -> Engine {
    let text = CONFIG
        .replace(
            "offer-timeout = 30",
            &format!("offer-timeout = 30\nmax-offers-per-circuit = {circuit}\nmax-offers-per-relay = {relay}"),
        )
        .replace("end = \"10.0.0.102\"", "end = \"10.0.0.200\"");
    Engine::new(&Config::parse(&text).unwrap(), Vec::new())
}

fn discover_on(circuit: &[u8], mac: u8) -> Message<'static> {
    let mut m = msg(MessageType::Discover, mac);
    m.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().circuit_id(circuit).build());
    m
}

#[test]
fn a_discover_flood_from_one_circuit_holds_only_its_quota_of_addresses() {
    let mut e = limited(3, 0);
    let outcomes: Vec<Outcome> = (10..20).map(|mac| e.handle(&discover_on(b"port1", mac), rx(T0))).collect();
    let offered = outcomes.iter().filter(|o| o.reply.is_some()).count();
    assert_eq!(offered, 3, "three offers outstanding from port1 at most");
    assert!(outcomes[3..].iter().all(|o| o.dropped == Some(DropReason::CircuitOfferLimit)));
    // Another circuit of the same relay is not affected...
    assert!(e.handle(&discover_on(b"port2", 30), rx(T0)).reply.is_some());
    // ...nor a client that already has its offer (a retransmitted DISCOVER) or a binding.
    let again = e.handle(&discover_on(b"port1", 10), rx(T0 + 1));
    assert_eq!(reply(&again).yiaddr, reply(&outcomes[0]).yiaddr);
    // A REQUEST turns an offer into a lease and frees a place; so does an offer lapsing.
    let mut req = discover_on(b"port1", 11);
    req.options.set_message_type(MessageType::Request);
    req.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::new(10, 0, 0, 1));
    req.options.set_ip(code::REQUESTED_IP, reply(&outcomes[1]).yiaddr);
    assert_eq!(reply(&e.handle(&req, rx(T0 + 1))).message_type(), Some(MessageType::Ack));
    assert!(e.handle(&discover_on(b"port1", 40), rx(T0 + 2)).reply.is_some(), "room after the REQUEST");
    assert_eq!(e.handle(&discover_on(b"port1", 41), rx(T0 + 2)).dropped, Some(DropReason::CircuitOfferLimit));
    e.tick(T0 + 40);
    assert!(e.handle(&discover_on(b"port1", 42), rx(T0 + 40)).reply.is_some(), "room after the offers lapsed");
    // The client that got its lease renews whatever the circuit's offers.
    let renew_ip = dora(&mut e, 11, T0 + 41);
    assert_eq!(renew_ip, reply(&outcomes[1]).yiaddr);
}

#[test]
fn a_flood_that_varies_the_circuit_id_is_held_by_the_relay_limit() {
    let mut e = limited(0, 5);
    let offered = (0..20u8)
        .filter(|&i| e.handle(&discover_on(format!("port{i}").as_bytes(), 50 + i), rx(T0)).reply.is_some())
        .count();
    assert_eq!(offered, 5);
    assert_eq!(e.handle(&discover_on(b"x", 90), rx(T0)).dropped, Some(DropReason::RelayOfferLimit));
    // Without limits (the default) the pool is the only bound.
    let mut open = limited(0, 0);
    assert_eq!((0..20u8).filter(|&i| open.handle(&discover_on(b"p", 100 + i), rx(T0)).reply.is_some()).count(), 20);
}

#[test]
fn an_operator_reset_frees_the_address_and_keeps_who_had_it() {
    let mut e = engine();
    let a = dora(&mut e, 1, T0);
    assert!(e.reset("10.0.0.250".parse().unwrap(), T0 + 5).is_none(), "no record, nothing to reset");
    let b = e.reset(a, T0 + 5).expect("a record");
    assert_eq!((b.state, b.state_since, b.expires_at), (DhcpState::Reset, T0 + 5, None));
    assert_eq!(b.hardware_address, vec![2, 0, 0, 0, 0, 1], "the record still says who had it");
    assert_eq!(e.binding(a).map(|b| b.state), Some(DhcpState::Reset));
    let counts = e.state_counts(e.slot_of(a));
    assert_eq!((counts[DhcpState::Active.code() as usize], counts[DhcpState::Reset.code() as usize]), (0, 1));
    // The lease's end no longer expires anything: the record is not ACTIVE.
    assert!(e.tick(T0 + 100_000).is_empty());
}

#[test]
fn the_ack_keeps_t1_and_t2_with_the_binding() {
    let mut e = engine();
    let (_, req) = offered(&mut e, 1, T0);
    let o = e.handle(&req, rx(T0));
    let b = &o.commit[0];
    assert_eq!(b.option(code::RENEWAL_TIME), Some(&300u32.to_be_bytes()[..]));
    assert_eq!(b.option(code::REBINDING_TIME), Some(&525u32.to_be_bytes()[..]));
    assert_eq!(b.validate(), Ok(()), "options in the order the store requires");
}

/// A REQUEST renewing `ip` (RENEWING: ciaddr set, unicast from the client) through the relay.
fn renew(e: &mut Engine, mac: u8, ip: Ipv4Addr, now: u32) -> Outcome {
    let mut r = msg(MessageType::Request, mac);
    r.ciaddr = ip;
    e.handle(&r, rx(now))
}

#[test]
fn a_reload_keeps_every_binding_and_a_lease_in_a_removed_pool_gets_a_nak_on_renewal() {
    let mut e = engine();
    let ip = dora(&mut e, 1, T0);
    let kept = dora(&mut e, 2, T0);
    // The pool that held both moves; the subnet stays. Reservations and options change too.
    let moved = CONFIG
        .replace(
            r#"pools = [{ start = "10.0.0.100", end = "10.0.0.102" }]"#,
            r#"pools = [{ start = "10.0.0.100", end = "10.0.0.100" }, { start = "10.0.0.110", end = "10.0.0.120" }]"#,
        )
        .replace(r#"routers = ["10.0.0.1"]"#, r#"routers = ["10.0.0.254"]"#);
    assert_ne!(moved, CONFIG);
    e.reconfigure(&Config::parse(&moved).unwrap());
    assert_eq!(e.binding(ip).map(|b| b.state), Some(DhcpState::Active), "bindings survive a reload");
    assert_eq!(e.binding(kept).map(|b| b.state), Some(DhcpState::Active));
    let (in_pool, out_of_pool) = if ip == Ipv4Addr::new(10, 0, 0, 100) { (ip, kept) } else { (kept, ip) };
    let mac_of = |a: Ipv4Addr| e.binding(a).unwrap().hardware_address[5];
    let (m_in, m_out) = (mac_of(in_pool), mac_of(out_of_pool));
    // Still in a pool: renewed, with the new options.
    let o = renew(&mut e, m_in, in_pool, T0 + 300);
    let r = reply(&o);
    assert_eq!(r.message_type(), Some(MessageType::Ack));
    assert_eq!(r.options.get(code::ROUTERS), Some(&[10, 0, 0, 254][..]), "the new routers option");
    // Its pool gone: NAK, so the client starts over with an address the new configuration gives.
    let o = renew(&mut e, m_out, out_of_pool, T0 + 300);
    assert_eq!(reply(&o).message_type(), Some(MessageType::Nak));
    assert!(o.commit.is_empty());
    // The address is not handed to anyone else (not in a pool), and the engine still knows the lease.
    assert_eq!(e.binding(out_of_pool).map(|b| b.state), Some(DhcpState::Active));
}

#[test]
fn a_lease_in_a_removed_subnet_is_kept_and_its_renewal_unanswered() {
    let mut e = engine();
    let mut d = msg(MessageType::Discover, 7);
    d.giaddr = Ipv4Addr::new(10, 9, 0, 1);
    let offer = reply(&e.handle(&d, rx(T0)));
    let mut req = msg(MessageType::Request, 7);
    req.giaddr = Ipv4Addr::new(10, 9, 0, 1);
    req.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::new(10, 0, 0, 1));
    req.options.set_ip(code::REQUESTED_IP, offer.yiaddr);
    assert_eq!(reply(&e.handle(&req, rx(T0))).message_type(), Some(MessageType::Ack));
    let without = CONFIG.split("[[subnet]]\nsubnet = \"10.9.0.0/24\"").next().unwrap().to_string();
    e.reconfigure(&Config::parse(&without).unwrap());
    assert_eq!(e.subnets().len(), 1);
    assert_eq!(e.binding(offer.yiaddr).map(|b| b.state), Some(DhcpState::Active), "kept until it ends");
    let mut r = msg(MessageType::Request, 7);
    r.giaddr = Ipv4Addr::new(10, 9, 0, 1);
    r.ciaddr = offer.yiaddr;
    assert_eq!(e.handle(&r, rx(T0 + 300)).dropped, Some(DropReason::NoSubnet), "RFC 2131 §4.3.2: not authoritative");
}

/// LQ-6.7-3: the vendor-class-id (60) of the client's request is stored with the binding; BLQ-8.3-10: so are
/// the options that flow both ways (124, 125), so a requestor that asks for them gets what the client sent.
#[test]
fn lq_6_7_3_vendor_class_and_vendor_information_are_stored_with_the_binding() {
    let mut e = engine();
    let (ip, mut req) = offered(&mut e, 1, T0);
    req.options.set(code::VENDOR_CLASS, b"MSFT 5.0".to_vec());
    req.options.set(124, vec![0, 0, 0x0d, 0xe9, 3, b'c', b'p', b'e']);
    req.options.set(125, vec![0, 0, 0x0d, 0xe9, 4, 1, 2, b'x', b'y']);
    let o = e.handle(&req, rx(T0 + 1));
    let b = &o.commit[0];
    assert_eq!(b.ip, ip);
    assert_eq!(b.option(code::VENDOR_CLASS), Some(&b"MSFT 5.0"[..]));
    assert_eq!(b.option(124), Some(&[0, 0, 0x0d, 0xe9, 3, b'c', b'p', b'e'][..]));
    assert_eq!(b.option(125), Some(&[0, 0, 0x0d, 0xe9, 4, 1, 2, b'x', b'y'][..]));
    // A renewal that carries another vendor class stores the newest.
    let mut renew = msg(MessageType::Request, 1);
    renew.ciaddr = ip;
    renew.options.set(code::VENDOR_CLASS, b"MSFT 98".to_vec());
    let o = e.handle(&renew, rx(T0 + 100));
    assert_eq!(o.commit[0].option(code::VENDOR_CLASS), Some(&b"MSFT 98"[..]));
}

/// Typed options at three levels: the subnet's, a pool's over it, a reservation's over both.
const PLANNED: &str = test_config!(
    r#"
[[subnet]]
subnet = "10.0.0.0/24"
pools = [
  { start = "10.0.0.100", end = "10.0.0.109" },
  { start = "10.0.0.200", end = "10.0.0.209", options = { ntp-servers = ["10.0.0.124"], boot-file = "pool.efi" } },
]
[subnet.options]
routers = ["10.0.0.1"]
ntp-servers = ["10.0.0.123"]
time-offset = -3600
interface-mtu = 9000
domain-search = ["eng.apple.com", "marketing.apple.com"]
classless-static-routes = [
  { destination = "10.17.0.0/16", router = "10.0.0.2" },
  { destination = "0.0.0.0/0", router = "10.0.0.1" },
]
tftp-server-name = "tftp.example"
bootfile-name = "pxelinux.0"
next-server = "10.0.0.69"
boot-file = "subnet.efi"
vendor-encapsulated-options = { "1" = "hex:c0a8", "2" = "text" }
vendor-identifying-options = [{ enterprise-number = 4491, sub-options = { "2" = ["10.0.0.7"] } }]
[[subnet.reservation]]
ip = "10.0.0.5"
hw-address = "02:00:00:00:00:05"
[subnet.reservation.options]
ntp-servers = ["10.0.0.125"]
next-server = "10.0.0.70"
"#
);

fn planned_offer(mac: u8, prl: Option<&[u8]>, pool_of_two: bool) -> Message<'static> {
    let mut e = Engine::new(&Config::parse(PLANNED).unwrap(), Vec::new());
    let mut d = msg(MessageType::Discover, mac);
    if pool_of_two {
        d.options.set_ip(code::REQUESTED_IP, Ipv4Addr::new(10, 0, 0, 200));
    }
    if let Some(p) = prl {
        d.options.set(code::PARAMETER_REQUEST_LIST, p.to_vec());
    }
    reply(&e.handle(&d, rx(T0)))
}

/// Each typed option goes out encoded as its RFC says (RFC 2132, RFC 3397 §2's example, RFC 3442 §3,
/// RFC 3925 §4), with siaddr and file for PXE.
#[test]
fn typed_options_go_out_encoded_as_their_rfcs_say() {
    let r = planned_offer(1, None, false);
    assert_eq!(r.yiaddr, Ipv4Addr::new(10, 0, 0, 100));
    assert_eq!(r.options.get(2), Some(&(-3600i32).to_be_bytes()[..]), "time offset, signed");
    assert_eq!(r.options.get(26), Some(&9000u16.to_be_bytes()[..]));
    assert_eq!(r.options.get(42), Some(&[10, 0, 0, 123][..]));
    assert_eq!(r.options.get(43), Some(&[1, 2, 0xc0, 0xa8, 2, 4, b't', b'e', b'x', b't'][..]));
    assert_eq!(r.options.get(66), Some(&b"tftp.example"[..]));
    assert_eq!(r.options.get(67), Some(&b"pxelinux.0"[..]));
    let search = [&[3][..], b"eng", &[5], b"apple", &[3], b"com", &[0, 9], b"marketing", &[0xC0, 0x04]].concat();
    assert_eq!(r.options.get(119), Some(&search[..]));
    assert_eq!(r.options.get(121), Some(&[16, 10, 17, 10, 0, 0, 2, 0, 10, 0, 0, 1][..]));
    assert_eq!(r.options.get(125), Some(&[0, 0, 0x11, 0x8b, 6, 2, 4, 10, 0, 0, 7][..]));
    assert_eq!(r.siaddr, Ipv4Addr::new(10, 0, 0, 69), "next-server");
    assert_eq!(r.file, b"subnet.efi", "boot-file");
}

/// RFC 2131 §4.3.1: with a parameter request list only what it names (and the subnet mask) goes out; the
/// boot header fields are not options and are always filled.
#[test]
fn typed_options_honour_the_parameter_request_list() {
    let r = planned_offer(1, Some(&[42, 121, 3]), false);
    let codes: Vec<u8> = r.options.iter().map(|o| o.code).filter(|c| !matches!(c, 51..=59 | 82)).collect();
    assert_eq!(codes, vec![1, 3, 42, 121]);
    assert_eq!(r.siaddr, Ipv4Addr::new(10, 0, 0, 69));
    assert_eq!(r.file, b"subnet.efi");
}

/// A pool's options override the subnet's; what the pool does not set comes from the subnet.
#[test]
fn a_pool_overrides_its_subnets_options() {
    let r = planned_offer(2, None, true);
    assert_eq!(r.yiaddr, Ipv4Addr::new(10, 0, 0, 200));
    assert_eq!(r.options.get(42), Some(&[10, 0, 0, 124][..]), "the pool's");
    assert_eq!(r.file, b"pool.efi", "the pool's");
    assert_eq!(r.siaddr, Ipv4Addr::new(10, 0, 0, 69), "the subnet's");
    assert_eq!(r.options.get(66), Some(&b"tftp.example"[..]), "the subnet's");
}

/// A reservation's options override its pool's and subnet's.
#[test]
fn a_reservation_overrides_pool_and_subnet() {
    let r = planned_offer(5, None, false);
    assert_eq!(r.yiaddr, Ipv4Addr::new(10, 0, 0, 5));
    assert_eq!(r.options.get(42), Some(&[10, 0, 0, 125][..]));
    assert_eq!(r.siaddr, Ipv4Addr::new(10, 0, 0, 70));
    assert_eq!(r.file, b"subnet.efi", "not set by the reservation");
    assert_eq!(r.options.get(26), Some(&9000u16.to_be_bytes()[..]));
}

/// A subnet with reservations by relay port (option 82): one by circuit-id outside the pools, one by
/// circuit-id and remote-id through one relay only.
fn port_engine() -> Engine {
    let text = CONFIG.replace(
        "[[subnet]]\nsubnet = \"10.9.0.0/24\"",
        r#"[[subnet.reservation]]
ip = "10.0.0.50"
circuit-id = "port1"
name = "subscriber-1"
[[subnet.reservation]]
ip = "10.0.0.51"
circuit-id = "hex:706f727432"
remote-id = "sw1"
giaddr = "10.0.0.3"
name = "subscriber-2"

[[subnet]]
subnet = "10.9.0.0/24""#,
    );
    Engine::new(&Config::parse(&text).unwrap(), Vec::new())
}

fn on_port(t: MessageType, mac: u8, circuit: &[u8], remote: &[u8], giaddr: Ipv4Addr) -> Message<'static> {
    let mut m = msg(t, mac);
    m.giaddr = giaddr;
    m.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().circuit_id(circuit).remote_id(remote).build());
    m
}

/// Issue #20 item 4: whatever client sits behind the reserved circuit-id gets the reserved address, also
/// outside the pools, and keeps it through the REQUEST; the binding says whose reservation it is.
#[test]
fn a_reservation_by_circuit_id_gives_any_client_on_that_port_its_address() {
    for mac in [31, 32] {
        let o = port_engine().handle(&on_port(MessageType::Discover, mac, b"port1", b"sw1", RELAY), rx(T0));
        assert_eq!(reply(&o).yiaddr, Ipv4Addr::new(10, 0, 0, 50), "client {mac} on port1");
    }
    let mut e = port_engine();
    e.handle(&on_port(MessageType::Discover, 31, b"port1", b"sw1", RELAY), rx(T0));
    let mut req = on_port(MessageType::Request, 31, b"port1", b"sw1", RELAY);
    req.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::new(10, 0, 0, 1));
    req.options.set_ip(code::REQUESTED_IP, Ipv4Addr::new(10, 0, 0, 50));
    let o = e.handle(&req, rx(T0));
    assert_eq!(reply(&o).message_type(), Some(MessageType::Ack));
    assert_eq!(o.commit[0].reserved_for.as_deref(), Some("subscriber-1"));
    // Another port does not get it, and is refused it when it asks.
    let o = e.handle(&on_port(MessageType::Discover, 33, b"port9", b"sw1", RELAY), rx(T0));
    assert_eq!(reply(&o).yiaddr, Ipv4Addr::new(10, 0, 0, 100));
    let mut req = on_port(MessageType::Request, 33, b"port9", b"sw1", RELAY);
    req.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::new(10, 0, 0, 1));
    req.options.set_ip(code::REQUESTED_IP, Ipv4Addr::new(10, 0, 0, 50));
    assert_eq!(reply(&e.handle(&req, rx(T0))).message_type(), Some(MessageType::Nak));
}

/// Every option 82 key the reservation names must match, and its giaddr when it names one.
#[test]
fn a_reservation_by_circuit_and_remote_id_through_one_relay_needs_all_three() {
    let other_relay = Ipv4Addr::new(10, 0, 0, 3);
    let offered = |e: &mut Engine, mac, circuit: &[u8], remote: &[u8], giaddr| {
        reply(&e.handle(&on_port(MessageType::Discover, mac, circuit, remote, giaddr), rx(T0))).yiaddr
    };
    let mut e = port_engine();
    assert_eq!(offered(&mut e, 41, b"port2", b"sw1", other_relay), Ipv4Addr::new(10, 0, 0, 51));
    let mut e = port_engine();
    assert_ne!(offered(&mut e, 41, b"port2", b"sw1", RELAY), Ipv4Addr::new(10, 0, 0, 51), "another relay");
    assert_ne!(offered(&mut e, 42, b"port2", b"sw2", other_relay), Ipv4Addr::new(10, 0, 0, 51), "another remote-id");
}

/// A reservation whose address another client's live lease holds is reported; the reserved client's own
/// lease (by port: the option 82 stored with it) is not.
#[test]
fn a_reservation_conflicting_with_a_live_lease_is_reported() {
    let mut e = engine();
    let taken = dora(&mut e, 1, T0);
    let ported = dora(&mut e, 2, T0);
    assert!(e.reservation_conflicts().is_empty());
    let text = CONFIG.replace(
        "[[subnet]]\nsubnet = \"10.9.0.0/24\"",
        &format!(
            "[[subnet.reservation]]\nip = \"{taken}\"\nhw-address = \"02:00:00:00:00:99\"\nname = \"kiosk\"\n\
             [[subnet.reservation]]\nip = \"{ported}\"\ncircuit-id = \"port1\"\n\n[[subnet]]\nsubnet = \"10.9.0.0/24\""
        ),
    );
    e.reconfigure(&Config::parse(&text).unwrap());
    let c = e.reservation_conflicts();
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!((c[0].ip, c[0].name.as_str(), c[0].holder.as_str()), (taken, "kiosk", "02:00:00:00:00:01"));
    assert!(c[0].to_string().contains("leased to another client"), "{}", c[0]);
}

// ---- Client classes (issue #20 item 2) ---------------------------------------------------------------------

/// Phones (vendor class prefix) and PXE clients have pools of their own; the PCs' pool denies phones; a lab
/// class needs a circuit-id prefix through one relay (all-of); further classes by user class, remote-id and
/// MAC prefix add options. Options: reservation > class > pool > subnet, the first declared class first.
const CLASSES: &str = test_config!(
    r#"
[[client-class]]
name = "phones"
vendor-class-prefix = "Polycom"
[client-class.options]
tftp-server-name = "phones.example"
ntp-servers = ["10.0.0.201"]

[[client-class]]
name = "pxe"
vendor-class-prefix = "PXEClient"
[client-class.options]
next-server = "10.0.0.69"
boot-file = "ipxe.efi"

[[client-class]]
name = "lab"
circuit-id-prefix = "lab-"
giaddr = "10.0.0.2"

[[client-class]]
name = "kiosk"
user-class = "kiosk"
[client-class.options]
ntp-servers = ["10.0.0.203"]

[[client-class]]
name = "olt"
remote-id = "olt-7"
[client-class.options]
domain-name = "olt.example"

[[client-class]]
name = "acme"
mac-prefix = "02:00:00:ac"
[client-class.options]
ntp-servers = ["10.0.0.204"]
domain-name = "acme.example"

[[subnet]]
subnet = "10.0.0.0/24"
[[subnet.pools]]
start = "10.0.0.10"
end = "10.0.0.14"
deny = ["phones"]
options = { ntp-servers = ["10.0.0.100"], domain-name = "pool.example" }
[[subnet.pools]]
start = "10.0.0.20"
end = "10.0.0.21"
allow = ["phones"]
[[subnet.pools]]
start = "10.0.0.30"
end = "10.0.0.31"
allow = ["pxe", "lab"]
[subnet.options]
routers = ["10.0.0.1"]
ntp-servers = ["10.0.0.99"]
[[subnet.reservation]]
ip = "10.0.0.5"
hw-address = "02:00:00:ac:00:05"
[subnet.reservation.options]
ntp-servers = ["10.0.0.205"]
"#
);

fn classes_engine() -> Engine {
    Engine::new(&Config::parse(CLASSES).unwrap(), Vec::new())
}

/// A DISCOVER from client `mac` through the relay at 10.0.0.2 on circuit `circuit`, with `options` set.
fn classed(mac: [u8; 6], circuit: &[u8], options: &[(u8, &[u8])]) -> Message<'static> {
    let mut m = Message::new(Op::BootRequest);
    m.xid = u32::from(mac[5]) + 0x2000;
    m.set_hardware_address(1, &mac);
    m.giaddr = RELAY;
    m.options.set_message_type(MessageType::Discover);
    m.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().circuit_id(circuit).remote_id(b"sw1").build());
    for (c, v) in options {
        m.options.set(*c, v.to_vec());
    }
    m
}

fn mac(n: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, n]
}

fn ntp(r: &Message<'_>) -> Option<Ipv4Addr> {
    r.options.get(42).map(|d| Ipv4Addr::new(d[0], d[1], d[2], d[3]))
}

#[test]
fn a_vendor_class_prefix_puts_phones_in_their_pool_with_the_class_options() {
    let mut e = classes_engine();
    let r = reply(&e.handle(&classed(mac(1), b"p1", &[(60, b"Polycom-VVX-411")]), rx(T0)));
    assert_eq!(r.yiaddr, Ipv4Addr::new(10, 0, 0, 20), "the phones' pool");
    assert_eq!(r.options.get(66), Some(&b"phones.example"[..]), "the class's option");
    assert_eq!(ntp(&r), Some(Ipv4Addr::new(10, 0, 0, 201)), "class over subnet");
    assert_eq!(r.options.get(code::ROUTERS), Some(&[10, 0, 0, 1][..]), "the subnet's, not overridden");
    // A PC (no class) never gets the phones' pool, nor the PXE one: the open pool.
    let r = reply(&e.handle(&classed(mac(2), b"p2", &[(60, b"MSFT 5.0")]), rx(T0)));
    assert_eq!(r.yiaddr, Ipv4Addr::new(10, 0, 0, 10));
    assert_eq!(ntp(&r), Some(Ipv4Addr::new(10, 0, 0, 100)), "pool over subnet");
}

#[test]
fn a_denied_class_never_gets_the_pool_and_an_allow_list_is_exhausted_on_its_own() {
    let mut e = classes_engine();
    let phone = |n: u8| classed(mac(n), b"p", &[(60, b"Polycom")]);
    for n in 1..=2 {
        dora_with(&mut e, phone(n));
    }
    // The phones' pool is full; the open pool denies phones: nothing for a third phone.
    let o = e.handle(&phone(3), rx(T0));
    assert_eq!(o.dropped, Some(DropReason::PoolExhausted));
    // A PC still gets an address.
    assert_eq!(reply(&e.handle(&classed(mac(4), b"p", &[]), rx(T0))).yiaddr, Ipv4Addr::new(10, 0, 0, 10));
}

/// DISCOVER and REQUEST for the offered address: the ACK.
fn dora_with(e: &mut Engine, d: Message<'static>) -> Message<'static> {
    let ip = reply(&e.handle(&d, rx(T0))).yiaddr;
    let mut req = d.clone();
    req.options.set_message_type(MessageType::Request);
    req.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::new(10, 0, 0, 1));
    req.options.set_ip(code::REQUESTED_IP, ip);
    let ack = reply(&e.handle(&req, rx(T0)));
    assert_eq!(ack.message_type(), Some(MessageType::Ack));
    ack
}

#[test]
fn a_pxe_client_gets_siaddr_and_file_from_its_class_and_its_pool() {
    let mut e = classes_engine();
    let r = reply(&e.handle(&classed(mac(1), b"p1", &[(60, b"PXEClient:Arch:00007:UNDI:003016")]), rx(T0)));
    assert_eq!(r.yiaddr, Ipv4Addr::new(10, 0, 0, 30));
    assert_eq!(r.siaddr, Ipv4Addr::new(10, 0, 0, 69));
    assert_eq!(r.file, b"ipxe.efi");
    let ack = dora_with(&mut e, classed(mac(1), b"p1", &[(60, b"PXEClient:Arch:00007")]));
    assert_eq!((ack.siaddr, ack.file), (Ipv4Addr::new(10, 0, 0, 69), &b"ipxe.efi"[..]));
}

/// All-of: the lab class needs both its circuit-id prefix and its relay.
#[test]
fn a_circuit_id_prefix_and_giaddr_class_needs_both() {
    let mut e = classes_engine();
    let r = reply(&e.handle(&classed(mac(1), b"lab-rack-3", &[]), rx(T0)));
    assert_eq!(r.yiaddr, Ipv4Addr::new(10, 0, 0, 30), "circuit lab-* through 10.0.0.2");
    let mut other_relay = classed(mac(2), b"lab-rack-4", &[]);
    other_relay.giaddr = Ipv4Addr::new(10, 0, 0, 3);
    let o =
        e.handle(&other_relay, Received { src: SocketAddrV4::new(other_relay.giaddr, 67), interface: None, now: T0 });
    assert_eq!(reply(&o).yiaddr, Ipv4Addr::new(10, 0, 0, 10), "another relay: not the lab class");
    let r = reply(&e.handle(&classed(mac(3), b"xlab-1", &[]), rx(T0)));
    assert_eq!(r.yiaddr, Ipv4Addr::new(10, 0, 0, 11), "a prefix, not a substring");
}

#[test]
fn user_class_remote_id_and_mac_prefix_classes_add_their_options() {
    let mut e = classes_engine();
    let r = reply(&e.handle(&classed(mac(1), b"p", &[(77, b"kiosk")]), rx(T0)));
    assert_eq!(ntp(&r), Some(Ipv4Addr::new(10, 0, 0, 203)), "user class (option 77)");
    let mut olt = classed(mac(2), b"p", &[]);
    olt.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().circuit_id(b"c").remote_id(b"olt-7").build());
    assert_eq!(reply(&e.handle(&olt, rx(T0))).options.get(15), Some(&b"olt.example"[..]), "remote-id");
    let r = reply(&e.handle(&classed([2, 0, 0, 0xac, 1, 2], b"p", &[]), rx(T0)));
    assert_eq!(ntp(&r), Some(Ipv4Addr::new(10, 0, 0, 204)), "MAC prefix");
    let r = reply(&e.handle(&classed([2, 0, 0, 0xad, 1, 2], b"p", &[]), rx(T0)));
    assert_eq!(ntp(&r), Some(Ipv4Addr::new(10, 0, 0, 100)), "another OUI: the pool's");
}

/// Reservation > class > pool > subnet; where two classes set an option, the first declared wins.
#[test]
fn option_precedence_is_reservation_then_class_then_pool_then_subnet() {
    let mut e = classes_engine();
    // kiosk (declared before acme) and acme both set ntp-servers: kiosk's. domain-name: only acme sets it,
    // over the pool's.
    let r = reply(&e.handle(&classed([2, 0, 0, 0xac, 1, 3], b"p", &[(77, b"kiosk")]), rx(T0)));
    assert_eq!(ntp(&r), Some(Ipv4Addr::new(10, 0, 0, 203)), "first declared class");
    assert_eq!(r.options.get(15), Some(&b"acme.example"[..]), "class over pool");
    // The reserved acme client: its reservation's ntp over acme's; acme's domain-name stays.
    let r = reply(&e.handle(&classed([2, 0, 0, 0xac, 0, 5], b"p", &[]), rx(T0)));
    assert_eq!(r.yiaddr, Ipv4Addr::new(10, 0, 0, 5));
    assert_eq!(ntp(&r), Some(Ipv4Addr::new(10, 0, 0, 205)), "reservation over class");
    assert_eq!(r.options.get(15), Some(&b"acme.example"[..]));
}

/// A client may not take an address of a pool its classes may not use: a PC asking for a phone's address
/// gets a NAK, and a phone whose lease lies in the PCs' pool (its class changed) gets one on renewal.
#[test]
fn a_request_for_a_pool_the_class_may_not_use_is_refused() {
    let mut e = classes_engine();
    let mut req = classed(mac(1), b"p", &[]);
    req.options.set_message_type(MessageType::Request);
    req.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::new(10, 0, 0, 1));
    req.options.set_ip(code::REQUESTED_IP, Ipv4Addr::new(10, 0, 0, 20));
    assert_eq!(reply(&e.handle(&req, rx(T0))).message_type(), Some(MessageType::Nak));
    // Leased as a PC, renewing as a phone.
    let ack = dora_with(&mut e, classed(mac(2), b"p", &[]));
    assert_eq!(ack.yiaddr, Ipv4Addr::new(10, 0, 0, 10));
    let mut renew = classed(mac(2), b"p", &[(60, b"Polycom")]);
    renew.options.set_message_type(MessageType::Request);
    renew.ciaddr = ack.yiaddr;
    assert_eq!(reply(&e.handle(&renew, rx(T0 + 10))).message_type(), Some(MessageType::Nak));
}

/// A renewal unicast to the server (RFC 2131 §4.3.2) carries neither giaddr nor option 82: a client whose
/// pool or options come from a class by relay keeps its lease (no NAK at every T1), gets its class's options
/// (classified by the option 82 stored with the lease), and the stored option 82 stays (LQ-6.4.2-9: the most
/// recent one received *from the relay*).
#[test]
fn lq_6_4_2_9_a_unicast_renewal_keeps_the_relays_option_82_its_pool_and_class_options() {
    let mut e = classes_engine();
    let renew = |m: [u8; 6], ip: Ipv4Addr| {
        let mut r = Message::new(Op::BootRequest);
        r.xid = 0x77;
        r.set_hardware_address(1, &m);
        r.options.set_message_type(MessageType::Request);
        r.ciaddr = ip;
        r
    };
    // "lab" (circuit-id prefix and the relay's giaddr) may use 10.0.0.30–31 only.
    let ack = dora_with(&mut e, classed(mac(3), b"lab-9", &[]));
    assert_eq!(ack.yiaddr, Ipv4Addr::new(10, 0, 0, 30));
    let r = reply(&e.handle(&renew(mac(3), ack.yiaddr), rx(T0 + 300)));
    assert_eq!((r.message_type(), r.yiaddr), (Some(MessageType::Ack), ack.yiaddr));
    let stored = e.leases.get(ack.yiaddr).unwrap().relay_agent().and_then(|r| r.circuit_id().map(<[u8]>::to_vec));
    assert_eq!(stored.as_deref(), Some(&b"lab-9"[..]), "the relay's option 82 is kept");
    // "olt" (remote-id) adds domain-name: the renewal gets it too.
    let mut olt = classed(mac(4), b"p4", &[]);
    olt.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().circuit_id(b"p4").remote_id(b"olt-7").build());
    let ack = dora_with(&mut e, olt);
    assert_eq!(ack.options.get(code::DOMAIN_NAME), Some(&b"olt.example"[..]));
    let r = reply(&e.handle(&renew(mac(4), ack.yiaddr), rx(T0 + 300)));
    assert_eq!(r.message_type(), Some(MessageType::Ack));
    assert_eq!(r.options.get(code::DOMAIN_NAME), Some(&b"olt.example"[..]), "the class's options at renewal");
}

/// A reload changes classes like anything else: a class added later puts its clients in its pool.
#[test]
fn a_reload_picks_up_classes() {
    let without = CLASSES.replace("vendor-class-prefix = \"Polycom\"", "vendor-class-prefix = \"Nothing\"");
    let mut e = Engine::new(&Config::parse(&without).unwrap(), Vec::new());
    let phone = classed(mac(1), b"p", &[(60, b"Polycom")]);
    assert_eq!(reply(&e.handle(&phone, rx(T0))).yiaddr, Ipv4Addr::new(10, 0, 0, 10));
    e.reconfigure(&Config::parse(CLASSES).unwrap());
    assert_eq!(reply(&e.handle(&phone, rx(T0 + 1))).yiaddr, Ipv4Addr::new(10, 0, 0, 20));
}

// ---- Shared networks (issue #20 item 1) --------------------------------------------------------------------

/// Two subnets on one link ("campus"): the relay's giaddr lies in the first, whose pool is one address; the
/// second has its own options, lease time and a reservation. A third subnet is on another link.
const SHARED: &str = test_config!(
    r#"
[[subnet]]
subnet = "10.0.0.0/24"
shared-network = "campus"
pools = [{ start = "10.0.0.100", end = "10.0.0.100" }]
lease-time = 600
options = { routers = ["10.0.0.1"] }

[[subnet]]
subnet = "10.1.0.0/23"
shared-network = "campus"
pools = [{ start = "10.1.0.10", end = "10.1.0.11" }]
lease-time = 900
options = { routers = ["10.1.0.1"] }
[[subnet.reservation]]
ip = "10.1.0.5"
hw-address = "02:00:00:00:00:07"
options = { routers = ["10.1.0.254"] }

[[subnet]]
subnet = "10.9.0.0/24"
pools = [{ start = "10.9.0.10", end = "10.9.0.20" }]
"#
);

fn shared_engine() -> Engine {
    Engine::new(&Config::parse(SHARED).unwrap(), Vec::new())
}

#[test]
fn a_shared_network_falls_through_to_its_next_subnet_with_that_subnets_options() {
    let mut e = shared_engine();
    assert_eq!(dora(&mut e, 1, T0), Ipv4Addr::new(10, 0, 0, 100), "the first subnet first");
    let (ip, req) = offered(&mut e, 2, T0);
    assert_eq!(ip, Ipv4Addr::new(10, 1, 0, 10), "then the next subnet of the network");
    let ack = e.handle(&req, rx(T0));
    let r = reply(&ack);
    assert_eq!(r.message_type(), Some(MessageType::Ack));
    assert_eq!(r.options.get(code::ROUTERS), Some(&[10, 1, 0, 1][..]), "the address's subnet's options");
    assert_eq!(r.options.get(code::SUBNET_MASK), Some(&[255, 255, 254, 0][..]));
    assert_eq!(r.options.lease_time(), Some(900));
    assert_eq!(ack.commit[0].expires_at, Some(T0 + 900));
    assert_eq!(dora(&mut e, 3, T0), Ipv4Addr::new(10, 1, 0, 11));
    let o = e.handle(&msg(MessageType::Discover, 4), rx(T0));
    assert_eq!(o.dropped, Some(DropReason::PoolExhausted), "never another link's subnet (10.9.0.0/24)");
}

#[test]
fn a_relay_in_any_subnet_of_the_network_selects_the_whole_network() {
    let mut e = shared_engine();
    let mut d = msg(MessageType::Discover, 1);
    d.giaddr = Ipv4Addr::new(10, 1, 0, 1);
    let r = reply(&e.handle(&d, Received { src: SocketAddrV4::new(d.giaddr, 67), interface: None, now: T0 }));
    assert_eq!(r.yiaddr, Ipv4Addr::new(10, 0, 0, 100), "allocation in configuration order whatever the relay");
    // A reservation in the second subnet is found through a relay in the first.
    assert_eq!(reply(&e.handle(&msg(MessageType::Discover, 7), rx(T0))).yiaddr, Ipv4Addr::new(10, 1, 0, 5));
}

#[test]
fn a_client_keeps_its_address_in_any_subnet_of_the_network() {
    let mut e = shared_engine();
    dora(&mut e, 1, T0);
    let ip = dora(&mut e, 2, T0);
    assert_eq!(ip, Ipv4Addr::new(10, 1, 0, 10));
    // RENEWING through the relay in the first subnet.
    let o = renew(&mut e, 2, ip, T0 + 300);
    let r = reply(&o);
    assert_eq!((r.message_type(), r.yiaddr), (Some(MessageType::Ack), ip));
    assert_eq!(r.options.lease_time(), Some(900));
    // INIT-REBOOT (requested address, no server id) through the same relay.
    let mut reboot = msg(MessageType::Request, 2);
    reboot.options.set_ip(code::REQUESTED_IP, ip);
    assert_eq!(reply(&e.handle(&reboot, rx(T0 + 400))).message_type(), Some(MessageType::Ack));
    // An address of another link is not on this network.
    let mut elsewhere = msg(MessageType::Request, 2);
    elsewhere.options.set_ip(code::REQUESTED_IP, Ipv4Addr::new(10, 9, 0, 10));
    assert_eq!(reply(&e.handle(&elsewhere, rx(T0 + 400))).message_type(), Some(MessageType::Nak));
    // A DISCOVER from the client finds its binding in the second subnet.
    assert_eq!(reply(&e.handle(&msg(MessageType::Discover, 2), rx(T0 + 500))).yiaddr, ip);
}

// ---- Option overload (RFC 2132 §9.3, option 52) -----------------------------------------------------------

/// A reply too big for the client's maximum message size (option 57; 576 when absent, RFC 2132 §9.10): the
/// options spill into `file`, or into `sname` when `file` holds the boot file name; a client that allows
/// more gets them all in the options field.
#[test]
fn a_reply_that_overflows_the_clients_limit_uses_option_overload() {
    let big = format!("\"224\" = \"hex:{}\"\n\"225\" = \"{}\"\n", "ab".repeat(200), "t".repeat(60));
    let text = |boot_file: &str| CONFIG.replace("dns-servers = [\"10.0.0.53\"]", &format!("{big}{boot_file}"));
    let offer = |text: &str, max: Option<u16>| {
        let mut e = Engine::new(&Config::parse(text).unwrap(), Vec::new());
        let mut d = msg(MessageType::Discover, 1);
        d.options.set(code::PARAMETER_REQUEST_LIST, vec![1, 3, 224, 225]);
        if let Some(m) = max {
            d.options.set(code::MAX_MESSAGE_SIZE, m.to_be_bytes().to_vec());
        }
        e.handle(&d, rx(T0)).reply.unwrap().0
    };
    fn check(bytes: &[u8], limit: usize, overload: Option<u8>) -> Message<'_> {
        assert!(bytes.len() <= limit, "{} octets over {limit}", bytes.len());
        match overload {
            Some(v) => assert_eq!(bytes[240..243], [52, 1, v], "option 52 first, value {v}"),
            None => assert_ne!(bytes[240], 52),
        }
        let r = Message::decode(bytes).unwrap();
        assert_eq!(r.options.get(224), Some(&[0xab; 200][..]));
        assert_eq!(r.options.get(225), Some(&[b't'; 60][..]));
        assert_eq!(r.options.get(code::ROUTERS), Some(&[10, 0, 0, 1][..]));
        r
    }
    // 576 by default, less the IP and UDP headers: the options spill into file.
    check(&offer(&text(""), None), 548, Some(1));
    check(&offer(&text(""), Some(576)), 548, Some(1));
    // The boot file keeps `file`: sname takes the rest.
    let with_boot_file = offer(&text("boot-file = \"ipxe.efi\"\n"), None);
    assert_eq!(check(&with_boot_file, 548, Some(2)).file, b"ipxe.efi");
    // A client that takes 1500 octets gets everything in the options field.
    check(&offer(&text(""), Some(1500)), 1472, None);
}

/// On a shared network each subnet keeps its own entry for a client: its current lease is the one the
/// server finds, not a released one in an earlier subnet (RFC 2131 §4.3.2: INIT-REBOOT with a valid lease
/// gets an ACK).
#[test]
fn a_shared_network_finds_the_clients_current_lease_not_an_older_one() {
    let mut e = shared_engine();
    let first = dora(&mut e, 1, T0);
    assert_eq!(first, Ipv4Addr::new(10, 0, 0, 100));
    let mut r = msg(MessageType::Release, 1);
    r.ciaddr = first;
    e.handle(&r, rx(T0 + 1));
    // Another client is offered the released address, so the first one's next lease is in the next subnet.
    assert_eq!(offered(&mut e, 2, T0 + 2).0, first);
    let current = dora(&mut e, 1, T0 + 3);
    assert_eq!(current, Ipv4Addr::new(10, 1, 0, 10));
    // The offer lapses; the client reboots asking for its current lease.
    let later = T0 + 3600;
    let mut reboot = msg(MessageType::Request, 1);
    reboot.options.set_ip(code::REQUESTED_IP, current);
    let ack = reply(&e.handle(&reboot, rx(later)));
    assert_eq!((ack.message_type(), ack.yiaddr), (Some(MessageType::Ack), current));
    assert_eq!(reply(&e.handle(&msg(MessageType::Discover, 1), rx(later + 1))).yiaddr, current);
    // After a restart (a fresh engine loaded from the bindings) too.
    let bindings = [first, current].map(|ip| e.binding(ip).unwrap()).to_vec();
    let mut reloaded = Engine::new(&Config::parse(SHARED).unwrap(), bindings);
    assert_eq!(reply(&reloaded.handle(&msg(MessageType::Discover, 1), rx(later + 2))).yiaddr, current);
}

/// A reservation's options belong to its subnet: a reserved client whose address another holds gets an
/// address in another subnet of the network with that subnet's options.
#[test]
fn a_reservations_options_stay_in_its_subnet() {
    let mut e = shared_engine();
    let ack = dora_with(&mut e, msg(MessageType::Discover, 7));
    assert_eq!(ack.yiaddr, Ipv4Addr::new(10, 1, 0, 5));
    assert_eq!(ack.options.get(code::ROUTERS), Some(&[10, 1, 0, 254][..]), "its reservation's options");
    let mut held = e.binding(ack.yiaddr).unwrap();
    held.hardware_address = vec![2, 0, 0, 0, 0, 8];
    let mut e = Engine::new(&Config::parse(SHARED).unwrap(), vec![held]);
    let ack = dora_with(&mut e, msg(MessageType::Discover, 7));
    assert_eq!(ack.yiaddr, Ipv4Addr::new(10, 0, 0, 100));
    assert_eq!(ack.options.get(code::ROUTERS), Some(&[10, 0, 0, 1][..]), "the given address's subnet's options");
}
