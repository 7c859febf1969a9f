//! The tokio driver of the DHCP engine: UDP sockets in, decisions under one lock, durable commits, replies
//! out, changes published.
//!
//! Ordering: a decision and the hand-off of its commit to the store happen under the engine lock, and the
//! pending commits are completed by one task in the same order. The store's writer commits in arrival order,
//! so replies leave and changes reach the feed in sequence order, and a client's ACK never precedes the fsync
//! of its binding.

use crate::config::Validated;
use crate::context::ServiceContext;
use crate::engine::{Destination, Engine, Received};
use crate::feed::{ChangeFeed, Outgoing, Publisher, Ticket};
use crate::lease_log::{LeaseLog, Requester};
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::udp::leasequery::{Answer, Responder};
use leasewire_proto::{Binding, Message, MessageType};
use leasewire_store::{LeaseStore, Packed, Pending, SharedChanges, StoreError};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::clock::unix_now;
use crate::error::ServeError;

/// What the completer task does next.
enum Work {
    /// Complete one decision.
    Job(Job),
    /// Everything before this has been completed: stop.
    Stop,
}

/// A reply waiting for its commit.
struct Job {
    pending: Option<Pending<Vec<leasewire_store::BindingChange>>>,
    /// Holds the commit's time in flight (ALQ-8.2-9) until its changes are published, or it fails.
    ticket: Ticket,
    started: std::time::Instant,
    reply: Option<(Vec<u8>, Destination, MessageType, Arc<UdpSocket>)>,
    /// What to send instead when a shared store refuses the commit (see `Outcome::on_conflict`).
    on_conflict: Option<(Vec<u8>, Destination, MessageType)>,
    /// The addresses the commit touches, re-read from the store after a refusal.
    ips: Vec<Ipv4Addr>,
    /// The request behind the commit, for the lease log (None: a timer or an operator).
    requester: Option<Requester>,
    /// Told when the commit is durable (or failed): an operator's change waits for it.
    done: Option<tokio::sync::oneshot::Sender<Result<(), ResetError>>>,
}

/// Why an operator's reset of a binding did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResetError {
    /// The address has no binding.
    #[error("no binding for {0}")]
    NoBinding(Ipv4Addr),
    /// The store did not commit it (the binding is unchanged on disk).
    #[error("the lease store failed: {0}")]
    Store(String),
    /// A shared store refused it: another server changed the address first.
    #[error("another server changed {0} first; nothing was reset")]
    Conflict(Ipv4Addr),
    /// The server is stopping.
    #[error("the server is stopping")]
    Stopped,
}

/// The running DHCP service's shared parts.
pub struct DhcpService {
    engine: Mutex<Engine>,
    store: Arc<dyn LeaseStore>,
    feed: ChangeFeed,
    /// Publishes on `feed` from its own thread, after the client's reply is sent.
    publisher: Publisher,
    metrics: Arc<Metrics>,
    /// One INFO line per committed change, written by its own thread.
    lease_log: LeaseLog,
    jobs: mpsc::UnboundedSender<Work>,
    /// `server.retention`; replaced by a reload.
    retention: std::sync::atomic::AtomicU32,
    /// The UDP leasequery responder of the current configuration; a reload swaps in a new one.
    leasequery: std::sync::RwLock<Arc<Responder>>,
    drop_log: LogLimiter,
    /// Whether the store is shared with other servers: then the feed is published from the store's change
    /// feed (every server's commits, in sequence order) rather than from this server's completions.
    shared: bool,
    /// With a shared store: this server's commits waiting for the store's change feed to publish them.
    shared_feed: Mutex<SharedFeed>,
    /// With a shared store: every current record in memory, for UDP leasequery (see `shared_view`).
    view: Option<Arc<super::shared_view::SharedView>>,
}

