//! Transition tests of the VRRP instance with exact times, and a two-node
//! harness that jumps virtual time to the next deadline (quinn-proto's
//! `Pair` idea).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::vec::Vec;

use super::*;
use crate::time::{Duration, Instant};
use crate::wire::vrrp::{MULTICAST_V4, MULTICAST_V6};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
const GROUP: IpAddr = IpAddr::V4(MULTICAST_V4);
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 240));

fn config(addr: IpAddr, priority: u8) -> Config {
    let mut c = Config::new(51, addr);
    c.priority = priority;
    c
}

fn instance(c: Config) -> Instance {
    Instance::new(c, &[VIP], &[]).unwrap()
}

fn drain(i: &mut Instance) -> Vec<Output> {
    core::iter::from_fn(|| i.poll_output()).collect()
}

fn states(outputs: &[Output]) -> Vec<(State, State, Reason)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::StateChanged { from, to, reason } => Some((*from, *to, *reason)),
            _ => None,
        })
        .collect()
}

/// An advert from a peer with `c`'s settings at `priority`.
fn advert_from(c: &Config, priority: u8) -> Vec<u8> {
    let peer = Instance::<64>::new(c.clone(), &[VIP], &[]).unwrap();
    let mut buf = [0u8; 128];
    let dst = match c.family {
        Family::V4 => GROUP,
        Family::V6 => IpAddr::V6(MULTICAST_V6),
    };
    let n = peer
        .emit_advert(priority, c.primary_addr, dst, &mut buf)
        .unwrap();
    buf[..n].to_vec()
}

fn deliver(i: &mut Instance, now: Instant, from: &Config, priority: u8) {
    let bytes = advert_from(from, priority);
    i.handle(
        now,
        Input::Advert {
            src: from.primary_addr,
            dst: GROUP,
            ttl: 255,
            payload: &bytes,
        },
    );
}

fn started(c: Config) -> Instance {
    let mut i = instance(c);
    i.handle(Instant::ZERO, Input::Start);
    drain(&mut i);
    i
}

#[test]
fn master_down_interval_matches_the_rfc_formulas() {
    // v2, priority 100, 1 s: 3 * 1 s + (256 - 100) / 256 s.
    let i = instance(config(A, 100));
    assert_eq!(i.master_down_interval(), Duration::from_micros(3_609_375));
    assert_eq!(i.skew_time(), Duration::from_micros(609_375));

    // v3 at 10 ms: 3 * 10 ms + 156 * 10 ms / 256 = 36.09375 ms.
    let mut c = config(A, 100);
    c.version = Version::V3;
    c.advert_interval_cs = 1;
    let i = instance(c);
    assert_eq!(i.master_down_interval(), Duration::from_micros(36_093));

    // The seed: v2, priority 100, advert_int 5: skew stays in seconds.
    let mut c = config(A, 100);
    c.advert_interval_cs = 500;
    assert_eq!(
        instance(c).master_down_interval(),
        Duration::from_micros(15_609_375)
    );

    // down_timer_adverts replaces the 3.
    let mut c = config(A, 100);
    c.down_timer_adverts = 5;
    assert_eq!(
        instance(c).master_down_interval(),
        Duration::from_micros(5_609_375)
    );
}

#[test]
fn backup_becomes_master_after_master_down_interval() {
    let mut i = instance(config(A, 100));
    i.handle(Instant::ZERO, Input::Start);
    assert_eq!(
        states(&drain(&mut i)),
        [(State::Init, State::Backup, Reason::Start)]
    );
    let due = Instant::from_micros(3_609_375);
    assert_eq!(i.poll_timeout(), Some(due));
    i.handle_timeout(due - Duration::from_micros(1));
    assert!(drain(&mut i).is_empty());
    i.handle_timeout(due);
    assert_eq!(
        drain(&mut i),
        [
            Output::StateChanged {
                from: State::Backup,
                to: State::Master,
                reason: Reason::MasterDown
            },
            Output::Advert { priority: 100 },
            Output::AddVips,
            Output::Garp { repeat: 5 },
        ]
    );
    // Adverts every interval from then on.
    assert_eq!(i.poll_timeout(), Some(due + Duration::from_secs(1)));
    i.handle_timeout(due + Duration::from_secs(1));
    assert_eq!(drain(&mut i), [Output::Advert { priority: 100 }]);
    // handle_timeout is idempotent.
    i.handle_timeout(due + Duration::from_secs(1));
    assert!(drain(&mut i).is_empty());
}

