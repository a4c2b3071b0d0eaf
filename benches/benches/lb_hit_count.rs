//! Fixed-count loops over the established-flow hit path, for counting
//! instructions with callgrind (the machine is shared, so timings are
//! noisy; instruction counts are not). The same table and probes as
//! `lb_classify`'s established group: 1 M connections, wlc over 64
//! servers, ACKs in a fixed pseudo-random order, and the hashbrown
//! baseline with a keyed foldhash. Each loop is its own non-inlined
//! function so callgrind can count it alone:
//!
//! ```sh
//! cargo bench -p vrlb-benches --bench lb_hit_count --no-run
//! B=$(ls -t target/release/deps/lb_hit_count-* | grep -v '\.d$' | head -1)
//! for f in classify classify_batch get get_mut; do
//!   VRLB_ONE_ROUND=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     --toggle-collect="lb_hit_count::run_$f" $B 2>&1 | grep Collected
//! done
//! ```
//!
//! `VRLB_NEW_FLOWS=all` runs `lb_classify`'s new-flow loops instead, and
//! `VRLB_NEW_FLOWS=wlc16_tree` (or `wlc16_linear`, `wlc4096_tree`,
//! `wlc4096_linear`) only one, for `--toggle-collect=lb_hit_count::run_new_flows`
//! (`PROBES` SYNs each).
//!
//! With `VRLB_ONE_ROUND=1` each loop runs once, `PROBES` (100,000) packets:
//! divide the collected count by it. Run natively it prints the
//! nanoseconds per packet of each loop, fastest and median of seven
//! interleaved rounds (a rough figure; criterion's `lb_classify` gives
//! the real ones).

use std::hash::{Hash, Hasher};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use vrlb_core::Instant;
use vrlb_core::lb::*;

const N: u64 = 1_000_000;
const PROBES: u64 = 100_000;
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));

fn leak<T: Clone>(v: T, n: usize) -> &'static mut [T] {
    Box::leak(vec![v; n].into_boxed_slice())
}

fn balancer() -> Balancer<'static> {
    wlc(64, 1 << 20)
}

/// A wlc service over `servers` servers in a table of `connections`.
fn wlc(servers: u16, connections: u32) -> Balancer<'static> {
    let layout = Layout {
        services: 1,
        servers_per_service: servers,
        mh_table_max: 0,
        connections,
    };
    let storage = Storage {
        services: leak(ServiceSlot::EMPTY, layout.service_slots()),
        servers: leak(ServerSlot::EMPTY, layout.server_slots()),
        tree: leak(0u16, layout.tree_nodes()),
        mh: leak(0u16, layout.mh_entries()),
        conns: leak(ConnSlot::EMPTY, layout.conn_slots()),
        index: leak(0u8, layout.index_bytes()),
        wheel: leak(0u32, layout.wheel_buckets()),
    };
    let mut b = Balancer::new(layout, storage, LbConfig::DEFAULT, 7, Instant::ZERO).unwrap();
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

fn probe(k: u64) -> u64 {
    (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) % N
}

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

fn key(i: u64) -> Key {
    let (src, port) = client(i);
    let IpAddr::V4(v4) = src else { unreachable!() };
    let IpAddr::V4(vip) = VIP else { unreachable!() };
    Key {
        caddr: u128::from(v4.to_ipv6_mapped()),
        vaddr: u128::from(vip.to_ipv6_mapped()),
        ports: u64::from(port) | 80 << 16 | 6 << 48,
    }
}

type Map = hashbrown::HashMap<Key, (u16, u8, u32), foldhash::fast::FixedState>;

#[inline(never)]
fn run_classify(b: &mut Balancer<'_>, now: Instant, base: u64) -> u64 {
    let mut hits = 0;
    for k in base..base + PROBES {
        let (src, port) = client(probe(k));
        let v = b.classify(now, &Flow::tcp(src, port, VIP, 80, TcpFlags::ACK));
        hits += u64::from(matches!(black_box(v), Verdict::Forward { .. }));
    }
    hits
}

#[inline(never)]
fn run_classify_batch(b: &mut Balancer<'_>, now: Instant, base: u64) -> u64 {
    let mut flows = [Flow::tcp(VIP, 0, VIP, 80, TcpFlags::ACK); 32];
    let mut verdicts = [Verdict::NotVirtual; 32];
    let mut hits = 0;
    let mut k = base;
    while k < base + PROBES {
        for f in flows.iter_mut() {
            let (src, port) = client(probe(k));
            *f = Flow::tcp(src, port, VIP, 80, TcpFlags::ACK);
            k += 1;
        }
        b.classify_batch(now, &flows, &mut verdicts);
        hits += black_box(&verdicts)
            .iter()
            .filter(|v| matches!(v, Verdict::Forward { .. }))
            .count() as u64;
    }
    hits
}

#[inline(never)]
fn run_get(map: &Map, base: u64) -> u64 {
    let mut hits = 0;
    for k in base..base + PROBES {
        hits += u64::from(black_box(map.get(&key(probe(k))).copied()).is_some());
    }
    hits
}

