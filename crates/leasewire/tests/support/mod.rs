//! Test harness: the real `leasewire` binary, network namespaces joined by veth pairs, and a relay-agent
//! client on loopback. Everything started here is killed by PID when its guard drops, even on failure.
#![allow(dead_code)]

/// The lab CA of `leasewire lab-certs`, for tests that need certificates of their own.
#[allow(unused_imports)] // not every test file needs certificates
pub use leasewire_testkit::lab_certs;
pub mod frames;
pub mod proxy;
pub mod relay;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// The binary under test.
pub fn leasewire() -> &'static str {
    env!("CARGO_BIN_EXE_leasewire")
}

/// Panics with a clear message unless we are root (network namespaces and port 67 need it; CI runs as root).
pub fn require_root() {
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "this test needs root (network namespaces); CI runs as root"
    );
}

/// The third-party program `program` from the Debian package `package`, checked to be installed: a test
/// whose peer is missing fails here with a message naming the package to install, never with an obscure
/// `exec ... failed` later. `scripts/test` installs every package named here (as root).
pub fn peer(program: &'static str, package: &str) -> &'static str {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .any(|dir| dir.join(program).is_file());
    assert!(
        found,
        "this test needs `{program}` from the Debian package {package}: apt-get install {package} \
         (scripts/test installs it when run as root)"
    );
    program
}

/// `python3` with the module `module` importable (from `package`, a Debian or pip package), checked as
/// [`peer`] checks programs.
pub fn python_module(module: &str, package: &str) -> &'static str {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "this test needs the Python module {module} ({package}; scripts/test installs it with pip)");
    "python3"
}

/// Run a command, panicking with its output on failure.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free UDP port on 127.0.0.1 (bound and released; good enough for tests that start at once).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the test binds it next).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed (SIGKILL) and reaped on drop unless already waited for.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Self { child, name: name.to_string() }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal by name (TERM, USR1, ...).
    pub fn signal(&self, sig: &str) {
        sh(&["kill", &format!("-{sig}"), &self.pid().to_string()]);
    }

    /// Wait for exit, at most `secs`.
    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        for _ in 0..secs * 20 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not exit within {secs} s", self.name);
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A name unique to this test process, so parallel tests do not collide.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}x{}", std::process::id() % 100_000, SEQ.fetch_add(1, Ordering::Relaxed))
}

/// Network namespaces, deleted (after killing what runs inside) on drop.
pub struct Netns {
    pub names: Vec<String>,
}

impl Netns {
    pub fn new(n: usize) -> Self {
        require_root();
        peer("ip", "iproute2");
        let names: Vec<String> = (0..n).map(|_| unique("lw")).collect();
        for name in &names {
            sh(&["ip", "netns", "add", name]);
            sh(&["ip", "-n", name, "link", "set", "lo", "up"]);
        }
        Self { names }
    }

    /// The lab most real-client tests use: a server's namespace (0, 10.77.0.1/24 on the first interface
    /// returned) and a client's (1, 10.77.0.2/24 on the second), joined by a veth pair.
    pub fn server_and_client() -> (Self, String, String) {
        let ns = Self::new(2);
        let (srv_if, cli_if) = ns.link(0, "10.77.0.1/24", 1, "10.77.0.2/24");
        (ns, srv_if, cli_if)
    }

    /// Join namespace `a` and `b` with a veth pair, addresses in CIDR form; returns the interface names.
    pub fn link(&self, a: usize, a_addr: &str, b: usize, b_addr: &str) -> (String, String) {
        let (ia, ib) = (unique("va"), unique("vb"));
        sh(&["ip", "link", "add", &ia, "type", "veth", "peer", "name", &ib]);
        for (i, ns, addr) in [(&ia, &self.names[a], a_addr), (&ib, &self.names[b], b_addr)] {
            sh(&["ip", "link", "set", i, "netns", ns]);
            sh(&["ip", "-n", ns, "addr", "add", addr, "dev", i]);
            sh(&["ip", "-n", ns, "link", "set", i, "up"]);
        }
        (ia, ib)
    }

