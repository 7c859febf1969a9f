//! Packaging (issue #18): the licence files Cargo.toml promises, the minimum Rust version that is true, the man
//! page and completions from the CLI, and Debian package metadata whose files exist. (Building and installing
//! the package is scripts/test-deb, run by scripts/test as root on Debian.)

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(p: &str) -> String {
    std::fs::read_to_string(repo().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn version(v: &str) -> (u32, u32) {
    let mut it = v.split('.').map(|x| x.parse::<u32>().unwrap());
    (it.next().unwrap(), it.next().unwrap_or(0))
}

#[test]
fn the_licence_files_match_the_licence_field() {
    assert!(read("Cargo.toml").contains("license = \"Apache-2.0 OR MIT\""));
    assert!(read("LICENSE-APACHE").contains("Apache License\n                        Version 2.0, January 2004"));
    assert!(read("LICENSE-MIT").contains("Permission is hereby granted, free of charge"));
    assert!(read("CHANGELOG.md").contains("## [Unreleased]"));
}

/// `rust-version` is what the build needs: at least 1.88 (let chains, used throughout) and at least every
/// dependency's own `rust-version`, and README states it. (A toolchain of exactly that version is not
/// installable offline here, so this is the check rather than a build with it.)
#[test]
fn rust_version_is_what_the_code_and_its_dependencies_need_and_readme_says_so() {
    let manifest = read("Cargo.toml");
    let msrv = manifest.lines().find_map(|l| l.strip_prefix("rust-version = \"")?.strip_suffix('"')).unwrap();
    assert!(version(msrv) >= (1, 88), "let chains need 1.88; rust-version says {msrv}");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (needed, by) = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !p["source"].is_null())
        .filter_map(|p| Some((version(p["rust_version"].as_str()?), p["name"].as_str()?.to_string())))
        .max()
        .unwrap();
    assert!(version(msrv) >= needed, "{by} needs Rust {needed:?}; rust-version says {msrv}");
    let readme = read("README.md");
    assert!(readme.contains(&format!("Rust\n{msrv} or later")) || readme.contains(&format!("Rust {msrv} or later")));
}

#[test]
fn man_pages_and_completions_come_from_the_cli() {
    let run = |args: &[&str]| {
        let out = Command::new(support::leasewire()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let man = run(&["man"]);
    assert!(man.contains(".TH leasewire 1") && man.contains("check\\-config"), "{man}");
    let dir = tempfile::tempdir().unwrap();
    run(&["man", "--out", dir.path().to_str().unwrap()]);
    for page in ["leasewire.1", "leasewire-serve.1", "leasewire-query.1", "leasewire-bulk.1", "leasewire-watch.1"] {
        assert!(dir.path().join(page).exists(), "{page}");
    }
    assert!(run(&["completions", "bash"]).contains("_leasewire()"));
    assert!(run(&["completions", "zsh"]).contains("#compdef leasewire"));
    assert!(run(&["completions", "fish"]).contains("complete -c leasewire"));
}

/// The Debian metadata ships files that exist (or that scripts/package-deb generates), the unit's
/// `Documentation=` names what the package installs, and the packaged configuration is valid and serves
/// nobody but this host.
#[test]
fn debian_package_metadata_names_real_files_and_a_safe_default_config() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let assets: Vec<(&str, &str)> = manifest
        .lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("[\"")?;
            let (src, rest) = l.split_once("\", \"")?;
            Some((src, rest.split_once('"')?.0))
        })
        .collect();
    assert!(assets.len() >= 10, "{assets:?}");
    let mut installed = Vec::new();
    for (src, dest) in &assets {
        if !src.starts_with("target/") {
            let pattern = crate_dir.join(src);
            let dir = pattern.parent().unwrap();
            let name = pattern.file_name().unwrap().to_str().unwrap();
            let found: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|f| f == name || name.strip_prefix('*').is_some_and(|ext| f.ends_with(ext)))
                .collect();
            assert!(!found.is_empty(), "asset {src} does not exist");
            for f in found {
                installed.push(if dest.ends_with('/') { format!("/{dest}{f}") } else { format!("/{dest}") });
            }
        }
    }
    let script = read("scripts/package-deb");
    for generated in ["man --out", "completions bash", "completions zsh", "completions fish"] {
        assert!(script.contains(generated), "scripts/package-deb generates {generated}");
    }
    let unit = read("dist/leasewire.service");
    for doc in unit.lines().filter_map(|l| l.strip_prefix("Documentation=")).flat_map(str::split_whitespace) {
        if let Some(path) = doc.strip_prefix("file:") {
            assert!(installed.iter().any(|i| i == path), "Documentation={doc} is not among {installed:?}");
        } else {
            assert!(doc.starts_with("man:leasewire"), "Documentation={doc}: only installed docs");
        }
    }
    assert!(!unit.contains("example.invalid"));
    assert!(installed.contains(&"/etc/leasewire/leasewire.toml".to_string()));
    // The packaged configuration validates and keeps to loopback.
    let out = Command::new(support::leasewire())
        .args(["check-config", "--config"])
        .arg(repo().join("dist/leasewire.toml"))
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(summary.contains("DHCP on UDP 127.0.0.1:67") && !summary.contains("subnet "), "{summary}");
    assert!(summary.contains("for 127.0.0.0/8") && summary.contains("active leasequery off"), "{summary}");
}
