//! The DHCP engine (RFC 2131): a sans-IO decision core. It takes a decoded message, where it came from and the
//! time, and returns what to commit and what to send; the UDP driver does the I/O, commits durably, and only
//! then sends the reply, so a client is never told about a lease the store does not hold.
//!
//! One step per message type, each short: [`Engine::discover`], [`Engine::request`], [`Engine::decline`],
//! [`Engine::release`], [`Engine::inform`]; [`Engine::tick`] runs lease expiry.

mod leases;
mod reply;

pub use leases::StateCounts;
pub use reply::Destination;

use crate::config::{ClassSet, ClientClasses, Reservation, Seen, Subnet, Validated};
use leases::{Leases, Origin};
use leasewire_proto::options::code;
use leasewire_proto::{DataSource, DhcpState, Message, MessageType, Op, RelayAgentInfo};
use leasewire_store::{Binding, Packed};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Client options the server stores with a binding so leasequery can return them (RFC 4388 §6.7: the vendor
/// class, LQ-6.7-3). 124 and 125 (vendor-identifying class and information) flow both ways: a Bulk or Active
/// requestor that asks for one gets the value the client sent (RFC 6926 §8.3 item 7, BLQ-8.3-10).
const STORED_OPTIONS: &[u8] =
    &[code::HOST_NAME, code::PARAMETER_REQUEST_LIST, code::VENDOR_CLASS, code::USER_CLASS, 81, 124, 125];

/// How the engine identifies a client: its client identifier when it sent one, else htype + chaddr
/// (RFC 2131 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// Option 61.
    ClientId(Vec<u8>),
    /// htype and hardware address.
    Hardware(u8, Vec<u8>),
}

impl ClientKey {
    fn of_message(m: &Message<'_>) -> Self {
        match m.options.client_identifier() {
            Some(id) => Self::ClientId(id.to_vec()),
            None => Self::Hardware(m.htype, m.hardware_address().to_vec()),
        }
    }

    /// The client a binding belongs to, if any.
    pub fn of_binding(b: &Binding) -> Option<Self> {
        match (&b.client_id, b.hardware_address.is_empty()) {
            (Some(id), _) => Some(Self::ClientId(id.clone())),
            (None, false) => Some(Self::Hardware(b.htype, b.hardware_address.clone())),
            (None, true) => None,
        }
    }

    fn matches(&self, r: &Reservation) -> bool {
        self.as_ref().matches(r)
    }

    /// The key borrowed, as the lease table compares and hashes it.
    pub(crate) fn as_ref(&self) -> ClientRef<'_> {
        match self {
            Self::ClientId(id) => ClientRef::ClientId(id),
            Self::Hardware(htype, hw) => ClientRef::Hardware(*htype, hw),
        }
    }

    /// Whether a record belongs to this client.
    fn is_of(&self, p: &Packed) -> bool {
        ClientRef::of(p) == Some(self.as_ref())
    }
}

/// A [`ClientKey`] borrowed, from a key or from a packed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ClientRef<'a> {
    /// Option 61.
    ClientId(&'a [u8]),
    /// htype and hardware address.
    Hardware(u8, &'a [u8]),
}

impl<'a> ClientRef<'a> {
    /// The client a record belongs to, if any (as [`ClientKey::of_binding`]).
    fn of(p: &'a Packed) -> Option<Self> {
        match p.client() {
            (_, _, Some(id)) => Some(Self::ClientId(id)),
            (_, [], None) => None,
            (htype, hw, None) => Some(Self::Hardware(htype, hw)),
        }
    }

    fn matches(self, r: &Reservation) -> bool {
        match self {
            Self::ClientId(id) => r.client_id.as_deref() == Some(id),
            Self::Hardware(_, hw) => r.hw_address.as_deref() == Some(hw),
        }
    }
}

/// The relay port a message came through, as port-based reservations (option 82 circuit-id / remote-id, and
/// the relay's giaddr) see it. Borrowed from the message: matching costs no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port<'m> {
    circuit_id: Option<&'m [u8]>,
    remote_id: Option<&'m [u8]>,
    giaddr: Ipv4Addr,
}

