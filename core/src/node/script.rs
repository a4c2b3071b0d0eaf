//! A `vrrp_script`: when to run it and what its results mean, with
//! keepalived's `rise` and `fall` (keepalived.conf(5) "VRRP script").
//!
//! The driver runs the command, kills it at the timeout and reports the
//! outcome; this decides when the next run is due and when the script's
//! state flips. Owns no process and no clock.

use crate::time::{Duration, Instant};

/// The state of one tracking script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptTracker {
    interval: Duration,
    timeout: Duration,
    rise: u32,
    fall: u32,
    up: bool,
    /// Consecutive results against the current state.
    streak: u32,
    next_run: Instant,
    running: bool,
    enabled: bool,
}

impl ScriptTracker {
    /// A tracker for a script run every `interval`, killed after `timeout`,
    /// up after `rise` successes and down after `fall` failures in a row.
    /// It starts up unless `init_fail`. A disabled script (no command) never
    /// runs and stays up.
    pub fn new(
        interval: Duration,
        timeout: Duration,
        rise: u32,
        fall: u32,
        init_fail: bool,
        enabled: bool,
    ) -> Self {
        ScriptTracker {
            interval: interval.max(Duration::from_millis(1)),
            timeout,
            rise: rise.max(1),
            fall: fall.max(1),
            up: !init_fail || !enabled,
            streak: 0,
            next_run: Instant::ZERO,
            running: false,
            enabled,
        }
    }

    /// Whether `other` has the same settings (so a reload keeps this one).
    pub fn same_settings(&self, other: &ScriptTracker) -> bool {
        (
            self.interval,
            self.timeout,
            self.rise,
            self.fall,
            self.enabled,
        ) == (
            other.interval,
            other.timeout,
            other.rise,
            other.fall,
            other.enabled,
        )
    }

    /// Takes `new`'s settings after a reload, keeping whether the script
    /// is up so a failing script keeps its weight penalty (no flap). A run
    /// in flight still reports; otherwise the next run is due at `now`
    /// (timing starts over). A script that had no command (or a
    /// placeholder for a block read later) starts over as `new`.
    pub fn reconfigure(&mut self, now: Instant, new: &ScriptTracker) {
        if !self.enabled || !new.enabled {
            *self = new.clone();
            self.start(now);
            return;
        }
        let (up, streak, running) = (self.up, self.streak, self.running);
        *self = new.clone();
        self.up = up;
        // A streak already long enough for the new rise/fall decides at
        // the next result.
        let needed = if up { self.fall } else { self.rise };
        self.streak = streak.min(needed - 1);
        self.running = running;
        self.next_run = now;
    }

    /// Whether the script is up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// How long a run may take before the driver kills it.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The next run, if one is due later.
    pub fn deadline(&self) -> Instant {
        if !self.enabled || self.running {
            Instant::MAX
        } else {
            self.next_run
        }
    }

    /// Starts the schedule at `now`: the first run is due at once.
    pub fn start(&mut self, now: Instant) {
        self.next_run = now;
        self.running = false;
    }

    /// At the deadline: true when the driver must start a run now.
    pub fn due(&mut self, now: Instant) -> bool {
        if !self.enabled || self.running || now < self.next_run {
            return false;
        }
        self.running = true;
        true
    }

    /// A run ended; returns the new state when it flipped.
    pub fn result(&mut self, now: Instant, success: bool) -> Option<bool> {
        if !self.running {
            // A result nobody asked for (after a reload, say): ignore it.
            return None;
        }
        self.running = false;
        self.next_run = now + self.interval;
        if success == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if success { self.rise } else { self.fall };
        if self.streak >= needed {
            self.up = success;
            self.streak = 0;
            return Some(success);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &mut ScriptTracker, now: u64, ok: bool) -> Option<bool> {
        let now = Instant::from_secs(now);
        assert!(t.due(now), "a run is due at {now:?}");
        t.result(now, ok)
    }

    #[test]
    fn fall_and_rise_need_consecutive_results() {
        let mut t = ScriptTracker::new(
            Duration::from_secs(2),
            Duration::from_secs(1),
            2,
            3,
            false,
            true,
        );
        t.start(Instant::ZERO);
        assert!(t.is_up());
        assert_eq!(run(&mut t, 0, false), None);
        assert_eq!(run(&mut t, 2, false), None);
        assert_eq!(run(&mut t, 4, true), None, "a success resets the streak");
        assert_eq!(run(&mut t, 6, false), None);
        assert_eq!(run(&mut t, 8, false), None);
        assert_eq!(run(&mut t, 10, false), Some(false));
        assert_eq!(run(&mut t, 12, true), None);
        assert_eq!(run(&mut t, 14, true), Some(true));
        assert_eq!(t.deadline(), Instant::from_secs(16));
    }

    #[test]
    fn no_second_run_while_one_is_running() {
        let mut t = ScriptTracker::new(
            Duration::from_secs(1),
            Duration::from_secs(1),
            1,
            1,
            true,
            true,
        );
        t.start(Instant::ZERO);
        assert!(!t.is_up(), "init_fail starts down");
        assert!(t.due(Instant::ZERO));
        assert!(!t.due(Instant::from_secs(5)));
        assert_eq!(t.deadline(), Instant::MAX);
        assert_eq!(t.result(Instant::from_secs(5), true), Some(true));
        assert_eq!(
            t.result(Instant::from_secs(5), false),
            None,
            "unsolicited results are ignored"
        );
    }

    #[test]
    fn reconfigure_keeps_the_state_and_restarts_the_timing() {
        let tracker = |interval| {
            ScriptTracker::new(
                Duration::from_secs(interval),
                Duration::from_secs(1),
                2,
                2,
                false,
                true,
            )
        };
        let mut t = tracker(2);
        t.start(Instant::ZERO);
        run(&mut t, 0, false);
        assert_eq!(run(&mut t, 2, false), Some(false));
        assert_eq!(run(&mut t, 4, true), None, "one success of two");
        t.reconfigure(Instant::from_secs(5), &tracker(10));
        assert!(!t.is_up(), "still failing: its penalty stays");
        assert_eq!(t.deadline(), Instant::from_secs(5), "runs again at once");
        assert_eq!(run(&mut t, 5, true), Some(true), "the streak was kept");
        assert_eq!(t.deadline(), Instant::from_secs(15), "the new interval");
        // A run in flight still reports.
        assert!(t.due(Instant::from_secs(15)));
        t.reconfigure(Instant::from_secs(16), &tracker(3));
        assert_eq!(t.deadline(), Instant::MAX);
        assert_eq!(t.result(Instant::from_secs(17), false), None);
        assert_eq!(t.deadline(), Instant::from_secs(20));
    }

    #[test]
    fn disabled_script_never_runs_and_stays_up() {
        let mut t = ScriptTracker::new(
            Duration::from_secs(1),
            Duration::from_secs(1),
            1,
            1,
            true,
            false,
        );
        t.start(Instant::ZERO);
        assert!(t.is_up());
        assert!(!t.due(Instant::from_secs(10)));
    }
}
