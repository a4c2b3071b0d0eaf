//! The routing half of active-active directors (docs/anycast.md), with the
//! shipped configurations in `examples/anycast/` used as they are: on
//! three directors `vrlb run` (keepalived.conf: `anycast`, TCP_CHECK) holds
//! the VIP on its TUN interface `vrlb-anycast`, and BIRD or FRR (zebra +
//! bgpd) exports it; the same speaker on the router merges the routes
//! into one ECMP route. Each way a director stops announcing must take its
//! next hop out of the router's table within a bound:
//!
//! | event on one director | bound |
//! |---|---|
//! | quorum lost (every real server's check fails) | 10 s (check ~3 s + BGP) |
//! | quorum regained | 10 s |
//! | SIGTERM of vrlb, the speaker left running | 5 s |
//! | vrlb restarted | 10 s |
//! | kill -9 of vrlb, the speaker left running (the kernel deletes the TUN device) | 5 s |
//! | kill -9 of the speaker, vrlb left running (its session closes) | 5 s |
//! | SIGHUP with `anycast` taken out of the configuration | 5 s |
//!
//! Forwarding through the directors is ecmp_anycast.rs's part.
//!
//! Topology: router 198.51.100.1, directors 198.51.100.11-13 and one
//! namespace answering for the three real servers 198.51.100.21-23 (a TCP
//! listener on port 80: enough for TCP_CHECK), all on one bridge.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vrlb_tests::frr::{self, Frr};
use vrlb_tests::netns::{
    Lab, TempDir, binary, has_addr, have, in_netns, in_ns, prerequisite, run, wait_until,
};

const VIP: &str = "192.0.2.240";
/// vrlb's anycast interface (driver-linux/src/anycast).
const DEVICE: &str = "vrlb-anycast";
const SERVERS: [&str; 3] = ["198.51.100.21", "198.51.100.22", "198.51.100.23"];

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/anycast")
        .join(name)
}

/// The router's next hops for the VIP, sorted.
fn next_hops(router: &str) -> Vec<String> {
    let text = in_ns(router, &["ip", "route", "show", VIP]);
    let mut hops: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.position(|x| x == "via")?;
            w.next().map(str::to_string)
        })
        .collect();
    hops.sort();
    hops
}

