//! `vrlb lab up | down | status`: the seed document's topology in network
//! namespaces on this machine, so a new user can try vrlb for real with
//! one command and `curl` the VIP. Owns the lab's namespaces, links,
//! addresses, configuration files and processes; never touches anything
//! outside namespaces named `PREFIX-*` and its own directory.
//!
//! ```text
//!   PREFIX-client 192.0.2.100 ─┐
//!   PREFIX-d1     192.0.2.210 ─┤  vrlb run (MASTER, priority 100)
//!   PREFIX-d2     192.0.2.211 ─┼─ br0 in PREFIX-sw  (one segment, as the seed's)
//!   PREFIX-rs1    192.0.2.212 ─┤  VIP 192.0.2.240 on lo, arp_ignore=1,
//!   PREFIX-rs2    192.0.2.213 ─┘  arp_announce=2, `vrlb lab serve` on :80
//! ```
//!
//! Each node's interface is `eth0`, as in the seed. The directors run the
//! seed's keepalived.conf ([`config`]) with the DR data plane (two
//! workers); the real servers answer HTTP with their name ([`http`]).

pub mod config;
pub mod http;

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::control::{self, Request};

/// Where the lab keeps its files unless told otherwise.
pub const DEFAULT_DIR: &str = "/run/vrlb/lab";
/// The namespace prefix unless told otherwise.
pub const DEFAULT_PREFIX: &str = "vrlb";
/// How long `lab up` waits for the VIP and for the first answer.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `lab down` waits for processes to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How the lab is named and where its files go.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Namespaces are `PREFIX-client`, `PREFIX-d1`, ...
    pub prefix: String,
    /// Configuration files, logs, pid files, control sockets.
    pub dir: PathBuf,
    /// Data-plane workers per director.
    pub workers: u16,
}

/// A node of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The client.
    Client,
    /// Director 0 (master) or 1 (backup).
    Director(usize),
    /// Real server 0 or 1.
    RealServer(usize),
    /// The switch (a bridge).
    Switch,
}

impl Role {
    /// Every role, the switch last (taken down last).
    pub const ALL: [Role; 6] = [
        Role::Client,
        Role::Director(0),
        Role::Director(1),
        Role::RealServer(0),
        Role::RealServer(1),
        Role::Switch,
    ];

    /// Its short name: `client`, `d1`, `d2`, `rs1`, `rs2`, `sw`.
    pub fn short(self) -> String {
        match self {
            Role::Client => "client".into(),
            Role::Director(n) => format!("d{}", n + 1),
            Role::RealServer(n) => format!("rs{}", n + 1),
            Role::Switch => "sw".into(),
        }
    }

    /// Its address on the segment (the switch has none).
    pub fn addr(self) -> Option<&'static str> {
        match self {
            Role::Client => Some(config::CLIENT),
            Role::Director(n) => config::DIRECTORS.get(n).copied(),
            Role::RealServer(n) => config::REAL_SERVERS.get(n).copied(),
            Role::Switch => None,
        }
    }
}

impl LabOptions {
    /// The namespace of `role`.
    pub fn ns(&self, role: Role) -> String {
        format!("{}-{}", self.prefix, role.short())
    }

    /// A file of the lab.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The control socket of director `n`.
    pub fn control_socket(&self, n: usize) -> PathBuf {
        self.file(&format!("d{}.sock", n + 1))
    }

    /// The pid file of director `n`.
    pub fn pid_file(&self, n: usize) -> PathBuf {
        self.file(&format!("d{}.pid", n + 1))
    }
}

