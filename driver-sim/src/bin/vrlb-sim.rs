//! The `vrlb-sim` command: replay one seed, swarm over many, or show the
//! seed scenario. Thin: the library does the work.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vrlb_sim::report;
use vrlb_sim::scenario::Scenario;
use vrlb_sim::swarm::swarm;

/// Seeded simulation of vrlb clusters with faults and invariants.
#[derive(Debug, Parser)]
#[command(name = "vrlb-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one seed of the swarm (replays a failure bit for bit).
    Run {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Print the whole trace as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run many seeds, each drawing its own cluster and faults.
    Swarm {
        /// Seeds as A..B (B excluded).
        #[arg(long, value_parser = parse_range)]
        seeds: (u64, u64),
    },
    /// The seed document's scenario: two directors, one VIP, two real
    /// servers, a master crash and a real server failure.
    Demo {
        /// A keepalived.conf to use instead of the seed's.
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
        /// Print the whole trace as JSON instead of the timeline.
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

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run { seed, json } => {
            println!("seed {seed}");
            match vrlb_sim::run(Scenario::swarm(seed), json) {
                Ok(outcome) => {
                    if json {
                        println!("{}", report::json(&outcome));
                    }
                    println!("events {}", outcome.events);
                    println!("trace hash {:016x}", outcome.hash);
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
                Err((outcome, reason)) => {
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
        } => {
            let text = match &config {
                Some(path) => match std::fs::read_to_string(path) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("vrlb-sim: {}: {e}", path.display());
                        return ExitCode::from(2);
                    }
                },
                None => SEED_CONFIG.to_string(),
            };
            let text = if sync {
                let instance = text
                    .split_whitespace()
                    .skip_while(|w| *w != "vrrp_instance")
                    .nth(1)
                    .unwrap_or("VI_1")
                    .to_string();
                vrlb_sim::scenario::with_lvs_sync_daemon(&text, &instance)
            } else {
                text
            };
            let duration_us = duration.saturating_mul(1_000_000);
            let mut code = ExitCode::SUCCESS;
            println!("seed {seed}");
            for (title, backup) in [
                (
                    "The seed, literally: both directors run the same keepalived.conf (priority 100), so the tie goes to the greater address (.211).",
                    None,
                ),
                (
                    "Variant: the backup (.211) at priority 90, so .210 is the master.",
                    Some(90),
                ),
            ] {
                let scenario = Scenario::seed_demo(&text, backup, seed, duration_us, clients);
                let servers = scenario.servers.clone();
                let outcome = match vrlb_sim::run(scenario, true) {
                    Ok(o) => o,
                    Err(e) => {
                        eprintln!("vrlb-sim: {e}");
                        return ExitCode::from(2);
                    }
                };
                if json {
                    println!("{}", report::json(&outcome));
                } else {
                    println!("\n== {title}\n");
                    print!("{}", report::timeline(&outcome));
                    println!();
                    print!("{}", report::summary("Summary", &outcome, &servers));
                }
                if let Some(v) = &outcome.violation {
                    eprint!("{}", report::failure(&outcome, &v.to_string()));
                    code = ExitCode::from(v.code);
                }
            }
            code
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
