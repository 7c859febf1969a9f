//! The crate's entry point: [`Watcher::builder`] sets up a watcher of one or more servers, [`WatcherBuilder::spawn`]
//! starts it on the current Tokio runtime, and the [`Watching`] handle it returns gives the changes as they
//! come, lookups in the replica, each server's status, and a graceful [`Watching::stop`].
//!
//! The engine itself (seed, stream, catch-up, gap fill, one merger) is [`crate::watch`]; this module only
//! owns what a user holds.

use crate::conn::Target;
#[cfg(feature = "metrics")]
use crate::metrics::WatchMetrics;
use crate::replica::{Replica, ReplicaError};
use crate::status::{Board, Report, ServerStatus};
use crate::watch::{Outputs, WatchOptions};
use leasewire_proto::Binding;
use std::net::Ipv4Addr;
#[cfg(feature = "sqlite")]
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

/// Why a watcher could not start or did not end cleanly.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The replica file could not be opened, read or written.
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    /// The watcher's task was cancelled (its runtime shut down) before it finished. A panic in it is resumed
    /// in the caller instead.
    #[error("the watcher's task ended abnormally")]
    Task(#[source] tokio::task::JoinError),
}

/// How many reports a subscriber may fall behind before it is told it lagged.
const SUBSCRIBER_CAPACITY: usize = 4096;

/// A requestor that keeps a replica of servers' bindings exact (RFC 7724 §7): see [`Watcher::builder`].
#[derive(Debug)]
pub struct Watcher;

impl Watcher {
    /// A watcher of `servers` (their Leasequery TCP addresses, plain or secure), with RFC 7724's timers, an
    /// in-memory replica, and no history until told otherwise.
    pub fn builder(servers: impl IntoIterator<Item = Target>) -> WatcherBuilder {
        WatcherBuilder {
            servers: servers.into_iter().collect(),
            options: WatchOptions::default(),
            replica: None,
            #[cfg(feature = "sqlite")]
            file: None,
            #[cfg(feature = "sqlite")]
            history: None,
            reports: None,
            subscriber_capacity: SUBSCRIBER_CAPACITY,
        }
    }
}

/// Settings of a watcher before it starts; [`WatcherBuilder::spawn`] starts it.
#[derive(Debug)]
#[must_use = "a builder does nothing until spawned"]
pub struct WatcherBuilder {
    servers: Vec<Target>,
    options: WatchOptions,
    replica: Option<Replica>,
    #[cfg(feature = "sqlite")]
    file: Option<PathBuf>,
    #[cfg(feature = "sqlite")]
    history: Option<Duration>,
    reports: Option<mpsc::Sender<Report>>,
    subscriber_capacity: usize,
}

impl WatcherBuilder {
    /// All the timers at once.
    pub fn options(mut self, options: WatchOptions) -> Self {
        self.options = options;
        self
    }

    /// How long to wait before reconnecting (RFC 7724's ACTIVE_LQ_IDLE_TIMEOUT, 60 s, by default; ALQ-7.1-2).
    pub fn retry_interval(mut self, d: Duration) -> Self {
        self.options.retry_interval = d;
        self
    }

    /// ACTIVE_LQ_RCV_TIMEOUT: an Active connection silent this long is dropped (120 s by default, ALQ-7.4-4).
    pub fn rcv_timeout(mut self, d: Duration) -> Self {
        self.options.active.rcv_timeout = d;
        self
    }

    /// Start from this replica (one loaded or filled elsewhere) instead of an empty one; it takes the place
    /// of a [`WatcherBuilder::replica_file`] (a file replica is opened with `Replica::open`).
    pub fn replica(mut self, replica: Replica) -> Self {
        self.replica = Some(replica);
        self
    }

    /// Persist the replica in this SQLite file (created 0600 if missing): a restarted watcher catches up from
    /// the saved base-times instead of seeding again.
    #[cfg(feature = "sqlite")]
    pub fn replica_file(mut self, path: impl AsRef<Path>) -> Self {
        self.file = Some(path.as_ref().to_path_buf());
        self
    }

    /// Keep every change in the replica file's history for `retention` (`None`: keep none). Needs
    /// [`WatcherBuilder::replica_file`].
    #[cfg(feature = "sqlite")]
    pub fn history(mut self, retention: Option<Duration>) -> Self {
        self.history = retention;
        self
    }

    /// Also send every report to `reports`, losslessly and in order: the watcher waits for this reader
    /// (a reader that stops reading still lets [`Watching::stop`] stop). [`Watching::subscribe`] is the
    /// lossy alternative that never holds the watcher up.
    pub fn reports(mut self, reports: mpsc::Sender<Report>) -> Self {
        self.reports = Some(reports);
        self
    }

    /// How many reports a [`Watching::subscribe`]r may fall behind before it lags (4096 by default).
    pub fn subscriber_capacity(mut self, n: usize) -> Self {
        self.subscriber_capacity = n.max(1);
        self
    }

