//! `leasewire ctl`: administer a running server over its control socket (docs/operations.md).

use anyhow::Context;
use leasewire_requestor::json;
use leasewire_server::config::Config;
use leasewire_server::control::protocol::{
    Command, ConfigText, Deleted, Lease, LeaseList, ListQuery, Reloaded, Request, Response, Status,
};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// What to ask, and how to print the answer.
#[derive(Debug)]
pub struct Args {
    /// The server's configuration file (where the socket is).
    pub config: PathBuf,
    /// The socket, overriding the configuration.
    pub socket: Option<PathBuf>,
    /// The request.
    pub command: Command,
    /// JSON output.
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let socket = match args.socket {
        Some(s) => s,
        None => socket_of(&args.config)?,
    };
    let command = args.command;
    let label = command.label();
    let response = exchange(&socket, &Request::new(command.clone()))?;
    let mut out = std::io::stdout().lock();
    if args.json && matches!(command, Command::Status | Command::Reload | Command::ConfigShow) {
        let result = response.into_result::<serde_json::Value>().map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
        writeln!(out, "{result}")?;
        return Ok(());
    }
    let fail = |e: String| anyhow::anyhow!("{label}: {e}");
    match command {
        Command::Status => print_status(&mut out, &response.into_result::<Status>().map_err(fail)?)?,
        Command::Reload => {
            let r = response.into_result::<Reloaded>().map_err(fail)?;
            let list = |v: &[String]| if v.is_empty() { "nothing".to_string() } else { v.join(", ") };
            writeln!(out, "reloaded; changed: {}", list(&r.changed))?;
            if !r.needs_restart.is_empty() {
                writeln!(out, "changed but needs a restart (old values kept): {}", r.needs_restart.join(", "))?;
            }
        }
        Command::LeasesList(_) | Command::LeasesGet { .. } => {
            let list = response.into_result::<LeaseList>().map_err(fail)?;
            print_leases(&mut out, &list.leases, args.json)?;
            if let Some(after) = list.next_after {
                eprintln!("(more: add --after {after})");
            }
            if list.leases.is_empty() && matches!(command, Command::LeasesGet { .. }) {
                anyhow::bail!("no binding");
            }
        }
        Command::LeasesDelete { .. } => {
            let d = response.into_result::<Deleted>().map_err(fail)?;
            if args.json {
                print_leases(&mut out, std::slice::from_ref(&d.lease), true)?;
            } else {
                writeln!(
                    out,
                    "{} is now {} (durable; Active Leasequery requestors were told)",
                    d.lease.ip, d.lease.state
                )?;
            }
        }
        Command::ConfigShow => write!(out, "{}", response.into_result::<ConfigText>().map_err(fail)?.toml)?,
    }
    Ok(())
}

/// One request, one response line.
fn exchange(socket: &Path, request: &Request) -> anyhow::Result<Response> {
    let mut s = UnixStream::connect(socket).with_context(|| {
        format!("cannot connect to the control socket {} (is the server running?)", socket.display())
    })?;
    // A reload validates the whole file and reads TLS files; anything longer is a stuck server.
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    // A server that refuses the connection answers and closes without reading: its answer is still there
    // to read when the write fails.
    let written = s.write_all(&line);
    let mut reply = String::new();
    let read = BufReader::new(&s).read_line(&mut reply);
    if reply.is_empty() {
        written.with_context(|| format!("writing to {}", socket.display()))?;
        read.with_context(|| format!("reading from {}", socket.display()))?;
        anyhow::bail!("the server closed the control connection without answering");
    }
    let response: Response =
        serde_json::from_str(&reply).with_context(|| format!("the server's answer is not a response: {reply}"))?;
    Ok(response)
}

/// The control socket a configuration file names. A file that does not validate (the reason to run `ctl
/// reload` may be to hear why) is read loosely for `[control] socket` and `[server] data-dir`.
fn socket_of(config: &Path) -> anyhow::Result<PathBuf> {
    if let Ok(c) = Config::load(config) {
        return c.control_socket().ok_or_else(|| {
            anyhow::anyhow!("{}: no control socket (set [control] socket, or server.data-dir)", config.display())
        });
    }
    let text = std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let value: toml::Table = text.parse().map_err(|e| {
        anyhow::anyhow!("{}: does not parse, so the control socket is unknown (give --socket): {e}", config.display())
    })?;
    let dir = config.parent().unwrap_or(Path::new("."));
    let get = |section: &str, key: &str| value.get(section)?.get(key)?.as_str().map(|s| dir.join(s));
    get("control", "socket")
        .or_else(|| get("server", "data-dir").map(|d| d.join(leasewire_server::config::CONTROL_SOCKET)))
        .ok_or_else(|| anyhow::anyhow!("{}: no control socket (give --socket)", config.display()))
}

fn print_status(out: &mut impl Write, s: &Status) -> std::io::Result<()> {
    writeln!(
        out,
        "leasewire {}, up {}",
        s.version,
        humantime::format_duration(std::time::Duration::from_secs(s.uptime_secs))
    )?;
    if let Some(f) = &s.config_file {
        writeln!(out, "config {f} (sha256 {})", s.config_sha256.as_deref().unwrap_or("unknown"))?;
    }
    writeln!(out, "{:<20} {:>10}  bindings by state", "subnet", "pool")?;
    for n in &s.subnets {
        let states: Vec<String> = n.bindings.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(out, "{:<20} {:>10}  {}", n.subnet, n.pool_size, states.join(", "))?;
    }
    let conns: Vec<String> = s.connections.iter().map(|(k, v)| format!("{k} {v}")).collect();
    writeln!(out, "connections: {}", conns.join(", "))
}

fn print_leases(out: &mut impl Write, leases: &[Lease], as_json: bool) -> std::io::Result<()> {
    if as_json {
        for l in leases {
            match l.to_binding() {
                Some(b) => out.write_all(json::binding_line(&b, &json::Source::default()).as_bytes())?,
                None => writeln!(out, "{}", serde_json::to_string(l).unwrap_or_default())?,
            }
        }
        return Ok(());
    }
    let hex_or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    writeln!(
        out,
        "{:<15} {:<13} {:<17} {:<20} {:>10} {:<18} REMOTE-ID",
        "IP", "STATE", "MAC", "CLIENT-ID", "EXPIRES-IN", "SUBNET"
    )?;
    let now = leasewire_server::clock::unix_now();
    for l in leases {
        let expires = l.expires_at.map_or_else(|| "-".to_string(), |e| format!("{}s", i64::from(e) - i64::from(now)));
        let mac = if l.mac.is_empty() { "-".to_string() } else { l.mac.clone() };
        writeln!(
            out,
            "{:<15} {:<13} {:<17} {:<20} {:>10} {:<18} {}",
            l.ip,
            l.state,
            mac,
            hex_or_dash(&l.client_id),
            expires,
            l.subnet,
            hex_or_dash(&l.remote_id)
        )?;
    }
    Ok(())
}

/// `leases list`'s filters from the command line.
pub fn list_query(
    state: Option<String>,
    subnet: Option<String>,
    relay_id: Option<String>,
    remote_id: Option<String>,
    mac_prefix: Option<String>,
    limit: Option<usize>,
    after: Option<std::net::Ipv4Addr>,
) -> Command {
    Command::LeasesList(ListQuery { state, subnet, relay_id, remote_id, mac_prefix, limit, after })
}
