//! A two-director VRRP lab for the daemon tests: directors `d0` and `d1`
//! and a `client`, each in its own namespace, joined by a bridge in a
//! switch namespace. Documentation addresses only: director `n` is
//! 192.0.2.(n+1)/24 and 2001:db8::(n+1)/64, the client 192.0.2.100.
//! Starts `vrlb run` or Debian's keepalived on a director with a given
//! keepalived.conf, reads their logs for state changes, and measures how
//! long a change took.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::netns::{Lab, TempDir, binary, has_addr, in_ns, run, wait_until};

/// Which daemon runs on a director.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `vrlb run`.
    Vrlb,
    /// Debian's keepalived.
    Keepalived,
}

/// One running daemon.
#[derive(Debug, Clone)]
pub struct Running {
    /// What it is.
    pub kind: Kind,
    /// Its (parent) pid.
    pub pid: u32,
    /// Log file.
    pub log: PathBuf,
    /// keepalived's VRRP child pid file.
    vrrp_pid: PathBuf,
    /// vrlb's pid file (SIGHUP goes to this pid).
    pub pid_file: PathBuf,
    /// vrlb's stats file.
    pub stats: PathBuf,
    /// The configuration file (rewrite it, then [`Running::hup`]).
    pub conf: PathBuf,
}

impl Running {
    /// Sends SIGHUP (reload), without waiting.
    pub fn hup(&self) {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -HUP {} failed", self.pid);
    }
}

/// The lab.
pub struct VrrpLab {
    /// The harness (lock, cleanup).
    pub lab: Lab,
    /// Files.
    pub dir: TempDir,
    /// Director namespaces.
    pub ns: [String; 2],
    /// Director interfaces.
    pub ifs: [String; 2],
    /// The client namespace.
    pub client: String,
    /// The client's interface.
    pub client_if: String,
    /// The switch namespace and bridge.
    sw: (String, String),
    runs: u32,
    vrlb: Option<PathBuf>,
}

/// A director's IPv4 address.
pub fn v4(n: usize) -> String {
    format!("192.0.2.{}", n + 1)
}

/// A director's global IPv6 address.
pub fn v6(n: usize) -> String {
    format!("2001:db8::{}", n + 1)
}

/// An instance block (same syntax for vrlb and keepalived).
#[derive(Debug, Clone)]
pub struct Instance<'a> {
    /// Name.
    pub name: &'a str,
    /// VRID.
    pub vrid: u8,
    /// Priority.
    pub priority: u8,
    /// 2 or 3.
    pub version: u8,
    /// advert_int in seconds as written ("1", "0.5").
    pub advert_int: &'a str,
    /// PASS password (v2).
    pub password: Option<&'a str>,
    /// VIP lines.
    pub vips: Vec<String>,
    /// nopreempt.
    pub nopreempt: bool,
    /// Unicast: (own address, peer address).
    pub unicast: Option<(String, String)>,
}

impl Instance<'_> {
    /// The block for `iface`.
    pub fn conf(&self, iface: &str) -> String {
        let mut s = format!(
            "vrrp_instance {} {{\n  state BACKUP\n  interface {iface}\n  virtual_router_id {}\n  priority {}\n  advert_int {}\n  version {}\n",
            self.name, self.vrid, self.priority, self.advert_int, self.version
        );
        if self.nopreempt {
            s.push_str("  nopreempt\n");
        }
        if let Some(p) = self.password {
            s.push_str(&format!(
                "  authentication {{\n    auth_type PASS\n    auth_pass {p}\n  }}\n"
            ));
        }
        if let Some((src, peer)) = &self.unicast {
            s.push_str(&format!(
                "  unicast_src_ip {src}\n  unicast_peer {{\n    {peer}\n  }}\n"
            ));
        }
        s.push_str("  virtual_ipaddress {\n");
        for v in &self.vips {
            s.push_str(&format!("    {v}\n"));
        }
        s.push_str("  }\n}\n");
        s
    }
}

