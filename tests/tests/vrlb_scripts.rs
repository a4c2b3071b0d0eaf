//! Scripts in a running `vrlb run` (issue 6, Build 3), with a second vrlb
//! as the peer:
//!
//! - `notify_master`, `notify_backup`, `notify_fault`, `notify_stop` run
//!   as written, and `notify` with keepalived's four arguments appended
//!   (keepalived.conf(5), `notify`: "INSTANCE"|"GROUP", the name, the
//!   target state, the priority), at each transition;
//! - a notify script that hangs does not block the loop (the instance
//!   goes on changing state and running its other scripts) and is killed,
//!   with its whole process group, at the daemon's notify timeout (30 s,
//!   `NOTIFY_TIMEOUT` in driver-linux/src/daemon/mod.rs);
//! - a `vrrp_script` with `weight -60` that starts failing lowers the
//!   priority after `fall` failures (no sooner), which moves mastership to
//!   the peer; after `rise` successes the priority returns and the
//!   instance preempts; a `vrrp_script` without weight puts it in FAULT.

use std::path::Path;
use std::time::{Duration, Instant};

use vrlb_tests::vrrp_lab::{
    Instance, Kind, Running, VrrpLab, counter, expect, log, master_down, state, wait_state,
};

const LONG: Duration = Duration::from_secs(12);
const VIP: &str = "192.0.2.240";
const INTERVAL: Duration = Duration::from_secs(1);
/// The daemon's notify timeout.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// Script start-up, the 20 ms log poll and a loaded machine.
const SLACK: Duration = Duration::from_millis(700);
const FALL: u32 = 2;
const RISE: u32 = 2;

fn is(d: &Running, want: &str) -> bool {
    state(d, "VI_1").as_deref() == Some(want)
}

