//! Mutation tests with teeth: each deliberate bug compiled into the core
//! under the `mutation` feature must be caught by the swarm within 500
//! seeds, and by the invariant that names what it breaks (a setup error,
//! an exhausted event budget or another invariant does not count). Also
//! how a failure looks from the command line: the seed, the invariant, the
//! last events, the command that replays it, the invariant's exit code.
//! Run with `cargo test -p vrlb-sim --release --features mutation --test
//! mutation` (`.ci/run` does).
#![cfg(feature = "mutation")]

use std::collections::BTreeMap;
use std::process::Command;

use vrlb_core::mutation::{self, Mutation};
use vrlb_sim::{Scenario, run};

/// What each mutation breaks.
fn expected(m: Mutation) -> &'static str {
    match m {
        Mutation::IgnoreAddressTieBreak => "single_master",
        Mutation::NoSkew => "premature_takeover",
        Mutation::NoPriorityZeroOnShutdown => "graceful_handover",
        Mutation::IgnoreTemplates => "persistence_kept",
        Mutation::ScheduleDownServer => "no_flow_to_down_server",
        Mutation::DropSyncMessages => "synced_flow_kept",
        Mutation::IgnoreCheckFailure => "check_bound",
        Mutation::SilentSyncSender => "synced_flow_sent",
        Mutation::ForgetTemplateRefresh => "persistence_kept",
        Mutation::OwnerWaits => "owner_wins",
        Mutation::IgnoreNopreempt => "preemption_rules",
        Mutation::NeverPreempt => "preemption_rules",
        Mutation::LateMasterDown => "failover_bound",
        Mutation::RescheduleUdp => "flow_sticky",
        Mutation::StayDown => "liveness",
    }
}

#[test]
fn every_mutation_is_caught_by_its_invariant_within_500_seeds() {
    assert!(Mutation::ALL.len() >= 6, "the issue asks for six at least");
    // One test: the active mutation is process-wide.
    let mut missed = Vec::new();
    for m in Mutation::ALL {
        let want = expected(m);
        mutation::set(Some(m));
        let mut others: BTreeMap<&'static str, u32> = BTreeMap::new();
        let mut caught = None;
        for seed in 0..500 {
            let out = run(Scenario::swarm(seed), false).expect("swarm scenarios build");
            match out.violation {
                Some(v) if v.name == want => {
                    caught = Some((seed, v.to_string()));
                    break;
                }
                Some(v) => *others.entry(v.name).or_insert(0) += 1,
                None => {}
            }
        }
        mutation::set(None);
        match caught {
            Some((seed, v)) => {
                eprintln!("{m:?}: caught by {want} at seed {seed} (before it: {others:?}): {v}")
            }
            None => missed.push(format!(
                "{m:?}: {want} never fired in 500 seeds (other violations: {others:?})"
            )),
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

#[test]
fn a_failing_demo_prints_its_replay_command_and_exits_with_the_invariant_code() {
    let bin = env!("CARGO_BIN_EXE_vrlb-sim");
    // A server marked down kept in scheduling: the demo's story (its first
    // real server refuses from 120 s, is marked down at 129 s) breaks
    // no_flow_to_down_server.
    let args = [
        "--mutation",
        "ScheduleDownServer",
        "demo",
        "--seed",
        "3",
        "--duration",
        "200",
    ];
    let out = Command::new(bin)
        .args(args)
        .output()
        .expect("vrlb-sim runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(18),
        "no_flow_to_down_server's code:\n{stderr}"
    );
    assert!(
        stdout.starts_with("seed 3\n"),
        "the seed comes first: {stdout}"
    );
    assert!(
        stderr.contains("seed 3: invariant no_flow_to_down_server (exit 18)"),
        "{stderr}"
    );
    assert!(stderr.contains("last events:"), "{stderr}");
    let replay = "reproduce: cargo run --release -p vrlb-sim --features mutation -- demo --seed 3 --duration 200 --mutation ScheduleDownServer";
    assert!(stderr.contains(replay), "{stderr}");

    // The printed command replays it: the same failure, the same trace.
    let tail = replay.split(" -- ").nth(1).unwrap();
    let again = Command::new(bin)
        .args(tail.split(' '))
        .output()
        .expect("vrlb-sim runs");
    assert_eq!(again.status.code(), Some(18));
    let hashes = |s: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(s)
            .lines()
            .filter(|l| l.trim_start().starts_with("trace hash"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(hashes(&out.stdout), hashes(&again.stdout));
    assert_eq!(hashes(&out.stdout).len(), 2, "both runs of the story");

    // With --json, stdout is one JSON document naming the violation.
    let json = Command::new(bin)
        .args(args.iter().copied().chain(["--json"]))
        .output()
        .expect("vrlb-sim runs");
    assert_eq!(json.status.code(), Some(18));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("stdout is pure JSON");
    assert_eq!(v["seed"], 3);
    let first = &v["runs"][0];
    assert_eq!(first["violation"]["invariant"], "no_flow_to_down_server");
    assert!(
        first["reproduce"].as_str().is_some_and(
            |r| r.ends_with("demo --seed 3 --duration 200 --mutation ScheduleDownServer")
        ),
        "{first}"
    );
    let stderr = String::from_utf8_lossy(&json.stderr);
    assert!(stderr.starts_with("seed 3\n"), "{stderr}");
}

#[test]
fn a_failing_swarm_seed_replays_with_run() {
    let bin = env!("CARGO_BIN_EXE_vrlb-sim");
    let out = Command::new(bin)
        .args(["--mutation", "NoSkew", "swarm", "--seeds", "0..500"])
        .output()
        .expect("vrlb-sim runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    assert!(
        code.is_some_and(|c| c >= 10),
        "an invariant's code:\n{stderr}"
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with("reproduce: "))
        .expect("a reproduce line");
    let tail = line.split(" -- ").nth(1).unwrap();
    assert!(tail.starts_with("run --seed "), "{tail}");
    assert!(tail.ends_with(" --mutation NoSkew"), "{tail}");
    let again = Command::new(bin)
        .args(tail.split(' '))
        .output()
        .expect("vrlb-sim runs");
    assert_eq!(again.status.code(), code, "the same invariant again");
    let first = stderr.lines().next().unwrap_or_default();
    let replayed = String::from_utf8_lossy(&again.stderr);
    assert_eq!(replayed.lines().next().unwrap_or_default(), first);
}
