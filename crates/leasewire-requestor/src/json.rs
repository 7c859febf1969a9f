//! The one JSON form of a binding, shared by every producer: `leasewire query --json`, `bulk --json`,
//! `watch --json`, the watcher's `/bindings` and the history API. `docs/json.md` is its reference; a test
//! (`crates/leasewire/tests/json_schema.rs`) runs every producer and checks its output with [`validate`].
//!
//! The rules: every field of [`FIELDS`] is always present (an absent value is `null`, never `""` or a
//! missing key); `version` comes first and changes only when a field changes meaning or goes away (adding a
//! field does not change it); every time is given twice, as RFC 3339 (`expires_at`) and as seconds since
//! 1970 (`expires_at_epoch`), in the server's clock; octet strings are colon-separated lowercase hex. A
//! producer may add the fields of [`EXTRAS`] after the common ones.
//!
//! Written directly (no value tree): this runs once per binding, a million times for a large bulk query.
//!
//! Compiled unconditionally, not behind the `http` feature: the schema has one owner, and both the HTTP
//! endpoint and the CLI (`query`, `bulk`, `watch`, `history --json`, built without caring which features an
//! embedder picks) produce it. It costs no dependency the crate does not already have.

use crate::history::Interval;
use leasewire_proto::Binding;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::{Duration, UNIX_EPOCH};

pub use leasewire_proto::hex::format as hex;
use leasewire_proto::hex::push as push_hex;

/// The schema version, the first field of every object.
pub const VERSION: u32 = 1;

/// What a field holds (for [`validate`] and the reference in docs/json.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The schema version, a number.
    Version,
    /// An IPv4 address in dotted form.
    Ip,
    /// A name from a fixed set (a dhcp-state, a data source).
    Name,
    /// A small number.
    Number,
    /// Octets as colon-separated lowercase hex (`02:00:0a`).
    Hex,
    /// A time as RFC 3339 (`2026-12-03T05:02:23Z`); the field named `<name>_epoch` holds the same time.
    Time,
    /// A time in seconds since 1970 (the pair of a [`Kind::Time`] field).
    Epoch,
    /// Free text (e.g. `IP:PORT` of a server).
    Text,
    /// `true` or `false`.
    Bool,
}

/// The common fields, in output order: name, kind, and what it means.
pub const FIELDS: &[(&str, Kind, &str)] = &[
    ("version", Kind::Version, "schema version (1)"),
    ("ip", Kind::Ip, "the address the binding is about"),
    (
        "state",
        Kind::Name,
        "RFC 6926 dhcp-state name: ACTIVE, AVAILABLE, RELEASED, EXPIRED, ABANDONED, RESET, REMOTE, TRANSITIONING",
    ),
    ("htype", Kind::Number, "hardware type of `mac` (1 = Ethernet)"),
    ("mac", Kind::Hex, "the client's hardware address (chaddr)"),
    ("client_id", Kind::Hex, "the client identifier (option 61)"),
    ("state_since", Kind::Time, "when the current state began"),
    ("state_since_epoch", Kind::Epoch, "the same, seconds since 1970"),
    ("expires_at", Kind::Time, "end of the lease (or of another timed state)"),
    ("expires_at_epoch", Kind::Epoch, "the same, seconds since 1970"),
    ("cltt", Kind::Time, "client-last-transaction-time: when the server last heard from the client"),
    ("cltt_epoch", Kind::Epoch, "the same, seconds since 1970"),
    ("base_time", Kind::Time, "the server's clock when it sent this binding (RFC 6926 base-time)"),
    ("base_time_epoch", Kind::Epoch, "the same, seconds since 1970"),
    ("remote_id", Kind::Hex, "relay agent remote-id (option 82 sub-option 2)"),
    ("relay_id", Kind::Hex, "relay agent relay-id (option 82 sub-option 12)"),
    ("circuit_id", Kind::Hex, "relay agent circuit-id (option 82 sub-option 1)"),
    ("data_source", Kind::Name, "`local` or `remote` (RFC 6926 data-source: made by this server or by another)"),
    ("server", Kind::Text, "the server that answered, as the requestor reached it (`IP:PORT`)"),
    ("server_id", Kind::Ip, "the server identifier (option 54) the server gave, when it gave one"),
];

