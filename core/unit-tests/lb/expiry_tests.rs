//! Tests of expiry timing: the configured timeouts (`lvs_timeouts`) and
//! [`Balancer::next_expiry`], which an idle driver sleeps until.

// The crate is no_std; this test module links std for itself (lib.rs).
extern crate std;

use core::net::{IpAddr, Ipv4Addr};
use std::vec::Vec;

use proptest::prelude::*;

use super::conn::{TICK_SHIFT, tick_of};
use super::tcp::TcpState;
use super::tests::balancer;
use super::*;
use crate::time::{Duration, Instant};

const TICK: Duration = Duration::from_micros(1 << TICK_SHIFT);

fn vip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))
}

fn client(i: u16) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, (i % 250) as u8 + 1))
}

/// A balancer with a TCP and a UDP service on port 80, one server each,
/// and room for `connections` (the wheel has as many buckets, 64 to
/// 65,536: with 4096, one revolution is 67 s).
fn two_services(cfg: LbConfig, connections: u32) -> Balancer<'static> {
    let layout = Layout {
        services: 2,
        servers_per_service: 2,
        mh_table_max: 0,
        connections,
    };
    let mut b = balancer(layout, cfg);
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        let id = b
            .add_service(ServiceConfig::new(
                ServiceKey::Addr {
                    protocol,
                    vip: vip(),
                    port: 80,
                },
                Scheduler::Wlc,
            ))
            .unwrap();
        let rs = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
        b.add_server(id, RealServer::new(rs, 80)).unwrap();
    }
    b
}

fn udp(i: u16) -> Flow {
    Flow::udp(client(i), 1000 + i, vip(), 80)
}

fn tcp(i: u16, flags: TcpFlags) -> Flow {
    Flow::tcp(client(i), 1000 + i, vip(), 80, flags)
}

fn forwarded(v: Verdict) -> bool {
    matches!(v, Verdict::Forward { .. })
}

/// When the earliest tracked entry is removed by an expiry pass: the
/// start of the tick after its expiry tick.
fn earliest_due(b: &Balancer<'_>, now: Instant) -> Option<Instant> {
    let now_tick = tick_of(now.as_micros());
    let mut due = None::<Instant>;
    b.for_each_entry(|e| {
        let at = Instant::from_micros((now_tick << TICK_SHIFT) + e.expires_in.as_micros()) + TICK;
        due = Some(due.map_or(at, |d| d.min(at)));
    });
    due
}

#[test]
fn an_entry_due_in_5_s_is_the_next_expiry() {
    let cfg = LbConfig {
        udp_timeout_s: 5,
        ..LbConfig::DEFAULT
    };
    let mut b = two_services(cfg, 4096);
    assert_eq!(b.next_expiry(), None, "nothing tracked");
    let t0 = Instant::from_millis(1234);
    assert!(forwarded(b.classify(t0, &udp(1))));
    let next = b.next_expiry().unwrap();
    // Exactly when the pass that removes it can run: the table files by
    // tick and rounds the timeout up to whole ticks, so that is within two
    // ticks after 5 s.
    assert_eq!(Some(next), earliest_due(&b, t0));
    let five = t0 + Duration::from_secs(5);
    assert!(
        next > five && next <= five + TICK + TICK,
        "next expiry {next:?}, due about {five:?}"
    );
    // Not late: just before it the entry is alive, at it gone.
    b.handle_timeout(next - Duration::from_micros(1));
    assert_eq!(b.tracked(), 1);
    b.handle_timeout(next);
    assert_eq!(b.tracked(), 0);
    assert_eq!(b.next_expiry(), None);
}

#[test]
fn an_extended_entry_makes_next_expiry_early_never_late() {
    let cfg = LbConfig {
        udp_timeout_s: 5,
        ..LbConfig::DEFAULT
    };
    let mut b = two_services(cfg, 4096);
    let t0 = Instant::from_secs(10);
    b.classify(t0, &udp(1));
    let first = b.next_expiry().unwrap();
    // A packet 2 s later extends it in place: the wheel still says 5 s.
    b.classify(t0 + Duration::from_secs(2), &udp(1));
    assert_eq!(b.next_expiry(), Some(first), "early is allowed");
    // Waking then re-files it; the next answer is the new expiry.
    b.handle_timeout(first);
    assert_eq!(b.tracked(), 1, "extended, not expired");
    let second = b.next_expiry().unwrap();
    assert_eq!(Some(second), earliest_due(&b, first));
    let seven = t0 + Duration::from_secs(7);
    assert!(
        second > seven && second <= seven + TICK + TICK,
        "{second:?}"
    );
    b.handle_timeout(second);
    assert_eq!(b.tracked(), 0);
}

