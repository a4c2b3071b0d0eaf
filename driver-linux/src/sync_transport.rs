//! The connection-sync transport: UDP datagrams to a multicast group on
//! one interface, where IPVS's sync daemons send theirs (ip_vs_sync.c:
//! group 224.0.0.81, port 8848, TTL 1) unless keepalived's
//! `lvs_sync_daemon ... group ADDR port N ttl N` say otherwise. One socket
//! sends (bound to the interface, `IP_MULTICAST_IF` on it, loop off, the
//! TTL); another joins the group on the interface and receives only the
//! group's datagrams arriving there. Never reads what it carries.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};

/// IPVS's sync group (`IP_VS_SYNC_GROUP`, ip_vs_sync.c).
pub const DEFAULT_GROUP: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 81));
/// IPVS's sync port (`IP_VS_SYNC_PORT`).
pub const DEFAULT_PORT: u16 = 8848;
/// IPVS's default multicast TTL (`mcast_ttl` 1: the local segment).
pub const DEFAULT_TTL: u8 = 1;
/// Bytes of IPv4 + UDP headers (IPv6: 48).
const V4_OVERHEAD: usize = 28;
const V6_OVERHEAD: usize = 48;

/// Where sync datagrams go and come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The interface (`lvs_sync_daemon INTERFACE`).
    pub iface: String,
    /// The multicast group.
    pub group: IpAddr,
    /// The UDP port.
    pub port: u16,
    /// Multicast TTL / hop limit.
    pub ttl: u8,
}

impl Endpoint {
    /// IPVS's defaults on `iface`.
    pub fn new(iface: &str) -> Self {
        Endpoint {
            iface: iface.to_string(),
            group: DEFAULT_GROUP,
            port: DEFAULT_PORT,
            ttl: DEFAULT_TTL,
        }
    }

    /// The largest datagram payload the interface's MTU carries unfragmented
    /// (`None` when the MTU cannot be read).
    pub fn max_payload(&self) -> Option<usize> {
        let mtu: usize = std::fs::read_to_string(format!("/sys/class/net/{}/mtu", self.iface))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let overhead = if self.group.is_ipv4() {
            V4_OVERHEAD
        } else {
            V6_OVERHEAD
        };
        Some(mtu.saturating_sub(overhead))
    }
}

/// The two sockets.
#[derive(Debug)]
pub struct Transport {
    tx: UdpSocket,
    rx: UdpSocket,
    dest: SocketAddr,
    endpoint: Endpoint,
}

impl Transport {
    /// Opens both sockets, non-blocking. Fails if the interface does not
    /// exist, the group is not multicast, or a socket option is refused.
    pub fn open(endpoint: &Endpoint) -> io::Result<Transport> {
        if !endpoint.group.is_multicast() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a multicast group", endpoint.group),
            ));
        }
        let ifindex = nix::net::if_::if_nametoindex(endpoint.iface.as_str())
            .map_err(|e| io::Error::other(format!("interface {}: {e}", endpoint.iface)))?;
        // Link-scope IPv6 groups (ff02::/16) need the interface as scope.
        let dest = match endpoint.group {
            IpAddr::V4(_) => SocketAddr::new(endpoint.group, endpoint.port),
            IpAddr::V6(g) => SocketAddr::V6(SocketAddrV6::new(g, endpoint.port, 0, ifindex)),
        };
        let domain = Domain::for_address(dest);
        let dev = Some(endpoint.iface.as_bytes());

        let tx = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        tx.bind_device(dev)?;
        match endpoint.group {
            IpAddr::V4(_) => {
                set_multicast_if_index_v4(&tx, ifindex)?;
                tx.set_multicast_loop_v4(false)?;
                tx.set_multicast_ttl_v4(u32::from(endpoint.ttl))?;
            }
            IpAddr::V6(_) => {
                tx.set_multicast_if_v6(ifindex)?;
                tx.set_multicast_loop_v6(false)?;
                tx.set_multicast_hops_v6(u32::from(endpoint.ttl))?;
            }
        }
        // Not connected: connecting needs a source address, which an
        // IPv6 interface lacks while its link-local one is tentative.
        tx.set_nonblocking(true)?;

        let rx = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        rx.set_reuse_address(true)?;
        rx.bind_device(dev)?;
        match endpoint.group {
            IpAddr::V4(g) => {
                rx.join_multicast_v4_n(&g, &InterfaceIndexOrAddress::Index(ifindex))?;
                // Only this socket's own groups, not every group the host
                // joined on this port.
                rx.set_multicast_all_v4(false)?;
            }
            IpAddr::V6(g) => {
                rx.join_multicast_v6(&g, ifindex)?;
                rx.set_multicast_all_v6(false)?;
            }
        }
        // Bound to the group: datagrams to other addresses on the port
        // are not ours.
        rx.bind(&SockAddr::from(dest))?;
        rx.set_nonblocking(true)?;
        Ok(Transport {
            tx: tx.into(),
            rx: rx.into(),
            dest,
            endpoint: endpoint.clone(),
        })
    }

    /// Where it sends and listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends one datagram to the group. `WouldBlock` means the socket
    /// buffer is full: sync is best effort, as in IPVS, so the caller
    /// counts it and goes on.
    pub fn send(&self, payload: &[u8]) -> io::Result<()> {
        let n = self.tx.send_to(payload, self.dest)?;
        if n != payload.len() {
            return Err(io::Error::other("short datagram write"));
        }
        Ok(())
    }

    /// The next datagram: its length (truncated to `buf`) and sender, or
    /// `None` when none is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, SocketAddr)>> {
        loop {
            return match self.rx.recv_from(buf) {
                Ok((n, from)) => Ok(Some((n, from))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    /// The receiving socket's descriptor, to register for readability.
    pub fn rx_fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }
}

/// `IP_MULTICAST_IF` by interface index (`struct ip_mreqn`, ip(7)), as
/// IPVS sets its sender's `mc_index`; socket2 and nix only set it by
/// address, and the sync interface need not have one.
fn set_multicast_if_index_v4(sock: &Socket, ifindex: u32) -> io::Result<()> {
    let req = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: ifindex as libc::c_int,
    };
    // SAFETY: `req` is a live, initialised ip_mreqn and the length passed
    // is its size; the kernel only reads it during the call.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&req as *const libc::ip_mreqn).cast(),
            std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_ipvs_and_bad_endpoints_are_refused() {
        let e = Endpoint::new("eth1");
        assert_eq!(
            (e.group, e.port, e.ttl),
            (IpAddr::V4(Ipv4Addr::new(224, 0, 0, 81)), 8848, 1)
        );
        let mut unicast = Endpoint::new("lo");
        unicast.group = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let err = Transport::open(&unicast).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("192.0.2.1"), "{err}");
        let err = Transport::open(&Endpoint::new("vrlb-no-such0")).unwrap_err();
        assert!(err.to_string().contains("vrlb-no-such0"), "{err}");
    }

    #[test]
    fn the_payload_fits_the_mtu() {
        let lo = Endpoint::new("lo");
        let mtu: usize = std::fs::read_to_string("/sys/class/net/lo/mtu")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(lo.max_payload(), Some(mtu - 28));
        let mut v6 = lo.clone();
        v6.group = "ff02::81".parse().unwrap();
        assert_eq!(v6.max_payload(), Some(mtu - 48));
        assert_eq!(Endpoint::new("vrlb-no-such0").max_payload(), None);
    }
}
