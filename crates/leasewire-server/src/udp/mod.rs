//! What the server does over UDP: DHCP itself ([`dhcp`], the tokio driver of the engine) and Leasequery
//! (RFC 4388, [`leasequery`]), answered on the same sockets.

pub mod auth;
pub mod dhcp;
pub mod leasequery;
mod shared_view;
