//! The `leasewire` command line.
//!
//! Only wiring, parsing and printing live here; the protocol, store, server and requestor are libraries.

use clap::{Parser, Subcommand, ValueEnum};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

mod args;
mod bench;
mod bench_history;
mod bulk;
mod ctl;
mod decode;
mod demo;
mod history;
mod lab_certs;
mod logs;
mod query;
mod serve;
mod watch;

/// DHCPv4 Leasequery, Bulk Leasequery and Active Leasequery (RFC 4388, RFC 6926, RFC 7724).
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, after_help = LOG_HELP)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "LEASEWIRE_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// What `--help` says about logging.
const LOG_HELP: &str = "\
Logging: standard error, filtered by LEASEWIRE_LOG (tracing's env-filter syntax; default `info`), e.g.
  LEASEWIRE_LOG=info                             the default: start-up, warnings, errors, the lease log
  LEASEWIRE_LOG=info,leasewire::lease=off        everything but the lease log
  LEASEWIRE_LOG=warn,leasewire::lease=info       only the lease log, warnings and errors
  LEASEWIRE_LOG=info,leasewire_server=debug      also per-packet decisions (verbose)
The lease log (target leasewire::lease) is one INFO line per committed change, e.g.
  DHCPACK 10.1.2.3 to aa:bb:cc:dd:ee:ff client-id 01:aa:.. via 10.1.0.1 circuit-id \"port-3\" remote-id .. lease 3600 s
