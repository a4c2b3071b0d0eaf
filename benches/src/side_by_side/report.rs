//! The end of a run: one markdown document (printed to the terminal and
//! written to a file for BENCHMARKS.md) with the machine, the exact
//! command, a table per section with ratios and goals, and every section
//! that could not be measured, with why. Formats only; measures nothing.

use std::fmt::Write;
use std::process::Command;

use super::capture::Steps;
use super::core_figures::Figures;
use super::daemon::Kind;
use super::dataplane::{self, Forwarder, Found, Timing};
use super::failover::{Cell, PRIORITY, Stop};
use super::footprint::{Config, FloorRow, Row};
use super::stats::{fmt_bytes, fmt_duration, fmt_ns, ratio, summarize, within};
use super::{Outcome, Section};

/// What a run found, section by section.
#[derive(Debug, Default)]
pub struct Findings {
    /// The command as typed.
    pub command: String,
    /// Sections asked for, with how each ended.
    pub outcomes: Vec<(Section, Outcome)>,
    /// Failover cells.
    pub failover: Vec<Cell>,
    /// Footprint rows.
    pub footprint: Vec<Row>,
    /// The footprint's floor (`vrrp-floor` on the seed's VRRP).
    pub footprint_floor: Vec<FloorRow>,
    /// Footprint window.
    pub window_s: f64,
    /// Core figures.
    pub core: Option<Figures>,
    /// Data-plane figures (3 and 4).
    pub dataplane: Found,
    /// Data-plane timing.
    pub timing: Option<Timing>,
    /// Whether the run was `--quick`.
    pub quick: bool,
    /// Wall time of the whole run, seconds.
    pub wall_s: f64,
}

/// The machine: CPU model and count, caches, kernel, keepalived, rustc.
pub fn machine() -> String {
    let lscpu = output(&["lscpu"]);
    let field = |k: &str| {
        lscpu
            .lines()
            .find_map(|l| {
                l.strip_prefix(k)?
                    .strip_prefix(':')
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "{} ({} CPUs; L2 {}, L3 {}), Linux {}, {}, {}",
        field("Model name"),
        field("CPU(s)"),
        field("L2 cache"),
        field("L3 cache"),
        output(&["uname", "-r"]).trim(),
        output(&["keepalived", "-v"])
            .lines()
            .next()
            .unwrap_or("keepalived ?")
            .trim(),
        output(&["rustc", "-V"]).trim(),
    )
}

fn output(args: &[&str]) -> String {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s
        })
        .unwrap_or_default()
}

/// Milliseconds with two decimals (the steps are fractions of one).
fn fmt_ms(d: std::time::Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "**no**" }
}

/// Drops per second with vrlb's reasons.
fn dropped(per_s: f64, reasons: &str) -> String {
    if reasons.is_empty() {
        format!("{}/s", fmt_pps(per_s))
    } else {
        format!("{}/s ({reasons})", fmt_pps(per_s))
    }
}

/// A rate as "123.4 k" / "1.23 M".
fn fmt_pps(pps: f64) -> String {
    if pps >= 1e6 {
        format!("{:.2} M", pps / 1e6)
    } else if pps >= 1e3 {
        format!("{:.1} k", pps / 1e3)
    } else {
        format!("{pps:.0}")
    }
}

/// `a / b` as "0.42x" (or "0.0028x (357x less)" when far below 1), or
/// "-" when b is zero.
fn times(a: f64, b: f64) -> String {
    if b <= 0.0 {
        return "-".into();
    }
    let r = a / b;
    if r < 0.1 && r > 0.0 {
        format!("{r:.4}x ({:.0}x less)", 1.0 / r)
    } else {
        format!("{r:.2}x")
    }
}

