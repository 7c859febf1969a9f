//! The command line's promises: the shipped examples validate, errors name key and line, the README's first
//! command works, `--help` lists the subcommands.

mod support;

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn leasewire(args: &[&str]) -> std::process::Output {
    Command::new(support::leasewire()).args(args).current_dir(repo()).output().unwrap()
}

#[test]
fn shipped_examples_pass_check_config() {
    let out = leasewire(&["check-config", "examples/lab.toml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("subnet 127.0.0.0/8: 65535 pool address(es)"), "{text}");
    assert!(text.contains("leasequery (UDP) for 127.0.0.0/8"), "{text}");
}

#[test]
fn check_config_names_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = std::fs::read_to_string(repo().join("examples/lab.toml")).unwrap().replace("127.1.255.254", "10.0.0.1");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, &bad).unwrap();
    let line = bad.lines().position(|l| l.contains("10.0.0.1")).unwrap() + 1;
    let out = leasewire(&["check-config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("line {line}: subnet[0].pools[0].end: 10.0.0.1 is outside 127.0.0.0/8")), "{err}");
}

#[test]
fn decode_prints_the_isc_replies() {
    let hex = std::fs::read(repo().join("examples/isc-leasequery-replies.hex")).unwrap();
    let mut child = Command::new(support::leasewire())
        .arg("decode")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&hex).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for t in ["DHCPLEASEACTIVE", "DHCPLEASEUNASSIGNED", "DHCPLEASEUNKNOWN"] {
        assert!(text.contains(t), "{text}");
    }
    assert!(text.contains("option  82: 1=70:6f:72:74:31 2=73:77:31"), "{text}");
}

#[test]
fn help_lists_the_subcommands() {
    let text = String::from_utf8_lossy(&leasewire(&["--help"]).stdout).into_owned();
    for c in ["serve", "check-config", "query", "bulk", "watch", "demo", "lab-certs", "decode", "bench"] {
        assert!(text.contains(c), "{c} missing from --help:\n{text}");
    }
}

#[test]
fn lab_certs_then_lab_tls_validates() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(support::leasewire())
        .args(["lab-certs", "--out", "certs"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("certs/server-key.pem")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "private keys are not world-readable");
    let mode = std::fs::metadata(dir.path().join("certs/ca-key.pem")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the CA key is written, not world-readable");
    let out = Command::new(support::leasewire())
        .args(["lab-certs", "--out", "certs", "--requestor", "second.lab"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mode = std::fs::metadata(dir.path().join("certs/second.lab-key.pem")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(dir.path().join("certs/second.lab.pem").exists());
    let out = Command::new(support::leasewire())
        .args(["lab-certs", "--out", "elsewhere", "--requestor", "x.lab"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("ca.pem") && err.contains("lab-certs --out"), "{err}");
    // The repository's layout: examples/lab-tls.toml names ../certs, relative to the file's own directory, so
    // it validates from any working directory (the certificates are loaded: check-config fails where serve
    // would).
    std::fs::create_dir(dir.path().join("examples")).unwrap();
    std::fs::copy(repo().join("examples/lab-tls.toml"), dir.path().join("examples/lab-tls.toml")).unwrap();
    let out = Command::new(support::leasewire())
        .args(["check-config", "../examples/lab-tls.toml"])
        .current_dir(dir.path().join("certs"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("active leasequery ON, secure mode (TLS required"), "{text}");
}

#[test]
fn readme_first_command_demo_shows_live_changes_and_ends_at_ctrl_c_with_replica_equal_to_store() {
    let child = Command::new(support::leasewire())
        .args(["demo", "--rate", "100", "--lease-time", "2", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Let clients come and go, some leases expire (2 s), then Ctrl-C.
    std::thread::sleep(std::time::Duration::from_secs(5));
    support::sh(&["kill", "-INT", &child.id().to_string()]);
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("server and replica agree"), "{stderr}");
    // Changes as the requestor saw them, over mutual TLS, as JSON lines.
    assert!(stderr.contains("tls=true"), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
    let states: std::collections::HashSet<&str> = lines.iter().filter_map(|j| j["state"].as_str()).collect();
    for s in ["ACTIVE", "RELEASED", "EXPIRED"] {
        assert!(states.contains(s), "no {s} change in {} lines", lines.len());
    }
}

#[test]
fn watch_refuses_half_a_tls_setup_and_a_zero_retry_interval_with_a_clear_error() {
    let out = leasewire(&["watch", "--server", "127.0.0.1:1", "--tls-cert", "x.pem"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tls-cert, --tls-key and --ca"), "{err}");
    let out = leasewire(&["watch", "--server", "127.0.0.1:1", "--retry-interval", "0s"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--retry-interval must be more than 0"));
    let out = leasewire(&["watch", "--server", "not-an-address"]);
    assert!(!out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

/// Issue #19: the cap on history waiting behind a write of the replica file is a flag of `watch`, shown with
/// its default, and at least 1 (0 would pause reading for good).
#[test]
fn watch_takes_the_history_cap_as_a_flag() {
    let help = String::from_utf8_lossy(&leasewire(&["watch", "--help"]).stdout).into_owned();
    assert!(help.contains("--history-max-unwritten <HISTORY_MAX_UNWRITTEN>"), "{help}");
    assert!(help.contains("[default: 1000000]"), "{help}");
    let out = leasewire(&["watch", "--server", "127.0.0.1:1", "--history-max-unwritten", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--history-max-unwritten"), "{out:?}");
    let out = leasewire(&["watch", "--server", "127.0.0.1:1", "--history-max-unwritten", "5000", "--help"]);
    assert!(out.status.success(), "{out:?}");
}

// One CLI dialect (issue #18).

#[test]
fn check_config_takes_config_like_serve_and_still_the_old_positional_path() {
    for args in [&["check-config", "--config", "examples/lab.toml"][..], &["check-config", "examples/lab.toml"]] {
        let out = leasewire(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn config_errors_name_the_key_and_say_plainly_when_the_file_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = std::fs::read_to_string(repo().join("examples/lab.toml"))
        .unwrap()
        .replace("lease-time = 3600", "lease-time = \"ten minutes\"");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, &bad).unwrap();
    let out = leasewire(&["check-config", "--config", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(": subnet[0].lease-time: invalid type: string \"ten minutes\""), "{err}");
    let out = leasewire(&["check-config", "--config", "nope.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope.toml: cannot read the file: No such file") && !err.contains(": :"), "{err}");
}

#[test]
fn check_config_does_not_panic_when_its_reader_is_gone() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(support::leasewire())
        .args(["check-config", "--config", "examples/lab.toml"])
        .current_dir(repo())
        .stdout(writer)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("panicked"), "{err}");
}

#[test]
fn durations_times_and_servers_have_one_syntax() {
    // Durations: bare seconds and units, wherever a duration is taken.
    for args in [
        &["demo", "--duration", "8", "--help"][..],
        &["query", "--server", "127.0.0.1", "--ip", "127.0.0.1", "--timeout", "5m", "--help"],
        &["bulk", "--server", "127.0.0.1", "--timeout", "300", "--since", "2026-12-03T05:00:00Z", "--help"],
        &["watch", "--server", "127.0.0.1", "--retry-interval", "90", "--rcv-timeout", "2m", "--help"],
    ] {
        let out = leasewire(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = leasewire(&["demo", "--duration", "ten minutes"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("30s, 5m, 2h"));
    let out = leasewire(&["bulk", "--server", "127.0.0.1:1", "--since", "yesterday"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
    let out = leasewire(&["bulk", "--server", "no-such-host.invalid", "--since", "1796274600"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-host.invalid: cannot resolve the name"));
}

#[test]
fn query_to_a_closed_port_fails_at_once_naming_it() {
    // A name with a port; nothing listens there, so the kernel's ICMP port unreachable ends the query.
    let port = support::free_udp_port();
    let start = std::time::Instant::now();
    let out = leasewire(&["query", "--server", &format!("localhost:{port}"), "--ip", "127.0.0.9", "--timeout", "30s"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("127.0.0.1:{port}: nothing listens there (ICMP port unreachable)")), "{err}");
    assert!(start.elapsed() < std::time::Duration::from_secs(5), "waited {:?}", start.elapsed());
}

#[test]
fn bulk_and_query_for_people_show_bindings_not_free_addresses_and_say_no_binding() {
    use std::net::{Ipv4Addr, SocketAddr};
    let dir = tempfile::tempdir().unwrap();
    let (udp, tcp) = (support::free_udp_port(), support::free_tcp_port());
    let config = support::ServerConfig::new(udp).section("[leasequery]\nallow = [\"127.0.0.0/8\"]").bulk(tcp).subnet(
        "127.32.0.0/16",
        "127.32.0.1",
        "127.32.0.50",
        "",
    );
    let server = support::Server::start(dir.path(), &config.text(), None);
    let relay =
        support::relay::Relay::new(SocketAddr::from((Ipv4Addr::LOCALHOST, udp)), Ipv4Addr::new(127, 32, 0, 254));
    let ip = relay.dora([2, 0, 0, 0, 32, 1], 1, Ipv4Addr::LOCALHOST).expect("a lease");
    let bulk = |extra: &[&str]| {
        let server = format!("localhost:{tcp}");
        let mut a = vec!["bulk", "--server", &server];
        a.extend_from_slice(extra);
        let out = leasewire(&a);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (table, summary) = bulk(&[]);
    assert_eq!(table.lines().count(), 2, "a header and the one binding:\n{table}");
    assert!(table.contains(&ip.to_string()) && !table.contains("AVAILABLE"), "{table}");
    assert!(summary.contains("49 more not shown (free addresses (AVAILABLE); --state all shows them)"), "{summary}");
    let (all, _) = bulk(&["--state", "all"]);
    assert_eq!(all.lines().count(), 51, "{all}");
    let (free, _) = bulk(&["--state", "available", "--json"]);
    assert_eq!(free.lines().count(), 49);
    let (json, _) = bulk(&["--json"]);
    assert_eq!(json.lines().count(), 50, "JSON, the contract for scripts, has every address by default");

    let query = |key: &[&str]| {
        let server = format!("127.0.0.1:{udp}");
        let mut a = vec!["query", "--server", &server, "--giaddr", "127.0.0.1", "--timeout", "5"];
        a.extend_from_slice(key);
        let out = leasewire(&a);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let unknown = query(&["--mac", "02:99:99:99:99:99"]);
    assert!(
        unknown.starts_with("no binding: the server does not know hardware address 02:99:99:99:99:99"),
        "{unknown}"
    );
    assert!(!unknown.contains("0.0.0.0"), "{unknown}");
    let free = query(&["--ip", "127.32.0.40"]);
    assert!(free.starts_with("no binding: 127.32.0.40 is not leased to anyone (DHCPLEASEUNASSIGNED)"), "{free}");
    assert!(query(&["--ip", &ip.to_string()]).starts_with(&format!("DHCPLEASEACTIVE for {ip}")));
    server.stop();
}

/// `bench dora` is the lab's client population: against a real server it makes leases, renews and releases
/// them at the rate asked, and the server's bindings show it.
#[test]
fn bench_dora_makes_renews_and_releases_leases_on_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let (udp, tcp) = (support::free_udp_port(), support::free_tcp_port());
    let config = support::ServerConfig::new(udp).bulk(tcp).subnet("127.33.0.0/16", "127.33.0.1", "127.33.0.200", "");
    let server = support::Server::start(dir.path(), &config.text(), None);
    let out = leasewire(&[
        "bench",
        "dora",
        "--server",
        &format!("localhost:{udp}"),
        "--giaddr",
        "127.33.0.254",
        "--rate",
        "300",
        "--duration",
        "2s",
        "--clients",
        "50",
        "--renew",
        "30",
        "--release",
        "10",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let n = |what: &str| -> u64 {
        let at = text.find(what).unwrap_or_else(|| panic!("{what} in {text}"));
        text[..at].split([' ', ';', ',']).rev().find(|w| !w.is_empty()).unwrap().parse().unwrap()
    };
    assert!(n(" DORA in") >= 50, "{text}");
    assert!(n(" renewed") > 0 && n(" released") > 0, "{text}");
    assert_eq!(n(" NAK"), 0, "{text}");
    let bulk = leasewire(&["bulk", "--server", &format!("127.0.0.1:{tcp}"), "--state", "active,released", "--json"]);
    let lines = String::from_utf8_lossy(&bulk.stdout);
    assert!(lines.contains("\"state\":\"ACTIVE\"") && lines.contains("\"state\":\"RELEASED\""), "{lines}");
    server.stop();
}
