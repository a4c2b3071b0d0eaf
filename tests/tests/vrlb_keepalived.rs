//! `vrlb run` against Debian's keepalived on one segment, both ways round,
//! for VRRPv2 with PASS authentication, VRRPv3 over IPv4 and VRRPv3 over
//! IPv6: the higher priority wins whichever daemon has it, the other takes
//! over when it crashes, and it preempts again when it returns. A wrong
//! password is ignored by both (each becomes master) and counted by vrlb;
//! unicast mode (unicast_src_ip / unicast_peer) works between the two.

use std::time::Duration;

use vrlb_tests::vrrp_lab::{
    Instance, Kind, Running, VrrpLab, counter, expect, log, master_down, state, v4, wait_state,
};

const LONG: Duration = Duration::from_secs(15);
const VIP4: &str = "192.0.2.240";
const VIP6: &str = "2001:db8::240";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    V2Pass,
    V3Ipv4,
    V3Ipv6,
}

impl Mode {
    fn vip(self) -> &'static str {
        match self {
            Mode::V3Ipv6 => VIP6,
            _ => VIP4,
        }
    }

    fn interval(self) -> Duration {
        match self {
            Mode::V2Pass => Duration::from_secs(1),
            // VRRPv3 allows centiseconds: keep the tests short.
            _ => Duration::from_millis(500),
        }
    }

    fn instance(self, priority: u8, password: &'static str) -> Instance<'static> {
        Instance {
            name: "VI_1",
            vrid: 51,
            priority,
            version: if self == Mode::V2Pass { 2 } else { 3 },
            advert_int: if self == Mode::V2Pass { "1" } else { "0.5" },
            password: (self == Mode::V2Pass).then_some(password),
            vips: vec![match self {
                Mode::V3Ipv6 => format!("{VIP6}/64"),
                _ => format!("{VIP4}/24"),
            }],
            nopreempt: false,
            unicast: None,
        }
    }
}

fn is(d: &Running, want: &str) -> bool {
    state(d, "VI_1").as_deref() == Some(want)
}

/// The higher priority (150) on `high`, 100 on the other; election,
/// crash failover, preemption back.
fn matrix(mode: Mode, high: Kind) {
    let Some(mut lab) = VrrpLab::new(&["keepalived"]) else {
        return;
    };
    let low = if high == Kind::Vrlb {
        Kind::Keepalived
    } else {
        Kind::Vrlb
    };
    let vip = mode.vip();
    let c_high = mode.instance(150, "pw1").conf(&lab.ifs[0].clone());
    let c_low = mode.instance(100, "pw1").conf(&lab.ifs[1].clone());
    let l = lab.start(low, 1, &c_low);
    let h = lab.start(high, 0, &c_high);

    expect(
        LONG,
        "the higher priority becomes master",
        &[&h, &l],
        || is(&h, "MASTER") && is(&l, "BACKUP"),
    );
    expect(LONG, "the VIP only on the master", &[&h, &l], || {
        lab.holds(0, vip) && !lab.holds(1, vip)
    });
    // Stable: the backup stays backup while adverts flow.
    std::thread::sleep(2 * mode.interval() + Duration::from_millis(500));
    assert!(is(&l, "BACKUP"), "the backup left BACKUP:\n{}", log(&l));

    // The master crashes: the other takes over within its
    // Master_Down_Interval (plus slack for keepalived's timer rounding).
    lab.crash(&h);
    let bound = master_down(100, mode.interval()) + Duration::from_millis(300);
    let took = wait_state(&l, "VI_1", "MASTER", LONG);
    eprintln!("{mode:?}, {high:?} high: failover to {low:?} in {took:?} (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "failover took {took:?} (bound {bound:?}):\n{}",
        log(&l)
    );
    expect(LONG, "the VIP moves to the new master", &[&l], || {
        lab.holds(1, vip)
    });

    // It returns and preempts.
    let h = lab.start(high, 0, &c_high);
    expect(LONG, "the higher priority preempts", &[&h, &l], || {
        is(&h, "MASTER") && is(&l, "BACKUP")
    });
    expect(LONG, "the VIP only on the master again", &[&h, &l], || {
        lab.holds(0, vip) && !lab.holds(1, vip)
    });
}

#[test]
fn v2_pass_vrlb_master_keepalived_backup() {
    matrix(Mode::V2Pass, Kind::Vrlb);
}

