//! Keeping a replica exact (RFC 7724 §7, ALQ-7.4.1-13/14): per watched server, a full Bulk Leasequery when
//! the replica has nothing from it yet, then the Active stream from the saved base-time; after any
//! disconnect a new Active query catches up from the saved base-time, no sooner than the retry interval
//! (ACTIVE_LQ_IDLE_TIMEOUT, ALQ-7.1-2); on DataMissing a Bulk Leasequery on a second connection fills the gap
//! while the stream goes on. Every message goes through one merger that owns the writes to the replica,
//! so the order "binding, then the base-time saved after it" holds in memory and on disk.

use crate::active::{self, ActiveEnd, ActiveOptions, Progress};
use crate::bulk::{BulkError, BulkStream};
use crate::conn::Target;
#[cfg(feature = "metrics")]
use crate::metrics::WatchMetrics;
use crate::replica::{Applied, Flush, Gap, Replica, ReplicaError, Via};
use crate::status::{Board, Failure, Report, Status};
use crate::unix_now;
use leasewire_proto::session::ACTIVE_LQ_IDLE_TIMEOUT;
use leasewire_proto::session::BulkKey;
use leasewire_proto::session::requestor::active::ActiveEvent;
use leasewire_proto::session::requestor::bulk::{BulkRequest, Event};
use leasewire_proto::{Binding, StatusCode};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;

/// Settings of a watcher.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    /// Wait at least this long before reconnecting after a connection ends or fails (ALQ-7.1-1/2); RFC 7724
    /// says ACTIVE_LQ_IDLE_TIMEOUT (60 s).
    pub retry_interval: Duration,
    /// Timers of the Active connections.
    pub active: ActiveOptions,
    /// BULK_LQ_DATA_TIMEOUT for the seed and gap-fill queries.
    pub bulk_timeout: Duration,
    /// How often changed bindings are written to the replica file.
    pub flush_interval: Duration,
    /// How often history older than the retention is pruned.
    pub prune_interval: Duration,
    /// While a flush is being written and this many history events wait behind it, the watcher stops reading
    /// the streams until the write is done: memory stays bounded (about 150 bytes an event) when the disk is
    /// slower than the servers, and TCP pushes back on them instead. A server that will not wait for a
    /// requestor closes the stream, and the reconnect catches up, so nothing is lost either way.
    pub max_unwritten_events: usize,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            retry_interval: ACTIVE_LQ_IDLE_TIMEOUT,
            active: ActiveOptions::default(),
            bulk_timeout: Duration::from_secs(300),
            flush_interval: Duration::from_millis(250),
            prune_interval: Duration::from_secs(60),
            max_unwritten_events: 1_000_000,
        }
    }
}

#[derive(Debug)]
enum Msg {
    /// `received`: our clock when it arrived (Unix seconds), for the server's clock offset.
    Binding {
        binding: Binding,
        base_time: Option<u32>,
        via: Via,
        received: u32,
    },
    Saved(Option<u32>),
    /// A Bulk query is about to be sent: what came before it is older than its snapshot.
    BulkRequested,
    /// That Bulk query ended (its bindings were sent before this).
    BulkEnded,
    Seeded(Option<u32>, u64),
    GapOpened(Gap),
    GapFilled(Gap, u64),
    Status(Status),
}

/// Where the merger's results go.
pub(crate) struct Outputs {
    /// Every report, losslessly: the merger waits for this reader (a stop still stops it).
    pub reports: Option<mpsc::Sender<Report>>,
    /// Every report, for subscribers that may lag (they are told how many they missed).
    pub subscribers: broadcast::Sender<Report>,
    /// Per-server connection state.
    pub board: Arc<Board>,
    /// Counters for `/metrics`.
    #[cfg(feature = "metrics")]
    pub metrics: Arc<WatchMetrics>,
}

