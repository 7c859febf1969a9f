//! Each server's clock against ours (RFC 6926 §7.4, BLQ-7.4-2): the times in a reply are in the server's
//! clock, so comparing bindings reported by two servers (BLQ-7.6-2) needs each converted to the requestor's.
//!
//! A message's base-time is the server's clock when it was sent (or earlier: a live change carries its commit
//! time), so `received - base_time` is the server's offset plus the delay, never less than the offset. The
//! smallest value over the last minute or two is the estimate: it follows a clock that is stepped either way
//! within two windows, and one slow message cannot move it.
//!
//! Base-time has a resolution of one second, and a live message's base-time is its commit time, which a busy
//! server or requestor can deliver a second or two late: offsets of up to 3 s either way count as 0, so servers
//! whose clocks agree compare exactly as they report. Smaller skews are not corrected.

/// How long one window of observations lasts, in the requestor's seconds.
const WINDOW: u32 = 60;

/// The largest offset taken for rounding and delivery delay rather than a clock that is off.
const NOISE: i64 = 3;

/// One server's clock offset: requestor time minus server time, in seconds.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClockOffset {
    window_start: u32,
    current: Option<i64>,
    previous: Option<i64>,
    /// The estimate kept from before a restart, used until the server is heard from again.
    restored: i64,
}

impl ClockOffset {
    /// An offset estimated before a restart (what the replica file kept).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn restored(seconds: i64) -> Self {
        Self { restored: seconds, ..Self::default() }
    }

    /// A message with `base_time` (server clock) arrived at `received` (requestor clock). True on the first
    /// observation and when [`ClockOffset::seconds`] changed.
    pub(crate) fn observe(&mut self, received: u32, base_time: u32) -> bool {
        let (first, before) = (self.current.is_none() && self.previous.is_none(), self.seconds());
        // A requestor clock stepped back restarts the window rather than freezing it.
        if received < self.window_start || received - self.window_start >= WINDOW {
            // A gap of more than a window leaves nothing recent to keep.
            self.previous = if received.saturating_sub(self.window_start) < 2 * WINDOW { self.current } else { None };
            self.current = None;
            self.window_start = received;
        }
        let offset = i64::from(received) - i64::from(base_time);
        self.current = Some(self.current.map_or(offset, |c| c.min(offset)));
        first || self.seconds() != before
    }

    /// Seconds to add to this server's times to put them in the requestor's clock (the restored estimate until
    /// it has been seen, and 0 within the noise).
    pub(crate) fn seconds(&self) -> i64 {
        let estimate = match (self.current, self.previous) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(self.restored),
        };
        if estimate.abs() <= NOISE { 0 } else { estimate }
    }
}

#[cfg(test)]
mod tests {
    use super::ClockOffset;

    // BLQ-7.4-2: the offset is the smallest observed, and agreeing clocks give exactly 0.
    #[test]
    fn agreeing_clocks_give_zero_and_a_skewed_one_its_offset() {
        let mut c = ClockOffset::default();
        assert_eq!(c.seconds(), 0, "unseen");
        assert!(c.observe(1000, 1000), "the first observation is news");
        assert!(!c.observe(1001, 1000), "nothing changed");
        assert_eq!(c.seconds(), 0, "a second of delay is within the resolution");
        let mut late = ClockOffset::default();
        late.observe(1003, 1000);
        assert_eq!(late.seconds(), 0, "every message 3 s late is delay, not a clock 3 s off");
        let mut skewed = ClockOffset::default();
        // The server is 300 s behind; some messages were delayed or carry an older commit time.
        for (received, base) in [(1000, 700), (1002, 690), (1003, 703), (1010, 700)] {
            skewed.observe(received, base);
        }
        assert_eq!(skewed.seconds(), 300);
        let mut ahead = ClockOffset::default();
        ahead.observe(1000, 1120);
        assert_eq!(ahead.seconds(), -120);
    }

    #[test]
    fn a_restored_offset_holds_until_the_server_is_heard_from() {
        let mut c = ClockOffset::restored(300);
        assert_eq!(c.seconds(), 300);
        c.observe(1000, 1000);
        assert_eq!(c.seconds(), 0, "a fresh observation replaces it");
        // The requestor's clock stepped back: the window restarts, estimates go on.
        c.observe(900, 500);
        assert_eq!(c.seconds(), 0, "the previous window's minimum still counts");
    }

    #[test]
    fn a_stepped_clock_is_followed_within_two_windows() {
        let mut c = ClockOffset::default();
        c.observe(1000, 900);
        assert_eq!(c.seconds(), 100);
        // The server's clock is corrected: from now on it agrees with ours.
        assert!(c.observe(1030, 1030));
        assert_eq!(c.seconds(), 0, "a smaller offset is taken at once");
        let mut c = ClockOffset::default();
        c.observe(1000, 1000);
        // Stepped the other way: 50 s behind. The old minimum holds for up to two windows.
        c.observe(1061, 1011);
        assert_eq!(c.seconds(), 0);
        c.observe(1125, 1075);
        assert_eq!(c.seconds(), 50);
    }
}
