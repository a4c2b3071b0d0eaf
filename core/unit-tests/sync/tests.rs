//! Two balancers, one fed only by the other's sync messages: they agree on
//! every flow and template after random traffic, and the backup forwards
//! every established flow and persistent client like the sender after a
//! failover. Malformed, truncated, foreign and replayed input is dropped
//! and counted; the size and rate bounds hold; arbitrary bytes never panic
//! the receiver.

// The crate is no_std; this test module links std for itself (lib.rs).
extern crate std;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::boxed::Box;
use std::collections::{HashMap, HashSet};
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::lb::{
    Balancer, ConnSlot, Flow, Layout, LbConfig, RealServer, Scheduler, ServerSlot, ServiceConfig,
    ServiceId, ServiceKey, ServiceSlot, Storage, TcpFlags, Verdict,
};
use crate::lb::{Protocol, ServerId};
use crate::rand::Prng;
use crate::time::{Duration, Instant};
use crate::wire::sync::{self as wire, EntryKind, EntryRepr};

fn leak<T: Clone>(v: T, n: usize) -> &'static mut [T] {
    Box::leak(vec![v; n].into_boxed_slice())
}

const LAYOUT: Layout = Layout {
    services: 4,
    servers_per_service: 8,
    mh_table_max: 0,
    connections: 4096,
};

fn balancer(seed: u64) -> Balancer<'static> {
    let l = LAYOUT;
    let st = Storage {
        services: leak(ServiceSlot::EMPTY, l.service_slots()),
        servers: leak(ServerSlot::EMPTY, l.server_slots()),
        tree: leak(0u16, l.tree_nodes()),
        mh: leak(0u16, l.mh_entries()),
        conns: leak(ConnSlot::EMPTY, l.conn_slots()),
        index: leak(0u8, l.index_bytes()),
        wheel: leak(0u32, l.wheel_buckets()),
    };
    Balancer::new(l, st, LbConfig::DEFAULT, seed, Instant::ZERO).unwrap()
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn vip4() -> IpAddr {
    v4(192, 0, 2, 10)
}

fn vip6() -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10))
}

/// The services both directors configure (same keepalived.conf), with the
/// servers of `skip_server` left out of the second one's service 0.
fn configure(b: &mut Balancer<'_>, skip_server: Option<u8>) -> Vec<ServiceId> {
    let mut ids = Vec::new();
    // 0: TCP 192.0.2.10:80, wlc, no persistence.
    let s0 = b
        .add_service(ServiceConfig::new(
            ServiceKey::Addr {
                protocol: Protocol::Tcp,
                vip: vip4(),
                port: 80,
            },
            Scheduler::Wlc,
        ))
        .unwrap();
    for i in 1..=4u8 {
        if Some(i) == skip_server {
            continue;
        }
        b.add_server(
            s0,
            RealServer::new(v4(198, 51, 100, i), 80).with_weight(u32::from(i)),
        )
        .unwrap();
    }
    ids.push(s0);
    // 1: TCP 192.0.2.10:443, persistent 300 s per /24.
    let mut c1 = ServiceConfig::new(
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: vip4(),
            port: 443,
        },
        Scheduler::Wlc,
    );
    c1.persistence_timeout_s = 300;
    c1.persistence_prefix_len = 24;
    let s1 = b.add_service(c1).unwrap();
    for i in 11..=13u8 {
        b.add_server(s1, RealServer::new(v4(198, 51, 100, i), 443))
            .unwrap();
    }
    ids.push(s1);
    // 2: UDP [2001:db8::10]:53, rr, IPv6 servers.
    let s2 = b
        .add_service(ServiceConfig::new(
            ServiceKey::Addr {
                protocol: Protocol::Udp,
                vip: vip6(),
                port: 53,
            },
            Scheduler::Rr,
        ))
        .unwrap();
    for i in 1..=3u16 {
        let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, i));
        b.add_server(s2, RealServer::new(a, 53)).unwrap();
    }
    ids.push(s2);
    // 3: fwmark 7 (IPv4), sh, persistent 600 s per client.
    let mut c3 = ServiceConfig::new(
        ServiceKey::Fwmark {
            mark: 7,
            ipv6: false,
        },
        Scheduler::Sh,
    );
    c3.persistence_timeout_s = 600;
    c3.persistence_prefix_len = 32;
    let s3 = b.add_service(c3).unwrap();
    for i in 21..=22u8 {
        b.add_server(s3, RealServer::new(v4(198, 51, 100, i), 0))
            .unwrap();
    }
    ids.push(s3);
    ids
}

