//! Issue #8's acceptance: `leasewire watch` keeps an exact replica through faults. Random relayed DHCP
//! activity (DORA, renew, release, walk-away with 3-second leases that expire) while, in random order: every
//! connection is cut, the next connection is cut after a few bytes (mid-bulk seed, mid-catch-up, mid-gap
//! fill), the server restarts, the requestor is killed with SIGKILL and restarted on its replica file, and
//! an outage longer than the server's 2-second retention makes the server answer DataMissing (ALQ-7.4.1-4),
//! which the requestor fills with a bounded Bulk Leasequery (ALQ-7.4.1-13). When the activity stops, the
//! replica file equals the server's store: every address, state, client, expiry. 4 tests x 5 seeds = 20
//! randomised runs, half of them in secure mode (DHCPTLS + mutual TLS) through the same faults.

mod support;

use leasewire_proto::session::BulkKey;
use leasewire_proto::session::requestor::bulk::{BulkRequest, Event};
use leasewire_proto::{DhcpState, MessageType};
use leasewire_requestor::conn::Target;
use leasewire_requestor::replica::Replica;
use leasewire_requestor::tls::ClientTls;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::proxy::Proxy;
use support::relay::Relay;
use support::{Proc, Rng, Server, ServerConfig, free_tcp_port, free_udp_port, http_get, leasewire, open_store};

/// Addresses in each pool: 127.6.0.1.. (hour-long leases) and 127.7.0.1.. (3-second leases, which expire).
const POOL: u8 = 40;
const SHORT_LEASE: u64 = 3;

struct Watcher {
    proc: Proc,
}

fn start_watcher(dir: &Path, proxy: SocketAddr, http: SocketAddr, secure: bool, n: usize) -> Watcher {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("watch.jsonl")).unwrap();
    let err = std::fs::File::create(dir.join(format!("watch-{n}.log"))).unwrap();
    let mut cmd = Command::new(leasewire());
    cmd.args(["watch", "--json", "--retry-interval", "200ms", "--server"])
        .arg(proxy.to_string())
        .arg("--db")
        .arg(dir.join("replica.sqlite3"))
        .arg("--http")
        .arg(http.to_string());
    if secure {
        let c = dir.join("certs");
        cmd.arg("--tls-cert").arg(c.join("requestor.pem")).arg("--tls-key").arg(c.join("requestor-key.pem"));
        cmd.arg("--ca").arg(c.join("ca.pem"));
    }
    cmd.env("LEASEWIRE_LOG", "info").stdin(Stdio::null()).stdout(out).stderr(err);
    Watcher { proc: Proc::spawn("leasewire watch", &mut cmd) }
}

fn pool_ips() -> impl Iterator<Item = Ipv4Addr> {
    (1..=POOL).flat_map(|i| [Ipv4Addr::new(127, 6, 0, i), Ipv4Addr::new(127, 7, 0, i)])
}

/// What the server reports now, by Bulk Leasequery straight to it (not through the proxy).
fn server_view(target: &Target) -> HashMap<Ipv4Addr, (DhcpState, Vec<u8>, Option<u32>)> {
    let mut v = HashMap::new();
    let req = BulkRequest { key: BulkKey::All, changed_on_or_after: None, changed_on_or_before: None };
    leasewire_requestor::bulk::run_target(target, &[req], Duration::from_secs(10), &mut |ev| {
        if let Event::Binding(b) = ev {
            let b = b.binding;
            v.insert(b.ip, (b.state, b.hardware_address, b.expires_at));
        }
    })
    .expect("bulk leasequery to the server");
    v
}

/// The replica's answer for `ip` over the watcher's HTTP endpoint.
fn replica_view(http: SocketAddr, ip: Ipv4Addr) -> Option<(DhcpState, Vec<u8>, Option<u32>)> {
    let body = http_get(http, &format!("/bindings?ip={ip}"));
    let line = body.lines().next()?;
    let j: serde_json::Value = serde_json::from_str(line).ok()?;
    let state = DhcpState::from_name(j["state"].as_str()?)?;
    let mac = leasewire_proto::hex::parse(j["mac"].as_str().unwrap_or("")).unwrap_or_default();
    Some((state, mac, j["expires_at_epoch"].as_u64().map(|e| e as u32)))
}

fn free(s: DhcpState) -> bool {
    matches!(s, DhcpState::Available | DhcpState::Released | DhcpState::Expired)
}

