//! The service manager's notification protocol (sd_notify(3)), for a unit
//! with `Type=notify` (packaging/vrlb.service): `READY=1` once the daemon
//! runs, `RELOADING=1` then `READY=1` around a SIGHUP reload, `STOPPING=1`
//! at shutdown, and, when the unit sets `WatchdogSec=`, `WATCHDOG=1` from
//! the event loop at half that interval. A loop that stops turning (a hung
//! vrlb) stops pinging, and systemd kills it: its VIPs' anycast device goes
//! with the process, so the route is withdrawn (docs/anycast.md).
//! Outside systemd (no `NOTIFY_SOCKET`) it does nothing. Owns only the
//! watchdog's schedule; the `sd-notify` crate speaks the protocol.

use log::warn;
use sd_notify::NotifyState;
use vrlb_core::time::{Duration, Instant};

/// What the manager asked for, read once at start.
pub struct Systemd {
    /// Half of `WATCHDOG_USEC` (sd_watchdog_enabled(3) advises pinging
    /// at least that often).
    ping_every: Option<Duration>,
    next_ping: Option<Instant>,
    /// A send failed and was logged: later failures are not.
    failed: bool,
}

impl Systemd {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (a
    /// watchdog meant for another process is not ours).
    pub fn from_env() -> Systemd {
        let ping_every = sd_notify::watchdog_enabled()
            .filter(|d| !d.is_zero())
            .map(|d| Duration::from_micros(d.as_micros() as u64 / 2));
        Systemd {
            ping_every,
            next_ping: None,
            failed: false,
        }
    }

    /// The daemon runs: `READY=1` with a status line, and the watchdog's
    /// first ping is scheduled.
    pub fn ready(&mut self, now: Instant, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
        self.next_ping = self.ping_every.map(|d| now + d);
    }

    /// A reload starts (systemd 253 and later want the monotonic time
    /// with it, to tell this reload from an earlier one).
    pub fn reloading(&mut self) {
        match NotifyState::monotonic_usec_now() {
            Ok(t) => self.send(&[NotifyState::Reloading, t]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    /// A reload ended (applied or refused): ready again.
    pub fn reloaded(&mut self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// Shutdown starts.
    pub fn stopping(&mut self) {
        self.send(&[NotifyState::Stopping]);
    }

    /// When the loop must wake to ping the watchdog.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_ping
    }

    /// Pings the watchdog if it is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let (Some(due), Some(every)) = (self.next_ping, self.ping_every) else {
            return;
        };
        if due <= now {
            self.send(&[NotifyState::Watchdog]);
            self.next_ping = Some(now + every);
        }
    }

    fn send(&mut self, states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(states) {
            if !self.failed {
                warn!("systemd notification failed (later failures are not logged): {e}");
                self.failed = true;
            }
        }
    }
}

/// The variables a child must not inherit: a script that spoke for vrlb
/// could tell systemd it is ready or alive.
pub const CHILD_ENV_REMOVE: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];
