//! Connection sync inside the node, built from keepalived.conf's
//! `lvs_sync_daemon`: the role follows the named instance, the master's
//! flows reach the backup, and after a failover the new master forwards
//! established flows (mid-flow packets, no SYN) to the same real servers.
//! Also the keyword's forms and errors.

use std::net::{IpAddr, Ipv4Addr};

use vrlb_core::check::ProbeResult;
use vrlb_core::config::{NoIncludes, Options};
use vrlb_core::lb::{
    self, Balancer, ConnSlot, DropReason, Flow, Layout, LbConfig, ServerSlot as LbServerSlot,
    ServiceSlot as LbServiceSlot, TcpFlags, Verdict,
};
use vrlb_core::node::build::{Environment, build, count, name_key};
use vrlb_core::node::{
    BalancingStorage, CheckerSlot, GroupSlot, IfaceId, Input, InstanceSlot, Node, NodeStorage,
    Output, ScriptSlot, ServerSlot, ServiceSlot, SyncSlot, SyncStorage, TimerEntry,
};
use vrlb_core::sync::Role;
use vrlb_core::time::{Duration, Instant};
use vrlb_core::vrrp::{self, Family, State};

fn leak<T: Clone>(v: T, n: usize) -> &'static mut [T] {
    Box::leak(vec![v; n].into_boxed_slice())
}

fn node(seed: u64, sync: bool) -> Node<'static> {
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
    let balancer =
        Balancer::new(layout, storage, LbConfig::default(), seed, Instant::ZERO).unwrap();
    let n = Node::new(NodeStorage {
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
        seed,
    });
    if !sync {
        return n;
    }
    n.with_sync(SyncStorage {
        slot: Box::leak(Box::new(SyncSlot::default())),
        journal: leak(0u32, 256),
        seed: seed ^ 0x5eed,
    })
}

struct Env(Ipv4Addr, Vec<String>);
impl Environment for Env {
    fn interface(&mut self, name: &str) -> IfaceId {
        IfaceId(if name == "eth0" { 0 } else { 1 })
    }
    fn primary_address(&mut self, _iface: IfaceId, _family: Family) -> Option<IpAddr> {
        Some(IpAddr::V4(self.0))
    }
    fn diagnostic(&mut self, d: &vrlb_core::config::Diagnostic) {
        self.1.push(d.to_string());
    }
}

const SEED: &str = include_str!("../../examples/seed/keepalived.conf");
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 240));

fn with_sync(text: &str, line: &str) -> String {
    text.replacen(
        "router_id LVS_DEVEL",
        &format!("router_id LVS_DEVEL\n   {line}"),
        1,
    )
}

fn built(text: &str, addr: Ipv4Addr, seed: u64, sync: bool) -> (Node<'static>, Vec<String>) {
    let mut n = node(seed, sync);
    let mut env = Env(addr, Vec::new());
    build(
        &mut n,
        &mut env,
        "keepalived.conf",
        text,
        &Options::default(),
        &mut NoIncludes,
    )
    .map_err(|d| d.to_string())
    .unwrap();
    (n, env.1)
}

/// Two directors on one wire: adverts and sync datagrams go to the other
/// one (when both are up), probes always succeed.
struct Pair {
    nodes: [Node<'static>; 2],
    up: [bool; 2],
    now: Instant,
    sync_datagrams: [u32; 2],
}

impl Pair {
    fn new(sync: bool) -> Pair {
        let text = if sync {
            with_sync(SEED, "lvs_sync_daemon eth0 VI_1")
        } else {
            SEED.to_string()
        };
        let backup = text.replacen("priority 100", "priority 90", 1).replacen(
            "state MASTER",
            "state BACKUP",
            1,
        );
        let a = built(&text, Ipv4Addr::new(192, 168, 2, 210), 1, sync).0;
        let b = built(&backup, Ipv4Addr::new(192, 168, 2, 211), 2, sync).0;
        let mut p = Pair {
            nodes: [a, b],
            up: [true, true],
            now: Instant::ZERO,
            sync_datagrams: [0; 2],
        };
        for n in &mut p.nodes {
            n.handle(Instant::ZERO, Input::Start);
        }
        p.drain();
        p
    }

