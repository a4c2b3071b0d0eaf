//! rtnetlink, synchronously (netlink-packet-route + netlink-sys): list
//! links and addresses, add and remove VIPs and routes, and a non-blocking monitor
//! socket that reports link and address changes. Owns the netlink
//! sockets; knows nothing about VRRP.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, RawFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoMacVlan, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage, MacVlanMode,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use vrlb_core::config::RouteType as Kind;

/// An interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// ifindex.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Administratively up and running (carrier): what VRRP calls up.
    pub up: bool,
    /// Hardware address, for Ethernet-like links.
    pub mac: Option<[u8; 6]>,
    /// A macvlan's parent ifindex (`None` for any other kind of link).
    pub macvlan_parent: Option<u32>,
}

/// An address on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    /// ifindex.
    pub index: u32,
    /// The address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// IFA_F_SECONDARY (IPv4) or IFA_F_TEMPORARY-free flags: not the
    /// interface's primary address of its subnet.
    pub secondary: bool,
}

/// A change the monitor saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A link appeared or changed.
    Link(Link),
    /// A link disappeared.
    LinkGone {
        /// ifindex.
        index: u32,
        /// Name.
        name: String,
    },
    /// An address was added.
    NewAddr(Addr),
    /// An address was removed.
    DelAddr(Addr),
    /// The kernel dropped events (ENOBUFS): dump everything again.
    Overrun,
}

/// A VIP as `ip addr add` would be told: keepalived's `virtual_ipaddress`
/// line (`ADDR[/PREFIX] [brd BRD] [dev DEV] [scope SCOPE] [label LABEL]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VipSpec {
    /// The address.
    pub addr: IpAddr,
    /// Prefix length (keepalived's default: /32 or /128).
    pub prefix_len: u8,
    /// ifindex of the device it goes on.
    pub index: u32,
    /// `label` (IPv4 only).
    pub label: Option<String>,
    /// rtnetlink scope number (0 universe, 200 site, 253 link, 254 host).
    pub scope: u8,
    /// `brd` (IPv4 only).
    pub broadcast: Option<Ipv4Addr>,
}

/// A route as `ip route add` would be told: keepalived's
/// `virtual_routes` or `static_routes` line, its device resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// `blackhole`, `unreachable`, ... or a plain route.
    pub kind: Kind,
    /// The destination prefix.
    pub dst: IpAddr,
    /// Its length.
    pub prefix_len: u8,
    /// The gateway.
    pub via: Option<IpAddr>,
    /// The preferred source address.
    pub src: Option<IpAddr>,
    /// ifindex of the output device.
    pub oif: Option<u32>,
    /// rtnetlink scope number.
    pub scope: u8,
    /// Routing table (254 is `main`).
    pub table: u32,
    /// Metric (`RTA_PRIORITY`).
    pub metric: Option<u32>,
    /// The gateway is on the link without a prefix covering it.
    pub onlink: bool,
}

/// The protocol vrlb's routes carry, keepalived's own (`proto keepalived`
/// in `ip route`): a delete names it, so a route the administrator added
/// by hand with the same destination is never taken.
const ROUTE_PROTOCOL: RouteProtocol = RouteProtocol::KeepAlived;

/// A request socket: dumps and changes, each waiting for the kernel's
/// answer.
pub struct Rtnl {
    socket: Socket,
    seq: u32,
}

