//! The requestor side of Active Leasequery (RFC 7724 §7) as a sans-IO state machine: DHCPTLS first in secure
//! mode, then one DHCPACTIVELEASEQUERY with the saved base-time as query-start-time, then the stream — with
//! the base-time bookkeeping of §7.3/§7.4.1 (nothing is saved until catch-up ends; a drop before that keeps
//! the previous value) and ACTIVE_LQ_RCV_TIMEOUT.

use super::bulk::binding_of;
use super::{BadReply, dhcptls};
use crate::framing::{FrameDecoder, encode_frame};
use crate::options::{code, default_prl};
use crate::{Binding, Message, MessageType, Op, StatusCode};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// RFC 7724 §5.3: ACTIVE_LQ_RCV_TIMEOUT.
pub const ACTIVE_LQ_RCV_TIMEOUT: Duration = Duration::from_secs(120);

/// What the requestor learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActiveEvent {
    /// Negotiation done: the driver must run the TLS handshake as client, then call
    /// [`ActiveRequestor::tls_established`].
    StartTls,
    /// A binding (catch-up or live; the requestor cannot tell, ALQ-7.4.1-5), times absolute in server time.
    Binding {
        /// The binding.
        binding: Binding,
        /// The reply's base-time.
        base_time: Option<u32>,
    },
    /// All catch-up data arrived.
    CatchUpComplete,
    /// The server's history does not reach back: fill the gap with a Bulk Leasequery from `from` to `to`
    /// on another connection (ALQ-7.4.1, RFC 7724 §8.3).
    DataMissing {
        /// The query-start-time of this query.
        from: u32,
        /// The DataMissing message's base-time.
        to: u32,
    },
    /// ConnectionActive keep-alive.
    KeepAlive,
}

/// Why the stream ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActiveError {
    /// The server refused TLS or answered DHCPTLS wrongly; in secure mode that ends the connection (ALQ-7.2-6).
    #[error("the server refused TLS")]
    TlsRefused,
    /// Nothing arrived for ACTIVE_LQ_RCV_TIMEOUT (ALQ-7.4-4).
    #[error("nothing received for {0:?}")]
    Timeout(Duration),
    /// The server ended the query (QueryTerminated, or another failure status).
    #[error("the server ended the query: {0}")]
    Terminated(StatusCode),
    /// Bytes that are not frames or messages, or a reply for another xid.
    #[error("bad input from the server: {0}")]
    BadInput(#[from] BadReply),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitTlsAnswer,
    Handshaking,
    Streaming,
}

/// The requestor session of one Active Leasequery connection.
#[derive(Debug)]
pub struct ActiveRequestor {
    state: State,
    xid: u32,
    query_start_time: Option<u32>,
    /// The saved base-time this connection started from (returned unchanged if catch-up never ends).
    previous: Option<u32>,
    caught_up: bool,
    highest: Option<u32>,
    frames: FrameDecoder,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Events not yet taken, each with the base-time to save once it (and everything before it) is applied.
    events: VecDeque<(ActiveEvent, Option<u32>)>,
    /// The base-time to save as of the last event taken: what the caller has, not what was merely decoded.
    delivered: Option<u32>,
    rcv_timeout: Duration,
    last_rx: Instant,
    failed: Option<ActiveError>,
}

impl ActiveRequestor {
    /// A session for a new connection. `saved` is the base-time saved from earlier connections (ALQ-7.3-6),
    /// used as query-start-time; `secure` starts with DHCPTLS.
    pub fn new(xid: u32, saved: Option<u32>, secure: bool, rcv_timeout: Duration, now: Instant) -> Self {
        let mut s = Self {
            state: if secure { State::AwaitTlsAnswer } else { State::Streaming },
            xid,
            query_start_time: saved,
            previous: saved,
            // Without query-start-time there is no catch-up phase: every base-time counts at once.
            caught_up: saved.is_none(),
            highest: saved,
            frames: FrameDecoder::new(u16::MAX as usize),
            rx: Vec::new(),
            tx: Vec::new(),
            events: VecDeque::new(),
            delivered: saved,
            rcv_timeout,
            last_rx: now,
            failed: None,
        };
        if secure {
            // ALQ-7.2-4: DHCPTLS first, with no options but its type; its xid differs from the query's, so a
            // forged plaintext reply cannot borrow the xid the query uses inside TLS.
            dhcptls::write_request(Self::tls_xid(xid), &mut s.tx);
        } else {
            s.send_query();
        }
        s
    }

    fn send_query(&mut self) {
        // ALQ-7.3-2..4: no ciaddr, chaddr or client-id; a unique xid; a parameter request list.
        let mut m = Message::new(Op::BootRequest);
        m.xid = self.xid;
        m.options.set_message_type(MessageType::ActiveLeaseQuery);
        m.options.set(code::PARAMETER_REQUEST_LIST, default_prl::TCP.to_vec());
        if let Some(t) = self.query_start_time {
            m.options.set_u32(code::QUERY_START_TIME, t);
        }
        encode_frame(&m, &mut self.tx).expect("encodes");
    }

    fn tls_xid(xid: u32) -> u32 {
        xid ^ 0x8000_0000
    }

    /// The TLS handshake succeeded (ALQ-7.2-9: the query goes inside TLS).
    pub fn tls_established(&mut self) {
        if self.state == State::Handshaking {
            self.state = State::Streaming;
            self.send_query();
        }
    }