    fn drain(&mut self) {
        loop {
            let mut wire: Vec<(usize, bool, IpAddr, Vec<u8>)> = Vec::new();
            for i in 0..2 {
                if !self.up[i] {
                    continue;
                }
                let src = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 210 + i as u8));
                let n = &mut self.nodes[i];
                while let Some(out) = n.poll_output() {
                    match out {
                        Output::Vrrp {
                            instance,
                            event: vrrp::Output::Advert { priority },
                        } => {
                            let mut buf = [0u8; 128];
                            let len = n
                                .emit_advert(instance, priority, src, vrrp::MULTICAST, &mut buf)
                                .unwrap();
                            wire.push((1 - i, false, src, buf[..len].to_vec()));
                        }
                        Output::SyncTransmit { len } => {
                            let bytes = n.sync_payload().expect("payload until next poll");
                            assert_eq!(bytes.len(), usize::from(len));
                            self.sync_datagrams[i] += 1;
                            wire.push((1 - i, true, src, bytes.to_vec()));
                        }
                        Output::Probe { checker, seq, .. } => n.handle(
                            self.now,
                            Input::ProbeResult {
                                checker,
                                seq,
                                result: ProbeResult::Success,
                            },
                        ),
                        _ => {}
                    }
                }
            }
            if wire.is_empty() {
                return;
            }
            for (to, sync, src, bytes) in wire {
                if !self.up[to] {
                    continue;
                }
                let input = if sync {
                    Input::SyncReceive { payload: &bytes }
                } else {
                    Input::Advert {
                        iface: IfaceId(0),
                        src,
                        dst: vrrp::MULTICAST,
                        ttl: 255,
                        payload: &bytes,
                    }
                };
                self.nodes[to].handle(self.now, input);
            }
        }
    }

    fn run_until(&mut self, end: Instant) {
        loop {
            let next = (0..2)
                .filter(|i| self.up[*i])
                .filter_map(|i| self.nodes[i].poll_timeout())
                .min();
            match next {
                Some(t) if t <= end => self.now = self.now.max(t),
                _ => break,
            }
            for i in 0..2 {
                if self.up[i] {
                    self.nodes[i].handle_timeout(self.now);
                }
            }
            self.drain();
        }
        self.now = end;
    }

    fn state(&self, i: usize) -> State {
        self.nodes[i].instances().next().unwrap().1.state()
    }

    fn role(&self, i: usize) -> Role {
        self.nodes[i].conn_sync().unwrap().role()
    }

    fn classify(&mut self, i: usize, client: u8, port: u16, syn: bool) -> Verdict {
        let flow = Flow {
            src: IpAddr::V4(Ipv4Addr::new(203, 0, 113, client)),
            dst: VIP,
            src_port: port,
            dst_port: 80,
            protocol: 6,
            tcp_flags: if syn { TcpFlags::SYN } else { TcpFlags::ACK },
            fwmark: 0,
        };
        let v = self.nodes[i].classify(self.now, &flow);
        self.drain();
        v
    }
}

fn server_of(v: Verdict) -> IpAddr {
    match v {
        Verdict::Forward { addr, .. } => addr,
        other => panic!("not forwarded: {other:?}"),
    }
}

#[test]
fn flows_survive_failover_with_sync() {
    let mut p = Pair::new(true);
    p.run_until(Instant::from_secs(30));
    assert_eq!((p.state(0), p.state(1)), (State::Master, State::Backup));
    assert_eq!((p.role(0), p.role(1)), (Role::Sender, Role::Receiver));
    // keepalived: without `id`, the sync id is the instance's VRID.
    assert_eq!(p.nodes[0].conn_sync().unwrap().config().sync_id, 51);

    let mut servers = Vec::new();
    for c in 1..=40u8 {
        let s = server_of(p.classify(0, c, 40_000 + u16::from(c), true));
        assert_eq!(s, server_of(p.classify(0, c, 40_000 + u16::from(c), false)));
        servers.push(s);
    }
    assert!(
        servers.iter().any(|s| *s != servers[0]),
        "wlc spreads the flows over both servers"
    );
    // One flush interval later the backup has them.
    p.run_until(p.now + Duration::from_secs(3));
    assert!(p.sync_datagrams[0] > 0, "the master sent sync messages");
    assert_eq!(p.sync_datagrams[1], 0, "the backup sends nothing");
    let rx = *p.nodes[1].conn_sync().unwrap().stats();
    assert!(rx.rx_messages > 0 && rx.rx_applied >= 40, "{rx:?}");
    assert_eq!(
        p.nodes[1].balancer().unwrap().tracked(),
        p.nodes[0].balancer().unwrap().tracked()
    );

    // The master crashes; the backup takes over and sends from now on.
    p.up[0] = false;
    p.run_until(p.now + Duration::from_secs(30));
    assert_eq!(p.state(1), State::Master);
    assert_eq!(p.role(1), Role::Sender);
    for c in 1..=40u8 {
        let v = p.classify(1, c, 40_000 + u16::from(c), false);
        assert_eq!(
            server_of(v),
            servers[usize::from(c) - 1],
            "flow of client {c} kept its server"
        );
    }
    // A persistent client's new flow goes to its server too (template).
    for c in 1..=40u8 {
        let v = p.classify(1, c, 50_000 + u16::from(c), true);
        assert_eq!(server_of(v), servers[usize::from(c) - 1], "client {c}");
    }
}

