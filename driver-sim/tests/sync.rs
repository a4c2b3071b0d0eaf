//! Connection sync in the simulator: the seed scenario with
//! `lvs_sync_daemon` keeps established flows across the master's crash,
//! where the same scenario without it loses them; and swarm seeds with
//! sync run clean with the `synced_flow_kept` and `synced_flow_sent`
//! invariants checking them.

use vrlb_sim::scenario::{swarm_is_ecmp, swarm_syncs, with_lvs_sync_daemon};
use vrlb_sim::{Scenario, run};

const SEED: &str = include_str!("../../examples/seed/keepalived.conf");

/// The seed's configuration with 1 s adverts: its 5 s adverts make the
/// failover (15.6 s) outlast a client's retries (6 x 1 s), so no flow could
/// survive it with or without sync.
fn seed_text(sync: bool) -> String {
    let text = SEED.replacen("advert_int 5", "advert_int 1", 1);
    if sync {
        with_lvs_sync_daemon(&text, "VI_1")
    } else {
        text
    }
}

/// Until 110 s: the master's crash at 60 s, not the real server failure
/// at 120 s (refused flows are lost either way) nor the failback at 180 s
/// (the returning master preempts with empty tables).
fn seed_run(sync: bool) -> vrlb_sim::Outcome {
    let scenario = Scenario::demo("seed", &seed_text(sync), true, 1, 110_000_000, 20).unwrap();
    run(scenario, false).unwrap()
}

#[test]
fn the_seed_scenario_with_sync_keeps_flows_across_failover() {
    let with = seed_run(true);
    let without = seed_run(false);
    assert_eq!(with.violation, None);
    assert_eq!(without.violation, None);
    assert_eq!(with.failovers_us.len(), 1, "{:?}", with.failovers_us);
    println!(
        "flows (opened, completed, lost): with sync {:?}, without {:?}; synced packets kept {}, sync messages {}",
        with.flows, without.flows, with.synced_kept, with.sync_messages
    );
    assert!(with.sync_messages > 0, "the master sent sync messages");
    assert!(
        with.synced_sent > 0,
        "new flows' entries were checked to reach the backup in time"
    );
    assert_eq!(without.sync_messages, 0);
    assert!(
        with.synced_kept > 0,
        "the new master forwarded flows it learned by sync to their servers"
    );
    assert_eq!(without.synced_kept, 0);
    assert!(
        without.flows.2 > 0,
        "without sync the crash loses established flows"
    );
    assert!(
        with.flows.2 * 10 <= without.flows.2,
        "sync keeps most of them: lost {} with sync, {} without",
        with.flows.2,
        without.flows.2
    );
}

#[test]
fn swarm_seeds_with_sync_run_clean_and_are_checked() {
    let mut synced = 0;
    let mut kept = 0;
    let mut sent = 0;
    for seed in 0..120 {
        // ECMP seeds run no VRRP, so no sync either.
        if !swarm_syncs(seed) || swarm_is_ecmp(seed) {
            continue;
        }
        let scenario = Scenario::swarm(seed);
        assert!(scenario.directors[0].config.contains("lvs_sync_daemon"));
        let out = run(scenario, false).unwrap();
        assert_eq!(out.violation, None, "seed {seed}");
        synced += 1;
        kept += out.synced_kept;
        sent += out.synced_sent;
    }
    assert!(synced > 30, "about half the seeds sync: {synced}");
    assert!(kept > 0, "some seeds had synced flows cross a failover");
    assert!(
        sent > 0,
        "some seeds checked that new flows were sent in time"
    );
}
