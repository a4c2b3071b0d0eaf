//! The firmware-style node (vrlb-core on smoltcp over a TAP device, built
//! alone on the VRRP-only core) and Debian's keepalived on one bridge,
//! with the budget case's eight VIPs: they elect a master by priority and
//! fail over both ways; after the board takes over, its gratuitous ARPs
//! are on the wire in the core's two bursts and it answers ping for the
//! VIPs. VRRPv2 with PASS authentication, and VRRPv3.
//!
//! Topology (one namespace per box, documentation addresses):
//!   [board: vrlb-fw on tap0 192.0.2.1] -- br0 -- veth -- [keepalived 192.0.2.2]
//! The TAP device and the bridge live in the board's namespace; vrlb-fw is
//! the only stack on the TAP (the kernel side has no address). tcpdump
//! watches ARP on the bridge.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vrlb_tests::netns::{Lab, TempDir, has_addr, wait_until};

/// The board's eight VIPs (the first is the one the checks name).
const VIPS: [&str; 8] = [
    "192.0.2.240",
    "192.0.2.241",
    "192.0.2.242",
    "192.0.2.243",
    "192.0.2.244",
    "192.0.2.245",
    "192.0.2.246",
    "192.0.2.247",
];
const VIP: &str = VIPS[0];
const BOARD_MAC: &str = "02:00:00:00:00:01";
/// keepalived's defaults, which the board also uses: 5 GARPs per VIP at
/// the transition and again 5 s later (garp_master_repeat, _delay).
const GARP_REPEAT: usize = 5;
const GARP_DELAY: f64 = 5.0;

#[derive(Clone, Copy, PartialEq)]
enum Vrrp {
    V2,
    V3,
}

fn keepalived_conf(iface: &str, priority: u8, version: Vrrp) -> String {
    let vips: String = VIPS.iter().map(|v| format!("    {v}/24\n")).collect();
    let (global, auth) = match version {
        Vrrp::V2 => (
            "",
            "  authentication {\n    auth_type PASS\n    auth_pass 1111\n  }\n",
        ),
        Vrrp::V3 => ("global_defs {\n  vrrp_version 3\n}\n", ""),
    };
    format!(
        "{global}vrrp_instance V {{\n  state BACKUP\n  interface {iface}\n  virtual_router_id 51\n  priority {priority}\n  advert_int 1\n{auth}  virtual_ipaddress {{\n{vips}  }}\n}}\n"
    )
}

/// vrlb-fw as a board carries it: built on its own, so its vrlb-core has
/// only `vrrp` and `log` (a workspace build unifies it with the daemon's).
fn firmware_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/vrlb-fw
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.args([
        "build",
        "--quiet",
        "-p",
        "vrlb-linux",
        "--no-default-features",
        "--features",
        "firmware",
        "--bin",
        "vrlb-fw",
    ]);
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        cargo.arg("--release");
    }
    let status = cargo
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo");
    assert!(
        status.success(),
        "cargo build vrlb-fw (firmware only) failed"
    );
    profile_dir.join("vrlb-fw")
}

struct Setup {
    lab: Lab,
    dir: TempDir,
    fw: PathBuf,
    version: Vrrp,
    board: String,
    peer: String,
    peer_if: String,
    tap: String,
}

fn setup(version: Vrrp) -> Option<Setup> {
    let mut lab = Lab::new(&["keepalived", "tcpdump", "ping"])?;
    let fw = firmware_binary();
    let dir = TempDir::new("fw");
    let board = lab.netns("b");
    let peer = lab.netns("k");
    let (br, tap, vb, vk) = (
        lab.name("br"),
        lab.name("tap"),
        lab.name("vb"),
        lab.name("vk"),
    );
    lab.bridge(&board, &br);
    vrlb_tests::netns::run(&[
        "ip", "-n", &board, "tuntap", "add", "dev", &tap, "mode", "tap",
    ]);
    vrlb_tests::netns::run(&["ip", "-n", &board, "link", "set", &tap, "master", &br, "up"]);
    lab.veth(&board, &vb, &peer, &vk);
    vrlb_tests::netns::run(&["ip", "-n", &board, "link", "set", &vb, "master", &br]);
    vrlb_tests::netns::run(&["ip", "-n", &peer, "addr", "add", "192.0.2.2/24", "dev", &vk]);
    // ARP on the bridge, with link-layer headers and epoch timestamps.
    let arp_log = dir.path("arp.txt");
    lab.spawn(
        &board,
        &["tcpdump", "-i", &br, "-n", "-l", "-e", "-tt", "arp"],
        &arp_log,
    );
    let listening = wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&arp_log).is_ok_and(|t| t.contains("listening on"))
    });
    assert!(listening.is_some(), "tcpdump did not start");
    Some(Setup {
        lab,
        dir,
        fw,
        version,
        board,
        peer,
        peer_if: vk,
        tap,
    })
}