/// Watch `targets` into `replica` until `stop` turns true, telling `out` every change and status. The
/// replica file is flushed every `flush_interval` and at the end. [`crate::Watcher`] is the way in.
pub(crate) async fn run(
    targets: Vec<Target>,
    replica: Arc<Mutex<Replica>>,
    opts: WatchOptions,
    stop: watch::Receiver<bool>,
    out: Outputs,
) -> Result<(), ReplicaError> {
    let (tx, mut rx) = mpsc::channel::<(u16, Msg)>(4096);
    let mut tasks = JoinSet::new();
    let mut names: Vec<(u16, String)> = Vec::new();
    {
        let mut r = crate::replica::lock(&replica);
        for t in &targets {
            let id = r.server_id(&t.addr.to_string());
            if names.iter().any(|(i, _)| *i == id) {
                continue; // the same server twice: one session (ALQ-7.4.1-14)
            }
            let s = r.server(id).clone();
            names.push((id, s.addr.clone()));
            let peer = Peer { id, target: t.clone(), opts, stop: stop.clone(), tx: tx.clone() };
            tasks.spawn(peer.run(Position { seeded: s.seeded, saved: s.saved }, s.gaps));
        }
        r.flush()?;
    }
    drop(tx);
    let pruning = crate::replica::lock(&replica).pruner().map(|p| tokio::spawn(prune(p, opts.prune_interval)));
    let name = |id: u16| names.iter().find(|(i, _)| *i == id).map_or_else(String::new, |(_, n)| n.clone());
    let mut tick = tokio::time::interval(opts.flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A batch never exceeds the cap, so the history behind a write stays under twice the cap.
    let batch_size = opts.max_unwritten_events.clamp(1, 256);
    let mut batch = Vec::with_capacity(batch_size);
    let mut paused = false;
    // The flush being written, if any: merging goes on meanwhile (the stream never waits on the disk); the
    // next flush is taken only once it is done, so flushes are written in order and, when the disk is slower
    // than the stream, changes pile up as one (coalesced) dirty set rather than as queued writes.
    let mut writing: Option<Writing> = None;
    // A flush whose write failed (the file locked by another process, say): written again after a pause,
    // before anything later, so its changes and history events are not lost.
    let mut retry: Option<Retry> = None;
    let mut stopping = stop.clone();
    loop {
        let backlog = match (&writing, &retry) {
            (None, None) => 0,
            _ => crate::replica::lock(&replica).unwritten_events(),
        };
        if (backlog >= opts.max_unwritten_events) != paused {
            paused = !paused;
            if paused {
                tracing::warn!(
                    events = backlog,
                    "the replica file is behind the stream: reading paused until the history is written"
                );
            } else {
                tracing::info!("the replica file caught up: reading again");
            }
            #[cfg(feature = "metrics")]
            out.metrics.history_paused.set(i64::from(paused));
        }
        tokio::select! {
            n = rx.recv_many(&mut batch, batch_size), if !paused => {
                if n == 0 {
                    break;
                }
                let mut reported = Vec::new();
                {
                    let mut r = crate::replica::lock(&replica);
                    for (id, msg) in batch.drain(..) {
                        if let Some(report) = merge(&mut r, id, msg, &out, &name) {
                            reported.push(report);
                        }
                    }
                    #[cfg(feature = "metrics")]
                    out.metrics.bindings.set(r.len() as i64);
                }
                if out.subscribers.receiver_count() > 0 {
                    for report in &reported {
                        let _ = out.subscribers.send(report.clone());
                    }
                }
                // A reader that stops reading (a paused pager) must not keep a stop from stopping.
                if let Some(reports) = &out.reports {
                    for report in reported {
                        let mut stop = stop.clone();
                        tokio::select! {
                            _ = reports.send(report) => {}
                            _ = stop.wait_for(|s| *s) => break,
                        }
                    }
                }
            }
            // Paused, the channel is not read, so the stream's end never shows there: stop here. What waits in
            // the channel was not applied (nor its base-time saved), so the next start catches it up.
            () = async { drop(stopping.wait_for(|s| *s).await) }, if paused => {
                rx.close();
                break;
            }
            _ = tick.tick() => {
                if writing.as_ref().is_some_and(|w| !w.is_finished()) {
                    continue;
                }
                if let Some(w) = writing.take() {
                    if let Err(failed) = finished(w).await? {
                        retry = Some(Retry::after(failed, retry.take(), &out));
                    } else if retry.take().is_some() {
                        tracing::info!("the replica file is written again");
                    }
                }
                if retry.as_ref().is_some_and(|r| !r.due()) {
                    continue;
                }
                let again = retry.as_ref().map(|r| r.flush.clone());
                let next = again.or_else(|| crate::replica::lock(&replica).take_flush().map(Arc::new));
                writing = next.map(|f| write(f, WATCH_LOCK_WAIT));
            }
        }
    }
    // Stopping while paused: the streams' tasks may be blocked handing over a message (the channel is closed
    // now, so they are not for long).
    while tasks.join_next().await.is_some() {}
    if let Some(p) = pruning {
        p.abort();
    }
    // The flush in progress, then the one that failed (one more try), then what changed since: in order, and
    // any of them failing ends here with the file as of the last one written.
    if let Some(w) = writing.take() {
        match finished(w).await? {
            Err(failed) => retry = Some(Retry::after(failed, retry.take(), &out)),
            Ok(()) => retry = None,
        }
    }
    if let Some(r) = retry {
        finished(write(r.flush, WATCH_LOCK_WAIT)).await?.map_err(|f| f.error)?;
    }
    flush(&replica).await
}

/// A flush being written on a blocking thread; it hands the flush back, so a failed one can be written
/// again.
type Writing = tokio::task::JoinHandle<(Arc<Flush>, Result<usize, ReplicaError>)>;

/// How long the watcher's writes wait for another writer's lock on the file before they fail: short, because
/// a blocked wait cannot be interrupted by a stop. While streaming a failed write is retried later; at a stop
/// the file stays as of its last write and the next start catches up from there. (Opening the file and the
/// write at start wait [`PATIENT_LOCK_WAIT`](crate::replica::PATIENT_LOCK_WAIT), as nothing would retry them.)
const WATCH_LOCK_WAIT: Duration = Duration::from_secs(1);

fn write(f: Arc<Flush>, lock_wait: Duration) -> Writing {
    tokio::task::spawn_blocking(move || {
        let written = f.write_waiting(lock_wait);
        (f, written)
    })
}

/// A write that failed, and its flush.
struct Failed {
    flush: Arc<Flush>,
    error: ReplicaError,
}

/// The outcome of a flush written on a blocking thread; `Err` when the runtime stopped before it ran.
async fn finished(w: Writing) -> Result<Result<(), Failed>, ReplicaError> {
    match w.await {
        Ok((_, Ok(_))) => Ok(Ok(())),
        Ok((flush, Err(error))) => Ok(Err(Failed { flush, error })),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(ReplicaError::Stopped),
    }
}

/// A failed flush waiting to be written again.
struct Retry {
    flush: Arc<Flush>,
    /// Failures in a row.
    failures: u32,
    at: tokio::time::Instant,
}

impl Retry {
    /// The first pause; it doubles with every failure in a row, up to the longest.
    const FIRST: Duration = Duration::from_secs(1);
    const LONGEST: Duration = Duration::from_secs(30);

    /// Another failure of a flush (`before`: its earlier failures in a row, if any): logged and counted.
    fn after(failed: Failed, before: Option<Retry>, out: &Outputs) -> Self {
        let failures = before.map_or(0, |r| r.failures) + 1;
        let pause = Self::FIRST.saturating_mul(1 << (failures - 1).min(5)).min(Self::LONGEST);
        tracing::warn!(
            failures,
            retry_in = ?pause,
            "writing the replica file failed, its changes are kept and written again: {}",
            failed.error
        );
        #[cfg(feature = "metrics")]
        out.metrics.history_write_retries.inc();
        #[cfg(not(feature = "metrics"))]
        let _ = out;
        Self { flush: failed.flush, failures, at: tokio::time::Instant::now() + pause }
    }

    fn due(&self) -> bool {
        tokio::time::Instant::now() >= self.at
    }
}

/// Prune history older than the retention now and every `every`, on a blocking thread, in small batches
/// (the flushes of the stream wait at most one batch).
async fn prune(pruner: crate::replica::Pruner, every: Duration) {
    loop {
        let p = pruner.clone();
        match tokio::task::spawn_blocking(move || p.prune(unix_now())).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(events = n, "history pruned"),
            Ok(Err(e)) => tracing::warn!("history pruning: {e}"),
            Err(_) => return,
        }
        tokio::time::sleep(every).await;
    }
}

