//! The requestor's half of DHCPTLS (RFC 7724 §7.2): the request that opens secure mode and the reading of
//! its answer. Shared by the Active and the Bulk requestor, so both connections negotiate TLS alike.

use crate::framing::encode_frame;
use crate::{Message, MessageType, Op, StatusCode};

/// Append the framed DHCPTLS request: the first message on the connection, with no option but its type
/// (ALQ-7.2-4).
pub fn write_request(xid: u32, out: &mut Vec<u8>) {
    let mut m = Message::new(Op::BootRequest);
    m.xid = xid;
    m.options.set_message_type(MessageType::Tls);
    encode_frame(&m, out).expect("a bare DHCPTLS always fits a frame");
}

/// How the server answered DHCPTLS (RFC 7724 §7.2, outcomes 3 and 4; outcomes 1 and 2 — silence and a
/// close — are the driver's to see).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// DHCPTLS without a failure status: start the handshake (ALQ-7.2-7).
    Proceed,
    /// Anything else (TLSConnectionRefused, another message, another xid): close the connection, never
    /// fall back to the clear on it (ALQ-7.2-6).
    Refused,
}

/// Read the server's answer to the DHCPTLS sent with `xid`.
pub fn answer(m: &Message<'_>, xid: u32) -> Answer {
    match (m.xid == xid, m.message_type(), m.options.status_code()) {
        (true, Some(MessageType::Tls), None | Some(StatusCode::Success)) => Answer::Proceed,
        _ => Answer::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::FrameDecoder;

    #[test]
    fn alq_7_2_4_request_is_dhcptls_with_only_its_type() {
        let mut b = Vec::new();
        write_request(7, &mut b);
        let (f, n) = FrameDecoder::default().decode(&b).unwrap().unwrap();
        assert_eq!(n, b.len());
        let m = Message::decode(f).unwrap();
        assert_eq!((m.xid, m.message_type()), (7, Some(MessageType::Tls)));
        assert_eq!(m.options.len(), 1, "option 53 only");
    }

    #[test]
    fn alq_7_2_6_anything_but_a_clean_dhcptls_is_a_refusal() {
        let mut ok = Message::new(Op::BootReply);
        ok.xid = 7;
        ok.options.set_message_type(MessageType::Tls);
        assert_eq!(answer(&ok, 7), Answer::Proceed);
        assert_eq!(answer(&ok, 8), Answer::Refused, "another xid");
        let mut refused = ok.clone();
        refused.options.set_status(StatusCode::TlsConnectionRefused, "no");
        assert_eq!(answer(&refused, 7), Answer::Refused);
        let mut other = ok.clone();
        other.options.set_message_type(MessageType::LeaseQueryStatus);
        assert_eq!(answer(&other, 7), Answer::Refused);
    }
}