/// The records the notify scripts wrote: `ARGC|ARGS`.
fn notes(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Whether process `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let state = s.rsplit_once(')')?.1.split_whitespace().next()?.to_string();
            Some(state != "Z")
        })
        .unwrap_or(false)
}

/// Waits for `line` of the log; how long after `since` it came.
fn wait_log(d: &Running, line: &str, since: Instant, timeout: Duration) -> Duration {
    expect(timeout, &format!("log line {line:?}"), &[d], || {
        log(d).contains(line)
    });
    since.elapsed()
}

#[test]
fn notify_scripts_get_keepalived_arguments_never_block_and_time_out_and_vrrp_script_weight_moves_mastership()
 {
    let Some(mut lab) = VrrpLab::new(&[]) else {
        return;
    };
    let dir = lab.dir.0.clone();
    let notes_file = dir.join("notes.txt");
    let note = dir.join("note.sh");
    let hang = dir.join("hang.sh");
    std::fs::write(
        &note,
        format!(
            "#!/bin/sh\nprintf '%s|%s\\n' \"$#\" \"$*\" >> {}\n",
            notes_file.display()
        ),
    )
    .unwrap();
    // Records itself, then waits for a grandchild: killing only the
    // script would leave `sleep` behind.
    std::fs::write(
        &hang,
        format!(
            "#!/bin/sh\nprintf '%s|%s\\n' \"$#\" \"$*\" >> {notes}\nsleep 300 &\n\
             echo \"$$ $!\" > {dir}/hang.$$\nwait\n",
            notes = notes_file.display(),
            dir = dir.display()
        ),
    )
    .unwrap();
    for f in [&note, &hang] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let fail = dir.join("fail");
    let fault = dir.join("fault");
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
    let extra = format!(
        "  track_script {{\n    chk\n    chk_fault\n  }}\n\
         \x20 notify_master \"{note} master\"\n\
         \x20 notify_backup \"{hang} backup\"\n\
         \x20 notify_fault \"{note} fault\"\n\
         \x20 notify_stop \"{note} stop\"\n\
         \x20 notify {note}\n}}\n",
        note = note.display(),
        hang = hang.display()
    );
    let conf0 = format!(
        "global_defs {{\n  script_user root\n}}\n\
         vrrp_script chk {{\n  script \"/usr/bin/test ! -e {fail}\"\n  interval 1\n  weight -60\n  fall {FALL}\n  rise {RISE}\n}}\n\
         vrrp_script chk_fault {{\n  script \"/usr/bin/test ! -e {fault}\"\n  interval 1\n  fall 1\n  rise 1\n}}\n\
         {}{extra}",
        block.strip_suffix("}\n").unwrap(),
        fail = fail.display(),
        fault = fault.display(),
    );
    let d0 = lab.start(Kind::Vrlb, 0, &conf0);
    let started = Instant::now();
    expect(LONG, "director 0 master at 150", &[&d0], || {
        is(&d0, "MASTER") && counter(&d0, "VI_1", "priority") == Some(150)
    });
    let c1 = Instance {
        priority: 100,
        ..base.clone()
    };
    let d1 = lab.start(Kind::Vrlb, 1, &c1.conf(&lab.ifs[1].clone()));
    expect(LONG, "director 1 backup", &[&d0, &d1], || is(&d1, "BACKUP"));

    // The start (INIT -> BACKUP) ran the hanging notify_backup; it is
    // still running, and the daemon went on to MASTER regardless.
    let hung: Vec<u32> = {
        let mut pids = Vec::new();
        expect(LONG, "the hanging script started", &[&d0], || {
            let found = std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                // hang.<pid>, written by the script (not hang.sh itself).
                .find(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .strip_prefix("hang.")
                        .is_some_and(|pid| pid.parse::<u32>().is_ok())
                });
            if let Some(e) = found
                && let Ok(text) = std::fs::read_to_string(e.path())
            {
                pids = text
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect();
            }
            pids.len() == 2
        });
        pids
    };
    assert!(hung.iter().all(|p| alive(*p)), "{hung:?}");
    expect(LONG, "notify_master and notify ran", &[&d0], || {
        let n = notes(&notes_file);
        n.contains(&"1|master".to_string()) && n.contains(&"4|INSTANCE VI_1 MASTER 150".to_string())
    });
    let n = notes(&notes_file);
    assert!(n.contains(&"1|backup".to_string()), "{n:?}");
    assert!(
        n.iter().any(|l| l.starts_with("4|INSTANCE VI_1 BACKUP ")),
        "{n:?}"
    );

    // chk starts failing: after FALL failures (one run per interval) the
    // priority drops to 90, below director 1's 100.
    let failed_at = Instant::now();
    std::fs::write(&fail, "").unwrap();
    let took = wait_log(&d0, "vrrp_script chk: failed: down", failed_at, LONG);
    eprintln!("chk down {took:?} after it started failing");
    assert!(
        took + Duration::from_millis(50) >= INTERVAL * (FALL - 1)
            && took <= INTERVAL * FALL + SLACK,
        "chk down after {took:?}, expected {:?}..={:?}",
        INTERVAL * (FALL - 1),
        INTERVAL * FALL
    );
    let down_at = Instant::now();
    expect(LONG, "priority 90", &[&d0], || {
        counter(&d0, "VI_1", "priority") == Some(90)
    });
    // Director 1 hears 90 < 100 and takes over once its Master_Down_Interval
    // passes without a higher priority.
    let bound = master_down(100, INTERVAL) + SLACK;
    let took = wait_state(&d1, "VI_1", "MASTER", LONG).map(|_| down_at.elapsed());
    eprintln!("director 1 master {took:?} after chk went down (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "director 1 master {took:?} after chk went down (bound {bound:?}):\n{}\n{}",
        log(&d0),
        log(&d1)
    );
    expect(LONG, "director 0 backup, notified", &[&d0], || {
        is(&d0, "BACKUP") && notes(&notes_file).contains(&"4|INSTANCE VI_1 BACKUP 90".to_string())
    });
    expect(LONG, "VIP on director 1 only", &[&d0, &d1], || {
        lab.holds(1, VIP) && !lab.holds(0, VIP)
    });

    // chk succeeds again: after RISE successes the priority is 150 and
    // director 0 preempts, while the first hanging notify_backup (and now a
    // second one) still runs.
    let rise_at = Instant::now();
    std::fs::remove_file(&fail).unwrap();
    let took = wait_log(&d0, "vrrp_script chk: succeeded: up", rise_at, LONG);
    eprintln!("chk up {took:?} after it started succeeding");
    assert!(
        took + Duration::from_millis(50) >= INTERVAL * (RISE - 1)
            && took <= INTERVAL * RISE + SLACK,
        "chk up after {took:?}, expected {:?}..={:?}",
        INTERVAL * (RISE - 1),
        INTERVAL * RISE
    );
    let up_at = Instant::now();
    // Its Master_Down timer was last armed by an advert it accepted while
    // at 90, so with 90's skew; director 1's adverts at 100 no longer
    // re-arm it.
    let bound = master_down(90, INTERVAL) + SLACK;
    let took = wait_state(&d0, "VI_1", "MASTER", LONG).map(|_| up_at.elapsed());
    eprintln!("director 0 master again {took:?} after chk came up (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "director 0 master {took:?} after chk came up (bound {bound:?}):\n{}",
        log(&d0)
    );
    expect(LONG, "director 1 yields", &[&d0, &d1], || {
        is(&d1, "BACKUP") && lab.holds(0, VIP) && !lab.holds(1, VIP)
    });
    assert!(
        hung.iter().all(|p| alive(*p)),
        "the first notify_backup ended early: {hung:?}\n{}",
        log(&d0)
    );
    let masters = notes(&notes_file)
        .iter()
        .filter(|l| *l == "4|INSTANCE VI_1 MASTER 150")
        .count();
    expect(LONG, "notify ran for the second MASTER", &[&d0], || {
        notes(&notes_file)
            .iter()
            .filter(|l| *l == "4|INSTANCE VI_1 MASTER 150")
            .count()
            >= masters.max(2)
    });

    // chk_fault (no weight) fails: FAULT at once, with notify_fault.
    let fault_at = Instant::now();
    std::fs::write(&fault, "").unwrap();
    let took = wait_state(&d0, "VI_1", "FAULT", LONG).map(|_| fault_at.elapsed());
    assert!(
        took.is_some_and(|t| t <= INTERVAL + SLACK),
        "FAULT {took:?} after chk_fault started failing:\n{}",
        log(&d0)
    );
    expect(LONG, "notify_fault and notify ran", &[&d0], || {
        let n = notes(&notes_file);
        n.contains(&"1|fault".to_string()) && n.contains(&"4|INSTANCE VI_1 FAULT 150".to_string())
    });
    expect(LONG, "director 1 takes over from the FAULT", &[&d1], || {
        is(&d1, "MASTER") && lab.holds(1, VIP)
    });

    // The first notify_backup is killed at the timeout, its `sleep` too.
    let timeout = NOTIFY_TIMEOUT + 2 * SLACK;
    let killed = vrlb_tests::netns::wait_until(timeout, || hung.iter().all(|p| !alive(*p)));
    let at = started.elapsed();
    eprintln!("the hanging notify_backup was gone {at:?} after the start");
    assert!(killed.is_some(), "{hung:?} still running after {at:?}");
    assert!(
        at + Duration::from_millis(200) >= NOTIFY_TIMEOUT && at <= NOTIFY_TIMEOUT + 2 * SLACK,
        "killed {at:?} after the start (timeout {NOTIFY_TIMEOUT:?})"
    );
    assert!(
        log(&d0).contains(&format!(
            "VI_1: notify '{} backup': failed or timed out",
            hang.display()
        )),
        "{}",
        log(&d0)
    );

    // SIGTERM: notify_stop, and notify with STOP.
    let status = lab.stop(&d0);
    assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
    let n = notes(&notes_file);
    assert!(n.contains(&"1|stop".to_string()), "{n:?}\n{}", log(&d0));
    assert!(
        n.iter().any(|l| l.starts_with("4|INSTANCE VI_1 STOP ")),
        "{n:?}"
    );
    eprintln!("notify records: {n:?}");
}