/// Write what changed to the replica file on a blocking thread, without holding the replica meanwhile (so
/// HTTP lookups are not kept waiting on an fsync, nor the runtime's thread on SQLite), and wait for it.
async fn flush(replica: &Arc<Mutex<Replica>>) -> Result<(), ReplicaError> {
    let Some(f) = crate::replica::lock(replica).take_flush() else { return Ok(()) };
    finished(write(Arc::new(f), WATCH_LOCK_WAIT)).await?.map_err(|f| f.error)
}

fn merge(r: &mut Replica, id: u16, msg: Msg, out: &Outputs, name: &dyn Fn(u16) -> String) -> Option<Report> {
    let status = |status: Status| {
        out.board.status(&name(id), &status);
        #[cfg(feature = "metrics")]
        out.metrics.status(&name(id), &status);
        Some(Report::Status { server: name(id), status })
    };
    match msg {
        Msg::Binding { binding, base_time, via, received } => {
            let clock_moved = base_time.is_some_and(|t| r.observe_clock(id, received, t));
            let applied = r.apply(id, &binding, base_time, via);
            if let (Some(t), Via::Active) = (base_time, via) {
                out.board.observed(&name(id), t, received, r.clock_offset(id));
            }
            #[cfg(feature = "metrics")]
            {
                out.metrics.applied(applied);
                if clock_moved {
                    out.metrics.clock_offset(&name(id), r.clock_offset(id));
                }
            }
            #[cfg(not(feature = "metrics"))]
            let _ = clock_moved;
            matches!(applied, Applied::New | Applied::Changed).then(|| Report::Change {
                server: name(id),
                binding,
                base_time,
                via,
            })
        }
        Msg::Saved(saved) => {
            r.set_saved(id, saved);
            None
        }
        Msg::BulkRequested => {
            r.bulk_requested(id);
            None
        }
        Msg::BulkEnded => {
            r.bulk_ended(id);
            None
        }
        Msg::Seeded(saved, bindings) => {
            r.set_seeded(id, saved);
            status(Status::Seeded { bindings })
        }
        Msg::GapOpened(gap) => {
            r.open_gap(id, gap);
            status(Status::DataMissing(gap))
        }
        Msg::GapFilled(gap, bindings) => {
            r.close_gap(id, gap);
            status(Status::GapFilled { gap, bindings })
        }
        Msg::Status(s) => status(s),
    }
}

