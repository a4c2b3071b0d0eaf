//! VRRP on raw IP sockets (protocol 112), one receiver per (interface,
//! family) and one sender per (interface, source address).
//!
//! The receiver is bound to its device (SO_BINDTODEVICE), joined to
//! 224.0.0.18 or ff02::12 on it, and hands back each message with the IP
//! source, destination and TTL / hop limit the core checks. The sender is
//! bound to the advert's source address (`mcast_src_ip`, `unicast_src_ip`,
//! else the interface's primary address) and sends with TTL / hop limit
//! 255, multicast loop off. Senders are separate from receivers because a
//! raw socket bound to a unicast address no longer receives multicast.
//! Owns the sockets; parses nothing beyond the IPv4 header.

use std::io::{self, IoSliceMut, Read};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg, setsockopt, sockopt};
use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};
use vrlb_core::wire::smol::Ipv4Packet;
use vrlb_core::wire::vrrp::{MULTICAST_V4, MULTICAST_V6, PROTOCOL, TTL};

/// An IP family of VRRP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// One received VRRP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    /// IP source.
    pub src: IpAddr,
    /// IP destination.
    pub dst: IpAddr,
    /// TTL / hop limit.
    pub ttl: u8,
    /// The VRRP message.
    pub payload: &'a [u8],
}

fn raw_socket(family: Family) -> io::Result<Socket> {
    let domain = match family {
        Family::V4 => Domain::IPV4,
        Family::V6 => Domain::IPV6,
    };
    let socket = Socket::new(
        domain,
        Type::RAW.nonblocking().cloexec(),
        Some(Protocol::from(i32::from(PROTOCOL))),
    )?;
    Ok(socket)
}

/// Receives VRRP on one interface for one family.
pub struct Receiver {
    socket: Socket,
    family: Family,
    buf: Vec<u8>,
}

impl Receiver {
    /// Opens the receiver on `ifname` (index `ifindex`) and joins the VRRP
    /// group there.
    pub fn open(family: Family, ifname: &str, ifindex: u32) -> io::Result<Receiver> {
        let socket = raw_socket(family)?;
        socket.bind_device(Some(ifname.as_bytes()))?;
        match family {
            Family::V4 => {
                socket.join_multicast_v4_n(
                    &MULTICAST_V4,
                    &socket2::InterfaceIndexOrAddress::Index(ifindex),
                )?;
                // Only the groups joined here, not every group of the host.
                socket.set_multicast_all_v4(false)?;
            }
            Family::V6 => {
                socket.join_multicast_v6(&MULTICAST_V6, ifindex)?;
                socket.set_multicast_all_v6(false)?;
                setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true).map_err(io::Error::from)?;
                setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)?;
            }
        }
        Ok(Receiver {
            socket,
            family,
            buf: vec![0; 2048],
        })
    }

    /// The next message, `None` when none is waiting. Messages whose
    /// headers cannot be read are skipped.
    pub fn recv(&mut self) -> io::Result<Option<Received<'_>>> {
        loop {
            let got = match self.family {
                Family::V4 => self.recv_v4(),
                Family::V6 => self.recv_v6(),
            };
            match got {
                Ok(Some(meta)) => {
                    let (src, dst, ttl, start, end) = meta;
                    return Ok(Some(Received {
                        src,
                        dst,
                        ttl,
                        payload: &self.buf[start..end],
                    }));
                }
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// IPv4 raw sockets deliver the IP header: read the fields there.
    #[allow(clippy::type_complexity)]
    fn recv_v4(&mut self) -> io::Result<Option<(IpAddr, IpAddr, u8, usize, usize)>> {
        let len = (&self.socket).read(&mut self.buf)?;
        let Ok(ip) = Ipv4Packet::new_checked(&self.buf[..len]) else {
            return Ok(None);
        };
        let start = usize::from(ip.header_len());
        let end = usize::from(ip.total_len()).min(len);
        if start > end {
            return Ok(None);
        }
        Ok(Some((
            IpAddr::V4(ip.src_addr()),
            IpAddr::V4(ip.dst_addr()),
            ip.hop_limit(),
            start,
            end,
        )))
    }

    /// IPv6 raw sockets deliver the payload only: the hop limit and
    /// destination come as control messages.
    #[allow(clippy::type_complexity)]
    fn recv_v6(&mut self) -> io::Result<Option<(IpAddr, IpAddr, u8, usize, usize)>> {
        let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
        let fd = self.socket.as_raw_fd();
        let mut iov = [IoSliceMut::new(&mut self.buf)];
        let msg = recvmsg::<SockaddrIn6>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
            .map_err(io::Error::from)?;
        let len = msg.bytes;
        let Some(src) = msg.address.map(|a| a.ip()) else {
            return Ok(None);
        };
        let mut hop_limit = None;
        let mut dst = None;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            match c {
                ControlMessageOwned::Ipv6HopLimit(h) => hop_limit = u8::try_from(h).ok(),
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                }
                _ => {}
            }
        }
        let (Some(ttl), Some(dst)) = (hop_limit, dst) else {
            return Ok(None);
        };
        Ok(Some((IpAddr::V6(src), IpAddr::V6(dst), ttl, 0, len)))
    }
}

