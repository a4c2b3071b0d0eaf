//! The node's load-balancing side built from the seed's keepalived.conf:
//! checks decide which real servers get new flows, with the seed's exact
//! timing; quorum switches the sorry server; `ha_suspend` follows VRRP;
//! `inhibit_on_failure`, `connect_ip`, several checkers per server,
//! `alpha`, `omega` and `misc_dynamic` behave as keepalived's; reloads do
//! not disturb what did not change.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::world::{Answer, RS1, RS2, SEED, SORRY, World, dur, ms, node_for, secs};
use vrlb_core::config::{NoIncludes, Options};
use vrlb_core::lb::{DropReason, ForwardMethod, TcpFlags, Verdict};
use vrlb_core::node::build::build;
use vrlb_core::node::{CheckerId, IfaceId, Input, InstanceId, Output};
use vrlb_core::time::Instant;
use vrlb_core::vrrp::{self, State};

/// The seed with extra lines in its virtual_server.
fn seed_with(lines: &str) -> String {
    SEED.replace("    protocol TCP\n", &format!("    protocol TCP\n{lines}"))
}

#[test]
fn seed_server_failure_is_seen_at_the_computed_moment_and_recovers_after_one_probe() {
    // keepalived's default warmup: the first check comes within delay_loop.
    let mut w = World::new(SEED);
    assert_eq!(w.node.servers().count(), 2);
    assert_eq!(w.node.checkers().count(), 2);
    let t0 = w.next_probe(RS1);
    assert!(t0 < secs(6.0), "first check within delay_loop: {t0:?}");
    // Checks at t0, +6, +12 pass. RS1 refuses from t0 + 13: the check at
    // +18 fails, retries at +21, +24, +27 fail: down at t0 + 27.
    w.run_until(t0 + dur(13.0));
    w.set(RS1, Answer::Refuse);
    w.run_until(t0 + dur(40.0));
    let down = (t0 + dur(27.0)).as_millis();
    assert_eq!(w.health(), [(down, RS1, false)]);
    assert_eq!(w.destinations(1..50), [RS2], "no new flow reaches it");
    // It answers again from t0 + 41. TCP_CHECK keeps retrying while down
    // (keepalived check_tcp.c): +33, +36, +39 failed, so the retry at +42
    // is the one good probe that brings it back.
    w.run_until(t0 + dur(41.0));
    w.set(RS1, Answer::Ok);
    w.run_until(t0 + dur(60.0));
    let up = (t0 + dur(42.0)).as_millis();
    assert_eq!(w.health(), [(down, RS1, false), (up, RS1, true)]);
    // wlc sends new clients to it first: it has no connections.
    assert!(w.destinations(50..100).contains(&RS1));
}

#[test]
fn a_hanging_port_is_down_after_timeouts_and_retries() {
    let mut w = World::new(&seed_with("    warmup 0\n"));
    // Checks at 0, 6, 12; RS2 stops answering at 13: the probe at 18 times
    // out at 28, retries at 31 (-> 41), 44 (-> 54), 57 (-> 67): down at 67.
    w.run_until(secs(13.0));
    w.set(RS2, Answer::Hang);
    w.run_until(secs(80.0));
    assert_eq!(w.health(), [(67_000, RS2, false)]);
    let (c, _) = w.node.checker(w.checker_of(RS2)).unwrap();
    assert!(67 - 12 <= c.down_bound().as_secs());
    let cancels = w.outputs(|o| match o {
        Output::CancelProbe { checker, .. } => Some(*checker),
        _ => None,
    });
    let at: Vec<u64> = cancels.iter().map(|c| c.0).collect();
    assert_eq!(at[..4], [28_000, 41_000, 54_000, 67_000], "each timeout");
}

