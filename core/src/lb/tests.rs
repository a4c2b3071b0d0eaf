//! Property and behaviour tests of the load balancer: every scheduler
//! against `lb::reference`, connection counts against an independent model
//! of IPVS's TCP/UDP tracking, persistence, mh disruption, table-full
//! behaviour.

use std::boxed::Box;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::conn::{tick_of, ticks_for_secs};
use super::reference::{self, RefRr, RefServer, RefWrr};
use super::tcp::{TcpState, next_state};
use super::*;
use crate::time::{Duration, Instant};

fn leak<T: Clone>(v: T, n: usize) -> &'static mut [T] {
    Box::leak(vec![v; n].into_boxed_slice())
}

pub(crate) fn balancer(layout: Layout, cfg: LbConfig) -> Balancer<'static> {
    let st = Storage {
        services: leak(ServiceSlot::EMPTY, layout.service_slots()),
        servers: leak(ServerSlot::EMPTY, layout.server_slots()),
        tree: leak(0u16, layout.tree_nodes()),
        mh: leak(0u16, layout.mh_entries()),
        conns: leak(ConnSlot::EMPTY, layout.conn_slots()),
        index: leak(0u8, layout.index_bytes()),
        wheel: leak(0u32, layout.wheel_buckets()),
    };
    Balancer::new(layout, st, cfg, 0x5eed, Instant::ZERO).unwrap()
}

fn vip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))
}

fn rs_addr(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, i))
}

fn client(i: u16) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, (i % 251) as u8 + 1))
}

fn snapshot(b: &Balancer<'_>, svc: ServiceId) -> (Vec<ServerId>, Vec<RefServer>) {
    b.servers(svc)
        .map(|i| {
            (
                i.id,
                RefServer {
                    addr: i.server.addr,
                    port: i.server.port,
                    weight: i.server.weight,
                    last_weight: i.last_weight,
                    active: i.active,
                    inactive: i.inactive,
                    overloaded: i.overloaded,
                },
            )
        })
        .unzip()
}

#[derive(Clone, Debug)]
enum Op {
    Add {
        addr: u8,
        weight: u32,
        uthr: u32,
        lthr: u32,
    },
    Remove {
        pick: usize,
    },
    Weight {
        pick: usize,
        weight: u32,
    },
    New {
        client: u16,
        udp: bool,
    },
    Packet {
        pick: usize,
        flags: u8,
    },
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let weight = prop_oneof![6 => 0u32..5, 1 => 0u32..100_000];
    let thr = prop_oneof![4 => Just(0u32), 1 => 1u32..6];
    prop_oneof![
        3 => (0u8..24, weight.clone(), thr.clone(), thr).prop_map(|(addr, weight, uthr, lthr)| Op::Add {
            addr,
            weight,
            uthr,
            lthr: lthr.min(uthr)
        }),
        1 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
        2 => (any::<usize>(), weight).prop_map(|(pick, weight)| Op::Weight { pick, weight }),
        8 => (any::<u16>(), prop::bool::weighted(0.2)).prop_map(|(client, udp)| Op::New { client, udp }),
        8 => (any::<usize>(), prop_oneof![Just(0x10u8), Just(0x11), Just(0x04), Just(0x02), Just(0x00)])
            .prop_map(|(pick, flags)| Op::Packet { pick, flags }),
        2 => prop_oneof![0u64..2_000, 0u64..200_000, Just(1_000_000u64)].prop_map(|ms| Op::Advance { ms }),
    ]
}

/// The model's idea of one flow.
#[derive(Clone, Copy, Debug)]
struct ModelConn {
    server: ServerId,
    state: TcpState,
    udp: bool,
    expires: u64,
}

impl ModelConn {
    fn inactive(&self) -> bool {
        self.udp || !self.state.is_active()
    }
}

struct Run {
    b: Balancer<'static>,
    svc: ServiceId,
    kind: Scheduler,
    now: Instant,
    rr: RefRr,
    wrr: RefWrr,
    flows: Vec<Flow>,
    model: HashMap<(IpAddr, u16, u8), ModelConn>,
    next_port: u16,
}

impl Run {
    fn new(kind: Scheduler) -> Run {
        let layout = Layout {
            services: 2,
            servers_per_service: 32,
            mh_table_max: 251,
            connections: 4096,
        };
        let mut b = balancer(layout, LbConfig::DEFAULT);
        let mut cfg = ServiceConfig::new(
            ServiceKey::Addr {
                protocol: Protocol::Tcp,
                vip: vip(),
                port: 80,
            },
            kind,
        );
        cfg.mh_table_size = 251;
        let svc = b.add_service(cfg).unwrap();
        // A UDP twin on the same VIP shares nothing but the table.
        let mut ucfg = cfg;
        ucfg.key = ServiceKey::Addr {
            protocol: Protocol::Udp,
            vip: vip(),
            port: 80,
        };
        b.add_service(ucfg).unwrap();
        Run {
            b,
            svc,
            kind,
            now: Instant::ZERO,
            rr: RefRr::default(),
            wrr: RefWrr::default(),
            flows: Vec::new(),
            model: HashMap::new(),
            next_port: 1024,
        }
    }