#[test]
fn owner_takes_over_at_once() {
    let mut i = instance(config(A, 255));
    i.handle(Instant::from_secs(7), Input::Start);
    let out = drain(&mut i);
    assert_eq!(states(&out), [(State::Init, State::Master, Reason::Start)]);
    assert!(out.contains(&Output::Advert { priority: 255 }));
}

#[test]
fn state_master_waits_one_interval_plus_skew() {
    let mut c = config(A, 100);
    c.start_as_master = true;
    let mut i = instance(c);
    i.handle(Instant::ZERO, Input::Start);
    drain(&mut i);
    assert_eq!(i.poll_timeout(), Some(Instant::from_micros(1_609_375)));
}

#[test]
fn shutdown_and_fault_send_priority_zero() {
    let mut i = started(config(A, 255));
    i.handle(Instant::from_secs(1), Input::Shutdown);
    assert_eq!(
        drain(&mut i),
        [
            Output::StateChanged {
                from: State::Master,
                to: State::Init,
                reason: Reason::Shutdown
            },
            Output::Advert { priority: 0 },
            Output::RemoveVips,
        ]
    );
    assert_eq!(i.poll_timeout(), None);

    let mut i = started(config(A, 255));
    i.handle(Instant::from_secs(1), Input::Link { up: false });
    let out = drain(&mut i);
    assert_eq!(states(&out), [(State::Master, State::Fault, Reason::Fault)]);
    assert!(out.contains(&Output::Advert { priority: 0 }));
    assert!(out.contains(&Output::RemoveVips));
    // Fault listens to nothing.
    deliver(&mut i, Instant::from_secs(2), &config(B, 100), 100);
    assert_eq!(i.stats().dropped(Drop::NotListening), 1);
    // Owner comes straight back as master.
    i.handle(Instant::from_secs(3), Input::Link { up: true });
    assert_eq!(
        states(&drain(&mut i)),
        [(State::Fault, State::Master, Reason::FaultCleared)]
    );
}

#[test]
fn backup_hearing_priority_zero_takes_over_after_skew() {
    let mut i = started(config(A, 100));
    deliver(&mut i, Instant::from_secs(1), &config(B, 200), 200);
    assert_eq!(
        i.poll_timeout(),
        Some(Instant::from_secs(1) + Duration::from_micros(3_609_375))
    );
    deliver(&mut i, Instant::from_secs(2), &config(B, 200), 0);
    assert_eq!(
        i.poll_timeout(),
        Some(Instant::from_secs(2) + Duration::from_micros(609_375))
    );
    assert_eq!(i.stats().priority_zero_received, 1);
}

#[test]
fn preempt_and_nopreempt() {
    // Preempt (default): a higher-priority backup ignores a lower master
    // and takes over when its down timer runs out.
    let mut i = started(config(A, 150));
    deliver(&mut i, Instant::from_secs(1), &config(B, 100), 100);
    assert_eq!(
        i.poll_timeout(),
        Some(Instant::from_micros(3_414_062)),
        "timer not reset by a lower master"
    );

    // nopreempt: the lower master is accepted, the down timer resets.
    let mut c = config(A, 150);
    c.preempt = false;
    let mut i = started(c);
    deliver(&mut i, Instant::from_secs(1), &config(B, 100), 100);
    assert_eq!(
        i.poll_timeout(),
        Some(Instant::from_secs(1) + Duration::from_micros(3_414_062))
    );
}

#[test]
fn preempt_delay_tolerates_a_lower_master_for_a_while() {
    let mut c = config(A, 150);
    c.preempt_delay = Duration::from_secs(10);
    let mut i = started(c);
    let lower = config(B, 100);
    // Within the delay (10 s after first hearing it at 1 s): accepted.
    for s in 1..=10 {
        deliver(&mut i, Instant::from_secs(s), &lower, 100);
        assert_eq!(i.state(), State::Backup);
        assert_eq!(
            i.poll_timeout(),
            Some(Instant::from_secs(s) + Duration::from_micros(3_414_062))
        );
    }
    // After it: ignored, so the down timer from the last accepted one fires.
    deliver(&mut i, Instant::from_secs(11), &lower, 100);
    assert_eq!(
        i.poll_timeout(),
        Some(Instant::from_secs(10) + Duration::from_micros(3_414_062))
    );
    i.handle_timeout(Instant::from_secs(14));
    assert_eq!(i.state(), State::Master);
}

