//! The server as one thing to start, reload and stop: the DHCP service, the Leasequery TCP service and the
//! metrics endpoint over one lease store.
//!
//! [`Server`] is built from a validated configuration; [`Server::start`] opens the store (taking the embedded
//! store's lock), binds every socket and returns a [`RunningServer`] once all of them are bound, or a
//! [`ServeError`] naming the address, file or key that stopped it. A [`Reloader`] (cloneable, for a signal
//! handler or a control socket) applies a new configuration atomically: everything that can fail (reading
//! the file, validation, TLS files, the log filter) is done first, and only then is anything swapped.

use crate::clock::unix_now;
use crate::config::{Config, StoreChoice, Validated};
use crate::context::ServiceContext;
use crate::control::protocol::Reloaded;
use crate::control::server::ControlServer;
use crate::control::{BoxFuture, ConfigHandle, Control};
use crate::error::{ReloadError, ServeError};
use crate::feed::ChangeFeed;
use crate::metrics::{Metrics, ResultLabel};
use crate::tcp::{TcpService, TcpSettings};
use crate::udp::dhcp::DhcpService;
use leasewire_store::SharedChanges;
use leasewire_store::{LeaseStore, OpenOptions, PgOptions, PgStore, PgTls, SqliteStore};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

/// The database file inside the data directory.
pub const DB_FILE: &str = "leases.sqlite3";

/// The lock file inside the data directory: held (flock) while a server has the embedded store open, so a
/// second server on the same data directory is refused instead of sharing the database.
pub const LOCK_FILE: &str = "leasewire.lock";

/// The held lock on the data directory (released when dropped, or when the process ends however it ends).
type StoreLock = nix::fcntl::Flock<std::fs::File>;

/// How often a shared store's change feed looks for changes when no notification came (a safety net; the
/// NOTIFY of each commit is what normally wakes it).
const FEED_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Where log filtering is decided. The library only logs through `tracing`; the binary owns the subscriber
/// and gives the server this handle so `server.log-filter` takes effect at start and on reload.
pub trait LogFilter: Send + Sync {
    /// Filter by `filter` (`tracing` directive syntax), or by the process's default when `None`. An invalid
    /// filter is an error and leaves the current one in place.
    fn set(&self, filter: Option<&str>) -> Result<(), String>;
}

/// A server to start.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use leasewire_server::{config::Config, server::Server};
/// let config = Config::load("leasewire.toml".as_ref())?;
/// let running = Server::new(config).config_file("leasewire.toml").start().await?;
/// println!("DHCP on {:?}", running.addrs().dhcp);
/// running.stop().await;
/// # Ok(()) }
/// ```
pub struct Server {
    config: Validated,
    config_path: Option<PathBuf>,
    store: Option<(Arc<dyn LeaseStore>, Option<Following>)>,
    metrics: Option<Arc<Metrics>>,
    log_filter: Option<Arc<dyn LogFilter>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("config_path", &self.config_path).finish_non_exhaustive()
    }
}

impl Server {
    /// A server for `config`, on the store it configures.
    pub fn new(config: Validated) -> Self {
        Self { config, config_path: None, store: None, metrics: None, log_filter: None }
    }

