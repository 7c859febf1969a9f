//! `leasewire bench dora`: relayed DHCP clients at a chosen rate — new leases (DISCOVER/OFFER/REQUEST/ACK),
//! renewals and releases — against a running server; the lab's client population and the DORA benchmark's
//! load generator in one. `leasewire bench dhcp-echo` answers it without doing any work, to show the
//! generator's own ceiling.
//!
//! Fast because it does little per packet: messages are written into fixed templates (no encoder), replies
//! are read at fixed offsets, and datagrams go in batches with `sendmmsg`/`recvmmsg`, several sockets each on
//! its own thread. Replies come back to each socket's own port through the RFC 8357 relay-source-port
//! sub-option (leasewire and Kea honour it), so nothing here needs port 67.

use anyhow::Context;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrIn, recvmmsg, sendmmsg};
use std::io::{IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Datagrams per `sendmmsg`/`recvmmsg`.
const BATCH: usize = 64;
/// A request that got no answer within this long counts as dropped.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
const MAGIC: [u8; 4] = [99, 130, 83, 99];
const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;
const NAK: u8 = 6;
const RELEASE: u8 = 7;

/// What `bench dora` was asked to do.
#[derive(Debug, Clone)]
pub struct DoraArgs {
    pub server: SocketAddrV4,
    pub giaddr: Ipv4Addr,
    /// Operations per second in total (0: as fast as the window allows).
    pub rate: u64,
    pub duration: Duration,
    /// Distinct clients (MACs), cycled through.
    pub clients: u32,
    /// Sockets (one thread each).
    pub sockets: usize,
    /// Exchanges outstanding per socket.
    pub window: usize,
    /// Percent of operations that renew a bound client's lease.
    pub renew: u8,
    /// Percent of operations that release a bound client's lease.
    pub release: u8,
}

/// A DHCP request from a relay, written at fixed offsets.
fn request(
    buf: &mut Vec<u8>,
    kind: u8,
    xid: u32,
    mac: [u8; 6],
    giaddr: Ipv4Addr,
    ciaddr: Ipv4Addr,
    ask: Option<(Ipv4Addr, Ipv4Addr)>,
) {
    buf.clear();
    buf.resize(236, 0);
    buf[0] = 1; // BOOTREQUEST
    buf[1] = 1; // Ethernet
    buf[2] = 6;
    buf[3] = 1; // hops: relayed
    buf[4..8].copy_from_slice(&xid.to_be_bytes());
    buf[12..16].copy_from_slice(&ciaddr.octets());
    buf[24..28].copy_from_slice(&giaddr.octets());
    buf[28..34].copy_from_slice(&mac);
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&[53, 1, kind]);
    if let Some((ip, server_id)) = ask {
        buf.extend_from_slice(&[50, 4]);
        buf.extend_from_slice(&ip.octets());
        buf.extend_from_slice(&[54, 4]);
        buf.extend_from_slice(&server_id.octets());
    }
    // Option 82: circuit-id (the client's port), remote-id, and RFC 8357 relay-source-port (19, empty).
    buf.extend_from_slice(&[82, 14, 1, 2, mac[4], mac[5], 2, 6]);
    buf.extend_from_slice(&mac);
    buf.extend_from_slice(&[19, 0, 255]);
}

/// A reply's (xid, message type, yiaddr, server identifier), read in place.
fn reply(b: &[u8]) -> Option<(u32, u8, Ipv4Addr, Option<Ipv4Addr>)> {
    if b.len() < 244 || b[0] != 2 || b[236..240] != MAGIC {
        return None;
    }
    let xid = u32::from_be_bytes(b[4..8].try_into().ok()?);
    let yiaddr = Ipv4Addr::new(b[16], b[17], b[18], b[19]);
    let (mut kind, mut sid, mut i) = (0, None, 240);
    while i < b.len() {
        match b[i] {
            0 => i += 1,
            255 => break,
            code => {
                let len = *b.get(i + 1)? as usize;
                let v = b.get(i + 2..i + 2 + len)?;
                match (code, len) {
                    (53, 1) => kind = v[0],
                    (54, 4) => sid = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
                    _ => {}
                }
                i += 2 + len;
            }
        }
    }
    Some((xid, kind, yiaddr, sid))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Discovering,
    Requesting,
    Renewing,
}

