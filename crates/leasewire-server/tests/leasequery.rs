//! RFC 4388 / RFC 6148 server requirements, by ID, through the responder and a real SQLite store.

use leasewire_proto::options::code;
use leasewire_proto::{DhcpState, Message, MessageType, Op, RelayAgentInfoBuilder};
use leasewire_server::config::Config;
use leasewire_server::udp::leasequery::{Answer, LqDrop, Responder};
use leasewire_store::{Binding, LeaseStore, OpenOptions, SqliteStore};
use std::net::{Ipv4Addr, SocketAddrV4};

const T: u32 = 1_800_000_000;
const REQUESTOR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC2: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn config(extra: &str) -> String {
    format!(
        r#"
[server]
server-id = "10.0.0.1"
data-dir = "/nonexistent"
[leasequery]
allow = ["10.0.0.0/24", "192.168.5.5"]
disclose = [12]
rate-limit = 0
{extra}
[[subnet]]
subnet = "10.0.0.0/24"
pools = [{{ start = "10.0.0.100", end = "10.0.0.199" }}]
lease-time = 600
[[subnet.reservation]]
ip = "10.0.0.5"
hw-address = "02:00:00:00:00:05"
name = "printer"
"#
    )
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    lq: Responder,
}

fn active(ip: [u8; 4], mac: [u8; 6], cltt: u32) -> Binding {
    let mut b = Binding::new(Ipv4Addr::from(ip), DhcpState::Active, cltt);
    b.htype = 1;
    b.hardware_address = mac.to_vec();
    b.client_id = Some([&[1u8][..], &mac].concat());
    b.cltt = Some(cltt);
    b.expires_at = Some(cltt + 600);
    b.relay_agent_info = Some(RelayAgentInfoBuilder::new().circuit_id(b"port1").remote_id(b"sw1").build());
    b.options = vec![(code::HOST_NAME, b"laptop".to_vec()), (code::VENDOR_CLASS, b"MSFT 5.0".to_vec())];
    b
}

fn fixture(extra: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("l.db"), OpenOptions::new(T - 1000)).unwrap();
    let mut released = active([10, 0, 0, 102], MAC2, T - 100);
    released.state = DhcpState::Released;
    released.expires_at = None;
    store
        .commit(T - 5, vec![active([10, 0, 0, 100], MAC1, T - 30), active([10, 0, 0, 101], MAC1, T - 10), released])
        .wait()
        .unwrap();
    let lq = Responder::new(&Config::parse(&config(extra)).unwrap());
    Fixture { _dir: dir, store, lq }
}

fn query(prl: Option<&[u8]>) -> Message<'static> {
    let mut q = Message::new(Op::BootRequest);
    q.xid = 0xabcd;
    q.giaddr = REQUESTOR;
    q.options.set_message_type(MessageType::LeaseQuery);
    if let Some(p) = prl {
        q.options.set(code::PARAMETER_REQUEST_LIST, p.to_vec());
    }
    q
}

fn by_ip(ip: [u8; 4], prl: Option<&[u8]>) -> Message<'static> {
    let mut q = query(prl);
    q.ciaddr = Ipv4Addr::from(ip);
    q
}

const ALL: &[u8] = &[51, 58, 59, 91, 61, 82, 12, 60, 92];

impl Fixture {
    fn ask(&self, q: &Message<'_>) -> Result<Answer, LqDrop> {
        self.lq.answer(q, SocketAddrV4::new(REQUESTOR, 67), &self.store, T)
    }

