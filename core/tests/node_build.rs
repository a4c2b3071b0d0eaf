//! Building a node from keepalived.conf, and reloading it without flaps.

use std::net::{IpAddr, Ipv4Addr};

use vrlb_core::config::{NoIncludes, Options, VrrpInstance};
use vrlb_core::node::build::{Environment, build};
use vrlb_core::node::{
    GroupSlot, IfaceId, Input, InstanceId, InstanceSlot, Node, NodeStorage, Output, ScriptSlot,
    TimerEntry,
};
use vrlb_core::time::{Duration, Instant};
use vrlb_core::vrrp::{self, Family, Reason, State};

#[derive(Default)]
struct Env {
    ifaces: Vec<String>,
    names: Vec<(InstanceId, String)>,
    warnings: Vec<String>,
    removed: Vec<InstanceId>,
}

impl Environment for Env {
    fn interface(&mut self, name: &str) -> IfaceId {
        let i = self
            .ifaces
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| {
                self.ifaces.push(name.to_string());
                self.ifaces.len() - 1
            });
        IfaceId(i as u16)
    }
    fn primary_address(&mut self, iface: IfaceId, _family: Family) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + iface.0 as u8)))
    }
    fn instance(&mut self, id: InstanceId, conf: &VrrpInstance<'_>) {
        self.names.retain(|(i, _)| *i != id);
        self.names.push((id, conf.name.to_string()));
    }
    fn removed_instance(&mut self, id: InstanceId) {
        self.removed.push(id);
    }
    fn diagnostic(&mut self, d: &vrlb_core::config::Diagnostic) {
        self.warnings.push(d.to_string());
    }
}

struct Storage {
    instances: Vec<InstanceSlot>,
    scripts: Vec<ScriptSlot>,
    groups: Vec<GroupSlot>,
    timers: Vec<TimerEntry>,
}

impl Storage {
    fn new() -> Self {
        Storage {
            instances: vec![InstanceSlot::default(); 8],
            scripts: vec![ScriptSlot::default(); 4],
            groups: vec![GroupSlot::default(); 2],
            timers: vec![TimerEntry::default(); 32],
        }
    }
    fn node(&mut self) -> Node<'_> {
        Node::new(NodeStorage {
            instances: &mut self.instances,
            scripts: &mut self.scripts,
            groups: &mut self.groups,
            timers: &mut self.timers,
        })
    }
}

fn drain(node: &mut Node<'_>) -> Vec<Output> {
    std::iter::from_fn(|| node.poll_output()).collect()
}

fn transitions(outputs: &[Output]) -> Vec<(u16, State, Reason)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Vrrp {
                instance,
                event: vrrp::Output::StateChanged { to, reason, .. },
            } => Some((instance.0, *to, *reason)),
            _ => None,
        })
        .collect()
}

/// Runs timers until `end`, returning every output with its time.
fn run_until(node: &mut Node<'_>, end: Instant) -> Vec<(Instant, Output)> {
    let mut out = Vec::new();
    while let Some(t) = node.poll_timeout().filter(|t| *t <= end) {
        node.handle_timeout(t);
        out.extend(drain(node).into_iter().map(|o| (t, o)));
    }
    out
}

const SEED: &str = include_str!("../../examples/seed/keepalived.conf");

#[test]
fn seed_config_builds_and_takes_over_as_state_master() {
    let mut st = Storage::new();
    let mut node = st.node();
    let mut env = Env::default();
    build(
        &mut node,
        &mut env,
        "keepalived.conf",
        SEED,
        &Options::default(),
        &mut NoIncludes,
    )
    .unwrap();
    assert_eq!(env.ifaces, ["eth0"]);
    let (id, vi) = node.instances().next().unwrap();
    assert_eq!(env.names, [(id, "VI_1".to_string())]);
    let c = vi.config();
    assert_eq!((c.vrid, c.priority, c.advert_interval_cs), (51, 100, 500));
    assert!(c.auth.matches(&vrrp::Auth::pass(b"1111")));
    assert!(c.start_as_master);
    assert_eq!(vi.vips(), ["192.168.2.240".parse::<IpAddr>().unwrap()]);

    node.handle(Instant::ZERO, Input::Start);
    drain(&mut node);
    let out = run_until(&mut node, Instant::from_secs(10));
    // state MASTER: one interval (5 s) plus skew (156/256 s).
    let (t, _) = out
        .iter()
        .find(|(_, o)| !transitions(&[*o]).is_empty())
        .unwrap();
    assert_eq!(*t, Instant::from_micros(5_609_375));
}

