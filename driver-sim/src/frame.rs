//! Ethernet frames the simulated hosts exchange, built and read with
//! `smoltcp::wire` (the same wire code the drivers use): ARP, IPv6
//! neighbour solicitations and advertisements, VRRP adverts over IPv4 and
//! IPv6, TCP/UDP segments whose 4-byte payload carries an id (the answering
//! real server's, so clients can tell who served them, or a health probe's
//! request and answer), and connection sync datagrams (UDP to the sync
//! group).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vrlb_core::lb::TcpFlags;
use vrlb_core::wire::smol::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
    NdiscNeighborFlags, NdiscRepr, RawHardwareAddress, TcpPacket, UdpPacket,
};

/// A MAC address.
pub type Mac = [u8; 6];

/// The broadcast MAC.
pub const BROADCAST: Mac = [0xff; 6];
/// The MAC of the VRRP IPv4 group 224.0.0.18.
pub const VRRP_GROUP_MAC: Mac = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];
/// IPv6 all-nodes (where unsolicited neighbour advertisements go).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Payload id of an HTTP_GET probe's request (after the handshake).
pub const PROBE_HTTP_REQUEST: u32 = 0x4745_5420;
/// Payload id of a MISC_CHECK-like probe's request (a script asking the
/// server over UDP).
pub const PROBE_MISC_REQUEST: u32 = 0x4d49_5343;

/// What a frame is, as hosts need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// ARP request or reply.
    Arp {
        /// Request (true) or reply.
        request: bool,
        /// Sender MAC and address.
        sender: (Mac, Ipv4Addr),
        /// Target address.
        target: Ipv4Addr,
    },
    /// An IPv6 neighbour solicitation or advertisement.
    Nd {
        /// Solicitation (true) or advertisement.
        solicit: bool,
        /// The frame's source MAC.
        src_mac: Mac,
        /// The IPv6 source.
        src: Ipv6Addr,
        /// The target address.
        target: Ipv6Addr,
        /// The link-layer address option, when present.
        lladdr: Option<Mac>,
        /// An advertisement with the override flag.
        override_flag: bool,
    },
    /// A VRRP advert.
    Vrrp {
        /// IP source.
        src: IpAddr,
        /// IP destination.
        dst: IpAddr,
        /// TTL or hop limit.
        ttl: u8,
        /// The VRRP message.
        payload: &'a [u8],
    },
    /// A TCP or UDP segment.
    L4 {
        /// 6 or 17.
        protocol: u8,
        /// IP source and port.
        src: (IpAddr, u16),
        /// IP destination and port.
        dst: (IpAddr, u16),
        /// TCP flags (empty for UDP).
        flags: TcpFlags,
        /// The payload's id.
        id: u32,
    },
    /// Anything else.
    Other,
}

/// The frame's Ethernet source and destination.
pub fn macs(frame: &[u8]) -> Option<(Mac, Mac)> {
    let f = EthernetFrame::new_checked(frame).ok()?;
    Some((f.src_addr().0, f.dst_addr().0))
}

/// Reads what a frame is.
pub fn parse(frame: &[u8]) -> Parsed<'_> {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Parsed::Other;
    };
    match eth.ethertype() {
        EthernetProtocol::Arp => {
            let Ok(arp) = ArpPacket::new_checked(eth.payload()) else {
                return Parsed::Other;
            };
            match ArpRepr::parse(&arp) {
                Ok(ArpRepr::EthernetIpv4 {
                    operation,
                    source_hardware_addr,
                    source_protocol_addr,
                    target_protocol_addr,
                    ..
                }) => Parsed::Arp {
                    request: operation == ArpOperation::Request,
                    sender: (source_hardware_addr.0, source_protocol_addr),
                    target: target_protocol_addr,
                },
                _ => Parsed::Other,
            }
        }
        EthernetProtocol::Ipv4 => {
            let payload = &frame[14..];
            let Ok(ip) = Ipv4Packet::new_checked(payload) else {
                return Parsed::Other;
            };
            let (src, dst, ttl) = (ip.src_addr(), ip.dst_addr(), ip.hop_limit());
            let header = usize::from(ip.header_len());
            let total = usize::from(ip.total_len()).min(payload.len());
            let body = &payload[header.min(total)..total];
            transport(
                ip.next_header(),
                IpAddr::V4(src),
                IpAddr::V4(dst),
                ttl,
                body,
            )
        }
        EthernetProtocol::Ipv6 => {
            let payload = &frame[14..];
            let Ok(ip) = Ipv6Packet::new_checked(payload) else {
                return Parsed::Other;
            };
            let (src, dst, ttl) = (ip.src_addr(), ip.dst_addr(), ip.hop_limit());
            let end = (40 + usize::from(ip.payload_len())).min(payload.len());
            let body = &payload[40..end];
            if ip.next_header() == IpProtocol::Icmpv6 {
                return neighbour(macs(frame).map_or([0; 6], |m| m.0), src, dst, body);
            }
            transport(
                ip.next_header(),
                IpAddr::V6(src),
                IpAddr::V6(dst),
                ttl,
                body,
            )
        }
        _ => Parsed::Other,
    }
}

