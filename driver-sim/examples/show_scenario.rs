//! Prints the scenario a swarm seed draws: `cargo run -p vrlb-sim --example show_scenario -- SEED`.
fn main() {
    let seed: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let s = vrlb_sim::Scenario::swarm(seed);
    for d in &s.directors {
        println!("# director {} {}\n{}", d.addr, d.addr6, d.config);
    }
    println!(
        "servers {:?}\ntraffic {:?}\nlink {:?}\nlate_start {:?}\necmp {:?}",
        s.servers, s.traffic, s.link, s.late_start, s.ecmp
    );
    for a in &s.actions {
        println!("{:>10.6}s {:?}", a.0 as f64 / 1e6, a.1);
    }
    println!(
        "end {:.6}s; replay: vrlb-sim {}",
        s.duration_us as f64 / 1e6,
        s.replay
    );
}