#[test]
fn inhibit_on_failure_keeps_the_server_listed_at_weight_zero() {
    let text = seed_with("    warmup 0\n    inhibit_on_failure\n");
    let mut w = World::new(&text);
    w.run_until(secs(1.0));
    // An established connection to each server.
    let c1 = (1..60).find(|c| w.new_flow(*c, 1000) == Some(RS1)).unwrap();
    w.set(RS1, Answer::Refuse);
    // The check at 6 fails, retries at 9, 12, 15: down at 15.
    w.run_until(secs(16.0));
    assert_eq!(w.health(), [(15_000, RS1, false)]);
    assert_eq!(w.listed(), [(RS1, 0), (RS2, 3)], "listed at weight 0");
    // No new flows from new clients (a client with a persistence template
    // still goes to it: IPVS's expire_quiescent_template is off)...
    assert_eq!(w.destinations(100..150), [RS2]);
    // ...but its established connection keeps going to it.
    match w.packet(c1, 1000, TcpFlags::ACK) {
        Verdict::Forward { addr, .. } => assert_eq!(addr, RS1),
        v => panic!("{v:?}"),
    }
    // Back (the retry at 24 after 21 failed): its weight returns.
    w.run_until(secs(22.0));
    w.set(RS1, Answer::Ok);
    w.run_until(secs(30.0));
    assert_eq!(w.health(), [(15_000, RS1, false), (24_000, RS1, true)]);
    assert_eq!(w.listed(), [(RS1, 3), (RS2, 3)]);
    assert!(w.destinations(150..200).contains(&RS1));

    // Without inhibit_on_failure the server leaves the list, and packets of
    // its connections are dropped (IPVS with expire_nodest_conn off).
    let mut w = World::new(&seed_with("    warmup 0\n"));
    w.run_until(secs(1.0));
    let c1 = (1..60).find(|c| w.new_flow(*c, 1000) == Some(RS1)).unwrap();
    w.set(RS1, Answer::Refuse);
    w.run_until(secs(16.0));
    assert_eq!(w.listed(), [(RS2, 3)]);
    assert_eq!(
        w.packet(c1, 1000, TcpFlags::ACK),
        Verdict::Drop(DropReason::ServerGone)
    );
}

/// RS1 has two checkers: a TCP_CHECK of another address (connect_ip,
/// connect_port) and a MISC_CHECK; RS2 one TCP_CHECK.
const TWO_CHECKERS: &str = "
virtual_server 192.168.2.240 80 {
    delay_loop 6
    warmup 0
    lb_algo wlc
    lb_kind DR
    protocol TCP
    real_server 192.168.2.212 80 {
        weight 3
        TCP_CHECK {
            connect_ip 192.0.2.50
            connect_port 8080
            connect_timeout 2
            retry 0
        }
        MISC_CHECK {
            misc_path \"/usr/local/bin/check-rs1\"
            misc_timeout 2
        }
    }
    real_server 192.168.2.213 80 {
        weight 3
        TCP_CHECK {
            retry 0
        }
    }
}
";

#[test]
fn connect_ip_is_probed_and_a_server_is_down_while_any_checker_is() {
    let elsewhere = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 50));
    let mut w = World::new(TWO_CHECKERS);
    assert!(w.env.warnings.is_empty(), "{:?}", w.env.warnings);
    // The probes go where connect_ip and connect_port say.
    let targets: Vec<(IpAddr, u16)> = w
        .node
        .checkers()
        .map(|(_, c, _, _)| c.config().target)
        .collect();
    assert_eq!(targets, [(elsewhere, 8080), (RS1, 80), (RS2, 80)]);
    w.run_until(secs(1.0));
    let probed: Vec<CheckerId> = w
        .outputs(|o| match o {
            Output::Probe { checker, .. } => Some(*checker),
            _ => None,
        })
        .into_iter()
        .map(|p| p.1)
        .collect();
    let mut probed = probed;
    probed.sort();
    assert_eq!(probed, [CheckerId(0), CheckerId(1), CheckerId(2)]);
    // RS1's own address answering does not help while connect_ip fails:
    // the TCP check at 6 fails (retry 0), RS1 is down though its MISC
    // check passes.
    w.set(elsewhere, Answer::Refuse);
    w.run_until(secs(7.0));
    assert_eq!(w.health(), [(6_000, RS1, false)]);
    let misc = w.node.checker(CheckerId(1)).unwrap().0;
    assert!(misc.is_up(), "the other checker is up");
    // Both up again: RS1 is up.
    w.set(elsewhere, Answer::Ok);
    w.run_until(secs(13.0));
    assert_eq!(w.health()[1..], [(12_000, RS1, true)]);
    // The script fails (exit 1, MISC_CHECK's retry default 0): down again,
    // though the TCP check passes.
    w.set(RS1, Answer::Exit(1));
    w.run_until(secs(19.0));
    assert_eq!(w.health()[2..], [(18_000, RS1, false)]);
    assert!(w.node.checker(CheckerId(0)).unwrap().0.is_up());
    assert_eq!(w.listed(), [(RS2, 3)]);
}