impl Rtnl {
    /// Opens a request socket.
    pub fn new() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl { socket, seq: 0 })
    }

    /// Every link.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let mut out = Vec::new();
        self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
            |m| {
                if let RouteNetlinkMessage::NewLink(l) = m
                    && let Some(link) = link_from(&l)
                {
                    out.push(link);
                }
            },
        )?;
        Ok(out)
    }

    /// Every address.
    pub fn addrs(&mut self) -> io::Result<Vec<Addr>> {
        let mut out = Vec::new();
        self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
            |m| {
                if let RouteNetlinkMessage::NewAddress(a) = m
                    && let Some(addr) = addr_from(&a)
                {
                    out.push(addr);
                }
            },
        )?;
        Ok(out)
    }

    /// Adds a VIP. Already there: `Ok(false)`.
    pub fn add_addr(&mut self, vip: &VipSpec) -> io::Result<bool> {
        let msg = address_message(vip);
        match self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            |_| {},
        ) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes a VIP. Not there: `Ok(false)`.
    pub fn del_addr(&mut self, vip: &VipSpec) -> io::Result<bool> {
        let msg = address_message(vip);
        match self.request(RouteNetlinkMessage::DelAddress(msg), 0, |_| {}) {
            Ok(()) => Ok(true),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EADDRNOTAVAIL) | Some(libc::ENODEV) | Some(libc::ENOENT)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Makes a private-mode macvlan `name` on `parent` with `mac`, down
    /// (keepalived's VMAC: in private mode it receives the frames sent to
    /// its own MAC, and no other macvlan's).
    pub fn add_macvlan(&mut self, name: &str, parent: u32, mac: [u8; 6]) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes = vec![
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::MacVlan),
                LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                    MacVlanMode::Private,
                )])),
            ]),
            LinkAttribute::Link(parent),
            LinkAttribute::IfName(name.to_string()),
            LinkAttribute::Address(mac.to_vec()),
        ];
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            |_| {},
        )
    }

    /// Brings link `index` up.
    pub fn set_link_up(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), 0, |_| {})
    }

    /// Stops the kernel giving link `index` an IPv6 link-local address of
    /// its own (RFC 5798 7.4: a VMAC's link-local address would be the
    /// same on every router).
    pub fn no_ipv6_addr_gen(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes = vec![LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
            vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
        )])];
        self.request(RouteNetlinkMessage::SetLink(msg), 0, |_| {})
    }

    /// Deletes link `index`. Already gone: `Ok(false)`.
    pub fn del_link(&mut self, index: u32) -> io::Result<bool> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(RouteNetlinkMessage::DelLink(msg), 0, |_| {}) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds a route. One with the same destination, table and metric
    /// already there: `Ok(false)`, and it is left as it is.
    pub fn add_route(&mut self, route: &RouteSpec) -> io::Result<bool> {
        match self.request(
            RouteNetlinkMessage::NewRoute(route_message(route)),
            NLM_F_CREATE | NLM_F_EXCL,
            |_| {},
        ) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes a route vrlb added. Not there: `Ok(false)`.
    pub fn del_route(&mut self, route: &RouteSpec) -> io::Result<bool> {
        match self.request(
            RouteNetlinkMessage::DelRoute(route_message(route)),
            0,
            |_| {},
        ) {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ESRCH) | Some(libc::ENOENT)) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends one request and reads answers until its ACK or DONE.
    pub(crate) fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        mut each: impl FnMut(RouteNetlinkMessage),
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut packet =
            NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(message));
        packet.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        packet.header.sequence_number = seq;
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut rx = vec![0u8; 64 * 1024];
        loop {
            let len = self.socket.recv(&mut &mut rx[..], 0)?;
            let mut offset = 0;
            while offset < len {
                let msg: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&rx[offset..len]).map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("rtnetlink: {e}"))
                    })?;
                let step = msg.header.length as usize;
                let mine = msg.header.sequence_number == seq;
                match msg.payload {
                    NetlinkPayload::Done(_) if mine => return Ok(()),
                    NetlinkPayload::Error(e) if mine => {
                        return match e.code {
                            None => Ok(()),
                            Some(_) => Err(e.to_io()),
                        };
                    }
                    NetlinkPayload::InnerMessage(m) if mine => each(m),
                    _ => {}
                }
                if step == 0 {
                    break;
                }
                offset += step;
            }
            // A dump ends with DONE (and its ACK); a change with its ACK.
            let _ = dump;
        }
    }
}

/// The monitor socket: link and address events, non-blocking.
pub struct Monitor {
    socket: Socket,
    rx: Vec<u8>,
}

