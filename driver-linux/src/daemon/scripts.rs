//! Child processes: `vrrp_script` checks and notify scripts, started
//! without blocking the loop, each in its own process group and killed
//! (the whole group) at its timeout. The loop calls [`Runner::reap`] on
//! SIGCHLD and at [`Runner::next_deadline`].
//!
//! Command lines are split like keepalived does (no shell: words, with
//! single or double quotes and backslash escapes; keepalived.conf(5),
//! "script"), then run directly.

use std::process::{Child, Command, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use vrlb_core::time::{Duration, Instant};

/// What a child was started for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job<T> {
    /// A check whose outcome the caller wants back.
    Check(T),
    /// A notify script: only logged.
    Notify(String),
}

struct Running<T> {
    child: Child,
    deadline: Instant,
    job: Job<T>,
}

/// Runs and reaps children.
pub struct Runner<T> {
    running: Vec<Running<T>>,
}

impl<T> Default for Runner<T> {
    fn default() -> Self {
        Runner {
            running: Vec::new(),
        }
    }
}

/// Splits a command line into words (quotes and backslashes as a shell
/// would read them, nothing else). `None` on an unclosed quote.
pub fn split(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

impl<T: Clone> Runner<T> {
    /// Starts `line` with `extra` arguments appended; it is killed at
    /// `now + timeout`.
    pub fn spawn(
        &mut self,
        now: Instant,
        line: &str,
        extra: &[String],
        timeout: Duration,
        job: Job<T>,
    ) -> Result<(), String> {
        let Some(mut words) = split(line) else {
            return Err(format!("'{line}': unclosed quote"));
        };
        if words.is_empty() {
            return Err("empty command line".into());
        }
        words.extend(extra.iter().cloned());
        let child = Command::new(&words[0])
            .args(&words[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run '{}': {e}", words[0]))?;
        self.running.push(Running {
            child,
            deadline: now + timeout,
            job,
        });
        Ok(())
    }

    /// The next kill deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.running.iter().map(|r| r.deadline).min()
    }

    /// Children still running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Collects every child that ended, and kills those past their
    /// deadline (they count as failed). Calls `done(job, success)`.
    pub fn reap(&mut self, now: Instant, mut done: impl FnMut(Job<T>, bool)) {
        let mut i = 0;
        while i < self.running.len() {
            let r = &mut self.running[i];
            let finished = match r.child.try_wait() {
                Ok(Some(status)) => Some(status.success()),
                Ok(None) if now >= r.deadline => {
                    let pid = Pid::from_raw(r.child.id() as i32);
                    let _ = killpg(pid, Signal::SIGKILL);
                    let _ = r.child.kill();
                    let _ = r.child.wait();
                    Some(false)
                }
                Ok(None) => None,
                Err(_) => Some(false),
            };
            match finished {
                Some(success) => {
                    let r = self.running.swap_remove(i);
                    done(r.job, success);
                }
                None => i += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words_quotes_and_escapes() {
        assert_eq!(split("/bin/true").unwrap(), ["/bin/true"]);
        assert_eq!(
            split(r#"  /bin/sh -c 'exit 3'  "a b" c\ d "" "#).unwrap(),
            ["/bin/sh", "-c", "exit 3", "a b", "c d", ""]
        );
        assert_eq!(split(r#"echo "x\"y""#).unwrap(), ["echo", "x\"y"]);
        assert!(split("echo 'open").is_none());
    }

    #[test]
    fn reports_exit_status_and_kills_at_the_timeout() {
        let mut r: Runner<u8> = Runner::default();
        let t0 = Instant::from_secs(1);
        let long = Duration::from_secs(30);
        r.spawn(t0, "/bin/sh -c 'exit 0'", &[], long, Job::Check(1))
            .unwrap();
        r.spawn(t0, "/bin/sh -c 'exit $0' 3", &[], long, Job::Check(2))
            .unwrap();
        // A grandchild in the group dies with it.
        r.spawn(
            t0,
            "/bin/sh -c 'sleep 30; true'",
            &[],
            Duration::from_millis(100),
            Job::Check(3),
        )
        .unwrap();
        assert!(
            r.spawn(t0, "/nonexistent/x", &[], long, Job::Check(4))
                .is_err()
        );
        assert_eq!(r.next_deadline(), Some(t0 + Duration::from_millis(100)));
        let mut seen = Vec::new();
        let start = std::time::Instant::now();
        while seen.len() < 2 && start.elapsed() < std::time::Duration::from_secs(5) {
            r.reap(t0, |job, ok| seen.push((job, ok)));
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        seen.sort_by_key(|(j, _)| match j {
            Job::Check(n) => *n,
            Job::Notify(_) => 0,
        });
        assert_eq!(seen, [(Job::Check(1), true), (Job::Check(2), false)]);
        assert_eq!(r.running(), 1);
        r.reap(t0 + Duration::from_millis(100), |job, ok| {
            seen.push((job, ok))
        });
        assert_eq!(seen.last(), Some(&(Job::Check(3), false)));
        assert_eq!(r.running(), 0);
    }
}
