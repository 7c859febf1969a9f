//! Least privilege and data at rest: `leasewire serve` started as root with `server.user = "nobody"` binds
//! port 67 on an interface (SO_BINDTODEVICE), then runs as nobody with no capabilities — and still leases
//! addresses to a real client (busybox udhcpc) across a veth pair. Its data directory is 0700 and the lease
//! database files 0600, owned by that user. And the other way (the one `dist/leasewire.service` uses): started
//! as nobody with only CAP_NET_BIND_SERVICE and CAP_NET_RAW, it serves the same. Needs root (CI runs as
//! root).

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use support::{Netns, Server, ServerConfig};

fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
    line[field.len()..].split_whitespace().collect::<Vec<_>>().join(" ")
}

fn config(srv_if: &str, user: &str) -> String {
    ServerConfig::on_interface("10.77.0.1", srv_if)
        .server_key(user)
        .subnet("10.77.0.0/24", "10.77.0.100", "10.77.0.199", &format!("interface = \"{srv_if}\""))
        .text()
}

fn udhcpc_gets_a_lease(ns: &Netns, cli_if: &str) {
    let out = ns
        .cmd(1, support::peer("busybox", "busybox"))
        .args(["udhcpc", "-i", cli_if, "-n", "-q", "-f", "-t", "5", "-s", "/bin/true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "udhcpc got no lease: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn serve_binds_port_67_then_runs_as_nobody_without_capabilities() {
    let (ns, srv_if, cli_if) = Netns::server_and_client();
    let dir = tempfile::tempdir().unwrap();
    // nobody must reach the data directory through its parent (as it would through /var/lib).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::start(dir.path(), &config(&srv_if, "user = \"nobody\""), Some((&ns, 0)));
    let pid = server.proc.pid();
    let nobody = support::sh(&["id", "-u", "nobody"]).trim().to_string();
    let uid = status_field(pid, "Uid:");
    assert_eq!(uid, format!("{nobody} {nobody} {nobody} {nobody}"), "real, effective, saved and fs uid");
    assert_eq!(status_field(pid, "CapEff:"), "0000000000000000", "no capabilities left");
    assert_eq!(status_field(pid, "CapPrm:"), "0000000000000000");

    // Still serving DHCP on the port-67 socket it bound as root.
    udhcpc_gets_a_lease(&ns, &cli_if);
    server.wait_log("state=ACTIVE", 10);

    // Data at rest: a private directory, private files, owned by the unprivileged user.
    let data = dir.path().join("data");
    let meta = std::fs::metadata(&data).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(meta.uid().to_string(), nobody);
    let mut files = 0;
    for entry in std::fs::read_dir(&data).unwrap() {
        let entry = entry.unwrap();
        let m = entry.metadata().unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{}", entry.path().display());
        assert_eq!(m.uid().to_string(), nobody, "{}", entry.path().display());
        files += 1;
    }
    assert!(files >= 1, "the lease database");
    server.stop();
}

#[test]
fn serve_runs_without_root_with_only_the_two_network_capabilities() {
    let (ns, srv_if, cli_if) = Netns::server_and_client();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The data directory belongs to the service user, as systemd's StateDirectory= arranges.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    support::sh(&["chown", "nobody:nogroup", data.to_str().unwrap()]);
    let path = dir.path().join("server.toml");
    std::fs::write(&path, config(&srv_if, "").replace("@DATA@", data.to_str().unwrap())).unwrap();
    let caps = "+net_bind_service,+net_raw";
    let server = Server::start_wrapped(
        dir.path(),
        &path,
        Some((&ns, 0)),
        &[
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            &format!("--inh-caps=-all,{caps}"),
            &format!("--ambient-caps=-all,{caps}"),
            &format!("--bounding-set=-all,{caps}"),
        ],
    );
    let pid = server.proc.pid();
    let nobody = support::sh(&["id", "-u", "nobody"]).trim().to_string();
    assert_eq!(status_field(pid, "Uid:"), format!("{nobody} {nobody} {nobody} {nobody}"));
    // CAP_NET_BIND_SERVICE is bit 10, CAP_NET_RAW bit 13: nothing else.
    assert_eq!(status_field(pid, "CapEff:"), "0000000000002400");
    udhcpc_gets_a_lease(&ns, &cli_if);
    server.wait_log("state=ACTIVE", 10);
    for entry in std::fs::read_dir(&data).unwrap() {
        let entry = entry.unwrap();
        assert_eq!(entry.metadata().unwrap().permissions().mode() & 0o777, 0o600, "{}", entry.path().display());
    }
    server.stop();
}