    fn reply(&self, q: &Message<'_>) -> Message<'static> {
        let a = self.ask(q).expect("an answer");
        assert_eq!(a.to, SocketAddrV4::new(q.giaddr, 67), "LQ-6.4.3-1: unicast to giaddr");
        let bytes: &'static [u8] = Box::leak(a.bytes.into_boxed_slice());
        let m = Message::decode(bytes).unwrap();
        assert_eq!((m.op, m.xid, m.message_type()), (Op::BootReply, q.xid, Some(a.kind)));
        m
    }
}

fn codes(m: &Message<'_>) -> Vec<u8> {
    m.options.iter().map(|o| o.code).collect()
}

#[test]
fn lq_6_4_3_2_no_reply_without_giaddr() {
    let f = fixture("");
    let mut q = by_ip([10, 0, 0, 100], None);
    q.giaddr = Ipv4Addr::UNSPECIFIED;
    assert_eq!(f.ask(&q).unwrap_err(), LqDrop::NoGiaddr);
}

#[test]
fn lq_7_5_only_configured_requestors_and_reply_addresses() {
    let f = fixture("");
    let q = by_ip([10, 0, 0, 100], None);
    assert_eq!(
        f.lq.answer(&q, SocketAddrV4::new(Ipv4Addr::new(172, 16, 0, 1), 67), &f.store, T).unwrap_err(),
        LqDrop::NotAllowed
    );
    // A spoofed giaddr outside the list would turn us into a reflector.
    let mut q2 = q.clone();
    q2.giaddr = Ipv4Addr::new(172, 16, 0, 1);
    assert_eq!(f.ask(&q2).unwrap_err(), LqDrop::NotAllowed);
    // A single address in the list works.
    let mut q3 = q.clone();
    q3.giaddr = Ipv4Addr::new(192, 168, 5, 5);
    assert!(f.lq.answer(&q3, SocketAddrV4::new(Ipv4Addr::new(192, 168, 5, 5), 67), &f.store, T).is_ok());
}

#[test]
fn lq_5_4_silent_when_leasequery_is_not_configured() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("l.db"), OpenOptions::new(T)).unwrap();
    let text = config("").replace("allow = [\"10.0.0.0/24\", \"192.168.5.5\"]", "");
    let lq = Responder::new(&Config::parse(&text).unwrap());
    assert_eq!(
        lq.answer(&by_ip([10, 0, 0, 100], None), SocketAddrV4::new(REQUESTOR, 67), &store, T).unwrap_err(),
        LqDrop::Disabled
    );
}

#[test]
fn lq_6_3_2_exactly_one_key() {
    let f = fixture("");
    assert_eq!(f.ask(&query(None)).unwrap_err(), LqDrop::NoKey);
    let mut q = by_ip([10, 0, 0, 100], None);
    q.set_hardware_address(1, &MAC1);
    assert_eq!(f.ask(&q).unwrap_err(), LqDrop::SeveralKeys);
    let mut q = by_ip([10, 0, 0, 100], None);
    q.options.set(code::CLIENT_IDENTIFIER, vec![1, 2]);
    assert_eq!(f.ask(&q).unwrap_err(), LqDrop::SeveralKeys);
}

#[test]
fn lqr_5_1_option_82_with_another_key_is_that_kind_of_query() {
    let f = fixture("");
    let mut q = by_ip([10, 0, 0, 100], None);
    q.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().remote_id(b"other").build());
    assert_eq!(f.reply(&q).ciaddr, Ipv4Addr::new(10, 0, 0, 100));
}

