//! `leasewire serve` and `leasewire check-config`.

use anyhow::Context;
use leasewire_server::config::Config;
use leasewire_server::server::Server;
use std::path::Path;
use std::sync::Arc;
use tokio::signal::unix::{Signal, SignalKind, signal};

pub use leasewire_server::server::DB_FILE;

/// `check-config`: everything `serve` checks before opening sockets — the file, and the TLS files it names.
pub fn check_config(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    leasewire_server::server::check_files(&config)?;
    if let Some(f) = &config.server().log_filter {
        crate::logs::check_filter(f).map_err(|e| anyhow::anyhow!("server.log-filter: {e}"))?;
    }
    let text = format!("{}: ok\n{}", path.display(), config.summary());
    // Not print!: that panics when the reader went away (`leasewire check-config ... | head -1`).
    match std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

pub fn run(path: &Path, logs: Arc<crate::logs::Logs>) -> anyhow::Result<()> {
    let config = Config::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let dir = config.server().data_dir.clone();
    let (user, group) = (config.server().user.clone(), config.server().group.clone());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = rt.block_on(async move {
        // The handlers are in place before anything is served: a SIGTERM or SIGHUP that arrives as soon as
        // "serving DHCP" is logged (systemd, a test, an operator's script) must not meet the default action,
        // which ends the process without draining the commits in flight.
        let stop = ShutdownSignal::install()?;
        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let server = Server::new(config).config_file(path).log_filter(logs).start().await?;
        // SIGHUP: read the configuration file again and apply it (see docs/operations.md).
        let reloader = server.reloader();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the configuration");
                // The outcome is logged and counted by the reloader.
                let _ = reloader.reload_file().await;
            }
        });
        // Every socket is bound: root is no longer needed.
        if let Some(user) = &user
            && let Err(e) = drop_privileges(user, group.as_deref(), dir.as_deref(), server.control_socket())
        {
            server.stop().await;
            return Err(e);
        }
        // Logged once the process runs as it will (tests and scripts wait for this line).
        if !server.addrs().tcp.is_empty() {
            tracing::info!(addrs = ?server.addrs().tcp, "serving bulk leasequery");
        }
        tracing::info!(addrs = ?server.addrs().dhcp, "serving DHCP");
        stop.recv().await;
        tracing::info!("shutting down: draining in-flight commits");
        server.stop().await;
        tracing::info!("stopped");
        anyhow::Ok(())
    });
    // Outside async code, so dropping the runtime is allowed: the remaining tasks (the SIGHUP handler) go,
    // and with them the last references to the store, which closes.
    drop(rt);
    result
}

/// SIGTERM or SIGINT (Ctrl-C), caught from the moment it is installed.
pub struct ShutdownSignal {
    term: Signal,
    int: Signal,
}

impl ShutdownSignal {
    /// Install the handlers now (inside a runtime), so that a signal arriving before [`Self::recv`] is
    /// awaited is kept rather than killing the process.
    pub fn install() -> anyhow::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// Resolves at the first SIGTERM or SIGINT since [`Self::install`].
    pub async fn recv(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Resolves at SIGTERM or Ctrl-C (handlers installed on the first poll; see [`ShutdownSignal`] where a signal
/// may come at once).
pub async fn shutdown_signal() {
    match ShutdownSignal::install() {
        Ok(s) => s.recv().await,
        Err(e) => {
            tracing::warn!(error = %e, "no signal handler: only Ctrl-C stops this");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Switch to `user` (and `group`, else the user's primary group) for good: hand the data directory and its
/// files to the user, drop supplementary groups, then the group and user ids (glibc applies setuid to every
/// thread of the process). Changing uid from 0 clears the capabilities, so nothing privileged is left; the
/// check at the end makes sure of it.
fn drop_privileges(user: &str, group: Option<&str>, dir: Option<&Path>, socket: Option<&Path>) -> anyhow::Result<()> {
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
    // The control socket belongs to the user too (its owner is who, besides root, may use it).
    paths.extend(socket.map(Path::to_path_buf));
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