impl VrrpLab {
    /// Builds the lab; `None` (skip) without root or a tool in `tools`.
    pub fn new(tools: &[&str]) -> Option<VrrpLab> {
        let mut lab = Lab::new(tools)?;
        let dir = TempDir::new(&lab.tag);
        let sw = lab.netns("sw");
        let br = lab.name("br");
        lab.bridge(&sw, &br);
        let mut ns = Vec::new();
        let mut ifs = Vec::new();
        for n in 0..3 {
            let name = if n < 2 { format!("d{n}") } else { "c".into() };
            let space = lab.netns(&name);
            // No DAD: link-local addresses are usable at once.
            for key in ["all", "default"] {
                run(&[
                    "ip",
                    "netns",
                    "exec",
                    &space,
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{key}.accept_dad=0"),
                ]);
            }
            let inside = lab.name(&format!("e{n}"));
            let outside = lab.name(&format!("p{n}"));
            lab.veth(&space, &inside, &sw, &outside);
            run(&["ip", "-n", &sw, "link", "set", &outside, "master", &br]);
            let (a4, a6) = if n < 2 {
                (v4(n), v6(n))
            } else {
                ("192.0.2.100".into(), "2001:db8::100".into())
            };
            run(&[
                "ip",
                "-n",
                &space,
                "addr",
                "add",
                &format!("{a4}/24"),
                "dev",
                &inside,
            ]);
            run(&[
                "ip",
                "-n",
                &space,
                "addr",
                "add",
                &format!("{a6}/64"),
                "dev",
                &inside,
                "nodad",
            ]);
            ns.push(space);
            ifs.push(inside);
        }
        let client = ns.pop().unwrap();
        let client_if = ifs.pop().unwrap();
        Some(VrrpLab {
            lab,
            dir,
            ns: [ns[0].clone(), ns[1].clone()],
            ifs: [ifs[0].clone(), ifs[1].clone()],
            client,
            client_if,
            sw: (sw, br),
            runs: 0,
            vrlb: None,
        })
    }

    /// Starts `kind` on director `n` with the configuration `conf`.
    pub fn start(&mut self, kind: Kind, n: usize, conf: &str) -> Running {
        self.start_wrapped(kind, n, conf, &[], &[])
    }

    /// Like [`VrrpLab::start`], the command run by `wrap` (which must exec
    /// it, keeping the pid: e.g. `unshare -m sh -c '...; exec "$@"' sh`)
    /// and with `extra` arguments after the lab's own.
    pub fn start_wrapped(
        &mut self,
        kind: Kind,
        n: usize,
        conf: &str,
        wrap: &[&str],
        extra: &[&str],
    ) -> Running {
        self.runs += 1;
        let tag = format!(
            "{}{n}-{}",
            if kind == Kind::Vrlb { "v" } else { "k" },
            self.runs
        );
        let conf_path = self.dir.path(&format!("{tag}.conf"));
        std::fs::write(&conf_path, conf).unwrap();
        let log = self.dir.path(&format!("{tag}.log"));
        // Fresh pid files per run: a crashed keepalived's VRRP child may
        // linger as a zombie, and keepalived refuses to start over a pid
        // file whose process still exists.
        let pid_file = self.dir.path(&format!("{tag}.pid"));
        let vrrp_pid = self.dir.path(&format!("{tag}.vpid"));
        // The VIP record belongs to the director, across restarts.
        let state = self.dir.path(&format!("d{n}.vips"));
        let stats = self.dir.path(&format!("d{n}.stats"));
        let _ = std::fs::remove_file(&stats);
        // Its own control socket: not the host's /run/vrlb one.
        let control = self.dir.path(&format!("{tag}.sock"));
        let pid = match kind {
            Kind::Vrlb => {
                let exe = self.vrlb.get_or_insert_with(|| binary("vrlb")).clone();
                let mut cmd: Vec<&str> = wrap.to_vec();
                cmd.extend([
                    exe.to_str().unwrap(),
                    "run",
                    "-f",
                    conf_path.to_str().unwrap(),
                    "-p",
                    pid_file.to_str().unwrap(),
                    "--state-file",
                    state.to_str().unwrap(),
                    "--stats-file",
                    stats.to_str().unwrap(),
                    "--control-socket",
                    control.to_str().unwrap(),
                ]);
                cmd.extend(extra);
                self.lab.spawn(&self.ns[n], &cmd, &log)
            }
            Kind::Keepalived => self.lab.spawn(
                &self.ns[n],
                &[
                    "keepalived",
                    "-P",
                    "-n",
                    "-l",
                    "-D",
                    "-f",
                    conf_path.to_str().unwrap(),
                    "-p",
                    pid_file.to_str().unwrap(),
                    "-r",
                    vrrp_pid.to_str().unwrap(),
                ],
                &log,
            ),
        };
        Running {
            kind,
            pid,
            log,
            vrrp_pid,
            pid_file,
            stats,
            conf: conf_path,
        }
    }

