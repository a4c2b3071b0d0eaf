//! The simulator's speed on one simulated hour of the seed scenario with
//! 100 clients (the demo's faults: a master crash, a failing server,
//! recoveries), measured by criterion twice over: as simulated events per
//! second of wall time (its throughput in elements: every frame delivery
//! and timer the engine processed), and as simulated seconds per wall
//! second (the sim-to-wall ratio, its throughput in "elements" of one
//! simulated second). Goals (issue 5): at least 1,000,000 events/s on one
//! core; one simulated hour in under 5 s, i.e. a ratio of at least 720.
//! Run: `cargo bench -p vrlb-benches --bench sim_events`.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vrlb_sim::{Scenario, run};

const SEED_CONFIG: &str = include_str!("../../examples/seed/keepalived.conf");
const HOUR_S: u64 = 3_600;

fn hour(clients: usize) -> Scenario {
    let mut s = Scenario::demo("seed", SEED_CONFIG, true, 1, HOUR_S * 1_000_000, clients)
        .expect("the seed configuration makes a scenario");
    // 100 clients open 50 flows a second, each held 2 minutes after its
    // FIN (IPVS's FIN_WAIT): the swarm's small 4096-slot tables would be
    // full, and the run would measure table-full drops instead.
    s.connections = 16_384;
    s
}

fn sim(c: &mut Criterion) {
    // The run is deterministic: its event count is the same every time.
    let events = run(hour(100), false).expect("runs").processed;

    let mut g = c.benchmark_group("sim_events");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(events));
    g.bench_function("seed_scenario_hour_100_clients", |b| {
        b.iter(|| run(hour(100), false).expect("runs").processed)
    });
    g.finish();

    let mut g = c.benchmark_group("sim_seconds_per_wall_second");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(HOUR_S));
    g.bench_function("seed_scenario_hour_100_clients", |b| {
        b.iter(|| run(hour(100), false).expect("runs").processed)
    });
    g.finish();
    println!(
        "sim: {events} events per simulated hour; criterion's sim_events thrpt is events/s, \
         its sim_seconds_per_wall_second thrpt the sim-to-wall ratio (goal >= {})",
        HOUR_S / 5
    );
}

criterion_group!(benches, sim);
criterion_main!(benches);
