//! PING_CHECK as keepalived's check_ping.c does it: one ICMP (or ICMPv6)
//! echo request to the target; the check passes when the echo reply with
//! our identifier and sequence number comes back before the timeout.
//!
//! keepalived opens an unprivileged `IPPROTO_ICMP` datagram ("ping")
//! socket and, to be allowed one, widens `net.ipv4.ping_group_range` to
//! include group 0. vrlb changes no sysctl: it opens a ping socket when
//! the range allows it (the kernel then sets the identifier, the socket's
//! port, and delivers only our replies), and otherwise, as root with
//! CAP_NET_RAW, a raw ICMP socket connected to the target, where it picks
//! the identifier and skips every other ICMP message. Packets are built
//! and read with smoltcp's wire views.

use std::io;
use std::net::{IpAddr, SocketAddr};

use mio::net::UdpSocket;
use smoltcp::wire::{Icmpv4Message, Icmpv4Packet, Icmpv6Message, Icmpv6Packet, Ipv4Packet};
use socket2::{Domain, Protocol, Socket, Type};

/// Echo data bytes after the 8-byte header (ping(8)'s default).
const ECHO_DATA: usize = 56;

/// One PING_CHECK probe in flight.
pub struct Echo {
    socket: UdpSocket,
    /// Raw sockets deliver every ICMP message (IPv4 with its IP header).
    raw: bool,
    v6: bool,
    ident: u16,
    seq: u16,
}

/// Which socket was opened.
fn open(target: IpAddr, bind_to: Option<IpAddr>) -> io::Result<(Socket, bool)> {
    let (domain, protocol) = match target {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let (socket, raw) =
        match Socket::new(domain, Type::DGRAM.nonblocking().cloexec(), Some(protocol)) {
            Ok(s) => (s, false),
            // ping_group_range excludes us: a raw socket (root) instead.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => (
                Socket::new(domain, Type::RAW.nonblocking().cloexec(), Some(protocol))?,
                true,
            ),
            Err(e) => return Err(e),
        };
    if let Some(ip) = bind_to {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    socket.connect(&SocketAddr::new(target, 0).into())?;
    Ok((socket, raw))
}

/// An echo request with `ident` and `seq` and [`ECHO_DATA`] bytes of
/// data; the ICMPv4 checksum filled (the kernel fills ICMPv6's, and a
/// ping socket's own).
pub fn request(v6: bool, ident: u16, seq: u16) -> Vec<u8> {
    let mut buf = vec![0u8; 8 + ECHO_DATA];
    for (i, b) in buf[8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    if v6 {
        let mut p = Icmpv6Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(Icmpv6Message::EchoRequest);
        p.set_msg_code(0);
        p.set_echo_ident(ident);
        p.set_echo_seq_no(seq);
    } else {
        let mut p = Icmpv4Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(Icmpv4Message::EchoRequest);
        p.set_msg_code(0);
        p.set_echo_ident(ident);
        p.set_echo_seq_no(seq);
        p.fill_checksum();
    }
    buf
}

/// Whether `msg` (an ICMP message, IP header removed) is the echo reply to
/// `ident`/`seq`.
pub fn is_reply(v6: bool, msg: &[u8], ident: u16, seq: u16) -> bool {
    if v6 {
        Icmpv6Packet::new_checked(msg).is_ok_and(|p| {
            p.msg_type() == Icmpv6Message::EchoReply
                && p.echo_ident() == ident
                && p.echo_seq_no() == seq
        })
    } else {
        Icmpv4Packet::new_checked(msg).is_ok_and(|p| {
            p.msg_type() == Icmpv4Message::EchoReply
                && p.echo_ident() == ident
                && p.echo_seq_no() == seq
                && p.verify_checksum()
        })
    }
}

impl Echo {
    /// Sends echo request `seq` to `target`, from `bind_to` if given;
    /// `ident` is used on a raw socket (a ping socket's is its port).
    pub fn start(
        target: IpAddr,
        bind_to: Option<IpAddr>,
        ident: u16,
        seq: u16,
    ) -> io::Result<Echo> {
        let (socket, raw) = open(target, bind_to)?;
        let v6 = target.is_ipv6();
        let socket = UdpSocket::from_std(std::net::UdpSocket::from(socket));
        let ident = match raw {
            true => ident,
            false => socket.local_addr()?.port(),
        };
        socket.send(&request(v6, ident, seq))?;
        Ok(Echo {
            socket,
            raw,
            v6,
            ident,
            seq,
        })
    }

    /// Whether a raw socket carries it (for the log).
    pub fn raw(&self) -> bool {
        self.raw
    }

    /// The socket, to (de)register.
    pub fn socket(&mut self) -> &mut UdpSocket {
        &mut self.socket
    }

    /// What the socket has now: `None` while no reply has come.
    pub fn step(&mut self) -> Option<Result<(), String>> {
        let mut buf = [0u8; 1500];
        loop {
            let n = match self.socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(super::udp::icmp_error(&e))),
            };
            let msg = match (self.raw, self.v6) {
                // A raw IPv4 socket reads the IP header too.
                (true, false) => match Ipv4Packet::new_checked(&buf[..n]) {
                    Ok(ip) => &buf[usize::from(ip.header_len()).min(n)..n],
                    Err(_) => continue,
                },
                _ => &buf[..n],
            };
            if is_reply(self.v6, msg, self.ident, self.seq) {
                return Some(Ok(()));
            }
        }
    }
}
