//! `leasewire bench`: load tools for measuring servers (ours and others) on a lab network.
//!
//! * `populate` fills a data directory's lease store with N active bindings (for query benchmarks).
//! * `leasequery` sends RFC 4388 queries with a fixed window outstanding and reports answers/s and latency.
//! * `echo` answers every datagram at once, to show the load generator's own ceiling.

mod dora;

pub use dora::{DoraArgs, dhcp_echo, dora};

use anyhow::{Context, bail};
use leasewire_proto::{DhcpState, Message, MessageType, Op, RelayAgentInfoBuilder};
use leasewire_requestor::udp_query::{self, Query};
use leasewire_store::{Binding, LeaseStore, OpenOptions, SqliteStore};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

/// Active bindings for `count` addresses from `first`, committed in large batches, into the SQLite store of
/// `data_dir` or the PostgreSQL store at `postgres` (one of the two).
pub fn populate(
    data_dir: Option<&Path>,
    postgres: Option<&str>,
    first: Ipv4Addr,
    count: u32,
    lease_time: u32,
) -> anyhow::Result<()> {
    let now = leasewire_server::clock::unix_now();
    let store: Box<dyn LeaseStore> = match (data_dir, postgres) {
        (_, Some(url)) => Box::new(leasewire_store::PgStore::open(url, leasewire_store::PgOptions::new(now, "bench"))?),
        (Some(dir), None) => {
            std::fs::create_dir_all(dir)?;
            Box::new(SqliteStore::open(dir.join(crate::serve::DB_FILE), OpenOptions::new(now))?)
        }
        (None, None) => bail!("populate needs --data-dir or --postgres"),
    };
    let start = Instant::now();
    let base = u32::from(first);
    let mut n = 0;
    while n < count {
        let batch: Vec<Binding> =
            (n..count.min(n + 10_000)).map(|i| binding(Ipv4Addr::from(base + i), i, now, lease_time)).collect();
        n += batch.len() as u32;
        store.commit(now, batch).wait()?;
    }
    println!("{count} bindings from {first} in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

fn binding(ip: Ipv4Addr, i: u32, now: u32, lease_time: u32) -> Binding {
    let mut b = Binding::new(ip, DhcpState::Active, now);
    let mac = [2, 0, (i >> 24) as u8, (i >> 16) as u8, (i >> 8) as u8, i as u8];
    b.htype = 1;
    b.hardware_address = mac.to_vec();
    b.cltt = Some(now);
    b.expires_at = Some(now + lease_time);
    b.relay_agent_info = Some(
        RelayAgentInfoBuilder::new()
            .circuit_id(format!("port{}", i % 48).as_bytes())
            .remote_id(&mac)
            .relay_id(format!("relay{}", i % 16).as_bytes())
            .build(),
    );
    b
}

/// Query addresses `first .. first+count` round-robin for `duration`, keeping `window` queries outstanding.
pub fn leasequery(
    server: SocketAddrV4,
    giaddr: Ipv4Addr,
    first: Ipv4Addr,
    count: u32,
    duration: Duration,
    window: usize,
) -> anyhow::Result<()> {
    let (socket, source_port) = match UdpSocket::bind((giaddr, 67)) {
        Ok(s) => (s, false),
        Err(_) => (UdpSocket::bind((giaddr, 0)).with_context(|| format!("bind {giaddr}"))?, true),
    };
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let window = window.clamp(1, 4096);
    let mut sent_at: Vec<Option<Instant>> = vec![None; window];
    let mut latencies: Vec<u32> = Vec::with_capacity(1 << 20);
    let (mut sent, mut answered, mut lost) = (0u64, 0u64, 0u64);
    let mut next = 0u32;
    let mut buf = [0u8; 2048];
    let mut out = Vec::with_capacity(512);
    let mut send =
        |slot: usize, sent_at: &mut Vec<Option<Instant>>, next: &mut u32, sent: &mut u64| -> anyhow::Result<()> {
            let ip = Ipv4Addr::from(u32::from(first) + *next % count);
            *next = next.wrapping_add(1);
            // The slot is in the xid, so a reply finds its send time without a map.
            let xid = (*next << 12) | slot as u32;
            let q = udp_query::build(&Query::Ip(ip), xid, giaddr, &[51, 91, 82], source_port);
            out.clear();
            q.encode(&mut out)?;
            socket.send_to(&out, server)?;
            sent_at[slot] = Some(Instant::now());
            *sent += 1;
            Ok(())
        };
    let start = Instant::now();
    for slot in 0..window {
        send(slot, &mut sent_at, &mut next, &mut sent)?;
    }
    while start.elapsed() < duration {
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => {
                let Ok(m) = Message::decode(&buf[..n]) else { continue };
                let slot = (m.xid & 0xfff) as usize;
                if m.op != Op::BootReply || slot >= window {
                    continue;
                }
                if let Some(t) = sent_at[slot].take() {
                    latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    answered += 1;
                    if !matches!(m.message_type(), Some(MessageType::LeaseActive)) {
                        bail!("unexpected reply {:?} for {}: populate the server first", m.message_type(), m.ciaddr);
                    }
                    send(slot, &mut sent_at, &mut next, &mut sent)?;
                }
            }
            Err(_) => {
                // A quiet spell: count what is outstanding as lost and refill the window.
                for slot in 0..window {
                    if sent_at[slot].is_some_and(|t| t.elapsed() > Duration::from_millis(200)) {
                        lost += 1;
                        send(slot, &mut sent_at, &mut next, &mut sent)?;
                    }
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "sent {sent} answered {answered} lost {lost} in {secs:.1} s: {:.0} answers/s, latency p50 {} µs p99 {} µs max {} µs (window {window})",
        answered as f64 / secs,
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or(0)
    );
    Ok(())
}

/// Answer every DHCPLEASEQUERY with a DHCPLEASEACTIVE for its ciaddr, as fast as possible, at giaddr:67 (or the
/// source port when asked with RFC 8357): the generator's ceiling with a server that does no work.
pub fn echo(listen: SocketAddr) -> anyhow::Result<()> {
    let socket = UdpSocket::bind(listen)?;
    let mut buf = [0u8; 2048];
    let mut out = Vec::with_capacity(512);
    loop {
        let (n, from) = socket.recv_from(&mut buf)?;
        let Ok(q) = Message::decode(&buf[..n]) else { continue };
        let mut r = Message::new(Op::BootReply);
        r.xid = q.xid;
        r.ciaddr = q.ciaddr;
        r.giaddr = q.giaddr;
        r.options.set_message_type(MessageType::LeaseActive);
        out.clear();
        r.encode(&mut out)?;
        let port =
            if q.options.relay_agent_info().is_some_and(|r| r.has_relay_source_port()) { from.port() } else { 67 };
        socket.send_to(&out, SocketAddrV4::new(q.giaddr, port))?;
    }
}

/// Open an Active Leasequery with query-start-time `since` and time the catch-up: bindings until
/// CatchUpComplete (or DataMissing), and the rate.
pub fn catch_up(server: SocketAddrV4, since: u32) -> anyhow::Result<()> {
    use leasewire_proto::StatusCode;
    use leasewire_proto::framing::{FrameDecoder, encode_frame};
    use leasewire_proto::options::code;
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(server)?;
    s.set_nodelay(true)?;
    let mut q = Message::new(Op::BootRequest);
    q.xid = 0xcafe;
    q.options.set_message_type(MessageType::ActiveLeaseQuery);
    q.options.set(code::PARAMETER_REQUEST_LIST, vec![152, 51, 153, 91, 156]);
    q.options.set_u32(code::QUERY_START_TIME, since);
    let mut out = Vec::new();
    encode_frame(&q, &mut out)?;
    let start = Instant::now();
    s.write_all(&out)?;
    let (mut buf, mut chunk, mut count) = (Vec::new(), vec![0u8; 1 << 16], 0u64);
    let decoder = FrameDecoder::new(65535);
    loop {
        let mut used = 0;
        while let Some((body, n)) = decoder.decode(&buf[used..])? {
            used += n;
            let m = Message::decode(body)?;
            match m.options.status_code() {
                Some(StatusCode::CatchUpComplete) | Some(StatusCode::DataMissing) => {
                    let secs = start.elapsed().as_secs_f64();
                    println!(
                        "{count} bindings caught up in {secs:.3} s ({:.0}/s), ended by {}",
                        count as f64 / secs,
                        m.options.status_code().unwrap()
                    );
                    return Ok(());
                }
                _ => count += 1,
            }
        }
        buf.drain(..used);
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("the server closed the connection after {count} bindings");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Active Leasequery latency: `requestors` insecure Active connections watch while `threads` relays run DORA
/// at about `rate` ACKs per second for `seconds`. Reports the DHCPACK latency (REQUEST sent to ACK received)
/// and the delivery latency (ACK received by the client to the change's arrival at each requestor; the server
/// publishes a change right after sending the client's reply, so it is rarely negative).
pub fn active_latency(
    tcp: SocketAddrV4,
    udp: SocketAddrV4,
    requestors: usize,
    rate: u32,
    seconds: u64,
    threads: usize,
    remote_requestors: bool,
) -> anyhow::Result<()> {
    use leasewire_proto::framing::{FrameDecoder, encode_frame};
    use leasewire_proto::options::code;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let acks: Arc<Mutex<HashMap<Ipv4Addr, Instant>>> = Arc::default();
    let arrivals: Arc<Mutex<Vec<(Ipv4Addr, Instant)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // All requestors on one thread with one event loop: the load tool must not need a thread per connection.
    let watcher = {
        let (arrivals, stop) = (arrivals.clone(), stop.clone());
        std::thread::spawn(move || -> anyhow::Result<()> {
            // Requestors are other machines in real life; on a test box they can at least yield the CPU.
            if remote_requestors {
                leasewire_server::server::lower_priority();
            }
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut tasks = tokio::task::JoinSet::new();
                for r in 0..requestors {
                    let mut s = tokio::net::TcpStream::connect(tcp).await?;
                    let mut q = Message::new(Op::BootRequest);
                    q.xid = 0x1000 + r as u32;
                    q.options.set_message_type(MessageType::ActiveLeaseQuery);
                    q.options.set(code::PARAMETER_REQUEST_LIST, vec![152, 156]);
                    let mut out = Vec::new();
                    encode_frame(&q, &mut out)?;
                    s.write_all(&out).await?;
                    let (arrivals, stop) = (arrivals.clone(), stop.clone());
                    tasks.spawn(async move {
                        let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 1 << 16]);
                        let mut local = Vec::new();
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            match tokio::time::timeout(Duration::from_millis(200), s.read(&mut chunk)).await {
                                Ok(Ok(0)) | Ok(Err(_)) => break,
                                Ok(Ok(n)) => {
                                    let now = Instant::now();
                                    buf.extend_from_slice(&chunk[..n]);
                                    let mut used = 0;
                                    while let Ok(Some((body, k))) = FrameDecoder::new(65535).decode(&buf[used..]) {
                                        used += k;
                                        if let Ok(m) = Message::decode(body)
                                            && m.message_type() == Some(MessageType::LeaseActive)
                                        {
                                            local.push((m.ciaddr, now));
                                        }
                                    }
                                    buf.drain(..used);
                                }
                                Err(_) => {}
                            }
                        }
                        arrivals.lock().unwrap().extend(local);
                    });
                }
                while tasks.join_next().await.is_some() {}
                anyhow::Ok(())
            })
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let per_thread = (rate as f64 / threads as f64).max(1.0);
    // Per ACK: (at the socket, in the client) in µs.
    let ack_latencies: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let start = Instant::now();
    let mut clients = Vec::new();
    for t in 0..threads {
        let (acks, lat) = (acks.clone(), ack_latencies.clone());
        clients.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let sock = UdpSocket::bind("127.0.0.1:0")?;
            sock.set_read_timeout(Some(Duration::from_millis(500)))?;
            nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimestampns, &true)?;
            let rai = RelayAgentInfoBuilder::new().relay_source_port().build();
            let mut buf = [0u8; 2048];
            let mut out = Vec::new();
            let mut i: u32 = 0;
            while start.elapsed() < Duration::from_secs(seconds) {
                let due = start + Duration::from_secs_f64(i as f64 / per_thread);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                i += 1;
                let xid = (t as u32) << 24 | i;
                let mac = [2, 0xb, t as u8, (i >> 16) as u8, (i >> 8) as u8, i as u8];
                let mut m = Message::new(Op::BootRequest);
                m.xid = xid;
                m.giaddr = Ipv4Addr::LOCALHOST;
                m.set_hardware_address(1, &mac);
                m.options.set_message_type(MessageType::Discover);
                m.options.set(code::RELAY_AGENT_INFO, rai.clone());
                out.clear();
                m.encode(&mut out)?;
                sock.send_to(&out, udp)?;
                let Ok(n) = sock.recv(&mut buf) else { continue };
                let Ok(offer) = Message::decode(&buf[..n]) else { continue };
                m.options.set_message_type(MessageType::Request);
                m.options.set_ip(code::SERVER_IDENTIFIER, *udp.ip());
                m.options.set_ip(code::REQUESTED_IP, offer.yiaddr);
                out.clear();
                m.encode(&mut out)?;
                let (sent, sent_wall) = (Instant::now(), std::time::SystemTime::now());
                sock.send_to(&out, udp)?;
                let Ok((n, arrived)) = recv_stamped(&sock, &mut buf) else { continue };
                let now = Instant::now();
                if let Ok(ack) = Message::decode(&buf[..n])
                    && ack.message_type() == Some(MessageType::Ack)
                {
                    acks.lock().unwrap().insert(ack.yiaddr, now);
                    let at_socket = arrived.duration_since(sent_wall).unwrap_or_default().as_micros() as u64;
                    lat.lock().unwrap().push((at_socket, now.duration_since(sent).as_micros() as u64));
                }
            }
            Ok(())
        }));
    }
    for c in clients {
        c.join().map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    }
    let achieved = acks.lock().unwrap().len() as f64 / start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    watcher.join().map_err(|_| anyhow::anyhow!("watcher thread panicked"))??;
    let acks = acks.lock().unwrap();
    let mut delivery: Vec<i64> = arrivals
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(ip, at)| {
            let ack = acks.get(ip)?;
            Some(if at >= ack {
                at.duration_since(*ack).as_micros() as i64
            } else {
                -(ack.duration_since(*at).as_micros() as i64)
            })
        })
        .collect();
    delivery.sort_unstable();
    let pct =
        |v: &[i64], p: f64| v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1))).copied().unwrap_or(0);
    let summary = |pick: fn(&(u64, u64)) -> u64| {
        let mut v: Vec<i64> = ack_latencies.lock().unwrap().iter().map(|x| pick(x) as i64).collect();
        v.sort_unstable();
        let mean = v.iter().sum::<i64>() / (v.len() as i64).max(1);
        format!("p50 {} µs p99 {} µs mean {mean} µs", pct(&v, 0.5), pct(&v, 0.99))
    };
    println!(
        "{requestors} requestor(s), {achieved:.0} ACKs/s: ACK latency at the socket {}, in the client {}; delivery after ACK p50 {} µs p99 {} µs ({} arrivals)",
        summary(|x| x.0),
        summary(|x| x.1),
        pct(&delivery, 0.5),
        pct(&delivery, 0.99),
        delivery.len()
    );
    Ok(())
}

/// Receive a datagram with the kernel's receive timestamp (SO_TIMESTAMPNS, wall clock): when the reply reached
/// the socket, whenever this thread gets to run. The load generator shares the machine with the server and
/// the requestors, so its own scheduling delay would otherwise count as the server's; a client on another
/// machine sees the socket's time.
fn recv_stamped(sock: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, std::time::SystemTime)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    use std::os::fd::AsRawFd;
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let msg = recvmsg::<SockaddrStorage>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty())?;
    let mut at = std::time::SystemTime::now();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmTimestampns(ts) = c {
            at = std::time::UNIX_EPOCH + Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32);
        }
    }
    Ok((msg.bytes, at))
}