#[test]
fn lq_6_4_3_query_by_ip_of_a_leased_address_is_active() {
    let f = fixture("");
    let r = f.reply(&by_ip([10, 0, 0, 100], Some(ALL)));
    assert_eq!(r.message_type(), Some(MessageType::LeaseActive));
    assert_eq!(r.ciaddr, Ipv4Addr::new(10, 0, 0, 100), "LQ-6.4.1-1");
    assert_eq!((r.htype, r.hardware_address()), (1, &MAC1[..]), "LQ-6.4.2-4: the owner's MAC");
    assert_eq!(r.options.server_identifier(), Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(r.options.lease_time(), Some(570), "LQ-6.4.2-7: seconds remaining");
    assert_eq!(r.options.get_u32(code::RENEWAL_TIME), Some(270), "LQ-6.4.2-8");
    assert_eq!(r.options.get_u32(code::REBINDING_TIME), Some(495));
    assert_eq!(r.options.client_last_transaction_time(), Some(30), "LQ-6.1-2: seconds in the past");
    assert_eq!(r.options.client_identifier(), Some(&[1, 2, 0, 0, 0, 0, 1][..]), "LQ-6.4.2-5");
    assert_eq!(r.options.relay_agent_info().unwrap().circuit_id(), Some(&b"port1"[..]), "LQ-6.4.2-9");
    assert!(!r.options.contains(code::ASSOCIATED_IP), "no 92 for a query by IP");
}

/// LQ-6.4.2-10: requested options on the non-sensitive list are returned.
#[test]
fn lq_6_4_2_11_only_non_sensitive_stored_options() {
    let f = fixture("");
    let r = f.reply(&by_ip([10, 0, 0, 100], Some(ALL)));
    assert_eq!(r.options.get(code::HOST_NAME), Some(&b"laptop"[..]), "12 is on the disclose list");
    assert!(!r.options.contains(code::VENDOR_CLASS), "60 is not");
    let f = fixture("withhold = [82, 91]");
    let r = f.reply(&by_ip([10, 0, 0, 100], Some(ALL)));
    assert!(!r.options.contains(code::RELAY_AGENT_INFO) && !r.options.contains(91), "withheld");
}

#[test]
fn lq_6_4_2_9_options_follow_the_parameter_request_list() {
    let f = fixture("");
    let r = f.reply(&by_ip([10, 0, 0, 100], Some(&[51])));
    assert_eq!(codes(&r), vec![53, 54, 51]);
    // LQ-6.2-5: without a list, what a DHCPREQUEST would get, plus the leasequery essentials.
    let r = f.reply(&by_ip([10, 0, 0, 100], None));
    assert_eq!(codes(&r), vec![53, 54, 51, 58, 59, 91, 61, 82]);
}

/// LQ-6.4.2-3: UNASSIGNED only about an address this server is responsible for.
/// LQ-5-9: UNASSIGNED carries the address asked about in ciaddr.
#[test]
fn lq_6_4_1_unassigned_for_managed_and_unknown_for_the_rest() {
    let f = fixture("");
    // Released: managed, not leased.
    let r = f.reply(&by_ip([10, 0, 0, 102], Some(ALL)));
    assert_eq!(r.message_type(), Some(MessageType::LeaseUnassigned));
    assert_eq!(r.ciaddr, Ipv4Addr::new(10, 0, 0, 102));
    assert_eq!(codes(&r), vec![53], "RFC 4388 §6.4.2: no other options, not even 54 (no 51 either, LQ-6.4.2-7)");
    // In a pool, never leased.
    assert_eq!(f.reply(&by_ip([10, 0, 0, 150], Some(ALL))).message_type(), Some(MessageType::LeaseUnassigned));
    // A reservation is managed too.
    assert_eq!(f.reply(&by_ip([10, 0, 0, 5], Some(ALL))).message_type(), Some(MessageType::LeaseUnassigned));
    // Outside the pools, and outside every subnet: unknown, with no other option (LQ-6.4-2).
    for ip in [[10, 0, 0, 50], [192, 0, 2, 1]] {
        let r = f.reply(&by_ip(ip, Some(ALL)));
        assert_eq!(r.message_type(), Some(MessageType::LeaseUnknown));
        assert_eq!(codes(&r), vec![53]);
    }
}

/// LQ-6.2-3: giaddr chooses no pool and restricts nothing.
#[test]
fn lq_6_3_4_giaddr_does_not_restrict_the_query() {
    let f = fixture("");
    let mut q = by_ip([10, 0, 0, 100], None);
    q.giaddr = Ipv4Addr::new(192, 168, 5, 5);
    let a = f.lq.answer(&q, SocketAddrV4::new(Ipv4Addr::new(192, 168, 5, 5), 67), &f.store, T).unwrap();
    assert_eq!(a.kind, MessageType::LeaseActive);
}

/// LQ-6.4.1-4, LQ-6.4.1-7: the address of the client's most recent use; no address for the client: UNKNOWN.
#[test]
fn lq_6_4_1_6_query_by_mac_picks_the_latest_transaction_and_lists_the_others() {
    let f = fixture("");
    let mut q = query(Some(ALL));
    q.set_hardware_address(1, &MAC1);
    let r = f.reply(&q);
    assert_eq!(r.message_type(), Some(MessageType::LeaseActive));
    assert_eq!(r.ciaddr, Ipv4Addr::new(10, 0, 0, 101), "LQ-5-2: latest client-last-transaction-time");
    assert_eq!(r.options.associated_ips().collect::<Vec<_>>(), vec![Ipv4Addr::new(10, 0, 0, 100)], "LQ-6.4.2-6");
    // LQ-5-7: a MAC without an active lease is unknown.
    let mut q = query(Some(ALL));
    q.set_hardware_address(1, &MAC2);
    assert_eq!(f.reply(&q).message_type(), Some(MessageType::LeaseUnknown));
    // LQ-6.4.2-6 "whether requested or not".
    let mut q = query(Some(&[51]));
    q.set_hardware_address(1, &MAC1);
    assert!(f.reply(&q).options.contains(code::ASSOCIATED_IP));
}

/// LQ-6.4.1-5: a client with exactly one active binding: that address in ciaddr, and no associated-ip.
#[test]
fn lq_6_4_1_5_exactly_one_binding_is_the_answer() {
    let f = fixture("");
    const MAC3: [u8; 6] = [2, 0, 0, 0, 0, 3];
    f.store.commit(T - 4, vec![active([10, 0, 0, 104], MAC3, T - 20)]).wait().unwrap();
    let mut q = query(Some(ALL));
    q.set_hardware_address(1, &MAC3);
    let r = f.reply(&q);
    assert_eq!((r.message_type(), r.ciaddr), (Some(MessageType::LeaseActive), Ipv4Addr::new(10, 0, 0, 104)));
    assert!(!r.options.contains(code::ASSOCIATED_IP));
}

/// LQ-6.3-3: the answer is about the client the query's key names.
#[test]
fn lq_6_3_1_query_by_client_identifier() {
    let f = fixture("");
    let mut q = query(Some(ALL));
    q.options.set(code::CLIENT_IDENTIFIER, vec![1, 2, 0, 0, 0, 0, 1]);
    let r = f.reply(&q);
    assert_eq!((r.message_type(), r.ciaddr), (Some(MessageType::LeaseActive), Ipv4Addr::new(10, 0, 0, 101)));
    let mut q = query(Some(ALL));
    q.options.set(code::CLIENT_IDENTIFIER, vec![1, 9, 9]);
    assert_eq!(codes(&f.reply(&q)), vec![53]);
}

/// LQR-4-1: a remote-id with an active lease gets DHCPLEASEACTIVE.
#[test]
fn lqr_4_query_by_remote_id() {
    let f = fixture("");
    let mut q = query(Some(ALL));
    q.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().remote_id(b"sw1").build());
    let r = f.reply(&q);
    assert_eq!(
        (r.message_type(), r.ciaddr),
        (Some(MessageType::LeaseActive), Ipv4Addr::new(10, 0, 0, 101)),
        "LQR-4.4-1"
    );
    // LQR-4.3-1: every other address that came with that remote-id (the released one too).
    let mut assoc: Vec<Ipv4Addr> = r.options.associated_ips().collect();
    assoc.sort();
    assert_eq!(assoc, vec![Ipv4Addr::new(10, 0, 0, 100), Ipv4Addr::new(10, 0, 0, 102)]);
    // LQR-4.3-2: UNKNOWN echoes the option 82 and nothing else.
    let mut q = query(Some(ALL));
    let rai = RelayAgentInfoBuilder::new().remote_id(b"nobody").build();
    q.options.set(code::RELAY_AGENT_INFO, rai.clone());
    let r = f.reply(&q);
    assert_eq!(r.message_type(), Some(MessageType::LeaseUnknown));
    assert_eq!(codes(&r), vec![53, 82]);
    assert_eq!(r.options.get(code::RELAY_AGENT_INFO), Some(&rai[..]));
}

