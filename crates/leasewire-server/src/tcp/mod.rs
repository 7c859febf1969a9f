//! The tokio driver of Leasequery over TCP (RFC 6926, RFC 7724 §8.1): accept with limits and access control,
//! then run one sans-IO [`ServerSession`] per connection, fetching store pages on the blocking pool.
//!
//! Connections live in two budgets so that hostile peers cannot starve legitimate ones (RFC 6926 §9, RFC 7724
//! §9: connection exhaustion by peers that send invalid, partial or no queries):
//!
//! * **pending**: accepted, no query accepted yet (in secure mode: DHCPTLS, handshake, allow-list and the
//!   first query still to come). At most `max-pending-connections`; when full, a new connection evicts the
//!   oldest pending connection of the source holding the most, and every pending connection is closed at the
//!   pre-authentication deadline whatever it trickles in.
//! * **admitted**: a query was accepted. At most `max-connections` (BULK_LQ_MAX_CONNS); a connection that
//!   is admitted beyond it is closed at once (BLQ-8.1-2). An established requestor never loses its slot to a
//!   newcomer.
//!
//! Both count against `max-connections-per-requestor` per source address, and a source outside the allow
//! list is closed right after accept. Every refusal is counted by reason in `tcp_connections_rejected`.
//!
//! Secure mode (RFC 7724 §8.1) is in [`tls`] (the rustls configuration and handshake failures) and
//! [`tls_allow`] (which requestors may talk to this server).

pub mod tls;
pub mod tls_allow;

use crate::clock::unix_now;
use crate::config::Validated;
use crate::context::ServiceContext;
use crate::error::ServeError;
use crate::feed::{Batch, ChangeFeed, Subscription};
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use ipnet::Ipv4Net;
use leasewire_proto::lq_reply::ReplyPolicy;
use leasewire_proto::session::BulkKey;
use leasewire_proto::session::server::active::{ActiveConfig, ChangesFetch};
use leasewire_proto::session::server::{
    CloseReason, Fetch, FetchError, Output, ServerConfig, ServerSession, TlsPolicy,
};
use leasewire_store::{LeaseStore, ScanFilter, ScanKey};
use rustls::pki_types::CertificateDer;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tls::TlsSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

/// Limits and access rules of the listener.
#[derive(Debug, Clone)]
struct Limits {
    allow: Vec<Ipv4Net>,
    per_requestor: usize,
    max_pending: usize,
}

/// Connections not yet admitted, by accept order (ids grow), each with the signal that evicts it.
#[derive(Debug, Default)]
struct Pending {
    next_id: u64,
    conns: BTreeMap<u64, (IpAddr, Arc<Notify>)>,
}

impl Pending {
    fn add(&mut self, ip: IpAddr) -> Ticket {
        let id = self.next_id;
        self.next_id += 1;
        let evict = Arc::new(Notify::new());
        self.conns.insert(id, (ip, evict.clone()));
        Ticket { id, evict }
    }

    /// Take out the connection to close to make room: the oldest of the source that holds the most pending
    /// connections, so a noisy source evicts its own connections before anyone else's, and among equals the
    /// oldest goes (a legitimate requestor is admitted within a round trip of its accept; a hostile one waits).
    fn evict(&mut self) -> Option<Arc<Notify>> {
        let mut counts: HashMap<IpAddr, usize> = HashMap::new();
        for (ip, _) in self.conns.values() {
            *counts.entry(*ip).or_default() += 1;
        }
        let most = counts.values().copied().max()?;
        let id = self.conns.iter().find(|(_, (ip, _))| counts[ip] == most).map(|(id, _)| *id)?;
        self.conns.remove(&id).map(|(_, n)| n)
    }

    /// Remove a connection; false when it was evicted already.
    fn remove(&mut self, id: u64) -> bool {
        self.conns.remove(&id).is_some()
    }
}

/// A pending connection's registration.
#[derive(Debug)]
struct Ticket {
    id: u64,
    evict: Arc<Notify>,
}

/// What a configuration says about the Leasequery TCP service; a reload replaces it as a whole.
#[derive(Debug, Clone)]
pub struct TcpSettings {
    session: ServerConfig,
    /// Per-requestor withheld options (the session's policy is adjusted per connection).
    config: Validated,
    limits: Limits,
    /// The TLS settings handshakes use (established sessions keep theirs).
    tls: Option<TlsSettings>,
    max_connections: usize,
}

