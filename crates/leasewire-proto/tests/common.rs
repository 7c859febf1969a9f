//! Generators shared by the codec's property tests.
#![allow(dead_code, missing_docs)]

use leasewire_proto::options::code;
use leasewire_proto::{DataSource, DhcpState, Message, MessageType, Op, RelayAgentInfoBuilder, StatusCode};
use proptest::prelude::*;
use std::net::Ipv4Addr;

/// One option as a test generates it: the typed value and its wire form.
#[derive(Debug, Clone)]
pub enum Typed {
    MessageType(u8),
    LeaseTime(u32),
    ServerId(Ipv4Addr),
    Prl(Vec<u8>),
    T1(u32),
    T2(u32),
    ClientId(Vec<u8>),
    Rai(Vec<(u8, Vec<u8>)>),
    Cltt(u32),
    AssociatedIp(Vec<Ipv4Addr>),
    Status(u8, String),
    BaseTime(u32),
    StartTimeOfState(u32),
    QueryStartTime(u32),
    QueryEndTime(u32),
    State(DhcpState),
    DataSource(u8),
    Vss(u8, Vec<u8>),
    Unknown(u8, Vec<u8>),
}

impl Typed {
    pub fn code(&self) -> u8 {
        match self {
            Typed::MessageType(_) => code::MESSAGE_TYPE,
            Typed::LeaseTime(_) => code::LEASE_TIME,
            Typed::ServerId(_) => code::SERVER_IDENTIFIER,
            Typed::Prl(_) => code::PARAMETER_REQUEST_LIST,
            Typed::T1(_) => code::RENEWAL_TIME,
            Typed::T2(_) => code::REBINDING_TIME,
            Typed::ClientId(_) => code::CLIENT_IDENTIFIER,
            Typed::Rai(_) => code::RELAY_AGENT_INFO,
            Typed::Cltt(_) => code::CLIENT_LAST_TRANSACTION_TIME,
            Typed::AssociatedIp(_) => code::ASSOCIATED_IP,
            Typed::Status(..) => code::STATUS_CODE,
            Typed::BaseTime(_) => code::BASE_TIME,
            Typed::StartTimeOfState(_) => code::START_TIME_OF_STATE,
            Typed::QueryStartTime(_) => code::QUERY_START_TIME,
            Typed::QueryEndTime(_) => code::QUERY_END_TIME,
            Typed::State(_) => code::DHCP_STATE,
            Typed::DataSource(_) => code::DATA_SOURCE,
            Typed::Vss(..) => code::VSS,
            Typed::Unknown(c, _) => *c,
        }
    }

    /// Put the option into a message through the typed setters (or raw for the free-form ones).
    pub fn apply(&self, m: &mut Message<'static>) {
        let o = &mut m.options;
        match self {
            Typed::MessageType(t) => o.set_message_type(MessageType::from_code(*t)),
            Typed::LeaseTime(v) | Typed::T1(v) | Typed::T2(v) | Typed::Cltt(v) => o.set_u32(self.code(), *v),
            Typed::BaseTime(v) | Typed::StartTimeOfState(v) | Typed::QueryStartTime(v) | Typed::QueryEndTime(v) => {
                o.set_u32(self.code(), *v)
            }
            Typed::ServerId(a) => o.set_ip(self.code(), *a),
            Typed::Prl(v) | Typed::ClientId(v) | Typed::Unknown(_, v) => o.set(self.code(), v.clone()),
            Typed::Rai(subs) => {
                let b = subs.iter().fold(RelayAgentInfoBuilder::new(), |b, (c, d)| b.sub_option(*c, d));
                o.set(self.code(), b.build())
            }
            Typed::AssociatedIp(ips) => o.set_associated_ips(ips),
            Typed::Status(c, text) => o.set_status(StatusCode::from_code(*c), text),
            Typed::State(s) => o.set_dhcp_state(*s),
            Typed::DataSource(f) => o.set_data_source(DataSource(*f)),
            Typed::Vss(t, info) => {
                let mut v = vec![*t];
                v.extend_from_slice(info);
                o.set(self.code(), v)
            }
        }
    }

    /// Check that the decoded message's typed accessor gives the value back.
    pub fn check(&self, m: &Message<'_>) {
        let o = &m.options;
        match self {
            Typed::MessageType(t) => assert_eq!(o.message_type(), Some(MessageType::from_code(*t))),
            Typed::LeaseTime(v) => assert_eq!(o.lease_time(), Some(*v)),
            Typed::T1(v) | Typed::T2(v) => assert_eq!(o.get_u32(self.code()), Some(*v)),
            Typed::Cltt(v) => assert_eq!(o.client_last_transaction_time(), Some(*v)),
            Typed::BaseTime(v) => assert_eq!(o.base_time(), Some(*v)),
            Typed::StartTimeOfState(v) => assert_eq!(o.start_time_of_state(), Some(*v)),
            Typed::QueryStartTime(v) => assert_eq!(o.query_start_time(), Some(*v)),
            Typed::QueryEndTime(v) => assert_eq!(o.query_end_time(), Some(*v)),
            Typed::ServerId(a) => assert_eq!(o.server_identifier(), Some(*a)),
            Typed::Prl(v) => assert_eq!(o.parameter_request_list(), Some(&v[..])),
            Typed::ClientId(v) => assert_eq!(o.client_identifier(), Some(&v[..])),
            Typed::Unknown(c, v) => assert_eq!(o.get(*c), Some(&v[..])),
            Typed::Rai(subs) => {
                let got: Vec<(u8, Vec<u8>)> =
                    o.relay_agent_info().unwrap().iter().map(|s| (s.code, s.data.to_vec())).collect();
                assert_eq!(&got, subs);
            }
            Typed::AssociatedIp(ips) => assert_eq!(&o.associated_ips().collect::<Vec<_>>(), ips),
            Typed::Status(c, text) => {
                let st = o.status().unwrap().unwrap();
                assert_eq!((st.code, st.message), (StatusCode::from_code(*c), text.as_str()));
            }
            Typed::State(s) => assert_eq!(o.dhcp_state(), Some(Ok(*s))),
            Typed::DataSource(f) => assert_eq!(o.data_source(), Some(DataSource(*f))),
            Typed::Vss(t, info) => {
                let v = o.vss().unwrap();
                assert_eq!((v.kind.code(), v.info), (*t, &info[..]));
            }
        }
    }
}