    /// The file `config` was read from: [`Reloader::reload_file`] reads it again.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_path = Some(path.into());
        self
    }

    /// Serve from `store` instead of opening the configured one (tests, the demo, embedding).
    pub fn store(mut self, store: Arc<dyn LeaseStore>) -> Self {
        self.store = Some((store, None));
        self
    }

    /// Serve from a store shared with other servers, whose change feed `changes` carries every server's
    /// commits after a change stamped `after_time` (see [`DhcpService::start_shared`]).
    pub fn shared_store(mut self, store: Arc<dyn LeaseStore>, changes: SharedChanges, after_time: u32) -> Self {
        self.store = Some((store, Some((changes, after_time))));
        self
    }

    /// Count into these metrics (default: fresh ones).
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Apply `server.log-filter` through this handle, at start and on reload.
    pub fn log_filter(mut self, handle: Arc<dyn LogFilter>) -> Self {
        self.log_filter = Some(handle);
        self
    }

    /// Open the store, bind every socket and start serving on the current tokio runtime. Returns once every
    /// socket is bound; any failure is returned (nothing keeps running) naming the address, file or key.
    pub async fn start(self) -> Result<RunningServer, ServeError> {
        let Server { config, config_path, store, metrics, log_filter } = self;
        if let (Some(h), Some(f)) = (&log_filter, &config.server().log_filter) {
            h.set(Some(f)).map_err(|message| ServeError::LogFilter { message })?;
        }
        // The TLS files first: the cheapest failure, and nothing is open yet.
        let tcp_settings = TcpSettings::load(&config)?;
        drop(tcp_settings);
        let metrics: Arc<Metrics> = metrics.unwrap_or_default();
        // The reasons of the services (whether or not they run here), at zero from the start.
        let dropped = crate::udp::leasequery::LqDrop::ALL.iter().map(|r| r.label());
        let rejected = crate::tcp::tls::HandshakeFailure::ALL.iter().map(|f| f.label());
        metrics.known_reasons(
            dropped.chain(crate::tcp::CLOSE_REASONS.iter().copied()),
            crate::tcp::REJECT_REASONS.iter().copied().chain(rejected),
        );
        let metrics_listener = match config.metrics().listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr).await.map_err(|e| ServeError::listen("metrics (TCP)", addr, e))?,
            ),
            None => None,
        };
        let (store, changes, lock) = match store {
            Some((store, changes)) => (store, changes, None),
            None => {
                let c = config.clone();
                tokio::task::spawn_blocking(move || open_store(&c))
                    .await
                    .map_err(|e| ServeError::Thread { what: "the store", source: std::io::Error::other(e) })??
            }
        };
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        let (stop, stop_rx) = watch::channel(false);
        let feed = ChangeFeed::default();
        let ctx = ServiceContext {
            store: store.clone(),
            feed: feed.clone(),
            metrics: metrics.clone(),
            shutdown: stop_rx.clone(),
        };
        let (dhcp, dhcp_done) = match changes {
            None => DhcpService::start(&config, ctx.clone()).await?,
            Some((changes, after_time)) => DhcpService::start_shared(&config, ctx.clone(), changes, after_time).await?,
        };
        // The Leasequery TCP service gets its own runtime, on threads of lower priority than DHCP's.
        let tcp_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("leasewire-lq")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()
            .map_err(|source| ServeError::Thread { what: "the leasequery runtime", source })?;
        let tcp_runtime = BackgroundRuntime(Some(tcp_runtime));
        let (tcp, tcp_addrs, tcp_done) = {
            let (config, ctx) = (config.clone(), ctx.clone());
            let started = tcp_runtime
                .handle()
                .spawn(async move { TcpService::start_service(&config, ctx).await })
                .await
                .map_err(|e| ServeError::Thread { what: "the leasequery service", source: std::io::Error::other(e) })?;
            match started {
                Ok(x) => x,
                Err(e) => {
                    // The DHCP side is up: stop it before reporting (its sockets close with it).
                    let _ = stop.send(true);
                    let _ = dhcp_done.await;
                    return Err(e);
                }
            }
        };
        let metrics_addr = match metrics_listener {
            Some(l) => {
                let addr = l.local_addr().ok();
                let m = metrics.clone();
                tokio::spawn(async move {
                    if let Err(e) = crate::metrics::serve_on(l, m).await {
                        tracing::error!(error = %e, "metrics endpoint failed");
                    }
                });
                tracing::info!(addr = ?addr, "metrics on /metrics");
                addr
            }
            None => None,
        };
        let addrs = Addrs { dhcp: dhcp.local_addrs.clone(), tcp: tcp_addrs, metrics: metrics_addr };
        let control_socket = config.control_socket();
        let reloader = Reloader {
            inner: Arc::new(ReloadInner {
                current: tokio::sync::Mutex::new(config),
                path: config_path,
                dhcp: dhcp.service.clone(),
                tcp,
                metrics: metrics.clone(),
                log_filter,
            }),
        };
        // The control socket last: it reloads through the reloader, and frees addresses through the DHCP service.
        let control = match control_socket {
            Some(path) => {
                let control = Arc::new(Control::new(dhcp.service.clone(), Arc::new(reloader.clone())));
                match ControlServer::start(&path, control, metrics.clone(), stop_rx.clone()).await {
                    Ok(c) => Some(c),
                    Err(e) => {
                        let _ = stop.send(true);
                        let _ = tcp_done.await;
                        let _ = dhcp_done.await;
                        return Err(e.into());
                    }
                }
            }
            None => None,
        };
        Ok(RunningServer {
            control,
            addrs,
            store,
            metrics,
            feed,
            dhcp: dhcp.service,
            reloader,
            stop,
            dhcp_done,
            tcp_done,
            tcp_runtime,
            _lock: lock,
        })
    }
}

