//! A simulated director: vrlb-core's `Node` (VRRP, balancer, checks) on a
//! simulated NIC. It answers ARP and neighbour solicitations for its
//! addresses and the VIPs it holds, feeds adverts (IPv4 and IPv6) to the
//! node, forwards client frames in DR mode (new destination MAC, its own
//! source MAC) as the node's `classify` says, sends the node's health
//! probes as frames to the real servers and reads their answers, and turns
//! the node's other outputs into frames (adverts, GARP, unsolicited NA).
//! With `lvs_sync_daemon` configured it sends the node's connection sync
//! messages to the sync group and feeds it those it receives. Its clock
//! may drift; it can crash (state lost), restart (rebuilt from its config,
//! with the scenario's overrides applied to the parsed values), or pause.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vrlb_core::check::{ProbeKind, ProbeResult};
use vrlb_core::config::{NoIncludes, Options};
use vrlb_core::lb::{self, Balancer, Flow, Layout, LbConfig, ServiceId, TcpFlags, Verdict};
use vrlb_core::node::build::{self, Counts, Environment};
use vrlb_core::node::{
    BalancingStorage, CheckerId, CheckerSlot, GroupSlot, IfaceId, Input, InstanceSlot, Node,
    NodeStorage, Output, ScriptSlot, ServerRef, ServerSlot, ServiceSlot, SyncSlot, SyncStorage,
    TimerEntry,
};
use vrlb_core::sync::Role;
use vrlb_core::time::Instant;
use vrlb_core::vrrp::{self, Family, State};

use crate::frame::{self, BROADCAST, Mac, PROBE_HTTP_REQUEST, PROBE_MISC_REQUEST, Parsed};
use crate::scenario::{DirectorSpec, Override};

/// A virtual router: VRIDs are per address family (RFC 9568 5.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vrid {
    /// An IPv6 instance.
    pub v6: bool,
    /// The VRID.
    pub id: u8,
}

impl Vrid {
    /// A compact code for traces: the VRID, plus 1000 for IPv6.
    pub fn code(self) -> u64 {
        u64::from(self.id) + if self.v6 { 1000 } else { 0 }
    }
}

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
    /// Storage sized for the configuration `text` with `connections`
    /// connection and template slots.
    pub fn for_config(text: &str, connections: u32) -> Result<DirectorStorage, String> {
        let counts: Counts = build::count(
            "keepalived.conf",
            text,
            &Options::default(),
            &mut NoIncludes,
        )
        .map_err(|e| e.to_string())?;
        let layout = counts.layout(connections, 2);
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
            sync_journal: vec![0; counts.sync_journal_entries(connections)],
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

/// One listed server's load, as the scheduler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLoad {
    /// Its address.
    pub addr: IpAddr,
    /// Its weight.
    pub weight: u32,
    /// Active connections (ESTABLISHED).
    pub active: u32,
    /// Other connections.
    pub inactive: u32,
}

/// What a director asks the world to do or know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send a frame.
    Frame(Vec<u8>),
    /// A VRRP state change.
    State {
        /// The virtual router.
        vrid: Vrid,
        /// New state.
        to: State,
        /// Why.
        reason: vrrp::Reason,
    },
    /// The node changed its view of a real server of a service.
    Health {
        /// The service (the scenario's index).
        service: usize,
        /// Which server.
        server: IpAddr,
        /// Up or down.
        up: bool,
    },
    /// The node dropped a client packet.
    Dropped {
        /// The client's address and port.
        client: (IpAddr, u16),
        /// Dropped because the scheduler had no server (by design, as ovf
        /// when every server is full).
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
        client: (IpAddr, u16),
        /// The service (the scenario's index).
        service: usize,
        /// The packet opened a flow.
        syn: bool,
        /// The packet must follow its connection if the director has one
        /// (TCP without SYN, or any UDP datagram).
        follows_conn: bool,
        /// The real server.
        server: IpAddr,
        /// The balancer tracks the flow (false: a full table, forwarded
        /// statelessly).
        tracked: bool,
    },
    /// A health probe ended with an answer (timeouts are the core's).
    ProbeAnswered {
        /// What kind.
        kind: ProbeKind,
        /// Passed.
        success: bool,
    },
}

