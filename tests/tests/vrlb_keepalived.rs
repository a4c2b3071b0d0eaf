//! `vrlb run` against Debian's keepalived on one segment, both ways round,
//! for VRRPv2 with PASS authentication, VRRPv3 over IPv4 and VRRPv3 over
//! IPv6, multicast and unicast (unicast_src_ip / unicast_peer, IPv4 and
//! IPv6): the higher priority wins whichever daemon has it, the other
//! takes over within Master_Down_Interval when it crashes, and it preempts
//! again when it returns. A wrong password is ignored by both, whichever
//! has the higher priority (each stays master; keepalived logs the
//! mismatch, vrlb counts it by reason).

use std::time::Duration;

use vrlb_tests::vrrp_lab::{
    Instance, Kind, Running, VrrpLab, counter, expect, log, master_down, state, v4, v6, wait_state,
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

    /// The instance of director `me` (0 or 1); with `unicast`, it sends
    /// from its own address to the other director's.
    fn instance(
        self,
        priority: u8,
        password: &'static str,
        unicast: bool,
        me: usize,
    ) -> Instance<'static> {
        let addr = |n: usize| if self == Mode::V3Ipv6 { v6(n) } else { v4(n) };
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
            unicast: unicast.then(|| (addr(me), addr(1 - me))),
        }
    }
}

fn is(d: &Running, want: &str) -> bool {
    state(d, "VI_1").as_deref() == Some(want)
}

/// The higher priority (150) on `high` (director 0), 100 on the other;
/// election, crash failover within Master_Down_Interval, preemption back.
/// With `unicast`, both send to each other's address only.
fn matrix(mode: Mode, high: Kind, unicast: bool) {
    let Some(mut lab) = VrrpLab::new(&["keepalived", "tcpdump"]) else {
        return;
    };
    // The client sees every multicast advert on the segment (and no
    // unicast one: the bridge has learnt where each director is).
    let capture = lab.dir.path("client.txt");
    let (client, client_if) = (lab.client.clone(), lab.client_if.clone());
    lab.lab.spawn(
        &client,
        &[
            "tcpdump",
            "-i",
            &client_if,
            "-n",
            "-l",
            "ip proto 112 or ip6 proto 112",
        ],
        &capture,
    );
    expect(LONG, "tcpdump listens", &[], || {
        std::fs::read_to_string(&capture).is_ok_and(|t| t.contains("listening on"))
    });
    let low = if high == Kind::Vrlb {
        Kind::Keepalived
    } else {
        Kind::Vrlb
    };
    let vip = mode.vip();
    let c_high = mode
        .instance(150, "pw1", unicast, 0)
        .conf(&lab.ifs[0].clone());
    let c_low = mode
        .instance(100, "pw1", unicast, 1)
        .conf(&lab.ifs[1].clone());
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
    eprintln!(
        "{mode:?}{}, {high:?} high: failover to {low:?} in {took:?} (bound {bound:?})",
        if unicast { " unicast" } else { "" }
    );
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
    let seen = std::fs::read_to_string(&capture).unwrap_or_default();
    let multicast = seen
        .lines()
        .filter(|l| l.contains("> 224.0.0.18:") || l.contains("> ff02::12:"))
        .count();
    if unicast {
        assert_eq!(multicast, 0, "multicast adverts in unicast mode:\n{seen}");
    } else {
        assert!(multicast >= 3, "the client saw the adverts:\n{seen}");
    }
    // vrlb heard the other's adverts (as backup, or before it preempted)
    // and refused none of them.
    let v = if high == Kind::Vrlb { &h } else { &l };
    expect(LONG, "vrlb counted keepalived's adverts", &[v], || {
        counter(v, "VI_1", "rx").is_some_and(|n| n >= 1)
    });
    for reason in ["unknown_peer", "checksum", "ttl", "auth"] {
        assert_eq!(
            counter(v, "VI_1", &format!("drop.{reason}")),
            Some(0),
            "vrlb dropped keepalived's adverts ({reason}):\n{}",
            std::fs::read_to_string(&v.stats).unwrap_or_default()
        );
    }
}

#[test]
fn v2_pass_vrlb_master_keepalived_backup() {
    matrix(Mode::V2Pass, Kind::Vrlb, false);
}

#[test]
fn v2_pass_keepalived_master_vrlb_backup() {
    matrix(Mode::V2Pass, Kind::Keepalived, false);
}

#[test]
fn v3_ipv4_vrlb_master_keepalived_backup() {
    matrix(Mode::V3Ipv4, Kind::Vrlb, false);
}

#[test]
fn v3_ipv4_keepalived_master_vrlb_backup() {
    matrix(Mode::V3Ipv4, Kind::Keepalived, false);
}

#[test]
fn v3_ipv6_vrlb_master_keepalived_backup() {
    matrix(Mode::V3Ipv6, Kind::Vrlb, false);
}

#[test]
fn v3_ipv6_keepalived_master_vrlb_backup() {
    matrix(Mode::V3Ipv6, Kind::Keepalived, false);
}

#[test]
fn unicast_v3_ipv4_vrlb_master_keepalived_backup() {
    matrix(Mode::V3Ipv4, Kind::Vrlb, true);
}

#[test]
fn unicast_v3_ipv4_keepalived_master_vrlb_backup() {
    matrix(Mode::V3Ipv4, Kind::Keepalived, true);
}

#[test]
fn unicast_v3_ipv6_vrlb_master_keepalived_backup() {
    matrix(Mode::V3Ipv6, Kind::Vrlb, true);
}

#[test]
fn unicast_v3_ipv6_keepalived_master_vrlb_backup() {
    matrix(Mode::V3Ipv6, Kind::Keepalived, true);
}