/// The addresses a running server is bound to (useful when a port 0 was configured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addrs {
    /// The DHCP UDP sockets.
    pub dhcp: Vec<SocketAddr>,
    /// The Bulk/Active Leasequery TCP listeners (empty when no requestor is allowed).
    pub tcp: Vec<SocketAddr>,
    /// The metrics endpoint.
    pub metrics: Option<SocketAddr>,
}

/// A started server.
pub struct RunningServer {
    /// The control socket of `leasewire ctl`, if configured.
    control: Option<ControlServer>,
    addrs: Addrs,
    store: Arc<dyn LeaseStore>,
    metrics: Arc<Metrics>,
    feed: ChangeFeed,
    dhcp: Arc<DhcpService>,
    reloader: Reloader,
    stop: watch::Sender<bool>,
    dhcp_done: tokio::task::JoinHandle<()>,
    tcp_done: tokio::task::JoinHandle<()>,
    tcp_runtime: BackgroundRuntime,
    /// The embedded store's lock, held as long as the server runs.
    _lock: Option<StoreLock>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer").field("addrs", &self.addrs).finish_non_exhaustive()
    }
}

impl RunningServer {
    /// The bound addresses.
    pub fn addrs(&self) -> &Addrs {
        &self.addrs
    }

    /// The lease store.
    pub fn store(&self) -> &Arc<dyn LeaseStore> {
        &self.store
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The feed of committed changes.
    pub fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    /// The DHCP service.
    pub fn dhcp(&self) -> &Arc<DhcpService> {
        &self.dhcp
    }

    /// The control socket's path, if the server has one (`[control] socket`).
    pub fn control_socket(&self) -> Option<&Path> {
        self.control.as_ref().map(|c| c.path())
    }

    /// A handle that reloads this server's configuration (clone it into signal handlers, control sockets).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Apply `config` now (see [`Reloader::reload`]).
    pub async fn reload(&self, config: Validated) -> Result<ReloadReport, ReloadError> {
        self.reloader.reload(config).await
    }

    /// Stop: Active streams end with QueryTerminated, in-flight commits are drained, then the sockets close.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.tcp_done.await;
        let _ = self.dhcp_done.await;
        if let Some(c) = self.control {
            c.stopped().await;
        }
        drop(self.tcp_runtime);
    }
}

/// A tokio runtime that is shut down in the background when dropped: a runtime dropped the ordinary way
/// from async code panics ("Cannot drop a runtime in a context where blocking is not allowed").
struct BackgroundRuntime(Option<tokio::runtime::Runtime>);

impl BackgroundRuntime {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("present until dropped").handle()
    }
}

impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// The configuration parts that changed and were applied (e.g. `subnet`, `leasequery`,
    /// `bulk-leasequery.allow`, `active-leasequery.tls`).
    pub changed: Vec<String>,
    /// Changed settings that only a restart applies (listen addresses, the store, the user); they keep
    /// their old values until then.
    pub needs_restart: Vec<String>,
}

/// Reloads a running server's configuration; cheap to clone. Reloads are applied one at a time.
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<ReloadInner>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

struct ReloadInner {
    /// The configuration in effect; its lock also serialises reloads.
    current: tokio::sync::Mutex<Validated>,
    path: Option<PathBuf>,
    dhcp: Arc<DhcpService>,
    tcp: Option<Arc<TcpService>>,
    metrics: Arc<Metrics>,
    log_filter: Option<Arc<dyn LogFilter>>,
}

