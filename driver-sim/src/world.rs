//! The simulated world: one segment with directors, real servers and
//! clients, run event by event from a [`Scenario`], with every invariant
//! checked after every event. Owns the event loop and the translation of
//! hosts' effects into events; the hosts own their behaviour and the
//! invariants their rules.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vrlb_core::check::ProbeKind;
use vrlb_core::config::Scheduler;
use vrlb_core::rand::Prng;
use vrlb_core::vrrp::State;

use crate::client::{Client, Report, Target};
use crate::director::{Director, DirectorStorage, Effect, Vrid};
use crate::engine::Queue;
use crate::frame::Mac;
use crate::invariants::{Invariants, Violation};
use crate::router::Router;
use crate::scenario::{Action, BURST_US, Scenario};
use crate::segment::{Delivery, FrameFaults, LinkParams, Segment};
use crate::server::{Mode, Server};
use crate::trace::Trace;

/// Most events one run may process.
pub const MAX_EVENTS: u64 = 20_000_000;
/// Most events queued at once.
pub const MAX_QUEUED: usize = 200_000;

/// Events of the simulation.
#[derive(Debug)]
enum Ev {
    Deliver {
        port: usize,
        frame: Vec<u8>,
    },
    DirectorWake {
        d: usize,
    },
    FlowStep {
        c: usize,
        key: (IpAddr, u16),
    },
    ClientOpen {
        c: usize,
    },
    Act(Action),
    /// Boxed: rare, and it would double every queue entry's size.
    CheckDown(Box<CheckDown>),
    Handover {
        vrid: Vrid,
        since: u64,
    },
    Start {
        d: usize,
    },
    /// The ECMP router notices a crashed director (BFD or hold timer).
    Withdraw {
        d: usize,
    },
    /// A new flow's sync entry is due at the sender's peers.
    SyncDue {
        d: usize,
        flow: (IpAddr, u16),
        since: u64,
    },
    /// The flood sends its next batch.
    Flood {
        service: usize,
        remaining: u32,
        every_us: u64,
    },
    /// The burst host opens a flow.
    BurstOpen {
        service: usize,
        addr: usize,
        packets: u32,
    },
}

/// A failed server's check deadline.
#[derive(Debug)]
struct CheckDown {
    d: usize,
    s: usize,
    service: usize,
    addr: IpAddr,
    mode: Mode,
    since: u64,
}

/// What the faults did over a run: the swarm test counts that each kind
/// actually happened somewhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// What the segment did to frames.
    pub frames: FrameFaults,
    /// Ports moved out of the main part.
    pub partitions: u64,
    /// Of those, client hosts cut off.
    pub client_partitions: u64,
    /// One-way blocks put up.
    pub oneway: u64,
    /// Link setting changes during the run.
    pub link_changes: u64,
    /// The highest one-way link latency seen (microseconds).
    pub max_latency_us: u64,
    /// Directors crashed (running ones).
    pub crashes: u64,
    /// Directors started again after a crash or stop.
    pub restarts: u64,
    /// Graceful stops.
    pub stops: u64,
    /// Pauses.
    pub pauses: u64,
    /// Clock drift changes to a non-zero rate.
    pub drifts: u64,
    /// Server mode changes to: refuse, hang, slow, bad status.
    pub server_modes: [u64; 4],
    /// Flows opened: TCP, UDP, over IPv6.
    pub flows: (u64, u64, u64),
    /// Spoofed opening packets a flood sent.
    pub flood_packets: u64,
    /// Times a director's table was found full.
    pub table_full: u64,
    /// Probe answers: TCP_CHECK, HTTP_GET, MISC_CHECK.
    pub probes: [u64; 3],
    /// Virtual routers, of which over IPv6.
    pub vrids: (u64, u64),
    /// Services, of which UDP.
    pub services: (u64, u64),
}

impl FaultCounts {
    /// Adds another run's counts.
    pub fn add(&mut self, o: &FaultCounts) {
        let f = &mut self.frames;
        f.lost += o.frames.lost;
        f.duplicated += o.frames.duplicated;
        f.jittered += o.frames.jittered;
        f.reordered += o.frames.reordered;
        f.cut += o.frames.cut;
        self.partitions += o.partitions;
        self.client_partitions += o.client_partitions;
        self.oneway += o.oneway;
        self.link_changes += o.link_changes;
        self.max_latency_us = self.max_latency_us.max(o.max_latency_us);
        self.crashes += o.crashes;
        self.restarts += o.restarts;
        self.stops += o.stops;
        self.pauses += o.pauses;
        self.drifts += o.drifts;
        for i in 0..4 {
            self.server_modes[i] += o.server_modes[i];
        }
        self.flows.0 += o.flows.0;
        self.flows.1 += o.flows.1;
        self.flows.2 += o.flows.2;
        self.flood_packets += o.flood_packets;
        self.table_full += o.table_full;
        for i in 0..3 {
            self.probes[i] += o.probes[i];
        }
        self.vrids.0 += o.vrids.0;
        self.vrids.1 += o.vrids.1;
        self.services.0 += o.services.0;
        self.services.1 += o.services.1;
    }
}

