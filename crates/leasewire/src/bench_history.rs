//! `leasewire bench history`: the requestor's history under load. Simulated clients behind relays lease,
//! renew, release and expire addresses; every change goes through `Replica::apply` and the replica's flush
//! (history events in the same transaction), written on a writer thread as `watch` does: every 250 ms, a
//! flush of what changed is taken if the previous one is written by then, so the stream never waits on the
//! disk and a slower disk makes larger transactions. The rate is what the merge and the disk sustain
//! together; the largest transaction and the longest write say how far the file lagged the stream. Then the file's size per event, and the
//! latency of "who held this address at that time" (`HistoryReader::query`, and the `history` command).

use anyhow::Context;
use leasewire_proto::{Binding, DhcpState, RelayAgentInfoBuilder};
use leasewire_requestor::history::{HistoryReader, Key, Query, Window};
use leasewire_requestor::replica::{Replica, Via};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A small seeded generator (xorshift): the same run every time.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const FIRST: u32 = 0x0a00_0000; // 10.0.0.0
const SPAN: u32 = 30 * 86_400; // the simulated period

pub fn run(db: &Path, addresses: u32, events: u64, queries: u32) -> anyhow::Result<()> {
    anyhow::ensure!(!db.exists(), "{} exists: give a new file", db.display());
    let mut replica = Replica::open(db, &["bench:67".into()])?;
    replica.set_history(Some(Duration::from_secs(u64::from(SPAN) * 2)));
    let t0 = leasewire_server::clock::unix_now() - SPAN;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Per address: the client holding it (index), if any.
    let mut holder: Vec<Option<u32>> = vec![None; addresses as usize];
    // The writer takes one flush at a time; `busy` is set while one is being written (as `watch` skips a
    // tick while its write runs).
    let (tx, rx) = std::sync::mpsc::channel::<(leasewire_requestor::replica::Flush, usize)>();
    let busy = Arc::new(AtomicBool::new(false));
    let writer = {
        let busy = busy.clone();
        std::thread::spawn(move || -> anyhow::Result<(usize, Duration)> {
            let (mut largest, mut longest) = (0, Duration::ZERO);
            for (f, events) in rx {
                let s = Instant::now();
                f.write()?;
                longest = longest.max(s.elapsed());
                largest = largest.max(events);
                busy.store(false, Ordering::Release);
            }
            Ok((largest, longest))
        })
    };
    let start = Instant::now();
    let mut last_flush = Instant::now();
    let mut taken = 0u64; // events applied before the last flush taken
    for i in 0..events {
        let t = t0 + (i * u64::from(SPAN) / events.max(1)) as u32;
        let a = rng.below(u64::from(addresses)) as u32;
        let ip = Ipv4Addr::from(FIRST + a);
        let b = match holder[a as usize] {
            None => {
                let client = rng.below(u64::from(addresses) * 2) as u32;
                holder[a as usize] = Some(client);
                lease(ip, client, t, t)
            }
            Some(client) => match rng.below(10) {
                0..=5 => lease(ip, client, t - (t - t0) % 3600, t), // a renewal: state since earlier, cltt now
                6..=8 => {
                    holder[a as usize] = None;
                    freed(ip, DhcpState::Released, t)
                }
                _ => {
                    holder[a as usize] = None;
                    freed(ip, DhcpState::Expired, t)
                }
            },
        };
        replica.apply(0, &b, Some(t), Via::Active);
        if i % 4096 == 0 && last_flush.elapsed() >= Duration::from_millis(250) && !busy.load(Ordering::Acquire) {
            last_flush = Instant::now();
            if let Some(f) = replica.take_flush() {
                busy.store(true, Ordering::Release);
                tx.send((f, (i - taken) as usize)).context("the writer stopped")?;
                taken = i;
            }
        }
    }
    if let Some(f) = replica.take_flush() {
        tx.send((f, (events - taken) as usize)).context("the writer stopped")?;
    }
    drop(tx);
    let (largest, longest) = writer.join().map_err(|_| anyhow::anyhow!("the writer panicked"))??;
    let took = start.elapsed();
    drop(replica); // the last connection closes: the WAL is checkpointed into the file
    let size =
        std::fs::metadata(db)?.len() + std::fs::metadata(db.with_extension("sqlite3-wal")).map_or(0, |m| m.len());
    println!(
        "ingest: {events} events over {addresses} addresses in {:.1} s = {:.0} events/s (apply + history flush every 250 ms when the last is written)",
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64()
    );
    println!("flushes: largest {largest} events, longest write {longest:?} (how far the file lagged the stream)");
    println!(
        "size: {size} bytes = {:.1} bytes/event (whole file: replica, history, indexes)",
        size as f64 / events as f64
    );

    let mut reader = HistoryReader::open(db)?;
    let now = leasewire_server::clock::unix_now();
    let mut lat = Vec::with_capacity(queries as usize);
    let mut answered = 0;
    for _ in 0..queries {
        let ip = Ipv4Addr::from(FIRST + rng.below(u64::from(addresses)) as u32);
        let at = t0 + rng.below(u64::from(SPAN)) as u32;
        let q = Query { key: Key::Ip(ip), window: Window::At(at), now };
        let s = Instant::now();
        answered += usize::from(!reader.query(&q)?.is_empty());
        lat.push(s.elapsed());
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "query --ip --at (library, {queries} random): p50 {:?} p99 {:?} max {:?} ({answered} answered)",
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or_default()
    );
    // The command itself, process start included.
    let exe = std::env::current_exe()?;
    let mut lat = Vec::new();
    for _ in 0..200 {
        let ip = Ipv4Addr::from(FIRST + rng.below(u64::from(addresses)) as u32);
        let at = t0 + rng.below(u64::from(SPAN)) as u32;
        let s = Instant::now();
        let out = std::process::Command::new(&exe)
            .args(["history", "--db"])
            .arg(db)
            .args(["--ip", &ip.to_string(), "--at", &at.to_string()])
            .output()?;
        lat.push(s.elapsed());
        anyhow::ensure!(out.status.success(), "history failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    lat.sort();
    println!("leasewire history --ip --at (200 runs, process start included): p50 {:?} p99 {:?}", lat[100], lat[197]);
    Ok(())
}

fn lease(ip: Ipv4Addr, client: u32, since: u32, cltt: u32) -> Binding {
    let mut b = Binding::new(ip, DhcpState::Active, since);
    let mac = [2, 0, (client >> 24) as u8, (client >> 16) as u8, (client >> 8) as u8, client as u8];
    b.htype = 1;
    b.hardware_address = mac.to_vec();
    b.cltt = Some(cltt);
    b.expires_at = Some(cltt + 3600);
    let port = client % 4096;
    b.relay_agent_info = Some(
        RelayAgentInfoBuilder::new()
            .circuit_id(format!("port{}", port % 48).as_bytes())
            .remote_id(format!("sw{}", port / 48).as_bytes())
            .relay_id(format!("relay{}", port % 16).as_bytes())
            .build(),
    );
    b
}

fn freed(ip: Ipv4Addr, state: DhcpState, t: u32) -> Binding {
    let mut b = Binding::new(ip, state, t);
    b.cltt = Some(t);
    b
}