#[test]
fn equal_priority_tie_goes_to_the_greater_address() {
    // A (192.0.2.1) is master; B (192.0.2.2) at the same priority wins.
    let mut a = started(config(A, 255));
    let mut c = config(A, 100);
    c.priority = 100;
    let mut a100 = started(c);
    a100.handle_timeout(Instant::from_secs(4));
    drain(&mut a100);
    assert_eq!(a100.state(), State::Master);
    deliver(&mut a100, Instant::from_secs(5), &config(B, 100), 100);
    assert_eq!(
        states(&drain(&mut a100)),
        [(State::Master, State::Backup, Reason::HigherPriority)]
    );

    // B as master keeps mastership against A at equal priority and answers.
    let mut b = started(config(B, 100));
    b.handle_timeout(Instant::from_secs(4));
    drain(&mut b);
    deliver(&mut b, Instant::from_secs(5), &config(A, 100), 100);
    assert_eq!(
        drain(&mut b),
        [Output::Advert { priority: 100 }, Output::Garp { repeat: 5 }]
    );
    assert_eq!(b.state(), State::Master);

    // The owner never yields to a lower priority.
    deliver(&mut a, Instant::from_secs(5), &config(B, 254), 254);
    assert_eq!(a.state(), State::Master);
}

#[test]
fn master_answers_lower_priority_unless_configured_not_to() {
    let mut m = started(config(A, 255));
    deliver(&mut m, Instant::from_millis(500), &config(B, 100), 100);
    // The VIPs are announced again too: hosts may have followed the other.
    assert_eq!(
        drain(&mut m),
        [Output::Advert { priority: 255 }, Output::Garp { repeat: 5 }]
    );
    assert_eq!(m.poll_timeout(), Some(Instant::from_millis(1_500)));

    let mut c = config(A, 255);
    c.lower_prio_no_advert = true;
    let mut m = started(c);
    deliver(&mut m, Instant::from_millis(500), &config(B, 100), 100);
    assert!(drain(&mut m).is_empty());
}

#[test]
fn received_adverts_are_checked_and_drops_counted() {
    let mut i = started(config(A, 100));
    let peer = config(B, 200);
    let bytes = advert_from(&peer, 200);
    let t = Instant::from_secs(1);
    // TTL.
    i.handle(
        t,
        Input::Advert {
            src: B,
            dst: GROUP,
            ttl: 254,
            payload: &bytes,
        },
    );
    assert_eq!(i.stats().dropped(Drop::Ttl), 1);
    // Checksum.
    let mut bad = bytes.clone();
    bad[2] ^= 0xff;
    i.handle(
        t,
        Input::Advert {
            src: B,
            dst: GROUP,
            ttl: 255,
            payload: &bad,
        },
    );
    assert_eq!(i.stats().dropped(Drop::Checksum), 1);
    // Malformed.
    i.handle(
        t,
        Input::Advert {
            src: B,
            dst: GROUP,
            ttl: 255,
            payload: &bytes[..5],
        },
    );
    assert_eq!(i.stats().dropped(Drop::Malformed), 1);
    // Other VRID.
    let mut other = peer.clone();
    other.vrid = 52;
    deliver(&mut i, t, &other, 200);
    assert_eq!(i.stats().dropped(Drop::Vrid), 1);
    // Own packet.
    deliver(&mut i, t, &config(A, 100), 100);
    assert_eq!(i.stats().dropped(Drop::Own), 1);
    // Wrong password.
    let mut pass = peer.clone();
    pass.auth = Auth::pass(b"2222");
    deliver(&mut i, t, &pass, 200);
    assert_eq!(i.stats().dropped(Drop::Auth), 1);
    // v2 interval mismatch: dropped.
    let mut slow = peer.clone();
    slow.advert_interval_cs = 200;
    deliver(&mut i, t, &slow, 200);
    assert_eq!(i.stats().dropped(Drop::Interval), 1);
    // Other version.
    let mut v3 = peer.clone();
    v3.version = Version::V3;
    deliver(&mut i, t, &v3, 200);
    assert_eq!(i.stats().dropped(Drop::Version), 1);
    // None of these reset the down timer.
    assert_eq!(i.poll_timeout(), Some(Instant::from_micros(3_609_375)));
    assert_eq!(i.stats().total_dropped(), 8);
    assert_eq!(i.stats().adverts_received, 0);
}

