//! Bindings as JSON lines: the output contract of `leasewire bulk --json` and `leasewire watch --json`.
//! Written directly (no value tree): this runs once per binding, a million times for a large bulk query.
//!
//! Fields: `ip`, `state` (RFC 6926 dhcp-state name), `htype`, `mac`, `client_id`, `state_since`,
//! `expires_at`, `cltt` (seconds since 1970, server clock), `base_time`, `remote_id`, `relay_id`,
//! `circuit_id` (hex, colon-separated), `data_source` (`local`/`remote`), then what the caller adds
//! (`server_id`, `server`).

use leasewire_proto::Binding;
use std::fmt::Write as _;

pub use leasewire_proto::hex::format as hex;
use leasewire_proto::hex::push as push_hex;

fn opt_hex(s: &mut String, name: &str, v: Option<&[u8]>) {
    let _ = write!(s, ",\"{name}\":");
    match v {
        Some(v) => {
            s.push('"');
            push_hex(s, v);
            s.push('"');
        }
        None => s.push_str("null"),
    }
}

fn opt_num(s: &mut String, name: &str, v: Option<u32>) {
    let _ = match v {
        Some(v) => write!(s, ",\"{name}\":{v}"),
        None => write!(s, ",\"{name}\":null"),
    };
}

/// A JSON string (quotes and escapes).
fn push_str(s: &mut String, v: &str) {
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

/// Start a binding object: everything but the closing brace, so callers can add fields with [`field`].
pub fn open_binding(s: &mut String, b: &Binding, base_time: Option<u32>) {
    let _ = write!(s, "{{\"ip\":\"{}\",\"state\":\"{}\",\"htype\":{}", b.ip, b.state.name(), b.htype);
    opt_hex(s, "mac", Some(&b.hardware_address));
    opt_hex(s, "client_id", b.client_id.as_deref());
    opt_num(s, "state_since", Some(b.state_since));
    opt_num(s, "expires_at", b.expires_at);
    opt_num(s, "cltt", b.cltt);
    opt_num(s, "base_time", base_time);
    let rai = b.relay_agent();
    opt_hex(s, "remote_id", rai.and_then(|r| r.remote_id()));
    opt_hex(s, "relay_id", rai.and_then(|r| r.relay_id()));
    opt_hex(s, "circuit_id", rai.and_then(|r| r.circuit_id()));
    let _ = write!(s, ",\"data_source\":\"{}\"", if b.data_source.is_remote() { "remote" } else { "local" });
}

/// Add a string field (`None` is null).
pub fn field(s: &mut String, name: &str, v: Option<&str>) {
    let _ = write!(s, ",\"{name}\":");
    match v {
        Some(v) => push_str(s, v),
        None => s.push_str("null"),
    }
}

/// A whole line for `b`, with extra string fields, ending in a newline.
pub fn binding_line(b: &Binding, base_time: Option<u32>, extra: &[(&str, Option<&str>)]) -> String {
    let mut s = String::with_capacity(320);
    open_binding(&mut s, b, base_time);
    for (name, v) in extra {
        field(&mut s, name, *v);
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasewire_proto::{DhcpState, RelayAgentInfoBuilder};
    use std::net::Ipv4Addr;

    #[test]
    fn a_line_is_one_valid_object_with_every_field() {
        let mut b = Binding::new(Ipv4Addr::new(10, 0, 0, 7), DhcpState::Active, 100);
        b.htype = 1;
        b.hardware_address = vec![2, 0, 0, 0, 0, 0xab];
        b.expires_at = Some(3700);
        b.relay_agent_info = Some(RelayAgentInfoBuilder::new().circuit_id(b"eth0").remote_id(b"r\"1").build());
        let line = binding_line(&b, Some(200), &[("server", Some("127.0.0.1:67")), ("note", Some("a\"b\n"))]);
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1);
        for part in [
            "\"ip\":\"10.0.0.7\"",
            "\"state\":\"ACTIVE\"",
            "\"mac\":\"02:00:00:00:00:ab\"",
            "\"expires_at\":3700",
            "\"cltt\":null",
            "\"circuit_id\":\"65:74:68:30\"",
            "\"server\":\"127.0.0.1:67\"",
            "\"note\":\"a\\\"b\\u000a\"",
        ] {
            assert!(line.contains(part), "{part} in {line}");
        }
    }
}
