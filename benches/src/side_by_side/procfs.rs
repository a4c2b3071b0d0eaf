//! What `/proc` says about a daemon's processes: resident memory (VmRSS),
//! proportional memory (Pss, from smaps_rollup), CPU time (utime + stime
//! in clock ticks, and the scheduler's nanosecond run time), and the
//! children of a process. Reads files only; never signals anything.
//!
//! Written by hand rather than with the `procfs` crate: four fields of
//! four files, parsed by the small functions below (tested on fixed text).

use std::fs;

/// One sample of a set of processes, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// Sum of VmRSS, bytes.
    pub rss_bytes: u64,
    /// Sum of Pss, bytes (shared pages split between their users).
    pub pss_bytes: u64,
    /// Sum of utime + stime, clock ticks.
    pub cpu_ticks: u64,
    /// Sum of the scheduler's run time of every thread, nanoseconds
    /// (`/proc/PID/schedstat`), finer than ticks.
    pub cpu_ns: u64,
    /// How many processes were read.
    pub processes: usize,
}

/// A value in kB from `Key:   1234 kB` lines, in bytes.
pub fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

/// (ppid, utime + stime) from `/proc/PID/stat` text. The command name (field
/// 2) is in parentheses and may hold spaces, so fields are counted from
/// the last `)`.
pub fn stat_fields(text: &str) -> Option<(u32, u64)> {
    let after = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... utime(14) stime(15).
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// The run time in nanoseconds, the first field of `schedstat`.
pub fn schedstat_ns(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Reads one process; `None` if it has gone.
pub fn read(pid: u32) -> Option<Sample> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, cpu_ticks) = stat_fields(&stat)?;
    let pss_bytes = fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|t| kb_field(&t, "Pss"))
        .unwrap_or(0);
    // Every thread's run time (the daemons are single-threaded today;
    // summing keeps the figure honest if that changes).
    let mut cpu_ns = 0;
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Some(ns) = fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| schedstat_ns(&s))
            {
                cpu_ns += ns;
            }
        }
    }
    Some(Sample {
        rss_bytes: kb_field(&status, "VmRSS").unwrap_or(0),
        pss_bytes,
        cpu_ticks,
        cpu_ns,
        processes: 1,
    })
}

/// `pid` and all its descendants (keepalived's parent and its VRRP and
/// checker children), by scanning `/proc` for parent pids.
pub fn family(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ppid, _)) = fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|t| stat_fields(&t))
            {
                parents.push((p, ppid));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}

/// The sum over `pids` (processes that have gone count as nothing).
pub fn read_all(pids: &[u32]) -> Sample {
    let mut sum = Sample::default();
    for s in pids.iter().filter_map(|&p| read(p)) {
        sum.rss_bytes += s.rss_bytes;
        sum.pss_bytes += s.pss_bytes;
        sum.cpu_ticks += s.cpu_ticks;
        sum.cpu_ns += s.cpu_ns;
        sum.processes += 1;
    }
    sum
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100, |v| v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_smaps_stat_and_schedstat() {
        let status = "Name:\tkeepalived\nVmPeak:\t  9000 kB\nVmRSS:\t    4321 kB\n";
        assert_eq!(kb_field(status, "VmRSS"), Some(4321 * 1024));
        assert_eq!(kb_field(status, "VmSwap"), None);
        let rollup = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss: 5000 kB\nPss:  1234 kB\nPss_Anon: 800 kB\n";
        assert_eq!(kb_field(rollup, "Pss"), Some(1234 * 1024));
        // A name with spaces and parentheses.
        let stat = "4242 (a (b) c) S 17 4242 4242 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 1 2 3";
        assert_eq!(stat_fields(stat), Some((17, 12)));
        assert_eq!(stat_fields("garbage"), None);
        assert_eq!(schedstat_ns("803050 1263623 3\n"), Some(803_050));
    }

    #[test]
    fn reads_this_process_and_finds_it_in_its_family() {
        let me = std::process::id();
        let s = read(me).unwrap();
        assert!(s.rss_bytes > 0 && s.processes == 1);
        assert_eq!(family(me)[0], me);
        assert!(ticks_per_second() > 0);
    }
}