/// A probe in flight.
#[derive(Debug, Clone, Copy)]
struct Probe {
    checker: CheckerId,
    seq: u32,
    kind: ProbeKind,
    target: (IpAddr, u16),
    /// The HTTP request was sent (the handshake is done).
    requested: bool,
}

/// What the build tells the environment, kept per life.
#[derive(Default)]
struct Learned {
    /// HTTP status ranges per checker (empty: any 2xx).
    status: BTreeMap<CheckerId, Vec<(u16, u16)>>,
}

struct Env<'m> {
    addr: Ipv4Addr,
    link_local: Ipv6Addr,
    learned: &'m mut Learned,
}

impl Environment for Env<'_> {
    fn interface(&mut self, _name: &str) -> IfaceId {
        // One segment, one interface: every name means it.
        IfaceId(0)
    }
    fn primary_address(&mut self, _iface: IfaceId, family: Family) -> Option<IpAddr> {
        // VRRPv3 over IPv6 adverts come from the link-local address
        // (RFC 9568 5.1.2.1).
        Some(match family {
            Family::V4 => IpAddr::V4(self.addr),
            Family::V6 => IpAddr::V6(self.link_local),
        })
    }
    fn checker(
        &mut self,
        id: CheckerId,
        _server: ServerRef,
        conf: &vrlb_core::config::CheckerConf<'_>,
    ) {
        let codes = conf
            .urls
            .iter()
            .flat_map(|u| u.status_codes.iter().copied())
            .collect();
        self.learned.status.insert(id, codes);
    }
}

/// One simulated director.
pub struct Director<'a> {
    /// Its index.
    pub id: usize,
    /// Its MAC.
    pub mac: Mac,
    /// Its IPv4 address on the segment.
    pub addr: Ipv4Addr,
    /// Its global IPv6 address.
    pub addr6: Ipv6Addr,
    /// Its IPv6 link-local address.
    pub link_local: Ipv6Addr,
    /// Its configuration.
    pub config: String,
    overrides: Vec<Override>,
    /// The scenario's services (VIP, port, protocol), by index.
    services: Vec<(IpAddr, u16, u8)>,
    /// The balancer's service ids and the scenario's index for each.
    service_index: BTreeMap<ServiceId, usize>,
    node: Option<Node<'a>>,
    parked: Option<Parked<'a>>,
    layout: Layout,
    lb: LbConfig,
    seed: u64,
    /// VIPs it holds now, per VRRP instance (by its slot) and for anycast
    /// services (slot `u16::MAX`).
    vips: BTreeMap<u16, Vec<IpAddr>>,
    /// Clock drift, parts per million (local = offset + sim * (1 + ppm/1e6)).
    pub drift_ppm: i64,
    offset_us: i64,
    /// Sim time until which it is stalled (frames and timers wait).
    pub paused_until: u64,
    /// Sim time of the wake-up the world has scheduled.
    pub wake_at: u64,
    /// Known MACs of real servers, clients and the other directors.
    pub neighbours: BTreeMap<IpAddr, Mac>,
    /// Sim time it last started.
    pub started_at: u64,
    /// Per virtual router: the last advert accepted as a master's (sim
    /// time, local time, priority).
    pub last_master_advert: BTreeMap<Vrid, (u64, Instant, u8)>,
    /// Mid-flow packets adopted (mh) by earlier lives of the node.
    adopted_before: u64,
    probes: BTreeMap<u16, Probe>,
    next_probe_port: u16,
    learned: Learned,
    scratch: Vec<u8>,
}

