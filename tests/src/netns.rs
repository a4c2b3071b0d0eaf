//! The network-namespace test harness every lab test in `tests/` uses.
//!
//! - [`Lab::new`] checks the prerequisites (root, tools): without them a
//!   test skips with a printed reason, except under `CI=true`, where it
//!   fails. It takes a machine-wide lock (a flock'd file, so separate test
//!   binaries run one at a time and their timing bounds hold).
//! - Namespaces, links and processes made through a `Lab` get unique names
//!   and are removed when it drops, even when the test panics.
//! - Only documentation addresses are used by the tests that call this.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether this run is CI, where missing prerequisites fail.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Skips (returns false, printing why) or, under CI, panics.
pub fn prerequisite(ok: bool, why: &str) -> bool {
    if ok {
        return true;
    }
    assert!(!in_ci(), "CI=true and a prerequisite is missing: {why}");
    eprintln!("skipping: {why}");
    false
}

/// Whether `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A test lab: the lock, and everything made for the test.
pub struct Lab {
    /// Prefix of every name this lab makes (short: interface names have 15
    /// characters).
    pub tag: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    _lock: nix::fcntl::Flock<File>,
}

impl Lab {
    /// A lab if root and every tool in `tools` are here; `None` (skip) if
    /// not, outside CI.
    pub fn new(tools: &[&str]) -> Option<Lab> {
        if !prerequisite(is_root(), "network-namespace tests need root") {
            return None;
        }
        for tool in tools.iter().chain(&["ip"]) {
            if !prerequisite(have(tool), &format!("{tool} is not installed")) {
                return None;
            }
        }
        let file = File::create("/tmp/vrlb-netns-tests.lock").expect("lock file");
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .unwrap_or_else(|(_, e)| panic!("cannot lock /tmp/vrlb-netns-tests.lock: {e}"));
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tag = format!("v{}{n}", std::process::id() % 10_000);
        Some(Lab {
            tag,
            namespaces: Vec::new(),
            children: Vec::new(),
            _lock: lock,
        })
    }

    /// A name unique to this lab: `TAG` + `suffix` (keep it short).
    pub fn name(&self, suffix: &str) -> String {
        let name = format!("{}{suffix}", self.tag);
        assert!(
            name.len() <= 15,
            "{name}: interface names have at most 15 characters"
        );
        name
    }

    /// Creates namespace `TAG+suffix` with `lo` up; returns its name.
    pub fn netns(&mut self, suffix: &str) -> String {
        let name = self.name(suffix);
        run(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        run(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// Takes namespace `name`, made by someone else (`vrlb lab up`), into
    /// this lab: its processes are killed and it is deleted on drop.
    pub fn adopt_netns(&mut self, name: &str) {
        self.namespaces.push(name.to_string());
    }

    /// A veth pair: `a_if` in `a`, `b_if` in `b`, both up.
    pub fn veth(&mut self, a: &str, a_if: &str, b: &str, b_if: &str) {
        run(&[
            "ip", "link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b,
        ]);
        run(&["ip", "-n", a, "link", "set", a_if, "up"]);
        run(&["ip", "-n", b, "link", "set", b_if, "up"]);
    }

    /// A bridge `br` in `ns`, up.
    pub fn bridge(&mut self, ns: &str, br: &str) {
        run(&["ip", "-n", ns, "link", "add", br, "type", "bridge"]);
        run(&["ip", "-n", ns, "link", "set", br, "up"]);
    }

    /// Starts `cmd` inside `ns`; it is killed when the lab drops. stdout and
    /// stderr go to `log` (a file path).
    pub fn spawn(&mut self, ns: &str, cmd: &[&str], log: &Path) -> u32 {
        let out = File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Sends `signal` (e.g. "TERM", "KILL") to a process this lab started,
    /// and reaps it; its exit status if it ended within 10 s (then it is
    /// killed).
    pub fn signal(&mut self, pid: u32, signal: &str) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status();
        let i = self.children.iter().position(|c| c.id() == pid)?;
        let mut child = self.children.remove(i);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.namespaces {
            // Processes started inside by others (keepalived's children).
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            // Quiet: an adopted namespace may be gone already.
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs a command that must succeed.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `args` in `ns` and returns stdout (success not required).
pub fn in_ns(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `f` on a thread inside network namespace `ns`: sockets made there
/// stay in it, and may be used from any thread afterwards.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = File::open(format!("/run/netns/{ns}"))
                .unwrap_or_else(|e| panic!("namespace {ns}: {e}"));
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {ns}: {e}"));
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Polls `f` every 20 ms until it is true or `timeout` passes; returns how
/// long it took, or `None`.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Whether `addr` is configured on any interface of `ns`.
pub fn has_addr(ns: &str, addr: &str) -> bool {
    in_ns(ns, &["ip", "-o", "addr", "show"])
        .split_whitespace()
        .any(|w| w.split('/').next() == Some(addr))
}

/// The path of a workspace binary (`vrlb`, `vrlb-fw`: package vrlb-linux;
/// `vrlb-sim`: vrlb-sim), built on demand in the same profile as the
/// running test.
pub fn binary(name: &str) -> PathBuf {
    let package = if name == "vrlb-sim" {
        "vrlb-sim"
    } else {
        "vrlb-linux"
    };
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let path = profile_dir.join(name);
    let release = profile_dir.file_name().is_some_and(|p| p == "release");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.args(["build", "--quiet", "-p", package, "--bin", name]);
    if release {
        cargo.arg("--release");
    }
    // Always ask cargo: it is quick when the binary is current.
    let status = cargo
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo");
    assert!(status.success(), "cargo build --bin {name} failed");
    assert!(path.exists(), "{} missing after build", path.display());
    path
}

/// A temporary directory for logs and configs, removed on drop unless the
/// test failed (then its path is printed for inspection).
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory.
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("vrlb-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
    /// A path inside.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
