//! Swarm testing: one run per seed, each drawing its own cluster, config
//! and fault plan ([`Scenario::swarm`]), stopping at the first violation
//! with everything needed to reproduce it.

use crate::scenario::Scenario;
use crate::world::{Outcome, run};

/// The command that replays a seed.
pub fn reproduce_command(seed: u64) -> String {
    format!("cargo run --release -p vrlb-sim -- run --seed {seed}")
}

/// Runs seeds `from..to`, calling `progress` after each; returns the first
/// failing outcome (or setup error) and how many seeds ran.
pub fn swarm(
    from: u64,
    to: u64,
    mut progress: impl FnMut(&Outcome),
) -> Result<u64, (Outcome, String)> {
    let mut ran = 0;
    for seed in from..to {
        let outcome = match run(Scenario::swarm(seed), false) {
            Ok(o) => o,
            Err(e) => {
                let empty = Outcome {
                    seed,
                    hash: 0,
                    events: 0,
                    processed: 0,
                    violation: None,
                    tail: Vec::new(),
                    all: Vec::new(),
                    served: Vec::new(),
                    flows: (0, 0, 0),
                    failovers_us: Vec::new(),
                    persistence: (0, 0),
                    queue_high_water: 0,
                    per_director: Vec::new(),
                    adopted_mid_flow: 0,
                    moved_by_server_change: 0,
                    synced_kept: 0,
                    sync_messages: 0,
                    synced_sent: 0,
                };
                return Err((empty, format!("seed {seed}: scenario cannot run: {e}")));
            }
        };
        ran += 1;
        progress(&outcome);
        if let Some(v) = &outcome.violation {
            let text = v.to_string();
            return Err((outcome, text));
        }
    }
    Ok(ran)
}