impl TcpSettings {
    /// Everything the service needs from `config`, with the TLS certificate, key and CA read and checked:
    /// the part of starting or reloading that can fail, done before anything changes.
    pub fn load(config: &Validated) -> Result<Self, ServeError> {
        let b = config.bulk_leasequery();
        let mut configured: Vec<(u32, u32)> = config.subnets.iter().flat_map(|s| s.pools.iter().copied()).collect();
        configured.extend(
            config.subnets.iter().flat_map(|s| s.reservations.iter().map(|r| (u32::from(r.ip), u32::from(r.ip)))),
        );
        configured.sort_unstable();
        configured.dedup();
        let lq = config.leasequery();
        let a = config.active_leasequery();
        let tls = match (&a.tls, a.enabled) {
            (Some(t), true) => Some(
                TlsSettings::load(&t.cert, &t.key, &t.ca, tls_allow::AllowList::of(t))
                    .map_err(|source| ServeError::tls("active-leasequery.tls", source))?,
            ),
            _ => None,
        };
        let tls_policy = match (&tls, a.insecure) {
            (None, _) => TlsPolicy::Refuse,
            (Some(_), true) => TlsPolicy::Offer,
            (Some(_), false) => TlsPolicy::Require,
        };
        Ok(TcpSettings {
            config: config.clone(),
            session: ServerConfig {
                policy: ReplyPolicy {
                    server_id: config.server().server_id,
                    disclose: lq.disclose.clone(),
                    withhold: lq.withhold.clone(),
                    // BLQ-6.2.8-2: with a shared store, other servers hold information about our addresses.
                    shared: matches!(config.store, crate::config::StoreChoice::Postgres { .. }),
                },
                max_queries: b.max_queries_per_connection,
                data_timeout: Duration::from_secs(b.data_timeout),
                max_frame: b.max_frame,
                page_size: 1000,
                configured: Arc::from(merge_ranges(configured)),
                available_since: 0,
                tls: tls_policy,
                active: a.enabled.then(|| ActiveConfig {
                    idle_timeout: Duration::from_secs(a.idle_timeout),
                    send_timeout: Duration::from_secs(a.send_timeout),
                    max_backlog: a.max_backlog,
                }),
                pre_auth_timeout: Some(Duration::from_secs(b.pre_auth_timeout)),
                query_types: Default::default(),
            },
            limits: Limits {
                allow: config.bulk_allow.clone(),
                per_requestor: b.max_connections_per_requestor,
                max_pending: b.max_pending_connections,
            },
            tls,
            max_connections: b.max_connections,
        })
    }

    /// Whether an established connection may go on under these settings: its source is still allowed, an
    /// Active stream is still enabled, a connection in the clear is still accepted in the clear, and a TLS
    /// requestor's certificate is still on the allow-list.
    fn still_allows(&self, peer: SocketAddr, active: bool, tls_peer: Option<&[CertificateDer<'static>]>) -> bool {
        let IpAddr::V4(v4) = peer.ip() else { return false };
        if !self.limits.allow.iter().any(|n| n.contains(&v4)) || (active && self.session.active.is_none()) {
            return false;
        }
        match (tls_peer, &self.tls) {
            (None, _) => self.session.tls != TlsPolicy::Require,
            (Some(certs), Some(tls)) => certs.first().is_some_and(|end| tls.allow.check(end.as_ref()).is_ok()),
            // TLS no longer configured: the session's TLS was set up under settings that are gone.
            (Some(_), None) => false,
        }
    }

    /// The session settings for a connection from `peer`.
    fn session_for(&self, peer: SocketAddr, available_since: u32) -> ServerConfig {
        let mut cfg = self.session.clone();
        cfg.available_since = available_since;
        if let IpAddr::V4(v4) = peer.ip() {
            cfg.policy.withhold = self.config.withheld_for(v4);
            cfg.query_types = self.config.query_types_for(v4);
        }
        cfg
    }
}

/// The Leasequery TCP service.
pub struct TcpService {
    /// The current settings; every connection watches it, so a reload reaches established sessions.
    settings: watch::Sender<Arc<TcpSettings>>,
    store: Arc<dyn LeaseStore>,
    feed: ChangeFeed,
    metrics: Arc<Metrics>,
    /// Admitted connections (BULK_LQ_MAX_CONNS).
    slots: Arc<Semaphore>,
    /// Permits to forget rather than return when admitted connections end (max-connections was lowered).
    slots_owed: Arc<std::sync::atomic::AtomicUsize>,
    pending: Mutex<Pending>,
    per_requestor: Mutex<HashMap<IpAddr, usize>>,
    log: LogLimiter,
}

impl std::fmt::Debug for TcpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpService").finish_non_exhaustive()
    }
}

