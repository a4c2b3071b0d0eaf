//! `vrrp_track_process` through the build and the node: the counts the
//! driver reports move instances' priorities or put them in Fault, with
//! the delays, across reloads, and the parser's forms and errors.

mod common;

use common::world::World;
use vrlb_core::config::{self, NoIncludes, Options, ParamMatch, Sink, TrackProcessConf};
use vrlb_core::node::build::name_key;
use vrlb_core::node::{Input, InstanceId, Output, ProcessId};
use vrlb_core::time::{Duration, Instant};
use vrlb_core::vrrp::State;

const CONF: &str = "
vrrp_instance A {
    interface eth0
    virtual_router_id 1
    priority 150
    virtual_ipaddress {
        192.0.2.100
    }
    track_process {
        nginx weight -60
        haproxy
    }
}
vrrp_track_process nginx {
    process nginx
    quorum 2
    terminate_delay 1.5
}
vrrp_track_process haproxy {
    process /usr/sbin/haproxy -f /etc/haproxy.cfg
}
";

fn process(w: &World, name: &str) -> ProcessId {
    w.node
        .process_by_key(name_key(name))
        .unwrap_or_else(|| panic!("{name} is tracked"))
}

fn count(w: &mut World, name: &str, count: u32) {
    let process = process(w, name);
    w.input(Input::ProcessCount { process, count });
}

fn priority(w: &World) -> u8 {
    w.node.instance(InstanceId(0)).unwrap().effective_priority()
}

fn state(w: &World) -> State {
    w.node.instance(InstanceId(0)).unwrap().state()
}

/// Built, counted as the driver counts at start, started, master.
fn running(nginx: u32, haproxy: u32) -> World {
    let mut w = World::built(CONF);
    count(&mut w, "nginx", nginx);
    count(&mut w, "haproxy", haproxy);
    w.input(Input::Start);
    w.run_until(Instant::from_secs(5));
    w
}

#[test]
fn too_few_processes_lower_the_priority_after_the_terminate_delay() {
    let mut w = running(2, 1);
    assert_eq!(state(&w), State::Master);
    assert_eq!(priority(&w), 150);
    let nginx = process(&w, "nginx");

    count(&mut w, "nginx", 1);
    assert_eq!(priority(&w), 150, "terminate_delay 1.5 s first");
    w.run_until(Instant::from_millis(6400));
    assert_eq!(priority(&w), 150);
    w.run_until(Instant::from_millis(6500));
    assert_eq!(priority(&w), 90);
    assert_eq!(
        w.outputs(|o| match o {
            Output::ProcessChanged { process, up } if *process == nginx => Some(*up),
            _ => None,
        }),
        vec![(6500, false)]
    );

    // Back to quorum: no fork_delay, at once.
    w.now = Instant::from_secs(7);
    count(&mut w, "nginx", 3);
    assert_eq!(priority(&w), 150);

    // A restart within terminate_delay changes nothing.
    count(&mut w, "nginx", 0);
    w.run_until(Instant::from_secs(8));
    count(&mut w, "nginx", 2);
    w.run_until(Instant::from_secs(20));
    assert_eq!(priority(&w), 150);
}

#[test]
fn an_unweighted_process_faults_the_instance_and_the_start_count_decides() {
    let mut w = running(2, 0);
    assert_eq!(
        state(&w),
        State::Fault,
        "no haproxy at start: fault from the first count"
    );
    count(&mut w, "haproxy", 1);
    w.run_until(Instant::from_secs(10));
    assert_eq!(state(&w), State::Master);
    count(&mut w, "haproxy", 0);
    assert_eq!(state(&w), State::Fault);
}

#[test]
fn a_reload_keeps_counts_and_a_new_instance_sees_a_process_already_down() {
    let mut w = running(1, 1);
    w.run_until(Instant::from_secs(7));
    assert_eq!(priority(&w), 90, "one nginx of two");
    let with_b = format!(
        "{CONF}
vrrp_instance B {{
    interface eth1
    virtual_router_id 2
    priority 120
    virtual_ipaddress {{
        198.51.100.100
    }}
    track_process {{
        nginx weight -20
    }}
}}
"
    );
    w.reload(&with_b);
    assert_eq!(priority(&w), 90, "A keeps its penalty");
    let b = w.node.instance_by_key(name_key("B")).expect("B was added");
    assert_eq!(
        w.node.instance(b).unwrap().effective_priority(),
        100,
        "B starts with nginx down"
    );

    // quorum 1 now: the kept count of 1 passes at once (no fork_delay).
    w.reload(&with_b.replace("quorum 2", "quorum 1"));
    assert_eq!(priority(&w), 150);

    // Gone from the configuration: untracked, so up.
    w.reload(&CONF.replace("nginx weight -60", "").replace(
        "vrrp_track_process nginx {\n    process nginx\n    quorum 2\n    terminate_delay 1.5\n}",
        "",
    ));
    assert!(w.node.process_by_key(name_key("nginx")).is_none());
    assert_eq!(priority(&w), 150);
}

