//! The CI-sized swarm: a thousand seeds, each its own cluster and fault
//! plan, with no invariant broken, within a wall-clock bound, and with
//! every kind of fault actually happening somewhere (counted, not just
//! drawn).

use std::time::{Duration, Instant};

use vrlb_sim::world::FaultCounts;

/// Generous for a loaded 2-core machine (about 30 s unloaded).
const WALL_BOUND: Duration = Duration::from_secs(300);

#[test]
fn a_thousand_seeds_without_a_violation_and_every_fault_happened() {
    let start = Instant::now();
    let mut f = FaultCounts::default();
    let mut several_vrids = 0;
    let mut tcp_and_udp = 0;
    let mut ecmp = 0;
    let mut ecmp_sizes = std::collections::BTreeSet::new();
    let mut table_full_runs = 0;
    let mut checked = (0, 0, 0);
    let result = vrlb_sim::swarm::swarm(0, 1000, |o| {
        f.add(&o.faults);
        if o.faults.vrids.0 > 1 {
            several_vrids += 1;
        }
        if o.faults.flows.0 > 0 && o.faults.flows.1 > 0 {
            tcp_and_udp += 1;
        }
        if !o.per_director.is_empty() {
            ecmp += 1;
            ecmp_sizes.insert(o.per_director.len());
        }
        if o.table_high_water.0 >= o.table_high_water.1 {
            table_full_runs += 1;
        }
        checked.0 += o.checked.0;
        checked.1 += o.checked.1;
        checked.2 += o.checked.2;
    });
    let wall = start.elapsed();
    match result {
        Ok(ran) => assert_eq!(ran, 1000),
        Err(failure) => panic!("{}", vrlb_sim::report::failure(&failure.0, &failure.1)),
    }
    eprintln!("1000 seeds in {wall:?}: {f:?}");
    eprintln!(
        "runs with several VRIDs {several_vrids}, TCP and UDP clients {tcp_and_udp}, ECMP {ecmp} (directors {ecmp_sizes:?}), a table at capacity {table_full_runs}; deadlines met: check_bound {}, graceful handover {}, preemption {}",
        checked.0, checked.1, checked.2
    );
    assert!(
        wall < WALL_BOUND,
        "the 1000-seed swarm took {wall:?} (bound {WALL_BOUND:?})"
    );
    let kinds = [
        ("frame loss", f.frames.lost),
        ("frame duplication", f.frames.duplicated),
        ("jitter", f.frames.jittered),
        ("reordering", f.frames.reordered),
        ("frames cut by partitions or one-way links", f.frames.cut),
        ("partitions", f.partitions),
        ("partitions cutting a client off", f.client_partitions),
        ("one-way links", f.oneway),
        ("link changes mid-run", f.link_changes),
        ("director crashes", f.crashes),
        ("director restarts", f.restarts),
        ("graceful stops", f.stops),
        ("pauses", f.pauses),
        ("clock drift", f.drifts),
        ("servers refusing", f.server_modes[0]),
        ("servers hanging", f.server_modes[1]),
        ("slow servers", f.server_modes[2]),
        ("servers answering errors", f.server_modes[3]),
        ("TCP flows", f.flows.0),
        ("UDP flows", f.flows.1),
        ("IPv6 flows", f.flows.2),
        ("flood packets", f.flood_packets),
        ("packets forwarded with a full table", f.table_full),
        ("TCP_CHECK answers", f.probes[0]),
        ("HTTP_GET answers", f.probes[1]),
        ("MISC_CHECK answers", f.probes[2]),
        ("IPv6 virtual routers", f.vrids.1),
        ("UDP services", f.services.1),
        ("runs with several VRIDs", several_vrids),
        ("runs with TCP and UDP clients", tcp_and_udp),
        ("ECMP runs", ecmp),
        ("runs with a table at capacity", table_full_runs),
        ("check_bound deadlines met", checked.0),
        ("graceful handovers in time", checked.1),
        ("preemptions in time", checked.2),
    ];
    let missing: Vec<&str> = kinds
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(k, _)| *k)
        .collect();
    assert!(missing.is_empty(), "never happened: {missing:?}");
    assert!(
        f.max_latency_us >= 3_000,
        "latency varies up to milliseconds: {}",
        f.max_latency_us
    );
    assert!(
        ecmp_sizes.len() >= 2,
        "ECMP with varying director counts: {ecmp_sizes:?}"
    );
}