    /// Crashes a daemon (SIGKILL). keepalived: its parent is stopped
    /// first (else it respawns the VRRP child, and a child respawned just
    /// before the parent dies lives on as an orphan master), then the VRRP
    /// child is killed (killed after its parent, it would resign
    /// gracefully), then the parent.
    pub fn crash(&mut self, d: &Running) {
        if d.kind == Kind::Keepalived {
            let _ = std::process::Command::new("kill")
                .args(["-STOP", &d.pid.to_string()])
                .status();
            if let Ok(text) = std::fs::read_to_string(&d.vrrp_pid) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", text.trim()])
                    .status();
            }
        }
        self.lab.signal(d.pid, "KILL");
    }

    /// Stops a daemon gracefully (SIGTERM) and waits for it to exit; its
    /// exit status.
    pub fn stop(&mut self, d: &Running) -> Option<std::process::ExitStatus> {
        self.lab.signal(d.pid, "TERM")
    }

    /// Cuts director `n` off the segment (its port leaves the bridge; its
    /// link stays up).
    pub fn detach(&mut self, n: usize) {
        let port = self.lab.name(&format!("p{n}"));
        run(&["ip", "-n", &self.sw.0, "link", "set", &port, "nomaster"]);
    }

    /// Joins director `n` to the segment again.
    pub fn attach(&mut self, n: usize) {
        let port = self.lab.name(&format!("p{n}"));
        run(&[
            "ip", "-n", &self.sw.0, "link", "set", &port, "master", &self.sw.1,
        ]);
    }

    /// Starts tcpdump on the client's interface with `filter`, times as
    /// seconds since the epoch and MACs (`-tt -e`), and waits until it
    /// listens; the file it writes to.
    pub fn capture(&mut self, filter: &str) -> PathBuf {
        let file = self.dir.path("client.txt");
        let (client, client_if) = (self.client.clone(), self.client_if.clone());
        self.lab.spawn(
            &client,
            &["tcpdump", "-i", &client_if, "-n", "-l", "-tt", "-e", filter],
            &file,
        );
        expect(Duration::from_secs(10), "tcpdump listens", &[], || {
            std::fs::read_to_string(&file).is_ok_and(|t| t.contains("listening on"))
        });
        file
    }

    /// Whether director `n` holds `vip` (per `ip addr`).
    pub fn holds(&self, n: usize, vip: &str) -> bool {
        has_addr(&self.ns[n], vip)
    }
}

/// The log so far.
pub fn log(d: &Running) -> String {
    std::fs::read_to_string(&d.log).unwrap_or_default()
}

