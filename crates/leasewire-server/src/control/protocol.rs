//! The control socket's protocol: newline-delimited JSON over a Unix stream socket, one request per line, one
//! response line per request, in order. Every message carries `"version": 1`; a server refuses a request of
//! another version (so an old `leasewire ctl` talking to a newer server, or the reverse, fails clearly).
//!
//! ```text
//! → {"version":1,"command":"leases_list","state":"ACTIVE","subnet":"10.0.0.0/24","limit":100}
//! ← {"version":1,"ok":true,"result":{"leases":[{"ip":"10.0.0.5","state":"ACTIVE",...}],"next_after":"10.0.0.5"}}
//! → {"version":1,"command":"leases_delete","ip":"10.0.0.5"}
//! ← {"version":1,"ok":false,"error":"no binding for 10.0.0.5"}
//! ```
//!
//! The commands, their fields and their results are documented in docs/operations.md; the types here are
//! the contract (the server and `leasewire ctl` both use them).

use leasewire_proto::{Binding, DhcpState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// Longest request line the server reads (a request is a few hundred octets).
pub const MAX_LINE: usize = 64 * 1024;

/// Most leases one `leases_list` response carries; page with `after` for more.
pub const MAX_LIMIT: usize = 10_000;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// [`VERSION`].
    pub version: u32,
    /// What to do.
    #[serde(flatten)]
    pub command: Command,
}

impl Request {
    /// A request of this build's version.
    pub fn new(command: Command) -> Self {
        Self { version: VERSION, command }
    }
}

/// The commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Version, uptime, configuration file and hash, bindings by subnet and state, connections by kind:
    /// [`Status`].
    Status,
    /// Read the configuration file again and apply it: [`Reloaded`].
    Reload,
    /// Bindings matching every given filter, ascending by address, a page at a time: [`LeaseList`].
    LeasesList(ListQuery),
    /// The bindings of an address, hardware address or client identifier: [`LeaseList`] (no paging).
    LeasesGet {
        /// `10.0.0.5`, `aa:bb:cc:dd:ee:ff` (6 octets: a MAC; if none matches, a client-id) or a client-id
        /// in hex.
        key: String,
    },
    /// Free an address: its binding goes to RESET, durably, and is published like any change: [`Deleted`].
    LeasesDelete {
        /// The address.
        ip: Ipv4Addr,
    },
    /// The configuration in effect, defaults filled in: [`ConfigText`].
    ConfigShow,
}

impl Command {
    /// The label of `leasewire_control_requests_total{command}`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Reload => "reload",
            Self::LeasesList(_) => "leases_list",
            Self::LeasesGet { .. } => "leases_get",
            Self::LeasesDelete { .. } => "leases_delete",
            Self::ConfigShow => "config_show",
        }
    }
}

/// The filters and page of `leases_list`; absent filters match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// A dhcp-state name (`ACTIVE`, `RELEASED`, ...; any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// A prefix, `10.0.0.0/24`: addresses inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Relay Agent Identifier (option 82 sub-option 12), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_id: Option<String>,
    /// Agent Remote ID (option 82 sub-option 2), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// The first octets of the hardware address, hex (`aa:bb:cc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_prefix: Option<String>,
    /// At most this many (default 1,000, at most [`MAX_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Only addresses after this one: the previous page's `next_after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Ipv4Addr>,
}

/// One response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// [`VERSION`].
    pub version: u32,
    /// Whether the command succeeded.
    pub ok: bool,
    /// What went wrong, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The command's result, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

impl Response {
    /// Success with a result.
    pub fn ok(result: impl Serialize) -> Self {
        match serde_json::to_value(result) {
            Ok(v) => Self { version: VERSION, ok: true, error: None, result: Some(v) },
            Err(e) => Self::error(format!("cannot encode the result: {e}")),
        }
    }

    /// Failure.
    pub fn error(message: impl Into<String>) -> Self {
        Self { version: VERSION, ok: false, error: Some(message.into()), result: None }
    }

    /// The result as `T`, or the error.
    pub fn into_result<T: serde::de::DeserializeOwned>(self) -> Result<T, String> {
        match (self.ok, self.result) {
            (true, Some(v)) => serde_json::from_value(v).map_err(|e| format!("unexpected result: {e}")),
            (true, None) => Err("the server sent no result".into()),
            (false, _) => Err(self.error.unwrap_or_else(|| "failed (no reason given)".into())),
        }
    }
}

/// `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The server's version.
    pub version: String,
    /// Seconds since the server started.
    pub uptime_secs: u64,
    /// The configuration file in effect, if the server was started from one.
    pub config_file: Option<String>,
    /// SHA-256 (hex) of that file's content when it was read (start or last successful reload).
    pub config_sha256: Option<String>,
    /// Bindings per subnet (and `other` for addresses outside every subnet).
    pub subnets: Vec<SubnetStatus>,
    /// Open connections by kind: `leasequery_tcp` (Bulk and Active), `active`, `control`.
    pub connections: BTreeMap<String, u64>,
}

