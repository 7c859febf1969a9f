//! Address planning with real clients (issue #20): busybox udhcpc receives the typed options (RFC 3397 domain
//! search, RFC 3442 routes, NTP, MTU, time offset, TFTP server and boot file, siaddr and file) as it decodes them
//! itself, and a client behind ISC dhcrelay gets the address reserved for its circuit-id. Across veth pairs
//! between network namespaces; needs root; cleaned up by PID and namespace even on failure.

mod support;

use std::net::Ipv4Addr;
use std::process::Command;
use support::{Netns, Server, bound_ip, lines_until, spawn_logged};

#[test]
fn busybox_udhcpc_receives_typed_options_and_pxe_fields() {
    let ns = Netns::new(2);
    let (srv_if, cli_if) = ns.link(0, "10.77.0.1/24", 1, "10.77.0.2/24");
    let dir = tempfile::tempdir().unwrap();
    let config = support::netns_config(
        &srv_if,
        r#"ntp-servers = ["10.77.0.123"]
domain-search = ["eng.apple.com", "marketing.apple.com"]
classless-static-routes = [
  { destination = "10.17.0.0/16", router = "10.77.0.2" },
  { destination = "0.0.0.0/0", router = "10.77.0.1" },
]
interface-mtu = 1400
time-offset = -3600
tftp-server-name = "tftp.example"
bootfile-name = "pxelinux.0"
next-server = "10.77.0.69"
boot-file = "ipxe.efi"
"#,
    );
    let server = Server::start(dir.path(), &config, Some((&ns, 0)));
    // The script prints what udhcpc decoded (it exports options as environment variables).
    let script = dir.path().join("udhcpc.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] && for v in ntpsrv search staticroutes mtu timezone tftp bootfile siaddr boot_file; do eval echo \"opt $v=\\$$v\"; done\necho \"event $1 $ip\"\nexit 0\n",
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&script).status().unwrap();
    let mut cmd = ns.cmd(1, support::peer("busybox", "busybox"));
    cmd.args(["udhcpc", "-f", "-q", "-i", &cli_if]);
    for o in ["ntpsrv", "search", "staticroutes", "mtu", "timezone", "tftp", "bootfile"] {
        cmd.args(["-O", o]);
    }
    cmd.arg("-s").arg(&script);
    let (_client, out) = spawn_logged("udhcpc", cmd);
    let lines = lines_until(&out, "event bound", 60);
    let opt = |k: &str| {
        let p = format!("opt {k}=");
        lines.iter().find_map(|l| l.strip_prefix(&p)).unwrap_or_else(|| panic!("no {k} in {lines:#?}")).to_string()
    };
    assert_eq!(opt("ntpsrv"), "10.77.0.123");
    assert_eq!(opt("search"), "eng.apple.com marketing.apple.com", "RFC 3397 compression decoded by busybox");
    assert_eq!(opt("staticroutes"), "10.17.0.0/16 10.77.0.2 0.0.0.0/0 10.77.0.1", "RFC 3442 as busybox reads it");
    assert_eq!(opt("mtu"), "1400");
    // Sent as the signed 32-bit -3600 (RFC 2132 §3.4); this busybox prints the option's octets unsigned.
    assert_eq!(opt("timezone"), (-3600i32 as u32).to_string());
    assert_eq!(opt("tftp"), "tftp.example");
    assert_eq!(opt("bootfile"), "pxelinux.0");
    assert_eq!(opt("siaddr"), "10.77.0.69", "next-server");
    assert_eq!(opt("boot_file"), "ipxe.efi", "boot-file");
    let ip = bound_ip(lines.last().unwrap());
    server.wait_log(&format!("ip={ip} state=ACTIVE"), 10);
    server.stop();
}

/// Issue #20 item 4: ISC dhcrelay adds option 82 with its downstream interface as circuit-id; the reservation
/// for that circuit (outside the pools) is what the client behind it gets.
#[test]
fn relayed_client_behind_isc_dhcrelay_gets_its_circuit_id_reservation() {
    // server (0) -- relay (1) -- client (2)
    let ns = Netns::new(3);
    let (_srv_if, relay_up) = ns.link(0, "10.77.0.1/24", 1, "10.77.0.2/24");
    let (relay_down, cli_if) = ns.link(1, "10.88.0.1/24", 2, "10.88.0.2/24");
    support::sh(&["ip", "-n", &ns.names[0], "route", "add", "10.88.0.0/24", "via", "10.77.0.2"]);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[server]
server-id = "10.77.0.1"
listen = ["10.77.0.1:67"]
data-dir = "@DATA@"

[[subnet]]
subnet = "10.88.0.0/24"
pools = [{{ start = "10.88.0.100", end = "10.88.0.199" }}]
[[subnet.reservation]]
ip = "10.88.0.50"
circuit-id = "{relay_down}"
giaddr = "10.88.0.1"
name = "subscriber-port"
"#
    );
    let server = Server::start(dir.path(), &config, Some((&ns, 0)));
    let mut relay = ns.cmd(1, support::peer("dhcrelay", "isc-dhcp-relay"));
    relay.args(["-d", "-4", "-a", "-id", &relay_down, "-iu", &relay_up, "10.77.0.1"]);
    let (_relay, relay_out) = spawn_logged("dhcrelay", relay);
    lines_until(&relay_out, "Sending on", 10);

    let mut c = ns.cmd(2, support::peer("dhclient", "isc-dhcp-client"));
    c.args(["-4", "-d", "-sf", "/bin/true"]);
    c.arg("-lf").arg(dir.path().join("dhclient.leases"));
    c.arg("-pf").arg(dir.path().join("dhclient.pid"));
    c.args(["-1", &cli_if]);
    let (_client, out) = spawn_logged("dhclient", c);
    let ip = bound_ip(lines_until(&out, "bound to", 60).last().unwrap());
    assert_eq!(ip, Ipv4Addr::new(10, 88, 0, 50), "the circuit's reserved address, outside the pools");
    server.wait_log(&format!("ip={ip} state=ACTIVE"), 10);
    server.stop();
}
