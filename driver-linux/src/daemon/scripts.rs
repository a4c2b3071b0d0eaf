//! Child processes: `vrrp_script` checks and notify scripts, started
//! without blocking the loop, each in its own process group and killed
//! (the whole group) at its timeout. The loop calls [`Runner::reap`] on
//! SIGCHLD and at [`Runner::next_deadline`].
//!
//! Command lines are split like keepalived does (no shell: words, with
//! single or double quotes and backslash escapes; keepalived.conf(5),
//! "script"), then run directly.
//!
//! A script runs as the account its `user USER [GROUP]` or global
//! `script_user` names, resolved once per build ([`resolve_as`]).

use std::process::{Child, Command, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Group, Pid, Uid, User};
use std::os::unix::process::CommandExt;
use vrlb_core::time::{Duration, Instant};

/// The account a script runs as, resolved from names at build time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// User id.
    pub uid: u32,
    /// Group id (the user's primary group unless a group was named).
    pub gid: u32,
}

/// Who runs one script: `Ok(None)` is vrlb's own account, `Err` a name
/// that does not resolve (the script is refused, as keepalived does).
pub type RunAs = Result<Option<Credentials>, String>;

/// A `USER [GROUP]` pair as written, owned.
pub type Account = (String, Option<String>);

/// The ids of `user` and `group` (default: the user's primary group).
pub fn credentials(user: &str, group: Option<&str>) -> Result<Credentials, String> {
    let u = match User::from_name(user) {
        Ok(Some(u)) => u,
        Ok(None) => return Err(format!("unknown user '{user}'")),
        Err(e) => return Err(format!("cannot look up user '{user}': {e}")),
    };
    let gid = match group {
        None => u.gid.as_raw(),
        Some(g) => match Group::from_name(g) {
            Ok(Some(g)) => g.gid.as_raw(),
            Ok(None) => return Err(format!("unknown group '{g}'")),
            Err(e) => return Err(format!("cannot look up group '{g}': {e}")),
        },
    };
    Ok(Credentials {
        uid: u.uid.as_raw(),
        gid,
    })
}

/// The account of scripts that name none: `script_user`, else
/// `keepalived_script` if that user exists, else vrlb's own (root)
/// (keepalived.conf(5), global_defs `script_user`). `keepalived_script`
/// is only taken when vrlb runs as root: no one else can switch to it.
pub fn default_as(script_user: Option<&Account>) -> RunAs {
    match script_user {
        Some((user, group)) => credentials(user, group.as_deref()).map(Some),
        None if Uid::effective().is_root() => Ok(credentials("keepalived_script", None).ok()),
        None => Ok(None),
    }
}

