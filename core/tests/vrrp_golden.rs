//! Golden packets: adverts captured from Debian's keepalived 2.2.7 (see
//! `data/capture-golden.sh`). vrlb must parse each and re-emit it byte for
//! byte, and an `Instance` configured as that keepalived was must advertise
//! the same bytes, so a mixed keepalived/vrlb cluster agrees on the wire.

use std::net::IpAddr;

use vrlb_core::time::Instant;
use vrlb_core::vrrp::{Config, Input, Instance, Output, State};
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

/// Runs an instance configured as `config` (with `state MASTER`) until it
/// becomes master, and checks that the advert it asks for, built for each
/// of its destinations, is what keepalived sent.
fn instance_emits(name: &str, mut config: Config, vips: &[&str]) {
    let golden = load(name);
    config.start_as_master = true;
    let vips: Vec<IpAddr> = vips.iter().map(|v| v.parse().unwrap()).collect();
    let mut inst: Instance = Instance::new(config, &vips, &[]).unwrap();
    inst.handle(Instant::ZERO, Input::Start);
    while inst.poll_output().is_some() {}
    let due = inst.poll_timeout().expect("a backup waits for the master");
    inst.handle_timeout(due);
    let outputs: Vec<Output> = std::iter::from_fn(|| inst.poll_output()).collect();
    assert_eq!(inst.state(), State::Master, "{name}");
    let priority = outputs
        .iter()
        .find_map(|o| match o {
            Output::Advert { priority } => Some(*priority),
            _ => None,
        })
        .expect("a new master advertises");
    // Its regular adverts are the same bytes.
    let next = inst.poll_timeout().unwrap();
    inst.handle_timeout(next);
    assert_eq!(
        std::iter::from_fn(|| inst.poll_output()).collect::<Vec<_>>(),
        [Output::Advert { priority }]
    );
    let dsts: Vec<IpAddr> = inst.advert_destinations().collect();
    for g in &golden {
        assert_eq!(g.src, inst.config().primary_addr, "{name}: source");
        assert_eq!(dsts, [g.dst], "{name}: destination");
        let mut buf = [0u8; 512];
        let len = inst.emit_advert(priority, g.src, g.dst, &mut buf).unwrap();
        assert_eq!(
            &buf[..len],
            &g.bytes[..],
            "{name}: the instance's advert differs"
        );
    }
}

/// The `v2-pass` capture's keepalived.conf as a `Config`.
#[test]
fn instance_configured_as_keepalived_v2_pass() {
    let mut c = Config::new(51, "192.0.2.1".parse().unwrap());
    c.priority = 150;
    c.advert_interval_cs = 100;
    c.auth = Auth::pass(b"1111");
    instance_emits("v2-pass", c, &["192.0.2.240", "192.0.2.241"]);
}

/// The `v3-ipv4` capture: version 3, advert_int 0.5.
#[test]
fn instance_configured_as_keepalived_v3_ipv4() {
    let mut c = Config::new(52, "192.0.2.1".parse().unwrap());
    c.version = Version::V3;
    c.priority = 200;
    c.advert_interval_cs = 50;
    instance_emits("v3-ipv4", c, &["192.0.2.250"]);
}

/// The `v3-ipv6` capture: keepalived's source is the interface's
/// link-local address.
#[test]
fn instance_configured_as_keepalived_v3_ipv6() {
    let mut c = Config::new(53, "fe80::f442:ccff:fe57:d799".parse().unwrap());
    c.version = Version::V3;
    c.priority = 120;
    c.advert_interval_cs = 100;
    instance_emits("v3-ipv6", c, &["2001:db8::240", "2001:db8::241"]);
}