impl<'m> Port<'m> {
    /// No relay port: a directly connected client (matches no reservation by port).
    pub(super) const NONE: Port<'static> = Port { circuit_id: None, remote_id: None, giaddr: Ipv4Addr::UNSPECIFIED };

    fn of_message(m: &'m Message<'_>) -> Self {
        let rai = m.options.relay_agent_info();
        let rai = rai.as_ref();
        Self {
            circuit_id: rai.and_then(|r| r.circuit_id()),
            remote_id: rai.and_then(|r| r.remote_id()),
            giaddr: m.giaddr,
        }
    }
}

/// Whether reservation `r` is for this client: by its identity (MAC or client-id), or by the relay port it
/// came through (every option 82 key the reservation names, and its giaddr if it names one).
fn reserved_for(r: &Reservation, client: &ClientKey, port: &Port<'_>) -> bool {
    client.matches(r) || r.port_matches(port.circuit_id, port.remote_id, port.giaddr)
}

/// A reservation whose address a live lease of another client holds (reported at start and on reload: the
/// reserved client cannot have its address until that lease ends or is deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationConflict {
    /// The reservation's name.
    pub name: String,
    /// The reserved address.
    pub ip: Ipv4Addr,
    /// The holder's hardware address, in hex.
    pub holder: String,
    /// When the holder's lease ends.
    pub expires_at: Option<u32>,
}

impl std::fmt::Display for ReservationConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reservation {:?} ({}) is leased to another client ({})", self.name, self.ip, self.holder)?;
        match self.expires_at {
            Some(t) => write!(f, " until {t} (Unix time)"),
            None => Ok(()),
        }
    }
}

/// Where a message came from.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// Source address and port.
    pub src: SocketAddrV4,
    /// The interface the socket is bound to, for directly connected clients.
    pub interface: Option<&'a str>,
    /// Now, in seconds since the Unix epoch.
    pub now: u32,
}

/// Why a message got no answer. Counted by label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A BOOTREPLY sent to the server.
    NotARequest,
    /// No option 53.
    NoMessageType,
    /// A type a server does not act on here (including leasequery types, handled elsewhere).
    UnsupportedType,
    /// No configured subnet for the relay, link selection or interface.
    NoSubnet,
    /// No address left.
    PoolExhausted,
    /// DHCPREQUEST for another server: the client chose someone else.
    OtherServer,
    /// INIT-REBOOT or RENEWING from a client we have no record of (RFC 2131 §4.3.2: remain silent).
    NoRecord,
    /// DHCPREQUEST in SELECTING state without option 50.
    NoRequestedAddress,
    /// RELEASE or DECLINE for an address the client does not hold.
    NotHolder,
    /// A new client's DISCOVER from a circuit that already has `max-offers-per-circuit` offers outstanding.
    CircuitOfferLimit,
    /// A new client's DISCOVER through a relay that already has `max-offers-per-relay` offers outstanding.
    RelayOfferLimit,
}

impl DropReason {
    /// Every reason, so each counter exists at zero from the start.
    pub const ALL: [Self; 11] = [
        Self::NotARequest,
        Self::NoMessageType,
        Self::UnsupportedType,
        Self::NoSubnet,
        Self::PoolExhausted,
        Self::OtherServer,
        Self::NoRecord,
        Self::NoRequestedAddress,
        Self::NotHolder,
        Self::CircuitOfferLimit,
        Self::RelayOfferLimit,
    ];

    /// A metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Self::NotARequest => "not_a_request",
            Self::NoMessageType => "no_message_type",
            Self::UnsupportedType => "unsupported_type",
            Self::NoSubnet => "no_subnet",
            Self::PoolExhausted => "pool_exhausted",
            Self::OtherServer => "other_server",
            Self::NoRecord => "no_record",
            Self::NoRequestedAddress => "no_requested_address",
            Self::NotHolder => "not_holder",
            Self::CircuitOfferLimit => "circuit_offer_limit",
            Self::RelayOfferLimit => "relay_offer_limit",
        }
    }
}

