//! The wire layer of leasewire: DHCPv4 messages as the Leasequery family speaks them.
//!
//! * [`Message`] is a strict decoder that borrows from the datagram (RFC 2131 header, RFC 3396 long options,
//!   option overload) and an encoder that writes into a caller-owned, reusable buffer.
//! * [`options`] holds the option codes and typed views of the options RFC 4388, RFC 6926 and RFC 7724 use.
//! * [`framing`] is the 2-octet length framing of RFC 6926 §6.1 / RFC 7724 §5.1 for TCP.
//!
//! Nothing here touches a socket, a runtime or a clock: callers pass bytes in and get bytes out, so the same
//! code runs under tokio, in tests with simulated time, and inside fuzzers.
#![forbid(unsafe_code)]

#[macro_use]
mod byte_coded;
mod binding;
mod dhcp_state;
mod error;
pub mod framing;
pub mod hex;
pub mod lq_reply;
mod message;
mod message_type;
pub mod options;
pub mod query_key;
mod relay_agent;
pub mod session;
mod status;
mod vss;

pub use binding::{Binding, BindingChange, BindingProblem, MAX_HARDWARE_ADDRESS_LEN};
pub use dhcp_state::{DataSource, DhcpState};
pub use error::{DecodeError, EncodeError, OptionError};
pub use message::{BOOTP_MIN_LEN, DhcpOption, EncodeSettings, HEADER_LEN, MAGIC_COOKIE, Message, Op, Options};
pub use message_type::MessageType;
pub use relay_agent::{RelayAgentInfo, RelayAgentInfoBuilder, SubOption, sub_option};
pub use status::{Status, StatusCode};
pub use vss::{Vss, VssType};