fn sync_cfg() -> SyncConfig {
    SyncConfig {
        sync_id: 3,
        max_message_bytes: 1452,
        messages_per_s: 100_000,
        burst_messages: 1000,
        flush_interval: Duration::from_millis(200),
    }
}

/// A sender and a backup, with the messages in flight.
struct Pair {
    a: Balancer<'static>,
    b: Balancer<'static>,
    sa: ConnSync,
    sb: ConnSync,
    now: Instant,
    /// (time, bytes) of every message the sender emitted.
    sent: Vec<(Instant, Vec<u8>)>,
    deliver: bool,
}

impl Pair {
    fn new(cfg: SyncConfig, journal: usize, skip_server: Option<u8>) -> Pair {
        let mut a = balancer(1);
        let mut b = balancer(2);
        configure(&mut a, None);
        configure(&mut b, skip_server);
        a.attach_sync_journal(leak(0u32, journal), Duration::from_secs(30));
        let now = Instant::ZERO;
        let mut sa = ConnSync::new(cfg, 11, now).unwrap();
        let mut sb = ConnSync::new(cfg, 12, now).unwrap();
        sa.handle(now, Input::SetRole(Role::Sender), &mut a);
        sb.handle(now, Input::SetRole(Role::Receiver), &mut b);
        Pair {
            a,
            b,
            sa,
            sb,
            now,
            sent: Vec::new(),
            deliver: true,
        }
    }

    /// Runs the sender's timer and carries its messages to the backup.
    fn pump(&mut self) {
        self.sa.handle_timeout(self.now, &mut self.a);
        while let Some(Output::Transmit(m)) = self.sa.poll_output() {
            self.sent.push((self.now, m.as_bytes().to_vec()));
            if self.deliver {
                self.sb
                    .handle(self.now, Input::Receive(m.as_bytes()), &mut self.b);
            }
        }
        self.b.handle_timeout(self.now);
    }

    fn advance(&mut self, d: Duration) {
        // Step through the sender's deadlines like a driver would.
        let end = self.now + d;
        while let Some(t) = self.sa.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.pump();
        }
        self.now = end;
        self.a.handle_timeout(self.now);
        self.pump();
    }
}

/// An entry's identity (without timeout) and its content.
type Table = HashMap<(EntryKind, IpAddr, u16, IpAddr, u16, u8, u32), EntryRepr>;

fn table(b: &Balancer<'_>) -> Table {
    let mut t = HashMap::new();
    b.for_each_sync_entry(|e| {
        let k = (
            e.kind,
            e.client,
            e.client_port,
            e.vip,
            e.vport,
            e.protocol,
            e.fwmark,
        );
        assert!(t.insert(k, e).is_none(), "duplicate entry {e:?}");
    });
    t
}

