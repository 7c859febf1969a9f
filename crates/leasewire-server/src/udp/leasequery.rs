//! Leasequery over UDP (RFC 4388, with RFC 6148's query by remote-id): one question, one answer, from the
//! lease store. Purely a read: answering never changes a binding (LQ-3-1).

use crate::config::{MacQueryPrefers, Subnet, Validated};
use ipnet::Ipv4Net;
use leasewire_proto::options::code;
use leasewire_proto::query_key::{KeyError, QueryKey};
use leasewire_proto::{DhcpState, Message, MessageType, Op};
use leasewire_store::{Binding, BindingChange, LeaseStore, StoreError};
use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Mutex;
use std::time::Instant;

/// Options returned for a DHCPLEASEACTIVE when the query has no parameter request list: what a DHCPREQUEST
/// would get (lease time, T1, T2; LQ-6.2-5) plus what RFC 4388 exists for (last transaction time, client-id and
/// the stored relay agent information).
const DEFAULT_REQUEST: &[u8] = &[
    code::LEASE_TIME,
    code::RENEWAL_TIME,
    code::REBINDING_TIME,
    code::CLIENT_LAST_TRANSACTION_TIME,
    code::CLIENT_IDENTIFIER,
    code::RELAY_AGENT_INFO,
];

/// The point lookups an RFC 4388 / RFC 6148 query needs, each newest change first: any [`LeaseStore`], or
/// the in-memory view a server on a shared store answers them from (`shared_view`).
pub trait Lookups {
    /// The record of `ip` ([`LeaseStore::get`]).
    fn get(&self, ip: Ipv4Addr) -> Result<Option<BindingChange>, StoreError>;
    /// By hardware address ([`LeaseStore::by_hardware_address`]).
    fn by_hardware_address(&self, htype: u8, addr: &[u8]) -> Result<Vec<BindingChange>, StoreError>;
    /// By client identifier ([`LeaseStore::by_client_id`]).
    fn by_client_id(&self, client_id: &[u8]) -> Result<Vec<BindingChange>, StoreError>;
    /// By relay agent remote-id ([`LeaseStore::by_remote_id`]).
    fn by_remote_id(&self, remote_id: &[u8]) -> Result<Vec<BindingChange>, StoreError>;
}

impl<S: LeaseStore + ?Sized> Lookups for S {
    fn get(&self, ip: Ipv4Addr) -> Result<Option<BindingChange>, StoreError> {
        LeaseStore::get(self, ip)
    }
    fn by_hardware_address(&self, htype: u8, addr: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        LeaseStore::by_hardware_address(self, htype, addr)
    }
    fn by_client_id(&self, client_id: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        LeaseStore::by_client_id(self, client_id)
    }
    fn by_remote_id(&self, remote_id: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        LeaseStore::by_remote_id(self, remote_id)
    }
}

/// Why a query got no reply. Counted by label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LqDrop {
    /// Leasequery is not configured (RFC 4388 §5: stay silent).
    Disabled,
    /// giaddr is 0 (LQ-6.4.3-2).
    NoGiaddr,
    /// The source or giaddr is not an allowed requestor.
    NotAllowed,
    /// The requestor exceeded its rate.
    RateLimited,
    /// No query key (LQ-6.3-2).
    NoKey,
    /// More than one of ciaddr, chaddr and client-id (LQ-6.3-2 allows exactly one).
    SeveralKeys,
    /// The store failed to answer.
    StoreError,
}

impl LqDrop {
    /// Every reason, so each counter exists at zero from the start.
    pub const ALL: [Self; 7] = [
        Self::Disabled,
        Self::NoGiaddr,
        Self::NotAllowed,
        Self::RateLimited,
        Self::NoKey,
        Self::SeveralKeys,
        Self::StoreError,
    ];

    /// A metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Disabled => "leasequery_disabled",
            Self::NoGiaddr => "leasequery_no_giaddr",
            Self::NotAllowed => "leasequery_not_allowed",
            Self::RateLimited => "leasequery_rate_limited",
            Self::NoKey => "leasequery_no_key",
            Self::SeveralKeys => "leasequery_several_keys",
            Self::StoreError => "leasequery_store_error",
        }
    }
}

/// A per-requestor token bucket (RFC 4388 §7: withstand floods of queries).
#[derive(Debug)]
struct RateLimiter {
    rate: f64,
    buckets: HashMap<Ipv4Addr, (f64, Instant)>,
}

impl RateLimiter {
    const MAX_REQUESTORS: usize = 65_536;

