//! Several servers on one PostgreSQL under faults (issue #21): three real `leasewire serve` processes share a
//! throwaway PostgreSQL cluster (server c reaches it through a TCP proxy the test can freeze); each serves
//! relayed DORA load from a relay of its own, and each has an Active Leasequery requestor (the
//! `leasewire-requestor` library's `Watcher`, in-memory replica) following it.
//!
//! Faults, one after another:
//! 1. SIGKILL of server b, and its restart;
//! 2. a PostgreSQL restart (fast shutdown: every connection of every server is cut);
//! 3. server c cut off from PostgreSQL: its proxy freezes (connections stay open, nothing passes) at a moment
//!    c holds the journal lock inside a transaction, while a and b go on, then thaws;
//! 4. a clock step on server a: restarted with its clock 120 s ahead of the others (`LEASEWIRE_TEST_CLOCK_OFFSET`,
//!    read once at start: a server's clock cannot be stepped from outside while it runs without changing the
//!    whole machine's, and libfaketime is not in CI). Its commits push the database's commit times ahead, so
//!    the other servers stamp theirs ahead of their own clocks from then on;
//! 5. a clock step back on server b: restarted 120 s behind (240 s behind a). The database has been in
//!    service for an hour: a requestor's Bulk seed reports never-used addresses AVAILABLE since the history
//!    horizon, which is then older than anything the stepped-back server reports (with a database created a
//!    moment before, its new leases would look older than that seed and a requestor would keep the seed's;
//!    see docs/postgres.md).
//!
//! After each fault (the load paused, so the database holds still) and at the end: no address was ACKed to
//! two clients, every ACKed lease is in the database ACTIVE for its client, and every requestor's replica
//! equals the database. The counts are printed (and recorded in BENCHMARKS.md).

#[path = "../../leasewire-store/tests/pg/mod.rs"]
mod pg;
mod support;

use leasewire_proto::DhcpState;
use leasewire_requestor::Watcher;
use leasewire_requestor::conn::Target;
use leasewire_server::clock::unix_now;
use leasewire_store::{PgOptions, PgStore, ScanFilter};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::proxy::Proxy;
use support::relay::Relay;
use support::{Server, free_tcp_port, free_udp_port, shared_store_config};

/// What the database or a replica says of an address: state and hardware address. AVAILABLE addresses are
/// left out: a Bulk seed reports every configured address (RFC 6926 §7.2), the database only those with a
/// record.
type View = BTreeMap<Ipv4Addr, (DhcpState, Vec<u8>)>;

fn view(bindings: impl IntoIterator<Item = leasewire_store::Binding>) -> View {
    bindings
        .into_iter()
        .filter(|b| b.state != DhcpState::Available)
        .map(|b| (b.ip, (b.state, b.hardware_address)))
        .collect()
}

/// Every DHCPACK a client got: the server's index, the client's MAC, the address.
type Acks = Arc<Mutex<Vec<(usize, [u8; 6], Ipv4Addr)>>>;

const NAMES: [&str; 3] = ["a", "b", "c"];
/// New ACKs each live server must grant in every phase.
const PER_PHASE: usize = 40;

struct Node {
    dir: tempfile::TempDir,
    config: PathBuf,
    udp: u16,
    tcp: u16,
    server: Option<Server>,
}

impl Node {
    /// Stop the server and start it again with its clock `seconds` off (LEASEWIRE_TEST_CLOCK_OFFSET).
    fn restart_with_clock_offset(&mut self, seconds: &str) {
        self.server.take().unwrap().stop();
        let env = [("LEASEWIRE_TEST_CLOCK_OFFSET", seconds)];
        self.server = Some(Server::start_env(self.dir.path(), &self.config, None, &[], &env));
    }
}

fn database_view(url: &str) -> View {
    let store = PgStore::open(url, PgOptions::new(unix_now(), "check")).unwrap();
    view(leasewire_store::scan_pages(&store, ScanFilter::all(), 1000).flat_map(|p| p.unwrap()).map(|c| c.binding))
}

/// The load: one relay per server, DORAs back to back with new clients; a client that got no ACK (NAK,
/// no answer, its server down or cut off) starts over with the same MAC. Pausable between DORAs.
struct Load {
    acks: Acks,
    paused: Arc<AtomicBool>,
    idle: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(udp: &[u16]) -> Self {
        let acks: Acks = Arc::default();
        let (paused, idle, stop) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let workers = udp
            .iter()
            .enumerate()
            .map(|(w, &port)| {
                let (acks, paused, idle, stop) = (acks.clone(), paused.clone(), idle.clone(), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let relay = Relay::new(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Ipv4Addr::LOCALHOST);
                    let (mut i, mut xid): (u32, u32) = (0, (w as u32) << 24);
                    while !stop.load(Ordering::SeqCst) {
                        if paused.load(Ordering::SeqCst) {
                            idle.fetch_add(1, Ordering::SeqCst);
                            while paused.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            idle.fetch_sub(1, Ordering::SeqCst);
                            continue;
                        }
                        let mac = [2, 0x10 + w as u8, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
                        xid += 1;
                        if let Some(ip) = relay.dora(mac, xid, Ipv4Addr::LOCALHOST) {
                            acks.lock().unwrap().push((w, mac, ip));
                            i += 1;
                        }
                    }
                })
            })
            .collect();
        Self { acks, paused, idle, stop, workers }
    }

