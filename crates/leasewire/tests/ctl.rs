//! Lease administration (issue #16 item 3): `leasewire ctl` against a running `leasewire serve` over the
//! control socket — status, config show, leases list with each filter and paging, leases get by IP, MAC and
//! client-id, leases delete (durable RESET that reaches an Active Leasequery watcher within 1 s, RFC 6926
//! §6.2.7 / RFC 7724 §6), and the socket refusing a user other than root and its owner.

mod support;

use leasewire_proto::framing::{FrameDecoder, encode_frame};
use leasewire_proto::options::code;
use leasewire_proto::{DhcpState, Message, MessageType, Op, RelayAgentInfoBuilder, StatusCode};
use leasewire_server::clock::unix_now;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::relay::Relay;
use support::{Server, ServerConfig, free_tcp_port, free_udp_port, leasewire};

const SERVER_ID: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

fn config(udp: u16, tcp: u16, metrics: u16, extra: &str) -> String {
    ServerConfig::new(udp)
        .active_insecure(tcp)
        .metrics(metrics)
        .section(extra)
        .subnet("127.1.0.0/16", "127.1.0.10", "127.1.0.200", "")
        .subnet("127.2.0.0/16", "127.2.0.10", "127.2.0.200", "")
        .text()
}

/// A server of [`config`] (nothing extra) with its data in `dir`, and its DHCP, Leasequery and metrics ports.
fn start(dir: &Path) -> (Server, u16, u16, u16) {
    let (udp, tcp, metrics) = (free_udp_port(), free_tcp_port(), free_tcp_port());
    (Server::start(dir, &config(udp, tcp, metrics, ""), None), udp, tcp, metrics)
}

/// `leasewire ctl --config FILE ARGS...`.
fn ctl(config: &Path, args: &[&str]) -> Output {
    Command::new(leasewire()).arg("ctl").arg("--config").arg(config).args(args).output().unwrap()
}

/// Standard output of a `ctl` that must succeed.
fn ctl_ok(config: &Path, args: &[&str]) -> String {
    let out = ctl(config, args);
    assert!(
        out.status.success(),
        "ctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The JSON lines of `ctl ... --json`, each checked against the binding schema every command shares.
fn json_lines(config: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    ctl_ok(config, args)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            leasewire_requestor::json::validate(&v).unwrap_or_else(|e| panic!("{e}: {l}"));
            v
        })
        .collect()
}

fn ips(lines: &[serde_json::Value]) -> Vec<String> {
    lines.iter().map(|v| v["ip"].as_str().unwrap().to_string()).collect()
}

/// DORA through `relay` with a relay-id of our choosing (and optionally a client-id).
fn dora(relay: &Relay, mac: u8, relay_id: &[u8], client_id: Option<&[u8]>) -> Ipv4Addr {
    let m = [2, 0, 0, 0, 0, mac];
    let xid = 0x5000 + u32::from(mac);
    let rai = RelayAgentInfoBuilder::new()
        .circuit_id(format!("port-{mac}").as_bytes())
        .remote_id(&m)
        .relay_id(relay_id)
        .relay_source_port()
        .build();
    let prepare = |t: MessageType| {
        let mut r = relay.request(t, m, xid);
        r.options.set(code::RELAY_AGENT_INFO, rai.clone());
        if let Some(c) = client_id {
            r.options.set(code::CLIENT_IDENTIFIER, c.to_vec());
        }
        r
    };
    relay.send(&prepare(MessageType::Discover));
    let offer = relay.recv(xid).expect("OFFER");
    let mut req = prepare(MessageType::Request);
    req.options.set_ip(code::SERVER_IDENTIFIER, SERVER_ID);
    req.options.set_ip(code::REQUESTED_IP, offer.yiaddr);
    relay.send(&req);
    let ack = relay.recv(xid).expect("ACK");
    assert_eq!(ack.message_type(), Some(MessageType::Ack));
    ack.yiaddr
}