    fn udp_svc(&self) -> ServiceId {
        ServiceId(1)
    }

    fn tick(&self) -> u64 {
        tick_of(self.now.as_micros())
    }

    /// The model's expiry pass (connections whose tick has passed).
    fn model_expire(&mut self) {
        let t = self.tick();
        self.model.retain(|_, c| c.expires >= t);
    }

    fn timeout_s(c: &ModelConn) -> u32 {
        if c.udp {
            300
        } else {
            c.state.default_timeout_s()
        }
    }

    /// What the reference scheduler picks for `flow` on service `svc`, with
    /// `adjust` (a connection about to be expired) taken off first.
    fn expected(
        &mut self,
        svc: ServiceId,
        flow: &Flow,
        adjust: Option<ModelConn>,
    ) -> Option<ServerId> {
        let (ids, mut list) = snapshot(&self.b, svc);
        if let Some(c) = adjust {
            if let Some(p) = ids.iter().position(|i| *i == c.server) {
                if c.inactive() {
                    list[p].inactive -= 1;
                } else {
                    list[p].active -= 1;
                }
                // ip_vs_unbind_dest's overload rule.
                let cfg = self.b.server_info(c.server).unwrap().server;
                let total = list[p].active + list[p].inactive;
                if cfg.lthreshold != 0 {
                    if total < cfg.lthreshold {
                        list[p].overloaded = false;
                    }
                } else if cfg.uthreshold != 0 {
                    if total * 4 < cfg.uthreshold * 3 {
                        list[p].overloaded = false;
                    }
                } else {
                    list[p].overloaded = false;
                }
            }
        }
        let cfg = *self.b.service(svc).unwrap();
        let pos = match self.kind {
            Scheduler::Rr if svc == self.svc => self.rr.schedule(&list),
            Scheduler::Wrr if svc == self.svc => self.wrr.schedule(&list),
            // The UDP twin keeps its own cursor; not modelled.
            Scheduler::Rr | Scheduler::Wrr => return None,
            Scheduler::Sh => {
                let t = reference::hash_table(&list);
                reference::sh_pick(
                    &t,
                    &list,
                    flow.src,
                    flow.src_port,
                    cfg.flags.port,
                    cfg.flags.fallback,
                )
            }
            Scheduler::Dh => reference::dh_pick(&reference::hash_table(&list), &list, flow.dst),
            Scheduler::Mh => {
                let mut t = vec![None; cfg.mh_table_size as usize];
                let mut next = vec![0u64; list.len()];
                reference::mh_table(&list, &mut t, &mut next);
                reference::mh_pick(
                    &t,
                    &list,
                    flow.src,
                    flow.src_port,
                    cfg.flags.port,
                    cfg.flags.fallback,
                )
            }
            k => reference::pick_least(k, list.iter().copied().enumerate()),
        };
        pos.map(|p| ids[p])
    }

