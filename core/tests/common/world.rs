//! A node built from a keepalived.conf with a hand-moved clock and
//! simulated real servers, for the node-level tests: probes are answered
//! at once by what each target is set to do, and every output is logged
//! with its time.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use vrlb_core::check::{ProbeKind, ProbeResult};
use vrlb_core::config::{Diagnostic, NoIncludes, Options};
use vrlb_core::lb::{
    self, Balancer, ConnSlot, Flow, LbConfig, ServerSlot as LbServerSlot, ServiceId,
    ServiceSlot as LbServiceSlot, TcpFlags, Verdict,
};
use vrlb_core::node::build::{self, Environment};
use vrlb_core::node::{
    BalancingStorage, CheckerId, CheckerSlot, GroupSlot, IfaceId, Input, InstanceSlot, Node,
    NodeStorage, Output, ScriptSlot, ServerRef, ServerSlot, ServiceSlot, TimerEntry,
};
use vrlb_core::time::{Duration, Instant};
use vrlb_core::vrrp::Family;

pub const SEED: &str = include_str!("../../../examples/seed/keepalived.conf");
pub const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 240));
pub const RS1: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 212));
pub const RS2: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 213));
pub const SORRY: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 250));

fn leak<T: Clone>(v: T, n: usize) -> &'static mut [T] {
    Box::leak(vec![v; n].into_boxed_slice())
}

/// A node with room for what `text` defines (and a few more of each).
pub fn node_for(text: &str) -> Node<'static> {
    let counts = build::count(
        "keepalived.conf",
        text,
        &Options::default(),
        &mut NoIncludes,
    )
    .expect("the configuration parses");
    let headroom = 4;
    let layout = counts.layout(1024, headroom);
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
    let mut grown = counts.clone();
    grown.instances += headroom;
    grown.scripts += headroom;
    grown.checkers += headroom;
    Node::new(NodeStorage {
        instances: leak(InstanceSlot::default(), grown.instances),
        scripts: leak(ScriptSlot::default(), grown.scripts),
        groups: leak(GroupSlot::default(), counts.sync_groups + headroom),
        timers: leak(TimerEntry::default(), grown.timer_entries()),
    })
    .with_balancing(BalancingStorage {
        balancer,
        services: leak(ServiceSlot::default(), layout.service_slots()),
        servers: leak(ServerSlot::default(), counts.real_servers + headroom),
        checkers: leak(CheckerSlot::default(), grown.checkers),
        seed: 1,
    })
}

/// A VMAC the build reported: (name, base, MAC, family, xmit_base).
pub type VmacSeen = (String, String, [u8; 6], Family, bool);

/// Interfaces numbered by name (the first is 0), the seed director's
/// address on each; keeps the warnings and the VMACs reported.
#[derive(Default)]
pub struct Env {
    pub warnings: Vec<String>,
    pub interfaces: Vec<String>,
    pub vmacs: Vec<VmacSeen>,
}

impl Environment for Env {
    fn interface(&mut self, name: &str) -> IfaceId {
        let i = self
            .interfaces
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| {
                self.interfaces.push(name.to_string());
                self.interfaces.len() - 1
            });
        IfaceId(i as u16)
    }
    fn primary_address(&mut self, _iface: IfaceId, family: Family) -> Option<IpAddr> {
        Some(match family {
            Family::V4 => IpAddr::V4(Ipv4Addr::new(192, 168, 2, 210)),
            Family::V6 => IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xd2)),
        })
    }
    fn vmac(&mut self, _: vrlb_core::node::InstanceId, v: &build::vmac::Vmac<'_>) {
        self.vmacs
            .push((v.name.into(), v.base.into(), v.mac, v.family, v.xmit_base));
    }
    fn diagnostic(&mut self, d: &Diagnostic) {
        self.warnings.push(d.to_string());
    }
}

/// What a probe target does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Answers (a script exits 0).
    Ok,
    /// Refuses (a script exits 1).
    Refuse,
    /// Never answers: the probe times out.
    Hang,
    /// A script exits with this status.
    Exit(u8),
}

/// The simulated world around one node.
pub struct World {
    pub node: Node<'static>,
    pub env: Env,
    pub now: Instant,
    /// What each probe target address does (default: answers).
    pub answers: HashMap<IpAddr, Answer>,
    /// Every output with the time it came out.
    pub log: Vec<(Instant, Output)>,
}

impl World {
    /// Builds `text` and starts the node at 0 s.
    pub fn new(text: &str) -> World {
        let mut w = World::built(text);
        w.node.handle(Instant::ZERO, Input::Start);
        w.drain();
        w
    }

    /// Builds `text` without starting.
    pub fn built(text: &str) -> World {
        let mut node = node_for(text);
        let mut env = Env::default();
        build::build(
            &mut node,
            &mut env,
            "keepalived.conf",
            text,
            &Options::default(),
            &mut NoIncludes,
        )
        .unwrap();
        World {
            node,
            env,
            now: Instant::ZERO,
            answers: HashMap::new(),
            log: Vec::new(),
        }
    }

