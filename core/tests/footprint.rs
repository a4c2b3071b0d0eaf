//! The firmware footprint figures (issue 9), printed as `figure ...` lines
//! for `ci/footprint.sh`, which turns them into BENCHMARKS.md's table. Each
//! figure is checked, not just printed: the VRRP-only node with one
//! instance of eight VIPs fits in 2 KiB and runs a takeover in exactly that
//! storage; the seed's storage is what `build::count` asks for, and the
//! seed builds, checks its servers and balances a flow in exactly that.

use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr};

use vrlb_core::node::{
    GroupSlot, IfaceId, Input, InstanceSlot, Node, NodeStorage, Output, ScriptSlot, TimerEntry,
};
use vrlb_core::time::Instant;
use vrlb_core::vrrp::{self, InlineVips, State};

/// The firmware budget's case: one instance, eight VIPs, four timers.
const VIPS: usize = 8;
const VRRP_TIMERS: usize = 4;

#[test]
fn vrrp_only_node_with_eight_vips_fits_in_two_kib() {
    let node = size_of::<Node<'static, InlineVips<VIPS>>>();
    let slot = size_of::<InstanceSlot<InlineVips<VIPS>>>();
    let timers = VRRP_TIMERS * size_of::<TimerEntry>();
    let ram = node + slot + timers;
    println!(
        "figure ram vrrp {ram} node {node} + instance slot {slot} + {VRRP_TIMERS} timer entries {timers}"
    );
    println!("figure slot instance-64-vips {}", size_of::<InstanceSlot>());

    // That storage runs the case: eight VIPs, master after Master_Down.
    let mut instances = [InstanceSlot::<InlineVips<VIPS>>::default()];
    let mut timer_queue = [TimerEntry::default(); VRRP_TIMERS];
    let mut n = Node::new(NodeStorage {
        instances: &mut instances,
        scripts: &mut [] as &mut [ScriptSlot],
        groups: &mut [] as &mut [GroupSlot],
        timers: &mut timer_queue,
    });
    let vips: Vec<IpAddr> = (0..VIPS as u8)
        .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, 240 + i)))
        .collect();
    let me = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let id = n
        .add_instance(vrrp::Config::new(51, me), &vips, &[], IfaceId(0), 1)
        .unwrap();
    n.handle(Instant::ZERO, Input::Start);
    let mut adverts = 0;
    while let Some(t) = n.poll_timeout().filter(|t| *t <= Instant::from_secs(10)) {
        n.handle_timeout(t);
        while let Some(out) = n.poll_output() {
            if let Output::Vrrp {
                event: vrrp::Output::Advert { priority },
                ..
            } = out
            {
                let mut buf = [0u8; 128];
                let len = n
                    .emit_advert(id, priority, me, vrrp::MULTICAST, &mut buf)
                    .unwrap();
                // 8 header bytes, 8 addresses, 8 bytes of authentication.
                assert_eq!(len, 8 + 4 * VIPS + 8);
                adverts += 1;
            }
        }
    }
    let instance = n.instance(id).unwrap();
    assert_eq!(instance.state(), State::Master);
    assert_eq!(instance.vips(), &vips[..]);
    assert!(adverts >= 6, "{adverts} adverts in 10 s");
    assert_eq!(n.stats().outputs_dropped, 0);

    // The budget is for the VRRP-only build; the full build's node carries
    // the balancer and sync state too.
    #[cfg(not(feature = "lb"))]
    assert!(
        ram <= 2048,
        "VRRP-only node is {ram} bytes, over the 2 KiB budget"
    );
}

/// The seed profile: the node built from examples/seed/keepalived.conf.
#[cfg(all(feature = "lb", feature = "check", feature = "config"))]
mod seed {
    use super::*;

    use vrlb_core::check::ProbeResult;
    use vrlb_core::config::{NoIncludes, Options};
    use vrlb_core::lb::{self, Balancer, ConnSlot, Flow, Layout, LbConfig, TcpFlags, Verdict};
    use vrlb_core::node::build::{self, Environment};
    use vrlb_core::node::{BalancingStorage, CheckerSlot, ServerSlot, ServiceSlot};
    use vrlb_core::vrrp::Family;

    const SEED: &str = include_str!("../../examples/seed/keepalived.conf");
    /// The connection table the seed figure states (ci/nostd-check's
    /// seed.rs uses the same layout).
    const CONNECTIONS: u32 = 1024;