/// Fields a producer may add after the common ones: name, kind, and who adds it.
pub const EXTRAS: &[(&str, Kind, &str)] = &[
    ("reply", Kind::Name, "query: the reply's message type (DHCPLEASEACTIVE, DHCPLEASEUNASSIGNED, DHCPLEASEUNKNOWN)"),
    ("hostname", Kind::Text, "query: the client's host name (option 12), when the server gave it"),
    ("associated_ips", Kind::Text, "query: a list of the client's other addresses (option 92), possibly empty"),
    ("held", Kind::Bool, "history: a client held the address during the interval (else it was free)"),
    ("from", Kind::Time, "history: start of the interval (server clock)"),
    ("from_epoch", Kind::Epoch, "the same, seconds since 1970"),
    ("to", Kind::Time, "history: end of the interval; null while it lasts"),
    ("to_epoch", Kind::Epoch, "the same, seconds since 1970"),
    ("seen", Kind::Time, "history: the requestor's clock when the interval's first change arrived"),
    ("seen_epoch", Kind::Epoch, "the same, seconds since 1970"),
    ("events", Kind::Number, "history: changes merged into the interval (a lease and its renewals)"),
    ("inferred", Kind::Bool, "history: free because the lease end passed, before any message said so"),
];

/// Where a binding came from, beside the binding itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Source<'a> {
    /// The server's clock when it sent the binding.
    pub base_time: Option<u32>,
    /// The server as the requestor reached it (`IP:PORT`).
    pub server: Option<&'a str>,
    /// The server identifier the server gave.
    pub server_id: Option<Ipv4Addr>,
}

fn key(s: &mut String, name: &str) {
    let _ = write!(s, ",\"{name}\":");
}

fn opt_hex(s: &mut String, name: &str, v: Option<&[u8]>) {
    key(s, name);
    match v {
        Some(v) => {
            s.push('"');
            push_hex(s, v);
            s.push('"');
        }
        None => s.push_str("null"),
    }
}

fn opt_display(s: &mut String, name: &str, v: Option<impl std::fmt::Display>) {
    key(s, name);
    let _ = match v {
        Some(v) => write!(s, "\"{v}\""),
        None => write!(s, "null"),
    };
}

/// Add a time as the pair `name` (RFC 3339) and `name_epoch` (an [`EXTRAS`] time).
pub fn time_field(s: &mut String, name: &str, v: Option<u32>) {
    time(s, name, v);
}

/// A time as the pair `name` (RFC 3339) and `name_epoch`.
fn time(s: &mut String, name: &str, v: Option<u32>) {
    match v {
        Some(t) => {
            let at = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(u64::from(t)));
            let _ = write!(s, ",\"{name}\":\"{at}\",\"{name}_epoch\":{t}");
        }
        None => {
            let _ = write!(s, ",\"{name}\":null,\"{name}_epoch\":null");
        }
    }
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

fn source(s: &mut String, src: &Source<'_>) {
    key(s, "server");
    match src.server {
        Some(v) => push_str(s, v),
        None => s.push_str("null"),
    }
    opt_display(s, "server_id", src.server_id);
}

/// Start a binding object: the common fields, without the closing brace, so callers can add [`EXTRAS`] with
/// [`field`] before [`close`].
pub fn open_binding(s: &mut String, b: &Binding, src: &Source<'_>) {
    let _ = write!(s, "{{\"version\":{VERSION},\"ip\":\"{}\",\"state\":\"{}\"", b.ip, b.state.name());
    let has_client = !b.hardware_address.is_empty();
    key(s, "htype");
    let _ = if has_client { write!(s, "{}", b.htype) } else { write!(s, "null") };
    opt_hex(s, "mac", Some(&b.hardware_address[..]).filter(|_| has_client));
    opt_hex(s, "client_id", b.client_id.as_deref());
    time(s, "state_since", b.state_since());
    time(s, "expires_at", b.expires_at);
    time(s, "cltt", b.cltt);
    time(s, "base_time", src.base_time);
    let rai = b.relay_agent();
    opt_hex(s, "remote_id", rai.and_then(|r| r.remote_id()));
    opt_hex(s, "relay_id", rai.and_then(|r| r.relay_id()));
    opt_hex(s, "circuit_id", rai.and_then(|r| r.circuit_id()));
    let _ = write!(s, ",\"data_source\":\"{}\"", if b.data_source.is_remote() { "remote" } else { "local" });
    source(s, src);
}

/// Start the object of a query that found no binding: every common field null but `version`, the `ip` asked
/// about (if the query was by address) and where the answer came from.
pub fn open_no_binding(s: &mut String, ip: Option<Ipv4Addr>, src: &Source<'_>) {
    let _ = write!(s, "{{\"version\":{VERSION}");
    opt_display(s, "ip", ip);
    for name in ["state", "htype", "mac", "client_id"] {
        let _ = write!(s, ",\"{name}\":null");
    }
    for name in ["state_since", "expires_at", "cltt"] {
        time(s, name, None);
    }
    time(s, "base_time", src.base_time);
    for name in ["remote_id", "relay_id", "circuit_id", "data_source"] {
        let _ = write!(s, ",\"{name}\":null");
    }
    source(s, src);
}

