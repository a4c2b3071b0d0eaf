//! What a `vrlb run` master puts on the segment and on its interfaces
//! (issue 6, Build 1), seen from the client's capture and `ip addr`:
//!
//! - adverts leave from `mcast_src_ip` (a secondary address), never from
//!   the interface's primary address;
//! - a VIP's `dev`, `scope` and `label` are those `virtual_ipaddress`
//!   gives;
//! - the master announces an IPv4 VIP with a gratuitous ARP and an IPv6
//!   VIP with an unsolicited neighbour advertisement from its own MAC, at
//!   the first election and again after a failover (from the new
//!   master's MAC).

use std::time::Duration;

use vrlb_tests::netns::run;
use vrlb_tests::vrrp_lab::{Kind, VrrpLab, addr_line, epoch_s, expect, frames, is, log, mac};

const LONG: Duration = Duration::from_secs(12);
const VIP4: &str = "192.0.2.240";
const VIP6: &str = "2001:db8::240";
/// A VIP on another device than the VRRP interface.
const VIP_LO: &str = "198.51.100.240";
/// A VIP with scope link: on a subnet of its own (the kernel refuses a
/// second address of a subnet with another scope than the first's).
const VIP_LINK: &str = "203.0.113.240";

/// Director `n`'s `mcast_src_ip`: a secondary address on its interface.
fn src(n: usize) -> String {
    format!("192.0.2.{}", 11 + n)
}

fn conf(iface: &str, n: usize, priority: u8) -> String {
    format!(
        "vrrp_instance VI_1 {{
  state BACKUP
  interface {iface}
  virtual_router_id 51
  priority {priority}
  advert_int 1
  mcast_src_ip {src}
  authentication {{
    auth_type PASS
    auth_pass secret
  }}
  virtual_ipaddress {{
    {VIP4}/24 dev {iface} label {iface}:vip
    {VIP_LINK}/24 dev {iface} scope link
    {VIP_LO}/32 dev lo scope host
  }}
}}
vrrp_instance VI_6 {{
  state BACKUP
  interface {iface}
  virtual_router_id 52
  priority {priority}
  advert_int 1
  version 3
  virtual_ipaddress {{
    {VIP6}/64
  }}
}}
",
        src = src(n)
    )
}

