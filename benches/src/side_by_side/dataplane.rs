//! Measurements 3 and 4: vrlb's DR data plane (`vrlb run --workers N
//! --dataplane-iface eth0`) against the kernel's own IP forwarding, on
//! one veth topology: a client, a director and a sink (the real server)
//! on one bridge. The client's trafgen sends frames straight to the
//! director's MAC; the director sends them on to the sink's MAC, either
//! through vrlb (IP forwarding off) or through the kernel (forwarding on,
//! a /32 route to the sink). What the sink's interface receives in a
//! fixed window is what got through. Rounds alternate the paths.
//!
//! - 3: UDP to 198.51.100.10:9 from 254 client addresses (203.0.113.0/24,
//!   so a second worker gets a share of the fanout), 64- and 1500-byte
//!   frames (FCS included, RFC 2544's convention: 60 and 1496 bytes on
//!   the veth). Latency: after the load, timestamped UDP probes of the
//!   same size, one every millisecond, client socket to sink socket (one
//!   process, one clock).
//! - 4: TCP SYNs, each from a new (address, port) of 4099 client
//!   addresses in 2001:db8::2:0/112, to [2001:db8::10]:80, a wlc service
//!   with 4096 real servers 2001:db8::1:0 to 2001:db8::1:fff (IPv6: the
//!   IPv4 documentation ranges hold 768 addresses). Every real server's
//!   neighbour entry points at the sink, so each forwarded SYN is counted
//!   there whichever server wlc chose.
//!
//! Owns this lab, the load generator and the probes; `report` prints.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vrlb_tests::netns::{Lab, run};

use super::probe::in_netns;
use super::procfs;

/// The UDP service of measurement 3.
pub const VIP4: &str = "198.51.100.10";
/// Its port.
const PORT4: u16 = 9;
/// The TCP service of measurement 4.
pub const VIP6: &str = "2001:db8::10";
/// Real servers behind it.
pub const SERVERS: usize = 4096;
/// Client addresses of measurement 4 (prime, so address and port
/// counters never repeat a pair within a run).
const CLIENTS6: u32 = 4099;
const DIRECTOR4: &str = "192.0.2.1";
const SINK4: &str = "192.0.2.50";
const CLIENT4: &str = "192.0.2.100";
/// Connection slots for vrlb in measurement 4 (per worker): more than a
/// window's SYNs, so every SYN is a tracked new connection.
pub const CONN_SLOTS: u32 = 1 << 22;

/// Real server `i` of measurement 4.
pub fn server6(i: usize) -> String {
    format!("2001:db8::1:{i:x}")
}

/// A frame size, FCS included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame(pub usize);

impl Frame {
    /// The two of issue 8.
    pub const BOTH: [Frame; 2] = [Frame(64), Frame(1500)];

    /// UDP payload bytes: frame - FCS 4 - Ethernet 14 - IPv4 20 - UDP 8.
    pub fn udp_payload(self) -> usize {
        self.0 - 46
    }
}

/// Which forwarder carries the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarder {
    /// The director's kernel, IP forwarding on.
    Kernel,
    /// vrlb's DR data plane with this many workers.
    Vrlb(usize),
}

impl Forwarder {
    /// The three compared, in the order the rounds rotate.
    pub const ALL: [Forwarder; 3] = [Forwarder::Kernel, Forwarder::Vrlb(1), Forwarder::Vrlb(2)];

    /// For tables.
    pub fn label(self) -> String {
        match self {
            Forwarder::Kernel => "kernel forwarding".into(),
            Forwarder::Vrlb(1) => "vrlb, 1 worker".into(),
            Forwarder::Vrlb(n) => format!("vrlb, {n} workers"),
        }
    }
}

/// What one window measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    /// Frames per second the sink received.
    pub delivered_pps: f64,
    /// Frames per second the client's trafgen sent.
    pub offered_pps: f64,
    /// vrlb only: its own counts in the window (forwarded, dropped, new
    /// connections, persistence-template hits), per second.
    pub vrlb: Option<VrlbRates>,
}

