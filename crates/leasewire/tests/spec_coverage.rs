//! The requirement index in docs/conformance.md against the tests (`scripts/spec-coverage`, also run by
//! scripts/test): every applicable MUST/SHOULD of RFC 4388, 6148, 6926 and 7724 is named by a test that exists
//! (`--strict`: a declared gap fails too); so nextest catches a renamed test, an index row that drifted, or a
//! new requirement left out.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn spec_coverage(index: Option<&std::path::Path>, args: &[&str]) -> (bool, String) {
    let mut c = Command::new("python3");
    c.arg(repo().join("scripts/spec-coverage")).args(args);
    if let Some(i) = index {
        c.env("SPEC_COVERAGE_INDEX", i);
    }
    let out = c.output().expect("python3");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// Strict: every applicable requirement is named by a test (no declared gap is left, so a new one fails).
#[test]
fn every_applicable_requirement_is_named_by_a_test_or_declared_as_a_gap() {
    let (ok, out) = spec_coverage(None, &["--strict"]);
    assert!(ok, "{out}");
    assert!(out.contains("0 declared gap(s), 0 undeclared; 0 other error(s)"), "{out}");
}

#[test]
fn the_check_fails_on_a_missing_test_an_undeclared_gap_and_a_test_that_does_not_name_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index.md");
    std::fs::write(
        &index,
        "## Requirement index\n\n| ID | Level | Binds | Requirement | Tests |\n|---|---|---|---|---|\n\
         | LQ-3-1 | MUST | Server | a query changes nothing | `no_such_test` |\n\
         | LQ-6.3-1 | MUST | Server | by IP, MAC, client-id | |\n\
         | LQ-6.4-3 | MUST | Server | ACTIVE when leased | `lq_3_1_a_query_changes_nothing` |\n\
         | LQ-6.6-2 | SHOULD | Requestor | pacing | gap: not yet |\n",
    )
    .unwrap();
    let (ok, out) = spec_coverage(Some(&index), &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("LQ-3-1: the test `no_such_test` does not exist"), "{out}");
    assert!(out.contains("LQ-6.3-1 (MUST, Server): no test and no declared gap"), "{out}");
    assert!(out.contains("LQ-6.4-3 (MUST, Server): none of lq_3_1_a_query_changes_nothing names it"), "{out}");
    assert!(out.contains("gap: ") && out.contains("LQ-6.6-2"), "declared gaps are listed: {out}");
    // Declared gaps fail only with --strict.
    std::fs::write(
        &index,
        "## Requirement index\n\n| ID | Level | Binds | Requirement | Tests |\n|---|---|---|---|---|\n\
         | LQ-6.6-2 | SHOULD | Requestor | pacing | gap: not yet |\n",
    )
    .unwrap();
    assert!(spec_coverage(Some(&index), &[]).0);
    assert!(!spec_coverage(Some(&index), &["--strict"]).0);
}