fn transport<'a>(
    proto: IpProtocol,
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    body: &'a [u8],
) -> Parsed<'a> {
    match proto {
        IpProtocol::Unknown(112) => Parsed::Vrrp {
            src,
            dst,
            ttl,
            payload: body,
        },
        IpProtocol::Tcp => {
            let Ok(tcp) = TcpPacket::new_checked(body) else {
                return Parsed::Other;
            };
            let mut flags = 0u8;
            for (set, bit) in [
                (tcp.fin(), 0x01),
                (tcp.syn(), 0x02),
                (tcp.rst(), 0x04),
                (tcp.ack(), 0x10),
            ] {
                if set {
                    flags |= bit;
                }
            }
            Parsed::L4 {
                protocol: 6,
                src: (src, tcp.src_port()),
                dst: (dst, tcp.dst_port()),
                flags: TcpFlags::from_bits(flags),
                id: read_id(tcp.payload()),
            }
        }
        IpProtocol::Udp => {
            let Ok(udp) = UdpPacket::new_checked(body) else {
                return Parsed::Other;
            };
            Parsed::L4 {
                protocol: 17,
                src: (src, udp.src_port()),
                dst: (dst, udp.dst_port()),
                flags: TcpFlags::NONE,
                id: read_id(udp.payload()),
            }
        }
        _ => Parsed::Other,
    }
}

fn neighbour<'a>(src_mac: Mac, src: Ipv6Addr, dst: Ipv6Addr, body: &'a [u8]) -> Parsed<'a> {
    let Ok(icmp) = Icmpv6Packet::new_checked(body) else {
        return Parsed::Other;
    };
    let caps = smoltcp::phy::ChecksumCapabilities::default();
    let mac =
        |l: Option<RawHardwareAddress>| l.and_then(|l| <[u8; 6]>::try_from(l.as_bytes()).ok());
    match Icmpv6Repr::parse(&src, &dst, &icmp, &caps) {
        Ok(Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
            target_addr,
            lladdr,
        })) => Parsed::Nd {
            solicit: true,
            src_mac,
            src,
            target: target_addr,
            lladdr: mac(lladdr),
            override_flag: false,
        },
        Ok(Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
            flags,
            target_addr,
            lladdr,
        })) => Parsed::Nd {
            solicit: false,
            src_mac,
            src,
            target: target_addr,
            lladdr: mac(lladdr),
            override_flag: flags.contains(NdiscNeighborFlags::OVERRIDE),
        },
        _ => Parsed::Other,
    }
}