const TWO: &str = "
vrrp_script chk {
    script \"/bin/true\"
    interval 2
    fall 2
    weight -60
}
vrrp_sync_group G {
    group {
        A
        B
    }
}
vrrp_instance A {
    interface eth0
    virtual_router_id 1
    priority 150
    virtual_ipaddress {
        192.0.2.100
    }
    track_script {
        chk
    }
}
vrrp_instance B {
    interface eth1
    virtual_router_id 2
    priority 150
    virtual_ipaddress {
        198.51.100.100
    }
}
";

#[test]
fn sync_group_members_move_together_and_scripts_lower_priority() {
    let mut st = Storage::new();
    let mut node = st.node();
    let mut env = Env::default();
    build(
        &mut node,
        &mut env,
        "two.conf",
        TWO,
        &Options::default(),
        &mut NoIncludes,
    )
    .unwrap();
    node.handle(Instant::ZERO, Input::Start);
    drain(&mut node);
    let out = run_until(&mut node, Instant::ZERO);
    let script = out
        .iter()
        .find_map(|(_, o)| match o {
            Output::RunScript { script, .. } => Some(*script),
            _ => None,
        })
        .expect("the script runs at start");
    // It is not run again until it reports.
    run_until(&mut node, Instant::from_secs(5));
    node.handle(
        Instant::from_secs(5),
        Input::ScriptResult {
            script,
            success: true,
        },
    );
    drain(&mut node);
    run_until(&mut node, Instant::from_secs(5));
    let a = InstanceId(0);
    let b = InstanceId(1);
    assert_eq!(node.instance(a).unwrap().state(), State::Master);
    assert_eq!(node.instance(b).unwrap().state(), State::Master);

    // Two failed runs (fall 2): priority 150 - 60.
    let out = run_until(&mut node, Instant::from_secs(7));
    assert!(
        out.iter()
            .any(|(t, o)| *t == Instant::from_secs(7) && matches!(o, Output::RunScript { .. }))
    );
    node.handle(
        Instant::from_secs(7),
        Input::ScriptResult {
            script,
            success: false,
        },
    );
    drain(&mut node);
    assert_eq!(node.instance(a).unwrap().effective_priority(), 150);
    let out = run_until(&mut node, Instant::from_secs(9));
    assert!(
        out.iter()
            .any(|(_, o)| matches!(o, Output::RunScript { .. }))
    );
    node.handle(
        Instant::from_secs(9),
        Input::ScriptResult {
            script,
            success: false,
        },
    );
    let out = drain(&mut node);
    assert!(out.contains(&Output::ScriptChanged { script, up: false }));
    assert_eq!(node.instance(a).unwrap().effective_priority(), 90);

    // B's interface fails: B goes to Fault and A follows it.
    node.handle(
        Instant::from_secs(10),
        Input::Link {
            iface: IfaceId(1),
            up: false,
        },
    );
    let out = drain(&mut node);
    assert_eq!(
        transitions(&out),
        [
            (1, State::Fault, Reason::Fault),
            (0, State::Fault, Reason::SyncGroup)
        ]
    );
    // Back up: both listen again.
    node.handle(
        Instant::from_secs(11),
        Input::Link {
            iface: IfaceId(1),
            up: true,
        },
    );
    let out = drain(&mut node);
    assert_eq!(
        transitions(&out),
        [
            (1, State::Backup, Reason::FaultCleared),
            (0, State::Backup, Reason::SyncGroup)
        ]
    );
}

#[test]
fn reload_changes_only_what_changed() {
    let mut st = Storage::new();
    let mut node = st.node();
    let mut env = Env::default();
    build(
        &mut node,
        &mut env,
        "two.conf",
        TWO,
        &Options::default(),
        &mut NoIncludes,
    )
    .unwrap();
    node.handle(Instant::ZERO, Input::Start);
    drain(&mut node);
    run_until(&mut node, Instant::from_secs(5));
    let sent_before = node.instance(InstanceId(1)).unwrap().stats().adverts_sent;

    // The same text again: nothing at all happens.
    build(
        &mut node,
        &mut env,
        "two.conf",
        TWO,
        &Options::default(),
        &mut NoIncludes,
    )
    .unwrap();
    assert!(
        drain(&mut node).is_empty(),
        "an unchanged reload emits nothing"
    );
    assert!(env.removed.is_empty());
    let after = run_until(&mut node, Instant::from_secs(6));
    assert!(transitions(&after.iter().map(|x| x.1).collect::<Vec<_>>()).is_empty());
    assert!(
        node.instance(InstanceId(1)).unwrap().stats().adverts_sent > sent_before,
        "adverts keep flowing"
    );

    // B's priority changes: B re-advertises, nobody changes state.
    let changed = TWO.replace(
        "virtual_router_id 2\n    priority 150",
        "virtual_router_id 2\n    priority 120",
    );
    build(
        &mut node,
        &mut env,
        "two.conf",
        &changed,
        &Options::default(),
        &mut NoIncludes,
    )
    .unwrap();
    let out = drain(&mut node);
    assert_eq!(
        out,
        [Output::Vrrp {
            instance: InstanceId(1),
            event: vrrp::Output::Advert { priority: 120 }
        }]
    );

    // A is removed: it resigns; B is kept.
    let without_a = "vrrp_instance B {\n interface eth1\n virtual_router_id 2\n priority 120\n virtual_ipaddress {\n  198.51.100.100\n }\n}\n";
    build(
        &mut node,
        &mut env,
        "one.conf",
        without_a,
        &Options::default(),
        &mut NoIncludes,
    )
    .unwrap();
    let out = drain(&mut node);
    assert_eq!(env.removed, [InstanceId(0)]);
    assert!(out.contains(&Output::Vrrp {
        instance: InstanceId(0),
        event: vrrp::Output::Advert { priority: 0 }
    }));
    assert_eq!(node.instances().count(), 1);
    assert_eq!(node.instance(InstanceId(1)).unwrap().state(), State::Master);
    let _ = Duration::ZERO;
}

