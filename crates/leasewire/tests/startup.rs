//! Start-up that never surprises (issue #16, item 1), with the real binary and real sockets: every way
//! `leasewire serve` can fail to start ends with exit status 1 and one line `error: ...` naming the address,
//! file or key at fault — no panic, no backtrace — and a second instance on the same address or the same
//! data directory is refused while the first goes on serving.

mod support;

use leasewire_proto::MessageType;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::relay::Relay;
use support::{Server, ServerConfig, free_tcp_port, free_udp_port, leasewire};

/// A configuration serving DHCP on `udp` (127.0.0.1), with `extra` appended.
fn config(data: &Path, udp: u16, extra: &str) -> String {
    let config = ServerConfig::new(udp).section(extra).subnet("127.0.0.0/8", "127.1.0.0", "127.1.0.200", "");
    config.text().replace("@DATA@", &data.display().to_string())
}

/// Bulk/Active Leasequery in secure mode on `tcp` with these TLS files.
fn tls(tcp: u16, cert: &Path, key: &Path, ca: &Path) -> String {
    format!("{}\n{}", support::bulk_section(tcp), support::active_tls_section(cert, key, ca, ""))
}

/// Runs `leasewire serve` (through `wrapper`, if any) on `text` and asserts that it fails the way an operator
/// needs: exit status 1, exactly one `error: ` line, the last one, mentioning every `needles`, and nothing that
/// looks like a panic or a backtrace. Returns that line.
fn serve_fails_with(dir: &Path, text: &str, wrapper: &[&str], needles: &[&str]) -> String {
    let path = dir.join(format!("{}.toml", support::unique("cfg")));
    std::fs::write(&path, text).unwrap();
    let mut cmd = match wrapper.first() {
        Some(w) => {
            let mut c = Command::new(w);
            c.args(&wrapper[1..]).arg(leasewire());
            c
        }
        None => Command::new(leasewire()),
    };
    let out = cmd.args(["serve", "--config", path.to_str().unwrap()]).env("RUST_BACKTRACE", "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit status 1 expected; stderr:\n{stderr}");
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(bad), "{bad:?} in stderr:\n{stderr}");
    }
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{stderr}");
    assert_eq!(stderr.lines().last(), Some(errors[0]), "the error is the last line:\n{stderr}");
    for n in needles {
        assert!(errors[0].contains(n), "the error should name {n:?}: {}", errors[0]);
    }
    errors[0].to_string()
}

/// `leasewire lab-certs --out DIR`: (cert, key, ca).
fn lab_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let out = Command::new(leasewire()).args(["lab-certs", "--out", dir.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (dir.join("server.pem"), dir.join("server-key.pem"), dir.join("ca.pem"))
}

#[test]
fn a_taken_dhcp_address_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let udp = free_udp_port();
    // Held by another process's socket (no SO_REUSEADDR on either side).
    let _holder = std::net::UdpSocket::bind(("127.0.0.1", udp)).unwrap();
    serve_fails_with(
        dir.path(),
        &config(&dir.path().join("data"), udp, ""),
        &[],
        &[&format!("DHCP (UDP) 127.0.0.1:{udp}"), "in use"],
    );
}

/// `serve` with `section(port)` added, `port` held by another process's TCP listener: refused, naming
/// `listener` and the address.
fn a_taken_tcp_port_is_refused(section: impl Fn(u16) -> String, listener: &str) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let _holder = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    serve_fails_with(
        dir.path(),
        &config(&dir.path().join("data"), free_udp_port(), &section(port)),
        &[],
        &[&format!("{listener} (TCP) 127.0.0.1:{port}"), "in use"],
    );
}

#[test]
fn a_taken_leasequery_port_is_refused_naming_it() {
    a_taken_tcp_port_is_refused(support::bulk_section, "Leasequery");
}