/// What a run produced.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// The `vrlb-sim` arguments that replay the run.
    pub replay: String,
    /// The trace hash.
    pub hash: u64,
    /// Events traced (state changes, frames at directors, timers...).
    pub events: u64,
    /// Events the engine processed (every frame delivery and timer).
    pub processed: u64,
    /// The first invariant broken, if any.
    pub violation: Option<Violation>,
    /// The last events before the end (or the violation).
    pub tail: Vec<String>,
    /// Every traced event, when asked for.
    pub all: Vec<crate::trace::Record>,
    /// Each director's addresses, for reports.
    pub director_addrs: Vec<String>,
    /// Each real server's addresses, for reports.
    pub server_addrs: Vec<String>,
    /// Each service as VIP:port/protocol, for reports.
    pub service_names: Vec<String>,
    /// Replies per real server index.
    pub served: Vec<u64>,
    /// Flows opened, completed, lost.
    pub flows: (u64, u64, u64),
    /// Times from losing a master to having one again, in microseconds.
    pub failovers_us: Vec<u64>,
    /// New flows of persistent clients that stayed on their server, and all
    /// such flows.
    pub persistence: (u64, u64),
    /// Whether any service has persistence.
    pub has_persistence: bool,
    /// Most events ever queued at once.
    pub queue_high_water: usize,
    /// Packets the ECMP router sent to each director (empty without ECMP).
    pub per_director: Vec<u64>,
    /// Mid-flow packets of unknown connections the directors adopted.
    pub adopted_mid_flow: u64,
    /// Flows that changed server after ECMP moved them while the server set
    /// was changing (the disruption mh admits).
    pub moved_by_server_change: u64,
    /// Packets of flows a director learned by connection sync that it
    /// forwarded to their server (flows kept across failovers).
    pub synced_kept: u64,
    /// Sync messages delivered to receiving directors.
    pub sync_messages: u64,
    /// New flows whose sync entries were checked to reach every peer.
    pub synced_sent: u64,
    /// What the faults did.
    pub faults: FaultCounts,
    /// Most connections a director tracked at once, and the capacity.
    pub table_high_water: (u32, u32),
    /// New flows per (service, server id) in the liveness burst.
    pub burst_served: BTreeMap<(usize, u32), u64>,
    /// Deadlines checked and met: check_bound, graceful handovers,
    /// preemptions.
    pub checked: (u64, u64, u64),
}

/// The world of one run.
pub struct World<'a> {
    /// Simulated time, microseconds.
    pub now: u64,
    queue: Queue<Ev>,
    /// The segment.
    pub segment: Segment,
    /// Directors (ports `0..D`).
    pub directors: Vec<Director<'a>>,
    /// Real servers (ports `D..D+S`).
    pub servers: Vec<Server>,
    /// Clients (ports after the servers): the scenario's, then the flood
    /// host and the burst host when the scenario has them.
    pub clients: Vec<Client>,
    flooder: Option<usize>,
    burster: Option<usize>,
    /// The ECMP router (the last port), when directors are active-active.
    pub router: Option<Router>,
    /// The trace.
    pub trace: Trace,
    prng: Prng,
    inv: Invariants,
    /// Changes of the set of VIP holders so far.
    pub epoch: u64,
    holders: BTreeMap<IpAddr, u64>,
    vips: Vec<IpAddr>,
    /// Every director's and client's address and MAC (static entries).
    macs: BTreeMap<IpAddr, Mac>,
    healed: bool,
    crashed: Option<usize>,
    ever_started: Vec<bool>,
    faults: FaultCounts,
    scenario: Scenario,
    effects: Vec<Effect>,
    deliveries: Vec<Delivery>,
    reports: Vec<Report>,
    wake: Vec<(IpAddr, u16)>,
    frames: Vec<Vec<u8>>,
}

/// Storage for every director of `scenario` (kept by the caller for the
/// world's lifetime).
pub fn storages(scenario: &Scenario) -> Result<Vec<DirectorStorage>, String> {
    scenario
        .directors
        .iter()
        .map(|d| DirectorStorage::for_config(&d.config, scenario.connections))
        .collect()
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// The `n`th client IPv4 address: 203.0.113.0/24, then 198.51.100.0/24.
fn client_v4(n: usize) -> IpAddr {
    if n < 254 {
        v4(203, 0, 113, 1 + n as u8)
    } else {
        v4(198, 51, 100, 1 + (n - 254).min(253) as u8)
    }
}

fn v6(group: u16, low: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, group, 0, 0, 0, 0, low))
}

/// The burst host's addresses: first 56 IPv4 and IPv6 addresses eight
/// apart (distinct keys under any drawn persistence granularity), then the
/// rest of two documentation /24s (distinct inputs for hashing
/// schedulers).
fn burst_addrs() -> Vec<IpAddr> {
    let mut a: Vec<IpAddr> = (0..32).map(|k| v4(198, 51, 100, 8 * k + 4)).collect();
    a.extend((8..32).map(|k| v4(203, 0, 113, 8 * k + 4)));
    let rest: Vec<IpAddr> = (1..=254)
        .map(|l| v4(198, 51, 100, l))
        .filter(|x| !a.contains(x))
        .collect();
    a.extend(rest);
    let more: Vec<IpAddr> = (64..=254)
        .map(|l| v4(203, 0, 113, l))
        .filter(|x| !a.contains(x))
        .collect();
    a.extend(more);
    a.extend((0..STRIDED as u16).map(|k| v6(0xb, 8 * k + 4)));
    // ip_vs_sh.c (before hash_32) buckets by the low 8 bits of the folded
    // address times an odd constant: the rest vary in those bits.
    a.extend(
        (1..=400u16)
            .map(|k| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xb, 1, 0, 0, k >> 8, k & 0xff))),
    );
    a
}

/// How many of the burst host's addresses of each family are eight apart.
const STRIDED: usize = 56;

