//! Connections to a server's Leasequery TCP port: plain, or TLS after DHCPTLS (RFC 7724 §7.2), behind one
//! type so the Bulk and Active drivers do not care which.

use crate::tls::ClientTls;
use leasewire_proto::Message;
use leasewire_proto::framing::FrameDecoder;
use leasewire_proto::session::requestor::dhcptls;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// A server to talk to.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its Leasequery TCP address.
    pub addr: SocketAddr,
    /// Secure mode (DHCPTLS, then mutual TLS), or insecure when `None` (RFC 7724 §7.2).
    pub tls: Option<Arc<ClientTls>>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.addr)
    }
}

/// Why a connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// TCP connect failed or timed out (ALQ-7.1-1).
    #[error("connecting: {0}")]
    Connect(io::Error),
    /// No answer to DHCPTLS in time, or the server closed: outcomes 1 and 2 of ALQ-7.2-5.
    #[error("no answer to DHCPTLS (the server does not do TLS?)")]
    NoTlsAnswer,
    /// TLSConnectionRefused or another answer than DHCPTLS: outcome 3 of ALQ-7.2-5; never fall back to the
    /// clear on this connection (ALQ-7.2-6).
    #[error("the server refused TLS")]
    TlsRefused,
    /// The handshake failed, e.g. the server's certificate did not validate (ALQ-7.2-8/10).
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
    /// The server answered our certificate with a TLS alert (during the handshake, or with TLS 1.3 on the
    /// first read after it): it is not from the server's CA, or not on its allow-list.
    #[error(
        "the server refused this requestor's certificate (TLS alert {0}): it must be signed by the CA the server \
         trusts and allowed by its allow-names, allow-cn or allow-spki"
    )]
    CertificateRefused(String),
    /// A query sent in the clear was met with a close, and the server answers DHCPTLS: it runs in secure mode
    /// (RFC 7724 §8.1, ALQ-8.1-9) and takes nothing before TLS.
    #[error(
        "the server requires TLS (RFC 7724 secure mode) and closed the connection on a query sent in the clear: \
         this requestor needs a client certificate, its key and the CA that signs the server"
    )]
    TlsRequired,
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A connection, in the clear or inside TLS.
#[derive(Debug)]
pub enum Conn {
    /// Insecure mode.
    Plain(TcpStream),
    /// Secure mode, after DHCPTLS.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    /// Whether the connection is inside TLS (each DHCP message must then be written on its own, ALQ-5.1-2).
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }
}

/// TCP connect with a deadline, no Nagle (messages are small and latency matters).
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ConnError> {
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(r) => r.map_err(ConnError::Connect)?,
        Err(_) => return Err(ConnError::Connect(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))),
    };
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// The TLS handshake as client on `tcp`, validating the server's certificate (ALQ-7.2-7/8).
pub async fn handshake(tcp: TcpStream, tls: &ClientTls, timeout: Duration) -> Result<Conn, ConnError> {
    let name = tls.server_name(tcp.peer_addr()?.ip());
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => Ok(Conn::Tls(Box::new(s))),
        Ok(Err(e)) => Err(match from_io(e) {
            ConnError::Io(e) => ConnError::Handshake(e),
            refused => refused,
        }),
        Err(_) => Err(ConnError::Handshake(io::Error::new(io::ErrorKind::TimedOut, "handshake timed out"))),
    }
}

