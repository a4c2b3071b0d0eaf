//! Real servers' MAC addresses from the kernel's neighbour table over
//! rtnetlink: a dump at start, a non-blocking monitor of changes, and a
//! probe request (`RTM_NEWNEIGH` with `NTF_USE`, as `ip neigh replace ADDR
//! dev DEV use`) that makes the kernel ARP (or NDP) for an address it does
//! not know or re-confirm one it holds. Owns two netlink sockets; never
//! crafts ARP itself, so the kernel's timers and retries apply.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};

use netlink_packet_core::{
    NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::daemon::netlink::Rtnl;

/// What the kernel says about one neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    /// ifindex.
    pub ifindex: u32,
    /// Its address.
    pub addr: IpAddr,
    /// Its MAC, when the entry holds a usable one.
    pub mac: Option<[u8; 6]>,
    /// The entry was deleted.
    pub gone: bool,
}

/// The neighbour sockets.
pub struct Neighbours {
    req: Rtnl,
    monitor: Socket,
    rx: Vec<u8>,
}

impl std::fmt::Debug for Neighbours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neighbours").finish_non_exhaustive()
    }
}

fn usable(state: NeighbourState) -> bool {
    matches!(
        state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
            | NeighbourState::Noarp
    )
}

fn from_message(m: &NeighbourMessage, gone: bool) -> Option<Neighbour> {
    let mut addr = None;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                addr = Some(IpAddr::V4(*v4));
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                addr = Some(IpAddr::V6(*v6));
            }
            NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                mac = Some([l[0], l[1], l[2], l[3], l[4], l[5]]);
            }
            _ => {}
        }
    }
    Some(Neighbour {
        ifindex: m.header.ifindex,
        addr: addr?,
        mac: mac.filter(|_| !gone && usable(m.header.state)),
        gone,
    })
}

impl Neighbours {
    /// Opens the request and monitor sockets.
    pub fn open() -> io::Result<Neighbours> {
        let req = Rtnl::new()?;
        let mut monitor = Socket::new(NETLINK_ROUTE)?;
        monitor.bind(&SocketAddr::new(0, libc::RTMGRP_NEIGH as u32))?;
        monitor.set_non_blocking(true)?;
        let _ = monitor.set_rx_buf_sz(1 << 20);
        Ok(Neighbours {
            req,
            monitor,
            rx: vec![0; 64 * 1024],
        })
    }

    /// The monitor's descriptor, to register with the event loop.
    pub fn monitor_fd(&self) -> RawFd {
        self.monitor.as_raw_fd()
    }

    /// Every neighbour on `ifindex`.
    pub fn dump(&mut self, ifindex: u32) -> io::Result<Vec<Neighbour>> {
        let mut out = Vec::new();
        self.req.request(
            RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()),
            NLM_F_DUMP,
            |m| {
                if let RouteNetlinkMessage::NewNeighbour(n) = m
                    && n.header.ifindex == ifindex
                    && let Some(n) = from_message(&n, false)
                {
                    out.push(n);
                }
            },
        )?;
        Ok(out)
    }

    /// Asks the kernel to resolve (or re-confirm) `addr` on `ifindex`.
    pub fn probe(&mut self, ifindex: u32, addr: IpAddr) -> io::Result<()> {
        let mut m = NeighbourMessage::default();
        m.header.family = match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.ifindex = ifindex;
        m.header.flags = NeighbourFlags::Use;
        m.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::from(
                addr,
            )));
        self.req.request(
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_CREATE | NLM_F_REPLACE,
            |_| {},
        )
    }

    /// Reads every pending change (returns when it would block). `Err`
    /// with `ENOBUFS` means events were lost: dump again.
    pub fn read(&mut self, out: &mut Vec<Neighbour>) -> io::Result<()> {
        loop {
            let len = match self.monitor.recv(&mut &mut self.rx[..], 0) {
                Ok(len) => len,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut offset = 0;
            while offset < len {
                let Ok(msg) =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.rx[offset..len])
                else {
                    break;
                };
                let step = msg.header.length as usize;
                match msg.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(n)) => {
                        out.extend(from_message(&n, false));
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelNeighbour(n)) => {
                        out.extend(from_message(&n, true));
                    }
                    _ => {}
                }
                if step == 0 {
                    break;
                }
                offset += step;
            }
        }
    }
}