    fn granted_by(&self, server: usize) -> usize {
        self.acks.lock().unwrap().iter().filter(|a| a.0 == server).count()
    }

    /// Wait until each server in `servers` granted `n` more leases than it had at `from`.
    fn wait_progress(&self, servers: &[usize], from: &[usize], n: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        for &s in servers {
            while self.granted_by(s) < from[s] + n {
                assert!(
                    Instant::now() < deadline,
                    "{what}: server {} granted only {}",
                    NAMES[s],
                    self.granted_by(s) - from[s]
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn counts(&self) -> Vec<usize> {
        (0..NAMES.len()).map(|s| self.granted_by(s)).collect()
    }

    /// Pause the relays between DORAs; returns once every one is idle.
    fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.idle.load(Ordering::SeqCst) < self.workers.len() {
            assert!(Instant::now() < deadline, "the relays did not pause");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    fn finish(self) -> Vec<(usize, [u8; 6], Ipv4Addr)> {
        self.stop.store(true, Ordering::SeqCst);
        self.workers.into_iter().for_each(|w| w.join().unwrap());
        self.acks.lock().unwrap().clone()
    }
}

/// What one check found.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    acks: usize,
    conflicts: usize,
    losses: usize,
}

/// The invariants, with the load paused: no address ACKed to two clients; every ACKed lease in the database,
/// ACTIVE for its client; every replica equal to the database (waited for: the requestors may still be
/// reconnecting and catching up).
fn check(url: &str, load: &Load, watchers: &[leasewire_requestor::Watching], after: &str) -> Counts {
    load.pause();
    let acks = load.acks.lock().unwrap().clone();
    let mut holders: HashMap<Ipv4Addr, HashSet<[u8; 6]>> = HashMap::new();
    for (_, mac, ip) in &acks {
        holders.entry(*ip).or_default().insert(*mac);
    }
    let conflicts: Vec<_> = holders.iter().filter(|(_, macs)| macs.len() > 1).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    let (db, replicas) = loop {
        let db = database_view(url);
        let replicas: Vec<View> = watchers
            .iter()
            .map(|w| {
                let bindings = leasewire_requestor::replica::lock(w.replica()).bindings();
                view(bindings)
            })
            .collect();
        if replicas.iter().all(|r| *r == db) || Instant::now() > deadline {
            break (db, replicas);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let lost: Vec<_> = acks
        .iter()
        .filter(|(_, mac, ip)| db.get(ip).is_none_or(|(state, hw)| *state != DhcpState::Active || hw != mac))
        .collect();
    let counts = Counts { acks: acks.len(), conflicts: conflicts.len(), losses: lost.len() };
    eprintln!(
        "after {after}: {} ACKs checked, {} conflicts, {} losses, {} bindings",
        counts.acks,
        counts.conflicts,
        counts.losses,
        db.len()
    );
    assert!(conflicts.is_empty(), "after {after}: addresses ACKed to two clients: {conflicts:?}");
    assert!(lost.is_empty(), "after {after}: ACKed leases not ACTIVE for their client in the database: {lost:?}");
    for (i, r) in replicas.iter().enumerate() {
        let differ: Vec<_> = db
            .iter()
            .filter(|(ip, rec)| r.get(ip) != Some(rec))
            .map(|(ip, _)| *ip)
            .chain(r.keys().filter(|ip| !db.contains_key(ip)).copied())
            .take(10)
            .collect();
        assert!(
            differ.is_empty(),
            "after {after}: the replica of server {}'s requestor ({} bindings, status {:?}) differs from the \
             database ({} bindings) at {:?}",
            NAMES[i],
            r.len(),
            watchers[i].status(),
            db.len(),
            differ.iter().map(|ip| (ip, r.get(ip), db.get(ip))).collect::<Vec<_>>()
        );
    }
    load.resume();
    counts
}

#[test]
fn three_servers_one_database_survive_kill_database_restart_cut_off_and_clock_step() {
    let started = Instant::now();
    let cluster = pg::Cluster::start_tcp(None, None);
    cluster.psql("postgres", "CREATE DATABASE faults");
    let url = cluster.tcp_url("127.0.0.1", "faults");
    let proxy = Proxy::start(SocketAddr::from((Ipv4Addr::LOCALHOST, cluster.tcp_port.unwrap())));
    let proxied = format!("host=127.0.0.1 port={} user=postgres dbname=faults", proxy.addr.port());
    // A database in service for an hour, not one created a moment ago: its history horizon (since when a
    // never-used address counts as AVAILABLE in a Bulk seed) is then older than any time a server whose clock
    // steps back reports (fault 5).
    drop(PgStore::open(&url, PgOptions::new(unix_now() - 3600, "setup")).unwrap());

    let mut nodes: Vec<Node> = NAMES
        .iter()
        .map(|name| {
            let dir = tempfile::tempdir().unwrap();
            let (udp, tcp) = (free_udp_port(), free_tcp_port());
            let db = if *name == "c" { &proxied } else { &url };
            let text =
                shared_store_config(name, udp, tcp, db).replace("@DATA@", dir.path().join("data").to_str().unwrap());
            let config = dir.path().join("server.toml");
            std::fs::write(&config, text).unwrap();
            let server = Some(Server::start_with(dir.path(), &config, None));
            Node { dir, config, udp, tcp, server }
        })
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let watchers: Vec<_> = {
        let _guard = rt.enter();
        nodes
            .iter()
            .map(|n| {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, n.tcp));
                Watcher::builder([Target { addr, tls: None }])
                    .retry_interval(Duration::from_millis(500))
                    .spawn()
                    .unwrap()
            })
            .collect()
    };
    let load = Load::start(&nodes.iter().map(|n| n.udp).collect::<Vec<_>>());
    let all = [0, 1, 2];
    let mut faults = 0;
    let mut last = Counts::default();

    load.wait_progress(&all, &[0, 0, 0], PER_PHASE, "warm-up");
    last = check(&url, &load, &watchers, "warm-up").max(last);

    // 1. SIGKILL of b while it serves; a and c go on; b comes back on the same database.
    let from = load.counts();
    nodes[1].server.as_mut().unwrap().proc.kill9();
    nodes[1].server = None;
    faults += 1;
    load.wait_progress(&[0, 2], &from, PER_PHASE, "b killed");
    nodes[1].server = Some(Server::start_with(nodes[1].dir.path(), &nodes[1].config, None));
    load.wait_progress(&all, &load.counts(), PER_PHASE, "b restarted");
    last = check(&url, &load, &watchers, "SIGKILL and restart of b").max(last);

    // 2. PostgreSQL restarts under load: every connection of every server is cut.
    let from = load.counts();
    cluster.restart();
    faults += 1;
    load.wait_progress(&all, &from, PER_PHASE, "PostgreSQL restarted");
    last = check(&url, &load, &watchers, "PostgreSQL restart").max(last);

    // 3. c is cut off from PostgreSQL (its proxy freezes: connections stay open, nothing passes); a and b go
    //    on, then c comes back.
    // The freeze is taken while c is inside a group transaction holding the journal lock every writer takes
    // turns on (its next statement held in the proxy), the worst moment: PostgreSQL ends that session after
    // `idle_in_transaction_session_timeout`, which the store sets, and a and b go on.
    let from = load.counts();
    let mut caught = false;
    for _ in 0..500 {
        proxy.freeze(true);
        let holding = cluster.psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'leasewire c' \
             AND state = 'idle in transaction' AND backend_xid IS NOT NULL",
        );
        if holding.trim() != "0" {
            caught = true;
            break;
        }
        proxy.freeze(false);
        std::thread::sleep(Duration::from_millis(3));
    }
    assert!(caught, "c was never caught inside a transaction holding the journal lock");
    faults += 1;
    load.wait_progress(&[0, 1], &from, PER_PHASE, "c cut off");
    proxy.freeze(false);
    load.wait_progress(&[2], &from, PER_PHASE, "c reconnected");
    last = check(&url, &load, &watchers, "c cut off from PostgreSQL").max(last);

    // 4. a's clock steps 120 s ahead (restarted with the offset: see the module documentation).
    let from = load.counts();
    nodes[0].restart_with_clock_offset("120");
    faults += 1;
    load.wait_progress(&all, &from, PER_PHASE, "a's clock stepped");
    last = check(&url, &load, &watchers, "a's clock step").max(last);

    // 5. b's clock steps 120 s back (240 s behind a's).
    let from = load.counts();
    nodes[1].restart_with_clock_offset("-120");
    faults += 1;
    load.wait_progress(&all, &from, PER_PHASE, "b's clock stepped back");
    last = check(&url, &load, &watchers, "b's clock step back").max(last);

    let acks = load.finish();
    eprintln!(
        "multi_server_faults: {faults} faults, {} ACKs checked ({} by a, {} by b, {} by c), {} conflicts, {} losses, \
         3 replicas equal to the database after each fault, {:.0} s",
        last.acks,
        acks.iter().filter(|a| a.0 == 0).count(),
        acks.iter().filter(|a| a.0 == 1).count(),
        acks.iter().filter(|a| a.0 == 2).count(),
        last.conflicts,
        last.losses,
        started.elapsed().as_secs_f64()
    );
    rt.block_on(async {
        for w in watchers {
            let _ = w.stop().await;
        }
    });
    for n in &mut nodes {
        if let Some(s) = n.server.take() {
            s.stop();
        }
    }
}

impl Counts {
    /// The later check's counts (they are cumulative: every ACK so far is checked each time).
    fn max(self, other: Counts) -> Counts {
        Counts {
            acks: self.acks.max(other.acks),
            conflicts: self.conflicts.max(other.conflicts),
            losses: self.losses.max(other.losses),
        }
    }
}
