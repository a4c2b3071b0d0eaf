//! mh table build at 65537 entries and 1000 servers: vrlb (IPVS's
//! algorithm, caller storage) against the `maglev` crate, same run.
//!
//! Run: `cargo bench -p vrlb-benches --bench lb_mh`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, criterion_group, criterion_main};
use vrlb_core::Instant;
use vrlb_core::lb::*;

const M: u32 = 65_537;

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("lb_mh_build_65537_x1000");
    let layout = Layout {
        services: 1,
        servers_per_service: 1024,
        mh_table_max: M,
        connections: 16,
    };
    fn leak<T: Clone>(v: T, n: usize) -> &'static mut [T] {
        Box::leak(vec![v; n].into_boxed_slice())
    }
    let st = Storage {
        services: leak(ServiceSlot::EMPTY, layout.service_slots()),
        servers: leak(ServerSlot::EMPTY, layout.server_slots()),
        tree: leak(0u16, layout.tree_nodes()),
        mh: leak(0u16, layout.mh_entries()),
        conns: leak(ConnSlot::EMPTY, layout.conn_slots()),
        index: leak(0u8, layout.index_bytes()),
        wheel: leak(0u32, layout.wheel_buckets()),
    };
    let mut b = Balancer::new(layout, st, LbConfig::DEFAULT, 1, Instant::ZERO).unwrap();
    let mut cfg = ServiceConfig::new(
        ServiceKey::Addr {
            protocol: Protocol::Udp,
            vip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            port: 53,
        },
        Scheduler::Mh,
    );
    cfg.mh_table_size = M;
    let svc = b.add_service(cfg).unwrap();
    let addrs: Vec<IpAddr> = (0..1000u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0xC633_0000 + i)))
        .collect();
    for a in &addrs {
        b.add_server(svc, RealServer::new(*a, 53)).unwrap();
    }
    let first = b.find_server(svc, addrs[0], 53).unwrap();
    // One rebuild = one weight update of one server (the kernel rebuilds the
    // whole table on every add, delete and update).
    let mut w = 1;
    g.bench_function("vrlb", |bench| {
        bench.iter(|| {
            w = if w == 1 { 2 } else { 1 };
            b.set_weight(svc, first, w).unwrap();
            black_box(b.mh_table(svc).unwrap()[0])
        })
    });
    let nodes: Vec<String> = addrs.iter().map(|a| format!("{a}:53")).collect();
    g.bench_function("maglev_crate", |bench| {
        bench.iter(|| black_box(maglev::Maglev::with_capacity(nodes.clone(), M as usize)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(8));
    targets = build
}
criterion_main!(benches);