#[test]
fn misc_dynamic_exit_status_sets_the_weight() {
    let text = TWO_CHECKERS.replace(
        "misc_timeout 2\n",
        "misc_timeout 2\n            misc_dynamic\n",
    );
    let mut w = World::new(&text);
    w.run_until(secs(1.0));
    assert_eq!(w.listed(), [(RS1, 3), (RS2, 3)]);
    // Exit 7: up with weight 5; 0: the configured weight back.
    w.set(RS1, Answer::Exit(7));
    w.run_until(secs(7.0));
    assert_eq!(w.listed(), [(RS1, 5), (RS2, 3)]);
    assert_eq!(w.health(), [], "a weight is no health change");
    w.set(RS1, Answer::Exit(0));
    w.run_until(secs(13.0));
    assert_eq!(w.listed(), [(RS1, 3), (RS2, 3)]);
}

/// The seed with a quorum of 4 (hysteresis 1) and a sorry server.
fn quorum_text(inhibit: bool) -> String {
    let mut lines = String::from(
        "    warmup 0\n    quorum 4\n    hysteresis 1\n    sorry_server 192.168.2.250 80\n",
    );
    if inhibit {
        lines.push_str("    sorry_server_inhibit\n");
    }
    seed_with(&lines)
}

#[test]
fn the_sorry_server_forwards_by_its_own_method_else_the_virtual_servers() {
    // alpha: both servers start down, so new flows go to the sorry server
    // until the first checks pass.
    let base = "    alpha\n    sorry_server 192.168.2.250 80\n";
    for (extra, want) in [
        ("", ForwardMethod::Dr),
        ("    sorry_server_lvs_method NAT\n", ForwardMethod::Nat),
        ("    sorry_server_lvs_method tun\n", ForwardMethod::Tun),
    ] {
        let mut w = World::new(&seed_with(&format!("{base}{extra}")));
        match w.packet(1, 40_000, TcpFlags::SYN) {
            Verdict::Forward { addr, method, .. } => {
                assert_eq!((addr, method), (SORRY, want), "{extra:?}")
            }
            other => panic!("{extra:?}: expected the sorry server, got {other:?}"),
        }
    }
}

#[test]
fn quorum_and_the_sorry_server_switch_at_the_computed_moments() {
    for inhibit in [false, true] {
        let mut w = World::new(&quorum_text(inhibit));
        // 3 + 3 >= 4 + 1: it starts with quorum; the sorry server is listed
        // (at weight 0) only with sorry_server_inhibit.
        let sorry_listed = |w: &World| {
            w.node
                .service_state(w.service())
                .unwrap()
                .sorry_listed()
                .is_some()
        };
        assert_eq!(sorry_listed(&w), inhibit);
        // RS1 refuses from 1 s: check at 6 fails, retries 9, 12, 15: down.
        // Live weight 3 >= 4 - 1: quorum holds.
        w.run_until(secs(1.0));
        w.set(RS1, Answer::Refuse);
        w.run_until(secs(16.0));
        assert_eq!(w.health(), [(15_000, RS1, false)]);
        assert_eq!(w.quorum(), [], "3 >= 4 - 1");
        // RS2 refuses from 16 s: 18 fails, 21, 24, 27: down, quorum lost at
        // 27 and new flows go to the sorry server.
        w.set(RS2, Answer::Refuse);
        w.run_until(secs(27.5));
        assert_eq!(w.quorum(), [(27_000, false)]);
        assert_eq!(w.destinations(1..40), [SORRY]);
        let on_sorry = 200;
        assert_eq!(w.new_flow(on_sorry, 6000), Some(SORRY));
        // RS1 answers from 28: down since 15, its probes at 21, 24, 27
        // failed and the one at 30 passes. 3 < 4 + 1: still no quorum.
        w.set(RS1, Answer::Ok);
        w.run_until(secs(31.0));
        assert_eq!(w.health()[2..], [(30_000, RS1, true)]);
        assert_eq!(w.quorum(), [(27_000, false)]);
        assert_eq!(w.destinations(40..80), [SORRY]);
        // RS2 answers from 34: 33 failed, 36 passes: 6 >= 5, quorum back.
        w.run_until(secs(34.0));
        w.set(RS2, Answer::Ok);
        w.run_until(secs(37.0));
        assert_eq!(w.quorum(), [(27_000, false), (36_000, true)]);
        assert_eq!(w.destinations(80..120), [RS1, RS2]);
        // The connection made to the sorry server: kept with
        // sorry_server_inhibit (weight 0), dropped when it is removed.
        let verdict = w.packet(on_sorry, 6000, TcpFlags::ACK);
        if inhibit {
            assert!(
                matches!(verdict, Verdict::Forward { addr, .. } if addr == SORRY),
                "{verdict:?}"
            );
        } else {
            assert_eq!(verdict, Verdict::Drop(DropReason::ServerGone));
        }
        assert_eq!(sorry_listed(&w), inhibit);
        assert_eq!(w.node.stats().outputs_dropped, 0);
    }
}

