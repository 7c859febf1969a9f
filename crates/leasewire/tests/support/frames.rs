//! Active Leasequery over a blocking TCP stream, for the tests that drive `leasewire serve` from threads: the
//! query a requestor opens with, and the framed replies read back one message at a time.

use leasewire_proto::framing::{FrameDecoder, encode_frame};
use leasewire_proto::options::code;
use leasewire_proto::{Message, MessageType, Op};
use std::io::{Read, Write};

/// Send an Active Leasequery on `s`: transaction `xid`, parameter request list `prl`, and a query-start-time
/// (a catch-up from then) when `start` is given.
pub fn send_active_query(s: &mut impl Write, xid: u32, prl: &[u8], start: Option<u32>) {
    let mut q = Message::new(Op::BootRequest);
    q.xid = xid;
    q.options.set_message_type(MessageType::ActiveLeaseQuery);
    q.options.set(code::PARAMETER_REQUEST_LIST, prl.to_vec());
    if let Some(t) = start {
        q.options.set_u32(code::QUERY_START_TIME, t);
    }
    let mut b = Vec::new();
    encode_frame(&q, &mut b).unwrap();
    s.write_all(&b).unwrap();
}

/// The framed messages arriving on a blocking stream `s`.
pub struct Frames<S> {
    pub s: S,
    buf: Vec<u8>,
}

impl<S: Read> Frames<S> {
    pub fn new(s: S) -> Self {
        Self { s, buf: Vec::new() }
    }

    /// The next message, or None at the end of the stream; panics on a read error (a timeout included).
    pub fn next(&mut self) -> Option<Message<'static>> {
        loop {
            if let Some((body, n)) = FrameDecoder::default().decode(&self.buf).unwrap() {
                let owned: &'static [u8] = Box::leak(body.to_vec().into_boxed_slice());
                self.buf.drain(..n);
                return Some(Message::decode(owned).unwrap());
            }
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Every message to the end of the stream; the last one, if any.
    pub fn last(&mut self) -> Option<Message<'static>> {
        let mut last = None;
        while let Some(m) = self.next() {
            last = Some(m);
        }
        last
    }
}
