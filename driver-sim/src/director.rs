//! A simulated director: vrlb-core's `Node` (VRRP, balancer, checks) on a
//! simulated NIC. It answers ARP for its address and the VIPs it holds,
//! feeds adverts to the node, forwards client frames in DR mode (new
//! destination MAC, its own source MAC) as the node's `classify` says, and
//! turns the node's outputs into frames and probes. With `lvs_sync_daemon`
//! configured it sends the node's connection sync messages to the sync
//! group and feeds it those it receives. Its clock may drift; it can crash
//! (state lost), restart (rebuilt from its config), or pause.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use vrlb_core::check::ProbeResult;
use vrlb_core::config::{NoIncludes, Options};
use vrlb_core::lb::{self, Balancer, Flow, Layout, LbConfig, Verdict};
use vrlb_core::node::build::{self, Counts, Environment};
use vrlb_core::node::{
    BalancingStorage, CheckerId, CheckerSlot, GroupSlot, IfaceId, Input, InstanceSlot, Node,
    NodeStorage, Output, ScriptSlot, ServerSlot, ServiceSlot, SyncSlot, SyncStorage, TimerEntry,
};
use vrlb_core::sync::Role;
use vrlb_core::time::{Duration, Instant};
use vrlb_core::vrrp::{self, Family, State};

use crate::frame::{self, BROADCAST, Mac, Parsed};

/// Connection slots per director.
pub const CONNECTIONS: u32 = 4096;

/// The memory one director's node lives in (owned here, lent to the node).
pub struct DirectorStorage {
    instances: Vec<InstanceSlot>,
    scripts: Vec<ScriptSlot>,
    groups: Vec<GroupSlot>,
    timers: Vec<TimerEntry>,
    lb_services: Vec<lb::ServiceSlot>,
    lb_servers: Vec<lb::ServerSlot>,
    lb_tree: Vec<u16>,
    lb_mh: Vec<u16>,
    lb_conns: Vec<lb::ConnSlot>,
    lb_index: Vec<u8>,
    lb_wheel: Vec<u32>,
    services: Vec<ServiceSlot>,
    servers: Vec<ServerSlot>,
    checkers: Vec<CheckerSlot>,
    sync_slot: Box<SyncSlot>,
    /// Empty when the configuration has no connection sync.
    sync_journal: Vec<u32>,
    layout: Layout,
}

impl DirectorStorage {
    /// Storage sized for the configuration `text`.
    pub fn for_config(text: &str) -> Result<DirectorStorage, String> {
        let counts: Counts = build::count(
            "keepalived.conf",
            text,
            &Options::default(),
            &mut NoIncludes,
        )
        .map_err(|e| e.to_string())?;
        let layout = counts.layout(CONNECTIONS, 2);
        Ok(DirectorStorage {
            instances: vec![InstanceSlot::default(); counts.instances.max(1)],
            scripts: vec![ScriptSlot::default(); counts.scripts],
            groups: vec![GroupSlot::default(); counts.sync_groups],
            timers: vec![TimerEntry::default(); counts.timer_entries()],
            lb_services: vec![lb::ServiceSlot::EMPTY; layout.service_slots()],
            lb_servers: vec![lb::ServerSlot::EMPTY; layout.server_slots()],
            lb_tree: vec![0; layout.tree_nodes()],
            lb_mh: vec![0; layout.mh_entries()],
            lb_conns: vec![lb::ConnSlot::EMPTY; layout.conn_slots()],
            lb_index: vec![0; layout.index_bytes()],
            lb_wheel: vec![0; layout.wheel_buckets()],
            services: vec![ServiceSlot::default(); layout.service_slots()],
            servers: vec![ServerSlot::default(); counts.real_servers.max(1)],
            checkers: vec![CheckerSlot::default(); counts.checkers.max(1)],
            sync_slot: Box::default(),
            sync_journal: vec![0; counts.sync_journal_entries(CONNECTIONS)],
            layout,
        })
    }
}