impl TcpService {
    /// Bind the configured addresses and serve until `shutdown` turns true; returns the bound addresses and a
    /// handle that ends when every connection has closed. Nothing is started when no requestor is allowed.
    pub async fn start(
        config: &Validated,
        ctx: ServiceContext,
    ) -> Result<(Vec<SocketAddr>, tokio::task::JoinHandle<()>), ServeError> {
        let (_, addrs, handle) = Self::start_service(config, ctx).await?;
        Ok((addrs, handle))
    }

    /// [`TcpService::start`], also returning the service, for [`TcpService::reconfigure`] (`None` when no
    /// requestor is allowed and nothing was started).
    pub async fn start_service(
        config: &Validated,
        ctx: ServiceContext,
    ) -> Result<(Option<Arc<Self>>, Vec<SocketAddr>, tokio::task::JoinHandle<()>), ServeError> {
        let ServiceContext { store, feed, metrics, shutdown } = ctx;
        if config.bulk_allow.is_empty() {
            return Ok((None, Vec::new(), tokio::spawn(async {})));
        }
        let settings = TcpSettings::load(config)?;
        let mut listeners = Vec::new();
        for addr in &config.bulk_leasequery().listen {
            listeners.push(listen(*addr).map_err(|e| ServeError::listen("Leasequery (TCP)", *addr, e))?);
        }
        let addrs = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
        let service = Arc::new(TcpService {
            slots: Arc::new(Semaphore::new(settings.max_connections)),
            slots_owed: Arc::default(),
            settings: watch::Sender::new(Arc::new(settings)),
            store,
            feed,
            metrics,
            pending: Mutex::new(Pending::default()),
            per_requestor: Mutex::new(HashMap::new()),
            log: LogLimiter::new(Duration::from_secs(10)),
        });
        let me = service.clone();
        let handle = tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for l in listeners {
                tasks.spawn(me.clone().accept_loop(l, shutdown.clone()));
            }
            while tasks.join_next().await.is_some() {}
        });
        Ok((Some(service), addrs, handle))
    }

    /// Read `config`'s TLS files and apply it ([`TcpSettings::load`], then [`TcpService::apply`]); on error
    /// nothing changes.
    pub fn reconfigure(&self, config: &Validated) -> Result<(), ServeError> {
        self.apply(TcpSettings::load(config)?);
        Ok(())
    }

    /// Take new settings (a reload). Listeners stay as they are (their addresses need a restart). New
    /// connections and handshakes use the new settings at once; every established connection re-checks
    /// itself: one the new settings no longer allow (source outside the allow list, Active Leasequery turned
    /// off, TLS now required, certificate name no longer allowed) ends with QueryTerminated, the others go on
    /// with the new reply policy, withheld options and timers without noticing.
    pub fn apply(&self, settings: TcpSettings) {
        let old = self.settings.borrow().max_connections;
        let new = settings.max_connections;
        if new > old {
            // Permits still owed from an earlier lowering are cancelled first.
            let owed = take_up_to(&self.slots_owed, new - old);
            self.slots.add_permits(new - old - owed);
        } else if new < old {
            // Free permits go at once; those held by admitted connections are owed and forgotten as the
            // connections end (see `Admitted`), so nobody is dropped for a lower limit.
            let forgotten = self.slots.forget_permits(old - new);
            self.slots_owed.fetch_add(old - new - forgotten, std::sync::atomic::Ordering::SeqCst);
        }
        self.settings.send_replace(Arc::new(settings));
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stopped(&mut shutdown) => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            };
            if let Some(reason) = self.admit(peer) {
                self.rejected(peer, reason);
                // Closed at once (BLQ-8.1-3, BLQ-9-5): dropping the stream sends FIN.
                drop(stream);
                continue;
            }
            let ticket = {
                let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                if pending.conns.len() >= self.settings.borrow().limits.max_pending
                    && let Some(victim) = pending.evict()
                {
                    // notify_one keeps the permit if the victim is not waiting yet, so it cannot be missed.
                    victim.notify_one();
                }
                pending.add(peer.ip())
            };
            let me = self.clone();
            let sd = shutdown.clone();
            conns.spawn(async move {
                let (active, io) = me.connection(stream, peer, sd, ticket).await;
                if active {
                    me.metrics.active_connections.dec();
                }
                me.release(peer);
                // The connection no longer counts anywhere while its close completes.
                if let Some(io) = io {
                    close_gracefully(io).await;
                }
            });
        }
        // Shutdown: every session sends QueryTerminated and closes (they watch the same signal).
        while conns.join_next().await.is_some() {}
    }

    /// `Some(reason)` when the peer may not connect (not allowed, or too many connections from it).
    fn admit(&self, peer: SocketAddr) -> Option<&'static str> {
        let IpAddr::V4(v4) = peer.ip() else { return Some("not_allowed") };
        let limits = self.settings.borrow().limits.clone();
        if !limits.allow.iter().any(|n| n.contains(&v4)) {
            return Some("not_allowed");
        }
        let mut per = self.per_requestor.lock().unwrap_or_else(|p| p.into_inner());
        let n = per.entry(peer.ip()).or_default();
        if *n >= limits.per_requestor {
            return Some("per_source_limit");
        }
        *n += 1;
        None
    }

    /// Count and (rate-limited) log a connection closed before it was admitted.
    fn rejected(&self, peer: SocketAddr, reason: &'static str) {
        self.metrics.rejected(reason);
        if let Some(suppressed) = self.log.allow(reason) {
            tracing::warn!(%peer, reason, suppressed, "leasequery connection refused");
        }
    }

    /// The session accepted its first query: move the connection from the pending budget to an admitted slot.
    fn promote(&self, ticket: &Ticket) -> Result<Admitted, &'static str> {
        if !self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(ticket.id) {
            return Err("pending_evicted");
        }
        let permit = self.slots.clone().try_acquire_owned().map_err(|_| "max_connections")?;
        Ok(Admitted { permit: Some(permit), owed: self.slots_owed.clone() })
    }

    fn release(&self, peer: SocketAddr) {
        let mut per = self.per_requestor.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per.get_mut(&peer.ip()) {
            *n -= 1;
            if *n == 0 {
                per.remove(&peer.ip());
            }
        }
    }

    /// Serve one connection; returns whether it was counted as an Active stream, and the stream to close
    /// (with [`close_gracefully`]) unless it is gone already.
    async fn connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        shutdown: watch::Receiver<bool>,
        ticket: Ticket,
    ) -> (bool, Option<Io>) {
        let served = self.serve_connection(stream, peer, shutdown, &ticket).await;
        // Gone before admission (closed, timed out, evicted): its pending place is free again.
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(ticket.id);
        served
    }

    async fn serve_connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        mut shutdown: watch::Receiver<bool>,
        ticket: &Ticket,
    ) -> (bool, Option<Io>) {
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let mut io = Io::Plain(rd, wr);
        let mut settings = self.settings.subscribe();
        // The horizon as of now: forgetting moves it while the server runs.
        let horizon = || self.store.history_horizon().unwrap_or(0);
        let cfg = settings.borrow_and_update().session_for(peer, horizon());
        let mut s = ServerSession::new(cfg, tokio::time::Instant::now().into_std());
        // The requestor's verified certificate chain, once TLS is up (re-checked on reload).
        let mut tls_peer: Option<Vec<CertificateDer<'static>>> = None;
        let mut buf = vec![0u8; 16 * 1024];
        let mut shutting_down = *shutdown.borrow();
        // Subscribed the moment the Active query is accepted, before its catch-up scan, so no change falls
        // between the scan and the live stream (duplicates are harmless, gaps are not).
        let mut live: Option<Subscription> = None;
        // Whether this connection counts in the active-connections gauge (the caller decrements it).
        let mut gauge_held = false;
        // The admitted slot, once the session accepted a query; until then the connection is pending.
        let mut slot: Option<Admitted> = None;
        if shutting_down {
            s.shutdown();
        }
        loop {
            while let Some(out) = s.poll_output(unix_now()) {
                // Checked before acting on what the admitting query produced, so a connection over the limit
                // gets nothing but the close (BLQ-8.1-2).
                if slot.is_none() && s.is_admitted() {
                    match self.promote(ticket) {
                        Ok(permit) => slot = Some(permit),
                        Err(reason) => {
                            self.rejected(peer, reason);
                            return (gauge_held, Some(io));
                        }
                    }
                }
                self.subscribe_when_active(&s, &mut live, &mut gauge_held);
                // A shutdown is noticed between writes too, not only while waiting for input: a long answer
                // must end with QueryTerminated rather than run to completion (BLQ-8.5-4).
                if !shutting_down && *shutdown.borrow() {
                    shutting_down = true;
                    s.shutdown();
                }
                match out {
                    Output::Transmit(bytes) => {
                        // BLQ-8.2-1 / ALQ-8.2-1: blocked longer than the data (bulk) or send (active) timeout
                        // while sending: give up.
                        match tokio::time::timeout(s.write_timeout(), io.send(&bytes)).await {
                            Ok(Ok(())) => s.transmitted(bytes.len(), tokio::time::Instant::now().into_std()),
                            Ok(Err(_)) => s.peer_closed(),
                            Err(_) => s.write_blocked(),
                        }
                    }
                    Output::Fetch(f) => {
                        let page = self.fetch(f.clone()).await;
                        s.page(f.xid, page);
                    }
                    Output::FetchChanges(f) => {
                        let page = self.fetch_changes(f).await;
                        // After the read: how far back a change still on its way can be, with whatever the
                        // subscription already holds (ALQ-8.2-9; one call, so the order cannot be got wrong).
                        if let Some(sub) = live.as_mut() {
                            let point = sub.catch_up_point(unix_now());
                            s.undelivered_floor(point.floor);
                            point.queued.iter().flat_map(|b| b.iter()).for_each(|c| s.live(c.clone()));
                            if point.lagged {
                                s.lagged();
                            }
                        }
                        s.changes_page(page);
                    }
                    Output::Close(reason) => {
                        match &reason {
                            CloseReason::PeerClosed | CloseReason::Shutdown => {
                                tracing::debug!(%peer, %reason, "leasequery connection closed")
                            }
                            _ if slot.is_none() => self.rejected(peer, reject_label(&reason)),
                            _ => {
                                let label = close_label(&reason);
                                self.metrics.dropped(label);
                                if let Some(suppressed) = self.log.allow(label) {
                                    tracing::warn!(%peer, %reason, suppressed, "leasequery connection closed");
                                }
                            }
                        }
                        return (gauge_held, Some(io));
                    }
                    Output::StartTls => match self.start_tls(io, peer, &s, ticket).await {
                        Some((upgraded, certs)) => {
                            io = upgraded;
                            tls_peer = Some(certs);
                            s.tls_established();
                        }
                        // ALQ-8.1-17: no TLS connection, no connection.
                        None => return (gauge_held, None),
                    },
                }
            }
            self.subscribe_when_active(&s, &mut live, &mut gauge_held);
            self.metrics.active(s.take_stats(), s.backlog());
            let deadline = s.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                r = io.reader().read(&mut buf), if s.wants_read() => match r {
                    Ok(0) | Err(_) => s.peer_closed(),
                    Ok(n) => s.receive(&buf[..n], tokio::time::Instant::now().into_std()),
                },
                _ = sleep_until(deadline) => s.handle_timeout(tokio::time::Instant::now().into_std()),
                r = next_change(&mut live) => match r {
                    Ok(batch) => {
                        batch.iter().for_each(|c| s.live(c.clone()));
                        // Take whatever else is already queued, so one write carries many changes under load
                        // (fewer wake-ups and syscalls per change).
                        take_queued(&mut live, &mut s, 64);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => s.lagged(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => live = None,
                },
                _ = stopped(&mut shutdown), if !shutting_down => {
                    shutting_down = true;
                    s.shutdown();
                }
                // A reload: go on under the new settings, or end with QueryTerminated if they no longer allow
                // this connection.
                Ok(()) = settings.changed(), if !shutting_down => {
                    let new = settings.borrow_and_update().clone();
                    if new.still_allows(peer, s.is_active(), tls_peer.as_deref()) {
                        s.reconfigure(new.session_for(peer, horizon()));
                    } else {
                        shutting_down = true;
                        self.metrics.dropped("reload_not_allowed");
                        tracing::info!(%peer, "leasequery connection no longer allowed by the new configuration: ending it");
                        s.shutdown_with("no longer allowed by the server's configuration");
                    }
                }
                // A newer connection needed the pending place (see `Pending::evict`).
                _ = ticket.evict.notified(), if slot.is_none() => {
                    self.rejected(peer, "pending_evicted");
                    return (gauge_held, Some(io));
                }
            }
        }
    }

    /// The TLS handshake on the connection's TCP stream, then the requestor's name against the allow-list.
    /// The handshake is bounded by the pre-authentication deadline (else the data timeout) and by eviction.
    /// Failures are logged with their reason (unknown CA, expired, no certificate, not on the allow-list) and
    /// counted by it.
    async fn start_tls(
        &self,
        io: Io,
        peer: SocketAddr,
        s: &ServerSession,
        ticket: &Ticket,
    ) -> Option<(Io, Vec<CertificateDer<'static>>)> {
        let Io::Plain(rd, wr) = io else { return None };
        let tcp = rd.reunite(wr).ok()?;
        let (tls, data_timeout) = {
            let settings = self.settings.borrow();
            (settings.tls.clone()?, settings.session.data_timeout)
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
        let refused = |failure: tls::HandshakeFailure, detail: String| {
            self.metrics.tls_failures.inc();
            self.metrics.rejected(failure.label());
            if let Some(suppressed) = self.log.allow(failure.label()) {
                tracing::warn!(%peer, reason = %failure, %detail, suppressed, "TLS handshake refused");
            }
        };
        let deadline = match s.pre_auth_deadline() {
            Some(d) => tokio::time::Instant::from_std(d),
            None => tokio::time::Instant::now() + data_timeout,
        };
        let stream = tokio::select! {
            r = tokio::time::timeout_at(deadline, acceptor.accept(tcp)) => match r {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    let detail = match tls_allow::refusal_of(&e) {
                        Some(refusal) => refusal.to_string(),
                        None => e.to_string(),
                    };
                    refused(tls::HandshakeFailure::classify(&e), detail);
                    return None;
                }
                Err(_) => {
                    refused(tls::HandshakeFailure::Timeout, "no handshake before the deadline".into());
                    return None;
                }
            },
            _ = ticket.evict.notified() => {
                self.rejected(peer, "pending_evicted");
                return None;
            }
        };
        let certs = stream.get_ref().1.peer_certificates().unwrap_or_default().iter().map(|c| c.clone().into_owned());
        let certs = certs.collect();
        tracing::debug!(%peer, "TLS established");
        let (r, w) = tokio::io::split(stream);
        Some((Io::Tls(r, w), certs))
    }

    /// Subscribe the connection to the feed the moment its Active query is accepted, before the first catch-up
    /// read, so no change falls between the read and the live stream (duplicates are harmless, gaps are not);
    /// it then counts in the active-connections gauge (`gauge_held`: the caller gives it back).
    fn subscribe_when_active(&self, s: &ServerSession, live: &mut Option<Subscription>, gauge_held: &mut bool) {
        if live.is_none() && s.is_active() {
            *live = Some(self.feed.subscribe());
            self.metrics.active_connections.inc();
            *gauge_held = true;
        }
    }

    /// A catch-up page, then whether the history still reaches back to query-start-time (checked after the
    /// read, so a horizon that moved during the read is noticed).
    async fn fetch_changes(&self, f: ChangesFetch) -> Result<(Vec<leasewire_store::BindingChange>, bool), FetchError> {
        let store = self.store.clone();
        let page = tokio::task::spawn_blocking(move || {
            let page = store.changed_since(f.since, f.after_seq, f.limit).map_err(store_failed)?;
            let coverable = store.can_catch_up_from(f.since).map_err(store_failed)?;
            Ok((page, coverable))
        })
        .await
        .unwrap_or(Err(FetchError::Aborted));
        log_fetch_failure(&page);
        page
    }

    async fn fetch(&self, f: Fetch) -> Result<Vec<leasewire_store::BindingChange>, FetchError> {
        let store = self.store.clone();
        let key = match f.request.key {
            BulkKey::All => ScanKey::All,
            BulkKey::Mac { htype, addr } => ScanKey::HardwareAddress { htype, addr },
            BulkKey::ClientId(id) => ScanKey::ClientId(id),
            BulkKey::RemoteId(id) => ScanKey::RemoteId(id),
            BulkKey::RelayId(id) => ScanKey::RelayId(id),
        };
        let mut filter = ScanFilter::new(key);
        filter.changed_on_or_after = f.request.changed_on_or_after;
        filter.changed_on_or_before = f.request.changed_on_or_before;
        let page = tokio::task::spawn_blocking(move || store.scan(&filter, f.after, f.limit).map_err(store_failed))
            .await
            .unwrap_or(Err(FetchError::Aborted));
        log_fetch_failure(&page);
        page
    }
}