    fn allow(&mut self, who: Ipv4Addr, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        if self.buckets.len() >= Self::MAX_REQUESTORS && !self.buckets.contains_key(&who) {
            // Bounded memory under a spoofed-source flood: forget buckets that have refilled.
            let (rate, burst) = (self.rate, self.rate * 2.0);
            self.buckets.retain(|_, (t, at)| *t + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let burst = self.rate * 2.0;
        let (tokens, at) = self.buckets.entry(who).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A reply ready to send.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The encoded reply.
    pub bytes: Vec<u8>,
    /// giaddr, at port 67 or the requestor's RFC 8357 source port.
    pub to: SocketAddrV4,
    /// DHCPLEASEACTIVE, DHCPLEASEUNASSIGNED or DHCPLEASEUNKNOWN.
    pub kind: MessageType,
}

/// The leasequery responder.
#[derive(Debug)]
pub struct Responder {
    server_id: Ipv4Addr,
    subnets: Vec<Subnet>,
    allow: Vec<Ipv4Net>,
    disclose: HashSet<u8>,
    withhold: HashSet<u8>,
    /// Per-requestor additions to `withhold`, most specific prefix first.
    per_requestor: Vec<(Ipv4Net, HashSet<u8>)>,
    reserved_as_leased: bool,
    mac_query_prefers: MacQueryPrefers,
    limiter: Mutex<RateLimiter>,
    /// RFC 3118 delayed authentication of replies, when a shared secret is configured (LQ-7-2).
    signer: Option<super::auth::Signer>,
}

impl Responder {
    /// A responder for a configuration.
    pub fn new(config: &Validated) -> Self {
        let lq = config.leasequery();
        Self {
            server_id: config.server().server_id,
            subnets: config.subnets.clone(),
            allow: config.leasequery_allow.clone(),
            disclose: lq.disclose.iter().copied().collect(),
            withhold: lq.withhold.iter().copied().collect(),
            per_requestor: config.requestor_withhold.iter().map(|(n, w)| (*n, w.iter().copied().collect())).collect(),
            reserved_as_leased: lq.reserved_as_leased,
            mac_query_prefers: lq.mac_query_prefers,
            limiter: Mutex::new(RateLimiter { rate: lq.rate_limit as f64, buckets: HashMap::new() }),
            signer: match (lq.auth_key_id, &lq.auth_secret) {
                (Some(id), Some(secret)) => leasewire_proto::hex::parse(secret.get_ref())
                    .map(|s| super::auth::Signer::new(id, s, crate::clock::unix_now())),
                _ => None,
            },
        }
    }

    /// Answer a DHCPLEASEQUERY from `src`: the encoded reply and where it goes, or why there is none.
    pub fn answer(
        &self,
        q: &Message<'_>,
        src: SocketAddrV4,
        store: &(impl Lookups + ?Sized),
        now: u32,
    ) -> Result<Answer, LqDrop> {
        if self.allow.is_empty() {
            return Err(LqDrop::Disabled);
        }
        if q.giaddr.is_unspecified() {
            return Err(LqDrop::NoGiaddr);
        }
        if !self.allowed(*src.ip()) || !self.allowed(q.giaddr) {
            return Err(LqDrop::NotAllowed);
        }
        if !self.limiter.lock().unwrap_or_else(|p| p.into_inner()).allow(*src.ip(), Instant::now()) {
            return Err(LqDrop::RateLimited);
        }
        let key = QueryKey::of(q).map_err(|e| match e {
            KeyError::NoKey => LqDrop::NoKey,
            KeyError::SeveralKeys => LqDrop::SeveralKeys,
        })?;
        let withheld = self.withheld(*src.ip());
        let mut reply = self.reply(q, &key, store, now, &withheld).map_err(|e| {
            tracing::warn!(error = %e, "leasequery: store lookup failed");
            LqDrop::StoreError
        })?;
        // LQ-7-2: RFC 3118 delayed authentication, the query in DHCPDISCOVER's part, the reply in DHCPOFFER's.
        let signer = self.signer.as_ref().filter(|_| super::auth::Signer::asked(q));
        if let Some(s) = signer {
            s.prepare(&mut reply);
        }
        let mut out = Vec::with_capacity(320);
        reply.encode(&mut out).expect("replies are well-formed");
        if let Some(s) = signer {
            s.seal(&mut out);
        }
        // RFC 4388 §6.4.3: to giaddr, at the server port (RFC 2131 §4.1); a requestor that asked with the RFC 8357
        // relay-source-port sub-option gets it at its source port.
        let port =
            if q.options.relay_agent_info().is_some_and(|r| r.has_relay_source_port()) { src.port() } else { 67 };
        let kind = reply.message_type().unwrap_or(MessageType::LeaseUnknown);
        Ok(Answer { bytes: out, to: SocketAddrV4::new(q.giaddr, port), kind })
    }

    fn allowed(&self, a: Ipv4Addr) -> bool {
        self.allow.iter().any(|n| n.contains(&a))
    }

    fn subnet(&self, ip: Ipv4Addr) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.net.contains(&ip))
    }

    /// Whether this server is authoritative for an address: in one of its pools or reserved.
    fn manages(&self, ip: Ipv4Addr) -> bool {
        self.subnet(ip).is_some_and(|s| {
            let a = u32::from(ip);
            s.pools.iter().any(|&(lo, hi)| (lo..=hi).contains(&a)) || s.reservations.iter().any(|r| r.ip == ip)
        })
    }

    /// The options withheld from a requestor: the global list and its most specific rule.
    fn withheld(&self, requestor: Ipv4Addr) -> HashSet<u8> {
        let mut w = self.withhold.clone();
        if let Some((_, extra)) = self.per_requestor.iter().find(|(n, _)| n.contains(&requestor)) {
            w.extend(extra);
        }
        w
    }

    fn reply(
        &self,
        q: &Message<'_>,
        key: &QueryKey,
        store: &(impl Lookups + ?Sized),
        now: u32,
        withheld: &HashSet<u8>,
    ) -> Result<Message<'static>, StoreError> {
        let candidates = match key {
            QueryKey::Ip(ip) => return Ok(self.by_ip(q, *ip, store.get(*ip)?, now, withheld)),
            QueryKey::Hardware(htype, hw) => {
                store.by_hardware_address(*htype, hw)?.into_iter().filter(|c| c.binding.htype == *htype).collect()
            }
            QueryKey::ClientId(id) => store.by_client_id(id)?,
            QueryKey::RemoteId(id) => store.by_remote_id(id)?,
        };
        Ok(self.by_client(q, key, candidates, now, withheld))
    }