/// The node's storage while the director is down.
struct Parked<'a> {
    node: NodeStorage<'a>,
    lb: lb::Storage<'a>,
    services: &'a mut [ServiceSlot],
    servers: &'a mut [ServerSlot],
    checkers: &'a mut [CheckerSlot],
    /// Connection sync storage, when the configuration syncs.
    sync: Option<SyncStorage<'a>>,
}

/// What a director asks the world to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send a frame.
    Frame(Vec<u8>),
    /// Probe a real server (health check).
    Probe {
        /// Which checker.
        checker: CheckerId,
        /// Its sequence number.
        seq: u32,
        /// Where.
        target: Ipv4Addr,
    },
    /// A VRRP state change.
    State {
        /// New state.
        to: State,
        /// Why.
        reason: vrrp::Reason,
    },
    /// The node changed its view of a real server.
    Health {
        /// Which.
        server: Ipv4Addr,
        /// Up or down.
        up: bool,
    },
    /// The node dropped a client packet (no server: by the scheduler's
    /// design, as ovf when every server is full).
    Dropped {
        /// The client's address and port.
        client: (Ipv4Addr, u16),
        /// Dropped because the scheduler had no server.
        no_server: bool,
        /// Dropped as a TCP packet without SYN of an unknown connection.
        not_syn: bool,
    },
    /// The node announces (or withdraws) an anycast VIP.
    Announce {
        /// Announced or withdrawn.
        up: bool,
    },
    /// The node forwarded a client packet.
    Forward {
        /// The client's address and port.
        client: (Ipv4Addr, u16),
        /// The packet opened a flow.
        syn: bool,
        /// The packet must follow its connection if the director has one
        /// (TCP without SYN, or any UDP datagram).
        follows_conn: bool,
        /// The real server.
        server: Ipv4Addr,
    },
}

struct Env<'m> {
    addr: Ipv4Addr,
    _marker: std::marker::PhantomData<&'m ()>,
}

impl Environment for Env<'_> {
    fn interface(&mut self, _name: &str) -> IfaceId {
        // One segment, one interface: every name means it.
        IfaceId(0)
    }
    fn primary_address(&mut self, _iface: IfaceId, family: Family) -> Option<IpAddr> {
        (family == Family::V4).then_some(IpAddr::V4(self.addr))
    }
}

/// One simulated director.
pub struct Director<'a> {
    /// Its index.
    pub id: usize,
    /// Its MAC.
    pub mac: Mac,
    /// Its address on the segment.
    pub addr: Ipv4Addr,
    /// Its configuration.
    pub config: String,
    node: Option<Node<'a>>,
    parked: Option<Parked<'a>>,
    layout: Layout,
    seed: u64,
    /// VIPs it holds now.
    pub vips: Vec<Ipv4Addr>,
    /// Clock drift, parts per million (local = offset + sim * (1 + ppm/1e6)).
    pub drift_ppm: i64,
    offset_us: i64,
    /// Sim time until which it is stalled (frames and timers wait).
    pub paused_until: u64,
    /// Sim time of the wake-up the world has scheduled.
    pub wake_at: u64,
    /// Known MACs of real servers and clients.
    pub neighbours: BTreeMap<Ipv4Addr, Mac>,
    /// Sim time it last started.
    pub started_at: u64,
    /// Last advert accepted as a master's: (sim time, local time, priority).
    pub last_master_advert: Option<(u64, Instant, u8)>,
    /// Mid-flow packets adopted (mh) by earlier lives of the node.
    adopted_before: u64,
    scratch: Vec<u8>,
}

