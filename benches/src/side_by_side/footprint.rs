//! Measurement 2: footprint at rest. A master and a backup director run
//! the same set of VRRP instances (the seed configuration, the seed's VRRP
//! alone, then 100 and 1000 generated instances over four interfaces),
//! vrlb and then keepalived on the same topology. The master starts
//! first; once it holds every VIP the backup starts; once the start-up
//! announcements are over (and the pair has stayed as it was), both
//! directors' processes are sampled at the start and the end of a fixed
//! window: memory (VmRSS, Pss) at the end, CPU time spent within the
//! window.
//!
//! Owns the footprint lab and its timeline; `procfs` reads the numbers.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vrlb_tests::netns::Lab;

use super::conf;
use super::daemon::{self, Daemon, Kind};
use super::procfs::{self, Sample};
use super::topology::{Topology, director_addr};

/// Interfaces on the footprint topology (1000 instances / 250 per
/// interface).
const SEGMENTS: usize = 4;
/// After the master holds every VIP: keepalived repeats its gratuitous
/// ARPs 5 s after becoming master (`vrrp_garp_master_delay`, default 5),
/// so the window starts after that.
const REST_DELAY: Duration = Duration::from_secs(6);

/// A configuration measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    /// examples/seed/keepalived.conf adapted to the lab.
    Seed,
    /// The same without its `virtual_server`: what keepalived `-P` runs
    /// of the seed (VRRP only), so vrlb runs neither checks nor a data
    /// plane either. The like-for-like comparison.
    SeedVrrpOnly,
    /// `n` generated instances.
    Many(usize),
}

impl Config {
    /// The three of issue 8, and the seed's VRRP alone.
    pub const ALL: [Config; 4] = [
        Config::Seed,
        Config::SeedVrrpOnly,
        Config::Many(100),
        Config::Many(1000),
    ];

    /// For tables.
    pub fn label(self) -> String {
        match self {
            Config::Seed => "seed (1 instance, 5 s adverts)".into(),
            Config::SeedVrrpOnly => "seed, VRRP only (no virtual_server)".into(),
            Config::Many(n) => format!("{n} instances, 1 s adverts"),
        }
    }

    fn instances(self) -> usize {
        match self {
            Config::Seed | Config::SeedVrrpOnly => 1,
            Config::Many(n) => n,
        }
    }

    /// The text for director `d` (0 becomes master).
    fn text(self, d: usize, ifaces: &[String]) -> String {
        match (self, d) {
            (Config::Seed, 0) => conf::seed(&ifaces[0], "MASTER", 100),
            (Config::Seed, _) => conf::seed(&ifaces[0], "BACKUP", 90),
            (Config::SeedVrrpOnly, 0) => conf::seed_vrrp_only(&ifaces[0], "MASTER", 100),
            (Config::SeedVrrpOnly, _) => conf::seed_vrrp_only(&ifaces[0], "BACKUP", 90),
            (Config::Many(n), 0) => conf::many(n, ifaces, 150),
            (Config::Many(n), _) => conf::many(n, ifaces, 100),
        }
    }

    /// The text `kind` reads: keepalived gets the receive-buffer sizing
    /// its manual gives for many instances on one socket
    /// (keepalived.conf(5), `vrrp_rx_bufs_policy`; without it, 1000
    /// instances' synchronised adverts overflow the system default and
    /// keepalived's pair never settles here). vrlb sizes its own.
    fn text_for(self, kind: Kind, d: usize, ifaces: &[String]) -> String {
        let text = self.text(d, ifaces);
        match (self, kind) {
            (Config::Many(_), Kind::Keepalived) => text.replacen(
                "    vrrp_version",
                "    vrrp_rx_bufs_policy MTU\n    vrrp_rx_bufs_multiplier 3\n    vrrp_version",
                1,
            ),
            _ => text,
        }
    }

    /// How long until the master holds every VIP, at most.
    fn converge_limit(self) -> Duration {
        match self {
            // advert_int 5: up to Master_Down_Interval (15.6 s).
            Config::Seed | Config::SeedVrrpOnly => Duration::from_secs(25),
            Config::Many(_) => Duration::from_secs(60),
        }
    }
}

