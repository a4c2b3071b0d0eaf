//! Criterion benchmarks of `Balancer::classify`, each a ratio against a
//! baseline measured in the same run:
//!
//! - new-flow classify with wlc at 4096 and at 16 servers: the tournament
//!   tree against the kernel's linear scan (`lb::reference`, same balancer);
//! - established-flow classify with 1 million tracked connections against
//!   the same lookup in a `hashbrown::HashMap` with a keyed foldhash, one
//!   packet per call and 32 per `classify_batch` call (against 32 gets),
//!   read-only (`get`) and read-modify-write (`get_mut` writing state and
//!   expiry back, as `classify` does on a hit once the clock has moved to
//!   a later expiry tick: here it moves 1 us a packet).
//!
//! Run: `cargo bench -p vrlb-benches --bench lb_classify`. With
//! `VRLB_BENCH_THP=1` every allocation of 4 MiB or more (vrlb's tables and
//! hashbrown's alike) is advised for transparent huge pages
//! (`madvise(MADV_HUGEPAGE)`; THP is in `madvise` mode here), so the two
//! stay like for like; without it both use 4 KiB pages.

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::hash::{Hash, Hasher};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};

use criterion::{Criterion, criterion_group};
use vrlb_core::Instant;
use vrlb_core::lb::*;

/// Huge pages for large allocations when `VRLB_BENCH_THP` is set (main
/// reads it before anything large is allocated).
static THP: AtomicBool = AtomicBool::new(false);
const THP_MIN: usize = 4 << 20;
const HUGE: usize = 2 << 20;

struct Allocator;

fn advise(p: *mut u8, size: usize) {
    if p.is_null() || size < THP_MIN || !THP.load(Ordering::Relaxed) {
        return;
    }
    // The 2 MiB-aligned interior of the block.
    let start = (p as usize).next_multiple_of(HUGE);
    let end = (p as usize + size) / HUGE * HUGE;
    if let Some(at) = std::ptr::NonNull::new(start as *mut std::ffi::c_void) {
        if end > start {
            // SAFETY: the range lies inside the block just allocated; the
            // advice changes no contents (failure is harmless: 4 KiB pages).
            let _ = unsafe {
                nix::sys::mman::madvise(at, end - start, nix::sys::mman::MmapAdvise::MADV_HUGEPAGE)
            };
        }
    }
}

// SAFETY: every call is passed straight to `System` with its own layout;
// `advise` only adds a hint to memory `System` just handed out.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, l: AllocLayout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.alloc(l) };
        advise(p, l.size());
        p
    }
    unsafe fn alloc_zeroed(&self, l: AllocLayout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.alloc_zeroed(l) };
        advise(p, l.size());
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: AllocLayout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: AllocLayout, new: usize) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let q = unsafe { System.realloc(p, l, new) };
        advise(q, new);
        q
    }
}

#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

fn storage(layout: &Layout) -> Storage<'static> {
    fn leak<T: Clone>(v: T, n: usize) -> &'static mut [T] {
        Box::leak(vec![v; n].into_boxed_slice())
    }
    Storage {
        services: leak(ServiceSlot::EMPTY, layout.service_slots()),
        servers: leak(ServerSlot::EMPTY, layout.server_slots()),
        tree: leak(0u16, layout.tree_nodes()),
        mh: leak(0u16, layout.mh_entries()),
        conns: leak(ConnSlot::EMPTY, layout.conn_slots()),
        index: leak(0u8, layout.index_bytes()),
        wheel: leak(0u32, layout.wheel_buckets()),
    }
}

const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));

fn wlc_balancer(servers: u16, connections: u32, linear: bool) -> Balancer<'static> {
    let layout = Layout {
        services: 1,
        servers_per_service: servers,
        mh_table_max: 0,
        connections,
    };
    let mut b = Balancer::new(
        layout,
        storage(&layout),
        LbConfig::DEFAULT,
        7,
        Instant::ZERO,
    )
    .unwrap();
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
    for i in 0..u32::from(servers) {
        let addr = IpAddr::V4(Ipv4Addr::from(0xC633_6400u32 + i)); // from 198.51.100.0
        b.add_server(svc, RealServer::new(addr, 80).with_weight(1 + i % 4))
            .unwrap();
    }
    b.set_linear_scan(linear);
    b
}

/// Client `i`: a distinct address and port per flow.
fn client(i: u64) -> (IpAddr, u16) {
    (
        IpAddr::V4(Ipv4Addr::from(
            0xCB00_7100u32.wrapping_add((i >> 16) as u32),
        )),
        (i & 0xffff) as u16,
    )
}

fn new_flows(c: &mut Criterion) {
    for servers in [4096u16, 16] {
        let mut g = c.benchmark_group(format!("lb_new_flow_wlc_{servers}"));
        for (name, linear) in [("tree", false), ("linear_reference", true)] {
            // Steady state: a SYN per microsecond-step, SYN_RECV lives 60 s,
            // so about 60k live connections; the table holds 256k.
            let mut b = wlc_balancer(servers, 1 << 18, linear);
            let mut i = 0u64;
            // Warm the table to its steady state.
            for _ in 0..70_000 {
                i += 1;
                let (src, port) = client(i);
                let now = Instant::from_millis(i);
                b.classify(now, &Flow::tcp(src, port, VIP, 80, TcpFlags::SYN));
            }
            g.bench_function(name, |bench| {
                bench.iter(|| {
                    i += 1;
                    let (src, port) = client(i);
                    let now = Instant::from_millis(i);
                    black_box(b.classify(now, &Flow::tcp(src, port, VIP, 80, TcpFlags::SYN)))
                })
            });
        }
        g.finish();
    }
}

