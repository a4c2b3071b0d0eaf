//! Prints what the ECMP scenario does for each router hash and scheduler:
//! flows lost, mid-flow packets adopted, flows moved to another server,
//! load per director (BENCHMARKS.md).

use vrlb_sim::scenario::EcmpHash;
use vrlb_sim::{Scenario, run};

fn main() {
    for server_change in [false, true] {
        for hash in [EcmpHash::Modulo, EcmpHash::Threshold] {
            for algo in ["mh", "wlc", "sh"] {
                let mut scenario = Scenario::ecmp(1, 3, hash, algo);
                if server_change {
                    scenario.fail_server_during_moves(3);
                }
                let out = run(scenario, false).expect("the scenario builds");
                println!(
                    "server change {server_change}, {hash:?}, {algo}: flows (opened, completed, lost) {:?}, adopted {}, moved by server change {}, packets per director {:?}, violation {:?}",
                    out.flows,
                    out.adopted_mid_flow,
                    out.moved_by_server_change,
                    out.per_director,
                    out.violation.map(|v| v.detail)
                );
            }
        }
    }
}