/// Directors (1-based) as next-hop addresses.
fn hops(n: &[u8]) -> Vec<String> {
    n.iter().map(|i| format!("198.51.100.1{i}")).collect()
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Speaker {
    Bird,
    Frr,
}

/// A running speaker: BIRD's pid, or FRR's daemons.
enum Running {
    Bird(u32),
    Frr(Frr),
}

impl Running {
    /// The process whose death ends the BGP session (BIRD, bgpd).
    fn bgp_pid(&self) -> u32 {
        match self {
            Running::Bird(pid) => *pid,
            Running::Frr(f) => f.bgpd,
        }
    }
}

/// The real servers: a listener on port 80 in their namespace, accepting
/// and closing every connection, until dropped.
struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    fn start(ns: &str) -> Listener {
        let listener = in_netns(ns, || TcpListener::bind((Ipv4Addr::UNSPECIFIED, 80)))
            .expect("bind :80 in the servers' namespace");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // Accepting keeps the backlog empty: a full one would drop the
            // checks' SYNs and fail them.
            while !flag.load(Ordering::Relaxed) {
                if listener.accept().is_err() {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        });
        Listener {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Director {
    ns: String,
    conf: PathBuf,
    vrlb: Option<u32>,
    speaker: Running,
    runs: u32,
}

/// Router, three directors and the real servers on one bridge. Fields drop
/// in order: the listener stops, then the lab removes the namespaces and
/// processes.
struct Routing {
    _servers: Listener,
    router: String,
    router_speaker: Running,
    directors: Vec<Director>,
    vrlb: PathBuf,
    dir: TempDir,
    lab: Lab,
}

impl Routing {
    fn build(speaker: Speaker, tag: &str) -> Option<Routing> {
        let tools: &[&str] = match speaker {
            Speaker::Bird => &["bird", "nft"],
            Speaker::Frr => {
                // Debian's frr package (.ci/run installs it).
                if !prerequisite(
                    frr::installed(),
                    "FRR (zebra, bgpd, vtysh) is not installed",
                ) {
                    return None;
                }
                &["nft"]
            }
        };
        let mut lab = Lab::new(tools)?;
        let dir = TempDir::new(tag);
        let vrlb = binary("vrlb");
        let seg = lab.netns("s");
        let router = lab.netns("r");
        let br = lab.name("br");
        lab.bridge(&seg, &br);
        let attach = |lab: &mut Lab, ns: &str, port: &str, addrs: &[String]| {
            lab.veth(ns, "eth0", &seg, port);
            run(&["ip", "-n", &seg, "link", "set", port, "master", &br]);
            for a in addrs {
                run(&["ip", "-n", ns, "addr", "add", a, "dev", "eth0"]);
            }
        };
        let port = lab.name("pr");
        attach(&mut lab, &router, &port, &["198.51.100.1/24".into()]);
        run(&[
            "ip",
            "netns",
            "exec",
            &router,
            "sysctl",
            "-qw",
            "net.ipv4.fib_multipath_hash_policy=1",
        ]);
        let servers_ns = lab.netns("h");
        let port = lab.name("ph");
        let addrs: Vec<String> = SERVERS.iter().map(|a| format!("{a}/24")).collect();
        attach(&mut lab, &servers_ns, &port, &addrs);
        let servers = Listener::start(&servers_ns);

        let (router_conf, director_conf) = match speaker {
            Speaker::Bird => ("bird-router.conf", "bird-director.conf"),
            Speaker::Frr => ("frr-router.conf", "frr-director.conf"),
        };
        let text = std::fs::read_to_string(example(router_conf)).unwrap();
        let router_speaker = start_speaker(speaker, &mut lab, &router, &text, &dir, "router");
        let speaker_conf = std::fs::read_to_string(example(director_conf)).unwrap();
        let vrlb_conf = std::fs::read_to_string(example("keepalived.conf")).unwrap();
        let mut directors = Vec::new();
        for i in 1..=3u8 {
            let ns = lab.netns(&format!("d{i}"));
            let port = lab.name(&format!("p{i}"));
            attach(&mut lab, &ns, &port, &[format!("198.51.100.1{i}/24")]);
            // The examples are director 1's; the others differ in their
            // address and name.
            let conf = dir.path(&format!("d{i}.conf"));
            std::fs::write(
                &conf,
                vrlb_conf.replace("director1", &format!("director{i}")),
            )
            .unwrap();
            let text = speaker_conf
                .replace("198.51.100.11", &format!("198.51.100.1{i}"))
                .replace("director1", &format!("director{i}"));
            let speaker = start_speaker(speaker, &mut lab, &ns, &text, &dir, &format!("d{i}"));
            directors.push(Director {
                ns,
                conf,
                vrlb: None,
                speaker,
                runs: 0,
            });
        }
        let mut net = Routing {
            _servers: servers,
            router,
            router_speaker,
            directors,
            vrlb,
            dir,
            lab,
        };
        for i in 1..=3 {
            net.start_vrlb(i);
        }
        Some(net)
    }

    fn director(&self, i: u8) -> &Director {
        &self.directors[usize::from(i - 1)]
    }

    /// Starts (or restarts) director `i`'s (1-based) vrlb.
    fn start_vrlb(&mut self, i: u8) {
        let d = &mut self.directors[usize::from(i - 1)];
        d.runs += 1;
        let file = |what: &str| self.dir.path(&format!("d{i}.{what}"));
        let log = file(&format!("vrlb{}.log", d.runs));
        let (pid, state, socket) = (file("pid"), file("vips"), file("sock"));
        d.vrlb = Some(self.lab.spawn(
            &d.ns,
            &[
                self.vrlb.to_str().unwrap(),
                "run",
                "-f",
                d.conf.to_str().unwrap(),
                "-p",
                pid.to_str().unwrap(),
                "--state-file",
                state.to_str().unwrap(),
                "--dataplane-iface",
                "eth0",
                "--control-socket",
                socket.to_str().unwrap(),
            ],
            &log,
        ));
    }

    /// Sends `signal` to director `i`'s vrlb and reaps it.
    fn signal_vrlb(&mut self, i: u8, signal: &str) -> Option<std::process::ExitStatus> {
        let pid = self.directors[usize::from(i - 1)]
            .vrlb
            .take()
            .expect("vrlb runs");
        self.lab.signal(pid, signal)
    }

    /// Makes every real server unreachable from director `i` (a checker's
    /// connect fails at once, EACCES), or reachable again.
    fn cut_checks(&self, i: u8, cut: bool) {
        for s in SERVERS {
            let op = if cut { "add" } else { "del" };
            run(&[
                "ip",
                "-n",
                &self.director(i).ns,
                "route",
                op,
                "prohibit",
                &format!("{s}/32"),
            ]);
        }
    }

    /// Waits until `bound` after `since` for the router's next hops to be
    /// directors `want`, or panics with what the speakers say.
    fn wait_for(&self, want: &[u8], since: Instant, bound: Duration, what: &str) {
        let want = hops(want);
        let left = bound.saturating_sub(since.elapsed());
        if wait_until(left, || next_hops(&self.router) == want).is_none() {
            panic!(
                "{what}: next hops {:?}, want {want:?} within {bound:?}\n{}",
                next_hops(&self.router),
                self.diagnose()
            )
        }
        eprintln!("{what}: next hops {want:?} after {:?}", since.elapsed());
    }

    fn diagnose(&self) -> String {
        let mut out = String::new();
        for d in &self.directors {
            out += &format!(
                "{}: {}",
                d.ns,
                in_ns(&d.ns, &["ip", "-o", "addr", "show", "dev", DEVICE])
            );
        }
        match &self.router_speaker {
            Running::Frr(f) => {
                out += &f.vtysh("show bgp ipv4 unicast summary");
                out += &f.logs();
            }
            Running::Bird(_) => {
                out += "router's BIRD log:\n";
                out += &std::fs::read_to_string(self.dir.path("router.log")).unwrap_or_default();
            }
        }
        out
    }
}

fn start_speaker(
    speaker: Speaker,
    lab: &mut Lab,
    ns: &str,
    conf: &str,
    dir: &TempDir,
    tag: &str,
) -> Running {
    match speaker {
        Speaker::Bird => {
            let path = dir.path(&format!("{tag}.bird"));
            std::fs::write(&path, conf).unwrap();
            let sock = dir.path(&format!("{tag}.ctl"));
            let args = [
                "bird",
                "-f",
                "-c",
                path.to_str().unwrap(),
                "-s",
                sock.to_str().unwrap(),
            ];
            Running::Bird(lab.spawn(ns, &args, &dir.path(&format!("{tag}.log"))))
        }
        Speaker::Frr => Running::Frr(Frr::start(lab, ns, &dir.path(tag), conf)),
    }
}

/// The scenario both speakers must pass.
fn announce_and_withdraw(mut net: Routing) {
    let start = Instant::now();
    net.wait_for(&[1, 2, 3], start, Duration::from_secs(30), "start");
    if let Running::Frr(f) = &net.router_speaker {
        // bgpd itself holds the three paths as one multipath route.
        let route = f.vtysh(&format!("show bgp ipv4 unicast {VIP}/32"));
        assert_eq!(
            route.matches("multipath").count(),
            3,
            "bgpd's paths: {route}"
        );
    }
    for i in 1..=3 {
        assert!(has_addr(&net.director(i).ns, VIP), "director {i}: no VIP");
    }

    // Quorum lost on director 2 (its checks of every real server fail):
    // vrlb removes the VIP, the speaker withdraws.
    let t = Instant::now();
    net.cut_checks(2, true);
    net.wait_for(&[1, 3], t, Duration::from_secs(10), "quorum lost");
    assert!(!has_addr(&net.director(2).ns, VIP));
    let t = Instant::now();
    net.cut_checks(2, false);
    net.wait_for(&[1, 2, 3], t, Duration::from_secs(10), "quorum regained");

    // SIGTERM of vrlb, the speaker left running: vrlb removes the VIP and
    // its interface on the way out.
    let t = Instant::now();
    let status = net.signal_vrlb(2, "TERM");
    assert!(
        status.is_some_and(|s| s.success()),
        "vrlb after SIGTERM: {status:?}"
    );
    net.wait_for(&[1, 3], t, Duration::from_secs(5), "SIGTERM of vrlb");
    let link = in_ns(&net.director(2).ns, &["ip", "-o", "link", "show"]);
    assert!(
        !link.contains(DEVICE),
        "{DEVICE} left after SIGTERM: {link}"
    );
    // A restarted vrlb announces again.
    let t = Instant::now();
    net.start_vrlb(2);
    net.wait_for(&[1, 2, 3], t, Duration::from_secs(10), "vrlb restarted");

    // kill -9 of vrlb, the speaker left running: vrlb removes nothing, the
    // kernel deletes its TUN device, VIP and all, as the descriptor closes.
    let t = Instant::now();
    net.signal_vrlb(3, "KILL");
    net.wait_for(&[1, 2], t, Duration::from_secs(5), "kill -9 of vrlb");
    let link = in_ns(&net.director(3).ns, &["ip", "-o", "link", "show"]);
    assert!(
        !link.contains(DEVICE),
        "{DEVICE} left after kill -9: {link}"
    );

    // kill -9 of the speaker, vrlb left running: its kernel closes the
    // session, the router drops the route at once (at worst the 3 s hold
    // time later).
    let pid = net.director(1).speaker.bgp_pid();
    let t = Instant::now();
    net.lab.signal(pid, "KILL");
    net.wait_for(&[2], t, Duration::from_secs(5), "kill -9 of the speaker");

    // A reload that drops `anycast` withdraws, and removes the interface.
    let conf = &net.director(2).conf;
    let text = std::fs::read_to_string(conf).unwrap();
    std::fs::write(conf, text.replace("    anycast\n", "")).unwrap();
    let pid = net.director(2).vrlb.expect("vrlb runs").to_string();
    let t = Instant::now();
    run(&["kill", "-HUP", &pid]);
    net.wait_for(&[], t, Duration::from_secs(5), "reload without anycast");
    let ns = net.director(2).ns.clone();
    wait_until(Duration::from_secs(2), || {
        !in_ns(&ns, &["ip", "-o", "link", "show"]).contains(DEVICE)
    })
    .expect("vrlb-anycast removed by the reload");
    eprintln!("{:?} in all", start.elapsed());
}

#[test]
fn bird_withdraws_on_quorum_loss_sigterm_and_kill() {
    if let Some(net) = Routing::build(Speaker::Bird, "anybird") {
        announce_and_withdraw(net);
    }
}

#[test]
fn frr_withdraws_on_quorum_loss_sigterm_and_kill() {
    if let Some(net) = Routing::build(Speaker::Frr, "anyfrr") {
        announce_and_withdraw(net);
    }
}

#[test]
fn frr_configs_parse() {
    if !prerequisite(have("vtysh"), "FRR (vtysh) is not installed") {
        return;
    }
    for name in ["frr-director.conf", "frr-router.conf"] {
        let path = example(name);
        let out = std::process::Command::new("vtysh")
            .args(["-C", "-f", path.to_str().unwrap()])
            .output()
            .expect("vtysh runs");
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