#[test]
fn duplicate_names_and_vrids_are_errors() {
    let dup = "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n}\nvrrp_instance A {\n interface eth0\n virtual_router_id 2\n}\n";
    let mut st = Storage::new();
    let mut node = st.node();
    let err = build(
        &mut node,
        &mut Env::default(),
        "d.conf",
        dup,
        &Options::default(),
        &mut NoIncludes,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "d.conf:5:1: error: vrrp_instance 'A' is already defined at line 1"
    );

    let vrid = "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n}\nvrrp_instance B {\n interface eth0\n virtual_router_id 1\n}\n";
    let mut st = Storage::new();
    let mut node = st.node();
    let err = build(
        &mut node,
        &mut Env::default(),
        "v.conf",
        vrid,
        &Options::default(),
        &mut NoIncludes,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("v.conf:5:1: error: vrrp_instance: another instance"),
        "{err}"
    );
}

/// Runs timers until `end`, answering every script run with `success`.
fn run_scripts(node: &mut Node<'_>, end: Instant, success: bool) -> Vec<(Instant, Output)> {
    let mut out = Vec::new();
    while let Some(t) = node.poll_timeout().filter(|t| *t <= end) {
        node.handle_timeout(t);
        while let Some(o) = node.poll_output() {
            out.push((t, o));
            if let Output::RunScript { script, .. } = o {
                node.handle(t, Input::ScriptResult { script, success });
            }
        }
    }
    out
}

#[test]
fn reload_changing_a_failing_scripts_interval_keeps_its_penalty() {
    let mut st = Storage::new();
    let mut node = st.node();
    let mut env = Env::default();
    let load = |node: &mut Node<'_>, env: &mut Env, text: &str| {
        build(
            node,
            env,
            "two.conf",
            text,
            &Options::default(),
            &mut NoIncludes,
        )
        .unwrap();
    };
    load(&mut node, &mut env, TWO);
    node.handle(Instant::ZERO, Input::Start);
    drain(&mut node);
    // Failing from the start: after two runs (fall 2) A is at 150 - 60.
    let out = run_scripts(&mut node, Instant::from_secs(10), false);
    let a = InstanceId(0);
    assert!(
        out.iter()
            .any(|(_, o)| matches!(o, Output::ScriptChanged { up: false, .. }))
    );
    assert_eq!(node.instance(a).unwrap().effective_priority(), 90);
    let state = node.instance(a).unwrap().state();

    // interval 2 -> 5: the script keeps failing, so nothing changes.
    load(
        &mut node,
        &mut env,
        &TWO.replace("interval 2", "interval 5"),
    );
    let out = drain(&mut node);
    assert!(
        !out.iter().any(|o| matches!(
            o,
            Output::ScriptChanged { .. }
                | Output::Vrrp {
                    event: vrrp::Output::StateChanged { .. }
                        | vrrp::Output::Advert { priority: 150 },
                    ..
                }
        )),
        "{out:?}"
    );
    assert_eq!(node.instance(a).unwrap().effective_priority(), 90);
    let script = node
        .script_by_key(vrlb_core::node::build::name_key("chk"))
        .unwrap();
    assert!(!node.script(script).unwrap().is_up(), "its penalty stays");
    // It runs again at once, then every 5 s; still failing, still 90.
    let out = run_scripts(&mut node, Instant::from_secs(21), false);
    let runs: Vec<u64> = out
        .iter()
        .filter(|(_, o)| matches!(o, Output::RunScript { .. }))
        .map(|(t, _)| t.as_millis())
        .collect();
    assert_eq!(runs, [10_000, 15_000, 20_000]);
    assert!(transitions(&out.iter().map(|x| x.1).collect::<Vec<_>>()).is_empty());
    assert_eq!(node.instance(a).unwrap().effective_priority(), 90);
    assert_eq!(node.instance(a).unwrap().state(), state);
}
