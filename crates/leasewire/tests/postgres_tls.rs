//! `leasewire serve` on a PostgreSQL database over TCP with TLS (`server.store.ca`, `cert`, `key`): real
//! PostgreSQL clusters with TLS on (TCP over TLS only, `hostssl`), certificates from `lab_certs`.
//!
//! Checked: leases land in a database that accepts TLS connections only; a database certificate from another
//! CA, or a database without TLS, stops the server at start with an error that says so, and it never falls
//! back to the clear; `check-config` says TLS is required.

#[path = "../../leasewire-store/tests/pg/mod.rs"]
mod pg;
mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;
use support::lab_certs::{self, LabCa};
use support::relay::Relay;
use support::{Server, free_udp_port, leasewire};

fn config(udp: u16, url: &str, tls: &str) -> String {
    format!(
        r#"
[server]
server-id = "127.0.0.1"
listen = ["127.0.0.1:{udp}"]
# No data-dir: the PostgreSQL store needs none.
store = {{ kind = "postgres", url = "{url}", name = "a"{tls} }}

[[subnet]]
subnet = "127.0.0.0/8"
pools = [{{ start = "127.31.0.1", end = "127.31.0.50" }}]
"#
    )
}

/// Start `serve` with `config` and expect it to fail at start; returns what it logged.
fn serve_fails(dir: &std::path::Path, config: &str) -> String {
    let path = dir.join("server.toml");
    std::fs::write(&path, config.replace("@DATA@", dir.join("data").to_str().unwrap())).unwrap();
    let mut child = Command::new(leasewire())
        .args(["serve", "--config", path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut exited = false;
    for _ in 0..600 {
        if child.try_wait().unwrap().is_some() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !exited {
        // Still serving after 30 s: it started, which is the failure (a hang would hide it).
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(exited && !out.status.success(), "serve should have refused to start: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn leases_go_to_postgres_over_tls_and_a_wrong_certificate_or_no_tls_stops_the_server() {
    let certs = tempfile::tempdir().unwrap();
    let files = lab_certs::write(certs.path()).unwrap();
    let cert = std::fs::read_to_string(&files.server_cert).unwrap();
    let key = std::fs::read_to_string(&files.server_key).unwrap();
    let tls_db = pg::Cluster::start_tcp(Some((&cert, &key)), None);
    tls_db.psql("postgres", "CREATE DATABASE leases");
    let url = tls_db.tcp_url("127.0.0.1", "leases");
    let ca = format!(", ca = \"{}\"", files.ca.display());

    // check-config tells what the store connection does.
    let dir = tempfile::tempdir().unwrap();
    let udp = free_udp_port();
    let path = dir.path().join("check.toml");
    std::fs::write(&path, config(udp, &url, &ca).replace("@DATA@", "/tmp/unused")).unwrap();
    let out = Command::new(leasewire()).args(["check-config", path.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("TLS required"), "{text}");

    // With the right CA: the server runs and its leases are in the database (which takes TLS only).
    let server = Server::start(dir.path(), &config(udp, &url, &ca), None);
    let relay = Relay::new(SocketAddr::from((Ipv4Addr::LOCALHOST, udp)), Ipv4Addr::new(127, 31, 0, 254));
    for m in 1..=3u8 {
        relay.dora([2, 0, 0, 0, 31, m], u32::from(m), Ipv4Addr::LOCALHOST).expect("a lease");
    }
    server.stop();
    assert_eq!(tls_db.psql("leases", "SELECT count(*) FROM lw_binding WHERE state = 2").trim(), "3");

    // A database certificate from another CA: refused at start, and the error says why.
    let other = tempfile::tempdir().unwrap();
    let stranger = other.path().join("other-ca.pem");
    std::fs::write(&stranger, LabCa::new("someone else").unwrap().cert_pem()).unwrap();
    let logged = serve_fails(other.path(), &config(udp, &url, &format!(", ca = \"{}\"", stranger.display())));
    assert!(logged.contains("invalid peer certificate: UnknownIssuer"), "{logged}");

    // The right CA, but the certificate does not name the host the URL asks for: refused.
    let port = tls_db.tcp_port.unwrap();
    let elsewhere = format!("host=db.wrong.example hostaddr=127.0.0.1 port={port} user=postgres dbname=leases");
    let wrong_host = tempfile::tempdir().unwrap();
    let logged = serve_fails(wrong_host.path(), &config(udp, &elsewhere, &ca));
    assert!(logged.contains("certificate not valid for name \"db.wrong.example\""), "{logged}");

    // A database without TLS: refused, never spoken to in the clear.
    let plain_db = pg::Cluster::start_tcp(None, None);
    plain_db.psql("postgres", "CREATE DATABASE leases");
    let plain = tempfile::tempdir().unwrap();
    let logged = serve_fails(plain.path(), &config(udp, &plain_db.tcp_url("127.0.0.1", "leases"), &ca));
    assert!(logged.contains("server does not support TLS"), "{logged}");
    assert_eq!(plain_db.psql("leases", "SELECT count(*) FROM pg_tables WHERE tablename = 'lw_binding'").trim(), "0");
}

/// A database that authenticates servers by certificate (`hostssl ... cert`): `cert` and `key` get in,
/// nothing else does.
#[test]
fn a_client_certificate_authenticates_the_server_to_postgres() {
    let certs = tempfile::tempdir().unwrap();
    let files = lab_certs::write(certs.path()).unwrap();
    let ca = LabCa::new("database clients").unwrap();
    let client = ca.issue(&["postgres"], true, false).unwrap();
    let (client_cert, client_key) = (certs.path().join("client.pem"), certs.path().join("client-key.pem"));
    std::fs::write(&client_cert, &client.cert_pem).unwrap();
    std::fs::write(&client_key, &client.key_pem).unwrap();
    let cert = std::fs::read_to_string(&files.server_cert).unwrap();
    let key = std::fs::read_to_string(&files.server_key).unwrap();
    let db = pg::Cluster::start_tcp(Some((&cert, &key)), Some(&ca.cert_pem()));
    db.psql("postgres", "CREATE DATABASE leases");
    let url = db.tcp_url("localhost", "leases");
    let udp = free_udp_port();

    let without = tempfile::tempdir().unwrap();
    let logged = serve_fails(without.path(), &config(udp, &url, &format!(", ca = \"{}\"", files.ca.display())));
    assert!(logged.contains("certificate"), "{logged}");

    let dir = tempfile::tempdir().unwrap();
    let tls = format!(
        ", ca = \"{}\", cert = \"{}\", key = \"{}\"",
        files.ca.display(),
        client_cert.display(),
        client_key.display()
    );
    let server = Server::start(dir.path(), &config(udp, &url, &tls), None);
    let relay = Relay::new(SocketAddr::from((Ipv4Addr::LOCALHOST, udp)), Ipv4Addr::new(127, 31, 0, 254));
    relay.dora([2, 0, 0, 0, 32, 1], 1, Ipv4Addr::LOCALHOST).expect("a lease");
    server.stop();
    assert_eq!(db.psql("leases", "SELECT count(*) FROM lw_binding WHERE state = 2").trim(), "1");
}
