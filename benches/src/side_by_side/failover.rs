//! Measurement 1: failover. Two directors with the same configuration
//! (equal priority 100, so a restarted director stays backup) and a client
//! on one bridge, once for vrlb and once for keepalived, side by side.
//! A trial stops the master (a crash: SIGKILL right after the client sees
//! one of its adverts, so the backup waits out its whole
//! Master_Down_Interval, and its switch port taken
//! down so the VIP it leaves behind answers nothing; or a graceful stop:
//! SIGTERM) and times how long until a client probe through the VIP is
//! answered again. Trials alternate between the two daemons; the stopped
//! director is restarted as a backup and left to settle while the other
//! daemon's trial runs.
//!
//! When tcpdump and tshark are installed, each pair's client port is
//! captured for the whole run and every trial is cut into its steps
//! (`capture`), so the report says where the time went.
//!
//! Owns the failover labs and their trial loop; the numbers are summarised
//! by `stats` and printed by `report`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use vrlb_tests::netns::{Lab, has_addr};

use super::capture::{self, Capture, Steps};
use super::conf::{Instance, file};
use super::daemon::{self, Daemon, Kind, State};
use super::probe::{AdvertWatch, Prober, Responder};
use super::stats::{master_down_us, skew_time_us};
use super::topology::{Topology, director_addr};

/// The VIP both pairs serve (each on its own bridge).
pub const VIP: &str = "192.0.2.240";
/// The echo service's port.
const PORT: u16 = 7007;
/// Both directors' priority.
pub const PRIORITY: u8 = 100;
/// The instance's name in the logs.
const NAME: &str = "VI_1";
/// Consecutive failed trials after which a cell is abandoned.
const MAX_FAILURES: usize = 3;

/// An advert setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// For tables.
    pub label: &'static str,
    /// For `--only`-style selection and file names.
    pub key: &'static str,
    /// VRRP version.
    pub version: u8,
    /// `advert_int` as written in the configuration.
    pub advert_int: &'static str,
    /// The same, as a duration.
    pub interval: Duration,
    /// How often the client probes (the figures' resolution).
    pub probe_every: Duration,
}

/// The three settings of issue 8.
pub const SETTINGS: [Setting; 3] = [
    Setting {
        label: "VRRPv2, 1 s adverts",
        key: "v2-1s",
        version: 2,
        advert_int: "1",
        interval: Duration::from_secs(1),
        probe_every: Duration::from_millis(1),
    },
    Setting {
        label: "VRRPv3, 100 ms adverts",
        key: "v3-100ms",
        version: 3,
        advert_int: "0.1",
        interval: Duration::from_millis(100),
        probe_every: Duration::from_millis(1),
    },
    Setting {
        label: "VRRPv3, 10 ms adverts",
        key: "v3-10ms",
        version: 3,
        advert_int: "0.01",
        interval: Duration::from_millis(10),
        probe_every: Duration::from_micros(100),
    },
];

impl Setting {
    /// Master_Down_Interval of the backup.
    pub fn master_down(&self) -> Duration {
        Duration::from_micros(master_down_us(
            self.version,
            PRIORITY,
            self.interval.as_micros() as u64,
        ))
    }

    /// Skew_Time of the backup.
    pub fn skew(&self) -> Duration {
        Duration::from_micros(skew_time_us(
            self.version,
            PRIORITY,
            self.interval.as_micros() as u64,
        ))
    }

    /// How long a restarted backup is left before the next trial on its
    /// pair: two adverts heard.
    fn settle(&self) -> Duration {
        2 * self.interval + Duration::from_millis(100)
    }
}

/// How the master is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGKILL (and the director cut off).
    Crash,
    /// SIGTERM: priority-0 advert, VIP removed.
    Graceful,
}