    fn check_counts(&self) {
        let mut want: HashMap<ServerId, (u32, u32)> = HashMap::new();
        for c in self.model.values() {
            let e = want.entry(c.server).or_default();
            if c.inactive() {
                e.1 += 1;
            } else {
                e.0 += 1;
            }
        }
        let mut got: HashMap<ServerId, (u32, u32)> = HashMap::new();
        self.b.for_each_connection(|id, _, inactive| {
            let e = got.entry(id).or_default();
            if inactive {
                e.1 += 1;
            } else {
                e.0 += 1;
            }
        });
        assert_eq!(got, want, "connections by server (active, inactive)");
        for (id, (a, i)) in &want {
            let info = self
                .b
                .server_info(*id)
                .expect("server of a live connection");
            assert_eq!((info.active, info.inactive), (*a, *i), "counters of {id:?}");
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Add {
                addr,
                weight,
                uthr,
                lthr,
            } => {
                let mut rs = RealServer::new(rs_addr(addr), 80).with_weight(weight);
                rs.uthreshold = uthr;
                rs.lthreshold = lthr;
                let had = self.b.find_server(self.svc, rs.addr, 80).is_some();
                let r = self.b.add_server(self.svc, rs);
                let _ = self.b.add_server(self.udp_svc(), rs);
                if had {
                    assert_eq!(r, Err(LbError::ServerExists));
                } else if r.is_ok() {
                    self.rr.on_add();
                    let (_, list) = snapshot(&self.b, self.svc);
                    self.wrr.changed(&list);
                }
            }
            Op::Remove { pick } => {
                let (ids, _) = snapshot(&self.b, self.svc);
                if ids.is_empty() {
                    return;
                }
                let pos = pick % ids.len();
                self.rr.on_remove(pos);
                self.b.remove_server(self.svc, ids[pos]).unwrap();
                let (_, list) = snapshot(&self.b, self.svc);
                self.wrr.changed(&list);
                let (uids, _) = snapshot(&self.b, self.udp_svc());
                if !uids.is_empty() {
                    self.b
                        .remove_server(self.udp_svc(), uids[pick % uids.len()])
                        .unwrap();
                }
            }
            Op::Weight { pick, weight } => {
                let (ids, _) = snapshot(&self.b, self.svc);
                if ids.is_empty() {
                    return;
                }
                self.b
                    .set_weight(self.svc, ids[pick % ids.len()], weight)
                    .unwrap();
                let (_, list) = snapshot(&self.b, self.svc);
                self.wrr.changed(&list);
            }
            Op::Advance { ms } => {
                self.now += Duration::from_millis(ms);
            }
            Op::New { client: c, udp } => {
                self.next_port = self.next_port.wrapping_add(1).max(1024);
                let flow = if udp {
                    Flow::udp(client(c), self.next_port, vip(), 80)
                } else {
                    Flow::tcp(client(c), self.next_port, vip(), 80, TcpFlags::SYN)
                };
                self.b.handle_timeout(self.now);
                self.model_expire();
                let key = (flow.src, flow.src_port, flow.protocol);
                if self.model.contains_key(&key) {
                    return; // port reuse: covered by Packet
                }
                let svc = if udp { self.udp_svc() } else { self.svc };
                let want = self.expected(svc, &flow, None);
                let v = self.b.classify(self.now, &flow);
                self.flows.push(flow);
                self.record_new(svc, &flow, v, want);
            }
            Op::Packet { pick, flags } => {
                if self.flows.is_empty() {
                    return;
                }
                let mut flow = self.flows[pick % self.flows.len()];
                if flow.protocol == 6 {
                    flow.tcp_flags = TcpFlags(flags);
                }
                self.b.handle_timeout(self.now);
                self.model_expire();
                let key = (flow.src, flow.src_port, flow.protocol);
                let svc = if flow.protocol == 17 {
                    self.udp_svc()
                } else {
                    self.svc
                };
                let existing = self.model.get(&key).copied();
                let syn = flow.protocol == 6 && flags & 0x02 != 0;
                let rst = flags & 0x04 != 0;
                match existing {
                    Some(c) => {
                        let reuse = syn && matches!(c.state, TcpState::TimeWait | TcpState::Close);
                        let alive = self.b.server_info(c.server).is_some()
                            && self.b.servers(svc).any(|i| i.id == c.server);
                        if reuse {
                            let want = self.expected(svc, &flow, Some(c));
                            self.model.remove(&key);
                            let v = self.b.classify(self.now, &flow);
                            self.record_new(svc, &flow, v, want);
                        } else if !alive {
                            let v = self.b.classify(self.now, &flow);
                            assert_eq!(v, Verdict::Drop(DropReason::ServerGone));
                        } else {
                            let v = self.b.classify(self.now, &flow);
                            match v {
                                Verdict::Forward {
                                    server,
                                    tracked: true,
                                    ..
                                } => {
                                    assert_eq!(server, c.server, "existing flow keeps its server")
                                }
                                other => panic!("existing flow got {other:?}"),
                            }
                            let tick = self.tick();
                            let m = self.model.get_mut(&key).unwrap();
                            if !m.udp {
                                m.state = next_state(
                                    m.state,
                                    flags & 0x02 != 0,
                                    flags & 0x01 != 0,
                                    flags & 0x10 != 0,
                                    rst,
                                );
                            }
                            m.expires = tick + ticks_for_secs(Self::timeout_s(m));
                        }
                    }
                    None => {
                        // mh adopts mid-flow packets (flows moved by ECMP).
                        let adopts = self.kind == Scheduler::Mh && !rst;
                        let can = flow.protocol == 17 || (syn && !rst) || adopts;
                        let want = if can {
                            self.expected(svc, &flow, None)
                        } else {
                            None
                        };
                        let v = self.b.classify(self.now, &flow);
                        if can {
                            self.record_new(svc, &flow, v, want);
                        } else {
                            assert_eq!(v, Verdict::Drop(DropReason::NotSyn));
                        }
                    }
                }
            }
        }
        self.check_counts();
    }

