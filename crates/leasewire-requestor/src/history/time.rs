//! Times as people type them: RFC 3339 (`2026-12-01T14:05:00Z`, or with a space and no zone, read as
//! UTC), seconds since 1970, `now`, relative (`2h ago`, `90min ago`, `3 days ago`), and `today 14:05` /
//! `yesterday 14:05` (UTC).

/// A time that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?}: not a time (RFC 3339 like 2026-12-01T14:05:00Z, seconds since 1970, `now`, `2h ago`, \
     `yesterday 14:05`)"
)]
pub struct BadTime(pub String);

/// Read `s` as Unix seconds, relative forms counted back from `now`.
pub fn parse(s: &str, now: u32) -> Result<u32, BadTime> {
    let bad = || BadTime(s.to_string());
    let t = s.trim();
    if t == "now" {
        return Ok(now);
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| bad());
    }
    if let Some(ago) = t.strip_suffix("ago") {
        let d = humantime::parse_duration(ago.trim()).map_err(|_| bad())?;
        return u32::try_from(d.as_secs()).ok().and_then(|d| now.checked_sub(d)).ok_or_else(bad);
    }
    for (word, days_back) in [("today", 0), ("yesterday", 1)] {
        if let Some(clock) = t.strip_prefix(word) {
            let midnight = now - now % 86_400 - days_back * 86_400;
            return Ok(midnight + time_of_day(clock.trim()).ok_or_else(bad)?);
        }
    }
    let weak = if t.len() == 16 { format!("{t}:00") } else { t.to_string() };
    let at = humantime::parse_rfc3339_weak(&weak).map_err(|_| bad())?;
    at.duration_since(std::time::UNIX_EPOCH).ok().and_then(|d| u32::try_from(d.as_secs()).ok()).ok_or_else(bad)
}

/// `HH:MM` or `HH:MM:SS` as seconds after midnight.
fn time_of_day(s: &str) -> Option<u32> {
    let mut parts = s.split(':').map(|p| p.parse::<u32>().ok());
    let (h, m, sec) = (parts.next()??, parts.next()??, parts.next().unwrap_or(Some(0))?);
    (parts.next().is_none() && h < 24 && m < 60 && sec < 60).then_some(h * 3600 + m * 60 + sec)
}

/// `t` as RFC 3339 (UTC, seconds).
pub fn rfc3339(t: u32) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(t))).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u32 = 1_764_600_000; // 2025-12-01T14:40:00Z

    #[test]
    fn every_form_reads() {
        assert_eq!(parse("now", NOW), Ok(NOW));
        assert_eq!(parse("1700000000", NOW), Ok(1_700_000_000));
        assert_eq!(parse("2h ago", NOW), Ok(NOW - 7200));
        assert_eq!(parse("90min ago", NOW), Ok(NOW - 5400));
        assert_eq!(parse("3 days ago", NOW), Ok(NOW - 3 * 86_400));
        assert_eq!(parse("2025-12-01T14:05:00Z", NOW), Ok(NOW - 35 * 60));
        assert_eq!(parse("2025-12-01 14:05", NOW), Ok(NOW - 35 * 60));
        assert_eq!(parse("today 14:05", NOW), Ok(NOW - 35 * 60));
        assert_eq!(parse("yesterday 14:05", NOW), Ok(NOW - 35 * 60 - 86_400));
        assert_eq!(rfc3339(NOW - 35 * 60), "2025-12-01T14:05:00Z");
    }

    #[test]
    fn nonsense_is_refused_with_the_forms_that_work() {
        for s in ["", "soon", "25:00 yesterday", "yesterday 25:00", "2h", "x ago", "2025-13-01T00:00:00Z"] {
            let e = parse(s, NOW).unwrap_err();
            assert!(e.to_string().contains("2h ago"), "{e}");
        }
    }
}