impl Stop {
    /// For tables.
    pub fn label(self) -> &'static str {
        match self {
            Stop::Crash => "kill -9",
            Stop::Graceful => "graceful stop",
        }
    }

    /// The RFC's bound: a crash is noticed after Master_Down_Interval, a
    /// priority-0 advert after Skew_Time.
    pub fn bound(self, s: &Setting) -> Duration {
        match self {
            Stop::Crash => s.master_down(),
            Stop::Graceful => s.skew(),
        }
    }
}

/// The trials of one daemon at one setting and one way of stopping.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The setting.
    pub setting: Setting,
    /// How the master was stopped.
    pub stop: Stop,
    /// Which daemon.
    pub kind: Kind,
    /// Outage of each successful trial.
    pub samples: Vec<Duration>,
    /// What went wrong in the others.
    pub failures: Vec<String>,
    /// Where each successful trial's time went, in the order of
    /// `samples` (empty without a capture).
    pub steps: Vec<Steps>,
    /// When each successful trial sent its signal and which director was
    /// master, for the capture.
    marks: Vec<(SystemTime, usize)>,
}

/// One pair of directors running one kind of daemon, with its client.
struct Pair {
    kind: Kind,
    topo: Topology,
    responders: [Responder; 2],
    prober: Prober,
    watch: AdvertWatch,
    daemons: [Option<Daemon>; 2],
    conf: PathBuf,
    dir: PathBuf,
    vrlb: PathBuf,
    runs: u32,
    capture: Option<Capture>,
}

impl Pair {
    fn new(lab: &mut Lab, kind: Kind, dir: &Path, vrlb: &Path) -> Result<Pair, String> {
        let prefix = if kind == Kind::Vrlb { "v" } else { "k" };
        let topo = Topology::build(lab, prefix, 1, true);
        let r = |d: usize| {
            Responder::start(&topo.directors[d], PORT).map_err(|e| format!("echo responder: {e}"))
        };
        let responders = [r(0)?, r(1)?];
        let target = SocketAddr::new(VIP.parse().expect("VIP"), PORT);
        let client = topo.client.clone().expect("client namespace");
        let prober = Prober::new(&client, target).map_err(|e| format!("prober: {e}"))?;
        let local = super::topology::CLIENT.parse().expect("client address");
        let watch = AdvertWatch::new(&client, local).map_err(|e| format!("advert watch: {e}"))?;
        // The client's switch port sees every frame the client does.
        let capture = if Capture::available() {
            let file = dir.join(format!("{prefix}-client.pcap"));
            Some(Capture::start(lab, &topo.sw, "cl0", &file)?)
        } else {
            None
        };
        Ok(Pair {
            kind,
            topo,
            responders,
            prober,
            watch,
            daemons: [None, None],
            conf: dir.join(format!("{prefix}.conf")),
            dir: dir.to_path_buf(),
            vrlb: vrlb.to_path_buf(),
            runs: 0,
            capture,
        })
    }

    /// Stops whatever runs, clears the VIP, writes `s`'s configuration.
    fn configure(&mut self, lab: &mut Lab, s: &Setting) {
        self.stop_all(lab);
        let instance = Instance {
            name: NAME.into(),
            iface: "eth0".into(),
            vrid: 51,
            priority: PRIORITY,
            advert_int: s.advert_int.into(),
            vips: vec![VIP.parse().expect("VIP")],
        };
        std::fs::write(&self.conf, file(s.version, &[instance])).expect("write configuration");
    }

    fn stop_all(&mut self, lab: &mut Lab) {
        for d in 0..2 {
            if let Some(daemon) = self.daemons[d].take() {
                daemon.terminate();
                daemon.reap(lab);
            }
            self.topo.drop_addr(d, VIP);
            self.responders[d].silence(false);
        }
    }

    fn start(&mut self, lab: &mut Lab, d: usize) -> &Daemon {
        self.runs += 1;
        let name = format!("{}{d}-{}", self.kind.name(), self.runs);
        let daemon = daemon::start(
            lab,
            self.kind,
            &self.vrlb,
            &self.topo.directors[d],
            &self.conf,
            &self.dir,
            &name,
        );
        self.daemons[d].insert(daemon)
    }