#[test]
fn a_far_expiry_is_answered_by_the_end_of_the_bounded_scan() {
    let mut b = two_services(LbConfig::DEFAULT, 65_536);
    let t0 = Instant::from_secs(3);
    // UDP, 300 s: beyond the 4096-tick scan.
    b.classify(t0, &udp(1));
    let next = b.next_expiry().unwrap();
    let scan = TICK.saturating_mul(NEXT_EXPIRY_SCAN_TICKS as u64);
    assert!(
        next <= t0 + scan + TICK && next + TICK >= t0 + scan,
        "{next:?}"
    );
    assert!(next < earliest_due(&b, t0).unwrap());
    // Waking then finds nothing due, and the answer moves on by a scan.
    b.handle_timeout(next);
    assert_eq!(b.tracked(), 1);
    let again = b.next_expiry().unwrap();
    assert!(again > next && again <= next + scan + TICK, "{again:?}");
}

#[test]
fn established_and_fin_wait_connections_use_the_configured_timeouts() {
    // `lvs_timeouts tcp 30 tcpfin 7`: ESTABLISHED 30 s, FIN_WAIT 7 s;
    // every other state keeps IPVS's timeout (SYN_RECV 60 s).
    let cfg = LbConfig {
        tcp_timeout_s: 30,
        tcp_fin_timeout_s: 7,
        ..LbConfig::DEFAULT
    };
    let mut b = two_services(cfg, 4096);
    let t0 = Instant::from_secs(1);
    assert!(forwarded(b.classify(t0, &tcp(1, TcpFlags::SYN))));
    assert!(forwarded(b.classify(t0, &tcp(2, TcpFlags::SYN))));
    assert!(forwarded(b.classify(t0, &tcp(2, TcpFlags::ACK))));
    assert!(forwarded(b.classify(t0, &tcp(3, TcpFlags::SYN))));
    assert!(forwarded(b.classify(t0, &tcp(3, TcpFlags::ACK))));
    assert!(forwarded(b.classify(t0, &tcp(3, TcpFlags::FIN))));
    let state = |b: &Balancer<'_>, i| b.connection(&tcp(i, TcpFlags::ACK)).map(|c| c.1);
    assert_eq!(state(&b, 1), Some(TcpState::SynRecv));
    assert_eq!(state(&b, 2), Some(TcpState::Established));
    assert_eq!(state(&b, 3), Some(TcpState::FinWait));
    let at = |s: u64| t0 + Duration::from_secs(s);
    b.handle_timeout(at(7) - TICK);
    assert_eq!(state(&b, 3), Some(TcpState::FinWait));
    // Gone within two ticks (whole ticks, rounded up).
    b.handle_timeout(at(7) + TICK + TICK);
    assert_eq!(state(&b, 3), None, "FIN_WAIT expires after tcpfin");
    b.handle_timeout(at(30) - TICK);
    assert_eq!(state(&b, 2), Some(TcpState::Established));
    b.handle_timeout(at(30) + TICK + TICK);
    assert_eq!(state(&b, 2), None, "ESTABLISHED expires after tcp");
    assert_eq!(state(&b, 1), Some(TcpState::SynRecv), "SYN_RECV keeps 60 s");
    b.handle_timeout(at(60) + TICK + TICK);
    assert_eq!(state(&b, 1), None);
}

