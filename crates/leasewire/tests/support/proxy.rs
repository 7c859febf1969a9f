//! A TCP proxy on loopback that the test can break: cut every connection now, cut the next connection
//! after some bytes from the server (mid-bulk, mid-catch-up), or refuse connections for a while.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Ctl {
    conns: Mutex<Vec<TcpStream>>,
    /// Cut the next connection once it has carried this many bytes from the server (0: off).
    cut_after: AtomicUsize,
    refuse: AtomicBool,
    /// Hold every byte in both directions (connections stay open: a peer that hangs, or a network that
    /// silently drops everything).
    frozen: AtomicBool,
    accepted: AtomicUsize,
}

pub struct Proxy {
    pub addr: SocketAddr,
    ctl: Arc<Ctl>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let ctl = Arc::new(Ctl::default());
        let c = ctl.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c.refuse.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else { continue };
                // Small request/response exchanges (a database protocol) must not wait on Nagle's algorithm.
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                c.accepted.fetch_add(1, Ordering::SeqCst);
                let limit = c.cut_after.swap(0, Ordering::SeqCst);
                {
                    let mut conns = c.conns.lock().unwrap();
                    conns.retain(|s| s.peer_addr().is_ok());
                    conns.push(client.try_clone().unwrap());
                    conns.push(server.try_clone().unwrap());
                }
                let (c2s_from, c2s_to) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (c1, c2) = (c.clone(), c.clone());
                std::thread::spawn(move || pump(c2s_from, c2s_to, 0, &c1));
                std::thread::spawn(move || pump(server, client, limit, &c2));
            }
        });
        Self { addr, ctl }
    }

    /// Close every open connection, both ways.
    pub fn cut_all(&self) {
        for s in self.ctl.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Cut the next connection after `bytes` bytes from the server.
    pub fn cut_next_after(&self, bytes: usize) {
        self.ctl.cut_after.store(bytes.max(1), Ordering::SeqCst);
    }

    /// Refuse (accept and close at once) new connections while `on`.
    pub fn refuse(&self, on: bool) {
        self.ctl.refuse.store(on, Ordering::SeqCst);
    }

    /// Freeze (hold all traffic, keep connections open) while `on`; unfreezing passes on what was held.
    pub fn freeze(&self, on: bool) {
        self.ctl.frozen.store(on, Ordering::SeqCst);
    }

    /// Connections passed through so far.
    pub fn accepted(&self) -> usize {
        self.ctl.accepted.load(Ordering::SeqCst)
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, limit: usize, ctl: &Ctl) {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0usize;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while ctl.frozen.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let n = if limit > 0 { n.min(limit - total) } else { n };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        total += n;
        if limit > 0 && total >= limit {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