/// vrlb's forwarding counters over a window, per second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VrlbRates {
    /// `forwarded`.
    pub forwarded: f64,
    /// Sum of every `drop_*`.
    pub dropped: f64,
    /// `flows_created`.
    pub flows: f64,
    /// `template_hits`.
    pub template_hits: f64,
    /// The most frequent drop reason in the window, if any, per second.
    pub top_drop: Option<(String, f64)>,
}

/// The rounds of one path at one frame size (3) or persistence (4).
#[derive(Debug, Clone)]
pub struct Cell {
    /// The forwarder.
    pub path: Forwarder,
    /// 3: the frame size; 4: 0.
    pub frame: Frame,
    /// 4: persistence on.
    pub persistent: bool,
    /// One per round.
    pub windows: Vec<Window>,
    /// 3: one-way latency of every probe answered, nanoseconds.
    pub latency_ns: Vec<u64>,
    /// 3: probes sent and never received.
    pub lost: usize,
    /// What went wrong.
    pub failures: Vec<String>,
}

impl Cell {
    fn new(path: Forwarder, frame: Frame, persistent: bool) -> Cell {
        Cell {
            path,
            frame,
            persistent,
            windows: Vec::new(),
            latency_ns: Vec::new(),
            lost: 0,
            failures: Vec::new(),
        }
    }

    /// Median delivered rate over the rounds.
    pub fn median_pps(&self) -> Option<f64> {
        median(self.windows.iter().map(|w| w.delivered_pps).collect())
    }

    /// Median offered rate over the rounds.
    pub fn median_offered(&self) -> Option<f64> {
        median(self.windows.iter().map(|w| w.offered_pps).collect())
    }

    /// Median of vrlb's new connections per second.
    pub fn median_flows(&self) -> Option<f64> {
        median(
            self.windows
                .iter()
                .filter_map(|w| Some(w.vrlb.as_ref()?.flows))
                .collect(),
        )
    }

    /// Median of vrlb's template hits per second.
    pub fn median_template_hits(&self) -> Option<f64> {
        median(
            self.windows
                .iter()
                .filter_map(|w| Some(w.vrlb.as_ref()?.template_hits))
                .collect(),
        )
    }

    /// Median of vrlb's drops per second.
    pub fn median_dropped(&self) -> Option<f64> {
        median(
            self.windows
                .iter()
                .filter_map(|w| Some(w.vrlb.as_ref()?.dropped))
                .collect(),
        )
    }

    /// The drop reasons vrlb named in any round, most frequent first.
    pub fn drop_reasons(&self) -> String {
        let mut v: Vec<(String, f64)> = self
            .windows
            .iter()
            .filter_map(|w| w.vrlb.as_ref()?.top_drop.clone())
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v.dedup_by(|a, b| a.0 == b.0);
        v.into_iter().map(|(k, _)| k).collect::<Vec<_>>().join(", ")
    }

    /// The `p`-th percentile (0..=100) of the latency samples.
    pub fn latency_percentile(&self, p: f64) -> Option<Duration> {
        percentile(&self.latency_ns, p).map(Duration::from_nanos)
    }
}

/// The median of `v` (mean of the middle two for an even count).
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The nearest-rank `p`-th percentile of `samples`.
pub fn percentile(samples: &[u64], p: f64) -> Option<u64> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_unstable();
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    Some(s[rank.clamp(1, s.len()) - 1])
}

/// How long each part of a round takes.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Load before the window opens.
    pub warmup: Duration,
    /// The measured window.
    pub window: Duration,
    /// Latency probes per round (one a millisecond).
    pub probes: usize,
    /// Rounds per path.
    pub rounds: usize,
}

/// trafgen's packet description for measurement 3.
pub fn udp_load(director_mac: &str, frame: Frame) -> String {
    format!(
        "{{ eth(da={director_mac}), ipv4(sa=203.0.113.1, sa[3]=dinc(1, 254), da={VIP4}, ttl=64), \
         udp(sp=40000, dp={PORT4}), fill(0x00, {}) }}\n",
        frame.udp_payload()
    )
}

/// trafgen's packet description for measurement 4: a SYN from the next
/// client address and the next source port, every packet.
pub fn syn_load(director_mac: &str) -> String {
    format!(
        "{{ eth(da={director_mac}), ipv6(sa=2001:db8::2:0, sa=dinc(1, {CLIENTS6}), da={VIP6}, hl=64), \
         tcp(sp=dinc(1024, 65535), dp=80, seq=drnd(), syn, win=64240) }}\n"
    )
}

