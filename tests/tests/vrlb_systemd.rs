//! `vrlb run` under systemd (`Type=notify`, sd_notify(3)): the test plays
//! the service manager, a datagram socket named by `NOTIFY_SOCKET`.
//!
//! - `READY=1` (with a `STATUS=` line) once the daemon runs.
//! - With `WATCHDOG_USEC`, `WATCHDOG=1` at half that interval, never a
//!   whole interval apart (systemd would kill it then); none when
//!   `WATCHDOG_PID` names another process.
//! - SIGHUP: `RELOADING=1` with `MONOTONIC_USEC=`, then `READY=1`.
//! - SIGTERM: `STOPPING=1`, and the daemon exits 0.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use vrlb_tests::vrrp_lab::{Instance, Kind, Running, VrrpLab, log};

const LONG: Duration = Duration::from_secs(12);
/// `WatchdogSec=400ms`: pings due every 200 ms.
const WATCHDOG: Duration = Duration::from_millis(400);

/// The manager's end: every message, with when it came.
struct Manager {
    socket: UnixDatagram,
    messages: Vec<(Instant, String)>,
}

impl Manager {
    fn bind(path: &Path) -> Manager {
        let socket = UnixDatagram::bind(path).expect("notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Manager {
            socket,
            messages: Vec::new(),
        }
    }

    /// Receives until a message containing `text` comes (its index) or
    /// `limit` passes.
    fn wait_for(&mut self, text: &str, limit: Duration, d: &Running) -> usize {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(i) = self.messages.iter().position(|(_, m)| m.contains(text)) {
                return i;
            }
            assert!(
                start.elapsed() < limit,
                "no {text:?} within {limit:?}; got {:?}\nlog:\n{}",
                self.messages,
                log(d)
            );
            if let Ok(n) = self.socket.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.messages.push((Instant::now(), m));
            }
        }
    }

    /// Receives for `span`, then forgets everything received before.
    fn collect(&mut self, span: Duration) -> Vec<(Instant, String)> {
        self.messages.clear();
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while start.elapsed() < span {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.messages.push((Instant::now(), m));
            }
        }
        std::mem::take(&mut self.messages)
    }
}

fn instance() -> Instance<'static> {
    Instance {
        name: "VI_1",
        vrid: 51,
        priority: 100,
        version: 2,
        advert_int: "1",
        password: None,
        vips: vec!["192.0.2.240/24".into()],
        nopreempt: false,
        unicast: None,
    }
}

/// vrlb on director 0 under a manager at the lab's notify socket, with
/// the watchdog asked for and `extra` variables.
fn start_managed(lab: &mut VrrpLab, extra: &[&str]) -> (Running, Manager) {
    let sock = lab.dir.path("notify.sock");
    let manager = Manager::bind(&sock);
    let notify = format!("NOTIFY_SOCKET={}", sock.display());
    let usec = format!("WATCHDOG_USEC={}", WATCHDOG.as_micros());
    let conf = instance().conf(&lab.ifs[0].clone());
    let mut wrap = vec!["env", notify.as_str(), usec.as_str()];
    wrap.extend_from_slice(extra);
    let d = lab.start_wrapped(Kind::Vrlb, 0, &conf, &wrap, &[]);
    (d, manager)
}

#[test]
fn systemd_hears_ready_reload_stopping_and_watchdog_pings() {
    let Some(mut lab) = VrrpLab::new(&["env"]) else {
        return;
    };
    let (d, mut manager) = start_managed(&mut lab, &[]);

    let ready = manager.wait_for("READY=1", LONG, &d);
    let (_, text) = &manager.messages[ready];
    assert!(
        text.contains("STATUS=1 instance(s) from "),
        "status line: {text:?}"
    );

    // Pings for 2 s: at least one per 200 ms slot but a few, and no gap
    // as long as the watchdog's interval.
    let pings: Vec<Instant> = manager
        .collect(Duration::from_secs(2))
        .into_iter()
        .filter(|(_, m)| m.trim_end() == "WATCHDOG=1")
        .map(|(t, _)| t)
        .collect();
    assert!(pings.len() >= 6, "{} pings in 2 s", pings.len());
    assert!(pings.len() <= 12, "{} pings in 2 s", pings.len());
    let widest = pings.windows(2).map(|w| w[1] - w[0]).max().expect("pings");
    assert!(widest < WATCHDOG, "pings {widest:?} apart");

    d.hup();
    let reloading = manager.wait_for("RELOADING=1", LONG, &d);
    assert!(
        manager.messages[reloading].1.contains("MONOTONIC_USEC="),
        "{:?}",
        manager.messages[reloading]
    );
    manager.messages.drain(..=reloading);
    manager.wait_for("READY=1", LONG, &d);

    let status = lab.stop(&d);
    manager.wait_for("STOPPING=1", LONG, &d);
    assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
}

#[test]
fn a_watchdog_meant_for_another_process_is_not_pinged() {
    let Some(mut lab) = VrrpLab::new(&["env"]) else {
        return;
    };
    // pid 1 is never the daemon's.
    let (d, mut manager) = start_managed(&mut lab, &["WATCHDOG_PID=1"]);
    manager.wait_for("READY=1", LONG, &d);
    let pings = manager
        .collect(Duration::from_secs(1))
        .into_iter()
        .filter(|(_, m)| m.contains("WATCHDOG=1"))
        .count();
    assert_eq!(pings, 0);
    lab.stop(&d);
}