    /// A command to run inside namespace `i`.
    pub fn cmd(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.names[i], program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for name in &self.names {
            // Anything still inside dies with its namespace's processes.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// The configuration text every test starts from, built from the parts a test changes: a server on loopback
/// (DHCP on `udp`; or at another address, or on an interface in a namespace), its data directory `@DATA@` for
/// [`Server::start`] to fill in, its subnets, and the Leasequery, metrics or other sections it asks for. One
/// place for the shape, so a test says only what it is about.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    server_id: String,
    listen: Vec<String>,
    server_keys: Vec<String>,
    sections: Vec<String>,
    subnets: Vec<String>,
}

/// A server `name` of several on the PostgreSQL database at `url`, DHCP on `udp`, Active Leasequery without
/// TLS on `tcp`, 127.9.0.0–127.9.15.255 leased for an hour. Every server starts allocating at the same place
/// (`start-at = 0.0`): the worst case for arbitration.
pub fn shared_store_config(name: &str, udp: u16, tcp: u16, url: &str) -> String {
    ServerConfig::new(udp)
        .server_key(&format!(r#"store = {{ kind = "postgres", url = "{url}", name = "{name}", start-at = 0.0 }}"#))
        .active_insecure(tcp)
        .subnet("127.0.0.0/8", "127.9.0.0", "127.9.15.255", "lease-time = 3600")
        .text()
}

impl ServerConfig {
    /// `[server]` with server-id 127.0.0.1, DHCP on 127.0.0.1:`udp`, and no subnet yet.
    pub fn new(udp: u16) -> Self {
        Self::at("127.0.0.1", &format!("127.0.0.1:{udp}"))
    }

    /// `[server]` with server-id `id` and DHCP on `listen` (e.g. `10.77.0.1:67`), and no subnet yet.
    pub fn at(id: &str, listen: &str) -> Self {
        Self {
            server_id: id.to_string(),
            listen: vec![listen.to_string()],
            server_keys: Vec::new(),
            sections: Vec::new(),
            subnets: Vec::new(),
        }
    }

    /// `[server]` with server-id `id`, DHCP on port 67 of the interface `iface` only (as in a namespace).
    pub fn on_interface(id: &str, iface: &str) -> Self {
        let mut c = Self::at(id, "");
        c.listen.clear();
        c.server_key(&format!("interfaces = [\"{iface}\"]"))
    }

    /// Another key of `[server]`, e.g. `store = { ... }`.
    pub fn server_key(mut self, line: &str) -> Self {
        self.server_keys.push(line.to_string());
        self
    }

    /// Bulk Leasequery on 127.0.0.1:`tcp` for requestors in 127.0.0.0/8 ([`bulk_section`]).
    pub fn bulk(self, tcp: u16) -> Self {
        self.section(&bulk_section(tcp))
    }

    /// Bulk Leasequery as [`ServerConfig::bulk`], and Active Leasequery on it without TLS.
    pub fn active_insecure(self, tcp: u16) -> Self {
        self.active_insecure_with(tcp, "")
    }

    /// [`ServerConfig::active_insecure`] with more keys of `[active-leasequery]` (TOML lines).
    pub fn active_insecure_with(self, tcp: u16, keys: &str) -> Self {
        self.bulk(tcp).section(&format!("[active-leasequery]\nenabled = true\ninsecure = true\n{}", keys.trim()))
    }

    /// Active Leasequery in secure mode with these PEM files (the server's certificate and key, the CA of
    /// requestors) and `keys` (more lines of `[active-leasequery.tls]`, e.g. an allow-list; may be empty).
    /// Bulk Leasequery must be set too ([`ServerConfig::bulk`]).
    pub fn active_tls(self, cert: &Path, key: &Path, ca: &Path, keys: &str) -> Self {
        self.section(&active_tls_section(cert, key, ca, keys))
    }

    /// `/metrics` on 127.0.0.1:`port`.
    pub fn metrics(self, port: u16) -> Self {
        self.section(&format!("[metrics]\nlisten = \"127.0.0.1:{port}\""))
    }

    /// Any other section(s), as TOML text.
    pub fn section(mut self, text: &str) -> Self {
        self.sections.push(text.trim().to_string());
        self
    }

    /// A `[[subnet]]` `net` with one pool from `start` to `end`, and `keys` (TOML lines, may be empty).
    pub fn subnet(mut self, net: &str, start: &str, end: &str, keys: &str) -> Self {
        let pool = format!("pools = [{{ start = \"{start}\", end = \"{end}\" }}]");
        self.subnets.push(format!("[[subnet]]\nsubnet = \"{net}\"\n{pool}\n{}", keys.trim()));
        self
    }

    /// The namespace lab's subnet: 10.77.0.0/24 on `iface`, pool 10.77.0.100–199 leased for 600 s, router
    /// 10.77.0.1, and `options` (more lines of its `[subnet.options]`, may be empty).
    pub fn netns_subnet(self, iface: &str, options: &str) -> Self {
        let keys = format!(
            "interface = \"{iface}\"\nlease-time = 600\n[subnet.options]\nrouters = [\"10.77.0.1\"]\n{options}"
        );
        self.subnet("10.77.0.0/24", "10.77.0.100", "10.77.0.199", &keys)
    }

    /// The file's text.
    pub fn text(&self) -> String {
        let listen: Vec<String> = self.listen.iter().map(|l| format!("\"{l}\"")).collect();
        let mut t = format!(
            "[server]\nserver-id = \"{}\"\nlisten = [{}]\ndata-dir = \"@DATA@\"\n",
            self.server_id,
            listen.join(", ")
        );
        for k in &self.server_keys {
            t.push_str(k);
            t.push('\n');
        }
        for s in self.sections.iter().chain(&self.subnets) {
            t.push_str(s);
            t.push('\n');
        }
        t
    }
}

/// `[bulk-leasequery]` on 127.0.0.1:`tcp` for requestors in 127.0.0.0/8, as TOML text.
pub fn bulk_section(tcp: u16) -> String {
    format!("[bulk-leasequery]\nlisten = [\"127.0.0.1:{tcp}\"]\nallow = [\"127.0.0.0/8\"]")
}

/// `[active-leasequery]` in secure mode, as TOML text: see [`ServerConfig::active_tls`].
pub fn active_tls_section(cert: &Path, key: &Path, ca: &Path, keys: &str) -> String {
    format!(
        "[active-leasequery]\nenabled = true\n[active-leasequery.tls]\ncert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\n{}",
        cert.display(),
        key.display(),
        ca.display(),
        keys.trim()
    )
}

/// A running `leasewire serve` with its data directory.
pub struct Server {
    pub proc: Proc,
    pub dir: PathBuf,
    pub config: PathBuf,
    logs: mpsc::Receiver<String>,
}

impl Server {
    /// Write `config` (with `@DATA@` replaced by a fresh data directory inside `dir`) and start the server,
    /// optionally inside a namespace; returns once it logs that it serves.
    pub fn start(dir: &Path, config: &str, ns: Option<(&Netns, usize)>) -> Self {
        let data = dir.join("data");
        let path = dir.join("server.toml");
        std::fs::write(&path, config.replace("@DATA@", data.to_str().unwrap())).unwrap();
        Self::start_with(dir, &path, ns)
    }

    /// Start (or restart) with an existing config file.
    pub fn start_with(dir: &Path, path: &Path, ns: Option<(&Netns, usize)>) -> Self {
        Self::start_wrapped(dir, path, ns, &[])
    }

    /// Start through a wrapper command (e.g. `setpriv ...` to run without root), which execs the server.
    pub fn start_wrapped(dir: &Path, path: &Path, ns: Option<(&Netns, usize)>, wrapper: &[&str]) -> Self {
        Self::start_env(dir, path, ns, wrapper, &[])
    }

    /// [`Server::start_wrapped`] with extra environment variables (e.g. `LEASEWIRE_LOG_FORMAT=json`; a
    /// `LEASEWIRE_LOG` given here replaces the default filter).
    pub fn start_env(
        dir: &Path,
        path: &Path,
        ns: Option<(&Netns, usize)>,
        wrapper: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let program = wrapper.first().copied().unwrap_or(leasewire());
        let mut cmd = match ns {
            Some((n, i)) => n.cmd(i, program),
            None => Command::new(program),
        };
        if !wrapper.is_empty() {
            cmd.args(&wrapper[1..]).arg(leasewire());
        }
        cmd.args(["serve", "--config", path.to_str().unwrap()])
            .env("LEASEWIRE_LOG", "info,leasewire_server=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn("leasewire serve", &mut cmd);
        let stderr = proc.child.stderr.take().unwrap();
        let (tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let s = Self { proc, dir: dir.to_path_buf(), config: path.to_path_buf(), logs };
        s.wait_log("serving DHCP", 30);
        s
    }

    /// Wait for a log line containing `needle`; returns it. Panics after `secs` with what was logged.
    pub fn wait_log(&self, needle: &str, secs: u64) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.logs.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no log line containing {needle:?} within {secs} s; saw:\n{}", seen.join("\n"));
    }

    /// SIGTERM, wait for a clean exit, and return every log line written since the last `wait_log`.
    pub fn stop_with_logs(mut self) -> Vec<String> {
        self.proc.signal("TERM");
        let status = self.proc.wait_exit(30);
        assert!(status.success(), "server exited with {status}");
        // The reader thread ends at EOF, which follows the exit.
        let mut lines = Vec::new();
        while let Ok(l) = self.logs.recv_timeout(Duration::from_secs(5)) {
            lines.push(l);
        }
        lines
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) -> PathBuf {
        self.proc.signal("TERM");
        let status = self.proc.wait_exit(30);
        assert!(status.success(), "server exited with {status}");
        self.dir.join("data")
    }

    /// The lease database (open only once the server has stopped).
    pub fn db_path(dir: &Path) -> PathBuf {
        dir.join("data").join("leases.sqlite3")
    }
}

/// Open a stopped server's store.
pub fn open_store(dir: &Path) -> leasewire_store::SqliteStore {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32;
    leasewire_store::SqliteStore::open(Server::db_path(dir), leasewire_store::OpenOptions::new(now))
        .expect("open store")
}

/// HTTP GET on loopback (for /metrics), body only. A refused connection is retried for up to 10 s: a process
/// just spawned may not have bound its HTTP listener yet (seen under load with `leasewire watch --http`).
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut s = loop {
        match std::net::TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("GET http://{addr}{path}: {e}"),
        }
    };
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

/// The value of a Prometheus sample line starting with `prefix` (0 when absent).
pub fn metric(body: &str, prefix: &str) -> f64 {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

pub const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A small seeded generator (xorshift) for randomised tests: a failing seed replays exactly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform enough below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// Real DHCP clients (dhclient, udhcpc, dhcrelay): their output, line by line.

/// Spawn a client and collect its output lines (stdout and stderr).
pub fn spawn_logged(name: &str, mut cmd: Command) -> (Proc, mpsc::Receiver<String>) {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut p = Proc::spawn(name, &mut cmd);
    let (tx, rx) = mpsc::channel();
    for out in [
        Box::new(p.child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(p.child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    (p, rx)
}

/// Lines up to and including the first containing `needle`.
pub fn lines_until(rx: &mpsc::Receiver<String>, needle: &str, secs: u64) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => {
                let done = l.contains(needle);
                seen.push(l);
                if done {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line containing {needle:?} in {secs} s; saw:\n{}", seen.join("\n"));
}

pub fn bound_ip(line: &str) -> Ipv4Addr {
    line.split_whitespace().find_map(|w| w.parse().ok()).unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// The first line containing `needle`.
pub fn wait_line(rx: &mpsc::Receiver<String>, needle: &str, secs: u64) -> String {
    lines_until(rx, needle, secs).pop().expect("lines_until returns the matching line last")
}

/// A server on `iface` in a network namespace (10.77.0.1, [`ServerConfig::netns_subnet`]), for the real
/// clients; `options` are more lines of the subnet's `[subnet.options]` after its router.
pub fn netns_config(iface: &str, options: &str) -> String {
    ServerConfig::on_interface("10.77.0.1", iface).netns_subnet(iface, options).text()
}

/// Three namespaces for a client behind a relay: the server (0, 10.77.0.1) — the relay (1, 10.77.0.2 upstream
/// on `relay_up`, 10.88.0.1 downstream on `relay_down`) — the client (2, 10.88.0.2 on `cli_if`); the server
/// routes 10.88.0.0/24 back through the relay.
pub struct RelayedNetns {
    pub ns: Netns,
    pub relay_up: String,
    pub relay_down: String,
    pub cli_if: String,
}

impl RelayedNetns {
    pub fn new() -> Self {
        let ns = Netns::new(3);
        let (_srv_if, relay_up) = ns.link(0, "10.77.0.1/24", 1, "10.77.0.2/24");
        let (relay_down, cli_if) = ns.link(1, "10.88.0.1/24", 2, "10.88.0.2/24");
        sh(&["ip", "-n", &ns.names[0], "route", "add", "10.88.0.0/24", "via", "10.77.0.2"]);
        Self { ns, relay_up, relay_down, cli_if }
    }

    /// ISC dhcrelay in the relay's namespace, adding option 82 (`-a`: its circuit-id is the downstream
    /// interface's name) and forwarding to 10.77.0.1; returns once it listens. Killed when dropped.
    pub fn start_dhcrelay(&self) -> Proc {
        let mut relay = self.ns.cmd(1, peer("dhcrelay", "isc-dhcp-relay"));
        relay.args(["-d", "-4", "-a", "-id", &self.relay_down, "-iu", &self.relay_up, "10.77.0.1"]);
        let (proc, out) = spawn_logged("dhcrelay", relay);
        lines_until(&out, "Sending on", 10);
        proc
    }
}