#[test]
fn lq_3_1_a_query_changes_nothing() {
    let f = fixture("");
    let before = (f.store.last_seq().unwrap(), f.store.get(Ipv4Addr::new(10, 0, 0, 100)).unwrap());
    for ip in [[10, 0, 0, 100], [10, 0, 0, 150], [192, 0, 2, 1]] {
        f.reply(&by_ip(ip, Some(ALL)));
    }
    assert_eq!(before, (f.store.last_seq().unwrap(), f.store.get(Ipv4Addr::new(10, 0, 0, 100)).unwrap()));
}

#[test]
fn lq_7_4_per_requestor_rate_limit() {
    let text = config("").replace("rate-limit = 0", "rate-limit = 5");
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("l.db"), OpenOptions::new(T)).unwrap();
    let lq = Responder::new(&Config::parse(&text).unwrap());
    let q = by_ip([10, 0, 0, 100], None);
    let results: Vec<bool> =
        (0..20).map(|_| lq.answer(&q, SocketAddrV4::new(REQUESTOR, 67), &store, T).is_ok()).collect();
    let answered = results.iter().filter(|ok| **ok).count();
    assert!((10..=11).contains(&answered), "burst of twice the rate, then dropped: {answered}");
    // Another requestor has its own bucket.
    let mut q2 = q.clone();
    q2.giaddr = Ipv4Addr::new(10, 0, 0, 3);
    assert!(lq.answer(&q2, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 67), &store, T).is_ok());
}

