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
    std::fs::copy(repo().join("examples/lab-tls.toml"), dir.path().join("lab-tls.toml")).unwrap();
    let out = Command::new(support::leasewire())
        .args(["check-config", "lab-tls.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
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