/// What to do about one message.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Bindings to commit durably before the reply leaves.
    pub commit: Vec<Binding>,
    /// The reply, encoded, and where it goes.
    pub reply: Option<(Vec<u8>, Destination, MessageType)>,
    /// Why there is no reply, when there is none and nothing to commit.
    pub dropped: Option<DropReason>,
    /// The reply to send instead if a shared store refuses the commit because another server bound the
    /// address to another client first (`StoreError::Conflict`): a NAK for a REQUEST, so the client starts
    /// over. Never the ACK.
    pub on_conflict: Option<(Vec<u8>, Destination, MessageType)>,
    /// The records the decision rests on, which a shared store checks at commit
    /// (`LeaseStore::commit_expecting`): a DECLINE's is the decliner's lease, so a server whose copy is stale
    /// cannot abandon an address another server has since given to another client.
    pub expected: Vec<Binding>,
}

impl Outcome {
    fn drop(reason: DropReason) -> Self {
        Self { dropped: Some(reason), ..Default::default() }
    }
}

/// The engine's settings that do not belong to a subnet.
#[derive(Debug, Clone)]
struct Settings {
    server_id: Ipv4Addr,
    decline_time: u32,
    offer_timeout: u32,
    commit_offers: bool,
    /// 0: no limit.
    max_offers_per_circuit: usize,
    max_offers_per_relay: usize,
}

/// The DHCP engine.
#[derive(Debug)]
pub struct Engine {
    settings: Settings,
    subnets: Vec<Subnet>,
    /// For each subnet, the subnets on its link: its shared network in configuration order (itself alone when
    /// it is in none). A message's selected subnet stands for this whole list.
    links: Vec<Vec<usize>>,
    classes: ClientClasses,
    leases: Leases,
}

impl Engine {
    /// An engine for a configuration, starting from these records.
    pub fn new(config: &Validated, records: impl IntoIterator<Item = Binding>) -> Self {
        Self::load(config, records.into_iter().map(|b| (b.ip, Packed::new(&b))).collect())
    }

    /// An engine for a configuration, starting from the store's records in address order
    /// ([`leasewire_store::LeaseStore::scan_packed`]: the blocks the store keeps, shared).
    pub fn load(config: &Validated, records: Vec<(Ipv4Addr, Packed)>) -> Self {
        let s = config.server();
        let mut e = Self {
            settings: Settings {
                server_id: s.server_id,
                decline_time: s.decline_time,
                offer_timeout: s.offer_timeout,
                commit_offers: s.commit_offers,
                max_offers_per_circuit: s.max_offers_per_circuit,
                max_offers_per_relay: s.max_offers_per_relay,
            },
            subnets: config.subnets.clone(),
            links: config
                .subnets
                .iter()
                .map(|s| config.subnets.iter().enumerate().filter(|(_, o)| o.same_network(s)).map(|(i, _)| i).collect())
                .collect(),
            classes: config.classes.clone(),
            leases: match &config.store {
                crate::config::StoreChoice::Postgres { start_at, .. } => {
                    Leases::starting_at(&config.subnets, *start_at)
                }
                crate::config::StoreChoice::Sqlite => Leases::new(&config.subnets),
            },
        };
        let subnets = &e.subnets;
        e.leases.load(records, |ip| subnets.iter().position(|s| s.net.contains(&ip)));
        e
    }

    /// Take a new configuration (a reload): subnets, pools, options, reservations, lease times and limits
    /// change; every binding record stays, re-filed under the new subnets. A record whose subnet or pool is
    /// gone stays answerable by leasequery; its client's next renewal gets a NAK (the address is no longer
    /// available) and it ends at its expiry like any lease. Offers not committed are forgotten (a client
    /// between DISCOVER and REQUEST gets the requested address if still free, else a NAK and starts over),
    /// and so is the order in which freed addresses are reused. The store's start-at (several servers)
    /// cannot change without a restart and is kept.
    pub fn reconfigure(&mut self, config: &Validated) {
        let records = std::mem::take(&mut self.leases).into_records().collect();
        *self = Self::load(config, records);
    }

    /// The subnets.
    pub fn subnets(&self) -> &[Subnet] {
        &self.subnets
    }

    /// The in-memory record of an address, decoded.
    pub fn binding(&self, ip: Ipv4Addr) -> Option<Binding> {
        self.leases.get(ip).map(|p| p.binding(ip))
    }

    /// Where the metrics count an address: its subnet's index in [`Engine::subnets`], or `subnets().len()`
    /// for an address outside every subnet (e.g. left over from a subnet removed by a reload).
    pub fn slot_of(&self, ip: Ipv4Addr) -> usize {
        self.leases.slot_of(ip)
    }

