//! Reading and rewriting one Ethernet frame for direct routing: what the
//! core's `classify` needs ([`Flow`]), the DR rewrite (destination MAC
//! to the real server's, source MAC to the director's; IP and transport
//! headers untouched, as IPVS's DR method leaves them), and finishing a
//! transport checksum the sending kernel left to "hardware". Pure: no
//! socket, no clock. Headers are read through `smoltcp::wire`.

use std::net::IpAddr;

use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket,
    UdpPacket,
};
use vrlb_core::lb::{Flow, TcpFlags};

/// Why a frame the filter let through is not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfit {
    /// Too short or inconsistent headers.
    Malformed,
    /// Neither TCP nor UDP over IPv4/IPv6 (or IPv6 extension headers).
    Unsupported,
    /// A fragment (IPVS reassembles; vrlb does not).
    Fragment,
}

/// Where the parts of a parsed frame are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// What the balancer classifies.
    pub flow: Flow,
    /// Offset of the transport header.
    pub l4: usize,
    /// End of the IP packet (Ethernet padding excluded).
    pub end: usize,
}

const ETH_LEN: usize = 14;

fn transport(flow: &mut Flow, proto: IpProtocol, l4: &[u8]) -> Result<(), Unfit> {
    match proto {
        IpProtocol::Tcp => {
            let tcp = TcpPacket::new_checked(l4).map_err(|_| Unfit::Malformed)?;
            flow.protocol = 6;
            flow.src_port = tcp.src_port();
            flow.dst_port = tcp.dst_port();
            // Flags byte: offset 13 of the TCP header.
            flow.tcp_flags = TcpFlags::from_bits(l4[13]);
        }
        IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(l4).map_err(|_| Unfit::Malformed)?;
            flow.protocol = 17;
            flow.src_port = udp.src_port();
            flow.dst_port = udp.dst_port();
        }
        _ => return Err(Unfit::Unsupported),
    }
    Ok(())
}

/// Reads a client-to-VIP frame.
pub fn parse(frame: &[u8]) -> Result<Parsed, Unfit> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| Unfit::Malformed)?;
    let mut flow = Flow::tcp(
        IpAddr::from([0, 0, 0, 0]),
        0,
        IpAddr::from([0, 0, 0, 0]),
        0,
        TcpFlags::NONE,
    );
    let payload = eth.payload();
    let (l4, end, proto) = match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(payload).map_err(|_| Unfit::Malformed)?;
            if ip.more_frags() || ip.frag_offset() != 0 {
                return Err(Unfit::Fragment);
            }
            flow.src = IpAddr::V4(ip.src_addr());
            flow.dst = IpAddr::V4(ip.dst_addr());
            (
                ETH_LEN + usize::from(ip.header_len()),
                ETH_LEN + usize::from(ip.total_len()),
                ip.next_header(),
            )
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(payload).map_err(|_| Unfit::Malformed)?;
            flow.src = IpAddr::V6(ip.src_addr());
            flow.dst = IpAddr::V6(ip.dst_addr());
            (ETH_LEN + 40, ETH_LEN + ip.total_len(), ip.next_header())
        }
        _ => return Err(Unfit::Unsupported),
    };
    let l4_bytes = frame.get(l4..end).ok_or(Unfit::Malformed)?;
    transport(&mut flow, proto, l4_bytes)?;
    Ok(Parsed { flow, l4, end })
}

/// The DR rewrite: the frame goes to `server_mac` from `own_mac`.
pub fn rewrite(frame: &mut [u8], server_mac: [u8; 6], own_mac: [u8; 6]) {
    if frame.len() >= 12 {
        frame[0..6].copy_from_slice(&server_mac);
        frame[6..12].copy_from_slice(&own_mac);
    }
}