fn read_id(payload: &[u8]) -> u32 {
    payload
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn ethernet(
    out: &mut Vec<u8>,
    src: Mac,
    dst: Mac,
    ethertype: EthernetProtocol,
    payload_len: usize,
) {
    let repr = EthernetRepr {
        src_addr: EthernetAddress(src),
        dst_addr: EthernetAddress(dst),
        ethertype,
    };
    out.clear();
    out.resize(repr.buffer_len() + payload_len, 0);
    repr.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
}

/// An ARP request (or gratuitous ARP when `target == sender`).
pub fn arp(
    out: &mut Vec<u8>,
    request: bool,
    sender: (Mac, Ipv4Addr),
    target: (Mac, Ipv4Addr),
    dst: Mac,
) {
    let repr = ArpRepr::EthernetIpv4 {
        operation: if request {
            ArpOperation::Request
        } else {
            ArpOperation::Reply
        },
        source_hardware_addr: EthernetAddress(sender.0),
        source_protocol_addr: sender.1,
        target_hardware_addr: EthernetAddress(target.0),
        target_protocol_addr: target.1,
    };
    ethernet(out, sender.0, dst, EthernetProtocol::Arp, repr.buffer_len());
    let mut frame = EthernetFrame::new_unchecked(&mut out[..]);
    repr.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
}

/// The IPv6 solicited-node multicast address of `a` (RFC 4291 2.7.1).
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet multicast MAC of an IPv4 (RFC 1112 6.4) or IPv6 (RFC 2464
/// 7) group.
pub fn multicast_mac(group: IpAddr) -> Mac {
    match group {
        IpAddr::V4(g) => {
            let o = g.octets();
            [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
        }
        IpAddr::V6(g) => {
            let o = g.octets();
            [0x33, 0x33, o[12], o[13], o[14], o[15]]
        }
    }
}

fn icmpv6(out: &mut Vec<u8>, src: (Mac, Ipv6Addr), dst: (Mac, Ipv6Addr), repr: &Icmpv6Repr<'_>) {
    let ip = Ipv6Repr {
        src_addr: src.1,
        dst_addr: dst.1,
        next_header: IpProtocol::Icmpv6,
        payload_len: repr.buffer_len(),
        hop_limit: 255,
    };
    ethernet(
        out,
        src.0,
        dst.0,
        EthernetProtocol::Ipv6,
        ip.buffer_len() + repr.buffer_len(),
    );
    let mut eth = EthernetFrame::new_unchecked(&mut out[..]);
    let mut packet = Ipv6Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut packet);
    let caps = smoltcp::phy::ChecksumCapabilities::default();
    repr.emit(
        &src.1,
        &dst.1,
        &mut Icmpv6Packet::new_unchecked(packet.payload_mut()),
        &caps,
    );
}

/// A neighbour solicitation for `target` from `src`, to its solicited-node
/// group.
pub fn ns(out: &mut Vec<u8>, src: (Mac, Ipv6Addr), target: Ipv6Addr) {
    let group = solicited_node(target);
    let repr = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
        target_addr: target,
        lladdr: Some(RawHardwareAddress::from(EthernetAddress(src.0))),
    });
    icmpv6(out, src, (multicast_mac(IpAddr::V6(group)), group), &repr);
}

/// A neighbour advertisement that `target` is at `src.0`, with the
/// override flag: solicited (to `dst`) or unsolicited (to all nodes).
pub fn na(out: &mut Vec<u8>, src: (Mac, Ipv6Addr), dst: Option<(Mac, Ipv6Addr)>, target: Ipv6Addr) {
    let mut flags = NdiscNeighborFlags::OVERRIDE;
    if dst.is_some() {
        flags |= NdiscNeighborFlags::SOLICITED;
    }
    let repr = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
        flags,
        target_addr: target,
        lladdr: Some(RawHardwareAddress::from(EthernetAddress(src.0))),
    });
    let dst = dst.unwrap_or((multicast_mac(IpAddr::V6(ALL_NODES)), ALL_NODES));
    icmpv6(out, src, dst, &repr);
}

/// Writes Ethernet and IP headers (v4 or v6, by `src.1`); returns where the
/// IP payload starts.
fn ip(
    out: &mut Vec<u8>,
    src: (Mac, IpAddr),
    dst: (Mac, IpAddr),
    protocol: IpProtocol,
    ttl: u8,
    payload_len: usize,
) -> usize {
    match (src.1, dst.1) {
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let repr = Ipv6Repr {
                src_addr: s,
                dst_addr: d,
                next_header: protocol,
                payload_len,
                hop_limit: ttl,
            };
            ethernet(
                out,
                src.0,
                dst.0,
                EthernetProtocol::Ipv6,
                repr.buffer_len() + payload_len,
            );
            let mut frame = EthernetFrame::new_unchecked(&mut out[..]);
            repr.emit(&mut Ipv6Packet::new_unchecked(frame.payload_mut()));
            14 + repr.buffer_len()
        }
        (s, d) => {
            let repr = Ipv4Repr {
                src_addr: v4(s).unwrap_or(Ipv4Addr::UNSPECIFIED),
                dst_addr: v4(d).unwrap_or(Ipv4Addr::UNSPECIFIED),
                next_header: protocol,
                payload_len,
                hop_limit: ttl,
            };
            ethernet(
                out,
                src.0,
                dst.0,
                EthernetProtocol::Ipv4,
                repr.buffer_len() + payload_len,
            );
            let mut frame = EthernetFrame::new_unchecked(&mut out[..]);
            repr.emit(
                &mut Ipv4Packet::new_unchecked(frame.payload_mut()),
                &smoltcp::phy::ChecksumCapabilities::default(),
            );
            14 + repr.buffer_len()
        }
    }
}

