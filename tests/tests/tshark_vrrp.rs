//! tshark's VRRP dissector judges the checksums of adverts vrlb emits.
//!
//! vrlb writes VRRPv2 (PASS), VRRPv3/IPv4 (pseudo-header checksum, and the
//! message-only form of keepalived's `v3_checksum_as_v2`) and VRRPv3/IPv6
//! adverts, wrapped in Ethernet and IP, into a pcap file; tshark reads it
//! and must report each checksum good (`vrrp.checksum.status` 1). Its
//! preference `vrrp.v3_checksum_as_in_v2` selects which v3/IPv4 form it
//! verifies, so each form is checked under its setting and shown bad under
//! the other. No root and no network: tshark only reads a file. Skips with a
//! printed reason when tshark is missing, except under `CI=true`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::Command;

use vrlb_core::wire::smol::{
    EthernetAddress, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, Ipv6Packet, Ipv6Repr,
};
use vrlb_core::wire::vrrp::{
    Addrs, Auth, ChecksumMode, MULTICAST_V4, MULTICAST_V6, Repr, TTL, Version,
};

const SRC_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x5e, 0x00, 0x53, 0x01]);

/// One advert to write, and what tshark should say about it.
struct Case {
    name: &'static str,
    repr: Repr<'static>,
    mode: ChecksumMode,
    src: IpAddr,
    dst: IpAddr,
}

static VIPS4: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100)),
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 101)),
];
static VIPS6: [IpAddr; 1] = [IpAddr::V6(Ipv6Addr::new(
    0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100,
))];

fn cases() -> Vec<Case> {
    let src4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let src6 = IpAddr::V6(Ipv6Addr::new(
        0xfe80, 0, 0, 0, 0x200, 0x5eff, 0xfe00, 0x5301,
    ));
    let base = Repr {
        version: Version::V3,
        vrid: 51,
        priority: 150,
        advert_interval_cs: 100,
        auth: Auth::None,
        addrs: Addrs::List(&VIPS4),
    };
    vec![
        Case {
            name: "v2 PASS",
            repr: Repr {
                version: Version::V2,
                auth: Auth::Pass(*b"secret12"),
                ..base
            },
            mode: ChecksumMode::AsV2,
            src: src4,
            dst: MULTICAST_V4.into(),
        },
        Case {
            name: "v3/IPv4 pseudo-header",
            repr: base,
            mode: ChecksumMode::PseudoHeader,
            src: src4,
            dst: MULTICAST_V4.into(),
        },
        Case {
            name: "v3/IPv4 message only (v3_checksum_as_v2)",
            repr: Repr {
                advert_interval_cs: 5,
                ..base
            },
            mode: ChecksumMode::AsV2,
            src: src4,
            dst: MULTICAST_V4.into(),
        },
        Case {
            name: "v3/IPv6",
            repr: Repr {
                addrs: Addrs::List(&VIPS6),
                priority: 0,
                ..base
            },
            mode: ChecksumMode::PseudoHeader,
            src: src6,
            dst: MULTICAST_V6.into(),
        },
        Case {
            name: "v3/IPv4 unicast pseudo-header",
            repr: base,
            mode: ChecksumMode::PseudoHeader,
            src: src4,
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        },
    ]
}