#[test]
fn the_default_timeouts_are_ipvss() {
    let cfg = LbConfig::DEFAULT;
    assert_eq!(
        (cfg.tcp_timeout_s, cfg.tcp_fin_timeout_s, cfg.udp_timeout_s),
        (900, 120, 300)
    );
    let mut b = two_services(cfg, 4096);
    let t0 = Instant::from_secs(1);
    b.classify(t0, &tcp(1, TcpFlags::SYN));
    b.classify(t0, &tcp(1, TcpFlags::ACK));
    b.handle_timeout(t0 + Duration::from_secs(899));
    assert_eq!(b.tracked(), 1);
    b.handle_timeout(t0 + Duration::from_secs(900) + TICK + TICK);
    assert_eq!(b.tracked(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever was tracked, extended or expired, `next_expiry` is never
    /// after the earliest entry is due.
    #[test]
    fn next_expiry_is_never_late(
        steps in proptest::collection::vec((0u16..40, 0u8..4, 0u64..3_000), 1..120),
        udp_s in 1u32..20,
        tcp_s in 1u32..40,
        small_wheel in any::<bool>(),
    ) {
        let cfg = LbConfig {
            udp_timeout_s: udp_s,
            tcp_timeout_s: tcp_s,
            tcp_fin_timeout_s: 3,
            ..LbConfig::DEFAULT
        };
        // 64 buckets (1 s a revolution) wraps; 4096 does not.
        let mut b = two_services(cfg, if small_wheel { 64 } else { 4096 });
        let mut now = Instant::from_secs(1);
        let mut wakes: Vec<Instant> = Vec::new();
        for (i, kind, gap_ms) in steps {
            now += Duration::from_millis(gap_ms);
            match kind {
                0 => { b.classify(now, &udp(i)); }
                1 => { b.classify(now, &tcp(i, TcpFlags::SYN)); }
                2 => { b.classify(now, &tcp(i, TcpFlags::ACK)); }
                _ => {
                    // The driver's idle wake-up.
                    if let Some(t) = b.next_expiry() {
                        now = now.max(t);
                        wakes.push(t);
                    }
                    b.handle_timeout(now);
                }
            }
            match (b.next_expiry(), earliest_due(&b, now)) {
                (None, None) => {}
                (Some(next), Some(due)) => prop_assert!(next <= due, "{next:?} after {due:?}"),
                other => prop_assert!(false, "tracked and next_expiry disagree: {other:?}"),
            }
        }
        // One wake-up per due bucket at most: the answers only move on.
        prop_assert!(wakes.windows(2).all(|w| w[0] < w[1]), "{wakes:?}");
    }
}

#[test]
fn quiet_packets_rearm_the_configured_timeouts() {
    // An ACK that leaves ESTABLISHED or FIN_WAIT as it is takes the hit
    // path, which re-arms the state's configured timeout as a state
    // change does (not IPVS's default 900 s or 120 s).
    let cfg = LbConfig {
        tcp_timeout_s: 30,
        tcp_fin_timeout_s: 7,
        ..LbConfig::DEFAULT
    };
    let mut b = two_services(cfg, 4096);
    let t0 = Instant::from_secs(1);
    for f in [TcpFlags::SYN, TcpFlags::ACK] {
        assert!(forwarded(b.classify(t0, &tcp(2, f))));
    }
    for f in [TcpFlags::SYN, TcpFlags::ACK, TcpFlags::FIN] {
        assert!(forwarded(b.classify(t0, &tcp(3, f))));
    }
    let state = |b: &Balancer<'_>, i| b.connection(&tcp(i, TcpFlags::ACK)).map(|c| c.1);
    let at = |s: u64| t0 + Duration::from_secs(s);
    for i in [2, 3] {
        assert!(forwarded(b.classify(at(5), &tcp(i, TcpFlags::ACK))));
    }
    b.handle_timeout(at(5 + 7) - TICK);
    assert_eq!(state(&b, 3), Some(TcpState::FinWait));
    b.handle_timeout(at(5 + 7) + TICK + TICK);
    assert_eq!(state(&b, 3), None, "FIN_WAIT: 7 s after its last packet");
    b.handle_timeout(at(5 + 30) - TICK);
    assert_eq!(state(&b, 2), Some(TcpState::Established));
    b.handle_timeout(at(5 + 30) + TICK + TICK);
    assert_eq!(
        state(&b, 2),
        None,
        "ESTABLISHED: 30 s after its last packet"
    );
}