impl<'a> Director<'a> {
    /// A director (stopped) using `storage`.
    pub fn new(
        id: usize,
        addr: Ipv4Addr,
        config: String,
        storage: &'a mut DirectorStorage,
        seed: u64,
    ) -> Self {
        let layout = storage.layout;
        let parked = Parked {
            node: NodeStorage {
                instances: &mut storage.instances,
                scripts: &mut storage.scripts,
                groups: &mut storage.groups,
                timers: &mut storage.timers,
            },
            lb: lb::Storage {
                services: &mut storage.lb_services,
                servers: &mut storage.lb_servers,
                tree: &mut storage.lb_tree,
                mh: &mut storage.lb_mh,
                conns: &mut storage.lb_conns,
                index: &mut storage.lb_index,
                wheel: &mut storage.lb_wheel,
            },
            services: &mut storage.services,
            servers: &mut storage.servers,
            checkers: &mut storage.checkers,
            sync: (!storage.sync_journal.is_empty()).then_some(SyncStorage {
                slot: &mut storage.sync_slot,
                journal: &mut storage.sync_journal,
                seed,
            }),
        };
        Director {
            id,
            mac: [0x02, 0, 0, 0, 0x10, id as u8],
            addr,
            config,
            node: None,
            parked: Some(parked),
            layout,
            seed,
            vips: Vec::new(),
            drift_ppm: 0,
            offset_us: 0,
            paused_until: 0,
            wake_at: u64::MAX,
            neighbours: BTreeMap::new(),
            started_at: 0,
            last_master_advert: None,
            adopted_before: 0,
            scratch: Vec::with_capacity(128),
        }
    }

    /// Whether it runs.
    pub fn is_up(&self) -> bool {
        self.node.is_some()
    }