/// Ethernet + IP + VRRP, built with smoltcp's wire types.
fn frame(case: &Case) -> Vec<u8> {
    let mut vrrp = [0u8; 256];
    let len = case
        .repr
        .emit(&mut vrrp, case.src, case.dst, case.mode)
        .expect("emit");
    let vrrp = &vrrp[..len];
    let (ethertype, ip_len) = match case.src {
        IpAddr::V4(_) => (EthernetProtocol::Ipv4, 20),
        IpAddr::V6(_) => (EthernetProtocol::Ipv6, 40),
    };
    let mut buf = vec![0u8; 14 + ip_len + len];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.set_src_addr(SRC_MAC);
    eth.set_dst_addr(match case.dst {
        IpAddr::V4(a) if a.is_multicast() => EthernetAddress([0x01, 0x00, 0x5e, 0, 0, 0x12]),
        IpAddr::V6(_) => EthernetAddress([0x33, 0x33, 0, 0, 0, 0x12]),
        _ => EthernetAddress([0x02, 0x00, 0x5e, 0x00, 0x53, 0x02]),
    });
    eth.set_ethertype(ethertype);
    let payload = eth.payload_mut();
    match (case.src, case.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ip = Ipv4Packet::new_unchecked(&mut payload[..]);
            ip.set_version(4);
            ip.set_header_len(20);
            ip.set_dscp(0x30); // keepalived sends TOS 0xc0 (network control)
            ip.set_total_len((20 + len) as u16);
            ip.set_ident(1);
            ip.set_hop_limit(TTL);
            ip.set_next_header(IpProtocol::Unknown(112));
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
            ip.fill_checksum();
            ip.payload_mut().copy_from_slice(vrrp);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let repr = Ipv6Repr {
                src_addr: s,
                dst_addr: d,
                next_header: IpProtocol::Unknown(112),
                payload_len: len,
                hop_limit: TTL,
            };
            let mut ip = Ipv6Packet::new_unchecked(&mut payload[..]);
            repr.emit(&mut ip);
            ip.payload_mut().copy_from_slice(vrrp);
        }
        _ => unreachable!("cases keep families consistent"),
    }
    buf
}

/// Classic little-endian pcap, Ethernet link type.
fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// `(vrrp.version, vrrp.checksum.status)` per frame, with the v3/IPv4
/// checksum preference set as given.
fn tshark_statuses(file: &PathBuf, v3_as_v2: bool) -> Vec<(String, String)> {
    let pref = format!(
        "vrrp.v3_checksum_as_in_v2:{}",
        if v3_as_v2 { "TRUE" } else { "FALSE" }
    );
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args([
            "-o",
            &pref,
            "-T",
            "fields",
            "-e",
            "vrrp.version",
            "-e",
            "vrrp.checksum.status",
        ])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut f = l.split('\t');
            (
                f.next().unwrap_or("").to_string(),
                f.next().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn tshark_present() -> bool {
    match Command::new("tshark").arg("-v").output() {
        Ok(o) if o.status.success() => true,
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("tshark is required under CI=true")
        }
        _ => {
            eprintln!("skipping tshark_vrrp: tshark not installed (apt-get install tshark)");
            false
        }
    }
}

#[test]
fn tshark_reports_vrlb_checksums_good() {
    if !tshark_present() {
        return;
    }
    let cases = cases();
    let frames: Vec<Vec<u8>> = cases.iter().map(frame).collect();
    let file = std::env::temp_dir().join(format!("vrlb-tshark-vrrp-{}.pcap", std::process::id()));
    std::fs::write(&file, pcap(&frames)).unwrap();
    let default = tshark_statuses(&file, false);
    let as_v2 = tshark_statuses(&file, true);
    let _ = std::fs::remove_file(&file);
    assert_eq!(default.len(), cases.len(), "tshark saw {default:?}");

    // Status 1 is "Good", 0 "Bad" (Wireshark's proto_checksum_enum_e).
    for (i, case) in cases.iter().enumerate() {
        let want_version = if case.repr.version == Version::V2 {
            "2"
        } else {
            "3"
        };
        assert_eq!(default[i].0, want_version, "{}", case.name);
        let v3_ipv4 = case.repr.version == Version::V3 && case.src.is_ipv4();
        let message_only = case.mode == ChecksumMode::AsV2;
        let (good_when_default, good_when_as_v2) = if v3_ipv4 {
            (!message_only, message_only)
        } else {
            // The preference only concerns v3 over IPv4.
            (true, true)
        };
        let status = |good: bool| if good { "1" } else { "0" };
        assert_eq!(
            default[i].1,
            status(good_when_default),
            "{} with v3_checksum_as_in_v2 FALSE",
            case.name
        );
        assert_eq!(
            as_v2[i].1,
            status(good_when_as_v2),
            "{} with v3_checksum_as_in_v2 TRUE",
            case.name
        );
    }
}
