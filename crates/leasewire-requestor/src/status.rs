//! What a watcher tells its user: [`Report`]s in the order things happened (a change, or a [`Status`] of one
//! server's connections), why a connection ended ([`Failure`], typed, in the library's words), and the
//! per-server summary a [`crate::Watching`] handle gives on demand ([`ServerStatus`]).
//!
//! Its own module so the watcher's engine ([`crate::watch`]), the metrics and the HTTP view all read the same
//! types without importing one another.

use crate::active::ActiveEnd;
use crate::bulk::BulkError;
use crate::conn::ConnError;
use crate::replica::{Gap, Replica, Via};
use leasewire_proto::session::requestor::active::ActiveError;
use leasewire_proto::{Binding, StatusCode};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Something worth telling the operator about one server's connections.
#[derive(Debug, Clone)]
pub enum Status {
    /// The Active query is out (inside TLS when `tls`).
    Streaming {
        /// Secure mode.
        tls: bool,
        /// The query-start-time sent.
        query_start_time: Option<u32>,
    },
    /// The first full Bulk Leasequery finished.
    Seeded {
        /// Bindings it reported.
        bindings: u64,
    },
    /// Catch-up ended with CatchUpComplete.
    CaughtUp,
    /// The server's history did not reach back: a gap to fill (ALQ-7.4.1-13).
    DataMissing(Gap),
    /// A gap was filled by Bulk Leasequery.
    GapFilled {
        /// The gap.
        gap: Gap,
        /// Bindings it reported.
        bindings: u64,
    },
    /// A connection ended or failed; the next try comes after `retry_in`.
    Disconnected {
        /// Why (shared: a report goes to every subscriber).
        reason: Arc<Failure>,
        /// When the next attempt starts.
        retry_in: Duration,
        /// Whether it was the Active stream (else the seed or a gap fill).
        active: bool,
    },
}

/// What the watcher reports, in the order it happened.
#[derive(Debug, Clone)]
pub enum Report {
    /// A binding changed in the replica (duplicates and stale messages are not reported).
    Change {
        /// The server that reported it (`IP:PORT`).
        server: String,
        /// The binding as the replica now has it.
        binding: Binding,
        /// The base-time of the message that brought it.
        base_time: Option<u32>,
        /// Whether it came from the Active stream or a Bulk Leasequery (seed, gap fill).
        via: Via,
    },
    /// A status change of one server's connections.
    Status {
        /// The server.
        server: String,
        /// What happened.
        status: Status,
    },
}

/// Why one of a server's connections ended. The watcher retries after the retry interval whatever the
/// reason; the type is for the user to tell a configuration problem (e.g. [`ConnError::TlsRequired`]) from a
/// passing one.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The first full Bulk Leasequery (RFC 6926 §7.2, optional for a server) failed.
    #[error("bulk seed: {}", seed_reason(.0))]
    Seed(BulkError),
    /// A Bulk Leasequery filling a gap failed.
    #[error("gap fill {}..{}: {error}", gap.from, gap.to)]
    GapFill {
        /// The gap.
        gap: Gap,
        /// What failed.
        error: BulkError,
    },
    /// The Active stream ended.
    #[error("{}", stream_reason(.0))]
    Stream(ActiveEnd),
}

impl Failure {
    /// The connection-level error under it, if it is one (connect, TLS): what a user fixes in configuration.
    pub fn conn_error(&self) -> Option<&ConnError> {
        match self {
            Failure::Seed(BulkError::Conn(e)) | Failure::GapFill { error: BulkError::Conn(e), .. } => Some(e),
            Failure::Stream(ActiveEnd::Conn(e)) => Some(e),
            _ => None,
        }
    }
}

fn stream_reason(end: &ActiveEnd) -> String {
    match end {
        ActiveEnd::Session(ActiveError::Terminated(StatusCode::QueryTerminated)) => {
            "the server ended the query (QueryTerminated)".into()
        }
        ActiveEnd::Session(ActiveError::Terminated(StatusCode::NotAllowed)) => "the server refused \
             DHCPACTIVELEASEQUERY (NotAllowed): it does not offer Active Leasequery (RFC 7724) to this requestor"
            .into(),
        other => other.to_string(),
    }
}

/// The seed is a Bulk Leasequery for all configured addresses (RFC 6926 §7.2; optional for a server): a
/// refusal says which capability the server lacks, not only the status.
fn seed_reason(e: &BulkError) -> String {
    match e {
        BulkError::Refused { status: status @ StatusCode::NotAllowed, message } => {
            format!(
                "the server refuses a Bulk Leasequery for all configured addresses ({status}{}{message}), which \
                 the watcher needs to seed its replica",
                if message.is_empty() { "" } else { ": " }
            )
        }
        other => other.to_string(),
    }
}

