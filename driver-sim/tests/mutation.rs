//! Mutation tests with teeth: each deliberate bug compiled into the core
//! under the `mutation` feature must be caught by the swarm within 500
//! seeds. Run with `cargo test -p vrlb-sim --release --features mutation
//! --test mutation` (`.ci/run` does).
#![cfg(feature = "mutation")]

use vrlb_core::mutation::{self, Mutation};

#[test]
fn every_mutation_is_caught_within_500_seeds() {
    // One test: the active mutation is process-wide.
    let mut report = Vec::new();
    for m in Mutation::ALL {
        mutation::set(Some(m));
        let result = vrlb_sim::swarm::swarm(0, 500, |_| {});
        mutation::set(None);
        match result {
            Ok(_) => report.push(format!("{m:?}: NOT caught in 500 seeds")),
            Err((outcome, reason)) => eprintln!("{m:?}: caught at seed {}: {reason}", outcome.seed),
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}