#[derive(Debug, Clone, Copy)]
struct Client {
    phase: Phase,
    sent: Option<Instant>,
    started: Option<Instant>,
    ip: Ipv4Addr,
    /// Holds a lease (and is in the list renewals and releases pick from).
    bound: bool,
}

/// Counters shared by the socket threads.
#[derive(Default)]
struct Totals {
    dora: AtomicU64,
    renewed: AtomicU64,
    released: AtomicU64,
    nak: AtomicU64,
    dropped: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    /// DORA latency in microseconds, summed (for the mean) and bucketed by powers of two (for p99).
    latency_sum_us: AtomicU64,
    buckets: [AtomicU64; 32],
}

impl Totals {
    fn latency(&self, d: Duration) {
        let us = d.as_micros() as u64;
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        self.buckets[(64 - us.max(1).leading_zeros() as usize).min(31)].fetch_add(1, Ordering::Relaxed);
    }

    /// The upper bound of the bucket holding quantile `q`, in microseconds.
    fn quantile_us(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if total > 0 && seen as f64 >= q * total as f64 {
                return 1 << i;
            }
        }
        0
    }
}

/// Run the clients; print a summary line per second and totals at the end.
pub fn dora(args: DoraArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.sockets > 0 && args.window > 0, "--sockets and --window must be at least 1");
    anyhow::ensure!(u32::from(args.renew) + u32::from(args.release) <= 100, "--renew plus --release is at most 100 %");
    let totals = Arc::new(Totals::default());
    let stop = Arc::new(AtomicBool::new(false));
    let per_socket = (args.clients / args.sockets as u32).max(1);
    let mut threads = Vec::new();
    for t in 0..args.sockets {
        let sock = UdpSocket::bind((args.giaddr, 0)).with_context(|| format!("binding a socket on {}", args.giaddr))?;
        sock.connect(args.server).with_context(|| format!("connecting to {}", args.server))?;
        sock.set_read_timeout(Some(Duration::from_millis(2)))?;
        let (a, totals, stop) = (args.clone(), totals.clone(), stop.clone());
        threads.push(std::thread::spawn(move || run_socket(t as u8, sock, per_socket, &a, &totals, &stop)));
    }
    let start = Instant::now();
    let mut last = (start, 0u64);
    eprintln!(
        "bench dora: {} clients through {} socket(s) from {} to {}, {} for {:?}",
        args.clients,
        args.sockets,
        args.giaddr,
        args.server,
        if args.rate == 0 { "as fast as replies allow".to_string() } else { format!("{} operations/s", args.rate) },
        args.duration
    );
    while start.elapsed() < args.duration {
        std::thread::sleep(Duration::from_secs(1).min(args.duration.saturating_sub(start.elapsed())));
        let now = Instant::now();
        let d = totals.dora.load(Ordering::Relaxed);
        eprintln!(
            "  {:>5.1} s  {:>9.0} DORA/s",
            (now - start).as_secs_f64(),
            (d - last.1) as f64 / (now - last.0).as_secs_f64()
        );
        last = (now, d);
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("a socket thread panicked"))??;
    }
    let secs = start.elapsed().as_secs_f64().min(args.duration.as_secs_f64()).max(1e-9);
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let dora = l(&totals.dora);
    println!(
        "{dora} DORA in {secs:.1} s: {:.0} DORA/s; {} renewed, {} released, {} NAK, {} dropped (no reply in {:?}); \
         {:.0} datagrams/s out, {:.0} in; DORA latency mean {:.0} µs, p99 < {} µs",
        dora as f64 / secs,
        l(&totals.renewed),
        l(&totals.released),
        l(&totals.nak),
        l(&totals.dropped),
        REPLY_TIMEOUT,
        l(&totals.sent) as f64 / secs,
        l(&totals.received) as f64 / secs,
        l(&totals.latency_sum_us) as f64 / dora.max(1) as f64,
        totals.quantile_us(0.99),
    );
    Ok(())
}