#[test]
fn alq_8_2_4_reserved_addresses_can_answer_as_leased() {
    let f = fixture("reserved-as-leased = true");
    let r = f.reply(&by_ip([10, 0, 0, 5], Some(ALL)));
    assert_eq!(r.message_type(), Some(MessageType::LeaseActive));
    assert_eq!(r.hardware_address(), &[2, 0, 0, 0, 0, 5]);
    assert!(!r.options.contains(code::LEASE_TIME), "no lease, so no lease time");
}

#[test]
fn rfc8357_source_port_reply_for_requestors_without_port_67() {
    let f = fixture("");
    let mut q = by_ip([10, 0, 0, 100], None);
    q.options.set(code::RELAY_AGENT_INFO, RelayAgentInfoBuilder::new().relay_source_port().build());
    let a = f.lq.answer(&q, SocketAddrV4::new(REQUESTOR, 40000), &f.store, T).unwrap();
    assert_eq!(a.to, SocketAddrV4::new(REQUESTOR, 40000));
}

#[test]
fn expired_lease_not_yet_reclaimed_is_not_reported_as_leased() {
    let f = fixture("");
    let a =
        f.lq.answer(&by_ip([10, 0, 0, 100], Some(ALL)), SocketAddrV4::new(REQUESTOR, 67), &f.store, T + 1000).unwrap();
    assert_eq!(a.kind, MessageType::LeaseUnassigned);
}

/// LQ-6.4.1-6: by default the binding of the most recent transaction, even when an older one belongs to the
/// client identified by the MAC itself; `mac-query-prefers = "mac-identified"` (ISC dhcpd's answer) picks
/// that one instead.
#[test]
fn lq_6_4_1_6_mac_query_prefers_the_most_recent_unless_configured_otherwise() {
    for (setting, expected) in [
        ("", [10, 0, 0, 101]),
        ("mac-query-prefers = \"most-recent\"", [10, 0, 0, 101]),
        ("mac-query-prefers = \"mac-identified\"", [10, 0, 0, 103]),
    ] {
        let f = fixture(setting);
        // An older lease for a client with no client-id (so identified by MAC1, RFC 2131 §4.2).
        let mut b = active([10, 0, 0, 103], MAC1, T - 200);
        b.client_id = None;
        f.store.commit(T - 4, vec![b]).wait().unwrap();
        let mut q = query(Some(ALL));
        q.set_hardware_address(1, &MAC1);
        let r = f.reply(&q);
        assert_eq!(r.ciaddr, Ipv4Addr::from(expected), "{setting:?}");
        assert_eq!(r.options.associated_ips().count(), 2);
    }
}

