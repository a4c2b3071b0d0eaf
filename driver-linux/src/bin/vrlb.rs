//! The `vrlb` command: the daemon and its tools. Thin: each subcommand is a
//! function of the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vrlb_core::config::Options;
use vrlb_linux::control::{self, Request};
use vrlb_linux::dataplane::DataPlaneOptions;

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
        /// keepalived's `-i`: the config id that selects `@id` lines and
        /// is `${_INSTANCE}` (default: the host name up to its first dot,
        /// as keepalived).
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
        /// keepalived's `-i`: the config id that selects `@id` lines and
        /// is `${_INSTANCE}` (default: the host name up to its first dot,
        /// as keepalived).
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
        /// Connection-table slots of the load balancer, per data-plane
        /// worker (used only when the configuration has virtual_server
        /// blocks).
        #[arg(long, default_value_t = vrlb_linux::dataplane::DEFAULT_CONNECTIONS)]
        connections: u32,
        /// Each data-plane worker's AF_PACKET receive ring, in KiB (2 KiB
        /// a frame; rounded up to 64 KiB blocks). Resident while the data
        /// plane runs; raise it when `vrlb status` counts ring_full drops.
        #[arg(long = "ring-kib", default_value_t = vrlb_linux::dataplane::DEFAULT_RING_KIB,
              value_parser = clap::value_parser!(u32).range(64..=1 << 20))]
        ring_kib: u32,
        /// Log to syslog (facility daemon) instead of stderr.
        #[arg(long)]
        syslog: bool,
        /// Log level: error, warn, info, debug, trace.
        #[arg(long = "log-level", default_value = "info")]
        log_level: log::LevelFilter,
        /// Data-plane worker threads (each with its own AF_PACKET ring;
        /// several share the load by client address).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        workers: u16,
        /// The interface the DR data plane forwards on (default: the one
        /// whose subnet holds the real servers).
        #[arg(long = "dataplane-iface")]
        dataplane_iface: Option<String>,
        /// The control socket `vrlb status` and `vrlb conns` ask (mode
        /// 0600; a missing directory is made 0700).
        #[arg(long = "control-socket", default_value = vrlb_linux::control::DEFAULT_SOCKET)]
        control_socket: PathBuf,
    },
    /// Services and real servers with their weights, connection counts and
    /// check state (`ipvsadm -L -n` layout), and the data plane's counters.
    Status {
        /// The daemon's control socket.
        #[arg(long = "control-socket", default_value = vrlb_linux::control::DEFAULT_SOCKET)]
        control_socket: PathBuf,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// The seed's topology in network namespaces on this machine: a
    /// client, two directors running vrlb, two real servers serving HTTP.
    Lab {
        #[command(subcommand)]
        action: LabAction,
        /// Namespace prefix (namespaces are PREFIX-client, PREFIX-d1, ...).
        #[arg(long, default_value = vrlb_linux::lab::DEFAULT_PREFIX, global = true)]
        prefix: String,
        /// Where the lab keeps configurations, logs and sockets.
        #[arg(long, default_value = vrlb_linux::lab::DEFAULT_DIR, global = true)]
        dir: PathBuf,
    },
    /// Tracked connections and persistence templates (`ipvsadm -L -c -n`
    /// layout).
    Conns {
        /// The daemon's control socket.
        #[arg(long = "control-socket", default_value = vrlb_linux::control::DEFAULT_SOCKET)]
        control_socket: PathBuf,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum LabAction {
    /// Builds the lab and starts the directors and servers; prints how to
    /// reach the VIP.
    Up {
        /// Data-plane workers per director.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
        workers: u16,
    },
    /// Stops the lab's processes and deletes its namespaces and files.
    Down,
    /// What is up, who holds the VIP, each director's status.
    Status,
    /// The real servers' HTTP service (the lab starts it).
    #[command(hide = true)]
    Serve {
        /// Address and port to listen on.
        #[arg(long, default_value = "0.0.0.0:80")]
        listen: std::net::SocketAddr,
        /// The name every answer carries.
        #[arg(long)]
        name: String,
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
            ring_kib,
            syslog,
            log_level,
            workers,
            dataplane_iface,
            control_socket,
        } => {
            vrlb_linux::daemon::logger::init(syslog, log_level);
            let dataplane = vrlb_linux::dataplane::DataPlane::new(DataPlaneOptions {
                workers: usize::from(workers),
                iface: dataplane_iface,
                connections,
                ring_kib,
            });
            let sync = vrlb_linux::dataplane::sync::DataPlaneSync::new(&dataplane);
            let control = vrlb_linux::control::Control::new(&control_socket, dataplane.view())
                .with_sync(sync.view());
            let extensions: Vec<Box<dyn vrlb_linux::daemon::event_loop::Extension>> = vec![
                Box::new(vrlb_linux::anycast::Anycast::new()),
                Box::new(vrlb_linux::process_watch::ProcessWatch::new()),
                Box::new(dataplane),
                Box::new(sync),
                Box::new(control),
            ];
            let options = vrlb_linux::daemon::RunOptions {
                config: file,
                config_id: config_id.or_else(vrlb_linux::config_file::default_config_id),
                pid_file: Some(pid_file),
                state_file,
                stats_file,
                // Only the data plane's workers classify and hold
                // connections; the node's balancer keeps services and
                // weights, so it needs no connection table of its own.
                connections: 1,
            };
            let extensions = vrlb_linux::probe::Probes::added_to(extensions);
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
        Command::Status {
            control_socket,
            json,
        } => ask(&control_socket, Request::Status, json),
        Command::Conns {
            control_socket,
            json,
        } => ask(&control_socket, Request::Conns, json),
        Command::Lab {
            action,
            prefix,
            dir,
        } => lab(action, prefix, dir),
        Command::Check {
            file,
            config_id,
            strict,
            quiet,
        } => {
            let config_id = config_id.or_else(vrlb_linux::config_file::default_config_id);
            let builtins = vrlb_linux::config_file::Builtins::now();
            let env = builtins.env_pairs();
            let options = Options {
                config_id: config_id.as_deref(),
                random_seed: builtins.seed,
                env: &env,
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

/// `vrlb lab ...`.
fn lab(action: LabAction, prefix: String, dir: PathBuf) -> ExitCode {
    use vrlb_linux::lab;
    let mut opts = lab::LabOptions {
        prefix,
        dir,
        workers: 2,
    };
    let result = match action {
        LabAction::Up { workers } => {
            opts.workers = workers;
            std::env::current_exe()
                .map_err(|e| format!("cannot find the vrlb binary: {e}"))
                .and_then(|exe| lab::up(&opts, &exe))
        }
        LabAction::Down => lab::down(&opts),
        LabAction::Status => lab::status(&opts),
        LabAction::Serve { listen, name } => lab::serve(listen, &name).map(|()| String::new()),
    };
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vrlb lab: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `vrlb status` / `vrlb conns`: asks the daemon, prints its answer.
fn ask(socket: &std::path::Path, request: Request, json: bool) -> ExitCode {
    match control::client::ask(socket, request) {
        Ok(answer) if json => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Ok(answer) => match control::layout::render(request, &answer) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vrlb: {}: {e}", socket.display());
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("vrlb: {e}");
            ExitCode::FAILURE
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
