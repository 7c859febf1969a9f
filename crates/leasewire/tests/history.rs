//! History against a ledger of what relayed clients did: a real server, real relayed clients, a real
//! `leasewire watch --db`, and the answers of `leasewire history` (and of the library reading the same file)
//! compared with what the test itself did and when.
//!
//! Times in the server are whole seconds, taken when it handles a message. So the ledger keeps, for each
//! action, the second before it was sent and the second after its effect was confirmed (the reply, or for a
//! RELEASE, which has none, the reply to a probe sent after it on the same socket); an answer is only
//! compared at times no action straddles.

mod support;

use leasewire_proto::MessageType;
use leasewire_proto::options::code;
use leasewire_requestor::history::{HistoryReader, Key, Query, Window};
use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::relay::Relay;
use support::{Proc, Rng, Server, ServerConfig, free_tcp_port, free_udp_port, http_get, leasewire};

fn now() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32
}

/// Wait until the clock's second moves past `t` (so the next action lands in a later second).
fn next_second(t: u32) {
    while now() <= t {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The server: `retention` seconds of Active Leasequery history; 127.31.0.0/24 has one address, leased for
/// `short` seconds (so it expires within a test), the other subnets lease for an hour.
fn config(udp: u16, tcp: u16, retention: u32, short: u32) -> String {
    ServerConfig::new(udp)
        .server_key(&format!("retention = {retention}"))
        .active_insecure(tcp)
        .subnet("127.31.0.0/24", "127.31.0.1", "127.31.0.1", &format!("lease-time = {short}"))
        .subnet("127.32.0.0/24", "127.32.0.1", "127.32.0.12", "lease-time = 3600")
        .subnet("127.33.0.0/24", "127.33.0.1", "127.33.0.50", "lease-time = 3600")
        .text()
}

struct Watcher {
    proc: Proc,
    http: SocketAddr,
}

fn start_watcher(dir: &Path, tcp: u16, n: usize) -> Watcher {
    let http = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let err = std::fs::File::create(dir.join(format!("watch-{n}.log"))).unwrap();
    let mut cmd = Command::new(leasewire());
    cmd.args(["watch", "--retry-interval", "200ms", "--server", &format!("127.0.0.1:{tcp}")])
        .arg("--db")
        .arg(dir.join("replica.sqlite3"))
        .args(["--http", &http.to_string(), "--history-retention", "30d"])
        .env("LEASEWIRE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err);
    Watcher { proc: Proc::spawn("leasewire watch", &mut cmd), http }
}

/// Wait until the watcher's replica shows `ip` in `state` (held by `mac` when given).
fn wait_replica(w: &Watcher, ip: Ipv4Addr, state: &str, mac: Option<[u8; 6]>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let want_mac = mac.map(|m| leasewire_proto::hex::format(&m));
    loop {
        let body = http_get(w.http, &format!("/bindings?ip={ip}"));
        if body.contains(&format!("\"state\":\"{state}\""))
            && want_mac.as_ref().is_none_or(|m| body.contains(m.as_str()))
        {
            return;
        }
        assert!(Instant::now() < deadline, "{ip} never became {state} {want_mac:?} in the replica: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The clients' side: a relay for the subnets under test and one for probes.
struct Clients {
    relays: BTreeMap<u8, Relay>,
    probe: Relay,
    xid: u32,
}

impl Clients {
    fn new(udp: u16) -> Self {
        let server = SocketAddr::from((Ipv4Addr::LOCALHOST, udp));
        let relays =
            [31u8, 32].into_iter().map(|net| (net, Relay::new(server, Ipv4Addr::new(127, net, 0, 254)))).collect();
        Self { relays, probe: Relay::new(server, Ipv4Addr::new(127, 33, 0, 254)), xid: 1 }
    }

    /// Send a RELEASE of `ip` by `mac` through `relay` (no reply comes).
    fn release_on(&self, relay: &Relay, mac: [u8; 6], ip: Ipv4Addr) {
        let mut rel = relay.request(MessageType::Release, mac, self.xid);
        rel.ciaddr = ip;
        rel.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::LOCALHOST);
        relay.send(&rel);
    }

    fn xid(&mut self) -> u32 {
        self.xid += 1;
        self.xid
    }

    /// DORA; the address and the seconds around it.
    fn lease(&mut self, net: u8, mac: [u8; 6]) -> Option<(Ipv4Addr, u32, u32)> {
        let lo = now();
        let xid = self.xid();
        let ip = self.relays[&net].dora(mac, xid, Ipv4Addr::LOCALHOST)?;
        Some((ip, lo, now()))
    }

    /// A renewal (RFC 2131 RENEWING: ciaddr, no server-id); the seconds around it.
    fn renew(&mut self, net: u8, mac: [u8; 6], ip: Ipv4Addr) -> (u32, u32) {
        let lo = now();
        let xid = self.xid();
        let relay = &self.relays[&net];
        let mut req = relay.request(MessageType::Request, mac, xid);
        req.ciaddr = ip;
        relay.send(&req);
        let ack = relay.recv(xid).expect("an answer to the renewal");
        assert_eq!(ack.message_type(), Some(MessageType::Ack), "renewal of {ip}");
        (lo, now())
    }

    /// A RELEASE, then a probe whose reply shows the server handled it; the seconds around it.
    fn release(&mut self, net: u8, mac: [u8; 6], ip: Ipv4Addr) -> (u32, u32) {
        let lo = now();
        self.release_on(&self.relays[&net], mac, ip);
        let xid = self.xid + 1_000_000;
        self.probe.send(&self.probe.request(MessageType::Discover, [2, 0, 0, 0, 0x33, 1], xid));
        assert!(self.probe.recv(xid).is_some(), "the probe after a release got no offer");
        (lo, now())
    }
}

/// A ledger entry: the second before the action, the second after its effect was confirmed, and the holder
/// after it.
type Change = (u32, u32, Option<[u8; 6]>);

fn held_at(r: &mut HistoryReader, ip: Ipv4Addr, t: u32) -> Option<Vec<u8>> {
    let a = r.query(&Query { key: Key::Ip(ip), window: Window::At(t), now: now() }).unwrap();
    assert!(a.len() <= 1, "{ip} at {t}: {a:?}");
    a.into_iter().find(|i| i.held()).map(|i| i.mac)
}

/// Wait until the history file says `ip` is held by `mac` now (free for `None`).
fn wait_history(db: &Path, ip: Ipv4Addr, mac: Option<[u8; 6]>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut r) = HistoryReader::open(db)
            && held_at(&mut r, ip, now()).as_deref() == mac.as_ref().map(|m| &m[..])
        {
            return;
        }
        assert!(Instant::now() < deadline, "the history never showed {ip} held by {mac:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn history_cli(db: &Path, args: &[&str]) -> String {
    let out = Command::new(leasewire()).arg("history").arg("--db").arg(db).args(args).output().unwrap();
    assert!(out.status.success(), "history {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The lease time of the one-address subnet in the ledger test: long enough that A's renewal (a second after
/// its lease, on a loaded machine possibly several) comes before expiry, short enough for B's to expire.
const SHORT: u32 = 8;

/// Created, renewed, released, re-leased to another client, expired, and a lease made while the watcher was
/// away long enough for the server's history to move on (DataMissing, then a Bulk gap fill, ALQ-7.4.1-13).
#[test]
fn answers_match_a_ledger_of_relayed_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (udp, tcp) = (free_udp_port(), free_tcp_port());
    let _server = Server::start(dir.path(), &config(udp, tcp, 2, SHORT), None);
    let mut w = start_watcher(dir.path(), tcp, 0);
    let mut c = Clients::new(udp);
    let (a, b, cc) = ([2, 0, 0, 0, 31, 1], [2, 0, 0, 0, 31, 2], [2, 0, 0, 0, 32, 3]);

    let (x, _, a_hi) = c.lease(31, a).expect("a lease for A");
    next_second(a_hi);
    let (_, n_hi) = c.renew(31, a, x);
    next_second(n_hi);
    let (r_lo, r_hi) = c.release(31, a, x);
    wait_replica(&w, x, "RELEASED", None);
    next_second(r_hi);
    let (x2, b_lo, b_hi) = c.lease(31, b).expect("a lease for B");
    assert_eq!(x2, x, "a one-address pool: B gets A's address");
    // B's short lease runs out; the server expires it.
    wait_replica(&w, x, "EXPIRED", None);
    let expired_seen = now();

    // The watcher goes away; C leases while it is gone, for longer than the server keeps history (2 s).
    w.proc.kill9();
    let (y, c_lo, c_hi) = c.lease(32, cc).expect("a lease for C");
    std::thread::sleep(Duration::from_millis(5_000));
    let w = start_watcher(dir.path(), tcp, 1);
    wait_replica(&w, y, "ACTIVE", Some(cc));
    let log = std::fs::read_to_string(dir.path().join("watch-1.log")).unwrap();
    assert!(log.contains("data missing"), "the restart should have met DataMissing:\n{log}");
    let mut w = w;
    w.proc.signal("TERM");
    assert!(w.proc.wait_exit(30).success());

    let db = dir.path().join("replica.sqlite3");
    let mut r = HistoryReader::open(&db).unwrap();
    for t in a_hi..r_lo {
        assert_eq!(held_at(&mut r, x, t).as_deref(), Some(&a[..]), "created and renewed: A holds {x} at {t}");
    }
    for t in r_hi..b_lo {
        assert_eq!(held_at(&mut r, x, t), None, "released: {x} free at {t}");
    }
    for t in b_hi..=b_lo + 2 {
        assert_eq!(held_at(&mut r, x, t).as_deref(), Some(&b[..]), "re-leased: B holds {x} at {t}");
    }
    assert!(expired_seen <= b_hi + SHORT + 3);
    for t in b_hi + SHORT + 1..=b_hi + SHORT + 3 {
        assert_eq!(held_at(&mut r, x, t), None, "expired: {x} free at {t}");
    }
    for t in c_hi..=now() {
        assert_eq!(held_at(&mut r, y, t).as_deref(), Some(&cc[..]), "gap fill: C holds {y} at {t}");
    }
    assert_eq!(held_at(&mut r, y, c_lo.saturating_sub(1)), None);

    // The command line: the sentence, JSON lines, CSV, by MAC and by relay.
    let hex = leasewire_proto::hex::format;
    let said = history_cli(&db, &["--ip", &x.to_string(), "--at", &a_hi.to_string()]);
    assert!(said.contains(&format!("held by {}", hex(&a))), "{said}");
    let said = history_cli(&db, &["--ip", &x.to_string(), "--at", &r_hi.to_string()]);
    assert!(said.contains("free since") && said.contains("(released)"), "{said}");
    let json = history_cli(&db, &["--mac", &hex(&b), "--json"]);
    let lines: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{json}");
    assert_eq!((lines[0]["ip"].as_str(), lines[0]["held"].as_bool()), (Some(&*x.to_string()), Some(true)));
    assert_eq!(lines[0]["version"], 1);
    leasewire_requestor::json::validate(&lines[0]).unwrap();
    let csv = history_cli(&db, &["--relay-id", &hex(b"relay-A"), "--csv", "--from", "1h ago"]);
    assert!(csv.starts_with("ip,state,held,from,to"), "{csv}");
    assert_eq!(csv.lines().count(), 4, "A, B and C, through relay-A:\n{csv}");
    let table = history_cli(&db, &["--ip", &x.to_string(), "--from", "1h ago", "--to", "now"]);
    assert!(table.contains("RELEASED") && table.contains(&hex(&b)), "{table}");
}

/// What a watcher killed and restarted at random points records, at random (address, time) pairs, equals what
/// the clients did. Within one run between kills each address changes at most once where it matters: a
/// catch-up sends an address's latest state only, so two changes to it between the last flush before a
/// SIGKILL and the catch-up after are one change to any requestor (RFC 7724 §7.3); such spans are left out.
#[test]
fn answers_survive_watcher_restarts_and_sigkills() {
    let seed =
        std::env::var("LEASEWIRE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| u64::from(now()) | 1);
    let dir = tempfile::tempdir().unwrap();
    let (udp, tcp) = (free_udp_port(), free_tcp_port());
    let _server = Server::start(dir.path(), &config(udp, tcp, 600, 3), None);
    let mut rng = Rng(seed);
    let mut c = Clients::new(udp);
    let mut w = start_watcher(dir.path(), tcp, 0);
    let start = now();
    // The ledger: per address, (second before, second after, holder after).
    let mut ledger: BTreeMap<Ipv4Addr, Vec<Change>> = BTreeMap::new();
    let mut holder_of: BTreeMap<[u8; 6], Ipv4Addr> = BTreeMap::new();
    let mut excluded: Vec<(Ipv4Addr, u32, u32)> = Vec::new();
    let mut incarnation = 0;
    let (mut marker_ip, mut last_marker_ip) = (None, Ipv4Addr::UNSPECIFIED);
    for _epoch in 0..12 {
        let epoch_start = now();
        let mut touched: HashSet<Ipv4Addr> = HashSet::new();
        let (kill_at, restart_at, actions) = (rng.below(3), 3 + rng.below(2), 5 + rng.below(3));
        for i in 0..actions {
            if i == kill_at {
                if rng.below(2) == 0 {
                    w.proc.kill9();
                } else {
                    w.proc.signal("TERM");
                    w.proc.wait_exit(30);
                }
            }
            if i == restart_at {
                incarnation += 1;
                w = start_watcher(dir.path(), tcp, incarnation);
            }
            let mac = [2, 0, 0, 0, 32, 1 + rng.below(16) as u8];
            let (ip, lo, hi, after) = match holder_of.get(&mac).copied() {
                Some(ip) if rng.below(3) == 0 => {
                    let (lo, hi) = c.release(32, mac, ip);
                    holder_of.remove(&mac);
                    (ip, lo, hi, None)
                }
                Some(ip) => {
                    let (lo, hi) = c.renew(32, mac, ip);
                    (ip, lo, hi, Some(mac))
                }
                None => match c.lease(32, mac) {
                    Some((ip, lo, hi)) => {
                        holder_of.insert(mac, ip);
                        (ip, lo, hi, Some(mac))
                    }
                    None => continue, // pool full: no change
                },
            };
            if !touched.insert(ip) {
                excluded.push((ip, epoch_start, u32::MAX)); // end filled below
            }
            ledger.entry(ip).or_default().push((lo, hi, after));
        }
        if restart_at >= actions {
            incarnation += 1;
            w = start_watcher(dir.path(), tcp, incarnation);
        }
        // The epoch ends once the history file has every change of the epoch, so a kill in the next one
        // loses only its own: the watcher has caught up, then a marker change made after all of them (so after
        // them on the live stream, in commit order) is in the file (flushes take everything applied before).
        let log = dir.path().join(format!("watch-{incarnation}.log"));
        let deadline = Instant::now() + Duration::from_secs(20);
        // (A catch-up ends with CatchUpComplete, or with DataMissing and a gap fill when it began before the
        // server's history: a watcher killed before its seed completed starts over, just after the server.)
        let caught_up = |l: String| l.contains("catch-up complete") || l.contains("gap filled");
        while !caught_up(std::fs::read_to_string(&log).unwrap_or_default()) {
            assert!(
                Instant::now() < deadline,
                "watcher {incarnation} never caught up:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let marker = [2, 0, 0, 0, 0x33, 2];
        let held = match marker_ip {
            None => {
                let xid = c.xid();
                marker_ip = c.probe.dora(marker, xid, Ipv4Addr::LOCALHOST);
                Some(marker)
            }
            Some(ip) => {
                c.release_on(&c.probe, marker, ip);
                marker_ip = None;
                None
            }
        };
        let ip = marker_ip.unwrap_or(last_marker_ip);
        last_marker_ip = ip;
        wait_history(&dir.path().join("replica.sqlite3"), ip, held);
        let end = now();
        for e in excluded.iter_mut().filter(|e| e.2 == u32::MAX) {
            e.2 = end;
        }
    }
    // (A watcher started a moment ago may not handle SIGTERM yet: the history is already complete.)
    w.proc.signal("TERM");
    w.proc.wait_exit(30);
    let end = now();

    let mut r = HistoryReader::open(&dir.path().join("replica.sqlite3")).unwrap();
    let ips: Vec<Ipv4Addr> = (1..=12).map(|i| Ipv4Addr::new(127, 32, 0, i)).collect();
    let mut compared = 0;
    for _ in 0..400 {
        let ip = ips[rng.below(ips.len() as u64) as usize];
        let t = start + rng.below(u64::from(end - start + 1)) as u32;
        let changes = ledger.get(&ip).map(Vec::as_slice).unwrap_or_default();
        let straddled = changes.iter().any(|(lo, hi, _)| *lo <= t && t < *hi);
        let left_out = excluded.iter().any(|(e, from, to)| *e == ip && *from <= t && t <= *to);
        if straddled || left_out {
            continue;
        }
        let want = changes.iter().rfind(|(lo, _, _)| *lo <= t).and_then(|(_, _, h)| *h);
        let got = held_at(&mut r, ip, t);
        assert_eq!(got.as_deref(), want.as_ref().map(|m| &m[..]), "seed {seed}: {ip} at {t}; ledger {changes:?}");
        compared += 1;
    }
    assert!(compared >= 100, "seed {seed}: only {compared} pairs could be compared");
}
