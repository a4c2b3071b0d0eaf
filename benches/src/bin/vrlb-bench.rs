//! `vrlb-bench`: vrlb against keepalived and the kernel side by side, in
//! one command (issue 8). Run as root from the workspace:
//!
//! ```sh
//! cargo run --release -p vrlb-benches --bin vrlb-bench -- [--quick] [--only failover,footprint,dataplane,conns,core]
//! ```
//!
//! Prints one line per trial while it runs, then the tables, and writes
//! them as markdown for BENCHMARKS.md. Exits non-zero if any figure asked
//! for could not be taken. Ctrl-C removes the lab namespaces.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use vrlb_benches::side_by_side::core_figures::{self, Figures};
use vrlb_benches::side_by_side::dataplane::{self, Timing};
use vrlb_benches::side_by_side::failover::{self, SETTINGS};
use vrlb_benches::side_by_side::footprint::{self, Config};
use vrlb_benches::side_by_side::report::Findings;
use vrlb_benches::side_by_side::{Outcome, Section, signals};
use vrlb_tests::netns::Lab;

/// Measures vrlb against keepalived and the kernel side by side (issue 8).
#[derive(Debug, Parser)]
#[command(name = "vrlb-bench")]
struct Cli {
    /// A smoke test of the harness (about 3 minutes once built): 2
    /// failover trials at the VRRPv3 settings, footprint of 100 instances
    /// only, one short data-plane round per path, criterion at minimum
    /// times. Its figures are not the ones to quote.
    #[arg(long)]
    quick: bool,
    /// Measure only these sections: failover, footprint, dataplane, conns,
    /// core (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Failover trials per daemon, setting and stop (default 20; 2 with
    /// --quick).
    #[arg(long)]
    trials: Option<usize>,
    /// Failover settings: v2-1s, v3-100ms, v3-10ms (default: all three;
    /// the two VRRPv3 ones with --quick).
    #[arg(long, value_delimiter = ',')]
    settings: Vec<String>,
    /// Footprint window in seconds (default 10; 2 with --quick, which
    /// measures only the 100-instance configuration).
    #[arg(long)]
    window_s: Option<u64>,
    /// Data-plane rounds per path (default 3; 1 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// Do not run criterion: read its last results from target/criterion.
    #[arg(long)]
    criterion_read_only: bool,
    /// Use this vrlb binary instead of building one.
    #[arg(long)]
    vrlb: Option<PathBuf>,
    /// Where to write the markdown (default target/vrlb-bench.md).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Keep the run's files (daemon logs, the failover captures) in
    /// /tmp/vrlb-bench-PID even when every figure was taken.
    #[arg(long)]
    keep_files: bool,
}

/// The workspace root (this crate's parent).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// `target/<profile>`, where this binary lives.
fn profile_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| workspace().join("target/release"))
}

/// Builds `bin` of `package` in this binary's profile and returns its
/// path.
fn build(package: &str, bin: &str) -> Result<PathBuf, String> {
    let dir = profile_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace())
        .args(["build", "--quiet", "-p", package, "--bin", bin]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    let path = dir.join(bin);
    if !status.success() || !path.exists() {
        return Err(format!("cargo build --bin {bin} failed ({status})"));
    }
    Ok(path)
}

/// Runs `f`, turning a panic (a lab command that failed) into an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(format!("{what}: {msg}"))
        }
    }
}