/// One socket's clients: `per_socket` of them, MAC 02:T:i (T = socket number), xid = client index.
fn run_socket(t: u8, sock: UdpSocket, n: u32, a: &DoraArgs, totals: &Totals, stop: &AtomicBool) -> anyhow::Result<()> {
    let fd = sock.as_raw_fd();
    let mut clients =
        vec![
            Client { phase: Phase::Idle, sent: None, started: None, ip: Ipv4Addr::UNSPECIFIED, bound: false };
            n as usize
        ];
    let mac = |i: u32| [2, t, (i >> 24) as u8, (i >> 16) as u8, (i >> 8) as u8, i as u8];
    let server_ip = *a.server.ip();
    let rate = a.rate as f64 / a.sockets as f64;
    let (mut tokens, mut last_fill) = (0.0f64, Instant::now());
    let mut next_new = 0u32;
    let mut bound: Vec<u32> = Vec::new();
    let mut in_flight = 0usize;
    // Exchanges in send order, for timeouts: (sent, client).
    let mut pending: std::collections::VecDeque<(Instant, u32)> = std::collections::VecDeque::new();
    let mut out: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(300)).collect();
    let mut inbuf: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; 1500]).collect();
    let mut send_hdr = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    let mut recv_hdr = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    let mut requests: Vec<(u32, Ipv4Addr, Ipv4Addr)> = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(t);
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        // Replies turned into REQUESTs first, then new operations as the rate and the window allow.
        let mut k = 0;
        for (i, ip, sid) in requests.drain(..) {
            let c = &mut clients[i as usize];
            request(&mut out[k], REQUEST, i, mac(i), a.giaddr, Ipv4Addr::UNSPECIFIED, Some((ip, sid)));
            c.phase = Phase::Requesting;
            c.sent = Some(now);
            pending.push_back((now, i));
            k += 1;
        }
        if rate > 0.0 {
            tokens = (tokens + rate * (now - last_fill).as_secs_f64()).min(BATCH as f64 * 4.0);
            last_fill = now;
        }
        while k < BATCH && in_flight < a.window && (rate == 0.0 || tokens >= 1.0) {
            tokens -= 1.0;
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let dice = (seed % 100) as u8;
            if dice < a.renew + a.release && !bound.is_empty() {
                let i = bound.swap_remove((seed >> 8) as usize % bound.len());
                let c = &mut clients[i as usize];
                if !c.bound || c.phase != Phase::Idle {
                    continue; // started over since (the list is cleaned lazily)
                }
                c.bound = false;
                if dice < a.renew {
                    request(&mut out[k], REQUEST, i, mac(i), a.giaddr, c.ip, None);
                    c.phase = Phase::Renewing;
                    c.sent = Some(now);
                    pending.push_back((now, i));
                    in_flight += 1;
                } else {
                    request(&mut out[k], RELEASE, i, mac(i), a.giaddr, c.ip, Some((c.ip, server_ip)));
                    totals.released.fetch_add(1, Ordering::Relaxed);
                }
                k += 1;
                continue;
            }
            // A new lease for the next idle client, round the population (a client that has one starts over:
            // the server gives it the same address).
            let mut tries = 0;
            while clients[next_new as usize].phase != Phase::Idle && tries < n {
                next_new = (next_new + 1) % n;
                tries += 1;
            }
            if tries == n {
                break;
            }
            let i = next_new;
            next_new = (next_new + 1) % n;
            let c = &mut clients[i as usize];
            c.bound = false;
            request(&mut out[k], DISCOVER, i, mac(i), a.giaddr, Ipv4Addr::UNSPECIFIED, None);
            c.phase = Phase::Discovering;
            c.sent = Some(now);
            c.started = Some(now);
            pending.push_back((now, i));
            in_flight += 1;
            k += 1;
        }
        if k > 0 {
            let slices: Vec<[IoSlice<'_>; 1]> = out[..k].iter().map(|b| [IoSlice::new(b)]).collect();
            let addrs = vec![None; k];
            match sendmmsg(fd, &mut send_hdr, &slices, &addrs, [], MsgFlags::empty()) {
                Ok(r) => {
                    totals.sent.fetch_add(r.count() as u64, Ordering::Relaxed);
                }
                Err(nix::errno::Errno::ECONNREFUSED) => {
                    anyhow::bail!("{}: nothing listens there (ICMP port unreachable)", a.server)
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::ENOBUFS) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Replies: wait for the first only when there is nothing to send.
        let flags = if k == 0 && in_flight > 0 { MsgFlags::MSG_WAITFORONE } else { MsgFlags::MSG_DONTWAIT };
        let got: Vec<usize> = {
            let mut slices: Vec<[IoSliceMut<'_>; 1]> = inbuf.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            match recvmmsg(fd, &mut recv_hdr, &mut slices, flags, None) {
                Ok(r) => r.map(|m| m.bytes).collect(),
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => Vec::new(),
                Err(nix::errno::Errno::ECONNREFUSED) => {
                    anyhow::bail!("{}: nothing listens there (ICMP port unreachable)", a.server)
                }
                Err(e) => return Err(e.into()),
            }
        };
        if k == 0 && in_flight == 0 && rate > 0.0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        totals.received.fetch_add(got.len() as u64, Ordering::Relaxed);
        let now = Instant::now();
        for (j, len) in got.into_iter().enumerate() {
            let Some((xid, kind, yiaddr, sid)) = reply(&inbuf[j][..len]) else { continue };
            let Some(c) = clients.get_mut(xid as usize) else { continue };
            match (c.phase, kind) {
                (Phase::Discovering, OFFER) => {
                    requests.push((xid, yiaddr, sid.unwrap_or(server_ip)));
                }
                (Phase::Requesting | Phase::Renewing, ACK) => {
                    if c.phase == Phase::Requesting {
                        totals.dora.fetch_add(1, Ordering::Relaxed);
                        if let Some(s) = c.started {
                            totals.latency(now - s);
                        }
                    } else {
                        totals.renewed.fetch_add(1, Ordering::Relaxed);
                    }
                    c.phase = Phase::Idle;
                    c.sent = None;
                    c.ip = yiaddr;
                    c.bound = true;
                    bound.push(xid);
                    in_flight -= 1;
                }
                (Phase::Requesting | Phase::Renewing, NAK) => {
                    totals.nak.fetch_add(1, Ordering::Relaxed);
                    c.phase = Phase::Idle;
                    c.sent = None;
                    in_flight -= 1;
                }
                _ => {}
            }
        }
        // Timeouts, oldest first; entries whose exchange moved on are skipped.
        while let Some(&(sent, i)) = pending.front() {
            let c = &mut clients[i as usize];
            if c.sent != Some(sent) {
                pending.pop_front();
                continue;
            }
            if now - sent < REPLY_TIMEOUT {
                break;
            }
            pending.pop_front();
            c.phase = Phase::Idle;
            c.sent = None;
            in_flight -= 1;
            totals.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// `bench dhcp-echo`: a DHCP "server" that answers every DISCOVER with an OFFER and every REQUEST with an
/// ACK at once, without state, allocation or storage (the address is derived from the MAC), on `threads`
/// sockets sharing `listen` (SO_REUSEPORT). Replies go to the sender (as RFC 8357 asks).
pub fn dhcp_echo(listen: std::net::SocketAddr, threads: usize) -> anyhow::Result<()> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, bind, setsockopt, socket, sockopt};
    let addr = match listen {
        std::net::SocketAddr::V4(a) => SockaddrIn::from(a),
        std::net::SocketAddr::V6(_) => anyhow::bail!("--listen: an IPv4 address"),
    };
    let mut handles = Vec::new();
    for _ in 0..threads.max(1) {
        let fd = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::empty(), None)?;
        setsockopt(&fd, sockopt::ReusePort, &true)?;
        setsockopt(&fd, sockopt::RcvBuf, &(4 << 20))?;
        bind(fd.as_raw_fd(), &addr).with_context(|| format!("binding {listen}"))?;
        let sock = UdpSocket::from(fd);
        handles.push(std::thread::spawn(move || echo_socket(&sock)));
    }
    eprintln!("bench dhcp-echo: answering on {listen} with {} socket(s)", handles.len());
    for h in handles {
        h.join().map_err(|_| anyhow::anyhow!("an echo thread panicked"))??;
    }
    Ok(())
}

fn echo_socket(sock: &UdpSocket) -> anyhow::Result<()> {
    let fd = sock.as_raw_fd();
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; 1500]).collect();
    let mut recv_hdr = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    let mut send_hdr = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    loop {
        let got: Vec<(usize, Option<SockaddrIn>)> = {
            let mut slices: Vec<[IoSliceMut<'_>; 1]> = bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            match recvmmsg(fd, &mut recv_hdr, &mut slices, MsgFlags::MSG_WAITFORONE, None) {
                Ok(r) => r.map(|m| (m.bytes, m.address)).collect(),
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let mut replies: Vec<(usize, SockaddrIn)> = Vec::with_capacity(got.len());
        for (j, (len, from)) in got.into_iter().enumerate() {
            let b = &mut bufs[j][..len];
            let Some(from) = from else { continue };
            if len < 244 || b[0] != 1 || b[236..240] != MAGIC || b[240] != 53 {
                continue;
            }
            let answer = match b[242] {
                DISCOVER => OFFER,
                REQUEST => ACK,
                _ => continue,
            };
            b[0] = 2;
            b[242] = answer;
            // yiaddr from the MAC: 10.x.y.z.
            let yi = if b[12..16] != [0, 0, 0, 0] { [b[12], b[13], b[14], b[15]] } else { [10, b[31], b[32], b[33]] };
            b[16..20].copy_from_slice(&yi);
            replies.push((j, from));
        }
        if replies.is_empty() {
            continue;
        }
        let slices: Vec<[IoSlice<'_>; 1]> = replies.iter().map(|&(j, _)| [IoSlice::new(&bufs[j][..])]).collect();
        let addrs: Vec<Option<SockaddrIn>> = replies.iter().map(|&(_, a)| Some(a)).collect();
        match sendmmsg(fd, &mut send_hdr, &slices, &addrs, [], MsgFlags::empty()) {
            Ok(_) | Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::ENOBUFS | nix::errno::Errno::ECONNREFUSED) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_dhcp_the_codec_reads() {
        let mut b = Vec::new();
        let (ip, sid, g) = (Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 254));
        request(&mut b, REQUEST, 77, [2, 1, 0, 0, 0, 9], g, Ipv4Addr::UNSPECIFIED, Some((ip, sid)));
        let m = leasewire_proto::Message::decode(&b).unwrap();
        assert_eq!(m.message_type(), Some(leasewire_proto::MessageType::Request));
        assert_eq!((m.xid, m.giaddr, m.hardware_address()), (77, g, &[2, 1, 0, 0, 0, 9][..]));
        assert_eq!(m.options.server_identifier(), Some(sid));
        let rai = m.options.relay_agent_info().unwrap();
        assert!(rai.has_relay_source_port() && rai.remote_id() == Some(&[2, 1, 0, 0, 0, 9][..]));
        // A reply is read at fixed offsets.
        let mut r = leasewire_proto::Message::new(leasewire_proto::Op::BootReply);
        r.xid = 77;
        r.yiaddr = ip;
        r.options.set_message_type(leasewire_proto::MessageType::Ack);
        r.options.set_ip(leasewire_proto::options::code::SERVER_IDENTIFIER, sid);
        let mut bytes = Vec::new();
        r.encode(&mut bytes).unwrap();
        assert_eq!(reply(&bytes), Some((77, ACK, ip, Some(sid))));
    }
}
