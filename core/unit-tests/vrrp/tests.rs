//! Tests of the VRRP instance: a table of every transition and keepalived
//! extension with exact times, the output queue's room rules (every input
//! in every state with an undrained queue, and a property test of random
//! inputs with random partial draining), receive checks, and a two-node
//! harness that jumps virtual time to the next deadline (quinn-proto's
//! `Pair` idea).

// The crate is no_std; this test module links std for itself (lib.rs).
extern crate std;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::vec::Vec;

use super::*;
use crate::time::{Duration, Instant};
use crate::wire::vrrp::{MULTICAST_V4, MULTICAST_V6};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
const C: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
const GROUP: IpAddr = IpAddr::V4(MULTICAST_V4);
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 240));
const A6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1));
const B6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2));
const VIP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x240));

fn config(addr: IpAddr, priority: u8) -> Config {
    let mut c = Config::new(51, addr);
    c.priority = priority;
    c
}

fn instance(c: Config) -> Instance {
    let vip = match c.family {
        Family::V4 => VIP,
        Family::V6 => VIP6,
    };
    Instance::new(c, &[vip], &[]).unwrap()
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

fn group_of(family: Family) -> IpAddr {
    match family {
        Family::V4 => GROUP,
        Family::V6 => IpAddr::V6(MULTICAST_V6),
    }
}

/// An advert from a peer configured as `c`, at `priority`, sent to `dst`.
fn advert_to(c: &Config, priority: u8, dst: IpAddr) -> Vec<u8> {
    let peer = instance(c.clone());
    let mut buf = [0u8; 128];
    let n = peer
        .emit_advert(priority, c.primary_addr, dst, &mut buf)
        .unwrap();
    buf[..n].to_vec()
}

/// An advert from a peer configured as `c`, to the group.
fn advert_from(c: &Config, priority: u8) -> Vec<u8> {
    advert_to(c, priority, group_of(c.family))
}

fn deliver(i: &mut Instance, now: Instant, from: &Config, priority: u8) {
    let bytes = advert_from(from, priority);
    i.handle(
        now,
        Input::Advert {
            src: from.primary_addr,
            dst: group_of(from.family),
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

    // v3 at 10 ms: 3 * 10 ms + 156 * 10 ms / 256 = 36.09375 ms (the table
    // drives the takeover at exactly this time).
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

// ---------------------------------------------------------------------
// The transition table.
// ---------------------------------------------------------------------

/// One input of a table row.
#[derive(Clone, Copy)]
enum Ev {
    Start,
    Shutdown,
    Link(bool),
    Track(u16, bool),
    /// An advert at this priority from this address, sent to the group with
    /// TTL 255 by a peer configured like us (VRID, version, interval, auth).
    Advert(IpAddr, u8),
    /// The same from a peer whose configuration differs as the function says.
    AdvertWith(IpAddr, u8, fn(&mut Config)),
    /// An IPv4 advert like `Advert` with its destination and TTL given.
    AdvertTo {
        src: IpAddr,
        dst: IpAddr,
        ttl: u8,
        priority: u8,
    },
    Timeout,
    Force(State),
    Reconfigure(fn(&mut Config)),
}

/// (start state, config, inputs at exact times) -> (end state, outputs,
/// next deadline). `setup` brings the instance to `from` (each input then
/// drained, outputs not checked); each of `inputs` is drained after it
/// unless `undrained`, when everything is drained at the end only.
struct Case {
    name: &'static str,
    config: fn(&mut Config),
    setup: &'static [(u64, Ev)],
    from: State,
    inputs: &'static [(u64, Ev)],
    undrained: bool,
    to: State,
    outputs: &'static [Output],
    /// `poll_timeout` afterwards, in microseconds.
    next: Option<u64>,
    /// A drop the inputs must have counted (exactly one).
    dropped: Option<DropReason>,
    /// Inputs whose step waited for room.
    deferred: u32,
}

const NONE: fn(&mut Config) = |_| {};
const S: u64 = 1_000_000;

const ROW: Case = Case {
    name: "",
    config: NONE,
    setup: &[],
    from: State::Init,
    inputs: &[],
    undrained: false,
    to: State::Init,
    outputs: &[],
    next: None,
    dropped: None,
    deferred: 0,
};

const fn sc(from: State, to: State, reason: Reason) -> Output {
    Output::StateChanged { from, to, reason }
}
const fn adv(priority: u8) -> Output {
    Output::Advert { priority }
}
const fn garp(repeat: u8) -> Output {
    Output::Garp { repeat }
}
const ADD: Output = Output::AddVips;
const REMOVE: Output = Output::RemoveVips;

use Reason::{FaultCleared, HigherPriority, MasterDown, Shutdown, Start, SyncGroup};
use State::{Backup, Fault, Init, Master};

const OWNER: fn(&mut Config) = |c| c.priority = 255;
/// Priority 100, master since 3.609375 s (its next advert at 4.609375 s).
const MASTER_100: &[(u64, Ev)] = &[(0, Ev::Start), (3_609_375, Ev::Timeout)];
const STARTED: &[(u64, Ev)] = &[(0, Ev::Start)];

/// Every transition of RFC 9568 6.4 plus keepalived's Fault and extensions.
/// Times: v2 at 1 s, priority 100 unless the row says otherwise, so
/// Master_Down_Interval is 3.609375 s (150: 3.414062 s, 70: 3.726562 s,
/// 120: 3.53125 s, 254: 3.007812 s, 1: 3.996093 s).
const TABLE: &[Case] = &[
    // --- Init ---
    Case {
        name: "init -> backup on start, down timer at Master_Down_Interval",
        inputs: &[(0, Ev::Start)],
        to: Backup,
        outputs: &[sc(Init, Backup, Start)],
        next: Some(3_609_375),
        ..ROW
    },
    Case {
        name: "owner 255: init -> master at once",
        config: OWNER,
        inputs: &[(7 * S, Ev::Start)],
        to: Master,
        outputs: &[sc(Init, Master, Start), adv(255), ADD, garp(5)],
        next: Some(8 * S),
        ..ROW
    },
    Case {
        name: "garp_master_repeat: messages per VIP in the burst",
        config: |c| {
            c.priority = 255;
            c.garp.repeat = 3;
        },
        inputs: &[(0, Ev::Start)],
        to: Master,
        outputs: &[sc(Init, Master, Start), adv(255), ADD, garp(3)],
        next: Some(S),
        ..ROW
    },
    Case {
        name: "state MASTER: backup for one interval plus skew only",
        config: |c| c.start_as_master = true,
        inputs: &[(0, Ev::Start)],
        to: Backup,
        outputs: &[sc(Init, Backup, Start)],
        next: Some(1_609_375),
        ..ROW
    },
    Case {
        name: "state MASTER: master after one interval plus skew",
        config: |c| c.start_as_master = true,
        setup: STARTED,
        from: Backup,
        inputs: &[(1_609_374, Ev::Timeout), (1_609_375, Ev::Timeout)],
        to: Master,
        outputs: &[sc(Backup, Master, MasterDown), adv(100), ADD, garp(5)],
        next: Some(2_609_375),
        ..ROW
    },
    Case {
        name: "init -> fault: link down at start",
        inputs: &[(0, Ev::Link(false)), (0, Ev::Start)],
        to: Fault,
        outputs: &[sc(Init, Fault, Reason::Fault)],
        ..ROW
    },
    Case {
        name: "init -> fault: weight-0 track down at start",
        config: |c| c.tracks.push(Track::new(TrackId(1), 0)).unwrap(),
        inputs: &[(0, Ev::Track(1, false)), (0, Ev::Start)],
        to: Fault,
        outputs: &[sc(Init, Fault, Reason::Fault)],
        ..ROW
    },
    Case {
        name: "init -> fault: an owner too",
        config: OWNER,
        inputs: &[(0, Ev::Link(false)), (0, Ev::Start)],
        to: Fault,
        outputs: &[sc(Init, Fault, Reason::Fault)],
        ..ROW
    },
    Case {
        name: "init: adverts are not heard",
        inputs: &[(0, Ev::Advert(B, 200))],
        to: Init,
        dropped: Some(DropReason::NotListening),
        ..ROW
    },
    Case {
        name: "init: shutdown and sync group are no-ops",
        inputs: &[(0, Ev::Shutdown), (0, Ev::Force(Master))],
        to: Init,
        ..ROW
    },
    Case {
        name: "down_timer_adverts 5",
        config: |c| c.down_timer_adverts = 5,
        inputs: &[(0, Ev::Start)],
        to: Backup,
        outputs: &[sc(Init, Backup, Start)],
        next: Some(5_609_375),
        ..ROW
    },
    // --- Backup ---
    Case {
        name: "backup -> master at exactly Master_Down_Interval",
        setup: STARTED,
        from: Backup,
        inputs: &[(3_609_374, Ev::Timeout), (3_609_375, Ev::Timeout)],
        to: Master,
        outputs: &[sc(Backup, Master, MasterDown), adv(100), ADD, garp(5)],
        next: Some(4_609_375),
        ..ROW
    },
    Case {
        name: "backup: a higher master resets the down timer",
        setup: STARTED,
        from: Backup,
        inputs: &[(S, Ev::Advert(B, 200))],
        to: Backup,
        next: Some(S + 3_609_375),
        ..ROW
    },
    Case {
        name: "backup: equal priority, greater address: accepted",
        setup: STARTED,
        from: Backup,
        inputs: &[(S, Ev::Advert(B, 100))],
        to: Backup,
        next: Some(S + 3_609_375),
        ..ROW
    },
    Case {
        name: "backup: priority 0 shortens the wait to Skew_Time",
        setup: &[(0, Ev::Start), (S, Ev::Advert(B, 200))],
        from: Backup,
        inputs: &[(2 * S, Ev::Advert(B, 0))],
        to: Backup,
        next: Some(2 * S + 609_375),
        ..ROW
    },
    Case {
        name: "backup -> master Skew_Time after priority 0",
        setup: &[
            (0, Ev::Start),
            (S, Ev::Advert(B, 200)),
            (2 * S, Ev::Advert(B, 0)),
        ],
        from: Backup,
        inputs: &[(2_609_375, Ev::Timeout)],
        to: Master,
        outputs: &[sc(Backup, Master, MasterDown), adv(100), ADD, garp(5)],
        next: Some(3_609_375),
        ..ROW
    },
    Case {
        name: "preempt: a lower master does not reset the timer",
        config: |c| c.priority = 150,
        setup: STARTED,
        from: Backup,
        inputs: &[(S, Ev::Advert(B, 100))],
        to: Backup,
        next: Some(3_414_062),
        ..ROW
    },
    Case {
        name: "nopreempt: a lower master is accepted",
        config: |c| {
            c.priority = 150;
            c.preempt = false;
        },
        setup: STARTED,
        from: Backup,
        inputs: &[(S, Ev::Advert(B, 100))],
        to: Backup,
        next: Some(S + 3_414_062),
        ..ROW
    },
    Case {
        name: "preempt_delay: a lower master tolerated within the delay",
        config: |c| {
            c.priority = 150;
            c.preempt_delay = Duration::from_secs(10);
        },
        setup: STARTED,
        from: Backup,
        inputs: &[(S, Ev::Advert(B, 100)), (10 * S, Ev::Advert(B, 100))],
        to: Backup,
        next: Some(10 * S + 3_414_062),
        ..ROW
    },
    Case {
        name: "preempt_delay: preempted once the delay ran out",
        config: |c| {
            c.priority = 150;
            c.preempt_delay = Duration::from_secs(10);
        },
        setup: &[
            (0, Ev::Start),
            (S, Ev::Advert(B, 100)),
            (10 * S, Ev::Advert(B, 100)),
        ],
        from: Backup,
        // Heard first at 1 s: tolerated until 11 s, then ignored.
        inputs: &[(11 * S, Ev::Advert(B, 100)), (13_414_062, Ev::Timeout)],
        to: Master,
        outputs: &[sc(Backup, Master, MasterDown), adv(150), ADD, garp(5)],
        next: Some(14_414_062),
        ..ROW
    },
    Case {
        name: "backup -> init on shutdown: no priority 0",
        setup: STARTED,
        from: Backup,
        inputs: &[(S, Ev::Shutdown)],
        to: Init,
        outputs: &[sc(Backup, Init, Shutdown)],
        ..ROW
    },
    Case {
        name: "backup -> fault on link down: nothing to resign",
        setup: STARTED,
        from: Backup,
        inputs: &[(S, Ev::Link(false))],
        to: Fault,
        outputs: &[sc(Backup, Fault, Reason::Fault)],
        ..ROW
    },
    Case {
        name: "backup -> fault on a weight-0 track",
        config: |c| c.tracks.push(Track::new(TrackId(1), 0)).unwrap(),
        setup: STARTED,
        from: Backup,
        inputs: &[(S, Ev::Track(1, false))],
        to: Fault,
        outputs: &[sc(Backup, Fault, Reason::Fault)],
        ..ROW
    },
    Case {
        name: "track weight -30 down: the down deadline moves later by the skew change",
        config: |c| c.tracks.push(Track::new(TrackId(1), -30)).unwrap(),
        setup: &[(0, Ev::Start), (S, Ev::Advert(B, 200))],
        from: Backup,
        // 1 s + 3.609375 s, then + (3.726562 - 3.609375) s.
        inputs: &[(2 * S, Ev::Track(1, false))],
        to: Backup,
        next: Some(S + 3_726_562),
        ..ROW
    },
    Case {
        name: "track weight -30 back up: the down deadline moves earlier again",
        config: |c| c.tracks.push(Track::new(TrackId(1), -30)).unwrap(),
        setup: &[
            (0, Ev::Start),
            (S, Ev::Advert(B, 200)),
            (2 * S, Ev::Track(1, false)),
        ],
        from: Backup,
        inputs: &[(3 * S, Ev::Track(1, true))],
        to: Backup,
        next: Some(S + 3_609_375),
        ..ROW
    },
    Case {
        name: "track weight +20 down: priority 120 -> 100 moves the deadline later",
        config: |c| c.tracks.push(Track::new(TrackId(2), 20)).unwrap(),
        setup: &[(0, Ev::Start), (S, Ev::Advert(B, 200))],
        from: Backup,
        inputs: &[(2 * S, Ev::Track(2, false))],
        to: Backup,
        next: Some(S + 3_609_375),
        ..ROW
    },
    Case {
        name: "track shift into the past: due at once, master at that time",
        config: |c| {
            c.priority = 254;
            c.tracks.push(Track::new(TrackId(1), -253)).unwrap();
        },
        // Priority 1 from the start: down at 3.996093 s.
        setup: &[(0, Ev::Track(1, false)), (0, Ev::Start)],
        from: Backup,
        // Back to 254 at 3.5 s: 3.007812 s is past, so due at 3.5 s.
        inputs: &[(3_500_000, Ev::Track(1, true)), (3_500_000, Ev::Timeout)],
        to: Master,
        outputs: &[sc(Backup, Master, MasterDown), adv(254), ADD, garp(5)],
        next: Some(4_500_000),
        ..ROW
    },
    Case {
        name: "reconfigured priority: a backup's deadline moves too",
        setup: &[(0, Ev::Start), (S, Ev::Advert(B, 200))],
        from: Backup,
        inputs: &[(2 * S, Ev::Reconfigure(|c| c.priority = 150))],
        to: Backup,
        next: Some(S + 3_414_062),
        ..ROW
    },
    Case {
        name: "sync group: backup follows to master",
        setup: STARTED,
        from: Backup,
        inputs: &[(S, Ev::Force(Master))],
        to: Master,
        outputs: &[sc(Backup, Master, SyncGroup), adv(100), ADD, garp(5)],
        next: Some(2 * S),
        ..ROW
    },
    Case {
        name: "sync group: backup follows to fault",
        setup: STARTED,
        from: Backup,
        inputs: &[(S, Ev::Force(Fault))],
        to: Fault,
        outputs: &[sc(Backup, Fault, SyncGroup)],
        ..ROW
    },
    Case {
        name: "v3 at 10 ms: takeover driven at 36.093 ms",
        config: |c| {
            c.version = Version::V3;
            c.advert_interval_cs = 1;
        },
        setup: STARTED,
        from: Backup,
        inputs: &[(36_092, Ev::Timeout), (36_093, Ev::Timeout)],
        to: Master,
        outputs: &[sc(Backup, Master, MasterDown), adv(100), ADD, garp(5)],
        next: Some(46_093),
        ..ROW
    },
    Case {
        name: "v3 backup learns the master's interval (100 ms)",
        config: |c| c.version = Version::V3,
        setup: STARTED,
        from: Backup,
        // 3 * 100 ms + 156 * 100 ms / 256.
        inputs: &[(S, Ev::AdvertWith(B, 200, |c| c.advert_interval_cs = 10))],
        to: Backup,
        next: Some(S + 360_937),
        ..ROW
    },
    Case {
        name: "v2 interval mismatch: dropped",
        setup: STARTED,
        from: Backup,
        inputs: &[(S, Ev::AdvertWith(B, 200, |c| c.advert_interval_cs = 200))],
        to: Backup,
        next: Some(3_609_375),
        dropped: Some(DropReason::Interval),
        ..ROW
    },
    Case {
        name: "unicast_peer: a unicast advert with any TTL is heard",
        config: |c| c.unicast_peers.push(B).unwrap(),
        setup: STARTED,
        from: Backup,
        inputs: &[(
            S,
            Ev::AdvertTo {
                src: B,
                dst: A,
                ttl: 63,
                priority: 200,
            },
        )],
        to: Backup,
        next: Some(S + 3_609_375),
        ..ROW
    },
    Case {
        name: "unicast_peer: a stranger is not heard",
        config: |c| c.unicast_peers.push(B).unwrap(),
        setup: STARTED,
        from: Backup,
        inputs: &[(
            S,
            Ev::AdvertTo {
                src: C,
                dst: A,
                ttl: 255,
                priority: 200,
            },
        )],
        to: Backup,
        next: Some(3_609_375),
        dropped: Some(DropReason::UnknownPeer),
        ..ROW
    },
    Case {
        name: "unicast_peer: a multicast advert still needs TTL 255",
        config: |c| c.unicast_peers.push(B).unwrap(),
        setup: STARTED,
        from: Backup,
        inputs: &[(
            S,
            Ev::AdvertTo {
                src: B,
                dst: GROUP,
                ttl: 254,
                priority: 200,
            },
        )],
        to: Backup,
        next: Some(3_609_375),
        dropped: Some(DropReason::Ttl),
        ..ROW
    },
    Case {
        name: "no unicast_peer: a unicast advert needs TTL 255 too (keepalived)",
        setup: STARTED,
        from: Backup,
        inputs: &[(
            S,
            Ev::AdvertTo {
                src: B,
                dst: A,
                ttl: 64,
                priority: 200,
            },
        )],
        to: Backup,
        next: Some(3_609_375),
        dropped: Some(DropReason::Ttl),
        ..ROW
    },
    Case {
        name: "v3 over IPv6: backup hears a higher master",
        config: |c| {
            *c = Config::new(51, A6);
            c.version = Version::V3;
        },
        setup: STARTED,
        from: Backup,
        inputs: &[(S, Ev::Advert(B6, 200))],
        to: Backup,
        next: Some(S + 3_609_375),
        ..ROW
    },
    // --- Master ---
    Case {
        name: "master: an advert every interval",
        config: OWNER,
        setup: STARTED,
        from: Master,
        inputs: &[(S, Ev::Timeout)],
        to: Master,
        outputs: &[adv(255)],
        next: Some(2 * S),
        ..ROW
    },
    Case {
        name: "master -> backup on a strictly higher priority: RemoveVips, new down timer",
        setup: MASTER_100,
        from: Master,
        inputs: &[(4 * S, Ev::Advert(B, 200))],
        to: Backup,
        outputs: &[sc(Master, Backup, HigherPriority), REMOVE],
        next: Some(4 * S + 3_609_375),
        ..ROW
    },
    Case {
        name: "master -> backup on equal priority from a greater address",
        setup: MASTER_100,
        from: Master,
        inputs: &[(4 * S, Ev::Advert(B, 100))],
        to: Backup,
        outputs: &[sc(Master, Backup, HigherPriority), REMOVE],
        next: Some(4 * S + 3_609_375),
        ..ROW
    },
    Case {
        name: "master: equal priority from a lower address is answered",
        config: |c| c.primary_addr = B,
        setup: MASTER_100,
        from: Master,
        inputs: &[(4 * S, Ev::Advert(A, 100))],
        to: Master,
        outputs: &[adv(100), garp(5)],
        next: Some(5 * S),
        ..ROW
    },
    Case {
        name: "master: a lower priority is answered at once (and the VIPs re-announced)",
        config: OWNER,
        setup: STARTED,
        from: Master,
        inputs: &[(500_000, Ev::Advert(B, 100))],
        to: Master,
        outputs: &[adv(255), garp(5)],
        next: Some(1_500_000),
        ..ROW
    },
    Case {
        name: "lower_prio_no_advert: a lower priority is not answered",
        config: |c| {
            c.priority = 255;
            c.lower_prio_no_advert = true;
        },
        setup: STARTED,
        from: Master,
        inputs: &[(500_000, Ev::Advert(B, 100))],
        to: Master,
        next: Some(S),
        ..ROW
    },
    Case {
        name: "master: priority 0 from another is answered at once",
        config: OWNER,
        setup: STARTED,
        from: Master,
        inputs: &[(500_000, Ev::Advert(B, 0))],
        to: Master,
        outputs: &[adv(255)],
        next: Some(1_500_000),
        ..ROW
    },
    Case {
        name: "owner ignores track weights and never yields to 254",
        config: |c| {
            c.priority = 255;
            c.tracks.push(Track::new(TrackId(1), -100)).unwrap();
        },
        setup: STARTED,
        from: Master,
        inputs: &[
            (500_000, Ev::Track(1, false)),
            (600_000, Ev::Advert(B, 254)),
        ],
        to: Master,
        outputs: &[adv(255), garp(5)],
        next: Some(1_600_000),
        ..ROW
    },
    Case {
        name: "track weight -30: the master's next advert carries 70",
        config: |c| c.tracks.push(Track::new(TrackId(1), -30)).unwrap(),
        setup: MASTER_100,
        from: Master,
        inputs: &[(4 * S, Ev::Track(1, false)), (4_609_375, Ev::Timeout)],
        to: Master,
        outputs: &[adv(70)],
        next: Some(5_609_375),
        ..ROW
    },
    Case {
        name: "master -> init on shutdown: priority 0",
        config: OWNER,
        setup: STARTED,
        from: Master,
        inputs: &[(500_000, Ev::Shutdown)],
        to: Init,
        outputs: &[sc(Master, Init, Shutdown), adv(0), REMOVE],
        ..ROW
    },
    Case {
        name: "master -> fault on link down: priority 0",
        config: OWNER,
        setup: STARTED,
        from: Master,
        inputs: &[(500_000, Ev::Link(false))],
        to: Fault,
        outputs: &[sc(Master, Fault, Reason::Fault), adv(0), REMOVE],
        ..ROW
    },
    Case {
        name: "master -> fault on a weight-0 track: priority 0",
        config: |c| c.tracks.push(Track::new(TrackId(1), 0)).unwrap(),
        setup: MASTER_100,
        from: Master,
        inputs: &[(4 * S, Ev::Track(1, false))],
        to: Fault,
        outputs: &[sc(Master, Fault, Reason::Fault), adv(0), REMOVE],
        ..ROW
    },
    Case {
        name: "garp_master_delay 5 s: the second burst",
        config: OWNER,
        setup: &[
            (0, Ev::Start),
            (S, Ev::Timeout),
            (2 * S, Ev::Timeout),
            (3 * S, Ev::Timeout),
            (4 * S, Ev::Timeout),
        ],
        from: Master,
        inputs: &[(4_999_999, Ev::Timeout), (5 * S, Ev::Timeout)],
        to: Master,
        outputs: &[adv(255), garp(5)],
        next: Some(6 * S),
        ..ROW
    },
    Case {
        name: "garp_master_delay 0: no second burst",
        config: |c| {
            c.priority = 255;
            c.garp.delay = Duration::ZERO;
        },
        setup: STARTED,
        from: Master,
        inputs: &[
            (S, Ev::Timeout),
            (2 * S, Ev::Timeout),
            (3 * S, Ev::Timeout),
            (4 * S, Ev::Timeout),
            (5 * S, Ev::Timeout),
        ],
        to: Master,
        outputs: &[adv(255), adv(255), adv(255), adv(255), adv(255)],
        next: Some(6 * S),
        ..ROW
    },
    Case {
        name: "garp_master_refresh 2 s with refresh_repeat 2",
        config: |c| {
            c.priority = 255;
            c.garp.delay = Duration::ZERO;
            c.garp.refresh = Duration::from_secs(2);
            c.garp.refresh_repeat = 2;
        },
        setup: STARTED,
        from: Master,
        inputs: &[(S, Ev::Timeout), (2 * S, Ev::Timeout), (4 * S, Ev::Timeout)],
        to: Master,
        // At 4 s the 3 s advert is overdue: one advert, then the refresh.
        outputs: &[adv(255), adv(255), garp(2), adv(255), garp(2)],
        next: Some(5 * S),
        ..ROW
    },
    Case {
        name: "sync group: master follows to backup",
        setup: MASTER_100,
        from: Master,
        inputs: &[(4 * S, Ev::Force(Backup))],
        to: Backup,
        outputs: &[sc(Master, Backup, SyncGroup), REMOVE],
        next: Some(4 * S + 3_609_375),
        ..ROW
    },
    Case {
        name: "sync group: master follows to fault with priority 0",
        setup: MASTER_100,
        from: Master,
        inputs: &[(4 * S, Ev::Force(Fault))],
        to: Fault,
        outputs: &[sc(Master, Fault, SyncGroup), adv(0), REMOVE],
        ..ROW
    },
    Case {
        name: "reconfigured priority: a master advertises at once",
        config: OWNER,
        setup: STARTED,
        from: Master,
        inputs: &[(300_000, Ev::Reconfigure(|c| c.priority = 200))],
        to: Master,
        outputs: &[adv(200)],
        next: Some(1_300_000),
        ..ROW
    },
    Case {
        name: "reconfigured to the same: nothing",
        config: OWNER,
        setup: STARTED,
        from: Master,
        inputs: &[(300_000, Ev::Reconfigure(|c| c.priority = 255))],
        to: Master,
        next: Some(S),
        ..ROW
    },
    Case {
        name: "backpressure: a master with an undrained queue drops an advert",
        config: OWNER,
        setup: STARTED,
        from: Master,
        inputs: &[
            (100_000, Ev::Link(false)),
            (200_000, Ev::Link(true)),
            (300_000, Ev::Advert(B, 100)),
            (400_000, Ev::Advert(B, 100)),
            // 11 of 12 queued: no room for an answer (2).
            (500_000, Ev::Advert(B, 100)),
        ],
        undrained: true,
        to: Master,
        outputs: &[
            sc(Master, Fault, Reason::Fault),
            adv(0),
            REMOVE,
            sc(Fault, Master, FaultCleared),
            adv(255),
            ADD,
            garp(5),
            adv(255),
            garp(5),
            adv(255),
            garp(5),
        ],
        next: Some(1_400_000),
        dropped: Some(DropReason::Backpressure),
        ..ROW
    },
    Case {
        name: "deferred: a link change waits for room and runs on the drain",
        config: OWNER,
        setup: STARTED,
        from: Master,
        inputs: &[
            (100_000, Ev::Link(false)),
            (200_000, Ev::Link(true)),
            (300_000, Ev::Link(false)),
            // 10 of 12 queued: becoming master (4) must wait.
            (400_000, Ev::Link(true)),
        ],
        undrained: true,
        to: Master,
        outputs: &[
            sc(Master, Fault, Reason::Fault),
            adv(0),
            REMOVE,
            sc(Fault, Master, FaultCleared),
            adv(255),
            ADD,
            garp(5),
            sc(Master, Fault, Reason::Fault),
            adv(0),
            REMOVE,
            sc(Fault, Master, FaultCleared),
            adv(255),
            ADD,
            garp(5),
        ],
        // Master again at 0.4 s (its step ran during the drain).
        next: Some(1_400_000),
        deferred: 1,
        ..ROW
    },
    // --- Fault ---
    Case {
        name: "fault -> backup when the link returns",
        setup: &[(0, Ev::Start), (S, Ev::Link(false))],
        from: Fault,
        inputs: &[(2 * S, Ev::Link(true))],
        to: Backup,
        outputs: &[sc(Fault, Backup, FaultCleared)],
        next: Some(2 * S + 3_609_375),
        ..ROW
    },
    Case {
        name: "state MASTER: after a fault the full Master_Down_Interval",
        config: |c| c.start_as_master = true,
        setup: &[(0, Ev::Start), (S, Ev::Link(false))],
        from: Fault,
        inputs: &[(2 * S, Ev::Link(true))],
        to: Backup,
        outputs: &[sc(Fault, Backup, FaultCleared)],
        next: Some(2 * S + 3_609_375),
        ..ROW
    },
    Case {
        name: "owner: fault -> master when the link returns",
        config: OWNER,
        setup: &[(0, Ev::Start), (S, Ev::Link(false))],
        from: Fault,
        inputs: &[(2 * S, Ev::Link(true))],
        to: Master,
        outputs: &[sc(Fault, Master, FaultCleared), adv(255), ADD, garp(5)],
        next: Some(3 * S),
        ..ROW
    },
    Case {
        name: "fault: adverts are not heard",
        setup: &[(0, Ev::Start), (S, Ev::Link(false))],
        from: Fault,
        inputs: &[(2 * S, Ev::Advert(B, 200))],
        to: Fault,
        dropped: Some(DropReason::NotListening),
        ..ROW
    },
    Case {
        name: "fault -> init on shutdown: nothing sent",
        setup: &[(0, Ev::Start), (S, Ev::Link(false))],
        from: Fault,
        inputs: &[(2 * S, Ev::Shutdown)],
        to: Init,
        outputs: &[sc(Fault, Init, Shutdown)],
        ..ROW
    },
    Case {
        name: "sync group fault: the member's own recovery does not end it",
        setup: &[(0, Ev::Start), (S, Ev::Force(Fault))],
        from: Fault,
        inputs: &[(2 * S, Ev::Link(false)), (3 * S, Ev::Link(true))],
        to: Fault,
        ..ROW
    },
    Case {
        name: "sync group: back to backup with the group",
        setup: &[(0, Ev::Start), (S, Ev::Force(Fault))],
        from: Fault,
        inputs: &[(2 * S, Ev::Force(Backup))],
        to: Backup,
        outputs: &[sc(Fault, Backup, SyncGroup)],
        next: Some(2 * S + 3_609_375),
        ..ROW
    },
    Case {
        name: "sync group: an own fault holds against the group's master",
        setup: &[(0, Ev::Start), (S, Ev::Link(false))],
        from: Fault,
        inputs: &[(2 * S, Ev::Force(Master))],
        to: Fault,
        ..ROW
    },
];

fn apply(i: &mut Instance, t: u64, ev: Ev) {
    let now = Instant::from_micros(t);
    let ours = i.config().clone();
    let peer = |src: IpAddr, change: fn(&mut Config)| {
        let mut c = ours.clone();
        c.primary_addr = src;
        c.unicast_peers.clear();
        change(&mut c);
        c
    };
    match ev {
        Ev::Start => i.handle(now, Input::Start),
        Ev::Shutdown => i.handle(now, Input::Shutdown),
        Ev::Link(up) => i.handle(now, Input::Link { up }),
        Ev::Track(id, up) => i.handle(
            now,
            Input::Track {
                id: TrackId(id),
                up,
            },
        ),
        Ev::Advert(src, priority) => deliver(i, now, &peer(src, NONE), priority),
        Ev::AdvertWith(src, priority, change) => deliver(i, now, &peer(src, change), priority),
        Ev::AdvertTo {
            src,
            dst,
            ttl,
            priority,
        } => {
            let bytes = advert_to(&peer(src, NONE), priority, dst);
            i.handle(
                now,
                Input::Advert {
                    src,
                    dst,
                    ttl,
                    payload: &bytes,
                },
            );
        }
        Ev::Timeout => i.handle_timeout(now),
        Ev::Force(target) => i.force(now, target),
        Ev::Reconfigure(change) => {
            let mut c = ours.clone();
            change(&mut c);
            let vips = i.advertised_vips().to_vec();
            i.reconfigure(now, c, &vips, &[]).unwrap();
        }
    }
}

fn run(case: &Case) {
    let name = case.name;
    let mut c = config(A, 100);
    (case.config)(&mut c);
    let mut i = instance(c);
    for (t, ev) in case.setup {
        apply(&mut i, *t, *ev);
        drain(&mut i);
    }
    assert_eq!(i.state(), case.from, "{name}: start state");
    let before = i.stats().clone();
    let mut out = Vec::new();
    for (t, ev) in case.inputs {
        apply(&mut i, *t, *ev);
        if !case.undrained {
            out.extend(drain(&mut i));
        }
    }
    out.extend(drain(&mut i));
    assert_eq!(out, case.outputs, "{name}: outputs");
    assert_eq!(i.state(), case.to, "{name}: end state");
    assert_eq!(
        i.poll_timeout(),
        case.next.map(Instant::from_micros),
        "{name}: next deadline"
    );
    let mut drops = before.dropped;
    if let Some(reason) = case.dropped {
        drops[reason as usize] += 1;
    }
    assert_eq!(i.stats().dropped, drops, "{name}: drops");
    assert_eq!(
        i.stats().steps_deferred - before.steps_deferred,
        case.deferred,
        "{name}: deferred steps"
    );
    assert!(
        !i.is_deferred(),
        "{name}: a step still waits after the drain"
    );
}

#[test]
fn transition_table() {
    for case in TABLE {
        run(case);
    }
}

#[test]
fn the_table_covers_every_transition() {
    // Every (from, to) pair the machine can make, each with every reason it
    // can have, appears in some row's outputs.
    let mut seen: Vec<(State, State, Reason)> = Vec::new();
    for case in TABLE {
        seen.extend(states(case.outputs));
    }
    for want in [
        (Init, Backup, Start),
        (Init, Master, Start),
        (Init, Fault, Reason::Fault),
        (Backup, Master, MasterDown),
        (Backup, Master, SyncGroup),
        (Backup, Init, Shutdown),
        (Backup, Fault, Reason::Fault),
        (Backup, Fault, SyncGroup),
        (Master, Backup, HigherPriority),
        (Master, Backup, SyncGroup),
        (Master, Init, Shutdown),
        (Master, Fault, Reason::Fault),
        (Master, Fault, SyncGroup),
        (Fault, Backup, FaultCleared),
        (Fault, Backup, SyncGroup),
        (Fault, Master, FaultCleared),
        (Fault, Init, Shutdown),
    ] {
        assert!(seen.contains(&want), "no row shows {want:?}");
    }
}

// ---------------------------------------------------------------------
// The output queue: no input panics or half-applies, whatever is undrained.
// ---------------------------------------------------------------------

/// Instances in every state, with tracks, a unicast-free v2 setup.
fn in_every_state() -> Vec<(&'static str, Instance)> {
    let base = || {
        let mut c = config(A, 100);
        c.tracks.push(Track::new(TrackId(1), -30)).unwrap();
        c.tracks.push(Track::new(TrackId(2), 0)).unwrap();
        instance(c)
    };
    let init = base();
    let mut backup = base();
    backup.handle(Instant::ZERO, Input::Start);
    drain(&mut backup);
    let mut master = backup.clone();
    master.handle_timeout(Instant::from_micros(3_609_375));
    drain(&mut master);
    let mut fault = backup.clone();
    fault.handle(Instant::from_secs(1), Input::Link { up: false });
    drain(&mut fault);
    let mut group_fault = backup.clone();
    group_fault.force(Instant::from_secs(1), State::Fault);
    drain(&mut group_fault);
    assert_eq!(
        [
            init.state(),
            backup.state(),
            master.state(),
            fault.state(),
            group_fault.state()
        ],
        [Init, Backup, Master, Fault, Fault]
    );
    std::vec![
        ("init", init),
        ("backup", backup),
        ("master", master),
        ("fault", fault),
        ("group fault", group_fault),
    ]
}

fn every_input() -> Vec<Ev> {
    std::vec![
        Ev::Start,
        Ev::Shutdown,
        Ev::Link(false),
        Ev::Link(true),
        Ev::Track(1, false),
        Ev::Track(1, true),
        Ev::Track(2, false),
        Ev::Track(2, true),
        Ev::Advert(B, 200),
        Ev::Advert(B, 50),
        Ev::Advert(B, 0),
        Ev::Timeout,
        Ev::Force(Master),
        Ev::Force(Backup),
        Ev::Force(Fault),
        Ev::Reconfigure(|c| c.priority = 200),
        Ev::Reconfigure(|c| c.priority = 255),
    ]
}

fn without_filler(outputs: Vec<Output>) -> Vec<Output> {
    outputs
        .into_iter()
        .filter(|o| *o != Output::Garp { repeat: 0 })
        .collect()
}

#[test]
fn every_input_in_every_state_with_an_undrained_queue() {
    for (name, base) in in_every_state() {
        for ev in every_input() {
            // Late enough for every timer to be due.
            let t = 20 * S;
            let mut reference = base.clone();
            apply(&mut reference, t, ev);
            let want = drain(&mut reference);
            for free in 0..=OUTPUT_QUEUE {
                let mut i = base.clone();
                i.fill_queue(free);
                apply(&mut i, t, ev);
                let mut got = without_filler(drain(&mut i));
                if matches!(ev, Ev::Timeout) {
                    // A timer without room stays due: the next call fires it.
                    i.handle_timeout(Instant::from_micros(t));
                    got.extend(drain(&mut i));
                }
                let ctx = std::format!("{name}, {free} free");
                let dropped = i.stats().dropped(DropReason::Backpressure)
                    > base.stats().dropped(DropReason::Backpressure);
                if dropped {
                    // Only an advert may be refused, and then nothing moved.
                    assert!(matches!(ev, Ev::Advert(..)), "{ctx}");
                    assert!(got.is_empty(), "{ctx}: {got:?}");
                    assert_eq!(i.state(), base.state(), "{ctx}");
                    assert_eq!(i.poll_timeout(), base.poll_timeout(), "{ctx}");
                    continue;
                }
                assert_eq!(got, want, "{ctx}: outputs");
                assert_eq!(i.state(), reference.state(), "{ctx}: state");
                assert_eq!(i.poll_timeout(), reference.poll_timeout(), "{ctx}: timer");
                assert_eq!(
                    i.effective_priority(),
                    reference.effective_priority(),
                    "{ctx}"
                );
                assert!(!i.is_deferred(), "{ctx}");
                let mut s = i.stats().clone();
                s.steps_deferred = reference.stats().steps_deferred;
                assert_eq!(&s, reference.stats(), "{ctx}: counters");
            }
        }
    }
}

#[test]
fn a_backup_hears_its_master_even_with_a_full_queue() {
    // A backup's receive path emits nothing, so it needs no room.
    let mut i = started(config(A, 100));
    i.fill_queue(0);
    deliver(&mut i, Instant::from_secs(1), &config(B, 200), 200);
    assert_eq!(i.stats().adverts_received, 1);
    assert_eq!(
        i.poll_timeout(),
        Some(Instant::from_secs(1) + Duration::from_micros(3_609_375))
    );
}

#[test]
fn deferred_steps_coalesce_to_where_the_inputs_lead() {
    let mut i = started(config(A, 255));
    i.fill_queue(0);
    // Down, up and shut down, all while undrained: no step can run. The
    // link's blip cancels out (the second input leaves nothing to do), and
    // the instance ends where the inputs lead: Init, with the goodbye of a
    // resigning master, nothing half-applied.
    i.handle(Instant::from_millis(100), Input::Link { up: false });
    i.handle(Instant::from_millis(200), Input::Link { up: true });
    i.handle(Instant::from_millis(300), Input::Shutdown);
    assert_eq!(i.state(), Master, "nothing applied yet");
    assert_eq!(i.stats().steps_deferred, 2, "link down, shutdown");
    // An advert meanwhile meets a state about to change: dropped.
    deliver(&mut i, Instant::from_millis(300), &config(B, 100), 100);
    assert_eq!(i.stats().dropped(DropReason::Backpressure), 1);
    let out = without_filler(drain(&mut i));
    assert_eq!(out, [sc(Master, Init, Shutdown), adv(0), REMOVE]);
    assert_eq!(i.state(), Init);
    assert_eq!(i.poll_timeout(), None);
}

#[test]
fn a_due_timer_waits_for_room() {
    let mut i = started(config(A, 100));
    i.fill_queue(3);
    i.handle_timeout(Instant::from_secs(4));
    assert_eq!(i.state(), Backup, "becoming master needs 4 slots");
    assert_eq!(i.poll_timeout(), Some(Instant::from_micros(3_609_375)));
    drain(&mut i);
    i.handle_timeout(Instant::from_secs(4));
    assert_eq!(
        drain(&mut i),
        [sc(Backup, Master, MasterDown), adv(100), ADD, garp(5)]
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Start,
        Shutdown,
        Link(bool),
        Track(u16, bool),
        Advert {
            from_b: bool,
            priority: u8,
            ttl_ok: bool,
        },
        Garbage(Vec<u8>),
        Timeout,
        Force(u8),
        Reconfigure(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Start),
            Just(Op::Shutdown),
            any::<bool>().prop_map(Op::Link),
            (1u16..=3, any::<bool>()).prop_map(|(id, up)| Op::Track(id, up)),
            (
                any::<bool>(),
                proptest::sample::select(std::vec![0u8, 50, 100, 150, 254, 255]),
                proptest::bool::weighted(0.9)
            )
                .prop_map(|(from_b, priority, ttl_ok)| Op::Advert {
                    from_b,
                    priority,
                    ttl_ok
                }),
            proptest::collection::vec(any::<u8>(), 0..24).prop_map(Op::Garbage),
            Just(Op::Timeout),
            (0u8..3).prop_map(Op::Force),
            proptest::sample::select(std::vec![1u8, 50, 100, 200, 255]).prop_map(Op::Reconfigure),
        ]
    }

    /// Checks the drained stream step by step: each transition comes with
    /// all of its outputs, in order, and the VIPs are held exactly while
    /// the stream says master.
    struct Model {
        state: State,
        holds_vips: bool,
        /// Outputs the current step still owes, in order.
        owed: Vec<Output>,
        adverts: u32,
        masters: u32,
    }

    impl Model {
        fn see(&mut self, o: Output) -> Result<(), TestCaseError> {
            if !self.owed.is_empty() {
                let want = self.owed.remove(0);
                // The advert's priority is the instance's business.
                let same = match (want, o) {
                    (Output::Advert { priority: 1 }, Output::Advert { priority }) => priority > 0,
                    _ => want == o,
                };
                prop_assert!(same, "step broken: wanted {:?}, got {:?}", want, o);
            }
            match o {
                Output::StateChanged { from, to, .. } => {
                    prop_assert_eq!(from, self.state, "transition from the wrong state");
                    prop_assert!(self.owed.is_empty(), "a step cut short");
                    self.state = to;
                    self.owed = match (from, to) {
                        (_, Master) => {
                            self.masters += 1;
                            std::vec![adv(1), ADD, garp(5)]
                        }
                        (Master, Init | Fault) => std::vec![adv(0), REMOVE],
                        (Master, Backup) => std::vec![REMOVE],
                        _ => Vec::new(),
                    };
                }
                Output::Advert { priority } => {
                    self.adverts += 1;
                    prop_assert!(
                        self.state == Master || priority == 0,
                        "advert while {:?}",
                        self.state
                    );
                }
                Output::AddVips => {
                    prop_assert_eq!(self.state, Master);
                    self.holds_vips = true;
                }
                Output::RemoveVips => {
                    prop_assert!(self.state != Master);
                    self.holds_vips = false;
                }
                Output::Garp { .. } => prop_assert_eq!(self.state, Master),
            }
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random inputs at random times with random partial draining
        /// never panic (the queue's overflow is a debug assertion) and
        /// never half-apply: the drained stream is a sequence of whole
        /// steps, nothing is lost (every advert counted was drained), and
        /// after a full drain the stream agrees with the instance.
        #[test]
        fn random_inputs_with_partial_draining(
            ops in proptest::collection::vec(
                (op(), 0u64..1_500_000, prop_oneof![3 => Just(0usize), 1 => 1usize..8]),
                1..120,
            ),
        ) {
            let mut c = config(A, 100);
            c.tracks.push(Track::new(TrackId(1), -30)).unwrap();
            c.tracks.push(Track::new(TrackId(2), 0)).unwrap();
            c.tracks.push(Track::new(TrackId(3), 20)).unwrap();
            c.garp.refresh = Duration::from_secs(2);
            let mut i: Instance = Instance::new(c.clone(), &[VIP], &[]).unwrap();
            let mut model = Model {
                state: Init,
                holds_vips: false,
                owed: Vec::new(),
                adverts: 0,
                masters: 0,
            };
            let mut now = 0u64;
            for (op, dt, drain_n) in ops {
                now += dt;
                let t = Instant::from_micros(now);
                match op {
                    Op::Start => i.handle(t, Input::Start),
                    Op::Shutdown => i.handle(t, Input::Shutdown),
                    Op::Link(up) => i.handle(t, Input::Link { up }),
                    Op::Track(id, up) => i.handle(t, Input::Track { id: TrackId(id), up }),
                    Op::Advert { from_b, priority, ttl_ok } => {
                        let src = if from_b { B } else { C };
                        let mut peer = c.clone();
                        peer.primary_addr = src;
                        let bytes = advert_from(&peer, priority);
                        let ttl = if ttl_ok { 255 } else { 1 };
                        i.handle(t, Input::Advert { src, dst: GROUP, ttl, payload: &bytes });
                    }
                    Op::Garbage(bytes) => {
                        i.handle(t, Input::Advert { src: B, dst: GROUP, ttl: 255, payload: &bytes })
                    }
                    Op::Timeout => i.handle_timeout(t),
                    Op::Force(n) => i.force(t, [Master, Backup, Fault][usize::from(n)]),
                    Op::Reconfigure(priority) => {
                        let mut new = c.clone();
                        new.priority = priority;
                        i.reconfigure(t, new, &[VIP], &[]).unwrap();
                    }
                }
                for _ in 0..drain_n {
                    match i.poll_output() {
                        Some(o) => model.see(o)?,
                        None => break,
                    }
                }
            }
            while let Some(o) = i.poll_output() {
                model.see(o)?;
            }
            prop_assert!(!i.is_deferred(), "a full drain completes every step");
            prop_assert!(model.owed.is_empty(), "a step cut short at the end");
            prop_assert_eq!(model.state, i.state());
            prop_assert_eq!(model.holds_vips, i.state() == Master);
            prop_assert_eq!(model.adverts, i.stats().adverts_sent, "adverts lost");
            prop_assert_eq!(model.masters, i.stats().became_master);
        }
    }
}

// ---------------------------------------------------------------------
// Receive checks and drop counters.
// ---------------------------------------------------------------------

#[test]
fn received_adverts_are_checked_and_drops_counted() {
    let mut i = started(config(A, 100));
    let peer = config(B, 200);
    let bytes = advert_from(&peer, 200);
    let t = Instant::from_secs(1);
    let raw = |i: &mut Instance, payload: &[u8], ttl: u8| {
        i.handle(
            t,
            Input::Advert {
                src: B,
                dst: GROUP,
                ttl,
                payload,
            },
        )
    };
    let mut want = [0u32; DropReason::ALL.len()];
    let mut expect = |i: &Instance, reason: DropReason| {
        want[reason as usize] += 1;
        assert_eq!(i.stats().dropped, want, "{}", reason.name());
    };
    raw(&mut i, &bytes, 254);
    expect(&i, DropReason::Ttl);
    let mut bad = bytes.clone();
    bad[2] ^= 0xff;
    raw(&mut i, &bad, 255);
    expect(&i, DropReason::Checksum);
    raw(&mut i, &bytes[..5], 255);
    expect(&i, DropReason::Malformed);
    raw(&mut i, &bytes[..bytes.len() - 1], 255);
    expect(&i, DropReason::Length);
    let mut padded = bytes.clone();
    padded.push(0);
    raw(&mut i, &padded, 255);
    expect(&i, DropReason::Length);
    // Auth type 2 (AH), checksum fixed up so only the type is wrong.
    let mut ah = bytes.clone();
    ah[4] = 2;
    ah[6..8].fill(0);
    let sum = !crate::wire::smol::checksum::data(&ah);
    ah[6..8].copy_from_slice(&sum.to_be_bytes());
    raw(&mut i, &ah, 255);
    expect(&i, DropReason::AuthType);
    // A version nibble that is neither 2 nor 3.
    let mut v4 = bytes.clone();
    v4[0] = 0x41;
    raw(&mut i, &v4, 255);
    expect(&i, DropReason::Version);
    let mut other = peer.clone();
    other.vrid = 52;
    deliver(&mut i, t, &other, 200);
    expect(&i, DropReason::Vrid);
    deliver(&mut i, t, &config(A, 100), 100);
    expect(&i, DropReason::Own);
    let mut pass = peer.clone();
    pass.auth = Auth::pass(b"2222");
    deliver(&mut i, t, &pass, 200);
    expect(&i, DropReason::AuthTypeMismatch);
    let mut slow = peer.clone();
    slow.advert_interval_cs = 200;
    deliver(&mut i, t, &slow, 200);
    expect(&i, DropReason::Interval);
    let mut v3 = peer.clone();
    v3.version = Version::V3;
    deliver(&mut i, t, &v3, 200);
    expect(&i, DropReason::Version);
    // None of these reset the down timer.
    assert_eq!(i.poll_timeout(), Some(Instant::from_micros(3_609_375)));
    assert_eq!(i.stats().total_dropped(), 12);
    assert_eq!(i.stats().adverts_received, 0);
}

#[test]
fn pass_authentication_failures_have_their_own_counters() {
    let mut c = config(A, 100);
    c.auth = Auth::pass(b"1111");
    let mut i = started(c.clone());
    let mut wrong = c.clone();
    wrong.primary_addr = B;
    wrong.auth = Auth::pass(b"2222");
    deliver(&mut i, Instant::from_secs(1), &wrong, 200);
    assert_eq!(i.stats().dropped(DropReason::Auth), 1, "password");
    let mut none = wrong.clone();
    none.auth = Auth::None;
    deliver(&mut i, Instant::from_secs(1), &none, 200);
    assert_eq!(
        i.stats().dropped(DropReason::AuthTypeMismatch),
        1,
        "none vs PASS"
    );
    let mut right = wrong.clone();
    right.auth = Auth::pass(b"1111");
    deliver(&mut i, Instant::from_secs(1), &right, 200);
    assert_eq!(i.stats().adverts_received, 1);
    assert_eq!(i.stats().total_dropped(), 2);
}

#[test]
fn unicast_peers_are_the_destinations() {
    let mut c = config(A, 100);
    c.unicast_peers.push(B).unwrap();
    c.unicast_peers.push(C).unwrap();
    let i = started(c);
    assert_eq!(i.advert_destinations().collect::<Vec<_>>(), [B, C]);
    assert_eq!(
        started(config(A, 100))
            .advert_destinations()
            .collect::<Vec<_>>(),
        [GROUP]
    );
}

#[test]
fn tracking_weights_clamp() {
    let mut c = config(A, 100);
    c.tracks.push(Track::new(TrackId(1), -30)).unwrap();
    c.tracks.push(Track::new(TrackId(2), 20)).unwrap();
    c.tracks.push(Track::new(TrackId(4), -1000)).unwrap();
    let mut i = started(c);
    assert_eq!(i.config().tracks[2].weight, -254, "weights clamp to 254");
    assert_eq!(i.effective_priority(), 120);
    for (id, want) in [(1, 90), (2, 70), (4, 1)] {
        i.handle(
            Instant::ZERO,
            Input::Track {
                id: TrackId(id),
                up: false,
            },
        );
        assert_eq!(i.effective_priority(), want, "track {id} down");
    }
    let mut c = config(A, 200);
    c.tracks.push(Track::new(TrackId(1), 254)).unwrap();
    assert_eq!(started(c).effective_priority(), 254, "priority caps at 254");
}

#[test]
fn sync_group_membership() {
    let g = super::SyncGroup::new(&[0, 2, 2]).unwrap();
    assert_eq!(g.members(), [0, 2]);
    assert_eq!(g.follow(2, State::Fault), Some(State::Fault));
    assert_eq!(g.follow(0, State::Init), None);
    assert_eq!(g.follow(1, State::Master), None);
}

#[test]
fn a_stale_sync_group_demand_never_fires_later() {
    // Forced to master while already master: nothing; after stepping down
    // to a higher master, that old demand must not make it master again.
    let mut i = started(config(A, 100));
    i.handle_timeout(Instant::from_micros(3_609_375));
    drain(&mut i);
    i.force(Instant::from_secs(4), State::Master);
    assert!(drain(&mut i).is_empty());
    deliver(&mut i, Instant::from_secs(5), &config(B, 200), 200);
    assert_eq!(drain(&mut i), [sc(Master, Backup, HigherPriority), REMOVE]);
    i.handle_timeout(Instant::from_secs(5));
    i.handle(Instant::from_secs(5), Input::Link { up: true });
    assert!(drain(&mut i).is_empty());
    assert_eq!(i.state(), Backup);
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
        Instance::<InlineVips<64>>::new(c, &[VIP], &[]).err(),
        Some(ConfigError::FamilyMismatch)
    );
    let many: Vec<IpAddr> = (0..3)
        .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)))
        .collect();
    assert_eq!(
        Instance::<InlineVips<2>>::new(ok, &many, &[]).err(),
        Some(ConfigError::Capacity)
    );
}

