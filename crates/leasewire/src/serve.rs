//! `leasewire serve` and `leasewire check-config`.

use anyhow::Context;
use leasewire_server::config::{Config, StoreChoice, Validated};
use leasewire_server::dhcp_service::{DhcpService, SharedChanges, unix_now};
use leasewire_server::feed::ChangeFeed;
use leasewire_server::metrics::Metrics;
use leasewire_server::tcp_service::TcpService;
use leasewire_store::{LeaseStore, OpenOptions, PgOptions, PgStore, PgTls, SqliteStore};
use std::path::Path;
use std::sync::Arc;

/// The database file inside the data directory.
pub const DB_FILE: &str = "leases.sqlite3";

pub fn check_config(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let text = format!("{}: ok\n{}", path.display(), config.summary());
    // Not print!: that panics when the reader went away (`leasewire check-config ... | head -1`).
    match std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

pub fn run(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let dir = config.raw.server.data_dir.clone();
    let (store, changes) = open_store(&config.store, dir.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        if let Some(addr) = config.raw.metrics.listen {
            let m = metrics.clone();
            tokio::spawn(async move {
                if let Err(e) = leasewire_server::metrics::serve(addr, m).await {
                    tracing::error!(%addr, error = %e, "metrics endpoint failed");
                }
            });
            tracing::info!(%addr, "metrics on /metrics");
        }
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        let services = Services::start_with(&config, store, metrics, changes).await?;
        // SIGHUP: read the TLS certificate, key and CA again (certificate rotation without dropping sessions).
        let reload = services.reload.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading TLS files");
                let _ = reload.send(());
            }
        });
        if !services.tcp_addrs.is_empty() {
            tracing::info!(addrs = ?services.tcp_addrs, "serving bulk leasequery");
        }
        // Every socket is bound: root is no longer needed.
        if let Some(user) = &config.raw.server.user {
            drop_privileges(user, config.raw.server.group.as_deref(), dir.as_deref())?;
        }
        tracing::info!(addrs = ?services.dhcp_addrs, "serving DHCP");
        shutdown_signal().await;
        tracing::info!("shutting down: draining in-flight commits");
        services.stop().await;
        tracing::info!("stopped");
        anyhow::Ok(())
    })?;
    Ok(())
}

/// The DHCP service and the Leasequery TCP service of one server, running on the current runtime.
pub struct Services {
    /// The UDP DHCP sockets' addresses.
    pub dhcp_addrs: Vec<std::net::SocketAddr>,
    /// The Bulk/Active Leasequery listeners' addresses.
    pub tcp_addrs: Vec<std::net::SocketAddr>,
    /// Send on it to re-read the TLS certificate, key and CA (SIGHUP).
    pub reload: tokio::sync::watch::Sender<()>,
    stop: tokio::sync::watch::Sender<bool>,
    dhcp: (leasewire_server::dhcp_service::Running, tokio::task::JoinHandle<()>),
    tcp: tokio::task::JoinHandle<()>,
    tcp_runtime: tokio::runtime::Runtime,
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

impl Services {
    /// Start both services over `store`.
    pub async fn start(config: &Validated, store: Arc<dyn LeaseStore>, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        Self::start_with(config, store, metrics, None).await
    }

    /// Start both services over `store`; with `changes`, a store shared with other servers whose change feed
    /// (every server's commits) is what this server publishes (see `DhcpService::start_shared`).
    pub async fn start_with(
        config: &Validated,
        store: Arc<dyn LeaseStore>,
        metrics: Arc<Metrics>,
        changes: Option<SharedChanges>,
    ) -> anyhow::Result<Self> {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let feed = ChangeFeed::default();
        let (running, done) = match changes {
            None => DhcpService::start(config, store.clone(), feed.clone(), metrics.clone(), stop_rx.clone()).await?,
            Some(changes) => {
                DhcpService::start_shared(
                    config,
                    store.clone(),
                    feed.clone(),
                    metrics.clone(),
                    stop_rx.clone(),
                    changes,
                )
                .await?
            }
        };
        // The Leasequery TCP service gets its own runtime, on threads of lower priority than DHCP's.
        let tcp_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("leasewire-lq")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        let config_tcp = config.clone();
        let (reload, reload_rx) = tokio::sync::watch::channel(());
        let (tcp_addrs, tcp) =
            tcp_runtime
                .spawn(async move {
                    TcpService::start_reloadable(&config_tcp, store, feed, metrics, stop_rx, reload_rx).await
                })
                .await??;
        let dhcp_addrs = running.local_addrs.clone();
        Ok(Self { dhcp_addrs, tcp_addrs, reload, stop, dhcp: (running, done), tcp, tcp_runtime })
    }