/// The VIPs on director `n` are where and as the configuration says.
fn check_vips(lab: &VrrpLab, n: usize) {
    let (ns, iface) = (&lab.ns[n], &lab.ifs[n]);
    let line = addr_line(ns, VIP4).unwrap_or_else(|| panic!("{VIP4} on director {n}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[1], iface.as_str(), "dev: {line}");
    assert!(words.contains(&format!("{VIP4}/24").as_str()), "{line}");
    assert!(line.contains(" scope global "), "scope: {line}");
    assert!(
        words.contains(&format!("{iface}:vip").as_str()),
        "label: {line}"
    );
    let line = addr_line(ns, VIP_LINK).unwrap_or_else(|| panic!("{VIP_LINK} on director {n}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[1], iface.as_str(), "dev: {line}");
    assert!(words.contains(&format!("{VIP_LINK}/24").as_str()), "{line}");
    assert!(line.contains(" scope link "), "scope: {line}");
    let line = addr_line(ns, VIP_LO).unwrap_or_else(|| panic!("{VIP_LO} on director {n}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[1], "lo", "dev: {line}");
    assert!(line.contains(" scope host "), "scope: {line}");
    let line = addr_line(ns, VIP6).unwrap_or_else(|| panic!("{VIP6} on director {n}"));
    assert!(
        line.split_whitespace().nth(1) == Some(iface.as_str()),
        "{line}"
    );
}

#[test]
fn mcast_src_ip_vip_options_garp_and_unsolicited_na_at_election_and_failover() {
    let Some(mut lab) = VrrpLab::new(&["tcpdump"]) else {
        return;
    };
    let capture = lab.capture("arp or ip proto 112 or (icmp6 and ip6[40] == 136)");
    let macs = [0, 1].map(|n| mac(&lab.ns[n], &lab.ifs[n]));
    for n in 0..2 {
        run(&[
            "ip",
            "-n",
            &lab.ns[n],
            "addr",
            "add",
            &format!("{}/24", src(n)),
            "dev",
            &lab.ifs[n],
        ]);
    }
    let since = epoch_s();
    let d0 = lab.start(Kind::Vrlb, 0, &conf(&lab.ifs[0].clone(), 0, 150));
    let d1 = lab.start(Kind::Vrlb, 1, &conf(&lab.ifs[1].clone(), 1, 100));
    expect(LONG, "director 0 master of both", &[&d0, &d1], || {
        is(&d0, "VI_1", "MASTER")
            && is(&d0, "VI_6", "MASTER")
            && is(&d1, "VI_1", "BACKUP")
            && is(&d1, "VI_6", "BACKUP")
    });
    expect(LONG, "the VIPs on director 0", &[&d0], || {
        [VIP4, VIP6, VIP_LO, VIP_LINK]
            .iter()
            .all(|v| lab.holds(0, v))
    });
    check_vips(&lab, 0);
    assert!(
        [VIP4, VIP6, VIP_LO, VIP_LINK]
            .iter()
            .all(|v| !lab.holds(1, v))
    );

    let read = || std::fs::read_to_string(&capture).unwrap_or_default();
    // A broadcast ARP request with the VIP as sender and target (tcpdump
    // shows the target MAC in between).
    let garp_req = format!("Request who-has {VIP4} ");
    let garp_tell = format!("tell {VIP4}, length");
    let garp = [garp_req.as_str(), garp_tell.as_str()];
    let na = format!("neighbor advertisement, tgt is {VIP6}");
    expect(LONG, "GARP and NA from director 0", &[&d0], || {
        let c = read();
        frames(&c, since, &macs[0], &garp) >= 1 && frames(&c, since, &macs[0], &[&na]) >= 1
    });
    // Adverts: from mcast_src_ip only.
    expect(LONG, "adverts from mcast_src_ip", &[&d0], || {
        frames(
            &read(),
            since,
            &macs[0],
            &[&format!("{} > 224.0.0.18: VRRPv2", src(0))],
        ) >= 3
    });
    let c = read();
    assert_eq!(
        frames(&c, since, &macs[0], &["192.0.2.1 > 224.0.0.18"]),
        0,
        "adverts from the primary address:\n{c}"
    );

    // Failover: director 1 announces both VIPs from its own MAC.
    let crashed = epoch_s();
    lab.crash(&d0);
    expect(LONG, "director 1 master of both", &[&d1], || {
        is(&d1, "VI_1", "MASTER") && is(&d1, "VI_6", "MASTER")
    });
    expect(
        LONG,
        "GARP and NA from director 1 after the failover",
        &[&d1],
        || {
            let c = read();
            frames(&c, crashed, &macs[1], &garp) >= 1 && frames(&c, crashed, &macs[1], &[&na]) >= 1
        },
    );
    expect(LONG, "the VIPs on director 1", &[&d1], || {
        [VIP4, VIP6, VIP_LO, VIP_LINK]
            .iter()
            .all(|v| lab.holds(1, v))
    });
    check_vips(&lab, 1);
    expect(
        LONG,
        "director 1 advertises from its mcast_src_ip",
        &[&d1],
        || {
            frames(
                &read(),
                crashed,
                &macs[1],
                &[&format!("{} > 224.0.0.18: VRRPv2", src(1))],
            ) >= 2
        },
    );
    let c = read();
    assert_eq!(
        frames(&c, crashed, &macs[1], &["192.0.2.2 > 224.0.0.18"]),
        0,
        "adverts from the primary address:\n{c}"
    );
    assert!(!log(&d1).contains("panicked"));
}
