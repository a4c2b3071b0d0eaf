//! `vrrp_track_process` in a running `vrlb run`, with a second vrlb as the
//! peer: a tracked process with `weight -60` that stops lowers the
//! priority (after `terminate_delay`), which moves mastership to the peer;
//! when it runs again the priority returns and the instance preempts; an
//! unweighted one puts the instance in FAULT while it is not running.
//!
//! The daemons run in network namespaces, where the kernel's process
//! events connector does not answer, so this also shows the fallback:
//! vrlb says so and scans `/proc` every second.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use vrlb_tests::vrrp_lab::{Instance, Kind, Running, VrrpLab, counter, expect, log, state};

const LONG: Duration = Duration::from_secs(12);
const VIP: &str = "192.0.2.240";
const TERMINATE_DELAY: Duration = Duration::from_secs(1);
/// The 1 s `/proc` scan, the log poll and a loaded machine.
const SLACK: Duration = Duration::from_millis(1700);

fn is(d: &Running, want: &str) -> bool {
    state(d, "VI_1").as_deref() == Some(want)
}

/// `sleep 300` running under `path`'s name.
struct Tracked(Child);

impl Tracked {
    fn start(path: &Path) -> Tracked {
        Tracked(Command::new(path).arg("300").spawn().expect("start sleep"))
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_tracked_process_that_stops_moves_mastership_and_an_unweighted_one_faults() {
    let Some(mut lab) = VrrpLab::new(&[]) else {
        return;
    };
    let dir = lab.dir.0.clone();
    // Names unique on the machine: the daemons see every process.
    let tag = std::process::id() % 100_000;
    let (web, db) = (format!("vrlbweb{tag}"), format!("vrlbdb{tag}"));
    let web_path = dir.join(&web);
    let db_path = dir.join(&db);
    for p in [&web_path, &db_path] {
        // The kernel names a process after the path it was started by.
        std::os::unix::fs::symlink("/bin/sleep", p).unwrap();
    }
    let mut web_proc = Some(Tracked::start(&web_path));
    let db_proc = Tracked::start(&db_path);

    let base = Instance {
        name: "VI_1",
        vrid: 51,
        priority: 150,
        version: 2,
        advert_int: "1",
        password: Some("secret"),
        vips: vec![format!("{VIP}/24")],
        nopreempt: false,
        unicast: None,
    };
    let block = base.conf(&lab.ifs[0].clone());
    let conf0 = format!(
        "vrrp_track_process web {{\n  process {web}\n  weight -60\n  terminate_delay {}\n}}\n\
         vrrp_track_process db {{\n  process {db_path} 300\n}}\n\
         {}  track_process {{\n    web\n    db\n  }}\n}}\n",
        TERMINATE_DELAY.as_secs(),
        block.strip_suffix("}\n").unwrap(),
        db_path = db_path.display(),
    );
    let d0 = lab.start(Kind::Vrlb, 0, &conf0);
    expect(LONG, "director 0 master at 150", &[&d0], || {
        is(&d0, "MASTER") && counter(&d0, "VI_1", "priority") == Some(150)
    });
    let l = log(&d0);
    assert!(
        l.contains("scanning /proc every 1s"),
        "the connector's absence is said: {l}"
    );
    assert!(l.contains("vrrp_track_process web: 1 running"), "{l}");
    let c1 = Instance {
        priority: 100,
        ..base.clone()
    };
    let d1 = lab.start(Kind::Vrlb, 1, &c1.conf(&lab.ifs[1].clone()));
    expect(LONG, "director 1 backup", &[&d0, &d1], || is(&d1, "BACKUP"));

    // web stops: after terminate_delay the priority drops to 90, below
    // director 1's 100, which preempts.
    let stopped = Instant::now();
    drop(web_proc.take());
    expect(LONG, "priority 90", &[&d0], || {
        counter(&d0, "VI_1", "priority") == Some(90)
    });
    let took = stopped.elapsed();
    assert!(
        took >= TERMINATE_DELAY && took <= TERMINATE_DELAY + SLACK,
        "down after {took:?}, terminate_delay {TERMINATE_DELAY:?}"
    );
    assert!(log(&d0).contains("vrrp_track_process web: 0 running: down"));
    expect(LONG, "director 1 takes over", &[&d0, &d1], || {
        is(&d1, "MASTER") && is(&d0, "BACKUP")
    });

    // web runs again: 150, director 0 preempts.
    drop(web_proc.replace(Tracked::start(&web_path)));
    expect(LONG, "director 0 master again", &[&d0, &d1], || {
        is(&d0, "MASTER") && counter(&d0, "VI_1", "priority") == Some(150) && is(&d1, "BACKUP")
    });

    // db (no weight) stops: FAULT; director 1 takes over at once.
    drop(db_proc);
    expect(LONG, "director 0 in FAULT", &[&d0, &d1], || {
        is(&d0, "FAULT") && is(&d1, "MASTER")
    });
    let db_again = Tracked::start(&db_path);
    expect(LONG, "director 0 back", &[&d0, &d1], || {
        is(&d0, "MASTER") && is(&d1, "BACKUP")
    });
    drop(db_again);
    drop(web_proc);
}
