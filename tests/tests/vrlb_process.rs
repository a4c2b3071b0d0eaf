//! `vrlb run` as a process (issue 6, Build 3): `--syslog` and SIGINT.
//!
//! - With `--syslog` every log line goes to the syslog socket `/dev/log`
//!   (RFC 3164, facility daemon, tagged `vrlb[PID]`, the level as the
//!   severity) and none to stderr. There is no syslog daemon in a
//!   namespace, so the daemon runs in a mount namespace of its own whose
//!   `/dev` is a tmpfs with the few device nodes it needs and, at
//!   `/dev/log`, a bind mount of a datagram socket this test listens on.
//! - Without a syslog socket (the same `/dev` without `log`) it says so on
//!   stderr once and logs there.
//! - SIGINT shuts down as SIGTERM does: priority 0 (the peer takes over
//!   within Skew_Time), every VIP removed, exit status 0.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use vrlb_tests::vrrp_lab::{Instance, Kind, VrrpLab, expect, log, skew, state, wait_state};

const LONG: Duration = Duration::from_secs(12);
const VIP: &str = "192.0.2.240";
/// The handover after SIGINT: Skew_Time plus this (as for SIGTERM in
/// vrlb_pair.rs).
const SLACK: Duration = Duration::from_millis(200);

/// A mount namespace whose `/dev` holds null, zero, random, urandom and,
/// when `socket` is given, `log` bound to it; then exec "$@".
fn private_dev(socket: Option<&Path>) -> String {
    let mut s = String::from(
        "mount -t tmpfs -o mode=755 vrlbtest /dev && \
         mknod -m 666 /dev/null c 1 3 && mknod -m 666 /dev/zero c 1 5 && \
         mknod -m 444 /dev/random c 1 8 && mknod -m 444 /dev/urandom c 1 9",
    );
    if let Some(p) = socket {
        s.push_str(&format!(
            " && touch /dev/log && mount --bind {} /dev/log",
            p.display()
        ));
    }
    s.push_str(" && exec \"$@\"");
    s
}

/// Messages received so far on the syslog socket.
struct Syslog {
    socket: UnixDatagram,
    messages: Vec<String>,
}

impl Syslog {
    fn bind(path: &Path) -> Syslog {
        let socket = UnixDatagram::bind(path).expect("syslog socket");
        socket.set_nonblocking(true).unwrap();
        Syslog {
            socket,
            messages: Vec::new(),
        }
    }

    fn drain(&mut self) -> &[String] {
        let mut buf = [0u8; 8192];
        while let Ok(n) = self.socket.recv(&mut buf) {
            self.messages
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        &self.messages
    }

    /// Whether a message has syslog priority `pri` (facility daemon = 3,
    /// so 24 + severity), the tag of `pid`, and `text`.
    fn has(&mut self, pri: u8, pid: u32, text: &str) -> bool {
        let head = format!("<{pri}>");
        let tag = format!(" vrlb[{pid}]: ");
        self.drain()
            .iter()
            .any(|m| m.starts_with(&head) && m.contains(&tag) && m.contains(text))
    }
}

const INFO: u8 = 24 + 6;
const WARNING: u8 = 24 + 4;

#[test]
fn syslog_gets_every_line_and_sigint_shuts_down_like_sigterm() {
    let Some(mut lab) = VrrpLab::new(&["unshare", "mount", "mknod"]) else {
        return;
    };
    let sock = lab.dir.path("log.sock");
    let mut syslog = Syslog::bind(&sock);
    let base = Instance {
        name: "VI_1",
        vrid: 51,
        priority: 100,
        version: 2,
        advert_int: "1",
        password: Some("secret"),
        vips: vec![format!("{VIP}/24")],
        nopreempt: false,
        unicast: None,
    };

    // Director 1: --syslog, but no syslog socket.
    let no_log = private_dev(None);
    let wrap_none = ["unshare", "--mount", "sh", "-c", no_log.as_str(), "sh"];
    let d1 = lab.start_wrapped(
        Kind::Vrlb,
        1,
        &base.conf(&lab.ifs[1].clone()),
        &wrap_none,
        &["--syslog"],
    );
    expect(LONG, "director 1 falls back to stderr", &[&d1], || {
        log(&d1).contains("vrlb started")
    });
    let text = log(&d1);
    assert_eq!(
        text.matches("vrlb: syslog unavailable (").count(),
        1,
        "{text}"
    );
    assert!(text.contains("): logging to stderr"), "{text}");

    // Director 0: --syslog with /dev/log, and a second instance on an
    // interface that does not exist (a warning).
    let missing = lab.lab.name("x0");
    let with_log = private_dev(Some(&sock));
    let wrap_log = ["unshare", "--mount", "sh", "-c", with_log.as_str(), "sh"];
    let c0 = format!(
        "{}{}",
        Instance {
            priority: 150,
            ..base.clone()
        }
        .conf(&lab.ifs[0].clone()),
        Instance {
            name: "VI_2",
            vrid: 52,
            vips: vec!["198.51.100.240/24".into()],
            ..base.clone()
        }
        .conf(&missing)
    );
    let d0 = lab.start_wrapped(Kind::Vrlb, 0, &c0, &wrap_log, &["--syslog"]);
    let pid = d0.pid;
    expect(LONG, "director 0 master, by syslog", &[&d0, &d1], || {
        syslog.has(INFO, pid, "VI_1: BACKUP -> MASTER (MasterDown)")
    });
    assert!(syslog.has(INFO, pid, "vrlb started: 2 instance(s) from "));
    assert!(
        syslog.has(
            WARNING,
            pid,
            &format!("VI_2: interface {missing} does not exist: FAULT until it appears")
        ),
        "{:?}",
        syslog.drain()
    );
    expect(LONG, "director 1 backup, VIP on director 0", &[&d1], || {
        state(&d1, "VI_1").as_deref() == Some("BACKUP") && lab.holds(0, VIP)
    });

    // SIGINT: as SIGTERM.
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let status = lab.lab.signal(pid, "INT");
    let stopped_in = start.elapsed();
    let bound = skew(100, Duration::from_secs(1)) + SLACK;
    let took = wait_state(&d1, "VI_1", "MASTER", LONG).map(|t| t + stopped_in);
    eprintln!("SIGINT handover: {took:?} (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "director 1 took {took:?} after SIGINT (bound {bound:?}):\n{}",
        log(&d1)
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status after SIGINT: {status:?}"
    );
    assert!(!lab.holds(0, VIP), "a vrlb stopped by SIGINT left its VIP");
    for line in [
        "signal 2: shutting down",
        "VI_1: MASTER -> INIT (Shutdown)",
        "vrlb stopped",
    ] {
        assert!(syslog.has(INFO, pid, line), "{line}: {:?}", syslog.drain());
    }
    // Nothing went to stderr.
    let stderr = log(&d0);
    assert!(
        !stderr.contains("INFO") && !stderr.contains("WARN") && !stderr.contains("vrlb"),
        "director 0 wrote to stderr:\n{stderr}"
    );
    expect(LONG, "the VIP on director 1", &[&d1], || lab.holds(1, VIP));
}
