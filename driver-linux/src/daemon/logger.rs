//! Where the daemon's log lines go: stderr (one line per record, with the
//! monotonic seconds since start so timings can be read off a test log) or
//! syslog (facility daemon) with `--syslog`. Installs the `log` facade
//! that the core's `fmt` macros also write to.

use std::io::Write;

struct Stderr {
    level: log::LevelFilter,
    start: std::time::Instant,
}

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let t = self.start.elapsed();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "{:>5}.{:03} {:<5} {}",
            t.as_secs(),
            t.subsec_millis(),
            record.level(),
            record.args()
        );
    }

    fn flush(&self) {}
}

/// Installs the logger: syslog when `syslog` (falling back to stderr with
/// a warning if no syslog socket answers), stderr otherwise.
pub fn init(syslog: bool, level: log::LevelFilter) {
    log::set_max_level(level);
    if syslog {
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_DAEMON,
            hostname: None,
            process: "vrlb".into(),
            pid: std::process::id(),
        };
        match syslog::unix(formatter) {
            Ok(logger) => {
                if log::set_boxed_logger(Box::new(syslog::BasicLogger::new(logger))).is_ok() {
                    return;
                }
            }
            Err(e) => eprintln!("vrlb: syslog unavailable ({e}): logging to stderr"),
        }
    }
    let _ = log::set_boxed_logger(Box::new(Stderr {
        level,
        start: std::time::Instant::now(),
    }));
}
