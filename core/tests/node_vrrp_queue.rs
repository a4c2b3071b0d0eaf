//! A node whose driver did not drain between inputs: the instance's step
//! that had to wait runs during the drain, and the node's timer queue
//! learns the deadlines it set (or the new master would never advertise).

use std::net::{IpAddr, Ipv4Addr};

use vrlb_core::node::{
    GroupSlot, IfaceId, Input, InstanceSlot, Node, NodeStorage, Output, ScriptSlot, TimerEntry,
};
use vrlb_core::time::{Duration, Instant};
use vrlb_core::vrrp::{self, State};

fn drain(node: &mut Node<'_>) -> Vec<vrrp::Output> {
    std::iter::from_fn(|| node.poll_output())
        .filter_map(|o| match o {
            Output::Vrrp { event, .. } => Some(event),
            _ => None,
        })
        .collect()
}

#[test]
fn a_deferred_takeover_is_scheduled_after_the_drain() {
    let mut instances = vec![InstanceSlot::default(); 2];
    let mut scripts = vec![ScriptSlot::default(); 1];
    let mut groups = vec![GroupSlot::default(); 1];
    let mut timers = vec![TimerEntry::default(); 8];
    let mut node = Node::new(NodeStorage {
        instances: &mut instances,
        scripts: &mut scripts,
        groups: &mut groups,
        timers: &mut timers,
    });
    let mut config = vrrp::Config::new(51, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    config.priority = 255;
    let vip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 240));
    let id = node
        .add_instance(config, &[vip], &[], IfaceId(0), 1)
        .unwrap();
    node.handle(Instant::ZERO, Input::Start);
    drain(&mut node);

    // The link flaps four times, never drained: 3 + 4 + 3 outputs queue up
    // and the last takeover (4 more) must wait for room.
    let t = Instant::from_millis(100);
    for up in [false, true, false, true] {
        node.handle(
            t,
            Input::Link {
                iface: IfaceId(0),
                up,
            },
        );
    }
    let inst = node.instance(id).unwrap();
    assert_eq!(inst.state(), State::Fault, "the takeover waits");
    assert_eq!(inst.stats().steps_deferred, 1);
    let out = drain(&mut node);
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, vrrp::Output::AddVips))
            .count(),
        2
    );
    assert_eq!(node.instance(id).unwrap().state(), State::Master);

    // The node's timer queue knows the new master's advert deadline (it
    // may still hold stale earlier entries: firing those is harmless).
    let mut advertised = None;
    while let Some(at) = node.poll_timeout() {
        node.handle_timeout(at);
        if drain(&mut node).contains(&vrrp::Output::Advert { priority: 255 }) {
            advertised = Some(at);
            break;
        }
    }
    assert_eq!(advertised, Some(t + Duration::from_secs(1)));
}