/// Sleep `d` unless stopped first; `false` when stopped.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    !stopped && !*stop.borrow()
}

/// One watched server: what its tasks share.
#[derive(Clone)]
struct Peer {
    id: u16,
    target: Target,
    opts: WatchOptions,
    stop: watch::Receiver<bool>,
    tx: mpsc::Sender<(u16, Msg)>,
}

/// Where a server's Active stream stands, as the merger has been told.
struct Position {
    seeded: bool,
    saved: Option<u32>,
}

impl Peer {
    /// Hand a message to the merger; `false` once it is gone (we are stopping).
    async fn send(&self, m: Msg) -> bool {
        self.tx.send((self.id, m)).await.is_ok()
    }

    /// Report a failure and wait the retry interval; `false` when stopping.
    async fn retry_later(&mut self, reason: Failure, active: bool) -> bool {
        let retry_in = self.opts.retry_interval;
        self.send(Msg::Status(Status::Disconnected { reason: Arc::new(reason), retry_in, active })).await
            && pause(retry_in, &mut self.stop).await
    }

    /// The per-server loop of RFC 7724 §7: seed, stream, retry; gap fills run beside it.
    async fn run(mut self, mut at: Position, gaps: Vec<Gap>) {
        let mut fills = JoinSet::new();
        // Gaps left unfilled by an earlier run are filled first thing.
        for g in gaps {
            fills.spawn(self.clone().fill_gap(g));
        }
        while !*self.stop.borrow() {
            while fills.try_join_next().is_some() {}
            if !at.seeded {
                match self.bulk(None).await {
                    Ok((lowest, n)) => {
                        // The Active stream catches up from the start of the seed, so changes made while the
                        // seed ran are not missed; a second earlier, because a reply's base-time is when it was
                        // sent, not when its page was read (duplicates are harmless, gaps are not).
                        at = Position { seeded: true, saved: lowest.map(|l| l.saturating_sub(1)) };
                        if !self.send(Msg::Seeded(at.saved, n)).await {
                            break;
                        }
                    }
                    Err(BulkError::Stopped) => break,
                    Err(e) => {
                        if !self.retry_later(Failure::Seed(e), false).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            let (ptx, prx) = mpsc::channel(1024);
            let (target, opts, mut stop) = (self.target.clone(), self.opts.active, self.stop.clone());
            let stream = async move {
                let r = active::run(&target, at.saved, opts, &mut stop, &ptx).await;
                drop(ptx);
                r
            };
            let ((saved, end), ()) = tokio::join!(stream, self.pump(prx, at.saved, &mut fills));
            at.saved = saved;
            if matches!(end, ActiveEnd::Stopped) || !self.send(Msg::Saved(saved)).await {
                break;
            }
            if !self.retry_later(Failure::Stream(end), true).await {
                break;
            }
        }
        fills.shutdown().await;
    }

    /// Forward one connection's progress to the merger, in order: each binding before the base-time saved
    /// after it (sent only when it moves), each gap before the base-time that passes it.
    async fn pump(&self, mut prx: mpsc::Receiver<Progress>, mut last: Option<u32>, fills: &mut JoinSet<()>) {
        while let Some(p) = prx.recv().await {
            let (first, saved) = match p {
                Progress::Streaming { tls, query_start_time } => {
                    (Msg::Status(Status::Streaming { tls, query_start_time }), last)
                }
                Progress::Event { event, saved } => match event {
                    ActiveEvent::Binding { binding, base_time } => {
                        (Msg::Binding { binding, base_time, via: Via::Active, received: unix_now() }, saved)
                    }
                    ActiveEvent::CatchUpComplete => (Msg::Status(Status::CaughtUp), saved),
                    ActiveEvent::DataMissing { from, to } => {
                        let gap = Gap { from, to };
                        fills.spawn(self.clone().fill_gap(gap));
                        (Msg::GapOpened(gap), saved)
                    }
                    ActiveEvent::KeepAlive | ActiveEvent::StartTls => continue,
                },
            };
            if !self.send(first).await {
                return;
            }
            if saved != last {
                last = saved;
                if !self.send(Msg::Saved(saved)).await {
                    return;
                }
            }
        }
    }

    /// One Bulk Leasequery for all addresses (`gap` bounds it in time); every binding goes to the merger.
    /// Returns the lowest base-time seen (where a following Active query must start) and the count.
    async fn bulk(&self, gap: Option<Gap>) -> Result<(Option<u32>, u64), BulkError> {
        // Through the merger's queue, so it falls after every Active message received before the query, and
        // its end after every binding it brought.
        if !self.send(Msg::BulkRequested).await {
            return Err(BulkError::Stopped);
        }
        let mut stop = self.stop.clone();
        let result = tokio::select! {
            r = self.bulk_inner(gap) => r,
            _ = stop.wait_for(|s| *s) => Err(BulkError::Stopped),
        };
        self.send(Msg::BulkEnded).await;
        result
    }

    async fn bulk_inner(&self, gap: Option<Gap>) -> Result<(Option<u32>, u64), BulkError> {
        let req = BulkRequest {
            key: BulkKey::All,
            changed_on_or_after: gap.map(|g| g.from),
            changed_on_or_before: gap.map(|g| g.to),
        };
        let mut s = BulkStream::open(&self.target, std::slice::from_ref(&req), self.opts.bulk_timeout).await?;
        let (mut lowest, mut n) = (None::<u32>, 0u64);
        while let Some(ev) = s.next().await? {
            match ev {
                Event::Binding(b) => {
                    n += 1;
                    if let Some(t) = b.base_time {
                        lowest = Some(lowest.map_or(t, |l| l.min(t)));
                    }
                    let msg = Msg::Binding {
                        binding: b.binding,
                        base_time: b.base_time,
                        via: Via::Bulk,
                        received: unix_now(),
                    };
                    if !self.send(msg).await {
                        return Err(BulkError::Stopped);
                    }
                }
                Event::Done { status, message, .. } if status != StatusCode::Success => {
                    return Err(BulkError::Refused { status, message });
                }
                Event::Done { .. } => {}
            }
        }
        Ok((lowest, n))
    }

    /// Fill `gap` with a bounded Bulk Leasequery on its own connection, retrying until it succeeds or we
    /// stop (ALQ-7.4.1-13).
    async fn fill_gap(mut self, gap: Gap) {
        while !*self.stop.borrow() {
            match self.bulk(Some(gap)).await {
                Ok((_, n)) => {
                    self.send(Msg::GapFilled(gap, n)).await;
                    return;
                }
                Err(BulkError::Stopped) => return,
                Err(e) => {
                    if !self.retry_later(Failure::GapFill { gap, error: e }, false).await {
                        return;
                    }
                }
            }
        }
    }
}
