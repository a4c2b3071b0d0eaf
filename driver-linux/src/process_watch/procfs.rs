//! What `/proc` says of a process: its name and whether it runs (from
//! `stat`), its command line, and the list of processes. Reads only.

use std::fs;
use std::io;

/// One process as `/proc/PID/stat` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// The name (`comm`).
    pub comm: String,
    /// A zombie: exited, not reaped; keepalived does not count them.
    pub zombie: bool,
}

/// Parses a `stat` line: `PID (COMM) STATE ...`, where COMM may itself
/// hold spaces and parentheses (so the last `)` ends it).
pub fn parse_stat(line: &str) -> Option<Stat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line.get(open + 1..close)?.to_string();
    let state = line.get(close + 1..)?.trim_start().chars().next()?;
    Some(Stat {
        comm,
        zombie: state == 'Z',
    })
}

/// `/proc/PID/stat`, `None` when the process is gone.
pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `/proc/PID/cmdline`'s words (empty for kernel threads and zombies),
/// `None` when the process is gone.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(split_cmdline(&raw))
}

/// NUL-separated words (the last one NUL-terminated or not).
pub fn split_cmdline(raw: &[u8]) -> Vec<String> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|b| *b == 0)
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

/// Every process (thread group leader) now running.
pub fn pids() -> io::Result<Vec<u32>> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc")? {
        if let Some(pid) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
            out.push(pid);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let s = parse_stat("4242 (Web (Content) x) S 1 4242 4242 0 -1").unwrap();
        assert_eq!(s.comm, "Web (Content) x");
        assert!(!s.zombie);
        assert!(parse_stat("7 (sh) Z 1 7").unwrap().zombie);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn command_lines_split_at_nuls() {
        assert_eq!(
            split_cmdline(b"/bin/sh\0-c\0echo hi\0"),
            ["/bin/sh", "-c", "echo hi"]
        );
        assert_eq!(
            split_cmdline(b"nginx: master process"),
            ["nginx: master process"]
        );
        assert!(split_cmdline(b"").is_empty());
    }

    #[test]
    fn this_process_is_listed_and_read() {
        let me = std::process::id();
        assert!(pids().unwrap().contains(&me));
        let s = stat(me).unwrap();
        assert!(!s.comm.is_empty() && !s.zombie);
        assert!(!cmdline(me).unwrap().is_empty());
    }
}