#[test]
fn v2_pass_keepalived_master_vrlb_backup() {
    matrix(Mode::V2Pass, Kind::Keepalived);
}

#[test]
fn v3_ipv4_vrlb_master_keepalived_backup() {
    matrix(Mode::V3Ipv4, Kind::Vrlb);
}

#[test]
fn v3_ipv4_keepalived_master_vrlb_backup() {
    matrix(Mode::V3Ipv4, Kind::Keepalived);
}

#[test]
fn v3_ipv6_vrlb_master_keepalived_backup() {
    matrix(Mode::V3Ipv6, Kind::Vrlb);
}

#[test]
fn v3_ipv6_keepalived_master_vrlb_backup() {
    matrix(Mode::V3Ipv6, Kind::Keepalived);
}

#[test]
fn a_wrong_password_is_ignored_by_both_and_counted_by_vrlb() {
    let Some(mut lab) = VrrpLab::new(&["keepalived"]) else {
        return;
    };
    let mode = Mode::V2Pass;
    let k = lab.start(
        Kind::Keepalived,
        1,
        &mode.instance(150, "right").conf(&lab.ifs[1].clone()),
    );
    // keepalived is master, advertising, before vrlb starts: vrlb counts
    // its adverts while it waits as backup. Once both are master,
    // keepalived may fall silent: a keepalived master resets its advert
    // timer on every advert it reads, valid or not (vrrp_scheduler.c,
    // `vrrp_dispatcher_read`), so a peer advertising at the same interval
    // and a little ahead of it keeps it from sending at all.
    expect(LONG, "keepalived becomes master", &[&k], || {
        is(&k, "MASTER")
    });
    let v = lab.start(
        Kind::Vrlb,
        0,
        &mode.instance(100, "wrong").conf(&lab.ifs[0].clone()),
    );
    // Neither accepts the other's adverts: both are master, both hold the
    // VIP, though keepalived's priority is higher.
    expect(LONG, "both become master", &[&v, &k], || {
        is(&v, "MASTER") && is(&k, "MASTER")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(is(&v, "MASTER") && is(&k, "MASTER"));
    assert!(lab.holds(0, VIP4) && lab.holds(1, VIP4));
    expect(LONG, "vrlb counts the adverts it refused", &[&v], || {
        counter(&v, "VI_1", "drop.auth").is_some_and(|n| n >= 3)
            && counter(&v, "VI_1", "rx") == Some(0)
    });
    assert!(
        log(&v).contains("VI_1: adverts dropped: "),
        "no log line for the drops:\n{}",
        log(&v)
    );
}

#[test]
fn unicast_between_vrlb_and_keepalived() {
    let Some(mut lab) = VrrpLab::new(&["keepalived"]) else {
        return;
    };
    let mode = Mode::V3Ipv4;
    let unicast = |priority: u8, me: usize| {
        let mut i = mode.instance(priority, "");
        i.unicast = Some((v4(me), v4(1 - me)));
        i
    };
    let c_vrlb = unicast(150, 0).conf(&lab.ifs[0].clone());
    let c_ka = unicast(100, 1).conf(&lab.ifs[1].clone());
    let k = lab.start(Kind::Keepalived, 1, &c_ka);
    let v = lab.start(Kind::Vrlb, 0, &c_vrlb);
    expect(LONG, "vrlb (150) master over unicast", &[&v, &k], || {
        is(&v, "MASTER") && is(&k, "BACKUP")
    });
    expect(LONG, "VIP only on vrlb", &[&v, &k], || {
        lab.holds(0, VIP4) && !lab.holds(1, VIP4)
    });
    lab.crash(&v);
    expect(LONG, "keepalived takes over", &[&k], || is(&k, "MASTER"));
    let v = lab.start(Kind::Vrlb, 0, &c_vrlb);
    expect(LONG, "vrlb preempts over unicast", &[&v, &k], || {
        is(&v, "MASTER") && is(&k, "BACKUP")
    });
    // vrlb heard keepalived's unicast adverts while it was backup, and
    // refused none of them.
    expect(LONG, "vrlb counted keepalived's adverts", &[&v], || {
        counter(&v, "VI_1", "rx").is_some_and(|n| n >= 1)
    });
    assert_eq!(counter(&v, "VI_1", "drop.unknown_peer"), Some(0));
    assert_eq!(counter(&v, "VI_1", "drop.checksum"), Some(0));
}
