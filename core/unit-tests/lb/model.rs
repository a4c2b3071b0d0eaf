//! The property test of every scheduler against an independent model of
//! IPVS as vrlb documents it. The model keeps its own server lists in IPVS
//! order (a server added or revived goes to the head), its own connection
//! counts and overload flags (set and cleared from the thresholds as
//! ip_vs_conn.c `ip_vs_bind_dest`/`ip_vs_unbind_dest` and ip_vs_ctl.c
//! `__ip_vs_update_dest` do), its own connections, persistence templates
//! and expiry, the full table's stateless choice and grace period, and
//! picks with `lb::reference`'s linear scans. Nothing is read back from the
//! balancer but what it answers; both are compared after every operation.
//! Test-only.

// The crate is no_std; this test module links std for itself (lib.rs).
extern crate std;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::collections::HashMap;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::conn::{tick_of, ticks_for_secs};
use super::reference::{self, RefRr, RefServer, RefWrr};
use super::tcp::{TcpState, next_state};
use super::tests::balancer;
use super::*;
use crate::time::{Duration, Instant};

const PORT: u16 = 80;
const MARK: u32 = 1;

/// How one case is set up.
#[derive(Clone, Copy, Debug)]
struct Setup {
    kind: Scheduler,
    /// One fwmark service (any destination address) instead of a TCP
    /// service and its UDP twin on one VIP.
    fwmark: bool,
    v6: bool,
    /// Persistence timeout (s) and prefix length.
    persist: Option<(u32, u8)>,
    connections: u32,
    mh_size: u32,
    flags: SchedFlags,
    cfg: LbConfig,
}

fn setup(kind: Scheduler) -> impl Strategy<Value = Setup> {
    let fwmark = if kind == Scheduler::Dh {
        prop::bool::weighted(0.8)
    } else {
        prop::bool::weighted(0.4)
    };
    let persist = prop_oneof![
        1 => Just(None),
        1 => (prop::sample::select(vec![1u32, 30, 300]), 0usize..4).prop_map(Some),
    ];
    let connections = prop_oneof![3 => Just(4096u32), 2 => 8u32..48];
    let cfg = (
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.15),
        prop::sample::select(vec![0u32, 2, 900]),
    )
        .prop_map(|(nodest, quiescent, sloppy, drop, grace)| LbConfig {
            expire_nodest_conn: nodest,
            expire_quiescent_template: quiescent,
            sloppy_tcp: sloppy,
            table_full: if drop {
                TableFullPolicy::Drop
            } else {
                TableFullPolicy::StatelessHash
            },
            stateless_grace_s: grace,
            ..LbConfig::DEFAULT
        });
    (
        fwmark,
        prop::bool::weighted(0.3),
        persist,
        connections,
        prop::sample::select(vec![7u32, 13, 61, 251, 1021, 4093]),
        (any::<bool>(), any::<bool>()),
        cfg,
    )
        .prop_map(
            move |(fwmark, v6, persist, connections, mh_size, flags, cfg)| Setup {
                kind,
                fwmark,
                v6,
                persist: persist.map(|(t, p)| {
                    let prefixes: [u8; 4] = if v6 {
                        [128, 64, 48, 56]
                    } else {
                        [32, 24, 16, 8]
                    };
                    (t, prefixes[p])
                }),
                connections,
                mh_size,
                flags: SchedFlags {
                    fallback: flags.0,
                    port: flags.1,
                },
                cfg,
            },
        )
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
        dst: u8,
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
            lthr,
        }),
        1 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
        2 => (any::<usize>(), weight).prop_map(|(pick, weight)| Op::Weight { pick, weight }),
        8 => (any::<u16>(), prop::bool::weighted(0.2), any::<u8>())
            .prop_map(|(client, udp, dst)| Op::New { client, udp, dst }),
        8 => (any::<usize>(), prop_oneof![Just(0x10u8), Just(0x11), Just(0x04), Just(0x02), Just(0x00), Just(0x12)])
            .prop_map(|(pick, flags)| Op::Packet { pick, flags }),
        2 => prop_oneof![0u64..2_000, 0u64..200_000, Just(1_000_000u64)].prop_map(|ms| Op::Advance { ms }),
    ]
}