/// Connect to `target` and, in secure mode, negotiate TLS with DHCPTLS (`xid`) before anything else: the
/// opening of a Bulk Leasequery connection to a secure server.
pub async fn open(target: &Target, xid: u32, timeout: Duration) -> Result<Conn, ConnError> {
    let mut tcp = connect(target.addr, timeout).await?;
    let Some(tls) = &target.tls else { return Ok(Conn::Plain(tcp)) };
    let mut request = Vec::new();
    dhcptls::write_request(xid, &mut request);
    tcp.write_all(&request).await?;
    // Read exactly the answer: the server sends nothing more until our ClientHello.
    let mut buf = Vec::new();
    let answer = loop {
        if let Some((body, used)) = FrameDecoder::default().decode(&buf).map_err(|_| ConnError::TlsRefused)? {
            if used != buf.len() {
                return Err(ConnError::TlsRefused);
            }
            break Message::decode(body).map(|m| dhcptls::answer(&m, xid)).unwrap_or(dhcptls::Answer::Refused);
        }
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(timeout, tcp.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) => return Err(ConnError::NoTlsAnswer),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e.into()),
        }
    };
    match answer {
        dhcptls::Answer::Proceed => handshake(tcp, tls, timeout).await,
        dhcptls::Answer::Refused => Err(ConnError::TlsRefused),
    }
}

/// An I/O error on a TLS connection, with a refusal of our certificate told apart: TLS 1.3 finishes the
/// client's handshake before the server has checked the client certificate, so the server's alert arrives on
/// the first read or write.
pub fn from_io(e: io::Error) -> ConnError {
    use rustls::AlertDescription as A;
    let alert = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).and_then(|r| match r {
        rustls::Error::AlertReceived(a) => Some(*a),
        _ => None,
    });
    match alert {
        Some(
            a @ (A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied
            | A::CertificateRequired),
        ) => ConnError::CertificateRefused(format!("{a:?}")),
        _ => ConnError::Io(e),
    }
}

/// Whether the server at `addr` answers DHCPTLS with a go-ahead: asked after a query in the clear met a
/// silent close, to tell "this server requires TLS" from other reasons to close (nothing else is sent).
pub async fn answers_dhcptls(addr: SocketAddr, timeout: Duration) -> bool {
    let probe = async {
        let mut tcp = connect(addr, timeout).await.ok()?;
        let xid = crate::fresh_xid();
        let mut request = Vec::new();
        dhcptls::write_request(xid, &mut request);
        tcp.write_all(&request).await.ok()?;
        let mut buf = Vec::new();
        loop {
            if let Some((body, _)) = FrameDecoder::default().decode(&buf).ok()? {
                let m = Message::decode(body).ok()?;
                return Some(dhcptls::answer(&m, xid) == dhcptls::Answer::Proceed);
            }
            let mut chunk = [0u8; 1024];
            match tcp.read(&mut chunk).await.ok()? {
                0 => return None,
                n => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(timeout, probe).await.ok().flatten().unwrap_or(false)
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why [`write_within`] failed.
#[derive(Debug)]
pub enum WriteFailed {
    /// The write itself failed.
    Io(io::Error),
    /// The connection took nothing for this long: it is blocked (BLQ-7.2-6, ALQ-7.3-9).
    Blocked(Duration),
}

/// [`write_frames`], given up when it stays blocked for `timeout`: the requestor's own timer of RFC 6926 §7.2
/// and RFC 7724 §7.3 (BULK_LQ_DATA_TIMEOUT), independent of TCP's. The Bulk and Active drivers write their
/// queries through it.
pub async fn write_within(conn: &mut Conn, bytes: &[u8], timeout: Duration) -> Result<(), WriteFailed> {
    match tokio::time::timeout(timeout, write_frames(conn, bytes)).await {
        Ok(r) => r.map_err(WriteFailed::Io),
        Err(_) => Err(WriteFailed::Blocked(timeout)),
    }
}

/// Write `bytes` (whole frames) so that inside TLS each DHCP message is sealed in its own record (ALQ-5.1-2).
pub async fn write_frames(conn: &mut Conn, bytes: &[u8]) -> io::Result<()> {
    if conn.is_tls() {
        for f in leasewire_proto::framing::frames(bytes) {
            conn.write_all(f).await?;
            conn.flush().await?;
        }
    } else {
        conn.write_all(bytes).await?;
    }
    Ok(())
}