    /// Records per dhcp-state code in a slot (see [`Engine::slot_of`]), kept up to date with every change.
    pub fn state_counts(&self, slot: usize) -> StateCounts {
        self.leases.counts(slot)
    }

    fn subnet_of(&self, ip: Ipv4Addr) -> Option<usize> {
        self.subnets.iter().position(|s| s.net.contains(&ip))
    }

    /// Handle one DHCP message.
    pub fn handle(&mut self, m: &Message<'_>, rx: Received<'_>) -> Outcome {
        if m.op != Op::BootRequest {
            return Outcome::drop(DropReason::NotARequest);
        }
        let Some(t) = m.message_type() else { return Outcome::drop(DropReason::NoMessageType) };
        let rai = m.options.relay_agent_info();
        let Some(subnet) = self.select_subnet(m, rai.as_ref(), rx) else { return Outcome::drop(DropReason::NoSubnet) };
        let (client, port) = (ClientKey::of_message(m), Port::of_message(m));
        let classes = self.classify_renewal(m, &client).unwrap_or_else(|| self.classify(m, &port));
        let ctx = Ctx { m, rx, subnet, client, port, classes, server_id: self.server_id(rai.as_ref()) };
        match t {
            MessageType::Discover => self.discover(&ctx),
            MessageType::Request => self.request(&ctx),
            MessageType::Decline => self.decline(&ctx),
            MessageType::Release => self.release(&ctx),
            MessageType::Inform => self.inform(&ctx),
            _ => Outcome::drop(DropReason::UnsupportedType),
        }
    }

    /// RFC 3527 link selection, then giaddr, then the receiving interface, then the client's own address.
    fn select_subnet(&self, m: &Message<'_>, rai: Option<&RelayAgentInfo<'_>>, rx: Received<'_>) -> Option<usize> {
        if let Some(link) = rai.and_then(|r| r.link_selection()) {
            return self.subnet_of(link);
        }
        if !m.giaddr.is_unspecified() {
            return self.subnet_of(m.giaddr);
        }
        if let Some(i) = rx.interface {
            return self.subnets.iter().position(|s| s.interface.as_deref() == Some(i));
        }
        if !m.ciaddr.is_unspecified() {
            return self.subnet_of(m.ciaddr);
        }
        (self.subnets.len() == 1).then_some(0)
    }

    /// The classes the client is in, from what its message says (evaluated once per message).
    fn classify(&self, m: &Message<'_>, port: &Port<'_>) -> ClassSet {
        if self.classes.classes.is_empty() {
            return ClassSet::EMPTY;
        }
        self.classes.classify(&Seen {
            vendor_class: m.options.get(code::VENDOR_CLASS),
            user_class: m.options.get(code::USER_CLASS),
            circuit_id: port.circuit_id,
            remote_id: port.remote_id,
            mac: m.hardware_address(),
            giaddr: m.giaddr,
        })
    }

    /// The classes of a client renewing in unicast (RFC 2131 §4.3.2: no giaddr, no option 82, its address in
    /// ciaddr), from the option 82 stored with its lease, as ISC dhcpd's `stash-agent-options` does: the
    /// renewal gets the options its relayed exchange got. A class by giaddr cannot match here (the lease does
    /// not keep the relay's address); the lease itself is kept regardless (`Leases::is_available`).
    fn classify_renewal(&self, m: &Message<'_>, client: &ClientKey) -> Option<ClassSet> {
        if self.classes.classes.is_empty()
            || !m.giaddr.is_unspecified()
            || m.ciaddr.is_unspecified()
            || m.options.get(code::RELAY_AGENT_INFO).is_some()
        {
            return None;
        }
        let lease = self.leases.get(m.ciaddr).filter(|b| b.state() == DhcpState::Active && client.is_of(b))?;
        let rai = lease.relay_agent()?;
        Some(self.classes.classify(&Seen {
            vendor_class: m.options.get(code::VENDOR_CLASS),
            user_class: m.options.get(code::USER_CLASS),
            circuit_id: rai.circuit_id(),
            remote_id: rai.remote_id(),
            mac: m.hardware_address(),
            giaddr: Ipv4Addr::UNSPECIFIED,
        }))
    }

