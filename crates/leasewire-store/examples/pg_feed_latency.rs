//! Change-feed latency between two servers on one PostgreSQL database.
//!
//!   cargo run --release -p leasewire-store --example pg_feed_latency -- URL [commits-per-s] [seconds]
//!
//! Server "a" commits one new lease at a steady rate (as the DHCP engine does for each ACK); server "b"
//! follows the shared feed (`PgStore::follow`, LISTEN/NOTIFY plus `seq > last_seen`). For every change it
//! prints nothing; at the end, the latency percentiles from a's commit being durable (the moment a would
//! send the ACK) to b holding the change, and from a's commit call to b holding it.

use leasewire_store::{Binding, DhcpState, LeaseStore, PgOptions, PgStore};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: pg_feed_latency URL [commits-per-s] [seconds]");
    let rate: u64 = args.next().map_or(1000, |s| s.parse().expect("commits per second"));
    let secs: u64 = args.next().map_or(10, |s| s.parse().expect("seconds"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32;
    let mut oa = PgOptions::new(now, "bench-a");
    oa.guard_claims = true;
    let a = PgStore::open(&url, oa).unwrap();
    let b = PgStore::open(&url, PgOptions::new(now, "bench-b")).unwrap();
    let start_seq = b.last_seq().unwrap();
    let mut feed = b.follow(start_seq, Duration::from_secs(1));
    let base = a.len().unwrap() as u32;

    let (tx, rx) = mpsc::channel();
    let total = rate * secs;
    let waiter = std::thread::spawn(move || {
        let mut done = HashMap::new();
        for (submitted, pending) in rx.iter().map(|(t, p): (Instant, leasewire_store::PendingCommit)| (t, p)) {
            let changes = pending.wait().expect("commit");
            done.insert(changes[0].seq, (submitted, Instant::now()));
        }
        done
    });
    let receiver = std::thread::spawn(move || {
        let mut seen = HashMap::new();
        while (seen.len() as u64) < total {
            let Some(batch) = feed.blocking_recv() else { break };
            let t = Instant::now();
            for c in batch {
                if c.binding.data_source.is_remote() {
                    seen.insert(c.seq, t);
                }
            }
        }
        seen
    });
    let t0 = Instant::now();
    for i in 0..total {
        let due = t0 + Duration::from_nanos(i * 1_000_000_000 / rate);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let n = base + i as u32 + 1;
        let mut bnd = Binding::new(Ipv4Addr::from(0x0a80_0000 + n), DhcpState::Active, now);
        bnd.htype = 1;
        bnd.hardware_address = n.to_be_bytes().iter().chain(&[0, 0]).copied().collect();
        bnd.expires_at = Some(now + 3600);
        tx.send((Instant::now(), a.commit(now, vec![bnd]))).unwrap();
    }
    drop(tx);
    let done = waiter.join().unwrap();
    let seen = receiver.join().unwrap();
    let elapsed = t0.elapsed().as_secs_f64();
    let mut from_durable = Vec::new();
    let mut from_submit = Vec::new();
    for (seq, (submitted, durable)) in &done {
        if let Some(arrived) = seen.get(seq) {
            from_durable.push(arrived.saturating_duration_since(*durable).as_secs_f64() * 1e3);
            from_submit.push(arrived.duration_since(*submitted).as_secs_f64() * 1e3);
        }
    }
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v.get(((v.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN)
    };
    println!(
        "{} commits at {:.0}/s over {elapsed:.1} s, {} seen by b; durable on a -> held by b: p50 {:.2} ms p99 {:.2} ms max {:.2} ms; \
         commit call on a -> held by b: p50 {:.2} ms p99 {:.2} ms",
        done.len(),
        done.len() as f64 / elapsed,
        seen.len(),
        pct(&mut from_durable, 0.5),
        pct(&mut from_durable, 0.99),
        pct(&mut from_durable, 1.0),
        pct(&mut from_submit, 0.5),
        pct(&mut from_submit, 0.99),
    );
}
