//! Which processes a `vrrp_track_process` counts: keepalived's exact
//! comparison of the process name (`/proc/PID/comm`), or with
//! `full_command` of the command line (`/proc/PID/cmdline`) and its
//! parameters by `param_match`. No I/O.

use vrlb_core::config::{ParamMatch, TrackProcessConf};

/// The longest process name the kernel keeps (`TASK_COMM_LEN` - 1).
const COMM_MAX: usize = 15;

/// One tracked process's match, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The block's name, for logs.
    pub name: String,
    /// The process name, or with `full_command` the command's first word.
    pub process: String,
    /// The parameters to compare.
    pub params: Vec<String>,
    /// How.
    pub param_match: ParamMatch,
    /// Compare the command line, not the name.
    pub full_command: bool,
}

/// What is known of one running process.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// `/proc/PID/comm`, without its newline.
    pub comm: &'a str,
    /// `/proc/PID/cmdline` split at NULs (`None`: not read, no spec needs
    /// it).
    pub cmdline: Option<&'a [String]>,
}

impl ProcessSpec {
    /// From the block.
    pub fn from_conf(conf: &TrackProcessConf<'_>) -> ProcessSpec {
        ProcessSpec {
            name: conf.name.to_string(),
            process: conf.process.to_string(),
            params: conf.params.iter().map(|p| p.to_string()).collect(),
            param_match: conf.param_match,
            full_command: conf.full_command,
        }
    }

    /// Whether a process seen as `seen` counts.
    pub fn matches(&self, seen: Seen<'_>) -> bool {
        if !self.full_command {
            // The kernel cuts names at 15 bytes; so is the configured one
            // compared (keepalived's rule).
            let want = truncate(&self.process, COMM_MAX);
            return seen.comm == want;
        }
        let Some(args) = seen.cmdline else {
            return false;
        };
        let Some((first, rest)) = args.split_first() else {
            // Kernel threads and zombies have no command line.
            return false;
        };
        if *first != self.process {
            return false;
        }
        let n = self.params.len();
        match self.param_match {
            ParamMatch::Ignore => true,
            ParamMatch::Exact => rest == self.params.as_slice(),
            ParamMatch::Partial => rest.len() >= n && rest[..n] == self.params[..],
            ParamMatch::Initial => {
                if rest.len() < n {
                    return false;
                }
                match self.params.split_last() {
                    None => true,
                    Some((last, before)) => {
                        rest[..n - 1] == *before && rest[n - 1].starts_with(last.as_str())
                    }
                }
            }
        }
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(process: &str, params: &[&str], m: ParamMatch, full: bool) -> ProcessSpec {
        ProcessSpec {
            name: "t".into(),
            process: process.into(),
            params: params.iter().map(|p| p.to_string()).collect(),
            param_match: m,
            full_command: full,
        }
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn seen<'a>(comm: &'a str, cmdline: &'a [String]) -> Seen<'a> {
        Seen {
            comm,
            cmdline: Some(cmdline),
        }
    }

    #[test]
    fn names_match_exactly_as_the_kernel_keeps_them() {
        let s = spec("ssh", &[], ParamMatch::Ignore, false);
        let none = args(&[]);
        assert!(s.matches(seen("ssh", &none)));
        assert!(!s.matches(seen("sshd", &none)), "not pgrep's substring");
        let long = spec("a-very-long-daemon-name", &[], ParamMatch::Ignore, false);
        assert!(long.matches(seen("a-very-long-dae", &none)));
    }

    #[test]
    fn full_commands_compare_parameters_by_param_match() {
        let line = args(&[
            "/usr/sbin/haproxy",
            "-f",
            "/etc/haproxy.cfg",
            "-p",
            "/run/h.pid",
        ]);
        let s = |p: &[&str], m| spec("/usr/sbin/haproxy", p, m, true);
        assert!(s(&[], ParamMatch::Ignore).matches(seen("haproxy", &line)));
        assert!(
            !s(&[], ParamMatch::Exact).matches(seen("haproxy", &line)),
            "no parameters wanted"
        );
        assert!(s(&["-f", "/etc/haproxy.cfg"], ParamMatch::Partial).matches(seen("x", &line)));
        assert!(!s(&["-f", "/etc/haproxy.cfg"], ParamMatch::Exact).matches(seen("x", &line)));
        assert!(
            s(
                &["-f", "/etc/haproxy.cfg", "-p", "/run/h.pid"],
                ParamMatch::Exact
            )
            .matches(seen("x", &line))
        );
        assert!(s(&["-f", "/etc/hap"], ParamMatch::Initial).matches(seen("x", &line)));
        assert!(!s(&["-f", "/etc/hap"], ParamMatch::Partial).matches(seen("x", &line)));
        assert!(!s(&["-x"], ParamMatch::Initial).matches(seen("x", &line)));
        let other = args(&["/usr/bin/haproxy", "-f", "/etc/haproxy.cfg"]);
        assert!(
            !s(&[], ParamMatch::Ignore).matches(seen("haproxy", &other)),
            "the path counts"
        );
        let kernel_thread = args(&[]);
        assert!(!s(&[], ParamMatch::Ignore).matches(seen("haproxy", &kernel_thread)));
    }
}