/// Runs `args`; its stdout, or an error naming the command and its stderr.
fn cmd(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `args` inside `ns`.
fn in_ns(ns: &str, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    cmd(&all)
}

/// The namespaces that exist.
fn namespaces() -> Result<Vec<String>, String> {
    Ok(cmd(&["ip", "netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

/// The pids of processes inside `ns`.
fn pids_in(ns: &str) -> Vec<i32> {
    cmd(&["ip", "netns", "pids", ns])
        .map(|t| {
            t.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn alive(pid: i32) -> bool {
    // Signal 0 tests for existence; a zombie counts as gone.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
}

/// Starts `args` in `ns` in its own process group (it outlives this
/// command), output to `log`; returns its pid.
fn spawn(ns: &str, args: &[&str], log: &Path) -> Result<u32, String> {
    let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting {args:?} in {ns}: {e}"))?;
    Ok(child.id())
}

fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Whether `addr` is configured in `ns`.
pub fn holds(ns: &str, addr: &str) -> bool {
    in_ns(ns, &["ip", "-o", "addr", "show"]).is_ok_and(|t| {
        t.split_whitespace()
            .any(|w| w.split('/').next() == Some(addr))
    })
}

/// Builds the lab and starts its processes; on failure, takes down what
/// it built. `vrlb` is the binary the directors and servers run.
pub fn up(opts: &LabOptions, vrlb: &Path) -> Result<String, String> {
    crate::daemon::privileges::check().map_err(|e| format!("{e} (run the lab as root)"))?;
    let existing = namespaces()?;
    if let Some(ns) = Role::ALL
        .iter()
        .map(|r| opts.ns(*r))
        .find(|n| existing.contains(n))
    {
        return Err(format!(
            "namespace {ns} exists: the lab is up already (`vrlb lab down{}` first)",
            flags(opts)
        ));
    }
    let built = build(opts, vrlb);
    if let Err(e) = built {
        // Keep the logs the error points to.
        let _ = take_down(opts, false);
        return Err(format!(
            "{e}\n(the lab was taken down; its files stay in {})",
            opts.dir.display()
        ));
    }
    Ok(format!(
        "lab {} is up: VIP {} on {} (master), real servers {} and {}\n\
         try:  ip netns exec {} curl -s http://{}/\n\
         see:  vrlb lab status{}\n\
         stop: vrlb lab down{}\n",
        opts.prefix,
        config::VIP,
        opts.ns(Role::Director(0)),
        config::REAL_SERVERS[0],
        config::REAL_SERVERS[1],
        opts.ns(Role::Client),
        config::VIP,
        flags(opts),
        flags(opts),
    ))
}

/// The flags that name this lab again, for the hints printed.
fn flags(opts: &LabOptions) -> String {
    let mut s = String::new();
    if opts.prefix != DEFAULT_PREFIX {
        s.push_str(&format!(" --prefix {}", opts.prefix));
    }
    if opts.dir != Path::new(DEFAULT_DIR) {
        s.push_str(&format!(" --dir {}", opts.dir.display()));
    }
    s
}

fn build(opts: &LabOptions, vrlb: &Path) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&opts.dir)
        .map_err(|e| format!("{}: {e}", opts.dir.display()))?;
    let exe = vrlb.to_str().ok_or("the vrlb binary's path is not UTF-8")?;
    for role in Role::ALL {
        let ns = opts.ns(role);
        cmd(&["ip", "netns", "add", &ns])?;
        cmd(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
    }
    let sw = opts.ns(Role::Switch);
    cmd(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
    cmd(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
    for role in Role::ALL.into_iter().filter(|r| *r != Role::Switch) {
        let ns = opts.ns(role);
        let port = role.short();
        cmd(&[
            "ip", "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
            "netns", &sw,
        ])?;
        cmd(&["ip", "-n", &sw, "link", "set", &port, "master", "br0"])?;
        cmd(&["ip", "-n", &sw, "link", "set", &port, "up"])?;
        cmd(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
        if let Some(addr) = role.addr() {
            let cidr = format!("{addr}/{}", config::PREFIX_LEN);
            cmd(&["ip", "-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
        }
    }
    for n in 0..2 {
        let ns = opts.ns(Role::RealServer(n));
        // The seed's lvs_server.sh: VIP on lo:0, and the host must neither
        // answer ARP for it nor use it as an ARP source (arp_ignore=1,
        // arp_announce=2, ip-sysctl.rst).
        let vip = format!("{}/32", config::VIP);
        cmd(&[
            "ip", "-n", &ns, "addr", "add", &vip, "dev", "lo", "label", "lo:0",
        ])?;
        for key in [
            "net.ipv4.conf.lo.arp_ignore=1",
            "net.ipv4.conf.lo.arp_announce=2",
            "net.ipv4.conf.all.arp_ignore=1",
            "net.ipv4.conf.all.arp_announce=2",
        ] {
            in_ns(&ns, &["sysctl", "-qw", key])?;
        }
        let name = format!("rs{} {}", n + 1, config::REAL_SERVERS[n]);
        // What the directors' TCP_CHECKs connect to.
        let listen = format!("0.0.0.0:{}", config::HTTP_PORT);
        let log = opts.file(&format!("rs{}.log", n + 1));
        let pid = spawn(
            &ns,
            &[exe, "lab", "serve", "--listen", &listen, "--name", &name],
            &log,
        )?;
        std::fs::write(opts.file(&format!("rs{}.pid", n + 1)), format!("{pid}\n"))
            .map_err(|e| format!("{}: {e}", opts.dir.display()))?;
    }
    let workers = opts.workers.to_string();
    for n in 0..2 {
        let ns = opts.ns(Role::Director(n));
        let conf = opts.file(&format!("d{}.conf", n + 1));
        std::fs::write(&conf, config::director(n, "eth0"))
            .map_err(|e| format!("{}: {e}", conf.display()))?;
        let conf_s = conf.display().to_string();
        let pid_file = opts.pid_file(n).display().to_string();
        let state = opts.file(&format!("d{}.vips", n + 1)).display().to_string();
        let sock = opts.control_socket(n).display().to_string();
        let log = opts.file(&format!("d{}.log", n + 1));
        spawn(
            &ns,
            &[
                exe,
                "run",
                "-f",
                &conf_s,
                "-p",
                &pid_file,
                "--state-file",
                &state,
                "--control-socket",
                &sock,
                "--workers",
                &workers,
                "--dataplane-iface",
                "eth0",
            ],
            &log,
        )?;
    }
    let d1 = opts.ns(Role::Director(0));
    if !wait_for(READY_TIMEOUT, || holds(&d1, config::VIP)) {
        return Err(format!(
            "{d1} did not take the VIP within {READY_TIMEOUT:?}: see {}",
            opts.file("d1.log").display()
        ));
    }
    // The first request also warms the directors' neighbour tables.
    let client = opts.ns(Role::Client);
    let url = format!("http://{}/", config::VIP);
    let answered = wait_for(READY_TIMEOUT, || {
        in_ns(&client, &["curl", "-s", "--max-time", "2", &url]).is_ok_and(|b| !b.is_empty())
    });
    if !answered {
        return Err(format!(
            "no answer from {url} within {READY_TIMEOUT:?}: see the logs in {}",
            opts.dir.display()
        ));
    }
    Ok(())
}

/// Stops the lab's processes (SIGTERM, so the directors remove their
/// rules and VIPs, then SIGKILL after a while) and deletes its
/// namespaces and files. Returns what it did.
pub fn down(opts: &LabOptions) -> Result<String, String> {
    take_down(opts, true)
}

fn take_down(opts: &LabOptions, remove_files: bool) -> Result<String, String> {
    let existing = namespaces()?;
    let mut report = String::new();
    let ours: Vec<String> = Role::ALL
        .iter()
        .map(|r| opts.ns(*r))
        .filter(|n| existing.contains(n))
        .collect();
    let pids: Vec<i32> = ours.iter().flat_map(|ns| pids_in(ns)).collect();
    for pid in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if !wait_for(STOP_TIMEOUT, || pids.iter().all(|p| !alive(*p))) {
        for pid in pids.iter().filter(|p| alive(**p)) {
            report.push_str(&format!("pid {pid} ignored SIGTERM: killed\n"));
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    if !pids.is_empty() {
        report.push_str(&format!("stopped {} process(es)\n", pids.len()));
    }
    let mut failed = Vec::new();
    for ns in &ours {
        match cmd(&["ip", "netns", "del", ns]) {
            Ok(_) => report.push_str(&format!("deleted namespace {ns}\n")),
            Err(e) => failed.push(e),
        }
    }
    if remove_files && opts.dir.exists() {
        std::fs::remove_dir_all(&opts.dir).map_err(|e| format!("{}: {e}", opts.dir.display()))?;
        report.push_str(&format!("removed {}\n", opts.dir.display()));
    }
    if ours.is_empty() {
        report.push_str(&format!("lab {}: nothing was up\n", opts.prefix));
    }
    if failed.is_empty() {
        Ok(report)
    } else {
        Err(failed.join("; "))
    }
}

/// What is up: namespaces, processes, who holds the VIP, each director's
/// `vrlb status`.
pub fn status(opts: &LabOptions) -> Result<String, String> {
    let existing = namespaces()?;
    let mut o = String::new();
    let mut any = false;
    for role in Role::ALL {
        let ns = opts.ns(role);
        if !existing.contains(&ns) {
            o.push_str(&format!("{ns:<16} missing\n"));
            continue;
        }
        any = true;
        let addr = role.addr().unwrap_or("-");
        let procs: Vec<String> = pids_in(&ns)
            .into_iter()
            .map(|p| {
                let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                format!("{} ({p})", comm.trim())
            })
            .collect();
        let mut notes = Vec::new();
        if role != Role::Switch && holds(&ns, config::VIP) {
            notes.push(match role {
                Role::RealServer(_) => "VIP on lo".to_string(),
                _ => "holds the VIP".to_string(),
            });
        }
        if !procs.is_empty() {
            notes.push(format!("running {}", procs.join(", ")));
        }
        o.push_str(format!("{ns:<16} {addr:<13} {}", notes.join("; ")).trim_end());
        o.push('\n');
    }
    if !any {
        return Ok(format!(
            "lab {}: not up (`vrlb lab up{}`)\n",
            opts.prefix,
            flags(opts)
        ));
    }
    for n in 0..2 {
        o.push_str(&format!(
            "\n== {} (vrlb status)\n",
            opts.ns(Role::Director(n))
        ));
        let text = control::client::ask(&opts.control_socket(n), Request::Status)
            .and_then(|a| control::layout::render(Request::Status, &a));
        match text {
            Ok(t) => o.push_str(&t),
            Err(e) => o.push_str(&format!("{e}\n")),
        }
    }
    Ok(o)
}

/// `vrlb lab serve`: the real servers' HTTP service.
pub fn serve(listen: SocketAddr, name: &str) -> Result<(), String> {
    http::serve(listen, name)
}