/// The key a plain hash-map table would use: the same 5-tuple.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    caddr: u128,
    vaddr: u128,
    ports: u64,
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u128(self.caddr);
        h.write_u128(self.vaddr);
        h.write_u64(self.ports);
    }
}

fn established(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let mut g = c.benchmark_group("lb_established_1m");
    // vrlb: 1M connections, established.
    let mut b = wlc_balancer(64, 1 << 20, false);
    let now = Instant::from_secs(1);
    for i in 0..N {
        let (src, port) = client(i);
        b.classify(now, &Flow::tcp(src, port, VIP, 80, TcpFlags::SYN));
        b.classify(now, &Flow::tcp(src, port, VIP, 80, TcpFlags::ACK));
    }
    assert_eq!(b.tracked() as u64, N);
    // The first packets' timer (SYN_RECV's 60 s) comes round at 61 s and
    // re-files all the connections at once: let that happen here, not in
    // a sample.
    b.handle_timeout(Instant::from_secs(62));
    assert_eq!(b.tracked() as u64, N);
    // Probe order: a fixed pseudo-random walk over the flows. The clock
    // moves 1 us a packet, so a flow's next packet (a million packets
    // later) lands in a later 16 ms expiry tick and writes the new expiry
    // back, as live traffic's would (and as `get_mut` below does).
    let probe = |k: u64| (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) % N;
    let mut clock = Instant::from_secs(62).as_micros();
    let mut k = 0u64;
    g.bench_function("vrlb_classify", |bench| {
        bench.iter(|| {
            k += 1;
            clock += 1;
            let (src, port) = client(probe(k));
            let now = Instant::from_micros(clock);
            black_box(b.classify(now, &Flow::tcp(src, port, VIP, 80, TcpFlags::ACK)))
        })
    });
    // The same probes, 32 packets per call (what a driver reading a ring
    // of packets hands in).
    let mut k = 0u64;
    let mut flows = [Flow::tcp(VIP, 0, VIP, 80, TcpFlags::ACK); 32];
    let mut verdicts = [Verdict::NotVirtual; 32];
    g.bench_function("vrlb_classify_batch_x32", |bench| {
        bench.iter(|| {
            for f in flows.iter_mut() {
                k += 1;
                let (src, port) = client(probe(k));
                *f = Flow::tcp(src, port, VIP, 80, TcpFlags::ACK);
            }
            clock += 32;
            b.classify_batch(Instant::from_micros(clock), &flows, &mut verdicts);
            black_box(&verdicts);
        })
    });
    // Baseline: hashbrown with a keyed foldhash, key -> (server, state, expiry).
    let hasher = foldhash::fast::FixedState::with_seed(7);
    let mut map: hashbrown::HashMap<Key, (u16, u8, u32), _> =
        hashbrown::HashMap::with_capacity_and_hasher(N as usize, hasher);
    let key = |i: u64| {
        let (src, port) = client(i);
        let IpAddr::V4(v4) = src else { unreachable!() };
        let IpAddr::V4(vip) = VIP else { unreachable!() };
        Key {
            caddr: u128::from(v4.to_ipv6_mapped()),
            vaddr: u128::from(vip.to_ipv6_mapped()),
            ports: u64::from(port) | 80 << 16 | 6 << 48,
        }
    };
    for i in 0..N {
        map.insert(key(i), ((i % 64) as u16, 1, 0));
    }
    // What the allocations got: huge pages only with VRLB_BENCH_THP=1.
    if let Ok(r) = std::fs::read_to_string("/proc/self/smaps_rollup") {
        for l in r
            .lines()
            .filter(|l| l.starts_with("Rss:") || l.starts_with("AnonHugePages:"))
        {
            eprintln!("lb_established_1m: {l}");
        }
    }
    let mut k = 0u64;
    g.bench_function("hashbrown_get", |bench| {
        bench.iter(|| {
            k += 1;
            black_box(map.get(&key(probe(k))).copied())
        })
    });
    let mut k = 0u64;
    g.bench_function("hashbrown_get_x32", |bench| {
        bench.iter(|| {
            for _ in 0..32 {
                k += 1;
                black_box(map.get(&key(probe(k))).copied());
            }
        })
    });
    // Read-modify-write, as classify does on a hit: find the entry, write
    // its state and expiry back.
    let mut k = 0u64;
    g.bench_function("hashbrown_get_mut", |bench| {
        bench.iter(|| {
            k += 1;
            let v = map.get_mut(&key(probe(k))).map(|v| {
                v.1 = 4;
                v.2 = k as u32;
                v.0
            });
            black_box(v)
        })
    });
    let mut k = 0u64;
    g.bench_function("hashbrown_get_mut_x32", |bench| {
        bench.iter(|| {
            for _ in 0..32 {
                k += 1;
                let v = map.get_mut(&key(probe(k))).map(|v| {
                    v.1 = 4;
                    v.2 = k as u32;
                    v.0
                });
                black_box(v);
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = new_flows, established
}
fn main() {
    let thp = std::env::var("VRLB_BENCH_THP").is_ok_and(|v| v == "1");
    THP.store(thp, Ordering::Relaxed);
    benches();
    Criterion::default().configure_from_args().final_summary();
}