fn activity(udp: u16, seed: u64, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // Two relays: giaddr selects the subnet, so the lease time.
        let server = SocketAddr::from((Ipv4Addr::LOCALHOST, udp));
        let relays =
            [Relay::new(server, Ipv4Addr::new(127, 6, 0, 254)), Relay::new(server, Ipv4Addr::new(127, 7, 0, 254))];
        let mut rng = Rng(seed);
        let mut held: HashMap<u8, Ipv4Addr> = HashMap::new();
        let mut xid = (seed as u32) | 1;
        while !stop.load(Ordering::Relaxed) {
            let c = rng.below(2 * (u64::from(POOL) - 8)) as u8;
            let relay = &relays[usize::from(c % 2)];
            xid = xid.wrapping_add(1);
            let mac = [2, 0, 0, 0, 6, c];
            match (held.get(&c).copied(), rng.below(4)) {
                (Some(ip), 0) => {
                    let mut r = relay.request(MessageType::Release, mac, xid);
                    r.ciaddr = ip;
                    relay.send(&r);
                    held.remove(&c);
                }
                // Walk away: the lease expires on its own.
                (Some(_), 1) => {
                    held.remove(&c);
                }
                _ => {
                    // The server may be restarting: no answer is fine, the client tries again later.
                    if let Some(ip) = relay.dora(mac, xid, Ipv4Addr::LOCALHOST) {
                        held.insert(c, ip);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5 + rng.below(20)));
        }
    })
}