#[test]
fn starting_without_quorum_runs_quorum_down_only_with_a_sorry_server() {
    // alpha: both servers start down, so the service starts without quorum.
    for sorry in [true, false] {
        let extra = if sorry {
            "    alpha\n    warmup 0\n    sorry_server 192.168.2.250 80\n"
        } else {
            "    alpha\n    warmup 0\n"
        };
        let mut w = World::new(&seed_with(extra));
        let expected: &[(u64, bool)] = if sorry { &[(0, false)] } else { &[] };
        assert_eq!(w.quorum()[..], *expected);
        // The first checks pass: both up, quorum gained (quorum_up runs).
        w.run_until(secs(1.0));
        let mut health = w.health();
        health.sort();
        assert_eq!(health, [(0, RS1, true), (0, RS2, true)]);
        let q = w.quorum();
        assert_eq!(q.last(), Some(&(0, true)));
    }
}

#[test]
fn alpha_first_failure_runs_notify_down_and_omega_runs_the_down_notifiers_at_shutdown() {
    let mut w = World::built(&seed_with("    alpha\n    omega\n    warmup 0\n"));
    w.set(RS2, Answer::Refuse);
    w.input(Input::Start);
    w.run_until(secs(1.0));
    // RS1 comes up; RS2's first check fails: notify_down without a change.
    let mut health = w.health();
    health.sort();
    assert_eq!(health, [(0, RS1, true), (0, RS2, false)]);
    let rs2 = w.node.server_by_key(key_of(&w, RS2)).unwrap();
    assert!(!w.node.server(rs2).unwrap().healthy);
    let before = w.log.len();
    w.input(Input::Shutdown);
    let after: Vec<Output> = w.log[before..].iter().map(|x| x.1).collect();
    // omega: each live server's notify_down, then quorum_down.
    let rs1 = w.node.server_by_key(key_of(&w, RS1)).unwrap();
    let service = w.service();
    assert!(after.contains(&Output::ServerHealth {
        server: rs1,
        up: false
    }));
    assert_eq!(
        after
            .iter()
            .filter(|o| matches!(o, Output::ServerHealth { .. }))
            .count(),
        1,
        "only the live server: {after:?}"
    );
    assert!(after.contains(&Output::Quorum { service, up: false }));

    // Without omega shutdown runs no notifier.
    let mut w = World::new(&seed_with("    warmup 0\n"));
    w.run_until(secs(1.0));
    let before = w.log.len();
    w.input(Input::Shutdown);
    assert!(
        !w.log[before..]
            .iter()
            .any(|(_, o)| matches!(o, Output::ServerHealth { .. } | Output::Quorum { .. }))
    );
}

fn key_of(w: &World, addr: IpAddr) -> u64 {
    w.node
        .servers()
        .find(|(_, s)| s.config.addr == addr)
        .unwrap()
        .1
        .key
}