#[test]
fn a_taken_metrics_port_is_refused_naming_it() {
    a_taken_tcp_port_is_refused(|port| format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"), "metrics");
}

#[test]
fn bad_tls_files_are_refused_naming_the_file_by_serve_and_check_config_alike() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = lab_certs(&dir.path().join("certs"));
    let (_, other_key, _) = lab_certs(&dir.path().join("other"));
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n").unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "just text\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let a_dir = dir.path().join("certs");
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        ("certificate missing", tls(free_tcp_port(), &missing, &key, &ca), vec![missing.display().to_string()]),
        ("certificate is a directory", tls(free_tcp_port(), &a_dir, &key, &ca), vec![a_dir.display().to_string()]),
        ("certificate garbage", tls(free_tcp_port(), &garbage, &key, &ca), vec![garbage.display().to_string()]),
        ("no certificate in the file", tls(free_tcp_port(), &empty, &key, &ca), vec![empty.display().to_string()]),
        ("key missing", tls(free_tcp_port(), &cert, &missing, &ca), vec![missing.display().to_string()]),
        ("key garbage", tls(free_tcp_port(), &cert, &garbage, &ca), vec![garbage.display().to_string()]),
        (
            "key does not match the certificate",
            tls(free_tcp_port(), &cert, &other_key, &ca),
            vec![other_key.display().to_string(), cert.display().to_string()],
        ),
        ("CA missing", tls(free_tcp_port(), &cert, &key, &missing), vec![missing.display().to_string()]),
    ];
    for (what, extra, needles) in cases {
        let text = config(&dir.path().join("data"), free_udp_port(), &extra);
        let mut needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        needles.push("active-leasequery.tls");
        let line = serve_fails_with(dir.path(), &text, &[], &needles);
        // check-config fails wherever serve would, with the same message.
        let path = dir.path().join("check.toml");
        std::fs::write(&path, &text).unwrap();
        let out = Command::new(leasewire()).args(["check-config", path.to_str().unwrap()]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: check-config must fail:\n{stderr}");
        assert_eq!(stderr.trim(), line, "{what}: check-config says what serve says");
    }
    // The good set passes both.
    let text = config(&dir.path().join("data"), free_udp_port(), &tls(free_tcp_port(), &cert, &key, &ca));
    std::fs::write(dir.path().join("good.toml"), &text).unwrap();
    let out = Command::new(leasewire()).args(["check-config", dir.path().join("good.toml").to_str().unwrap()]).output();
    let out = out.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn relative_paths_are_taken_from_the_config_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    lab_certs(&etc.join("certs"));
    let udp = free_udp_port();
    let text = format!(
        "{}{}",
        config(Path::new("data"), udp, ""),
        tls(
            free_tcp_port(),
            Path::new("certs/server.pem"),
            Path::new("certs/server-key.pem"),
            Path::new("certs/ca.pem")
        )
    );
    std::fs::write(etc.join("leasewire.toml"), text).unwrap();
    // Started from elsewhere: the certificates and the data directory are found next to the file.
    let server = Server::start_with(dir.path(), &etc.join("leasewire.toml"), None);
    assert!(etc.join("data/leases.sqlite3").exists(), "the data directory is etc/data");
    let relay = Relay::new(SocketAddr::from((Ipv4Addr::LOCALHOST, udp)), Ipv4Addr::LOCALHOST);
    assert!(relay.dora([2, 0, 0, 0, 9, 1], 1, Ipv4Addr::LOCALHOST).is_some());
    server.stop();
}

#[test]
fn a_data_directory_that_cannot_be_used_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the directory should be.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    serve_fails_with(
        dir.path(),
        &config(&file, free_udp_port(), ""),
        &[],
        &["server.data-dir", &file.display().to_string(), "not a directory"],
    );
    // A directory the server's user cannot write (root's, 0700; the server runs as nobody).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    support::require_root();
    serve_fails_with(
        dir.path(),
        &config(&data, free_udp_port(), ""),
        &["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"],
        &["server.data-dir", &data.display().to_string(), "ermission denied"],
    );
}

#[test]
fn a_second_instance_on_the_same_address_is_refused_and_the_first_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let udp = free_udp_port();
    let first = Server::start(dir.path(), &config(&dir.path().join("data"), udp, ""), None);
    let relay = Relay::new(SocketAddr::from((Ipv4Addr::LOCALHOST, udp)), Ipv4Addr::LOCALHOST);
    assert!(relay.dora([2, 0, 0, 0, 7, 1], 1, Ipv4Addr::LOCALHOST).is_some());
    // Another data directory, the same DHCP address: that would be two lease databases answering the same
    // clients.
    serve_fails_with(
        dir.path(),
        &config(&dir.path().join("data2"), udp, ""),
        &[],
        &[&format!("DHCP (UDP) 127.0.0.1:{udp}")],
    );
    // The first one still answers every client (none went to the refused one).
    for i in 2..6u8 {
        let ack = relay.dora([2, 0, 0, 0, 7, i], u32::from(i), Ipv4Addr::LOCALHOST);
        assert!(ack.is_some(), "DORA {i} after the refused start");
    }
    let mut req = relay.request(MessageType::Discover, [2, 0, 0, 0, 7, 9], 99);
    req.xid = 99;
    relay.send(&req);
    assert_eq!(relay.recv(99).and_then(|m| m.message_type()), Some(MessageType::Offer));
    first.stop();
}

#[test]
fn a_second_instance_on_the_same_data_directory_is_refused_and_the_first_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let udp = free_udp_port();
    let data = dir.path().join("data");
    let first = Server::start(dir.path(), &config(&data, udp, ""), None);
    // Another address, the same embedded store.
    serve_fails_with(
        dir.path(),
        &config(&data, free_udp_port(), ""),
        &[],
        &["server.data-dir", &data.display().to_string(), "in use by another leasewire", "leasewire.lock"],
    );
    let relay = Relay::new(SocketAddr::from((Ipv4Addr::LOCALHOST, udp)), Ipv4Addr::LOCALHOST);
    assert!(relay.dora([2, 0, 0, 0, 8, 1], 1, Ipv4Addr::LOCALHOST).is_some());
    // Once the first has stopped, the lock is free again.
    first.stop();
    let again = Server::start_with(dir.path(), &dir.path().join("server.toml"), None);
    again.stop();
}
