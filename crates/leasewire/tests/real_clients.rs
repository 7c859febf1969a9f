//! Real DHCP clients nobody here wrote — ISC dhclient and busybox udhcpc — obtain, renew and release leases from
//! `leasewire serve` across veth pairs between network namespaces, directly and through ISC dhcrelay (which
//! adds option 82). Needs root; everything is cleaned up by PID and namespace even on failure.

mod support;

use leasewire_proto::DhcpState;
use leasewire_proto::options::code;
use leasewire_store::LeaseStore;
use std::process::Command;
use support::{Netns, RelayedNetns, Server, ServerConfig, bound_ip, open_store, spawn_logged, wait_line};

fn dhclient(ns: &Netns, i: usize, iface: &str, dir: &std::path::Path, release: bool) -> Command {
    let mut c = ns.cmd(i, support::peer("dhclient", "isc-dhcp-client"));
    c.args(["-4", "-d", "-sf", "/bin/true"]);
    c.arg("-lf").arg(dir.join("dhclient.leases"));
    c.arg("-pf").arg(dir.join(if release { "dhclient-r.pid" } else { "dhclient.pid" }));
    c.arg(if release { "-r" } else { "-1" });
    c.arg(iface);
    c
}

#[test]
fn isc_dhclient_obtains_reboots_and_releases() {
    let (ns, srv_if, cli_if) = Netns::server_and_client();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &support::netns_config(&srv_if, ""), Some((&ns, 0)));

    let (mut client, out) = spawn_logged("dhclient", dhclient(&ns, 1, &cli_if, dir.path(), false));
    let ip = bound_ip(&wait_line(&out, "bound to", 60));
    assert_eq!(ip.octets()[..3], [10, 77, 0]);
    server.wait_log(&format!("ip={ip} state=ACTIVE"), 10);
    client.kill9();

    // INIT-REBOOT: a restarted dhclient asks for the address in its lease file and gets it.
    let (mut client, out) = spawn_logged("dhclient", dhclient(&ns, 1, &cli_if, dir.path(), false));
    wait_line(&out, &format!("DHCPREQUEST for {ip}"), 30);
    assert_eq!(bound_ip(&wait_line(&out, "bound to", 60)), ip);
    client.kill9();

    // Release.
    let (mut rel, out) = spawn_logged("dhclient -r", dhclient(&ns, 1, &cli_if, dir.path(), true));
    wait_line(&out, "DHCPRELEASE", 30);
    server.wait_log(&format!("ip={ip} state=RELEASED"), 10);
    rel.kill9();

    server.stop();
    let store = open_store(dir.path());
    let b = store.get(ip).unwrap().unwrap().binding;
    assert_eq!(b.state, DhcpState::Released);
    assert_eq!(b.htype, 1);
    assert_eq!(b.hardware_address.len(), 6);
}

#[test]
fn busybox_udhcpc_obtains_renews_and_releases() {
    let (ns, srv_if, cli_if) = Netns::server_and_client();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &support::netns_config(&srv_if, ""), Some((&ns, 0)));
    // The script configures the leased address so the renewal can be unicast from it, as on a real host.
    let script = dir.path().join("udhcpc.sh");
    std::fs::write(&script, "#!/bin/sh\ncase \"$1\" in bound|renew) ip addr add \"$ip/24\" dev \"$interface\" 2>/dev/null;; esac\necho \"event $1 $ip\"\nexit 0\n").unwrap();
    Command::new("chmod").arg("+x").arg(&script).status().unwrap();

    let mut cmd = ns.cmd(1, support::peer("busybox", "busybox"));
    cmd.args(["udhcpc", "-f", "-i", &cli_if, "-x", "hostname:bbox", "-x", "0x3d:01020000000042", "-s"]).arg(&script);
    let (client, out) = spawn_logged("udhcpc", cmd);
    let ip = bound_ip(&wait_line(&out, "event bound", 60));
    server.wait_log(&format!("ip={ip} state=ACTIVE"), 10);

    // SIGUSR1: renew (unicast REQUEST from the leased address, RENEWING state).
    client.signal("USR1");
    wait_line(&out, "event renew", 30);
    server.wait_log(&format!("ip={ip} state=ACTIVE"), 10);

    // SIGUSR2: release.
    client.signal("USR2");
    server.wait_log(&format!("ip={ip} state=RELEASED"), 30);
    drop(client);

    server.stop();
    let store = open_store(dir.path());
    let b = store.get(ip).unwrap().unwrap().binding;
    assert_eq!(b.state, DhcpState::Released);
    assert_eq!(b.client_id.as_deref(), Some(&[1, 2, 0, 0, 0, 0, 0x42][..]));
    assert_eq!(b.option(code::HOST_NAME), Some(&b"bbox"[..]));
    assert!(store.by_client_id(&[1, 2, 0, 0, 0, 0, 0x42]).unwrap().iter().any(|c| c.binding.ip == ip));
}

#[test]
fn relayed_client_through_isc_dhcrelay_with_option_82() {
    let lab = RelayedNetns::new();
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig::at("10.77.0.1", "10.77.0.1:67").subnet(
        "10.88.0.0/24",
        "10.88.0.100",
        "10.88.0.199",
        "lease-time = 600",
    );
    let server = Server::start(dir.path(), &config.text(), Some((&lab.ns, 0)));
    let _relay = lab.start_dhcrelay();

    let (client, out) = spawn_logged("dhclient", dhclient(&lab.ns, 2, &lab.cli_if, dir.path(), false));
    let ip = bound_ip(&wait_line(&out, "bound to", 60));
    assert_eq!(ip.octets()[..3], [10, 88, 0]);
    server.wait_log(&format!("ip={ip} state=ACTIVE"), 10);
    drop(client);

    server.stop();
    let store = open_store(dir.path());
    let b = store.get(ip).unwrap().unwrap().binding;
    let rai = b.relay_agent().expect("dhcrelay -a added option 82 and we stored it");
    assert_eq!(rai.circuit_id(), Some(lab.relay_down.as_bytes()), "ISC dhcrelay uses the interface name as circuit-id");
}
