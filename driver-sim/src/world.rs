//! The simulated world: one segment with directors, real servers and
//! clients, run event by event from a [`Scenario`], with every invariant
//! checked after every event. Owns the event loop and the translation of
//! hosts' effects into events; the hosts own their behaviour and the
//! invariants their rules.

use std::net::Ipv4Addr;

use vrlb_core::check::ProbeResult;
use vrlb_core::node::CheckerId;
use vrlb_core::rand::Prng;
use vrlb_core::vrrp::State;

use crate::client::{Client, Report};
use crate::director::{Director, DirectorStorage, Effect};
use crate::engine::Queue;
use crate::frame::Mac;
use crate::invariants::{Invariants, Violation};
use crate::router::Router;
use crate::scenario::{Action, Scenario};
use crate::segment::{Delivery, LinkParams, Segment};
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
    ProbeDone {
        d: usize,
        checker: CheckerId,
        seq: u32,
        result: ProbeResult,
    },
    FlowStep {
        c: usize,
        key: (Ipv4Addr, u16),
    },
    ClientOpen {
        c: usize,
    },
    Act(Action),
    CheckDown {
        d: usize,
        s: usize,
        since: u64,
    },
    Handover {
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
        flow: (Ipv4Addr, u16),
        since: u64,
    },
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
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
    /// Replies per real server index.
    pub served: Vec<u64>,
    /// Flows opened, completed, lost.
    pub flows: (u64, u64, u64),
    /// Times from losing a master to having one again, in microseconds.
    pub failovers_us: Vec<u64>,
    /// New flows of persistent clients that stayed on their server, and all
    /// such flows.
    pub persistence: (u64, u64),
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
    /// Clients (ports after the servers).
    pub clients: Vec<Client>,
    /// The ECMP router (the last port), when directors are active-active.
    pub router: Option<Router>,
    /// The trace.
    pub trace: Trace,
    prng: Prng,
    inv: Invariants,
    /// Changes of the set of VIP holders so far.
    pub epoch: u64,
    holders: u64,
    healed: bool,
    scenario: Scenario,
    effects: Vec<Effect>,
    deliveries: Vec<Delivery>,
    reports: Vec<Report>,
    wake: Vec<(Ipv4Addr, u16)>,
    frames: Vec<Vec<u8>>,
}

/// Storage for every director of `scenario` (kept by the caller for the
/// world's lifetime).
pub fn storages(scenario: &Scenario) -> Result<Vec<DirectorStorage>, String> {
    scenario
        .directors
        .iter()
        .map(|(_, text)| DirectorStorage::for_config(text))
        .collect()
}

