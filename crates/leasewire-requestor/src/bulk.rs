//! Bulk Leasequery (RFC 6926) from the requestor's side: open a connection (in secure mode DHCPTLS and TLS
//! first, as RFC 7724 §7.2 asks of any query to a secure server), send the queries pipelined (BLQ-7.7-1),
//! yield every event, and close gracefully when all are done (BLQ-7.8-1/2).

use crate::conn::{self, Conn, ConnError, Target};
use leasewire_proto::session::requestor::bulk::{BulkRequest, BulkRequestor, Event, RequestorError};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why a bulk exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    /// Connecting, negotiating TLS or talking to the server failed.
    #[error(transparent)]
    Conn(#[from] ConnError),
    /// The server broke the protocol or went silent.
    #[error(transparent)]
    Protocol(#[from] RequestorError),
    /// The server closed the connection before every query was done (BLQ-7.8-4: results so far are valid).
    #[error("the server closed the connection with {0} quer(ies) unfinished")]
    Closed(usize),
    /// The query ended with a failure status (e.g. NotAllowed, MalformedQuery).
    #[error("the server refused the query: {status} {message}")]
    Refused {
        /// The status.
        status: leasewire_proto::StatusCode,
        /// The status message.
        message: String,
    },
    /// We were asked to stop.
    #[error("stopped")]
    Stopped,
    /// Writing the queries was blocked for BULK_LQ_DATA_TIMEOUT.
    #[error("the server did not take the queries for {0:?}")]
    WriteTimeout(Duration),
}

impl From<std::io::Error> for BulkError {
    fn from(e: std::io::Error) -> Self {
        BulkError::Conn(conn::from_io(e))
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// A running bulk exchange: call [`BulkStream::next`] until it returns `None`.
#[derive(Debug)]
pub struct BulkStream {
    conn: Conn,
    session: BulkRequestor,
    buf: Vec<u8>,
    data_timeout: Duration,
    /// Where to ask whether TLS is required, when a query in the clear meets a silent close.
    plain: Option<SocketAddr>,
    received: bool,
}

impl BulkStream {
    /// Connect to `target` and send `requests` on one connection.
    pub async fn open(target: &Target, requests: &[BulkRequest], data_timeout: Duration) -> Result<Self, BulkError> {
        let first_xid = crate::fresh_xid();
        let mut conn = conn::open(target, first_xid, data_timeout).await?;
        let mut session = BulkRequestor::new(first_xid.wrapping_add(1), data_timeout, now());
        for r in requests {
            session.query(r, now());
        }
        if let Some(bytes) = session.poll_transmit() {
            // BLQ-7.2-6: a write blocked for the data timeout ends the attempt.
            match conn::write_within(&mut conn, &bytes, data_timeout).await {
                Ok(()) => {}
                Err(conn::WriteFailed::Io(e)) => return Err(e.into()),
                Err(conn::WriteFailed::Blocked(d)) => return Err(BulkError::WriteTimeout(d)),
            }
        }
        let plain = target.tls.is_none().then_some(target.addr);
        Ok(Self { conn, session, buf: vec![0u8; 64 * 1024], data_timeout, plain, received: false })
    }

    /// The next binding or DONE; `None` once every query is done (the connection is then closed).
    pub async fn next(&mut self) -> Result<Option<Event>, BulkError> {
        loop {
            if let Some(ev) = self.session.poll_event() {
                return Ok(Some(ev));
            }
            if let Some(e) = self.session.error() {
                let _ = self.conn.shutdown().await;
                return Err(e.clone().into());
            }
            if self.session.outstanding() == 0 {
                let _ = self.conn.shutdown().await;
                return Ok(None);
            }
            let deadline = self
                .session
                .poll_timeout()
                .map_or_else(|| tokio::time::Instant::now() + self.data_timeout, tokio::time::Instant::from_std);
            tokio::select! {
                r = self.conn.read(&mut self.buf) => match r.map_err(conn::from_io)? {
                    0 => return Err(self.closed().await),
                    n => {
                        self.received = true;
                        // BLQ-6.2.6-4: a reply without base-time is in our time context.
                        self.session.wall_clock(crate::unix_now());
                        self.session.receive(&self.buf[..n], now())
                    }
                },
                _ = tokio::time::sleep_until(deadline) => self.session.handle_timeout(now()),
            }
        }
    }
}

impl BulkStream {
    /// Why the server closed: a close before any reply to a query in the clear, from a server that answers
    /// DHCPTLS, means it requires TLS.
    async fn closed(&self) -> BulkError {
        if let (Some(addr), false) = (self.plain, self.received)
            && conn::answers_dhcptls(addr, self.data_timeout.min(Duration::from_secs(10))).await
        {
            return BulkError::Conn(ConnError::TlsRequired);
        }
        BulkError::Closed(self.session.outstanding())
    }
}

/// Blocking convenience for command-line use: run `requests` against a plain server, calling `on_event`
/// for each binding and DONE.
pub fn run(
    server: SocketAddr,
    requests: &[BulkRequest],
    data_timeout: Duration,
    mut on_event: impl FnMut(Event),
) -> Result<(), BulkError> {
    run_target(&Target { addr: server, tls: None }, requests, data_timeout, &mut on_event)
}

/// Blocking: run `requests` against `target` (plain or secure).
pub fn run_target(
    target: &Target,
    requests: &[BulkRequest],
    data_timeout: Duration,
    on_event: &mut dyn FnMut(Event),
) -> Result<(), BulkError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut s = BulkStream::open(target, requests, data_timeout).await?;
        while let Some(ev) = s.next().await? {
            on_event(ev);
        }
        Ok(())
    })
}
