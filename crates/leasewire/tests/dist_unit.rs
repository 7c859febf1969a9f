//! The hardened systemd unit in `dist/` is valid (systemd-analyze verify, with this build's binary in
//! ExecStart) and its exposure score stays at or below 2.0 of 10 ("OK") in systemd's own security analysis.

use std::process::Command;

mod support;

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../dist/leasewire.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/leasewire serve"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leasewire.service");
    std::fs::write(&path, unit.replace("/usr/bin/leasewire", env!("CARGO_BIN_EXE_leasewire"))).unwrap();
    let verify = Command::new(support::peer("systemd-analyze", "systemd"))
        // The man pages of Documentation= are installed by the package, not here (scripts/test-deb checks them).
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = Command::new(support::peer("systemd-analyze", "systemd"))
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(security.status.success(), "exposure above 2.0:\n{}", String::from_utf8_lossy(&security.stdout));
}

/// A test whose third-party peer is missing fails naming the Debian package to install (issue #18), rather
/// than with `exec of "busybox" failed`.
#[test]
fn a_missing_peer_fails_naming_its_package() {
    assert_eq!(support::peer("sh", "dash"), "sh");
    let e = std::panic::catch_unwind(|| support::peer("leasewire-no-such-peer", "leasewire-peer-pkg")).unwrap_err();
    let msg = e.downcast_ref::<String>().unwrap();
    assert!(msg.contains("apt-get install leasewire-peer-pkg"), "{msg}");
}