impl Findings {
    /// The markdown document.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "## Side by side (issue 8)\n");
        let _ = writeln!(
            o,
            "Command (as root, from the workspace):\n\n```sh\n{}\n```\n",
            self.command
        );
        let _ = writeln!(
            o,
            "Machine: {}. Run took {:.0} s{}.\n",
            machine(),
            self.wall_s,
            if self.quick {
                " (`--quick`: fewer trials, shorter windows)"
            } else {
                ""
            }
        );
        for (section, outcome) in &self.outcomes {
            let _ = writeln!(o, "### {}\n", section.title());
            match section {
                Section::Failover => self.failover_md(&mut o),
                Section::Footprint => self.footprint_md(&mut o),
                Section::Core => self.core_md(&mut o),
                Section::Dataplane => self.rate_md(&mut o),
                Section::Conns => self.conns_md(&mut o),
            }
            match outcome {
                Outcome::Measured => {}
                Outcome::Failed(errors) => {
                    let _ = writeln!(
                        o,
                        "**Incomplete: {} figure(s) could not be taken:**\n",
                        errors.len()
                    );
                    for e in errors {
                        let _ = writeln!(o, "- {}", e.lines().next().unwrap_or(""));
                    }
                    o.push('\n');
                }
            }
        }
        o
    }

    fn cell(&self, setting: &str, stop: Stop, kind: Kind) -> Option<&Cell> {
        self.failover
            .iter()
            .find(|c| c.setting.key == setting && c.stop == stop && c.kind == kind)
    }

    fn failover_md(&self, o: &mut String) {
        if self.failover.is_empty() {
            return;
        }
        let n = self
            .failover
            .iter()
            .map(|c| c.samples.len() + c.failures.len())
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            o,
            "Two directors with the same configuration (one instance, priority {PRIORITY}, one VIP) and a client on one bridge; \
             a UDP echo service on both directors answers through the VIP. A trial stops the master and times, from the signal, \
             until the client's probe (one every 1 ms, 0.1 ms at 10 ms adverts) is answered again. \
             *kill -9*: SIGKILL (keepalived: its VRRP child and parent) right after the client sees one of the master's \
             adverts, so every trial waits out the backup's whole Master_Down_Interval, and the director's switch port is taken \
             down so the VIP it leaves behind answers nothing; bound: Master_Down_Interval = 3 x interval + Skew_Time. *graceful*: SIGTERM \
             (priority-0 advert); bound: Skew_Time = (256 - priority) x interval / 256 (VRRPv2: / 256 s). Trials alternate \
             between the two daemons, {n} per cell. keepalived runs its VRRP subsystem only (`-P`).\n"
        );
        let _ = writeln!(
            o,
            "| adverts | stop | vrlb median | vrlb worst | keepalived median | keepalived worst | bound | vrlb / keepalived (median) | vrlb median / bound | goal met |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|");
        let mut keys: Vec<_> = self.failover.iter().map(|c| (c.setting, c.stop)).collect();
        keys.dedup();
        for (s, stop) in keys {
            let v = self
                .cell(s.key, stop, Kind::Vrlb)
                .and_then(|c| summarize(&c.samples));
            let k = self
                .cell(s.key, stop, Kind::Keepalived)
                .and_then(|c| summarize(&c.samples));
            let bound = stop.bound(&s);
            let show =
                |x: Option<super::stats::Summary>,
                 f: fn(&super::stats::Summary) -> std::time::Duration| {
                    x.map_or("-".to_string(), |x| fmt_duration(f(&x)))
                };
            let (vs, goal) = match (v, k) {
                (Some(v), Some(k)) => (
                    times(v.median.as_secs_f64(), k.median.as_secs_f64()),
                    yes(v.median <= k.median && within(v.median, bound, 0.10)),
                ),
                _ => ("-".into(), "not measured"),
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.label,
                stop.label(),
                show(v, |x| x.median),
                show(v, |x| x.worst),
                show(k, |x| x.median),
                show(k, |x| x.worst),
                fmt_duration(bound),
                vs,
                v.map_or("-".into(), |v| format!("{:.2}", ratio(v.median, bound))),
                goal
            );
        }
        let _ = writeln!(
            o,
            "\nGoal: vrlb's median no worse than keepalived's and within 10 % of the bound (vrlb median / bound <= 1.10).\n"
        );
        self.breakdown_md(o);
    }

    /// The failover steps from the capture, medians per cell.
    fn breakdown_md(&self, o: &mut String) {
        if self.failover.iter().all(|c| c.steps.is_empty()) {
            return;
        }
        let _ = writeln!(
            o,
            "Where the time went: a capture on the client's switch port (tcpdump, one clock for every frame the client \
             sees), each step the median over the trials from the step before it. *priority 0*: the old master's \
             resigning advert, from the signal; *new master's advert*: its first, from the priority-0 advert (kill -9: \
             from the signal); *GARP*: its gratuitous ARP for the VIP, from that advert; *answer*: the first echo \
             answer the client got, from the GARP; *total*: signal to answer on the capture's clock.\n"
        );
        let _ = writeln!(
            o,
            "| adverts | stop | daemon | priority 0 | new master's advert | GARP | answer | total | trials |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
        for c in self.failover.iter().filter(|c| !c.steps.is_empty()) {
            let med = |f: fn(&Steps) -> Option<std::time::Duration>| {
                let xs: Vec<_> = c.steps.iter().filter_map(f).collect();
                summarize(&xs).map_or("-".into(), |x| fmt_ms(x.median))
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                c.setting.label,
                c.stop.label(),
                c.kind.name(),
                med(|s| s.to_resign),
                med(|s| s.to_takeover),
                med(|s| s.to_garp),
                med(|s| s.to_answer),
                med(|s| s.total),
                c.steps.len()
            );
        }
        o.push('\n');
    }

    fn footprint_md(&self, o: &mut String) {
        if self.footprint.is_empty() {
            return;
        }
        let _ = writeln!(
            o,
            "A master and a backup director run the same instances. The master starts first; once it holds every VIP the \
             backup starts; 6 s later (keepalived repeats its gratuitous ARPs 5 s after a transition), if the master still \
             holds every VIP and the backup none, both are sampled over a {:.0} s window. \
             Memory: VmRSS and Pss (smaps_rollup) at the end, summed over the daemon's processes (keepalived `-P`: parent and \
             VRRP child). CPU: run time within the window (the scheduler's per-thread nanoseconds; utime + stime ticks agree \
             but are too coarse at rest). Generated configurations: VRRPv2, 1 s adverts, one VIP each, 250 VRIDs per interface \
             over four interfaces (VIPs from 198.51.100.0/24 and 203.0.113.0/24, reused on another interface beyond 512). keepalived's copies of the generated configurations \
             add `vrrp_rx_bufs_policy MTU` and `vrrp_rx_bufs_multiplier 3` (keepalived.conf(5), for many instances on \
             one socket). The *seed* rows run the seed as users run it: vrlb with its two TCP_CHECKs and its DR data plane \
             (one worker, `--ring-kib` default), keepalived `-P` with VRRP alone (its checker needs IPVS, which this kernel \
             lacks). The *VRRP only* rows run the seed without its `virtual_server` on both, so both do the same work: \
             the goal is judged on those for the seed.\n",
            self.window_s
        );
        let _ = writeln!(
            o,
            "| configuration | director | vrlb RSS | keepalived RSS | ratio | vrlb PSS | keepalived PSS | ratio | vrlb CPU | keepalived CPU | ratio | goal met (<= 0.5x) |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for v in self.footprint.iter().filter(|r| r.kind == Kind::Vrlb) {
            let Some(k) = self.footprint.iter().find(|r| {
                r.kind == Kind::Keepalived && r.config == v.config && r.director == v.director
            }) else {
                continue;
            };
            let (vs, ks) = (v.sample, k.sample);
            let mem = vs.rss_bytes as f64 <= 0.5 * ks.rss_bytes as f64
                && vs.pss_bytes as f64 <= 0.5 * ks.pss_bytes as f64;
            let cpu = vs.cpu_ns as f64 <= 0.5 * ks.cpu_ns as f64;
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | memory {}, CPU {} |",
                v.config.label(),
                v.role(),
                fmt_bytes(vs.rss_bytes),
                fmt_bytes(ks.rss_bytes),
                times(vs.rss_bytes as f64, ks.rss_bytes as f64),
                fmt_bytes(vs.pss_bytes),
                fmt_bytes(ks.pss_bytes),
                times(vs.pss_bytes as f64, ks.pss_bytes as f64),
                fmt_ns(vs.cpu_ns as f64),
                fmt_ns(ks.cpu_ns as f64),
                times(vs.cpu_ns as f64, ks.cpu_ns as f64),
                yes(mem),
                yes(cpu)
            );
        }
        o.push('\n');
        self.floor_md(o);
    }

    /// The floor against the seed's VRRP rows: whether half of
    /// keepalived's CPU is within reach of anything that sends or reads
    /// every advert.
    fn floor_md(&self, o: &mut String) {
        if self.footprint_floor.is_empty() {
            return;
        }
        let _ = writeln!(
            o,
            "**The floor.** `vrrp-floor` (benches/src/bin/vrrp-floor.rs) does the least a VRRP router can at rest, on \
             the same topology in the same run: the sender sleeps and sends the seed's advert every 5 s (two system calls \
             an advert), the reader blocks reading them (one). No state machine, no timers, no logging. A goal below \
             its CPU is out of reach of any daemon that sends, or reads, every advert on this machine.\n"
        );
        let _ = writeln!(
            o,
            "| director | floor CPU | keepalived CPU | half of keepalived's (the goal) | vrlb CPU | vrlb / floor | goal above the floor |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|");
        for f in &self.footprint_floor {
            let find = |kind: Kind| {
                self.footprint.iter().find(|r| {
                    r.kind == kind && r.config == Config::SeedVrrpOnly && r.director == f.director
                })
            };
            let (Some(v), Some(k)) = (find(Kind::Vrlb), find(Kind::Keepalived)) else {
                continue;
            };
            let floor = f.sample.cpu_ns as f64;
            let goal = 0.5 * k.sample.cpu_ns as f64;
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} |",
                v.role(),
                fmt_ns(floor),
                fmt_ns(k.sample.cpu_ns as f64),
                fmt_ns(goal),
                fmt_ns(v.sample.cpu_ns as f64),
                times(v.sample.cpu_ns as f64, floor),
                if floor > 0.0 {
                    yes(goal >= floor)
                } else {
                    "- (no advert in the window)"
                }
            );
        }
        o.push('\n');
    }

    fn rate_md(&self, o: &mut String) {
        let cells = &self.dataplane.rate;
        if cells.is_empty() {
            return;
        }
        let t = self.timing.unwrap_or(Timing {
            warmup: std::time::Duration::ZERO,
            window: std::time::Duration::ZERO,
            probes: 0,
            rounds: 0,
        });
        let _ = writeln!(
            o,
            "A client, a director and a sink on one bridge (veths; static bridge and neighbour entries, so nothing \
             floods). trafgen (one process, packet ring, no qdisc) sends UDP to {VIP} from 254 client addresses, as \
             fast as it can, straight to the director's MAC; the director sends each frame on to the sink's MAC either \
             through vrlb's DR data plane (`vrlb run --workers N --dataplane-iface eth0`, IP forwarding off) or \
             through its kernel (IP forwarding on, a /32 route to the sink). *delivered*: frames the sink's interface \
             received per second in a {:.1} s window after {:.1} s of warm-up; median of {} round(s) per path, the \
             paths alternating. Frame sizes include the FCS (RFC 2544): 60 and 1496 bytes on the veth. Latency: then \
             {} UDP probes of the same size per round, one a millisecond, from a client socket to a sink socket, one-way \
             (both ends in this process, one clock); percentiles over every round.\n",
            t.window.as_secs_f64(),
            t.warmup.as_secs_f64(),
            t.rounds,
            t.probes,
            VIP = dataplane::VIP4,
        );
        let _ = writeln!(
            o,
            "| frame | path | delivered | offered | delivered / kernel's | vrlb dropped | latency p50 | latency p99 | p99 added over the kernel's | lost probes | goal met (>= kernel's rate) |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|");
        for c in cells {
            let kernel = cells.iter().find(|k| {
                k.path == Forwarder::Kernel && k.frame == c.frame && k.failures.is_empty()
            });
            let kpps = kernel.and_then(|k| k.median_pps());
            let kp99 = kernel.and_then(|k| k.latency_percentile(99.0));
            let pps = c.median_pps();
            let p99 = c.latency_percentile(99.0);
            let is_vrlb = c.path != Forwarder::Kernel;
            let added = match (is_vrlb, p99, kp99) {
                (true, Some(a), Some(b)) => {
                    let d = a.as_secs_f64() - b.as_secs_f64();
                    format!(
                        "{}{}",
                        if d < 0.0 { "-" } else { "+" },
                        fmt_duration(std::time::Duration::from_secs_f64(d.abs()))
                    )
                }
                _ => "-".into(),
            };
            let _ = writeln!(
                o,
                "| {} B | {} | {} | {} | {} | {} | {} | {} | {} | {} of {} | {} |",
                c.frame.0,
                c.path.label(),
                pps.map_or("-".into(), fmt_pps),
                c.median_offered().map_or("-".into(), fmt_pps),
                match (is_vrlb, pps, kpps) {
                    (true, Some(a), Some(b)) => times(a, b),
                    _ => "-".into(),
                },
                if is_vrlb {
                    c.median_dropped()
                        .map_or("-".into(), |d| dropped(d, &c.drop_reasons()))
                } else {
                    "-".into()
                },
                c.latency_percentile(50.0).map_or("-".into(), fmt_duration),
                p99.map_or("-".into(), fmt_duration),
                added,
                c.lost,
                c.lost + c.latency_ns.len(),
                match (is_vrlb, pps, kpps) {
                    (true, Some(a), Some(b)) => yes(a >= b),
                    (true, _, _) => "not measured",
                    _ => "(baseline)",
                }
            );
        }
        o.push('\n');
    }

    fn conns_md(&self, o: &mut String) {
        let cells = &self.dataplane.conns;
        if cells.is_empty() {
            return;
        }
        let _ = writeln!(
            o,
            "The same lab. trafgen sends TCP SYNs to [{VIP}]:80, each from a new (address, port) (4099 client \
             addresses, every source port), as fast as it can; the service is wlc over {n} real servers \
             (2001:db8::1:0 to 2001:db8::1:fff; all of their neighbour entries point at the sink, which counts what \
             arrives), `persistence_timeout 300` or none; vrlb runs with {slots} connection slots per worker so every \
             SYN in a window is a tracked new connection. *new connections/s*: vrlb's own `flows_created` over the \
             window (`vrlb status --json`), and the sink's count; the baseline is the kernel forwarding the same SYNs \
             statelessly (no IPVS on this kernel). Median of the rounds.\n",
            VIP = dataplane::VIP6,
            n = dataplane::SERVERS,
            slots = dataplane::CONN_SLOTS,
        );
        let _ = writeln!(
            o,
            "| persistence | path | new connections/s (vrlb's count) | delivered to the sink | offered | delivered / kernel's | template hits/s | vrlb dropped |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
        for c in cells {
            let kpps = cells
                .iter()
                .find(|k| {
                    k.path == Forwarder::Kernel
                        && k.persistent == c.persistent
                        && k.failures.is_empty()
                })
                .and_then(|k| k.median_pps());
            let is_vrlb = c.path != Forwarder::Kernel;
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                if c.persistent { "300 s" } else { "off" },
                c.path.label(),
                if is_vrlb {
                    c.median_flows().map_or("-".into(), fmt_pps)
                } else {
                    "-".into()
                },
                c.median_pps().map_or("-".into(), fmt_pps),
                c.median_offered().map_or("-".into(), fmt_pps),
                match (is_vrlb, c.median_pps(), kpps) {
                    (true, Some(a), Some(b)) => times(a, b),
                    _ => "-".into(),
                },
                if is_vrlb {
                    c.median_template_hits().map_or("-".into(), fmt_pps)
                } else {
                    "-".into()
                },
                if is_vrlb {
                    c.median_dropped()
                        .map_or("-".into(), |d| dropped(d, &c.drop_reasons()))
                } else {
                    "-".into()
                },
            );
        }
        o.push('\n');
    }

    fn core_md(&self, o: &mut String) {
        let Some(f) = &self.core else {
            return;
        };
        let _ = writeln!(
            o,
            "Every criterion bench of `vrlb-benches` with short times (`--warm-up-time 1 --measurement-time 2`, with \
             `--quick` 0.1 and 0.2 s and 10 samples; groups that set their own times keep them), medians. The ratio is vrlb's time over the baseline's, measured in the same \
             group and run (below 1: vrlb faster). The full-length figures are in the sections above.\n"
        );
        let _ = writeln!(
            o,
            "| group | function | median | baseline (same group) | vrlb / baseline |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|");
        for e in &f.estimates {
            if super::core_figures::BASELINES.contains(&e.function.as_str()) {
                continue;
            }
            let b = f.baseline_of(e);
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                e.group,
                e.function,
                fmt_ns(e.median_ns),
                b.map_or("-".into(), |b| format!(
                    "{} ({})",
                    fmt_ns(b.median_ns),
                    b.function
                )),
                b.map_or("-".into(), |b| times(e.median_ns, b.median_ns))
            );
        }
        if let Some(line) = &f.sim_line {
            let _ = writeln!(o, "\nSimulator: `{line}`.");
        }
        if let Some(rate) = f.sim_events_per_s {
            let _ = writeln!(
                o,
                "Goal >= 1,000,000 events/s: {} ({:.1} M events/s).",
                yes(rate >= 1e6),
                rate / 1e6
            );
        }
        o.push('\n');
    }
}
