//! `use_vmac` on a running `vrlb run` pair, seen from the client's capture
//! and `ip`: each director makes a private-mode macvlan with the virtual
//! router's MAC (`vrrp.VRID`, 00:00:5e:00:01:VRID; IPv6 00:00:5e:00:02:VRID),
//! the master's VIPs sit on it, its adverts, gratuitous ARPs and NAs come
//! from that MAC (from the base's MAC with `vmac_xmit_base`), the client
//! resolves the VIP to it and only to it, and the same MAC answers after a
//! failover. A reload that drops an instance removes its VMAC; a stop
//! removes them all and gives the base its ARP settings back. Against
//! Debian's keepalived with the same configuration, both ways round, the
//! higher priority wins, the VMAC's MAC is on the wire, and the other
//! takes over with the same MAC when it crashes.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use vrlb_tests::netns::{in_netns, in_ns};
use vrlb_tests::vrrp_lab::{Kind, VrrpLab, dev_of, epoch_s, expect, frames, is, log, mac};

const LONG: Duration = Duration::from_secs(12);
const VIP4: &str = "192.0.2.240";
const VIP6: &str = "2001:db8::240";
/// The VIP of the instance that advertises on its base interface.
const VIP_BASE: &str = "198.51.100.240";
const VMAC4: &str = "00:00:5e:00:01:33";
const VMAC6: &str = "00:00:5e:00:02:34";
const VMAC_BASE: &str = "00:00:5e:00:01:35";

fn conf(iface: &str, priority: u8, with_base_instance: bool) -> String {
    let mut text = format!(
        "vrrp_instance VI_1 {{
  state BACKUP
  interface {iface}
  virtual_router_id 51
  priority {priority}
  advert_int 1
  use_vmac
  virtual_ipaddress {{
    {VIP4}/24
  }}
}}
vrrp_instance VI_6 {{
  state BACKUP
  interface {iface}
  virtual_router_id 52
  priority {priority}
  advert_int 1
  use_vmac
  virtual_ipaddress {{
    {VIP6}/64
  }}
}}
"
    );
    if with_base_instance {
        text.push_str(&format!(
            "vrrp_instance VI_2 {{
  state BACKUP
  interface {iface}
  virtual_router_id 53
  priority {priority}
  advert_int 1
  use_vmac vip53
  vmac_xmit_base
  virtual_ipaddress {{
    {VIP_BASE}/24
  }}
}}
"
        ));
    }
    text
}

/// `ip -d -o link show dev IFACE` in `ns` (empty if there is none).
fn link(ns: &str, iface: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-d", "-o", "link", "show", "dev", iface])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sysctl(ns: &str, key: &str) -> String {
    in_ns(ns, &["cat", &format!("/proc/sys/net/ipv4/conf/{key}")])
        .trim()
        .to_string()
}

/// Director `n` has the three VMACs as keepalived makes them.
fn check_vmacs(lab: &VrrpLab, n: usize) {
    let ns = &lab.ns[n];
    for (name, want) in [("vrrp.51", VMAC4), ("vrrp.52", VMAC6), ("vip53", VMAC_BASE)] {
        let l = link(ns, name);
        assert!(
            l.contains(&format!("{name}@{}", lab.ifs[n])),
            "director {n}: {name} on its base: {l}"
        );
        assert!(
            l.contains(&format!("link/ether {want} ")),
            "director {n}: {name}'s MAC: {l}"
        );
        assert!(
            l.contains("macvlan mode private"),
            "director {n}: {name} is a private macvlan: {l}"
        );
    }
    let base = &lab.ifs[n];
    assert_eq!(sysctl(ns, &format!("{base}/arp_ignore")), "1");
    assert_eq!(sysctl(ns, &format!("{base}/arp_filter")), "1");
    assert_eq!(sysctl(ns, &format!("{base}/arp_announce")), "2");
    assert_eq!(sysctl(ns, "vrrp.51/arp_ignore"), "1");
    assert_eq!(sysctl(ns, "vrrp.51/rp_filter"), "0");
}

/// The client resolves `VIP4` (a connection attempt to port 9 makes it ask).
fn client_resolves(lab: &VrrpLab) -> Option<String> {
    let target: SocketAddr = format!("{VIP4}:9").parse().unwrap();
    let _ = in_netns(&lab.client, || {
        TcpStream::connect_timeout(&target, Duration::from_millis(500))
    });
    let text = in_ns(&lab.client, &["ip", "neigh", "show", VIP4]);
    let mut w = text.split_whitespace();
    w.position(|x| x == "lladdr")?;
    w.next().map(str::to_string)
}

