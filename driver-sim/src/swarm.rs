//! Swarm testing: one run per seed, each drawing its own cluster, config
//! and fault plan ([`Scenario::swarm`]), stopping at the first violation
//! with everything needed to reproduce it.

use crate::scenario::Scenario;
use crate::world::{Outcome, run};

/// A failing seed's outcome and why it failed.
pub type Failure = Box<(Outcome, String)>;

/// Runs seeds `from..to`, calling `progress` after each; returns how many
/// seeds ran, or the first failing outcome (or setup error).
pub fn swarm(from: u64, to: u64, mut progress: impl FnMut(&Outcome)) -> Result<u64, Failure> {
    let mut ran = 0;
    for seed in from..to {
        let scenario = Scenario::swarm(seed);
        let replay = scenario.replay.clone();
        let outcome = match run(scenario, false) {
            Ok(o) => o,
            Err(e) => {
                let empty = Outcome {
                    seed,
                    replay,
                    ..Outcome::default()
                };
                return Err(Box::new((
                    empty,
                    format!("seed {seed}: scenario cannot run: {e}"),
                )));
            }
        };
        ran += 1;
        progress(&outcome);
        if let Some(v) = &outcome.violation {
            let text = v.to_string();
            return Err(Box::new((outcome, text)));
        }
    }
    Ok(ran)
}