impl Reloader {
    /// The configuration file, if the server was started from one.
    pub fn config_file(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The configuration in effect (waits for a reload in progress).
    pub async fn current(&self) -> Validated {
        self.inner.current.lock().await.clone()
    }

    /// Read the configuration file again and apply it (SIGHUP, `leasewire ctl reload`). A file that does not
    /// read, parse or validate, or whose TLS files or log filter are bad, changes nothing; the error is
    /// logged, counted (`leasewire_reloads_total{result="error"}`) and returned.
    pub async fn reload_file(&self) -> Result<ReloadReport, ReloadError> {
        let Some(path) = self.inner.path.clone() else { return self.count(Err(ReloadError::NoFile)) };
        let loaded = tokio::task::spawn_blocking({
            let path = path.clone();
            move || Config::load(&path)
        })
        .await
        .map_err(|_| ReloadError::Stopped)
        .and_then(|r| r.map_err(|source| ReloadError::Config { path, source }));
        match loaded {
            Ok(config) => self.reload(config).await,
            Err(e) => self.count(Err(e)),
        }
    }

    /// Apply `config`: subnets, pools, options, reservations, lease times, access lists, withheld options,
    /// rate and connection limits, Active timers, TLS files (read again even when their paths did not
    /// change: certificate rotation) and the log filter. Listeners are not restarted; settings that need
    /// one are reported in [`ReloadReport::needs_restart`] and keep their old values.
    pub async fn reload(&self, config: Validated) -> Result<ReloadReport, ReloadError> {
        let result = self.apply(config).await;
        self.count(result)
    }

    fn count(&self, result: Result<ReloadReport, ReloadError>) -> Result<ReloadReport, ReloadError> {
        let label = if result.is_ok() { "ok" } else { "error" };
        self.inner.metrics.reloads.get_or_create(&ResultLabel { result: label.into() }).inc();
        match &result {
            Ok(r) => tracing::info!(changed = ?r.changed, needs_restart = ?r.needs_restart, "configuration reloaded"),
            Err(e) => tracing::error!(error = %e, "reload failed; the configuration in effect is unchanged"),
        }
        result
    }

    async fn apply(&self, mut new: Validated) -> Result<ReloadReport, ReloadError> {
        let inner = &self.inner;
        let mut current = inner.current.lock().await;
        let report = compare(&current, &new);
        // What cannot change without a restart keeps its running value, so the rest of the server sees one
        // consistent configuration.
        new.keep_restart_only(&current);
        // Everything that can fail, before anything changes.
        let tcp_settings = match &inner.tcp {
            Some(_) => Some(TcpSettings::load(&new)?),
            None => None,
        };
        if let Some(h) = &inner.log_filter
            && new.server().log_filter != current.server().log_filter
        {
            h.set(new.server().log_filter.as_deref()).map_err(ReloadError::LogFilter)?;
        }
        inner.dhcp.reconfigure(&new);
        if let (Some(tcp), Some(settings)) = (&inner.tcp, tcp_settings) {
            tcp.apply(settings);
            if let Some(t) = new.active_leasequery().tls.as_ref().filter(|_| new.active_leasequery().enabled) {
                tracing::info!(cert = %t.cert.display(), "TLS certificate, key and CA reloaded");
            }
        }
        *current = new;
        Ok(report)
    }
}

/// The control socket reads and reloads the configuration through the server's reload handle.
impl ConfigHandle for Reloader {
    fn current(&self) -> BoxFuture<'_, Validated> {
        Box::pin(Reloader::current(self))
    }
    fn config_file(&self) -> Option<PathBuf> {
        Reloader::config_file(self).map(Path::to_path_buf)
    }
    fn reload(&self) -> BoxFuture<'_, Result<Reloaded, String>> {
        Box::pin(async move {
            self.reload_file()
                .await
                .map(|r| Reloaded { changed: r.changed, needs_restart: r.needs_restart })
                .map_err(|e| e.to_string())
        })
    }
}

