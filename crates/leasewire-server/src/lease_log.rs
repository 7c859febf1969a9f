//! The lease log: one INFO line per committed change under the target [`TARGET`], in the shape of ISC
//! dhcpd's `DHCPACK on … to … via …` lines that operators grep and ship to their SIEM:
//!
//! ```text
//! DHCPACK 10.1.2.3 to aa:bb:cc:dd:ee:ff client-id 01:aa:bb:cc:dd:ee:ff via 10.1.0.1 circuit-id "port-3" remote-id 02:00:00:00:00:03 lease 3600 s
//! ```
//!
//! The same values are fields of the event (`event`, `ip`, `mac`, `client_id`, `via`, `circuit_id`,
//! `remote_id`, `lease_secs`), so `--log-format json` gives them as keys.
//!
//! Logging never slows the DHCP path: the completer only pushes a small [`LeaseRecord`] onto a bounded queue
//! (never blocking), and a thread of its own formats and writes the lines. When the queue is full the record
//! is counted instead (`leasewire_lease_log_dropped_total`), and once a second the thread writes one summary
//! line saying how many changes of each kind went unlogged — a flood gives a line per second, not silence.

use crate::metrics::Metrics;
use leasewire_proto::{Binding, DhcpState};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// The tracing target of lease log lines (filter with `LEASEWIRE_LOG=info,leasewire::lease=off`).
pub const TARGET: &str = "leasewire::lease";

/// Records queued for the logging thread before new ones are counted as dropped.
const QUEUE: usize = 8192;

/// What happened to an address, named after the message or event that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEvent {
    /// The client got (or renewed) the lease: the binding is ACTIVE.
    Ack,
    /// An offer committed with `commit-offers` (TRANSITIONING until the client requests it).
    Offer,
    /// The client released the address.
    Release,
    /// The client declined the address (ABANDONED for `decline-time`).
    Decline,
    /// The lease ended without renewal.
    Expire,
    /// An abandoned address (or a committed offer) came free again: AVAILABLE.
    Free,
    /// An operator freed the binding (`leasewire ctl leases delete`; RFC 6926 §6.2.7 RESET).
    Reset,
    /// A state this server does not produce (REMOTE); logged as such.
    Other,
}

impl LeaseEvent {
    /// Every kind, in the order of the flood summary.
    pub const ALL: [Self; 8] =
        [Self::Ack, Self::Offer, Self::Release, Self::Decline, Self::Expire, Self::Free, Self::Reset, Self::Other];

    /// The event a committed binding stands for, from the state it is now in.
    pub fn of(state: DhcpState) -> Self {
        match state {
            DhcpState::Active => Self::Ack,
            DhcpState::Transitioning => Self::Offer,
            DhcpState::Released => Self::Release,
            DhcpState::Abandoned => Self::Decline,
            DhcpState::Expired => Self::Expire,
            DhcpState::Available => Self::Free,
            DhcpState::Reset => Self::Reset,
            DhcpState::Remote => Self::Other,
        }
    }

    /// The word that starts the line (and the `event` field).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ack => "DHCPACK",
            Self::Offer => "DHCPOFFER",
            Self::Release => "DHCPRELEASE",
            Self::Decline => "DHCPDECLINE",
            Self::Expire => "EXPIRE",
            Self::Free => "FREE",
            Self::Reset => "RESET",
            Self::Other => "CHANGE",
        }
    }

    /// "to" the client for what the server gives, "from" it for what it gives back, "of" it otherwise.
    fn preposition(self) -> &'static str {
        match self {
            Self::Ack | Self::Offer => "to",
            Self::Release | Self::Decline => "from",
            _ => "of",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|&e| e == self).unwrap_or(0)
    }
}

/// Who asked for a change, as far as the lease log cares: the relay it came through and the client's
/// hardware address. Copied out of the request (no allocation), since the binding keeps neither the relay
/// address nor, for a DECLINE, the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requester {
    via: Option<Ipv4Addr>,
    chaddr: [u8; 16],
    len: u8,
}

impl Requester {
    /// From a request.
    pub fn of(m: &leasewire_proto::Message<'_>) -> Self {
        let hw = m.hardware_address();
        let mut chaddr = [0; 16];
        chaddr[..hw.len()].copy_from_slice(hw);
        Self { via: (!m.giaddr.is_unspecified()).then_some(m.giaddr), chaddr, len: hw.len() as u8 }
    }

    /// The record of one committed change this request caused.
    pub fn record(&self, b: &Binding, time: u32) -> LeaseRecord {
        LeaseRecord::new(b, time, self.via, Some(&self.chaddr[..usize::from(self.len)]))
    }
}