    fn record_new(&mut self, svc: ServiceId, flow: &Flow, v: Verdict, want: Option<ServerId>) {
        let modelled = !(matches!(self.kind, Scheduler::Rr | Scheduler::Wrr) && svc != self.svc);
        match v {
            Verdict::Forward {
                server, tracked, ..
            } => {
                assert!(tracked);
                if modelled {
                    assert_eq!(Some(server), want, "{:?} picked differently", self.kind);
                }
                let udp = flow.protocol == 17;
                let state = if udp {
                    TcpState::None
                } else {
                    let f = flow.tcp_flags;
                    next_state(
                        TcpState::None,
                        f.contains(TcpFlags::SYN),
                        f.contains(TcpFlags::FIN),
                        f.contains(TcpFlags::ACK),
                        f.contains(TcpFlags::RST),
                    )
                };
                let mut c = ModelConn {
                    server,
                    state,
                    udp,
                    expires: 0,
                };
                c.expires = self.tick() + ticks_for_secs(Self::timeout_s(&c));
                self.model
                    .insert((flow.src, flow.src_port, flow.protocol), c);
            }
            Verdict::Drop(DropReason::NoServer) => {
                if modelled {
                    assert_eq!(want, None, "{:?} found no server, reference did", self.kind);
                }
            }
            other => panic!("new flow got {other:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn schedulers_match_reference(
        kind in proptest::sample::select(Scheduler::ALL.to_vec()),
        flags in (any::<bool>(), any::<bool>()),
        ops in proptest::collection::vec(op(), 1..250),
    ) {
        let mut run = Run::new(kind);
        if matches!(kind, Scheduler::Sh | Scheduler::Mh) {
            let mut cfg = *run.b.service(run.svc).unwrap();
            cfg.flags = SchedFlags { fallback: flags.0, port: flags.1 };
            run.b.edit_service(run.svc, cfg).unwrap();
            let mut ucfg = *run.b.service(ServiceId(1)).unwrap();
            ucfg.flags = cfg.flags;
            run.b.edit_service(ServiceId(1), ucfg).unwrap();
        }
        for op in &ops {
            run.apply(op);
        }
    }
}

fn small_layout() -> Layout {
    Layout {
        services: 2,
        servers_per_service: 8,
        mh_table_max: 0,
        connections: 64,
    }
}

fn web(b: &mut Balancer<'_>, kind: Scheduler, persist_s: u32, prefix: u8) -> ServiceId {
    let mut cfg = ServiceConfig::new(
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: vip(),
            port: 80,
        },
        kind,
    );
    cfg.persistence_timeout_s = persist_s;
    cfg.persistence_prefix_len = prefix;
    b.add_service(cfg).unwrap()
}

fn server_of(v: Verdict) -> ServerId {
    match v {
        Verdict::Forward { server, .. } => server,
        other => panic!("expected a forward, got {other:?}"),
    }
}

fn syn(c: IpAddr, port: u16) -> Flow {
    Flow::tcp(c, port, vip(), 80, TcpFlags::SYN)
}

#[test]
fn persistence_keeps_masked_client_until_idle_timeout() {
    let mut b = balancer(small_layout(), LbConfig::DEFAULT);
    let svc = web(&mut b, Scheduler::Rr, 300, 24);
    b.add_server(svc, RealServer::new(rs_addr(1), 80)).unwrap();
    b.add_server(svc, RealServer::new(rs_addr(2), 80)).unwrap();
    let mut now = Instant::from_secs(1);
    let first = server_of(b.classify(now, &syn(client(1), 1000)));
    // Many connections from the same /24, rr would alternate without the template.
    for i in 0..20u16 {
        now += Duration::from_secs(10);
        let c = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 200 + (i % 50) as u8));
        let v = b.classify(now, &Flow::tcp(c, 2000 + i, vip(), 80, TcpFlags::SYN));
        assert_eq!(
            server_of(v),
            first,
            "connection {i} left its persistent server"
        );
        // Close each one so only the template keeps the client.
        b.classify(now, &Flow::tcp(c, 2000 + i, vip(), 80, TcpFlags::RST));
    }
    // Another /24 gets the other server (rr moves on once).
    let other = server_of(b.classify(now, &syn(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 99)), 1)));
    assert_ne!(other, first);
    // Idle past the template timeout (and every connection's): rescheduled.
    now += Duration::from_secs(1_000);
    b.handle_timeout(now);
    let mut templates = 0;
    b.for_each_template(|_, _| templates += 1);
    assert_eq!(
        templates, 0,
        "templates expire after persistence_timeout with no traffic"
    );
    assert_eq!(b.tracked(), 0);
}

