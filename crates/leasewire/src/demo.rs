//! `leasewire demo`: the whole system on one machine with no setup. A server on loopback (temporary data
//! directory, Active Leasequery in secure mode with generated certificates), a simulated relay agent whose
//! clients get, renew, release and abandon leases, and a requestor watching over mutual TLS. It prints the
//! changes as the requestor sees them and ends with a check that the replica equals the server's store.

use crate::watch::{Printer, print_reports};
use anyhow::Context;
use leasewire_proto::options::code;
use leasewire_proto::{DhcpState, Message, MessageType, Op, RelayAgentInfoBuilder};
use leasewire_requestor::Watcher;
use leasewire_requestor::conn::Target;
use leasewire_requestor::replica::Replica;
use leasewire_requestor::tls::ClientTls;
use leasewire_server::clock::unix_now;
use leasewire_server::config::Config;
use leasewire_server::server::Server;
use leasewire_store::{LeaseStore, OpenOptions, ScanFilter, SqliteStore};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

/// What the demo was asked for.
pub struct Args {
    pub clients: u32,
    pub rate: u32,
    pub lease_time: u32,
    pub duration: Option<Duration>,
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!((1..=60_000).contains(&args.clients), "--clients must be 1 to 60000");
    anyhow::ensure!(args.rate >= 1, "--rate must be at least 1");
    let dir = tempfile::Builder::new().prefix("leasewire-demo-").tempdir()?;
    let certs = crate::lab_certs::write(&dir.path().join("certs"))?;
    let pool_end = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 77, 0, 1)) + args.clients + args.clients / 4);
    let config = Config::parse(&format!(
        r#"
[server]
server-id = "127.0.0.1"
listen = ["127.0.0.1:0"]
data-dir = "{data}"
[bulk-leasequery]
listen = ["127.0.0.1:0"]
allow = ["127.0.0.0/8"]
[active-leasequery]
enabled = true
[active-leasequery.tls]
cert = "{cert}"
key = "{key}"
ca = "{ca}"
allow-names = ["requestor.lab"]
[[subnet]]
subnet = "127.0.0.0/8"
pools = [{{ start = "127.77.0.1", end = "{pool_end}" }}]
lease-time = {lease}
"#,
        data = dir.path().display(),
        cert = certs.server_cert.display(),
        key = certs.server_key.display(),
        ca = certs.ca.display(),
        lease = args.lease_time,
    ))
    .map_err(|e| anyhow::anyhow!("demo configuration: {e}"))?;
    let store: Arc<dyn LeaseStore> =
        Arc::new(SqliteStore::open(dir.path().join(crate::serve::DB_FILE), OpenOptions::new(unix_now()))?);
    let tls = Arc::new(ClientTls::load(&certs.requestor_cert, &certs.requestor_key, &certs.ca, None)?);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let ok = rt.block_on(async {
        let server = Server::new(config).store(store.clone()).start().await?;
        let (dhcp, tcp) = (server.addrs().dhcp[0], server.addrs().tcp[0]);
        eprintln!(
            "leasewire demo: server on {dhcp} (DHCP) and {tcp} (Leasequery, mutual TLS); {} clients behind a relay; \
             data in {}",
            args.clients,
            dir.path().display()
        );
        eprintln!(
            "requestor: leasewire watch --server {tcp} --tls-cert … --tls-key … --ca … (certificates in {})",
            certs.ca.parent().map(|p| p.display().to_string()).unwrap_or_default()
        );
        eprintln!("Ctrl-C ends it.\n");

        // The requestor.
        let (rtx, rrx) = tokio::sync::mpsc::channel(4096);
        let printer = tokio::task::spawn_blocking(move || print_reports(rrx, Printer::new(args.json, false)));
        let watcher = Watcher::builder([Target { addr: tcp, tls: Some(tls) }])
            .retry_interval(Duration::from_secs(1))
            .reports(rtx)
            .spawn()?;

        // The clients, until Ctrl-C or --duration.
        let (clients_stop_tx, clients_stop) = tokio::sync::watch::channel(false);
        let sim = tokio::spawn(simulate(dhcp, args.clients, args.rate, clients_stop));
        let ended = async {
            match args.duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ended => {}
            _ = crate::serve::shutdown_signal() => eprintln!(),
        }
        let _ = clients_stop_tx.send(true);
        let actions = sim.await.context("client simulation")??;

        // Let the stream deliver the last changes, then compare.
        let mut check = compare(store.as_ref(), &leasewire_requestor::replica::lock(watcher.replica()))?;
        for _ in 0..50 {
            if check.differences.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            check = compare(store.as_ref(), &leasewire_requestor::replica::lock(watcher.replica()))?;
        }
        watcher.stop().await.context("watcher")?;
        let _ = printer.await;
        server.stop().await;

        eprintln!(
            "\nsummary: {actions} client actions; server store: {} bindings ({}); replica: {} of them identical{}",
            check.in_store,
            check.by_state,
            check.in_store - check.differences.len(),
            if check.differences.is_empty() { " — server and replica agree" } else { "" }
        );
        for d in &check.differences {
            eprintln!("  differs: {d}");
        }
        anyhow::Ok(check.differences.is_empty())
    })?;
    drop(dir);
    anyhow::ensure!(ok, "the replica does not match the server");
    Ok(())
}

