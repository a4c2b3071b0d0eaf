//! The simulator's speed: simulated events per second of wall time, and how
//! long one simulated hour of the seed scenario with 100 clients takes.
//! Goals (issue 5): at least 1,000,000 events/s on one core; one simulated
//! hour in under 5 s. Run: `cargo bench -p vrlb-benches --bench sim_events`.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use vrlb_sim::{Scenario, run};

const SEED_CONFIG: &str = include_str!("../../examples/seed/keepalived.conf");

fn hour(clients: usize) -> Scenario {
    let mut s = Scenario::demo("seed", SEED_CONFIG, true, 1, 3_600_000_000, clients)
        .expect("the seed configuration makes a scenario");
    // Keep the demo's faults: a master crash, a failing server, recoveries.
    s.duration_us = 3_600_000_000;
    s
}

fn sim(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("seed_scenario_one_simulated_hour_100_clients", |b| {
        b.iter(|| run(hour(100), false).unwrap().processed)
    });
    g.finish();

    // Events per second, printed as a figure (criterion's time per run
    // above gives the hour's wall time).
    let start = Instant::now();
    let out = run(hour(100), false).unwrap();
    let wall = start.elapsed();
    println!(
        "sim: {} events in {:.3} s = {:.0} events/s; one simulated hour in {:.3} s",
        out.processed,
        wall.as_secs_f64(),
        out.processed as f64 / wall.as_secs_f64(),
        wall.as_secs_f64()
    );
}

criterion_group!(benches, sim);
criterion_main!(benches);