#[test]
fn v3_backup_learns_the_masters_interval() {
    let mut c = config(A, 100);
    c.version = Version::V3;
    c.advert_interval_cs = 100;
    let mut i = started(c);
    let mut peer = config(B, 200);
    peer.version = Version::V3;
    peer.advert_interval_cs = 10;
    deliver(&mut i, Instant::from_secs(1), &peer, 200);
    assert_eq!(i.stats().interval_mismatch, 1);
    assert_eq!(i.master_adver_interval(), Duration::from_millis(100));
    // 3 * 100 ms + 156 * 100 ms / 256.
    assert_eq!(
        i.poll_timeout(),
        Some(Instant::from_secs(1) + Duration::from_micros(360_937))
    );
}

#[test]
fn unicast_peers_only() {
    let mut c = config(A, 100);
    c.unicast_peers.push(B).unwrap();
    let mut i = started(c);
    assert_eq!(i.advert_destinations().collect::<Vec<_>>(), [B]);
    let stranger = config(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)), 200);
    deliver(&mut i, Instant::from_secs(1), &stranger, 200);
    assert_eq!(i.stats().dropped(Drop::UnknownPeer), 1);
    // Unicast adverts need not keep TTL 255.
    let bytes = advert_from(&config(B, 200), 200);
    i.handle(
        Instant::from_secs(1),
        Input::Advert {
            src: B,
            dst: A,
            ttl: 63,
            payload: &bytes,
        },
    );
    assert_eq!(i.stats().adverts_received, 1);
}

#[test]
fn tracking_weights_and_fault() {
    let mut c = config(A, 100);
    c.tracks.push(Track::new(TrackId(1), -30)).unwrap();
    c.tracks.push(Track::new(TrackId(2), 20)).unwrap();
    c.tracks.push(Track::new(TrackId(3), 0)).unwrap();
    c.tracks.push(Track::new(TrackId(4), -1000)).unwrap();
    let mut i = started(c);
    assert_eq!(i.config().tracks[3].weight, -254, "weights clamp to 254");
    assert_eq!(i.effective_priority(), 120);
    i.handle(
        Instant::ZERO,
        Input::Track {
            id: TrackId(1),
            up: false,
        },
    );
    assert_eq!(i.effective_priority(), 90);
    i.handle(
        Instant::ZERO,
        Input::Track {
            id: TrackId(2),
            up: false,
        },
    );
    assert_eq!(i.effective_priority(), 70);
    i.handle(
        Instant::ZERO,
        Input::Track {
            id: TrackId(4),
            up: false,
        },
    );
    assert_eq!(i.effective_priority(), 1, "priority floors at 1");
    assert_eq!(i.state(), State::Backup);
    drain(&mut i);
    i.handle(
        Instant::ZERO,
        Input::Track {
            id: TrackId(3),
            up: false,
        },
    );
    assert_eq!(
        states(&drain(&mut i)),
        [(State::Backup, State::Fault, Reason::Fault)]
    );
    i.handle(
        Instant::from_secs(1),
        Input::Track {
            id: TrackId(3),
            up: true,
        },
    );
    assert_eq!(
        states(&drain(&mut i)),
        [(State::Fault, State::Backup, Reason::FaultCleared)]
    );
    assert_eq!(
        i.poll_timeout(),
        Some(Instant::from_secs(1) + i.master_down_interval())
    );
}

#[test]
fn garp_bursts_after_delay_and_on_refresh() {
    let mut c = config(A, 255);
    c.garp.refresh = Duration::from_secs(60);
    c.garp.refresh_repeat = 2;
    let mut i = instance(c);
    i.handle(Instant::ZERO, Input::Start);
    assert!(drain(&mut i).contains(&Output::Garp { repeat: 5 }));
    let mut garps = Vec::new();
    let mut now = Instant::ZERO;
    while now < Instant::from_secs(121) {
        now = i.poll_timeout().unwrap();
        i.handle_timeout(now);
        for o in drain(&mut i) {
            if let Output::Garp { repeat } = o {
                garps.push((now.as_millis(), repeat));
            }
        }
    }
    assert_eq!(garps, [(5_000, 5), (60_000, 2), (120_000, 2)]);
}