    /// The relay and circuit a message came through (see [`Origin`]).
    fn origin(&self, ctx: &Ctx<'_, '_>) -> Origin {
        let circuit = match ctx.m.options.relay_agent_info().and_then(|r| r.circuit_id().map(<[u8]>::to_vec)) {
            Some(c) => c,
            None => ctx.rx.interface.unwrap_or_default().as_bytes().to_vec(),
        };
        Origin { relay: ctx.m.giaddr, circuit }
    }

    /// RFC 5107: a relay may ask us to use its address as the server identifier.
    fn server_id(&self, rai: Option<&RelayAgentInfo<'_>>) -> Ipv4Addr {
        rai.and_then(|r| r.server_id_override()).unwrap_or(self.settings.server_id)
    }

    /// The subnets on the client's link (its selected subnet's shared network), in configuration order.
    fn link(&self, ctx: &Ctx<'_, '_>) -> &[usize] {
        &self.links[ctx.subnet]
    }

    /// The subnet of `ip`, if it is one on the client's link.
    fn on_link(&self, ctx: &Ctx<'_, '_>, ip: Ipv4Addr) -> Option<usize> {
        self.link(ctx).iter().copied().find(|&s| self.subnets[s].net.contains(&ip))
    }

    /// The client's reservation in any subnet on its link.
    fn reservation(&self, ctx: &Ctx<'_, '_>) -> Option<&Reservation> {
        self.link(ctx)
            .iter()
            .flat_map(|&s| &self.subnets[s].reservations)
            .find(|r| reserved_for(r, &ctx.client, &ctx.port))
    }

    /// Whether `ip` is on the client's link and could be given to it now.
    fn available(&self, ctx: &Ctx<'_, '_>, ip: Ipv4Addr) -> bool {
        self.on_link(ctx, ip).is_some_and(|s| {
            let relayless = ctx.m.giaddr.is_unspecified() && ctx.m.options.get(code::RELAY_AGENT_INFO).is_none();
            self.leases.is_available(&self.subnets, s, ip, &ctx.client, &ctx.port, &ctx.classes, relayless, ctx.rx.now)
        })
    }

    /// The address of the client's current or most recent binding on its link: each subnet of a shared
    /// network keeps its own entry, so of those an ACTIVE lease first, then the latest to change state.
    fn client_address(&self, ctx: &Ctx<'_, '_>) -> Option<Ipv4Addr> {
        self.link(ctx).iter().filter_map(|&s| self.leases.client_address(s, &ctx.client)).max_by_key(|ip| {
            self.leases.get(*ip).map(|b| (b.state() == DhcpState::Active, b.state_since(), u32::from(*ip)))
        })
    }

    /// Reservations whose address an ACTIVE lease of a client other than the reserved one holds. For a
    /// reservation by port, the holder counts as the reserved client when the option 82 stored with its lease
    /// carries the reserved circuit-id / remote-id (the lease does not keep the relay's giaddr).
    pub fn reservation_conflicts(&self) -> Vec<ReservationConflict> {
        let mut out = Vec::new();
        for r in self.subnets.iter().flat_map(|s| &s.reservations) {
            let Some(b) = self.leases.get(r.ip).filter(|b| b.state() == DhcpState::Active) else { continue };
            let by_client = ClientRef::of(b).is_some_and(|k| k.matches(r));
            let rai = b.relay_agent();
            let rai = rai.as_ref();
            let by_port = r.port_matches(
                rai.and_then(|x| x.circuit_id()),
                rai.and_then(|x| x.remote_id()),
                r.giaddr.unwrap_or(Ipv4Addr::UNSPECIFIED),
            );
            if !by_client && !by_port {
                let holder = b.hardware_address().iter().map(|o| format!("{o:02x}")).collect::<Vec<_>>().join(":");
                out.push(ReservationConflict { name: r.name.clone(), ip: r.ip, holder, expires_at: b.expires_at() });
            }
        }
        out
    }