/// What one lease log line says: copied out of the committed binding (plus the relay address the request
/// came through, which the binding does not keep).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The kind of change.
    pub event: LeaseEvent,
    /// The address.
    pub ip: Ipv4Addr,
    /// The client's hardware address (the request's `chaddr` for a DECLINE, whose binding has none).
    pub mac: Vec<u8>,
    /// Option 61.
    pub client_id: Option<Vec<u8>>,
    /// The relay (giaddr) the request came through; None for timers, operators and direct clients.
    pub via: Option<Ipv4Addr>,
    /// Option 82 circuit-id.
    pub circuit_id: Option<Vec<u8>>,
    /// Option 82 remote-id.
    pub remote_id: Option<Vec<u8>>,
    /// Lease length from the commit, for ACTIVE (and a committed offer's hold time).
    pub lease_secs: Option<u32>,
}

impl LeaseRecord {
    /// The record of `b` as committed at `time`; `via` and `chaddr` come from the request, if any.
    pub fn new(b: &Binding, time: u32, via: Option<Ipv4Addr>, chaddr: Option<&[u8]>) -> Self {
        let event = LeaseEvent::of(b.state);
        let rai = b.relay_agent();
        let mac = if b.hardware_address.is_empty() { chaddr.unwrap_or_default() } else { &b.hardware_address };
        Self {
            event,
            ip: b.ip,
            mac: mac.to_vec(),
            client_id: b.client_id.clone(),
            via,
            circuit_id: rai.as_ref().and_then(|r| r.circuit_id()).map(<[u8]>::to_vec),
            remote_id: rai.as_ref().and_then(|r| r.remote_id()).map(<[u8]>::to_vec),
            lease_secs: matches!(b.state, DhcpState::Active | DhcpState::Transitioning)
                .then(|| b.expires_at.map(|e| e.saturating_sub(time)))
                .flatten(),
        }
    }

    /// The line, e.g. `DHCPACK 10.1.2.3 to aa:bb:cc:dd:ee:ff via 10.1.0.1 lease 3600 s`.
    pub fn line(&self) -> String {
        use std::fmt::Write;
        let mut s = format!("{} {}", self.event.name(), self.ip);
        if !self.mac.is_empty() {
            let _ = write!(s, " {} {}", self.event.preposition(), hex(&self.mac));
        }
        if let Some(c) = &self.client_id {
            let _ = write!(s, " client-id {}", hex(c));
        }
        if let Some(v) = self.via {
            let _ = write!(s, " via {v}");
        }
        if let Some(c) = &self.circuit_id {
            let _ = write!(s, " circuit-id {}", text_or_hex(c));
        }
        if let Some(r) = &self.remote_id {
            let _ = write!(s, " remote-id {}", text_or_hex(r));
        }
        if let Some(l) = self.lease_secs {
            let _ = write!(s, " lease {l} s");
        }
        s
    }

    /// Write the line as an INFO event with the values as fields.
    fn emit(&self) {
        let opt_hex = |v: &Option<Vec<u8>>| v.as_deref().map(hex);
        let opt_text = |v: &Option<Vec<u8>>| v.as_deref().map(text_or_hex);
        tracing::info!(
            target: TARGET,
            event = self.event.name(),
            ip = %self.ip,
            mac = (!self.mac.is_empty()).then(|| hex(&self.mac)),
            client_id = opt_hex(&self.client_id),
            via = self.via.map(tracing::field::display),
            circuit_id = opt_text(&self.circuit_id),
            remote_id = opt_text(&self.remote_id),
            lease_secs = self.lease_secs,
            "{}",
            self.line()
        );
    }
}

/// Colon-separated hex, as MAC addresses and ISC's `uid` are written.
fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")
}

/// Printable ASCII in quotes (circuit-ids are often port names), anything else as hex.
fn text_or_hex(b: &[u8]) -> String {
    if !b.is_empty() && b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') && !b.contains(&b'"') {
        format!("\"{}\"", String::from_utf8_lossy(b))
    } else {
        hex(b)
    }
}

/// The completer's end of the lease log: cheap to call for every committed change, never blocks.
#[derive(Debug, Clone)]
pub struct LeaseLog {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    queue: mpsc::SyncSender<LeaseRecord>,
    /// Dropped records by kind since the last summary.
    dropped: [AtomicU64; 8],
    metrics: Arc<Metrics>,
}

impl LeaseLog {
    /// No lease log (`[log] leases = false`): records are not even built.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Start the logging thread. It ends when the last `LeaseLog` clone is dropped, after writing what was
    /// queued.
    pub fn start(metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let (queue, rx) = mpsc::sync_channel(QUEUE);
        let inner = Arc::new(Inner { queue, dropped: Default::default(), metrics });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new().name("leasewire-lease-log".into()).spawn(move || {
            let mut last = std::time::Instant::now();
            loop {
                match rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(r) => r.emit(),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
                // Checked after every line too: under a flood the queue never runs dry, and the summary must
                // still come once a second.
                if last.elapsed() >= Duration::from_secs(1) {
                    last = std::time::Instant::now();
                    if let Some(inner) = weak.upgrade() {
                        inner.summarise();
                    }
                }
            }
        })?;
        Ok(Self { inner: Some(inner) })
    }