#[test]
fn use_vmac_puts_the_vips_and_adverts_on_the_virtual_mac_and_cleans_up() {
    let Some(mut lab) = VrrpLab::new(&["tcpdump"]) else {
        return;
    };
    let capture = lab.capture("arp or ip proto 112 or ip6 proto 112 or (icmp6 and ip6[40] == 136)");
    let bases = [0, 1].map(|n| mac(&lab.ns[n], &lab.ifs[n]));
    let since = epoch_s();
    let d0 = lab.start(Kind::Vrlb, 0, &conf(&lab.ifs[0].clone(), 150, true));
    let d1 = lab.start(Kind::Vrlb, 1, &conf(&lab.ifs[1].clone(), 100, true));
    expect(LONG, "director 0 master of all three", &[&d0, &d1], || {
        ["VI_1", "VI_6", "VI_2"]
            .iter()
            .all(|i| is(&d0, i, "MASTER") && is(&d1, i, "BACKUP"))
    });
    check_vmacs(&lab, 0);
    check_vmacs(&lab, 1);
    expect(LONG, "the VIPs on director 0's VMACs", &[&d0], || {
        dev_of(&lab.ns[0], VIP4).as_deref() == Some("vrrp.51")
            && dev_of(&lab.ns[0], VIP6).as_deref() == Some("vrrp.52")
            && dev_of(&lab.ns[0], VIP_BASE).as_deref() == Some("vip53")
    });
    for vip in [VIP4, VIP6, VIP_BASE] {
        assert!(!lab.holds(1, vip), "director 1 holds {vip}");
    }

    let read = || std::fs::read_to_string(&capture).unwrap_or_default();
    let garp_req = format!("Request who-has {VIP4} ");
    let garp_tell = format!("tell {VIP4}, length");
    let garp = [garp_req.as_str(), garp_tell.as_str()];
    let na = format!("neighbor advertisement, tgt is {VIP6}");
    expect(LONG, "adverts, GARP and NA from the VMACs", &[&d0], || {
        let c = read();
        frames(
            &c,
            since,
            VMAC4,
            &["192.0.2.1 > 224.0.0.18: VRRPv2", "vrid 51"],
        ) >= 2
            && frames(&c, since, VMAC6, &["> ff02::12: VRRPv3", "vrid 52"]) >= 2
            && frames(
                &c,
                since,
                &bases[0],
                &["192.0.2.1 > 224.0.0.18: VRRPv2", "vrid 53"],
            ) >= 2
            && frames(&c, since, VMAC4, &garp) >= 1
            && frames(&c, since, VMAC6, &[&na]) >= 1
    });
    let c = read();
    for vrid in ["vrid 51", "vrid 52"] {
        assert_eq!(
            frames(&c, since, &bases[0], &[vrid]),
            0,
            "{vrid} adverts from the base MAC:\n{c}"
        );
    }
    assert_eq!(
        client_resolves(&lab).as_deref(),
        Some(VMAC4),
        "the client's ARP entry for {VIP4}"
    );
    let reply = format!("Reply {VIP4} is-at");
    expect(LONG, "the VMAC's ARP reply in the capture", &[&d0], || {
        frames(&read(), since, VMAC4, &[&reply]) >= 1
    });
    let c = read();
    for base in &bases {
        assert_eq!(
            frames(&c, since, base, &[&reply]),
            0,
            "a base interface answered ARP for {VIP4}:\n{c}"
        );
    }

    // A VMAC deleted by hand is made again.
    for name in ["vrrp.51", "vip53"] {
        vrlb_tests::netns::run(&["ip", "-n", &lab.ns[1], "link", "del", name]);
        expect(LONG, &format!("{name} made again"), &[&d1], || {
            link(&lab.ns[1], name).contains("macvlan mode private")
        });
    }
    expect(LONG, "director 1 back to BACKUP", &[&d1], || {
        is(&d1, "VI_1", "BACKUP")
    });

    // A graceful stop: director 1 takes over with the same MAC, and
    // director 0's VMACs and ARP settings are gone.
    let stopped = epoch_s();
    lab.stop(&d0);
    expect(LONG, "director 1 master of all three", &[&d1], || {
        ["VI_1", "VI_6", "VI_2"]
            .iter()
            .all(|i| is(&d1, i, "MASTER"))
    });
    for name in ["vrrp.51", "vrrp.52", "vip53"] {
        assert!(
            link(&lab.ns[0], name).is_empty(),
            "director 0 still has {name}:\n{}",
            log(&d0)
        );
    }
    let base0 = lab.ifs[0].clone();
    assert_eq!(sysctl(&lab.ns[0], &format!("{base0}/arp_ignore")), "0");
    assert_eq!(sysctl(&lab.ns[0], &format!("{base0}/arp_filter")), "0");
    assert_eq!(sysctl(&lab.ns[0], &format!("{base0}/arp_announce")), "0");
    expect(
        LONG,
        "director 1 adverts and GARP from the VMAC",
        &[&d1],
        || {
            let c = read();
            frames(
                &c,
                stopped,
                VMAC4,
                &["192.0.2.2 > 224.0.0.18: VRRPv2", "vrid 51"],
            ) >= 2
                && frames(&c, stopped, VMAC4, &garp) >= 1
        },
    );
    assert_eq!(dev_of(&lab.ns[1], VIP4).as_deref(), Some("vrrp.51"));

    // A reload without VI_2 removes its VMAC and keeps the others.
    std::fs::write(&d1.conf, conf(&lab.ifs[1].clone(), 100, false)).unwrap();
    d1.hup();
    expect(LONG, "vip53 removed by the reload", &[&d1], || {
        link(&lab.ns[1], "vip53").is_empty()
    });
    assert!(!link(&lab.ns[1], "vrrp.51").is_empty(), "{}", log(&d1));
    assert!(is(&d1, "VI_1", "MASTER"), "{}", log(&d1));

    lab.stop(&d1);
    for name in ["vrrp.51", "vrrp.52"] {
        assert!(link(&lab.ns[1], name).is_empty(), "{}", log(&d1));
    }
    let base1 = lab.ifs[1].clone();
    assert_eq!(sysctl(&lab.ns[1], &format!("{base1}/arp_ignore")), "0");
}