/// Add a string field (`None` is null).
pub fn field(s: &mut String, name: &str, v: Option<&str>) {
    key(s, name);
    match v {
        Some(v) => push_str(s, v),
        None => s.push_str("null"),
    }
}

/// Add a field whose value is already JSON (e.g. an array).
pub fn raw_field(s: &mut String, name: &str, json: &str) {
    key(s, name);
    s.push_str(json);
}

/// End an object and its line.
pub fn close(s: &mut String) {
    s.push_str("}\n");
}

/// A whole line for `b`, ending in a newline.
pub fn binding_line(b: &Binding, src: &Source<'_>) -> String {
    let mut s = String::with_capacity(480);
    open_binding(&mut s, b, src);
    close(&mut s);
    s
}

/// One history interval as a line: the binding object for the address as it stood during the interval, then
/// the history fields of [`EXTRAS`] (`held`, `from`, `to`, `seen`, `events`, `inferred`). What `/history`
/// serves and `leasewire history --json` prints (docs/history.md).
pub fn interval_line(i: &Interval) -> String {
    let mut s = String::with_capacity(640);
    let src = Source { base_time: None, server: Some(&i.server), server_id: None };
    open_binding(&mut s, &i.binding(), &src);
    raw_field(&mut s, "held", if i.held() { "true" } else { "false" });
    time_field(&mut s, "from", Some(i.from));
    time_field(&mut s, "to", i.to);
    time_field(&mut s, "seen", Some(i.seen));
    raw_field(&mut s, "events", &i.events.to_string());
    raw_field(&mut s, "inferred", if i.inferred { "true" } else { "false" });
    close(&mut s);
    s
}

/// Why a JSON value is not a binding of this schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem} (in {object})")]
pub struct SchemaError {
    /// The field at fault.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
    /// The object, for the message.
    pub object: String,
}

