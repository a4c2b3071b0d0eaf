//! No output is lost when one step concerns many items at once: probes
//! abandoned by a suspension or a reload, notifications of many servers
//! and services, announcements, and instances removed by a reload. The
//! node queue holds 16 outputs; each case here produces far more.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use common::world::{Answer, World, node_for, secs};
use vrlb_core::config::{NoIncludes, Options};
use vrlb_core::node::build::build;
use vrlb_core::node::{CheckerId, IfaceId, Input, InstanceId, Output};
use vrlb_core::vrrp::{self, State};

const SERVICES: u8 = 30;

fn rs(service: u8, n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2 * service + n))
}

/// One master instance holding `SERVICES` VIPs, each a service with two
/// real servers; `extra` goes in every virtual_server.
fn many(extra: &str) -> String {
    let mut t = String::from(
        "vrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 51\n  priority 100\n  advert_int 1\n  virtual_ipaddress {\n",
    );
    for s in 1..=SERVICES {
        t.push_str(&format!("    192.0.2.{s}\n"));
    }
    t.push_str("  }\n}\n");
    for s in 1..=SERVICES {
        t.push_str(&format!(
            "virtual_server 192.0.2.{s} 80 {{\n  delay_loop 6\n  warmup 0\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n{extra}"
        ));
        for n in 0..2 {
            t.push_str(&format!(
                "  real_server {} 80 {{\n    weight 1\n    TCP_CHECK {{\n      connect_timeout 10\n    }}\n  }}\n",
                rs(s, n)
            ));
        }
        t.push_str("}\n");
    }
    t
}

fn hang_all(w: &mut World) {
    for s in 1..=SERVICES {
        for n in 0..2 {
            w.set(rs(s, n), Answer::Hang);
        }
    }
}

fn cancels_since(w: &World, from: usize) -> BTreeSet<CheckerId> {
    w.log[from..]
        .iter()
        .filter_map(|(_, o)| match o {
            Output::CancelProbe { checker, .. } => Some(*checker),
            _ => None,
        })
        .collect()
}

fn count_since(w: &World, from: usize, f: impl Fn(&Output) -> bool) -> usize {
    w.log[from..].iter().filter(|(_, o)| f(o)).count()
}

#[test]
fn leaving_master_cancels_every_running_probe() {
    let mut w = World::built(&many("  ha_suspend\n"));
    hang_all(&mut w);
    w.input(Input::Start);
    // Master at 1 + 156/256 s: all 60 checks start and hang.
    w.run_until(secs(5.0));
    let running = w.node.checkers().filter(|(_, c, ..)| c.probing()).count();
    assert_eq!(running, 2 * usize::from(SERVICES));
    // A peer with priority 200 takes over.
    let text = many("").replace("priority 100", "priority 200");
    let mut peer = node_for(&text);
    build(
        &mut peer,
        &mut common::world::Env::default(),
        "peer.conf",
        &text,
        &Options::default(),
        &mut NoIncludes,
    )
    .unwrap();
    let src = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200));
    let mut buf = [0u8; 512];
    let len = peer
        .emit_advert(InstanceId(0), 200, src, vrrp::MULTICAST, &mut buf)
        .unwrap();
    let before = w.log.len();
    w.input(Input::Advert {
        iface: IfaceId(0),
        src,
        dst: vrrp::MULTICAST,
        ttl: 255,
        payload: &buf[..len],
    });
    assert_eq!(
        w.node.instance(InstanceId(0)).unwrap().state(),
        State::Backup
    );
    assert_eq!(cancels_since(&w, before).len(), running, "one per probe");
    assert_eq!(
        count_since(&w, before, |o| matches!(o, Output::CancelProbe { .. })),
        running,
        "each once"
    );
    assert!(w.node.checkers().all(|(_, c, ..)| c.stopped()));
    assert_eq!(w.node.stats().outputs_dropped, 0);
}

