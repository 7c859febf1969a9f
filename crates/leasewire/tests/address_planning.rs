//! Address planning with real clients (issue #20): busybox udhcpc receives the typed options (RFC 3397 domain
//! search, RFC 3442 routes, NTP, MTU, time offset, TFTP server and boot file, siaddr and file) as it decodes them
//! itself, a client behind ISC dhcrelay gets the address reserved for its circuit-id, and clients that send a
//! vendor class (ISC dhclient, busybox udhcpc, a PXE client) land in their class's pool with its options.
//! Across veth pairs between network namespaces; needs root; cleaned up by PID and namespace even on failure.

mod support;

use std::net::Ipv4Addr;
use std::process::Command;
use support::{Netns, RelayedNetns, Server, ServerConfig, bound_ip, lines_until, spawn_logged};

#[test]
fn busybox_udhcpc_receives_typed_options_and_pxe_fields() {
    let (ns, srv_if, cli_if) = Netns::server_and_client();
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
    let lab = RelayedNetns::new();
    let dir = tempfile::tempdir().unwrap();
    let reservation = format!(
        "[[subnet.reservation]]\nip = \"10.88.0.50\"\ncircuit-id = \"{}\"\ngiaddr = \"10.88.0.1\"\nname = \"subscriber-port\"",
        lab.relay_down
    );
    let config = ServerConfig::at("10.77.0.1", "10.77.0.1:67").subnet(
        "10.88.0.0/24",
        "10.88.0.100",
        "10.88.0.199",
        &reservation,
    );
    let server = Server::start(dir.path(), &config.text(), Some((&lab.ns, 0)));
    let _relay = lab.start_dhcrelay();

    let mut c = lab.ns.cmd(2, support::peer("dhclient", "isc-dhcp-client"));
    c.args(["-4", "-d", "-sf", "/bin/true"]);
    c.arg("-lf").arg(dir.path().join("dhclient.leases"));
    c.arg("-pf").arg(dir.path().join("dhclient.pid"));
    c.args(["-1", &lab.cli_if]);
    let (_client, out) = spawn_logged("dhclient", c);
    let ip = bound_ip(lines_until(&out, "bound to", 60).last().unwrap());
    assert_eq!(ip, Ipv4Addr::new(10, 88, 0, 50), "the circuit's reserved address, outside the pools");
    server.wait_log(&format!("ip={ip} state=ACTIVE"), 10);
    server.stop();
}

/// The namespace server's configuration with classes: phones (vendor class `leasewire-phone`) have a pool
/// and options of their own, PXE clients (vendor class `PXEClient...`) another with siaddr and file, and the
/// general pool denies both.
fn classes_config(iface: &str) -> String {
    ServerConfig::on_interface("10.77.0.1", iface)
        .section(&format!(
            r#"
[[client-class]]
name = "phones"
vendor-class = "leasewire-phone"
[client-class.options]
domain-name = "phones.example"
ntp-servers = ["10.77.0.124"]

[[client-class]]
name = "pxe"
vendor-class-prefix = "PXEClient"
[client-class.options]
next-server = "10.77.0.69"
boot-file = "ipxe.efi"

[[subnet]]
subnet = "10.77.0.0/24"
interface = "{iface}"
lease-time = 600
pools = [
  {{ start = "10.77.0.100", end = "10.77.0.199", deny = ["phones", "pxe"] }},
  {{ start = "10.77.0.50", end = "10.77.0.59", allow = ["phones"] }},
  {{ start = "10.77.0.60", end = "10.77.0.69", allow = ["pxe"] }},
]
[subnet.options]
routers = ["10.77.0.1"]
domain-name = "pcs.example"
ntp-servers = ["10.77.0.123"]
"#
        ))
        .text()
}

/// A udhcpc script that prints what udhcpc decoded, then the event and address.
fn udhcpc_script(dir: &std::path::Path) -> std::path::PathBuf {
    let script = dir.join("udhcpc.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] && for v in domain ntpsrv siaddr boot_file; do eval echo \"opt $v=\\$$v\"; done\necho \"event $1 $ip\"\nexit 0\n",
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&script).status().unwrap();
    script
}