impl Monitor {
    /// Subscribes to link and IPv4/IPv6 address changes.
    pub fn new() -> io::Result<Monitor> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        let groups =
            (libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR) as u32;
        socket.bind(&SocketAddr::new(0, groups))?;
        socket.set_non_blocking(true)?;
        // Bursts (many VIPs at once) must not overflow the default buffer.
        let _ = socket.set_rx_buf_sz(1 << 20);
        Ok(Monitor {
            socket,
            rx: vec![0; 64 * 1024],
        })
    }

    /// Reads every pending event into `out` (returns when it would block).
    pub fn read(&mut self, out: &mut Vec<Event>) -> io::Result<()> {
        loop {
            let len = match self.socket.recv(&mut &mut self.rx[..], 0) {
                Ok(len) => len,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    out.push(Event::Overrun);
                    continue;
                }
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
                if let NetlinkPayload::InnerMessage(m) = msg.payload {
                    match m {
                        RouteNetlinkMessage::NewLink(l) => {
                            if let Some(link) = link_from(&l) {
                                out.push(Event::Link(link));
                            }
                        }
                        RouteNetlinkMessage::DelLink(l) => {
                            if let Some(link) = link_from(&l) {
                                out.push(Event::LinkGone {
                                    index: link.index,
                                    name: link.name,
                                });
                            }
                        }
                        RouteNetlinkMessage::NewAddress(a) => {
                            if let Some(a) = addr_from(&a) {
                                out.push(Event::NewAddr(a));
                            }
                        }
                        RouteNetlinkMessage::DelAddress(a) => {
                            if let Some(a) = addr_from(&a) {
                                out.push(Event::DelAddr(a));
                            }
                        }
                        _ => {}
                    }
                }
                if step == 0 {
                    break;
                }
                offset += step;
            }
        }
    }
}

impl AsRawFd for Monitor {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

fn link_from(l: &LinkMessage) -> Option<Link> {
    let mut name = None;
    let mut mac = None;
    let mut parent = None;
    let mut macvlan = false;
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Link(p) => parent = Some(*p),
            LinkAttribute::LinkInfo(infos) => {
                macvlan |= infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::MacVlan)));
            }
            LinkAttribute::Address(bytes) if bytes.len() == 6 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(bytes);
                mac = Some(m);
            }
            _ => {}
        }
    }
    let flags = l.header.flags;
    Some(Link {
        index: l.header.index,
        name: name?,
        up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running),
        mac,
        macvlan_parent: parent.filter(|_| macvlan),
    })
}

fn addr_from(a: &AddressMessage) -> Option<Addr> {
    // IFA_LOCAL is the local address on point-to-point links; IFA_ADDRESS
    // elsewhere (and the peer's there).
    let mut local = None;
    let mut address = None;
    let mut flags = AddressFlags::empty();
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Local(x) => local = Some(*x),
            AddressAttribute::Address(x) => address = Some(*x),
            AddressAttribute::Flags(f) => flags = *f,
            _ => {}
        }
    }
    let addr = local.or(address)?;
    Some(Addr {
        index: a.header.index,
        addr,
        prefix_len: a.header.prefix_len,
        secondary: a.header.flags.contains(AddressHeaderFlags::Secondary)
            || flags.contains(AddressFlags::Secondary),
    })
}

fn address_message(vip: &VipSpec) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = match vip.addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    msg.header.prefix_len = vip.prefix_len;
    msg.header.index = vip.index;
    msg.header.scope = AddressScope::from(vip.scope);
    msg.attributes.push(AddressAttribute::Local(vip.addr));
    msg.attributes.push(AddressAttribute::Address(vip.addr));
    if vip.addr.is_ipv4() {
        if let Some(label) = &vip.label {
            msg.attributes.push(AddressAttribute::Label(label.clone()));
        }
        if let Some(brd) = vip.broadcast {
            msg.attributes.push(AddressAttribute::Broadcast(brd));
        }
    } else {
        // keepalived adds IPv6 VIPs with IFA_F_NODAD: a backup that just
        // lost the address must not make the new master's copy fail DAD.
        msg.header.flags = AddressHeaderFlags::Nodad;
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    msg
}