    /// DISCOVER → OFFER. Address choice (RFC 2131 §4.3.1): the client's reservation, its current or previous
    /// binding, an address already offered to it, the requested address if free, else a free address.
    pub fn discover(&mut self, ctx: &Ctx<'_, '_>) -> Outcome {
        let now = ctx.rx.now;
        let candidates = [
            self.reservation(ctx).map(|r| r.ip),
            self.client_address(ctx),
            self.link(ctx).iter().find_map(|&s| self.leases.offered_to(&ctx.client, &self.subnets, s, now)),
            ctx.m.options.requested_ip(),
        ];
        let usable = |ip: &Ipv4Addr| self.available(ctx, *ip);
        // A client the server already knows here (reservation, binding, offer) keeps its address whatever the
        // flood around it; only a new address for a new client counts against the circuit's and relay's limits.
        let known = candidates[..3].iter().flatten().copied().find(usable);
        let origin = self.origin(ctx);
        if known.is_none() {
            let (circuit, relay) = self.leases.offers_from(&origin);
            let s = &self.settings;
            if s.max_offers_per_circuit > 0 && circuit >= s.max_offers_per_circuit {
                return Outcome::drop(DropReason::CircuitOfferLimit);
            }
            if s.max_offers_per_relay > 0 && relay >= s.max_offers_per_relay {
                return Outcome::drop(DropReason::RelayOfferLimit);
            }
        }
        let chosen = known.or_else(|| candidates[3].filter(usable));
        // A new address: the link's subnets in configuration order, each until its pools (for this client's
        // classes) are exhausted.
        let (subnets, leases, link) = (&self.subnets, &mut self.leases, &self.links[ctx.subnet]);
        let Some(ip) =
            chosen.or_else(|| link.iter().find_map(|&s| leases.allocate(subnets, s, &ctx.client, &ctx.classes, now)))
        else {
            return Outcome::drop(DropReason::PoolExhausted);
        };
        self.leases.offer(ip, ctx.client.clone(), now.saturating_add(self.settings.offer_timeout), origin);
        let commit = if self.settings.commit_offers {
            // Visible to leasequery as TRANSITIONING until the client requests it.
            let mut b = self.binding_for(ctx, ip, DhcpState::Transitioning);
            b.expires_at = Some(now.saturating_add(self.settings.offer_timeout));
            vec![b]
        } else {
            Vec::new()
        };
        let reply = self.reply(ctx, MessageType::Offer, ip);
        Outcome { commit, reply: Some(reply), ..Default::default() }
    }

    /// REQUEST in SELECTING, INIT-REBOOT, RENEWING or REBINDING state (RFC 2131 §4.3.2).
    pub fn request(&mut self, ctx: &Ctx<'_, '_>) -> Outcome {
        let m = ctx.m;
        let requested = m.options.requested_ip();
        let ip = match (m.options.server_identifier(), requested) {
            // SELECTING: the client answers an offer.
            (Some(sid), _) if sid != ctx.server_id && sid != self.settings.server_id => {
                self.leases.withdraw_offer(&self.subnets, &ctx.client);
                return Outcome::drop(DropReason::OtherServer);
            }
            (Some(_), Some(ip)) => ip,
            (Some(_), None) => return Outcome::drop(DropReason::NoRequestedAddress),
            // INIT-REBOOT: the client asks to keep an address it remembers.
            (None, Some(ip)) => {
                if self.on_link(ctx, ip).is_none() {
                    return self.nak(ctx, "requested address is not on this network");
                }
                match self.client_address(ctx) {
                    None => return Outcome::drop(DropReason::NoRecord),
                    Some(known) if known != ip => return self.nak(ctx, "requested address is not the client's"),
                    Some(_) => ip,
                }
            }
            // RENEWING / REBINDING: ciaddr is the address.
            (None, None) if !m.ciaddr.is_unspecified() => {
                let ip = m.ciaddr;
                if self.on_link(ctx, ip).is_none() {
                    return self.nak(ctx, "address is not on this network");
                }
                let holder = self.leases.get(ip).and_then(ClientRef::of);
                if holder.is_none() && !self.available(ctx, ip) {
                    return Outcome::drop(DropReason::NoRecord);
                }
                ip
            }
            (None, None) => return Outcome::drop(DropReason::NoRequestedAddress),
        };
        let Some(home) = self.on_link(ctx, ip).filter(|_| self.available(ctx, ip)) else {
            return self.nak(ctx, "requested address is not available");
        };
        if let Some(r) = self.subnets[home].reservations.iter().find(|r| r.ip == ip)
            && !reserved_for(r, &ctx.client, &ctx.port)
        {
            return self.nak(ctx, "requested address is reserved");
        }
        let b = self.active_binding(ctx, ip);
        self.leases.put(Some(home), &b);
        let reply = self.reply(ctx, MessageType::Ack, ip);
        let on_conflict = self.nak(ctx, "address is bound to another client").reply;
        Outcome { commit: vec![b], reply: Some(reply), on_conflict, ..Default::default() }
    }