#[test]
fn sync_group_members_follow() {
    let g = SyncGroup::new(&[0, 2, 2]).unwrap();
    assert_eq!(g.members(), [0, 2]);
    assert_eq!(g.follow(2, State::Fault), Some(State::Fault));
    assert_eq!(g.follow(0, State::Init), None);
    assert_eq!(g.follow(1, State::Master), None);

    let mut backup = started(config(A, 100));
    backup.force(Instant::from_secs(1), State::Master);
    assert_eq!(
        states(&drain(&mut backup)),
        [(State::Backup, State::Master, Reason::SyncGroup)]
    );
    backup.force(Instant::from_secs(2), State::Fault);
    let out = drain(&mut backup);
    assert!(out.contains(&Output::Advert { priority: 0 }));
    backup.force(Instant::from_secs(3), State::Backup);
    assert_eq!(backup.state(), State::Backup);
}

#[test]
fn reconfigure_keeps_state_and_readvertises_priority() {
    let mut m = started(config(A, 255));
    let mut c = config(A, 200);
    c.priority = 200;
    m.reconfigure(Instant::from_millis(300), c.clone(), &[VIP], &[])
        .unwrap();
    assert_eq!(drain(&mut m), [Output::Advert { priority: 200 }]);
    assert_eq!(m.state(), State::Master);
    // Same config again: nothing at all.
    m.reconfigure(Instant::from_millis(400), c.clone(), &[VIP], &[])
        .unwrap();
    assert!(drain(&mut m).is_empty());
    // New VIP list: re-announced.
    let extra = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 241));
    m.reconfigure(Instant::from_millis(500), c, &[VIP, extra], &[])
        .unwrap();
    assert_eq!(drain(&mut m), [Output::AddVips]);
}

#[test]
fn config_validation() {
    let ok = config(A, 100);
    assert_eq!(ok.validate(), Ok(()));
    let mut c = ok.clone();
    c.vrid = 0;
    assert_eq!(c.validate(), Err(ConfigError::Vrid));
    let mut c = ok.clone();
    c.priority = 0;
    assert_eq!(c.validate(), Err(ConfigError::Priority));
    let mut c = ok.clone();
    c.advert_interval_cs = 150;
    assert_eq!(
        c.validate(),
        Err(ConfigError::AdvertInterval),
        "v2 needs whole seconds"
    );
    let mut c = Config::new(1, IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(c.validate(), Err(ConfigError::V2OverIpv6));
    c.version = Version::V3;
    assert_eq!(c.validate(), Ok(()));
    assert_eq!(
        Instance::<64>::new(c, &[VIP], &[]).err(),
        Some(ConfigError::FamilyMismatch)
    );
    let many: Vec<IpAddr> = (0..3)
        .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)))
        .collect();
    assert_eq!(
        Instance::<2>::new(ok, &many, &[]).err(),
        Some(ConfigError::Capacity)
    );
}

#[test]
fn footprint() {
    let one = core::mem::size_of::<Instance<8>>();
    std::println!(
        "size_of Instance<8> = {one} bytes, Instance<64> = {}",
        core::mem::size_of::<Instance>()
    );
    assert!(
        one <= 1024,
        "a firmware instance with 8 VIPs must stay small: {one}"
    );
}

/// Two instances on one segment: adverts delivered with a fixed latency,
/// time jumping to the next deadline.
struct Pair {
    nodes: [Instance; 2],
    up: [bool; 2],
    now: Instant,
    in_flight: Vec<(Instant, usize, u8)>,
    latency: Duration,
    /// (time, node, new state)
    transitions: Vec<(Instant, usize, State)>,
}

impl Pair {
    fn new(a: Config, b: Config) -> Pair {
        let mut p = Pair {
            nodes: [instance(a), instance(b)],
            up: [true, true],
            now: Instant::ZERO,
            in_flight: Vec::new(),
            latency: Duration::from_micros(100),
            transitions: Vec::new(),
        };
        for n in 0..2 {
            p.nodes[n].handle(Instant::ZERO, Input::Start);
            p.collect(n);
        }
        p
    }