/// The state `d` last logged for instance `name`: vrlb's
/// `NAME: A -> B (Reason)`, keepalived's `(NAME) Entering B STATE`.
pub fn state(d: &Running, name: &str) -> Option<String> {
    let text = log(d);
    let vrlb = format!("{name}: ");
    let ka = format!("({name}) Entering ");
    text.lines().rev().find_map(|l| match d.kind {
        Kind::Vrlb => {
            let rest = &l[l.find(&vrlb)? + vrlb.len()..];
            let (_, to) = rest.split_once(" -> ")?;
            Some(to.split_whitespace().next()?.to_string())
        }
        Kind::Keepalived => {
            let rest = &l[l.find(&ka)? + ka.len()..];
            let word = rest.split_whitespace().next()?;
            (rest.contains(" STATE")).then(|| word.to_string())
        }
    })
}

/// Waits until `d` logs `want` as the state of `name`; returns how long it
/// took (polling every 5 ms, so the figure is accurate to a few ms).
pub fn wait_state(d: &Running, name: &str, want: &str, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if state(d, name).as_deref() == Some(want) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Waits until `f` holds; panics with `what` and the logs if it does not.
pub fn expect(timeout: Duration, what: &str, logs: &[&Running], f: impl FnMut() -> bool) {
    if wait_until(timeout, f).is_none() {
        let mut text = String::new();
        for d in logs {
            text.push_str(&format!("--- {}\n{}\n", d.log.display(), log(d)));
        }
        panic!("{what} (within {timeout:?})\n{text}");
    }
}

/// One counter from vrlb's stats file (`drop.auth`, `rx`, ...).
pub fn counter(d: &Running, name: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(&d.stats).ok()?;
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
}

/// RFC 9568 6.1 / RFC 3768 6.1 with keepalived's rounding:
/// Master_Down_Interval = 3 * interval + Skew_Time, Skew_Time =
/// (256 - priority) * interval / 256.
pub fn master_down(priority: u8, interval: Duration) -> Duration {
    3 * interval + skew(priority, interval)
}

/// Skew_Time.
pub fn skew(priority: u8, interval: Duration) -> Duration {
    interval * (256 - u32::from(priority)) / 256
}

/// Whether `d` last logged `want` as the state of instance `name`.
pub fn is(d: &Running, name: &str, want: &str) -> bool {
    state(d, name).as_deref() == Some(want)
}

/// The MAC of `iface` in `ns`.
pub fn mac(ns: &str, iface: &str) -> String {
    let text = in_ns(ns, &["ip", "-o", "link", "show", "dev", iface]);
    let mut w = text.split_whitespace();
    w.position(|x| x == "link/ether");
    w.next().expect("a MAC").to_string()
}

/// Seconds since the epoch: tcpdump's `-tt` clock.
pub fn epoch_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Lines of a capture (tcpdump `-tt -e`) after `since` from source MAC
/// `mac` that contain every one of `what`, with their times.
pub fn capture_lines<'c>(
    capture: &'c str,
    since: f64,
    mac: &str,
    what: &[&str],
) -> Vec<(f64, &'c str)> {
    capture
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let t = w.next()?.parse::<f64>().ok()?;
            (t >= since
                && w.next().is_some_and(|m| m.eq_ignore_ascii_case(mac))
                && what.iter().all(|w| l.contains(w)))
            .then_some((t, l))
        })
        .collect()
}

/// How many [`capture_lines`] there are.
pub fn frames(capture: &str, since: f64, mac: &str, what: &[&str]) -> usize {
    capture_lines(capture, since, mac, what).len()
}

/// The `ip -o addr` line of `addr` in `ns` (its `\` joined).
pub fn addr_line(ns: &str, addr: &str) -> Option<String> {
    in_ns(ns, &["ip", "-o", "addr", "show"])
        .lines()
        .find(|l| {
            l.split_whitespace()
                .any(|w| w.split('/').next() == Some(addr))
        })
        // `ip -o` ends the first line of a record with a backslash.
        .map(|l| l.replace('\\', " "))
}

/// The device `addr` is on in `ns`.
pub fn dev_of(ns: &str, addr: &str) -> Option<String> {
    addr_line(ns, addr)?
        .split_whitespace()
        .nth(1)
        .map(str::to_string)
}
