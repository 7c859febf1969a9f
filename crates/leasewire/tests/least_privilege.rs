//! Least privilege and data at rest: `leasewire serve` started as root with `server.user = "nobody"` binds
//! port 67 on an interface (SO_BINDTODEVICE), then runs as nobody with no capabilities — and still leases
//! addresses to a real client (busybox udhcpc) across a veth pair. Its data directory is 0700 and the lease
//! database files 0600, owned by that user. Needs root (CI runs as root).

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use support::{Netns, Server};

fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
    line[field.len()..].split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn serve_binds_port_67_then_runs_as_nobody_without_capabilities() {
    let ns = Netns::new(2);
    let (srv_if, cli_if) = ns.link(0, "10.77.0.1/24", 1, "10.77.0.2/24");
    let dir = tempfile::tempdir().unwrap();
    // nobody must reach the data directory through its parent (as it would through /var/lib).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = format!(
        r#"
[server]
server-id = "10.77.0.1"
listen = []
interfaces = ["{srv_if}"]
data-dir = "@DATA@"
user = "nobody"

[[subnet]]
subnet = "10.77.0.0/24"
interface = "{srv_if}"
pools = [{{ start = "10.77.0.100", end = "10.77.0.199" }}]
"#
    );
    let server = Server::start(dir.path(), &config, Some((&ns, 0)));
    let pid = server.proc.pid();
    let nobody = support::sh(&["id", "-u", "nobody"]).trim().to_string();
    let uid = status_field(pid, "Uid:");
    assert_eq!(uid, format!("{nobody} {nobody} {nobody} {nobody}"), "real, effective, saved and fs uid");
    assert_eq!(status_field(pid, "CapEff:"), "0000000000000000", "no capabilities left");
    assert_eq!(status_field(pid, "CapPrm:"), "0000000000000000");

    // Still serving DHCP on the port-67 socket it bound as root.
    let out = ns
        .cmd(1, "busybox")
        .args(["udhcpc", "-i", &cli_if, "-n", "-q", "-f", "-t", "5", "-s", "/bin/true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "udhcpc got no lease: {}", String::from_utf8_lossy(&out.stderr));
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