fn store_failed(e: leasewire_store::StoreError) -> FetchError {
    FetchError::Store(Box::new(e))
}

/// A failed read ends the query (the session tells the requestor); the cause is for the operator.
fn log_fetch_failure<T>(page: &Result<T, FetchError>) {
    if let Err(e) = page {
        tracing::error!(error = %e, "leasequery store read failed; the query is ended");
    }
}

/// An admitted connection's place under max-connections: returned when the connection ends, unless a lowered
/// limit still owes one (then it is forgotten, and the limit takes effect as connections end).
struct Admitted {
    permit: Option<OwnedSemaphorePermit>,
    owed: Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if take_up_to(&self.owed, 1) == 1
            && let Some(p) = self.permit.take()
        {
            p.forget();
        }
    }
}

/// Take up to `n` from `counter` (never below zero); returns how much was taken.
fn take_up_to(counter: &std::sync::atomic::AtomicUsize, n: usize) -> usize {
    use std::sync::atomic::Ordering;
    let mut taken = 0;
    let _ = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
        taken = v.min(n);
        Some(v - taken)
    });
    taken
}

/// The listen backlog. Larger than tokio's default (1024): under a connection flood, a connection the kernel
/// cannot queue loses the SYN-ACK's ACK, and its client believes it is connected while the server never sees
/// it. The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// A listener. SO_REUSEADDR on a TCP socket only lets it bind over connections in TIME_WAIT (a quick
/// restart); a second listener on the same address is still refused.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How long a closing connection waits for the requestor to close its side too.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Close the connection gracefully, never by abort (BLQ-8.5-1): our side is shut down (FIN, or close_notify
/// then FIN inside TLS), then whatever the requestor still sends is read and dropped until it closes too, for
/// at most [`CLOSE_LINGER`]. A socket closed with unread input is reset by the kernel, and a reset makes the
/// requestor's kernel discard what it has not read yet: the last messages we wrote (QueryTerminated, the end
/// of an answer) would be lost on a requestor that pipelined queries we never read.
/// The whole close is bounded, the shutdown too: inside TLS it writes close_notify, which a requestor that
/// stopped reading would never take.
async fn close_gracefully(mut io: Io) {
    let mut sink = [0u8; 4096];
    let drain = async {
        let _ = io.writer().shutdown().await;
        while let Ok(n) = io.reader().read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, drain).await;
}