    /// Reloads with `text` at the current time.
    pub fn reload(&mut self, text: &str) {
        // The node knows the time from its last call; a build reads it
        // (restarted checkers, new instances), so bring it up to now first,
        // as the daemon does.
        self.node.handle_timeout(self.now);
        self.drain();
        build::build(
            &mut self.node,
            &mut self.env,
            "keepalived.conf",
            text,
            &Options::default(),
            &mut NoIncludes,
        )
        .unwrap();
        self.drain();
    }

    pub fn set(&mut self, target: IpAddr, answer: Answer) {
        self.answers.insert(target, answer);
    }

    /// Hands every output out, answering probes at once.
    pub fn drain(&mut self) {
        while let Some(out) = self.node.poll_output() {
            self.log.push((self.now, out));
            if let Output::Probe { checker, seq, .. } = out {
                let (c, _) = self.node.checker(checker).unwrap();
                let (kind, target) = (c.config().kind, c.config().target.0);
                let answer = self.answers.get(&target).copied().unwrap_or(Answer::Ok);
                let result = match (answer, kind) {
                    (Answer::Hang, _) => continue,
                    (Answer::Ok, ProbeKind::Misc) => ProbeResult::Exit(0),
                    (Answer::Refuse, ProbeKind::Misc) => ProbeResult::Exit(1),
                    (Answer::Exit(code), _) => ProbeResult::Exit(code),
                    (Answer::Ok, _) => ProbeResult::Success,
                    (Answer::Refuse, _) => ProbeResult::Failure,
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

    /// Applies `input` now and drains.
    pub fn input(&mut self, input: Input<'_>) {
        self.node.handle(self.now, input);
        self.drain();
    }

    /// Runs every timer up to `end` (the clock then stands at `end`).
    pub fn run_until(&mut self, end: Instant) {
        while let Some(t) = self.node.poll_timeout().filter(|t| *t <= end) {
            self.now = t;
            self.node.handle_timeout(t);
            self.drain();
        }
        self.now = end;
    }

    /// Outputs matching `f`, with their times in ms, in order.
    pub fn outputs<T>(&self, mut f: impl FnMut(&Output) -> Option<T>) -> Vec<(u64, T)> {
        self.log
            .iter()
            .filter_map(|(t, o)| f(o).map(|x| (t.as_millis(), x)))
            .collect()
    }

    /// (ms, server address, up) of every `ServerHealth`.
    pub fn health(&self) -> Vec<(u64, IpAddr, bool)> {
        self.outputs(|o| match o {
            Output::ServerHealth { server, up } => Some((*server, *up)),
            _ => None,
        })
        .into_iter()
        .map(|(t, (s, up))| (t, self.addr(s), up))
        .collect()
    }

    /// (ms, up) of every `Quorum`.
    pub fn quorum(&self) -> Vec<(u64, bool)> {
        self.outputs(|o| match o {
            Output::Quorum { up, .. } => Some(*up),
            _ => None,
        })
    }

    /// The address of a server (its slot may have been reused: from the
    /// live node).
    pub fn addr(&self, r: ServerRef) -> IpAddr {
        self.node
            .server(r)
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |s| s.config.addr)
    }

    /// The checker of the server at `addr` (its first).
    pub fn checker_of(&self, addr: IpAddr) -> CheckerId {
        self.node
            .checkers()
            .find(|(_, _, r, _)| self.addr(*r) == addr)
            .map(|(id, ..)| id)
            .unwrap()
    }

    /// When the checker of `addr` probes next.
    pub fn next_probe(&self, addr: IpAddr) -> Instant {
        self.node
            .checker(self.checker_of(addr))
            .unwrap()
            .0
            .deadline()
    }

    /// The first service.
    pub fn service(&self) -> ServiceId {
        self.node.servers().next().unwrap().1.service
    }

    /// (address, weight) of each server the balancer lists.
    pub fn listed(&self) -> Vec<(IpAddr, u32)> {
        let b = self.node.balancer().unwrap();
        let mut v: Vec<(IpAddr, u32)> = b
            .servers(self.service())
            .map(|i| (i.server.addr, i.server.weight))
            .collect();
        v.sort();
        v
    }

    /// A TCP packet from client 203.0.113.`client`:`port` to the VIP.
    pub fn packet(&mut self, client: u8, port: u16, flags: TcpFlags) -> Verdict {
        let flow = Flow::tcp(
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, client)),
            port,
            VIP,
            80,
            flags,
        );
        self.node.classify(self.now, &flow)
    }

    /// Where a new connection from `client` goes.
    pub fn new_flow(&mut self, client: u8, port: u16) -> Option<IpAddr> {
        match self.packet(client, port, TcpFlags::SYN) {
            Verdict::Forward { addr, .. } => Some(addr),
            _ => None,
        }
    }

    /// Where new connections from `clients` go (each address once). Use
    /// clients not seen before: persistence sends a client where it went.
    pub fn destinations(&mut self, clients: std::ops::Range<u8>) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = clients.filter_map(|c| self.new_flow(c, 40_000)).collect();
        v.sort();
        v.dedup();
        v
    }
}

pub fn secs(s: f64) -> Instant {
    Instant::from_micros((s * 1e6).round() as u64)
}

pub fn ms(s: f64) -> u64 {
    (s * 1e3).round() as u64
}

pub fn dur(s: f64) -> Duration {
    Duration::from_micros((s * 1e6).round() as u64)
}