#[test]
fn without_sync_the_new_master_drops_established_flows() {
    let mut p = Pair::new(false);
    p.run_until(Instant::from_secs(30));
    assert!(p.nodes[0].conn_sync().is_none());
    for c in 1..=5u8 {
        p.classify(0, c, 40_000 + u16::from(c), true);
    }
    p.run_until(p.now + Duration::from_secs(3));
    p.up[0] = false;
    p.run_until(p.now + Duration::from_secs(30));
    assert_eq!(p.state(1), State::Master);
    let v = p.classify(1, 1, 40_001, false);
    assert_eq!(v, Verdict::Drop(DropReason::NotSyn));
}

#[test]
fn role_follows_the_instance_and_stops_on_shutdown() {
    let mut p = Pair::new(true);
    p.run_until(Instant::from_secs(30));
    assert_eq!((p.role(0), p.role(1)), (Role::Sender, Role::Receiver));
    p.nodes[0].handle(p.now, Input::Shutdown);
    p.drain();
    assert_eq!(
        p.role(0),
        Role::Off,
        "keepalived stops the daemon on shutdown"
    );
    p.run_until(p.now + Duration::from_secs(10));
    assert_eq!(p.state(1), State::Master);
    assert_eq!(p.role(1), Role::Sender);
    // Datagrams to a stopped director are counted, not applied.
    let before = p.nodes[0].conn_sync().unwrap().stats().rx_not_receiving;
    p.nodes[0].handle(
        p.now,
        Input::SyncReceive {
            payload: &[1, 2, 3],
        },
    );
    assert_eq!(
        p.nodes[0].conn_sync().unwrap().stats().rx_not_receiving,
        before + 1
    );
}

#[test]
fn sync_storage_is_small_and_bounded() {
    let slot = std::mem::size_of::<SyncSlot>();
    println!("SyncSlot: {slot} bytes (plus 4 bytes per journal entry)");
    assert!(slot <= 10 * 1024, "{slot}");
}

#[test]
fn datagrams_without_sync_are_counted() {
    let (mut n, _) = built(SEED, Ipv4Addr::new(192, 168, 2, 210), 1, true);
    n.handle(Instant::ZERO, Input::SyncReceive { payload: &[0; 40] });
    assert_eq!(n.stats().sync_unconfigured, 1);
    assert!(n.conn_sync().is_none());
}