/// busybox udhcpc sending vendor class `vendor` (-V): the decoded options by name, and the bound address.
fn udhcpc_with_vendor_class(vendor: &str) -> (std::collections::HashMap<String, String>, Ipv4Addr) {
    let (ns, srv_if, cli_if) = Netns::server_and_client();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &classes_config(&srv_if), Some((&ns, 0)));
    let script = udhcpc_script(dir.path());
    let mut cmd = ns.cmd(1, support::peer("busybox", "busybox"));
    cmd.args(["udhcpc", "-f", "-q", "-i", &cli_if, "-V", vendor, "-O", "ntpsrv", "-O", "domain", "-s"]);
    cmd.arg(&script);
    let (_client, out) = spawn_logged("udhcpc", cmd);
    let lines = lines_until(&out, "event bound", 60);
    let opts = lines
        .iter()
        .filter_map(|l| l.strip_prefix("opt ")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let ip = bound_ip(lines.last().unwrap());
    server.wait_log(&format!("ip={ip} state=ACTIVE"), 10);
    server.stop();
    (opts, ip)
}

fn in_range(ip: Ipv4Addr, lo: [u8; 4], hi: [u8; 4]) -> bool {
    (u32::from(Ipv4Addr::from(lo))..=u32::from(Ipv4Addr::from(hi))).contains(&u32::from(ip))
}

/// Issue #20 item 2: busybox udhcpc with a vendor class (-V) lands in the class's pool with its options.
#[test]
fn busybox_udhcpc_with_a_vendor_class_lands_in_the_class_pool() {
    let (opts, ip) = udhcpc_with_vendor_class("leasewire-phone");
    assert!(in_range(ip, [10, 77, 0, 50], [10, 77, 0, 59]), "the phones' pool: {ip}");
    assert_eq!(opts["domain"], "phones.example", "the class's option over the subnet's");
    assert_eq!(opts["ntpsrv"], "10.77.0.124");
}

/// Issue #20: a PXE client (option 60 `PXEClient:Arch:00000:UNDI:002001`, as PXE ROMs send it) gets siaddr and
/// file from its class, and an address of the PXE pool.
#[test]
fn a_pxe_client_gets_siaddr_and_file() {
    let (opts, ip) = udhcpc_with_vendor_class("PXEClient:Arch:00000:UNDI:002001");
    assert!(in_range(ip, [10, 77, 0, 60], [10, 77, 0, 69]), "the PXE pool: {ip}");
    assert_eq!(opts["siaddr"], "10.77.0.69", "next-server");
    assert_eq!(opts["boot_file"], "ipxe.efi", "boot-file");
    assert_eq!(opts["domain"], "pcs.example", "the subnet's: the class does not set it");
}

/// Issue #20 item 2: ISC dhclient told to `send vendor-class-identifier` in its dhclient.conf lands in the
/// class's pool with the class's options (as dhclient-script receives them).
#[test]
fn isc_dhclient_with_a_vendor_class_lands_in_the_class_pool_with_its_options() {
    let (ns, srv_if, cli_if) = Netns::server_and_client();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &classes_config(&srv_if), Some((&ns, 0)));
    let conf = dir.path().join("dhclient.conf");
    std::fs::write(
        &conf,
        "send vendor-class-identifier \"leasewire-phone\";\nrequest subnet-mask, routers, domain-name, ntp-servers;\n",
    )
    .unwrap();
    // dhclient-script gets the options as new_* variables; this one writes them where the test reads them.
    let seen = dir.path().join("seen");
    let script = dir.path().join("dhclient-script.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$reason\" = BOUND ] && echo \"$new_ip_address $new_domain_name $new_ntp_servers\" > {}\nexit 0\n",
            seen.display()
        ),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&script).status().unwrap();
    let mut c = ns.cmd(1, support::peer("dhclient", "isc-dhcp-client"));
    c.args(["-4", "-d"]);
    c.arg("-cf").arg(&conf);
    c.arg("-sf").arg(&script);
    c.arg("-lf").arg(dir.path().join("dhclient.leases"));
    c.arg("-pf").arg(dir.path().join("dhclient.pid"));
    c.args(["-1", &cli_if]);
    let (_client, out) = spawn_logged("dhclient", c);
    let ip = bound_ip(lines_until(&out, "bound to", 60).last().unwrap());
    assert!(in_range(ip, [10, 77, 0, 50], [10, 77, 0, 59]), "the phones' pool: {ip}");
    let seen = std::fs::read_to_string(&seen).expect("dhclient-script ran for BOUND");
    assert_eq!(seen.trim(), format!("{ip} phones.example 10.77.0.124"), "the class's options");
    server.wait_log(&format!("ip={ip} state=ACTIVE"), 10);
    server.stop();
}