#[derive(Default)]
struct Collect {
    processes: Vec<String>,
}

impl Sink for Collect {
    fn vrrp_track_process(&mut self, p: &TrackProcessConf<'_>) -> Result<(), config::Kind> {
        self.processes.push(format!(
            "{} {:?} {:?} {:?} full={} w={} q={}..={} fork={:?} term={:?}",
            p.name,
            p.process,
            p.params.as_slice(),
            p.param_match,
            p.full_command,
            p.weight,
            p.quorum,
            p.quorum_max,
            p.fork_delay,
            p.terminate_delay
        ));
        Ok(())
    }
}

fn parse(text: &str) -> Result<Vec<String>, String> {
    let mut sink = Collect::default();
    config::parse(
        "t.conf",
        text,
        &Options::default(),
        &mut sink,
        &mut NoIncludes,
    )
    .map(|_| sink.processes)
    .map_err(|e| e.to_string())
}

#[test]
fn the_parser_reads_keepalived_forms() {
    let got = parse(
        "vrrp_track_process a {\n process \"/opt/my app\" -c \"x y\"\n param_match initial\n weight 10\n quorum_max 3\n delay 0.5\n}\n\
         vrrp_track_process b {\n process sshd\n quorum_max 0\n}\n\
         vrrp_track_process c {\n process java\n param_match\n full_command\n fork_delay 2\n}\n",
    )
    .unwrap();
    assert_eq!(
        got,
        vec![
            format!(
                "a \"/opt/my app\" [\"-c\", \"x y\"] {:?} full=true w=10 q=1..=3 fork={:?} term={:?}",
                ParamMatch::Initial,
                Duration::from_millis(500),
                Duration::from_millis(500)
            ),
            format!(
                "b \"sshd\" [] {:?} full=false w=0 q=0..=0 fork={:?} term={:?}",
                ParamMatch::Ignore,
                Duration::ZERO,
                Duration::ZERO
            ),
            format!(
                "c \"java\" [] {:?} full=true w=0 q=1..={} fork={:?} term={:?}",
                ParamMatch::Exact,
                u32::MAX,
                Duration::from_secs(2),
                Duration::ZERO
            ),
        ]
    );
}

#[test]
fn the_parser_names_what_is_wrong() {
    let cases = [
        (
            "vrrp_track_process a {\n weight 3\n}\n",
            "t.conf:1",
            "needs 'process'",
        ),
        (
            "vrrp_track_process a {\n process x\n quorum 3\n quorum_max 2\n}\n",
            "t.conf:3",
            "quorum",
        ),
        (
            "vrrp_track_process a {\n process x\n weight 300\n}\n",
            "t.conf:3",
            "-254..254",
        ),
        (
            "vrrp_track_process a {\n process x\n param_match fuzzy\n}\n",
            "t.conf:3",
            "initial or partial",
        ),
        (
            "vrrp_track_process a {\n process x\n delay 4000\n}\n",
            "t.conf:3",
            "3600",
        ),
        (
            "vrrp_track_process a {\n process x\n quorum 0\n}\n",
            "t.conf:3",
            "1..65535",
        ),
    ];
    for (text, at, what) in cases {
        let e = parse(text).expect_err(text);
        assert!(e.contains(at) && e.contains(what), "{text:?}: {e}");
    }
}

#[test]
fn a_track_process_naming_no_block_is_warned_and_not_tracked() {
    let text = "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  192.0.2.1\n }\n track_process {\n  nothing\n }\n}\n";
    let w = World::built(text);
    assert!(
        w.env
            .warnings
            .iter()
            .any(|m| m.contains(":8:") && m.contains("no vrrp_track_process of this name")),
        "{:?}",
        w.env.warnings
    );
    assert!(
        w.node
            .instance(InstanceId(0))
            .unwrap()
            .config()
            .tracks
            .is_empty()
    );
}

#[test]
fn reverse_turns_a_weight_and_weight_0_reverse_faults_while_running() {
    let text = "
vrrp_track_process plus {
    process a
    weight 20 reverse
}
vrrp_track_process gate {
    process b
}
vrrp_instance A {
    interface eth0
    virtual_router_id 1
    priority 150
    virtual_ipaddress {
        192.0.2.100
    }
    track_process {
        plus
        gate weight 0 reverse
    }
}
";
    let mut w = World::built(text);
    count(&mut w, "plus", 1);
    count(&mut w, "gate", 0);
    w.input(Input::Start);
    w.run_until(Instant::from_secs(5));
    assert_eq!(priority(&w), 130, "up with +20 reverse: 20 less");
    assert_eq!(
        state(&w),
        State::Master,
        "gate is down: reverse makes that fine"
    );
    count(&mut w, "plus", 0);
    assert_eq!(priority(&w), 150, "down: no adjustment");
    count(&mut w, "gate", 1);
    assert_eq!(
        state(&w),
        State::Fault,
        "weight 0 reverse: running means FAULT"
    );
}
