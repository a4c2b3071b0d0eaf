//! The `vrlb-sim` command: replay one seed, swarm over many, or tell the
//! seed document's story for any keepalived.conf. Thin: the library does
//! the work. Every run prints its seed first (on stderr with `--json`, so
//! stdout is pure JSON); a failure prints the seed, the invariant, the
//! last events and the command that replays it, and exits with the
//! invariant's code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use vrlb_sim::report;
use vrlb_sim::scenario::{EcmpHash, Scenario};
use vrlb_sim::swarm::swarm;

/// Seeded simulation of vrlb clusters with faults and invariants.
#[derive(Debug, Parser)]
#[command(name = "vrlb-sim", version, about)]
struct Cli {
    /// Compile-time mutation to switch on (a deliberate bug, for the
    /// mutation tests): its name, e.g. IgnoreCheckFailure.
    #[cfg(feature = "mutation")]
    #[arg(long, global = true)]
    mutation: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// The swarm's scenario for the seed (the seed decides everything).
    Swarm,
    /// Active-active directors behind an ECMP router (issue 10).
    Ecmp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Hash {
    /// Hash-threshold (Linux).
    Threshold,
    /// Modulo.
    Modulo,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one seed (replays a failure bit for bit).
    Run {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Which scenario.
        #[arg(long, value_enum, default_value_t = Kind::Swarm)]
        scenario: Kind,
        /// ECMP: directors.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=16))]
        directors: u8,
        /// ECMP: the router's hash.
        #[arg(long, value_enum, default_value_t = Hash::Threshold)]
        hash: Hash,
        /// ECMP: the directors' scheduler.
        #[arg(long, default_value = "mh")]
        scheduler: String,
        /// Print the run, with its whole trace, as JSON (only JSON on
        /// stdout).
        #[arg(long)]
        json: bool,
    },
    /// Run many seeds, each drawing its own cluster and faults.
    Swarm {
        /// Seeds as A..B (B excluded).
        #[arg(long, value_parser = parse_range)]
        seeds: (u64, u64),
    },
    /// The seed document's scenario: two directors running the same
    /// keepalived.conf, a master crash and a real server failure; then the
    /// same with the backup at a lower priority.
    Demo {
        /// A keepalived.conf to use instead of the seed's (its VIPs,
        /// services, real servers and checks make the topology).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Simulated seconds.
        #[arg(long, default_value_t = 240)]
        duration: u64,
        /// Client hosts.
        #[arg(long, default_value_t = 20)]
        clients: usize,
        /// Print both runs, with their traces, as JSON instead of the
        /// timeline (only JSON on stdout).
        #[arg(long)]
        json: bool,
        /// Turn connection sync on: `lvs_sync_daemon eth0 INSTANCE` (the
        /// first vrrp_instance) in global_defs.
        #[arg(long)]
        sync: bool,
    },
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("'{s}' is not a range like 0..1000"))?;
    let a: u64 = a.parse().map_err(|_| format!("'{a}' is not a number"))?;
    let b: u64 = b.parse().map_err(|_| format!("'{b}' is not a number"))?;
    if b <= a {
        return Err(format!("empty range {a}..{b}"));
    }
    Ok((a, b))
}

const SEED_CONFIG: &str = include_str!("../../../examples/seed/keepalived.conf");

/// Switches the mutation on; returns what replays must add.
#[cfg(feature = "mutation")]
fn mutation(cli: &Cli) -> Result<String, String> {
    use vrlb_core::mutation::{self, Mutation};
    let Some(name) = &cli.mutation else {
        return Ok(String::new());
    };
    let m = Mutation::ALL
        .into_iter()
        .find(|m| format!("{m:?}") == *name)
        .ok_or_else(|| {
            let names: Vec<String> = Mutation::ALL.iter().map(|m| format!("{m:?}")).collect();
            format!("unknown mutation '{name}' (one of {})", names.join(", "))
        })?;
    mutation::set(Some(m));
    Ok(format!(" --mutation {name}"))
}