impl<'a> World<'a> {
    /// A world for `scenario` over `storage` (from [`storages`]).
    pub fn new(scenario: Scenario, storage: &'a mut [DirectorStorage]) -> World<'a> {
        let mut prng = Prng::new(scenario.seed);
        let n_dir = scenario.directors.len();
        let n_srv = scenario.servers.len();
        let directors: Vec<Director<'a>> = scenario
            .directors
            .iter()
            .zip(storage.iter_mut())
            .enumerate()
            .map(|(i, ((addr, text), st))| {
                Director::new(i, *addr, text.clone(), st, prng.next_u64())
            })
            .collect();
        let servers: Vec<Server> = scenario
            .servers
            .iter()
            .enumerate()
            .map(|(i, a)| Server::new(i, *a, vec![scenario.vip.0]))
            .collect();
        let t = scenario.traffic;
        let clients: Vec<Client> = (0..t.clients)
            .map(|c| {
                let addrs = (0..t.addrs_per_client)
                    .map(|a| Ipv4Addr::new(203, 0, 113, (1 + c * t.addrs_per_client + a) as u8))
                    .collect();
                Client::new(c, addrs, scenario.vip, scenario.protocol, prng.fork())
            })
            .collect();
        let router = scenario.ecmp.map(|e| Router::new(n_dir, e.hash));
        let mut clients = clients;
        if let Some(r) = &router {
            for c in &mut clients {
                c.set_gateway(r.mac);
            }
        }
        let ports = n_dir + n_srv + clients.len() + usize::from(router.is_some());
        let mut segment = Segment::new(ports, prng.fork());
        segment.link = scenario.link;
        let mut world = World {
            now: 0,
            queue: Queue::default(),
            segment,
            directors,
            servers,
            clients,
            router,
            trace: Trace::default(),
            prng,
            inv: Invariants::new(scenario.persistence_s, scenario.ecmp.is_some()),
            epoch: 0,
            holders: 0,
            healed: false,
            scenario,
            effects: Vec::new(),
            deliveries: Vec::new(),
            reports: Vec::new(),
            wake: Vec::new(),
            frames: Vec::new(),
        };
        // Directors know the real servers' and clients' MACs (static
        // neighbour entries: DR needs the servers on the same segment).
        let neighbours: Vec<(Ipv4Addr, Mac)> = world
            .servers
            .iter()
            .map(|s| (s.addr, s.mac))
            .chain(
                world
                    .clients
                    .iter()
                    .flat_map(|c| c.addrs.iter().map(move |a| (*a, c.mac))),
            )
            .collect();
        for d in &mut world.directors {
            d.neighbours.extend(neighbours.iter().copied());
        }
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
        for c in 0..world.clients.len() {
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

    /// The client owning `addr`, and its MAC.
    fn client_mac(clients: &[Client], addr: Ipv4Addr) -> Option<Mac> {
        clients
            .iter()
            .find(|c| c.addrs.contains(&addr))
            .map(|c| c.mac)
    }

    fn send(&mut self, from: usize, frame: Vec<u8>, extra_delay: u64) {
        let mut deliveries = std::mem::take(&mut self.deliveries);
        self.segment.send(from, &frame, &mut deliveries);
        for d in &deliveries {
            self.queue.push(
                self.now + d.delay_us + extra_delay,
                Ev::Deliver {
                    port: d.port,
                    frame: frame.clone(),
                },
            );
        }
        self.deliveries = deliveries;
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
        for c in &self.clients {
            for (id, n) in &c.served {
                if let Some(slot) = served.get_mut(*id as usize - 1) {
                    *slot += n;
                }
            }
            flows.0 += c.opened;
            flows.1 += c.completed;
            flows.2 += c.lost;
        }
        Outcome {
            seed: self.scenario.seed,
            hash: self.trace.hash(),
            events: self.trace.events(),
            processed,
            violation,
            tail: self.trace.tail().map(|r| r.to_string()).collect(),
            all: std::mem::take(&mut self.trace.all),
            served,
            flows,
            failovers_us: self.inv.failovers.clone(),
            persistence: self.inv.persistence,
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
        }
    }

    fn step(&mut self, ev: Ev) -> Result<(), Violation> {
        match ev {
            Ev::Deliver { port, frame } => self.deliver(port, frame),
            Ev::DirectorWake { d } => {
                if self.directors[d].wake_at != self.now {
                    return Ok(());
                }
                if self.now < self.directors[d].paused_until {
                    let until = self.directors[d].paused_until;
                    self.directors[d].wake_at = until;
                    self.queue.push(until, Ev::DirectorWake { d });
                    return Ok(());
                }
                self.trace
                    .event(self.now, "director {a} timer", d as u64, 0);
                self.directors[d].wake_at = u64::MAX;
                let mut effects = std::mem::take(&mut self.effects);
                self.directors[d].wake(self.now, &mut effects);
                let r = self.apply(d, &mut effects);
                self.effects = effects;
                self.reschedule(d);
                r
            }
            Ev::ProbeDone {
                d,
                checker,
                seq,
                result,
            } => {
                if self.now < self.directors[d].paused_until {
                    let until = self.directors[d].paused_until;
                    self.queue.push(
                        until,
                        Ev::ProbeDone {
                            d,
                            checker,
                            seq,
                            result,
                        },
                    );
                    return Ok(());
                }
                self.trace.event(
                    self.now,
                    "director {a} probe result {b}",
                    d as u64,
                    u64::from(result == ProbeResult::Success),
                );
                let mut effects = std::mem::take(&mut self.effects);
                self.directors[d].probe_result(self.now, checker, seq, result, &mut effects);
                let r = self.apply(d, &mut effects);
                self.effects = effects;
                self.reschedule(d);
                r
            }
            Ev::FlowStep { c, key } => {
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
                    self.queue.push(at, Ev::FlowStep { c, key });
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
                let addr = self.clients[c].pick_addr();
                let key = self.clients[c].open(self.now, addr, packets, gap);
                self.trace.event(
                    self.now,
                    "client {a} opens a flow of {b} packets",
                    c as u64,
                    u64::from(packets),
                );
                self.queue.push(self.now, Ev::FlowStep { c, key });
                let next = self.now + 1 + self.prng.below(2 * t.flow_every_us);
                self.queue.push(next, Ev::ClientOpen { c });
                Ok(())
            }
            Ev::Act(a) => self.act(a),
            Ev::Start { d } => self.act(Action::Start(d)),
            Ev::CheckDown { d, s, since } => {
                self.inv
                    .check_down_deadline(&self.directors[d], &self.servers[s], since, self.now)
            }
            Ev::Handover { since } => self.inv.handover_deadline(&self.directors, since, self.now),
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
            let clients = &self.clients;
            let reply = self.servers[s].receive(&frame, |a| Self::client_mac(clients, a));
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
                self.queue.push(at, Ev::FlowStep { c, key });
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
                    server,
                    before,
                    opened_at,
                    epoch,
                    epoch_now,
                } => {
                    self.inv.reply(
                        &self.servers,
                        *flow,
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
                Effect::Probe {
                    checker,
                    seq,
                    target,
                } => {
                    let Some(s) = self.servers.iter().position(|s| s.addr == target) else {
                        continue;
                    };
                    let sp = self.server_port(s);
                    let reachable = self.segment.connected(d, sp) && self.segment.connected(sp, d);
                    let rtt = 2 * self.segment.link.latency_us;
                    let answer = match (reachable, self.servers[s].mode) {
                        (false, _) | (true, Mode::Hang) => None,
                        (true, Mode::Answer) => Some((rtt, ProbeResult::Success)),
                        (true, Mode::Refuse) => Some((rtt, ProbeResult::Failure)),
                        (true, Mode::Slow(us)) => Some((rtt + us, ProbeResult::Success)),
                    };
                    if let Some((delay, result)) = answer {
                        self.queue.push(
                            self.now + delay,
                            Ev::ProbeDone {
                                d,
                                checker,
                                seq,
                                result,
                            },
                        );
                    }
                }
                Effect::State { to, reason } => {
                    self.trace.event(
                        self.now,
                        "director {a} -> {b} (0 INIT 1 BACKUP 2 MASTER 3 FAULT)",
                        d as u64,
                        state_code(to),
                    );
                    let r = self.inv.state_changed(
                        &self.directors,
                        &self.segment,
                        d,
                        to,
                        reason,
                        self.now,
                    );
                    if result.is_ok() {
                        result = r;
                    }
                }
                Effect::Health { server, up } => {
                    self.trace.event(
                        self.now,
                        "director {a} marks server .{b} up/down",
                        d as u64,
                        u64::from(server.octets()[3]) * 10 + u64::from(up),
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
                    syn,
                    follows_conn,
                    server,
                } => {
                    let r = self
                        .inv
                        .forward(&self.directors[d], client, syn, server, self.now);
                    if result.is_ok() {
                        result = r;
                    }
                    if syn
                        && let Some(at) =
                            self.inv
                                .sync_flow_opened(&self.directors[d], client, server, self.now)
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
            }
        }
        // The set of VIP holders: a change starts a new epoch.
        let holders = self
            .directors
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.vips.is_empty())
            .fold(0u64, |m, (i, _)| m | (1 << i));
        if holders != self.holders {
            self.holders = holders;
            self.epoch += 1;
            self.inv.epoch_changed(self.now);
        }
        result
    }

    fn act(&mut self, a: Action) -> Result<(), Violation> {
        let now = self.now;
        match a {
            Action::Crash(d) => {
                self.trace.event(now, "director {a} crashes", d as u64, 0);
                self.inv.director_down(&self.directors, d, now);
                self.directors[d].crash();
                if let Some(e) = self.scenario.ecmp {
                    self.queue
                        .push(now + e.withdraw_delay_us, Ev::Withdraw { d });
                }
            }
            Action::Start(d) => {
                if self.directors[d].is_up() {
                    return Ok(());
                }
                self.trace.event(now, "director {a} starts", d as u64, 0);
                let mut effects = std::mem::take(&mut self.effects);
                if let Err(e) = self.directors[d].start(now, &mut effects) {
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
                let was_master = self.directors[d].vrrp_state() == Some(State::Master)
                    && now >= self.directors[d].paused_until;
                let mut effects = std::mem::take(&mut self.effects);
                self.directors[d].shutdown(now, &mut effects);
                let r = self.apply(d, &mut effects);
                self.effects = effects;
                self.inv.director_down(&self.directors, d, now);
                if was_master && self.segment.link.loss_ppm == 0 {
                    if let Some(bound) =
                        self.inv
                            .handover_bound(&self.directors, &self.segment, d, now)
                    {
                        self.queue.push(now + bound, Ev::Handover { since: now });
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
                self.directors[d].set_drift(now, ppm);
                self.reschedule(d);
            }
            Action::Server(s, mode) => {
                let code = match mode {
                    Mode::Answer => 0,
                    Mode::Refuse => 1,
                    Mode::Hang => 2,
                    Mode::Slow(_) => 3,
                };
                self.trace.event(
                    now,
                    "server {a} mode {b} (0 answer 1 refuse 2 hang 3 slow)",
                    s as u64,
                    code,
                );
                let failing_before = matches!(self.servers[s].mode, Mode::Refuse | Mode::Hang);
                self.servers[s].mode = mode;
                self.servers[s].mode_since = now;
                if matches!(mode, Mode::Refuse | Mode::Hang) && !failing_before {
                    for d in 0..self.directors.len() {
                        if let Some(bound) = self.inv.down_deadline(
                            &self.directors[d],
                            &self.servers[s],
                            &self.segment,
                        ) {
                            self.queue
                                .push(now + bound, Ev::CheckDown { d, s, since: now });
                        }
                    }
                }
            }
            Action::Partition(p, part) => {
                self.trace
                    .event(now, "port {a} to partition {b}", p as u64, u64::from(part));
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
                self.segment.set_blocked(from, to, blocked);
                self.inv.topology_changed(now);
            }
            Action::Link(link) => {
                self.segment.link = link;
                self.inv.topology_changed(now);
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