/// One randomised run; returns the watcher logs (to check which paths were taken).
fn run(seed: u64, secure: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (udp, tcp, http) = (free_udp_port(), free_tcp_port(), free_tcp_port());
    let mut target = Target { addr: SocketAddr::from((Ipv4Addr::LOCALHOST, tcp)), tls: None };
    let mut config = ServerConfig::new(udp).server_key("retention = 2");
    if secure {
        let f = support::lab_certs::write(&d.join("certs")).unwrap();
        config = config.bulk(tcp).active_tls(&f.server_cert, &f.server_key, &f.ca, "");
        target.tls = Some(Arc::new(ClientTls::load(&f.requestor_cert, &f.requestor_key, &f.ca, None).unwrap()));
    } else {
        config = config.active_insecure(tcp);
    }
    let config = config.subnet("127.6.0.0/24", "127.6.0.1", &format!("127.6.0.{POOL}"), "lease-time = 3600").subnet(
        "127.7.0.0/24",
        "127.7.0.1",
        &format!("127.7.0.{POOL}"),
        &format!("lease-time = {SHORT_LEASE}"),
    );
    let mut server = Server::start(d, &config.text(), None);
    let config_path: PathBuf = server.config.clone();
    let proxy = Proxy::start(SocketAddr::from((Ipv4Addr::LOCALHOST, tcp)));
    let mut http_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, http));
    let mut rng = Rng(seed);
    // The very first connection (the bulk seed) is cut part-way.
    proxy.cut_next_after(500 + rng.below(3000) as usize);
    let mut incarnation = 0;
    let mut watcher = start_watcher(d, proxy.addr, http_addr, secure, incarnation);

    let stop = Arc::new(AtomicBool::new(false));
    let act = activity(udp, seed, stop.clone());
    // Every fault at least once, in random order, with random pauses; some twice.
    let mut faults: Vec<u64> = vec![0, 1, 2, 3, 4, rng.below(4), rng.below(4)];
    for i in (1..faults.len()).rev() {
        faults.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for f in faults {
        std::thread::sleep(Duration::from_millis(200 + rng.below(500)));
        match f {
            0 => proxy.cut_all(),
            1 => {
                proxy.cut_next_after(100 + rng.below(4000) as usize);
                proxy.cut_all();
            }
            2 => {
                server.stop();
                server = Server::start_with(d, &config_path, None);
            }
            3 => {
                watcher.proc.kill9();
                incarnation += 1;
                // A fresh port: the old one was free while the watcher was down, and another test may hold it
                // now (an HTTP request to it would then reach someone else).
                http_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
                watcher = start_watcher(d, proxy.addr, http_addr, secure, incarnation);
            }
            _ => {
                // Longer than retention + the forget cadence: the history moves past the saved base-time.
                proxy.refuse(true);
                proxy.cut_all();
                std::thread::sleep(Duration::from_millis(4500 + rng.below(1000)));
                proxy.refuse(false);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    act.join().unwrap();
    // Let every lease still held expire (and the expiry commit), then wait for the replica to agree.
    std::thread::sleep(Duration::from_secs(SHORT_LEASE + 2));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last_diff = String::new();
    loop {
        // A watcher that died is a failure of its own: say so, with its log, rather than fail on a closed port.
        if let Some(status) = watcher.proc.child.try_wait().unwrap() {
            let log = std::fs::read_to_string(d.join(format!("watch-{incarnation}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
            panic!("seed {seed}: the watcher exited ({status}) before converging; its log ends:\n{}", tail.join("\n"));
        }
        let truth = server_view(&target);
        let diff: Vec<String> = truth
            .iter()
            .filter_map(|(ip, want)| {
                let got = replica_view(http_addr, *ip);
                let same = match &got {
                    Some(g) if free(want.0) => free(g.0),
                    Some(g) => g == want,
                    None => false,
                };
                (!same).then(|| format!("{ip}: server {want:?}, replica {got:?}"))
            })
            .collect();
        if diff.is_empty() {
            break;
        }
        last_diff = diff.join("\n");
        if Instant::now() >= deadline {
            // What the watcher printed about those addresses, and its logs.
            let jsonl = std::fs::read_to_string(d.join("watch.jsonl")).unwrap_or_default();
            let ips: Vec<String> =
                diff.iter().map(|l| format!("\"ip\":\"{}\"", l.split(':').next().unwrap())).collect();
            let history: Vec<&str> = jsonl.lines().filter(|l| ips.iter().any(|ip| l.contains(ip.as_str()))).collect();
            let mut logs = String::new();
            for i in 0..=incarnation {
                logs.push_str(&std::fs::read_to_string(d.join(format!("watch-{i}.log"))).unwrap_or_default());
            }
            panic!(
                "seed {seed:#x}: the replica did not converge:\n{last_diff}\nhistory:\n{}\nlogs:\n{logs}",
                history.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = last_diff;
    // Clean stops: the watcher writes its replica, the server closes its store.
    watcher.proc.signal("TERM");
    assert!(watcher.proc.wait_exit(30).success(), "seed {seed:#x}: watch exited badly");
    server.stop();

    // The exact comparison, file against file.
    let store = open_store(d);
    let replica = Replica::open(&d.join("replica.sqlite3"), &[]).unwrap();
    let records = leasewire_store::scan_pages(&store, leasewire_store::ScanFilter::all(), 1000)
        .flat_map(|p| p.unwrap())
        .collect::<Vec<_>>();
    assert!(records.len() >= 8, "seed {seed:#x}: activity made bindings ({})", records.len());
    let mut in_store = std::collections::HashSet::new();
    for r in &records {
        let want = &r.binding;
        in_store.insert(want.ip);
        let (got, _) = replica.get(want.ip).unwrap_or_else(|| panic!("seed {seed:#x}: {} missing", want.ip));
        let key = |b: &leasewire_proto::Binding| {
            (b.state, b.htype, b.hardware_address.clone(), b.client_id.clone(), b.expires_at, b.state_since, b.cltt)
        };
        assert_eq!(key(&got), key(want), "seed {seed:#x}: {} differs", want.ip);
        assert_eq!(got.relay_agent_info, want.relay_agent_info, "seed {seed:#x}: {} option 82", want.ip);
    }
    // Addresses the server does not hold are free there (never leased, or forgotten after retention): the
    // replica must not think them leased.
    for b in replica.bindings() {
        if !in_store.contains(&b.ip) {
            assert!(free(b.state), "seed {seed:#x}: {} is {} in the replica only", b.ip, b.state.name());
        }
    }
    assert!(pool_ips().all(|ip| replica.get(ip).is_some()), "seed {seed:#x}: the seed covered the pools");
    let mut logs = String::new();
    for i in 0..=incarnation {
        logs.push_str(&std::fs::read_to_string(d.join(format!("watch-{i}.log"))).unwrap_or_default());
    }
    assert!(proxy.accepted() >= 4, "seed {seed:#x}: reconnected through the faults");
    logs
}

fn runs(seeds: [u64; 5]) {
    let mut logs = String::new();
    for (i, seed) in seeds.into_iter().enumerate() {
        logs.push_str(&run(seed, i % 2 == 0));
    }
    // The paths under test were taken: DataMissing answered by a gap fill, and catch-ups after reconnects.
    assert!(logs.contains("data missing"), "no DataMissing in these runs:\n{logs}");
    assert!(logs.contains("gap filled"), "no gap filled in these runs");
    assert!(logs.contains("catch-up complete"), "no catch-up in these runs");
    assert!(logs.contains("bulk leasequery seed complete"), "no seed in these runs");
}

/// The 20 seeded runs, five to a test so that the test runner spreads them over the cores: one `#[test]`
/// per row.
macro_rules! seeded_runs {
    ($($name:ident: $seeds:expr;)*) => {$(
        #[test]
        fn $name() {
            runs($seeds);
        }
    )*};
}

seeded_runs! {
    alq_7_4_1_watch_converges_through_faults_runs_1_to_5: [0x9e37_79b9, 0x85eb_ca6b, 0xc2b2_ae35, 0x27d4_eb2f, 0x1656_67b1];
    alq_7_4_1_watch_converges_through_faults_runs_6_to_10: [0xd3a2_646c, 0xfd70_46c5, 0xb55a_4f09, 0x6c8e_9cf5, 0x7a9f_2e4d];
    alq_7_4_1_watch_converges_through_faults_runs_11_to_15: [0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab];
    alq_7_4_1_watch_converges_through_faults_runs_16_to_20: [0x5be0_cd19, 0x6a09_e667, 0xbb67_ae85, 0xcbbb_9d5d, 0x629a_292a];
}