/// Resolves once the shutdown flag is set (the watch guard is dropped before returning, keeping callers Send).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// The connection's byte stream: plain TCP, or TLS after DHCPTLS.
enum Io {
    Plain(tokio::net::tcp::OwnedReadHalf, tokio::net::tcp::OwnedWriteHalf),
    Tls(tokio::io::ReadHalf<TlsStream>, tokio::io::WriteHalf<TlsStream>),
}

impl Io {
    fn reader(&mut self) -> &mut (dyn tokio::io::AsyncRead + Unpin + Send) {
        match self {
            Io::Plain(r, _) => r,
            Io::Tls(r, _) => r,
        }
    }

    /// Write a batch of frames. Inside TLS each DHCP message goes in its own write, so rustls seals each in its
    /// own record (RFC 7724 §5.1: one message per TLS record).
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Io::Plain(_, w) => w.write_all(bytes).await,
            Io::Tls(_, w) => {
                for frame in leasewire_proto::framing::frames(bytes) {
                    w.write_all(frame).await?;
                }
                w.flush().await
            }
        }
    }

    fn writer(&mut self) -> &mut (dyn tokio::io::AsyncWrite + Unpin + Send) {
        match self {
            Io::Plain(_, w) => w,
            Io::Tls(_, w) => w,
        }
    }
}

