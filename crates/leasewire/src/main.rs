//! The `leasewire` command line.
//!
//! Only wiring, parsing and printing live here; the protocol, store, server and requestor are libraries.

use clap::{Parser, Subcommand};

/// DHCPv4 Leasequery, Bulk Leasequery and Active Leasequery (RFC 4388, RFC 6926, RFC 7724).
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode DHCPv4 messages (hex, one per line or argument) and print them.
    Decode {
        /// Hex-encoded messages; read from standard input when none is given.
        hex: Vec<String>,
        /// The input is TCP framing (2-octet length prefix) rather than bare datagrams.
        #[arg(long)]
        framed: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Decode { hex, framed } => decode::run(hex, framed),
    }
}

mod decode;
