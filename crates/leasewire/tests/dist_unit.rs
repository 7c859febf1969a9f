//! The hardened systemd unit in `dist/` is valid (systemd-analyze verify, with this build's binary in
//! ExecStart) and its exposure score stays at or below 2.0 of 10 ("OK") in systemd's own security analysis.

use std::process::Command;

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../dist/leasewire.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/leasewire serve"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leasewire.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/leasewire", env!("CARGO_BIN_EXE_leasewire"))).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (package systemd; .ci/run installs it)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(security.status.success(), "exposure above 2.0:\n{}", String::from_utf8_lossy(&security.stdout));
}