/// Computes the transport checksum afresh (for frames received with
/// `TP_STATUS_CSUMNOTREADY`: the sender's kernel left it partial for the
/// device to finish, and the real server would drop it as it is).
pub fn finish_checksum(frame: &mut [u8], parsed: &Parsed) {
    let (src, dst) = (
        IpAddress::from(parsed.flow.src),
        IpAddress::from(parsed.flow.dst),
    );
    let Some(l4) = frame.get_mut(parsed.l4..parsed.end) else {
        return;
    };
    match parsed.flow.protocol {
        6 => TcpPacket::new_unchecked(l4).fill_checksum(&src, &dst),
        17 => UdpPacket::new_unchecked(l4).fill_checksum(&src, &dst),
        _ => {}
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use smoltcp::wire::{
        EthernetAddress, EthernetRepr, Ipv4Address, Ipv4Repr, TcpRepr, TcpSeqNumber,
    };

    /// A valid TCP/IPv4 frame (checksums right) from `src:sport` to
    /// `dst:dport`.
    pub(crate) fn tcp_frame(
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        syn: bool,
    ) -> Vec<u8> {
        let tcp = TcpRepr {
            src_port: sport,
            dst_port: dport,
            control: if syn {
                smoltcp::wire::TcpControl::Syn
            } else {
                smoltcp::wire::TcpControl::None
            },
            seq_number: TcpSeqNumber(1),
            ack_number: None,
            window_len: 1000,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None, None, None],
            timestamp: None,
            payload: b"GET /",
        };
        let ip = Ipv4Repr {
            src_addr: Ipv4Address::from(src),
            dst_addr: Ipv4Address::from(dst),
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut buf = vec![0u8; 14 + 20 + tcp.buffer_len()];
        let mut f = EthernetFrame::new_unchecked(&mut buf);
        eth.emit(&mut f);
        let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
        ip.emit(&mut p, &smoltcp::phy::ChecksumCapabilities::default());
        let mut t = TcpPacket::new_unchecked(p.payload_mut());
        tcp.emit(
            &mut t,
            &IpAddress::from(Ipv4Address::from(src)),
            &IpAddress::from(Ipv4Address::from(dst)),
            &smoltcp::phy::ChecksumCapabilities::default(),
        );
        buf
    }

    #[test]
    fn parses_a_tcp_syn_to_the_vip() {
        let f = tcp_frame([198, 51, 100, 7], 40000, [192, 0, 2, 240], 80, true);
        let p = parse(&f).unwrap();
        assert_eq!(p.flow.src, IpAddr::from([198, 51, 100, 7]));
        assert_eq!(p.flow.dst, IpAddr::from([192, 0, 2, 240]));
        assert_eq!((p.flow.src_port, p.flow.dst_port), (40000, 80));
        assert!(p.flow.tcp_flags.contains(TcpFlags::SYN));
        assert_eq!(p.l4, 34);
        assert_eq!(p.end, f.len());
    }

    #[test]
    fn refuses_fragments_truncations_and_other_protocols() {
        let mut f = tcp_frame([198, 51, 100, 7], 40000, [192, 0, 2, 240], 80, true);
        assert_eq!(parse(&f[..40]), Err(Unfit::Malformed));
        f[20] = 0x20; // more fragments
        assert_eq!(parse(&f), Err(Unfit::Fragment));
        f[20] = 0;
        f[23] = 1; // ICMP
        assert_eq!(parse(&f), Err(Unfit::Unsupported));
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(parse(&arp), Err(Unfit::Unsupported));
    }

    #[test]
    fn a_partial_checksum_is_finished_and_macs_rewritten() {
        let good = tcp_frame([198, 51, 100, 7], 40000, [192, 0, 2, 240], 80, false);
        let mut partial = good.clone();
        // What CHECKSUM_PARTIAL leaves: some other value in the field.
        partial[34 + 16] ^= 0x5a;
        partial[34 + 17] ^= 0xa5;
        let mut padded = partial.clone();
        padded.resize(good.len() + 6, 0xee); // Ethernet padding
        for frame in [&mut partial, &mut padded] {
            let p = parse(frame).unwrap();
            finish_checksum(frame, &p);
            rewrite(frame, [2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 3]);
            assert_eq!(frame[34 + 16..34 + 18], good[34 + 16..34 + 18]);
            assert_eq!(frame[..6], [2, 0, 0, 0, 0, 9]);
            assert_eq!(frame[6..12], [2, 0, 0, 0, 0, 3]);
            assert_eq!(frame[12..good.len()], good[12..]);
        }
    }
}
