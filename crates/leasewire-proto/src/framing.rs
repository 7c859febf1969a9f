//! TCP framing for Bulk and Active Leasequery (RFC 6926 §6.1, RFC 7724 §5.1): a 2-octet big-endian length,
//! then one DHCPv4 message.
//!
//! [`FrameDecoder`] works on plain byte slices so the sans-IO sessions and fuzzers can use it; with the
//! `tokio-codec` feature, `DhcpFrameCodec` plugs the same rules into `tokio_util::codec`.

use crate::{EncodeError, Message};

/// Octets in the length prefix.
pub const PREFIX_LEN: usize = 2;
/// The default bound on a frame's length. RFC 6926 allows up to 65535; a leasequery message is a few hundred
/// octets, and a smaller bound limits what a hostile peer can make the server buffer.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024;

/// Why a byte stream is not a sequence of valid frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A length prefix of 0: no DHCP message is empty.
    #[error("frame with length 0")]
    ZeroLength,
    /// A length prefix larger than the configured maximum.
    #[error("frame length {len} exceeds the maximum of {max}")]
    TooLong {
        /// The announced length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame: {buffered} octets buffered, {needed} needed")]
    Truncated {
        /// Octets received of the incomplete frame (prefix included).
        buffered: usize,
        /// Octets the frame needs (prefix included), or 2 when the prefix itself is incomplete.
        needed: usize,
    },
}

/// Splits a byte stream into frames.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameDecoder {
    /// A decoder accepting frames of at most `max` octets (capped at 65535, the largest the prefix can say).
    pub fn new(max: usize) -> Self {
        Self { max: max.min(u16::MAX as usize) }
    }

    /// The maximum frame length in force.
    pub fn max_frame(&self) -> usize {
        self.max
    }

    /// Look for one complete frame at the start of `buf`.
    ///
    /// Returns the message octets and how many octets of `buf` the frame used, `None` when more input is
    /// needed, or an error as soon as the prefix is known to be invalid (before the body arrives, so a peer
    /// cannot make us wait for or buffer an oversize frame).
    pub fn decode<'b>(&self, buf: &'b [u8]) -> Result<Option<(&'b [u8], usize)>, FrameError> {
        let Some(prefix) = buf.get(..PREFIX_LEN) else {
            return Ok(None);
        };
        let len = u16::from_be_bytes([prefix[0], prefix[1]]) as usize;
        if len == 0 {
            return Err(FrameError::ZeroLength);
        }
        if len > self.max {
            return Err(FrameError::TooLong { len, max: self.max });
        }
        Ok(buf.get(PREFIX_LEN..PREFIX_LEN + len).map(|body| (body, PREFIX_LEN + len)))
    }

    /// Call at end of stream with what is left unconsumed: anything left is a truncated frame.
    pub fn finish(&self, rest: &[u8]) -> Result<(), FrameError> {
        if rest.is_empty() {
            return Ok(());
        }
        let needed = match rest.get(..PREFIX_LEN) {
            Some(p) => PREFIX_LEN + u16::from_be_bytes([p[0], p[1]]) as usize,
            None => PREFIX_LEN,
        };
        Err(FrameError::Truncated { buffered: rest.len(), needed })
    }
}

/// Encode `msg` as one frame (prefix and message), appending to `buf`.
///
/// TCP messages are not padded to 300 octets: RFC 1542's minimum exists for BOOTP relays, which never see
/// these connections. On error `buf` is left as it was.
pub fn encode_frame(msg: &Message<'_>, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    let settings = crate::EncodeSettings { min_len: 0, max_len: u16::MAX as usize };
    let start = buf.len();
    buf.extend_from_slice(&[0, 0]);
    if let Err(e) = msg.encode_with(buf, &settings) {
        buf.truncate(start);
        return Err(e);
    }
    let len = (buf.len() - start - PREFIX_LEN) as u16;
    buf[start..start + PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// The frames (prefix included) of a buffer of whole frames, as this crate's sessions produce it: a writer
/// that must put each message in its own TLS record (RFC 7724 §5.1) writes them one by one. A trailing
/// incomplete frame is returned as it is.
pub fn frames(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = match rest.get(..PREFIX_LEN) {
            Some(p) => (PREFIX_LEN + u16::from_be_bytes([p[0], p[1]]) as usize).min(rest.len()),
            None => rest.len(),
        };
        let (frame, tail) = rest.split_at(n);
        rest = tail;
        Some(frame)
    })
}

#[cfg(feature = "tokio-codec")]
mod codec {
    use super::*;
    use bytes::{Buf, BufMut, Bytes, BytesMut};

