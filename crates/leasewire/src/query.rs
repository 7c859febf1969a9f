//! `leasewire query`: one RFC 4388 / RFC 6148 leasequery, printed for a person or as JSON.

use anyhow::{Context, bail};
use leasewire_proto::options::code;
use leasewire_proto::session::requestor::bulk::binding_at;
use leasewire_proto::{Message, MessageType};
use leasewire_requestor::json;
use leasewire_requestor::udp_query::{self, Query, QueryError};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parsed command-line arguments.
pub struct Args {
    pub server: SocketAddrV4,
    pub query: Query,
    pub giaddr: Option<Ipv4Addr>,
    pub json: bool,
    pub timeout: Duration,
}

pub fn parse_hex(what: &str, s: &str) -> anyhow::Result<Vec<u8>> {
    leasewire_server::config::parse_hex(s).with_context(|| format!("{what} {s}: expected hex octets like 01:02:0a"))
}

/// Where replies will come: port 67 of giaddr (RFC 4388 §6.4.3), or our own port through RFC 8357.
struct ReplySocket {
    socket: UdpSocket,
    giaddr: Ipv4Addr,
    /// Why port 67 was not ours, when the reply is asked for at the socket's own port.
    source_port_because: Option<String>,
}

/// Bind where the reply will arrive. Port 67 on giaddr when we can. When the server runs on this host and
/// holds port 67 of the address towards it (the usual case with a server on loopback), another loopback
/// address of ours is an equally good giaddr whose port 67 is free. Otherwise (not root) an ephemeral port
/// with the RFC 8357 relay-source-port sub-option — which a query by remote-id cannot carry (RFC 6148 §4.1:
/// option 82 holds only the remote-id), so that query fails here with what to do.
fn reply_socket(server: SocketAddrV4, giaddr: Option<Ipv4Addr>, query: &Query) -> anyhow::Result<ReplySocket> {
    let chosen = giaddr.is_some();
    let giaddr = match giaddr {
        Some(g) => g,
        None => udp_query::local_address_towards(server).context("finding the local address towards the server")?,
    };
    let e = match UdpSocket::bind((giaddr, 67)) {
        Ok(socket) => return Ok(ReplySocket { socket, giaddr, source_port_because: None }),
        Err(e) => e,
    };
    let in_use = e.kind() == std::io::ErrorKind::AddrInUse;
    if in_use && !chosen && giaddr == *server.ip() && giaddr.is_loopback() {
        for last in 2..=254u8 {
            let other = Ipv4Addr::new(127, 0, 0, last);
            if other != giaddr
                && let Ok(socket) = UdpSocket::bind((other, 67))
            {
                return Ok(ReplySocket { socket, giaddr: other, source_port_because: None });
            }
        }
    }
    let because = if in_use {
        format!("port 67 on {giaddr} is in use (by a DHCP server on this host?)")
    } else {
        format!("port 67 on {giaddr} could not be bound ({e}; it needs root or CAP_NET_BIND_SERVICE)")
    };
    if matches!(query, Query::RemoteId(_)) {
        bail!(
            "{because}: a query by remote-id (RFC 6148) carries only the remote-id in option 82, so the reply can \
             only come to port 67 of giaddr; run as root, or pass --giaddr with an address of this host whose \
             port 67 is free"
        );
    }
    let socket = UdpSocket::bind((giaddr, 0)).with_context(|| format!("binding a socket on {giaddr}"))?;
    Ok(ReplySocket { socket, giaddr, source_port_because: Some(because) })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let server = args.server;
    let ReplySocket { socket, giaddr, source_port_because } = reply_socket(server, args.giaddr, &args.query)?;
    // Connected, so that an ICMP port unreachable (nothing listens there) ends the query at once instead of
    // after the whole timeout. Replies come from the address asked.
    socket.connect(server).with_context(|| format!("connecting to {server}"))?;
    let xid = SystemTime::now().duration_since(UNIX_EPOCH)?.subsec_nanos() ^ std::process::id();
    let q = udp_query::build(
        &args.query,
        xid,
        giaddr,
        leasewire_proto::options::default_prl::UDP,
        source_port_because.is_some(),
    );
    // A one-shot query: the server is not known to answer leasequery (LQ-6.6-2 paces such retries at 10 s).
    let bytes = match udp_query::exchange(&socket, SocketAddr::V4(server), &q, args.timeout, false) {
        Ok(b) => b,
        Err(QueryError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            bail!("{server}: nothing listens there (ICMP port unreachable); is the server running, on that port?")
        }
        Err(e) => {
            let hint = match &source_port_because {
                Some(because) => format!(
                    "; {because}, so the reply was asked for at port {} with the RFC 8357 relay-source-port \
                     sub-option, which servers that always reply to port 67 (ISC dhcpd, Kea) ignore: run as \
                     root, or pass --giaddr with an address of this host whose port 67 is free",
                    socket.local_addr()?.port()
                ),
                None => format!("; the reply was expected at {giaddr}:67"),
            };
            bail!("{e}{hint}");
        }
    };
    let reply = Message::decode(&bytes).context("the reply does not decode")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let server_name = server.to_string();
    if args.json {
        print!("{}", to_json(&reply, &args.query, &server_name, now as u32));
    } else {
        print!("{}", to_text(&reply, &args.query, now));
    }
    Ok(())
}

