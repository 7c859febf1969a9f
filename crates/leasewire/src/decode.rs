//! `leasewire decode`: print DHCPv4 messages given as hex, the way the codec understands them.

use anyhow::{Context, bail};
use leasewire_proto::framing::FrameDecoder;
use leasewire_proto::{Message, options::code};
use std::fmt::Write as _;
use std::io::BufRead;

pub fn run(hex: Vec<String>, framed: bool) -> anyhow::Result<()> {
    let inputs: Vec<String> = if hex.is_empty() {
        std::io::stdin().lock().lines().collect::<Result<_, _>>().context("reading standard input")?
    } else {
        hex
    };
    let mut failed = 0;
    for (n, line) in inputs.iter().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bytes = parse_hex(line).with_context(|| format!("input {}: not hex", n + 1))?;
        let body = if framed {
            match FrameDecoder::new(usize::MAX).decode(&bytes) {
                Ok(Some((body, _))) => body.to_vec(),
                Ok(None) => {
                    eprintln!("input {}: truncated frame", n + 1);
                    failed += 1;
                    continue;
                }
                Err(e) => {
                    eprintln!("input {}: {e}", n + 1);
                    failed += 1;
                    continue;
                }
            }
        } else {
            bytes
        };
        match Message::decode(&body) {
            Ok(m) => println!("{}", describe(&m)),
            Err(e) => {
                eprintln!("input {}: {e}", n + 1);
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} input(s) did not decode");
    }
    Ok(())
}

fn parse_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    leasewire_proto::hex::parse(s).context("expected hex octets")
}

use leasewire_proto::hex::format as hex;

fn describe(m: &Message<'_>) -> String {
    let mut s = String::new();
    let t = m.message_type().map_or("no message type".to_string(), |t| t.to_string());
    let _ = writeln!(s, "{t} xid={:#010x} op={:?}", m.xid, m.op);
    let _ = writeln!(
        s,
        "  ciaddr={} yiaddr={} siaddr={} giaddr={} chaddr={} (htype {})",
        m.ciaddr,
        m.yiaddr,
        m.siaddr,
        m.giaddr,
        hex(m.hardware_address()),
        m.htype
    );
    for o in m.options.iter() {
        let value = match o.code {
            code::MESSAGE_TYPE => t.clone(),
            code::STATUS_CODE => match m.options.status() {
                Some(Ok(st)) => format!("{} {:?}", st.code, st.message),
                _ => hex(&o.data),
            },
            code::DHCP_STATE => match m.options.dhcp_state() {
                Some(Ok(st)) => st.to_string(),
                _ => hex(&o.data),
            },
            code::SERVER_IDENTIFIER | code::REQUESTED_IP => {
                m.options.get_ip(o.code).map_or_else(|| hex(&o.data), |a| a.to_string())
            }
            code::ASSOCIATED_IP => m.options.associated_ips().map(|a| a.to_string()).collect::<Vec<_>>().join(","),
            code::RELAY_AGENT_INFO => m.options.relay_agent_info().map_or_else(
                || hex(&o.data),
                |r| r.iter().map(|so| format!("{}={}", so.code, hex(so.data))).collect::<Vec<_>>().join(" "),
            ),
            c if o.data.len() == 4 && m.options.get_u32(c).is_some() && is_u32_option(c) => {
                m.options.get_u32(c).unwrap_or_default().to_string()
            }
            _ => hex(&o.data),
        };
        let _ = writeln!(s, "  option {:>3}: {value}", o.code);
    }
    s.trim_end().to_string()
}

fn is_u32_option(c: u8) -> bool {
    matches!(
        c,
        code::LEASE_TIME
            | code::RENEWAL_TIME
            | code::REBINDING_TIME
            | code::CLIENT_LAST_TRANSACTION_TIME
            | code::BASE_TIME
            | code::START_TIME_OF_STATE
            | code::QUERY_START_TIME
            | code::QUERY_END_TIME
    )
}