/// A VRRP advert frame from `src` to `dst` (the group, whose MAC is
/// derived, or a unicast peer at `dst_mac`).
pub fn vrrp(
    out: &mut Vec<u8>,
    src: (Mac, IpAddr),
    dst: IpAddr,
    dst_mac: Option<Mac>,
    advert: &[u8],
) {
    let mac = dst_mac.unwrap_or_else(|| multicast_mac(dst));
    let at = ip(
        out,
        src,
        (mac, dst),
        IpProtocol::Unknown(112),
        255,
        advert.len(),
    );
    out[at..at + advert.len()].copy_from_slice(advert);
}

/// A connection sync datagram from `src` to `group`:`port` (source port
/// the same, as IPVS sends), with `ttl`.
pub fn sync(
    out: &mut Vec<u8>,
    src: (Mac, Ipv4Addr),
    group: Ipv4Addr,
    port: u16,
    ttl: u8,
    payload: &[u8],
) {
    let at = ip(
        out,
        (src.0, IpAddr::V4(src.1)),
        (multicast_mac(IpAddr::V4(group)), IpAddr::V4(group)),
        IpProtocol::Udp,
        ttl,
        8 + payload.len(),
    );
    let udp = &mut out[at..at + 8 + payload.len()];
    udp[0..2].copy_from_slice(&port.to_be_bytes());
    udp[2..4].copy_from_slice(&port.to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp[8..].copy_from_slice(payload);
}

/// The payload of a UDP datagram to `group`:`port` (a sync datagram), and
/// its IP source.
pub fn sync_payload(frame: &[u8], group: Ipv4Addr, port: u16) -> Option<(Ipv4Addr, &[u8])> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let payload = &frame[14..];
    let ip = Ipv4Packet::new_checked(payload).ok()?;
    if ip.dst_addr() != group || ip.next_header() != IpProtocol::Udp {
        return None;
    }
    let header = usize::from(ip.header_len());
    let total = usize::from(ip.total_len()).min(payload.len());
    let body = payload.get(header..total)?;
    let udp = UdpPacket::new_checked(body).ok()?;
    if udp.dst_port() != port {
        return None;
    }
    let len = usize::from(udp.len()).clamp(8, body.len());
    Some((ip.src_addr(), &body[8..len]))
}

/// A TCP segment (or UDP datagram when `protocol == 17`) carrying `id`,
/// over IPv4 or IPv6 (by the addresses).
pub fn l4(
    out: &mut Vec<u8>,
    protocol: u8,
    src: (Mac, IpAddr, u16),
    dst: (Mac, IpAddr, u16),
    flags: TcpFlags,
    id: u32,
) {
    let (proto, header) = if protocol == 17 {
        (IpProtocol::Udp, 8)
    } else {
        (IpProtocol::Tcp, 20)
    };
    let at = ip(out, (src.0, src.1), (dst.0, dst.1), proto, 64, header + 4);
    let seg = &mut out[at..at + header + 4];
    seg[0..2].copy_from_slice(&src.2.to_be_bytes());
    seg[2..4].copy_from_slice(&dst.2.to_be_bytes());
    if protocol == 17 {
        seg[4..6].copy_from_slice(&12u16.to_be_bytes());
    } else {
        seg[12] = 5 << 4; // data offset: 5 words
        seg[13] = flags.0;
        seg[14..16].copy_from_slice(&65535u16.to_be_bytes());
    }
    seg[header..header + 4].copy_from_slice(&id.to_be_bytes());
}

/// Rewrites a frame's destination MAC (DR forwarding).
pub fn set_dst_mac(frame: &mut [u8], mac: Mac) {
    frame[0..6].copy_from_slice(&mac);
}