#[test]
fn template_lives_while_a_connection_does_then_60s_steps() {
    let mut b = balancer(small_layout(), LbConfig::DEFAULT);
    let svc = web(&mut b, Scheduler::Rr, 30, 32);
    b.add_server(svc, RealServer::new(rs_addr(1), 80)).unwrap();
    b.add_server(svc, RealServer::new(rs_addr(2), 80)).unwrap();
    let mut now = Instant::from_secs(1);
    let c = client(7);
    let first = server_of(b.classify(now, &syn(c, 1000)));
    let est = Flow::tcp(c, 1000, vip(), 80, TcpFlags::ACK);
    assert_eq!(server_of(b.classify(now, &est)), first);
    // Keep the connection busy for 5 minutes, far past the 30 s template.
    for _ in 0..30 {
        now += Duration::from_secs(10);
        assert_eq!(server_of(b.classify(now, &est)), first);
    }
    // The template is still there: a new connection follows it.
    let mut seen = 0;
    b.for_each_template(|s, _| {
        assert_eq!(s, first);
        seen += 1
    });
    assert_eq!(seen, 1, "the template survives while its connection lives");
    assert_eq!(server_of(b.classify(now, &syn(c, 1001))), first);
    let info = b.server_info(first).unwrap();
    assert_eq!((info.active, info.persistent), (2, 1));
}

#[test]
fn removed_server_reschedules_persistent_clients() {
    let mut b = balancer(
        small_layout(),
        LbConfig {
            expire_nodest_conn: true,
            ..LbConfig::DEFAULT
        },
    );
    let svc = web(&mut b, Scheduler::Wlc, 300, 32);
    let a = b.add_server(svc, RealServer::new(rs_addr(1), 80)).unwrap();
    let bb = b.add_server(svc, RealServer::new(rs_addr(2), 80)).unwrap();
    let now = Instant::from_secs(1);
    let c = client(3);
    let first = server_of(b.classify(now, &syn(c, 1000)));
    let other = if first == a { bb } else { a };
    b.remove_server(svc, first).unwrap();
    // The old connection's next SYN (a retransmission) expires it and is rescheduled.
    assert_eq!(server_of(b.classify(now, &syn(c, 1000))), other);
    assert_eq!(server_of(b.classify(now, &syn(c, 1001))), other);
    assert_eq!(b.stats().templates_invalidated, 1);
    assert!(b.stats().nodest_expired >= 1);
    // Without expire_nodest_conn the connection's packets are dropped.
    let mut b2 = balancer(small_layout(), LbConfig::DEFAULT);
    let svc2 = web(&mut b2, Scheduler::Wlc, 0, 32);
    let only = b2
        .add_server(svc2, RealServer::new(rs_addr(1), 80))
        .unwrap();
    b2.add_server(svc2, RealServer::new(rs_addr(2), 80))
        .unwrap();
    let f = syn(c, 5);
    let s = server_of(b2.classify(now, &f));
    b2.remove_server(svc2, s).unwrap();
    let ack = Flow::tcp(c, 5, vip(), 80, TcpFlags::ACK);
    assert_eq!(
        b2.classify(now, &ack),
        Verdict::Drop(DropReason::ServerGone)
    );
    // Re-adding it (IPVS's trash) revives the connection.
    let back = b2
        .add_server(
            svc2,
            RealServer::new(b2.server_info(s).unwrap().server.addr, 80),
        )
        .unwrap();
    assert_eq!(back, s);
    assert_eq!(server_of(b2.classify(now, &ack)), s);
    let _ = only;
}

#[test]
fn quiescent_template_option() {
    for expire in [false, true] {
        let cfg = LbConfig {
            expire_quiescent_template: expire,
            ..LbConfig::DEFAULT
        };
        let mut b = balancer(small_layout(), cfg);
        let svc = web(&mut b, Scheduler::Rr, 300, 32);
        b.add_server(svc, RealServer::new(rs_addr(1), 80)).unwrap();
        b.add_server(svc, RealServer::new(rs_addr(2), 80)).unwrap();
        let now = Instant::from_secs(1);
        let c = client(9);
        let first = server_of(b.classify(now, &syn(c, 1)));
        b.set_weight(svc, first, 0).unwrap();
        let next = server_of(b.classify(now, &syn(c, 2)));
        assert_eq!(next == first, !expire, "expire_quiescent_template={expire}");
    }
}

