//! Lease store benchmarks: durable commits/s by number of concurrent committers, lookup latency and scan
//! throughput at 1M bindings, bytes on disk per binding.
//!
//! `cargo bench -p leasewire-store --bench store`. Under `cargo test --benches` (no `--bench` flag) the
//! table is 10k bindings so the smoke run stays fast.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use leasewire_store::{Binding, LeaseStore, OpenOptions, ScanFilter, SqliteStore};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

#[path = "../tests/suite/fixtures.rs"]
mod fixtures;

const T0: u32 = 1_700_000_000;
const PAGE: usize = 1000;

fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn table_size() -> u32 {
    if full_run() { 1_000_000 } else { 10_000 }
}

/// A cheap, fixed permutation so keys land all over the indexes, as real MACs do.
fn scramble(i: u32) -> u32 {
    i.wrapping_mul(0x9E37_79B1).rotate_left(13) ^ 0x5bd1_e995
}

fn ip_of(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + i)
}

fn mac_of(i: u32) -> Vec<u8> {
    let s = scramble(i).to_be_bytes();
    vec![0x02, (i >> 24) as u8, s[0], s[1], s[2], s[3]]
}

/// A realistic ACTIVE lease: Ethernet MAC, client-id, option 82 with circuit-id, remote-id and relay-id,
/// hostname and vendor class.
fn lease(i: u32, now: u32) -> Binding {
    let (circuit, remote, relay) =
        (format!("eth0/{}", i % 48), format!("sub-{i:08}"), format!("relay-{:04}", i % 1000));
    fixtures::active_lease(ip_of(i), mac_of(i), i, [circuit.as_bytes(), remote.as_bytes(), relay.as_bytes()], now)
}

fn populate(store: &dyn LeaseStore, n: u32) {
    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(20_000) {
        store.commit(T0, chunk.iter().map(|&i| lease(i, T0)).collect()).wait().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!("populated {n} bindings in {secs:.1} s ({:.0} bindings/s in batches of 20k)", f64::from(n) / secs);
}

/// The big table, built once and shared by the lookup and scan benchmarks.
struct Big {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    n: u32,
}

fn big() -> &'static Big {
    static BIG: OnceLock<Big> = OnceLock::new();
    BIG.get_or_init(|| {
        let dir = tempfile::tempdir_in(env_dir()).unwrap();
        let path = dir.path().join("leases.db");
        let n = table_size();
        {
            let store = SqliteStore::open(&path, OpenOptions::new(T0)).unwrap();
            populate(&store, n);
        }
        report_size(&path, n);
        report_open(&path, n);
        let store = SqliteStore::open(&path, OpenOptions::new(T0)).unwrap();
        Big { _dir: dir, store, n }
    })
}

/// Benchmarks write where the machine's disk is (not a tmpfs), unless told otherwise.
fn env_dir() -> std::path::PathBuf {
    std::env::var_os("LEASEWIRE_BENCH_DIR").map(Into::into).unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into())
}

fn report_size(path: &Path, n: u32) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    drop(conn);
    let bytes = std::fs::metadata(path).unwrap().len();
    eprintln!(
        "bytes on disk: {bytes} for {n} bindings = {:.0} bytes/binding (database file after checkpoint)",
        bytes as f64 / f64::from(n)
    );
}

/// The environment variable that makes the bench binary a child that only opens a store (see
/// [`report_open`]).
const OPEN_CHILD_ENV: &str = "LEASEWIRE_BENCH_OPEN_CHILD";

