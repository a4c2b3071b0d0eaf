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
        index: leak(0u32, layout.index_entries()),
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
    Add { addr: u8, weight: u32, uthr: u32, lthr: u32 },
    Remove { pick: usize },
    Weight { pick: usize, weight: u32 },
    New { client: u16, udp: bool },
    Packet { pick: usize, flags: u8 },
    Advance { ms: u64 },
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
        let layout = Layout { services: 2, servers_per_service: 32, mh_table_max: 251, connections: 4096 };
        let mut b = balancer(layout, LbConfig::DEFAULT);
        let mut cfg = ServiceConfig::new(
            ServiceKey::Addr { protocol: Protocol::Tcp, vip: vip(), port: 80 },
            kind,
        );
        cfg.mh_table_size = 251;
        let svc = b.add_service(cfg).unwrap();
        // A UDP twin on the same VIP shares nothing but the table.
        let mut ucfg = cfg;
        ucfg.key = ServiceKey::Addr { protocol: Protocol::Udp, vip: vip(), port: 80 };
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
        if c.udp { 300 } else { c.state.default_timeout_s() }
    }

    /// What the reference scheduler picks for `flow` on service `svc`, with
    /// `adjust` (a connection about to be expired) taken off first.
    fn expected(&mut self, svc: ServiceId, flow: &Flow, adjust: Option<ModelConn>) -> Option<ServerId> {
        let (ids, mut list) = snapshot(&self.b, svc);
        if let Some(c) = adjust {
            if let Some(p) = ids.iter().position(|i| *i == c.server) {
                if c.inactive() {
                    list[p].inactive -= 1;
                } else {
                    list[p].active -= 1;
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
                reference::sh_pick(&t, &list, flow.src, flow.src_port, cfg.flags.port, cfg.flags.fallback)
            }
            Scheduler::Dh => reference::dh_pick(&reference::hash_table(&list), &list, flow.dst),
            Scheduler::Mh => {
                let mut t = vec![None; cfg.mh_table_size as usize];
                let mut next = vec![0u64; list.len()];
                reference::mh_table(&list, &mut t, &mut next);
                reference::mh_pick(&t, &list, flow.src, flow.src_port, cfg.flags.port, cfg.flags.fallback)
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
            let info = self.b.server_info(*id).expect("server of a live connection");
            assert_eq!((info.active, info.inactive), (*a, *i), "counters of {id:?}");
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Add { addr, weight, uthr, lthr } => {
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
                    self.b.remove_server(self.udp_svc(), uids[pick % uids.len()]).unwrap();
                }
            }
            Op::Weight { pick, weight } => {
                let (ids, _) = snapshot(&self.b, self.svc);
                if ids.is_empty() {
                    return;
                }
                self.b.set_weight(self.svc, ids[pick % ids.len()], weight).unwrap();
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
                let svc = if flow.protocol == 17 { self.udp_svc() } else { self.svc };
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
                                Verdict::Forward { server, tracked: true, .. } => {
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
                        let can = flow.protocol == 17 || (syn && !rst);
                        let want = if can { self.expected(svc, &flow, None) } else { None };
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
            Verdict::Forward { server, tracked, .. } => {
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
                let mut c = ModelConn { server, state, udp, expires: 0 };
                c.expires = self.tick() + ticks_for_secs(Self::timeout_s(&c));
                self.model.insert((flow.src, flow.src_port, flow.protocol), c);
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
