//! One JSON schema for a binding (issue #18, docs/json.md): every producer's output — `query --json`,
//! `bulk --json`, `watch --json` and the watcher's `/bindings` — is checked against
//! `leasewire_requestor::json::validate`, against a real server on loopback with leases made by a relay.
//! (The history API's output is checked by its own tests with the same function.)

mod support;

use leasewire_requestor::json::validate;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::relay::Relay;
use support::{Proc, Server, ServerConfig, free_tcp_port, free_udp_port, http_get, leasewire};

fn lines(text: &str, producer: &str) -> Vec<Value> {
    let v: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{producer}: not JSON ({e}): {l}")))
        .collect();
    for o in &v {
        validate(o).unwrap_or_else(|e| panic!("{producer} against the schema: {e}"));
    }
    v
}

/// Standard output of `leasewire ARGS...`, which must succeed.
fn run(args: &[&str]) -> String {
    support::sh(&[&[leasewire()], args].concat())
}

#[test]
fn every_producer_writes_the_one_binding_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (udp, tcp) = (free_udp_port(), free_tcp_port());
    let config = ServerConfig::new(udp).section("[leasequery]\nallow = [\"127.0.0.0/8\"]").active_insecure(tcp);
    let config = config.subnet("127.31.0.0/16", "127.31.0.1", "127.31.0.8", "");
    let server = Server::start(dir.path(), &config.text(), None);
    let relay = Relay::new(SocketAddr::from((Ipv4Addr::LOCALHOST, udp)), Ipv4Addr::new(127, 31, 0, 254));
    let leased = relay.dora([2, 0, 0, 0, 31, 1], 1, Ipv4Addr::LOCALHOST).expect("a lease");
    relay.dora([2, 0, 0, 0, 31, 2], 2, Ipv4Addr::LOCALHOST).expect("a lease");
    let (udp_server, tcp_server) = (format!("127.0.0.1:{udp}"), format!("127.0.0.1:{tcp}"));

    // query: a binding, a free address, and no binding at all.
    let q = |key: &[&str]| {
        let mut a = vec!["query", "--server", &udp_server, "--giaddr", "127.0.0.1", "--json", "--timeout", "5"];
        a.extend_from_slice(key);
        lines(&run(&a), "query --json").remove(0)
    };
    let active = q(&["--ip", &leased.to_string()]);
    assert_eq!((active["reply"].as_str(), active["state"].as_str()), (Some("DHCPLEASEACTIVE"), Some("ACTIVE")));
    assert_eq!(active["mac"], "02:00:00:00:1f:01");
    assert_eq!(active["server_id"], "127.0.0.1");
    assert!(active["expires_at"].is_string() && active["expires_at_epoch"].is_u64(), "{active}");
    let free = q(&["--ip", "127.31.0.8"]);
    assert_eq!(free["reply"], "DHCPLEASEUNASSIGNED");
    assert!(free["mac"].is_null() && free["client_id"].is_null(), "absent is null: {free}");
    let unknown = q(&["--mac", "02:99:99:99:99:99"]);
    assert_eq!(unknown["reply"], "DHCPLEASEUNKNOWN");
    assert!(unknown["ip"].is_null() && unknown["state"].is_null(), "{unknown}");

    // bulk: every configured address, the same fields.
    let bulk = lines(&run(&["bulk", "--server", &tcp_server, "--json"]), "bulk --json");
    assert_eq!(bulk.len(), 8);
    let b = bulk.iter().find(|b| b["ip"] == leased.to_string()).unwrap();
    assert_eq!((b["mac"].as_str(), b["server"].as_str()), (Some("02:00:00:00:1f:01"), Some(tcp_server.as_str())));
    assert!(b["base_time_epoch"].is_u64() && b["remote_id"].is_string(), "{b}");

    // watch --json and /bindings.
    let http = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let mut watch = Proc::spawn(
        "leasewire watch",
        Command::new(leasewire())
            .args(["watch", "--json", "--retry-interval", "200ms", "--server", &tcp_server])
            .args(["--http", &http.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let stdout = BufReader::new(watch.child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut watched = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while watched.len() < 8 {
        let left = deadline.checked_duration_since(Instant::now()).expect("watch printed the 8 addresses");
        watched.extend(lines(&rx.recv_timeout(left).unwrap(), "watch --json"));
    }
    assert!(watched.iter().any(|w| w["ip"] == leased.to_string() && w["server"] == tcp_server.as_str()));
    let by_ip = lines(&http_get(http, &format!("/bindings?ip={leased}")), "/bindings?ip=");
    let by_mac = lines(&http_get(http, "/bindings?mac=02:00:00:00:1f:01"), "/bindings?mac=");
    assert_eq!(by_ip, by_mac, "the same binding, the same object, whichever way it is looked up");
    assert_eq!(by_mac[0]["server"], tcp_server.as_str(), "a lookup by MAC names the server too");
    drop(watch);
    server.stop();
}

/// docs/json.md is the reference: it has a row for every field the code writes, so the two cannot drift.
#[test]
fn docs_json_md_names_every_field() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/json.md")).unwrap();
    let fields = leasewire_requestor::json::FIELDS.iter().chain(leasewire_requestor::json::EXTRAS);
    for (name, ..) in fields {
        assert!(
            doc.contains(&format!("| `{name}` |")),
            "docs/json.md has no row for the field `{name}`: add `| `{name}` | type | meaning |` to its table"
        );
    }
    // The example is a valid object of the schema.
    let example = doc.lines().find(|l| l.starts_with("{\"version\"")).expect("an example line");
    validate(&serde_json::from_str(example).unwrap()).unwrap();
}