/// Hand the session what the subscription already holds, at most `max` batches (a cap keeps one busy
/// connection from hogging its thread; before CatchUpComplete everything must be taken).
fn take_queued(live: &mut Option<Subscription>, s: &mut ServerSession, max: usize) {
    let Some(rx) = live.as_mut() else { return };
    for _ in 0..max {
        match rx.try_recv() {
            Ok(batch) => batch.iter().for_each(|c| s.live(c.clone())),
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                s.lagged();
                break;
            }
            Err(_) => break,
        }
    }
}

/// The next live change, or never when not subscribed.
async fn next_change(rx: &mut Option<Subscription>) -> Result<Batch, tokio::sync::broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Every `tcp_connections_rejected` reason this module uses besides the TLS ones
/// ([`tls::HandshakeFailure::label`]), so the counters exist at zero from the start.
pub(crate) const REJECT_REASONS: &[&str] = &[
    "not_allowed",
    "per_source_limit",
    "max_connections",
    "pending_evicted",
    "forbidden_message",
    "bad_input",
    "data_timeout",
    "pre_auth_timeout",
    "tls_required",
    "active_refused",
    "closed",
];

/// Every `packets_dropped` reason [`close_label`] gives, registered at zero like [`REJECT_REASONS`].
pub(crate) const CLOSE_REASONS: &[&str] = &[
    "bulk_forbidden_message",
    "bulk_bad_input",
    "bulk_data_timeout",
    "bulk_store_failed",
    "bulk_closed",
    "active_slow_requestor",
    "active_refused",
    "active_tls_required",
    "bulk_pre_auth_timeout",
];

