//! RFC 3118 delayed authentication (option 90, HMAC-MD5) of DHCPLEASEQUERY replies: RFC 4388 §7 asks a
//! server to protect the location information it gives out with RFC 3118, the DHCPLEASEQUERY taking the
//! part of DHCPDISCOVER (it may carry option 90 to ask for authentication, without authentication
//! information) and the three replies that of DHCPOFFER (they carry option 90 with the key's ID and an
//! HMAC-MD5 over the message, keyed with a secret the requestor shares), LQ-7-2. A requestor holding the secret
//! can tell the server's answers from forged ones.

use hmac::{Hmac, KeyInit, Mac};
use leasewire_proto::Message;
use leasewire_proto::options::code;
use std::sync::atomic::{AtomicU64, Ordering};

/// RFC 3118 §5: protocol 1, delayed authentication.
pub const PROTOCOL_DELAYED: u8 = 1;
/// RFC 3118 §5: algorithm 1, HMAC-MD5.
pub const ALGORITHM_HMAC_MD5: u8 = 1;
/// RFC 3118 §2: replay detection method 0, a monotonically increasing counter.
pub const RDM_COUNTER: u8 = 0;
/// Protocol, algorithm, RDM and the 8-octet replay detection field.
const HEAD: usize = 11;
/// The delayed-authentication information: the 4-octet secret ID, then the 16-octet HMAC.
const INFO: usize = 4 + 16;

/// The server's key for signing replies.
#[derive(Debug)]
pub struct Signer {
    key_id: u32,
    secret: Vec<u8>,
    /// The next replay detection value: the start time in the high half, so it keeps increasing across
    /// restarts, and a count in the low half.
    replay: AtomicU64,
}

impl Signer {
    /// A signer with the shared secret `secret`, known to requestors as `key_id`; `now` (Unix seconds) seeds
    /// the replay counter.
    pub fn new(key_id: u32, secret: Vec<u8>, now: u32) -> Self {
        Self { key_id, secret, replay: AtomicU64::new(u64::from(now) << 32) }
    }

    /// Whether the query asks for delayed authentication (option 90, protocol 1, HMAC-MD5): as a
    /// DHCPDISCOVER does, RFC 3118 §5.
    pub fn asked(q: &Message<'_>) -> bool {
        q.options
            .get(code::AUTHENTICATION)
            .is_some_and(|v| v.len() >= HEAD && v[0] == PROTOCOL_DELAYED && v[1] == ALGORITHM_HMAC_MD5)
    }

    /// Put option 90 into `reply` with the HMAC still zero; [`Signer::seal`] fills it in once encoded.
    pub fn prepare(&self, reply: &mut Message<'_>) {
        let mut v = Vec::with_capacity(HEAD + INFO);
        v.extend_from_slice(&[PROTOCOL_DELAYED, ALGORITHM_HMAC_MD5, RDM_COUNTER]);
        v.extend_from_slice(&self.replay.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        v.extend_from_slice(&self.key_id.to_be_bytes());
        v.extend_from_slice(&[0; 16]);
        reply.options.set(code::AUTHENTICATION, v);
    }

    /// Compute the HMAC of the encoded reply and write it into its option 90 (RFC 3118 §5.5: over the whole
    /// message with giaddr, hops and the HMAC itself zero). `false` when the message has no such option.
    pub fn seal(&self, encoded: &mut [u8]) -> bool {
        let Some(at) = hmac_offset(encoded) else { return false };
        let mac = hmac_md5(&self.secret, &zeroed(encoded, at));
        encoded[at..at + 16].copy_from_slice(&mac);
        true
    }
}

/// Whether `encoded` carries a delayed-authentication option whose HMAC `secret` makes: what a requestor
/// holding the secret checks. Returns the key ID and the replay detection value.
pub fn verify(encoded: &[u8], secret: &[u8]) -> Option<(u32, u64)> {
    let at = hmac_offset(encoded)?;
    let head = at - 4 - HEAD;
    let replay = u64::from_be_bytes(encoded[head + 3..head + 11].try_into().ok()?);
    let key_id = u32::from_be_bytes(encoded[at - 4..at].try_into().ok()?);
    let expected = hmac_md5(secret, &zeroed(encoded, at));
    // Not a secret comparison worth guarding against timing: a reply's HMAC is public once sent.
    (encoded[at..at + 16] == expected).then_some((key_id, replay))
}

fn hmac_md5(secret: &[u8], data: &[u8]) -> [u8; 16] {
    let mut mac = <Hmac<md5::Md5> as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The message as RFC 3118 §5.5 has it for the HMAC: hops, giaddr and the HMAC field zero.
fn zeroed(encoded: &[u8], at: usize) -> Vec<u8> {
    let mut m = encoded.to_vec();
    m[3] = 0;
    m[24..28].fill(0);
    m[at..at + 16].fill(0);
    m
}

/// Where the HMAC of the delayed-authentication option starts in an encoded message (options area only:
/// replies never overload `file` or `sname` with it).
fn hmac_offset(encoded: &[u8]) -> Option<usize> {
    let mut i = 240;
    while i < encoded.len() {
        match encoded[i] {
            code::PAD => i += 1,
            code::END => return None,
            c => {
                let len = usize::from(*encoded.get(i + 1)?);
                if c == code::AUTHENTICATION
                    && len == HEAD + INFO
                    && encoded.get(i + 2) == Some(&PROTOCOL_DELAYED)
                    && i + 2 + len <= encoded.len()
                {
                    return Some(i + 2 + HEAD + 4);
                }
                i += 2 + len;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasewire_proto::{MessageType, Op};

    #[test]
    fn a_sealed_reply_verifies_with_its_secret_only_and_counters_increase() {
        let s = Signer::new(7, b"shared secret".to_vec(), 1_800_000_000);
        let mut sealed = Vec::new();
        for _ in 0..2 {
            let mut r = Message::new(Op::BootReply);
            r.options.set_message_type(MessageType::LeaseUnknown);
            r.giaddr = std::net::Ipv4Addr::new(10, 0, 0, 2);
            s.prepare(&mut r);
            let mut out = Vec::new();
            r.encode(&mut out).unwrap();
            assert!(s.seal(&mut out));
            sealed.push(out);
        }
        let (id, first) = verify(&sealed[0], b"shared secret").expect("verifies");
        assert_eq!((id, first), (7, 1_800_000_000u64 << 32));
        assert_eq!(verify(&sealed[1], b"shared secret"), Some((7, first + 1)));
        assert_eq!(verify(&sealed[0], b"another secret"), None);
        // giaddr and hops are outside the HMAC (a relay may change them); anything else is not.
        let mut moved = sealed[0].clone();
        moved[3] = 2;
        moved[24] = 192;
        assert!(verify(&moved, b"shared secret").is_some());
        let mut forged = sealed[0].clone();
        forged[12] ^= 1; // ciaddr
        assert_eq!(verify(&forged, b"shared secret"), None);
    }
}
