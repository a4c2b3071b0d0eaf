//! The full profile's part of the link check: a node built from the seed's
//! keepalived.conf (one virtual server, two real servers, a TCP_CHECK each)
//! over fixed storage, with connection sync on top, driven through a few
//! new flows, checker probe cycles and a sync datagram each way. Every
//! result goes through `black_box`, so LTO keeps the balancer, checker and
//! sync code and the text figure counts them.

use core::hint::black_box;
use core::net::{IpAddr, Ipv4Addr};

use vrlb_core::check::ProbeResult;
use vrlb_core::config::{NoIncludes, Options};
use vrlb_core::lb::{self, Balancer, ConnSlot, Flow, Layout, LbConfig, TcpFlags};
use vrlb_core::node::build::{self, Environment};
use vrlb_core::node::{
    BalancingStorage, CheckerSlot, GroupSlot, IfaceId, Input, InstanceSlot, Node, NodeStorage,
    Output, ScriptSlot, ServerSlot, ServiceSlot, SyncSettings, SyncSlot, SyncStorage, TimerEntry,
};
use vrlb_core::time::Instant;
use vrlb_core::vrrp::{self, Family};

const SEED: &str = include_str!("../../../examples/seed/keepalived.conf");
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 240));

/// The seed's balancer: one service, its two real servers and a sorry
/// slot, wlc (so no mh table), and the connection table BENCHMARKS.md
/// states for the seed figure (core/tests/footprint.rs uses the same).
const LAYOUT: Layout = Layout {
    services: 1,
    servers_per_service: 3,
    mh_table_max: 0,
    connections: 1024,
};
/// The timer queue `build::Counts::timer_entries` asks for the seed.
const TIMERS: usize = 12;
/// The sync journal (`Counts::sync_journal_entries` for 1024 connections).
const JOURNAL: usize = 256;
/// Room for one sync datagram (IPVS sends at most an MTU's worth).
const DATAGRAM: usize = 1500;

struct Env;

impl Environment for Env {
    fn interface(&mut self, _name: &str) -> IfaceId {
        IfaceId(0)
    }
    fn primary_address(&mut self, _iface: IfaceId, _family: Family) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(192, 168, 2, black_box(210))))
    }
}

/// The last sync datagram the node handed out.
struct Datagram {
    bytes: [u8; DATAGRAM],
    len: usize,
}

pub fn run() {
    let mut lb_services = [lb::ServiceSlot::EMPTY; LAYOUT.service_slots()];
    let mut lb_servers = [lb::ServerSlot::EMPTY; LAYOUT.server_slots()];
    let mut tree = [0u16; LAYOUT.tree_nodes()];
    let mut mh = [0u16; LAYOUT.mh_entries()];
    let mut conns = [ConnSlot::EMPTY; LAYOUT.conn_slots()];
    let mut index = [0u8; LAYOUT.index_bytes()];
    let mut wheel = [0u32; LAYOUT.wheel_buckets()];
    let storage = lb::Storage {
        services: &mut lb_services,
        servers: &mut lb_servers,
        tree: &mut tree,
        mh: &mut mh,
        conns: &mut conns,
        index: &mut index,
        wheel: &mut wheel,
    };
    let Ok(balancer) = Balancer::new(
        LAYOUT,
        storage,
        LbConfig::default(),
        black_box(7),
        Instant::ZERO,
    ) else {
        return;
    };
    let mut instances = [InstanceSlot::<vrrp::InlineVips<8>>::default()];
    let mut timers = [TimerEntry::default(); TIMERS];
    let mut services: [ServiceSlot; 1] = Default::default();
    let mut servers: [ServerSlot; 2] = Default::default();
    let mut checkers: [CheckerSlot; 2] = Default::default();
    let mut sync_slot = SyncSlot::default();
    let mut journal = [0u32; JOURNAL];
    let mut node = Node::new(NodeStorage {
        instances: &mut instances,
        scripts: &mut [] as &mut [ScriptSlot],
        groups: &mut [] as &mut [GroupSlot],
        timers: &mut timers,
    })
    .with_balancing(BalancingStorage {
        balancer,
        services: &mut services,
        servers: &mut servers,
        checkers: &mut checkers,
        seed: black_box(1),
    })
    .with_sync(SyncStorage {
        slot: &mut sync_slot,
        journal: &mut journal,
        seed: black_box(2),
    });
    let built = build::build(
        &mut node,
        &mut Env,
        "keepalived.conf",
        black_box(SEED),
        &Options::default(),
        &mut NoIncludes,
    );
    if black_box(built.is_err()) {
        return;
    }
    // The seed has no lvs_sync_daemon: sync as `lvs_sync_daemon eth0` would.
    if node.set_sync(SyncSettings::new(IfaceId(0), None)).is_err() {
        return;
    }
    let mut datagram = Datagram {
        bytes: [0; DATAGRAM],
        len: 0,
    };
    let mut now = Instant::ZERO;
    node.handle(now, Input::Start);
    drain(&mut node, now, &mut datagram);
    // 30 s: the takeover at 5.6 s and five delay_loop probe cycles.
    for second in 1..=black_box(30u64) {
        for client in 1..=black_box(4u8) {
            let flow = Flow::tcp(
                IpAddr::V4(Ipv4Addr::new(203, 0, 113, client)),
                40_000 + u16::from(client),
                VIP,
                80,
                TcpFlags(black_box(TcpFlags::SYN.0)),
            );
            black_box(node.classify(now, &flow));
        }
        let end = Instant::from_secs(second);
        while let Some(t) = node.poll_timeout().filter(|t| *t <= end) {
            now = t;
            node.handle_timeout(t);
            drain(&mut node, now, &mut datagram);
        }
        now = end;
    }
    // What a peer director would receive: the last datagram, back in.
    let len = datagram.len;
    node.handle(
        now,
        Input::SyncReceive {
            payload: black_box(&datagram.bytes[..len]),
        },
    );
    drain(&mut node, now, &mut datagram);
    black_box(node.stats());
}

/// Carries out the outputs: adverts are built, probes answered (a real
/// server that accepts), sync datagrams kept.
fn drain(node: &mut Node<'_, vrrp::InlineVips<8>>, now: Instant, datagram: &mut Datagram) {
    let mut advert = [0u8; 128];
    while let Some(out) = node.poll_output() {
        match out {
            Output::Vrrp {
                instance,
                event: vrrp::Output::Advert { priority },
            } => {
                let src = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 210));
                black_box(node.emit_advert(instance, priority, src, vrrp::MULTICAST, &mut advert));
            }
            Output::Probe { checker, seq, .. } => {
                let result = if black_box(true) {
                    ProbeResult::Success
                } else {
                    ProbeResult::Failure
                };
                node.handle(
                    now,
                    Input::ProbeResult {
                        checker,
                        seq,
                        result,
                    },
                );
            }
            Output::SyncTransmit { .. } => {
                if let Some(bytes) = node.sync_payload() {
                    let len = bytes.len().min(DATAGRAM);
                    datagram.bytes[..len].copy_from_slice(&bytes[..len]);
                    datagram.len = len;
                }
            }
            other => {
                black_box(other);
            }
        }
    }
}