#[test]
fn ctl_lists_with_each_filter_pages_and_gets_by_ip_mac_and_client_id() {
    let dir = tempfile::tempdir().unwrap();
    let (server, udp, _, metrics) = start(dir.path());
    let cfg = server.config.clone();
    let to = SocketAddr::from((SERVER_ID, udp));
    let a = Relay::new(to, Ipv4Addr::new(127, 1, 0, 1));
    let b = Relay::new(to, Ipv4Addr::new(127, 2, 0, 1));
    let ip1 = dora(&a, 1, b"relay-A", None);
    let ip2 = dora(&a, 2, b"relay-A", Some(&[0xff, 0, 0, 0, 7, 1, 2]));
    let ip3 = dora(&b, 3, b"relay-B", None);
    let mut release = a.request(MessageType::Release, [2, 0, 0, 0, 0, 2], 9);
    release.ciaddr = ip2;
    release.options.set(code::CLIENT_IDENTIFIER, vec![0xff, 0, 0, 0, 7, 1, 2]);
    release.options.set_ip(code::SERVER_IDENTIFIER, SERVER_ID);
    a.send(&release);
    server.wait_log(&format!("DHCPRELEASE {ip2}"), 10);

    let all = json_lines(&cfg, &["leases", "list", "--json"]);
    assert_eq!(ips(&all), [ip1, ip2, ip3].map(|i| i.to_string()), "ascending by address");
    assert_eq!(all[0]["mac"], "02:00:00:00:00:01");
    let ids = |args: &[&str]| {
        let mut a = vec!["leases", "list", "--json"];
        a.extend_from_slice(args);
        ips(&json_lines(&cfg, &a))
    };
    assert_eq!(ids(&["--state", "ACTIVE"]), [ip1.to_string(), ip3.to_string()]);
    assert_eq!(ids(&["--state", "released"]), [ip2.to_string()]);
    assert_eq!(ids(&["--subnet", "127.2.0.0/16"]), [ip3.to_string()]);
    assert_eq!(ids(&["--subnet", "127.1.0.0/16", "--state", "ACTIVE"]), [ip1.to_string()]);
    assert_eq!(ids(&["--relay-id", &leasewire_proto::hex::format(b"relay-B")]), [ip3.to_string()]);
    assert_eq!(ids(&["--relay-id", &leasewire_proto::hex::format(b"relay-A")]), [ip1.to_string(), ip2.to_string()]);
    assert_eq!(ids(&["--remote-id", "02:00:00:00:00:01"]), [ip1.to_string()]);
    assert_eq!(ids(&["--mac-prefix", "02:00:00"]).len(), 3);
    assert_eq!(ids(&["--mac-prefix", "02:00:00:00:00:03"]), [ip3.to_string()]);
    assert!(ids(&["--mac-prefix", "aa"]).is_empty());

    // Paging: a page of one says where the next starts; the next pages carry on without repeats.
    let out = ctl(&cfg, &["leases", "list", "--json", "--limit", "1"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("--after {ip1}")), "{stderr}");
    assert_eq!(ids(&["--after", &ip1.to_string(), "--limit", "5"]), [ip2.to_string(), ip3.to_string()]);

    // The table for people.
    let table = ctl_ok(&cfg, &["leases", "list"]);
    assert!(table.starts_with("IP "), "{table}");
    let line = table.lines().find(|l| l.starts_with(&ip3.to_string())).expect(&table);
    assert!(line.contains("ACTIVE") && line.contains("02:00:00:00:00:03") && line.contains("127.2.0.0/16"), "{line}");

    // get: by address, by MAC, by client-id; nothing found is a failure that says so.
    assert_eq!(ips(&json_lines(&cfg, &["leases", "get", &ip3.to_string(), "--json"])), [ip3.to_string()]);
    assert_eq!(ips(&json_lines(&cfg, &["leases", "get", "02:00:00:00:00:01", "--json"])), [ip1.to_string()]);
    let by_id = json_lines(&cfg, &["leases", "get", "ff:00:00:00:07:01:02", "--json"]);
    assert_eq!((ips(&by_id), by_id[0]["state"].as_str()), (vec![ip2.to_string()], Some("RELEASED")));
    let none = ctl(&cfg, &["leases", "get", "127.1.0.199"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no binding"));
    // A bad filter is an error naming it, not an empty list.
    let bad = ctl(&cfg, &["leases", "list", "--state", "LEASED"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("state"), "{bad:?}");

    // Every request was counted by command and result.
    let body = support::http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, metrics)), "/metrics");
    let count = |labels: &str| support::metric(&body, &format!("leasewire_control_requests_total{{{labels}}}"));
    assert!(count("command=\"leases_list\",result=\"ok\"") >= 12.0, "{body}");
    assert_eq!(count("command=\"leases_list\",result=\"error\""), 1.0);
    assert_eq!(count("command=\"leases_get\",result=\"ok\""), 4.0);
    server.stop();
}

