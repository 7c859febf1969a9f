//! The `leasewire` command line.
//!
//! Only wiring, parsing and printing live here; the protocol, store, server and requestor are libraries.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

mod decode;
mod serve;

/// DHCPv4 Leasequery, Bulk Leasequery and Active Leasequery (RFC 4388, RFC 6926, RFC 7724).
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "LEASEWIRE_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

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
    /// Validate a configuration file, say what it enables, and exit.
    CheckConfig {
        /// The configuration file.
        config: PathBuf,
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

fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LEASEWIRE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colour only on a terminal: log files and journald get plain text.
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            init_logs(cli.log_format);
            serve::run(&config)
        }
        Command::CheckConfig { config } => serve::check_config(&config),
        Command::Decode { hex, framed } => decode::run(hex, framed),
    }
}