fn server_addr(i: u8, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            1,
            0,
            0,
            0,
            0,
            u16::from(i) + 1,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, i + 1))
    }
}

/// Clients in a few networks, their addresses on both sides of every
/// granularity's boundary, so each prefix length groups them differently.
fn client_addr(i: u16, v6: bool) -> IpAddr {
    let g = (i / 7) % 3;
    let h = (i % 61) * 4 + 1;
    if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0xa + g % 2,
            g * 0x80,
            (i % 2) * 0x8000,
            0,
            0,
            h,
        ))
    } else {
        let net = [[192, 0, 2], [198, 51, 100], [203, 0, 113]][g as usize];
        IpAddr::V4(Ipv4Addr::new(net[0], net[1], net[2], h as u8))
    }
}

fn vip(dst: u8, s: &Setup) -> IpAddr {
    let d = if s.fwmark { dst.max(1) } else { 10 };
    if s.v6 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(d)))
    } else {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, d))
    }
}

/// `addr` masked to `len` bits, written out again here.
fn masked(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

/// What the balancer should answer, by address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Forward(IpAddr, bool),
    Drop(DropReason),
    NotVirtual,
}

fn expect_of(v: Verdict) -> Expect {
    match v {
        Verdict::Forward { addr, tracked, .. } => Expect::Forward(addr, tracked),
        Verdict::Drop(r) => Expect::Drop(r),
        Verdict::NotVirtual => Expect::NotVirtual,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Count {
    Template,
    Active,
    Inactive,
}

/// One IPVS destination.
#[derive(Clone, Debug)]
struct MServer {
    weight: u32,
    last_weight: u32,
    uthr: u32,
    lthr: u32,
    active: u32,
    inactive: u32,
    persist: u32,
    overloaded: bool,
    listed: bool,
}

impl MServer {
    fn total(&self) -> u64 {
        u64::from(self.active) + u64::from(self.inactive)
    }

    fn refs(&self) -> u64 {
        self.total() + u64::from(self.persist)
    }

    /// `__ip_vs_update_dest`.
    fn configure(&mut self, weight: u32, uthr: u32, lthr: u32, add: bool) {
        if add || weight != 0 {
            self.last_weight = weight;
        }
        if uthr == 0 || uthr > self.uthr {
            self.overloaded = false;
        }
        self.weight = weight;
        self.uthr = uthr;
        self.lthr = lthr;
    }

    /// `ip_vs_bind_dest`: overloaded at the upper threshold.
    fn bind(&mut self, c: Count) {
        match c {
            Count::Template => self.persist += 1,
            Count::Active => self.active += 1,
            Count::Inactive => self.inactive += 1,
        }
        if self.uthr != 0 && self.total() >= u64::from(self.uthr) {
            self.overloaded = true;
        }
    }

    /// `ip_vs_unbind_dest`: below the lower threshold (3/4 of the upper
    /// one without it), or with no threshold, the overload clears.
    fn unbind(&mut self, c: Count) {
        match c {
            Count::Template => self.persist -= 1,
            Count::Active => self.active -= 1,
            Count::Inactive => self.inactive -= 1,
        }
        let total = self.total();
        if self.lthr != 0 {
            if total < u64::from(self.lthr) {
                self.overloaded = false;
            }
        } else if self.uthr != 0 {
            if total * 4 < u64::from(self.uthr) * 3 {
                self.overloaded = false;
            }
        } else {
            self.overloaded = false;
        }
    }

    fn as_ref_server(&self, addr: IpAddr) -> RefServer {
        RefServer {
            addr,
            port: PORT,
            weight: self.weight,
            last_weight: self.last_weight,
            active: self.active,
            inactive: self.inactive,
            overloaded: self.overloaded,
        }
    }
}

/// One virtual service.
#[derive(Default)]
struct MService {
    /// Listed and removed-but-referenced servers.
    servers: HashMap<IpAddr, MServer>,
    /// Listed servers, head first.
    list: Vec<IpAddr>,
    rr: RefRr,
    wrr: RefWrr,
    /// The mh table (list positions), rebuilt after a change.
    mh: Option<Vec<Option<usize>>>,
}

impl MService {
    fn refs(&self) -> Vec<RefServer> {
        self.list
            .iter()
            .map(|a| self.servers[a].as_ref_server(*a))
            .collect()
    }

    fn changed(&mut self) {
        let list = self.refs();
        self.wrr.changed(&list);
        self.mh = None;
    }

    fn mh_table(&mut self, size: u32) -> &[Option<usize>] {
        if self.mh.is_none() {
            let list = self.refs();
            let mut t = vec![None; size as usize];
            let mut next = vec![0u64; list.len()];
            let mut order = vec![0usize; list.len()];
            reference::mh_table(&list, &mut t, &mut next, &mut order);
            self.mh = Some(t);
        }
        self.mh.as_deref().unwrap()
    }

    /// Drops a removed server nothing points to any more.
    fn forget_if_free(&mut self, addr: IpAddr) {
        if let Some(s) = self.servers.get(&addr) {
            if !s.listed && s.refs() == 0 {
                self.servers.remove(&addr);
            }
        }
    }

    fn unbind(&mut self, addr: IpAddr, c: Count) {
        self.servers.get_mut(&addr).unwrap().unbind(c);
        self.forget_if_free(addr);
    }
}

type ConnKey = (u8, IpAddr, u16, IpAddr, u16);

#[derive(Clone, Copy, Debug)]
struct MConn {
    svc: usize,
    server: IpAddr,
    tcp: bool,
    state: TcpState,
    inactive: bool,
    template: Option<usize>,
    expires: u64,
}

#[derive(Clone, Copy, Debug)]
struct MTemplate {
    svc: usize,
    client: IpAddr,
    vport: u16,
    server: IpAddr,
    expires: u64,
    /// Kept for its connections: 60 s from then on.
    late: bool,
    control: u32,
    /// Its server went away: no longer found, lives for its connections.
    orphan: bool,
}

/// The counters the model keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct MStats {
    templates_created: u64,
    template_hits: u64,
    templates_invalidated: u64,
    stateless_forwards: u64,
    stateless_continued: u64,
    stateless_adopted: u64,
    adopted_mid_flow: u64,
    nodest_expired: u64,
}

struct Model {
    s: Setup,
    svcs: Vec<MService>,
    conns: HashMap<ConnKey, MConn>,
    templates: HashMap<usize, MTemplate>,
    next_template: usize,
    stateless_until: u64,
    now: Instant,
    stats: MStats,
}

fn conn_key(f: &Flow) -> ConnKey {
    (f.protocol, f.src, f.src_port, f.dst, f.dst_port)
}

impl Model {
    fn new(s: Setup) -> Model {
        let n = if s.fwmark { 1 } else { 2 };
        Model {
            s,
            svcs: (0..n).map(|_| MService::default()).collect(),
            conns: HashMap::new(),
            templates: HashMap::new(),
            next_template: 0,
            stateless_until: 0,
            now: Instant::ZERO,
            stats: MStats::default(),
        }
    }

    fn tick(&self) -> u64 {
        tick_of(self.now.as_micros())
    }

    fn live(&self) -> usize {
        self.conns.len() + self.templates.len()
    }

    fn free(&self) -> usize {
        self.s.connections as usize - self.live()
    }

    // ----- configuration -----------------------------------------------

    fn add(&mut self, svc: usize, addr: IpAddr, w: u32, u: u32, l: u32) -> Result<(), LbError> {
        let mh_size = self.s.mh_size;
        let kind = self.s.kind;
        let m = &mut self.svcs[svc];
        if m.servers.get(&addr).is_some_and(|s| s.listed) {
            return Err(LbError::ServerExists);
        }
        if kind == Scheduler::Mh && m.list.len() as u32 >= mh_size {
            return Err(LbError::TooManyServersForMh);
        }
        // A removed server still referenced is revived (IPVS's trash).
        let s = m.servers.entry(addr).or_insert(MServer {
            weight: 0,
            last_weight: 0,
            uthr: 0,
            lthr: 0,
            active: 0,
            inactive: 0,
            persist: 0,
            overloaded: false,
            listed: false,
        });
        s.configure(w, u, l, true);
        s.listed = true;
        m.list.insert(0, addr);
        m.rr.on_add();
        m.changed();
        Ok(())
    }

    fn remove(&mut self, svc: usize, addr: IpAddr) {
        let m = &mut self.svcs[svc];
        let pos = m.list.iter().position(|a| *a == addr).unwrap();
        m.rr.on_remove(pos);
        m.list.remove(pos);
        m.servers.get_mut(&addr).unwrap().listed = false;
        m.forget_if_free(addr);
        m.changed();
    }

    fn set_weight(&mut self, svc: usize, addr: IpAddr, w: u32) {
        let m = &mut self.svcs[svc];
        let s = m.servers.get_mut(&addr).unwrap();
        let (u, l) = (s.uthr, s.lthr);
        s.configure(w, u, l, false);
        m.changed();
    }

    // ----- time ----------------------------------------------------------

    /// Connections due before the tick go first, then templates: kept
    /// 60 s more while they control connections.
    fn expire(&mut self) {
        let t = self.tick();
        let due: Vec<ConnKey> = self
            .conns
            .iter()
            .filter(|(_, c)| c.expires < t)
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            self.expire_conn(&k);
        }
        let due: Vec<usize> = self
            .templates
            .iter()
            .filter(|(_, x)| x.expires < t)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let x = self.templates.get_mut(&id).unwrap();
            if x.control > 0 {
                x.late = true;
                x.expires = t + ticks_for_secs(60);
            } else {
                let x = self.templates.remove(&id).unwrap();
                self.svcs[x.svc].unbind(x.server, Count::Template);
            }
        }
    }

    fn expire_conn(&mut self, k: &ConnKey) {
        let c = self.conns.remove(k).unwrap();
        let count = if c.inactive {
            Count::Inactive
        } else {
            Count::Active
        };
        self.svcs[c.svc].unbind(c.server, count);
        if let Some(t) = c.template {
            self.templates.get_mut(&t).unwrap().control -= 1;
        }
    }

    fn timeout_s(tcp: bool, state: TcpState) -> u32 {
        if tcp { state.default_timeout_s() } else { 300 }
    }

    // ----- scheduling ----------------------------------------------------

    /// The scheduler's pick (rr and wrr move on).
    fn pick(&mut self, svc: usize, f: &Flow) -> Option<IpAddr> {
        let (kind, flags, size) = (self.s.kind, self.s.flags, self.s.mh_size);
        let m = &mut self.svcs[svc];
        let list = m.refs();
        let pos = match kind {
            Scheduler::Rr => m.rr.schedule(&list),
            Scheduler::Wrr => m.wrr.schedule(&list),
            Scheduler::Sh => reference::sh_pick(
                &reference::hash_table(&list),
                &list,
                f.src,
                f.src_port,
                flags.port,
                flags.fallback,
            ),
            Scheduler::Dh => reference::dh_pick(&reference::hash_table(&list), &list, f.dst),
            Scheduler::Mh => {
                let t = m.mh_table(size).to_vec();
                reference::mh_pick(&t, &list, f.src, f.src_port, flags.port, flags.fallback)
            }
            k => reference::pick_least(k, list.iter().copied().enumerate()),
        };
        pos.map(|p| m.list[p])
    }

    /// The hash part of the stateless choice.
    fn stateless_hash(&mut self, svc: usize, f: &Flow) -> Option<IpAddr> {
        match self.s.kind {
            Scheduler::Sh | Scheduler::Dh | Scheduler::Mh => self.pick(svc, f),
            _ => {
                let m = &self.svcs[svc];
                let list = m.refs();
                let t = reference::hash_table(&list);
                reference::sh_pick(&t, &list, f.src, f.src_port, true, true).map(|p| m.list[p])
            }
        }
    }

    fn template_key(&self, f: &Flow) -> (IpAddr, u16) {
        let (_, prefix) = self.s.persist.unwrap();
        let vport = if !self.s.fwmark && f.dst_port == PORT {
            PORT
        } else {
            0
        };
        (masked(f.src, prefix), vport)
    }

    /// The client's usable template; one whose server went away (or is
    /// quiesced, with expire_quiescent_template) is orphaned.
    fn valid_template(&mut self, svc: usize, f: &Flow) -> Option<usize> {
        let (client, vport) = self.template_key(f);
        let (&id, x) = self
            .templates
            .iter()
            .find(|(_, x)| !x.orphan && x.svc == svc && x.client == client && x.vport == vport)?;
        let s = &self.svcs[svc].servers[&x.server];
        if s.listed && !(self.s.cfg.expire_quiescent_template && s.weight == 0) {
            return Some(id);
        }
        self.templates.get_mut(&id).unwrap().orphan = true;
        self.stats.templates_invalidated += 1;
        None
    }

    fn use_template(&mut self, id: usize) {
        let t = self.tick();
        let timeout = self.s.persist.unwrap().0;
        let x = self.templates.get_mut(&id).unwrap();
        x.expires = t + ticks_for_secs(if x.late { 60 } else { timeout });
    }

    // ----- packets -------------------------------------------------------

    fn classify(&mut self, f: &Flow) -> Expect {
        self.expire();
        let key = conn_key(f);
        let tcp = f.protocol == 6;
        let syn = tcp && f.tcp_flags.contains(TcpFlags::SYN);
        let rst = tcp && f.tcp_flags.contains(TcpFlags::RST);
        if let Some(c) = self.conns.get(&key).copied() {
            let s = &self.svcs[c.svc].servers[&c.server];
            let (listed, weight) = (s.listed, s.weight);
            let mut gone = false;
            if syn {
                // conn_reuse_mode: a closed connection no template controls
                // is reopened; with expire_nodest_conn so is one to a
                // quiesced server.
                let reusable =
                    c.template.is_none() && matches!(c.state, TcpState::TimeWait | TcpState::Close);
                if reusable || (self.s.cfg.expire_nodest_conn && weight == 0) {
                    self.expire_conn(&key);
                    gone = true;
                }
            }
            if !gone {
                if !listed {
                    if !self.s.cfg.expire_nodest_conn {
                        return Expect::Drop(DropReason::ServerGone);
                    }
                    self.expire_conn(&key);
                    self.stats.nodest_expired += 1;
                } else {
                    self.transition(&key, f);
                    return Expect::Forward(c.server, true);
                }
            }
        }
        // The UDP twin is service 1; a fwmark service takes both.
        let svc = usize::from(!self.s.fwmark && !tcp);
        if tcp && (rst || !syn) {
            if self.grace() {
                return self.continue_stateless(svc, f);
            }
            let consistent = self.s.kind == Scheduler::Mh;
            if rst || !(self.s.cfg.sloppy_tcp || consistent) {
                return Expect::Drop(DropReason::NotSyn);
            }
            if consistent {
                self.stats.adopted_mid_flow += 1;
            }
        }
        self.new_flow(svc, f)
    }

    fn transition(&mut self, key: &ConnKey, f: &Flow) {
        let t = self.tick();
        let c = self.conns.get_mut(key).unwrap();
        if c.tcp {
            let fl = f.tcp_flags;
            let new = next_state(
                c.state,
                fl.contains(TcpFlags::SYN),
                fl.contains(TcpFlags::FIN),
                fl.contains(TcpFlags::ACK),
                fl.contains(TcpFlags::RST),
            );
            c.state = new;
            let inactive = !new.is_active();
            if inactive != c.inactive {
                let s = self.svcs[c.svc].servers.get_mut(&c.server).unwrap();
                // A state change moves the count; thresholds read the total.
                if inactive {
                    s.active -= 1;
                    s.inactive += 1;
                } else {
                    s.inactive -= 1;
                    s.active += 1;
                }
                c.inactive = inactive;
            }
        }
        c.expires = t + ticks_for_secs(Self::timeout_s(c.tcp, c.state));
    }

    fn grace(&self) -> bool {
        self.s.cfg.table_full == TableFullPolicy::StatelessHash
            && (self.free() == 0 || self.tick() < self.stateless_until)
    }

    fn continue_stateless(&mut self, svc: usize, f: &Flow) -> Expect {
        let Some((server, template)) = self.stateless_choice(svc, f) else {
            return Expect::Drop(DropReason::NoServer);
        };
        if self.free() > 0 && !f.tcp_flags.contains(TcpFlags::RST) {
            self.stats.stateless_adopted += 1;
            return self.record(svc, server, f, template);
        }
        self.stats.stateless_continued += 1;
        Expect::Forward(server, false)
    }

    fn stateless_choice(&mut self, svc: usize, f: &Flow) -> Option<(IpAddr, Option<usize>)> {
        if self.s.persist.is_some() {
            if let Some(id) = self.valid_template(svc, f) {
                self.use_template(id);
                return Some((self.templates[&id].server, Some(id)));
            }
        }
        self.stateless_hash(svc, f).map(|s| (s, None))
    }

    fn untracked(&mut self, server: IpAddr) -> Expect {
        if self.s.cfg.table_full == TableFullPolicy::Drop {
            return Expect::Drop(DropReason::TableFull);
        }
        self.stats.stateless_forwards += 1;
        self.stateless_until = self.tick() + ticks_for_secs(self.s.cfg.stateless_grace_s);
        Expect::Forward(server, false)
    }

    fn table_full(&mut self, svc: usize, f: &Flow) -> Expect {
        if self.s.cfg.table_full == TableFullPolicy::Drop {
            return Expect::Drop(DropReason::TableFull);
        }
        match self.stateless_hash(svc, f) {
            Some(s) => self.untracked(s),
            None => Expect::Drop(DropReason::NoServer),
        }
    }

    fn new_flow(&mut self, svc: usize, f: &Flow) -> Expect {
        if self.s.persist.is_none() {
            if self.free() == 0 {
                return self.table_full(svc, f);
            }
            return match self.pick(svc, f) {
                Some(server) => self.record(svc, server, f, None),
                None => Expect::Drop(DropReason::NoServer),
            };
        }
        if let Some(id) = self.valid_template(svc, f) {
            self.use_template(id);
            self.stats.template_hits += 1;
            let server = self.templates[&id].server;
            if self.free() == 0 {
                return self.untracked(server);
            }
            return self.record(svc, server, f, Some(id));
        }
        if self.free() < 2 {
            return self.table_full(svc, f);
        }
        let Some(server) = self.pick(svc, f) else {
            return Expect::Drop(DropReason::NoServer);
        };
        let (client, vport) = self.template_key(f);
        let id = self.next_template;
        self.next_template += 1;
        let expires = self.tick() + ticks_for_secs(self.s.persist.unwrap().0);
        self.templates.insert(
            id,
            MTemplate {
                svc,
                client,
                vport,
                server,
                expires,
                late: false,
                control: 0,
                orphan: false,
            },
        );
        self.svcs[svc]
            .servers
            .get_mut(&server)
            .unwrap()
            .bind(Count::Template);
        self.stats.templates_created += 1;
        self.record(svc, server, f, Some(id))
    }

    /// A new connection; its first packet decides its state and counter.
    fn record(&mut self, svc: usize, server: IpAddr, f: &Flow, template: Option<usize>) -> Expect {
        let tcp = f.protocol == 6;
        let fl = f.tcp_flags;
        let state = if tcp {
            next_state(
                TcpState::None,
                fl.contains(TcpFlags::SYN),
                fl.contains(TcpFlags::FIN),
                fl.contains(TcpFlags::ACK),
                fl.contains(TcpFlags::RST),
            )
        } else {
            TcpState::None
        };
        let inactive = !tcp || !state.is_active();
        if let Some(t) = template {
            self.templates.get_mut(&t).unwrap().control += 1;
        }
        self.svcs[svc]
            .servers
            .get_mut(&server)
            .unwrap()
            .bind(if inactive {
                Count::Inactive
            } else {
                Count::Active
            });
        let expires = self.tick() + ticks_for_secs(Self::timeout_s(tcp, state));
        self.conns.insert(
            conn_key(f),
            MConn {
                svc,
                server,
                tcp,
                state,
                inactive,
                template,
                expires,
            },
        );
        Expect::Forward(server, true)
    }
}

