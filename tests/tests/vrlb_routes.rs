//! `virtual_routes` follow mastership and `static_routes` the daemon's
//! life, on a real kernel: the master holds its instance's routes (one
//! with the VIP as its source, so after the VIP), the backup only the
//! static ones; a reload changes them as the new file says and adds back
//! one the kernel dropped; a graceful
//! stop removes all of them and the new master
//! takes the virtual ones; routes a kill -9 left are removed when vrlb
//! starts again; a route the administrator added by hand with the same
//! destination is neither replaced nor removed.

use std::time::Duration;

use vrlb_tests::netns::{in_ns, run};
use vrlb_tests::vrrp_lab::{Instance, Kind, Running, VrrpLab, expect, log, state};

const LONG: Duration = Duration::from_secs(15);
const VIP: &str = "192.0.2.240";

/// The routes of director `ns` that vrlb added (`proto keepalived`), as
/// `ip route` prints them, IPv4 and IPv6, every table.
fn vrlb_routes(ns: &str) -> Vec<String> {
    let mut out = Vec::new();
    for family in ["-4", "-6"] {
        let text = in_ns(
            ns,
            &[
                "ip",
                family,
                "route",
                "show",
                "table",
                "all",
                "proto",
                "keepalived",
            ],
        );
        out.extend(text.lines().map(|l| l.trim().to_string()));
    }
    out
}

fn has(routes: &[String], prefix: &str) -> bool {
    routes.iter().any(|r| r.starts_with(prefix))
}

/// VI_1's block on `iface`, holding the VIP, without routes.
fn instance(priority: u8, iface: &str) -> String {
    Instance {
        name: "VI_1",
        vrid: 51,
        priority,
        version: 2,
        advert_int: "1",
        password: Some("secret"),
        vips: vec![format!("{VIP}/24")],
        nopreempt: false,
        unicast: None,
    }
    .conf(iface)
}

fn conf(priority: u8, iface: &str) -> String {
    let base = instance(priority, iface);
    let routes = format!(
        "  virtual_routes {{\n    198.51.100.0/24 via 192.0.2.100\n    src {VIP} to 203.0.113.64/26 dev {iface} table 100\n    blackhole 203.0.113.0/26\n    2001:db8:5::/48 via 2001:db8::100 metric 7\n  }}\n}}\n"
    );
    let instance = base.trim_end().strip_suffix('}').unwrap().to_string() + &routes;
    format!("static_routes {{\n  198.51.100.128/25 dev {iface} scope link\n}}\n{instance}")
}

fn is(d: &Running, want: &str) -> bool {
    state(d, "VI_1").as_deref() == Some(want)
}

/// Every virtual route of the configuration is in `routes`.
fn holds_virtual(routes: &[String]) -> bool {
    has(routes, "198.51.100.0/24 via 192.0.2.100")
        && has(routes, "203.0.113.64/26 dev")
        && routes
            .iter()
            .any(|r| r.contains(&format!("src {VIP}")) && r.contains("table 100"))
        && has(routes, "blackhole 203.0.113.0/26")
        && has(routes, "2001:db8:5::/48 via 2001:db8::100")
}

fn holds_static_only(routes: &[String]) -> bool {
    routes.len() == 1 && has(routes, "198.51.100.128/25 dev")
}

