//! Prints what the ECMP scenario does for each router hash and scheduler:
//! flows lost, mid-flow packets adopted, load per director (BENCHMARKS.md).
use vrlb_sim::scenario::EcmpHash;
use vrlb_sim::{Scenario, run};
fn main() {
    for hash in [EcmpHash::Modulo, EcmpHash::Threshold] {
        for algo in ["mh", "wlc", "sh"] {
            let out = run(Scenario::ecmp(1, 3, hash, algo), false).unwrap();
            println!(
                "{hash:?} {algo}: flows {:?} adopted {} per_director {:?} violation {:?}",
                out.flows,
                out.adopted_mid_flow,
                out.per_director,
                out.violation.map(|v| (v.name, v.detail))
            );
        }
    }
}