/// A balancer and the model side by side.
struct Case {
    b: Balancer<'static>,
    m: Model,
    flows: Vec<Flow>,
    next_port: u16,
}

impl Case {
    fn new(s: Setup) -> Case {
        let layout = Layout {
            services: 2,
            servers_per_service: 32,
            mh_table_max: 4093,
            connections: s.connections,
        };
        let mut b = balancer(layout, s.cfg);
        let key = if s.fwmark {
            ServiceKey::Fwmark {
                mark: MARK,
                ipv6: s.v6,
            }
        } else {
            ServiceKey::Addr {
                protocol: Protocol::Tcp,
                vip: vip(0, &s),
                port: PORT,
            }
        };
        let mut cfg = ServiceConfig::new(key, s.kind);
        cfg.mh_table_size = s.mh_size;
        cfg.flags = s.flags;
        if let Some((t, p)) = s.persist {
            cfg.persistence_timeout_s = t;
            cfg.persistence_prefix_len = p;
        }
        b.add_service(cfg).unwrap();
        if !s.fwmark {
            cfg.key = ServiceKey::Addr {
                protocol: Protocol::Udp,
                vip: vip(0, &s),
                port: PORT,
            };
            b.add_service(cfg).unwrap();
        }
        Case {
            b,
            m: Model::new(s),
            flows: Vec::new(),
            next_port: 1024,
        }
    }

