//! Active-active directors behind an ECMP router (issue 10): every
//! director runs the same anycast `mh` service, so a flow the router moves
//! to another director (one crashed, stopped or came back) stays on its
//! real server; the simulator's `flow_sticky` invariant checks each packet.

use vrlb_sim::scenario::EcmpHash;
use vrlb_sim::{Scenario, run};

#[test]
fn mh_keeps_flows_on_their_server_when_directors_come_and_go() {
    for (seed, hash) in [(1, EcmpHash::Threshold), (2, EcmpHash::Modulo)] {
        let out = run(Scenario::ecmp(seed, 3, hash, "mh"), false).unwrap();
        assert_eq!(out.violation, None, "seed {seed}:\n{}", out.tail.join("\n"));
        let (opened, _, lost) = out.flows;
        assert!(opened > 1_000, "seed {seed}: {:?}", out.flows);
        assert_eq!(lost, 0, "seed {seed}: {:?}", out.flows);
        // Flows did move between directors, and the new one adopted them.
        assert!(
            out.adopted_mid_flow > 100,
            "seed {seed}: {}",
            out.adopted_mid_flow
        );
        assert!(
            out.per_director.iter().all(|n| *n > 0),
            "{:?}",
            out.per_director
        );
        assert!(out.served.iter().all(|n| *n > 0), "{:?}", out.served);
    }
}

#[test]
fn a_table_based_scheduler_loses_the_flows_the_router_moves() {
    // wlc on each director knows only the flows it saw begin: moved
    // mid-flow packets find no connection and are dropped, which is why
    // active-active needs mh (or connection sync).
    let out = run(Scenario::ecmp(1, 3, EcmpHash::Threshold, "wlc"), false).unwrap();
    assert_eq!(out.adopted_mid_flow, 0);
    assert!(
        out.flows.2 > 0 || out.violation.is_some(),
        "{:?} {:?}",
        out.flows,
        out.violation
    );
}

#[test]
fn with_mh_only_a_server_set_change_during_a_move_breaks_flows() {
    // A flow ECMP moves while the server set is changing meets a Maglev
    // table unlike its first one: a few such flows change server (and
    // would be reset by it). The invariants admit exactly those.
    let mut scenario = Scenario::ecmp(1, 3, EcmpHash::Threshold, "mh");
    scenario.fail_server_during_moves(3);
    let out = run(scenario, false).unwrap();
    assert_eq!(out.violation, None, "{}", out.tail.join("\n"));
    let opened = out.flows.0;
    assert!(
        out.moved_by_server_change > 0,
        "the change did disturb moved flows"
    );
    assert!(
        out.moved_by_server_change * 20 < opened,
        "{} of {opened}",
        out.moved_by_server_change
    );
}