/// One watched server, as a [`crate::Watching`] handle (and the browser view's connections panel) sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStatus {
    /// `IP:PORT`.
    pub server: String,
    /// Secure mode (DHCPTLS) on the last Active stream; `None` before one started.
    pub tls: Option<bool>,
    /// The Active stream is up.
    pub streaming: bool,
    /// The first full Bulk Leasequery completed (persisted with the replica).
    pub seeded: bool,
    /// The latest base-time received (server clock).
    pub last_base_time: Option<u32>,
    /// The base-time the next Active query starts from (ALQ-7.3-6).
    pub saved_base_time: Option<u32>,
    /// Seconds between the server sending its latest binding and the requestor applying it (in the
    /// requestor's clock, the server's offset taken out).
    pub lag: Option<i64>,
    /// The server's clock offset (requestor minus server, seconds).
    pub clock_offset: i64,
    /// Catch-ups completed.
    pub catch_ups: u64,
    /// DataMissing statuses received.
    pub data_missing: u64,
    /// Gaps filled by Bulk Leasequery.
    pub gaps_filled: u64,
    /// Gaps still to fill.
    pub open_gaps: usize,
    /// Connections that ended or failed.
    pub disconnects: u64,
    /// Why the last one ended.
    pub last_error: Option<String>,
}

/// What the watcher has seen of each server's connections since it started (the persisted part — seeded,
/// saved base-time, gaps, clock offset — is the replica's). Updated by the merger only.
#[derive(Debug, Default)]
pub(crate) struct Board {
    servers: Mutex<BTreeMap<String, ServerStatus>>,
}

impl Board {
    fn with(&self, server: &str, f: impl FnOnce(&mut ServerStatus)) {
        let mut servers = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        let s = servers
            .entry(server.to_string())
            .or_insert_with(|| ServerStatus { server: server.into(), ..ServerStatus::default() });
        f(s);
    }

    /// A binding with `base_time` (server clock) from `server` arrived at `received` (ours).
    pub(crate) fn observed(&self, server: &str, base_time: u32, received: u32, clock_offset: i64) {
        self.with(server, |l| {
            l.last_base_time = Some(l.last_base_time.map_or(base_time, |t| t.max(base_time)));
            l.lag = Some(i64::from(received) - i64::from(base_time) - clock_offset);
        });
    }

    pub(crate) fn status(&self, server: &str, s: &Status) {
        self.with(server, |l| match s {
            Status::Streaming { tls, .. } => {
                l.tls = Some(*tls);
                l.streaming = true;
            }
            Status::Disconnected { reason, active, .. } => {
                l.streaming &= !*active;
                l.disconnects += 1;
                l.last_error = Some(reason.to_string());
            }
            Status::CaughtUp => l.catch_ups += 1,
            Status::DataMissing(_) => l.data_missing += 1,
            Status::GapFilled { .. } => l.gaps_filled += 1,
            Status::Seeded { .. } => {}
        });
    }

    /// Every server of `replica`, what the replica persists joined with what this board saw.
    pub(crate) fn snapshot(&self, replica: &Replica) -> Vec<ServerStatus> {
        let seen = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        replica
            .servers()
            .iter()
            .map(|sv| {
                let mut s = seen.get(&sv.addr).cloned().unwrap_or_default();
                s.server.clone_from(&sv.addr);
                s.seeded = sv.seeded;
                s.saved_base_time = sv.saved;
                s.clock_offset = sv.clock_offset;
                s.open_gaps = sv.gaps.len();
                s
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_seed_or_stream_names_the_capability_the_server_lacks() {
        let seed = Failure::Seed(BulkError::Refused { status: StatusCode::NotAllowed, message: String::new() });
        let seed = seed.to_string();
        assert!(seed.contains("all configured addresses") && seed.contains("seed"), "{seed}");
        let active = Failure::Stream(ActiveEnd::Session(ActiveError::Terminated(StatusCode::NotAllowed)));
        assert!(active.to_string().contains("does not offer Active Leasequery"), "{active}");
    }

    #[test]
    fn a_connection_error_is_told_apart_for_the_user_to_act_on() {
        let f = Failure::Stream(ActiveEnd::Conn(ConnError::TlsRequired));
        assert!(matches!(f.conn_error(), Some(ConnError::TlsRequired)));
        assert!(!f.to_string().contains("--"), "library errors name no command-line flag: {f}");
        assert!(Failure::Stream(ActiveEnd::Closed).conn_error().is_none());
    }
}