#[inline(never)]
fn run_get_mut(map: &mut Map, base: u64) -> u64 {
    let mut hits = 0;
    for k in base..base + PROBES {
        let v = map.get_mut(&key(probe(k))).map(|v| {
            v.1 = 4;
            v.2 = k as u32;
            v.0
        });
        hits += u64::from(black_box(v).is_some());
    }
    hits
}

/// Nanoseconds a packet of one pass of `f`, checking it hit every time.
fn timed(name: &str, f: impl FnOnce() -> u64) -> f64 {
    let t = std::time::Instant::now();
    let hits = f();
    let ns = t.elapsed().as_nanos() as f64 / PROBES as f64;
    assert_eq!(hits, PROBES, "{name}: every probe is a tracked flow");
    ns
}

/// `lb_classify`'s new-flow groups: a SYN a millisecond, SYN_RECV lives
/// 60 s, so about 60,000 live connections in a table of 256 K, warmed to
/// that steady state first.
fn new_flow_balancer(servers: u16, linear: bool) -> (Balancer<'static>, u64) {
    let mut b = wlc(servers, 1 << 18);
    b.set_linear_scan(linear);
    let mut i = 0;
    for _ in 0..70_000 {
        i += 1;
        let (src, port) = client(i);
        b.classify(
            Instant::from_millis(i),
            &Flow::tcp(src, port, VIP, 80, TcpFlags::SYN),
        );
    }
    (b, i)
}

#[inline(never)]
fn run_new_flows(b: &mut Balancer<'_>, from: u64) -> u64 {
    let mut tracked = 0;
    for i in from + 1..=from + PROBES {
        let (src, port) = client(i);
        let v = b.classify(
            Instant::from_millis(i),
            &Flow::tcp(src, port, VIP, 80, TcpFlags::SYN),
        );
        tracked += u64::from(matches!(
            black_box(v),
            Verdict::Forward { tracked: true, .. }
        ));
    }
    tracked
}

/// With `VRLB_NEW_FLOWS` set: the new-flow loops instead, all four or the
/// one it names (for callgrind; natively, nanoseconds a flow of one pass).
fn new_flows(only: &str) {
    let runs = [
        ("wlc16_tree", 16, false),
        ("wlc16_linear", 16, true),
        ("wlc4096_tree", 4096, false),
        ("wlc4096_linear", 4096, true),
    ];
    for (name, servers, linear) in runs {
        if only != "all" && only != name {
            continue;
        }
        let (mut b, from) = new_flow_balancer(servers, linear);
        let ns = timed(name, || run_new_flows(&mut b, from));
        println!("new flow, {name}: {ns:.0} ns a flow");
    }
}

fn main() {
    if let Ok(only) = std::env::var("VRLB_NEW_FLOWS") {
        return new_flows(&only);
    }
    let mut b = balancer();
    let now = Instant::from_secs(1);
    for i in 0..N {
        let (src, port) = client(i);
        b.classify(now, &Flow::tcp(src, port, VIP, 80, TcpFlags::SYN));
        b.classify(now, &Flow::tcp(src, port, VIP, 80, TcpFlags::ACK));
    }
    assert_eq!(u64::from(b.tracked()), N);
    let mut map: Map = hashbrown::HashMap::with_capacity_and_hasher(
        N as usize,
        foldhash::fast::FixedState::with_seed(7),
    );
    for i in 0..N {
        map.insert(key(i), ((i % 64) as u16, 1, 0));
    }
    // Passes interleaved, so a burst of load on the machine hits all four
    // alike; the hits land a little later each round, as live traffic's
    // would (the expiry moves).
    const ROUNDS: usize = 7;
    let mut ns = [[0f64; 4]; ROUNDS];
    for (r, round) in ns.iter_mut().enumerate() {
        let now = Instant::from_millis(1050 + 50 * r as u64);
        // Fresh probes for each loop of each round: none of them was
        // touched since long before (the probe order walks all flows).
        let base = |i: u64| (4 * r as u64 + i) * PROBES;
        round[0] = timed("classify", || run_classify(&mut b, now, base(0)));
        round[1] = timed("classify_batch", || {
            run_classify_batch(&mut b, now, base(1))
        });
        round[2] = timed("get", || run_get(&map, base(2)));
        round[3] = timed("get_mut", || run_get_mut(&mut map, base(3)));
        if std::env::var_os("VRLB_ONE_ROUND").is_some() {
            return;
        }
    }
    for (i, name) in [
        "classify",
        "classify_batch",
        "hashbrown get",
        "hashbrown get_mut",
    ]
    .into_iter()
    .enumerate()
    {
        let mut v = ns.map(|round| round[i]);
        v.sort_by(f64::total_cmp);
        println!(
            "{name}: {:.0} ns a packet (fastest of {ROUNDS}), median {:.0}",
            v[0],
            v[ROUNDS / 2]
        );
    }
}