/// Per-server active/inactive counts equal what the connections say.
fn assert_counts_exact(b: &Balancer<'_>, services: &[ServiceId]) {
    let mut seen: HashMap<ServerId, (u32, u32)> = HashMap::new();
    b.for_each_connection(|id, _, inactive| {
        let e = seen.entry(id).or_default();
        if inactive {
            e.1 += 1;
        } else {
            e.0 += 1;
        }
    });
    for &svc in services {
        for info in b.servers(svc) {
            let (act, inact) = seen.get(&info.id).copied().unwrap_or_default();
            assert_eq!(
                (info.active, info.inactive),
                (act, inact),
                "server {:?}",
                info.server.addr
            );
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Client {
    flow: Flow,
}

fn new_flow(rng: &mut Prng, port: &mut u16) -> Flow {
    *port = port.wrapping_add(1).max(1024);
    let c = v4(203, 0, 113, rng.below(40) as u8 + 1);
    match rng.below(8) {
        0..=2 => Flow::tcp(c, *port, vip4(), 80, TcpFlags::SYN),
        3..=4 => Flow::tcp(c, *port, vip4(), 443, TcpFlags::SYN),
        5 => {
            let c6 = IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                9,
                0,
                0,
                0,
                0,
                rng.below(40) as u16,
            ));
            Flow::udp(c6, *port, vip6(), 53)
        }
        _ => {
            let mut f = Flow::tcp(c, *port, v4(192, 0, 2, 20), 8080, TcpFlags::SYN);
            f.fwmark = 7;
            f
        }
    }
}

fn random_flags(rng: &mut Prng) -> TcpFlags {
    match rng.below(10) {
        0..=5 => TcpFlags::ACK,
        6 => TcpFlags::FIN.union(TcpFlags::ACK),
        7 => TcpFlags::RST,
        8 => TcpFlags::SYN,
        _ => TcpFlags::NONE,
    }
}

/// Random traffic on the sender for `steps` operations.
fn traffic(p: &mut Pair, rng: &mut Prng, steps: usize, flows: &mut Vec<Client>) {
    let mut port = 1024u16;
    for _ in 0..steps {
        match rng.below(20) {
            0..=6 => {
                let flow = new_flow(rng, &mut port);
                p.a.classify(p.now, &flow);
                flows.push(Client { flow });
            }
            7..=15 if !flows.is_empty() => {
                let i = rng.below(flows.len() as u64) as usize;
                let mut flow = flows[i].flow;
                if flow.protocol == 6 {
                    flow.tcp_flags = random_flags(rng);
                }
                p.a.classify(p.now, &flow);
            }
            16..=18 => {
                let ms = match rng.below(4) {
                    0 => rng.below(50),
                    1 => rng.below(2_000),
                    2 => rng.below(30_000),
                    _ => rng.below(400_000),
                };
                p.advance(Duration::from_millis(ms));
            }
            _ => p.pump(),
        }
    }
    // Let the last partly filled message go.
    p.advance(sync_cfg().flush_interval);
}

/// The sender's connections and templates are all on the backup with the
/// same server and state; what the backup has on top are entries the
/// sender had and expired (the backup keeps them one refresh window
/// longer).
fn check_agreement(p: &Pair, flows: &[Client], seed: u64) -> Table {
    let ta = table(&p.a);
    let tb = table(&p.b);
    for (k, e) in &ta {
        assert_eq!(tb.get(k), Some(e), "seed {seed}: backup lacks or differs");
    }
    let created: HashSet<(IpAddr, u16)> = flows
        .iter()
        .map(|c| (c.flow.src, c.flow.src_port))
        .collect();
    for (k, e) in &tb {
        if !ta.contains_key(k) && e.kind == EntryKind::Connection {
            assert!(
                created.contains(&(e.client, e.client_port)),
                "seed {seed}: backup invented {e:?}"
            );
        }
    }
    assert_counts_exact(
        &p.b,
        &[ServiceId(0), ServiceId(1), ServiceId(2), ServiceId(3)],
    );
    ta
}

fn agree(seed: u64, rounds: usize) -> (usize, usize) {
    let mut p = Pair::new(sync_cfg(), 4096, None);
    let mut rng = Prng::new(seed);
    let mut flows = Vec::new();
    let mut compared = (0, 0);
    let mut ta = Table::new();
    for _ in 0..rounds {
        traffic(&mut p, &mut rng, 250, &mut flows);
        ta = check_agreement(&p, &flows, seed);
        compared.0 += ta
            .values()
            .filter(|e| e.kind == EntryKind::Connection)
            .count();
        compared.1 += ta
            .values()
            .filter(|e| e.kind == EntryKind::Template)
            .count();
    }
    let s = p.sb.stats();
    assert_eq!(s.rx_lost + s.rx_replayed + s.rx_bad_entry, 0, "{s:?}");
    assert_eq!(
        s.rx_no_service + s.rx_no_server + s.rx_table_full,
        0,
        "{s:?}"
    );
    assert_eq!(p.a.sync_journal_stats().overflows, 0);
    assert_eq!(s.rx_applied, p.sa.stats().tx_entries);

    // Failover: every live flow's next packet goes to the same server on
    // the backup as on the sender; so does a new connection of every
    // persistent client.
    let mut checked = 0;
    for c in &flows {
        let mut f = c.flow;
        if f.protocol == 6 {
            f.tcp_flags = TcpFlags::ACK;
        }
        if p.a.connection(&f).is_none() {
            continue;
        }
        let va = p.a.classify(p.now, &f);
        let vb = p.b.classify(p.now, &f);
        assert_eq!(dest(va), dest(vb), "seed {seed}: flow {f:?}");
        checked += 1;
    }
    assert!(checked > 0);
    for e in ta.values().filter(|e| e.kind == EntryKind::Template) {
        let mut f = if e.fwmark == 7 {
            let mut f = Flow::tcp(e.client, 60_000, v4(192, 0, 2, 20), 8080, TcpFlags::SYN);
            f.fwmark = 7;
            f
        } else {
            Flow::tcp(e.client, 60_000, e.vip, e.vport, TcpFlags::SYN)
        };
        f.src_port = 60_001;
        let va = p.a.classify(p.now, &f);
        let vb = p.b.classify(p.now, &f);
        assert_eq!(dest(va), dest(vb), "seed {seed}: template {e:?}");
    }
    compared
}

fn dest(v: Verdict) -> Option<(IpAddr, u16)> {
    match v {
        Verdict::Forward { addr, port, .. } => Some((addr, port)),
        _ => None,
    }
}

#[test]
fn backup_agrees_with_sender_after_random_traffic() {
    let mut total = (0, 0);
    for seed in 1..=8 {
        let (c, t) = agree(seed, 8);
        total.0 += c;
        total.1 += t;
    }
    // The comparisons were about something.
    assert!(total.0 > 500 && total.1 > 100, "compared {total:?}");
}

#[test]
fn quiet_long_lived_connection_survives_on_backup() {
    let mut p = Pair::new(sync_cfg(), 64, None);
    let c = v4(203, 0, 113, 5);
    let syn = Flow::tcp(c, 5000, vip4(), 80, TcpFlags::SYN);
    let ack = Flow::tcp(c, 5000, vip4(), 80, TcpFlags::ACK);
    p.a.classify(p.now, &syn);
    p.a.classify(p.now, &ack);
    // One packet every 10 minutes for 3 hours: always within the 15-minute
    // ESTABLISHED timeout on the sender, rarely a state change.
    for _ in 0..18 {
        p.advance(Duration::from_secs(600));
        assert!(p.a.connection(&ack).is_some());
        assert!(p.b.connection(&ack).is_some(), "backup lost a live flow");
        p.a.classify(p.now, &ack);
        p.pump();
    }
    // Silence: the sender forgets it after 15 minutes, the backup within
    // one more refresh window.
    p.advance(Duration::from_secs(901));
    assert!(p.a.connection(&ack).is_none());
    p.advance(p.a.sync_refresh_window() + Duration::from_secs(1));
    assert!(p.b.connection(&ack).is_none());
    assert_eq!(p.b.tracked(), 0);
}

#[test]
fn busy_connection_is_resent_once_per_window() {
    let mut p = Pair::new(sync_cfg(), 64, None);
    let c = v4(203, 0, 113, 5);
    p.a.classify(p.now, &Flow::tcp(c, 5000, vip4(), 80, TcpFlags::SYN));
    let ack = Flow::tcp(c, 5000, vip4(), 80, TcpFlags::ACK);
    p.a.classify(p.now, &ack);
    p.pump();
    let window = p.a.sync_refresh_window();
    let before = p.sa.stats().tx_entries;
    // 100 packets a second for 4 windows.
    let start = p.now;
    while p.now < start + window.saturating_mul(4) {
        p.a.classify(p.now, &ack);
        p.now += Duration::from_millis(10);
        p.pump();
    }
    p.advance(sync_cfg().flush_interval);
    let resent = p.sa.stats().tx_entries - before;
    assert!((4..=5).contains(&resent), "resent {resent} times");
}

#[test]
fn unknown_service_or_server_is_counted_and_dropped() {
    // The backup lacks 198.51.100.2 in service 0.
    let mut p = Pair::new(sync_cfg(), 4096, Some(2));
    let mut rng = Prng::new(77);
    let mut flows = Vec::new();
    traffic(&mut p, &mut rng, 600, &mut flows);
    let s = *p.sb.stats();
    assert!(s.rx_no_server > 0, "{s:?}");
    let mut found_missing = false;
    p.b.for_each_sync_entry(|e| {
        found_missing |= e.server == v4(198, 51, 100, 2);
    });
    assert!(!found_missing);
    // A service the backup does not have at all.
    let mut e = one_entry();
    e.vport = 8443;
    let m = message(&[e], 3, 999, 1);
    p.sb.handle(p.now, Input::Receive(&m), &mut p.b);
    assert_eq!(p.sb.stats().rx_no_service, s.rx_no_service + 1);
    // A template for a service without persistence.
    let mut t = one_entry();
    t.kind = EntryKind::Template;
    t.state = 0;
    t.client_port = 0;
    let m = message(&[t], 3, 999, 2);
    p.sb.handle(p.now, Input::Receive(&m), &mut p.b);
    assert_eq!(p.sb.stats().rx_not_persistent, s.rx_not_persistent + 1);
}

fn one_entry() -> EntryRepr {
    EntryRepr {
        kind: EntryKind::Connection,
        protocol: 6,
        state: 1,
        late: false,
        client: v4(203, 0, 113, 9),
        client_port: 4000,
        vip: vip4(),
        vport: 80,
        server: v4(198, 51, 100, 1),
        server_port: 80,
        fwmark: 0,
        timeout_ms: 900_000,
    }
}

fn message(es: &[EntryRepr], sync_id: u8, session: u32, seq: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let mut w = wire::Writer::new(&mut buf, 1500).unwrap();
    for e in es {
        assert!(w.push(e));
    }
    let n = w.finish(sync_id, session, seq);
    buf.truncate(n);
    buf
}

#[test]
fn malformed_foreign_and_replayed_input_is_dropped_and_counted() {
    let mut p = Pair::new(sync_cfg(), 64, None);
    let good = message(&[one_entry()], 3, 500, 10);
    let rx = |p: &mut Pair, m: &[u8]| p.sb.handle(p.now, Input::Receive(m), &mut p.b);

    rx(&mut p, &good[..7]);
    rx(&mut p, &good[..good.len() - 3]);
    let mut v = good.clone();
    v[0] = 9;
    rx(&mut p, &v);
    let mut l = good.clone();
    l.push(0);
    rx(&mut p, &l);
    let mut k = good.clone();
    k[wire::HEADER_LEN] = 77;
    rx(&mut p, &k);
    rx(&mut p, &message(&[one_entry()], 4, 500, 10));
    let own = message(&[one_entry()], 3, p.sb.session(), 10);
    rx(&mut p, &own);
    let s = *p.sb.stats();
    assert_eq!(
        (
            s.rx_truncated,
            s.rx_bad_version,
            s.rx_bad_length,
            s.rx_bad_entry,
            s.rx_wrong_sync_id,
            s.rx_own
        ),
        (2, 1, 1, 1, 1, 1)
    );
    assert_eq!(p.b.tracked(), 0, "nothing applied from bad input");
    assert_eq!(s.rx_messages, 0);

    rx(&mut p, &good);
    assert_eq!(p.b.tracked(), 1);
    rx(&mut p, &good);
    assert_eq!(p.sb.stats().rx_replayed, 1);
    // A gap of 4, then one of them arriving late.
    rx(&mut p, &message(&[one_entry()], 3, 500, 15));
    assert_eq!(p.sb.stats().rx_lost, 4);
    rx(&mut p, &message(&[one_entry()], 3, 500, 12));
    assert_eq!((p.sb.stats().rx_lost, p.sb.stats().rx_reordered), (3, 1));
    rx(&mut p, &message(&[one_entry()], 3, 500, 12));
    assert_eq!(p.sb.stats().rx_replayed, 2);
    // A restarted sender (new session) is heard again from any sequence.
    rx(&mut p, &message(&[one_entry()], 3, 501, 0));
    assert_eq!(p.sb.stats().rx_messages, 4);
    // A director that does not receive drops and counts.
    p.sb.handle(p.now, Input::SetRole(Role::Off), &mut p.b);
    rx(&mut p, &message(&[one_entry()], 3, 501, 1));
    assert_eq!(p.sb.stats().rx_not_receiving, 1);
    assert_eq!(p.sb.stats().rx_messages, 4);
}

#[test]
fn size_and_rate_bounds_hold_under_a_flood() {
    let cfg = SyncConfig {
        sync_id: 3,
        max_message_bytes: 300,
        messages_per_s: 50,
        burst_messages: 5,
        flush_interval: Duration::from_millis(100),
    };
    let mut p = Pair::new(cfg, 256, None);
    let mut rng = Prng::new(5);
    let mut port = 1024;
    // 3000 new flows a second for 5 seconds: far more than 50 messages of
    // 8 entries a second can carry.
    for _ in 0..5000 {
        let f = new_flow(&mut rng, &mut port);
        p.a.classify(p.now, &f);
        p.now += Duration::from_micros(333);
        p.pump();
        if let Some(t) = p.sa.poll_timeout() {
            if t <= p.now {
                p.pump();
            }
        }
    }
    p.advance(Duration::from_secs(2));
    assert!(!p.sent.is_empty());
    for (_, m) in &p.sent {
        assert!(m.len() <= 300, "message of {} bytes", m.len());
        assert!(wire::parse(m).is_ok());
    }
    // In any one-second window: at most rate + burst messages.
    for (i, (t0, _)) in p.sent.iter().enumerate() {
        let n = p.sent[i..]
            .iter()
            .take_while(|(t, _)| *t < *t0 + Duration::from_secs(1))
            .count();
        assert!(n <= 55, "{n} messages within a second from {t0:?}");
    }
    let secs = (p.sent.last().unwrap().0 - p.sent[0].0).as_micros() as f64 / 1e6;
    assert!(
        p.sent.len() as f64 >= 50.0 * secs,
        "the rate is used: {} in {secs} s",
        p.sent.len()
    );
    assert!(p.sa.stats().tx_rate_limited > 0);
    assert!(
        p.a.sync_journal_stats().overflows > 0,
        "the flood overflowed the journal"
    );
    // Everything that was sent was applied; the sender's sequence had no
    // gaps.
    assert_eq!(p.sb.stats().rx_lost, 0);
    assert_eq!(p.sb.stats().rx_applied, p.sa.stats().tx_entries);
}

#[test]
fn a_flush_behind_a_held_message_is_not_postponed() {
    // Two messages' worth at once fill the output queue, so the flush finds
    // a message held back; the partly filled one behind it must still go
    // out within the flush interval of its entries, not one interval later.
    let cfg = SyncConfig {
        max_message_bytes: 300,
        flush_interval: Duration::from_secs(2),
        ..sync_cfg()
    };
    let mut p = Pair::new(cfg, 256, None);
    let mut port = 1024;
    for _ in 0..30 {
        port += 1;
        let c = v4(203, 0, 113, (port % 40) as u8 + 1);
        p.a.classify(p.now, &Flow::tcp(c, port, vip4(), 80, TcpFlags::SYN));
    }
    let opened = p.now;
    // The flush fires before the driver drains: two messages fill the
    // queue and the third is held. The driver then drains and follows
    // `poll_timeout` as usual.
    p.now = p.sa.poll_timeout().unwrap();
    p.sa.handle_timeout(p.now, &mut p.a);
    p.advance(Duration::from_millis(50));
    p.advance(Duration::from_millis(50));
    let sent: u64 = p.sa.stats().tx_entries;
    assert_eq!(sent, 30, "every entry went out right after the flush");
    let last = p.sent.last().unwrap().0;
    assert!(last - opened <= Duration::from_millis(2_100), "{last:?}");
}

#[test]
fn a_routed_receiver_splits_entries_between_balancers() {
    // The sender's traffic, received by one machine and applied to two
    // balancers by the client address's last bit (a driver's shards).
    let mut p = Pair::new(sync_cfg(), 4096, None);
    p.deliver = false;
    let mut rng = Prng::new(5);
    let mut flows = Vec::new();
    traffic(&mut p, &mut rng, 400, &mut flows);
    p.advance(Duration::from_secs(1));
    let mut shards = [balancer(3), balancer(4)];
    for b in &mut shards {
        configure(b, None);
    }
    let mut rx = ConnSync::new(sync_cfg(), 13, Instant::ZERO).unwrap();
    let owner = |a: IpAddr| match a {
        IpAddr::V4(a) => usize::from(a.octets()[3] & 1),
        IpAddr::V6(a) => usize::from(a.octets()[15] & 1),
    };
    let messages = core::mem::take(&mut p.sent);
    assert!(!messages.is_empty());
    // Off: nothing applied.
    rx.handle_routed(p.now, Input::Receive(&messages[0].1), |_, _| {
        unreachable!("applied while off")
    });
    assert_eq!(rx.stats().rx_not_receiving, 1);
    // A sending role means receiving only, here.
    rx.handle_routed(p.now, Input::SetRole(Role::Both), |_, _| Ok(()));
    assert_eq!(rx.role(), Role::Receiver);
    for (at, m) in &messages {
        rx.handle_routed(*at, Input::Receive(m), |now, e| {
            shards[owner(e.client)].sync_apply(now, e)
        });
    }
    assert_eq!(rx.stats().rx_messages, messages.len() as u64);
    assert!(rx.stats().rx_applied > 0);
    // Every entry the sender has is in exactly the shard that owns it.
    for b in &mut shards {
        b.handle_timeout(p.now);
    }
    let want = table(&p.a);
    let got: [Table; 2] = [table(&shards[0]), table(&shards[1])];
    for (k, e) in &want {
        let mine = owner(e.client);
        assert!(got[mine].contains_key(k), "{e:?} missing in shard {mine}");
        assert!(!got[1 - mine].contains_key(k), "{e:?} in the wrong shard");
    }
    // (The backup keeps entries the sender expired a window longer.)
    for (i, t) in got.iter().enumerate() {
        assert!(t.values().all(|e| owner(e.client) == i));
    }
    rx.handle_routed(p.now, Input::SetRole(Role::Sender), |_, _| Ok(()));
    assert_eq!(rx.role(), Role::Off);
}

#[test]
fn a_director_that_starts_sending_resyncs_what_it_tracks() {
    let mut p = Pair::new(sync_cfg(), 4096, None);
    p.sa.handle(p.now, Input::SetRole(Role::Receiver), &mut p.a);
    // Tracked while not sending: 50 connections of one persistent /24
    // (one template) and 10 of a plain service.
    for i in 0..50u8 {
        let f = Flow::tcp(v4(203, 0, 113, i + 1), 2000, vip4(), 443, TcpFlags::SYN);
        assert!(matches!(p.a.classify(p.now, &f), Verdict::Forward { .. }));
    }
    for i in 0..10u8 {
        let f = Flow::tcp(v4(203, 0, 113, i + 1), 3000, vip4(), 80, TcpFlags::SYN);
        assert!(matches!(p.a.classify(p.now, &f), Verdict::Forward { .. }));
    }
    p.advance(Duration::from_secs(1));
    assert!(p.sent.is_empty());
    p.sa.handle(p.now, Input::SetRole(Role::Sender), &mut p.a);
    assert_eq!(p.a.sync_pending(), 61);
    p.advance(Duration::from_secs(3));
    let (_, mut first) = wire::parse(&p.sent[0].1).unwrap();
    assert_eq!(
        first.next().map(|e| e.kind),
        Some(EntryKind::Template),
        "templates go first"
    );
    let (a, b) = (table(&p.a), table(&p.b));
    assert_eq!(a.len(), 61);
    for k in a.keys() {
        assert!(b.contains_key(k), "{k:?} not resynced");
    }
    // Once: sending on does not repeat it.
    let n = p.sent.len();
    p.advance(Duration::from_secs(3));
    assert_eq!(p.sent.len(), n);
}

#[test]
fn role_changes_start_and_stop_the_journal() {
    let mut p = Pair::new(sync_cfg(), 64, None);
    assert!(p.a.sync_journal_on());
    p.a.classify(
        p.now,
        &Flow::tcp(v4(203, 0, 113, 1), 1, vip4(), 80, TcpFlags::SYN),
    );
    assert_eq!(p.a.sync_pending(), 1);
    p.sa.handle(p.now, Input::SetRole(Role::Receiver), &mut p.a);
    assert!(!p.a.sync_journal_on());
    assert_eq!(p.a.sync_pending(), 0);
    assert_eq!(p.sa.poll_timeout(), None);
    p.a.classify(
        p.now,
        &Flow::tcp(v4(203, 0, 113, 2), 1, vip4(), 80, TcpFlags::SYN),
    );
    assert_eq!(p.a.sync_pending(), 0, "a backup journals nothing");
    p.sa.handle(p.now, Input::SetRole(Role::Both), &mut p.a);
    assert!(p.a.sync_journal_on());
    assert!(p.sa.poll_timeout().is_some());
    // An in-place restart takes the ring back; without one nothing journals.
    let ring = p.a.detach_sync_journal();
    assert_eq!(ring.len(), 64);
    assert!(!p.a.sync_journal_on());
    p.a.set_sync_journal(true);
    assert!(!p.a.sync_journal_on(), "no ring, no journal");
}

#[test]
fn server_change_on_sender_wins_on_backup() {
    let mut p = Pair::new(sync_cfg(), 64, None);
    let mut e = one_entry();
    let rx = |p: &mut Pair, e: &EntryRepr, seq| {
        let m = message(&[*e], 3, 900, seq);
        p.sb.handle(p.now, Input::Receive(&m), &mut p.b);
    };
    rx(&mut p, &e, 1);
    let flow = Flow::tcp(e.client, e.client_port, e.vip, e.vport, TcpFlags::ACK);
    assert_eq!(
        p.b.connection(&flow)
            .map(|(id, _)| p.b.server_info(id).unwrap().server.addr),
        Some(v4(198, 51, 100, 1))
    );
    e.server = v4(198, 51, 100, 3);
    e.state = 4; // FIN_WAIT: inactive
    rx(&mut p, &e, 2);
    let (id, st) = p.b.connection(&flow).unwrap();
    assert_eq!(p.b.server_info(id).unwrap().server.addr, e.server);
    assert_eq!(st, crate::lb::TcpState::FinWait);
    assert_counts_exact(&p.b, &[ServiceId(0)]);
    assert_eq!(p.b.tracked(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_receiver(
        datagrams in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..400), 1..8),
    ) {
        let mut p = Pair::new(sync_cfg(), 64, None);
        for d in &datagrams {
            p.sb.handle(p.now, Input::Receive(d), &mut p.b);
        }
        let s = p.sb.stats();
        let drops = s.rx_truncated + s.rx_bad_version + s.rx_bad_length + s.rx_bad_entry
            + s.rx_wrong_sync_id + s.rx_own + s.rx_replayed;
        prop_assert_eq!(drops + s.rx_messages, datagrams.len() as u64);
    }

    #[test]
    fn mutated_messages_never_panic_and_keep_counts_exact(
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
        seed in any::<u64>(),
    ) {
        let mut p = Pair::new(sync_cfg(), 256, None);
        p.deliver = false;
        let mut rng = Prng::new(seed);
        let mut flows = Vec::new();
        traffic(&mut p, &mut rng, 200, &mut flows);
        for (i, (_, m)) in p.sent.clone().into_iter().enumerate() {
            let mut m = m;
            if i % 2 == 0 {
                for &(at, v) in &flips {
                    let n = m.len();
                    m[at % n] = v;
                }
                m.truncate(cut % (m.len() + 1) + if i % 4 == 0 { m.len() } else { 0 });
            }
            p.sb.handle(p.now, Input::Receive(&m), &mut p.b);
        }
        p.b.handle_timeout(p.now + Duration::from_secs(30));
        assert_counts_exact(&p.b, &[ServiceId(0), ServiceId(1), ServiceId(2), ServiceId(3)]);
    }
}