impl Setup {
    fn start_board(&mut self, priority: u8, log: &str) -> u32 {
        let prio = priority.to_string();
        let mut args = vec![
            self.fw.to_str().unwrap(),
            "--tap",
            &self.tap,
            "--mac",
            BOARD_MAC,
            "--addr",
            "192.0.2.1/24",
            "--vrid",
            "51",
            "--priority",
            &prio,
        ];
        match self.version {
            Vrrp::V2 => args.extend(["--password", "1111"]),
            Vrrp::V3 => args.extend(["--vrrp-version", "3"]),
        }
        for v in VIPS {
            args.extend(["--vip", v]);
        }
        let log = self.dir.path(log);
        let board = self.board.clone();
        self.lab.spawn(&board, &args, &log)
    }

    fn start_keepalived(&mut self, priority: u8) -> u32 {
        let conf = self.dir.path("k.conf");
        std::fs::write(
            &conf,
            keepalived_conf(&self.peer_if, priority, self.version),
        )
        .unwrap();
        let (pid, vpid) = (self.dir.path("k.pid"), self.dir.path("k.vpid"));
        let args = [
            "keepalived",
            "-P",
            "-n",
            "-l",
            "-D",
            "-f",
            conf.to_str().unwrap(),
            "-p",
            pid.to_str().unwrap(),
            "-r",
            vpid.to_str().unwrap(),
        ];
        let log = self.dir.path("keepalived.log");
        let peer = self.peer.clone();
        self.lab.spawn(&peer, &args, &log)
    }

    /// The board holds the VIP: the peer does not, and the peer's ping of
    /// it is answered (smoltcp answers ARP and ICMP echo for it).
    fn board_answers(&self, vip: &str) -> bool {
        !has_addr(&self.peer, vip)
            && Command::new("ip")
                .args([
                    "netns", "exec", &self.peer, "ping", "-c", "1", "-W", "1", vip,
                ])
                .output()
                .is_ok_and(|o| o.status.success())
    }

    fn board_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path(name)).unwrap_or_default()
    }

    /// Whether the board's last state change in `log` made it master.
    fn board_is_master(&self, log: &str) -> bool {
        self.board_log(log)
            .lines()
            .rev()
            .find(|l| l.contains(" -> "))
            .is_some_and(|l| l.contains("-> MASTER"))
    }

    /// The board's gratuitous ARPs so far: (epoch seconds, VIP).
    fn board_garps(&self) -> Vec<(f64, String)> {
        let text = std::fs::read_to_string(self.dir.path("arp.txt")).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains(&format!("{BOARD_MAC} > ff:ff:ff:ff:ff:ff")))
            .filter_map(|l| {
                // "TS MAC > ff:..., ethertype ARP (0x0806), length 42:
                //  Request who-has VIP tell VIP, length 28"
                let ts: f64 = l.split_whitespace().next()?.parse().ok()?;
                let who = l
                    .split("Request who-has ")
                    .nth(1)?
                    .split_whitespace()
                    .next()?;
                let tell = l.split(" tell ").nth(1)?.split([',', ' ']).next()?;
                (who == tell).then(|| (ts, who.to_string()))
            })
            .collect()
    }

    /// keepalived's VRRP child (killed to simulate a crash: its parent would
    /// otherwise make it resign gracefully).
    fn keepalived_vrrp_child(&self) -> u32 {
        let text = std::fs::read_to_string(self.dir.path("k.vpid")).unwrap();
        text.trim().parse().unwrap()
    }

    fn keepalived_gone(&self) -> bool {
        vrlb_tests::netns::run(&["ip", "netns", "pids", &self.peer])
            .stdout
            .is_empty()
    }

    /// keepalived crashes: the VRRP child first (its parent would make it
    /// resign gracefully), then the parent (which would respawn it).
    fn crash_keepalived(&mut self, keepalived: u32) {
        let child = self.keepalived_vrrp_child();
        let _ = Command::new("kill")
            .args(["-9", &child.to_string()])
            .status();
        self.lab.signal(keepalived, "KILL");
    }
}

fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// After a takeover at about `since` (epoch seconds): the board's GARPs
/// come in two bursts, garp_master_delay apart, each GARP_REPEAT per VIP.
fn check_garp_bursts(s: &Setup, since: f64) {
    let per_burst = GARP_REPEAT * VIPS.len();
    let garps = || -> Vec<(f64, String)> {
        s.board_garps()
            .into_iter()
            .filter(|(t, _)| *t >= since)
            .collect()
    };
    let both = wait_until(Duration::from_secs(10), || garps().len() >= 2 * per_burst);
    let seen = garps();
    assert!(
        both.is_some(),
        "{} board GARPs after the takeover, want {}: {seen:?}",
        seen.len(),
        2 * per_burst
    );
    // No more than the two bursts within their span.
    std::thread::sleep(Duration::from_millis(500));
    let seen = garps();
    assert_eq!(seen.len(), 2 * per_burst, "{seen:?}");
    let (first, second) = seen.split_at(per_burst);
    let span = |b: &[(f64, String)]| b[b.len() - 1].0 - b[0].0;
    assert!(span(first) < 0.5 && span(second) < 0.5, "{seen:?}");
    let gap = second[0].0 - first[0].0;
    assert!(
        (GARP_DELAY - 0.3..GARP_DELAY + 0.5).contains(&gap),
        "second burst {gap:.3} s after the first (garp_master_delay {GARP_DELAY} s)"
    );
    for burst in [first, second] {
        for v in VIPS {
            let n = burst.iter().filter(|(_, a)| a == v).count();
            assert_eq!(n, GARP_REPEAT, "GARPs for {v} in a burst: {burst:?}");
        }
    }
}