    /// DECLINE: the client found the address in use; abandon it for `decline-time` (RFC 2131 §4.3.3).
    pub fn decline(&mut self, ctx: &Ctx<'_, '_>) -> Outcome {
        let Some(ip) = ctx.m.options.requested_ip() else { return Outcome::drop(DropReason::NoRequestedAddress) };
        if !self.holds(ctx, ip) {
            return Outcome::drop(DropReason::NotHolder);
        }
        let decliners_lease = self.leases.get(ip).map(|p| p.binding(ip)).expect("holds() checked the record");
        let now = ctx.rx.now;
        let mut b = Binding::new(ip, DhcpState::Abandoned, now);
        b.expires_at = Some(now.saturating_add(self.settings.decline_time));
        b.cltt = Some(now);
        b.relay_agent_info = ctx.m.options.get(code::RELAY_AGENT_INFO).map(<[u8]>::to_vec);
        self.leases.put(self.subnet_of(ip), &b);
        Outcome { commit: vec![b], expected: vec![decliners_lease], ..Default::default() }
    }

    /// RELEASE: the client gives the address back (RFC 2131 §4.3.4). The record keeps the client so a
    /// returning client gets the same address and leasequery can still say who had it.
    pub fn release(&mut self, ctx: &Ctx<'_, '_>) -> Outcome {
        let ip = ctx.m.ciaddr;
        if !self.holds(ctx, ip) {
            return Outcome::drop(DropReason::NotHolder);
        }
        let now = ctx.rx.now;
        let mut b = self.leases.get(ip).map(|p| p.binding(ip)).expect("holds() checked the record");
        b.state = DhcpState::Released;
        b.state_since = now;
        b.expires_at = None;
        b.cltt = Some(now);
        b.data_source = DataSource::LOCAL;
        self.leases.put(self.subnet_of(ip), &b);
        Outcome { commit: vec![b], ..Default::default() }
    }

    /// INFORM: configuration only, no lease (RFC 2131 §4.3.5).
    pub fn inform(&mut self, ctx: &Ctx<'_, '_>) -> Outcome {
        Outcome { reply: Some(self.reply(ctx, MessageType::Ack, Ipv4Addr::UNSPECIFIED)), ..Default::default() }
    }

    fn holds(&self, ctx: &Ctx<'_, '_>, ip: Ipv4Addr) -> bool {
        self.leases.get(ip).is_some_and(|b| b.state() == DhcpState::Active && ctx.client.is_of(b))
    }

    fn binding_for(&self, ctx: &Ctx<'_, '_>, ip: Ipv4Addr, state: DhcpState) -> Binding {
        let m = ctx.m;
        let now = ctx.rx.now;
        let mut b = Binding::new(ip, state, now);
        b.htype = m.htype;
        b.hardware_address = m.hardware_address().to_vec();
        b.client_id = m.options.client_identifier().map(<[u8]>::to_vec);
        b.cltt = Some(now);
        b.relay_agent_info = m.options.get(code::RELAY_AGENT_INFO).map(<[u8]>::to_vec);
        b.options = STORED_OPTIONS.iter().filter_map(|&c| m.options.get(c).map(|d| (c, d.to_vec()))).collect();
        b.reserved_for = self
            .subnet_of(ip)
            .and_then(|s| self.subnets[s].reservations.iter().find(|r| r.ip == ip))
            .map(|r| r.name.clone());
        b
    }