#[test]
fn lq_6_4_2_11_per_requestor_withheld_options() {
    let f = fixture(
        "[[leasequery.requestor]]\nprefix = \"10.0.0.0/30\"\nwithhold = [82, 12]\n[[leasequery.requestor]]\nprefix = \"10.0.0.0/24\"\nwithhold = [91]\n",
    );
    // 10.0.0.2 is in the /30: the most specific rule applies (82 and 12 withheld, 91 disclosed).
    let r = f.reply(&by_ip([10, 0, 0, 100], Some(ALL)));
    assert!(!r.options.contains(code::RELAY_AGENT_INFO) && !r.options.contains(code::HOST_NAME));
    assert!(r.options.contains(code::CLIENT_LAST_TRANSACTION_TIME));
    // 10.0.0.9 is only in the /24.
    let mut q = by_ip([10, 0, 0, 100], Some(ALL));
    q.giaddr = Ipv4Addr::new(10, 0, 0, 9);
    let a = f.lq.answer(&q, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 67), &f.store, T).unwrap();
    let r = Message::decode(&a.bytes).unwrap();
    assert!(r.options.contains(code::RELAY_AGENT_INFO));
    assert!(!r.options.contains(code::CLIENT_LAST_TRANSACTION_TIME));
}

#[test]
fn lq_6_4_2_8_t1_t2_come_from_the_binding_not_from_todays_subnet_settings() {
    let f = fixture("");
    // Given with T1 100 s and T2 200 s by its ACK 30 s ago (a configuration since reloaded to lease-time 600).
    let mut b = active([10, 0, 0, 150], MAC2, T - 30);
    b.options.insert(1, (code::RENEWAL_TIME, 100u32.to_be_bytes().to_vec()));
    b.options.insert(2, (code::REBINDING_TIME, 200u32.to_be_bytes().to_vec()));
    // A lease whose subnet a reload removed: still answerable until it ends.
    let mut gone = active([10, 7, 0, 9], MAC1, T - 30);
    gone.options.insert(1, (code::RENEWAL_TIME, 100u32.to_be_bytes().to_vec()));
    f.store.commit(T - 1, vec![b, gone]).wait().unwrap();
    let r = f.reply(&by_ip([10, 0, 0, 150], Some(ALL)));
    assert_eq!(r.options.get_u32(code::RENEWAL_TIME), Some(70));
    assert_eq!(r.options.get_u32(code::REBINDING_TIME), Some(170));
    assert_eq!(r.options.lease_time(), Some(570));
    let r = f.reply(&by_ip([10, 7, 0, 9], Some(ALL)));
    assert_eq!(r.message_type(), Some(MessageType::LeaseActive), "a lease outside every subnet is answered");
    assert_eq!(r.options.get_u32(code::RENEWAL_TIME), Some(70));
}