    /// The base-time to save for the next connection (ALQ-7.4-9, ALQ-7.4.1-8/9): the highest received once
    /// catch-up ended, else the one this connection started from — as of the last event taken with
    /// [`ActiveRequestor::poll_event`], so a value never runs ahead of bindings the caller has not seen.
    pub fn saved_base_time(&self) -> Option<u32> {
        self.delivered
    }

    fn current_saved(&self) -> Option<u32> {
        if self.caught_up { self.highest } else { self.previous }
    }

    fn push(&mut self, event: ActiveEvent) {
        let saved = self.current_saved();
        self.events.push_back((event, saved));
    }

    /// Bytes to write.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.tx.is_empty()).then(|| std::mem::take(&mut self.tx))
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ActiveEvent> {
        let (event, saved) = self.events.pop_front()?;
        self.delivered = saved;
        Some(event)
    }

    /// Why the session ended, if it did (close the connection, then retry no sooner than
    /// ACTIVE_LQ_IDLE_TIMEOUT, ALQ-7.1-2).
    pub fn error(&self) -> Option<&ActiveError> {
        self.failed.as_ref()
    }

    /// When to call [`ActiveRequestor::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.failed.is_none()).then(|| self.last_rx + self.rcv_timeout)
    }

    /// ALQ-7.4-4: nothing at all for ACTIVE_LQ_RCV_TIMEOUT ends the connection.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.failed.is_none() && now >= self.last_rx + self.rcv_timeout {
            self.failed = Some(ActiveError::Timeout(self.rcv_timeout));
        }
    }

    /// Bytes arrived.
    pub fn receive(&mut self, bytes: &[u8], now: Instant) {
        if self.failed.is_some() {
            return;
        }
        if !bytes.is_empty() {
            self.last_rx = now;
        }
        let mut rx = std::mem::take(&mut self.rx);
        rx.extend_from_slice(bytes);
        let mut used = 0;
        while self.failed.is_none() && self.state != State::Handshaking {
            match self.frames.decode(&rx[used..]) {
                Ok(Some((frame, n))) => {
                    used += n;
                    if let Err(e) = self.handle_frame(frame) {
                        self.failed = Some(e);
                    }
                }
                Ok(None) => break,
                Err(e) => self.failed = Some(BadReply::Frame(e).into()),
            }
        }
        rx.drain(..used);
        // Bytes after the DHCPTLS answer and before the handshake are not the server's (it waits for our
        // ClientHello): taking them would let anyone on the path inject plaintext into the TLS stream.
        if self.state == State::Handshaking && !rx.is_empty() && self.failed.is_none() {
            self.failed = Some(BadReply::BytesBeforeTls.into());
        }
        self.rx = rx;
    }

    fn handle_frame(&mut self, frame: &[u8]) -> Result<(), ActiveError> {
        let m = Message::decode(frame).map_err(BadReply::from)?;
        if self.state == State::AwaitTlsAnswer {
            // ALQ-7.2-5/6: only a DHCPTLS without status lets TLS proceed; anything else ends the connection.
            return match dhcptls::answer(&m, Self::tls_xid(self.xid)) {
                dhcptls::Answer::Proceed => {
                    self.state = State::Handshaking;
                    self.push(ActiveEvent::StartTls);
                    Ok(())
                }
                dhcptls::Answer::Refused => Err(ActiveError::TlsRefused),
            };
        }
        if m.xid != self.xid {
            return Err(BadReply::WrongXid { got: m.xid, expected: self.xid }.into());
        }
        let t = m.message_type().ok_or(BadReply::NoMessageType)?;
        let base = m.options.base_time();
        match (t, m.options.status_code()) {
            (MessageType::LeaseActive | MessageType::LeaseUnassigned, _) => {
                let (binding, base_time) = binding_of(&m, t);
                self.note_base(base);
                self.push(ActiveEvent::Binding { binding, base_time });
            }
            (MessageType::LeaseQueryStatus, Some(StatusCode::CatchUpComplete)) => {
                self.caught_up = true;
                self.note_base(base);
                self.push(ActiveEvent::CatchUpComplete);
            }
            (MessageType::LeaseQueryStatus, Some(StatusCode::DataMissing)) => {
                // ALQ-7.4.1-4: DataMissing carries the server's time; without it there is no gap to fill.
                let to = base.ok_or(BadReply::DataMissingWithoutBaseTime)?;
                self.caught_up = true;
                self.note_base(base);
                self.push(ActiveEvent::DataMissing { from: self.query_start_time.unwrap_or(0), to });
            }
            (MessageType::LeaseQueryStatus, Some(StatusCode::ConnectionActive)) => {
                self.push(ActiveEvent::KeepAlive);
            }
            // ALQ-7.1-2 note: treat DONE or STATUS with a terminating status alike.
            (MessageType::LeaseQueryStatus | MessageType::LeaseQueryDone, status) => {
                return Err(ActiveError::Terminated(status.unwrap_or(StatusCode::UnspecFail)));
            }
            (other, _) => return Err(BadReply::Unexpected(other).into()),
        }
        Ok(())
    }

    fn note_base(&mut self, base: Option<u32>) {
        // ALQ-7.3-7: nothing is recorded before catch-up ends.
        if self.caught_up
            && let Some(b) = base
        {
            self.highest = Some(self.highest.map_or(b, |h| h.max(b)));
        }
    }
}

#[cfg(test)]
mod pair_tests;