and DHCPRELEASE, DHCPDECLINE, EXPIRE, FREE and RESET lines; --log-format json gives the same values as keys.
`[log] leases = false` in the configuration turns it off.";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the DHCPv4 server.
    Serve {
        /// The configuration file (see examples/lab.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Administer a running server over its control socket (`[control] socket`, default control.sock in the
    /// data directory): status, reload, look at and free leases, show the configuration in effect.
    Ctl {
        /// The server's configuration file (it says where the control socket is).
        #[arg(long, short)]
        config: PathBuf,
        /// The control socket, overriding what the configuration says.
        #[arg(long)]
        socket: Option<PathBuf>,
        #[command(subcommand)]
        command: CtlCommand,
    },
    /// Validate a configuration file, say what it enables, and exit.
    CheckConfig {
        /// The configuration file.
        #[arg(long, short, required_unless_present = "path")]
        config: Option<PathBuf>,
        /// The configuration file (the older positional form of --config).
        #[arg(conflicts_with = "config", hide = true)]
        path: Option<PathBuf>,
    },
    /// Ask a server about one binding (RFC 4388 leasequery over UDP; RFC 6148 for --remote-id).
    #[command(group(clap::ArgGroup::new("key").required(true).args(["ip", "mac", "client_id", "remote_id"])))]
    Query {
        #[command(flatten)]
        target: TargetArgs,
        /// Query by IP address.
        #[arg(long)]
        ip: Option<Ipv4Addr>,
        /// The requestor address the reply goes to (default: this host's address towards the server).
        #[arg(long)]
        giaddr: Option<Ipv4Addr>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Give up after this long (retransmitting after 4, 8, 16 ... s); e.g. 10s, 1m, or seconds.
        #[arg(long, default_value = "10s", value_parser = args::duration)]
        timeout: std::time::Duration,
    },
    /// Fetch many bindings at once (RFC 6926 Bulk Leasequery over TCP).
    #[command(group(clap::ArgGroup::new("bulk_key").args(["all", "mac", "client_id", "relay_id", "remote_id"])))]
    Bulk {
        #[command(flatten)]
        target: TargetArgs,
        /// All configured addresses (the default).
        #[arg(long)]
        all: bool,
        /// Bindings behind a relay agent identifier (RFC 6925, hex).
        #[arg(long)]
        relay_id: Option<String>,
        /// Only bindings changed at or after this time (server clock): RFC 3339 or seconds since 1970.
        #[arg(long, value_parser = args::time)]
        since: Option<u32>,
        /// Only bindings changed at or before this time: RFC 3339 or seconds since 1970.
        #[arg(long, value_parser = args::time)]
        until: Option<u32>,
        #[command(flatten)]
        states: StateArgs,
        /// One JSON object per binding.
        #[arg(long, conflicts_with = "count")]
        json: bool,
        /// Print only the summary (count, duration, rate, status).
        #[arg(long)]
        count: bool,
        /// BULK_LQ_DATA_TIMEOUT: give up after this long without data; e.g. 300s, 5m, or seconds.
        #[arg(long, default_value = "5m", value_parser = args::duration)]
        timeout: std::time::Duration,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Keep a live replica of servers' bindings (RFC 7724 Active Leasequery, seeded and gap-filled by Bulk
    /// Leasequery) and print every change.
    Watch {
        /// A server to watch: `ADDR`, `ADDR:PORT`, `NAME` or `NAME:PORT` (port 67 by default); repeat for a
        /// failover pair.
        #[arg(long = "server", required = true, value_parser = args::server)]
        servers: Vec<std::net::SocketAddrV4>,
        #[command(flatten)]
        states: StateArgs,
        #[command(flatten)]
        tls: TlsArgs,
        /// Keep the replica in this SQLite file (created mode 0600), so a restart catches up instead of
        /// starting over.
        #[arg(long)]
        db: Option<PathBuf>,
        /// One JSON object per change on standard output (the table is for people).
        #[arg(long)]
        json: bool,
        /// Serve `/metrics` and `/bindings?ip=ADDR|mac=MAC` from the replica on this address.
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Wait this long before reconnecting (RFC 7724: ACTIVE_LQ_IDLE_TIMEOUT, 60s).
        #[arg(long, default_value = "60s", value_parser = args::duration)]
        retry_interval: std::time::Duration,
        /// Give a connection up after this long without any message (RFC 7724: ACTIVE_LQ_RCV_TIMEOUT, 120s).
        #[arg(long, default_value = "120s", value_parser = args::duration)]
        rcv_timeout: std::time::Duration,
        /// With --db, keep every change as history this long (`leasewire history`, `/history`); 0: keep none.
        #[arg(long, default_value = "30d", value_parser = args::duration)]
        history_retention: std::time::Duration,
        /// With --db: how many history events may wait in memory (about 150 bytes each) behind a write of
        /// the file before reading the streams pauses until it is written.
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
        history_max_unwritten: u64,
    },
    /// Who held an address at a time, or what a client or relay held: from the history a `watch --db` keeps.
    #[command(group(clap::ArgGroup::new("history_key").required(true).args(["ip", "mac", "client_id", "remote_id", "relay_id"])))]
    History {
        /// The replica file of `leasewire watch --db` (read-only; the watcher may be running).
        #[arg(long)]
        db: PathBuf,
        /// An address: who held it.
        #[arg(long)]
        ip: Option<Ipv4Addr>,
        /// A hardware address: which addresses it held.
        #[arg(long)]
        mac: Option<String>,
        /// A client identifier (option 61), hex.
        #[arg(long)]
        client_id: Option<String>,
        /// A relay agent remote-id (option 82 sub-option 2), hex: the holdings behind it.
        #[arg(long)]
        remote_id: Option<String>,
        /// A relay-id (option 82 sub-option 12), hex.
        #[arg(long)]
        relay_id: Option<String>,
        /// The binding in force at this time (RFC 3339, seconds since 1970, `now`, `2h ago`, `yesterday 14:05`).
        #[arg(long, conflicts_with_all = ["from", "to"])]
        at: Option<String>,
        /// List intervals from this time (default: the beginning).
        #[arg(long)]
        from: Option<String>,
        /// List intervals up to this time (default: now).
        #[arg(long)]
        to: Option<String>,
        /// One JSON object per interval.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// CSV with a header line.
        #[arg(long)]
        csv: bool,
    },
    /// Try it all on this machine: a server on loopback with simulated relayed clients, and a requestor
    /// watching it over mutual TLS; prints the live changes and checks server and replica agree at the end.
    Demo {
        /// Simulated clients.
        #[arg(long, default_value_t = 300)]
        clients: u32,
        /// Client actions (DORA, renew, release, walk away) per second.
        #[arg(long, default_value_t = 20)]
        rate: u32,
        /// Lease time (short, so expiries show up); e.g. 30s, 2m, or seconds.
        #[arg(long, default_value = "30s", value_parser = args::duration)]
        lease_time: std::time::Duration,
        /// Stop after this long (default: at Ctrl-C).
        #[arg(long, value_parser = args::duration)]
        duration: Option<std::time::Duration>,
        /// Print changes as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Write a lab CA (certificate and key), a server certificate for 127.0.0.1/localhost and a requestor
    /// certificate (PEM) to try Active Leasequery's mutual TLS (examples/lab-tls.toml reads them from ./certs);
    /// with --requestor, issue one more requestor certificate from the CA already there. Not for production.
    LabCerts {
        /// Directory to write into.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Issue only a requestor certificate with this name (DNS name, IP address or URI, also the subject
        /// CN) from the CA in --out, as NAME.pem and NAME-key.pem.
        #[arg(long, value_name = "NAME")]
        requestor: Option<String>,
    },
    /// Load tools for benchmarks (populate a store, generate leasequery load, echo).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Write the manual pages (roff): leasewire(1) to standard output, or with --out one page per subcommand
    /// too (leasewire-serve(1), ...) into a directory.
    Man {
        /// Directory to write every page into (e.g. for /usr/share/man/man1).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print a shell completion script (e.g. `leasewire completions bash > /etc/bash_completion.d/leasewire`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Decode DHCPv4 messages (hex, one per line or argument) and print them.
    Decode {
        /// Hex-encoded messages; read from standard input when none is given.
        hex: Vec<String>,
        /// The input is TCP framing (2-octet length prefix) rather than bare datagrams.
        #[arg(long)]
        framed: bool,
    },
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// Version, uptime, configuration file and hash, bindings by subnet and state, connections by kind.
    Status {
        /// The result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Read the configuration file again and apply it; exits non-zero (saying why) when it is refused.
    Reload,
    /// Look at and free bindings.
    #[command(subcommand)]
    Leases(LeasesCommand),
    /// The configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum LeasesCommand {
    /// Bindings matching every filter given, ascending by address, a page at a time.
    List {
        /// A dhcp-state: ACTIVE, RELEASED, EXPIRED, ABANDONED, RESET, AVAILABLE, ...
        #[arg(long)]
        state: Option<String>,
        /// Addresses inside this prefix, e.g. 10.0.0.0/24.
        #[arg(long)]
        subnet: Option<String>,
        /// Relay agent identifier (option 82 sub-option 12), hex.
        #[arg(long)]
        relay_id: Option<String>,
        /// Relay agent remote-id (option 82 sub-option 2), hex.
        #[arg(long)]
        remote_id: Option<String>,
        /// The first octets of the hardware address, e.g. 02:00:00.
        #[arg(long)]
        mac_prefix: Option<String>,
        /// At most this many (default 1000).
        #[arg(long)]
        limit: Option<usize>,
        /// Start after this address (the next page: what the previous one said).
        #[arg(long)]
        after: Option<Ipv4Addr>,
        /// One JSON object per binding (the schema of docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// The bindings of an address, a MAC or a client-id (hex).
    Get {
        /// 10.0.0.5, aa:bb:cc:dd:ee:ff, or a client identifier such as 01:aa:bb:cc:dd:ee:ff.
        key: String,
        /// One JSON object per binding.
        #[arg(long)]
        json: bool,
    },
    /// Free an address: its binding goes to RESET (durably), and Active Leasequery requestors hear of it.
    Delete {
        /// The address.
        ip: Ipv4Addr,
        /// Print the binding as committed, as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// The configuration in effect (defaults filled in), as TOML.
    Show,
}

/// The server and the client keys `query` and `bulk` share.
#[derive(Debug, clap::Args)]
struct TargetArgs {
    /// The server: `ADDR`, `ADDR:PORT`, `NAME` or `NAME:PORT` (port 67 by default).
    #[arg(long, value_parser = args::server)]
    server: std::net::SocketAddrV4,
    /// By hardware address, e.g. 02:00:00:00:00:01.
    #[arg(long)]
    mac: Option<String>,
    /// Hardware type for --mac (1 = Ethernet).
    #[arg(long, default_value_t = 1)]
    htype: u8,
    /// By client identifier (option 61), hex.
    #[arg(long)]
    client_id: Option<String>,
    /// By relay agent remote-id (option 82 sub-option 2), hex.
    #[arg(long)]
    remote_id: Option<String>,
}

/// Which states `bulk` and `watch` print.
#[derive(Debug, clap::Args)]
struct StateArgs {
    /// Print only bindings in these states (comma-separated dhcp-state names, e.g. `active,released`, or
    /// `all`). Default: every state but AVAILABLE (free addresses) in the table, every state in --json.
    #[arg(long, value_delimiter = ',', value_parser = state_filter)]
    state: Vec<Option<leasewire_proto::DhcpState>>,
}

impl StateArgs {
    /// The filter, given whether the output is JSON (the contract for scripts: everything by default).
    fn filter(&self, json: bool) -> watch::States {
        if self.state.contains(&None) || (self.state.is_empty() && json) {
            watch::States::All
        } else if self.state.is_empty() {
            watch::States::Bound
        } else {
            watch::States::Only(self.state.iter().flatten().copied().collect())
        }
    }
}

/// A dhcp-state name (any case), or `all` (None).
fn state_filter(s: &str) -> Result<Option<leasewire_proto::DhcpState>, String> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    leasewire_proto::DhcpState::from_name(&s.to_ascii_uppercase()).map(Some).ok_or_else(|| {
        format!("{s}: not a dhcp-state (active, available, released, expired, abandoned, reset, remote, transitioning, or all)")
    })
}

/// Secure mode for requestor connections: DHCPTLS, then TLS with a client certificate (RFC 7724 §7.2).
#[derive(Debug, clap::Args)]
struct TlsArgs {
    /// Our client certificate (PEM); with it, connections are secure (e.g. certs/requestor.pem from
    /// `leasewire lab-certs`).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (PEM).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// The CA that signed the server's certificate (PEM).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the address connected to).
    #[arg(long)]
    tls_name: Option<String>,
}

impl TlsArgs {
    fn load(self) -> anyhow::Result<Option<std::sync::Arc<leasewire_requestor::tls::ClientTls>>> {
        watch::client_tls(self.tls_cert, self.tls_key, self.ca, self.tls_name.as_deref())
    }
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Fill a data directory's lease store (or a PostgreSQL database) with active bindings.
    Populate {
        /// The data directory (as in the server's config).
        #[arg(long, required_unless_present = "postgres", conflicts_with = "postgres")]
        data_dir: Option<PathBuf>,
        /// A PostgreSQL store's URL (as in `store = { kind = "postgres", url = ... }`) instead of a data
        /// directory: the bindings are written as server `bench`'s.
        #[arg(long)]
        postgres: Option<String>,
        /// First address.
        #[arg(long)]
        first: Ipv4Addr,
        /// Number of bindings.
        #[arg(long)]
        count: u32,
        /// Lease time of the bindings, seconds.
        #[arg(long, default_value_t = 86_400)]
        lease_time: u32,
    },
    /// Send leasequeries by IP for `count` addresses from `first`, `window` outstanding, for `seconds`.
    Leasequery {
        /// The server, `ADDR` or `ADDR:PORT`.
        #[arg(long)]
        server: String,
        /// Our address (the reply goes to giaddr:67).
        #[arg(long)]
        giaddr: Ipv4Addr,
        /// First address to ask about.
        #[arg(long)]
        first: Ipv4Addr,
        /// How many addresses to cycle through.
        #[arg(long)]
        count: u32,
        /// Seconds to run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Queries outstanding at once.
        #[arg(long, default_value_t = 64)]
        window: usize,
    },
    /// Time an Active Leasequery catch-up from `since` (seconds since 1970, server clock).
    CatchUp {
        /// The server, `ADDR` or `ADDR:PORT`.
        #[arg(long)]
        server: String,
        /// query-start-time.
        #[arg(long)]
        since: u32,
    },
    /// Active Leasequery latency under DHCP load: ACK latency and change delivery to N requestors.
    ActiveLatency {
        /// The server's TCP leasequery address.
        #[arg(long)]
        tcp: String,
        /// The server's UDP DHCP address (relayed with RFC 8357, so no port 67 is needed here).
        #[arg(long)]
        dhcp: String,
        /// Active connections watching.
        #[arg(long, default_value_t = 1)]
        requestors: usize,
        /// Target ACKs per second.
        #[arg(long, default_value_t = 5000)]
        rate: u32,
        /// Seconds of load.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Client threads.
        #[arg(long, default_value_t = 16)]
        threads: usize,
        /// Run the watching requestors at nice 10, standing in for requestors on other machines.
        #[arg(long)]
        remote_requestors: bool,
    },
    /// The requestor's history under load: ingest rate, bytes per event, "who held it at T" latency.
    History {
        /// A new replica file to fill.
        #[arg(long)]
        db: PathBuf,
        /// Addresses.
        #[arg(long, default_value_t = 1_000_000)]
        addresses: u32,
        /// Changes to apply.
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// Random `--ip --at` queries to time.
        #[arg(long, default_value_t = 10_000)]
        queries: u32,
    },
    /// Relayed DHCP clients against a running server: new leases (DORA), renewals and releases at a chosen
    /// rate, from many clients through several sockets; prints DORA/s, drops and latency. The lab's clients
    /// and the DORA benchmark's load.
    Dora {
        /// The server: `ADDR`, `ADDR:PORT`, `NAME` or `NAME:PORT`.
        #[arg(long, value_parser = args::server)]
        server: std::net::SocketAddrV4,
        /// The relay address clients come from (giaddr; the server's subnet for them). Replies come back to
        /// this host's sockets through RFC 8357, so no port 67 is needed.
        #[arg(long, default_value = "127.0.0.1")]
        giaddr: Ipv4Addr,
        /// Operations (new leases, renewals, releases) per second; 0: as fast as the server answers.
        #[arg(long, default_value_t = 100)]
        rate: u64,
        /// How long; e.g. 10s, 5m, or seconds.
        #[arg(long, default_value = "10s", value_parser = args::duration)]
        duration: std::time::Duration,
        /// Distinct clients (MAC addresses).
        #[arg(long, default_value_t = 1000)]
        clients: u32,
        /// Percent of operations that renew a bound client's lease.
        #[arg(long, default_value_t = 0)]
        renew: u8,
        /// Percent of operations that release a bound client's lease.
        #[arg(long, default_value_t = 0)]
        release: u8,
        /// Sockets, one thread each.
        #[arg(long, default_value_t = 2)]
        sockets: usize,
        /// Exchanges outstanding per socket.
        #[arg(long, default_value_t = 256)]
        window: usize,
    },
    /// A DHCP server that answers without work (OFFER for DISCOVER, ACK for REQUEST, no state): the ceiling
    /// of `bench dora` itself.
    DhcpEcho {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// Sockets (SO_REUSEPORT), one thread each.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Answer leasequeries instantly (measures the generator's ceiling).
    Echo {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
    },
}

/// Logs go to standard error, filtered by `server.log-filter`, else `LEASEWIRE_LOG` (see the `--help` text). In
/// the human format the lease log (target `leasewire::lease`) prints only its line, which already says
/// everything its fields do; the JSON format gives the fields as keys.
fn init_logs(format: LogFormat) -> std::sync::Arc<logs::Logs> {
    logs::init(matches!(format, LogFormat::Json))
}

/// Any failure is one line on standard error, `error: ` and the causes joined by `: `, and exit status 1 —
/// no backtrace, nothing an operator has to scroll through.
fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The causes joined by ": ", each once (library errors often already say their cause).
            let mut line = e.to_string();
            for cause in e.chain().skip(1).map(|c| c.to_string()) {
                if !line.contains(&cause) {
                    line = format!("{line}: {cause}");
                }
            }
            eprintln!("error: {}", line.replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Write to standard output; a reader that went away (`| head`) is not an error.
fn write_stdout(f: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match f(&mut out).and_then(|()| std::io::Write::flush(&mut out)) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let logs = init_logs(cli.log_format);
            serve::run(&config, logs)
        }
        Command::CheckConfig { config, path } => {
            serve::check_config(&config.or(path).expect("clap requires --config or the positional path"))
        }
        Command::Ctl { config, socket, command } => {
            use leasewire_server::control::protocol::Command as C;
            let (command, json) = match command {
                CtlCommand::Status { json } => (C::Status, json),
                CtlCommand::Reload => (C::Reload, false),
                CtlCommand::Leases(LeasesCommand::List {
                    state,
                    subnet,
                    relay_id,
                    remote_id,
                    mac_prefix,
                    limit,
                    after,
                    json,
                }) => (ctl::list_query(state, subnet, relay_id, remote_id, mac_prefix, limit, after), json),
                CtlCommand::Leases(LeasesCommand::Get { key, json }) => (C::LeasesGet { key }, json),
                CtlCommand::Leases(LeasesCommand::Delete { ip, json }) => (C::LeasesDelete { ip }, json),
                CtlCommand::Config(ConfigCommand::Show) => (C::ConfigShow, false),
            };
            ctl::run(ctl::Args { config, socket, command, json })
        }
        Command::Decode { hex, framed } => decode::run(hex, framed),
        Command::Man { out } => {
            use clap::CommandFactory;
            match out {
                Some(dir) => {
                    std::fs::create_dir_all(&dir)?;
                    clap_mangen::generate_to(Cli::command(), &dir)?;
                    Ok(())
                }
                None => write_stdout(|w| clap_mangen::Man::new(Cli::command()).render(w)),
            }
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            write_stdout(|w| {
                clap_complete::generate(shell, &mut Cli::command(), "leasewire", w);
                Ok(())
            })
        }
        Command::Bulk {
            target: TargetArgs { server, mac, htype, client_id, remote_id },
            all: _,
            relay_id,
            since,
            until,
            states,
            json,
            count,
            timeout,
            tls,
        } => {
            use leasewire_proto::session::BulkKey;
            let key = match (mac, client_id, relay_id, remote_id) {
                (Some(m), ..) => BulkKey::Mac { htype, addr: query::parse_hex("--mac", &m)? },
                (_, Some(c), ..) => BulkKey::ClientId(query::parse_hex("--client-id", &c)?),
                (_, _, Some(r), _) => BulkKey::RelayId(query::parse_hex("--relay-id", &r)?),
                (.., Some(r)) => BulkKey::RemoteId(query::parse_hex("--remote-id", &r)?),
                _ => BulkKey::All,
            };
            let target = leasewire_requestor::conn::Target { addr: std::net::SocketAddr::V4(server), tls: tls.load()? };
            let mode = if count {
                bulk::Output::Count
            } else if json {
                bulk::Output::Json
            } else {
                bulk::Output::Table
            };
            bulk::run(&target, key, since, until, mode, states.filter(json), timeout)
        }
        Command::History { db, ip, mac, client_id, remote_id, relay_id, at, from, to, json, csv } => {
            use leasewire_requestor::history::Key;
            let key = match (ip, mac, client_id, remote_id, relay_id) {
                (Some(ip), ..) => Key::Ip(ip),
                (_, Some(m), ..) => Key::Mac(query::parse_hex("--mac", &m)?),
                (_, _, Some(c), ..) => Key::ClientId(query::parse_hex("--client-id", &c)?),
                (.., Some(r), _) => Key::RemoteId(query::parse_hex("--remote-id", &r)?),
                (.., Some(r)) => Key::RelayId(query::parse_hex("--relay-id", &r)?),
                _ => unreachable!("clap requires one key"),
            };
            let format = match (json, csv) {
                (true, _) => history::Format::Json,
                (_, true) => history::Format::Csv,
                _ => history::Format::Table,
            };
            history::run(&db, key, at.as_deref(), from.as_deref(), to.as_deref(), format)
        }
        Command::Watch {
            servers,
            states,
            tls,
            db,
            json,
            http,
            retry_interval,
            rcv_timeout,
            history_retention,
            history_max_unwritten,
        } => {
            init_logs(cli.log_format);
            let tls = tls.load()?;
            let targets = servers
                .iter()
                .map(|s| leasewire_requestor::conn::Target { addr: std::net::SocketAddr::V4(*s), tls: tls.clone() })
                .collect();
            // RFC 7724 §5.3 defaults; shorter is allowed (labs, tests) but worth a word.
            if retry_interval < leasewire_proto::session::ACTIVE_LQ_IDLE_TIMEOUT {
                tracing::warn!("--retry-interval below RFC 7724's ACTIVE_LQ_IDLE_TIMEOUT (60s): reconnects more often");
            }
            if rcv_timeout < leasewire_requestor::active::ACTIVE_LQ_RCV_TIMEOUT {
                tracing::warn!(
                    "--rcv-timeout below RFC 7724's ACTIVE_LQ_RCV_TIMEOUT (120s): idle servers may be dropped"
                );
            }
            if http.is_some_and(|a| !a.ip().is_loopback()) {
                tracing::warn!("--http serves client data without authentication on a non-loopback address");
            }
            anyhow::ensure!(!retry_interval.is_zero(), "--retry-interval must be more than 0");
            let mut opts = leasewire_requestor::watch::WatchOptions {
                retry_interval,
                max_unwritten_events: usize::try_from(history_max_unwritten).unwrap_or(usize::MAX),
                ..Default::default()
            };
            opts.active.rcv_timeout = rcv_timeout;
            let history = (!history_retention.is_zero()).then_some(history_retention);
            watch::run(watch::Args { targets, db, json, states: states.filter(json), http, opts, history })
        }
        Command::Demo { clients, rate, lease_time, duration, json } => {
            init_logs(cli.log_format);
            let lease_time = u32::try_from(lease_time.as_secs()).unwrap_or(u32::MAX).max(1);
            demo::run(demo::Args { clients, rate, lease_time, duration, json })
        }
        Command::LabCerts { out, requestor: Some(name) } => {
            let (cert, key) = crate::lab_certs::write_requestor(&out, &name)?;
            println!("wrote {} + {} (requestor, {name})", cert.display(), key.display());
            Ok(())
        }
        Command::LabCerts { out, requestor: None } => {
            let f = crate::lab_certs::write(&out)?;
            println!(
                "wrote {} + {} (CA), {} + {} (server, 127.0.0.1 and localhost), {} + {} (requestor, requestor.lab)",
                f.ca.display(),
                f.ca_key.display(),
                f.server_cert.display(),
                f.server_key.display(),
                f.requestor_cert.display(),
                f.requestor_key.display()
            );
            Ok(())
        }
        Command::Bench(b) => match b {
            BenchCommand::Populate { data_dir, postgres, first, count, lease_time } => {
                bench::populate(data_dir.as_deref(), postgres.as_deref(), first, count, lease_time)
            }
            BenchCommand::Leasequery { server, giaddr, first, count, seconds, window } => bench::leasequery(
                args::server(&server).map_err(anyhow::Error::msg)?,
                giaddr,
                first,
                count,
                std::time::Duration::from_secs(seconds),
                window,
            ),
            BenchCommand::Echo { listen } => bench::echo(listen),
            BenchCommand::History { db, addresses, events, queries } => {
                bench_history::run(&db, addresses, events, queries)
            }
            BenchCommand::Dora { server, giaddr, rate, duration, clients, renew, release, sockets, window } => {
                bench::dora(bench::DoraArgs {
                    server,
                    giaddr,
                    rate,
                    duration,
                    clients,
                    sockets,
                    window,
                    renew,
                    release,
                })
            }
            BenchCommand::DhcpEcho { listen, threads } => bench::dhcp_echo(listen, threads),
            BenchCommand::CatchUp { server, since } => {
                bench::catch_up(args::server(&server).map_err(anyhow::Error::msg)?, since)
            }
            BenchCommand::ActiveLatency { tcp, dhcp, requestors, rate, seconds, threads, remote_requestors } => {
                bench::active_latency(
                    args::server(&tcp).map_err(anyhow::Error::msg)?,
                    args::server(&dhcp).map_err(anyhow::Error::msg)?,
                    requestors,
                    rate,
                    seconds,
                    threads,
                    remote_requestors,
                )
            }
        },
        Command::Query {
            target: TargetArgs { server, mac, htype, client_id, remote_id },
            ip,
            giaddr,
            json,
            timeout,
        } => {
            use leasewire_requestor::udp_query::Query as Q;
            let query = match (ip, mac, client_id, remote_id) {
                (Some(ip), ..) => Q::Ip(ip),
                (_, Some(m), ..) => Q::Hardware(htype, query::parse_hex("--mac", &m)?),
                (_, _, Some(c), _) => Q::ClientId(query::parse_hex("--client-id", &c)?),
                (.., Some(r)) => Q::RemoteId(query::parse_hex("--remote-id", &r)?),
                _ => unreachable!("clap requires one key"),
            };
            query::run(query::Args { server, query, giaddr, json, timeout })
        }
    }
}
