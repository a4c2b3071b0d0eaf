//! Where the daemon's log lines go: stderr (one line per record, with the
//! monotonic seconds since start so timings can be read off a test log) or
//! syslog (facility daemon) with `--syslog`. Installs the `log` facade
//! that the core's `fmt` macros also write to.
//!
//! A stderr line is formatted first and written with one `write`:
//! stderr is unbuffered, and `writeln!` on it made one syscall per
//! formatted piece (about 20 a line). A takeover logs two lines before its
//! advert goes out, so that was tens of microseconds on the failover
//! path; one write also keeps lines from the data plane's threads whole.

use std::fmt::Write as _;
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
        let text = line(self.start.elapsed(), record.level(), record.args());
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    fn flush(&self) {}
}

/// One stderr line: seconds since start (to the millisecond), level, text.
fn line(t: std::time::Duration, level: log::Level, args: &std::fmt::Arguments<'_>) -> String {
    let mut text = String::with_capacity(128);
    let _ = writeln!(
        text,
        "{:>5}.{:03} {:<5} {}",
        t.as_secs(),
        t.subsec_millis(),
        level,
        args
    );
    text
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_time_level_and_text_ending_in_one_newline() {
        let t = std::time::Duration::from_millis(12_345);
        let text = line(
            t,
            log::Level::Info,
            &format_args!("VI_1: {} -> {}", "BACKUP", "MASTER"),
        );
        assert_eq!(text, "   12.345 INFO  VI_1: BACKUP -> MASTER\n");
    }
}
