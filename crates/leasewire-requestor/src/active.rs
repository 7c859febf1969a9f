//! One Active Leasequery connection (RFC 7724 §7): a thin tokio driver around the sans-IO
//! [`ActiveRequestor`]. It connects, negotiates TLS when the target is secure, sends the query, and hands
//! every event — with the base-time to save after it — to the caller until the connection ends. Retrying is
//! the caller's business ([`crate::watch`]).

use crate::conn::{self, Conn, ConnError, Target};
use leasewire_proto::session::requestor::active::{ActiveError, ActiveEvent, ActiveRequestor};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

pub use leasewire_proto::session::requestor::active::ACTIVE_LQ_RCV_TIMEOUT;

/// Timers of a connection.
#[derive(Debug, Clone, Copy)]
pub struct ActiveOptions {
    /// ACTIVE_LQ_RCV_TIMEOUT: nothing received for this long ends the connection (ALQ-7.4-4).
    pub rcv_timeout: Duration,
    /// TCP connect and TLS handshake, each (silence after DHCPTLS is the receive timeout's).
    pub connect_timeout: Duration,
    /// A write blocked this long ends the connection (ALQ-7.3-9: BULK_LQ_DATA_TIMEOUT).
    pub write_timeout: Duration,
}

impl Default for ActiveOptions {
    fn default() -> Self {
        Self {
            rcv_timeout: ACTIVE_LQ_RCV_TIMEOUT,
            connect_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(300),
        }
    }
}

/// What the connection reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The query went out (inside TLS when `tls`).
    Streaming {
        /// Secure mode.
        tls: bool,
        /// The query-start-time sent, if any.
        query_start_time: Option<u32>,
    },
    /// A session event, and the base-time to save once it is applied (ALQ-7.3-6/7, ALQ-7.4.1-8/9).
    Event {
        /// The event.
        event: ActiveEvent,
        /// What to use as query-start-time next time.
        saved: Option<u32>,
    },
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ActiveEnd {
    /// We were asked to stop, or the consumer went away.
    #[error("stopped")]
    Stopped,
    /// Connecting or negotiating TLS failed.
    #[error(transparent)]
    Conn(#[from] ConnError),
    /// The session ended: refusal, timeout, QueryTerminated, bad input.
    #[error(transparent)]
    Session(#[from] ActiveError),
    /// The server closed the connection without a termination message.
    #[error("the server closed the connection")]
    Closed,
    /// The server closed the connection in answer to DHCPACTIVELEASEQUERY, before any reply: RFC 7724 §8.1.1
    /// has a server close on a message it does not support, and a server in secure mode on anything before
    /// TLS (that case is `ConnError::TlsRequired`).
    #[error(
        "the server closed the connection without answering DHCPACTIVELEASEQUERY: it does not offer Active \
         Leasequery (RFC 7724), or not to this requestor"
    )]
    NoActiveLeasequery,
    /// The query could not be written for the write timeout (ALQ-7.3-9).
    #[error("the server did not take the query for {0:?}")]
    WriteTimeout(Duration),
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Run one connection to `target` with `saved` as query-start-time. Returns the base-time to save and why
/// the connection ended.
pub async fn run(
    target: &Target,
    saved: Option<u32>,
    opts: ActiveOptions,
    stop: &mut watch::Receiver<bool>,
    progress: &mpsc::Sender<Progress>,
) -> (Option<u32>, ActiveEnd) {
    let xid = crate::fresh_xid();
    let mut session = ActiveRequestor::new(xid, saved, target.tls.is_some(), opts.rcv_timeout, now());
    // What the consumer has actually received: an event taken from the session but not handed over (the
    // send was cancelled by a stop) must not count.
    let mut handed_over = saved;
    let end = tokio::select! {
        end = drive(target, &mut session, opts, progress, &mut handed_over) => end,
        _ = stop.wait_for(|s| *s) => ActiveEnd::Stopped,
    };
    (handed_over, end)
}

async fn drive(
    target: &Target,
    s: &mut ActiveRequestor,
    opts: ActiveOptions,
    progress: &mpsc::Sender<Progress>,
    handed_over: &mut Option<u32>,
) -> ActiveEnd {
    let mut conn = match conn::connect(target.addr, opts.connect_timeout).await {
        Ok(tcp) => Conn::Plain(tcp),
        Err(e) => return e.into(),
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut announced = false;
    let mut answered = false;
    'io: loop {
        if let Some(bytes) = s.poll_transmit() {
            // ALQ-7.3-9: a write blocked for the write timeout ends the connection.
            match conn::write_within(&mut conn, &bytes, opts.write_timeout).await {
                Ok(()) => {}
                Err(conn::WriteFailed::Io(e)) => return ActiveEnd::Conn(conn::from_io(e)),
                Err(conn::WriteFailed::Blocked(d)) => return ActiveEnd::WriteTimeout(d),
            }
            // The query is the first thing written once in the clear or in TLS.
            if !announced && (target.tls.is_none() || conn.is_tls()) {
                announced = true;
                let p = Progress::Streaming { tls: conn.is_tls(), query_start_time: s.saved_base_time() };
                if progress.send(p).await.is_err() {
                    return ActiveEnd::Stopped;
                }
            }
        }
        while let Some(event) = s.poll_event() {
            if event == ActiveEvent::StartTls {
                let (Conn::Plain(tcp), Some(tls)) = (conn, &target.tls) else {
                    unreachable!("StartTls comes once, in secure mode, on the plain connection")
                };
                conn = match conn::handshake(tcp, tls, opts.connect_timeout).await {
                    Ok(c) => c,
                    // ALQ-7.2-10: no working TLS, close.
                    Err(e) => return e.into(),
                };
                s.tls_established();
                continue 'io;
            }
            let saved = s.saved_base_time();
            if progress.send(Progress::Event { event, saved }).await.is_err() {
                return ActiveEnd::Stopped;
            }
            *handed_over = saved;
        }
        if let Some(e) = s.error() {
            let _ = conn.shutdown().await;
            return ActiveEnd::Session(e.clone());
        }
        let deadline = s
            .poll_timeout()
            .map_or_else(|| tokio::time::Instant::now() + opts.rcv_timeout, tokio::time::Instant::from_std);
        tokio::select! {
            r = conn.read(&mut buf) => match r {
                Ok(0) if answered || !announced => return ActiveEnd::Closed,
                Ok(0) if target.tls.is_none() && conn::answers_dhcptls(target.addr, opts.connect_timeout).await => {
                    return ActiveEnd::Conn(ConnError::TlsRequired);
                }
                Ok(0) => return ActiveEnd::NoActiveLeasequery,
                Ok(n) => {
                    answered |= announced;
                    s.receive(&buf[..n], now())
                }
                Err(e) => return ActiveEnd::Conn(conn::from_io(e)),
            },
            _ = tokio::time::sleep_until(deadline) => s.handle_timeout(now()),
        }
    }
}
