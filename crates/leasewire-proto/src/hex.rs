//! Octets as text, the one way every command, log line, JSON field and config key writes them: `02:00:0a`.

/// Append `b` as lowercase hex octets separated by `:`.
pub fn push(s: &mut String, b: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    s.reserve(b.len() * 3);
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 15)] as char);
    }
}

/// `b` as `aa:bb:cc`.
pub fn format(b: &[u8]) -> String {
    let mut s = String::new();
    push(&mut s, b);
    s
}

/// Parse hex octets, with or without separators (`:`, `-`, `.` or white space): `02:00:0a`, `02-00-0A`,
/// `02000a`. `None` for an empty string, an odd number of digits or anything that is not a hex digit.
pub fn parse(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s.bytes().filter(|c| !matches!(c, b':' | b'-' | b'.') && !c.is_ascii_whitespace()).collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    digits.chunks(2).map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_what_is_not_hex_without_panicking() {
        assert_eq!(format(&[2, 0, 10]), "02:00:0a");
        for ok in ["02:00:0a", "02-00-0A", "02000a", "02 00 0a", "0200.0a"] {
            assert_eq!(parse(ok), Some(vec![2, 0, 10]), "{ok}");
        }
        for bad in ["", "0", "zz", "+1", "a\u{e9}b", "0x01"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
