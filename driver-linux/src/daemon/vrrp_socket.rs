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
//! Receivers read in batches ([`RecvBatch`], one `recvmmsg(2)` for up to
//! [`RECV_BATCH`] messages): a backup of many instances hears their
//! adverts in bursts. Owns the sockets; parses nothing beyond the IPv4
//! header.

use std::io::{self, IoSliceMut, Read};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, setsockopt, sockopt,
};
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

/// Most messages one [`Receiver::recv_batch`] reads.
pub const RECV_BATCH: usize = 16;
/// Receive buffer: 255 adverts (the most one interface and family can
/// carry, one per VRID) at the kernel's cost of a small packet (about
/// 1 KiB each with its buffer), twice over.
const RECV_BUFFER: usize = 512 * 1024;
/// Bytes per message: an IPv4 advert with the most VIPs an advert carries
/// (a 60-byte header, 8 + 255 x 4 + 8 bytes of VRRP) fits, and so does a
/// v3 IPv6 advert of 127 VIPs. A longer one is cut short here and dropped
/// by the core as malformed.
const SLOT: usize = 2048;

/// Where a message of the batch lies in its slot, and its IP fields.
#[derive(Debug, Clone, Copy)]
struct Meta {
    slot: usize,
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    start: usize,
    end: usize,
}

/// Buffers for [`Receiver::recv_batch`], shared by every receiver: the
/// event loop drains one socket at a time. Allocated at the first read
/// (so an empty one, `Default`, costs nothing to make or swap); pages of
/// slots no burst has reached are never touched, so never resident.
#[derive(Default)]
pub struct RecvBatch {
    buf: Vec<u8>,
    got: Vec<Meta>,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("messages", &self.got.len())
            .finish_non_exhaustive()
    }
}

impl RecvBatch {
    /// Buffers for [`RECV_BATCH`] messages (made at the first read).
    pub fn new() -> Self {
        Self::default()
    }

    /// Messages the last [`Receiver::recv_batch`] kept.
    pub fn len(&self) -> usize {
        self.got.len()
    }

    /// Whether it kept none.
    pub fn is_empty(&self) -> bool {
        self.got.is_empty()
    }

    /// Message `i` of the last batch, in arrival order.
    pub fn get(&self, i: usize) -> Option<Received<'_>> {
        let m = self.got.get(i)?;
        let at = m.slot * SLOT;
        Some(Received {
            src: m.src,
            dst: m.dst,
            ttl: m.ttl,
            payload: self.buf.get(at + m.start..at + m.end)?,
        })
    }
}

/// Receives VRRP on one interface for one family.
pub struct Receiver {
    socket: Socket,
    family: Family,
}

impl Receiver {
    /// Opens the receiver on `ifname` (index `ifindex`) and joins the VRRP
    /// group there.
    pub fn open(family: Family, ifname: &str, ifindex: u32) -> io::Result<Receiver> {
        let socket = raw_socket(family)?;
        socket.bind_device(Some(ifname.as_bytes()))?;
        // Room for a whole burst: the event loop reads a burst late on
        // purpose (`holdoff`), and a master of 255 instances on this
        // interface sends 255 adverts at once. Forced past `rmem_max`
        // (CAP_NET_ADMIN), else as far as it allows; a limit, not memory
        // taken.
        if setsockopt(&socket, sockopt::RcvBufForce, &RECV_BUFFER).is_err() {
            socket.set_recv_buffer_size(RECV_BUFFER)?;
        }
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
        Ok(Receiver { socket, family })
    }

    /// Reads and drops every message waiting (before the socket is
    /// watched).
    pub fn discard(&mut self) {
        let mut buf = [0u8; 64];
        while (&self.socket).read(&mut buf).is_ok() {}
    }

