//! Runs the swarm with one deliberate bug: `cargo run --release -p vrlb-sim --features mutation --example mutant -- INDEX FROM TO`.
fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let m = vrlb_core::mutation::Mutation::ALL[args[0] as usize];
    vrlb_core::mutation::set(Some(m));
    for seed in args[1]..args[2] {
        let t = std::time::Instant::now();
        let o = vrlb_sim::run(vrlb_sim::Scenario::swarm(seed), false).unwrap();
        println!(
            "{m:?} seed {seed} {:?} events {} {:?}",
            t.elapsed(),
            o.events,
            o.violation.map(|v| v.to_string())
        );
    }
}