#[test]
fn ipv6_granularity_masks_the_prefix() {
    let mut b = balancer(small_layout(), LbConfig::DEFAULT);
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x80));
    let mut cfg = ServiceConfig::new(
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: v6,
            port: 443,
        },
        Scheduler::Rr,
    );
    cfg.persistence_timeout_s = 60;
    cfg.persistence_prefix_len = 64;
    let svc = b.add_service(cfg).unwrap();
    for i in 1..=3 {
        b.add_server(
            svc,
            RealServer::new(
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i)),
                443,
            ),
        )
        .unwrap();
    }
    let now = Instant::from_secs(1);
    let c = |n: u16, h: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xa, n, 0, 0, 0, h));
    let s1 = server_of(b.classify(now, &Flow::tcp(c(1, 1), 1, v6, 443, TcpFlags::SYN)));
    assert_eq!(
        server_of(b.classify(now, &Flow::tcp(c(1, 99), 2, v6, 443, TcpFlags::SYN))),
        s1
    );
    let s2 = server_of(b.classify(now, &Flow::tcp(c(2, 1), 3, v6, 443, TcpFlags::SYN)));
    assert_ne!(s1, s2, "another /64 is scheduled on its own");
}

#[test]
fn table_full_degrades_to_stateless_hashing_without_evicting() {
    let layout = Layout {
        services: 1,
        servers_per_service: 4,
        mh_table_max: 0,
        connections: 16,
    };
    let mut b = balancer(layout, LbConfig::DEFAULT);
    let svc = web(&mut b, Scheduler::Wlc, 0, 32);
    b.add_server(svc, RealServer::new(rs_addr(1), 80)).unwrap();
    b.add_server(svc, RealServer::new(rs_addr(2), 80)).unwrap();
    let now = Instant::from_secs(1);
    let mut est = Vec::new();
    for p in 0..16u16 {
        let s = server_of(b.classify(now, &syn(client(1), p)));
        est.push((p, s));
    }
    // A flood of new flows: forwarded statelessly, deterministically.
    for p in 100..200u16 {
        let v = b.classify(now, &syn(client(2), p));
        let again = b.classify(now, &syn(client(2), p));
        assert!(matches!(v, Verdict::Forward { tracked: false, .. }));
        assert_eq!(v, again);
    }
    assert_eq!(b.stats().stateless_forwards, 200);
    // Established flows kept their slots and servers.
    for (p, s) in est {
        let ack = Flow::tcp(client(1), p, vip(), 80, TcpFlags::ACK);
        assert_eq!(
            b.classify(now, &ack),
            Verdict::Forward {
                server: s,
                addr: b.server_info(s).unwrap().server.addr,
                port: 80,
                tracked: true
            }
        );
    }
    let mut d = balancer(
        layout,
        LbConfig {
            table_full: TableFullPolicy::Drop,
            ..LbConfig::DEFAULT
        },
    );
    let svc = web(&mut d, Scheduler::Rr, 0, 32);
    d.add_server(svc, RealServer::new(rs_addr(1), 80)).unwrap();
    for p in 0..17u16 {
        let v = d.classify(now, &syn(client(1), p));
        if p == 16 {
            assert_eq!(v, Verdict::Drop(DropReason::TableFull));
        }
    }
    assert_eq!(d.stats().drop_table_full, 1);
}

#[test]
fn sorry_server_takes_new_flows_while_active() {
    let mut b = balancer(small_layout(), LbConfig::DEFAULT);
    let svc = web(&mut b, Scheduler::Wlc, 0, 32);
    let real = b.add_server(svc, RealServer::new(rs_addr(1), 80)).unwrap();
    let sorry = b
        .set_sorry_server(svc, Some((rs_addr(9), 80)))
        .unwrap()
        .unwrap();
    let now = Instant::from_secs(1);
    assert_eq!(server_of(b.classify(now, &syn(client(1), 1))), real);
    b.set_sorry_active(svc, true).unwrap();
    assert_eq!(server_of(b.classify(now, &syn(client(1), 2))), sorry);
    // Existing flows keep their server.
    assert_eq!(
        server_of(b.classify(now, &Flow::tcp(client(1), 1, vip(), 80, TcpFlags::ACK))),
        real
    );
    b.set_sorry_active(svc, false).unwrap();
    assert_eq!(server_of(b.classify(now, &syn(client(1), 3))), real);
}

