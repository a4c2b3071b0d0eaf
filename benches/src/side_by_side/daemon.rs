//! The two daemons under test, started the same way on the same
//! configuration: `vrlb run` and Debian's keepalived (VRRP subsystem only,
//! `-P`, since the kernel here has no IPVS). Starts them in a namespace
//! through the lab, crashes or stops them, and reads their state from
//! their logs. Never measures anything itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vrlb_tests::netns::Lab;

use super::procfs;

/// Which implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `vrlb run`.
    Vrlb,
    /// Debian's keepalived.
    Keepalived,
}

impl Kind {
    /// Both, in the order trials alternate.
    pub const BOTH: [Kind; 2] = [Kind::Vrlb, Kind::Keepalived];

    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Vrlb => "vrlb",
            Kind::Keepalived => "keepalived",
        }
    }
}

/// A VRRP state as the logs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// BACKUP.
    Backup,
    /// MASTER.
    Master,
    /// INIT, FAULT, STOP.
    Other,
}

/// A running daemon.
#[derive(Debug)]
pub struct Daemon {
    /// Which one.
    pub kind: Kind,
    /// Its (parent) pid.
    pub pid: u32,
    /// When it was started.
    pub started: Instant,
    /// Its stdout and stderr.
    pub log: PathBuf,
    /// keepalived's VRRP child pid file.
    vrrp_pid_file: PathBuf,
}

/// Starts `kind` in `ns` on `conf`; its files are `dir/NAME.*`.
pub fn start(
    lab: &mut Lab,
    kind: Kind,
    vrlb: &Path,
    ns: &str,
    conf: &Path,
    dir: &Path,
    name: &str,
) -> Daemon {
    let file = |ext: &str| dir.join(format!("{name}.{ext}"));
    let log = file("log");
    let pid_file = file("pid");
    let vrrp_pid_file = file("vpid");
    let _ = std::fs::remove_file(&vrrp_pid_file);
    let (conf_s, pid_s, vpid_s, state_s) = (
        conf.display().to_string(),
        pid_file.display().to_string(),
        vrrp_pid_file.display().to_string(),
        file("vips").display().to_string(),
    );
    let vrlb_s = vrlb.display().to_string();
    let cmd: Vec<&str> = match kind {
        Kind::Vrlb => vec![
            &vrlb_s,
            "run",
            "-f",
            &conf_s,
            "-p",
            &pid_s,
            "--state-file",
            &state_s,
        ],
        // -P: VRRP only; -n: foreground; -l: log to the console; -D: detailed
        // log; its own pid files, since several run on one machine.
        Kind::Keepalived => vec![
            "keepalived",
            "-P",
            "-n",
            "-l",
            "-D",
            "-f",
            &conf_s,
            "-p",
            &pid_s,
            "-r",
            &vpid_s,
        ],
    };
    let started = Instant::now();
    let pid = lab.spawn(ns, &cmd, &log);
    Daemon {
        kind,
        pid,
        started,
        log,
        vrrp_pid_file,
    }
}

impl Daemon {
    /// keepalived's VRRP child, once it has written its pid file.
    fn vrrp_child(&self) -> Option<u32> {
        std::fs::read_to_string(&self.vrrp_pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Every process of this daemon (keepalived: parent and children).
    pub fn pids(&self) -> Vec<u32> {
        procfs::family(self.pid)
    }

    /// Crashes it at once (SIGKILL). keepalived's VRRP child resigns
    /// gracefully when its parent dies, and the parent restarts a dead
    /// child, so the parent is frozen (SIGSTOP) first, then the child and
    /// the parent are killed.
    pub fn crash(&self) {
        let pid = Pid::from_raw(self.pid as i32);
        if self.kind == Kind::Keepalived {
            let _ = kill(pid, Signal::SIGSTOP);
            if let Some(child) = self.vrrp_child() {
                let _ = kill(Pid::from_raw(child as i32), Signal::SIGKILL);
            }
        }
        let _ = kill(pid, Signal::SIGKILL);
    }

    /// Asks it to stop gracefully (SIGTERM: both resign with priority 0
    /// and remove their VIPs).
    pub fn terminate(&self) {
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
    }

    /// Waits until it has exited (a signal was sent already) and reaps it
    /// and keepalived's orphaned child (this process is their subreaper).
    pub fn reap(self, lab: &mut Lab) {
        let child = self.vrrp_child();
        // Signal 0 sends nothing: the lab only waits and reaps.
        lab.signal(self.pid, "0");
        if let Some(c) = child {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
                match waitpid(Pid::from_raw(c as i32), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(5)),
                    _ => break,
                }
            }
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The state it last logged for instance `name`: vrlb's
    /// `NAME: A -> B (Reason)`, keepalived's `(NAME) Entering B STATE`.
    pub fn state(&self, name: &str) -> Option<State> {
        last_state(self.kind, &self.log_text(), name)
    }

    /// Waits until it logs `want` for `name`.
    pub fn wait_state(&self, name: &str, want: State, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.state(name) == Some(want) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }
}

/// The last state logged for instance `name` in `text`.
pub fn last_state(kind: Kind, text: &str, name: &str) -> Option<State> {
    let vrlb = format!("{name}: ");
    let ka = format!("({name}) Entering ");
    let word = text.lines().rev().find_map(|l| match kind {
        Kind::Vrlb => {
            let rest = &l[l.find(&vrlb)? + vrlb.len()..];
            let (_, to) = rest.split_once(" -> ")?;
            to.split_whitespace().next()
        }
        Kind::Keepalived => {
            let rest = &l[l.find(&ka)? + ka.len()..];
            rest.contains(" STATE")
                .then(|| rest.split_whitespace().next())?
        }
    })?;
    Some(match word {
        "BACKUP" => State::Backup,
        "MASTER" => State::Master,
        _ => State::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_from_both_logs() {
        let v = "    0.000 INFO  vrrp vrid 51: Init -> Backup (Start)\n    0.000 INFO  VI_1: INIT -> BACKUP (Start)\n    0.037 INFO  VI_1: BACKUP -> MASTER (MasterDown)\n";
        assert_eq!(last_state(Kind::Vrlb, v, "VI_1"), Some(State::Master));
        assert_eq!(last_state(Kind::Vrlb, v, "VI_2"), None);
        let k = "x: (VI_1) Entering BACKUP STATE (init)\nx: (VI_1) Entering MASTER STATE\nx: (VI_1) Entering BACKUP STATE\nx: (VI_1) removing VIPs.\n";
        assert_eq!(last_state(Kind::Keepalived, k, "VI_1"), Some(State::Backup));
        assert_eq!(
            last_state(Kind::Keepalived, "(VI_1) Entering FAULT STATE", "VI_1"),
            Some(State::Other)
        );
    }
}
