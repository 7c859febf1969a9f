//! The wall clock, read in one place. The protocol cores (the engine, the Leasequery sessions) never read it:
//! their drivers pass `now` in, so tests run them on simulated time. Everything that stamps a binding or a
//! base-time reads it here, so they all count alike.

/// Seconds since the Unix epoch, as the store and base-time count them (0 for a clock set before 1970, which
/// makes every lease look expired rather than stopping the server).
pub fn unix_now() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}
