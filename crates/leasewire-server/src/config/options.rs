//! Options as configured (`[subnet.options]`, a pool's `options`, a reservation's `options`): typed values
//! checked at load and encoded once, as they go on the wire, so the DHCP path only copies octets.
//!
//! The encodings that are more than "octets in a row" live here with their RFCs: domain search (RFC 3397,
//! names compressed as in DNS), classless static routes (RFC 3442, destinations cut to their significant
//! octets), vendor-specific information (RFC 2132 §8.4, sub-options) and V-I vendor-specific information
//! (RFC 3925, sub-options per enterprise number).

use super::{EncodedOption, OptionValue, OptionsConfig, parse_hex};
use ipnet::Ipv4Net;
use leasewire_proto::options::code;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// What one level (subnet, pool or reservation) puts into a reply: options, and the BOOTP header fields PXE
/// clients boot from. A level above overrides a level below option by option and field by field
/// (reservation > pool > subnet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionSet {
    /// Encoded options, in code order.
    pub options: Vec<EncodedOption>,
    /// `siaddr`: the server to boot from (`next-server`).
    pub next_server: Option<Ipv4Addr>,
    /// The `file` field: the boot file's name (`boot-file`), at most 127 octets.
    pub boot_file: Option<Vec<u8>>,
}

impl OptionSet {
    /// Nothing to add at this level.
    pub fn is_empty(&self) -> bool {
        self.options.is_empty() && self.next_server.is_none() && self.boot_file.is_none()
    }
}

/// A problem with one option key: the key (relative to the options table) and what is wrong.
pub(super) type OptionError = (String, String);

impl OptionsConfig {
    /// The options of this level, encoded; an error names the key (relative to the options table).
    pub(super) fn encode_set(&self) -> Result<OptionSet, OptionError> {
        let ips = |v: &[Ipv4Addr]| v.iter().flat_map(|a| a.octets()).collect::<Vec<u8>>();
        let mut out: Vec<EncodedOption> = Vec::new();
        if let Some(t) = self.time_offset {
            out.push((code::TIME_OFFSET, t.to_be_bytes().to_vec()));
        }
        if !self.routers.is_empty() {
            out.push((code::ROUTERS, ips(&self.routers)));
        }
        if !self.dns_servers.is_empty() {
            out.push((code::DOMAIN_NAME_SERVERS, ips(&self.dns_servers)));
        }
        if let Some(d) = &self.domain_name {
            out.push((code::DOMAIN_NAME, d.as_bytes().to_vec()));
        }
        if let Some(m) = self.interface_mtu {
            // RFC 2132 §5.1: the minimum legal value is 68.
            if m < 68 {
                return Err(("interface-mtu".into(), format!("{m} is below 68, the smallest MTU RFC 2132 allows")));
            }
            out.push((code::INTERFACE_MTU, m.to_be_bytes().to_vec()));
        }
        if let Some(b) = self.broadcast_address {
            out.push((code::BROADCAST_ADDRESS, b.octets().to_vec()));
        }
        if !self.ntp_servers.is_empty() {
            out.push((code::NTP_SERVERS, ips(&self.ntp_servers)));
        }
        if !self.vendor_encapsulated_options.is_empty() {
            let data = sub_options(&self.vendor_encapsulated_options, "vendor-encapsulated-options")?;
            out.push((code::VENDOR_ENCAPSULATED, data));
        }
        for (key, c, v) in [
            ("tftp-server-name", code::TFTP_SERVER_NAME, &self.tftp_server_name),
            ("bootfile-name", code::BOOTFILE_NAME, &self.bootfile_name),
        ] {
            if let Some(v) = v {
                if v.is_empty() {
                    return Err((key.into(), "must not be empty".into()));
                }
                out.push((c, v.as_bytes().to_vec()));
            }
        }
        if !self.domain_search.is_empty() {
            let data = domain_search(&self.domain_search).map_err(|(i, m)| (format!("domain-search[{i}]"), m))?;
            out.push((code::DOMAIN_SEARCH, data));
        }
        if !self.classless_static_routes.is_empty() {
            let mut data = Vec::new();
            for (i, r) in self.classless_static_routes.iter().enumerate() {
                let k = |f: &str| format!("classless-static-routes[{i}].{f}");
                let net = parse_destination(&r.destination).map_err(|m| (k("destination"), m))?;
                push_route(&mut data, net, r.router);
            }
            out.push((code::CLASSLESS_STATIC_ROUTES, data));
        }
        if !self.vendor_identifying_options.is_empty() {
            let mut data = Vec::new();
            for (i, v) in self.vendor_identifying_options.iter().enumerate() {
                let key = format!("vendor-identifying-options[{i}].sub-options");
                let subs = sub_options(&v.sub_options, &key)?;
                // RFC 3925 §4: data-len is one octet; a longer list needs a second entry for the enterprise.
                let len = u8::try_from(subs.len())
                    .map_err(|_| (key.clone(), format!("{} octets of sub-options; at most 255", subs.len())))?;
                data.extend_from_slice(&v.enterprise_number.to_be_bytes());
                data.push(len);
                data.extend_from_slice(&subs);
            }
            out.push((code::VENDOR_IDENTIFYING, data));
        }
        for (k, v) in &self.by_code {
            let c: u8 = match k.parse() {
                Ok(c) if !matches!(c, 0 | 50..=59 | 61 | 82 | 255) => c,
                _ => {
                    return Err((
                        k.clone(),
                        "expected an option code 1-254 that the server does not manage itself".into(),
                    ));
                }
            };
            let data = value_octets(v).ok_or((k.clone(), "bad hex".to_string()))?;
            out.retain(|(x, _)| *x != c);
            out.push((c, data));
        }
        out.sort_by_key(|(c, _)| *c);
        let boot_file = match &self.boot_file {
            // The `file` field is 128 octets and the name is NUL-terminated in it.
            Some(f) if f.is_empty() || f.len() > 127 => {
                return Err(("boot-file".into(), "must be 1 to 127 octets (the BOOTP file field)".into()));
            }
            Some(f) => Some(f.as_bytes().to_vec()),
            None => None,
        };
        Ok(OptionSet { options: out, next_server: self.next_server, boot_file })
    }
}

