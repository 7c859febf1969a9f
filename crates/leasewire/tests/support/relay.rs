//! A DHCP relay agent's view of the server on loopback: builds relayed DISCOVER/REQUEST/RELEASE with option 82
//! (circuit-id, remote-id and the RFC 8357 relay-source-port flag, so replies come back to this socket's
//! port) and waits for the replies.

use leasewire_proto::options::code;
use leasewire_proto::{Message, MessageType, Op, RelayAgentInfoBuilder};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// One simulated relay with its own socket.
pub struct Relay {
    pub sock: UdpSocket,
    pub server: SocketAddr,
    pub giaddr: Ipv4Addr,
}

impl Relay {
    pub fn new(server: SocketAddr, giaddr: Ipv4Addr) -> Self {
        let sock = UdpSocket::bind((giaddr, 0)).or_else(|_| UdpSocket::bind("127.0.0.1:0")).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        Self { sock, server, giaddr }
    }

    /// A relayed request from client `mac`.
    pub fn request(&self, t: MessageType, mac: [u8; 6], xid: u32) -> Message<'static> {
        let mut m = Message::new(Op::BootRequest);
        m.xid = xid;
        m.hops = 1;
        m.giaddr = self.giaddr;
        m.set_hardware_address(1, &mac);
        m.options.set_message_type(t);
        let rai = RelayAgentInfoBuilder::new()
            .circuit_id(format!("port-{}", mac[5]).as_bytes())
            .remote_id(&mac)
            .relay_id(b"relay-A")
            .relay_source_port()
            .build();
        m.options.set(code::RELAY_AGENT_INFO, rai);
        m
    }

    pub fn send(&self, m: &Message<'_>) {
        let mut b = Vec::new();
        m.encode(&mut b).unwrap();
        self.sock.send_to(&b, self.server).unwrap();
    }

    pub fn send_raw(&self, b: &[u8]) {
        self.sock.send_to(b, self.server).unwrap();
    }

    /// The next reply with this xid, or None after the read timeout.
    pub fn recv(&self, xid: u32) -> Option<Message<'static>> {
        let mut buf = [0u8; 2048];
        loop {
            let (n, _) = self.sock.recv_from(&mut buf).ok()?;
            let bytes: &'static [u8] = Box::leak(buf[..n].to_vec().into_boxed_slice());
            let m = Message::decode(bytes).expect("the server's replies decode");
            if m.xid == xid {
                return Some(m);
            }
        }
    }

    /// A full DISCOVER/OFFER/REQUEST/ACK; the ACKed address, or None if any step got no answer.
    pub fn dora(&self, mac: [u8; 6], xid: u32, server_id: Ipv4Addr) -> Option<Ipv4Addr> {
        self.send(&self.request(MessageType::Discover, mac, xid));
        let offer = self.recv(xid)?;
        assert_eq!(offer.message_type(), Some(MessageType::Offer));
        let mut req = self.request(MessageType::Request, mac, xid);
        req.options.set_ip(code::SERVER_IDENTIFIER, server_id);
        req.options.set_ip(code::REQUESTED_IP, offer.yiaddr);
        self.send(&req);
        let ack = self.recv(xid)?;
        (ack.message_type() == Some(MessageType::Ack)).then_some(ack.yiaddr)
    }
}