    /// Why the codec failed: the stream's framing, a message we could not encode, or the transport.
    #[derive(Debug, thiserror::Error)]
    pub enum CodecError {
        /// The bytes received are not a valid frame.
        #[error(transparent)]
        Frame(#[from] FrameError),
        /// A message to send could not be encoded.
        #[error(transparent)]
        Encode(#[from] EncodeError),
        /// The transport failed.
        #[error(transparent)]
        Io(#[from] std::io::Error),
    }

    /// `tokio_util::codec` adapter: decodes frames into message octets ([`Bytes`]) and encodes messages.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct DhcpFrameCodec {
        frames: FrameDecoder,
    }

    impl DhcpFrameCodec {
        /// A codec accepting frames of at most `max` octets.
        pub fn new(max: usize) -> Self {
            Self { frames: FrameDecoder::new(max) }
        }
    }

    impl tokio_util::codec::Decoder for DhcpFrameCodec {
        type Item = Bytes;
        type Error = CodecError;

        fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
            match self.frames.decode(src)? {
                Some((_, used)) => {
                    let mut frame = src.split_to(used);
                    frame.advance(PREFIX_LEN);
                    Ok(Some(frame.freeze()))
                }
                None => {
                    if src.len() >= PREFIX_LEN {
                        let len = u16::from_be_bytes([src[0], src[1]]) as usize;
                        src.reserve(PREFIX_LEN + len - src.len());
                    }
                    Ok(None)
                }
            }
        }

        fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
            match self.decode(src)? {
                Some(frame) => Ok(Some(frame)),
                None => Ok(self.frames.finish(src).map(|()| None)?),
            }
        }
    }

    impl tokio_util::codec::Encoder<&Message<'_>> for DhcpFrameCodec {
        type Error = CodecError;

        fn encode(&mut self, msg: &Message<'_>, dst: &mut BytesMut) -> Result<(), CodecError> {
            let mut v = Vec::with_capacity(320);
            encode_frame(msg, &mut v)?;
            dst.put_slice(&v);
            Ok(())
        }
    }
}

#[cfg(feature = "tokio-codec")]
pub use codec::{CodecError, DhcpFrameCodec};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MessageType, Op};

    #[test]
    fn a_300_octet_message_is_prefixed_01_2c() {
        let body = [7u8; 300];
        let mut buf = vec![0x01, 0x2c];
        buf.extend_from_slice(&body);
        let (frame, used) = FrameDecoder::default().decode(&buf).unwrap().unwrap();
        assert_eq!(frame, &body[..]);
        assert_eq!(used, 302);
    }

    #[test]
    fn partial_input_asks_for_more_and_errors_come_from_the_prefix_alone() {
        let d = FrameDecoder::new(1000);
        assert!(d.decode(&[]).unwrap().is_none());
        assert!(d.decode(&[0]).unwrap().is_none());
        assert!(d.decode(&[0, 5, 1, 2]).unwrap().is_none());
        assert!(matches!(d.decode(&[0, 0]), Err(FrameError::ZeroLength)));
        assert!(matches!(d.decode(&[0x03, 0xe9]), Err(FrameError::TooLong { len: 1001, max: 1000 })));
        assert!(matches!(d.finish(&[0, 5, 1]), Err(FrameError::Truncated { buffered: 3, needed: 7 })));
        assert!(matches!(d.finish(&[0]), Err(FrameError::Truncated { buffered: 1, needed: 2 })));
        assert!(d.finish(&[]).is_ok());
        assert_eq!(FrameDecoder::new(1 << 20).max_frame(), 65535);
    }

    #[test]
    fn alq_5_1_2_frames_splits_a_buffer_message_by_message() {
        let mut m = Message::new(Op::BootReply);
        m.options.set_message_type(MessageType::LeaseQueryStatus);
        let mut buf = Vec::new();
        encode_frame(&m, &mut buf).unwrap();
        let one = buf.len();
        encode_frame(&m, &mut buf).unwrap();
        buf.extend_from_slice(&[0, 9, 1]);
        let parts: Vec<usize> = frames(&buf).map(<[u8]>::len).collect();
        assert_eq!(parts, vec![one, one, 3]);
        assert_eq!(frames(&[]).count(), 0);
    }

    #[test]
    fn encode_frame_round_trips_and_is_not_padded() {
        let mut m = Message::new(Op::BootReply);
        m.options.set_message_type(MessageType::LeaseQueryDone);
        let mut buf = vec![];
        encode_frame(&m, &mut buf).unwrap();
        assert_eq!(buf.len(), 2 + 240 + 3 + 1);
        let (frame, _) = FrameDecoder::default().decode(&buf).unwrap().unwrap();
        assert_eq!(Message::decode(frame).unwrap(), m);
    }
}