/// The octets of a value given by code: `"hex:..."` raw, other text as is, addresses, a 32-bit number.
fn value_octets(v: &OptionValue) -> Option<Vec<u8>> {
    Some(match v {
        OptionValue::Text(t) => match t.strip_prefix("hex:") {
            Some(h) => parse_hex(h)?,
            None => t.as_bytes().to_vec(),
        },
        OptionValue::Addresses(a) => a.iter().flat_map(|a| a.octets()).collect(),
        OptionValue::Number(n) => n.to_be_bytes().to_vec(),
    })
}

/// Sub-options as code, length, value (RFC 2132 §8.4; RFC 3925 §4 uses the same form), in code order.
fn sub_options(subs: &BTreeMap<String, OptionValue>, key: &str) -> Result<Vec<u8>, OptionError> {
    let mut by_code = Vec::with_capacity(subs.len());
    for (k, v) in subs {
        let sk = format!("{key}.{k}");
        let c: u8 = match k.parse() {
            Ok(c) if (1..=254).contains(&c) => c,
            _ => return Err((sk, "expected a sub-option code 1-254".into())),
        };
        let data = value_octets(v).ok_or((sk.clone(), "bad hex".to_string()))?;
        let len = u8::try_from(data.len()).map_err(|_| (sk, "a sub-option holds at most 255 octets".to_string()))?;
        by_code.push((c, len, data));
    }
    by_code.sort_by_key(|(c, _, _)| *c);
    let mut out = Vec::new();
    for (c, len, data) in by_code {
        out.push(c);
        out.push(len);
        out.extend_from_slice(&data);
    }
    Ok(out)
}

/// A route's destination: a prefix (`10.1.0.0/16`, `0.0.0.0/0` for the default route) without host bits.
fn parse_destination(s: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = s.parse().map_err(|_| format!("expected a prefix like 10.1.0.0/16, not {s:?}"))?;
    if net.trunc() != net {
        return Err(format!("{s} has host bits set (the network is {})", net.trunc()));
    }
    Ok(net)
}

/// RFC 3442 §3: the prefix length, then only the significant octets of the destination, then the router.
pub(super) fn push_route(out: &mut Vec<u8>, dest: Ipv4Net, router: Ipv4Addr) {
    let width = dest.prefix_len();
    out.push(width);
    out.extend_from_slice(&dest.network().octets()[..usize::from(width).div_ceil(8)]);
    out.extend_from_slice(&router.octets());
}

