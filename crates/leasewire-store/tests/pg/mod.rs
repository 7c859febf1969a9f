//! A throwaway PostgreSQL cluster for tests: the real server from Debian's `postgresql` package.
//!
//! `initdb` runs once per machine and user into a template directory (0.6 s); each test process copies it
//! and starts its own `postgres` on a private Unix socket directory (0.1 s), shared by every test of the
//! process. The server is stopped and its directory removed when the test process exits, however it exits:
//! a small shell keeper waits for its stdin to close (the test process's end of a pipe), then stops
//! PostgreSQL (fast shutdown) and deletes the directory.
//!
//! PostgreSQL refuses to run as root; as root (CI) it runs as the `postgres` user.
//!
//! Without the PostgreSQL binaries the tests fail with a message saying what to install: they never pass
//! silently.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The port number in the socket file name (`.s.PGSQL.<port>`); no TCP listener is opened.
const PORT: u16 = 5432;

/// How a cluster listens on TCP: its certificate and key (PEM) for TLS, and the CA of client certificates.
type TcpSetup<'a> = (Option<(&'a str, &'a str)>, Option<&'a str>);

/// A running cluster.
pub struct Cluster {
    /// The Unix socket directory.
    pub socket_dir: PathBuf,
    /// The TCP port on 127.0.0.1, for a cluster started with [`Cluster::start_tcp`].
    pub tcp_port: Option<u16>,
    bin: PathBuf,
    /// The keeper's stdin: dropped (closed) when the process exits, which stops the cluster.
    _keeper_stdin: std::process::ChildStdin,
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// The directory holding `initdb` and `postgres`: `$LEASEWIRE_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LEASEWIRE_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries not found (no /usr/lib/postgresql/<version>/bin/postgres and \
             LEASEWIRE_PG_BIN unset): these tests need a real PostgreSQL. Install it with \
             `apt-get install postgresql` (scripts/test does, as root)."
        ),
    }
}

/// Run `program args` as the user that owns the cluster (`postgres` when we are root).
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn chown_to_owner(path: &Path) {
    if is_root() {
        let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(path).status().unwrap().success();
        assert!(ok, "chown {} to postgres failed", path.display());
    }
}