#[test]
fn ctl_status_and_config_show_describe_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let (server, udp, _, _) = start(dir.path());
    let cfg = server.config.clone();
    let a = Relay::new(SocketAddr::from((SERVER_ID, udp)), Ipv4Addr::new(127, 1, 0, 1));
    dora(&a, 1, b"relay-A", None);
    let status: serde_json::Value = serde_json::from_str(&ctl_ok(&cfg, &["status", "--json"])).unwrap();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    let text = std::fs::read(&cfg).unwrap();
    let sha = leasewire_server::config::sha256_hex(&text);
    assert_eq!(status["config_sha256"], sha.as_str(), "{status}");
    let subnet = status["subnets"].as_array().unwrap().iter().find(|s| s["subnet"] == "127.1.0.0/16").unwrap();
    assert_eq!(subnet["pool_size"], 191);
    assert_eq!(subnet["bindings"]["ACTIVE"], 1, "{status}");
    assert_eq!(subnet["bindings"]["AVAILABLE"], 190, "{status}");
    assert_eq!(status["connections"]["active"], 0, "{status}");
    let human = ctl_ok(&cfg, &["status"]);
    assert!(human.contains(&format!("sha256 {sha}")) && human.contains("127.1.0.0/16"), "{human}");
    let shown = ctl_ok(&cfg, &["config", "show"]);
    let parsed: toml::Table = shown.parse().unwrap_or_else(|e| panic!("{e}\n{shown}"));
    assert_eq!(parsed["server"]["server-id"].as_str(), Some("127.0.0.1"), "{shown}");
    assert_eq!(parsed["server"]["retention"].as_integer(), Some(600), "defaults are filled in: {shown}");
    server.stop();
}

/// An Active Leasequery connection (insecure mode), read frame by frame.
struct Active {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Active {
    fn open(port: u16, since: u32) -> Self {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut q = Message::new(Op::BootRequest);
        q.xid = 0xac71;
        q.options.set_message_type(MessageType::ActiveLeaseQuery);
        q.options.set(code::PARAMETER_REQUEST_LIST, vec![152, 156]);
        q.options.set_u32(code::QUERY_START_TIME, since);
        let mut b = Vec::new();
        encode_frame(&q, &mut b).unwrap();
        s.write_all(&b).unwrap();
        Self { s, buf: Vec::new() }
    }

    /// The next message before `deadline`.
    fn next(&mut self, deadline: Instant) -> Message<'static> {
        loop {
            if let Some((body, n)) = FrameDecoder::default().decode(&self.buf).unwrap() {
                let owned: &'static [u8] = Box::leak(body.to_vec().into_boxed_slice());
                self.buf.drain(..n);
                return Message::decode(owned).unwrap();
            }
            let left = deadline.checked_duration_since(Instant::now()).expect("deadline passed");
            self.s.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) => panic!("the server closed the Active connection"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("nothing before the deadline: {e}"),
            }
        }
    }
}

/// BLQ-6.2.7-2: RESET (an address freed by an external agent) is produced, by the administrative delete.
#[test]
fn ctl_delete_resets_durably_and_an_active_watcher_sees_it_within_1s() {
    let dir = tempfile::tempdir().unwrap();
    let (server, udp, tcp, _) = start(dir.path());
    let since = unix_now();
    let cfg = server.config.clone();
    let a = Relay::new(SocketAddr::from((SERVER_ID, udp)), Ipv4Addr::new(127, 1, 0, 1));
    let ip = dora(&a, 1, b"relay-A", None);

    // The watcher catches up from before the lease; once CatchUpComplete arrives it is subscribed to the
    // live changes (the server subscribes before the catch-up scan), so nothing needs a sleep.
    let mut watcher = Active::open(tcp, since);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = watcher.next(deadline);
        if m.message_type() == Some(MessageType::LeaseQueryStatus) {
            assert_eq!(m.options.status_code(), Some(StatusCode::CatchUpComplete));
            break;
        }
    }

    let asked = Instant::now();
    let out = ctl_ok(&cfg, &["leases", "delete", &ip.to_string()]);
    assert!(out.contains("RESET"), "{out}");
    // ALQ: the RESET is published like any change, so the watcher hears of it at once.
    // (The lease's own ACTIVE may still arrive first: a live change can overlap the catch-up.)
    let deadline = asked + Duration::from_secs(1);
    let m = loop {
        let m = watcher.next(deadline);
        if m.ciaddr == ip && m.message_type() != Some(MessageType::LeaseActive) {
            break m;
        }
    };
    assert_eq!(m.message_type(), Some(MessageType::LeaseUnassigned));
    assert_eq!(m.options.dhcp_state(), Some(Ok(DhcpState::Reset)), "RFC 6926 §6.2.7: dhcp-state 6");
    eprintln!("RESET reached the watcher {:?} after ctl was asked", asked.elapsed());
    server.wait_log(&format!("leasewire::lease: RESET {ip} of 02:00:00:00:00:01"), 10);

    // Deleting again resets again; an address with no binding is an error.
    let none = ctl(&cfg, &["leases", "delete", "127.1.0.199"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no binding for 127.1.0.199"), "{none:?}");
    let got = json_lines(&cfg, &["leases", "get", &ip.to_string(), "--json"]);
    assert_eq!(got[0]["state"], "RESET");

    // Durable: the stopped server's store has it.
    drop(watcher);
    server.stop();
    let store = support::open_store(dir.path());
    use leasewire_store::LeaseStore;
    assert_eq!(store.get(ip).unwrap().unwrap().binding.state, DhcpState::Reset);
}

#[test]
fn the_control_socket_refuses_a_user_other_than_root_and_its_owner() {
    support::require_root();
    let dir = tempfile::tempdir().unwrap();
    let (udp, tcp, metrics) = (free_udp_port(), free_tcp_port(), free_tcp_port());
    // The socket outside the (0700) data directory, in a directory anyone may enter.
    let open_dir = dir.path().join("run");
    std::fs::create_dir(&open_dir).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = open_dir.join("ctl.sock");
    let extra = format!("[control]\nsocket = \"{}\"", socket.display());
    let server = Server::start(dir.path(), &config(udp, tcp, metrics, &extra), None);
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600, "the socket is 0600");
    assert_eq!(meta.uid(), 0, "owned by the user the server runs as");
    let as_nobody = || {
        Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", leasewire(), "ctl", "--config"])
            .arg(&server.config)
            .arg("--socket")
            .arg(&socket)
            .arg("status")
            .output()
            .unwrap()
    };
    // The file mode keeps nobody out...
    let out = as_nobody();
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"), "{out:?}");
    // ... and so do the peer credentials when the mode does not (a mistaken chmod).
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("permission denied: uid 65534 is neither root nor the control socket's owner"), "{stderr}");
    let body = support::http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, metrics)), "/metrics");
    assert_eq!(support::metric(&body, "leasewire_control_requests_total{command=\"connect\",result=\"refused\"}"), 1.0);
    // Root still gets in.
    assert!(ctl_ok(&server.config, &["--socket", socket.to_str().unwrap(), "status"]).contains("leasewire"));
    server.stop();
    assert!(!socket.exists(), "the socket file goes when the server stops");
}