/// The key asked about, for people.
fn describe(q: &Query) -> String {
    match q {
        Query::Ip(ip) => format!("address {ip}"),
        Query::Hardware(_, mac) => format!("hardware address {}", hex(mac)),
        Query::ClientId(id) => format!("client-id {}", hex(id)),
        Query::RemoteId(id) => format!("remote-id {}", hex(id)),
    }
}

use leasewire_proto::hex::format as hex;

/// Text if printable, else hex.
fn readable(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if !s.is_empty() && s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
        Ok("") => "(empty)".to_string(),
        _ => hex(b),
    }
}

fn at(now: u64, offset: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(now.saturating_add_signed(offset));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The reply in the one binding schema (`leasewire_requestor::json`, docs/json.md), plus `reply`, `hostname`
/// and `associated_ips`. Without base-time in the reply, times are in this host's clock.
fn to_json(r: &Message<'_>, q: &Query, server: &str, now: u32) -> String {
    let o = &r.options;
    let t = r.message_type();
    let src = json::Source { base_time: o.base_time(), server: Some(server), server_id: o.server_identifier() };
    let mut s = String::new();
    match t {
        Some(t @ (MessageType::LeaseActive | MessageType::LeaseUnassigned)) => {
            let (b, _) = binding_at(r, t, now);
            json::open_binding(&mut s, &b, &src);
        }
        _ => {
            let ip = match q {
                Query::Ip(ip) => Some(*ip),
                _ => None,
            };
            json::open_no_binding(&mut s, ip, &src);
        }
    }
    json::field(&mut s, "reply", t.map(MessageType::name));
    json::field(&mut s, "hostname", o.get(code::HOST_NAME).map(|h| String::from_utf8_lossy(h)).as_deref());
    let assoc: Vec<String> = o.associated_ips().map(|a| format!("\"{a}\"")).collect();
    json::raw_field(&mut s, "associated_ips", &format!("[{}]", assoc.join(",")));
    json::close(&mut s);
    s
}

fn to_text(r: &Message<'_>, q: &Query, now: u64) -> String {
    use std::fmt::Write;
    let o = &r.options;
    let mut s = String::new();
    let sid = o.server_identifier().map(|a| format!(" (server {a})")).unwrap_or_default();
    match r.message_type() {
        Some(MessageType::LeaseUnknown) => {
            let _ = writeln!(s, "no binding: the server does not know {} (DHCPLEASEUNKNOWN){sid}", describe(q));
            return s;
        }
        Some(MessageType::LeaseUnassigned) if !matches!(q, Query::Ip(_)) => {
            let _ = writeln!(s, "no binding: {} has no lease (DHCPLEASEUNASSIGNED){sid}", describe(q));
            return s;
        }
        Some(MessageType::LeaseUnassigned) => {
            let _ = writeln!(s, "no binding: {} is not leased to anyone (DHCPLEASEUNASSIGNED){sid}", r.ciaddr);
        }
        _ => {}
    }
    let t = r.message_type().map_or("(no type)", MessageType::name);
    let sid = o.server_identifier().map(|a| format!(" from {a}")).unwrap_or_default();
    let _ = writeln!(s, "{t} for {}{sid}", r.ciaddr);
    if r.hlen > 0 {
        let _ = writeln!(s, "  client        {} (htype {})", hex(r.hardware_address()), r.htype);
    }
    if let Some(id) = o.client_identifier() {
        let _ = writeln!(s, "  client-id     {}", hex(id));
    }
    if let Some(h) = o.get(code::HOST_NAME) {
        let _ = writeln!(s, "  hostname      {}", readable(h));
    }
    if let Some(l) = o.lease_time() {
        let _ = writeln!(s, "  lease         {l} s remaining, expires {}", at(now, l as i64));
    }
    if let (Some(t1), Some(t2)) = (o.get_u32(code::RENEWAL_TIME), o.get_u32(code::REBINDING_TIME)) {
        let _ = writeln!(s, "  renew/rebind  in {t1} s / {t2} s");
    }
    if let Some(c) = o.client_last_transaction_time() {
        let _ = writeln!(s, "  last contact  {c} s ago ({})", at(now, -(c as i64)));
    }
    if let Some(r) = o.relay_agent_info() {
        let parts: Vec<String> = r
            .iter()
            .map(|so| {
                let name = match so.code {
                    1 => "circuit-id".to_string(),
                    2 => "remote-id".to_string(),
                    12 => "relay-id".to_string(),
                    c => format!("sub-option {c}"),
                };
                format!("{name} {}", readable(so.data))
            })
            .collect();
        let _ = writeln!(s, "  relay         {}", parts.join(", "));
    }
    let assoc: Vec<String> = o.associated_ips().map(|a| a.to_string()).collect();
    if !assoc.is_empty() {
        let _ = writeln!(s, "  associated    {}", assoc.join(", "));
    }
    s
}