    /// Reads up to [`RECV_BATCH`] waiting messages with one `recvmmsg`
    /// into `batch` (see [`RecvBatch::get`]); messages whose headers cannot
    /// be read are skipped. Returns whether more may be waiting (a full
    /// batch, or an interrupted call): if not, the socket is drained and
    /// an edge-triggered watch fires again for the next arrival.
    pub fn recv_batch(&mut self, batch: &mut RecvBatch) -> io::Result<bool> {
        let RecvBatch { buf, got } = batch;
        got.clear();
        if buf.len() != RECV_BATCH * SLOT {
            *buf = vec![0; RECV_BATCH * SLOT];
        }
        // Fresh headers every call: the kernel writes each message's
        // address and control lengths back into its header, and nix reuses
        // them as the next call's capacities, which would cut an IPv6
        // source or its control messages short after a shorter message.
        let mut headers: MultiHeaders<SockaddrStorage> = MultiHeaders::preallocate(
            RECV_BATCH,
            Some(nix::cmsg_space!(libc::in6_pktinfo, libc::c_int)),
        );
        let fd = self.socket.as_raw_fd();
        let mut chunks = buf.chunks_exact_mut(SLOT);
        let mut iovs: [[IoSliceMut<'_>; 1]; RECV_BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
        let results = match recvmmsg(
            fd,
            &mut headers,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            Ok(r) => r,
            Err(nix::errno::Errno::EINTR) => return Ok(true),
            Err(nix::errno::Errno::EAGAIN) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let mut n = 0;
        for (slot, msg) in results.enumerate() {
            n += 1;
            let len = msg.bytes.min(SLOT);
            let meta = match self.family {
                // Fields from the IP header, read below once the buffers
                // are free again.
                Family::V4 => Some(Meta {
                    slot,
                    src: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                    dst: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                    ttl: 0,
                    start: 0,
                    end: len,
                }),
                Family::V6 => v6_meta(&msg, slot, len),
            };
            got.extend(meta);
        }
        if self.family == Family::V4 {
            got.retain_mut(|m| {
                let at = m.slot * SLOT;
                let Some((src, dst, ttl, start, end)) = v4_fields(&buf[at..at + m.end]) else {
                    return false;
                };
                (m.src, m.dst, m.ttl, m.start, m.end) = (src, dst, ttl, start, end);
                true
            });
        }
        Ok(n == RECV_BATCH)
    }
}

/// The source, destination, TTL and payload bounds of an IPv4 raw
/// socket's message (it starts with the IP header).
#[allow(clippy::type_complexity)]
fn v4_fields(msg: &[u8]) -> Option<(IpAddr, IpAddr, u8, usize, usize)> {
    let ip = Ipv4Packet::new_checked(msg).ok()?;
    let start = usize::from(ip.header_len());
    let end = usize::from(ip.total_len()).min(msg.len());
    (start <= end).then(|| {
        (
            IpAddr::V4(ip.src_addr()),
            IpAddr::V4(ip.dst_addr()),
            ip.hop_limit(),
            start,
            end,
        )
    })
}

/// IPv6 raw sockets deliver the payload only: the hop limit and
/// destination come as control messages, the source as the address.
fn v6_meta(
    msg: &nix::sys::socket::RecvMsg<'_, '_, SockaddrStorage>,
    slot: usize,
    len: usize,
) -> Option<Meta> {
    let src = msg.address.as_ref()?.as_sockaddr_in6()?.ip();
    let mut hop_limit = None;
    let mut dst = None;
    for c in msg.cmsgs().ok()? {
        match c {
            ControlMessageOwned::Ipv6HopLimit(h) => hop_limit = u8::try_from(h).ok(),
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
            }
            _ => {}
        }
    }
    Some(Meta {
        slot,
        src: IpAddr::V6(src),
        dst: IpAddr::V6(dst?),
        ttl: hop_limit?,
        start: 0,
        end: len,
    })
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
                // No IP_MULTICAST_IF: the bound device is the way out, and
                // a VMAC has no address of its own to name it by.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_netns::in_private_netns;

    /// A raw protocol-112 socket that sends `payload`s to `dst` (the
    /// kernel writes the IP header).
    fn send_all(dst: IpAddr, payloads: &[Vec<u8>]) {
        let family = if dst.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        };
        let s = raw_socket(family).unwrap();
        s.set_nonblocking(false).unwrap();
        let to = SockAddr::from(SocketAddr::new(dst, 0));
        for p in payloads {
            s.send_to(p, &to).unwrap();
        }
    }

    fn payloads(n: usize, tag: u8) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| vec![0x21, tag, i as u8, 1, 0, 1, 0, 0])
            .collect()
    }

    /// Every message of one batch, as (src, dst, payload).
    fn read(rx: &mut Receiver, batch: &mut RecvBatch) -> (bool, Vec<(IpAddr, IpAddr, Vec<u8>)>) {
        let more = rx.recv_batch(batch).unwrap();
        let got = (0..batch.len())
            .map(|i| {
                let m = batch.get(i).unwrap();
                (m.src, m.dst, m.payload.to_vec())
            })
            .collect();
        (more, got)
    }

    #[test]
    fn a_burst_of_adverts_is_read_a_batch_per_call_in_order_both_families() {
        let ran = in_private_netns(|| {
            let v4: IpAddr = "127.0.0.1".parse().unwrap();
            let v6: IpAddr = "::1".parse().unwrap();
            let mut rx4 = Receiver::open(Family::V4, "lo", 1).unwrap();
            let mut rx6 = Receiver::open(Family::V6, "lo", 1).unwrap();
            let mut batch = RecvBatch::new();
            // Nothing waiting: nothing read, drained.
            assert_eq!(read(&mut rx4, &mut batch), (false, vec![]));

            // 40 adverts at once: three calls (16, 16, 8), not 40.
            let sent = payloads(40, 4);
            send_all(v4, &sent);
            let mut got = Vec::new();
            let mut calls = 0;
            loop {
                let (more, msgs) = read(&mut rx4, &mut batch);
                calls += 1;
                got.extend(msgs);
                if !more {
                    break;
                }
            }
            assert_eq!(calls, 3);
            assert_eq!(got.len(), 40);
            for (i, (src, dst, p)) in got.iter().enumerate() {
                assert_eq!((*src, *dst), (v4, v4));
                assert_eq!(p, &sent[i], "message {i} out of order or cut");
            }

            // IPv6 after IPv4 in the same buffers: the source and the
            // destination and hop limit (control messages) arrive whole.
            let sent6 = payloads(3, 6);
            send_all(v6, &sent6);
            let (more, got6) = read(&mut rx6, &mut batch);
            assert!(!more);
            assert_eq!(got6.len(), 3);
            for (i, (src, dst, p)) in got6.iter().enumerate() {
                assert_eq!((*src, *dst), (v6, v6));
                assert_eq!(p, &sent6[i]);
            }
            // And IPv4 again after IPv6.
            send_all(v4, &payloads(2, 7));
            let (_, again) = read(&mut rx4, &mut batch);
            assert_eq!(again.len(), 2);
            assert_eq!(batch.get(0).map(|m| m.ttl), Some(64));
        });
        if ran.is_none() {
            eprintln!("(the receive-batch test did not run)");
        }
    }
}
