//! The wall clock, read in one place. The protocol cores (the engine, the Leasequery sessions) never read it:
//! their drivers pass `now` in, so tests run them on simulated time. Everything that stamps a binding or a
//! base-time reads it here, so they all count alike.

/// Seconds since the Unix epoch, as the store and base-time count them (0 for a clock set before 1970, which
/// makes every lease look expired rather than stopping the server).
///
/// `LEASEWIRE_TEST_CLOCK_OFFSET` (signed seconds, read once) shifts it: a test hook for a server whose clock
/// is off from the others' (`crates/leasewire/tests/multi_server_faults.rs` restarts one of several servers
/// on one database with its clock stepped). Unset, or not a number: no shift.
pub fn unix_now() -> u32 {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    (secs + offset()).clamp(0, i64::from(u32::MAX)) as u32
}

fn offset() -> i64 {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| {
        let offset = std::env::var("LEASEWIRE_TEST_CLOCK_OFFSET").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        if offset != 0 {
            // Never silent: an inherited variable would shift every lease time and arbitration decision.
            tracing::warn!(
                offset,
                "LEASEWIRE_TEST_CLOCK_OFFSET is set: the clock is shifted by {offset} s (a test hook)"
            );
        }
        offset
    })
}
