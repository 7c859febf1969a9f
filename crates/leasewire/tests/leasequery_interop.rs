//! Leasequery interop with ISC dhcpd 4.4.3: `leasewire query` asks ISC's server about leased, released,
//! unassigned and unknown addresses and by MAC and client-id; the same sequence against `leasewire serve` gives
//! equivalent answers. Leases are made by real clients (ISC dhclient, busybox udhcpc) in network namespaces.
//!
//! Documented differences (docs/conformance.md): ISC adds the subnet's router option to UNASSIGNED and UNKNOWN
//! replies and option 54 to UNASSIGNED and UNKNOWN; we send what RFC 4388 §6.4 allows.

mod support;

use serde_json::Value;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use support::{Netns, Proc, Server, ServerConfig};

const SERVER: &str = "10.77.0.1";
const REQUESTOR: &str = "10.77.0.2";

/// Which server runs in namespace 0.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Isc,
    Leasewire,
}

struct Lab {
    ns: Netns,
    cli_if: String,
    dir: tempfile::TempDir,
    _server: Option<Server>,
    _isc: Option<Proc>,
}

fn start(kind: Kind) -> Lab {
    let (ns, srv_if, cli_if) = Netns::server_and_client();
    let dir = tempfile::tempdir().unwrap();
    let (mut server, mut isc) = (None, None);
    match kind {
        Kind::Isc => {
            let conf = dir.path().join("dhcpd.conf");
            std::fs::write(
                &conf,
                "authoritative;\nping-check false;\nallow leasequery;\ndefault-lease-time 600;\nmax-lease-time 600;\n\
                 subnet 10.77.0.0 netmask 255.255.255.0 {\n  range 10.77.0.100 10.77.0.199;\n  option routers 10.77.0.1;\n}\n",
            )
            .unwrap();
            let leases = dir.path().join("dhcpd.leases");
            std::fs::write(&leases, "").unwrap();
            let mut c = ns.cmd(0, support::peer("dhcpd", "isc-dhcp-server"));
            c.args(["-4", "-f", "-d", "-cf"])
                .arg(&conf)
                .arg("-lf")
                .arg(&leases)
                .arg("-pf")
                .arg(dir.path().join("dhcpd.pid"));
            c.arg(&srv_if).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
            isc = Some(Proc::spawn("dhcpd", &mut c));
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        Kind::Leasewire => {
            let config = ServerConfig::on_interface(SERVER, &srv_if)
                .section("[leasequery]\nallow = [\"10.77.0.0/24\"]")
                .netns_subnet(&srv_if, "");
            server = Some(Server::start(dir.path(), &config.text(), Some((&ns, 0))));
        }
    }
    Lab { ns, cli_if, dir, _server: server, _isc: isc }
}

impl Lab {
    fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.ns.cmd(1, program).args(args).stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A lease for this namespace's interface MAC via dhclient; returns (ip, mac).
    fn dhclient_lease(&self) -> (Ipv4Addr, String) {
        let lf = self.dir.path().join("dhclient.leases");
        let pf = self.dir.path().join("dhclient.pid");
        let out = self
            .ns
            .cmd(1, "timeout")
            .args(["30", support::peer("dhclient", "isc-dhcp-client"), "-4", "-1", "-sf", "/bin/true", "-lf"])
            .arg(&lf)
            .arg("-pf")
            .arg(&pf)
            .arg(&self.cli_if)
            .output()
            .unwrap();
        assert!(out.status.success(), "dhclient: {}", String::from_utf8_lossy(&out.stderr));
        let leases = std::fs::read_to_string(&lf).unwrap();
        let ip = leases
            .lines()
            .find_map(|l| l.trim().strip_prefix("fixed-address "))
            .unwrap()
            .trim_end_matches(';')
            .parse()
            .unwrap();
        let mac = self.run("cat", &[&format!("/sys/class/net/{}/address", self.cli_if)]).trim().to_string();
        // dhclient -1 daemonises after binding; stop it so it does not renew behind our back.
        let _ = Command::new("sh").arg("-c").arg(format!("kill $(cat {}) 2>/dev/null", pf.display())).status();
        (ip, mac)
    }

    fn dhclient_release(&self) {
        let lf = self.dir.path().join("dhclient.leases");
        self.ns
            .cmd(1, "timeout")
            .args(["30", support::peer("dhclient", "isc-dhcp-client"), "-4", "-r", "-sf", "/bin/true", "-lf"])
            .arg(&lf)
            .arg("-pf")
            .arg(self.dir.path().join("dhclient-r.pid"))
            .arg(&self.cli_if)
            .status()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    /// A second client with a client identifier, via udhcpc on a macvlan-free path: same interface, other
    /// client-id (udhcpc -x 61), so the server sees another client.
    fn udhcpc_lease(&self, client_id: &str) -> Ipv4Addr {
        let args =
            ["udhcpc", "-i", &self.cli_if, "-n", "-q", "-f", "-s", "/bin/true", "-x", &format!("0x3d:{client_id}")];
        let o = self.ns.cmd(1, support::peer("busybox", "busybox")).args(args).stdin(Stdio::null()).output().unwrap();
        // udhcpc reports on stderr: "udhcpc: lease of 10.77.0.101 obtained from 10.77.0.1, lease time 600".
        let out = String::from_utf8_lossy(&o.stderr).into_owned();
        let line =
            out.lines().chain(std::iter::once("")).find(|l| l.contains("lease of")).unwrap_or_default().to_string();
        if let Some(ip) = line.split_whitespace().find_map(|w| w.parse().ok()) {
            return ip;
        }
        panic!("udhcpc got no lease: {out}");
    }

    fn query(&self, key: &[&str]) -> Value {
        let mut args = vec!["query", "--server", SERVER, "--giaddr", REQUESTOR, "--json", "--timeout", "5"];
        args.extend_from_slice(key);
        let out = self.run(support::leasewire(), &args);
        let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
        leasewire_requestor::json::validate(&v).unwrap_or_else(|e| panic!("query --json against the schema: {e}"));
        v
    }
}

/// The answers to the query sequence, normalised to what both servers must agree on.
fn sequence(kind: Kind) -> Vec<(String, Value)> {
    let lab = start(kind);
    let (ip, mac) = lab.dhclient_lease();
    let cid_ip = lab.udhcpc_lease("ff00000000000000aa");
    let mut out = Vec::new();
    let mut record = |name: &str, v: Value, expect_ip: Option<Ipv4Addr>| {
        if let Some(e) = expect_ip {
            assert_eq!(v["ip"], e.to_string(), "{kind:?} {name}: {v}");
        }
        let mut n = serde_json::json!({ "type": v["reply"] });
        if v["reply"] == "DHCPLEASEACTIVE" {
            // Without base-time in a UDP reply, the times are in the requestor's clock.
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            let remaining = v["expires_at_epoch"].as_u64().map(|e| e.saturating_sub(now));
            let ago = v["cltt_epoch"].as_u64().map(|c| now.saturating_sub(c));
            n["mac"] = v["mac"].clone();
            n["has_lease_time"] = Value::Bool(remaining.is_some_and(|l| l > 495 && l <= 600));
            n["has_cltt"] = Value::Bool(ago.is_some_and(|c| c < 60));
        }
        out.push((name.to_string(), n));
    };
    record("leased by ip", lab.query(&["--ip", &ip.to_string()]), Some(ip));
    // The MAC has two active bindings: dhclient's (no client-id) and, more recent, udhcpc's (with a client-id).
    // RFC 4388 §6.4.1 (LQ-6.4.1-6) answers with the most recent transaction, leasewire's default; ISC dhcpd
    // answers with the binding identified by the MAC alone (`mac-query-prefers = "mac-identified"`).
    let by_mac = if kind == Kind::Isc { ip } else { cid_ip };
    record("by mac", lab.query(&["--mac", &mac]), Some(by_mac));
    record("by client-id", lab.query(&["--client-id", "ff00000000000000aa"]), Some(cid_ip));
    record("unassigned in range", lab.query(&["--ip", "10.77.0.150"]), Some("10.77.0.150".parse().unwrap()));
    record("in subnet, outside range", lab.query(&["--ip", "10.77.0.50"]), None);
    record("unknown address", lab.query(&["--ip", "192.0.2.1"]), None);
    record("unknown mac", lab.query(&["--mac", "02:99:99:99:99:99"]), None);
    lab.dhclient_release();
    record("released", lab.query(&["--ip", &ip.to_string()]), Some(ip));
    assert_eq!(out[0].1["mac"], Value::String(mac), "{kind:?}: the owner's MAC");
    out
}

#[test]
fn leasewire_query_against_isc_dhcpd_and_leasewire_serve_agree() {
    support::require_root();
    let isc = sequence(Kind::Isc);
    let expected = [
        ("leased by ip", "DHCPLEASEACTIVE"),
        ("by mac", "DHCPLEASEACTIVE"),
        ("by client-id", "DHCPLEASEACTIVE"),
        ("unassigned in range", "DHCPLEASEUNASSIGNED"),
        ("in subnet, outside range", "DHCPLEASEUNKNOWN"),
        ("unknown address", "DHCPLEASEUNKNOWN"),
        ("unknown mac", "DHCPLEASEUNKNOWN"),
        ("released", "DHCPLEASEUNASSIGNED"),
    ];
    for ((name, v), (ename, etype)) in isc.iter().zip(expected) {
        assert_eq!((name.as_str(), v["type"].as_str().unwrap()), (ename, etype), "ISC: {v}");
    }
    let ours = sequence(Kind::Leasewire);
    for ((name, a), (_, b)) in isc.iter().zip(&ours) {
        // Lease time and CLTT presence can differ only where ISC omits what it is asked for.
        assert_eq!(a["type"], b["type"], "{name}: ISC {a} vs leasewire {b}");
        if a["type"] == "DHCPLEASEACTIVE" {
            assert_eq!(b["has_lease_time"], true, "{name}: {b}");
            assert_eq!(b["has_cltt"], true, "{name}: {b}");
            assert_eq!(a["has_lease_time"], b["has_lease_time"], "{name}");
        }
    }
}

/// `leasewire query` on the server's own host, as root, with the server holding 127.0.0.1:67: the reply
/// cannot come to 127.0.0.1:67 (that is the server), and a query by remote-id may not carry the RFC 8357
/// sub-option (RFC 6148 §4.1: option 82 holds only the remote-id). So the requestor takes another loopback
/// address as giaddr and binds its port 67; every query form gets its answer.
#[test]
fn query_on_the_servers_host_gets_its_answer_for_every_key() {
    let ns = Netns::new(1);
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig::new(67).section("[leasequery]\nallow = [\"127.0.0.0/8\"]").subnet(
        "127.0.0.0/8",
        "127.1.0.0",
        "127.1.0.9",
        "",
    );
    let server = Server::start(dir.path(), &config.text(), Some((&ns, 0)));
    for (key, expected) in [
        (["--remote-id", "73:77:31"], "DHCPLEASEUNKNOWN"),
        (["--ip", "127.1.0.5"], "DHCPLEASEUNASSIGNED"),
        (["--mac", "02:00:00:00:00:01"], "DHCPLEASEUNKNOWN"),
    ] {
        let out = ns
            .cmd(0, support::leasewire())
            .args(["query", "--server", "127.0.0.1", "--json", "--timeout", "5"])
            .args(key)
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{key:?}: {stderr}");
        let v: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["reply"], expected, "{key:?}: {v}");
    }
    server.stop();
}