#[cfg(not(feature = "mutation"))]
fn mutation(_cli: &Cli) -> Result<String, String> {
    Ok(String::new())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let extra = match mutation(&cli) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("vrlb-sim: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Run {
            seed,
            scenario,
            directors,
            hash,
            scheduler,
            json,
        } => {
            let mut s = match scenario {
                Kind::Swarm => Scenario::swarm(seed),
                Kind::Ecmp => {
                    if vrlb_core::config::Scheduler::from_name(&scheduler).is_none() {
                        eprintln!("vrlb-sim: --scheduler: '{scheduler}' is not an IPVS scheduler");
                        return ExitCode::from(2);
                    }
                    let hash = match hash {
                        Hash::Threshold => EcmpHash::Threshold,
                        Hash::Modulo => EcmpHash::Modulo,
                    };
                    Scenario::ecmp(seed, usize::from(directors), hash, &scheduler)
                }
            };
            s.replay += &extra;
            if json {
                eprintln!("seed {seed}");
            } else {
                println!("seed {seed}");
            }
            match vrlb_sim::run(s, json) {
                Ok(outcome) => {
                    if json {
                        let mut v = report::json_value(&outcome);
                        v["events_traced"] = outcome.events.into();
                        println!("{v}");
                    } else {
                        println!("events {}", outcome.events);
                        println!("trace hash {:016x}", outcome.hash);
                    }
                    match &outcome.violation {
                        Some(v) => {
                            eprint!("{}", report::failure(&outcome, &v.to_string()));
                            ExitCode::from(v.code)
                        }
                        None => ExitCode::SUCCESS,
                    }
                }
                Err(e) => {
                    eprintln!("seed {seed}: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Swarm { seeds: (from, to) } => {
            println!("swarm seeds {from}..{to}");
            let total = to - from;
            let result = swarm(from, to, |o| {
                let done = o.seed - from + 1;
                println!(
                    "seed {:>8}  ok  {:>8} events  hash {:016x}  [{done}/{total}]",
                    o.seed, o.events, o.hash
                );
            });
            match result {
                Ok(ran) => {
                    println!("{ran} seeds, no violation");
                    ExitCode::SUCCESS
                }
                Err(failure) => {
                    let (mut outcome, reason) = *failure;
                    outcome.replay += &extra;
                    eprint!("{}", report::failure(&outcome, &reason));
                    ExitCode::from(outcome.violation.as_ref().map_or(2, |v| v.code))
                }
            }
        }
        Command::Demo {
            config,
            seed,
            duration,
            clients,
            json,
            sync,
        } => demo(config, seed, duration, clients, json, sync, &extra),
    }
}

fn demo(
    config: Option<PathBuf>,
    seed: u64,
    duration: u64,
    clients: usize,
    json: bool,
    sync: bool,
    extra: &str,
) -> ExitCode {
    let (file, text) = match &config {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => (path.display().to_string(), t),
            Err(e) => {
                eprintln!("vrlb-sim: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => (
            "examples/seed/keepalived.conf".to_string(),
            SEED_CONFIG.to_string(),
        ),
    };
    let text = if sync {
        let first = match vrlb_sim::topology::view(&file, &text) {
            Ok(v) => v.instances.first().map(|i| i.name.clone()),
            Err(e) => {
                eprintln!("vrlb-sim: {e}");
                return ExitCode::from(2);
            }
        };
        let Some(instance) = first else {
            eprintln!("vrlb-sim: {file}: --sync needs a vrrp_instance to follow");
            return ExitCode::from(2);
        };
        vrlb_sim::scenario::with_lvs_sync_daemon(&text, &instance)
    } else {
        text
    };
    let duration_us = duration.saturating_mul(1_000_000);
    let mut replay = format!("demo --seed {seed} --duration {duration}");
    if let Some(p) = &config {
        replay += &format!(" --config {}", p.display());
    }
    if clients != 20 {
        replay += &format!(" --clients {clients}");
    }
    if sync {
        replay += " --sync";
    }
    replay += extra;
    let say = |line: &str| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    say(&format!("seed {seed}"));
    let mut code = ExitCode::SUCCESS;
    let mut runs = Vec::new();
    let mut printed_notes = false;
    for (title, lower) in [
        (
            "The seed, literally: both directors run the same keepalived.conf, so a priority tie goes to the greater address.",
            false,
        ),
        (
            "Variant: the backup's instances at a priority ten lower (the parsed values changed), so the first director is the master.",
            true,
        ),
    ] {
        let mut scenario = match Scenario::demo(&file, &text, lower, seed, duration_us, clients) {
            Ok(s) => s,
            Err(e) if !lower && e.contains("priority 255") => {
                eprintln!("vrlb-sim: {e}");
                continue;
            }
            Err(e) => {
                eprintln!("vrlb-sim: {e}");
                return ExitCode::from(2);
            }
        };
        scenario.replay = replay.clone();
        if !printed_notes {
            for n in &scenario.notes {
                eprintln!("vrlb-sim: note: {n}");
            }
            printed_notes = true;
        }
        let outcome = match vrlb_sim::run(scenario, true) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("vrlb-sim: {e}");
                return ExitCode::from(2);
            }
        };
        // A configuration the core refuses (a duplicate VRID, say) is the
        // file's error, not the cluster's.
        if let Some(v) = outcome.violation.as_ref().filter(|v| !v.is_invariant()) {
            eprintln!("vrlb-sim: {file}: {}", v.detail);
            return ExitCode::from(v.code);
        }
        if json {
            let mut v = report::json_value(&outcome);
            v["title"] = title.into();
            runs.push(v);
        } else {
            println!("\n== {title}\n");
            let addrs = outcome
                .director_addrs
                .iter()
                .enumerate()
                .map(|(i, a)| format!("director {i} = {a}"))
                .collect::<Vec<_>>()
                .join(", ");
            println!("{addrs}\n");
            print!("{}", report::timeline(&outcome));
            println!();
            print!("{}", report::summary("Summary", &outcome));
        }
        if let Some(v) = &outcome.violation {
            eprint!("{}", report::failure(&outcome, &v.to_string()));
            if code == ExitCode::SUCCESS {
                code = ExitCode::from(v.code);
            }
        }
    }
    if json {
        println!("{}", serde_json::json!({ "seed": seed, "runs": runs }));
    }
    code
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