/// keepalived 2.2.7's line for an advert whose PASS password differs
/// (vrrp.c, vrrp_check_packet).
const KA_BAD_PASSWORD: &str = "(VI_1) received an invalid passwd!";

/// Capture times (tcpdump `-tt`) of the adverts from `src`.
fn adverts_from(capture: &str, src: &str) -> Vec<f64> {
    capture
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some(src) && l.contains("VRRP"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

fn epoch_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// keepalived (right password) and vrlb (wrong one) at the given
/// priorities: neither accepts the other's adverts, so both are master and
/// hold the VIP, whichever priority is higher. Every advert each sent
/// (the client's capture) was refused by the other: keepalived logs each
/// refusal, vrlb counts each as `auth`.
///
/// How many keepalived sends is up to keepalived: a master re-arms its
/// advert timer on every advert it reads, refused or not
/// (vrrp_scheduler.c, vrrp_dispatcher_read: vrrp_init_instance_sands), so
/// another master with the same interval, sending a little before its
/// deadline, can hold it silent for seconds. Hence counts against the
/// wire, not against the clock.
fn wrong_password(vrlb_priority: u8, ka_priority: u8) {
    let Some(mut lab) = VrrpLab::new(&["keepalived", "tcpdump"]) else {
        return;
    };
    let mode = Mode::V2Pass;
    let capture = lab.dir.path("client.txt");
    let (client, client_if) = (lab.client.clone(), lab.client_if.clone());
    lab.lab.spawn(
        &client,
        &[
            "tcpdump",
            "-i",
            &client_if,
            "-n",
            "-l",
            "-tt",
            "ip proto 112",
        ],
        &capture,
    );
    expect(LONG, "tcpdump listens", &[], || {
        std::fs::read_to_string(&capture).is_ok_and(|t| t.contains("listening on"))
    });
    let k = lab.start(
        Kind::Keepalived,
        1,
        &mode
            .instance(ka_priority, "right", false, 1)
            .conf(&lab.ifs[1].clone()),
    );
    // keepalived is master, advertising, before vrlb starts: vrlb hears
    // (and refuses) its adverts while it waits as backup, whatever
    // keepalived does once both are master (see above).
    expect(LONG, "keepalived becomes master", &[&k], || {
        is(&k, "MASTER")
    });
    let vrlb_started = epoch_s();
    let v = lab.start(
        Kind::Vrlb,
        0,
        &mode
            .instance(vrlb_priority, "wrong", false, 0)
            .conf(&lab.ifs[0].clone()),
    );
    expect(LONG, "both become master", &[&v, &k], || {
        is(&v, "MASTER") && is(&k, "MASTER")
    });
    // Three more seconds: vrlb sends three adverts or more, and neither
    // yields to the other.
    let vrlb_changes = |d: &Running| {
        log(d)
            .lines()
            .filter(|l| l.contains("VI_1: ") && l.contains(" -> "))
            .count()
    };
    let (tv, tk) = (vrlb_changes(&v), log(&k).matches("Entering").count());
    std::thread::sleep(3 * mode.interval() + Duration::from_millis(300));
    assert!(
        is(&v, "MASTER") && is(&k, "MASTER"),
        "both stay master:\n{}\n{}",
        log(&v),
        log(&k)
    );
    assert_eq!(vrlb_changes(&v), tv, "vrlb changed state:\n{}", log(&v));
    assert_eq!(
        log(&k).matches("Entering").count(),
        tk,
        "keepalived changed state:\n{}",
        log(&k)
    );
    assert!(lab.holds(0, VIP4) && lab.holds(1, VIP4));

    let wire = std::fs::read_to_string(&capture).unwrap_or_default();
    let from_vrlb = adverts_from(&wire, &v4(0)).len();
    let from_ka = adverts_from(&wire, &v4(1));
    // vrlb's receiver is open within moments of its start.
    let ka_after = from_ka.iter().filter(|t| **t >= vrlb_started + 0.1).count();
    eprintln!(
        "on the wire: {from_vrlb} adverts from vrlb, {} from keepalived ({ka_after} after vrlb started)",
        from_ka.len()
    );
    assert!(from_vrlb >= 3, "vrlb advertised:\n{wire}");
    assert!(!from_ka.is_empty(), "keepalived advertised:\n{wire}");
    // keepalived refused every advert vrlb sent, for the password.
    expect(
        LONG,
        "keepalived refused each of vrlb's adverts",
        &[&k],
        || log(&k).matches(KA_BAD_PASSWORD).count() >= from_vrlb,
    );
    // vrlb refused every advert of keepalived's it could hear, counted as
    // `auth` (no more than keepalived sent), accepted none, and logged it.
    expect(LONG, "vrlb counts the adverts it refused", &[&v], || {
        counter(&v, "VI_1", "drop.auth").is_some_and(|n| n as usize >= ka_after.max(1))
            && counter(&v, "VI_1", "rx") == Some(0)
    });
    let total_ka = adverts_from(
        &std::fs::read_to_string(&capture).unwrap_or_default(),
        &v4(1),
    )
    .len();
    let auth = counter(&v, "VI_1", "drop.auth").unwrap_or(0) as usize;
    assert!(
        auth <= total_ka,
        "vrlb counted {auth} refusals of {total_ka} adverts"
    );
    assert!(
        log(&v).contains("VI_1: adverts dropped: ") && log(&v).contains(" auth"),
        "no log line for the drops:\n{}",
        log(&v)
    );
}

#[test]
fn a_wrong_password_is_ignored_by_both_keepalived_higher() {
    wrong_password(100, 150);
}

#[test]
fn a_wrong_password_is_ignored_by_both_vrlb_higher() {
    wrong_password(150, 100);
}
