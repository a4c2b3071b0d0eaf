//! `vrrp_garp_interval` and `vrrp_gna_interval` on a running `vrlb run`,
//! seen from the client's capture: a new master's gratuitous ARPs for two
//! VIPs, three rounds of them (`garp_master_repeat 3`), go out in
//! keepalived's order (every VIP each round) at least the ARP interval
//! apart, and its unsolicited NAs, five, at least the NA interval apart
//! (their own turn); all of them, none dropped. Without the settings the
//! same burst is back to back (vrlb_announce.rs).

use std::time::Duration;

use vrlb_tests::vrrp_lab::{Kind, VrrpLab, capture_lines, epoch_s, expect, is, log, mac};

const LONG: Duration = Duration::from_secs(12);
const VIP_A: &str = "192.0.2.240";
const VIP_B: &str = "192.0.2.241";
const VIP6: &str = "2001:db8::240";
/// The intervals, in seconds.
const GARP_S: f64 = 0.2;
const GNA_S: f64 = 0.1;

fn conf(iface: &str) -> String {
    format!(
        "global_defs {{
  vrrp_garp_interval {GARP_S}
  vrrp_gna_interval {GNA_S}
}}
vrrp_instance VI_1 {{
  state BACKUP
  interface {iface}
  virtual_router_id 51
  priority 150
  advert_int 1
  garp_master_repeat 3
  garp_master_delay 0
  virtual_ipaddress {{
    {VIP_A}/24
    {VIP_B}/24
  }}
}}
vrrp_instance VI_6 {{
  state BACKUP
  interface {iface}
  virtual_router_id 52
  priority 150
  advert_int 1
  garp_master_delay 0
  virtual_ipaddress {{
    {VIP6}/64
  }}
}}
"
    )
}

/// The gaps between consecutive times, in seconds.
fn gaps(times: &[f64]) -> Vec<f64> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn garps_and_nas_of_a_burst_are_spaced_by_their_intervals() {
    let Some(mut lab) = VrrpLab::new(&["tcpdump"]) else {
        return;
    };
    let capture = lab.capture("arp or (icmp6 and ip6[40] == 136)");
    let mac0 = mac(&lab.ns[0], &lab.ifs[0]);
    let since = epoch_s();
    let d0 = lab.start(Kind::Vrlb, 0, &conf(&lab.ifs[0].clone()));
    expect(LONG, "director 0 master of both", &[&d0], || {
        is(&d0, "VI_1", "MASTER") && is(&d0, "VI_6", "MASTER")
    });
    let read = || std::fs::read_to_string(&capture).unwrap_or_default();
    let garp = |vip: &str| format!("Request who-has {vip} (ff:ff:ff:ff:ff:ff) tell {vip},");
    let na = format!("neighbor advertisement, tgt is {VIP6}");
    // 3 rounds of 2 GARPs: 5 gaps of 0.2 s; 5 NAs: 4 gaps of 0.1 s.
    expect(
        Duration::from_secs(5),
        "six GARPs and five NAs",
        &[&d0],
        || {
            let c = read();
            capture_lines(&c, since, &mac0, &["who-has"]).len() >= 6
                && capture_lines(&c, since, &mac0, &[&na]).len() >= 5
        },
    );
    let c = read();
    let arps = capture_lines(&c, since, &mac0, &["who-has"]);
    let order: Vec<&str> = arps
        .iter()
        .map(|(_, l)| {
            if l.contains(&garp(VIP_A)) {
                "A"
            } else if l.contains(&garp(VIP_B)) {
                "B"
            } else {
                "?"
            }
        })
        .collect();
    assert_eq!(order, ["A", "B", "A", "B", "A", "B"], "{c}\n{}", log(&d0));
    let times: Vec<f64> = arps.iter().map(|(t, _)| *t).collect();
    // tcpdump's clock on the receiving side: a little slack below.
    for g in gaps(&times) {
        assert!(g >= GARP_S - 0.02, "GARPs {g:.3} s apart:\n{c}");
    }
    let nas: Vec<f64> = capture_lines(&c, since, &mac0, &[&na])
        .iter()
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(nas.len(), 5, "{c}");
    for g in gaps(&nas) {
        assert!(g >= GNA_S - 0.02, "NAs {g:.3} s apart:\n{c}");
    }
    // Their own turns: the NAs did not wait for the ARPs.
    assert!(
        nas[4] < times[5],
        "the NAs finished after the GARPs: the kinds share a turn\n{c}"
    );
    lab.stop(&d0);
}
