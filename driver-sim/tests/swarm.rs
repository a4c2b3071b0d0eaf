//! The CI-sized swarm: a thousand seeds, each its own cluster and fault
//! plan, with no invariant broken.

#[test]
fn a_thousand_seeds_without_a_violation() {
    let start = std::time::Instant::now();
    let result = vrlb_sim::swarm::swarm(0, 1000, |_| {});
    match result {
        Ok(ran) => assert_eq!(ran, 1000),
        Err((outcome, reason)) => panic!("{}", vrlb_sim::report::failure(&outcome, &reason)),
    }
    eprintln!("1000 seeds in {:?}", start.elapsed());
}
