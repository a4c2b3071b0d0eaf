//! Interface faults in a running `vrlb run` (issue 6, Build 1 and 4):
//!
//! - an instance on an interface that does not exist is FAULT (with a log
//!   line) while another instance of the same daemon becomes and stays
//!   master; when the interface appears the instance leaves FAULT and
//!   becomes master within Master_Down_Interval;
//! - the VRRP interface losing its carrier (the switch port goes down)
//!   puts a master in FAULT at once: it sends its priority-0 advert (seen
//!   by an nftables egress counter on that interface: with no carrier the
//!   frame never reaches a wire) and removes its VIP, and the backup takes
//!   over; the carrier back, it leaves FAULT and preempts again.

use std::time::{Duration, Instant};

use vrlb_tests::netns::{in_ns, run};
use vrlb_tests::vrrp_lab::{
    Instance, Kind, Running, VrrpLab, counter, expect, log, master_down, state, wait_state,
};

const LONG: Duration = Duration::from_secs(12);
const VIP: &str = "192.0.2.240";
const VIP2: &str = "198.51.100.240";
const INTERVAL: Duration = Duration::from_secs(1);
/// Event delivery (rtnetlink), the log poll and a loaded machine.
const SLACK: Duration = Duration::from_millis(500);

fn inst(name: &'static str, vrid: u8, priority: u8, vip: &str) -> Instance<'static> {
    Instance {
        name,
        vrid,
        priority,
        version: 2,
        advert_int: "1",
        password: Some("secret"),
        vips: vec![format!("{vip}/24")],
        nopreempt: false,
        unicast: None,
    }
}

fn is(d: &Running, name: &str, want: &str) -> bool {
    state(d, name).as_deref() == Some(want)
}

/// State changes `d` logged for `name`.
fn changes(d: &Running, name: &str) -> usize {
    let prefix = format!("{name}: ");
    log(d)
        .lines()
        .filter(|l| l.contains(&prefix) && l.contains(" -> "))
        .count()
}

#[test]
fn an_instance_on_a_missing_interface_is_fault_and_recovers_when_it_appears() {
    let Some(mut lab) = VrrpLab::new(&[]) else {
        return;
    };
    let missing = lab.lab.name("x0");
    let ns = lab.ns[0].clone();
    let conf = format!(
        "{}{}",
        inst("VI_1", 51, 150, VIP).conf(&lab.ifs[0].clone()),
        inst("VI_2", 52, 150, VIP2).conf(&missing)
    );
    let d0 = lab.start(Kind::Vrlb, 0, &conf);
    expect(LONG, "VI_2 is FAULT, VI_1 master", &[&d0], || {
        is(&d0, "VI_2", "FAULT") && is(&d0, "VI_1", "MASTER")
    });
    let text = log(&d0);
    assert!(
        text.contains(&format!(
            "VI_2: interface {missing} does not exist: FAULT until it appears"
        )),
        "{text}"
    );
    assert!(lab.holds(0, VIP) && !lab.holds(0, VIP2), "{text}");

    // VI_1 keeps running: it advertises every second, and nothing moves.
    let t1 = changes(&d0, "VI_1");
    let tx = counter(&d0, "VI_1", "tx").unwrap_or(0);
    std::thread::sleep(3 * INTERVAL);
    let sent = counter(&d0, "VI_1", "tx").unwrap_or(0) - tx;
    assert!(sent >= 2, "VI_1 sent {sent} adverts in 3 s:\n{}", log(&d0));
    assert!(is(&d0, "VI_2", "FAULT"));

    // The interface appears (one end of a veth pair whose other end is
    // up, with an address to advertise from), then comes up: VI_2
    // listens, hears nobody, becomes master.
    let peer = lab.lab.name("y0");
    run(&[
        "ip", "-n", &ns, "link", "add", "name", &missing, "type", "veth", "peer", "name", &peer,
    ]);
    run(&["ip", "-n", &ns, "link", "set", &peer, "up"]);
    run(&[
        "ip",
        "-n",
        &ns,
        "addr",
        "add",
        "198.51.100.1/24",
        "dev",
        &missing,
    ]);
    let up = Instant::now();
    run(&["ip", "-n", &ns, "link", "set", &missing, "up"]);
    expect(LONG, "VI_2 leaves FAULT", &[&d0], || {
        !is(&d0, "VI_2", "FAULT")
    });
    let bound = master_down(150, INTERVAL) + SLACK;
    let took = wait_state(&d0, "VI_2", "MASTER", LONG).map(|_| up.elapsed());
    eprintln!("VI_2 master {took:?} after its interface came up (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "VI_2 master after {took:?} (bound {bound:?}):\n{}",
        log(&d0)
    );
    let text = log(&d0);
    assert!(
        text.contains(&format!("interface {missing} appeared")),
        "{text}"
    );
    assert!(text.contains("VI_2: FAULT -> BACKUP"), "{text}");
    expect(LONG, "VI_2's VIP on the new interface", &[&d0], || {
        in_ns(&ns, &["ip", "-o", "addr", "show", "dev", &missing]).contains(VIP2)
    });
    assert_eq!(changes(&d0, "VI_1"), t1, "VI_1 moved:\n{}", log(&d0));
    assert!(is(&d0, "VI_1", "MASTER") && lab.holds(0, VIP));
}

/// Priority-0 VRRP packets handed to `iface` in `ns` (the egress counter).
fn priority_zero_sent(ns: &str) -> u64 {
    let text = in_ns(ns, &["nft", "list", "table", "netdev", "vrlbtest"]);
    let mut w = text.split_whitespace();
    w.position(|x| x == "packets")
        .and_then(|_| w.next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn carrier_loss_puts_the_master_in_fault_with_a_goodbye_and_it_recovers() {
    let Some(mut lab) = VrrpLab::new(&["nft"]) else {
        return;
    };
    let (ns0, if0) = (lab.ns[0].clone(), lab.ifs[0].clone());
    // Counts priority-0 adverts as they enter the device, before its
    // queueing discipline (which drops everything without a carrier).
    run(&[
        "ip", "netns", "exec", &ns0, "nft", "add", "table", "netdev", "vrlbtest",
    ]);
    run(&[
        "ip",
        "netns",
        "exec",
        &ns0,
        "nft",
        "add",
        "chain",
        "netdev",
        "vrlbtest",
        "out",
        &format!("{{ type filter hook egress device {if0} priority 0; }}"),
    ]);
    run(&[
        "ip", "netns", "exec", &ns0, "nft", "add", "rule", "netdev", "vrlbtest", "out", "ip",
        "protocol", "112", "@th,16,8", "0", "counter",
    ]);
    let d1 = lab.start(
        Kind::Vrlb,
        1,
        &inst("VI_1", 51, 100, VIP).conf(&lab.ifs[1].clone()),
    );
    let d0 = lab.start(Kind::Vrlb, 0, &inst("VI_1", 51, 150, VIP).conf(&if0));
    expect(LONG, "director 0 master", &[&d0, &d1], || {
        is(&d0, "VI_1", "MASTER") && is(&d1, "VI_1", "BACKUP") && lab.holds(0, VIP)
    });
    assert_eq!(priority_zero_sent(&ns0), 0);

    // The switch port goes down: director 0's link stays up but loses its
    // carrier.
    let port = lab.lab.name("p0");
    let sw = lab.lab.name("sw");
    let cut = Instant::now();
    run(&["ip", "-n", &sw, "link", "set", &port, "down"]);
    let took = wait_state(&d0, "VI_1", "FAULT", LONG);
    eprintln!("carrier lost: FAULT after {took:?}");
    assert!(
        took.is_some_and(|t| t <= SLACK * 2),
        "FAULT after {took:?}:\n{}",
        log(&d0)
    );
    let text = log(&d0);
    assert!(text.contains(&format!("interface {if0} is down")), "{text}");
    assert!(text.contains("VI_1: MASTER -> FAULT (Fault)"), "{text}");
    expect(
        LONG,
        "the priority-0 advert handed to the interface",
        &[&d0],
        || priority_zero_sent(&ns0) == 1,
    );
    expect(LONG, "director 0 removed the VIP", &[&d0], || {
        !lab.holds(0, VIP)
    });
    // The goodbye cannot reach director 1: it takes over when the adverts
    // stop, within Master_Down_Interval.
    let bound = master_down(100, INTERVAL) + SLACK;
    let took = wait_state(&d1, "VI_1", "MASTER", LONG).map(|_| cut.elapsed());
    assert!(
        took.is_some_and(|t| t <= bound),
        "director 1 master {took:?} after the cut (bound {bound:?}):\n{}",
        log(&d1)
    );
    expect(LONG, "the VIP on director 1", &[&d1], || lab.holds(1, VIP));
    // In FAULT it sends nothing more.
    let tx = counter(&d0, "VI_1", "tx");
    std::thread::sleep(2 * INTERVAL);
    assert_eq!(counter(&d0, "VI_1", "tx"), tx, "adverts from FAULT");
    assert!(is(&d0, "VI_1", "FAULT"));

    // The carrier returns: director 0 listens, hears a lower priority and
    // preempts once its Master_Down_Interval passes.
    let back = Instant::now();
    run(&["ip", "-n", &sw, "link", "set", &port, "up"]);
    expect(LONG, "director 0 leaves FAULT", &[&d0], || {
        log(&d0).contains("VI_1: FAULT -> BACKUP (FaultCleared)")
    });
    let bound = master_down(150, INTERVAL) + SLACK;
    let took = wait_state(&d0, "VI_1", "MASTER", LONG).map(|_| back.elapsed());
    eprintln!("carrier back: master again after {took:?} (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "director 0 master {took:?} after the carrier returned (bound {bound:?}):\n{}",
        log(&d0)
    );
    expect(LONG, "director 1 yields", &[&d0, &d1], || {
        is(&d1, "VI_1", "BACKUP") && lab.holds(0, VIP) && !lab.holds(1, VIP)
    });
    assert!(log(&d0).contains(&format!("interface {if0} is up")));
}
