//! `vrlb-sim demo --config PATH`: the seed document's story for any
//! keepalived.conf, its topology (VIPs, services, real servers, checks)
//! taken from the parsed file, and clear refusals for what the simulator
//! cannot do. Plus the command line's output: the seed first, pure JSON
//! with `--json`.

use std::net::IpAddr;
use std::process::Command;

use vrlb_sim::{Scenario, run};

const SEED: &str = include_str!("../../examples/seed/keepalived.conf");
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus");

/// A corpus file (`../shared/corpus` beside the repository, as the core's
/// corpus tests find it); `None` with a printed reason when it is absent
/// outside CI; in CI a missing corpus fails.
fn corpus(name: &str) -> Option<(String, String)> {
    let path = format!("{CORPUS}/{name}");
    match std::fs::read_to_string(&path) {
        Ok(text) => Some((path, text)),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{path}: {e}: CI must run with ../shared beside the repository")
        }
        Err(e) => {
            eprintln!("skipping: {path}: {e} (../shared beside the repository)");
            None
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn the_seed_config_gives_the_seed_documents_topology() {
    let s = Scenario::demo("seed", SEED, false, 1, 240_000_000, 10).unwrap();
    let addrs: Vec<String> = s.directors.iter().map(|d| d.addr.to_string()).collect();
    assert_eq!(addrs, ["192.168.2.210", "192.168.2.211"]);
    assert_eq!(
        s.servers,
        [vec![ip("192.168.2.212")], vec![ip("192.168.2.213")]]
    );
    let svc = &s.view.services[0];
    assert_eq!(
        (svc.vip, svc.port, svc.protocol, svc.persistence_s),
        (ip("192.168.2.240"), 80, 6, 60)
    );
    assert!(
        s.directors
            .iter()
            .all(|d| d.config == SEED && d.overrides.is_empty())
    );
}

#[test]
fn the_lower_priority_variant_changes_the_parsed_value_not_the_text() {
    // A priority written with other spacing than "priority 100": the
    // variant still lowers it, on the second director only.
    let text = SEED.replace("priority 100", "priority    120");
    let s = Scenario::demo("seed", &text, true, 1, 240_000_000, 10).unwrap();
    assert_eq!(s.directors[1].config, text, "the text is unchanged");
    let o = &s.directors[1].overrides;
    assert_eq!(o.len(), 1);
    assert_eq!(
        (o[0].instance.as_str(), o[0].priority, o[0].backup),
        ("VI_1", Some(110), true)
    );
    assert!(s.directors[0].overrides.is_empty());
    let out = run(s, true).unwrap();
    assert_eq!(out.violation, None);
    // The first director (120) is master until its crash at 60 s.
    assert!(
        out.all
            .iter()
            .any(|r| r.what.contains("vrid/state") && r.a == 0 && r.b == 512)
    );
    assert!(!out.all.iter().any(|r| r.what.contains("vrid/state")
        && r.a == 1
        && r.b == 512
        && r.time_us < 60_000_000));
}

#[test]
fn corpus_configs_run_with_their_own_topology() {
    // 01: two TCP services (wrr) on two VIPs, no persistence; 16: UDP
    // with persistence to one host on three ports; lvs_syncd: three
    // instances (two in a sync group), one service on VI_2's VIP.
    for (name, vips, min_services, hosts) in [
        (
            "keepalived-wild/01-qiuyesuifeng-codis_keepalived_lvs.conf",
            vec!["192.168.188.190", "192.168.188.108"],
            2,
            2,
        ),
        (
            "keepalived-wild/16-NFhook-opensips-cluster.conf",
            vec![],
            1,
            1,
        ),
        (
            "keepalived-samples/keepalived.conf.vrrp.lvs_syncd",
            vec!["192.168.200.19"],
            1,
            1,
        ),
    ] {
        let Some((path, text)) = corpus(name) else {
            return;
        };
        for lower in [false, true] {
            let s = Scenario::demo(&path, &text, lower, 2, 200_000_000, 8)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(s.view.services.len() >= min_services, "{name}");
            for v in &vips {
                assert!(
                    s.view.services.iter().any(|x| x.vip == ip(v)),
                    "{name}: {v}"
                );
            }
            // Every real server of every kept service is a host.
            for svc in &s.view.services {
                for r in &svc.reals {
                    assert!(
                        s.servers.iter().any(|h| h.contains(&r.addr)),
                        "{name}: {}",
                        r.addr
                    );
                }
            }
            let no_persistence = s.view.services.iter().all(|x| x.persistence_s == 0);
            let out = run(s, true).unwrap();
            assert_eq!(
                out.violation,
                None,
                "{name} (lower {lower}):\n{}",
                out.tail.join("\n")
            );
            assert!(
                !out.failovers_us.is_empty(),
                "{name}: the master's crash fails over"
            );
            assert!(
                out.served.iter().filter(|n| **n > 0).count() >= hosts,
                "{name}: {:?}",
                out.served
            );
            if no_persistence {
                assert!(!out.has_persistence);
                assert_eq!(out.persistence, (0, 0), "{name}: nothing to keep");
            }
        }
    }
}

#[test]
fn what_the_simulator_cannot_do_is_refused_by_name_and_line() {
    let refuse = |name: &str, needle: &str| {
        let Some((path, text)) = corpus(name) else {
            return;
        };
        let e = Scenario::demo(&path, &text, false, 1, 100_000_000, 4).unwrap_err();
        assert!(e.contains(needle), "{name}: {e}");
        assert!(e.contains(&path), "{name} names its file: {e}");
    };
    refuse(
        "keepalived-wild/07-hanxueluo-gittrace.conf",
        "virtual_server fwmark 1 is not simulated",
    );
    refuse("keepalived-wild/07-hanxueluo-gittrace.conf", ":39:");
    refuse("keepalived-samples/keepalived.conf.vrrp", "VRRP-only");
    refuse(
        "keepalived-samples/keepalived.conf.inhibit",
        "no vrrp_instance",
    );
    refuse(
        "keepalived-samples/keepalived.conf.sample",
        "no vrrp_instance holds 10.10.10.2",
    );
    let owner = SEED.replace("priority 100", "priority 255");
    let e = Scenario::demo("owner.conf", &owner, false, 1, 100_000_000, 4).unwrap_err();
    assert!(e.contains("priority 255"), "{e}");
    assert!(Scenario::demo("owner.conf", &owner, true, 1, 100_000_000, 4).is_ok());
}

#[test]
fn the_demo_prints_its_seed_first_and_pure_json_when_asked() {
    let bin = env!("CARGO_BIN_EXE_vrlb-sim");
    let out = Command::new(bin)
        .args(["demo", "--duration", "70", "--clients", "4"])
        .output()
        .expect("vrlb-sim runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("seed 1\n"), "{text}");
    assert!(
        text.contains("director 1 (192.168.2.211) crashes"),
        "addresses in the timeline:\n{text}"
    );

    let out = Command::new(bin)
        .args(["demo", "--duration", "70", "--clients", "4", "--json"])
        .output()
        .expect("vrlb-sim runs");
    assert!(out.status.success());
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(v["runs"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["runs"][0]["directors"][1], "192.168.2.211");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("seed 1\n"));

    let out = Command::new(bin)
        .args(["run", "--seed", "7", "--json"])
        .output()
        .expect("vrlb-sim runs");
    assert!(out.status.success());
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(v["seed"], 7);
    assert_eq!(v["replay"], "run --seed 7");
}

#[test]
fn the_ecmp_scenario_runs_from_the_command_line() {
    let bin = env!("CARGO_BIN_EXE_vrlb-sim");
    let out = Command::new(bin)
        .args([
            "run",
            "--scenario",
            "ecmp",
            "--seed",
            "3",
            "--directors",
            "2",
            "--hash",
            "modulo",
        ])
        .output()
        .expect("vrlb-sim runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("seed 3\n") && text.contains("trace hash "),
        "{text}"
    );
}

/// Both directors run one VRRPv3-over-IPv6 instance holding an IPv6 VIP
/// with a DR service on it.
const IPV6: &str = "vrrp_instance VI_6 {
    state BACKUP
    interface eth0
    virtual_router_id 60
    priority 100
    version 3
    advert_int 1
    virtual_ipaddress {
        2001:db8::240
    }
}
virtual_server 2001:db8::240 80 {
    delay_loop 3
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 2001:db8::100 80 {
        TCP_CHECK {
            connect_timeout 2
        }
    }
    real_server 2001:db8::101 80 {
        TCP_CHECK {
            connect_timeout 2
        }
    }
}
";

#[test]
fn an_ipv6_vip_moves_with_unsolicited_neighbour_advertisements() {
    let mut s = Scenario::demo("v6.conf", IPV6, true, 4, 100_000_000, 10).unwrap();
    // The crash comes soon after the clients renewed their neighbour
    // entries (about 38 s: 30 s after the master's first advertisements),
    // so without the new master's NA they would keep the dead MAC for
    // another 25 s.
    s.actions = vec![(40_000_000, vrlb_sim::scenario::Action::CrashMaster)];
    let out = run(s, true).unwrap();
    assert_eq!(out.violation, None, "{}", out.tail.join("\n"));
    assert!(
        out.faults.flows.2 > 100,
        "IPv6 flows: {:?}",
        out.faults.flows
    );
    assert!(out.served.iter().all(|n| *n > 0), "{:?}", out.served);
    // The master (director 0, the higher priority) crashes at 40 s; the
    // backup takes over about 3.6 s after its last advert.
    assert_eq!(out.failovers_us.len(), 1, "{:?}", out.failovers_us);
    let takeover = out
        .all
        .iter()
        .find(|r| {
            r.what.contains("vrid/state") && r.a == 1 && r.b == 10_602 && r.time_us > 40_000_000
        })
        .expect("director 1 becomes master of VRID 60 (IPv6)")
        .time_us;
    // Clients' neighbour entries for the VIP live 30 s: had they not
    // followed the new master's unsolicited NA, flows opened after the
    // takeover would go to the dead director's MAC and be lost. A flow
    // gives up 6 s after its first unanswered packet.
    let late_losses = out
        .all
        .iter()
        .filter(|r| r.what.contains("lost a flow") && r.time_us > takeover + 7_000_000)
        .count();
    assert_eq!(
        late_losses, 0,
        "flows lost after the takeover at {takeover} us"
    );
}