/// The vrlb configuration of measurement 3.
pub fn udp_conf() -> String {
    format!(
        "global_defs {{\n    router_id vrlb_bench_dp\n}}\n\
         virtual_server {VIP4} {PORT4} {{\n    lb_algo wlc\n    lb_kind DR\n    protocol UDP\n\
         \x20   real_server {SINK4} {PORT4} {{\n        weight 1\n    }}\n}}\n"
    )
}

/// The vrlb configuration of measurement 4.
pub fn syn_conf(persistent: bool) -> String {
    let mut s = format!(
        "global_defs {{\n    router_id vrlb_bench_conns\n}}\n\
         virtual_server {VIP6} 80 {{\n    lb_algo wlc\n    lb_kind DR\n    protocol TCP\n"
    );
    if persistent {
        s.push_str("    persistence_timeout 300\n");
    }
    for i in 0..SERVERS {
        s.push_str(&format!(
            "    real_server {} 80 {{\n        weight 1\n    }}\n",
            server6(i)
        ));
    }
    s.push_str("}\n");
    s
}

/// The data-plane lab: namespaces, MACs.
struct DpLab {
    client: String,
    director: String,
    sink: String,
    director_mac: String,
}

fn mac_of(ns: &str, dev: &str) -> Result<String, String> {
    let out = run(&["ip", "-n", ns, "-j", "link", "show", "dev", dev]);
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("ip -j link: {e}"))?;
    v[0]["address"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{ns}/{dev}: no MAC"))
}

/// Packet counter `dir` ("rx" or "tx") of `ns`'s `eth0`.
fn packets(ns: &str, dir: &str) -> Result<u64, String> {
    let out = run(&["ip", "-n", ns, "-s", "-j", "link", "show", "dev", "eth0"]);
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("ip -s -j link: {e}"))?;
    v[0]["stats64"][dir]["packets"]
        .as_u64()
        .ok_or_else(|| format!("{ns}/eth0: no {dir} packet count"))
}

fn sysctl(ns: &str, settings: &[&str]) {
    let mut args = vec!["ip", "netns", "exec", ns, "sysctl", "-qw"];
    args.extend_from_slice(settings);
    run(&args);
}

impl DpLab {
    fn build(lab: &mut Lab, dir: &Path) -> Result<DpLab, String> {
        let sw = lab.netns("ds");
        lab.bridge(&sw, "br0");
        let mut made = Vec::new();
        for (suffix, port, v4, v6) in [
            ("dc", "pc", CLIENT4, "2001:db8::100"),
            ("dd", "pd", DIRECTOR4, "2001:db8::1"),
            ("dr", "pr", SINK4, "2001:db8::50"),
        ] {
            let ns = lab.netns(suffix);
            lab.veth(&ns, "eth0", &sw, port);
            run(&["ip", "-n", &sw, "link", "set", port, "master", "br0"]);
            run(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{v4}/24"),
                "dev",
                "eth0",
            ]);
            run(&[
                "ip",
                "-n",
                &ns,
                "-6",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                "eth0",
                "nodad",
            ]);
            let mac = mac_of(&ns, "eth0")?;
            // Static forwarding entries: the sink never sends, so a
            // learning bridge would flood every frame to the director too.
            run(&[
                "bridge", "-n", &sw, "fdb", "replace", &mac, "dev", port, "master", "static",
            ]);
            made.push((ns, mac));
        }
        let [(client, _), (director, director_mac), (sink, sink_mac)] =
            <[(String, String); 3]>::try_from(made).map_err(|_| "three namespaces")?;
        // Permanent neighbours: no ARP/NDP during a window. The director
        // knows every real server (all the sink); the client the director.
        let batch = dir.join("neigh.batch");
        let mut text = format!("neigh replace {SINK4} lladdr {sink_mac} dev eth0 nud permanent\n");
        for i in 0..SERVERS {
            text.push_str(&format!(
                "neigh replace {} lladdr {sink_mac} dev eth0 nud permanent\n",
                server6(i)
            ));
        }
        std::fs::write(&batch, text).map_err(|e| format!("{}: {e}", batch.display()))?;
        run(&[
            "ip",
            "-n",
            &director,
            "-batch",
            &batch.display().to_string(),
        ]);
        run(&[
            "ip",
            "-n",
            &client,
            "neigh",
            "replace",
            DIRECTOR4,
            "lladdr",
            &director_mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ]);
        run(&[
            "ip",
            "-n",
            &client,
            "route",
            "add",
            &format!("{VIP4}/32"),
            "via",
            DIRECTOR4,
        ]);
        // The kernel path: no redirects, no reverse-path filter (clients
        // come from addresses the director has no route to).
        sysctl(
            &director,
            &[
                "net.ipv4.conf.all.send_redirects=0",
                "net.ipv4.conf.eth0.send_redirects=0",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.eth0.rp_filter=0",
            ],
        );
        sysctl(
            &sink,
            &[
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.eth0.rp_filter=0",
                "net.ipv4.conf.lo.rp_filter=0",
            ],
        );
        Ok(DpLab {
            client,
            director,
            sink,
            director_mac,
        })
    }

    /// Kernel forwarding on (with routes to the sink) or off.
    fn kernel_forwarding(&self, on: bool) {
        let v = if on { "1" } else { "0" };
        sysctl(
            &self.director,
            &[
                &format!("net.ipv4.ip_forward={v}"),
                &format!("net.ipv6.conf.all.forwarding={v}"),
            ],
        );
        let op = if on { "replace" } else { "del" };
        let _ = Command::new("ip")
            .args([
                "-n",
                &self.director,
                "route",
                op,
                &format!("{VIP4}/32"),
                "via",
                SINK4,
            ])
            .output();
        let _ = Command::new("ip")
            .args([
                "-n",
                &self.director,
                "-6",
                "route",
                op,
                &format!("{VIP6}/128"),
                "via",
                &server6(0),
            ])
            .output();
    }
}

