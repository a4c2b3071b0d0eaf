//! Prints the scenario a swarm seed draws: `cargo run -p vrlb-sim --example show_scenario -- SEED`.
fn main() {
    let seed: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let s = vrlb_sim::Scenario::swarm(seed);
    for (addr, text) in &s.directors {
        println!("# director {addr}\n{text}");
    }
    println!(
        "servers {:?}\ntraffic {:?}\nlink {:?}\nlate_start {:?}",
        s.servers, s.traffic, s.link, s.late_start
    );
    for a in &s.actions {
        println!("{:>10.6}s {:?}", a.0 as f64 / 1e6, a.1);
    }
}