    fn svc_ids(&self) -> std::ops::Range<usize> {
        0..self.m.svcs.len()
    }

    fn apply(&mut self, op: &Op) {
        let v6 = self.m.s.v6;
        match *op {
            Op::Add {
                addr,
                weight,
                uthr,
                lthr,
            } => {
                let a = server_addr(addr, v6);
                let mut rs = RealServer::new(a, PORT).with_weight(weight);
                rs.uthreshold = uthr;
                rs.lthreshold = lthr;
                for i in self.svc_ids() {
                    let got = self.b.add_server(ServiceId(i as u16), rs).map(|_| ());
                    let want = self.m.add(i, a, weight, uthr, lthr);
                    assert_eq!(got, want, "adding {a}");
                }
            }
            Op::Remove { pick } => {
                let list = &self.m.svcs[0].list;
                if list.is_empty() {
                    return;
                }
                let a = list[pick % list.len()];
                for i in self.svc_ids() {
                    let id = ServiceId(i as u16);
                    let Some(server) = self.b.find_server(id, a, PORT) else {
                        assert!(!self.m.svcs[i].list.contains(&a));
                        continue;
                    };
                    self.b.remove_server(id, server).unwrap();
                    self.m.remove(i, a);
                }
            }
            Op::Weight { pick, weight } => {
                let list = &self.m.svcs[0].list;
                if list.is_empty() {
                    return;
                }
                let a = list[pick % list.len()];
                for i in self.svc_ids() {
                    let id = ServiceId(i as u16);
                    let Some(server) = self.b.find_server(id, a, PORT) else {
                        continue;
                    };
                    self.b.set_weight(id, server, weight).unwrap();
                    self.m.set_weight(i, a, weight);
                }
            }
            Op::Advance { ms } => self.m.now += Duration::from_millis(ms),
            Op::New { client, udp, dst } => {
                self.next_port = self.next_port.wrapping_add(1).max(1024);
                let (src, dst) = (client_addr(client, v6), vip(dst, &self.m.s));
                let mut f = if udp {
                    Flow::udp(src, self.next_port, dst, PORT)
                } else {
                    Flow::tcp(src, self.next_port, dst, PORT, TcpFlags::SYN)
                };
                if self.m.s.fwmark {
                    f.fwmark = MARK;
                }
                self.flows.push(f);
                self.packet(&f);
            }
            Op::Packet { pick, flags } => {
                if self.flows.is_empty() {
                    return;
                }
                let mut f = self.flows[pick % self.flows.len()];
                if f.protocol == 6 {
                    f.tcp_flags = TcpFlags(flags);
                }
                self.packet(&f);
            }
        }
        self.check();
    }

