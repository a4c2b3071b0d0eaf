//! The `vrlb` command: the daemon and its tools. Thin: each subcommand is a
//! function of the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vrlb_core::config::Options;

/// vrlb: keepalived + LVS as a sans-IO engine.
#[derive(Debug, Parser)]
#[command(name = "vrlb", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a keepalived.conf and print what it means (like
    /// `keepalived -t`, with file, line and column).
    Check {
        /// The configuration file.
        #[arg(
            short = 'f',
            long = "use-file",
            default_value = "/etc/keepalived/keepalived.conf"
        )]
        file: PathBuf,
        /// keepalived's `-i`: the config id that selects `@id` lines.
        #[arg(short = 'i', long = "config-id")]
        config_id: Option<String>,
        /// Treat warnings as errors (exit status 1).
        #[arg(long)]
        strict: bool,
        /// Print only the diagnostics, not the description.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Run the daemon in the foreground until SIGTERM or SIGINT (SIGHUP
    /// reloads the configuration).
    Run {
        /// The configuration file.
        #[arg(
            short = 'f',
            long = "use-file",
            default_value = "/etc/keepalived/keepalived.conf"
        )]
        file: PathBuf,
        /// keepalived's `-i`: the config id that selects `@id` lines.
        #[arg(short = 'i', long = "config-id")]
        config_id: Option<String>,
        /// Where to write the pid.
        #[arg(short = 'p', long = "pid-file", default_value = "/run/vrlb/vrlb.pid")]
        pid_file: PathBuf,
        /// The record of VIPs added, read at start to remove what a crashed
        /// run left.
        #[arg(long = "state-file", default_value = "/run/vrlb/vips")]
        state_file: PathBuf,
        /// Write each instance's state and counters here (once a second
        /// when they change).
        #[arg(long = "stats-file")]
        stats_file: Option<PathBuf>,
        /// Connection-table slots of the load balancer (used only when the
        /// configuration has virtual_server blocks).
        #[arg(long, default_value_t = 1 << 16)]
        connections: u32,
        /// Log to syslog (facility daemon) instead of stderr.
        #[arg(long)]
        syslog: bool,
        /// Log level: error, warn, info, debug, trace.
        #[arg(long = "log-level", default_value = "info")]
        log_level: log::LevelFilter,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            file,
            config_id,
            pid_file,
            state_file,
            stats_file,
            connections,
            syslog,
            log_level,
        } => {
            vrlb_linux::daemon::logger::init(syslog, log_level);
            let extensions: Vec<Box<dyn vrlb_linux::daemon::event_loop::Extension>> =
                vec![Box::new(vrlb_linux::anycast::Anycast::new(
                    &state_file.with_extension("anycast"),
                ))];
            let options = vrlb_linux::daemon::RunOptions {
                config: file,
                config_id,
                pid_file: Some(pid_file),
                state_file,
                stats_file,
                connections,
            };
            match vrlb_linux::daemon::run(options, extensions) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    if syslog {
                        log::error!("{e}");
                    }
                    eprintln!("vrlb: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check {
            file,
            config_id,
            strict,
            quiet,
        } => {
            let options = Options {
                config_id: config_id.as_deref(),
            };
            let report = vrlb_linux::check::check(&file, &options);
            if !quiet {
                print!("{}", report.description);
            }
            for w in &report.warnings {
                eprintln!("{w}");
            }
            match &report.error {
                Some(e) => {
                    eprintln!("{e}");
                    eprintln!("{}: configuration refused", file.display());
                    ExitCode::FAILURE
                }
                None if strict && !report.warnings.is_empty() => {
                    eprintln!(
                        "{}: {} warning(s) and --strict",
                        file.display(),
                        report.warnings.len()
                    );
                    ExitCode::FAILURE
                }
                None => {
                    eprintln!(
                        "{}: configuration OK ({} file(s), {} warning(s))",
                        file.display(),
                        report.files,
                        report.warnings.len()
                    );
                    ExitCode::SUCCESS
                }
            }
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
