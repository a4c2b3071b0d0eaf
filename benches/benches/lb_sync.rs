//! Criterion benchmarks of connection sync, each a ratio measured in the
//! same run:
//!
//! - what the sync journal costs `classify`: established flows (1 million
//!   tracked) and new flows, with the journal on against off;
//! - the sender's cost per entry (journal to message bytes) and the
//!   backup's cost per applied entry, against a new-flow `classify`.
//!
//! Run: `cargo bench -p vrlb-benches --bench lb_sync`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, criterion_group, criterion_main};
use vrlb_core::lb::*;
use vrlb_core::sync::{ConnSync, Input, Output, Role, SyncConfig};
use vrlb_core::{Duration, Instant};

fn leak<T: Clone>(v: T, n: usize) -> &'static mut [T] {
    Box::leak(vec![v; n].into_boxed_slice())
}

const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));

fn balancer(connections: u32, journal: usize) -> Balancer<'static> {
    let layout = Layout {
        services: 1,
        servers_per_service: 64,
        mh_table_max: 0,
        connections,
    };
    let st = Storage {
        services: leak(ServiceSlot::EMPTY, layout.service_slots()),
        servers: leak(ServerSlot::EMPTY, layout.server_slots()),
        tree: leak(0u16, layout.tree_nodes()),
        mh: leak(0u16, layout.mh_entries()),
        conns: leak(ConnSlot::EMPTY, layout.conn_slots()),
        index: leak(0u8, layout.index_bytes()),
        wheel: leak(0u32, layout.wheel_buckets()),
    };
    let mut b = Balancer::new(layout, st, LbConfig::DEFAULT, 7, Instant::ZERO).unwrap();
    let svc = b
        .add_service(ServiceConfig::new(
            ServiceKey::Addr {
                protocol: Protocol::Tcp,
                vip: VIP,
                port: 80,
            },
            Scheduler::Wlc,
        ))
        .unwrap();
    for i in 0..64u32 {
        let addr = IpAddr::V4(Ipv4Addr::from(0xC633_6400u32 + i));
        b.add_server(svc, RealServer::new(addr, 80).with_weight(1 + i % 4))
            .unwrap();
    }
    if journal > 0 {
        b.attach_sync_journal(leak(0u32, journal), Duration::from_secs(60));
        b.set_sync_journal(true);
    }
    b
}

fn client(i: u64) -> (IpAddr, u16) {
    (
        IpAddr::V4(Ipv4Addr::from(
            0xCB00_7100u32.wrapping_add((i >> 16) as u32),
        )),
        (i & 0xffff) as u16,
    )
}

fn established(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let mut g = c.benchmark_group("sync_journal_established_1m");
    for (name, journal) in [("journal_off", 0usize), ("journal_on", 4096)] {
        let mut b = balancer(1 << 20, journal);
        let now = Instant::from_secs(1);
        for i in 0..N {
            let (src, port) = client(i);
            b.classify(now, &Flow::tcp(src, port, VIP, 80, TcpFlags::SYN));
            b.classify(now, &Flow::tcp(src, port, VIP, 80, TcpFlags::ACK));
            // The sender drains the journal as it goes.
            while b.sync_pop(now).is_some() {}
        }
        let probe = |k: u64| (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) % N;
        let mut k = 0u64;
        // Within one refresh window: what every packet pays.
        g.bench_function(name, |bench| {
            bench.iter(|| {
                k += 1;
                let (src, port) = client(probe(k));
                black_box(b.classify(now, &Flow::tcp(src, port, VIP, 80, TcpFlags::ACK)))
            })
        });
    }
    g.finish();
}

fn new_flows(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync_journal_new_flow");
    for (name, journal) in [("journal_off", 0usize), ("journal_on", 1 << 16)] {
        let mut b = balancer(1 << 18, journal);
        let mut i = 0u64;
        for _ in 0..70_000 {
            i += 1;
            let (src, port) = client(i);
            b.classify(
                Instant::from_millis(i),
                &Flow::tcp(src, port, VIP, 80, TcpFlags::SYN),
            );
            while b.sync_pop(Instant::from_millis(i)).is_some() {}
        }
        // Only classify is timed; the journal is drained (as the sender
        // would) between timed runs of at most 1024 packets.
        g.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let n = (iters - done).min(1024);
                    let t = std::time::Instant::now();
                    for _ in 0..n {
                        i += 1;
                        let (src, port) = client(i);
                        let now = Instant::from_millis(i);
                        black_box(b.classify(now, &Flow::tcp(src, port, VIP, 80, TcpFlags::SYN)));
                    }
                    total += t.elapsed();
                    while b.sync_pop(Instant::from_millis(i)).is_some() {}
                    done += n;
                }
                total
            })
        });
    }
    g.finish();
}

/// Sender and receiver cost per entry: 1024 new flows classified on the
/// sender, sent, applied on a backup; against classifying them alone.
fn pipeline(c: &mut Criterion) {
    const BATCH: u64 = 1024;
    let mut g = c.benchmark_group("sync_pipeline_1024_flows");
    let cfg = SyncConfig {
        messages_per_s: 1_000_000,
        burst_messages: 1_000_000,
        ..SyncConfig::DEFAULT
    };
    let mut a = balancer(1 << 18, 1 << 12);
    let mut b = balancer(1 << 18, 0);
    let mut sa = ConnSync::new(cfg, 1, Instant::ZERO).unwrap();
    let mut sb = ConnSync::new(cfg, 2, Instant::ZERO).unwrap();
    sa.handle(Instant::ZERO, Input::SetRole(Role::Sender), &mut a);
    sb.handle(Instant::ZERO, Input::SetRole(Role::Receiver), &mut b);
    let mut plain = balancer(1 << 18, 0);
    let mut i = 0u64;
    g.bench_function("classify_only", |bench| {
        bench.iter(|| {
            for _ in 0..BATCH {
                i += 1;
                let (src, port) = client(i);
                let now = Instant::from_millis(i);
                black_box(plain.classify(now, &Flow::tcp(src, port, VIP, 80, TcpFlags::SYN)));
            }
        })
    });
    let mut i = 0u64;
    g.bench_function("classify_send_apply", |bench| {
        bench.iter(|| {
            let mut now = Instant::ZERO;
            for _ in 0..BATCH {
                i += 1;
                let (src, port) = client(i);
                now = Instant::from_millis(i);
                black_box(a.classify(now, &Flow::tcp(src, port, VIP, 80, TcpFlags::SYN)));
            }
            // Flush everything: step past the flush interval.
            let flush = now + Duration::from_secs(3);
            sa.handle_timeout(now, &mut a);
            sa.handle_timeout(flush, &mut a);
            while let Some(Output::Transmit(m)) = sa.poll_output() {
                sb.handle(now, Input::Receive(m.as_bytes()), &mut b);
                sa.handle_timeout(flush, &mut a);
            }
        })
    });
    g.finish();
    assert_eq!(
        sb.stats().rx_applied,
        sa.stats().tx_entries,
        "{:?}",
        sb.stats()
    );
    assert_eq!(sb.stats().rx_table_full, 0);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = established, new_flows, pipeline
}
criterion_main!(benches);