#[test]
fn ctl_reload_applies_the_file_and_a_broken_file_changes_nothing_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (server, udp, _, metrics) = start(dir.path());
    let cfg = server.config.clone();
    let original = std::fs::read_to_string(&cfg).unwrap();

    // A new subnet: applied by `ctl reload`, shown by `config show` and `status`, and in the metrics.
    let added = format!(
        "{original}\n[[subnet]]\nsubnet = \"127.3.0.0/16\"\npools = [{{ start = \"127.3.0.10\", end = \"127.3.0.19\" }}]\n"
    );
    std::fs::write(&cfg, &added).unwrap();
    let out = ctl_ok(&cfg, &["reload"]);
    assert!(out.contains("reloaded") && out.contains("subnet"), "{out}");
    assert!(ctl_ok(&cfg, &["config", "show"]).contains("127.3.0.0/16"));
    let status: serde_json::Value = serde_json::from_str(&ctl_ok(&cfg, &["status", "--json"])).unwrap();
    assert_eq!(status["config_sha256"], leasewire_server::config::sha256_hex(added.as_bytes()).as_str());
    let new = status["subnets"].as_array().unwrap().iter().find(|s| s["subnet"] == "127.3.0.0/16");
    assert_eq!(new.map(|s| s["pool_size"].clone()), Some(10.into()), "{status}");
    let at = SocketAddr::from((Ipv4Addr::LOCALHOST, metrics));
    let body = support::http_get(at, "/metrics");
    assert_eq!(support::metric(&body, "leasewire_dhcp_pool_size{subnet=\"127.3.0.0/16\"}"), 10.0, "{body}");
    // Served at once, without a restart.
    let c = Relay::new(SocketAddr::from((SERVER_ID, udp)), Ipv4Addr::new(127, 3, 0, 1));
    assert_eq!(dora(&c, 9, b"relay-C", None), Ipv4Addr::new(127, 3, 0, 10));

    // A file that does not validate: ctl says why and exits non-zero; the old configuration keeps serving.
    let broken = added.replace("end = \"127.3.0.19\"", "end = \"127.4.0.19\"");
    std::fs::write(&cfg, &broken).unwrap();
    let out = ctl(&cfg, &["reload"]);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("reload") && stderr.contains("127.4.0.19"), "{stderr}");
    let status: serde_json::Value = serde_json::from_str(&ctl_ok(&cfg, &["status", "--json"])).unwrap();
    assert_eq!(status["config_sha256"], leasewire_server::config::sha256_hex(added.as_bytes()).as_str());
    let body = support::http_get(at, "/metrics");
    assert_eq!(support::metric(&body, "leasewire_reloads_total{result=\"error\"}"), 1.0, "{body}");
    assert_eq!(support::metric(&body, "leasewire_control_requests_total{command=\"reload\",result=\"error\"}"), 1.0);
    assert_eq!(support::metric(&body, "leasewire_control_requests_total{command=\"reload\",result=\"ok\"}"), 1.0);
    assert_eq!(dora(&c, 10, b"relay-C", None), Ipv4Addr::new(127, 3, 0, 11), "still serving the reloaded subnet");
    server.stop();
}