    fn holds(&self, d: usize) -> bool {
        has_addr(&self.topo.directors[d], VIP)
    }

    fn log_tail(&self) -> String {
        let mut out = String::new();
        for d in self.daemons.iter().flatten() {
            let text = d.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(8);
            out.push_str(&format!(
                "--- {}:\n{}\n",
                d.log.display(),
                lines[from..].join("\n")
            ));
        }
        out
    }

    /// Starts what is missing and waits until exactly one director is
    /// master, holds the VIP and answers, and the other is a settled
    /// backup. Returns the master's index.
    fn ready(&mut self, lab: &mut Lab, s: &Setting) -> Result<usize, String> {
        let long = 3 * s.master_down() + Duration::from_secs(3);
        if self.daemons.iter().all(Option::is_none)
            && !self.start(lab, 0).wait_state(NAME, State::Master, long)
        {
            return Err(format!(
                "director 0 never became master\n{}",
                self.log_tail()
            ));
        }
        for d in 0..2 {
            if self.daemons[d].is_none()
                && !self
                    .start(lab, d)
                    .wait_state(NAME, State::Backup, Duration::from_secs(5))
            {
                return Err(format!(
                    "director {d} never logged BACKUP\n{}",
                    self.log_tail()
                ));
            }
        }
        let newest = self
            .daemons
            .iter()
            .flatten()
            .map(|d| d.started)
            .max()
            .expect("running");
        let settled = newest + s.settle();
        let now = Instant::now();
        if settled > now {
            std::thread::sleep(settled - now);
        }
        let end = Instant::now() + long;
        loop {
            let states: Vec<Option<State>> = self
                .daemons
                .iter()
                .flatten()
                .map(|d| d.state(NAME))
                .collect();
            let holders: Vec<usize> = (0..2).filter(|&d| self.holds(d)).collect();
            if let [m] = holders[..]
                && states[m] == Some(State::Master)
                && states[1 - m] == Some(State::Backup)
                && (self.prober.once(Duration::from_millis(100))
                    || self.prober.once(Duration::from_millis(300)))
            {
                return Ok(m);
            }
            if Instant::now() > end {
                return Err(format!(
                    "no steady master: states {states:?}, VIP on {holders:?}\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One trial: stops master `m` and times the outage.
    fn trial(
        &mut self,
        lab: &mut Lab,
        s: &Setting,
        stop: Stop,
        m: usize,
    ) -> Result<(Duration, SystemTime), String> {
        let limit = 3 * s.master_down() + Duration::from_secs(2);
        // A crash right after the master's advert: every trial waits out
        // the backup's whole Master_Down_Interval, whatever the phase of
        // the advert timer (otherwise uniform over one interval).
        let src = director_addr(m, 0).parse().expect("address");
        if stop == Stop::Crash && !self.watch.next_from(src, 3 * s.interval) {
            return Err(format!(
                "no advert from the master {src} within {:?}\n{}",
                3 * s.interval,
                self.log_tail()
            ));
        }
        let daemon = self.daemons[m].take().expect("master running");
        let wall = SystemTime::now();
        let t0 = Instant::now();
        self.responders[m].silence(true);
        match stop {
            Stop::Crash => {
                daemon.crash();
                self.topo.link(m, false);
            }
            Stop::Graceful => daemon.terminate(),
        }
        let outage = self.prober.outage(t0, s.probe_every, limit);
        let log = daemon.log.clone();
        daemon.reap(lab);
        if stop == Stop::Crash {
            self.topo.link(m, true);
        }
        self.topo.drop_addr(m, VIP);
        self.responders[m].silence(false);
        outage.map(|d| (d, wall)).ok_or_else(|| {
            format!(
                "no answer within {limit:?} (old master's log {})\n{}",
                log.display(),
                self.log_tail()
            )
        })
    }

    /// Restarts the director stopped by the last trial, as a backup.
    fn restart(&mut self, lab: &mut Lab) -> Result<(), String> {
        for d in 0..2 {
            if self.daemons[d].is_none()
                && !self
                    .start(lab, d)
                    .wait_state(NAME, State::Backup, Duration::from_secs(5))
            {
                return Err(format!(
                    "director {d} never logged BACKUP after a restart\n{}",
                    self.log_tail()
                ));
            }
        }
        Ok(())
    }
}

/// Runs `trials` trials per daemon, setting and stop; `progress` gets one
/// line per trial.
pub fn run(
    lab: &mut Lab,
    dir: &Path,
    vrlb: &Path,
    settings: &[Setting],
    trials: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Cell>, String> {
    let mut pairs = Vec::new();
    for kind in Kind::BOTH {
        pairs.push(Pair::new(lab, kind, dir, vrlb)?);
    }
    let mut cells = Vec::new();
    for s in settings {
        for pair in &mut pairs {
            pair.configure(lab, s);
        }
        for stop in [Stop::Crash, Stop::Graceful] {
            let mut row: Vec<Cell> = Kind::BOTH
                .iter()
                .map(|&kind| Cell {
                    setting: *s,
                    stop,
                    kind,
                    samples: Vec::new(),
                    failures: Vec::new(),
                    steps: Vec::new(),
                    marks: Vec::new(),
                })
                .collect();
            for t in 0..trials {
                // Alternate which daemon goes first, so neither always
                // runs while the other's restarted backup settles.
                let order: [usize; 2] = if t % 2 == 0 { [0, 1] } else { [1, 0] };
                for i in order {
                    let pair = &mut pairs[i];
                    let cell = &mut row[i];
                    if cell.failures.len() >= MAX_FAILURES {
                        continue;
                    }
                    let result = pair
                        .ready(lab, s)
                        .and_then(|m| pair.trial(lab, s, stop, m).map(|(d, w)| (d, w, m)))
                        .and_then(|took| pair.restart(lab).map(|()| took));
                    let line = match &result {
                        Ok((took, ..)) => format!("{:>10.2} ms", took.as_secs_f64() * 1e3),
                        Err(e) => format!("FAILED: {}", e.lines().next().unwrap_or("")),
                    };
                    progress(&format!(
                        "failover  {:<22} {:<13} trial {:>2}/{trials}  {:<10} {line}   (bound {:.1} ms)",
                        s.label,
                        stop.label(),
                        t + 1,
                        pair.kind.name(),
                        stop.bound(s).as_secs_f64() * 1e3
                    ));
                    match result {
                        Ok((took, wall, m)) => {
                            cell.samples.push(took);
                            cell.marks.push((wall, m));
                        }
                        Err(e) => {
                            eprintln!("{e}");
                            cell.failures.push(e);
                            // Start over from a clean pair.
                            pair.configure(lab, s);
                        }
                    }
                }
            }
            cells.extend(row);
        }
    }
    for pair in &mut pairs {
        pair.stop_all(lab);
    }
    for pair in &mut pairs {
        let Some(c) = pair.capture.take() else {
            continue;
        };
        let frames = c.finish(lab)?;
        let addr = |d: usize| director_addr(d, 0).parse().expect("address");
        for cell in cells.iter_mut().filter(|c| c.kind == pair.kind) {
            cell.steps = cell
                .marks
                .iter()
                .zip(&cell.samples)
                .map(|(&(wall, m), &outage)| {
                    let trial = capture::Trial {
                        t0: capture::epoch(wall),
                        outage,
                        graceful: cell.stop == Stop::Graceful,
                        old: addr(m),
                        new: addr(1 - m),
                    };
                    capture::steps(&frames, &trial, VIP.parse().expect("VIP"))
                })
                .collect();
        }
    }
    Ok(cells)
}
