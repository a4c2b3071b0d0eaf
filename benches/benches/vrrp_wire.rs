//! VRRP advert parse+validate and emit, v2 (PASS) and v3, 1 and 20 VIPs,
//! against a baseline measured in the same run: the RFC 1071 sum over the
//! same bytes (the least any validating parser must do). Also a backup's
//! whole receive path (parse, every check, timer update).
//!
//! Run: `cargo bench -p vrlb-benches --bench vrrp_wire`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vrlb_core::Instant;
use vrlb_core::vrrp::{Config, Input, Instance};
use vrlb_core::wire::smol::checksum;
use vrlb_core::wire::vrrp::{Addrs, Auth, ChecksumMode, MULTICAST_V4, Packet, Repr, Version};

const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const DST: IpAddr = IpAddr::V4(MULTICAST_V4);

fn vips(n: u8) -> Vec<IpAddr> {
    (0..n)
        .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100 + i)))
        .collect()
}

fn wire(c: &mut Criterion) {
    for (name, version) in [("v2_pass", Version::V2), ("v3_ipv4", Version::V3)] {
        for n in [1u8, 20] {
            let addrs = vips(n);
            let repr = Repr {
                version,
                vrid: 51,
                priority: 150,
                advert_interval_cs: 100,
                auth: if version == Version::V2 {
                    Auth::pass(b"secret12")
                } else {
                    Auth::None
                },
                addrs: Addrs::List(&addrs),
            };
            let mut buf = [0u8; 256];
            let len = repr
                .emit(&mut buf, SRC, DST, ChecksumMode::PseudoHeader)
                .unwrap();
            let bytes = buf[..len].to_vec();

            let mut g = c.benchmark_group(format!("vrrp_wire/{name}/{n}_vips"));
            g.throughput(Throughput::Bytes(len as u64));
            g.bench_function("baseline_checksum_only", |b| {
                b.iter(|| black_box(checksum::data(black_box(&bytes))))
            });
            g.bench_function("parse_validate", |b| {
                b.iter(|| {
                    let p = Packet::new_unchecked(black_box(&bytes[..]));
                    black_box(Repr::parse(&p, SRC, DST).unwrap().0.priority)
                })
            });
            g.bench_function("emit", |b| {
                let mut out = [0u8; 256];
                b.iter(|| {
                    black_box(
                        repr.emit(&mut out, SRC, DST, ChecksumMode::PseudoHeader)
                            .unwrap(),
                    )
                })
            });
            g.bench_function("backup_receive_path", |b| {
                let mut config = Config::new(51, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)));
                config.version = version;
                config.priority = 100;
                config.auth = repr.auth;
                let mut inst =
                    Instance::<vrlb_core::vrrp::InlineVips<20>>::new(config, &addrs, &[]).unwrap();
                inst.handle(Instant::ZERO, Input::Start);
                while inst.poll_output().is_some() {}
                let mut t = 1u64;
                b.iter(|| {
                    t += 1;
                    inst.handle(
                        Instant::from_micros(t),
                        Input::Advert {
                            src: SRC,
                            dst: DST,
                            ttl: 255,
                            payload: black_box(&bytes),
                        },
                    );
                    black_box(inst.poll_timeout())
                })
            });
            g.finish();
        }
    }
}

criterion_group!(benches, wire);
criterion_main!(benches);
