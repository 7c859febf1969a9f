//! docs/configuration.md is checked against the configuration schema itself, so it cannot drift: every key the
//! server accepts has a row, and every row names a key the server accepts.
//!
//! The keys are discovered from the parser, not from a list kept by hand: the test puts an unknown key into
//! each table and reads the "expected one of ..." the parser answers with (every table is
//! `deny_unknown_fields`), descending into each field that turns out to be a table or an array of tables.

use leasewire_server::config::Config;
use std::collections::BTreeSet;

const PROBE: &str = "zz-probe";

/// A step of a key path: the key, and whether its value is an array of tables.
#[derive(Clone, Debug)]
struct Step {
    key: String,
    array: bool,
}

/// The TOML text putting `inner` (an inline value) at `path`.
fn nest(path: &[Step], inner: &str) -> String {
    match path.split_first() {
        None => inner.to_string(),
        Some((s, rest)) => {
            let v = nest(rest, inner);
            let v = if s.array { format!("[{v}]") } else { v };
            format!("{{ {} = {v} }}", s.key)
        }
    }
}

/// The document for a probe at `path` (the top level is a table, not an inline value).
fn document(path: &[Step], inner: &str) -> String {
    let inline = nest(path, inner);
    // `{ a = ... }` at the top: strip the braces into top-level keys.
    inline.strip_prefix("{ ").and_then(|s| s.strip_suffix(" }")).unwrap_or(&inline).to_string() + "\n"
}

/// The field names in a serde "unknown field" message.
fn expected_fields(message: &str) -> Option<Vec<String>> {
    let rest = message.split_once(&format!("unknown field `{PROBE}`"))?.1;
    Some(rest.split('`').skip(1).step_by(2).map(str::to_string).collect())
}

/// What the table at `path` is, from the parser: its fields, or None when it is not a table of its own.
fn fields_at(path: &[Step]) -> Option<Vec<String>> {
    let inner = format!("{{ {PROBE} = 1 }}");
    let doc = if path.is_empty() { format!("{PROBE} = 1\n") } else { document(path, &inner) };
    let e = Config::parse(&doc).err()?;
    expected_fields(&e.message)
}

/// Every dotted key that holds a value (array-of-table steps written plainly: `subnet.pools.start`), and the
/// open tables (which take keys of the user's choosing, e.g. `subnet.options`).
fn schema_keys() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut keys = BTreeSet::new();
    let mut open = BTreeSet::new();
    let mut todo: Vec<Vec<Step>> = vec![vec![]];
    while let Some(path) = todo.pop() {
        let fields = fields_at(&path).unwrap_or_else(|| panic!("{path:?} is not a table"));
        for f in fields {
            let name: Vec<String> = path.iter().map(|s| s.key.clone()).chain([f.clone()]).collect();
            let dotted = name.join(".");
            let mut child = path.clone();
            child.push(Step { key: f, array: false });
            if fields_at(&child).is_some() {
                todo.push(child);
                continue;
            }
            child.last_mut().unwrap().array = true;
            if fields_at(&child).is_some() {
                todo.push(child);
                continue;
            }
            // Not a table we can list: a value, or a table open to any key (accepted without complaint).
            child.last_mut().unwrap().array = false;
            let doc = document(&child, &format!("{{ {PROBE} = 1 }}"));
            // Accepted: the parser went on to complain about something else (a required key of the table
            // around it), not about this value.
            let accepted = Config::parse(&doc).err().is_none_or(|e| e.message.starts_with("missing field"));
            if accepted {
                open.insert(dotted.clone());
            }
            keys.insert(dotted);
        }
    }
    (keys, open)
}

/// The keys in the reference's tables: rows starting with `` | `key` | ``.
fn documented_keys(doc: &str) -> BTreeSet<String> {
    doc.lines().filter_map(|l| l.strip_prefix("| `")?.split_once("` |").map(|(k, _)| k.to_string())).collect()
}

#[test]
fn docs_configuration_md_has_a_row_for_every_key_and_no_other() {
    let (keys, open) = schema_keys();
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md")).unwrap();
    let rows = documented_keys(&doc);
    let missing: Vec<&String> = keys.difference(&rows).collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md has no row for these configuration keys: {missing:?}.\n\
         Add one row per key to the table of its section, in the form\n\
         | `section.key` | type | default | example | reload |\n\
         (type as in TOML, the default or \"required\", a one-line example, and what SIGHUP does for it)."
    );
    let unknown: Vec<&String> =
        rows.difference(&keys).filter(|r| !open.iter().any(|o| r.starts_with(&format!("{o}.")))).collect();
    assert!(
        unknown.is_empty(),
        "docs/configuration.md documents keys the server does not accept: {unknown:?} — remove or rename \
         those rows (keys are discovered from the parser: every table is deny_unknown_fields)"
    );
}

#[test]
fn the_probe_finds_nested_tables_and_arrays_of_tables() {
    let (keys, open) = schema_keys();
    println!("{keys:#?}\nopen: {open:?}");
    for k in ["server.server-id", "server.store.url", "active-leasequery.tls.ca", "subnet.pools.start"] {
        assert!(keys.contains(k), "{k} in {keys:?}");
    }
    assert!(open.contains("subnet.options"), "{open:?}");
}

/// The worked examples of docs/configuration.md (every TOML block with a `[[subnet]]`: PXE, campus with a
/// shared network and classes, ISP with port reservations and a CPE class) are valid configurations that
/// `check-config` has no warning about, so the reference cannot show a file the server refuses.
#[test]
fn docs_configuration_md_examples_parse_without_warnings() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md")).unwrap();
    let blocks: Vec<&str> = doc.split("```toml\n").skip(1).filter_map(|b| b.split("```").next()).collect();
    let examples: Vec<&&str> = blocks.iter().filter(|b| b.contains("[[subnet]]")).collect();
    assert!(examples.len() >= 4, "PXE, campus, ISP reservations, ISP CPE class: {}", examples.len());
    for example in examples {
        let text = format!("[server]\nserver-id = \"192.0.2.1\"\ndata-dir = \"/var/lib/leasewire\"\n{example}");
        let v = Config::parse(&text).unwrap_or_else(|e| panic!("{e}\nin\n{example}"));
        assert!(v.warnings.is_empty(), "{:?}\nin\n{example}", v.warnings);
    }
}