impl AsRawFd for Receiver {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

/// Sends VRRP from one source address out of one interface.
pub struct Sender {
    socket: Socket,
    ifindex: u32,
}

impl Sender {
    /// Opens a sender on `ifname` from `src`.
    pub fn open(ifname: &str, ifindex: u32, src: IpAddr) -> io::Result<Sender> {
        let family = if src.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        };
        let socket = raw_socket(family)?;
        // A raw socket is handed every VRRP packet that matches it (a
        // unicast advert to `src`); a sender never reads, so a filter that
        // accepts nothing keeps its queue empty (the daemon opens senders
        // ahead of need, on backups too).
        socket.attach_filter(&[SockFilter::new(
            (libc::BPF_RET | libc::BPF_K) as u16,
            0,
            0,
            0,
        )])?;
        socket.bind_device(Some(ifname.as_bytes()))?;
        match src {
            IpAddr::V4(a) => {
                socket.set_ttl_v4(u32::from(TTL))?;
                socket.set_multicast_ttl_v4(u32::from(TTL))?;
                socket.set_multicast_loop_v4(false)?;
                socket.set_multicast_if_v4(&a)?;
                // The address may be on its way (reload, DAD): bind anyway.
                socket.set_freebind_v4(true)?;
                socket.bind(&SockAddr::from(SocketAddrV4::new(a, 0)))?;
            }
            IpAddr::V6(a) => {
                socket.set_unicast_hops_v6(u32::from(TTL))?;
                socket.set_multicast_hops_v6(u32::from(TTL))?;
                socket.set_multicast_loop_v6(false)?;
                socket.set_multicast_if_v6(ifindex)?;
                socket.set_freebind_v6(true)?;
                let scope = if is_link_local(&a) { ifindex } else { 0 };
                socket.bind(&SockAddr::from(SocketAddrV6::new(a, 0, 0, scope)))?;
            }
        }
        Ok(Sender { socket, ifindex })
    }

    /// Sends `payload` (a VRRP message) to `dst`.
    pub fn send(&self, dst: IpAddr, payload: &[u8]) -> io::Result<()> {
        let to = match dst {
            IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, 0)),
            IpAddr::V6(a) => {
                let scope = if a.is_multicast() || is_link_local(&a) {
                    self.ifindex
                } else {
                    0
                };
                SocketAddr::V6(SocketAddrV6::new(a, 0, 0, scope))
            }
        };
        self.socket.send_to(payload, &SockAddr::from(to))?;
        Ok(())
    }
}

/// fe80::/10.
pub fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}