/// The IPv4 address in an `IpAddr`, if it is one.
pub fn v4(addr: IpAddr) -> Option<Ipv4Addr> {
    match addr {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_roundtrip() {
        let a = ([2, 0, 0, 0, 0, 1], Ipv4Addr::new(192, 0, 2, 1));
        let b = ([2, 0, 0, 0, 0, 2], Ipv4Addr::new(192, 0, 2, 2));
        let mut f = Vec::new();
        arp(&mut f, true, a, ([0; 6], b.1), BROADCAST);
        assert_eq!(
            parse(&f),
            Parsed::Arp {
                request: true,
                sender: a,
                target: b.1
            }
        );
        let (a4, b4) = (IpAddr::V4(a.1), IpAddr::V4(b.1));
        l4(&mut f, 6, (a.0, a4, 1000), (b.0, b4, 80), TcpFlags::SYN, 42);
        assert_eq!(
            parse(&f),
            Parsed::L4 {
                protocol: 6,
                src: (a4, 1000),
                dst: (b4, 80),
                flags: TcpFlags::SYN,
                id: 42
            }
        );
        l4(&mut f, 17, (a.0, a4, 53), (b.0, b4, 53), TcpFlags::NONE, 7);
        assert!(matches!(
            parse(&f),
            Parsed::L4 {
                protocol: 17,
                id: 7,
                ..
            }
        ));
        let group = IpAddr::V4(vrlb_core::wire::vrrp::MULTICAST_V4);
        vrrp(&mut f, (a.0, a4), group, None, &[0x21, 51, 100, 0]);
        assert!(matches!(
            parse(&f),
            Parsed::Vrrp {
                ttl: 255,
                payload: [0x21, 51, 100, 0],
                ..
            }
        ));
        assert_eq!(macs(&f), Some((a.0, VRRP_GROUP_MAC)));
    }

    #[test]
    fn ipv6_frames_roundtrip() {
        let mac: Mac = [2, 0, 0, 0, 0, 1];
        let ll: Ipv6Addr = "fe80::10".parse().unwrap();
        let vip: Ipv6Addr = "2001:db8::240".parse().unwrap();
        let client: Ipv6Addr = "2001:db8:c::1".parse().unwrap();
        let mut f = Vec::new();
        let group = IpAddr::V6(vrlb_core::wire::vrrp::MULTICAST_V6);
        vrrp(
            &mut f,
            (mac, IpAddr::V6(ll)),
            group,
            None,
            &[0x31, 52, 100, 0],
        );
        assert_eq!(macs(&f), Some((mac, [0x33, 0x33, 0, 0, 0, 0x12])));
        assert!(matches!(parse(&f), Parsed::Vrrp { ttl: 255, src, .. } if src == IpAddr::V6(ll)));
        na(&mut f, (mac, ll), None, vip);
        assert_eq!(
            parse(&f),
            Parsed::Nd {
                solicit: false,
                src_mac: mac,
                src: ll,
                target: vip,
                lladdr: Some(mac),
                override_flag: true
            }
        );
        ns(&mut f, (mac, client), vip);
        assert_eq!(
            macs(&f).map(|m| m.1),
            Some(multicast_mac(IpAddr::V6(solicited_node(vip))))
        );
        assert!(matches!(parse(&f), Parsed::Nd { solicit: true, target, .. } if target == vip));
        let (c6, v6) = (IpAddr::V6(client), IpAddr::V6(vip));
        l4(&mut f, 6, (mac, c6, 1000), (mac, v6, 80), TcpFlags::SYN, 9);
        assert_eq!(
            parse(&f),
            Parsed::L4 {
                protocol: 6,
                src: (c6, 1000),
                dst: (v6, 80),
                flags: TcpFlags::SYN,
                id: 9
            }
        );
    }

    #[test]
    fn sync_datagrams_round_trip_to_their_group_only() {
        let group = Ipv4Addr::new(224, 0, 0, 81);
        let src = ([2, 0, 0, 0, 0, 9], Ipv4Addr::new(192, 0, 2, 10));
        let mut f = Vec::new();
        sync(&mut f, src, group, 8848, 1, &[1, 2, 3, 4, 5]);
        assert_eq!(macs(&f), Some((src.0, [0x01, 0x00, 0x5e, 0, 0, 0x51])));
        assert_eq!(
            sync_payload(&f, group, 8848),
            Some((src.1, &[1u8, 2, 3, 4, 5][..]))
        );
        assert_eq!(sync_payload(&f, group, 8849), None, "another port");
        assert_eq!(sync_payload(&f, Ipv4Addr::new(224, 0, 0, 82), 8848), None);
        assert!(matches!(parse(&f), Parsed::L4 { protocol: 17, .. }));
    }
}