/// A running `vrlb run` with the data plane.
struct Director {
    pid: u32,
    socket: PathBuf,
    log: PathBuf,
}

impl Director {
    fn start(
        lab: &mut Lab,
        vrlb: &Path,
        ns: &str,
        conf: &Path,
        dir: &Path,
        workers: usize,
        slots: u32,
    ) -> Result<Director, String> {
        let tag = format!(
            "dp-{}",
            conf.file_stem().and_then(|s| s.to_str()).unwrap_or("conf")
        );
        let file = |ext: &str| dir.join(format!("{tag}.{ext}")).display().to_string();
        let (socket, log) = (
            dir.join(format!("{tag}.sock")),
            dir.join(format!("{tag}-w{workers}.log")),
        );
        let _ = std::fs::remove_file(&socket);
        let vrlb_s = vrlb.display().to_string();
        let (conf_s, sock_s) = (conf.display().to_string(), socket.display().to_string());
        let (pid_s, state_s) = (file("pid"), file("vips"));
        let (workers_s, slots_s) = (workers.to_string(), slots.to_string());
        let pid = lab.spawn(
            ns,
            &[
                &vrlb_s,
                "run",
                "-f",
                &conf_s,
                "-p",
                &pid_s,
                "--state-file",
                &state_s,
                "--control-socket",
                &sock_s,
                "--workers",
                &workers_s,
                "--dataplane-iface",
                "eth0",
                "--connections",
                &slots_s,
            ],
            &log,
        );
        let d = Director { pid, socket, log };
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = d.status(vrlb)
                && st["dataplane"]["workers"].as_u64() == Some(workers as u64)
            {
                return Ok(d);
            }
            if Instant::now() > end {
                let tail = std::fs::read_to_string(&d.log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(5).collect();
                let _ = d.stop(lab, ns);
                return Err(format!(
                    "vrlb's data plane ({workers} worker(s)) did not come up within 20 s; log {}: {}",
                    d.log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn status(&self, vrlb: &Path) -> Option<serde_json::Value> {
        let out = Command::new(vrlb)
            .args(["status", "--json", "--control-socket"])
            .arg(&self.socket)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Every forwarding counter so far, by name.
    fn counters(&self, vrlb: &Path) -> Result<Counts, String> {
        let st = self.status(vrlb).ok_or("vrlb status --json failed")?;
        let f = st["dataplane"]["forwarding"]
            .as_object()
            .ok_or("no forwarding counters in vrlb status")?;
        Ok(f.iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
            .collect())
    }

    /// SIGTERM, and checks that it cleaned up: its nftables table gone.
    fn stop(&self, lab: &mut Lab, ns: &str) -> Result<(), String> {
        let t0 = Instant::now();
        lab.signal(self.pid, "TERM");
        let took = t0.elapsed();
        let tables = vrlb_tests::netns::in_ns(ns, &["nft", "list", "tables"]);
        if tables.contains("vrlb") {
            let _ = Command::new("ip")
                .args([
                    "netns", "exec", ns, "nft", "delete", "table", "inet", "vrlb",
                ])
                .output();
            return Err(format!(
                "vrlb left its nftables table behind after SIGTERM (exited after {took:?}; log {})",
                self.log.display()
            ));
        }
        Ok(())
    }
}

/// Forwarding counters by name.
type Counts = std::collections::BTreeMap<String, u64>;

/// vrlb's rates between two counter readings `secs` apart.
fn rates(a: &Counts, b: &Counts, secs: f64) -> VrlbRates {
    let delta = |k: &str| {
        b.get(k)
            .copied()
            .unwrap_or(0)
            .saturating_sub(a.get(k).copied().unwrap_or(0)) as f64
            / secs
    };
    let drops: Vec<(String, f64)> = b
        .keys()
        .filter(|k| k.starts_with("drop_"))
        .map(|k| (k["drop_".len()..].to_string(), delta(k)))
        .collect();
    VrlbRates {
        forwarded: delta("forwarded"),
        dropped: drops.iter().map(|d| d.1).sum(),
        flows: delta("flows_created"),
        template_hits: delta("template_hits"),
        top_drop: drops
            .into_iter()
            .filter(|d| d.1 > 0.0)
            .max_by(|x, y| x.1.total_cmp(&y.1)),
    }
}

/// trafgen in the client namespace, until stopped.
struct Generator {
    pid: u32,
}

impl Generator {
    fn start(lab: &mut Lab, ns: &str, conf: &Path, log: &Path) -> Generator {
        let conf_s = conf.display().to_string();
        // One process (pinned by trafgen), the packet ring, no qdisc.
        let pid = lab.spawn(
            ns,
            &["trafgen", "--dev", "eth0", "--cpus", "1", "--conf", &conf_s],
            log,
        );
        Generator { pid }
    }

    /// SIGKILL to trafgen and its forked sender, then reaps them.
    fn stop(self, lab: &mut Lab) {
        let family = procfs::family(self.pid);
        for &p in family.iter().rev() {
            let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
        }
        lab.signal(self.pid, "KILL");
        // The forked sender becomes this process's orphan (it is the
        // subreaper): reap it, and only it.
        for &p in &family[1..] {
            let end = Instant::now() + Duration::from_secs(2);
            while Instant::now() < end {
                use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
                match waitpid(Pid::from_raw(p as i32), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(5)),
                    _ => break,
                }
            }
        }
    }
}

/// Runs the load for warm-up + window and measures the window.
fn window(
    lab: &mut Lab,
    dp: &DpLab,
    load: &Path,
    log: &Path,
    timing: &Timing,
    vrlb: Option<(&Path, &Director)>,
) -> Result<Window, String> {
    let before_rx = packets(&dp.sink, "rx")?;
    let gen_ = Generator::start(lab, &dp.client, load, log);
    std::thread::sleep(timing.warmup);
    let result = (|| {
        let (rx0, tx0) = (packets(&dp.sink, "rx")?, packets(&dp.client, "tx")?);
        let c0 = match vrlb {
            Some((b, d)) => Some(d.counters(b)?),
            None => None,
        };
        let t0 = Instant::now();
        std::thread::sleep(timing.window);
        let (rx1, tx1) = (packets(&dp.sink, "rx")?, packets(&dp.client, "tx")?);
        let c1 = match vrlb {
            Some((b, d)) => Some(d.counters(b)?),
            None => None,
        };
        let secs = t0.elapsed().as_secs_f64();
        if tx1 == tx0 {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!(
                "trafgen sent nothing (log {}: {})",
                log.display(),
                text.lines().last().unwrap_or("")
            ));
        }
        if rx0 == before_rx {
            return Err("nothing reached the sink during the warm-up".to_string());
        }
        let vrlb = c0.zip(c1).map(|(a, b)| rates(&a, &b, secs));
        // Next to nothing through: the path is broken, not slow.
        if (rx1 - rx0) * 100 < tx1 - tx0 {
            return Err(format!(
                "{} of {} frames sent reached the sink{}",
                rx1 - rx0,
                tx1 - tx0,
                vrlb.as_ref()
                    .and_then(|v| v.top_drop.clone())
                    .map_or(String::new(), |(k, r)| format!(
                        "; vrlb drops them: {k} ({r:.0}/s)"
                    ))
            ));
        }
        Ok(Window {
            delivered_pps: (rx1 - rx0) as f64 / secs,
            offered_pps: (tx1 - tx0) as f64 / secs,
            vrlb,
        })
    })();
    gen_.stop(lab);
    result
}

/// The process-wide clock origin both probe ends measure from.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Sends `n` probes of `frame` size, one a millisecond, client to sink
/// through the path; returns each one-way latency (ns) and the lost count.
fn latency(dp: &DpLab, frame: Frame, n: usize) -> Result<(Vec<u64>, usize), String> {
    run(&[
        "ip",
        "-n",
        &dp.sink,
        "addr",
        "add",
        &format!("{VIP4}/32"),
        "dev",
        "lo",
    ]);
    let result = (|| {
        let vip: Ipv4Addr = VIP4.parse().map_err(|_| "VIP")?;
        let rx = in_netns(&dp.sink, move || {
            let s = UdpSocket::bind((vip, PORT4))?;
            s.set_read_timeout(Some(Duration::from_millis(20)))?;
            Ok(s)
        })
        .map_err(|e| format!("sink socket: {e}"))?;
        let client: Ipv4Addr = CLIENT4.parse().map_err(|_| "client")?;
        let tx = in_netns(&dp.client, move || UdpSocket::bind((client, 0)))
            .map_err(|e| format!("client socket: {e}"))?;
        let got = Arc::new(Mutex::new(Vec::with_capacity(n)));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        let receiver = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if let Ok(len) = rx.recv(&mut buf) {
                    let now = origin().elapsed().as_nanos() as u64;
                    if len >= 16 && buf[..4] == *b"vrlb" {
                        let sent = u64::from_be_bytes(buf[8..16].try_into().unwrap_or([0; 8]));
                        if let Ok(mut v) = g.lock() {
                            v.push(now.saturating_sub(sent));
                        }
                    }
                }
            }
        });
        let target = SocketAddr::new(vip.into(), PORT4);
        let mut payload = vec![0u8; frame.udp_payload()];
        payload[..4].copy_from_slice(b"vrlb");
        let mut next = Instant::now();
        for seq in 0..n as u32 {
            payload[4..8].copy_from_slice(&seq.to_be_bytes());
            let now = origin().elapsed().as_nanos() as u64;
            payload[8..16].copy_from_slice(&now.to_be_bytes());
            let _ = tx.send_to(&payload, target);
            next += Duration::from_millis(1);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        let _ = receiver.join();
        let v = got.lock().map(|v| v.clone()).unwrap_or_default();
        let lost = n.saturating_sub(v.len());
        Ok((v, lost))
    })();
    let _ = Command::new("ip")
        .args([
            "-n",
            &dp.sink,
            "addr",
            "del",
            &format!("{VIP4}/32"),
            "dev",
            "lo",
        ])
        .output();
    result
}

/// What measurements 3 and 4 found.
#[derive(Debug, Default)]
pub struct Found {
    /// Measurement 3.
    pub rate: Vec<Cell>,
    /// Measurement 4.
    pub conns: Vec<Cell>,
}

/// Every failure of `cells`, labelled; a cell with fewer than `rounds`
/// windows or (3) no latency sample is one too.
pub fn failures(cells: &[Cell], rounds: usize) -> Vec<String> {
    let mut out = Vec::new();
    for c in cells {
        let label = if c.frame.0 > 0 {
            format!("{} B, {}", c.frame.0, c.path.label())
        } else {
            format!(
                "persistence {}, {}",
                if c.persistent { "on" } else { "off" },
                c.path.label()
            )
        };
        for f in &c.failures {
            out.push(format!("{label}: {f}"));
        }
        if c.failures.is_empty() && c.windows.len() < rounds {
            out.push(format!(
                "{label}: {} of {rounds} rounds measured",
                c.windows.len()
            ));
        }
        if c.frame.0 > 0 && c.failures.is_empty() && c.latency_ns.is_empty() {
            out.push(format!("{label}: no latency probe came through"));
        }
    }
    out
}

/// One round of one path: start vrlb or turn kernel forwarding on, run
/// the load window (and for 3 the latency probes), undo.
#[allow(clippy::too_many_arguments)]
fn round(
    lab: &mut Lab,
    dp: &DpLab,
    vrlb: &Path,
    dir: &Path,
    cell: &mut Cell,
    conf: &Path,
    load: &Path,
    timing: &Timing,
    slots: u32,
) -> Result<Window, String> {
    let log = dir.join("trafgen.log");
    match cell.path {
        Forwarder::Kernel => {
            dp.kernel_forwarding(true);
            let w = window(lab, dp, load, &log, timing, None);
            let lat = if w.is_ok() && cell.frame.0 > 0 {
                Some(latency(dp, cell.frame, timing.probes))
            } else {
                None
            };
            dp.kernel_forwarding(false);
            let w = w?;
            if let Some(l) = lat {
                let (v, lost) = l?;
                cell.latency_ns.extend(v);
                cell.lost += lost;
            }
            Ok(w)
        }
        Forwarder::Vrlb(workers) => {
            dp.kernel_forwarding(false);
            let d = Director::start(lab, vrlb, &dp.director, conf, dir, workers, slots)?;
            let w = window(lab, dp, load, &log, timing, Some((vrlb, &d)));
            let lat = if w.is_ok() && cell.frame.0 > 0 {
                Some(latency(dp, cell.frame, timing.probes))
            } else {
                None
            };
            let stopped = d.stop(lab, &dp.director);
            let w = w.map_err(|e| format!("{e} (vrlb log {})", d.log.display()))?;
            stopped?;
            if let Some(l) = lat {
                let (v, lost) = l?;
                cell.latency_ns.extend(v);
                cell.lost += lost;
            }
            Ok(w)
        }
    }
}

fn fmt_rate(pps: f64) -> String {
    if pps >= 1e6 {
        format!("{:.2} M", pps / 1e6)
    } else {
        format!("{:.0} k", pps / 1e3)
    }
}

/// Runs measurements 3 (`rate`) and/or 4 (`conns`).
pub fn run_all(
    lab: &mut Lab,
    dir: &Path,
    vrlb: &Path,
    rate: bool,
    conns: bool,
    timing: &Timing,
    progress: &mut dyn FnMut(&str),
) -> Result<Found, String> {
    if !vrlb_tests::netns::have("trafgen") {
        return Err("trafgen is not installed (Debian: apt-get install netsniff-ng)".into());
    }
    let dp = DpLab::build(lab, dir)?;
    let mut found = Found::default();
    let write = |name: &str, text: &str| -> Result<PathBuf, String> {
        let p = dir.join(name);
        std::fs::File::create(&p)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(p)
    };
    if rate {
        let conf = write("dp-udp.conf", &udp_conf())?;
        for frame in Frame::BOTH {
            let load = write(
                &format!("udp-{}.trafgen", frame.0),
                &udp_load(&dp.director_mac, frame),
            )?;
            let mut cells: Vec<Cell> = Forwarder::ALL
                .iter()
                .map(|&p| Cell::new(p, frame, false))
                .collect();
            for r in 0..timing.rounds {
                for k in 0..cells.len() {
                    // Rotate which path goes first in each round.
                    let i = (k + r) % cells.len();
                    let cell = &mut cells[i];
                    let res = round(lab, &dp, vrlb, dir, cell, &conf, &load, timing, 1 << 16);
                    let line = match &res {
                        Ok(w) => format!(
                            "{:>9}pps delivered of {:>9}pps offered{}; latency so far p50 {:?} p99 {:?}",
                            fmt_rate(w.delivered_pps),
                            fmt_rate(w.offered_pps),
                            w.vrlb.as_ref().and_then(|v| v.top_drop.clone()).map_or(
                                String::new(),
                                |(k, r)| format!(" (vrlb drops {}/s, mostly {k})", fmt_rate(r))
                            ),
                            cell.latency_percentile(50.0).unwrap_or_default(),
                            cell.latency_percentile(99.0).unwrap_or_default()
                        ),
                        Err(e) => format!("FAILED: {e}"),
                    };
                    progress(&format!(
                        "dataplane {:>4} B  {:<18} round {}/{}  {line}",
                        frame.0,
                        cell.path.label(),
                        r + 1,
                        timing.rounds
                    ));
                    match res {
                        Ok(w) => cell.windows.push(w),
                        Err(e) => cell.failures.push(e),
                    }
                }
            }
            found.rate.extend(cells);
        }
    }
    if conns {
        let load = write("syn.trafgen", &syn_load(&dp.director_mac))?;
        for persistent in [false, true] {
            let conf = write(
                &format!("dp-conns-p{}.conf", u8::from(persistent)),
                &syn_conf(persistent),
            )?;
            let mut cells: Vec<Cell> = Forwarder::ALL
                .iter()
                .map(|&p| Cell::new(p, Frame(0), persistent))
                .collect();
            for r in 0..timing.rounds {
                for k in 0..cells.len() {
                    let i = (k + r) % cells.len();
                    let cell = &mut cells[i];
                    let res = round(lab, &dp, vrlb, dir, cell, &conf, &load, timing, CONN_SLOTS)
                        .and_then(|w| {
                            // Every SYN must have been a tracked new connection.
                            match w.vrlb {
                                Some(v)
                                    if (v.flows * timing.window.as_secs_f64()) as u64
                                        > u64::from(CONN_SLOTS) * 9 / 10 =>
                                {
                                    Err(format!("the connection table ({CONN_SLOTS} slots) filled"))
                                }
                                _ => Ok(w),
                            }
                        });
                    let line = match &res {
                        Ok(w) => format!(
                            "{:>9}pps delivered of {:>9}pps offered{}",
                            fmt_rate(w.delivered_pps),
                            fmt_rate(w.offered_pps),
                            w.vrlb.as_ref().map_or(String::new(), |v| format!(
                                "; vrlb: {}/s new connections, {}/s template hits, {}/s dropped{}",
                                fmt_rate(v.flows),
                                fmt_rate(v.template_hits),
                                fmt_rate(v.dropped),
                                v.top_drop
                                    .as_ref()
                                    .map_or(String::new(), |(k, _)| format!(" (mostly {k})"))
                            ))
                        ),
                        Err(e) => format!("FAILED: {e}"),
                    };
                    progress(&format!(
                        "conns     persistence {:<3} {:<18} round {}/{}  {line}",
                        if persistent { "on" } else { "off" },
                        cell.path.label(),
                        r + 1,
                        timing.rounds
                    ));
                    match res {
                        Ok(w) => cell.windows.push(w),
                        Err(e) => cell.failures.push(e),
                    }
                }
            }
            found.conns.extend(cells);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes_configs_and_loads() {
        assert_eq!(Frame(64).udp_payload(), 18);
        assert_eq!(Frame(1500).udp_payload(), 1454);
        let c = syn_conf(true);
        assert_eq!(c.matches("real_server ").count(), SERVERS);
        assert!(
            c.contains("real_server 2001:db8::1:fff 80") && c.contains("persistence_timeout 300")
        );
        assert!(!syn_conf(false).contains("persistence_timeout"));
        assert!(udp_conf().contains(
            "virtual_server 198.51.100.10 9 {\n    lb_algo wlc\n    lb_kind DR\n    protocol UDP\n"
        ));
        let l = udp_load("02:00:00:00:00:01", Frame(64));
        assert!(
            l.contains("da=02:00:00:00:00:01")
                && l.contains("fill(0x00, 18)")
                && l.contains("ttl=64")
        );
        assert!(syn_load("02:00:00:00:00:01").contains("sa=dinc(1, 4099)"));
    }

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
        let s: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&s, 99.0), Some(99));
        assert_eq!(percentile(&s, 50.0), Some(50));
        assert_eq!(percentile(&s, 100.0), Some(100));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 99.0), None);
    }
}