    /// Its node, while up.
    pub fn node(&self) -> Option<&Node<'a>> {
        self.node.as_ref()
    }

    /// The director's local clock at sim time `t` (never backwards: drift
    /// is bounded well below 100%).
    pub fn local(&self, t: u64) -> Instant {
        let skew = (i128::from(t) * i128::from(self.drift_ppm)) / 1_000_000;
        Instant::from_micros((i128::from(t) + skew + i128::from(self.offset_us)).max(0) as u64)
    }

    /// The first sim time at which the local clock reaches `local`.
    pub fn sim_time(&self, local: Instant) -> u64 {
        let l = i128::from(local.as_micros()) - i128::from(self.offset_us);
        let rate = 1_000_000 + i128::from(self.drift_ppm);
        let t = (l * 1_000_000 + rate - 1) / rate;
        t.max(0) as u64
    }

    /// The state of its first instance (the simulated clusters run one).
    pub fn vrrp_state(&self) -> Option<State> {
        self.node
            .as_ref()?
            .instances()
            .next()
            .map(|(_, i)| i.state())
    }

    /// Its first instance's configuration.
    pub fn vrrp_config(&self) -> Option<&vrrp::Config> {
        self.node
            .as_ref()?
            .instances()
            .next()
            .map(|(_, i)| i.config())
    }

    /// Starts at sim time `t` (builds the node from the config).
    pub fn start(&mut self, t: u64, out: &mut Vec<Effect>) -> Result<(), String> {
        let Some(p) = self.parked.take() else {
            return Ok(());
        };
        let now = self.local(t);
        let balancer = Balancer::new(self.layout, p.lb, LbConfig::default(), self.seed ^ t, now)
            .map_err(|e| e.to_string())?;
        let mut node = Node::new(p.node).with_balancing(BalancingStorage {
            balancer,
            services: p.services,
            servers: p.servers,
            checkers: p.checkers,
            seed: self.seed ^ t.rotate_left(17),
        });
        if let Some(s) = p.sync {
            // A new session id per life, as a restarted daemon has.
            node = node.with_sync(SyncStorage {
                seed: self.seed ^ t.rotate_left(29),
                ..s
            });
        }
        let mut env = Env {
            addr: self.addr,
            _marker: std::marker::PhantomData,
        };
        build::build(
            &mut node,
            &mut env,
            "keepalived.conf",
            &self.config,
            &Options::default(),
            &mut NoIncludes,
        )
        .map_err(|e| e.to_string())?;
        node.handle(now, Input::Start);
        self.node = Some(node);
        self.started_at = t;
        self.last_master_advert = None;
        self.drain(t, out);
        Ok(())
    }

    /// Crashes at once: no goodbye, state lost, VIPs gone with it.
    pub fn crash(&mut self) {
        self.adopted_before = self.adopted_mid_flow();
        if let Some(mut node) = self.node.take() {
            let sync = node.take_sync_storage();
            let (storage, balancing) = node.into_storage_with_balancing(self.seed);
            let b = balancing.expect("simulated directors balance");
            self.parked = Some(Parked {
                node: storage,
                lb: b.balancer.into_storage(),
                services: b.services,
                servers: b.servers,
                checkers: b.checkers,
                sync,
            });
        }
        self.vips.clear();
        self.wake_at = u64::MAX;
    }

    /// Stops gracefully (priority 0, VIPs released), then goes down.
    pub fn shutdown(&mut self, t: u64, out: &mut Vec<Effect>) {
        let now = self.local(t);
        if let Some(node) = self.node.as_mut() {
            node.handle(now, Input::Shutdown);
            self.drain(t, out);
        }
        self.crash();
    }

    /// When the node next needs the clock, in sim time.
    pub fn next_wake(&self) -> u64 {
        let Some(node) = &self.node else {
            return u64::MAX;
        };
        node.poll_timeout()
            .map_or(u64::MAX, |l| self.sim_time(l).max(self.paused_until))
    }

    /// Runs due timers at sim time `t`.
    pub fn wake(&mut self, t: u64, out: &mut Vec<Effect>) {
        let now = self.local(t);
        // Timers can leave work due when outputs fill the node's queue.
        for _ in 0..64 {
            let Some(node) = self.node.as_mut() else {
                return;
            };
            if node.poll_timeout().is_none_or(|d| d > now) {
                break;
            }
            node.handle_timeout(now);
            self.drain(t, out);
        }
    }

    /// A probe result arrives.
    pub fn probe_result(
        &mut self,
        t: u64,
        checker: CheckerId,
        seq: u32,
        result: ProbeResult,
        out: &mut Vec<Effect>,
    ) {
        let now = self.local(t);
        let Some(node) = self.node.as_mut() else {
            return;
        };
        node.handle(
            now,
            Input::ProbeResult {
                checker,
                seq,
                result,
            },
        );
        self.drain(t, out);
    }

    /// A frame arrives at sim time `t`.
    pub fn receive(&mut self, t: u64, frame_bytes: &[u8], out: &mut Vec<Effect>) {
        if self.node.is_none() {
            return;
        }
        let now = self.local(t);
        let Some((_, dst_mac)) = frame::macs(frame_bytes) else {
            return;
        };
        if let Some((group, port)) = self.sync_address()
            && let Some((src, payload)) = frame::sync_payload(frame_bytes, group, port)
        {
            if src != self.addr {
                let node = self.node.as_mut().expect("checked above");
                node.handle(now, Input::SyncReceive { payload });
                self.drain(t, out);
            }
            return;
        }
        match frame::parse(frame_bytes) {
            Parsed::Arp {
                request,
                sender,
                target,
            } => {
                self.neighbours.insert(sender.1, sender.0);
                if request && (target == self.addr || self.vips.contains(&target)) {
                    let mut reply = Vec::new();
                    frame::arp(&mut reply, false, (self.mac, target), sender, sender.0);
                    out.push(Effect::Frame(reply));
                }
            }
            Parsed::Vrrp {
                src,
                dst,
                ttl,
                payload,
            } => {
                let node = self.node.as_mut().expect("checked above");
                let own = node
                    .instances()
                    .next()
                    .map(|(_, i)| (i.config().priority, i.config().vrid));
                if let Some((own_priority, vrid)) = own
                    && payload.get(1) == Some(&vrid)
                    && src != self.addr
                {
                    let priority = payload.get(2).copied().unwrap_or(0);
                    // What the instance will accept as its master's advert.
                    if priority >= own_priority || priority == 0 {
                        self.last_master_advert = Some((t, now, priority));
                    }
                }
                node.handle(
                    now,
                    Input::Advert {
                        iface: IfaceId(0),
                        src: IpAddr::V4(src),
                        dst: IpAddr::V4(dst),
                        ttl,
                        payload,
                    },
                );
                self.drain(t, out);
            }
            Parsed::L4 {
                protocol,
                src,
                dst,
                flags,
                ..
            } => {
                // Only what was sent to us for a VIP we hold (a stale switch
                // entry after a failover hits the old director: its kernel,
                // without the VIP, would drop it).
                if dst_mac != self.mac || !self.vips.contains(&dst.0) {
                    return;
                }
                let flow = Flow {
                    src: IpAddr::V4(src.0),
                    dst: IpAddr::V4(dst.0),
                    src_port: src.1,
                    dst_port: dst.1,
                    protocol,
                    tcp_flags: flags,
                    fwmark: 0,
                };
                let node = self.node.as_mut().expect("checked above");
                let verdict = node.classify(now, &flow);
                if let Verdict::Drop(reason) = verdict {
                    out.push(Effect::Dropped {
                        client: src,
                        no_server: reason == vrlb_core::lb::DropReason::NoServer,
                        not_syn: reason == vrlb_core::lb::DropReason::NotSyn,
                    });
                }
                if let Verdict::Forward {
                    addr: IpAddr::V4(server),
                    ..
                } = verdict
                    && let Some(mac) = self.neighbours.get(&server)
                {
                    let mut fwd = frame_bytes.to_vec();
                    frame::set_dst_mac(&mut fwd, *mac);
                    fwd[6..12].copy_from_slice(&self.mac);
                    out.push(Effect::Forward {
                        client: src,
                        syn: flags.0 & 0x02 != 0 || protocol == 17,
                        follows_conn: flags.0 & 0x02 == 0 || protocol == 17,
                        server,
                    });
                    out.push(Effect::Frame(fwd));
                }
                // A journal flushed by classify leaves sync messages.
                self.drain(t, out);
            }
            Parsed::Other => {}
        }
    }

    /// Turns the node's outputs into effects.
    fn drain(&mut self, t: u64, out: &mut Vec<Effect>) {
        let Some(node) = self.node.as_mut() else {
            return;
        };
        while let Some(o) = node.poll_output() {
            match o {
                Output::Vrrp { instance, event } => match event {
                    vrrp::Output::Advert { priority } => {
                        let src = IpAddr::V4(self.addr);
                        let mut buf = [0u8; 256];
                        let dsts: Vec<IpAddr> = node
                            .instance(instance)
                            .map(|i| i.advert_destinations().collect())
                            .unwrap_or_default();
                        for dst in dsts {
                            if let Some(n) =
                                node.emit_advert(instance, priority, src, dst, &mut buf)
                            {
                                frame::vrrp(&mut self.scratch, (self.mac, self.addr), &buf[..n]);
                                out.push(Effect::Frame(self.scratch.clone()));
                            }
                        }
                    }
                    vrrp::Output::AddVips => {
                        self.vips = node
                            .instance(instance)
                            .map(|i| i.vips().iter().filter_map(|v| frame::v4(*v)).collect())
                            .unwrap_or_default();
                    }
                    vrrp::Output::RemoveVips => self.vips.clear(),
                    vrrp::Output::Garp { repeat } => {
                        for _ in 0..repeat {
                            for vip in &self.vips {
                                frame::arp(
                                    &mut self.scratch,
                                    true,
                                    (self.mac, *vip),
                                    (BROADCAST, *vip),
                                    BROADCAST,
                                );
                                out.push(Effect::Frame(self.scratch.clone()));
                            }
                        }
                    }
                    vrrp::Output::StateChanged { to, reason, .. } => {
                        out.push(Effect::State { to, reason })
                    }
                },
                Output::Probe { checker, seq, .. } => {
                    if let Some(IpAddr::V4(target)) =
                        node.checker(checker).map(|(c, _)| c.config().target.0)
                    {
                        out.push(Effect::Probe {
                            checker,
                            seq,
                            target,
                        });
                    }
                }
                Output::ServerHealth { server, up } => {
                    if let Some(IpAddr::V4(addr)) = node.server(server).map(|s| s.config.addr) {
                        out.push(Effect::Health { server: addr, up });
                    }
                }
                Output::Announce { service, up } => {
                    let vip = node
                        .balancer()
                        .and_then(|b| b.service(service).ok())
                        .and_then(|c| match c.key {
                            vrlb_core::lb::ServiceKey::Addr {
                                vip: IpAddr::V4(v), ..
                            } => Some(v),
                            _ => None,
                        });
                    if let Some(vip) = vip {
                        self.vips.retain(|v| *v != vip);
                        if up {
                            self.vips.push(vip);
                        }
                        out.push(Effect::Announce { up });
                    }
                }
                Output::SyncTransmit { .. } => {
                    let (Some(payload), Some(s)) = (node.sync_payload(), node.sync_settings())
                    else {
                        continue;
                    };
                    let Some(group) = frame::v4(s.group) else {
                        continue;
                    };
                    frame::sync(
                        &mut self.scratch,
                        (self.mac, self.addr),
                        group,
                        s.port,
                        s.ttl,
                        payload,
                    );
                    out.push(Effect::Frame(self.scratch.clone()));
                }
                Output::CancelProbe { .. }
                | Output::Quorum { .. }
                | Output::RunScript { .. }
                | Output::ScriptChanged { .. } => {}
            }
        }
        let _ = t;
    }

    /// Where its connection sync listens (IPv4 group and port), when the
    /// configuration syncs and it runs.
    pub fn sync_address(&self) -> Option<(Ipv4Addr, u16)> {
        let s = self.node.as_ref()?.sync_settings()?;
        Some((frame::v4(s.group)?, s.port))
    }

    /// Its connection sync role (None: not running, or no sync).
    pub fn sync_role(&self) -> Option<Role> {
        self.node.as_ref()?.conn_sync().map(|c| c.role())
    }

    /// Whether its node considers `server` healthy (None: not a server of it).
    pub fn server_healthy(&self, server: Ipv4Addr) -> Option<bool> {
        let node = self.node.as_ref()?;
        node.servers()
            .find(|(_, s)| s.config.addr == IpAddr::V4(server))
            .map(|(_, s)| s.healthy)
    }

    /// The longest its checks may take to see `server` down: the largest
    /// bound over its checkers of that server, plus one probe's timeout (a
    /// slow answer to a probe sent before the failure can still count as a
    /// good check).
    pub fn down_bound(&self, server: Ipv4Addr) -> Option<Duration> {
        let node = self.node.as_ref()?;
        node.checkers()
            .filter(|(_, c, _, _)| c.config().target.0 == IpAddr::V4(server))
            .map(|(_, c, _, _)| c.down_bound() + c.config().timeout)
            .max()
    }

    /// Whether its checks of `server`'s services are suspended (ha_suspend).
    pub fn checks_suspended(&self) -> bool {
        let Some(node) = self.node.as_ref() else {
            return true;
        };
        node.balancer()
            .map(|b| {
                b.services()
                    .any(|(id, _)| node.service_state(id).is_some_and(|s| s.suspended))
            })
            .unwrap_or(false)
    }

    /// Connections tracked and the table's capacity.
    pub fn table_use(&self) -> (u32, u32) {
        let tracked = self
            .node
            .as_ref()
            .and_then(|n| n.balancer())
            .map_or(0, |b| b.tracked());
        (tracked, self.layout.connections)
    }

    /// Packets of unknown connections adopted mid-flow (flows moved here
    /// by the ECMP router), over every life of the node.
    pub fn adopted_mid_flow(&self) -> u64 {
        let now = self
            .node
            .as_ref()
            .and_then(|n| n.balancer())
            .map_or(0, |b| b.stats().adopted_mid_flow);
        self.adopted_before + now
    }

    /// Makes the clock drift from now on (keeping local time continuous).
    pub fn set_drift(&mut self, t: u64, ppm: i64) {
        let local_now = self.local(t).as_micros();
        self.drift_ppm = ppm;
        let raw = i128::from(t) + (i128::from(t) * i128::from(ppm)) / 1_000_000;
        self.offset_us = (i128::from(local_now) - raw) as i64;
    }
}