    fn packet(&mut self, f: &Flow) {
        let now = self.m.now;
        self.b.handle_timeout(now);
        let got = expect_of(self.b.classify(now, f));
        let want = self.m.classify(f);
        assert_eq!(got, want, "{:?} on {f:?}", self.m.s.kind);
    }

    /// Lists, counts, flags, connections and counters agree.
    fn check(&mut self) {
        let sps = u32::from(self.b.layout().servers_per_service);
        for i in self.svc_ids() {
            let id = ServiceId(i as u16);
            let got: Vec<IpAddr> = self.b.servers(id).map(|s| s.server.addr).collect();
            assert_eq!(got, self.m.svcs[i].list, "IPVS list order of service {i}");
            for s in self.b.servers(id) {
                let m = &self.m.svcs[i].servers[&s.server.addr];
                assert_eq!(
                    (
                        s.active,
                        s.inactive,
                        s.persistent,
                        s.overloaded,
                        s.last_weight
                    ),
                    (m.active, m.inactive, m.persist, m.overloaded, m.last_weight),
                    "server {} of service {i}",
                    s.server.addr
                );
            }
            if self.m.s.kind == Scheduler::Mh && self.m.svcs[i].mh.is_none() {
                let want: Vec<Option<IpAddr>> = {
                    let size = self.m.s.mh_size;
                    let ms = &mut self.m.svcs[i];
                    let t = ms.mh_table(size).to_vec();
                    t.iter().map(|p| p.map(|p| ms.list[p])).collect()
                };
                let got: Vec<Option<IpAddr>> = self
                    .b
                    .mh_table(id)
                    .unwrap()
                    .iter()
                    .map(|&l| {
                        (l != u16::MAX).then(|| {
                            let g = (i as u32 * sps + u32::from(l)) as u16;
                            self.b.server_info(ServerId(g)).unwrap().server.addr
                        })
                    })
                    .collect();
                assert_eq!(got, want, "mh table of service {i}");
            }
        }
        assert_eq!(
            self.b.tracked() as usize,
            self.m.live(),
            "entries in the table"
        );
        let mut got: HashMap<(usize, IpAddr, bool), u32> = HashMap::new();
        self.b.for_each_connection(|id, _, inactive| {
            let svc = (u32::from(id.0) / sps) as usize;
            let addr = self.b.server_info(id).unwrap().server.addr;
            *got.entry((svc, addr, inactive)).or_default() += 1;
        });
        let mut want: HashMap<(usize, IpAddr, bool), u32> = HashMap::new();
        for c in self.m.conns.values() {
            *want.entry((c.svc, c.server, c.inactive)).or_default() += 1;
        }
        assert_eq!(got, want, "connections by (service, server, inactive)");
        let st = self.b.stats();
        let got = MStats {
            templates_created: st.templates_created,
            template_hits: st.template_hits,
            templates_invalidated: st.templates_invalidated,
            stateless_forwards: st.stateless_forwards,
            stateless_continued: st.stateless_continued,
            stateless_adopted: st.stateless_adopted,
            adopted_mid_flow: st.adopted_mid_flow,
            nodest_expired: st.nodest_expired,
        };
        assert_eq!(got, self.m.stats, "counters");
    }
}