    /// The binding after an ACK: a renewal keeps start-time-of-state, anything else starts ACTIVE now.
    fn active_binding(&self, ctx: &Ctx<'_, '_>, ip: Ipv4Addr) -> Binding {
        let now = ctx.rx.now;
        let mut b = self.binding_for(ctx, ip, DhcpState::Active);
        if let Some(old) = self.leases.get(ip)
            && old.state() == DhcpState::Active
            && ctx.client.is_of(old)
        {
            b.state_since = old.state_since();
            // LQ-6.4.2-9: the most recent option 82 *from the relay* for this address; a renewal unicast to
            // the server bypasses the relay, so the one stored stays.
            if b.relay_agent_info.is_none() && ctx.m.giaddr.is_unspecified() {
                b.relay_agent_info = old.relay_agent_bytes().map(<[u8]>::to_vec);
            }
        }
        let subnet = &self.subnets[self.on_link(ctx, ip).unwrap_or(ctx.subnet)];
        b.expires_at = Some(now.saturating_add(subnet.lease_time));
        // T1 and T2 as this ACK gives them, kept with the binding: leasequery answers for it from these (its
        // own times) rather than from the subnet's settings of the day, which a reload may have changed.
        b.options.push((code::RENEWAL_TIME, subnet.renewal_time.to_be_bytes().to_vec()));
        b.options.push((code::REBINDING_TIME, subnet.rebinding_time.to_be_bytes().to_vec()));
        // The store keeps options in ascending code order.
        b.options.sort_by_key(|(c, _)| *c);
        b
    }

    /// An operator frees an address (`leasewire ctl leases delete`): its binding goes to RESET (RFC 6926
    /// §6.2.7, "freed by an external agent"), the binding to commit. Like a release, the record keeps the
    /// client, so leasequery can still say who had the address, and the address can be handed out again
    /// (to that client first if it comes back). None when the address has no record.
    pub fn reset(&mut self, ip: Ipv4Addr, now: u32) -> Option<Binding> {
        let mut b = self.leases.get(ip)?.binding(ip);
        b.state = DhcpState::Reset;
        b.state_since = now;
        b.expires_at = None;
        b.data_source = DataSource::LOCAL;
        let sn = self.subnet_of(ip);
        self.leases.put(sn, &b);
        Some(b)
    }

    /// Lease expiry and the end of abandonment: the bindings to commit now.
    pub fn tick(&mut self, now: u32) -> Vec<Binding> {
        let mut out = Vec::new();
        for mut b in self.leases.due(&self.subnets, now) {
            let ended = b.expires_at.unwrap_or(now);
            b.state = match b.state {
                DhcpState::Active => DhcpState::Expired,
                _ => DhcpState::Available,
            };
            if b.state == DhcpState::Available {
                b.relay_agent_info = None;
            }
            b.state_since = ended;
            b.expires_at = None;
            b.data_source = DataSource::LOCAL;
            let sn = self.subnet_of(b.ip);
            self.leases.put(sn, &b);
            out.push(b);
        }
        out
    }

    /// Take in a record as the shared store has it now (a change another server committed, or the winner
    /// of a refused commit), replacing what this engine believed.
    pub fn learn(&mut self, b: Binding) {
        let sn = self.subnet_of(b.ip);
        self.leases.put(sn, &b);
    }

    /// Drop what this engine believed about an address the shared store has no record of (a refused commit
    /// for an address nobody holds).
    pub fn unlearn(&mut self, ip: Ipv4Addr) {
        let sn = self.subnet_of(ip);
        self.leases.remove(sn, ip);
    }

    /// Drop records the store forgot, unless the address changed since (the store decides what to forget
    /// atomically with commits; a lease granted while the forget was in flight must stay).
    pub fn forgotten(&mut self, removed: &[Binding]) {
        for r in removed {
            let unchanged = self.leases.get(r.ip).is_some_and(|b| {
                (b.state(), b.state_since(), b.hardware_address()) == (r.state, r.state_since, &r.hardware_address[..])
            });
            if unchanged {
                let sn = self.subnet_of(r.ip);
                self.leases.remove(sn, r.ip);
            }
        }
    }
}

/// What a step needs to know about the message being handled.
#[derive(Debug)]
pub struct Ctx<'m, 'a> {
    m: &'m Message<'a>,
    rx: Received<'m>,
    subnet: usize,
    client: ClientKey,
    port: Port<'m>,
    classes: ClassSet,
    server_id: Ipv4Addr,
}

#[cfg(test)]
mod tests;
