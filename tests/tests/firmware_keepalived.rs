//! The firmware-style node (vrlb-core on smoltcp over a TAP device) and
//! Debian's keepalived on one bridge: they elect a master by priority and
//! fail over both ways.
//!
//! Topology (one namespace per box, documentation addresses):
//!   [board: vrlb-fw on tap0 192.0.2.1] -- br0 -- veth -- [keepalived 192.0.2.2]
//! The TAP device and the bridge live in the board's namespace; vrlb-fw is
//! the only stack on the TAP (the kernel side has no address).

use std::time::Duration;

use vrlb_tests::netns::{Lab, TempDir, binary, has_addr, wait_until};

const VIP: &str = "192.0.2.240";

fn keepalived_conf(iface: &str, priority: u8) -> String {
    format!(
        "vrrp_instance V {{\n  state BACKUP\n  interface {iface}\n  virtual_router_id 51\n  priority {priority}\n  advert_int 1\n  authentication {{\n    auth_type PASS\n    auth_pass 1111\n  }}\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

struct Setup {
    lab: Lab,
    dir: TempDir,
    board: String,
    peer: String,
    peer_if: String,
    tap: String,
}

fn setup() -> Option<Setup> {
    let mut lab = Lab::new(&["keepalived"])?;
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
    Some(Setup {
        lab,
        dir,
        board,
        peer,
        peer_if: vk,
        tap,
    })
}

impl Setup {
    fn start_board(&mut self, priority: u8, log: &str) -> u32 {
        let fw = binary("vrlb-fw");
        let prio = priority.to_string();
        let args = [
            fw.to_str().unwrap(),
            "--tap",
            &self.tap,
            "--addr",
            "192.0.2.1/24",
            "--vrid",
            "51",
            "--priority",
            &prio,
            "--password",
            "1111",
            "--vip",
            VIP,
        ];
        let log = self.dir.path(log);
        self.lab.spawn(&self.board, &args, &log)
    }

    fn start_keepalived(&mut self, priority: u8) -> u32 {
        let conf = self.dir.path("k.conf");
        std::fs::write(&conf, keepalived_conf(&self.peer_if, priority)).unwrap();
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
        self.lab.spawn(&self.peer, &args, &log)
    }

    /// The board holds the VIP: it answers ARP and ping for it from the peer.
    fn board_answers_vip(&self) -> bool {
        !has_addr(&self.peer, VIP)
            && std::process::Command::new("ip")
                .args([
                    "netns", "exec", &self.peer, "ping", "-c", "1", "-W", "1", VIP,
                ])
                .output()
                .is_ok_and(|o| o.status.success())
    }

    fn board_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path(name)).unwrap_or_default()
    }

    /// keepalived's VRRP child (killed to simulate a crash: its parent would
    /// otherwise make it resign gracefully).
    fn keepalived_vrrp_child(&self) -> u32 {
        let text = std::fs::read_to_string(self.dir.path("k.vpid")).unwrap();
        text.trim().parse().unwrap()
    }
}

#[test]
fn board_and_keepalived_elect_by_priority_and_fail_over_both_ways() {
    let Some(mut s) = setup() else { return };
    let long = Duration::from_secs(10);

    // keepalived 100 vs board 150: the board wins.
    let keepalived = s.start_keepalived(100);
    let board = s.start_board(150, "fw1.log");
    assert!(
        wait_until(long, || s.board_answers_vip()).is_some(),
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
        wait_until(long, || s.board_answers_vip()).is_some(),
        "board did not preempt:\n{}",
        s.board_log("fw2.log")
    );

    // Now the other way: keepalived restarted at 200 wins over the board.
    s.lab.signal(keepalived, "TERM");
    let gone = || {
        vrlb_tests::netns::run(&["ip", "netns", "pids", &s.peer])
            .stdout
            .is_empty()
    };
    assert!(wait_until(long, gone).is_some(), "keepalived did not stop");
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

    // keepalived crashes: the VRRP child first (its parent would make it
    // resign gracefully), then the parent (which would respawn it). The
    // board takes over within Master_Down_Interval (3 s + 106/256 s at
    // priority 150) plus slack.
    let child = s.keepalived_vrrp_child();
    let _ = std::process::Command::new("kill")
        .args(["-9", &child.to_string()])
        .status();
    s.lab.signal(keepalived, "KILL");
    // (A killed keepalived leaves its VIP configured, so look at the board.)
    let took = wait_until(long, || {
        let log = s.board_log("fw2.log");
        log.lines()
            .rev()
            .find(|l| l.contains(" -> "))
            .is_some_and(|l| l.contains("-> MASTER"))
    });
    assert!(
        took.is_some_and(|t| t < Duration::from_millis(3_414 + 1_500)),
        "board took {took:?} to take over after keepalived crashed:\n{}",
        s.board_log("fw2.log")
    );
}