#[test]
fn footprint() {
    let one = core::mem::size_of::<Instance<InlineVips<8>>>();
    std::println!(
        "size_of Instance<8> = {one} bytes, Instance<64> = {}",
        core::mem::size_of::<Instance>()
    );
    assert!(
        one <= 1024,
        "a firmware instance with 8 VIPs must stay small: {one}"
    );
}

// ---------------------------------------------------------------------
// Two nodes.
// ---------------------------------------------------------------------

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

#[test]
fn late_timer_calls_do_not_drift_the_advert_schedule() {
    // An owner is master at once and adverts every second. The driver
    // calls 30 ms late every time: each advert still goes out 30 ms after
    // its own slot, never further behind.
    let mut i = started(config(A, 255));
    let mut sent = Vec::new();
    for _ in 0..50 {
        let due = i.poll_timeout().unwrap();
        let now = due + Duration::from_millis(30);
        i.handle_timeout(now);
        if drain(&mut i)
            .iter()
            .any(|o| matches!(o, Output::Advert { .. }))
        {
            sent.push(now);
        }
    }
    assert_eq!(sent.len(), 50);
    for (n, at) in sent.iter().enumerate() {
        let slot = Instant::from_secs(n as u64 + 1);
        assert_eq!(
            at.saturating_duration_since(slot),
            Duration::from_millis(30),
            "advert {n}"
        );
    }
    // A stall longer than an interval restarts the schedule from now: one
    // advert, not a burst of the missed ones.
    let due = i.poll_timeout().unwrap();
    let late = due + Duration::from_secs(5);
    i.handle_timeout(late);
    let adverts = drain(&mut i)
        .iter()
        .filter(|o| matches!(o, Output::Advert { .. }))
        .count();
    assert_eq!(adverts, 1);
    assert_eq!(i.poll_timeout(), Some(late + Duration::from_secs(1)));
}