/// vrlb and keepalived with `use_vmac` on one segment: `high` (director 0)
/// wins, its VIPs on its VMACs; crashed, the other takes over, the same
/// MACs on the wire.
fn against_keepalived(high: Kind) {
    let Some(mut lab) = VrrpLab::new(&["keepalived", "tcpdump"]) else {
        return;
    };
    let capture = lab.capture("arp or ip proto 112 or ip6 proto 112");
    let low = if high == Kind::Vrlb {
        Kind::Keepalived
    } else {
        Kind::Vrlb
    };
    let l = lab.start(low, 1, &conf(&lab.ifs[1].clone(), 100, false));
    let h = lab.start(high, 0, &conf(&lab.ifs[0].clone(), 150, false));
    expect(
        LONG,
        "the higher priority master of both",
        &[&h, &l],
        || {
            ["VI_1", "VI_6"]
                .iter()
                .all(|i| is(&h, i, "MASTER") && is(&l, i, "BACKUP"))
        },
    );
    expect(LONG, "the VIPs on director 0's VMACs", &[&h], || {
        dev_of(&lab.ns[0], VIP4).as_deref() == Some("vrrp.51")
            && dev_of(&lab.ns[0], VIP6).as_deref() == Some("vrrp.52")
    });
    let read = || std::fs::read_to_string(&capture).unwrap_or_default();
    let since = epoch_s();
    expect(LONG, "director 0's adverts from the VMACs", &[&h], || {
        let c = read();
        frames(&c, since, VMAC4, &["192.0.2.1 > 224.0.0.18", "vrid 51"]) >= 2
            && frames(&c, since, VMAC6, &["> ff02::12", "vrid 52"]) >= 2
    });
    let base0 = mac(&lab.ns[0], &lab.ifs[0]);
    let resolved = client_resolves(&lab);
    let reply = format!("Reply {VIP4} is-at {VMAC4}");
    expect(LONG, "the VMAC answers the client's ARP", &[&h], || {
        frames(&read(), since, VMAC4, &[&reply]) >= 1
    });
    let from_vip = format!("tell {VIP4}, length");
    if high == Kind::Vrlb {
        assert_eq!(resolved.as_deref(), Some(VMAC4));
        assert_eq!(frames(&read(), since, &base0, &[&from_vip]), 0);
    } else {
        // keepalived leaves the base's arp_announce alone: the reset it
        // sends from the VIP leaves by the base, whose ARP request for
        // the client carries the VIP with the base's MAC, and the client
        // takes that (docs/keepalived.md, use_vmac).
        expect(LONG, "keepalived's base asks with the VIP", &[&h], || {
            frames(&read(), since, &base0, &[&from_vip]) >= 1
        });
        assert_eq!(resolved.as_deref(), Some(base0.as_str()));
    }

    lab.crash(&h);
    let crashed = epoch_s();
    expect(LONG, "director 1 master of both", &[&l], || {
        ["VI_1", "VI_6"].iter().all(|i| is(&l, i, "MASTER"))
    });
    expect(
        LONG,
        "director 1's adverts from the same VMACs",
        &[&l],
        || {
            let c = read();
            frames(&c, crashed, VMAC4, &["192.0.2.2 > 224.0.0.18", "vrid 51"]) >= 2
                && frames(&c, crashed, VMAC6, &["> ff02::12", "vrid 52"]) >= 2
        },
    );
    assert_eq!(dev_of(&lab.ns[1], VIP4).as_deref(), Some("vrrp.51"));
    lab.stop(&l);
}

#[test]
fn use_vmac_against_keepalived_vrlb_master() {
    against_keepalived(Kind::Vrlb);
}

#[test]
fn use_vmac_against_keepalived_keepalived_master() {
    against_keepalived(Kind::Keepalived);
}
