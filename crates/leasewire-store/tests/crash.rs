//! Durability under SIGKILL: every commit the store acknowledged survives the process dying at any moment.
//!
//! The test re-executes its own binary as a child (the test `concurrent_commits_…`, which turns into the
//! child when an environment variable says so)
//! that commits from several threads as fast as it can and prints every acknowledged change on stdout. The
//! parent kills it with SIGKILL at a random moment, reopens the store and checks that every acknowledged
//! change is there, byte for byte, and that SQLite finds the file consistent. 20 rounds on one file.

use leasewire_proto::RelayAgentInfoBuilder;
use leasewire_store::{Binding, BindingChange, DhcpState, LeaseStore, OpenOptions, SqliteStore};
use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const CHILD_ENV: &str = "LEASEWIRE_STORE_CRASH_CHILD";
const ROUND_ENV: &str = "LEASEWIRE_STORE_CRASH_ROUND";
const ROUNDS: u32 = 20;
const THREADS: u32 = 4;
const T0: u32 = 1_700_000_000;

/// What the child commits for an address: derived from the address alone so the parent can check every
/// field of what it finds.
fn binding_for(ip: Ipv4Addr) -> Binding {
    let n = u32::from(ip);
    let mut b = Binding::new(ip, DhcpState::Active, T0 + (n % 1000));
    b.htype = 1;
    b.hardware_address = n.to_be_bytes().repeat(2)[..6].to_vec();
    b.client_id = Some(n.to_le_bytes().to_vec());
    b.expires_at = Some(T0 + 3600);
    b.cltt = Some(T0);
    b.relay_agent_info =
        Some(RelayAgentInfoBuilder::new().remote_id(&n.to_be_bytes()).relay_id(&[(n >> 24) as u8]).build());
    b.options = vec![(12, format!("host-{n}").into_bytes())];
    b
}

/// Commit from `THREADS` threads, printing every acknowledged change; `per_thread` commits each, or without
/// end (the crash child, killed by its parent).
fn commit_and_print(store: &std::sync::Arc<SqliteStore>, round: u32, per_thread: Option<u32>) {
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let batch = t as usize + 1; // batches of 1 to 4 bindings
                for i in 0..per_thread.unwrap_or(u32::MAX) {
                    let ips = (0..batch as u32)
                        .map(|k| Ipv4Addr::from((round + 1) << 24 | t << 20 | ((i * batch as u32 + k) & 0xf_ffff)));
                    let changes = store.commit(T0 + round, ips.map(binding_for).collect()).wait().unwrap();
                    let mut out = std::io::stdout().lock();
                    for c in changes {
                        writeln!(out, "ACK {} {} {}", c.seq, c.time, u32::from(c.binding.ip)).unwrap();
                    }
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// The crash child when the parent set `CHILD_ENV` (commits until SIGKILL). Run on its own, the same
/// concurrent commits end with a clean close, and every one is there after reopening.
#[test]
fn concurrent_commits_survive_a_clean_close_and_are_the_crash_child() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        let round: u32 = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
        let store = std::sync::Arc::new(SqliteStore::open(&path, OpenOptions::new(T0 + round)).unwrap());
        commit_and_print(&store, round, None);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leases.db");
    let store = std::sync::Arc::new(SqliteStore::open(&path, OpenOptions::new(T0)).unwrap());
    commit_and_print(&store, 0, Some(50));
    drop(store);
    let store = SqliteStore::open(&path, OpenOptions::new(T0)).unwrap();
    // Thread t committed 50 batches of t + 1 bindings.
    let expected: u64 = (1..=u64::from(THREADS)).map(|b| 50 * b).sum();
    assert_eq!(store.last_seq().unwrap(), expected);
    for t in 0..THREADS {
        let ip = Ipv4Addr::from(1 << 24 | t << 20 | (50 * (t + 1) - 1));
        assert_eq!(store.get(ip).unwrap().map(|c| c.binding), Some(binding_for(ip)), "thread {t}'s last binding");
    }
    assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new());
}

fn random_below(n: u64) -> u64 {
    RandomState::new().hash_one(std::time::SystemTime::now()) % n
}

/// Run one child until killed; return what it acknowledged as (seq, time, ip).
fn run_child(path: &Path, round: u32) -> Vec<(u64, u32, Ipv4Addr)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["concurrent_commits_survive_a_clean_close_and_are_the_crash_child", "--exact", "--nocapture"])
        .env(CHILD_ENV, path)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut words = line.split(' ');
            if words.next() != Some("ACK") {
                continue;
            }
            let mut num = || words.next().unwrap().parse::<u64>().unwrap();
            let ack = (num(), num() as u32, Ipv4Addr::from(num() as u32));
            if acks.is_empty() {
                let _ = tx.send(());
            }
            acks.push(ack);
        }
        acks
    });

    if round % 5 == 4 {
        // Now and then, kill it early: while it opens (or, in round 4 at the latest, creates) the store.
        std::thread::sleep(Duration::from_millis(random_below(30)));
    } else {
        // Otherwise wait until it is committing, then kill it at a random moment in the middle of the stream.
        // The bound only guards against a hung child; nothing asserted depends on timing.
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("round {round}: child acknowledged nothing; stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(random_below(150)));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(!status.success(), "round {round}: the child was supposed to die, not finish");
    reader.join().unwrap()
}

#[test]
fn acknowledged_commits_survive_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leases.db");
    let mut acked: BTreeMap<u64, (u32, Ipv4Addr)> = BTreeMap::new();
    let mut total = 0;
    for round in 0..ROUNDS {
        let acks = run_child(&path, round);
        let previous_max = acked.keys().next_back().copied().unwrap_or(0);
        if let Some(min) = acks.iter().map(|a| a.0).min() {
            assert!(min > previous_max, "round {round}: seq {min} reused (earlier rounds reached {previous_max})");
        }
        total += acks.len();
        for (seq, time, ip) in acks {
            assert!(acked.insert(seq, (time, ip)).is_none(), "seq {seq} acknowledged twice");
        }
        if !path.exists() {
            assert!(acked.is_empty(), "round {round}: the store file vanished");
            continue;
        }

        let store = SqliteStore::open(&path, OpenOptions::new(T0 + round)).unwrap();
        assert!(store.last_seq().unwrap() >= acked.keys().next_back().copied().unwrap_or(0));
        for (&seq, &(time, ip)) in &acked {
            let expected = BindingChange { seq, time, binding: binding_for(ip) };
            assert_eq!(store.get(ip).unwrap(), Some(expected), "round {round}: acknowledged seq {seq} lost");
        }
        assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new(), "round {round}");
        drop(store);
        // And with a connection of our own, independent of the store's code.
        let conn = rusqlite::Connection::open(&path).unwrap();
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok", "round {round}");
    }
    assert!(total > 100, "the children acknowledged only {total} commits in {ROUNDS} rounds");
    eprintln!("{total} acknowledged commits over {ROUNDS} SIGKILLs, all present");
}