    /// Stop: Active streams end with QueryTerminated, in-flight commits are drained.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.tcp.await;
        let (running, done) = self.dhcp;
        let _ = done.await;
        drop(running);
        // Its tasks are done; a runtime cannot be dropped from async code, so it is let go in the background.
        self.tcp_runtime.shutdown_background();
    }
}

/// How often a shared store's change feed looks for changes when no notification came (a safety net; the
/// NOTIFY of each commit is what normally wakes it).
const FEED_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// The configured store, and for a shared one its change feed (started before the engine loads, so the two
/// overlap).
fn open_store(
    choice: &StoreChoice,
    dir: Option<&Path>,
) -> anyhow::Result<(Arc<dyn LeaseStore>, Option<SharedChanges>)> {
    match choice {
        StoreChoice::Sqlite => {
            // The configuration check requires data-dir with the embedded store.
            let dir = dir.ok_or_else(|| anyhow::anyhow!("server.data-dir: required with the embedded store"))?;
            prepare_data_dir(dir)?;
            let store = SqliteStore::open(dir.join(DB_FILE), OpenOptions::new(unix_now()))?;
            Ok((Arc::new(store), None))
        }
        StoreChoice::Postgres { url, name, pool_size, tls, .. } => {
            let mut options = PgOptions::new(unix_now(), name.clone());
            // Several servers write this database: let it arbitrate every claim.
            options.guard_claims = true;
            options.pool_size = *pool_size;
            if let Some(t) = tls {
                let client = t.client.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
                let config = leasewire_server::tls::database_client_config(&t.ca, client)
                    .map_err(|e| anyhow::anyhow!("server.store: {e}"))?;
                options.tls = Some(PgTls(config));
            }
            let store = PgStore::open(url, options)?;
            let from = store.last_seq()?;
            let changes = store.follow(from, FEED_POLL);
            tracing::info!(database = store.database(), name = %name, from_seq = from, "lease store: shared PostgreSQL");
            Ok((Arc::new(store), Some(changes)))
        }
    }
}

pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Create the data directory private (0700): the lease database holds every client's hardware address,
/// identifiers, addresses and relay information, as sensitive as the server's own configuration (RFC 4388
/// §7, RFC 7724 §9). An existing directory that others can read is used, with a warning.
fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::metadata(dir) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            tracing::warn!(dir = %dir.display(), mode = format!("{:o}", m.permissions().mode() & 0o777),
                "the data directory is readable by others; the lease database inside is 0600, but consider 0700");
        }
        Ok(_) => {}
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?,
    }
    Ok(())
}

/// Switch to `user` (and `group`, else the user's primary group) for good: hand the data directory and its
/// files to the user, drop supplementary groups, then the group and user ids (glibc applies setuid to every
/// thread of the process). Changing uid from 0 clears the capabilities, so nothing privileged is left; the
/// check at the end makes sure of it.
fn drop_privileges(user: &str, group: Option<&str>, dir: Option<&Path>) -> anyhow::Result<()> {
    use nix::unistd::{Gid, Group, Uid, User, chown, setgid, setgroups, setuid};
    let u = User::from_name(user)
        .with_context(|| format!("server.user: looking up {user}"))?
        .ok_or_else(|| anyhow::anyhow!("server.user: no user {user}"))?;
    let gid = match group {
        Some(g) => {
            Group::from_name(g)
                .with_context(|| format!("server.group: looking up {g}"))?
                .ok_or_else(|| anyhow::anyhow!("server.group: no group {g}"))?
                .gid
        }
        None => u.gid,
    };
    if Uid::current() == u.uid {
        return Ok(());
    }
    anyhow::ensure!(Uid::effective().is_root(), "server.user = {user:?}: switching users needs root");
    // With the PostgreSQL store there may be no data directory: nothing to hand over then.
    let mut paths = Vec::new();
    if let Some(dir) = dir.filter(|d| d.is_dir()) {
        paths.push(dir.to_path_buf());
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            paths.push(entry?.path());
        }
    }
    for p in &paths {
        chown(p, Some(u.uid), Some(gid)).with_context(|| format!("handing {} to {user}", p.display()))?;
    }
    setgroups(&[gid]).context("dropping supplementary groups")?;
    setgid(gid).context("setgid")?;
    setuid(u.uid).context("setuid")?;
    anyhow::ensure!(setuid(Uid::from_raw(0)).is_err() && Gid::current() == gid, "privileges were not dropped");
    tracing::info!(user, uid = u.uid.as_raw(), gid = gid.as_raw(), "dropped root privileges");
    Ok(())
}
