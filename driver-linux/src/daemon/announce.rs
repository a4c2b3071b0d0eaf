//! The frames a new master sends so neighbours update their caches:
//! gratuitous ARP for IPv4 VIPs and unsolicited Neighbour Advertisements
//! for IPv6 VIPs, built with `smoltcp::wire`. Pure: builds bytes, sends
//! nothing (see [`super::packet_socket`]).

use std::net::{Ipv4Addr, Ipv6Addr};

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv6Packet, Ipv6Repr, NdiscNeighborFlags,
    NdiscRepr, RawHardwareAddress,
};

/// All-nodes multicast (RFC 4861 7.2.6: unsolicited advertisements go
/// there) and its Ethernet address (RFC 2464 7).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_NODES_MAC: EthernetAddress = EthernetAddress([0x33, 0x33, 0, 0, 0, 1]);

/// A gratuitous ARP for `vip` from `mac`, laid out as keepalived sends it
/// (vrrp_arp.c): a broadcast ARP request whose sender and target protocol
/// addresses are both the VIP and whose target hardware address is
/// ff:ff:ff:ff:ff:ff.
pub fn garp(mac: [u8; 6], vip: Ipv4Addr) -> Vec<u8> {
    let mac = EthernetAddress(mac);
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: mac,
        source_protocol_addr: vip,
        target_hardware_addr: EthernetAddress::BROADCAST,
        target_protocol_addr: vip,
    };
    let eth = EthernetRepr {
        src_addr: mac,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    let mut buf = vec![0; eth.buffer_len() + arp.buffer_len()];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    buf
}

/// An unsolicited Neighbour Advertisement for `vip` from `mac`, sent from
/// the interface's link-local address `src` to all nodes with the Override
/// flag and the target link-layer address (RFC 4861 7.2.6), hop limit 255.
pub fn unsolicited_na(mac: [u8; 6], src: Ipv6Addr, vip: Ipv6Addr) -> Vec<u8> {
    let mac = EthernetAddress(mac);
    let icmp = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
        flags: NdiscNeighborFlags::OVERRIDE,
        target_addr: vip,
        lladdr: Some(RawHardwareAddress::from(mac)),
    });
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: ALL_NODES,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit: 255,
    };
    let eth = EthernetRepr {
        src_addr: mac,
        dst_addr: ALL_NODES_MAC,
        ethertype: EthernetProtocol::Ipv6,
    };
    let mut buf = vec![0; eth.buffer_len() + ip.buffer_len() + icmp.buffer_len()];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    let mut packet = Ipv6Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut packet);
    icmp.emit(
        &src,
        &ALL_NODES,
        &mut Icmpv6Packet::new_unchecked(packet.payload_mut()),
        &ChecksumCapabilities::default(),
    );
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0, 0x5e, 0, 1, 2];

    #[test]
    fn garp_is_a_broadcast_request_for_the_vip() {
        let vip = Ipv4Addr::new(192, 0, 2, 240);
        let bytes = garp(MAC, vip);
        assert_eq!(bytes.len(), 42);
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.dst_addr(), EthernetAddress::BROADCAST);
        assert_eq!(frame.src_addr(), EthernetAddress(MAC));
        let arp = ArpRepr::parse(&ArpPacket::new_checked(frame.payload()).unwrap()).unwrap();
        assert_eq!(
            arp,
            ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_hardware_addr: EthernetAddress(MAC),
                source_protocol_addr: vip,
                target_hardware_addr: EthernetAddress::BROADCAST,
                target_protocol_addr: vip,
            }
        );
    }

    #[test]
    fn na_parses_back_with_a_valid_checksum() {
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let vip: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let bytes = unsolicited_na(MAC, src, vip);
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.dst_addr(), ALL_NODES_MAC);
        let ip = Ipv6Packet::new_checked(frame.payload()).unwrap();
        assert_eq!(ip.hop_limit(), 255);
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(&src, &ALL_NODES));
        let repr =
            Icmpv6Repr::parse(&src, &ALL_NODES, &icmp, &ChecksumCapabilities::default()).unwrap();
        assert_eq!(
            repr,
            Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
                flags: NdiscNeighborFlags::OVERRIDE,
                target_addr: vip,
                lladdr: Some(RawHardwareAddress::from(EthernetAddress(MAC))),
            })
        );
    }
}