/// One subnet in `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubnetStatus {
    /// `10.0.0.0/24`, or `other`.
    pub subnet: String,
    /// Addresses it can hand out (0 for `other`).
    pub pool_size: u64,
    /// Bindings by dhcp-state name; AVAILABLE is the pool size minus the others.
    pub bindings: BTreeMap<String, u64>,
}

/// `reload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    /// The parts of the configuration that changed and were applied.
    pub changed: Vec<String>,
    /// Changed settings that only a restart applies.
    pub needs_restart: Vec<String>,
}

/// `leases_list` and `leases_get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseList {
    /// The bindings, ascending by address.
    pub leases: Vec<Lease>,
    /// When there may be more: pass it as `after` for the next page.
    pub next_after: Option<Ipv4Addr>,
}

/// `leases_delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    /// The binding as committed: state RESET.
    pub lease: Lease,
}

/// `config_show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigText {
    /// The configuration in effect as TOML.
    pub toml: String,
}

/// A binding, with the field names of `leasewire bulk --json` (times in seconds since 1970, server clock;
/// identifiers in colon-separated hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The address.
    pub ip: Ipv4Addr,
    /// The dhcp-state name.
    pub state: String,
    /// The subnet it belongs to, or `other`.
    pub subnet: String,
    /// Hardware type.
    pub htype: u8,
    /// Hardware address (empty when none).
    pub mac: String,
    /// Client identifier.
    pub client_id: Option<String>,
    /// When the current state began.
    pub state_since: u32,
    /// When the lease (or other timed state) ends.
    pub expires_at: Option<u32>,
    /// When the client was last heard from.
    pub cltt: Option<u32>,
    /// Option 82 remote-id.
    pub remote_id: Option<String>,
    /// Option 82 relay-id.
    pub relay_id: Option<String>,
    /// Option 82 circuit-id.
    pub circuit_id: Option<String>,
    /// The whole option 82 as stored, hex (what leasequery replies echo).
    pub relay_agent_info: Option<String>,
    /// `local`, or `remote` (another server sharing the store made the change).
    pub data_source: String,
    /// The reservation the address belongs to.
    pub reserved_for: Option<String>,
    /// The store's sequence number of the latest change.
    pub seq: u64,
    /// When the latest change was committed.
    pub changed_at: u32,
}

impl Lease {
    /// The view of a stored binding.
    pub fn new(b: &Binding, subnet: String, seq: u64, changed_at: u32) -> Self {
        use leasewire_proto::hex::format as hex;
        let rai = b.relay_agent();
        Self {
            ip: b.ip,
            state: b.state.name().to_string(),
            subnet,
            htype: b.htype,
            mac: hex(&b.hardware_address),
            client_id: b.client_id.as_deref().map(hex),
            state_since: b.state_since,
            expires_at: b.expires_at,
            cltt: b.cltt,
            remote_id: rai.as_ref().and_then(|r| r.remote_id()).map(hex),
            relay_id: rai.as_ref().and_then(|r| r.relay_id()).map(hex),
            circuit_id: rai.as_ref().and_then(|r| r.circuit_id()).map(hex),
            relay_agent_info: b.relay_agent_info.as_deref().map(hex),
            data_source: if b.data_source.is_remote() { "remote" } else { "local" }.to_string(),
            reserved_for: b.reserved_for.clone(),
            seq,
            changed_at,
        }
    }
}

impl Lease {
    /// The binding back (without the stored client options, which the protocol does not carry), e.g. to
    /// print it in the JSON schema every other command uses. None if a field does not parse.
    pub fn to_binding(&self) -> Option<Binding> {
        use leasewire_proto::hex::parse;
        let mut b = Binding::new(self.ip, DhcpState::from_name(&self.state)?, self.state_since);
        b.htype = self.htype;
        b.hardware_address = if self.mac.is_empty() { Vec::new() } else { parse(&self.mac)? };
        b.client_id = match &self.client_id {
            Some(c) => Some(parse(c)?),
            None => None,
        };
        b.expires_at = self.expires_at;
        b.cltt = self.cltt;
        b.relay_agent_info = match &self.relay_agent_info {
            Some(r) => Some(parse(r)?),
            None => None,
        };
        if self.data_source == "remote" {
            b.data_source = leasewire_proto::DataSource::REMOTE;
        }
        b.reserved_for = self.reserved_for.clone();
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_flat_json_objects_with_version_and_command() {
        let r = Request::new(Command::LeasesList(ListQuery {
            state: Some("ACTIVE".into()),
            limit: Some(5),
            ..Default::default()
        }));
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, r#"{"version":1,"command":"leases_list","state":"ACTIVE","limit":5}"#);
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r);
        let d: Request = serde_json::from_str(r#"{"version":1,"command":"leases_delete","ip":"10.0.0.5"}"#).unwrap();
        assert_eq!(d.command, Command::LeasesDelete { ip: "10.0.0.5".parse().unwrap() });
        assert!(serde_json::from_str::<Request>(r#"{"version":1,"command":"format_disk"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"command":"status"}"#).is_err(), "version is required");
    }
}