/// The account of a script with its own `user` (`own`) or else the
/// build's default.
pub fn resolve_as(own: Option<&Account>, default: &RunAs) -> RunAs {
    match own {
        Some((user, group)) => credentials(user, group.as_deref()).map(Some),
        None => default.clone(),
    }
}

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
    /// Starts `line` with `extra` arguments appended, as `run_as` (or
    /// vrlb's own account); it is killed at `now + timeout`.
    pub fn spawn(
        &mut self,
        now: Instant,
        line: &str,
        extra: &[String],
        run_as: Option<Credentials>,
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
        let mut command = Command::new(&words[0]);
        command
            .args(&words[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0);
        for var in super::systemd::CHILD_ENV_REMOVE {
            command.env_remove(var);
        }
        if let Some(c) = run_as {
            // std drops the supplementary groups (setgroups(0)) when root
            // sets a uid, as keepalived clears them before it execs.
            command.uid(c.uid).gid(c.gid);
        }
        let child = command
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
        self.reap_status(now, |job, code| done(job, code == Some(0)));
    }

    /// Kills (the whole group) and forgets every child whose job matches
    /// `which` (a check that was abandoned); returns how many.
    pub fn kill_where(&mut self, mut which: impl FnMut(&Job<T>) -> bool) -> usize {
        let before = self.running.len();
        self.running.retain_mut(|r| {
            if !which(&r.job) {
                return true;
            }
            let _ = killpg(Pid::from_raw(r.child.id() as i32), Signal::SIGKILL);
            let _ = r.child.kill();
            let _ = r.child.wait();
            false
        });
        before - self.running.len()
    }

    /// Like [`Runner::reap`], with the exit code: `None` for a child
    /// killed at its deadline or by a signal, or that could not be waited
    /// for (MISC_CHECK's `misc_dynamic` needs the code).
    pub fn reap_status(&mut self, now: Instant, mut done: impl FnMut(Job<T>, Option<i32>)) {
        let mut i = 0;
        while i < self.running.len() {
            let r = &mut self.running[i];
            let finished = match r.child.try_wait() {
                Ok(Some(status)) => Some(status.code()),
                Ok(None) if now >= r.deadline => {
                    let pid = Pid::from_raw(r.child.id() as i32);
                    let _ = killpg(pid, Signal::SIGKILL);
                    let _ = r.child.kill();
                    let _ = r.child.wait();
                    Some(None)
                }
                Ok(None) => None,
                Err(_) => Some(None),
            };
            match finished {
                Some(code) => {
                    let r = self.running.swap_remove(i);
                    done(r.job, code);
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
        r.spawn(t0, "/bin/sh -c 'exit 0'", &[], None, long, Job::Check(1))
            .unwrap();
        r.spawn(t0, "/bin/sh -c 'exit $0' 3", &[], None, long, Job::Check(2))
            .unwrap();
        // A grandchild in the group dies with it.
        r.spawn(
            t0,
            "/bin/sh -c 'sleep 30; true'",
            &[],
            None,
            Duration::from_millis(100),
            Job::Check(3),
        )
        .unwrap();
        assert!(
            r.spawn(t0, "/nonexistent/x", &[], None, long, Job::Check(4))
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

    #[test]
    fn unknown_names_are_refused_and_the_default_is_kept() {
        let e = credentials("vrlb-no-such-user", None).unwrap_err();
        assert!(e.contains("unknown user 'vrlb-no-such-user'"), "{e}");
        let e = credentials("root", Some("vrlb-no-such-group")).unwrap_err();
        assert!(e.contains("unknown group 'vrlb-no-such-group'"), "{e}");
        let root = credentials("root", None).unwrap();
        assert_eq!(root, Credentials { uid: 0, gid: 0 });
        let named: Account = ("root".into(), None);
        let default = default_as(Some(&named));
        assert_eq!(default, Ok(Some(root)));
        // A script's own user wins over the default; without one, the default.
        let bad: Account = ("vrlb-no-such-user".into(), None);
        assert!(resolve_as(Some(&bad), &default).is_err());
        assert_eq!(resolve_as(None, &default), Ok(Some(root)));
        assert!(default_as(Some(&bad)).is_err());
    }

    #[test]
    fn runs_a_script_as_the_named_user() {
        if !Uid::effective().is_root() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: running a script as another user needs root"
            );
            std::println!("skipped: running a script as another user needs root");
            return;
        }
        let nobody = credentials("nobody", None).expect("user 'nobody' exists");
        let dir = std::env::temp_dir().join(format!("vrlb-scriptuser-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        struct Cleanup(std::path::PathBuf);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let _cleanup = Cleanup(dir.clone());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let out = dir.join("id");
        let line = format!(
            "/bin/sh -c 'id -u > \"$0\"; id -g >> \"$0\"; id -G >> \"$0\"' {}",
            out.display()
        );
        let mut r: Runner<u8> = Runner::default();
        let t0 = Instant::from_secs(1);
        r.spawn(
            t0,
            &line,
            &[],
            Some(nobody),
            Duration::from_secs(10),
            Job::Check(1),
        )
        .unwrap();
        let mut seen = Vec::new();
        let start = std::time::Instant::now();
        while seen.is_empty() && start.elapsed() < std::time::Duration::from_secs(5) {
            r.reap(t0, |job, ok| seen.push((job, ok)));
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(seen, [(Job::Check(1), true)]);
        let text = std::fs::read_to_string(&out).unwrap();
        let gid = nobody.gid.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], nobody.uid.to_string());
        assert_eq!(lines[1], gid);
        // Root's supplementary groups are gone: only the primary group.
        assert_eq!(lines[2], gid);
    }
}