/// Resident set size of this process, from /proc/self/status.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Open time and memory of a store of `n` bindings, measured in a fresh process (this binary re-executed),
/// so memory freed by earlier benchmarks cannot hide part of the growth.
fn report_open(path: &Path, n: u32) {
    for _ in 0..2 {
        let out =
            std::process::Command::new(std::env::current_exe().unwrap()).env(OPEN_CHILD_ENV, path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report = String::from_utf8_lossy(&out.stdout);
        let mut words = report.split_whitespace().map(|w| w.parse::<f64>().unwrap());
        let (secs, before, after) = (words.next().unwrap(), words.next().unwrap(), words.next().unwrap());
        eprintln!(
            "open of {n} bindings: {secs:.2} s; RSS {:.0} MiB -> {:.0} MiB = {:.0} bytes/binding in memory",
            before / 1048576.0,
            after / 1048576.0,
            (after - before) / f64::from(n)
        );
    }
}

/// The child of [`report_open`]: open, print "seconds rss_before rss_after", keep the store until then.
fn open_child(path: &str) {
    let before = rss_bytes();
    let start = Instant::now();
    let store = SqliteStore::open(path, OpenOptions::new(T0)).unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(store.len().unwrap() > 0);
    println!("{secs} {before} {}", rss_bytes());
    drop(store);
}

/// How committers drive the store.
#[derive(Clone, Copy, PartialEq)]
enum Drive {
    /// N OS threads, each committing one binding and blocking until it is durable, then the next.
    Threads,
    /// One thread keeping N single-binding commits in flight (the DHCP engine's pipelined use: commit,
    /// hand the `Pending` to a completer task, go on with the next client).
    InFlight,
}

/// What is committed.
#[derive(Clone, Copy, PartialEq)]
enum Work {
    /// Renewals of random existing leases (the steady state of a DHCP server).
    Renew,
    /// First leases of new clients at new addresses (every lookup key is new, so every index grows).
    New,
}

fn durable_commits(c: &mut Criterion) {
    let existing = if full_run() { 100_000 } else { 1_000 };
    for (name, drive, work, counts) in [
        ("durable_commit_renew_threads", Drive::Threads, Work::Renew, &[1u64, 8, 64][..]),
        ("durable_commit_renew_inflight", Drive::InFlight, Work::Renew, &[1, 8, 64, 256][..]),
        ("durable_commit_new_threads", Drive::Threads, Work::New, &[1, 8, 64][..]),
        // The DHCP server under perfdhcp: one task commits one new client per DHCPACK and keeps the
        // `Pending`s in flight; every key (address, MAC, client-id, remote-id, relay-id) is new.
        ("durable_commit_new_inflight", Drive::InFlight, Work::New, &[64, 256][..]),
    ] {
        let mut group = c.benchmark_group(name);
        group.sample_size(10).measurement_time(Duration::from_secs(6)).warm_up_time(Duration::from_secs(1));
        group.throughput(Throughput::Elements(1));
        for &committers in counts {
            let dir = tempfile::tempdir_in(env_dir()).unwrap();
            let store = Arc::new(SqliteStore::open(dir.path().join("leases.db"), OpenOptions::new(T0)).unwrap());
            populate(&*store, existing);
            let next_new = Arc::new(std::sync::atomic::AtomicU32::new(existing));
            let mut round = 0u32;
            // One element = one binding committed and acknowledged after fsync.
            group.bench_function(BenchmarkId::new("committers", committers), |b| {
                b.iter_custom(|iters| {
                    round += 1;
                    let pick = {
                        let next_new = next_new.clone();
                        move |k: u64| match work {
                            Work::Renew => scramble(k as u32 ^ round.rotate_left(20)) % existing,
                            Work::New => next_new.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                        }
                    };
                    let now = T0 + round;
                    match drive {
                        Drive::Threads => {
                            let per = iters.div_ceil(committers);
                            let barrier = Arc::new(Barrier::new(committers as usize + 1));
                            let threads: Vec<_> = (0..committers)
                                .map(|t| {
                                    let (store, barrier, pick) = (store.clone(), barrier.clone(), pick.clone());
                                    std::thread::spawn(move || {
                                        barrier.wait();
                                        for k in 0..per {
                                            let i = pick(t * per + k);
                                            store.commit(now, vec![lease(i, now)]).wait().unwrap();
                                        }
                                    })
                                })
                                .collect();
                            barrier.wait();
                            let start = Instant::now();
                            threads.into_iter().for_each(|t| t.join().unwrap());
                            // `per * committers` may exceed `iters` by up to committers - 1.
                            start.elapsed().mul_f64(iters as f64 / (per * committers) as f64)
                        }
                        Drive::InFlight => {
                            let start = Instant::now();
                            let mut in_flight = std::collections::VecDeque::with_capacity(committers as usize);
                            for k in 0..iters {
                                if in_flight.len() == committers as usize {
                                    let p: leasewire_store::PendingCommit = in_flight.pop_front().unwrap();
                                    p.wait().unwrap();
                                }
                                in_flight.push_back(store.commit(now, vec![lease(pick(k), now)]));
                            }
                            in_flight.into_iter().for_each(|p| {
                                p.wait().unwrap();
                            });
                            start.elapsed()
                        }
                    }
                })
            });
        }
        group.finish();
    }
}

fn lookups(c: &mut Criterion) {
    let big = big();
    let mut group = c.benchmark_group(format!("lookup_{}", big.n));
    let mut k = 0u32;
    group.bench_function("by_address", |b| {
        b.iter(|| {
            k = k.wrapping_add(1);
            let hit = big.store.get(ip_of(scramble(k) % big.n)).unwrap();
            black_box(hit.expect("present"))
        })
    });
    group.bench_function("by_hardware_address", |b| {
        b.iter(|| {
            k = k.wrapping_add(1);
            let hits = big.store.by_hardware_address(1, &mac_of(scramble(k) % big.n)).unwrap();
            assert_eq!(hits.len(), 1);
            black_box(hits)
        })
    });
    group.finish();
}

fn scans(c: &mut Criterion) {
    let big = big();
    let mut group = c.benchmark_group(format!("scan_{}", big.n));
    group.sample_size(10).measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(u64::from(big.n)));
    group.bench_function("all_addresses", |b| {
        b.iter(|| {
            let filter = ScanFilter::all();
            let (mut after, mut seen) = (None, 0u32);
            loop {
                let page = big.store.scan(&filter, after, PAGE).unwrap();
                seen += page.len() as u32;
                match page.last() {
                    Some(last) if page.len() == PAGE => after = Some(last.binding.ip),
                    _ => break,
                }
            }
            assert_eq!(seen, big.n);
        })
    });
    group.bench_function("changed_since", |b| {
        b.iter(|| {
            let (mut after, mut seen) = (None, 0u32);
            loop {
                let page = big.store.changed_since(T0, after, PAGE).unwrap();
                seen += page.len() as u32;
                match page.last() {
                    Some(last) if page.len() == PAGE => after = Some(last.seq),
                    _ => break,
                }
            }
            assert_eq!(seen, big.n);
        })
    });
    group.finish();
}