    fn collect(&mut self, n: usize) {
        while let Some(o) = self.nodes[n].poll_output() {
            match o {
                Output::Advert { priority } => {
                    self.in_flight
                        .push((self.now + self.latency, 1 - n, priority))
                }
                Output::StateChanged { to, .. } => self.transitions.push((self.now, n, to)),
                _ => {}
            }
        }
    }

    fn run_until(&mut self, end: Instant) {
        loop {
            let timer = (0..2)
                .filter(|n| self.up[*n])
                .filter_map(|n| self.nodes[n].poll_timeout().map(|t| (t, n)))
                .min();
            let packet = self
                .in_flight
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| p.0)
                .map(|(i, p)| (p.0, i));
            let next = match (timer, packet) {
                (Some((t, _)), Some((p, _))) => t.min(p),
                (Some((t, _)), None) => t,
                (None, Some((p, _))) => p,
                (None, None) => break,
            };
            if next > end {
                break;
            }
            self.now = next;
            if let Some((p, i)) = packet
                && p == next
            {
                let (_, to, priority) = self.in_flight.remove(i);
                if self.up[to] {
                    let from = self.nodes[1 - to].config().clone();
                    let bytes = advert_from(&from, priority);
                    self.nodes[to].handle(
                        next,
                        Input::Advert {
                            src: from.primary_addr,
                            dst: GROUP,
                            ttl: 255,
                            payload: &bytes,
                        },
                    );
                    self.collect(to);
                }
                continue;
            }
            for n in 0..2 {
                if self.up[n] {
                    self.nodes[n].handle_timeout(next);
                    self.collect(n);
                }
            }
        }
        self.now = end;
    }

    fn masters(&self) -> Vec<usize> {
        (0..2)
            .filter(|n| self.up[*n] && self.nodes[*n].state() == State::Master)
            .collect()
    }
}

#[test]
fn pair_elects_by_priority_and_fails_over_within_the_bound() {
    let mut p = Pair::new(config(A, 150), config(B, 100));
    p.run_until(Instant::from_secs(10));
    assert_eq!(p.masters(), [0]);

    // Crash: the backup takes over one Master_Down_Interval after the last
    // advert it heard.
    let crash = Instant::from_millis(10_200);
    p.run_until(crash);
    p.up[0] = false;
    p.in_flight.retain(|f| f.1 != 1);
    p.run_until(Instant::from_secs(20));
    assert_eq!(p.masters(), [1]);
    let took_over = p
        .transitions
        .iter()
        .rev()
        .find(|t| t.1 == 1 && t.2 == State::Master)
        .unwrap()
        .0;
    let last_advert = Instant::from_millis(10_000) + Duration::from_micros(100);
    assert!(
        took_over <= last_advert + p.nodes[1].master_down_interval(),
        "{took_over:?}"
    );
}

#[test]
fn pair_graceful_shutdown_hands_over_after_skew() {
    let mut p = Pair::new(config(A, 150), config(B, 100));
    p.run_until(Instant::from_millis(10_500));
    p.nodes[0].handle(p.now, Input::Shutdown);
    p.collect(0);
    p.run_until(Instant::from_secs(12));
    let took_over = p
        .transitions
        .iter()
        .rev()
        .find(|t| t.1 == 1 && t.2 == State::Master)
        .unwrap()
        .0;
    assert_eq!(
        took_over,
        Instant::from_millis(10_500) + Duration::from_micros(100) + Duration::from_micros(609_375)
    );
}

#[test]
fn pair_with_identical_configs_breaks_the_tie_by_address() {
    // Both `state MASTER`, priority 100: the seed's literal setup.
    let mut a = config(A, 100);
    a.start_as_master = true;
    let mut b = config(B, 100);
    b.start_as_master = true;
    let mut p = Pair::new(a, b);
    p.run_until(Instant::from_secs(10));
    assert_eq!(p.masters(), [1], "192.0.2.2 > 192.0.2.1");
}

#[test]
fn pair_preempts_back_when_the_higher_priority_returns() {
    let mut p = Pair::new(config(A, 150), config(B, 100));
    p.run_until(Instant::from_secs(5));
    p.up[0] = false;
    p.run_until(Instant::from_secs(10));
    assert_eq!(p.masters(), [1]);
    p.up[0] = true;
    p.nodes[0] = instance(config(A, 150));
    p.nodes[0].handle(p.now, Input::Start);
    p.collect(0);
    p.run_until(Instant::from_secs(20));
    assert_eq!(p.masters(), [0]);
}