/// Where a shared store's change feed stands, for releasing this server's commits from the in-flight count.
#[derive(Debug, Default)]
struct SharedFeed {
    /// The highest sequence number published so far.
    published_through: u64,
    /// Own commits not yet published: their last sequence number and their ticket, in sequence order.
    awaiting: std::collections::VecDeque<(u64, Ticket)>,
    /// Every server's commits not yet published here: a ticket at the commit time of the last change the
    /// store's feed delivered. Commit times never decrease in sequence order (the database stamps each
    /// `max(now, previous)` under one lock), so every change after it — committed by another server and not
    /// yet delivered, or still in flight on any server — is stamped at or after that time, whatever the
    /// servers' clocks say. CatchUpComplete's base-time thus never passes another server's commit that has
    /// not reached this server's feed (ALQ-8.2-9), with no margin resting on clocks. Replaced with each
    /// batch; the old ticket travels with the batch and is released once it is broadcast.
    settled: Option<Ticket>,
}

impl std::fmt::Debug for DhcpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhcpService").finish_non_exhaustive()
    }
}

/// Handles to a started service.
#[derive(Debug, Clone)]
pub struct Running {
    /// The service.
    pub service: Arc<DhcpService>,
    /// The addresses the UDP sockets are bound to (useful when a port 0 was configured).
    pub local_addrs: Vec<SocketAddr>,
}

impl DhcpService {
    /// Load the store into a new engine, open the sockets and start serving until `shutdown` turns true.
    /// Returns once the sockets are bound; the returned join handle ends after a clean drain.
    pub async fn start(
        config: &Validated,
        ctx: ServiceContext,
    ) -> Result<(Running, tokio::task::JoinHandle<()>), ServeError> {
        Self::start_inner(config, ctx, None).await
    }

    /// [`DhcpService::start`] for a store shared with other servers. `changes` must start at or before the
    /// store's last sequence number *before* this call (so the load and the feed overlap rather than leave a
    /// gap), after a change stamped `after_time` (`PgStore::journal_end` reads both together): until the
    /// feed delivers, every change it will carry is stamped at or after that time. Changes other servers made are taken into the engine, so it does not offer what they leased, and
    /// every change goes to `feed` in sequence order, so Active Leasequery requestors of this server see all
    /// bindings of all servers.
    pub async fn start_shared(
        config: &Validated,
        ctx: ServiceContext,
        changes: SharedChanges,
        after_time: u32,
    ) -> Result<(Running, tokio::task::JoinHandle<()>), ServeError> {
        Self::start_inner(config, ctx, Some((changes, after_time))).await
    }