/// The initialised template data directory, created once (atomically: built aside, then renamed).
fn template(bin: &Path) -> PathBuf {
    let uid = if is_root() { "root".to_string() } else { std::env::var("USER").unwrap_or_default() };
    let version = bin.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or("x").to_string();
    let dir = std::env::temp_dir().join(format!("leasewire-pg-template-{version}-{uid}"));
    if dir.join("PG_VERSION").exists() {
        return dir;
    }
    let build = std::env::temp_dir().join(format!("leasewire-pg-build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&build);
    std::fs::create_dir_all(&build).unwrap();
    chown_to_owner(&build);
    let out = as_owner(&bin.join("initdb"))
        .args(["-D"])
        .arg(build.join("data"))
        .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"])
        .output()
        .expect("run initdb");
    assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
    // Whoever renames first wins; a loser uses the winner's template.
    if std::fs::rename(build.join("data"), &dir).is_err() {
        assert!(dir.join("PG_VERSION").exists(), "cannot create the template {}", dir.display());
    }
    let _ = std::fs::remove_dir_all(&build);
    dir
}

impl Cluster {
    /// The cluster of this test process, started on first use.
    pub fn get() -> &'static Cluster {
        static CLUSTER: OnceLock<Cluster> = OnceLock::new();
        CLUSTER.get_or_init(|| Cluster::start(None))
    }

    /// A cluster of its own that also listens on TCP 127.0.0.1 (a free port). With `tls` (certificate chain
    /// and key, PEM) it has TLS on and accepts TCP connections only over TLS (`hostssl` in pg_hba.conf);
    /// without, TCP in the clear only. With `client_ca` as well (PEM), a TCP client must present a
    /// certificate that CA signed, named after the user (`cert` authentication).
    pub fn start_tcp(tls: Option<(&str, &str)>, client_ca: Option<&str>) -> Cluster {
        // The port is one the kernel had free a moment before; another process may take it first. Then
        // PostgreSQL cannot bind, and a new port is tried.
        for _ in 0..2 {
            match Cluster::try_start(Some((tls, client_ca))) {
                Ok(c) => return c,
                Err(log) if log.contains("could not bind") => continue,
                Err(log) => panic!("PostgreSQL did not start; its log:\n{log}"),
            }
        }
        Cluster::start(Some((tls, client_ca)))
    }

    fn start(tcp: Option<TcpSetup<'_>>) -> Cluster {
        Cluster::try_start(tcp).unwrap_or_else(|log| panic!("PostgreSQL did not start; its log:\n{log}"))
    }

    /// Start a cluster; its log when it did not come up within 30 s or could not bind its port.
    fn try_start(tcp: Option<TcpSetup<'_>>) -> Result<Cluster, String> {
        let bin = bin_dir();
        let template = template(&bin);
        let base = tempfile::Builder::new().prefix("leasewire-pg-").tempdir().unwrap().keep();
        let data = base.join("data");
        let ok = Command::new("cp").arg("-a").arg(&template).arg(&data).status().unwrap().success();
        assert!(ok, "copying the PostgreSQL template failed");
        let socket_dir = base.join("sock");
        std::fs::create_dir_all(&socket_dir).unwrap();
        let mut extra = vec!["-c".to_string(), "listen_addresses=".to_string()];
        let tcp_port = tcp.map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
        if let Some((tls, client_ca)) = tcp {
            extra = vec!["-c".into(), "listen_addresses=127.0.0.1".into()];
            let hba = match (tls, client_ca) {
                (Some((cert, key)), client_ca) => {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::write(data.join("server.crt"), cert).unwrap();
                    std::fs::write(data.join("server.key"), key).unwrap();
                    std::fs::set_permissions(data.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
                    let files = ["-c", "ssl=on", "-c", "ssl_cert_file=server.crt", "-c", "ssl_key_file=server.key"];
                    extra.extend(files.map(String::from));
                    match client_ca {
                        Some(ca) => {
                            std::fs::write(data.join("client-ca.crt"), ca).unwrap();
                            extra.extend(["-c", "ssl_ca_file=client-ca.crt"].map(String::from));
                            "hostssl all all 127.0.0.1/32 cert\n"
                        }
                        None => "hostssl all all 127.0.0.1/32 trust\n",
                    }
                }
                (None, _) => "hostnossl all all 127.0.0.1/32 trust\n",
            };
            std::fs::write(data.join("pg_hba.conf"), format!("local all all trust\n{hba}")).unwrap();
        }
        chown_to_owner(&base);
        // The keeper: postgres in the background; when stdin closes (this process exited), a fast shutdown
        // and the directory goes.
        let script = r#"
            bin=$1 base=$2 port=$3
            shift 3
            "$bin/postgres" -D "$base/data" -k "$base/sock" -p "$port" -c max_connections=200 \
                -c shared_buffers=32MB "$@" >"$base/log" 2>&1 &
            pg=$!
            cat >/dev/null
            # pg_ctl stops whichever postmaster runs on the directory now (a test may have restarted it).
            "$bin/pg_ctl" -D "$base/data" -m fast -w stop >/dev/null 2>&1 || kill -INT "$pg"
            wait "$pg"
            rm -rf "$base"
        "#;
        let mut keeper = as_owner(Path::new("/bin/sh"))
            .args(["-c", script, "keeper"])
            .arg(&bin)
            .arg(&base)
            .arg(tcp_port.unwrap_or(PORT).to_string())
            .args(&extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the PostgreSQL keeper");
        let stdin = keeper.stdin.take().unwrap();
        // Reaped by nobody: it outlives us on purpose, for the shutdown.
        std::mem::forget(keeper);
        let c = Cluster { socket_dir, tcp_port, bin, _keeper_stdin: stdin };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(c.bin.join("pg_isready"))
                .arg("-h")
                .arg(&c.socket_dir)
                .args(["-p", &c.port().to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            let log = std::fs::read_to_string(base.join("log")).unwrap_or_default();
            if log.contains("could not bind") || Instant::now() > deadline {
                // Dropping `c` closes the keeper's stdin: it stops PostgreSQL and removes the directory.
                return Err(log);
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        Ok(c)
    }

    /// Restart PostgreSQL with the same settings (a fast shutdown: every client connection is cut); returns
    /// once it accepts connections again. The keeper still stops it when the test process ends.
    pub fn restart(&self) {
        let base = self.socket_dir.parent().expect("the socket directory is inside the cluster's");
        let out = as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(base.join("data"))
            .arg("-l")
            .arg(base.join("log.restarted"))
            .args(["-m", "fast", "-w", "-t", "60", "restart"])
            .stdin(Stdio::null())
            .output()
            .expect("run pg_ctl restart");
        assert!(out.status.success(), "pg_ctl restart failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Run SQL as the superuser on database `db`.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port().to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-qAt",
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql {sql:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A new, empty database; its connection string.
    pub fn new_database(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("lw_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// The connection string of database `name` (over the Unix socket).
    pub fn url(&self, name: &str) -> String {
        format!("host={} port={} user=postgres dbname={name}", self.socket_dir.display(), self.port())
    }

    /// The connection string of database `name` over TCP to `host` (a cluster from [`Cluster::start_tcp`]).
    pub fn tcp_url(&self, host: &str, name: &str) -> String {
        let port = self.tcp_port.expect("a cluster started with start_tcp");
        format!("host={host} port={port} user=postgres dbname={name}")
    }

    /// The port: the socket file's name, and the TCP port when listening on TCP.
    fn port(&self) -> u16 {
        self.tcp_port.unwrap_or(PORT)
    }
}