#[test]
fn thresholds_overload_and_recover() {
    let mut b = balancer(small_layout(), LbConfig::DEFAULT);
    let svc = web(&mut b, Scheduler::Wlc, 0, 32);
    let mut rs = RealServer::new(rs_addr(1), 80);
    rs.uthreshold = 2;
    rs.lthreshold = 1;
    let a = b.add_server(svc, rs).unwrap();
    let now = Instant::from_secs(1);
    assert_eq!(server_of(b.classify(now, &syn(client(1), 1))), a);
    assert_eq!(server_of(b.classify(now, &syn(client(1), 2))), a);
    assert!(b.server_info(a).unwrap().overloaded);
    assert_eq!(
        b.classify(now, &syn(client(1), 3)),
        Verdict::Drop(DropReason::NoServer)
    );
    // One closes and expires (CLOSE, 10 s): still at 1, not below lthreshold 1.
    // (RST in SYN_RECV keeps SYN_RECV in IPVS's table: establish first.)
    b.classify(now, &Flow::tcp(client(1), 1, vip(), 80, TcpFlags::ACK));
    b.classify(now, &Flow::tcp(client(1), 2, vip(), 80, TcpFlags::ACK));
    b.classify(now, &Flow::tcp(client(1), 1, vip(), 80, TcpFlags::RST));
    b.handle_timeout(now + Duration::from_secs(11));
    assert!(b.server_info(a).unwrap().overloaded);
    b.classify(
        now + Duration::from_secs(11),
        &Flow::tcp(client(1), 2, vip(), 80, TcpFlags::RST),
    );
    b.handle_timeout(now + Duration::from_secs(22));
    assert!(!b.server_info(a).unwrap().overloaded);
    assert_eq!(
        server_of(b.classify(now + Duration::from_secs(22), &syn(client(1), 4))),
        a
    );
}

#[test]
fn not_virtual_and_not_syn() {
    let mut b = balancer(small_layout(), LbConfig::DEFAULT);
    let svc = web(&mut b, Scheduler::Wlc, 0, 32);
    b.add_server(svc, RealServer::new(rs_addr(1), 80)).unwrap();
    let now = Instant::from_secs(1);
    assert_eq!(
        b.classify(now, &Flow::tcp(client(1), 1, vip(), 81, TcpFlags::SYN)),
        Verdict::NotVirtual
    );
    assert_eq!(
        b.classify(now, &Flow::udp(client(1), 1, vip(), 80)),
        Verdict::NotVirtual
    );
    assert_eq!(
        b.classify(now, &Flow::tcp(client(1), 1, vip(), 80, TcpFlags::ACK)),
        Verdict::Drop(DropReason::NotSyn)
    );
    b.set_config(LbConfig {
        sloppy_tcp: true,
        ..LbConfig::DEFAULT
    });
    assert!(matches!(
        b.classify(now, &Flow::tcp(client(1), 1, vip(), 80, TcpFlags::ACK)),
        Verdict::Forward { .. }
    ));
}

#[test]
fn storage_sizes_are_checked() {
    let layout = small_layout();
    let st = Storage {
        services: leak(ServiceSlot::EMPTY, layout.service_slots()),
        servers: leak(ServerSlot::EMPTY, layout.server_slots()),
        tree: leak(0u16, layout.tree_nodes()),
        mh: leak(0u16, layout.mh_entries()),
        conns: leak(ConnSlot::EMPTY, layout.conn_slots() - 1),
        index: leak(0u8, layout.index_bytes()),
        wheel: leak(0u32, layout.wheel_buckets()),
    };
    let e = Balancer::new(layout, st, LbConfig::DEFAULT, 1, Instant::ZERO)
        .err()
        .unwrap();
    assert_eq!(
        e,
        LbError::StorageSize {
            part: "conns",
            need: layout.conn_slots(),
            got: layout.conn_slots() - 1
        }
    );
    assert!(std::format!("{e}").contains("conns"));
    assert_eq!(
        core::mem::size_of::<ConnSlot>(),
        64,
        "64 bytes per connection slot"
    );
}