    /// Whether lines are written at all (so callers can skip building records).
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queue one line; when the queue is full, count it for the summary instead.
    pub fn record(&self, r: LeaseRecord) {
        let Some(inner) = &self.inner else { return };
        if let Err(mpsc::TrySendError::Full(r) | mpsc::TrySendError::Disconnected(r)) = inner.queue.try_send(r) {
            inner.dropped[r.event.index()].fetch_add(1, Ordering::Relaxed);
            inner.metrics.lease_log_dropped.inc();
        }
    }
}

impl Inner {
    /// One line with the records dropped since the last summary, if any (the thread calls it once a second).
    fn summarise(&self) {
        let counts: Vec<(LeaseEvent, u64)> = LeaseEvent::ALL
            .iter()
            .map(|&e| (e, self.dropped[e.index()].swap(0, Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .collect();
        if counts.is_empty() {
            return;
        }
        let total: u64 = counts.iter().map(|(_, n)| n).sum();
        let detail = counts.iter().map(|(e, n)| format!("{} {n}", e.name())).collect::<Vec<_>>().join(", ");
        tracing::warn!(
            target: TARGET,
            event = "SUMMARY",
            unlogged = total,
            "lease log behind: {total} changes not logged in the last second ({detail})"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasewire_proto::RelayAgentInfoBuilder;

    fn acked() -> Binding {
        let mut b = Binding::new("10.1.2.3".parse().unwrap(), DhcpState::Active, 1000);
        b.htype = 1;
        b.hardware_address = vec![0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
        b.client_id = Some(vec![1, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
        b.expires_at = Some(4600);
        b.relay_agent_info = Some(RelayAgentInfoBuilder::new().circuit_id(b"port-3").remote_id(&[2, 0, 0, 3]).build());
        b
    }

    #[test]
    fn an_ack_reads_like_isc_dhcpd() {
        let r = LeaseRecord::new(&acked(), 1000, Some("10.1.0.1".parse().unwrap()), None);
        assert_eq!(
            r.line(),
            "DHCPACK 10.1.2.3 to aa:bb:cc:dd:ee:ff client-id 01:aa:bb:cc:dd:ee:ff via 10.1.0.1 \
             circuit-id \"port-3\" remote-id 02:00:00:03 lease 3600 s"
        );
    }

    #[test]
    fn release_decline_expire_and_reset_lines() {
        let mut b = acked();
        b.state = DhcpState::Released;
        b.expires_at = None;
        b.relay_agent_info = None;
        let line = LeaseRecord::new(&b, 2000, None, None).line();
        assert_eq!(line, "DHCPRELEASE 10.1.2.3 from aa:bb:cc:dd:ee:ff client-id 01:aa:bb:cc:dd:ee:ff");
        // A declined address's binding keeps no client: the request's chaddr names who declined.
        let mut d = Binding::new(b.ip, DhcpState::Abandoned, 2000);
        d.expires_at = Some(88_400);
        let line = LeaseRecord::new(&d, 2000, Some("10.1.0.1".parse().unwrap()), Some(&[2, 0, 0, 0, 0, 9])).line();
        assert_eq!(line, "DHCPDECLINE 10.1.2.3 from 02:00:00:00:00:09 via 10.1.0.1");
        b.state = DhcpState::Expired;
        assert!(LeaseRecord::new(&b, 2000, None, None).line().starts_with("EXPIRE 10.1.2.3 of aa:bb"));
        b.state = DhcpState::Reset;
        assert!(LeaseRecord::new(&b, 2000, None, None).line().starts_with("RESET 10.1.2.3 of aa:bb"));
    }

    #[test]
    fn a_full_queue_counts_instead_of_blocking() {
        let metrics = Arc::new(Metrics::new());
        // A log whose thread is never started: the queue fills and then every record is counted.
        let (queue, _rx) = mpsc::sync_channel(2);
        let log =
            LeaseLog { inner: Some(Arc::new(Inner { queue, dropped: Default::default(), metrics: metrics.clone() })) };
        let r = LeaseRecord::new(&acked(), 1000, None, None);
        for _ in 0..5 {
            log.record(r.clone());
        }
        assert_eq!(metrics.lease_log_dropped.get(), 3);
        let inner = log.inner.as_ref().unwrap();
        assert_eq!(inner.dropped[LeaseEvent::Ack.index()].load(Ordering::Relaxed), 3);
        inner.summarise();
        assert_eq!(inner.dropped[LeaseEvent::Ack.index()].load(Ordering::Relaxed), 0, "the summary takes them");
    }
}
