//! The extension on a node built from a configuration, following real
//! processes: `sleep` under a name of its own is started and
//! killed, and the node's counts follow through the process events
//! connector (root, the host's PID namespace), or through `/proc` scans
//! without it.

use std::collections::VecDeque;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration as StdDuration;

use mio::{Events, Poll};
use vrlb_core::node::build::name_key;
use vrlb_core::node::{InstanceId, Output};

use super::*;
use crate::daemon::clock::Clock;
use crate::daemon::event_loop::{DaemonNode, test_node, token_base};

struct Loop {
    clock: Clock,
    poll: Poll,
    node: DaemonNode,
    watch: Vec<Box<dyn Extension>>,
    pending: VecDeque<Output>,
}

impl Loop {
    fn new(text: &str, watch: ProcessWatch) -> Loop {
        let clock = Clock::new();
        let mut watch: Vec<Box<dyn Extension>> = vec![Box::new(watch)];
        let node = test_node(text, &mut watch, clock.now());
        let mut l = Loop {
            clock,
            poll: Poll::new().unwrap(),
            node,
            watch,
            pending: VecDeque::new(),
        };
        l.with(|e, ctx| {
            e.start(ctx).unwrap();
            e.reloaded(ctx);
        });
        l
    }

    fn with(&mut self, f: impl FnOnce(&mut dyn Extension, &mut Context<'_>)) {
        let mut ctx = Context {
            node: &mut self.node,
            now: self.clock.now(),
            outputs: &mut self.pending,
            registry: self.poll.registry(),
            token_base: token_base(0),
        };
        f(self.watch[0].as_mut(), &mut ctx);
    }

    /// The count of tracked process `name`.
    fn count(&self, name: &str) -> Option<u32> {
        let id = self.node.process_by_key(name_key(name))?;
        self.node.process(id)?.count()
    }

    /// Runs the loop until `name` counts `want`, for at most 5 s.
    fn wait_for(&mut self, name: &str, want: u32) {
        let end = std::time::Instant::now() + StdDuration::from_secs(5);
        let mut events = Events::with_capacity(8);
        while self.count(name) != Some(want) {
            assert!(
                std::time::Instant::now() < end,
                "{name}: {:?} running, want {want}",
                self.count(name)
            );
            let _ = self
                .poll
                .poll(&mut events, Some(StdDuration::from_millis(50)));
            if !events.is_empty() {
                self.with(|e, ctx| e.ready(CONNECTOR, true, false, ctx));
            }
            let now = self.clock.now();
            if self.watch[0].poll_timeout().is_some_and(|t| t <= now) {
                self.with(|e, ctx| e.handle_timeout(ctx));
            }
            self.pending.clear();
            while self.node.poll_output().is_some() {}
        }
    }

    fn priority(&self) -> u8 {
        self.node
            .instance(InstanceId(0))
            .unwrap()
            .effective_priority()
    }
}

/// `sleep` under the name `name` (a symbolic link: the kernel names a
/// process after the path it was started by; a copy would be a file
/// written while other tests fork, which exec refuses while a child holds
/// it open).
fn sleeper(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::os::unix::fs::symlink("/bin/sleep", &path).expect("link /bin/sleep");
    path
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(path: &Path, name: &str) -> String {
    format!(
        "vrrp_track_process by_name {{
    process {name}
    quorum 2
}}
vrrp_track_process by_command {{
    process {path} 300
}}
vrrp_instance A {{
    interface vrlb-none0
    virtual_router_id 1
    priority 100
    virtual_ipaddress {{
        192.0.2.100
    }}
    track_process {{
        by_name weight -30
        by_command weight -20
    }}
}}
",
        path = path.display()
    )
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts, counts and stops processes; `watch` sees them.
fn follow(watch: ProcessWatch, tag: &str, connector: bool) {
    // Unique per run: no other process on the machine bears the name.
    let name = format!("vrlbtp{tag}{}", std::process::id() % 100_000);
    let dir = TempDir(std::env::temp_dir().join(&name));
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = sleeper(&dir.0, &name);
    let mut l = Loop::new(&config(&path, &name), watch);
    assert_eq!(
        l.watch[0].poll_timeout().is_none(),
        connector,
        "scans are scheduled only without the connector"
    );
    l.wait_for("by_name", 0);
    l.wait_for("by_command", 0);
    assert_eq!(l.priority(), 50, "neither runs");

    let a = Killed(Command::new(&path).arg("300").spawn().unwrap());
    l.wait_for("by_name", 1);
    l.wait_for("by_command", 1);
    let b = Killed(Command::new(&path).arg("301").spawn().unwrap());
    l.wait_for("by_name", 2);
    l.wait_for("by_command", 1);
    assert_eq!(l.priority(), 100, "quorum 2 by name, the 300 by command");

    drop(a);
    l.wait_for("by_name", 1);
    l.wait_for("by_command", 0);
    assert_eq!(l.priority(), 50);
    drop(b);
    l.wait_for("by_name", 0);
}

#[test]
fn counts_follow_processes_through_the_connector() {
    if !crate::test_netns::root("the process events connector") {
        return;
    }
    let watch = ProcessWatch::new();
    follow(watch, "c", true);
}

#[test]
fn counts_follow_processes_by_scanning_proc_without_the_connector() {
    // As after a failed connector open: the extension scans instead.
    let watch = ProcessWatch {
        rescan_at: Some(Instant::ZERO),
        ..ProcessWatch::default()
    };
    follow(watch, "s", false);
}
