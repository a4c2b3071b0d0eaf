//! The node's load-balancing side built from the seed's keepalived.conf:
//! checks decide which real servers get new flows, with the seed's exact
//! timing; quorum switches the sorry server; reloads do not disturb what
//! did not change.

use std::net::{IpAddr, Ipv4Addr};

use vrlb_core::check::ProbeResult;
use vrlb_core::config::{NoIncludes, Options};
use vrlb_core::lb::{
    self, Balancer, ConnSlot, Flow, Layout, LbConfig, ServerSlot as LbServerSlot,
    ServiceSlot as LbServiceSlot, TcpFlags, Verdict,
};
use vrlb_core::node::build::{Environment, build};
use vrlb_core::node::{
    BalancingStorage, CheckerId, CheckerSlot, GroupSlot, IfaceId, Input, InstanceSlot, Node,
    NodeStorage, Output, ScriptSlot, ServerSlot, ServiceSlot, TimerEntry,
};
use vrlb_core::time::{Duration, Instant};
use vrlb_core::vrrp::Family;

fn leak<T: Clone>(v: T, n: usize) -> &'static mut [T] {
    Box::leak(vec![v; n].into_boxed_slice())
}

fn node() -> Node<'static> {
    let layout = Layout {
        services: 4,
        servers_per_service: 8,
        mh_table_max: 0,
        connections: 1024,
    };
    let storage = lb::Storage {
        services: leak(LbServiceSlot::EMPTY, layout.service_slots()),
        servers: leak(LbServerSlot::EMPTY, layout.server_slots()),
        tree: leak(0u16, layout.tree_nodes()),
        mh: leak(0u16, layout.mh_entries()),
        conns: leak(ConnSlot::EMPTY, layout.conn_slots()),
        index: leak(0u8, layout.index_bytes()),
        wheel: leak(0u32, layout.wheel_buckets()),
    };
    let balancer = Balancer::new(layout, storage, LbConfig::default(), 7, Instant::ZERO).unwrap();
    Node::new(NodeStorage {
        instances: leak(InstanceSlot::default(), 2),
        scripts: leak(ScriptSlot::default(), 1),
        groups: leak(GroupSlot::default(), 1),
        timers: leak(TimerEntry::default(), 64),
    })
    .with_balancing(BalancingStorage {
        balancer,
        services: leak(ServiceSlot::default(), 4),
        servers: leak(ServerSlot::default(), 16),
        checkers: leak(CheckerSlot::default(), 16),
        seed: 1,
    })
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

const SEED: &str = include_str!("../../examples/seed/keepalived.conf");
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 240));
const RS1: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 212));
const RS2: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 213));

/// The simulated world: which real servers refuse connections.
struct World {
    node: Node<'static>,
    now: Instant,
    refusing: Vec<IpAddr>,
    log: Vec<(Instant, Output)>,
}

impl World {
    fn new(text: &str) -> World {
        let mut node = node();
        build(
            &mut node,
            &mut Env,
            "keepalived.conf",
            text,
            &Options::default(),
            &mut NoIncludes,
        )
        .unwrap();
        node.handle(Instant::ZERO, Input::Start);
        let mut w = World {
            node,
            now: Instant::ZERO,
            refusing: Vec::new(),
            log: Vec::new(),
        };
        w.drain();
        w
    }

    /// Answers probes at once: refused servers fail, others succeed.
    fn drain(&mut self) {
        while let Some(out) = self.node.poll_output() {
            self.log.push((self.now, out));
            if let Output::Probe { checker, seq, .. } = out {
                let (c, _) = self.node.checker(checker).unwrap();
                let target = c.config().target.0;
                let result = if self.refusing.contains(&target) {
                    ProbeResult::Failure
                } else {
                    ProbeResult::Success
                };
                self.node.handle(
                    self.now,
                    Input::ProbeResult {
                        checker,
                        seq,
                        result,
                    },
                );
            }
        }
    }

    fn run_until(&mut self, end: Instant) {
        while let Some(t) = self.node.poll_timeout().filter(|t| *t <= end) {
            self.now = t;
            self.node.handle_timeout(t);
            self.drain();
        }
        self.now = end;
    }

    fn health_changes(&self) -> Vec<(u64, IpAddr, bool)> {
        self.log
            .iter()
            .filter_map(|(t, o)| match o {
                Output::ServerHealth { server, up } => Some((
                    t.as_millis(),
                    self.node.server(*server).unwrap().config.addr,
                    *up,
                )),
                _ => None,
            })
            .collect()
    }