fn run(s: Setup, ops: &[Op]) {
    let mut c = Case::new(s);
    for op in ops {
        c.apply(op);
    }
}

/// One property test per scheduler, so each gets its share of cases and
/// the test harness runs them in parallel.
macro_rules! match_the_model {
    ($($name:ident => $kind:expr,)*) => {
        proptest! {
            // 800 cases per scheduler take about 10 s in release; debug
            // builds, several times slower, run 200.
            #![proptest_config(ProptestConfig {
                cases: if cfg!(debug_assertions) { 200 } else { 800 },
                ..ProptestConfig::default()
            })]
            $(
                #[test]
                fn $name(s in setup($kind), ops in proptest::collection::vec(op(), 1..250)) {
                    run(s, &ops);
                }
            )*
        }
    };
}

match_the_model! {
    rr_matches_the_model => Scheduler::Rr,
    wrr_matches_the_model => Scheduler::Wrr,
    lc_matches_the_model => Scheduler::Lc,
    wlc_matches_the_model => Scheduler::Wlc,
    sed_matches_the_model => Scheduler::Sed,
    nq_matches_the_model => Scheduler::Nq,
    sh_matches_the_model => Scheduler::Sh,
    dh_matches_the_model => Scheduler::Dh,
    mh_matches_the_model => Scheduler::Mh,
    fo_matches_the_model => Scheduler::Fo,
    ovf_matches_the_model => Scheduler::Ovf,
}
