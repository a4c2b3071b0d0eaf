//! Behaviour tests of the load balancer: persistence, thresholds, mh
//! disruption and consistency, table-full behaviour, batch classification.
//! The property test against an independent model is in `lb::model`.

// The crate is no_std; this test module links std for itself (lib.rs).
extern crate std;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::boxed::Box;
use std::collections::HashMap;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::tcp::TcpState;
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
fn persistence_timeout_edges() {
    let mut b = balancer(small_layout(), LbConfig::DEFAULT);
    // rr: without the template the next pick is the other server.
    let svc = web(&mut b, Scheduler::Rr, 30, 24);
    b.add_server(svc, RealServer::new(rs_addr(1), 80)).unwrap();
    b.add_server(svc, RealServer::new(rs_addr(2), 80)).unwrap();
    let eps = Duration::from_millis(20);
    let timeout = Duration::from_secs(30);
    let masked = |h: u8| IpAddr::V4(Ipv4Addr::new(203, 0, 113, h));
    // A short connection (SYN, ACK, RST: CLOSE, 10 s), so only the
    // template remembers the client.
    let short = |b: &mut Balancer<'_>, now: Instant, h: u8, port: u16| {
        let s = server_of(b.classify(now, &tcp(masked(h), port, SYN)));
        b.classify(now, &tcp(masked(h), port, ACK));
        b.classify(now, &tcp(masked(h), port, RST));
        s
    };
    let t0 = Instant::from_secs(1);
    let first = short(&mut b, t0, 1, 1000);
    // Another address of the same /24, each time just before the timeout
    // since the last use: still the same server (each use refreshes).
    let mut last = t0;
    for (k, h) in [7u8, 200, 1].into_iter().enumerate() {
        let at = last + timeout - eps;
        assert_eq!(short(&mut b, at, h, 2000 + k as u16), first, "use {k}");
        last = at;
    }
    // Just after the timeout with no traffic: the template is gone and
    // the client is scheduled afresh (rr moves on).
    let after = last + timeout + Duration::from_millis(50);
    b.handle_timeout(after);
    let mut templates = 0;
    b.for_each_template(|_, _| templates += 1);
    assert_eq!(templates, 0, "no template {timeout:?} after the last use");
    let next = short(&mut b, after, 9, 3000);
    assert_ne!(next, first, "rescheduled");

    // A template that a connection still depends on outlives the timeout:
    // an idle ESTABLISHED connection (900 s) of client .50 of another /24.
    let c2 = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 50));
    let t1 = after + Duration::from_secs(1);
    let held = server_of(b.classify(t1, &tcp(c2, 4000, SYN)));
    b.classify(t1, &tcp(c2, 4000, ACK));
    let t2 = t1 + timeout + Duration::from_millis(50);
    b.handle_timeout(t2);
    let mut kept = Vec::new();
    b.for_each_template(|s, a| kept.push((s, a)));
    assert_eq!(
        kept,
        [(held, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 0)))],
        "kept while its connection lives"
    );
    // ... and still used: a new connection of that /24 follows it.
    let follow = Flow::tcp(
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 51)),
        4001,
        vip(),
        80,
        TcpFlags::SYN,
    );
    assert_eq!(server_of(b.classify(t2, &follow)), held);
    b.classify(
        t2,
        &tcp(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 51)), 4001, RST),
    );
    // Once the connection is gone (RST, CLOSE 10 s) the template goes at
    // its next due time (60 s steps once kept, ip_vs_conn.c).
    b.classify(t2, &tcp(c2, 4000, RST));
    let t3 = t2 + Duration::from_secs(61);
    b.handle_timeout(t3);
    let mut left = 0;
    b.for_each_template(|_, _| left += 1);
    assert_eq!(left, 0);
    assert_eq!(b.tracked(), 0);
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