    fn new_flow(&mut self, client: u8, port: u16) -> Verdict {
        let flow = Flow::tcp(
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, client)),
            port,
            VIP,
            80,
            TcpFlags::SYN,
        );
        self.node.classify(self.now, &flow)
    }
}

#[test]
fn seed_server_failure_is_seen_at_the_computed_moment_and_recovers_after_one_probe() {
    let mut w = World::new(SEED);
    assert_eq!(w.node.servers().count(), 2);
    assert_eq!(w.node.checkers().count(), 2);
    // Checks at 0, 6, 12 pass. RS1 starts refusing at 13 s: the check at
    // 18 fails, retries at 21, 24, 27 fail: down at 27 = 18 + 3 x 3.
    w.run_until(Instant::from_secs(13));
    w.refusing.push(RS1);
    w.run_until(Instant::from_secs(40));
    assert_eq!(w.health_changes(), [(27_000, RS1, false)]);
    // No new connection reaches it (persistence off for other clients).
    for c in 1..50 {
        if let Verdict::Forward { addr, .. } = w.new_flow(c, 40_000) {
            assert_eq!(addr, RS2);
        }
    }
    // It answers again at 41 s: the check at 45 (every 6 s since 27 + 6k + ...)
    w.refusing.clear();
    w.run_until(Instant::from_secs(60));
    let changes = w.health_changes();
    assert_eq!(changes.len(), 2);
    assert_eq!((changes[1].1, changes[1].2), (RS1, true));
    assert!(
        changes[1].0 <= 41_000 + 6_000,
        "one good probe within delay_loop brings it back: {changes:?}"
    );
}

#[test]
fn quorum_loss_switches_to_the_sorry_server() {
    let text = SEED.replace(
        "    protocol TCP\n",
        "    protocol TCP\n    quorum 4\n    hysteresis 1\n    sorry_server 192.168.2.250 80\n",
    );
    let mut w = World::new(&text);
    w.run_until(Instant::from_secs(1));
    w.refusing.push(RS1);
    w.run_until(Instant::from_secs(30));
    // Live weight 3 < 4 - 1? No: 3 >= 3, quorum holds.
    assert!(
        !w.log
            .iter()
            .any(|(_, o)| matches!(o, Output::Quorum { .. }))
    );
    w.refusing.push(RS2);
    w.run_until(Instant::from_secs(60));
    let quorum: Vec<bool> = w
        .log
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Quorum { up, .. } => Some(*up),
            _ => None,
        })
        .collect();
    assert_eq!(quorum, [false]);
    match w.new_flow(9, 1234) {
        Verdict::Forward { addr, .. } => {
            assert_eq!(addr, IpAddr::V4(Ipv4Addr::new(192, 168, 2, 250)))
        }
        v => panic!("{v:?}"),
    }
    // Both back: 6 >= 4 + 1, quorum returns, the sorry server leaves.
    w.refusing.clear();
    w.run_until(Instant::from_secs(80));
    let quorum: Vec<bool> = w
        .log
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Quorum { up, .. } => Some(*up),
            _ => None,
        })
        .collect();
    assert_eq!(quorum, [false, true]);
    match w.new_flow(10, 1234) {
        Verdict::Forward { addr, .. } => assert!(addr == RS1 || addr == RS2),
        v => panic!("{v:?}"),
    }
}

#[test]
fn ha_suspend_checks_only_while_holding_the_vip() {
    let text = SEED.replace("    protocol TCP\n", "    protocol TCP\n    ha_suspend\n");
    let mut w = World::new(&text);
    // Backup for 5 s + skew (state MASTER): no probes before that.
    w.run_until(Instant::from_secs(5));
    assert!(
        !w.log.iter().any(|(_, o)| matches!(o, Output::Probe { .. })),
        "checks ran while backup"
    );
    w.run_until(Instant::from_secs(7));
    let first_probe = w
        .log
        .iter()
        .find(|(_, o)| matches!(o, Output::Probe { .. }))
        .map(|(t, _)| *t);
    assert_eq!(
        first_probe,
        Some(Instant::from_micros(5_609_375)),
        "checks resume when the VIP is held"
    );
}