#[test]
fn mh_disruption_and_balance() {
    const M: u32 = 65_537;
    let layout = Layout {
        services: 1,
        servers_per_service: 1024,
        mh_table_max: M,
        connections: 16,
    };
    let mut b = balancer(layout, LbConfig::DEFAULT);
    let mut cfg = ServiceConfig::new(
        ServiceKey::Addr {
            protocol: Protocol::Udp,
            vip: vip(),
            port: 53,
        },
        Scheduler::Mh,
    );
    cfg.mh_table_size = M;
    let svc = b.add_service(cfg).unwrap();
    let mut ids = Vec::new();
    for i in 0..1000u32 {
        let addr = IpAddr::V4(Ipv4Addr::from(0xC633_0000u32 + i)); // 198.51.0.0/16 block, documentation-only use
        ids.push(b.add_server(svc, RealServer::new(addr, 53)).unwrap());
    }
    let table = |b: &Balancer<'_>| -> Vec<u16> { b.mh_table(svc).unwrap().to_vec() };
    let before = table(&b);
    let mut per = HashMap::new();
    for e in &before {
        *per.entry(*e).or_insert(0u32) += 1;
    }
    let fair = f64::from(M) / 1000.0;
    for (s, n) in &per {
        let dev = (f64::from(*n) - fair).abs() / fair;
        assert!(dev <= 0.01, "server {s} has {n} entries, fair is {fair:.1}");
    }
    assert_eq!(per.len(), 1000);
    for id in ids.iter().step_by(100) {
        b.remove_server(svc, *id).unwrap();
    }
    let after = table(&b);
    let gone: Vec<u16> = ids.iter().step_by(100).map(|id| id.0).collect();
    let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    let moved_survivors = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| a != b && !gone.contains(a))
        .count();
    let frac = moved as f64 / f64::from(M);
    let frac_survivors = moved_survivors as f64 / f64::from(M);
    std::println!(
        "mh 65537/1000, 1% removed: {:.2}% of entries moved, {:.2}% from surviving servers",
        frac * 100.0,
        frac_survivors * 100.0
    );
    // IPVS's exact Maglev moves about 3.3% in all (1% must move); the
    // entries of surviving servers that move stay under 3%. See
    // BENCHMARKS.md: the literal "at most 3% in all" is not met.
    assert!(
        frac_survivors <= 0.03,
        "surviving servers lost {:.2}% of entries",
        frac_survivors * 100.0
    );
    assert!(
        frac <= 0.035,
        "removing 1% of servers moved {:.2}% of entries",
        frac * 100.0
    );
}

/// A balancer for the batch test: wlc on TCP :80 with persistence per /24,
/// rr on UDP :53, `connections` slots.
fn batch_balancer(connections: u32) -> Balancer<'static> {
    let layout = Layout {
        services: 2,
        servers_per_service: 8,
        mh_table_max: 0,
        connections,
    };
    let mut b = balancer(layout, LbConfig::DEFAULT);
    let mut cfg = ServiceConfig::new(
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: vip(),
            port: 80,
        },
        Scheduler::Wlc,
    );
    cfg.persistence_timeout_s = 30;
    cfg.persistence_prefix_len = 24;
    let tcp = b.add_service(cfg).unwrap();
    let udp = b
        .add_service(ServiceConfig::new(
            ServiceKey::Addr {
                protocol: Protocol::Udp,
                vip: vip(),
                port: 53,
            },
            Scheduler::Rr,
        ))
        .unwrap();
    for i in 1..=4 {
        b.add_server(
            tcp,
            RealServer::new(rs_addr(i), 80).with_weight(u32::from(i)),
        )
        .unwrap();
        b.add_server(udp, RealServer::new(rs_addr(i), 53)).unwrap();
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// `classify_batch` decides exactly as `classify` one packet at a time,
    /// including packets of the same flow within one batch (a SYN then its
    /// ACK), reuse of closed connections and a full table.
    #[test]
    fn classify_batch_equals_classify(
        small in any::<bool>(),
        batches in proptest::collection::vec(
            (
                proptest::collection::vec((0u16..48, 0u16..6, 0u8..6, any::<bool>()), 0..70),
                0u64..40_000,
            ),
            1..12,
        ),
    ) {
        let n = if small { 24 } else { 4096 };
        let mut one = batch_balancer(n);
        let mut many = batch_balancer(n);
        let mut now = Instant::ZERO;
        for (packets, advance_ms) in batches {
            now += Duration::from_millis(advance_ms);
            let flows: Vec<Flow> = packets
                .iter()
                .map(|&(c, port, flags, udp)| {
                    let src = IpAddr::V4(Ipv4Addr::new(203, 0, 113 - (c % 2) as u8, c as u8));
                    if udp {
                        Flow::udp(src, 1000 + port, vip(), 53)
                    } else {
                        let f = [0x02u8, 0x10, 0x11, 0x04, 0x12, 0x00][flags as usize];
                        Flow::tcp(src, 1000 + port, vip(), 80, TcpFlags::from_bits(f))
                    }
                })
                .collect();
            let expect: Vec<Verdict> = flows.iter().map(|f| one.classify(now, f)).collect();
            let mut got = vec![Verdict::NotVirtual; flows.len()];
            many.classify_batch(now, &flows, &mut got);
            prop_assert_eq!(got, expect);
            prop_assert_eq!(one.stats(), many.stats());
            prop_assert_eq!(one.tracked(), many.tracked());
            for f in &flows {
                prop_assert_eq!(one.connection(f), many.connection(f));
            }
        }
    }
}