    /// Open the replica (its file, if one was given: a blocking open) and start watching on the current Tokio
    /// runtime. Panics outside one, as `tokio::spawn` does.
    pub fn spawn(self) -> Result<Watching, WatchError> {
        let names: Vec<String> = self.servers.iter().map(|t| t.addr.to_string()).collect();
        #[cfg(feature = "sqlite")]
        let history_file = self.file.clone().filter(|_| self.history.is_some());
        let replica = match self.replica {
            Some(r) => r,
            #[cfg(feature = "sqlite")]
            None if self.file.is_some() => {
                let mut r = Replica::open(self.file.as_deref().unwrap_or(Path::new("")), &names)?;
                r.set_history(self.history);
                r
            }
            None => Replica::in_memory(&names),
        };
        let replica = Arc::new(Mutex::new(replica));
        let board = Arc::new(Board::default());
        let subscribers = broadcast::channel(self.subscriber_capacity).0;
        #[cfg(feature = "metrics")]
        let metrics = Arc::new(WatchMetrics::new());
        let out = Outputs {
            reports: self.reports,
            subscribers: subscribers.clone(),
            board: board.clone(),
            #[cfg(feature = "metrics")]
            metrics: metrics.clone(),
        };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(crate::watch::run(self.servers, replica.clone(), self.options, stopped, out));
        Ok(Watching {
            replica,
            board,
            subscribers,
            #[cfg(feature = "metrics")]
            metrics,
            #[cfg(feature = "sqlite")]
            history_file,
            stop,
            task: Some(task),
        })
    }
}

/// A running watcher. Dropping it stops the watcher without waiting for the last flush; [`Watching::stop`]
/// waits for it.
#[derive(Debug)]
pub struct Watching {
    replica: Arc<Mutex<Replica>>,
    board: Arc<Board>,
    subscribers: broadcast::Sender<Report>,
    #[cfg(feature = "metrics")]
    metrics: Arc<WatchMetrics>,
    #[cfg(feature = "sqlite")]
    history_file: Option<PathBuf>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), ReplicaError>>>,
}

impl Watching {
    /// Every report from now on, changes and statuses, in order. A subscriber that falls more than the
    /// subscriber capacity behind gets `RecvError::Lagged` (and should look at the replica again); it never
    /// holds the watcher up.
    pub fn subscribe(&self) -> broadcast::Receiver<Report> {
        self.subscribers.subscribe()
    }

    /// The binding of `ip` in the replica, and the server (`IP:PORT`) that reported it.
    pub fn get(&self, ip: Ipv4Addr) -> Option<(Binding, String)> {
        crate::replica::lock(&self.replica).get(ip).map(|(b, s)| (b, s.to_string()))
    }

    /// The bindings of a hardware address (a scan of the replica), each with its server.
    pub fn by_hardware_address(&self, hw: &[u8]) -> Vec<(Binding, String)> {
        let r = crate::replica::lock(&self.replica);
        r.by_hardware_address(hw).into_iter().map(|(b, s)| (b, s.to_string())).collect()
    }

    /// How many addresses the replica knows.
    pub fn len(&self) -> usize {
        crate::replica::lock(&self.replica).len()
    }

    /// Whether the replica knows none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The replica itself, for what the lookups above do not cover (paging, counts, every binding). Hold the
    /// lock briefly: the merger waits for it.
    pub fn replica(&self) -> &Arc<Mutex<Replica>> {
        &self.replica
    }

    /// Each watched server: connection state, last and saved base-times, lag, clock offset, catch-ups, gaps.
    pub fn status(&self) -> Vec<ServerStatus> {
        self.board.snapshot(&crate::replica::lock(&self.replica))
    }

    /// The watcher's Prometheus metrics.
    #[cfg(feature = "metrics")]
    pub fn metrics(&self) -> &Arc<WatchMetrics> {
        &self.metrics
    }

    /// The replica file holding the history, when history is kept (never without the `sqlite` feature).
    pub fn history_file(&self) -> Option<&std::path::Path> {
        #[cfg(feature = "sqlite")]
        return self.history_file.as_deref();
        #[cfg(not(feature = "sqlite"))]
        None
    }

    #[cfg(feature = "http")]
    pub(crate) fn board(&self) -> &Arc<Board> {
        &self.board
    }

    /// Wait until the watcher ends by itself: only when the replica file cannot be written as it starts, or
    /// its runtime stops under it (a later failed write is done again, it does not end the watcher).
    /// Cancel-safe; once it has returned, [`Watching::stop`] returns `Ok`.
    pub async fn ended(&mut self) -> Result<(), WatchError> {
        match &mut self.task {
            Some(task) => {
                let r = joined(task.await);
                self.task = None;
                r
            }
            None => std::future::pending().await,
        }
    }

    /// Stop: connections close, what the merger holds is applied and the replica file is written one last
    /// time. Returns once that is done, or with the error if that write failed (the file is then as of its
    /// last write, and the next start catches up from there). While reading is paused behind a write, what
    /// waits in the streams is left to that catch-up.
    pub async fn stop(mut self) -> Result<(), WatchError> {
        let _ = self.stop.send(true);
        match self.task.take() {
            Some(task) => joined(task.await),
            None => Ok(()),
        }
    }
}

fn joined(r: Result<Result<(), ReplicaError>, tokio::task::JoinError>) -> Result<(), WatchError> {
    match r {
        Ok(r) => Ok(r?),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(WatchError::Task(e)),
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