    async fn start_inner(
        config: &Validated,
        ctx: ServiceContext,
        changes: Option<(SharedChanges, u32)>,
    ) -> Result<(Running, tokio::task::JoinHandle<()>), ServeError> {
        let ServiceContext { store, feed, metrics, shutdown } = ctx;
        // The store's records by reference (the embedded store hands out the blocks it keeps), so the
        // bindings are in memory once; the engine builds its indexes in one pass.
        let engine = Engine::load(config, load_packed(store.as_ref())?);
        // With a shared store, UDP leasequery answers from a view of its own (see `shared_view`), loaded after
        // the feed started (`changes` starts at or before this read, and the view skips what it holds).
        let view = match &changes {
            Some(_) => {
                let v = Arc::new(super::shared_view::SharedView::default());
                for page in leasewire_store::scan_pages(store.as_ref(), leasewire_store::ScanFilter::all(), 10_000) {
                    v.apply(&page?);
                }
                Some(v)
            }
            None => None,
        };
        tracing::info!(bindings = store.len().unwrap_or(0), "loaded lease store");
        report_reservation_conflicts(&engine);
        metrics.set_subnets(engine.subnets());
        for slot in 0..=engine.subnets().len() {
            metrics.update_bindings(slot, &engine.state_counts(slot));
        }
        let lease_log = match config.log().leases {
            true => LeaseLog::start(metrics.clone())
                .map_err(|source| ServeError::Thread { what: "the lease log thread", source })?,
            false => LeaseLog::disabled(),
        };
        let (jobs, job_rx) = mpsc::unbounded_channel();
        let settled = changes.as_ref().map(|(_, after_time)| feed.ticket(*after_time));
        let service = Arc::new(DhcpService {
            engine: Mutex::new(engine),
            store,
            publisher: feed
                .publisher()
                .map_err(|source| ServeError::Thread { what: "the change feed thread", source })?,
            feed,
            metrics,
            lease_log,
            jobs,
            retention: config.server().retention.into(),
            leasequery: std::sync::RwLock::new(Arc::new(Responder::new(config))),
            drop_log: LogLimiter::new(Duration::from_secs(10)),
            shared: changes.is_some(),
            shared_feed: Mutex::new(SharedFeed { settled, ..SharedFeed::default() }),
            view,
        });
        let mut sockets = Vec::new();
        for addr in &config.server().listen {
            sockets.push((open_socket(*addr, None)?, None));
        }
        for iface in &config.server().interfaces {
            let any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 67));
            sockets.push((open_socket(any, Some(iface))?, Some(iface.clone())));
        }
        let local_addrs = sockets.iter().filter_map(|(s, _)| s.local_addr().ok()).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for (socket, iface) in sockets {
            tasks.spawn(service.clone().receive(Arc::new(socket), iface, shutdown.clone()));
        }
        tasks.spawn(service.clone().timers(shutdown.clone()));
        if let Some((changes, _)) = changes {
            tasks.spawn(service.clone().follow(changes, shutdown.clone()));
        }
        let completer = tokio::spawn(service.clone().complete(job_rx));
        let svc = service.clone();
        let handle = tokio::spawn(async move {
            while tasks.join_next().await.is_some() {}
            // Every decision is queued now; the completer drains the queue up to this marker and stops.
            let _ = svc.jobs.send(Work::Stop);
            let _ = completer.await;
        });
        Ok((Running { service, local_addrs }, handle))
    }

    /// Apply a new configuration (a reload): the engine takes the new subnets, pools, options, reservations,
    /// lease times and limits, keeping every binding it has (see [`Engine::reconfigure`]); UDP leasequery
    /// gets the new access list, disclosed and withheld options and rate limit. Each part is swapped under its
    /// lock, so a packet is handled wholly under the old configuration or wholly under the new one.
    pub fn reconfigure(&self, config: &Validated) {
        {
            let mut engine = self.engine();
            engine.reconfigure(config);
            report_reservation_conflicts(&engine);
            // The binding gauges follow the new subnets (removed ones leave the exposition).
            self.metrics.set_subnets(engine.subnets());
            for slot in 0..=engine.subnets().len() {
                self.metrics.update_bindings(slot, &engine.state_counts(slot));
            }
        }
        *self.leasequery.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Responder::new(config));
        self.retention.store(config.server().retention, std::sync::atomic::Ordering::Relaxed);
    }

    /// The engine (tests and leasequery read bindings through the store, not this).
    pub fn engine(&self) -> std::sync::MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The feed of committed changes.
    pub fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    async fn receive(
        self: Arc<Self>,
        socket: Arc<UdpSocket>,
        iface: Option<String>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, src) = tokio::select! {
                r = socket.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "receive failed");
                        continue;
                    }
                },
                _ = shutdown.wait_for(|s| *s) => return,
            };
            let SocketAddr::V4(src) = src else { continue };
            self.handle_datagram(&buf[..n], src, iface.as_deref(), &socket);
        }
    }

    fn handle_datagram(&self, bytes: &[u8], src: SocketAddrV4, iface: Option<&str>, socket: &Arc<UdpSocket>) {
        let m = match Message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.metrics.dropped("decode_error");
                if let Some(suppressed) = self.drop_log.allow("decode_error") {
                    tracing::warn!(%src, error = %e, suppressed, "dropped undecodable packet");
                }
                return;
            }
        };
        let t = m.message_type();
        self.metrics.received(t);
        let now = unix_now();
        if t == Some(MessageType::LeaseQuery) {
            self.leasequery(&m, src, socket, now);
            return;
        }
        let mut engine = self.engine();
        let outcome = engine.handle(&m, Received { src, interface: iface, now });
        if let Some(reason) = outcome.dropped {
            self.metrics.dropped(reason.label());
            tracing::debug!(%src, reason = reason.label(), xid = m.xid, "no reply");
            return;
        }
        if outcome.commit.is_empty() {
            // Nothing to make durable (OFFER, NAK, INFORM): answer at once rather than behind other commits.
            drop(engine);
            if let Some((bytes, dest, t)) = outcome.reply {
                self.send_now(socket, &bytes, dest, t);
            }
            return;
        }
        let ips: Vec<Ipv4Addr> = outcome.commit.iter().map(|b| b.ip).collect();
        self.update_gauges(&engine, &ips);
        let ticket = self.feed.ticket(now);
        let pending = Some(self.store.commit_expecting(now, outcome.commit, outcome.expected));
        let reply = outcome.reply.map(|(b, d, t)| (b, d, t, socket.clone()));
        let on_conflict = outcome.on_conflict;
        // Queued under the engine lock, so completion order is decision order.
        let requester = self.lease_log.enabled().then(|| Requester::of(&m));
        let started = std::time::Instant::now();
        let job = Job { pending, ticket, started, reply, on_conflict, ips, requester, done: None };
        let _ = self.jobs.send(Work::Job(job));
    }

    /// Send without waiting; a full socket buffer is a drop (the client retransmits).
    fn send_now(&self, socket: &UdpSocket, bytes: &[u8], dest: Destination, t: MessageType) {
        let to = socket_addr(dest);
        match socket.try_send_to(bytes, to) {
            Ok(_) => self.metrics.sent(t),
            Err(e) => self.send_failed(to, &e),
        }
    }

    fn send_failed(&self, to: SocketAddr, e: &std::io::Error) {
        self.metrics.dropped("send_error");
        if let Some(suppressed) = self.drop_log.allow("send_error") {
            tracing::warn!(%to, error = %e, suppressed, "send failed");
        }
    }

    /// RFC 4388: answered from the store at once; no binding changes, so nothing waits on a commit.
    fn leasequery(&self, q: &Message<'_>, src: SocketAddrV4, socket: &UdpSocket, now: u32) {
        let responder = self.leasequery.read().unwrap_or_else(|p| p.into_inner()).clone();
        let answer = match &self.view {
            Some(v) => responder.answer(q, src, v.as_ref(), now),
            None => responder.answer(q, src, self.store.as_ref(), now),
        };
        match answer {
            Ok(Answer { bytes, to, kind }) => self.send_now(socket, &bytes, Destination::Unicast(to), kind),
            Err(reason) => {
                self.metrics.dropped(reason.label());
                if let Some(suppressed) = self.drop_log.allow(reason.label()) {
                    tracing::warn!(%src, reason = reason.label(), xid = q.xid, suppressed, "leasequery dropped");
                }
            }
        }
    }

    /// Complete jobs in order: wait for durability, reply, then publish the changes to the Leasequery
    /// services (RFC 7724 §6: the requestors hear of a change after the client, and the client never waits
    /// on them). Changes are published when the next job's commit is not durable yet (or there is none): one
    /// group commit becomes one feed batch.
    async fn complete(self: Arc<Self>, mut work: mpsc::UnboundedReceiver<Work>) {
        let mut outgoing = Outgoing::default();
        loop {
            let next = match work.try_recv() {
                Ok(w) => Some(w),
                Err(mpsc::error::TryRecvError::Empty) => {
                    self.publisher.publish(&mut outgoing);
                    work.recv().await
                }
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
            let Some(Work::Job(job)) = next else { break };
            if job.pending.as_ref().is_some_and(|p| !p.is_ready()) {
                self.publisher.publish(&mut outgoing);
            }
            self.complete_job(job, &mut outgoing).await;
        }
        self.publisher.publish(&mut outgoing);
    }

    /// A shared store's commit up to sequence number `seq`: its ticket is released once `follow` has published
    /// that far, or now (behind the batch that carried it) if it already has.
    fn release_after_feed(&self, seq: u64, ticket: Ticket) {
        let mut f = self.shared_feed.lock().unwrap_or_else(|p| p.into_inner());
        if seq <= f.published_through {
            let mut out = Outgoing::default();
            out.add(Vec::new(), Some(ticket));
            self.publisher.publish(&mut out);
        } else {
            f.awaiting.push_back((seq, ticket));
        }
    }

    /// Wait for one job's commit, then reply; its committed changes go into `outgoing` with its ticket. With a
    /// shared store the changes reach the feed through the store's change feed instead, and the ticket waits
    /// for them there. A commit that fails drops its ticket: nothing of it is on its way.
    async fn complete_job(&self, mut job: Job, outgoing: &mut Outgoing) {
        let ticket = job.ticket;
        let done = job.done.take();
        let tell = |r: Result<(), ResetError>| {
            if let Some(d) = done {
                let _ = d.send(r);
            }
        };
        let mut commit = None;
        if let Some(p) = job.pending {
            match p.await {
                Ok(changes) => {
                    self.metrics.commit_seconds.observe(job.started.elapsed().as_secs_f64());
                    for c in &changes {
                        tracing::debug!(seq = c.seq, ip = %c.binding.ip, state = %c.binding.state, "binding committed");
                    }
                    if self.lease_log.enabled() {
                        for c in &changes {
                            let record = match &job.requester {
                                Some(r) => r.record(&c.binding, c.time),
                                None => crate::lease_log::LeaseRecord::new(&c.binding, c.time, None, None),
                            };
                            self.lease_log.record(record);
                        }
                    }
                    if let Some(v) = &self.view {
                        // Before the reply leaves: a leasequery right after the ACK finds the lease.
                        v.apply(&changes);
                    }
                    commit = Some(changes);
                    tell(Ok(()));
                }
                Err(leasewire_store::StoreError::Conflict { ip }) => {
                    // Another server bound the address first: the database's record is the truth, and the
                    // client hears NAK (or nothing), never ACK.
                    self.metrics.dropped("store_conflict");
                    tracing::info!(%ip, "commit refused: another server bound the address first");
                    self.resync(&job.ips);
                    tell(Err(ResetError::Conflict(ip)));
                    if let (Some((bytes, dest, t)), Some((.., socket))) = (job.on_conflict, job.reply) {
                        let to = socket_addr(dest);
                        match socket.send_to(&bytes, to).await {
                            Ok(_) => self.metrics.sent(t),
                            Err(e) => self.send_failed(to, &e),
                        }
                    }
                    return;
                }
                Err(e) => {
                    self.metrics.commit_errors.inc();
                    tracing::error!(error = %e, "commit failed; reply withheld");
                    tell(Err(ResetError::Store(e.to_string())));
                    return;
                }
            }
        }
        if let Some((bytes, dest, t, socket)) = job.reply {
            let to = socket_addr(dest);
            match socket.send_to(&bytes, to).await {
                Ok(_) => self.metrics.sent(t),
                Err(e) => self.send_failed(to, &e),
            }
        }
        match commit {
            Some(changes) if self.shared => match changes.last() {
                Some(last) => self.release_after_feed(last.seq, ticket),
                None => drop(ticket),
            },
            Some(changes) => outgoing.add(changes, Some(ticket)),
            None => outgoing.add(Vec::new(), Some(ticket)),
        }
    }

    /// Lease expiry every second; forgetting records past retention every minute, or every `retention`
    /// seconds when that is shorter (so a short retention really bounds how long records are kept).
    async fn timers(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut n: u64 = 0;
        loop {
            let retention = self.retention.load(std::sync::atomic::Ordering::Relaxed);
            let forget_every = u64::from(retention.clamp(1, 60));
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            n += 1;
            let now = unix_now();
            {
                let mut engine = self.engine();
                let due = engine.tick(now);
                if !due.is_empty() {
                    tracing::debug!(count = due.len(), "leases ended");
                    let ips: Vec<Ipv4Addr> = due.iter().map(|b| b.ip).collect();
                    self.update_gauges(&engine, &ips);
                    let ticket = self.feed.ticket(now);
                    let pending = self.store.commit(now, due);
                    let job = Job {
                        pending: Some(pending),
                        ticket,
                        started: std::time::Instant::now(),
                        reply: None,
                        on_conflict: None,
                        ips,
                        requester: None,
                        done: None,
                    };
                    let _ = self.jobs.send(Work::Job(job));
                }
            }
            if n.is_multiple_of(forget_every) {
                self.forget_old(now).await;
            }
        }
    }

    /// An operator frees `ip` (`leasewire ctl leases delete`): its binding goes to RESET, committed and
    /// published like any change (so Active Leasequery requestors see it at once, RFC 6926 §6.2.7), and this
    /// returns the binding once it is durable.
    pub async fn reset(&self, ip: Ipv4Addr) -> Result<Binding, ResetError> {
        let now = unix_now();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let b = {
            let mut engine = self.engine();
            let b = engine.reset(ip, now).ok_or(ResetError::NoBinding(ip))?;
            self.update_gauges(&engine, &[ip]);
            let ticket = self.feed.ticket(now);
            let pending = Some(self.store.commit(now, vec![b.clone()]));
            let started = std::time::Instant::now();
            let job = Job {
                pending,
                ticket,
                started,
                reply: None,
                on_conflict: None,
                ips: vec![ip],
                requester: None,
                done: Some(tx),
            };
            // Under the engine lock, like a client's decision, so it is completed in decision order.
            self.jobs.send(Work::Job(job)).map_err(|_| ResetError::Stopped)?;
            b
        };
        rx.await.map_err(|_| ResetError::Stopped)??;
        Ok(b)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn LeaseStore> {
        &self.store
    }

    /// Re-read addresses from the store into the engine (after a refused commit).
    fn resync(&self, ips: &[Ipv4Addr]) {
        for &ip in ips {
            match self.store.get(ip) {
                Ok(Some(c)) => self.engine().learn(c.binding),
                Ok(None) => self.engine().unlearn(ip),
                Err(e) => tracing::warn!(%ip, error = %e, "re-reading a refused address failed"),
            }
        }
        self.update_gauges(&self.engine(), ips);
    }

    /// Take in the shared store's change feed: other servers' changes into the engine, every change onto
    /// this server's feed, in sequence order.
    async fn follow(self: Arc<Self>, mut changes: SharedChanges, mut shutdown: watch::Receiver<bool>) {
        loop {
            let batch = tokio::select! {
                b = changes.recv() => match b {
                    Some(b) => b,
                    None => {
                        tracing::error!("the shared store's change feed ended");
                        return;
                    }
                },
                _ = shutdown.wait_for(|s| *s) => return,
            };
            {
                let mut engine = self.engine();
                let mut learned = Vec::new();
                for c in batch.iter().filter(|c| c.binding.data_source.is_remote()) {
                    tracing::debug!(seq = c.seq, ip = %c.binding.ip, state = %c.binding.state, "binding committed by another server");
                    engine.learn(c.binding.clone());
                    learned.push(c.binding.ip);
                }
                self.update_gauges(&engine, &learned);
            }
            if let Some(v) = &self.view {
                v.apply(&batch);
            }
            let last = batch.last().map(|c| (c.seq, c.time));
            let mut out = Outgoing::default();
            out.add(batch, None);
            let mut f = self.shared_feed.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((through, time)) = last {
                // The new floor is held before the old one goes, and the old one only once this batch is out.
                let old = f.settled.replace(self.feed.ticket(time));
                out.add(Vec::new(), old);
                // Own commits carried so far go with this batch: released once it is broadcast.
                f.published_through = f.published_through.max(through);
                while f.awaiting.front().is_some_and(|(seq, _)| *seq <= through) {
                    out.add(Vec::new(), f.awaiting.pop_front().map(|(_, t)| t));
                }
            }
            // Handed over under the lock: a commit that finds itself published already (`release_after_feed`)
            // queues its ticket behind this batch, never before it.
            self.publisher.publish(&mut out);
            drop(f);
        }
    }

    /// The store picks what to forget inside its writer, ordered with commits: a list computed here could
    /// name an address re-leased before the forget ran, and lose that lease.
    async fn forget_old(&self, now: u32) {
        let retention = self.retention.load(std::sync::atomic::Ordering::Relaxed);
        let forgot = self.store.forget_expired(now, retention, 10_000).await;
        if let (Some(v), Ok(f)) = (&self.view, &forgot) {
            v.forgotten(&f.removed);
            v.prune(now, retention);
        }
        match forgot {
            Ok(f) if !f.removed.is_empty() => {
                let removed: Vec<Binding> = f.removed.into_iter().map(|c| c.binding).collect();
                tracing::debug!(count = removed.len(), horizon = f.horizon, "forgot old records");
                let mut engine = self.engine();
                engine.forgotten(&removed);
                let ips: Vec<Ipv4Addr> = removed.iter().map(|b| b.ip).collect();
                self.update_gauges(&engine, &ips);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "forgetting old records failed"),
        }
    }

    /// Bring the binding gauges of the subnets these addresses belong to up to date with the engine's
    /// records: called under the engine lock after every change to them, so the gauges follow each commit (at
    /// most one group commit ahead of the disk) rather than a periodic recount.
    fn update_gauges(&self, engine: &Engine, ips: &[Ipv4Addr]) {
        let mut done: Vec<usize> = Vec::new();
        for &ip in ips {
            let slot = engine.slot_of(ip);
            if !done.contains(&slot) {
                done.push(slot);
                self.metrics.update_bindings(slot, &engine.state_counts(slot));
            }
        }
    }
}

fn socket_addr(dest: Destination) -> SocketAddr {
    match dest {
        Destination::Unicast(a) => SocketAddr::V4(a),
        Destination::Broadcast => SocketAddr::from((Ipv4Addr::BROADCAST, 68)),
    }
}

/// Requested socket buffer size for the DHCP sockets.
const SOCKET_BUFFER: usize = 4 << 20;

/// A DHCP socket. Neither SO_REUSEADDR nor SO_REUSEPORT: with either, a second server on the same address (or
/// interface) would bind too and the two would answer the same clients from two lease databases. Interface
/// sockets all use 0.0.0.0:67 yet do not conflict, being bound to different devices (SO_BINDTODEVICE before
/// bind); a second instance on the same interface is refused like one on the same address.
fn open_socket(addr: SocketAddr, iface: Option<&str>) -> Result<UdpSocket, ServeError> {
    let what = iface.map_or_else(|| format!("DHCP (UDP) {addr}"), |i| format!("DHCP (UDP) {addr} on {i}"));
    let fail = |source| ServeError::Listen { what: what.clone(), source };
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(fail)?;
    s.set_broadcast(true).map_err(fail)?;
    // Bursts (a relay restarting, a perfdhcp run) overflow the default ~200 KiB queue and the kernel drops
    // datagrams before we see them; ask for more (the kernel caps it at net.core.rmem_max/wmem_max).
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    if let Some(i) = iface {
        s.bind_device(Some(i.as_bytes())).map_err(fail)?;
    }
    s.bind(&addr.into()).map_err(fail)?;
    s.set_nonblocking(true).map_err(fail)?;
    UdpSocket::from_std(s.into()).map_err(fail)
}

/// Every record of the store in address order, packed, fetched a page at a time.
fn load_packed(store: &dyn LeaseStore) -> Result<Vec<(Ipv4Addr, Packed)>, StoreError> {
    const PAGE: usize = 10_000;
    let mut out: Vec<(Ipv4Addr, Packed)> = Vec::with_capacity(store.len().map_or(0, |n| n as usize));
    loop {
        let page = store.scan_packed(out.last().map(|r| r.0), PAGE)?;
        let done = page.len() < PAGE;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// A reservation whose address another client's live lease holds cannot be honoured until that lease ends:
/// said at start and on every reload, so the operator can delete the lease (`leasewire ctl leases delete`).
fn report_reservation_conflicts(engine: &Engine) {
    for c in engine.reservation_conflicts() {
        tracing::warn!(ip = %c.ip, reservation = %c.name, holder = %c.holder, "{c}");
    }
}