#[test]
fn board_and_keepalived_elect_by_priority_and_fail_over_both_ways() {
    let Some(mut s) = setup(Vrrp::V2) else { return };
    let long = Duration::from_secs(10);

    // keepalived 100 vs board 150: the board wins.
    let keepalived = s.start_keepalived(100);
    let board = s.start_board(150, "fw1.log");
    assert!(
        wait_until(long, || s.board_answers(VIP)).is_some(),
        "board never took the VIP:\n{}",
        s.board_log("fw1.log")
    );
    assert!(s.board_log("fw1.log").contains("BACKUP -> MASTER"));
    // keepalived stays backup while the board advertises.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !has_addr(&s.peer, VIP),
        "keepalived took the VIP from a higher-priority master"
    );

    // Board stops (priority 0): keepalived takes over within Skew_Time-ish.
    s.lab.signal(board, "TERM");
    let took = wait_until(long, || has_addr(&s.peer, VIP));
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(3)),
        "keepalived took {took:?} after the board resigned"
    );
    assert!(s.board_log("fw1.log").contains("MASTER -> INIT (Shutdown)"));

    // Board returns with the higher priority: it preempts keepalived.
    s.start_board(150, "fw2.log");
    assert!(
        wait_until(long, || s.board_answers(VIP)).is_some(),
        "board did not preempt:\n{}",
        s.board_log("fw2.log")
    );

    // Now the other way: keepalived restarted at 200 wins over the board.
    s.lab.signal(keepalived, "TERM");
    assert!(
        wait_until(long, || s.keepalived_gone()).is_some(),
        "keepalived did not stop"
    );
    let keepalived = s.start_keepalived(200);
    assert!(
        wait_until(long, || has_addr(&s.peer, VIP)).is_some(),
        "keepalived at 200 did not take over"
    );
    assert!(
        wait_until(long, || s
            .board_log("fw2.log")
            .contains("MASTER -> BACKUP (HigherPriority)"))
        .is_some(),
        "board did not yield:\n{}",
        s.board_log("fw2.log")
    );

    // keepalived crashes: the board takes over within Master_Down_Interval
    // (3 s + 106/256 s at priority 150) plus slack.
    std::thread::sleep(Duration::from_secs(1));
    let crashed = epoch_now();
    s.crash_keepalived(keepalived);
    // (A killed keepalived leaves its VIPs configured, so look at the board.)
    let took = wait_until(long, || s.board_is_master("fw2.log"));
    assert!(
        took.is_some_and(|t| t < Duration::from_millis(3_414 + 1_500)),
        "board took {took:?} to take over after keepalived crashed:\n{}",
        s.board_log("fw2.log")
    );

    // Its gratuitous ARPs are on the bridge, as the core times them.
    check_garp_bursts(&s, crashed);

    // The board answers for every VIP once the peer forgets the ones the
    // crash left on it.
    for v in VIPS {
        vrlb_tests::netns::run(&[
            "ip",
            "-n",
            &s.peer,
            "addr",
            "del",
            &format!("{v}/24"),
            "dev",
            &s.peer_if,
        ]);
    }
    for v in VIPS {
        assert!(
            wait_until(Duration::from_secs(3), || s.board_answers(v)).is_some(),
            "no answer from the board for {v}"
        );
    }
    let neigh = vrlb_tests::netns::in_ns(&s.peer, &["ip", "neigh", "show", VIP]);
    assert!(
        neigh.contains(BOARD_MAC),
        "the peer resolves {VIP} to the board's MAC: {neigh}"
    );
}

#[test]
fn vrrp_v3_board_and_keepalived_fail_over_both_ways() {
    let Some(mut s) = setup(Vrrp::V3) else { return };
    let long = Duration::from_secs(10);

    let _keepalived = s.start_keepalived(100);
    let board = s.start_board(150, "fw1.log");
    let started = epoch_now();
    assert!(
        wait_until(long, || s.board_answers(VIP)).is_some(),
        "board (v3) never took the VIP:\n{}",
        s.board_log("fw1.log")
    );
    check_garp_bursts(&s, started);

    // Board resigns: keepalived takes over.
    s.lab.signal(board, "TERM");
    let took = wait_until(long, || has_addr(&s.peer, VIP));
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(3)),
        "keepalived took {took:?} after the board resigned"
    );

    // Board returns: it preempts keepalived again.
    s.start_board(150, "fw2.log");
    assert!(
        wait_until(long, || s.board_answers(VIP)).is_some(),
        "board (v3) did not preempt:\n{}",
        s.board_log("fw2.log")
    );
    assert!(s.board_log("fw2.log").contains("BACKUP -> MASTER"));
}
