//! The command line's one dialect for values every subcommand shares: durations, times and servers.
//! Each subcommand uses these parsers, so `30s` means the same everywhere.

use std::net::{Ipv4Addr, SocketAddrV4, ToSocketAddrs};
use std::time::{Duration, UNIX_EPOCH};

/// A duration: `30s`, `5m`, `2h`, `1h 30m`, `250ms`, or bare seconds (`300`).
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}: expected a duration such as 30s, 5m, 2h, or a number of seconds"))
}

/// A point in time: RFC 3339 (`2026-12-03T05:00:00Z`; the `T` may be a space, the zone may be left out for
/// UTC) or seconds since 1970.
pub fn time(s: &str) -> Result<u32, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u32>() {
        return Ok(secs);
    }
    let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .map_err(|e| format!("{e}: expected an RFC 3339 time such as 2026-12-03T05:00:00Z, or seconds since 1970"))?;
    let secs = t.duration_since(UNIX_EPOCH).map_err(|_| "before 1970".to_string())?.as_secs();
    u32::try_from(secs).map_err(|_| "after 2106 (DHCP times are 32-bit seconds)".to_string())
}

/// A server: `ADDR`, `ADDR:PORT`, `NAME` or `NAME:PORT`; port 67 when none is given. A name is resolved
/// and its first IPv4 address taken (DHCPv4 leasequery is IPv4 only).
pub fn server(s: &str) -> Result<SocketAddrV4, String> {
    if let Ok(a) = s.parse::<SocketAddrV4>() {
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<Ipv4Addr>() {
        return Ok(SocketAddrV4::new(ip, 67));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            (h, p.parse::<u16>().map_err(|_| format!("{s}: {p:?} is not a port number"))?)
        }
        _ => (s, 67),
    };
    if host.is_empty() {
        return Err(format!("{s}: expected ADDR, ADDR:PORT, NAME or NAME:PORT"));
    }
    let addrs = (host, port).to_socket_addrs().map_err(|e| format!("{host}: cannot resolve the name: {e}"))?;
    addrs
        .filter_map(|a| match a {
            std::net::SocketAddr::V4(a) => Some(a),
            std::net::SocketAddr::V6(_) => None,
        })
        .next()
        .ok_or_else(|| format!("{host}: the name has no IPv4 address (leasequery is DHCPv4)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_duration_syntax() {
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(duration("ten minutes").unwrap_err().contains("30s, 5m, 2h"));
    }

    #[test]
    fn times_as_rfc_3339_or_epoch() {
        assert_eq!(time("1796274600"), Ok(1_796_274_600));
        assert_eq!(time("2026-12-03T05:10:00Z"), Ok(1_796_274_600));
        assert_eq!(time("1970-01-01T00:01:00Z"), Ok(60));
        assert_eq!(time("1970-01-01 00:01:00"), Ok(60));
        assert!(time("yesterday").unwrap_err().contains("RFC 3339"));
    }

    /// BLQ-6.3-3: the requestor connects to port 67 unless told another port.
    #[test]
    fn servers_by_address_port_or_name() {
        assert_eq!(server("127.0.0.1"), Ok("127.0.0.1:67".parse().unwrap()));
        assert_eq!(server("127.0.0.1:6767"), Ok("127.0.0.1:6767".parse().unwrap()));
        assert_eq!(server("localhost"), Ok("127.0.0.1:67".parse().unwrap()));
        assert_eq!(server("localhost:6767"), Ok("127.0.0.1:6767".parse().unwrap()));
        assert!(server("localhost:http").unwrap_err().contains("not a port"));
        assert!(server("no-such-host.invalid").unwrap_err().contains("cannot resolve"));
    }
}
