//! The control socket: a Unix stream socket, mode 0600, answering [`super::protocol`] requests.
//!
//! Two checks keep other local users out: the file mode (connecting needs write permission on the socket),
//! and the peer's credentials (SO_PEERCRED) on every connection — only root and the socket file's owner (the
//! user the server runs as, once it dropped privileges) are served; anyone else gets one refusal line and the
//! connection closes. The socket can read every client's binding and free addresses: as sensitive as the
//! lease database.

use super::Control;
use super::protocol::{MAX_LINE, Request, Response, VERSION};
use crate::metrics::Metrics;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

/// Why the control socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another server answers on this socket.
    #[error("control.socket {0}: another server is listening on it")]
    InUse(PathBuf),
    /// Something that is not a socket is in the way.
    #[error("control.socket {0}: exists and is not a socket")]
    NotASocket(PathBuf),
    /// Binding or setting the mode failed.
    #[error("control.socket {path}: {source}")]
    Io {
        /// The socket's path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Most control connections served at once (an operator's shell and a script or two).
const MAX_CONNECTIONS: usize = 16;

/// A listening control socket; the socket file is removed when the server stops.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl ControlServer {
    /// Bind `path` (mode 0600) and serve `control` until `shutdown` turns true. A stale socket file left by
    /// a server that died is replaced; one a live server answers on is an error.
    pub async fn start(
        path: &Path,
        control: Arc<Control>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, ControlError> {
        let io = |source| ControlError::Io { path: path.to_path_buf(), source };
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                if UnixStream::connect(path).await.is_ok() {
                    return Err(ControlError::InUse(path.to_path_buf()));
                }
                std::fs::remove_file(path).map_err(io)?;
            }
            Ok(_) => return Err(ControlError::NotASocket(path.to_path_buf())),
            Err(_) => {}
        }
        let listener = UnixListener::bind(path).map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        tracing::info!(path = %path.display(), "control socket");
        let task = tokio::spawn(accept(listener, path.to_path_buf(), control, metrics, shutdown));
        Ok(Self { path: path.to_path_buf(), task })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wait until it stopped (after the shutdown signal) and its file is gone.
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

async fn accept(
    listener: UnixListener,
    path: PathBuf,
    control: Arc<Control>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Busy: the client sees the connection close and may retry.
            continue;
        };
        let (control, metrics, path, shutdown) = (control.clone(), metrics.clone(), path.clone(), shutdown.clone());
        conns.spawn(async move {
            let _permit = permit;
            serve(stream, &path, &control, &metrics, shutdown).await;
        });
    }
    conns.shutdown().await;
    let _ = std::fs::remove_file(&path);
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Whether the peer may use the socket: root, or the socket file's owner.
fn allowed(stream: &UnixStream, path: &Path) -> Result<(), String> {
    let uid = stream.peer_cred().map_err(|e| format!("cannot read the peer's credentials: {e}"))?.uid();
    let owner = std::fs::metadata(path).map(|m| m.uid()).ok();
    if uid == 0 || Some(uid) == owner {
        return Ok(());
    }
    Err(format!(
        "permission denied: uid {uid} is neither root nor the control socket's owner{}",
        owner.map(|o| format!(" (uid {o})")).unwrap_or_default()
    ))
}

async fn serve(
    mut stream: UnixStream,
    path: &Path,
    control: &Control,
    metrics: &Metrics,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Err(why) = allowed(&stream, path) {
        metrics.control_request("connect", "refused");
        tracing::warn!("control socket: {why}");
        let _ = write(&mut stream, &Response::error(why)).await;
        return;
    }
    control.connection_opened();
    let (read, mut write_half) = stream.split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = Vec::new();
        let mut limited = (&mut reader).take(MAX_LINE as u64 + 1);
        let n = tokio::select! {
            r = limited.read_until(b'\n', &mut line) => r,
            _ = stopped(&mut shutdown) => break,
        };
        match n {
            Ok(0) | Err(_) => break,
            Ok(_) if line.len() > MAX_LINE => {
                metrics.control_request("invalid", "error");
                let _ = write(&mut write_half, &Response::error("request line too long")).await;
                break;
            }
            Ok(_) => {}
        }
        let response = match serde_json::from_slice::<Request>(&line) {
            Ok(r) if r.version != VERSION => {
                metrics.control_request(r.command.label(), "error");
                Response::error(format!(
                    "protocol version {} is not supported (this server speaks {VERSION})",
                    r.version
                ))
            }
            Ok(r) => {
                let label = r.command.label();
                let response = control.handle(r.command).await;
                metrics.control_request(label, if response.ok { "ok" } else { "error" });
                response
            }
            Err(e) => {
                metrics.control_request("invalid", "error");
                Response::error(format!("bad request: {e}"))
            }
        };
        if write(&mut write_half, &response).await.is_err() {
            break;
        }
    }
    control.connection_closed();
}

async fn write(w: &mut (impl AsyncWriteExt + Unpin), r: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await
}