    /// LQ-6.4.1-1/2: ACTIVE if leased, UNASSIGNED if managed, UNKNOWN otherwise.
    fn by_ip(
        &self,
        q: &Message<'_>,
        ip: Ipv4Addr,
        record: Option<BindingChange>,
        now: u32,
        withheld: &HashSet<u8>,
    ) -> Message<'static> {
        if let Some(c) = &record
            && is_leased(&c.binding, now)
        {
            return self.active(q, &c.binding, &[], now, withheld);
        }
        if self.reserved_as_leased
            && let Some(r) = self.subnet(ip).and_then(|s| s.reservations.iter().find(|r| r.ip == ip))
        {
            let mut b = Binding::new(ip, DhcpState::Active, now);
            if let Some(hw) = &r.hw_address {
                b.htype = 1;
                b.hardware_address = hw.clone();
            }
            b.client_id = r.client_id.clone();
            b.reserved_for = Some(r.name.clone());
            return self.active(q, &b, &[], now, withheld);
        }
        if self.manages(ip) || record.is_some() {
            // RFC 4388 §6.4.2: DHCPLEASEUNASSIGNED carries no other options (not even 54, which RFC 6926 §8.3
            // requires of Bulk replies only).
            let mut r = reply_to(q, MessageType::LeaseUnassigned);
            r.ciaddr = ip;
            return r;
        }
        self.unknown(q, false)
    }

    /// LQ-6.4.1-3..7, LQR-4.4-1: the client's active binding with the latest transaction, the others as
    /// associated-ip; UNKNOWN when it has no active binding.
    fn by_client(
        &self,
        q: &Message<'_>,
        key: &QueryKey,
        candidates: Vec<BindingChange>,
        now: u32,
        withheld: &HashSet<u8>,
    ) -> Message<'static> {
        // LQ-6.4.1-6: the binding of the most recent transaction. Optionally (`mac-query-prefers =
        // "mac-identified"`, ISC dhcpd's answer) a binding whose client is identified by the queried MAC (RFC
        // 2131 §4.2: no client-id) comes before one that merely came from it with a client-id of its own.
        let prefer_mac = self.mac_query_prefers == MacQueryPrefers::MacIdentified;
        let identified_by_key =
            |b: &Binding| !prefer_mac || !matches!(key, QueryKey::Hardware(..)) || b.client_id.is_none();
        let chosen = candidates
            .iter()
            .filter(|c| is_leased(&c.binding, now))
            .max_by_key(|c| (identified_by_key(&c.binding), c.binding.cltt.unwrap_or(0), c.seq))
            .map(|c| c.binding.clone());
        let Some(b) = chosen else { return self.unknown(q, matches!(key, QueryKey::RemoteId(_))) };
        let others: Vec<Ipv4Addr> = candidates.iter().map(|c| c.binding.ip).filter(|ip| *ip != b.ip).collect();
        self.active(q, &b, &others, now, withheld)
    }

    /// LQ-6.4-2: DHCPLEASEUNKNOWN carries nothing else, except the echoed option 82 of a remote-id query
    /// (LQR-4.3-2).
    fn unknown(&self, q: &Message<'_>, echo_82: bool) -> Message<'static> {
        let mut r = reply_to(q, MessageType::LeaseUnknown);
        r.ciaddr = q.ciaddr;
        if echo_82 && let Some(rai) = q.options.get(code::RELAY_AGENT_INFO) {
            r.options.set(code::RELAY_AGENT_INFO, rai.to_vec());
        }
        r
    }

    /// LQ-6.4.2: DHCPLEASEACTIVE about `b`.
    fn active(
        &self,
        q: &Message<'_>,
        b: &Binding,
        associated: &[Ipv4Addr],
        now: u32,
        withheld: &HashSet<u8>,
    ) -> Message<'static> {
        let mut r = reply_to(q, MessageType::LeaseActive);
        r.ciaddr = b.ip;
        r.set_hardware_address(b.htype, &b.hardware_address);
        r.options.set_ip(code::SERVER_IDENTIFIER, self.server_id);
        let requested = q.options.parameter_request_list().unwrap_or(DEFAULT_REQUEST);
        let subnet = self.subnet(b.ip);
        for &c in requested {
            if withheld.contains(&c) {
                continue;
            }
            if let Some(v) = self.value(c, b, subnet, now) {
                r.options.set(c, v);
            }
        }
        if !associated.is_empty() && !withheld.contains(&code::ASSOCIATED_IP) {
            // LQ-6.4.2-6 / LQR-4.3-1: whether requested or not.
            r.options.set_associated_ips(associated);
        }
        r
    }

    /// The value of a requested option for a binding, if there is one to give.
    fn value(&self, c: u8, b: &Binding, subnet: Option<&Subnet>, now: u32) -> Option<Vec<u8>> {
        let remaining = |at: u32| at.checked_sub(now).filter(|&s| s > 0).map(|s| s.to_be_bytes().to_vec());
        let expires = b.expires_at.filter(|_| b.state == DhcpState::Active);
        match c {
            // LQ-6.4.2-7/8: only for a valid lease, only while the time is still ahead.
            code::LEASE_TIME => remaining(expires?),
            code::RENEWAL_TIME | code::REBINDING_TIME => {
                let expires = expires?;
                match (b.option(c).and_then(|v| <[u8; 4]>::try_from(v).ok()), b.cltt) {
                    // The times the ACK gave (kept with the binding), counted from that ACK.
                    (Some(t), Some(cltt)) => remaining(cltt.saturating_add(u32::from_be_bytes(t)).min(expires)),
                    // A binding from before they were kept: the subnet's current settings.
                    _ => {
                        let s = subnet?;
                        let t = if c == code::RENEWAL_TIME { s.renewal_time } else { s.rebinding_time };
                        remaining(expires.checked_sub(s.lease_time - t)?)
                    }
                }
            }
            code::CLIENT_LAST_TRANSACTION_TIME => Some(now.saturating_sub(b.cltt?).to_be_bytes().to_vec()),
            code::CLIENT_IDENTIFIER => b.client_id.clone(),
            code::RELAY_AGENT_INFO => b.relay_agent_info.clone(),
            c if self.disclose.contains(&c) => b.option(c).map(<[u8]>::to_vec),
            _ => None,
        }
    }
}

fn is_leased(b: &Binding, now: u32) -> bool {
    b.state == DhcpState::Active && b.expires_at.is_none_or(|e| e > now)
}

fn reply_to(q: &Message<'_>, t: MessageType) -> Message<'static> {
    let mut r = Message::new(Op::BootReply);
    r.xid = q.xid;
    r.giaddr = q.giaddr;
    r.options.set_message_type(t);
    r
}
