//! Golden packets: adverts captured from Debian's keepalived 2.2.7 (see
//! `data/capture-golden.sh`). vrlb must parse each and re-emit it byte for
//! byte, so a mixed keepalived/vrlb cluster agrees on the wire.

use std::net::IpAddr;

use vrlb_core::wire::vrrp::{Addrs, Auth, ChecksumForm, ChecksumMode, Packet, Repr, Version};

struct Golden {
    src: IpAddr,
    dst: IpAddr,
    bytes: Vec<u8>,
}

fn load(name: &str) -> Vec<Golden> {
    let path = format!("{}/tests/data/{name}.hex", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let adverts: Vec<Golden> = text
        .lines()
        .map(|line| {
            let mut parts = line.split_whitespace();
            let src = parts.next().unwrap().parse().unwrap();
            let dst = parts.next().unwrap().parse().unwrap();
            let hex = parts.next().unwrap();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            Golden { src, dst, bytes }
        })
        .collect();
    assert!(!adverts.is_empty(), "{path} holds no adverts");
    adverts
}

/// Parses every advert of `name`, checks it with `check`, re-emits it in
/// `mode` and compares the bytes.
fn roundtrip(name: &str, mode: ChecksumMode, expect_form: ChecksumForm, check: impl Fn(&Repr<'_>)) {
    for g in load(name) {
        let packet = Packet::new_checked(&g.bytes[..]).unwrap();
        let (repr, form) = Repr::parse(&packet, g.src, g.dst).unwrap();
        assert_eq!(form, expect_form, "{name}");
        check(&repr);
        let addrs: Vec<IpAddr> = repr.addrs.iter().collect();
        let again = Repr {
            addrs: Addrs::List(&addrs),
            ..repr
        };
        let mut out = vec![0u8; again.buffer_len(vrlb_core::wire::vrrp::Family::of(&g.src))];
        let len = again.emit(&mut out, g.src, g.dst, mode).unwrap();
        assert_eq!(&out[..len], &g.bytes[..], "{name}: re-emitted bytes differ");
    }
}

#[test]
fn keepalived_v2_pass() {
    roundtrip(
        "v2-pass",
        ChecksumMode::PseudoHeader,
        ChecksumForm::Standard,
        |r| {
            assert_eq!(r.version, Version::V2);
            assert_eq!((r.vrid, r.priority, r.advert_interval_cs), (51, 150, 100));
            assert!(r.auth.matches(&Auth::pass(b"1111")));
            let addrs: Vec<String> = r.addrs.iter().map(|a| a.to_string()).collect();
            assert_eq!(addrs, ["192.0.2.240", "192.0.2.241"]);
        },
    );
}

#[test]
fn keepalived_v3_ipv4() {
    roundtrip(
        "v3-ipv4",
        ChecksumMode::PseudoHeader,
        ChecksumForm::Standard,
        |r| {
            assert_eq!(r.version, Version::V3);
            assert_eq!((r.vrid, r.priority, r.advert_interval_cs), (52, 200, 50));
            assert_eq!(r.addrs.get(0), Some("192.0.2.250".parse().unwrap()));
        },
    );
}

#[test]
fn keepalived_v3_ipv6() {
    roundtrip(
        "v3-ipv6",
        ChecksumMode::PseudoHeader,
        ChecksumForm::Standard,
        |r| {
            assert_eq!(r.version, Version::V3);
            assert_eq!((r.vrid, r.priority, r.advert_interval_cs), (53, 120, 100));
            let addrs: Vec<String> = r.addrs.iter().map(|a| a.to_string()).collect();
            assert_eq!(addrs, ["2001:db8::240", "2001:db8::241"]);
        },
    );
}