/// Lookups while one thread keeps 256 new-lease commits in flight into the same 1M store (the leasequery
/// responder during a perfdhcp run): the writer holds the lock for a moment after every group. Runs last,
/// because it adds bindings to the shared store. Prints latency percentiles besides criterion's mean.
fn lookups_during_commits(c: &mut Criterion) {
    let big = big();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let committed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let committer = {
        let (stop, committed) = (stop.clone(), committed.clone());
        std::thread::spawn(move || {
            let mut in_flight = std::collections::VecDeque::new();
            // New clients far above the table's addresses and keys.
            let mut i = 0x0100_0000u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if in_flight.len() == 256 {
                    let p: leasewire_store::PendingCommit = in_flight.pop_front().unwrap();
                    p.wait().unwrap();
                    committed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                in_flight.push_back(big.store.commit(T0 + 1, vec![lease(i, T0 + 1)]));
                i += 1;
            }
            in_flight.into_iter().for_each(|p| drop(p.wait().unwrap()));
        })
    };
    let mut group = c.benchmark_group(format!("lookup_{}_during_new_lease_commits", big.n));
    let mut samples: Vec<Duration> = Vec::new();
    let mut k = 0u32;
    let start = Instant::now();
    group.bench_function("by_address", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                k = k.wrapping_add(1);
                let t = Instant::now();
                let hit = big.store.get(ip_of(scramble(k) % big.n)).unwrap();
                let took = t.elapsed();
                black_box(hit.expect("present"));
                total += took;
                if samples.len() < 10_000_000 {
                    samples.push(took);
                }
            }
            total
        })
    });
    group.finish();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    committer.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    eprintln!(
        "lookups during commits ({:.0} new leases/s acknowledged meanwhile): p50 {:?} p99 {:?} p99.9 {:?} max {:?}",
        committed.load(std::sync::atomic::Ordering::Relaxed) as f64 / secs,
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0)
    );
}

criterion_group!(benches, durable_commits, lookups, scans, lookups_during_commits);

fn main() {
    if let Some(path) = std::env::var_os(OPEN_CHILD_ENV) {
        return open_child(&path.to_string_lossy());
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