fn ip() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn bytes(min: usize, max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), min..=max)
}

/// Codes that have a typed meaning here or are framing, so "unknown" options avoid them.
const NAMED: &[u8] =
    &[0, 1, 3, 6, 50, 51, 52, 53, 54, 55, 57, 58, 59, 61, 82, 91, 92, 118, 151, 152, 153, 154, 155, 156, 157, 221, 255];

pub fn typed(max_unknown: usize) -> impl Strategy<Value = Typed> {
    let sub = (any::<u8>(), bytes(0, 20));
    prop_oneof![
        (1u8..=18).prop_map(Typed::MessageType),
        any::<u32>().prop_map(Typed::LeaseTime),
        ip().prop_map(Typed::ServerId),
        bytes(1, 40).prop_map(Typed::Prl),
        any::<u32>().prop_map(Typed::T1),
        any::<u32>().prop_map(Typed::T2),
        bytes(2, 40).prop_map(Typed::ClientId),
        prop::collection::vec(sub, 0..6).prop_map(Typed::Rai),
        any::<u32>().prop_map(Typed::Cltt),
        prop::collection::vec(ip(), 1..8).prop_map(Typed::AssociatedIp),
        (0u8..=12, "[a-zA-Z0-9 éü€]{0,80}").prop_map(|(c, t)| Typed::Status(c, t)),
        any::<u32>().prop_map(Typed::BaseTime),
        any::<u32>().prop_map(Typed::StartTimeOfState),
        any::<u32>().prop_map(Typed::QueryStartTime),
        any::<u32>().prop_map(Typed::QueryEndTime),
        prop::sample::select(DhcpState::ALL.to_vec()).prop_map(Typed::State),
        any::<u8>().prop_map(Typed::DataSource),
        (prop::sample::select(vec![0u8, 1, 254, 255, 7]), bytes(0, 20)).prop_map(|(t, i)| Typed::Vss(t, i)),
        (any::<u8>().prop_filter("unnamed code", |c| !NAMED.contains(c)), bytes(0, max_unknown))
            .prop_map(|(c, d)| Typed::Unknown(c, d)),
    ]
}

/// A list of options with distinct codes, relay agent information (if any) last as the encoder puts it.
pub fn option_list(max_unknown: usize) -> impl Strategy<Value = Vec<Typed>> {
    prop::collection::vec(typed(max_unknown), 0..24).prop_map(|list| {
        let mut seen = [false; 256];
        let mut out: Vec<Typed> =
            list.into_iter().filter(|t| !std::mem::replace(&mut seen[t.code() as usize], true)).collect();
        out.sort_by_key(|t| t.code() == code::RELAY_AGENT_INFO);
        out
    })
}

fn name(max: usize) -> impl Strategy<Value = Vec<u8>> {
    bytes(0, max).prop_map(|mut v| {
        while v.last() == Some(&0) {
            v.pop();
        }
        v
    })
}

/// A header (everything but options) and its options, as a message.
pub fn message(max_unknown: usize) -> impl Strategy<Value = (Message<'static>, Vec<Typed>)> {
    (
        (any::<bool>(), any::<u8>(), 0u8..=16, any::<u8>(), any::<u32>(), any::<u16>(), any::<u16>()),
        (ip(), ip(), ip(), ip(), any::<[u8; 16]>()),
        (name(64), name(128)),
        option_list(max_unknown),
    )
        .prop_map(|((req, htype, hlen, hops, xid, secs, flags), (ci, yi, si, gi, chaddr), (sname, file), opts)| {
            let mut m = Message::new(if req { Op::BootRequest } else { Op::BootReply });
            m.htype = htype;
            m.hlen = hlen;
            m.hops = hops;
            m.xid = xid;
            m.secs = secs;
            m.flags = flags;
            (m.ciaddr, m.yiaddr, m.siaddr, m.giaddr) = (ci, yi, si, gi);
            m.chaddr = chaddr;
            m.sname = Box::leak(sname.into_boxed_slice());
            m.file = Box::leak(file.into_boxed_slice());
            for t in &opts {
                t.apply(&mut m);
            }
            (m, opts)
        })
}