/// The anycast services' slot in `vips`.
const ANYCAST: u16 = u16::MAX;

impl<'a> Director<'a> {
    /// A director (stopped) described by `spec` using `storage`; its data
    /// plane keeps UDP connections `udp_timeout_s` (the configuration's
    /// `lvs_timeouts udp`, which a driver applies) or IPVS's default.
    pub fn new(
        id: usize,
        spec: &DirectorSpec,
        services: Vec<(IpAddr, u16, u8)>,
        udp_timeout_s: Option<u32>,
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
            addr: spec.addr,
            addr6: spec.addr6,
            link_local: spec.link_local,
            config: spec.config.clone(),
            overrides: spec.overrides.clone(),
            services,
            service_index: BTreeMap::new(),
            node: None,
            parked: Some(parked),
            layout,
            lb: LbConfig {
                udp_timeout_s: udp_timeout_s.unwrap_or(LbConfig::DEFAULT.udp_timeout_s),
                ..LbConfig::DEFAULT
            },
            seed,
            vips: BTreeMap::new(),
            drift_ppm: 0,
            offset_us: 0,
            paused_until: 0,
            wake_at: u64::MAX,
            neighbours: BTreeMap::new(),
            started_at: 0,
            last_master_advert: BTreeMap::new(),
            adopted_before: 0,
            probes: BTreeMap::new(),
            next_probe_port: 40_000,
            learned: Learned::default(),
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

    /// Whether `addr` is one of its own.
    pub fn owns(&self, addr: IpAddr) -> bool {
        addr == IpAddr::V4(self.addr)
            || addr == IpAddr::V6(self.addr6)
            || addr == IpAddr::V6(self.link_local)
    }

    /// Whether it holds `vip` now.
    pub fn holds(&self, vip: IpAddr) -> bool {
        self.vips.values().any(|v| v.contains(&vip))
    }

    /// Whether it holds any VIP.
    pub fn holds_any(&self) -> bool {
        self.vips.values().any(|v| !v.is_empty())
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

    /// Its VRRP instances, by virtual router.
    pub fn vrrp(&self) -> impl Iterator<Item = (Vrid, &vrrp::Instance)> + '_ {
        self.node.iter().flat_map(|n| {
            n.instances().map(|(_, i)| {
                (
                    Vrid {
                        v6: i.config().family == Family::V6,
                        id: i.config().vrid,
                    },
                    i,
                )
            })
        })
    }

    /// Its instance of virtual router `v`.
    pub fn instance(&self, v: Vrid) -> Option<&vrrp::Instance> {
        self.vrrp().find(|(k, _)| *k == v).map(|(_, i)| i)
    }

    /// The state of its instance of `v`.
    pub fn state(&self, v: Vrid) -> Option<State> {
        self.instance(v).map(|i| i.state())
    }

    /// Whether it runs any VRRP instance.
    pub fn runs_vrrp(&self) -> bool {
        self.vrrp().next().is_some()
    }

    /// Starts at sim time `t` (builds the node from the config, then
    /// applies the overrides to the parsed instances).
    pub fn start(&mut self, t: u64, out: &mut Vec<Effect>) -> Result<(), String> {
        let Some(p) = self.parked.take() else {
            return Ok(());
        };
        let now = self.local(t);
        let balancer = Balancer::new(self.layout, p.lb, self.lb, self.seed ^ t, now)
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
        self.learned = Learned::default();
        let mut env = Env {
            addr: self.addr,
            link_local: self.link_local,
            learned: &mut self.learned,
        };
        let built = build::build(
            &mut node,
            &mut env,
            "keepalived.conf",
            &self.config,
            &Options::default(),
            &mut NoIncludes,
        )
        .map_err(|e| e.to_string())
        .and_then(|_| apply_overrides(&mut node, &self.overrides));
        if let Err(e) = built {
            self.park(node);
            return Err(e);
        }
        self.service_index = node
            .balancer()
            .map(|b| {
                b.services()
                    .filter_map(|(id, c)| {
                        let lb::ServiceKey::Addr {
                            protocol,
                            vip,
                            port,
                        } = c.key
                        else {
                            return None;
                        };
                        let proto = match protocol {
                            lb::Protocol::Udp => 17,
                            _ => 6,
                        };
                        self.services
                            .iter()
                            .position(|s| *s == (vip, port, proto))
                            .map(|i| (id, i))
                    })
                    .collect()
            })
            .unwrap_or_default();
        node.handle(now, Input::Start);
        self.node = Some(node);
        self.started_at = t;
        self.last_master_advert.clear();
        self.drain(t, out);
        Ok(())
    }

    fn park(&mut self, mut node: Node<'a>) {
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

    /// Crashes at once: no goodbye, state lost, VIPs gone with it.
    pub fn crash(&mut self) {
        self.adopted_before = self.adopted_mid_flow();
        if let Some(node) = self.node.take() {
            self.park(node);
        }
        self.vips.clear();
        self.probes.clear();
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

    fn probe_result(&mut self, t: u64, p: Probe, result: ProbeResult, out: &mut Vec<Effect>) {
        let now = self.local(t);
        let Some(node) = self.node.as_mut() else {
            return;
        };
        out.push(Effect::ProbeAnswered {
            kind: p.kind,
            success: result != ProbeResult::Failure,
        });
        node.handle(
            now,
            Input::ProbeResult {
                checker: p.checker,
                seq: p.seq,
                result,
            },
        );
        self.drain(t, out);
    }

    fn own_for(&self, target: IpAddr) -> IpAddr {
        match target {
            IpAddr::V4(_) => IpAddr::V4(self.addr),
            IpAddr::V6(_) => IpAddr::V6(self.addr6),
        }
    }

    /// A frame to one of its own addresses: a probe's answer.
    fn probe_answer(
        &mut self,
        t: u64,
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        flags: TcpFlags,
        id: u32,
        out: &mut Vec<Effect>,
    ) {
        let Some(mut p) = self.probes.get(&dst.1).copied() else {
            return;
        };
        if p.target.0 != src.0 {
            return;
        }
        let rst = flags.0 & 0x04 != 0;
        let result = match p.kind {
            ProbeKind::Misc => {
                if id == 0 {
                    ProbeResult::Success
                } else {
                    ProbeResult::Failure
                }
            }
            _ if rst => ProbeResult::Failure,
            // The simulated servers speak no SMTP: a dialogue that would
            // follow the connect is modelled as the connect alone.
            // topology.rs makes UDP, PING and DNS checks TCP probes.
            ProbeKind::Tcp
            | ProbeKind::Smtp
            | ProbeKind::Udp
            | ProbeKind::Ping
            | ProbeKind::Dns
                if flags.0 & 0x12 == 0x12 =>
            {
                ProbeResult::Success
            }
            ProbeKind::Http | ProbeKind::Ssl if !p.requested && flags.0 & 0x12 == 0x12 => {
                // Connected: ask.
                p.requested = true;
                self.probes.insert(dst.1, p);
                let Some(mac) = self.neighbours.get(&src.0).copied() else {
                    return;
                };
                frame::l4(
                    &mut self.scratch,
                    6,
                    (self.mac, dst.0, dst.1),
                    (mac, src.0, src.1),
                    TcpFlags::ACK,
                    PROBE_HTTP_REQUEST,
                );
                out.push(Effect::Frame(self.scratch.clone()));
                return;
            }
            ProbeKind::Http | ProbeKind::Ssl if p.requested && flags.0 & 0x02 == 0 => {
                let ok =
                    self.learned
                        .status
                        .get(&p.checker)
                        .map_or((200..300).contains(&id), |codes| {
                            if codes.is_empty() {
                                (200..300).contains(&id)
                            } else {
                                codes
                                    .iter()
                                    .any(|(a, b)| (u32::from(*a)..=u32::from(*b)).contains(&id))
                            }
                        });
                if ok {
                    ProbeResult::Success
                } else {
                    ProbeResult::Failure
                }
            }
            _ => return,
        };
        self.probes.remove(&dst.1);
        self.probe_result(t, p, result, out);
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
                if request && (target == self.addr || self.holds(IpAddr::V4(target))) {
                    let mut reply = Vec::new();
                    frame::arp(&mut reply, false, (self.mac, target), sender, sender.0);
                    out.push(Effect::Frame(reply));
                }
            }
            Parsed::Nd {
                solicit: true,
                src_mac,
                src,
                target,
                ..
            } => {
                if self.owns(IpAddr::V6(target)) || self.holds(IpAddr::V6(target)) {
                    let mut reply = Vec::new();
                    frame::na(&mut reply, (self.mac, target), Some((src_mac, src)), target);
                    out.push(Effect::Frame(reply));
                }
            }
            Parsed::Nd { .. } => {}
            Parsed::Vrrp {
                src,
                dst,
                ttl,
                payload,
            } => {
                let v = Vrid {
                    v6: src.is_ipv6(),
                    id: payload.get(1).copied().unwrap_or(0),
                };
                let own = self.instance(v).map(|i| i.effective_priority());
                if let Some(own_priority) = own
                    && !self.owns(src)
                {
                    let priority = payload.get(2).copied().unwrap_or(0);
                    // What the instance will accept as its master's advert.
                    if priority >= own_priority || priority == 0 {
                        self.last_master_advert.insert(v, (t, now, priority));
                    }
                }
                let node = self.node.as_mut().expect("checked above");
                node.handle(
                    now,
                    Input::Advert {
                        iface: IfaceId(0),
                        src,
                        dst,
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
                id,
            } => {
                if dst_mac != self.mac {
                    return;
                }
                if self.owns(dst.0) {
                    self.probe_answer(t, src, dst, flags, id, out);
                    return;
                }
                // Only what was sent to us for a VIP we hold (a stale switch
                // entry after a failover hits the old director: its kernel,
                // without the VIP, would drop it).
                if !self.holds(dst.0) {
                    return;
                }
                let service = self
                    .services
                    .iter()
                    .position(|s| s.0 == dst.0 && s.2 == protocol && (s.1 == dst.1 || s.1 == 0));
                let flow = Flow {
                    src: src.0,
                    dst: dst.0,
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
                        no_server: reason == lb::DropReason::NoServer,
                        not_syn: reason == lb::DropReason::NotSyn,
                    });
                }
                if let Verdict::Forward {
                    addr: server,
                    tracked,
                    ..
                } = verdict
                    && let Some(mac) = self.neighbours.get(&server)
                {
                    let mut fwd = frame_bytes.to_vec();
                    frame::set_dst_mac(&mut fwd, *mac);
                    fwd[6..12].copy_from_slice(&self.mac);
                    if let Some(service) = service {
                        out.push(Effect::Forward {
                            client: src,
                            service,
                            syn: flags.0 & 0x02 != 0 || protocol == 17,
                            follows_conn: flags.0 & 0x02 == 0 || protocol == 17,
                            server,
                            tracked,
                        });
                    }
                    out.push(Effect::Frame(fwd));
                }
                // A journal flushed by classify leaves sync messages.
                self.drain(t, out);
            }
            Parsed::Other => {}
        }
    }

    fn send_probe(&mut self, checker: CheckerId, seq: u32, out: &mut Vec<Effect>) {
        let Some((kind, target)) = self
            .node
            .as_ref()
            .and_then(|n| n.checker(checker))
            .map(|(c, _)| (c.config().kind, c.config().target))
        else {
            return;
        };
        let Some(mac) = self.neighbours.get(&target.0).copied() else {
            return;
        };
        // A fresh local port per probe, as a new socket gets.
        let port = self.next_probe_port;
        self.next_probe_port = if port >= 59_999 { 40_000 } else { port + 1 };
        self.probes.insert(
            port,
            Probe {
                checker,
                seq,
                kind,
                target,
                requested: false,
            },
        );
        let src = self.own_for(target.0);
        let (protocol, flags, id) = match kind {
            ProbeKind::Misc => (17, TcpFlags::NONE, PROBE_MISC_REQUEST),
            _ => (6, TcpFlags::SYN, 0),
        };
        frame::l4(
            &mut self.scratch,
            protocol,
            (self.mac, src, port),
            (mac, target.0, target.1),
            flags,
            id,
        );
        out.push(Effect::Frame(self.scratch.clone()));
    }

    /// Turns the node's outputs into effects.
    fn drain(&mut self, t: u64, out: &mut Vec<Effect>) {
        let now = self.local(t);
        loop {
            let Some(node) = self.node.as_mut() else {
                return;
            };
            let Some(o) = node.poll_output() else {
                return;
            };
            match o {
                Output::Vrrp { instance, event } => {
                    let Some(inst) = node.instance(instance) else {
                        continue;
                    };
                    let vrid = Vrid {
                        v6: inst.config().family == Family::V6,
                        id: inst.config().vrid,
                    };
                    match event {
                        vrrp::Output::Advert { priority } => {
                            let src = inst.config().primary_addr;
                            let mut buf = [0u8; 1500];
                            let dsts: Vec<IpAddr> = inst.advert_destinations().collect();
                            for dst in dsts {
                                let dst_mac = if dst.is_multicast() {
                                    None
                                } else {
                                    match self.neighbours.get(&dst) {
                                        Some(m) => Some(*m),
                                        None => continue,
                                    }
                                };
                                if let Some(n) =
                                    node.emit_advert(instance, priority, src, dst, &mut buf)
                                {
                                    frame::vrrp(
                                        &mut self.scratch,
                                        (self.mac, src),
                                        dst,
                                        dst_mac,
                                        &buf[..n],
                                    );
                                    out.push(Effect::Frame(self.scratch.clone()));
                                }
                            }
                        }
                        vrrp::Output::AddVips => {
                            self.vips.insert(instance.0, inst.vips().to_vec());
                        }
                        vrrp::Output::RemoveVips => {
                            self.vips.remove(&instance.0);
                        }
                        vrrp::Output::Garp { repeat } => {
                            let vips = self.vips.get(&instance.0).cloned().unwrap_or_default();
                            for _ in 0..repeat {
                                for vip in &vips {
                                    match vip {
                                        IpAddr::V4(v) => frame::arp(
                                            &mut self.scratch,
                                            true,
                                            (self.mac, *v),
                                            (BROADCAST, *v),
                                            BROADCAST,
                                        ),
                                        IpAddr::V6(v) => frame::na(
                                            &mut self.scratch,
                                            (self.mac, self.link_local),
                                            None,
                                            *v,
                                        ),
                                    }
                                    out.push(Effect::Frame(self.scratch.clone()));
                                }
                            }
                        }
                        vrrp::Output::StateChanged { to, reason, .. } => {
                            out.push(Effect::State { vrid, to, reason })
                        }
                    }
                }
                Output::Probe { checker, seq, .. } => self.send_probe(checker, seq, out),
                Output::CancelProbe { checker, seq, .. } => {
                    self.probes
                        .retain(|_, p| !(p.checker == checker && p.seq == seq));
                }
                Output::ServerHealth { server, up } => {
                    if let Some(s) = node.server(server)
                        && let Some(&service) = self.service_index.get(&s.service)
                    {
                        out.push(Effect::Health {
                            service,
                            server: s.config.addr,
                            up,
                        });
                    }
                }
                Output::Announce { service, up } => {
                    let vip = node
                        .balancer()
                        .and_then(|b| b.service(service).ok())
                        .and_then(|c| match c.key {
                            lb::ServiceKey::Addr { vip, .. } => Some(vip),
                            _ => None,
                        });
                    if let Some(vip) = vip {
                        let list = self.vips.entry(ANYCAST).or_default();
                        list.retain(|v| *v != vip);
                        if up {
                            list.push(vip);
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
                Output::RunScript { script, .. } => {
                    // The simulator runs no scripts: each succeeds at once
                    // (the demo says so when a configuration has some).
                    node.handle(
                        now,
                        Input::ScriptResult {
                            script,
                            success: true,
                        },
                    );
                }
                Output::Quorum { .. }
                | Output::ScriptChanged { .. }
                | Output::ProcessChanged { .. } => {}
            }
        }
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

    /// Whether its node considers `server` of service `service` healthy
    /// (None: not a server of it, or down).
    pub fn server_healthy(&self, service: usize, server: IpAddr) -> Option<bool> {
        let node = self.node.as_ref()?;
        node.servers()
            .find(|(_, s)| {
                s.config.addr == server && self.service_index.get(&s.service) == Some(&service)
            })
            .map(|(_, s)| s.healthy)
    }

    /// The scenario's index of the service at `vip`:`port` with `protocol`.
    pub fn service_of(&self, vip: IpAddr, port: u16, protocol: u8) -> Option<usize> {
        self.services
            .iter()
            .position(|s| s.0 == vip && s.2 == protocol && (s.1 == port || s.1 == 0))
    }

    /// The listed servers of service `service` with their weight and
    /// active and inactive connection counts, in list order.
    pub fn server_loads(&self, service: usize) -> Vec<ServerLoad> {
        let Some(b) = self.node.as_ref().and_then(|n| n.balancer()) else {
            return Vec::new();
        };
        self.service_index
            .iter()
            .filter(|(_, i)| **i == service)
            .flat_map(|(id, _)| b.servers(*id))
            .map(|i| ServerLoad {
                addr: i.server.addr,
                weight: i.server.weight,
                active: i.active,
                inactive: i.inactive,
            })
            .collect()
    }

    /// Whether checks of service `service` are suspended (ha_suspend while
    /// the VIP is elsewhere).
    pub fn checks_suspended(&self, service: usize) -> bool {
        let Some(node) = self.node.as_ref() else {
            return true;
        };
        self.service_index
            .iter()
            .filter(|(_, i)| **i == service)
            .any(|(id, _)| node.service_state(*id).is_some_and(|s| s.suspended))
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

/// Changes the parsed instances as `overrides` say (before the node
/// starts: the same as a configuration that said so).
fn apply_overrides(node: &mut Node<'_>, overrides: &[Override]) -> Result<(), String> {
    for o in overrides {
        let Some(id) = node.instance_by_key(build::name_key(&o.instance)) else {
            return Err(format!(
                "the scenario changes vrrp_instance {}, which the configuration does not define",
                o.instance
            ));
        };
        let inst = node.instance(id).expect("found by key");
        let mut cfg = inst.config().clone();
        if let Some(p) = o.priority {
            cfg.priority = p;
        }
        if o.backup {
            cfg.start_as_master = false;
        }
        if let Some((src, peers)) = &o.unicast {
            cfg.primary_addr = *src;
            cfg.unicast_peers.clear();
            for p in peers {
                cfg.unicast_peers
                    .push(*p)
                    .map_err(|_| "too many unicast peers".to_string())?;
            }
        }
        let advertised = inst.advertised_vips().to_vec();
        let excluded = inst.vips()[advertised.len()..].to_vec();
        node.reconfigure_instance(id, cfg, &advertised, &excluded)
            .map_err(|e| format!("vrrp_instance {}: {e:?}", o.instance))?;
    }
    Ok(())
}
