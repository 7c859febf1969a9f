//! Bulk Leasequery (RFC 6926) from the requestor's side over a plain TCP connection: connect, send the
//! queries, hand every event to the caller, and close gracefully when all are done (BLQ-7.8-1/2).

use leasewire_proto::session::bulk_requestor::{BulkRequest, BulkRequestor, Event, RequestorError};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Why a bulk exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    /// Connecting or talking to the server failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server broke the protocol or went silent.
    #[error(transparent)]
    Protocol(#[from] RequestorError),
    /// The server closed the connection before every query was done (BLQ-7.8-4: results so far are valid).
    #[error("the server closed the connection with {0} quer(ies) unfinished")]
    Closed(usize),
}

/// Run `requests` on one connection (pipelined, BLQ-7.7-1), calling `on_event` for each binding and DONE.
pub fn run(
    server: SocketAddr,
    requests: &[BulkRequest],
    data_timeout: Duration,
    mut on_event: impl FnMut(Event),
) -> Result<(), BulkError> {
    let mut stream = TcpStream::connect_timeout(&server, data_timeout)?;
    stream.set_nodelay(true)?;
    let first_xid = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.subsec_nanos());
    let mut s = BulkRequestor::new(first_xid, data_timeout, Instant::now());
    for r in requests {
        s.query(r, Instant::now());
    }
    if let Some(bytes) = s.poll_transmit() {
        // BLQ-7.2-6: a write blocked for the data timeout ends the attempt.
        stream.set_write_timeout(Some(data_timeout))?;
        stream.write_all(&bytes)?;
    }
    let mut buf = vec![0u8; 64 * 1024];
    while s.outstanding() > 0 {
        let wait = s.poll_timeout().map_or(data_timeout, |t| t.saturating_duration_since(Instant::now()));
        stream.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        match stream.read(&mut buf) {
            Ok(0) => return Err(BulkError::Closed(s.outstanding())),
            Ok(n) => s.receive(&buf[..n], Instant::now()),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                s.handle_timeout(Instant::now())
            }
            Err(e) => return Err(e.into()),
        }
        while let Some(ev) = s.poll_event() {
            on_event(ev);
        }
        if let Some(e) = s.error() {
            let _ = stream.shutdown(Shutdown::Both);
            return Err(e.clone().into());
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}