/// Debug text of a value, for comparing configuration parts that do not implement `PartialEq`.
fn text(v: &impl std::fmt::Debug) -> String {
    format!("{v:?}")
}

/// What differs between the running configuration and a new one.
fn compare(old: &Validated, new: &Validated) -> ReloadReport {
    let (o, n) = (old, new);
    let mut r = ReloadReport::default();
    let mut check = |name: &str, changed: bool, restart: bool| {
        if changed {
            if restart { r.needs_restart.push(name.into()) } else { r.changed.push(name.into()) }
        }
    };
    check("server.listen", o.server().listen != n.server().listen, true);
    check("server.interfaces", o.server().interfaces != n.server().interfaces, true);
    check("server.data-dir", o.server().data_dir != n.server().data_dir, true);
    check("server.store", old.store != new.store, true);
    check("server.user", (&o.server().user, &o.server().group) != (&n.server().user, &n.server().group), true);
    check("server.server-id", o.server().server_id != n.server().server_id, false);
    let limits = |s: &crate::config::ServerSection| {
        (
            s.decline_time,
            s.offer_timeout,
            s.retention,
            s.commit_offers,
            s.max_offers_per_circuit,
            s.max_offers_per_relay,
        )
    };
    check("server", limits(o.server()) != limits(n.server()), false);
    check("server.log-filter", o.server().log_filter != n.server().log_filter, false);
    check("metrics.listen", o.metrics().listen != n.metrics().listen, true);
    check("log.leases", o.log().leases != n.log().leases, true);
    check("subnet", text(&old.subnets) != text(&new.subnets), false);
    check("client-class", old.classes != new.classes, false);
    let lq = |v: &Validated| {
        let l = v.leasequery();
        text(&(
            &v.leasequery_allow,
            &l.disclose,
            &l.withhold,
            l.rate_limit,
            l.reserved_as_leased,
            &l.mac_query_prefers,
            &v.requestor_withhold,
        ))
    };
    check("leasequery", lq(old) != lq(new), false);
    check("bulk-leasequery.listen", o.bulk_leasequery().listen != n.bulk_leasequery().listen, true);
    // Turning the TCP service on or off opens or closes its listeners.
    check(
        "bulk-leasequery.allow",
        old.bulk_allow != new.bulk_allow,
        old.bulk_allow.is_empty() != new.bulk_allow.is_empty(),
    );
    let bulk = |b: &crate::config::BulkSection| {
        (
            b.max_connections,
            b.max_pending_connections,
            b.pre_auth_timeout,
            b.max_connections_per_requestor,
            b.max_queries_per_connection,
            b.data_timeout,
            b.max_frame,
        )
    };
    check("bulk-leasequery", bulk(o.bulk_leasequery()) != bulk(n.bulk_leasequery()), false);
    let (oa, na) = (o.active_leasequery(), n.active_leasequery());
    let active =
        |a: &crate::config::ActiveSection| (a.enabled, a.insecure, a.idle_timeout, a.send_timeout, a.max_backlog);
    check("active-leasequery", active(oa) != active(na), false);
    // The files are read again in any case (certificate rotation keeps the paths).
    if na.enabled && na.tls.is_some() {
        r.changed.push("active-leasequery.tls".into());
    }
    r
}

/// Check what `serve` would check before opening anything: the TLS files of Active Leasequery and of the
/// PostgreSQL store (readable, PEM, key matching certificate). For `check-config`.
pub fn check_files(config: &Validated) -> Result<(), ServeError> {
    TcpSettings::load(config)?;
    if let StoreChoice::Postgres { tls: Some(t), .. } = &config.store {
        let client = t.client.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
        crate::tcp::tls::database_client_config(&t.ca, client)
            .map_err(|source| ServeError::tls("server.store", source))?;
    }
    Ok(())
}

/// A shared store's change feed and the commit time of the change it starts after.
type Following = (SharedChanges, u32);