/// A lab (root, ip and `tools` present), registered for cleanup on a
/// signal; `f` runs with it, and it is removed afterwards, panic or not.
fn with_lab<T>(tools: &[&str], f: impl FnOnce(&mut Lab) -> Result<T, String>) -> Result<T, String> {
    let mut lab = Lab::new(tools)
        .ok_or_else(|| format!("needs root, ip and {tools:?} (see the line above)"))?;
    let tag = lab.tag.clone();
    signals::register(&tag);
    let r = catch_unwind(AssertUnwindSafe(|| f(&mut lab)));
    drop(lab);
    signals::unregister(&tag);
    match r {
        Ok(r) => r,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// `apt-get install -y keepalived` if it is missing (issue 8 compares
/// against Debian's build).
fn ensure_keepalived(progress: &mut dyn FnMut(&str)) {
    if vrlb_tests::netns::have("keepalived") || !vrlb_tests::netns::have("apt-get") {
        return;
    }
    progress("keepalived missing: apt-get install -y keepalived");
    let _ = Command::new("apt-get")
        .args(["install", "-y", "keepalived"])
        .status();
}

fn main() -> ExitCode {
    signals::install();
    let cli = Cli::parse();
    let start = Instant::now();
    let progress = &mut |line: &str| println!("[{:>7.1}s] {line}", start.elapsed().as_secs_f64());

    let mut sections: Vec<Section> = if cli.only.is_empty() {
        Section::ALL.to_vec()
    } else {
        let mut v = Vec::new();
        for key in &cli.only {
            match Section::from_key(key) {
                Some(s) => v.push(s),
                None => {
                    eprintln!(
                        "vrlb-bench: --only {key}: unknown section (failover, footprint, dataplane, conns, core)"
                    );
                    return ExitCode::from(2);
                }
            }
        }
        v
    };
    sections.sort();
    sections.dedup();
    let settings: Vec<_> = if cli.settings.is_empty() && cli.quick {
        SETTINGS[1..].to_vec()
    } else if cli.settings.is_empty() {
        SETTINGS.to_vec()
    } else {
        let mut v = Vec::new();
        for key in &cli.settings {
            match SETTINGS.iter().find(|s| s.key == key) {
                Some(s) => v.push(*s),
                None => {
                    eprintln!("vrlb-bench: --settings {key}: unknown (v2-1s, v3-100ms, v3-10ms)");
                    return ExitCode::from(2);
                }
            }
        }
        v
    };
    let trials = cli.trials.unwrap_or(if cli.quick { 2 } else { 20 });
    let window = Duration::from_secs(cli.window_s.unwrap_or(if cli.quick { 2 } else { 10 }));
    let configs: &[Config] = if cli.quick {
        &[Config::Seed, Config::Many(100)]
    } else {
        &Config::ALL
    };
    let timing = Timing {
        warmup: Duration::from_millis(if cli.quick { 300 } else { 1000 }),
        window: Duration::from_millis(if cli.quick { 500 } else { 3000 }),
        probes: if cli.quick { 100 } else { 1000 },
        rounds: cli.rounds.unwrap_or(if cli.quick { 1 } else { 3 }).max(1),
    };

    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut findings = Findings {
        command: format!(
            "cargo run --release -p vrlb-benches --bin vrlb-bench -- {}",
            args.join(" ")
        )
        .trim_end()
        .trim_end_matches(" --")
        .to_string(),
        quick: cli.quick,
        window_s: window.as_secs_f64(),
        timing: Some(timing),
        ..Findings::default()
    };
    let mut failed = false;

    // keepalived's VRRP child outlives its killed parent, trafgen's sender
    // its parent: be their reaper.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let dir = std::env::temp_dir().join(format!("vrlb-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let needs_vrlb = sections.iter().any(|s| *s != Section::Core);
    let vrlb = match (&cli.vrlb, needs_vrlb) {
        (Some(p), _) => Ok(p.clone()),
        (None, true) => {
            progress("building vrlb");
            build("vrlb-linux", "vrlb")
        }
        (None, false) => Err(String::new()),
    };
    if sections
        .iter()
        .any(|s| matches!(s, Section::Failover | Section::Footprint))
    {
        ensure_keepalived(progress);
    }
    // Measurements 3 and 4 share one lab and run together.
    let mut dataplane: Option<Result<dataplane::Found, String>> = None;
    let (want_rate, want_conns) = (
        sections.contains(&Section::Dataplane),
        sections.contains(&Section::Conns),
    );

    for &section in &sections {
        progress(&format!("== {}", section.title()));
        let errors: Vec<String> = match section {
            Section::Failover => match guarded("failover", || {
                let vrlb = vrlb.clone()?;
                with_lab(&["keepalived"], |lab| {
                    failover::run(lab, &dir, &vrlb, &settings, trials, progress)
                })
            }) {
                Ok(cells) => {
                    let errors = cells
                        .iter()
                        .flat_map(|c| {
                            c.failures.iter().map(move |f| {
                                format!(
                                    "{}, {}, {}: {f}",
                                    c.setting.label,
                                    c.stop.label(),
                                    c.kind.name()
                                )
                            })
                        })
                        .chain(
                            cells
                                .iter()
                                .filter(|c| c.samples.len() + c.failures.len() < trials)
                                .map(|c| {
                                    format!(
                                        "{}, {}, {}: abandoned after {} failures",
                                        c.setting.label,
                                        c.stop.label(),
                                        c.kind.name(),
                                        c.failures.len()
                                    )
                                }),
                        )
                        .collect();
                    findings.failover = cells;
                    errors
                }
                Err(e) => vec![e],
            },
            Section::Footprint => match guarded("footprint", || {
                let vrlb = vrlb.clone()?;
                let floor = build("vrlb-benches", "vrrp-floor")?;
                with_lab(&["keepalived"], |lab| {
                    Ok(footprint::run(
                        lab, &dir, &vrlb, &floor, configs, window, progress,
                    ))
                })
            }) {
                Ok(measured) => {
                    findings.footprint = measured.rows;
                    findings.footprint_floor = measured.floor;
                    measured.failures
                }
                Err(e) => vec![e],
            },
            Section::Dataplane | Section::Conns => {
                let found = dataplane.get_or_insert_with(|| {
                    guarded("data plane", || {
                        let vrlb = vrlb.clone()?;
                        with_lab(&["trafgen", "nft", "bridge"], |lab| {
                            dataplane::run_all(
                                lab, &dir, &vrlb, want_rate, want_conns, &timing, progress,
                            )
                        })
                    })
                });
                match found {
                    Ok(f) => {
                        let cells = if section == Section::Dataplane {
                            &f.rate
                        } else {
                            &f.conns
                        };
                        dataplane::failures(cells, timing.rounds)
                    }
                    Err(e) => vec![e.clone()],
                }
            }
            Section::Core => match guarded("core", || core(&cli, progress)) {
                Ok(f) => {
                    let mut errors = Vec::new();
                    if f.estimates.is_empty() {
                        errors.push("no criterion estimates found".into());
                    }
                    if f.sim_events_per_s.is_none() && !cli.criterion_read_only {
                        errors.push("the simulator bench printed no events/s line".into());
                    }
                    findings.core = Some(f);
                    errors
                }
                Err(e) => vec![e],
            },
        };
        let outcome = if errors.is_empty() {
            Outcome::Measured
        } else {
            failed = true;
            for e in &errors {
                progress(&format!("FAILED: {}", e.lines().next().unwrap_or("")));
            }
            Outcome::Failed(errors)
        };
        findings.outcomes.push((section, outcome));
    }
    if let Some(Ok(found)) = dataplane {
        findings.dataplane = found;
    }

    findings.wall_s = start.elapsed().as_secs_f64();
    let md = findings.markdown();
    println!("\n{md}");
    let path = cli
        .markdown
        .unwrap_or_else(|| workspace().join("target/vrlb-bench.md"));
    match std::fs::write(&path, &md) {
        Ok(()) => println!("markdown written to {}", path.display()),
        Err(e) => {
            eprintln!("vrlb-bench: {}: {e}", path.display());
            failed = true;
        }
    }
    if failed {
        eprintln!(
            "vrlb-bench: some figures could not be taken (see above); files kept in {}",
            dir.display()
        );
        ExitCode::FAILURE
    } else {
        if cli.keep_files {
            eprintln!("vrlb-bench: files kept in {}", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
        ExitCode::SUCCESS
    }
}

/// Measurement 5.
fn core(cli: &Cli, progress: &mut dyn FnMut(&str)) -> Result<Figures, String> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let criterion_dir = profile_dir()
        .parent()
        .map(|t| t.join("criterion"))
        .unwrap_or_default();
    let (since, stdout) = if cli.criterion_read_only {
        (None, String::new())
    } else {
        let since = SystemTime::now();
        let out = core_figures::run_benches(&workspace(), crate_dir, cli.quick, progress)?;
        (Some(since), out)
    };
    let estimates = core_figures::read_estimates(&criterion_dir, since);
    let (sim_line, sim_events_per_s) = match core_figures::parse_sim_line(&stdout) {
        Some((l, r)) => (Some(l), Some(r)),
        None => (None, None),
    };
    Ok(Figures {
        estimates,
        sim_line,
        sim_events_per_s,
    })
}
