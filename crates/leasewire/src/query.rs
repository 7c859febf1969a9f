//! `leasewire query`: one RFC 4388 / RFC 6148 leasequery, printed for a person or as JSON.

use anyhow::{Context, bail};
use leasewire_proto::options::code;
use leasewire_proto::{Message, MessageType};
use leasewire_requestor::leasequery::{self, Query};
use serde_json::json;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parsed command-line arguments.
pub struct Args {
    pub server: String,
    pub query: Query,
    pub giaddr: Option<Ipv4Addr>,
    pub json: bool,
    pub timeout: Duration,
}

pub fn parse_server(s: &str) -> anyhow::Result<SocketAddrV4> {
    if let Ok(a) = s.parse::<SocketAddrV4>() {
        return Ok(a);
    }
    let ip: Ipv4Addr =
        s.parse().with_context(|| format!("--server {s}: expected an IPv4 address, optionally with :port"))?;
    Ok(SocketAddrV4::new(ip, 67))
}

pub fn parse_hex(what: &str, s: &str) -> anyhow::Result<Vec<u8>> {
    leasewire_server::config::parse_hex(s).with_context(|| format!("{what} {s}: expected hex octets like 01:02:0a"))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let server = parse_server(&args.server)?;
    let giaddr = match args.giaddr {
        Some(g) => g,
        None => leasequery::local_address_towards(server).context("finding the local address towards the server")?,
    };
    // RFC 4388 replies go to giaddr:67. Without port 67 (not root, or a server on this address), ask for the
    // reply at our own port with the RFC 8357 sub-option (leasewire honours it; ISC dhcpd does not).
    let (socket, source_port) = match UdpSocket::bind((giaddr, 67)) {
        Ok(s) => (s, false),
        Err(_) => (UdpSocket::bind((giaddr, 0)).with_context(|| format!("binding a socket on {giaddr}"))?, true),
    };
    let xid = SystemTime::now().duration_since(UNIX_EPOCH)?.subsec_nanos() ^ std::process::id();
    let q = leasequery::build(&args.query, xid, giaddr, leasequery::DEFAULT_PRL, source_port);
    let bytes = match leasequery::exchange(&socket, SocketAddr::V4(server), &q, args.timeout) {
        Ok(b) => b,
        Err(e) => {
            let hint = if source_port {
                format!(
                    " (replies were requested at port {} with RFC 8357; a server that only replies to port 67 needs this run as root)",
                    socket.local_addr()?.port()
                )
            } else {
                String::new()
            };
            bail!("{e}{hint}");
        }
    };
    let reply = Message::decode(&bytes).context("the reply does not decode")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    if args.json {
        println!("{}", to_json(&reply, now));
    } else {
        print!("{}", to_text(&reply, now));
    }
    Ok(())
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

fn to_json(r: &Message<'_>, now: u64) -> serde_json::Value {
    let o = &r.options;
    let rai = o.relay_agent_info();
    json!({
        "type": r.message_type().map(|t| t.name()),
        "xid": r.xid,
        "ip": r.ciaddr.to_string(),
        "server_id": o.server_identifier().map(|a| a.to_string()),
        "htype": r.htype,
        "mac": (r.hlen > 0).then(|| hex(r.hardware_address())),
        "client_id": o.client_identifier().map(hex),
        "lease_remaining": o.lease_time(),
        "lease_expires": o.lease_time().map(|s| at(now, s as i64)),
        "renewal_in": o.get_u32(code::RENEWAL_TIME),
        "rebinding_in": o.get_u32(code::REBINDING_TIME),
        "last_transaction_ago": o.client_last_transaction_time(),
        "last_transaction": o.client_last_transaction_time().map(|s| at(now, -(s as i64))),
        "relay": rai.map(|r| json!({
            "circuit_id": r.circuit_id().map(hex),
            "remote_id": r.remote_id().map(hex),
            "relay_id": r.relay_id().map(hex),
            "raw": hex(r.as_bytes()),
        })),
        "associated_ips": o.associated_ips().map(|a| a.to_string()).collect::<Vec<_>>(),
        "hostname": o.get(code::HOST_NAME).map(|h| String::from_utf8_lossy(h).into_owned()),
    })
}

fn to_text(r: &Message<'_>, now: u64) -> String {
    use std::fmt::Write;
    let o = &r.options;
    let mut s = String::new();
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