/// The configured store: for the embedded one, the data directory prepared, its lock taken and the
/// database opened; for a shared one, its change feed too (started before the engine loads, so the two
/// overlap).
#[allow(clippy::type_complexity)]
fn open_store(config: &Validated) -> Result<(Arc<dyn LeaseStore>, Option<Following>, Option<StoreLock>), ServeError> {
    match &config.store {
        StoreChoice::Sqlite => {
            // The configuration check requires data-dir with the embedded store.
            let dir = config.server().data_dir.as_deref().ok_or_else(|| ServeError::DataDir {
                path: PathBuf::new(),
                message: "required with the embedded store".into(),
            })?;
            prepare_data_dir(dir)?;
            let lock = take_lock(dir)?;
            let path = dir.join(DB_FILE);
            let store = SqliteStore::open(&path, OpenOptions::new(unix_now()))
                .map_err(|source| ServeError::OpenStore { what: path.display().to_string(), source })?;
            Ok((Arc::new(store), None, Some(lock)))
        }
        StoreChoice::Postgres { url, name, pool_size, tls, .. } => {
            // Optional with a shared store; when given, it holds the control socket: make sure it exists.
            if let Some(dir) = config.server().data_dir.as_deref() {
                prepare_data_dir(dir)?;
            }
            let mut options = PgOptions::new(unix_now(), name.clone());
            // Several servers write this database: let it arbitrate every claim.
            options.guard_claims = true;
            options.pool_size = *pool_size;
            if let Some(t) = tls {
                let client = t.client.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
                let config = crate::tcp::tls::database_client_config(&t.ca, client)
                    .map_err(|source| ServeError::tls("server.store", source))?;
                options.tls = Some(PgTls(config));
            }
            let store = PgStore::open(url, options)
                .map_err(|source| ServeError::OpenStore { what: "server.store".into(), source })?;
            let (from, after_time) = store.journal_end()?;
            let changes = store.follow(from, FEED_POLL);
            tracing::info!(database = store.database(), name = %name, from_seq = from, "lease store: shared PostgreSQL");
            Ok((Arc::new(store), Some((changes, after_time)), None))
        }
    }
}

/// Create the data directory private (0700): the lease database holds every client's hardware address,
/// identifiers, addresses and relay information, as sensitive as the server's own configuration (RFC 4388
/// §7, RFC 7724 §9). An existing directory that others can read is used, with a warning.
fn prepare_data_dir(dir: &Path) -> Result<(), ServeError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let fail = |e: std::io::Error| ServeError::DataDir { path: dir.to_path_buf(), message: e.to_string() };
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            return Err(ServeError::DataDir { path: dir.to_path_buf(), message: "not a directory".into() });
        }
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            tracing::warn!(dir = %dir.display(), mode = format!("{:o}", m.permissions().mode() & 0o777),
                "the data directory is readable by others; the lease database inside is 0600, but consider 0700");
        }
        Ok(_) => {}
        Err(_) => std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(fail)?,
    }
    Ok(())
}

/// Take the data directory's lock, or say that another server holds it. The lock is the kernel's (flock), so
/// it is released when the process dies however it dies; the file itself stays and is harmless.
fn take_lock(dir: &Path) -> Result<StoreLock, ServeError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| ServeError::DataDir { path: dir.to_path_buf(), message: format!("not writable: {e}") })?;
    use nix::fcntl::{Flock, FlockArg};
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(ServeError::Locked { dir: dir.to_path_buf(), lock: path }),
        Err((_, e)) => Err(ServeError::DataDir {
            path: dir.to_path_buf(),
            message: format!("cannot lock {}: {e}", path.display()),
        }),
    }
}

/// Run the calling thread at nice 10: the Leasequery TCP threads. Bulk and Active Leasequery can have a lot to
/// send (100 Active requestors make every DHCP change 100 messages); on a busy machine the DHCP path must still
/// get the CPU first, so a client's ACK never waits behind a requestor (RFC 7724 §6 lets the stream lag and
/// coalesce).
pub fn lower_priority() {
    use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};
    // thread-priority maps its 0..99 scale onto nice 19..-20 for normal threads; 22 is nice 10.
    if let Ok(v) = ThreadPriorityValue::try_from(22u8)
        && let Err(e) = set_current_thread_priority(ThreadPriority::Crossplatform(v))
    {
        tracing::debug!(error = ?e, "could not lower the leasequery thread's priority");
    }
}