#[test]
fn omega_shutdown_and_anycast_notify_every_server_and_service() {
    let mut w = World::new(&many("  omega\n  anycast\n"));
    let n = usize::from(SERVICES);
    assert_eq!(
        count_since(&w, 0, |o| matches!(o, Output::Announce { up: true, .. })),
        n,
        "every service announced at start"
    );
    w.run_until(secs(5.0));
    let before = w.log.len();
    w.input(Input::Shutdown);
    let down = |o: &Output| matches!(o, Output::ServerHealth { up: false, .. });
    assert_eq!(count_since(&w, before, down), 2 * n);
    let quorum_down = |o: &Output| matches!(o, Output::Quorum { up: false, .. });
    assert_eq!(count_since(&w, before, quorum_down), n);
    let withdrawn = |o: &Output| matches!(o, Output::Announce { up: false, .. });
    assert_eq!(count_since(&w, before, withdrawn), n);
    assert_eq!(w.node.stats().outputs_dropped, 0);
}

#[test]
fn a_reload_changing_every_checker_cancels_every_running_probe() {
    let text = many("");
    let mut w = World::new(&text);
    hang_all(&mut w);
    w.run_until(secs(1.0));
    let running = w.node.checkers().filter(|(_, c, ..)| c.probing()).count();
    assert_eq!(running, 2 * usize::from(SERVICES));
    let before = w.log.len();
    w.reload(&text.replace("delay_loop 6", "delay_loop 8"));
    assert_eq!(cancels_since(&w, before).len(), running);
    assert_eq!(w.node.stats().outputs_dropped, 0);
}

#[test]
fn a_reload_that_costs_every_service_its_quorum_reports_each() {
    let text = many("  anycast\n");
    let mut w = World::new(&text);
    for s in 1..=SERVICES {
        w.set(rs(s, 0), Answer::Refuse);
    }
    w.run_until(secs(1.0));
    let n = usize::from(SERVICES);
    let down = w.node.servers().filter(|(_, s)| !s.healthy).count();
    assert_eq!(down, n, "one server of each service down, quorum 1 holds");
    let before = w.log.len();
    // quorum 2: the one live server (weight 1) is not enough.
    w.reload(&text.replace("  anycast\n", "  anycast\n  quorum 2\n"));
    let lost = |o: &Output| matches!(o, Output::Quorum { up: false, .. });
    assert_eq!(count_since(&w, before, lost), n);
    let withdrawn = |o: &Output| matches!(o, Output::Announce { up: false, .. });
    assert_eq!(count_since(&w, before, withdrawn), n);
    assert_eq!(w.node.stats().outputs_dropped, 0);
}

#[test]
fn a_reload_removing_many_master_instances_hands_out_every_goodbye() {
    const N: u16 = 12;
    let mut text = String::new();
    for i in 1..=N {
        text.push_str(&format!(
            "vrrp_instance VI_{i} {{\n  state MASTER\n  interface eth0\n  virtual_router_id {i}\n  priority 200\n  advert_int 1\n  virtual_ipaddress {{\n    203.0.113.{i}\n  }}\n}}\n"
        ));
    }
    let mut w = World::new(&text);
    w.run_until(secs(5.0));
    assert!(w.node.instances().all(|(_, i)| i.state() == State::Master));
    let before = w.log.len();
    w.reload("vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  priority 200\n  advert_int 1\n  virtual_ipaddress {\n    203.0.113.1\n  }\n}\n");
    let goodbyes: BTreeSet<InstanceId> = w.log[before..]
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Vrrp {
                instance,
                event: vrrp::Output::Advert { priority: 0 },
            } => Some(*instance),
            _ => None,
        })
        .collect();
    assert_eq!(
        goodbyes.len(),
        usize::from(N) - 1,
        "each removed master resigns"
    );
    let released = count_since(&w, before, |o| {
        matches!(
            o,
            Output::Vrrp {
                event: vrrp::Output::RemoveVips,
                ..
            }
        )
    });
    assert_eq!(released, usize::from(N) - 1);
    assert_eq!(w.node.instances().count(), 1);
    assert_eq!(w.node.stats().outputs_dropped, 0);
    // Their slots are free again: the same instances can come back.
    w.reload(&text);
    assert_eq!(w.node.instances().count(), usize::from(N));
}