/// One director's figures.
#[derive(Debug, Clone)]
pub struct Row {
    /// The configuration.
    pub config: Config,
    /// Which daemon.
    pub kind: Kind,
    /// 0 = master, 1 = backup.
    pub director: usize,
    /// Memory at the end of the window, CPU time within it.
    pub sample: Sample,
    /// The window.
    pub window: Duration,
}

impl Row {
    /// "master" or "backup".
    pub fn role(&self) -> &'static str {
        if self.director == 0 {
            "master"
        } else {
            "backup"
        }
    }
}

/// Samples each list of processes at the start and the end of `window`:
/// memory at the end, CPU time within it; None for a list one of whose
/// processes exited meanwhile. Also how long the window really took.
fn sample_window(pids: &[Vec<u32>], window: Duration) -> (Vec<Option<Sample>>, Duration) {
    let before: Vec<Sample> = pids.iter().map(|p| procfs::read_all(p)).collect();
    let start = Instant::now();
    std::thread::sleep(window);
    let after: Vec<Sample> = pids.iter().map(|p| procfs::read_all(p)).collect();
    let took = start.elapsed();
    let samples = pids
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(list, (b, a))| {
            (a.processes == list.len() && a.processes > 0).then(|| Sample {
                cpu_ticks: a.cpu_ticks - b.cpu_ticks,
                cpu_ns: a.cpu_ns - b.cpu_ns,
                ..*a
            })
        })
        .collect();
    (samples, took)
}

/// The least any VRRP router pays at rest (`vrrp-floor`), measured
/// like the daemons on the seed's VRRP: director 0 sends the seed's
/// advert, director 1 reads it.
#[derive(Debug, Clone)]
pub struct FloorRow {
    /// 0 = sender (a master's floor), 1 = reader (a backup's).
    pub director: usize,
    /// Memory at the end of the window, CPU time within it.
    pub sample: Sample,
    /// The window.
    pub window: Duration,
}

/// The seed's advert as `conf::seed` writes it for the master: VRID,
/// priority, advert_int (s), auth_pass, the VIP.
const SEED_ADVERT: (&str, &str, &str, &str, &str) = ("51", "100", "5", "1111", "192.0.2.240");

/// Runs `vrrp-floor` as a master and a backup of the seed and samples
/// them over `window`, as [`measure_one`] samples the daemons.
fn measure_floor(
    lab: &mut Lab,
    topo: &Topology,
    dir: &Path,
    floor: &Path,
    window: Duration,
) -> Result<[FloorRow; 2], String> {
    let (vrid, priority, interval, pass, vip) = SEED_ADVERT;
    let floor_s = floor.display().to_string();
    let src = director_addr(0, 0).to_string();
    let iface = topo.ifaces[0].as_str();
    let commands: [Vec<&str>; 2] = [
        vec![
            &floor_s, "send", iface, &src, vip, vrid, priority, interval, pass,
        ],
        vec![&floor_s, "recv", iface],
    ];
    let mut pids = Vec::new();
    for (d, cmd) in commands.iter().enumerate() {
        let log = dir.join(format!("fp-floor-{d}.log"));
        pids.push((lab.spawn(&topo.directors[d], cmd, &log), log));
    }
    // Past start-up (the first advert goes out at once).
    std::thread::sleep(Duration::from_secs(1));
    let lists: Vec<Vec<u32>> = pids.iter().map(|(p, _)| vec![*p]).collect();
    let (samples, took) = sample_window(&lists, window);
    let row = |d: usize| -> Result<FloorRow, String> {
        let sample = samples[d].ok_or_else(|| {
            format!(
                "vrrp-floor director {d} exited during the window (log {})",
                pids[d].1.display()
            )
        })?;
        Ok(FloorRow {
            director: d,
            sample,
            window: took,
        })
    };
    let result = row(0).and_then(|sender| Ok([sender, row(1)?]));
    for (pid, _) in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        lab.signal(*pid, "0");
    }
    result
}