/// LQ-6.1-3: associated-ip is option 92, its length a non-zero multiple of 4, one address per 4 octets; a
/// list whose length is not a multiple of 4 does not decode (the requestor refuses it).
#[test]
fn lq_6_1_3_associated_ip_is_a_whole_number_of_addresses() {
    let f = fixture("");
    f.store.commit(T - 4, vec![active([10, 0, 0, 103], MAC1, T - 20)]).wait().unwrap();
    let mut q = query(Some(ALL));
    q.set_hardware_address(1, &MAC1);
    let a = f.ask(&q).expect("an answer");
    // Walk the raw options: option 92 with 8 octets, the two other bindings of MAC1.
    let raw = &a.bytes[240..];
    let mut i = 0;
    let mut found = None;
    while i < raw.len() && raw[i] != 255 {
        if raw[i] == 0 {
            i += 1;
            continue;
        }
        let (c, n) = (raw[i], raw[i + 1] as usize);
        if c == code::ASSOCIATED_IP {
            found = Some(raw[i + 2..i + 2 + n].to_vec());
        }
        i += 2 + n;
    }
    let value = found.expect("option 92");
    assert_eq!(value.len(), 8);
    let mut ips: Vec<&[u8]> = value.chunks(4).collect();
    ips.sort();
    assert_eq!(ips, [[10, 0, 0, 100], [10, 0, 0, 103]]);
    // Six octets are no list of addresses: the message is refused as a whole.
    let mut bad = a.bytes.clone();
    let at = 240 + raw.windows(2).position(|w| w == [code::ASSOCIATED_IP, 8]).unwrap();
    bad[at + 1] = 6;
    bad.remove(at + 2 + 6);
    bad.remove(at + 2 + 6);
    assert!(Message::decode(&bad).is_err(), "LQ-6.1-3: length 6 is refused");
}

/// HMAC-MD5 by Python's `hmac` module: an implementation independent of the server's.
fn python_hmac_md5(key: &[u8], data: &[u8]) -> Vec<u8> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import hmac, hashlib, sys; print(hmac.new(bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2]), hashlib.md5).hexdigest())",
            &hex(key),
            &hex(data),
        ])
        .output()
        .expect("python3");
    let s = String::from_utf8(out.stdout).unwrap();
    (0..16).map(|i| u8::from_str_radix(&s.trim()[2 * i..2 * i + 2], 16).unwrap()).collect()
}

/// LQ-7-2: RFC 3118 delayed authentication. A DHCPLEASEQUERY that asks for it (option 90, protocol 1, no
/// authentication information: DHCPDISCOVER's form) gets each of the three replies with option 90 carrying the
/// configured key ID, an increasing replay counter and an HMAC-MD5 over the message (hops, giaddr and the HMAC
/// zero) that an independent implementation keyed with the shared secret reproduces. Queries that do not ask,
/// and servers without a secret, send none.
#[test]
fn lq_7_2_replies_carry_rfc_3118_delayed_authentication_when_asked() {
    let secret = b"lq-shared-secret";
    let f = fixture("auth-key-id = 5\nauth-secret = \"6c712d7368617265642d736563726574\"");
    let ask = |q: &mut Message<'static>| q.options.set(code::AUTHENTICATION, vec![1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let mut queries = [by_ip([10, 0, 0, 100], Some(ALL)), by_ip([10, 0, 0, 150], None), by_ip([192, 168, 9, 9], None)];
    let mut counters = Vec::new();
    for (q, kind) in
        queries.iter_mut().zip([MessageType::LeaseActive, MessageType::LeaseUnassigned, MessageType::LeaseUnknown])
    {
        ask(q);
        let a = f.ask(q).expect("an answer");
        assert_eq!(a.kind, kind);
        let m = Message::decode(&a.bytes).unwrap();
        let v = m.options.get(code::AUTHENTICATION).expect("option 90").to_vec();
        assert_eq!(v.len(), 31);
        assert_eq!(&v[..3], &[1, 1, 0], "delayed authentication, HMAC-MD5, counter");
        assert_eq!(u32::from_be_bytes(v[11..15].try_into().unwrap()), 5, "the key ID");
        counters.push(u64::from_be_bytes(v[3..11].try_into().unwrap()));
        // The HMAC, computed independently over the message as RFC 3118 §5.5 has it.
        let at = 240 + a.bytes[240..].windows(2).position(|w| w == [code::AUTHENTICATION, 31]).unwrap() + 2 + 15;
        let mut zeroed = a.bytes.clone();
        zeroed[3] = 0;
        zeroed[24..28].fill(0);
        zeroed[at..at + 16].fill(0);
        assert_eq!(&a.bytes[at..at + 16], &python_hmac_md5(secret, &zeroed)[..], "{kind}");
        assert_eq!(&v[15..], &a.bytes[at..at + 16]);
    }
    assert!(counters.windows(2).all(|w| w[0] < w[1]), "replay detection increases: {counters:?}");
    // Not asked: no option 90.
    assert!(!f.reply(&by_ip([10, 0, 0, 100], Some(ALL))).options.contains(code::AUTHENTICATION));
    // No secret configured: none either.
    let plain = fixture("");
    let mut q = by_ip([10, 0, 0, 100], Some(ALL));
    ask(&mut q);
    assert!(!plain.reply(&q).options.contains(code::AUTHENTICATION));
    // The two keys go together.
    let half = config("auth-key-id = 5");
    assert_eq!(Config::parse(&half).unwrap_err().key, "leasequery.auth-secret");
    let bad = config("auth-key-id = 5\nauth-secret = \"not hex\"");
    assert_eq!(Config::parse(&bad).unwrap_err().key, "leasequery.auth-secret");
}