struct Check {
    in_store: usize,
    by_state: String,
    differences: Vec<String>,
}

/// Every binding in the store must be in the replica with the same state, client and expiry; whatever else
/// the replica holds must be a free address (the bulk seed reports every configured address).
fn compare(store: &dyn LeaseStore, replica: &Replica) -> anyhow::Result<Check> {
    let mut in_store = 0;
    let mut states = std::collections::BTreeMap::<&str, usize>::new();
    let mut differences = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for page in leasewire_store::scan_pages(store, ScanFilter::all(), 10_000) {
        for r in page? {
            let b = &r.binding;
            in_store += 1;
            seen.insert(b.ip);
            *states.entry(b.state.name()).or_default() += 1;
            let fields = |b: &leasewire_proto::Binding| {
                (b.state, b.htype, b.hardware_address.clone(), b.client_id.clone(), b.expires_at)
            };
            match replica.get(b.ip) {
                Some((mine, _)) if fields(&mine) == fields(b) => {}
                Some((mine, _)) => {
                    differences.push(format!("{}: server {:?}, replica {:?}", b.ip, fields(b), fields(&mine)))
                }
                None => differences.push(format!("{}: missing from the replica", b.ip)),
            }
        }
    }
    for b in replica.bindings() {
        if !seen.contains(&b.ip) && b.state != DhcpState::Available {
            differences.push(format!("{}: {} in the replica, unknown to the server", b.ip, b.state.name()));
        }
    }
    let by_state = states.iter().map(|(s, n)| format!("{n} {s}")).collect::<Vec<_>>().join(", ");
    Ok(Check { in_store, by_state, differences })
}

/// Clients behind one relay agent (option 82 with the RFC 8357 source port, so replies come back here).
async fn simulate(
    server: SocketAddr,
    clients: u32,
    rate: u32,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<u64> {
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    let mut leases: Vec<Option<Ipv4Addr>> = vec![None; clients as usize];
    let mut rng = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos() as u64 | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut actions = 0u64;
    let mut xid = next() as u32;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return Ok(actions),
        }
        let i = (next() % u64::from(clients)) as usize;
        let mac = [2, 0x77, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        xid = xid.wrapping_add(1);
        actions += 1;
        leases[i] = match leases[i] {
            None => dora(&sock, server, mac, xid).await?,
            // Renew most of the time; sometimes release; sometimes walk away and let the lease expire.
            Some(ip) => match next() % 10 {
                0..=5 => {
                    let mut m = request(MessageType::Request, mac, xid);
                    m.ciaddr = ip;
                    send(&sock, server, &m).await?;
                    match reply(&sock, xid).await? {
                        Some((Some(MessageType::Ack), _)) => Some(ip),
                        _ => None,
                    }
                }
                6..=7 => {
                    let mut m = request(MessageType::Release, mac, xid);
                    m.ciaddr = ip;
                    m.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::new(127, 0, 0, 1));
                    send(&sock, server, &m).await?;
                    None
                }
                _ => None,
            },
        };
    }
}

fn request(t: MessageType, mac: [u8; 6], xid: u32) -> Message<'static> {
    let mut m = Message::new(Op::BootRequest);
    m.xid = xid;
    m.hops = 1;
    m.giaddr = Ipv4Addr::LOCALHOST;
    m.set_hardware_address(1, &mac);
    m.options.set_message_type(t);
    let rai = RelayAgentInfoBuilder::new()
        .circuit_id(format!("port-{}", mac[5]).as_bytes())
        .remote_id(&mac[3..])
        .relay_source_port()
        .build();
    m.options.set(code::RELAY_AGENT_INFO, rai);
    m
}

async fn send(sock: &UdpSocket, server: SocketAddr, m: &Message<'_>) -> anyhow::Result<()> {
    let mut b = Vec::new();
    m.encode(&mut b)?;
    sock.send_to(&b, server).await?;
    Ok(())
}

/// The reply to `xid` (its type and yiaddr), or `None` after half a second.
async fn reply(sock: &UdpSocket, xid: u32) -> anyhow::Result<Option<(Option<MessageType>, Ipv4Addr)>> {
    let mut buf = [0u8; 1500];
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    loop {
        let Ok(r) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await else { return Ok(None) };
        let (n, _) = r?;
        if let Ok(m) = Message::decode(&buf[..n])
            && m.xid == xid
        {
            return Ok(Some((m.message_type(), m.yiaddr)));
        }
    }
}

async fn dora(sock: &UdpSocket, server: SocketAddr, mac: [u8; 6], xid: u32) -> anyhow::Result<Option<Ipv4Addr>> {
    send(sock, server, &request(MessageType::Discover, mac, xid)).await?;
    let Some((Some(MessageType::Offer), offered)) = reply(sock, xid).await? else { return Ok(None) };
    let mut req = request(MessageType::Request, mac, xid);
    req.options.set_ip(code::SERVER_IDENTIFIER, Ipv4Addr::LOCALHOST);
    req.options.set_ip(code::REQUESTED_IP, offered);
    send(sock, server, &req).await?;
    Ok(reply(sock, xid).await?.and_then(|(t, ip)| (t == Some(MessageType::Ack)).then_some(ip)))
}