fn route_message(r: &RouteSpec) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = match r.dst {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    msg.header.destination_prefix_length = r.prefix_len;
    // Tables past 255 go in RTA_TABLE only (the header says RT_TABLE_COMPAT).
    msg.header.table = u8::try_from(r.table).unwrap_or(252);
    msg.header.protocol = ROUTE_PROTOCOL;
    msg.header.scope = RouteScope::from(r.scope);
    msg.header.kind = match r.kind {
        Kind::Unicast => RouteType::Unicast,
        Kind::Blackhole => RouteType::BlackHole,
        Kind::Unreachable => RouteType::Unreachable,
        Kind::Prohibit => RouteType::Prohibit,
        Kind::Throw => RouteType::Throw,
    };
    if r.onlink {
        msg.header.flags = RouteFlags::Onlink;
    }
    let a = &mut msg.attributes;
    a.push(RouteAttribute::Table(r.table));
    if r.prefix_len > 0 {
        a.push(RouteAttribute::Destination(RouteAddress::from(r.dst)));
    }
    if let Some(via) = r.via {
        a.push(RouteAttribute::Gateway(RouteAddress::from(via)));
    }
    if let Some(src) = r.src {
        a.push(RouteAttribute::PrefSource(RouteAddress::from(src)));
    }
    if let Some(oif) = r.oif {
        a.push(RouteAttribute::Oif(oif));
    }
    if let Some(metric) = r.metric {
        a.push(RouteAttribute::Priority(metric));
    }
    msg
}

/// keepalived's scope names (ip-address(8)) to rtnetlink numbers.
pub fn scope_number(name: &str) -> Option<u8> {
    Some(match name {
        "global" | "universe" => 0,
        "site" => 200,
        "link" => 253,
        "host" => 254,
        "nowhere" => 255,
        n => n.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_by_name_and_number() {
        assert_eq!(scope_number("global"), Some(0));
        assert_eq!(scope_number("link"), Some(253));
        assert_eq!(scope_number("host"), Some(254));
        assert_eq!(scope_number("17"), Some(17));
        assert_eq!(scope_number("galaxy"), None);
    }

    #[test]
    fn routes_carry_vrlbs_protocol_and_big_tables_in_rta_table() {
        let route = RouteSpec {
            kind: Kind::Unicast,
            dst: "198.51.100.0".parse().unwrap(),
            prefix_len: 24,
            via: Some("192.0.2.1".parse().unwrap()),
            src: None,
            oif: Some(4),
            scope: 0,
            table: 1000,
            metric: Some(9),
            onlink: true,
        };
        let m = route_message(&route);
        assert_eq!(m.header.protocol, RouteProtocol::KeepAlived);
        assert_eq!(m.header.table, 252);
        assert!(m.header.flags.contains(RouteFlags::Onlink));
        for want in [
            RouteAttribute::Table(1000),
            RouteAttribute::Oif(4),
            RouteAttribute::Priority(9),
            RouteAttribute::Gateway(RouteAddress::Inet("192.0.2.1".parse().unwrap())),
        ] {
            assert!(
                m.attributes.contains(&want),
                "{want:?} in {:?}",
                m.attributes
            );
        }
        // A default route names no destination.
        let default = route_message(&RouteSpec {
            prefix_len: 0,
            dst: "0.0.0.0".parse().unwrap(),
            ..route
        });
        assert!(
            !default
                .attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Destination(_)))
        );
    }

    #[test]
    fn an_ipv6_vip_is_added_without_dad() {
        let vip = VipSpec {
            addr: "2001:db8::10".parse().unwrap(),
            prefix_len: 64,
            index: 3,
            label: Some("eth0:vip".into()),
            scope: 0,
            broadcast: None,
        };
        let m = address_message(&vip);
        assert!(m.header.flags.contains(AddressHeaderFlags::Nodad));
        assert!(
            !m.attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Label(_)))
        );
        assert_eq!(m.header.prefix_len, 64);
    }
}
