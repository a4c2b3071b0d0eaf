//! Ethernet frames the simulated hosts exchange, built and read with
//! `smoltcp::wire` (the same wire code the drivers use): ARP, VRRP adverts
//! in IPv4, TCP/UDP segments whose 4-byte payload carries an id (the
//! answering real server's, so clients can tell who served them), and
//! connection sync datagrams (UDP to the sync group).

use std::net::{IpAddr, Ipv4Addr};

use vrlb_core::lb::TcpFlags;
use vrlb_core::wire::smol::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, TcpPacket, UdpPacket,
};

/// A MAC address.
pub type Mac = [u8; 6];

/// The broadcast MAC.
pub const BROADCAST: Mac = [0xff; 6];
/// The MAC of the VRRP IPv4 group 224.0.0.18.
pub const VRRP_GROUP_MAC: Mac = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12];

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
    /// A VRRP advert.
    Vrrp {
        /// IP source.
        src: Ipv4Addr,
        /// IP destination.
        dst: Ipv4Addr,
        /// TTL.
        ttl: u8,
        /// The VRRP message.
        payload: &'a [u8],
    },
    /// A TCP or UDP segment.
    L4 {
        /// 6 or 17.
        protocol: u8,
        /// IP source and port.
        src: (Ipv4Addr, u16),
        /// IP destination and port.
        dst: (Ipv4Addr, u16),
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
            let payload = eth.payload();
            let Ok(ip) = Ipv4Packet::new_checked(payload) else {
                return Parsed::Other;
            };
            let (src, dst, ttl) = (ip.src_addr(), ip.dst_addr(), ip.hop_limit());
            let header = usize::from(ip.header_len());
            let total = usize::from(ip.total_len()).min(payload.len());
            let body = &payload[header.min(total)..total];
            match ip.next_header() {
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

fn ipv4(
    out: &mut Vec<u8>,
    src: (Mac, Ipv4Addr),
    dst: (Mac, Ipv4Addr),
    protocol: IpProtocol,
    ttl: u8,
    payload_len: usize,
) -> usize {
    let repr = Ipv4Repr {
        src_addr: src.1,
        dst_addr: dst.1,
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

/// A VRRP advert frame to the group.
pub fn vrrp(out: &mut Vec<u8>, src: (Mac, Ipv4Addr), advert: &[u8]) {
    let group = vrlb_core::wire::vrrp::MULTICAST_V4;
    let at = ipv4(
        out,
        src,
        (VRRP_GROUP_MAC, group),
        IpProtocol::Unknown(112),
        255,
        advert.len(),
    );
    out[at..at + advert.len()].copy_from_slice(advert);
}

/// The multicast MAC of an IPv4 group (RFC 1112 section 6.4).
pub fn group_mac(group: Ipv4Addr) -> Mac {
    let o = group.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
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
    let at = ipv4(
        out,
        src,
        (group_mac(group), group),
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

/// A TCP segment (or UDP datagram when `protocol == 17`) carrying `id`.
pub fn l4(
    out: &mut Vec<u8>,
    protocol: u8,
    src: (Mac, Ipv4Addr, u16),
    dst: (Mac, Ipv4Addr, u16),
    flags: TcpFlags,
    id: u32,
) {
    let (proto, header) = if protocol == 17 {
        (IpProtocol::Udp, 8)
    } else {
        (IpProtocol::Tcp, 20)
    };
    let at = ipv4(out, (src.0, src.1), (dst.0, dst.1), proto, 64, header + 4);
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
        l4(
            &mut f,
            6,
            (a.0, a.1, 1000),
            (b.0, b.1, 80),
            TcpFlags::SYN,
            42,
        );
        assert_eq!(
            parse(&f),
            Parsed::L4 {
                protocol: 6,
                src: (a.1, 1000),
                dst: (b.1, 80),
                flags: TcpFlags::SYN,
                id: 42
            }
        );
        l4(
            &mut f,
            17,
            (a.0, a.1, 53),
            (b.0, b.1, 53),
            TcpFlags::NONE,
            7,
        );
        assert!(matches!(
            parse(&f),
            Parsed::L4 {
                protocol: 17,
                id: 7,
                ..
            }
        ));
        vrrp(&mut f, a, &[0x21, 51, 100, 0]);
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
