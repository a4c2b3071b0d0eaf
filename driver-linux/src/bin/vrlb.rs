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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