#[test]
fn every_form_of_the_keyword() {
    let addr = Ipv4Addr::new(192, 168, 2, 210);
    let text = with_sync(
        SEED,
        "lvs_sync_daemon eth1 VI_1 id 7 maxlen 1400 port 9000 ttl 2 group 239.1.2.3",
    );
    let (n, warnings) = built(&text, addr, 1, true);
    assert!(!warnings.iter().any(|w| w.contains("sync")), "{warnings:?}");
    let s = *n.sync_settings().unwrap();
    assert_eq!(s.iface, IfaceId(1));
    assert_eq!(s.instance, Some(name_key("VI_1")));
    assert_eq!(s.config.sync_id, 7);
    assert_eq!(s.config.max_message_bytes, 1400);
    assert_eq!((s.port, s.ttl), (9000, 2));
    assert_eq!(s.group, IpAddr::V4(Ipv4Addr::new(239, 1, 2, 3)));

    // keepalived's newer form names the instance with `inst`; defaults
    // are IPVS's.
    let (n, _) = built(
        &with_sync(SEED, "lvs_sync_daemon eth0 inst VI_1"),
        addr,
        1,
        true,
    );
    let s = *n.sync_settings().unwrap();
    assert_eq!(s.instance, Some(name_key("VI_1")));
    assert_eq!((s.port, s.ttl, s.config.sync_id), (8848, 1, 51));
    assert_eq!(s.group, IpAddr::V4(Ipv4Addr::new(224, 0, 0, 81)));

    // No instance: both daemons, as keepalived's checker starts them.
    let (mut n, _) = built(&with_sync(SEED, "lvs_sync_daemon eth0"), addr, 1, true);
    assert_eq!(n.sync_settings().unwrap().instance, None);
    assert_eq!(n.conn_sync().unwrap().role(), Role::Off, "not started");
    n.handle(Instant::ZERO, Input::Start);
    while n.poll_output().is_some() {}
    assert_eq!(n.conn_sync().unwrap().role(), Role::Both);

    // The old positional sync id still works, with a warning; an oversized
    // maxlen is clamped with one.
    let (n, warnings) = built(
        &with_sync(SEED, "lvs_sync_daemon eth0 VI_1 9 maxlen 9000"),
        addr,
        1,
        true,
    );
    assert_eq!(n.sync_settings().unwrap().config.sync_id, 9);
    assert_eq!(n.sync_settings().unwrap().config.max_message_bytes, 1472);
    let about_sync: Vec<_> = warnings.iter().filter(|w| w.contains("sync")).collect();
    assert_eq!(about_sync.len(), 2, "{about_sync:?}");

    // The deprecated per-instance keyword.
    let text = SEED.replacen(
        "virtual_router_id 51",
        "virtual_router_id 51\n    lvs_sync_daemon_interface eth0",
        1,
    );
    let (n, warnings) = built(&text, addr, 1, true);
    assert_eq!(n.sync_settings().unwrap().instance, Some(name_key("VI_1")));
    assert!(
        warnings.iter().any(|w| w.contains("deprecated")),
        "{warnings:?}"
    );

    // A node without sync storage leaves sync to its driver.
    let (n, _) = built(
        &with_sync(SEED, "lvs_sync_daemon eth0 VI_1"),
        addr,
        1,
        false,
    );
    assert!(n.conn_sync().is_none());

    // Counts say whether to allocate sync storage.
    let c = count(
        "keepalived.conf",
        &with_sync(SEED, "lvs_sync_daemon eth0 VI_1"),
        &Options::default(),
        &mut NoIncludes,
    )
    .unwrap();
    assert!(c.sync);
    assert!(c.sync_journal_entries(4096) >= 64);
}

#[test]
fn bad_keyword_forms_are_errors_naming_the_problem() {
    let addr = Ipv4Addr::new(192, 168, 2, 210);
    let err = |line: &str| {
        let mut n = node(1, true);
        build(
            &mut n,
            &mut Env(addr, Vec::new()),
            "keepalived.conf",
            &with_sync(SEED, line),
            &Options::default(),
            &mut NoIncludes,
        )
        .unwrap_err()
        .to_string()
    };
    let e = err("lvs_sync_daemon eth0 VI_9");
    assert!(e.contains("VI_9"), "{e}");
    let e = err("lvs_sync_daemon eth0 VI_1 id 300");
    assert!(e.contains("300") && e.contains("0..255"), "{e}");
    let e = err("lvs_sync_daemon eth0 VI_1 group 192.0.2.1");
    assert!(e.contains("multicast"), "{e}");
    let e = err("lvs_sync_daemon eth0 VI_1 port");
    assert!(e.contains("port"), "{e}");
    let e = err("lvs_sync_daemon eth0 VI_1 id 3 bogus 4");
    assert!(e.contains("bogus"), "{e}");
    let e = err("lvs_sync_daemon");
    assert!(e.contains("interface"), "{e}");
}

#[test]
fn reload_keeps_the_session_unless_settings_change() {
    let text = with_sync(SEED, "lvs_sync_daemon eth0 VI_1");
    let addr = Ipv4Addr::new(192, 168, 2, 210);
    let (mut n, _) = built(&text, addr, 1, true);
    let session = n.conn_sync().unwrap().session();
    let mut env = Env(addr, Vec::new());
    let opts = Options::default();
    build(&mut n, &mut env, "k", &text, &opts, &mut NoIncludes).unwrap();
    assert_eq!(n.conn_sync().unwrap().session(), session, "unchanged");
    let changed = with_sync(SEED, "lvs_sync_daemon eth0 VI_1 id 3");
    build(&mut n, &mut env, "k", &changed, &opts, &mut NoIncludes).unwrap();
    assert_ne!(n.conn_sync().unwrap().session(), session, "new session");
    build(&mut n, &mut env, "k", SEED, &opts, &mut NoIncludes).unwrap();
    assert!(n.conn_sync().is_none(), "removed from the configuration");
}
