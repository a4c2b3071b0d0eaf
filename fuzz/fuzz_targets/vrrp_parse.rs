//! Arbitrary bytes as a VRRP advert: the parser never panics, whatever
//! parses re-emits to bytes that parse the same, and a running instance
//! takes the bytes as input without panicking. The first byte picks the
//! family and addresses (so v2, v3/IPv4 and v3/IPv6 checksums are reached),
//! and whether the instance's queue is drained before the advert.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use vrlb_core::time::Instant;
use vrlb_core::vrrp::{Config, Input, Instance, Version};
use vrlb_core::wire::vrrp::{Addrs, ChecksumMode, MULTICAST_V4, MULTICAST_V6, Packet, Repr};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let v6 = selector & 1 == 1;
    let (src, dst, primary) = if v6 {
        (
            IpAddr::V6(Ipv6Addr::new(
                0xfe80,
                0,
                0,
                0,
                0,
                0,
                0,
                u16::from(selector >> 1),
            )),
            IpAddr::V6(MULTICAST_V6),
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xffff)),
        )
    } else {
        (
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, selector >> 1)),
            IpAddr::V4(MULTICAST_V4),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 254)),
        )
    };
    let packet = Packet::new_unchecked(payload);
    if let Ok((repr, form)) = Repr::parse(&packet, src, dst) {
        let addrs: Vec<IpAddr> = repr.addrs.iter().collect();
        let again = Repr {
            addrs: Addrs::List(&addrs),
            ..repr
        };
        let mode = match form {
            vrlb_core::wire::vrrp::ChecksumForm::AsV2 => ChecksumMode::AsV2,
            vrlb_core::wire::vrrp::ChecksumForm::Standard => ChecksumMode::PseudoHeader,
        };
        let mut out = [0u8; 8 + 255 * 16 + 8];
        let len = again
            .emit(&mut out, src, dst, mode)
            .expect("a parsed advert re-emits");
        let reparsed = Packet::new_unchecked(&out[..len]);
        assert_eq!(
            Repr::parse(&reparsed, src, dst)
                .expect("re-emitted advert parses")
                .0,
            repr
        );
    }
    let mut config = Config::new(payload.get(1).copied().unwrap_or(1).max(1), primary);
    if v6 || selector & 4 == 4 {
        config.version = Version::V3;
    }
    let Ok(mut inst) = Instance::<vrlb_core::vrrp::InlineVips<8>>::new(config, &[], &[]) else {
        return;
    };
    inst.handle(Instant::ZERO, Input::Start);
    // Bit 3 leaves the start's outputs undrained: the advert then meets a
    // queue without room.
    if selector & 8 == 0 {
        while inst.poll_output().is_some() {}
    }
    inst.handle(
        Instant::from_millis(1),
        Input::Advert {
            src,
            dst,
            ttl: 255,
            payload,
        },
    );
    while inst.poll_output().is_some() {}
    inst.handle_timeout(Instant::from_secs(10));
    while inst.poll_output().is_some() {}
});