/// Issue #20 item 1: a shared network changes how addresses are chosen, not what Leasequery answers. A client
/// relayed through the first subnet gets an address in the second (the first's pool is full); a query by
/// that address answers with its binding, like any other, and a free address of the second subnet is
/// UNASSIGNED (a configured address).
#[test]
fn lq_6_4_1_an_address_in_the_second_subnet_of_a_shared_network_answers_as_usual() {
    use leasewire_server::engine::{Engine, Received};
    let text = r#"
[server]
server-id = "10.0.0.1"
data-dir = "/nonexistent"
[leasequery]
allow = ["10.0.0.0/24"]
rate-limit = 0
[[subnet]]
subnet = "10.0.0.0/24"
shared-network = "campus"
pools = [{ start = "10.0.0.100", end = "10.0.0.100" }]
[[subnet]]
subnet = "10.1.0.0/24"
shared-network = "campus"
pools = [{ start = "10.1.0.10", end = "10.1.0.20" }]
"#;
    let config = Config::parse(text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("l.db"), OpenOptions::new(T - 1000)).unwrap();
    let mut engine = Engine::new(&config, Vec::new());
    let relay = Ipv4Addr::new(10, 0, 0, 2);
    let rx = Received { src: SocketAddrV4::new(relay, 67), interface: None, now: T };
    let mut acked = Vec::new();
    for mac in [MAC1, MAC2] {
        let mut d = Message::new(Op::BootRequest);
        d.set_hardware_address(1, &mac);
        d.giaddr = relay;
        d.options.set_message_type(MessageType::Discover);
        let offer = engine.handle(&d, rx);
        let (bytes, _, _) = offer.reply.unwrap();
        let ip = Message::decode(&bytes).unwrap().yiaddr;
        let mut r = d.clone();
        r.options.set_message_type(MessageType::Request);
        r.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::new(10, 0, 0, 1));
        r.options.set_ip(code::REQUESTED_IP, ip);
        let ack = engine.handle(&r, rx);
        store.commit(T, ack.commit).wait().unwrap();
        acked.push(ip);
    }
    assert_eq!(acked, [Ipv4Addr::new(10, 0, 0, 100), Ipv4Addr::new(10, 1, 0, 10)]);
    let lq = Responder::new(&config);
    let ask = |ip: Ipv4Addr| {
        let mut q = query(None);
        q.ciaddr = ip;
        let a = lq.answer(&q, SocketAddrV4::new(REQUESTOR, 67), &store, T + 1).expect("an answer");
        let bytes: &'static [u8] = Box::leak(a.bytes.into_boxed_slice());
        Message::decode(bytes).unwrap()
    };
    let m = ask(acked[1]);
    assert_eq!(m.message_type(), Some(MessageType::LeaseActive));
    assert_eq!((m.ciaddr, m.hardware_address()), (acked[1], &MAC2[..]));
    assert_eq!(ask(Ipv4Addr::new(10, 1, 0, 11)).message_type(), Some(MessageType::LeaseUnassigned));
}