/// Addresses on director `ns` beyond its own primaries.
fn vip_count(ns: &str) -> usize {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "-4", "addr", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter(|l| l.contains(" inet ") && !l.contains(" lo "))
        .count()
        .saturating_sub(SEGMENTS)
}

/// Waits until the master holds `want` VIPs and the backup none; the
/// counts seen last when `limit` passes first.
fn wait_settled(topo: &Topology, want: usize, limit: Duration) -> Result<(), (usize, usize)> {
    let end = Instant::now() + limit;
    loop {
        let (m, b) = (vip_count(&topo.directors[0]), vip_count(&topo.directors[1]));
        if m == want && b == 0 {
            return Ok(());
        }
        if Instant::now() > end {
            return Err((m, b));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Removes any address left on the directors and puts the primaries back.
fn reset_addresses(topo: &Topology) {
    for (d, ns) in topo.directors.iter().enumerate() {
        if vip_count(ns) == 0 {
            continue;
        }
        for (k, iface) in topo.ifaces.iter().enumerate() {
            let _ = Command::new("ip")
                .args(["-n", ns, "addr", "flush", "dev", iface])
                .output();
            let _ = Command::new("ip")
                .args([
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{}/24", director_addr(d, k)),
                    "dev",
                    iface,
                ])
                .output();
        }
    }
}

fn measure_one(
    lab: &mut Lab,
    topo: &Topology,
    dir: &Path,
    vrlb: &Path,
    config: Config,
    kind: Kind,
    window: Duration,
) -> Result<[Row; 2], String> {
    let mut daemons: Vec<Daemon> = Vec::new();
    let tag = match config {
        Config::Seed => "seed".to_string(),
        Config::SeedVrrpOnly => "seedvrrp".to_string(),
        Config::Many(n) => format!("n{n}"),
    };
    let want = config.instances();
    // The master starts alone and takes every VIP, then the backup joins:
    // the state at rest is the same as when both start together, but
    // without 1000 elections fought at once, which keepalived's pair does
    // not always settle on a loaded machine (its timers run seconds late).
    let mut result = Ok(());
    for d in 0..2 {
        let path = dir.join(format!("fp-{tag}-{}-{d}.conf", kind.name()));
        if let Err(e) = std::fs::write(&path, config.text_for(kind, d, &topo.ifaces)) {
            result = Err(format!("{}: {e}", path.display()));
            break;
        }
        let name = format!("fp-{tag}-{}-{d}", kind.name());
        daemons.push(daemon::start(
            lab,
            kind,
            vrlb,
            &topo.directors[d],
            &path,
            dir,
            &name,
        ));
        if let Err((m, b)) = wait_settled(topo, want, config.converge_limit()) {
            let logs: Vec<String> = daemons
                .iter()
                .map(|d| d.log.display().to_string())
                .collect();
            result = Err(format!(
                "{} {}: with {} director(s) running, the master holds {m} of {want} VIPs and the backup {b} after {:?}; logs {}",
                kind.name(),
                config.label(),
                d + 1,
                config.converge_limit(),
                logs.join(" and ")
            ));
            break;
        }
    }
    let result = result.and_then(|()| {
        std::thread::sleep(REST_DELAY);
        if let Err((m, b)) = wait_settled(topo, want, Duration::ZERO) {
            return Err(format!(
                "{} {}: the pair did not stay settled (the master holds {m} of {want} VIPs, the backup {b}); logs {} and {}",
                kind.name(),
                config.label(),
                daemons[0].log.display(),
                daemons[1].log.display()
            ));
        }
        let pids: Vec<Vec<u32>> = daemons.iter().map(Daemon::pids).collect();
        let (samples, took) = sample_window(&pids, window);
        let row = |d: usize| -> Result<Row, String> {
            let sample = samples[d].ok_or_else(|| {
                format!(
                    "{} director {d}: a process exited during the window (log {})",
                    kind.name(),
                    daemons[d].log.display()
                )
            })?;
            Ok(Row {
                config,
                kind,
                director: d,
                sample,
                window: took,
            })
        };
        Ok([row(0)?, row(1)?])
    });
    for d in daemons {
        d.terminate();
        d.reap(lab);
    }
    reset_addresses(topo);
    result
}

/// What [`run`] measured.
#[derive(Debug, Default)]
pub struct Measured {
    /// vrlb's and keepalived's rows.
    pub rows: Vec<Row>,
    /// `vrrp-floor` on the seed's VRRP (when that configuration ran).
    pub floor: Vec<FloorRow>,
    /// Figures not taken, and why.
    pub failures: Vec<String>,
}

/// Measures every configuration in `configs`, vrlb then keepalived, and
/// after the seed's VRRP alone the floor (`floor`, the `vrrp-floor`
/// binary); `progress` gets one line per measurement.
pub fn run(
    lab: &mut Lab,
    dir: &Path,
    vrlb: &Path,
    floor: &Path,
    configs: &[Config],
    window: Duration,
    progress: &mut dyn FnMut(&str),
) -> Measured {
    let topo = Topology::build(lab, "f", SEGMENTS, false);
    let mut measured = Measured::default();
    let Measured {
        rows,
        floor: floor_rows,
        failures,
    } = &mut measured;
    for &config in configs {
        for kind in Kind::BOTH {
            // The machine is shared: a pair that did not settle (lost
            // adverts under load) gets one more try before it counts as
            // a figure not taken.
            let measured = measure_one(lab, &topo, dir, vrlb, config, kind, window).or_else(|e| {
                progress(&format!(
                    "footprint {:<32} {:<10} retrying once: {e}",
                    config.label(),
                    kind.name()
                ));
                measure_one(lab, &topo, dir, vrlb, config, kind, window)
            });
            match measured {
                Ok(pair) => {
                    for r in &pair {
                        progress(&format!(
                            "footprint {:<32} {:<10} {}  RSS {:>10}  PSS {:>10}  CPU {:>8.2} ms in {:.1} s ({} process(es))",
                            config.label(),
                            kind.name(),
                            r.role(),
                            super::stats::fmt_bytes(r.sample.rss_bytes),
                            super::stats::fmt_bytes(r.sample.pss_bytes),
                            r.sample.cpu_ns as f64 / 1e6,
                            r.window.as_secs_f64(),
                            r.sample.processes
                        ));
                    }
                    rows.extend(pair);
                }
                Err(e) => {
                    progress(&format!(
                        "footprint {:<32} {:<10} FAILED: {e}",
                        config.label(),
                        kind.name()
                    ));
                    failures.push(e);
                }
            }
        }
        if config != Config::SeedVrrpOnly {
            continue;
        }
        match measure_floor(lab, &topo, dir, floor, window) {
            Ok(pair) => {
                for r in &pair {
                    progress(&format!(
                        "footprint {:<32} {:<10} {}  CPU {:>8.2} ms in {:.1} s",
                        config.label(),
                        "floor",
                        if r.director == 0 { "sender" } else { "reader" },
                        r.sample.cpu_ns as f64 / 1e6,
                        r.window.as_secs_f64(),
                    ));
                }
                floor_rows.extend(pair);
            }
            Err(e) => {
                progress(&format!(
                    "footprint {:<32} floor      FAILED: {e}",
                    config.label()
                ));
                failures.push(e);
            }
        }
    }
    measured
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_sends_the_advert_the_seeds_master_sends() {
        let (vrid, priority, interval, pass, vip) = SEED_ADVERT;
        let master = Config::SeedVrrpOnly.text(0, &["eth9".to_string()]);
        for line in [
            format!("virtual_router_id {vrid}"),
            format!("priority {priority}"),
            format!("advert_int {interval}"),
            format!("auth_pass {pass}"),
            vip.to_string(),
        ] {
            assert!(
                master.lines().any(|l| l.trim() == line),
                "{line:?} not in {master}"
            );
        }
    }
}