#[test]
fn virtual_routes_follow_the_master_and_static_routes_the_daemon() {
    let Some(mut lab) = VrrpLab::new(&[]) else {
        return;
    };
    let (ns0, ns1) = (lab.ns[0].clone(), lab.ns[1].clone());
    let (if0, if1) = (lab.ifs[0].clone(), lab.ifs[1].clone());
    // The administrator's own route to a destination VI_1 also lists.
    run(&[
        "ip",
        "-n",
        &ns0,
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        "192.0.2.100",
    ]);

    let d0 = lab.start(Kind::Vrlb, 0, &conf(100, &if0));
    let d1 = lab.start(Kind::Vrlb, 1, &conf(200, &if1));
    expect(LONG, "d1 master, d0 backup", &[&d0, &d1], || {
        is(&d1, "MASTER") && is(&d0, "BACKUP")
    });
    expect(LONG, "d1 holds every route", &[&d1], || {
        let r = vrlb_routes(&ns1);
        holds_virtual(&r) && has(&r, "198.51.100.128/25 dev")
    });
    assert_eq!(vrlb_routes(&ns1).len(), 5, "{:?}", vrlb_routes(&ns1));
    assert!(
        holds_static_only(&vrlb_routes(&ns0)),
        "{:?}",
        vrlb_routes(&ns0)
    );

    // SIGHUP: the master holds what the new file says.
    let changed = conf(200, &if1)
        .replace("    blackhole 203.0.113.0/26\n", "")
        .replace("198.51.100.128/25", "198.51.100.192/26");
    std::fs::write(&d1.conf, changed).unwrap();
    d1.hup();
    expect(LONG, "d1 holds the reloaded routes", &[&d1], || {
        let r = vrlb_routes(&ns1);
        r.len() == 4 && has(&r, "198.51.100.192/26") && !has(&r, "blackhole")
    });
    assert!(is(&d1, "MASTER"), "{}", log(&d1));
    // A route the kernel dropped (as when its device goes down) comes back
    // at the next reload.
    run(&[
        "ip",
        "-n",
        &ns1,
        "route",
        "del",
        "198.51.100.192/26",
        "proto",
        "keepalived",
    ]);
    assert_eq!(vrlb_routes(&ns1).len(), 3);
    d1.hup();
    expect(LONG, "d1 adds the dropped route back", &[&d1], || {
        vrlb_routes(&ns1).len() == 4
    });

    // A graceful stop takes every route of d1 away; d0 takes VI_1's, bar
    // the one the administrator holds.
    lab.stop(&d1);
    assert_eq!(vrlb_routes(&ns1), Vec::<String>::new(), "{}", log(&d1));
    expect(LONG, "d0 master with VI_1's routes", &[&d0], || {
        let r = vrlb_routes(&ns0);
        is(&d0, "MASTER") && has(&r, "203.0.113.64/26") && has(&r, "2001:db8:5::/48")
    });
    let r0 = vrlb_routes(&ns0);
    assert!(!has(&r0, "198.51.100.0/24"), "{r0:?}");
    assert!(
        log(&d0)
            .contains("route 198.51.100.0/24 via 192.0.2.100 is already there, not added by vrlb"),
        "{}",
        log(&d0)
    );

    // kill -9 leaves d0's four routes; the next start removes them (and
    // not the administrator's, whose destination it also lists) before
    // d0, a backup again, takes anything.
    lab.crash(&d0);
    assert_eq!(vrlb_routes(&ns0).len(), 4, "{:?}", vrlb_routes(&ns0));
    let d1 = lab.start(Kind::Vrlb, 1, &conf(200, &if1));
    expect(LONG, "d1 master again", &[&d1], || is(&d1, "MASTER"));
    let d0 = lab.start(Kind::Vrlb, 0, &conf(100, &if0));
    expect(LONG, "d0 backup again", &[&d0], || is(&d0, "BACKUP"));
    assert!(
        holds_static_only(&vrlb_routes(&ns0)),
        "{:?}\n{}",
        vrlb_routes(&ns0),
        log(&d0)
    );
    assert_eq!(
        log(&d0).matches("removed route ").count(),
        4,
        "{}",
        log(&d0)
    );

    lab.stop(&d0);
    lab.stop(&d1);
    assert_eq!(vrlb_routes(&ns0), Vec::<String>::new());
    assert_eq!(vrlb_routes(&ns1), Vec::<String>::new());
    // The administrator's route outlived both.
    let admin = in_ns(&ns0, &["ip", "route", "show", "198.51.100.0/24"]);
    assert!(admin.contains("via 192.0.2.100"), "{admin}");
}

#[test]
fn a_route_the_kernel_dropped_with_its_device_comes_back_when_it_is_up() {
    let Some(mut lab) = VrrpLab::new(&[]) else {
        return;
    };
    let ns0 = lab.ns[0].clone();
    let if0 = lab.ifs[0].clone();
    // A device of its own (this kernel has no dummy driver): one end of a
    // veth pair inside the director's namespace.
    run(&[
        "ip", "-n", &ns0, "link", "add", "vrlbdum", "type", "veth", "peer", "name", "vrlbpeer",
    ]);
    run(&["ip", "-n", &ns0, "link", "set", "vrlbpeer", "up"]);
    run(&["ip", "-n", &ns0, "link", "set", "vrlbdum", "up"]);
    let text = format!(
        "static_routes {{\n  203.0.113.128/25 dev vrlbdum\n}}\n{}",
        instance(100, &if0)
    );
    let d0 = lab.start(Kind::Vrlb, 0, &text);
    let held = || has(&vrlb_routes(&ns0), "203.0.113.128/25 dev vrlbdum");
    expect(LONG, "the static route is added", &[&d0], held);
    run(&["ip", "-n", &ns0, "link", "set", "vrlbdum", "down"]);
    expect(LONG, "the kernel drops it with its device", &[&d0], || {
        !held()
    });
    run(&["ip", "-n", &ns0, "link", "set", "vrlbdum", "up"]);
    expect(LONG, "vrlb adds it back", &[&d0], held);
    lab.stop(&d0);
    assert_eq!(vrlb_routes(&ns0), Vec::<String>::new(), "{}", log(&d0));
}