/// An advert from a peer at `priority` (the seed's VRID 51, PASS 1111).
fn peer_advert(priority: u8) -> Vec<u8> {
    let text = SEED.replace("priority 100", &format!("priority {priority}"));
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
    let mut buf = [0u8; 64];
    let len = peer
        .emit_advert(InstanceId(0), priority, PEER, vrrp::MULTICAST, &mut buf)
        .unwrap();
    buf[..len].to_vec()
}

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 2, 211));

fn probes_between(w: &World, from: Instant, to: Instant) -> Vec<Instant> {
    w.log
        .iter()
        .filter(|(t, o)| *t > from && *t < to && matches!(o, Output::Probe { .. }))
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn ha_suspend_checks_only_while_master_of_the_vip() {
    let mut w = World::new(&seed_with("    warmup 0\n    ha_suspend\n"));
    let id = InstanceId(0);
    // state MASTER: backup for one interval (5 s) plus skew (156/256 s).
    let master_at = secs(5.609375);
    w.run_until(secs(5.6));
    assert!(
        probes_between(&w, Instant::ZERO, secs(5.6)).is_empty(),
        "suspended while backup"
    );
    w.run_until(secs(12.0));
    let first: Vec<Instant> = w
        .log
        .iter()
        .filter(|(_, o)| matches!(o, Output::Probe { .. }))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(
        first,
        [
            master_at,
            master_at,
            master_at + dur(6.0),
            master_at + dur(6.0)
        ]
    );
    // RS2 stops answering: its probe at 17.609375 is still running at 20,
    // when a peer with priority 200 takes over. The node leaves MASTER at
    // once and abandons the probe then.
    w.set(RS2, Answer::Hang);
    w.run_until(secs(20.0));
    let advert = peer_advert(200);
    let feed = |w: &mut World, payload: &[u8]| {
        w.input(Input::Advert {
            iface: IfaceId(0),
            src: PEER,
            dst: vrrp::MULTICAST,
            ttl: 255,
            payload,
        })
    };
    let before = w.log.len();
    feed(&mut w, &advert);
    assert_eq!(w.node.instance(id).unwrap().state(), State::Backup);
    let rs2 = w.checker_of(RS2);
    assert!(
        w.log[before..].iter().any(|(t, o)| *t == secs(20.0)
            && matches!(o, Output::CancelProbe { checker, .. } if *checker == rs2)),
        "{:?}",
        &w.log[before..]
    );
    // The peer keeps advertising until 40 s: no probe meanwhile.
    for t in [25.0, 30.0, 35.0, 40.0] {
        w.run_until(secs(t));
        feed(&mut w, &advert);
    }
    // It falls silent: Master_Down_Interval (3 x 5 + skew) after its last
    // advert this node is master again, and the checks resume at once.
    // VRRPv2: Skew_Time = (256 - 100) / 256 s (RFC 3768 6.1).
    let mdi = w.node.instance(id).unwrap().master_down_interval();
    assert_eq!(mdi, dur(15.609375));
    let back = secs(40.0) + mdi;
    w.run_until(secs(70.0));
    assert!(
        probes_between(&w, secs(20.0), back).is_empty(),
        "suspended while backup"
    );
    let resumed: Vec<Instant> = probes_between(&w, secs(20.0), secs(70.0));
    assert_eq!(resumed[..2], [back, back]);
    assert_eq!(w.node.instance(id).unwrap().state(), State::Master);
}

#[test]
fn ha_suspend_on_a_fwmark_service_is_cleared_as_keepalived_does() {
    let text = SEED
        .replace(
            "virtual_server 192.168.2.240 80 {",
            "virtual_server fwmark 7 {",
        )
        .replace("    protocol TCP\n", "    warmup 0\n    ha_suspend\n");
    let line = 1 + text
        .lines()
        .position(|l| l.starts_with("virtual_server"))
        .unwrap();
    let mut w = World::new(&text);
    let at = format!(":{line}:1: warning: 'ha_suspend'");
    assert!(
        w.env
            .warnings
            .iter()
            .any(|d| d.contains(&at) && d.contains("fwmark")),
        "{:?}",
        w.env.warnings
    );
    // Checks run from the start, while this node is still backup.
    w.run_until(secs(1.0));
    let probes = w.outputs(|o| matches!(o, Output::Probe { .. }).then_some(()));
    assert_eq!(probes.len(), 2);
    assert_eq!(probes[0].0, 0);
    assert!(!w.node.service_state(w.service()).unwrap().ha_suspend);
}

#[test]
fn reload_with_a_new_weight_changes_nothing_else() {
    let mut w = World::new(SEED);
    w.run_until(secs(20.0));
    // An established connection to some server.
    let first = w.new_flow(1, 5555).unwrap();
    let probes_before: Vec<(CheckerId, Instant)> = w
        .node
        .checkers()
        .map(|(id, c, _, _)| (id, c.deadline()))
        .collect();
    let instance_state = w.node.instances().next().unwrap().1.state();
    let before = w.log.len();
    w.reload(&SEED.replacen("weight 3", "weight 5", 1));
    assert_eq!(w.log.len(), before, "a weight change emits nothing");
    assert_eq!(w.node.instances().next().unwrap().1.state(), instance_state);
    let probes_after: Vec<(CheckerId, Instant)> = w
        .node
        .checkers()
        .map(|(id, c, _, _)| (id, c.deadline()))
        .collect();
    assert_eq!(probes_before, probes_after, "no checker restarted");
    let weights: Vec<u32> = w.node.servers().map(|(_, s)| s.config.weight).collect();
    assert_eq!(weights, [5, 3]);
    // The established connection still goes where it went.
    match w.packet(1, 5555, TcpFlags::ACK) {
        Verdict::Forward { addr, .. } => assert_eq!(addr, first),
        v => panic!("{v:?}"),
    }
}

#[test]
fn reload_changing_a_down_servers_checker_does_not_flap_it() {
    let text = seed_with("    warmup 0\n");
    let mut w = World::new(&text);
    w.set(RS1, Answer::Refuse);
    // The check at 0 fails: before a first success one failure is enough.
    w.run_until(secs(10.0));
    assert_eq!(w.health(), [(0, RS1, false)]);
    let before = w.log.len();
    // delay_loop 6 -> 10 changes both checkers' settings.
    let changed = text.replace("delay_loop 6", "delay_loop 10");
    w.reload(&changed);
    let rs1 = w.checker_of(RS1);
    let (c, _) = w.node.checker(rs1).unwrap();
    assert_eq!(c.config().delay_loop, dur(10.0));
    assert!(!c.is_up(), "the verdict is kept");
    assert_eq!(
        c.deadline(),
        secs(10.0),
        "its timing starts over (warmup 0)"
    );
    assert_eq!(w.listed(), [(RS2, 3)], "still unscheduled");
    assert_eq!(w.destinations(1..40), [RS2]);
    // Through the reload and the probes after it: no health change at all.
    w.run_until(secs(30.0));
    assert!(
        !w.log[before..]
            .iter()
            .any(|(_, o)| matches!(o, Output::ServerHealth { .. } | Output::Quorum { .. })),
        "{:?}",
        &w.log[before..]
    );
    assert_eq!(w.destinations(40..80), [RS2]);
    // RS1 comes back by one good probe on the new timing: after the reload
    // its probe at 10 failed without retries (it was down), 20, 23, 26, 29
    // failed (retries while down) and 39 passes.
    w.set(RS1, Answer::Ok);
    w.run_until(secs(40.0));
    assert_eq!(w.health()[1..], [(ms(39.0), RS1, true)]);
}

#[test]
fn anycast_service_is_announced_only_with_quorum() {
    let text = seed_with("    warmup 0\n    anycast\n");
    let mut w = World::new(&text);
    let announces = |w: &World| -> Vec<(u64, bool)> {
        w.outputs(|o| match o {
            Output::Announce { up, .. } => Some(*up),
            _ => None,
        })
    };
    assert_eq!(announces(&w), [(0, true)], "announced at start");
    w.run_until(secs(10.0));
    w.set(RS1, Answer::Refuse);
    w.set(RS2, Answer::Refuse);
    w.run_until(secs(60.0));
    assert_eq!(
        announces(&w).last(),
        Some(&(21_000, false)),
        "withdrawn when the last server goes (check at 12 + 3 x 3 s)"
    );
    w.set(RS1, Answer::Ok);
    w.set(RS2, Answer::Ok);
    w.run_until(secs(80.0));
    assert!(
        announces(&w).last().is_some_and(|a| a.1),
        "announced again with quorum"
    );
    w.input(Input::Shutdown);
    assert_eq!(
        announces(&w).last().map(|a| a.1),
        Some(false),
        "withdrawn at shutdown"
    );
}

/// The earliest deadline of any of the node's machines.
fn earliest_deadline(w: &World) -> Option<Instant> {
    let instances = w.node.instances().filter_map(|(_, i)| i.poll_timeout());
    let checkers = w.node.checkers().map(|(_, c, _, _)| c.deadline());
    let balancer = w.node.balancer().and_then(|b| b.poll_timeout());
    instances
        .chain(checkers)
        .chain(balancer)
        .filter(|t| *t != Instant::MAX)
        .min()
}

#[test]
fn the_next_deadline_is_always_a_live_one() {
    // Checkers that keep changing their verdicts, connections that come
    // and expire, and a reload: after every step the node's next deadline
    // is the earliest of its machines', never one left behind.
    let mut w = World::new(SEED);
    let mut step = 0u32;
    while let Some(t) = w.node.poll_timeout().filter(|t| *t <= secs(400.0)) {
        w.now = t;
        w.node.handle_timeout(t);
        w.drain();
        assert_eq!(w.node.poll_timeout(), earliest_deadline(&w), "at {t:?}");
        step += 1;
        if step % 7 == 0 {
            let answer = if step % 2 == 0 {
                Answer::Ok
            } else {
                Answer::Refuse
            };
            w.set(RS1, answer);
        }
        if step % 5 == 0 {
            w.new_flow((step % 200) as u8 + 1, 1000 + step as u16);
            assert_eq!(w.node.poll_timeout(), earliest_deadline(&w));
        }
        if step == 100 {
            w.reload(&SEED.replacen("delay_loop 6", "delay_loop 4", 1));
            assert_eq!(w.node.poll_timeout(), earliest_deadline(&w));
        }
    }
    assert!(step > 100, "{step} steps");
    assert_eq!(
        w.node.stats().timer_rebuilds,
        0,
        "stale entries never filled the queue"
    );
}

#[test]
fn lvs_timeouts_apply_to_the_balancer_and_a_reload_without_them_restores_the_defaults() {
    let text = SEED.replacen(
        "router_id LVS_DEVEL",
        "router_id LVS_DEVEL\n   lvs_timeouts tcp 30 tcpfin 7 udp 12",
        1,
    );
    let mut w = World::new(&text);
    let cfg = *w.node.balancer().unwrap().config();
    assert_eq!(
        (cfg.tcp_timeout_s, cfg.tcp_fin_timeout_s, cfg.udp_timeout_s),
        (30, 7, 12)
    );
    // A connection in ESTABLISHED expires 30 s after its last packet
    // (within the table's 16 ms ticks), not IPVS's 900 s.
    w.run_until(secs(10.0));
    w.new_flow(1, 5555).unwrap();
    w.packet(1, 5555, TcpFlags::ACK);
    let flow = vrlb_core::lb::Flow::tcp(
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)),
        5555,
        common::world::VIP,
        80,
        TcpFlags::ACK,
    );
    let state = |w: &World| w.node.balancer().unwrap().connection(&flow).map(|c| c.1);
    assert_eq!(state(&w), Some(vrlb_core::lb::tcp::TcpState::Established));
    w.run_until(secs(39.9));
    assert!(state(&w).is_some(), "expired early");
    w.run_until(secs(40.1));
    assert_eq!(state(&w), None, "still there after lvs_timeouts tcp 30");

    // Without lvs_timeouts the defaults are back.
    w.reload(SEED);
    let cfg = *w.node.balancer().unwrap().config();
    assert_eq!(
        (cfg.tcp_timeout_s, cfg.tcp_fin_timeout_s, cfg.udp_timeout_s),
        (900, 120, 300)
    );
}