/// The `tcp_connections_rejected` reason for a session that closed before it was admitted.
fn reject_label(r: &CloseReason) -> &'static str {
    match r {
        CloseReason::ForbiddenMessage(_) => "forbidden_message",
        CloseReason::BadFrame(_) | CloseReason::BadMessage(_) => "bad_input",
        CloseReason::Timeout => "data_timeout",
        CloseReason::PreAuthTimeout => "pre_auth_timeout",
        CloseReason::TlsRequired => "tls_required",
        CloseReason::ActiveRefused => "active_refused",
        _ => "closed",
    }
}

fn close_label(r: &CloseReason) -> &'static str {
    match r {
        CloseReason::ForbiddenMessage(_) => "bulk_forbidden_message",
        CloseReason::BadFrame(_) | CloseReason::BadMessage(_) => "bulk_bad_input",
        CloseReason::Timeout => "bulk_data_timeout",
        CloseReason::StoreFailed => "bulk_store_failed",
        CloseReason::PeerClosed | CloseReason::Shutdown | CloseReason::QueryTerminated => "bulk_closed",
        CloseReason::SlowRequestor => "active_slow_requestor",
        CloseReason::ActiveRefused => "active_refused",
        CloseReason::TlsRequired => "active_tls_required",
        CloseReason::PreAuthTimeout => "bulk_pre_auth_timeout",
    }
}

/// Sorted ranges with overlaps and adjacency merged.
fn merge_ranges(sorted: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(sorted.len());
    for (lo, hi) in sorted {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Pending, merge_ranges};
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    #[test]
    fn eviction_takes_the_oldest_of_the_noisiest_source() {
        let a = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let b = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
        let mut p = Pending::default();
        let b1 = p.add(b);
        let a1 = p.add(a);
        let a2 = p.add(a);
        // `a` holds two, `b` one: `a`'s oldest goes although `b`'s is older.
        let victim = p.evict().unwrap();
        assert!(Arc::ptr_eq(&victim, &a1.evict));
        assert!(!p.remove(a1.id), "already gone");
        // Now one each: the oldest overall.
        assert!(Arc::ptr_eq(&p.evict().unwrap(), &b1.evict));
        assert!(p.remove(a2.id));
        assert!(p.evict().is_none());
    }

    #[test]
    fn ranges_merge() {
        assert_eq!(merge_ranges(vec![(1, 5), (3, 8), (9, 9), (20, 30)]), vec![(1, 9), (20, 30)]);
    }
}
