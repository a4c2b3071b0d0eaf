//! DNS_CHECK as keepalived's check_dns.c does it: one query (`type`,
//! `name`, class IN, recursion desired, a random ID) on a connected UDP
//! socket; the check passes on the first reply that carries our ID and the
//! response bit with RCODE 0 (NOERROR), and fails on one with another
//! RCODE. Datagrams with another ID, queries and runts are skipped, as
//! keepalived does; answer counts are not checked (keepalived does not).
//! The message is built and the header read with `simple-dns` (a small
//! crate with one dependency, bitflags, already in the tree), not by hand.

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;
use simple_dns::header_buffer;
use simple_dns::{CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, Question, RCODE, TYPE};
use vrlb_core::config::DnsType;

use super::udp::{connected_socket, icmp_error};

/// The header's length (RFC 1035 4.1.1).
const HEADER_LEN: usize = 12;
/// The largest reply read: DNS over UDP without EDNS (RFC 1035 4.2.1).
const MAX_REPLY: usize = 512;

/// One DNS_CHECK probe in flight.
pub struct DnsProbe {
    socket: UdpSocket,
    id: u16,
}

/// The query's bytes.
pub fn query(id: u16, qtype: DnsType, name: &str) -> Result<Vec<u8>, String> {
    // simple-dns spells the root as the empty name.
    let text = if name == "." { "" } else { name };
    let qname = Name::new(text).map_err(|e| format!("DNS name '{name}': {e}"))?;
    let qtype = match qtype {
        DnsType::A => TYPE::A,
        DnsType::Ns => TYPE::NS,
        DnsType::Cname => TYPE::CNAME,
        DnsType::Soa => TYPE::SOA,
        DnsType::Mx => TYPE::MX,
        DnsType::Txt => TYPE::TXT,
        DnsType::Aaaa => TYPE::AAAA,
    };
    let mut packet = Packet::new_query(id);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    packet.questions.push(Question::new(
        qname,
        QTYPE::TYPE(qtype),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    packet
        .build_bytes_vec()
        .map_err(|e| format!("DNS query: {e}"))
}

/// What one datagram says: `None` if it is not the answer (skipped).
pub fn judge(id: u16, reply: &[u8]) -> Option<Result<(), String>> {
    if reply.len() < HEADER_LEN || header_buffer::id(reply).ok()? != id {
        return None;
    }
    if !header_buffer::has_flags(reply, PacketFlag::RESPONSE).ok()? {
        return None;
    }
    match header_buffer::rcode(reply).ok()? {
        RCODE::NoError => Some(Ok(())),
        rcode => {
            let code = u16::from_be_bytes([reply[2], reply[3]]) & 0x000f;
            Some(Err(format!("DNS rcode {code} ({rcode:?})")))
        }
    }
}

impl DnsProbe {
    /// Sends the query for `name`/`qtype` with `id` to `target`.
    pub fn start(
        target: SocketAddr,
        bind: Option<SocketAddr>,
        id: u16,
        qtype: DnsType,
        name: &str,
    ) -> Result<DnsProbe, String> {
        let bytes = query(id, qtype, name)?;
        let io = |e: io::Error| format!("DNS query to {target}: {e}");
        let socket = connected_socket(target, bind).map_err(io)?;
        socket.send(&bytes).map_err(io)?;
        Ok(DnsProbe { socket, id })
    }

    /// The socket, to (de)register.
    pub fn socket(&mut self) -> &mut UdpSocket {
        &mut self.socket
    }

    /// What the socket has now: `None` while nothing decides.
    pub fn step(&mut self) -> Option<Result<(), String>> {
        let mut buf = [0u8; MAX_REPLY];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    if let Some(verdict) = judge(self.id, &buf[..n]) {
                        return Some(verdict);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(icmp_error(&e))),
            }
        }
    }
}