impl<'a> World<'a> {
    /// A world for `scenario` over `storage` (from [`storages`]).
    pub fn new(scenario: Scenario, storage: &'a mut [DirectorStorage]) -> World<'a> {
        let mut prng = Prng::new(scenario.seed);
        let n_dir = scenario.directors.len();
        let services: Vec<(IpAddr, u16, u8)> = scenario
            .view
            .services
            .iter()
            .map(|s| (s.vip, s.port, s.protocol))
            .collect();
        let directors: Vec<Director<'a>> = scenario
            .directors
            .iter()
            .zip(storage.iter_mut())
            .enumerate()
            .map(|(i, (spec, st))| {
                let udp = scenario.view.udp_timeout_s;
                Director::new(i, spec, services.clone(), udp, st, prng.next_u64())
            })
            .collect();
        let all_vips: Vec<IpAddr> = services.iter().map(|s| s.0).collect();
        let servers: Vec<Server> = scenario
            .servers
            .iter()
            .enumerate()
            .map(|(i, a)| Server::new(i, a.clone(), all_vips.clone()))
            .collect();
        let targets: Vec<Target> = services
            .iter()
            .map(|&(vip, port, protocol)| Target {
                vip,
                // A port-zero service takes every port: clients use 80.
                port: if port == 0 { 80 } else { port },
                protocol,
            })
            .collect();
        let any_v6 = services.iter().any(|s| s.0.is_ipv6());
        let any_v4 = services.iter().any(|s| s.0.is_ipv4());
        let t = scenario.traffic;
        let mut clients: Vec<Client> = (0..t.clients)
            .map(|c| {
                let mut addrs = Vec::new();
                for a in 0..t.addrs_per_client {
                    let n = c * t.addrs_per_client + a;
                    if any_v4 {
                        addrs.push(client_v4(n));
                    }
                    if any_v6 {
                        addrs.push(v6(0xc, 1 + n as u16));
                    }
                }
                Client::new(c, addrs, targets.clone(), prng.fork())
            })
            .collect();
        let floods = scenario
            .actions
            .iter()
            .any(|(_, a)| matches!(a, Action::Flood(..)));
        let flooder = floods.then(|| {
            let c = clients.len();
            clients.push(Client::new(
                c,
                vec![v4(192, 0, 2, 250)],
                targets.clone(),
                prng.fork(),
            ));
            c
        });
        let bursts = scenario
            .actions
            .iter()
            .any(|(_, a)| matches!(a, Action::Burst));
        let burster = bursts.then(|| {
            let c = clients.len();
            let taken: Vec<IpAddr> = clients.iter().flat_map(|c| c.addrs.clone()).collect();
            let addrs = burst_addrs()
                .into_iter()
                .filter(|a| !taken.contains(a))
                .collect();
            clients.push(Client::new(c, addrs, targets.clone(), prng.fork()));
            c
        });
        let router = scenario.ecmp.map(|e| Router::new(n_dir, e.hash));
        if let Some(r) = &router {
            for c in &mut clients {
                c.set_gateway(r.mac);
            }
        }
        let ports = n_dir + servers.len() + clients.len() + usize::from(router.is_some());
        let mut segment = Segment::new(ports, prng.fork());
        segment.link = scenario.link;
        let vrids: Vec<Vrid> = {
            let mut v: Vec<Vrid> = scenario
                .view
                .instances
                .iter()
                .map(|i| Vrid {
                    v6: i.v6,
                    id: i.vrid,
                })
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let mut vips: Vec<IpAddr> = scenario
            .view
            .instances
            .iter()
            .flat_map(|i| i.vips.iter().copied())
            .chain(all_vips.iter().copied())
            .collect();
        vips.sort();
        vips.dedup();
        let faults = FaultCounts {
            max_latency_us: scenario.link.latency_us,
            vrids: (
                vrids.len() as u64,
                vrids.iter().filter(|v| v.v6).count() as u64,
            ),
            services: (
                services.len() as u64,
                services.iter().filter(|s| s.2 == 17).count() as u64,
            ),
            ..FaultCounts::default()
        };
        let inv = Invariants::new(
            scenario.view.services.clone(),
            vrids,
            scenario.ecmp.is_some(),
            scenario.view.udp_timeout_s,
        );
        let mut world = World {
            now: 0,
            queue: Queue::default(),
            segment,
            directors,
            servers,
            clients,
            flooder,
            burster,
            router,
            trace: Trace::default(),
            prng,
            inv,
            epoch: 0,
            holders: BTreeMap::new(),
            vips,
            macs: BTreeMap::new(),
            healed: false,
            crashed: None,
            ever_started: vec![false; n_dir],
            faults,
            scenario,
            effects: Vec::new(),
            deliveries: Vec::new(),
            reports: Vec::new(),
            wake: Vec::new(),
            frames: Vec::new(),
        };
        // Directors know the real servers', clients' and each other's MACs
        // (static neighbour entries: DR needs the servers on the same
        // segment; unicast VRRP needs the peers).
        let mut neighbours: Vec<(IpAddr, Mac)> = world
            .servers
            .iter()
            .flat_map(|s| s.addrs.iter().map(move |a| (*a, s.mac)))
            .chain(
                world
                    .clients
                    .iter()
                    .flat_map(|c| c.addrs.iter().map(move |a| (*a, c.mac))),
            )
            .collect();
        for d in &world.directors {
            neighbours.push((IpAddr::V4(d.addr), d.mac));
            neighbours.push((IpAddr::V6(d.addr6), d.mac));
            neighbours.push((IpAddr::V6(d.link_local), d.mac));
        }
        for d in &mut world.directors {
            d.neighbours.extend(neighbours.iter().copied());
        }
        world.macs = neighbours
            .into_iter()
            .filter(|(a, _)| !world.servers.iter().any(|s| s.has(*a)))
            .collect();
        for d in 0..n_dir {
            let at = match world.scenario.late_start {
                Some((late, t)) if late == d => t,
                _ => 0,
            };
            world.queue.push(at, Ev::Start { d });
        }
        for (t, a) in world.scenario.actions.clone() {
            world.queue.push(t, Ev::Act(a));
        }
        for c in 0..t.clients {
            let first = world.prng.below(world.scenario.traffic.flow_every_us);
            world.queue.push(first, Ev::ClientOpen { c });
        }
        world
    }

    fn server_port(&self, s: usize) -> usize {
        self.directors.len() + s
    }

    fn client_port(&self, c: usize) -> usize {
        self.directors.len() + self.servers.len() + c
    }

    fn send(&mut self, from: usize, frame: Vec<u8>, extra_delay: u64) {
        let mut deliveries = std::mem::take(&mut self.deliveries);
        self.segment.send(from, &frame, self.now, &mut deliveries);
        let n = deliveries.len();
        let mut frame = Some(frame);
        for (i, d) in deliveries.iter().enumerate() {
            // The last copy takes the frame itself.
            let frame = if i + 1 == n {
                frame.take().unwrap_or_default()
            } else {
                frame.clone().unwrap_or_default()
            };
            self.queue.push(
                self.now + d.delay_us + extra_delay,
                Ev::Deliver {
                    port: d.port,
                    frame,
                },
            );
        }
        self.deliveries = deliveries;
    }

    /// Queues a step of client `c`'s flow `key` at `at`, unless one is
    /// pending no later.
    fn flow_step(&mut self, c: usize, key: (IpAddr, u16), at: u64) {
        if self.clients[c].want_step(key, at, self.now) {
            self.queue.push(at, Ev::FlowStep { c, key });
        }
    }

    fn reschedule(&mut self, d: usize) {
        let at = self.directors[d].next_wake();
        if at == u64::MAX {
            return;
        }
        let at = at.max(self.now);
        if at < self.directors[d].wake_at || self.directors[d].wake_at < self.now {
            self.directors[d].wake_at = at;
            self.queue.push(at, Ev::DirectorWake { d });
        }
    }

    /// Runs to the end or the first violation.
    pub fn run(mut self, keep_all: bool) -> Outcome {
        self.trace.keep_all = keep_all;
        let end = self.scenario.duration_us;
        let mut violation = None;
        let mut processed = 0u64;
        while let Some((t, ev)) = self.queue.pop_until(end) {
            self.now = t;
            processed += 1;
            // Bounded like everything else: a storm of events is a failure
            // of its own, reported with the trace that led to it.
            if self.trace.events() >= MAX_EVENTS || self.queue.len() >= MAX_QUEUED {
                violation = Some(Violation::budget(
                    format!(
                        "event budget exceeded ({} events, {} queued): a packet or timer storm",
                        self.trace.events(),
                        self.queue.len()
                    ),
                    t,
                ));
                break;
            }
            if let Err(v) = self.step(ev) {
                violation = Some(v);
                break;
            }
            if let Err(v) = self
                .inv
                .after_event(&self.directors, &self.segment, self.now)
            {
                violation = Some(v);
                break;
            }
        }
        if violation.is_none() {
            self.now = end;
            if let Err(v) = self.inv.liveness(
                &self.directors,
                &self.servers,
                &self.clients,
                self.healed,
                self.now,
            ) {
                violation = Some(v);
            }
        }
        if let Some(v) = &violation {
            self.trace
                .event(self.now, "VIOLATION {a}", v.code as u64, 0);
        }
        let mut served = vec![0u64; self.servers.len()];
        let mut flows = (0, 0, 0);
        let mut faults = self.faults;
        faults.frames = self.segment.faults;
        for c in &self.clients {
            for (id, n) in &c.served {
                if let Some(slot) = served.get_mut(*id as usize - 1) {
                    *slot += n;
                }
            }
            flows.0 += c.opened;
            flows.1 += c.completed;
            flows.2 += c.lost;
            faults.flows.0 += c.opened_by_protocol.0;
            faults.flows.1 += c.opened_by_protocol.1;
            faults.flood_packets += c.spoofed;
        }
        Outcome {
            seed: self.scenario.seed,
            replay: self.scenario.replay.clone(),
            hash: self.trace.hash(),
            events: self.trace.events(),
            processed,
            violation,
            tail: self.trace.tail().map(|r| r.to_string()).collect(),
            all: std::mem::take(&mut self.trace.all),
            director_addrs: self.directors.iter().map(|d| d.addr.to_string()).collect(),
            server_addrs: self
                .servers
                .iter()
                .map(|s| {
                    s.addrs
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect(),
            service_names: self
                .scenario
                .view
                .services
                .iter()
                .map(|s| {
                    let vip = match s.vip {
                        IpAddr::V6(a) => format!("[{a}]"),
                        a => a.to_string(),
                    };
                    format!(
                        "{vip}:{}/{}",
                        s.port,
                        if s.protocol == 17 { "UDP" } else { "TCP" }
                    )
                })
                .collect(),
            served,
            flows,
            failovers_us: self.inv.failovers.clone(),
            persistence: self.inv.persistence,
            has_persistence: self
                .scenario
                .view
                .services
                .iter()
                .any(|s| s.persistence_s > 0),
            queue_high_water: self.queue.high_water,
            per_director: self
                .router
                .as_ref()
                .map(|r| r.per_director.clone())
                .unwrap_or_default(),
            adopted_mid_flow: self.directors.iter().map(Director::adopted_mid_flow).sum(),
            moved_by_server_change: self.inv.moved_by_server_change,
            synced_kept: self.inv.synced_kept,
            sync_messages: self.inv.sync_messages,
            synced_sent: self.inv.synced_sent,
            faults,
            table_high_water: (self.inv.table_high_water, self.scenario.connections),
            burst_served: std::mem::take(&mut self.inv.burst_served),
            checked: self.inv.checked,
        }
    }

    fn step(&mut self, ev: Ev) -> Result<(), Violation> {
        match ev {
            Ev::Deliver { port, frame } => self.deliver(port, frame),
            Ev::DirectorWake { d } => {
                if self.directors[d].wake_at == self.now {
                    self.directors[d].wake_at = u64::MAX;
                }
                if !self.directors[d].is_up() {
                    return Ok(());
                }
                if self.now < self.directors[d].paused_until {
                    self.reschedule(d);
                    return Ok(());
                }
                let mut effects = std::mem::take(&mut self.effects);
                self.directors[d].wake(self.now, &mut effects);
                let r = self.apply(d, &mut effects);
                self.effects = effects;
                self.reschedule(d);
                r
            }
            Ev::FlowStep { c, key } => {
                if !self.clients[c].take_step(key, self.now) {
                    return Ok(());
                }
                let mut frames = std::mem::take(&mut self.frames);
                let mut reports = std::mem::take(&mut self.reports);
                frames.clear();
                reports.clear();
                let next = self.clients[c].step(self.now, key, &mut frames, &mut reports);
                let port = self.client_port(c);
                for f in frames.drain(..) {
                    self.send(port, f, 0);
                }
                if let Some(at) = next {
                    self.flow_step(c, key, at);
                }
                let r = self.reports_check(c, &reports);
                self.frames = frames;
                self.reports = reports;
                r
            }
            Ev::ClientOpen { c } => {
                let t = self.scenario.traffic;
                let long = self.prng.chance_ppm(t.long_ppm);
                let (packets, gap) = if long {
                    (t.long_packets, t.long_gap_us)
                } else {
                    (1 + self.prng.below(3) as u32, 200_000)
                };
                if let Some((service, addr)) = self.clients[c].pick() {
                    let key = self.clients[c].open(self.now, service, addr, packets, gap);
                    if key.0.is_ipv6() {
                        self.faults.flows.2 += 1;
                    }
                    self.trace.event(
                        self.now,
                        "client {a} opens a flow of {b} packets",
                        c as u64,
                        u64::from(packets),
                    );
                    self.flow_step(c, key, self.now);
                }
                let next = self.now + 1 + self.prng.below(2 * t.flow_every_us);
                self.queue.push(next, Ev::ClientOpen { c });
                Ok(())
            }
            Ev::Act(a) => self.act(a),
            Ev::Start { d } => self.act(Action::Start(d)),
            Ev::CheckDown(c) => self.inv.check_down_deadline(
                &self.directors[c.d],
                &self.servers[c.s],
                c.service,
                c.addr,
                c.mode,
                c.since,
                self.now,
            ),
            Ev::Handover { vrid, since } => {
                self.inv
                    .handover_deadline(&self.directors, vrid, since, self.now)
            }
            Ev::SyncDue { d, flow, since } => self.inv.sync_due(
                &self.directors,
                &self.servers,
                &self.segment,
                d,
                flow,
                since,
                self.now,
            ),
            Ev::Withdraw { d } => {
                // Unless it came back meanwhile (and announced again).
                if !self.directors[d].is_up() {
                    if let Some(r) = &mut self.router {
                        r.set_route(d, false);
                    }
                    self.trace
                        .event(self.now, "router drops director {a}'s route", d as u64, 0);
                }
                Ok(())
            }
            Ev::Flood {
                service,
                remaining,
                every_us,
            } => {
                let Some(c) = self.flooder else {
                    return Ok(());
                };
                let batch = remaining.min(10);
                for i in 0..batch {
                    // Spoofed sources nobody answers for.
                    let src = v4(192, 0, 2, 128 + ((remaining - i) % 64) as u8);
                    let key = self.clients[c].open_spoofed(self.now, service, src);
                    self.flow_step(c, key, self.now);
                }
                if remaining > batch {
                    self.queue.push(
                        self.now + every_us,
                        Ev::Flood {
                            service,
                            remaining: remaining - batch,
                            every_us,
                        },
                    );
                }
                Ok(())
            }
            Ev::BurstOpen {
                service,
                addr,
                packets,
            } => {
                let Some(c) = self.burster else {
                    return Ok(());
                };
                let key = self.clients[c].open(self.now, service, addr, packets, 1_000_000);
                self.flow_step(c, key, self.now);
                Ok(())
            }
        }
    }

    fn deliver(&mut self, port: usize, frame: Vec<u8>) -> Result<(), Violation> {
        let n_dir = self.directors.len();
        let n_srv = self.servers.len();
        if port == n_dir + n_srv + self.clients.len() {
            return self.route(port, frame);
        }
        if port < n_dir {
            let d = port;
            if !self.directors[d].is_up() {
                return Ok(());
            }
            if self.now < self.directors[d].paused_until {
                let until = self.directors[d].paused_until;
                self.queue.push(until, Ev::Deliver { port, frame });
                return Ok(());
            }
            self.trace.event(
                self.now,
                "director {a} receives {b} bytes",
                d as u64,
                frame.len() as u64,
            );
            if let Some((group, port)) = self.directors[d].sync_address()
                && let Some((src, payload)) = crate::frame::sync_payload(&frame, group, port)
                && src != self.directors[d].addr
                && self.directors[d].sync_role().is_some_and(|r| r.receives())
            {
                self.inv
                    .sync_delivered(&self.directors[d], payload, self.now);
            }
            let mut effects = std::mem::take(&mut self.effects);
            self.directors[d].receive(self.now, &frame, &mut effects);
            let r = self.apply(d, &mut effects);
            self.effects = effects;
            self.reschedule(d);
            r
        } else if port < n_dir + n_srv {
            let s = port - n_dir;
            let macs = &self.macs;
            let reply = self.servers[s].receive(&frame, |a| macs.get(&a).copied());
            if let Some((reply, delay)) = reply {
                self.trace
                    .event(self.now, "server {a} replies after {b} us", s as u64, delay);
                let from = self.server_port(s);
                self.send(from, reply, delay);
            }
            Ok(())
        } else {
            let c = port - n_dir - n_srv;
            let mut reports = std::mem::take(&mut self.reports);
            let mut wake = std::mem::take(&mut self.wake);
            reports.clear();
            wake.clear();
            let reply = self.clients[c].receive(self.now, &frame, &mut reports, &mut wake);
            if let Some(reply) = reply {
                let from = self.client_port(c);
                self.send(from, reply, 0);
            }
            for key in wake.drain(..) {
                let at = self.clients[c]
                    .flows
                    .get(&key)
                    .map_or(self.now, |f| f.sent_at.max(self.now));
                self.flow_step(c, key, at);
            }
            let r = self.reports_check(c, &reports);
            self.reports = reports;
            self.wake = wake;
            r
        }
    }

    /// The ECMP router forwards a client packet to a director.
    fn route(&mut self, port: usize, mut frame: Vec<u8>) -> Result<(), Violation> {
        let Some(router) = self.router.as_mut() else {
            return Ok(());
        };
        if crate::frame::macs(&frame).is_none_or(|(_, dst)| dst != router.mac) {
            return Ok(());
        }
        if let crate::frame::Parsed::L4 {
            protocol, src, dst, ..
        } = crate::frame::parse(&frame)
            && let Some(d) = router.pick(src, dst, protocol)
        {
            let mac = self.directors[d].mac;
            crate::frame::set_dst_mac(&mut frame, mac);
            frame[6..12].copy_from_slice(&router.mac);
            self.send(port, frame, 0);
        }
        Ok(())
    }

    fn reports_check(&mut self, c: usize, reports: &[Report]) -> Result<(), Violation> {
        for report in reports {
            match report {
                Report::Reply {
                    flow,
                    service,
                    server,
                    before,
                    opened_at,
                    epoch,
                    epoch_now,
                } => {
                    self.inv.reply(
                        &self.servers,
                        *flow,
                        *service,
                        *server,
                        *before,
                        *opened_at,
                        *epoch,
                        *epoch_now,
                        self.now,
                    )?;
                }
                Report::Lost { flow, opened_at } => {
                    self.trace.event(
                        self.now,
                        "client {a} lost a flow from port {b}",
                        c as u64,
                        u64::from(flow.1),
                    );
                    self.inv.lost(*flow, *opened_at);
                }
                Report::Done => {}
            }
        }
        Ok(())
    }

    /// Carries out a director's effects.
    fn apply(&mut self, d: usize, effects: &mut Vec<Effect>) -> Result<(), Violation> {
        let mut result = Ok(());
        for e in effects.drain(..) {
            match e {
                Effect::Frame(f) => self.send(d, f, 0),
                Effect::State { vrid, to, reason } => {
                    self.trace.event(
                        self.now,
                        "director {a} vrid/state {b} (vrid*10 + 0 INIT 1 BACKUP 2 MASTER 3 FAULT)",
                        d as u64,
                        vrid.code() * 10 + state_code(to),
                    );
                    let r = self.inv.state_changed(
                        &self.directors,
                        &self.segment,
                        d,
                        vrid,
                        to,
                        reason,
                        self.now,
                    );
                    if result.is_ok() {
                        result = r;
                    }
                }
                Effect::Health {
                    service,
                    server,
                    up,
                } => {
                    let host = self
                        .servers
                        .iter()
                        .position(|s| s.has(server))
                        .unwrap_or(usize::MAX) as u64;
                    self.trace.event(
                        self.now,
                        "director {a} marks server {b} ((service*1000 + index)*10 + 1 up / 0 down)",
                        d as u64,
                        (service as u64 * 1000 + host) * 10 + u64::from(up),
                    );
                    self.inv.health(d, server, up, self.now);
                }
                Effect::Announce { up } => {
                    self.trace.event(
                        self.now,
                        "director {a} announces (1) or withdraws (0) the VIP",
                        d as u64,
                        u64::from(up),
                    );
                    if let Some(r) = &mut self.router {
                        r.set_route(d, up);
                    }
                }
                Effect::Dropped {
                    client,
                    no_server,
                    not_syn,
                } => {
                    self.trace.event(
                        self.now,
                        "director {a} drops a packet from port {b}",
                        d as u64,
                        u64::from(client.1),
                    );
                    if no_server {
                        self.inv.dropped_by_scheduler(client);
                    }
                    if not_syn {
                        let r = self.inv.synced_packet(
                            &self.directors[d],
                            &self.servers,
                            client,
                            None,
                            self.now,
                        );
                        if result.is_ok() {
                            result = r;
                        }
                    }
                }
                Effect::Forward {
                    client,
                    service,
                    syn,
                    follows_conn,
                    server,
                    tracked,
                } => {
                    if syn {
                        let host = self.servers.iter().position(|s| s.has(server));
                        self.trace.event(
                            self.now,
                            "director {a} sends a new flow to a server (client port*1000 + server)",
                            d as u64,
                            u64::from(client.1) * 1000 + host.map_or(999, |h| h as u64),
                        );
                    }
                    if !tracked {
                        let (used, cap) = self.directors[d].table_use();
                        if used >= cap {
                            self.faults.table_full += 1;
                        }
                    }
                    let r = self.inv.forward(
                        &self.directors[d],
                        client,
                        service,
                        syn,
                        server,
                        tracked,
                        self.now,
                    );
                    if result.is_ok() {
                        result = r;
                    }
                    if syn
                        && let Some(at) = self.inv.sync_flow_opened(
                            &self.directors[d],
                            client,
                            service,
                            server,
                            self.now,
                        )
                    {
                        self.queue.push(
                            at,
                            Ev::SyncDue {
                                d,
                                flow: client,
                                since: self.now,
                            },
                        );
                    }
                    if follows_conn {
                        let r = self.inv.synced_packet(
                            &self.directors[d],
                            &self.servers,
                            client,
                            Some(server),
                            self.now,
                        );
                        if result.is_ok() {
                            result = r;
                        }
                    }
                }
                Effect::ProbeAnswered { kind, .. } => {
                    let i = match kind {
                        // topology.rs probes UDP, PING and DNS as TCP.
                        ProbeKind::Tcp
                        | ProbeKind::Smtp
                        | ProbeKind::Udp
                        | ProbeKind::Ping
                        | ProbeKind::Dns => 0,
                        ProbeKind::Http | ProbeKind::Ssl => 1,
                        ProbeKind::Misc => 2,
                    };
                    self.faults.probes[i] += 1;
                }
            }
        }
        // The holders of each VIP: a change starts a new epoch.
        let mut changed = false;
        for &vip in &self.vips {
            let mask = self
                .directors
                .iter()
                .enumerate()
                .filter(|(_, d)| d.holds(vip))
                .fold(0u64, |m, (i, _)| m | (1 << i));
            let old = self.holders.insert(vip, mask);
            changed |= old.unwrap_or(0) != mask;
        }
        if changed {
            self.epoch += 1;
            self.inv.epoch_changed(self.now);
        }
        result
    }

    /// Check deadlines for server `s` entering `mode` now.
    fn schedule_check_deadlines(&mut self, s: usize, mode: Mode) {
        let now = self.now;
        for d in 0..self.directors.len() {
            for (service, view) in self.scenario.view.services.iter().enumerate() {
                for r in view.reals.iter().filter(|r| self.servers[s].has(r.addr)) {
                    if let Some(bound) = self.inv.down_deadline(
                        &self.directors[d],
                        service,
                        r.addr,
                        mode,
                        &self.segment,
                    ) {
                        self.queue.push(
                            now + bound,
                            Ev::CheckDown(Box::new(CheckDown {
                                d,
                                s,
                                service,
                                addr: r.addr,
                                mode,
                                since: now,
                            })),
                        );
                    }
                }
            }
        }
    }

    fn act(&mut self, a: Action) -> Result<(), Violation> {
        let now = self.now;
        match a {
            Action::Crash(d) => {
                if !self.directors[d].is_up() {
                    return Ok(());
                }
                self.trace.event(now, "director {a} crashes", d as u64, 0);
                self.faults.crashes += 1;
                self.inv.director_down(&self.directors, d, now);
                self.directors[d].crash();
                if let Some(e) = self.scenario.ecmp {
                    self.queue
                        .push(now + e.withdraw_delay_us, Ev::Withdraw { d });
                }
            }
            Action::CrashMaster => {
                let first = self.scenario.view.instances.first().map(|i| Vrid {
                    v6: i.v6,
                    id: i.vrid,
                });
                let d = (0..self.directors.len())
                    .find(|&d| {
                        first.is_some_and(|v| self.directors[d].state(v) == Some(State::Master))
                    })
                    .unwrap_or(0);
                self.crashed = Some(d);
                return self.act(Action::Crash(d));
            }
            Action::RestartCrashed => {
                if let Some(d) = self.crashed {
                    return self.act(Action::Start(d));
                }
            }
            Action::Start(d) => {
                if self.directors[d].is_up() {
                    return Ok(());
                }
                self.trace.event(now, "director {a} starts", d as u64, 0);
                if std::mem::replace(&mut self.ever_started[d], true) {
                    self.faults.restarts += 1;
                }
                let mut effects = std::mem::take(&mut self.effects);
                if let Err(e) = self.directors[d].start(now, &mut effects) {
                    self.effects = effects;
                    return Err(Violation::setup(
                        format!("director {d} cannot start: {e}"),
                        now,
                    ));
                }
                self.inv.director_up(d, now);
                let r = self.apply(d, &mut effects);
                self.effects = effects;
                self.reschedule(d);
                r?;
            }
            Action::Stop(d) => {
                if !self.directors[d].is_up() {
                    return Ok(());
                }
                self.trace
                    .event(now, "director {a} stops gracefully", d as u64, 0);
                self.faults.stops += 1;
                let paused = now < self.directors[d].paused_until;
                let mastered: Vec<Vrid> = self.directors[d]
                    .vrrp()
                    .filter(|(_, i)| i.state() == State::Master)
                    .map(|(v, _)| v)
                    .collect();
                let mut effects = std::mem::take(&mut self.effects);
                self.directors[d].shutdown(now, &mut effects);
                let r = self.apply(d, &mut effects);
                self.effects = effects;
                self.inv.director_down(&self.directors, d, now);
                if !paused && self.segment.link.loss_ppm == 0 {
                    for v in mastered {
                        if let Some(bound) =
                            self.inv
                                .handover_bound(&self.directors, &self.segment, d, v, now)
                        {
                            self.queue.push(
                                now + bound,
                                Ev::Handover {
                                    vrid: v,
                                    since: now,
                                },
                            );
                        }
                    }
                }
                r?;
            }
            Action::Pause(d, us) => {
                if !self.directors[d].is_up() {
                    return Ok(());
                }
                self.trace
                    .event(now, "director {a} pauses for {b} us", d as u64, us);
                self.faults.pauses += 1;
                self.directors[d].paused_until = now + us;
                self.inv.paused(d, now, now + us);
            }
            Action::Drift(d, ppm) => {
                self.trace.event(
                    now,
                    "director {a} clock drifts {b} ppm (+1000 offset)",
                    d as u64,
                    (ppm + 1000) as u64,
                );
                if ppm != 0 {
                    self.faults.drifts += 1;
                }
                self.directors[d].set_drift(now, ppm);
                self.inv.touch();
                self.reschedule(d);
            }
            Action::Server(s, mode) => {
                self.trace.event(
                    now,
                    "server {a} mode {b} (0 answer 1 refuse 2 hang 3 slow 4 bad status)",
                    s as u64,
                    mode.code(),
                );
                if mode.code() > 0 {
                    self.faults.server_modes[mode.code() as usize - 1] += 1;
                }
                let before = self.servers[s].mode;
                self.servers[s].mode = mode;
                self.servers[s].mode_since = now;
                if before != mode {
                    self.schedule_check_deadlines(s, mode);
                }
            }
            Action::Partition(p, part) => {
                self.trace
                    .event(now, "port {a} to partition {b}", p as u64, u64::from(part));
                if part != 0 {
                    self.faults.partitions += 1;
                    let first_client = self.directors.len() + self.servers.len();
                    if p >= first_client {
                        self.faults.client_partitions += 1;
                    }
                }
                self.segment.set_part(p, part);
                self.inv.topology_changed(now);
            }
            Action::Block(from, to, blocked) => {
                self.trace.event(
                    now,
                    "link {a} -> {b} blocked/unblocked",
                    from as u64,
                    to as u64,
                );
                if blocked {
                    self.faults.oneway += 1;
                }
                self.segment.set_blocked(from, to, blocked);
                self.inv.topology_changed(now);
            }
            Action::Link(link) => {
                self.trace.event(
                    now,
                    "link latency {a} us, loss {b} ppm",
                    link.latency_us,
                    u64::from(link.loss_ppm),
                );
                self.faults.link_changes += 1;
                self.faults.max_latency_us = self.faults.max_latency_us.max(link.latency_us);
                self.segment.link = link;
                self.inv.topology_changed(now);
            }
            Action::Flood(service, n, over) => {
                self.trace.event(
                    now,
                    "a flood of {a} spoofed new flows over {b} us",
                    u64::from(n),
                    over,
                );
                let batches = u64::from(n.div_ceil(10)).max(1);
                self.queue.push(
                    now,
                    Ev::Flood {
                        service,
                        remaining: n,
                        every_us: (over / batches).max(1),
                    },
                );
            }
            Action::Heal => {
                self.trace.event(now, "heal: liveness phase", 0, 0);
                self.healed = true;
                self.segment.heal();
                self.segment.link = LinkParams {
                    latency_us: self.segment.link.latency_us,
                    ..LinkParams::default()
                };
                self.inv.topology_changed(now);
                self.inv.healed(now);
                for s in 0..self.servers.len() {
                    if self.servers[s].mode != Mode::Answer {
                        self.servers[s].mode = Mode::Answer;
                        self.servers[s].mode_since = now;
                    }
                }
                for d in 0..self.directors.len() {
                    self.directors[d].paused_until = self.directors[d].paused_until.min(now);
                    if !self.directors[d].is_up() {
                        self.act(Action::Start(d))?;
                    }
                    self.reschedule(d);
                }
            }
            Action::Burst => {
                self.trace.event(now, "liveness burst", 0, 0);
                let Some(c) = self.burster else {
                    self.inv.burst(now, BTreeMap::new());
                    return Ok(());
                };
                let mut loads = BTreeMap::new();
                let spread = BURST_US / 3;
                for (service, s) in self.scenario.view.services.iter().enumerate() {
                    let family: Vec<usize> = (0..self.clients[c].addrs.len())
                        .filter(|&a| self.clients[c].addrs[a].is_ipv6() == s.vip.is_ipv6())
                        .collect();
                    // Hashing schedulers need many sources, counting ones
                    // many concurrent flows (and distinct persistence keys).
                    let hashing =
                        matches!(s.scheduler, Scheduler::Sh | Scheduler::Mh | Scheduler::Dh);
                    // 200 sources miss a server holding 1/16 of the buckets
                    // with odds (15/16)^200, about 2e-6; more would fill
                    // the tables (each flow and its template stay minutes).
                    let (addrs, packets): (Vec<usize>, u32) = if hashing {
                        (family.into_iter().take(200).collect(), 1)
                    } else {
                        (family.into_iter().take(STRIDED).collect(), 10)
                    };
                    let n = addrs.len() as u64;
                    let holders: Vec<&Director<'_>> =
                        self.directors.iter().filter(|d| d.holds(s.vip)).collect();
                    if let [holder] = holders[..] {
                        loads.insert(service, (holder.server_loads(service), n));
                    }
                    for (k, addr) in addrs.into_iter().enumerate() {
                        let at = now + spread * k as u64 / n.max(1);
                        self.queue.push(
                            at,
                            Ev::BurstOpen {
                                service,
                                addr,
                                packets,
                            },
                        );
                    }
                }
                self.inv.burst(now, loads);
            }
        }
        Ok(())
    }
}

fn state_code(s: State) -> u64 {
    match s {
        State::Init => 0,
        State::Backup => 1,
        State::Master => 2,
        State::Fault => 3,
    }
}

/// Runs `scenario` from scratch.
pub fn run(scenario: Scenario, keep_all: bool) -> Result<Outcome, String> {
    let mut st = storages(&scenario)?;
    let world = World::new(scenario, &mut st);
    Ok(world.run(keep_all))
}