/// RFC 3397: the names in DNS wire form, a name's suffix already written replaced by a pointer to it (RFC
/// 1035 §4.1.4), offsets counted from the start of the option's value (as if its pieces were joined, RFC 3396).
/// An error gives the index of the bad name and why.
pub(super) fn domain_search(names: &[String]) -> Result<Vec<u8>, (usize, String)> {
    let mut out: Vec<u8> = Vec::new();
    // Every suffix written so far (lowercased labels) and where it starts.
    let mut written: Vec<(Vec<String>, usize)> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let labels = labels(name).map_err(|m| (i, m))?;
        for start in 0..=labels.len() {
            let suffix: Vec<String> = labels[start..].iter().map(|l| l.to_ascii_lowercase()).collect();
            if suffix.is_empty() {
                out.push(0);
                break;
            }
            if let Some(&(_, at)) = written.iter().find(|(s, _)| *s == suffix) {
                // A pointer holds 14 bits of offset.
                if at < 0x4000 {
                    out.extend_from_slice(&(0xC000 | at as u16).to_be_bytes());
                    break;
                }
            }
            written.push((suffix, out.len()));
            let l = &labels[start];
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
    }
    Ok(out)
}

/// A domain name's labels: letters, digits, hyphens and underscores, 1-63 octets each, 253 in all; a final
/// dot is allowed.
fn labels(name: &str) -> Result<Vec<&str>, String> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(format!("{name:?} is not a domain name (1 to 253 characters)"));
    }
    let labels: Vec<&str> = trimmed.split('.').collect();
    for l in &labels {
        let ok_chars = l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if l.is_empty() || l.len() > 63 || !ok_chars || l.starts_with('-') || l.ends_with('-') {
            return Err(format!("{name:?} is not a domain name (bad label {l:?})"));
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3397 §2's example, octet for octet (the option's code and length left off).
    #[test]
    fn rfc3397_domain_search_compresses_like_the_rfc_example() {
        let v = domain_search(&["eng.apple.com.".into(), "marketing.apple.com".into()]).unwrap();
        let mut want = vec![3];
        want.extend_from_slice(b"eng");
        want.push(5);
        want.extend_from_slice(b"apple");
        want.push(3);
        want.extend_from_slice(b"com");
        want.extend_from_slice(&[0, 9]);
        want.extend_from_slice(b"marketing");
        want.extend_from_slice(&[0xC0, 0x04]);
        assert_eq!(v, want);
        assert_eq!(v.len(), 27, "the RFC's option length");
    }

    #[test]
    fn rfc3397_a_name_repeated_whole_is_one_pointer_and_case_does_not_matter() {
        let v = domain_search(&["a.example".into(), "A.Example".into()]).unwrap();
        assert_eq!(v, [&[1, b'a', 7][..], b"example", &[0, 0xC0, 0x00]].concat());
    }

    #[test]
    fn domain_search_rejects_bad_names_by_index() {
        assert_eq!(domain_search(&["ok.example".into(), "bad..example".into()]).unwrap_err().0, 1);
        assert!(domain_search(&["-x.example".into()]).is_err());
        assert!(domain_search(&[format!("{}.example", "a".repeat(64))]).is_err());
        assert!(domain_search(&["".into()]).is_err());
    }

    /// RFC 3442 §3's table of destination descriptors, each followed by the router.
    #[test]
    fn rfc3442_destination_descriptors_match_the_rfc_table() {
        let router = Ipv4Addr::new(10, 0, 0, 1);
        let cases: [(&str, &[u8]); 7] = [
            ("0.0.0.0/0", &[0]),
            ("10.0.0.0/8", &[8, 10]),
            ("10.0.0.0/24", &[24, 10, 0, 0]),
            ("10.17.0.0/16", &[16, 10, 17]),
            ("10.27.129.0/24", &[24, 10, 27, 129]),
            ("10.229.0.128/25", &[25, 10, 229, 0, 128]),
            ("10.198.122.47/32", &[32, 10, 198, 122, 47]),
        ];
        for (dest, descriptor) in cases {
            let mut out = Vec::new();
            push_route(&mut out, parse_destination(dest).unwrap(), router);
            assert_eq!(out, [descriptor, &[10, 0, 0, 1]].concat(), "{dest}");
        }
    }

    #[test]
    fn rfc3442_a_destination_with_host_bits_is_refused() {
        assert!(parse_destination("10.1.2.3/16").unwrap_err().contains("host bits"));
        assert!(parse_destination("10.1.0.0").is_err());
    }
}
