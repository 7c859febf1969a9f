//! `leasewire serve` and `leasewire check-config`.

use anyhow::Context;
use leasewire_server::config::Config;
use leasewire_server::dhcp_service::{DhcpService, unix_now};
use leasewire_server::feed::ChangeFeed;
use leasewire_server::metrics::Metrics;
use leasewire_server::tcp_service::TcpService;
use leasewire_store::{LeaseStore, OpenOptions, SqliteStore};
use std::path::Path;
use std::sync::Arc;

/// The database file inside the data directory.
pub const DB_FILE: &str = "leases.sqlite3";

pub fn check_config(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    print!("{}: ok\n{}", path.display(), config.summary());
    Ok(())
}

pub fn run(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let dir = &config.raw.server.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating data directory {}", dir.display()))?;
    let store: Arc<dyn LeaseStore> = Arc::new(SqliteStore::open(dir.join(DB_FILE), OpenOptions::new(unix_now()))?);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
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
        let feed = ChangeFeed::default();
        let (running, done) =
            DhcpService::start(&config, store.clone(), feed.clone(), metrics.clone(), stop_rx.clone()).await?;
        let (tcp_addrs, tcp_done) = TcpService::start(&config, store.clone(), feed, metrics, stop_rx).await?;
        if !tcp_addrs.is_empty() {
            tracing::info!(addrs = ?tcp_addrs, "serving bulk leasequery");
        }
        tracing::info!(addrs = ?running.local_addrs, "serving DHCP");
        shutdown_signal().await;
        tracing::info!("shutting down: draining in-flight commits");
        let _ = stop_tx.send(true);
        let _ = tcp_done.await;
        let _ = done.await;
        drop(running);
        tracing::info!("stopped");
        anyhow::Ok(())
    })?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