fn tcp(c: IpAddr, port: u16, flags: u8) -> Flow {
    Flow::tcp(c, port, vip(), 80, TcpFlags(flags))
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN_ACK: u8 = 0x11;
const RST: u8 = 0x04;

/// (server, tracked) of a forward.
fn fwd(v: Verdict) -> (ServerId, bool) {
    match v {
        Verdict::Forward {
            server, tracked, ..
        } => (server, tracked),
        other => panic!("expected a forward, got {other:?}"),
    }
}

fn full_layout() -> Layout {
    Layout {
        services: 1,
        servers_per_service: 4,
        mh_table_max: 0,
        connections: 16,
    }
}

/// A wlc service on 3 servers with its 16 slots taken by established
/// connections of client 1 (ports 0..16); their servers.
fn full_table(cfg: LbConfig, persist_s: u32) -> (Balancer<'static>, Vec<ServerId>) {
    let mut b = balancer(full_layout(), cfg);
    let svc = web(&mut b, Scheduler::Wlc, persist_s, 32);
    for i in 1..=3 {
        b.add_server(svc, RealServer::new(rs_addr(i), 80)).unwrap();
    }
    let now = Instant::from_secs(1);
    let mut est = Vec::new();
    let n = if persist_s == 0 { 16 } else { 15 };
    for p in 0..n {
        let s = server_of(b.classify(now, &syn(client(1), p)));
        assert_eq!(fwd(b.classify(now, &tcp(client(1), p, ACK))), (s, true));
        est.push(s);
    }
    assert_eq!(b.tracked(), 16);
    (b, est)
}

#[test]
fn table_full_flows_keep_their_server_from_syn_to_fin_without_evicting() {
    let (mut b, est) = full_table(LbConfig::DEFAULT, 0);
    let now = Instant::from_secs(2);
    // A flood of new flows, each through its whole life while the table is
    // full: SYN, handshake ACK, data, FIN, last ACK. Every packet of a flow
    // goes to the server its SYN went to; none is tracked.
    let mut servers = HashMap::new();
    for p in 100..160u16 {
        let (s, tracked) = fwd(b.classify(now, &syn(client(2), p)));
        assert!(!tracked);
        for flags in [ACK, ACK, FIN_ACK, ACK] {
            assert_eq!(
                fwd(b.classify(now, &tcp(client(2), p, flags))),
                (s, false),
                "port {p} flags {flags:#x}"
            );
        }
        servers.insert(p, s);
    }
    assert!(
        servers
            .values()
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 1,
        "the hash spreads flows"
    );
    assert_eq!(b.stats().stateless_forwards, 60);
    assert_eq!(b.stats().stateless_continued, 240);
    assert_eq!(b.stats().drop_not_syn, 0);
    assert_eq!(b.tracked(), 16);
    // The established connections were never evicted and keep their
    // servers and states.
    for (p, s) in est.iter().enumerate() {
        let f = tcp(client(1), p as u16, ACK);
        assert_eq!(b.connection(&f), Some((*s, TcpState::Established)));
        assert_eq!(fwd(b.classify(now, &f)), (*s, true));
    }

    // Room again: two established connections close (RST: CLOSE, 10 s).
    b.classify(now, &tcp(client(1), 0, RST));
    b.classify(now, &tcp(client(1), 1, RST));
    let later = now + Duration::from_secs(11);
    b.handle_timeout(later);
    assert_eq!(b.tracked(), 14);
    // A RST of an untracked flow is forwarded to its server, never recorded.
    assert_eq!(
        fwd(b.classify(later, &tcp(client(2), 100, RST))),
        (servers[&100], false)
    );
    assert_eq!(b.tracked(), 14);
    // The next packet of an untracked flow takes a free slot, on the
    // server it had: from now on it is an ordinary connection.
    for p in [101u16, 102] {
        assert_eq!(
            fwd(b.classify(later, &tcp(client(2), p, ACK))),
            (servers[&p], true)
        );
        assert_eq!(
            b.connection(&tcp(client(2), p, ACK)),
            Some((servers[&p], TcpState::Established))
        );
    }
    assert_eq!(b.stats().stateless_adopted, 2);
    // Full again: the others carry on untracked, on their servers.
    for p in 103..160u16 {
        assert_eq!(
            fwd(b.classify(later, &tcp(client(2), p, ACK))),
            (servers[&p], false)
        );
    }
    // Counts stay exact: 16 connections, one per slot.
    let total: u32 = b.servers(ServiceId(0)).map(|i| i.active + i.inactive).sum();
    assert_eq!(total, 16);
}

#[test]
fn table_full_grace_period_ends_and_new_flows_are_scheduled_again() {
    let cfg = LbConfig {
        stateless_grace_s: 120,
        ..LbConfig::DEFAULT
    };
    let (mut b, _) = full_table(cfg, 0);
    let t0 = Instant::from_secs(2);
    let (s, _) = fwd(b.classify(t0, &syn(client(2), 100)));
    // Every established connection closes; the table empties.
    for p in 0..16u16 {
        b.classify(t0, &tcp(client(1), p, RST));
    }
    let t1 = t0 + Duration::from_secs(11);
    b.handle_timeout(t1);
    assert_eq!(b.tracked(), 0);
    // Within the grace period a stray mid-flow packet is still taken on the
    // stateless choice (here: recorded, there is room).
    assert_eq!(fwd(b.classify(t1, &tcp(client(2), 100, ACK))), (s, true));
    // New flows are scheduled by wlc and tracked as usual.
    let a = fwd(b.classify(t1, &syn(client(3), 1)));
    let c = fwd(b.classify(t1, &syn(client(3), 2)));
    assert!(a.1 && c.1);
    assert_ne!(a.0, c.0, "wlc spreads new flows");
    // After the grace period an unknown mid-flow packet is dropped again.
    let t2 = t0 + Duration::from_millis(120_020);
    assert_eq!(
        b.classify(t2, &tcp(client(2), 101, ACK)),
        Verdict::Drop(DropReason::NotSyn)
    );
    let just_before = t0 + Duration::from_millis(119_980);
    let (mut b2, _) = full_table(cfg, 0);
    let (s2, _) = fwd(b2.classify(t0, &syn(client(2), 101)));
    for p in 0..16u16 {
        b2.classify(t0, &tcp(client(1), p, RST));
    }
    assert_eq!(
        fwd(b2.classify(just_before, &tcp(client(2), 101, ACK))),
        (s2, true)
    );
    // With no grace at all, only while the table is full.
    let (mut b3, _) = full_table(
        LbConfig {
            stateless_grace_s: 0,
            ..LbConfig::DEFAULT
        },
        0,
    );
    let (s3, _) = fwd(b3.classify(t0, &syn(client(2), 102)));
    assert_eq!(fwd(b3.classify(t0, &tcp(client(2), 102, ACK))), (s3, false));
    b3.classify(t0, &tcp(client(1), 0, RST));
    b3.handle_timeout(t1);
    assert_eq!(
        b3.classify(t1, &tcp(client(2), 102, ACK)),
        Verdict::Drop(DropReason::NotSyn)
    );
}

#[test]
fn table_full_persistent_clients_follow_their_template_statelessly() {
    let (mut b, est) = full_table(LbConfig::DEFAULT, 300);
    let now = Instant::from_secs(2);
    // Client 1 has a template: its new flows go to the template's server
    // even untracked, every packet of them.
    let mut templates = Vec::new();
    b.for_each_template(|s, _| templates.push(s));
    assert_eq!(templates, [est[0]]);
    for p in 200..210u16 {
        assert_eq!(fwd(b.classify(now, &syn(client(1), p))), (est[0], false));
        assert_eq!(
            fwd(b.classify(now, &tcp(client(1), p, ACK))),
            (est[0], false)
        );
    }
    // A client without one is hashed, and stays on the hash's server.
    for p in 300..320u16 {
        let (s, _) = fwd(b.classify(now, &syn(client(4), p)));
        assert_eq!(fwd(b.classify(now, &tcp(client(4), p, ACK))), (s, false));
        assert_eq!(
            fwd(b.classify(now, &tcp(client(4), p, FIN_ACK))),
            (s, false)
        );
    }
    assert_eq!(b.tracked(), 16);
}

#[test]
fn table_full_drop_policy_drops_and_has_no_grace() {
    let cfg = LbConfig {
        table_full: TableFullPolicy::Drop,
        ..LbConfig::DEFAULT
    };
    for persist_s in [0, 300] {
        let (mut d, _) = full_table(cfg, persist_s);
        let now = Instant::from_secs(2);
        // Even a client with a template (persistent run) is dropped.
        assert_eq!(
            d.classify(now, &syn(client(1), 100)),
            Verdict::Drop(DropReason::TableFull)
        );
        assert_eq!(
            d.classify(now, &syn(client(2), 100)),
            Verdict::Drop(DropReason::TableFull)
        );
        assert_eq!(
            d.classify(now, &tcp(client(2), 100, ACK)),
            Verdict::Drop(DropReason::NotSyn)
        );
        assert_eq!(d.stats().drop_table_full, 2);
        assert_eq!(d.stats().stateless_forwards, 0);
    }
}

#[test]
fn table_full_on_mh_uses_the_maglev_table() {
    // mh is stateless: an untracked flow gets the server a tracked one
    // would, so directors still agree while their tables are full.
    let layout = Layout {
        services: 1,
        servers_per_service: 8,
        mh_table_max: 251,
        connections: 4,
    };
    let mut full = balancer(layout, LbConfig::DEFAULT);
    let mut roomy = balancer(mh_layout(), LbConfig::DEFAULT);
    let sf = mh_service(&mut full, 251, true);
    let sr = mh_service(&mut roomy, 251, true);
    for i in 1..=5 {
        full.add_server(sf, RealServer::new(rs_addr(i), 80))
            .unwrap();
        roomy
            .add_server(sr, RealServer::new(rs_addr(i), 80))
            .unwrap();
    }
    let now = Instant::from_secs(1);
    for p in 0..200u16 {
        let f = syn(client(p), 2000 + p);
        let (Verdict::Forward { addr: a, .. }, Verdict::Forward { addr: r, .. }) =
            (full.classify(now, &f), roomy.classify(now, &f))
        else {
            panic!("forwarded");
        };
        assert_eq!(a, r);
    }
    assert_eq!(full.stats().stateless_forwards, 196);
}

#[test]
fn sorry_server_takes_new_flows_while_active() {
    let mut b = balancer(small_layout(), LbConfig::DEFAULT);
    let svc = web(&mut b, Scheduler::Wlc, 0, 32);
    let real = b.add_server(svc, RealServer::new(rs_addr(1), 80)).unwrap();
    let sorry = b
        .set_sorry_server(svc, Some(RealServer::new(rs_addr(9), 80)))
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

/// The method a verdict forwards by.
fn method_of(v: Verdict) -> ForwardMethod {
    match v {
        Verdict::Forward { method, .. } => method,
        other => panic!("expected a forward, got {other:?}"),
    }
}

#[test]
fn a_connection_keeps_the_forwarding_method_it_was_created_with() {
    // IPVS keeps the method in the connection: a server edited from DR to
    // NAT (a reload that changes lb_kind) NATs its new connections only.
    let mut b = balancer(small_layout(), LbConfig::DEFAULT);
    let svc = web(&mut b, Scheduler::Wlc, 0, 32);
    let rs = RealServer::new(rs_addr(1), 80);
    let id = b.add_server(svc, rs).unwrap();
    let now = Instant::from_secs(1);
    let (a, c) = (client(1), client(2));
    assert_eq!(method_of(b.classify(now, &syn(a, 1))), ForwardMethod::Dr);
    b.update_server(svc, id, rs.with_method(ForwardMethod::Nat))
        .unwrap();
    // The quiet hit path (an ACK that changes nothing) and the full one (a
    // FIN moves the state) both answer with the connection's method.
    let ack = b.classify(now, &Flow::tcp(a, 1, vip(), 80, TcpFlags::ACK));
    assert_eq!((server_of(ack), method_of(ack)), (id, ForwardMethod::Dr));
    let fin = Flow::tcp(a, 1, vip(), 80, TcpFlags::FIN.union(TcpFlags::ACK));
    assert_eq!(method_of(b.classify(now, &fin)), ForwardMethod::Dr);
    assert_eq!(method_of(b.classify(now, &syn(c, 1))), ForwardMethod::Nat);
    b.update_server(svc, id, rs.with_method(ForwardMethod::Tun))
        .unwrap();
    let ack_c = Flow::tcp(c, 1, vip(), 80, TcpFlags::ACK);
    assert_eq!(method_of(b.classify(now, &ack_c)), ForwardMethod::Nat);
    assert_eq!(
        method_of(b.classify(now, &syn(client(3), 1))),
        ForwardMethod::Tun
    );
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
    // Not even sloppy_tcp schedules a RST (ip_vs_proto_tcp.c
    // tcp_conn_schedule), nor mh's mid-flow adoption.
    assert_eq!(
        b.classify(now, &Flow::tcp(client(1), 2, vip(), 80, TcpFlags::RST)),
        Verdict::Drop(DropReason::NotSyn)
    );
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
    // IPVS's Maglev population moves 3.3-3.5% in all at this size (1% must
    // move); the entries of surviving servers that move stay under 3%. See
    // BENCHMARKS.md: the literal "at most 3% in all" is not met, and ideal
    // random permutations miss it too (benches/scripts/maglev_disruption_model.py).
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

/// The mh table of `svc` as server addresses (local indices differ between
/// balancers with different histories).
fn mh_addrs(b: &Balancer<'_>, svc: ServiceId) -> Vec<IpAddr> {
    let sps = u32::from(b.layout().servers_per_service);
    b.mh_table(svc)
        .unwrap()
        .iter()
        .map(|&l| {
            let g = svc.0 as u32 * sps + u32::from(l);
            b.server_info(ServerId(g as u16)).unwrap().server.addr
        })
        .collect()
}

fn mh_service(b: &mut Balancer<'_>, size: u32, port_flag: bool) -> ServiceId {
    let mut cfg = ServiceConfig::new(
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: vip(),
            port: 80,
        },
        Scheduler::Mh,
    );
    cfg.mh_table_size = size;
    cfg.flags.port = port_flag;
    b.add_service(cfg).unwrap()
}

fn mh_layout() -> Layout {
    Layout {
        services: 1,
        servers_per_service: 32,
        mh_table_max: 4093,
        connections: 4096,
    }
}

#[test]
fn mh_table_does_not_depend_on_history() {
    let servers: Vec<RealServer> = (1..=12u8)
        .map(|i| RealServer::new(rs_addr(i), 80).with_weight(u32::from(i % 4) + 1))
        .collect();
    for size in [13u32, 251, 4093] {
        // In configuration order.
        let mut a = balancer(mh_layout(), LbConfig::DEFAULT);
        let sa = mh_service(&mut a, size, false);
        for rs in &servers {
            a.add_server(sa, *rs).unwrap();
        }
        // Reversed, then with flaps: a failed server is removed and
        // re-added (at the list head), one twice, one with a weight change
        // and back.
        let mut b = balancer(mh_layout(), LbConfig::DEFAULT);
        let sb = mh_service(&mut b, size, false);
        for rs in servers.iter().rev() {
            b.add_server(sb, *rs).unwrap();
        }
        for i in [3usize, 7, 3, 0] {
            let id = b.find_server(sb, servers[i].addr, 80).unwrap();
            b.remove_server(sb, id).unwrap();
            b.add_server(sb, servers[i]).unwrap();
        }
        let id = b.find_server(sb, servers[5].addr, 80).unwrap();
        b.set_weight(sb, id, 9).unwrap();
        b.set_weight(sb, id, servers[5].weight).unwrap();
        let order_a: Vec<IpAddr> = a.servers(sa).map(|i| i.server.addr).collect();
        let order_b: Vec<IpAddr> = b.servers(sb).map(|i| i.server.addr).collect();
        assert_ne!(order_a, order_b, "the histories give different list orders");
        assert_eq!(mh_addrs(&a, sa), mh_addrs(&b, sb), "table size {size}");
        // A third, shuffled by a fixed permutation.
        let mut c = balancer(mh_layout(), LbConfig::DEFAULT);
        let sc = mh_service(&mut c, size, false);
        for k in 0..servers.len() {
            c.add_server(sc, servers[(k * 5 + 3) % servers.len()])
                .unwrap();
        }
        assert_eq!(mh_addrs(&a, sa), mh_addrs(&c, sc), "table size {size}");
    }
}

#[test]
fn mh_directors_with_different_histories_pick_the_same_server() {
    let servers: Vec<RealServer> = (1..=8u8).map(|i| RealServer::new(rs_addr(i), 80)).collect();
    for port_flag in [false, true] {
        // Director A started with the configuration and never saw a change.
        let mut a = balancer(mh_layout(), LbConfig::DEFAULT);
        let sa = mh_service(&mut a, 251, port_flag);
        for rs in &servers {
            a.add_server(sa, *rs).unwrap();
        }
        // Director B saw server 2 fail and recover, then server 6.
        let mut b = balancer(mh_layout(), LbConfig::DEFAULT);
        let sb = mh_service(&mut b, 251, port_flag);
        for rs in &servers {
            b.add_server(sb, *rs).unwrap();
        }
        for i in [1usize, 5] {
            let id = b.find_server(sb, servers[i].addr, 80).unwrap();
            b.remove_server(sb, id).unwrap();
            b.add_server(sb, servers[i]).unwrap();
        }
        let now = Instant::from_secs(1);
        let mut differ = 0;
        for c in 0..2000u16 {
            let src = IpAddr::V4(Ipv4Addr::new(203, 0, 113, (c % 250) as u8 + 1));
            let f = syn(src, 1024 + c);
            let (Verdict::Forward { addr: x, .. }, Verdict::Forward { addr: y, .. }) =
                (a.classify(now, &f), b.classify(now, &f))
            else {
                panic!("both directors forward");
            };
            differ += usize::from(x != y);
        }
        assert_eq!(differ, 0, "mh-port {port_flag}");
    }
}
