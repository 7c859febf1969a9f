//! The requestor's halves of Leasequery over TCP, sans-IO: Bulk ([`bulk`], RFC 6926 §7), Active ([`active`],
//! RFC 7724 §7) and the DHCPTLS request that opens secure mode for either ([`dhcptls`]).

pub mod active;
pub mod bulk;
pub mod dhcptls;

use crate::framing::FrameError;
use crate::{DecodeError, MessageType};

/// What a server sent that a requestor session cannot take: the reason of [`active::ActiveError::BadInput`]
/// and [`bulk::RequestorError::BadInput`]. Either ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReply {
    /// The bytes are not a valid frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame whose message does not decode.
    #[error(transparent)]
    Message(#[from] DecodeError),
    /// A message without option 53.
    #[error("reply without message type")]
    NoMessageType,
    /// An Active stream message on another xid than the query's.
    #[error("reply with xid {got:#x}, expected {expected:#x}")]
    WrongXid {
        /// The message's xid.
        got: u32,
        /// The query's.
        expected: u32,
    },
    /// A message type the server must not send on this connection.
    #[error("unexpected {0}")]
    Unexpected(MessageType),
    /// DataMissing without the base-time that says up to when data is missing (ALQ-7.4.1-4).
    #[error("DataMissing without base-time")]
    DataMissingWithoutBaseTime,
    /// Bytes after the DHCPTLS answer and before the handshake: not the server's, which waits for our
    /// ClientHello.
    #[error("bytes after the DHCPTLS answer, before TLS")]
    BytesBeforeTls,
}