    fn leak<T: Clone>(v: T, n: usize) -> &'static mut [T] {
        Box::leak(vec![v; n].into_boxed_slice())
    }

    struct Env;
    impl Environment for Env {
        fn interface(&mut self, _name: &str) -> IfaceId {
            IfaceId(0)
        }
        fn primary_address(&mut self, _iface: IfaceId, _family: Family) -> Option<IpAddr> {
            Some(IpAddr::V4(Ipv4Addr::new(192, 168, 2, 210)))
        }
    }

    #[test]
    fn seed_node_in_its_counted_storage() {
        let options = Options::default();
        let counts = build::count("keepalived.conf", SEED, &options, &mut NoIncludes).unwrap();
        assert_eq!(
            (
                counts.instances,
                counts.services,
                counts.real_servers,
                counts.checkers,
                counts.sync
            ),
            (1, 1, 2, 2, false)
        );
        let mut layout = counts.layout(CONNECTIONS, 0);
        // The seed schedules wlc: no service needs a maglev table.
        layout.mh_table_max = 0;
        assert_eq!(
            layout,
            Layout {
                services: 1,
                servers_per_service: 3,
                mh_table_max: 0,
                connections: CONNECTIONS,
            },
            "ci/nostd-check/src/seed.rs uses this layout"
        );
        let timers = counts.timer_entries();
        assert_eq!(timers, 12, "ci/nostd-check/src/seed.rs's TIMERS");

        let storage = lb::Storage {
            services: leak(lb::ServiceSlot::EMPTY, layout.service_slots()),
            servers: leak(lb::ServerSlot::EMPTY, layout.server_slots()),
            tree: leak(0u16, layout.tree_nodes()),
            mh: leak(0u16, layout.mh_entries()),
            conns: leak(ConnSlot::EMPTY, layout.conn_slots()),
            index: leak(0u8, layout.index_bytes()),
            wheel: leak(0u32, layout.wheel_buckets()),
        };
        let balancer =
            Balancer::new(layout, storage, LbConfig::default(), 7, Instant::ZERO).unwrap();
        let mut node = Node::<'static, InlineVips<VIPS>>::new(NodeStorage {
            instances: leak(InstanceSlot::default(), counts.instances),
            scripts: leak(ScriptSlot::default(), counts.scripts),
            groups: leak(GroupSlot::default(), counts.sync_groups),
            timers: leak(TimerEntry::default(), timers),
        })
        .with_balancing(BalancingStorage {
            balancer,
            services: leak(ServiceSlot::default(), counts.services),
            servers: leak(ServerSlot::default(), counts.real_servers),
            checkers: leak(CheckerSlot::default(), counts.checkers),
            seed: 1,
        });
        build::build(
            &mut node,
            &mut Env,
            "keepalived.conf",
            SEED,
            &options,
            &mut NoIncludes,
        )
        .unwrap();

        // It runs in that storage: takeover, probe cycles, a new flow.
        node.handle(Instant::ZERO, Input::Start);
        let mut probes = 0;
        let mut now = Instant::ZERO;
        loop {
            while let Some(out) = node.poll_output() {
                if let Output::Probe { checker, seq, .. } = out {
                    probes += 1;
                    let result = ProbeResult::Success;
                    node.handle(
                        now,
                        Input::ProbeResult {
                            checker,
                            seq,
                            result,
                        },
                    );
                }
            }
            match node.poll_timeout() {
                Some(t) if t <= Instant::from_secs(20) => {
                    now = t;
                    node.handle_timeout(t);
                }
                _ => break,
            }
        }
        // Each server's first probe comes within delay_loop (keepalived's
        // random warmup), then one every 6 s: 3 or 4 each by 20 s.
        assert!((6..=8).contains(&probes), "{probes} probes in 20 s");
        let (_, vi) = node.instances().next().unwrap();
        assert_eq!(vi.state(), State::Master);
        let flow = Flow::tcp(
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
            40_000,
            IpAddr::V4(Ipv4Addr::new(192, 168, 2, 240)),
            80,
            TcpFlags::SYN,
        );
        assert!(
            matches!(
                node.classify(now, &flow),
                Verdict::Forward { tracked: true, .. }
            ),
            "the seed's service forwards and tracks a new flow"
        );
        assert_eq!(node.stats().outputs_dropped, 0);

        let n = size_of::<Node<'static, InlineVips<VIPS>>>();
        let instances = counts.instances * size_of::<InstanceSlot<InlineVips<VIPS>>>();
        let timer_bytes = timers * size_of::<TimerEntry>();
        let balancer_bytes = layout.bytes();
        let services = counts.services * size_of::<ServiceSlot>();
        let servers = counts.real_servers * size_of::<ServerSlot>();
        let checkers = counts.checkers * size_of::<CheckerSlot>();
        let total = n + instances + timer_bytes + balancer_bytes + services + servers + checkers;
        println!(
            "figure ram seed {total} node {n} + instance slot {instances} + {timers} timer entries {timer_bytes} + balancer storage for {CONNECTIONS} connections {balancer_bytes} + service state {services} + 2 real servers {servers} + 2 TCP_CHECK checkers {checkers}"
        );
        let conn = size_of::<ConnSlot>();
        let per_conn = conn
            + layout.index_bytes() / layout.conn_slots()
            + 4 * layout.wheel_buckets() / layout.conn_slots();
        println!("figure slot connection {conn}");
        println!("figure slot connection-with-index {per_conn}");
        println!(
            "figure slot balancer-server {}",
            size_of::<lb::ServerSlot>()
        );
        println!(
            "figure slot balancer-service {}",
            size_of::<lb::ServiceSlot>()
        );
        println!("figure slot node-server {}", size_of::<ServerSlot>());
        println!("figure slot checker {}", size_of::<CheckerSlot>());
        #[cfg(feature = "sync")]
        println!(
            "figure slot sync {}",
            size_of::<vrlb_core::node::SyncSlot>()
        );
        assert!(conn <= 64, "a connection slot is {conn} bytes");
    }
}