#[test]
fn reload_with_a_new_weight_changes_nothing_else() {
    let mut w = World::new(SEED);
    w.run_until(Instant::from_secs(20));
    // An established connection to some server.
    let verdict = w.new_flow(1, 5555);
    let Verdict::Forward { addr: first, .. } = verdict else {
        panic!("{verdict:?}")
    };
    let probes_before: Vec<(CheckerId, u32)> = w
        .node
        .checkers()
        .map(|(id, c, _, _)| (id, c.deadline().as_millis() as u32))
        .collect();
    let instance_state = w.node.instances().next().unwrap().1.state();

    let changed = SEED.replacen("weight 3", "weight 5", 1);
    build(
        &mut w.node,
        &mut Env,
        "keepalived.conf",
        &changed,
        &Options::default(),
        &mut NoIncludes,
    )
    .unwrap();
    let outputs: Vec<Output> = std::iter::from_fn(|| w.node.poll_output()).collect();
    assert!(
        outputs.is_empty(),
        "a weight change emits nothing: {outputs:?}"
    );
    assert_eq!(w.node.instances().next().unwrap().1.state(), instance_state);
    let probes_after: Vec<(CheckerId, u32)> = w
        .node
        .checkers()
        .map(|(id, c, _, _)| (id, c.deadline().as_millis() as u32))
        .collect();
    assert_eq!(probes_before, probes_after, "no checker restarted");
    let weights: Vec<u32> = w.node.servers().map(|(_, s)| s.config.weight).collect();
    assert_eq!(weights, [5, 3]);
    // The established connection still goes where it went.
    let flow = Flow::tcp(
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)),
        5555,
        VIP,
        80,
        TcpFlags::ACK,
    );
    match w.node.classify(w.now, &flow) {
        Verdict::Forward { addr, .. } => assert_eq!(addr, first),
        v => panic!("{v:?}"),
    }
    let _ = Duration::ZERO;
}

#[test]
fn anycast_service_is_announced_only_with_quorum() {
    let text = SEED.replace("    protocol TCP\n", "    protocol TCP\n    anycast\n");
    let mut w = World::new(&text);
    let announces = |w: &World| -> Vec<(u64, bool)> {
        w.log
            .iter()
            .filter_map(|(t, o)| match o {
                Output::Announce { up, .. } => Some((t.as_millis() / 1000, *up)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(announces(&w), [(0, true)], "announced at start");
    w.run_until(Instant::from_secs(10));
    w.refusing = vec![RS1, RS2];
    w.run_until(Instant::from_secs(60));
    assert_eq!(
        announces(&w).last(),
        Some(&(21, false)),
        "withdrawn when the last server goes (check at 12 + 3 x 3 s)"
    );
    w.refusing.clear();
    w.run_until(Instant::from_secs(80));
    assert!(
        announces(&w).last().is_some_and(|a| a.1),
        "announced again with quorum"
    );
    w.node.handle(w.now, Input::Shutdown);
    w.drain();
    assert_eq!(
        announces(&w).last().map(|a| a.1),
        Some(false),
        "withdrawn at shutdown"
    );
}

#[test]
fn real_server_lvs_method_overrides_lb_kind_and_reaches_the_verdict() {
    // keepalived's real_server `lvs_method` overrides the virtual server's
    // `lb_kind DR` for that server only.
    let text = SEED.replacen(
        "real_server 192.168.2.213 80 {\n",
        "real_server 192.168.2.213 80 {\n        lvs_method NAT\n",
        1,
    );
    assert_ne!(text, SEED);
    let mut w = World::new(&text);
    w.run_until(Instant::from_secs(20));
    let method_of = |w: &World, addr: IpAddr| {
        w.node
            .servers()
            .find(|(_, s)| s.config.addr == addr)
            .unwrap()
            .1
            .config
            .method
    };
    assert_eq!(method_of(&w, RS1), lb::ForwardMethod::Dr);
    assert_eq!(method_of(&w, RS2), lb::ForwardMethod::Nat);
    let mut seen = [false; 2];
    for c in 1..=40u8 {
        match w.new_flow(c, 6000) {
            Verdict::Forward { addr, method, .. } if addr == RS1 => {
                assert_eq!(method, lb::ForwardMethod::Dr);
                seen[0] = true;
            }
            Verdict::Forward { addr, method, .. } if addr == RS2 => {
                assert_eq!(method, lb::ForwardMethod::Nat);
                seen[1] = true;
            }
            v => panic!("{v:?}"),
        }
    }
    assert_eq!(seen, [true, true], "both servers took flows");
}