/// Check that `v` is a binding object of this schema: every common field present, each value
/// of its kind or null, each `_epoch` equal to its RFC 3339 twin, and nothing but [`EXTRAS`] added.
pub fn validate(v: &serde_json::Value) -> Result<(), SchemaError> {
    let fail = |field: &str, problem: String| SchemaError { field: field.into(), problem, object: v.to_string() };
    let obj = v.as_object().ok_or_else(|| fail("(object)", "not a JSON object".into()))?;
    if let Some((missing, ..)) = FIELDS.iter().find(|f| !obj.contains_key(f.0)) {
        return Err(fail(missing, "missing (every common field is always present, null when absent)".into()));
    }
    for name in obj.keys() {
        if !FIELDS.iter().chain(EXTRAS).any(|f| f.0 == name) {
            return Err(fail(name, "not a field of the schema (add it to EXTRAS and docs/json.md)".into()));
        }
    }
    if obj["version"] != serde_json::json!(VERSION) {
        return Err(fail("version", format!("must be {VERSION}")));
    }
    for (name, kind, _) in FIELDS.iter().chain(EXTRAS).filter(|f| obj.contains_key(f.0)) {
        let value = &obj[*name];
        if value.is_null() {
            continue;
        }
        let ok = match kind {
            Kind::Version => true,
            Kind::Ip => value.as_str().is_some_and(|s| s.parse::<Ipv4Addr>().is_ok()),
            Kind::Name | Kind::Text => value.is_string() || (*name == "associated_ips" && value.is_array()),
            Kind::Number => value.as_u64().is_some(),
            Kind::Bool => value.is_boolean(),
            Kind::Hex => value
                .as_str()
                .and_then(leasewire_proto::hex::parse)
                .is_some_and(|b| !b.is_empty() && hex(&b) == value.as_str().unwrap_or_default()),
            Kind::Epoch => value.as_u64().is_some_and(|e| e <= u64::from(u32::MAX)),
            Kind::Time => {
                let epoch = &obj[&format!("{name}_epoch")];
                match (value.as_str().map(humantime::parse_rfc3339), epoch.as_u64()) {
                    (Some(Ok(t)), Some(e)) => t.duration_since(UNIX_EPOCH).is_ok_and(|d| d.as_secs() == e),
                    _ => false,
                }
            }
        };
        if !ok {
            return Err(fail(name, format!("{value} is not a valid {kind:?}")));
        }
    }
    for (name, kind, _) in FIELDS {
        if *kind == Kind::Epoch {
            let twin = name.trim_end_matches("_epoch");
            if obj[*name].is_null() != obj[twin].is_null() {
                return Err(fail(name, format!("null exactly when {twin} is null")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasewire_proto::{DhcpState, RelayAgentInfoBuilder};

    #[test]
    fn a_line_is_one_valid_object_with_every_field() {
        let mut b = Binding::new(Ipv4Addr::new(10, 0, 0, 7), DhcpState::Active, 100);
        b.htype = 1;
        b.hardware_address = vec![2, 0, 0, 0, 0, 0xab];
        b.expires_at = Some(3700);
        b.relay_agent_info = Some(RelayAgentInfoBuilder::new().circuit_id(b"eth0").remote_id(b"r\"1").build());
        let mut line = String::new();
        let src = Source { base_time: Some(200), server: Some("127.0.0.1:67"), server_id: None };
        open_binding(&mut line, &b, &src);
        field(&mut line, "hostname", Some("a\"b\n"));
        close(&mut line);
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1);
        for part in [
            "{\"version\":1,\"ip\":\"10.0.0.7\"",
            "\"state\":\"ACTIVE\"",
            "\"mac\":\"02:00:00:00:00:ab\"",
            "\"expires_at\":\"1970-01-01T01:01:40Z\",\"expires_at_epoch\":3700",
            "\"cltt\":null,\"cltt_epoch\":null",
            "\"circuit_id\":\"65:74:68:30\"",
            "\"server\":\"127.0.0.1:67\",\"server_id\":null",
            "\"hostname\":\"a\\\"b\\u000a\"",
        ] {
            assert!(line.contains(part), "{part} in {line}");
        }
        validate(&serde_json::from_str(&line).unwrap()).unwrap();
    }

    #[test]
    fn an_address_without_a_client_has_null_not_empty_client_fields() {
        let b = Binding::new(Ipv4Addr::new(10, 0, 0, 8), DhcpState::Available, 5);
        let v: serde_json::Value = serde_json::from_str(&binding_line(&b, &Source::default())).unwrap();
        validate(&v).unwrap();
        assert!(v["mac"].is_null() && v["htype"].is_null() && v["client_id"].is_null(), "{v}");
        let mut s = String::new();
        open_no_binding(&mut s, None, &Source { server: Some("10.0.0.1:67"), ..Default::default() });
        field(&mut s, "reply", Some("DHCPLEASEUNKNOWN"));
        close(&mut s);
        validate(&serde_json::from_str(&s).unwrap()).unwrap();
    }

    #[test]
    fn validate_refuses_what_the_schema_does_not_say() {
        let b = Binding::new(Ipv4Addr::new(10, 0, 0, 8), DhcpState::Active, 5);
        let good: serde_json::Value = serde_json::from_str(&binding_line(&b, &Source::default())).unwrap();
        let edit = |f: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>)| {
            let mut v = good.clone();
            f(v.as_object_mut().unwrap());
            validate(&v).unwrap_err().field
        };
        assert_eq!(
            edit(&|o| {
                o.remove("server");
            }),
            "server"
        );
        assert_eq!(
            edit(&|o| {
                o.insert("colour".into(), "red".into());
            }),
            "colour"
        );
        assert_eq!(
            edit(&|o| {
                o.insert("mac".into(), "".into());
            }),
            "mac"
        );
        assert_eq!(
            edit(&|o| {
                o.insert("state_since_epoch".into(), 6.into());
            }),
            "state_since"
        );
        assert_eq!(
            edit(&|o| {
                o.insert("version".into(), 2.into());
            }),
            "version"
        );
    }

    fn interval() -> Interval {
        Interval {
            ip: Ipv4Addr::new(10, 1, 2, 3),
            state: DhcpState::Active,
            from: 1_764_597_900,
            to: None,
            lease_end: Some(1_764_601_500),
            htype: 1,
            mac: vec![2, 0, 0, 0, 0, 1],
            client_id: None,
            circuit_id: Some(b"p1".to_vec()),
            relay_agent_info: Some(RelayAgentInfoBuilder::new().circuit_id(b"p1").build()),
            remote: false,
            remote_id: None,
            relay_id: None,
            server: "127.0.0.1:67".into(),
            seen: 1_764_597_901,
            events: 2,
            inferred: false,
        }
    }

    #[test]
    fn an_interval_is_a_binding_of_the_one_schema_with_the_history_fields() {
        let j = interval_line(&interval());
        assert!(j.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        validate(&v).unwrap();
        for (k, want) in [
            ("version", serde_json::json!(1)),
            ("ip", "10.1.2.3".into()),
            ("held", true.into()),
            ("from", "2025-12-01T14:05:00Z".into()),
            ("from_epoch", 1_764_597_900.into()),
            ("state_since_epoch", 1_764_597_900.into()),
            ("to", serde_json::Value::Null),
            ("mac", "02:00:00:00:00:01".into()),
            ("client_id", serde_json::Value::Null),
            ("circuit_id", "70:31".into()),
            ("expires_at_epoch", 1_764_601_500.into()),
        ] {
            assert_eq!(v[k], want, "{k} in {j}");
        }
    }
}
