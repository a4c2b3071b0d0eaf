//! A `vrrp_track_process`: whether enough matching processes run, with
//! keepalived's `quorum`, `quorum_max`, `fork_delay` and
//! `terminate_delay` (keepalived.conf(5) "VRRP track processes").
//!
//! The driver watches the processes and reports how many match; this
//! decides when the tracked process counts as up or down. Owns no process
//! table and no clock.

use crate::time::{Duration, Instant};

/// The state of one tracked process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessTracker {
    quorum: u32,
    quorum_max: u32,
    fork_delay: Duration,
    terminate_delay: Duration,
    /// Matching processes last reported; `None` before the first report.
    count: Option<u32>,
    up: bool,
    /// When the pending change of state takes effect.
    change_at: Option<Instant>,
}

impl ProcessTracker {
    /// Up while `quorum..=quorum_max` matching processes run; a gain of
    /// quorum counts after `fork_delay`, a loss after `terminate_delay`
    /// (a process that restarts within them changes nothing). Until the
    /// driver's first count it is up, so that one added by a reload does
    /// not fault its instances before the driver has counted (it does so
    /// right after each build, and at start before `Start`).
    pub fn new(
        quorum: u32,
        quorum_max: u32,
        fork_delay: Duration,
        terminate_delay: Duration,
    ) -> Self {
        ProcessTracker {
            quorum,
            quorum_max,
            fork_delay,
            terminate_delay,
            count: None,
            up: true,
            change_at: None,
        }
    }

    fn passes(&self, count: u32) -> bool {
        (self.quorum..=self.quorum_max).contains(&count)
    }

    /// Whether `other` has the same settings (so a reload keeps this one
    /// untouched).
    pub fn same_settings(&self, other: &ProcessTracker) -> bool {
        (
            self.quorum,
            self.quorum_max,
            self.fork_delay,
            self.terminate_delay,
        ) == (
            other.quorum,
            other.quorum_max,
            other.fork_delay,
            other.terminate_delay,
        )
    }

    /// Takes `new`'s settings after a reload, keeping the count and the
    /// state; a state the new quorum contradicts changes after the new
    /// delay, as if the count had just changed. Returns the new state when
    /// it flipped at once.
    pub fn reconfigure(&mut self, now: Instant, new: &ProcessTracker) -> Option<bool> {
        let Some(count) = self.count else {
            // Never counted: nothing to keep.
            *self = new.clone();
            return None;
        };
        let up = self.up;
        *self = new.clone();
        self.up = up;
        self.count = Some(count);
        self.evaluate(now)
    }

    /// Whether enough processes run (delays served).
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The matching processes last reported.
    pub fn count(&self) -> Option<u32> {
        self.count
    }

    /// When a pending change takes effect, if one is pending.
    pub fn deadline(&self) -> Instant {
        self.change_at.unwrap_or(Instant::MAX)
    }

    /// The driver counted `count` matching processes at `now`. The first
    /// count (the driver's scan at start) decides at once; later ones
    /// after the delays. Returns the new state when it flipped now.
    pub fn report(&mut self, now: Instant, count: u32) -> Option<bool> {
        let first = self.count.is_none();
        self.count = Some(count);
        if first {
            self.change_at = None;
            let up = self.passes(count);
            return (up != self.up).then(|| {
                self.up = up;
                up
            });
        }
        self.evaluate(now)
    }

    /// Compares the count with the state: starts, keeps or cancels the
    /// delay of a change, or changes now when the delay is zero.
    fn evaluate(&mut self, now: Instant) -> Option<bool> {
        let want = self.passes(self.count.unwrap_or(0));
        if want == self.up {
            self.change_at = None;
            return None;
        }
        let delay = if want {
            self.fork_delay
        } else {
            self.terminate_delay
        };
        if delay == Duration::ZERO {
            self.change_at = None;
            self.up = want;
            return Some(want);
        }
        // A change already pending keeps its deadline: the count moved
        // again, but on the same side of the quorum.
        self.change_at.get_or_insert(now + delay);
        None
    }

    /// At the deadline: the new state when the pending change took
    /// effect.
    pub fn timeout(&mut self, now: Instant) -> Option<bool> {
        match self.change_at {
            Some(at) if now >= at => {
                self.change_at = None;
                self.up = !self.up;
                Some(self.up)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn the_first_count_decides_at_once_and_later_ones_after_the_delays() {
        let mut t = ProcessTracker::new(
            2,
            u32::MAX,
            Duration::from_millis(500),
            Duration::from_millis(300),
        );
        assert!(t.is_up(), "up until counted");
        assert_eq!(
            t.report(at(0), 1),
            Some(false),
            "the start scan is not delayed"
        );
        assert_eq!(t.report(at(1), 2), None, "quorum: fork_delay runs");
        assert_eq!(t.timeout(at(501)), Some(true));
        assert_eq!(
            t.report(at(1000), 1),
            None,
            "below quorum: terminate_delay runs"
        );
        assert_eq!(t.deadline(), at(1300));
        assert_eq!(
            t.report(at(1100), 0),
            None,
            "still below: the deadline stays"
        );
        assert_eq!(t.deadline(), at(1300));
        assert_eq!(t.timeout(at(1299)), None);
        assert_eq!(t.timeout(at(1300)), Some(false));
        assert_eq!(t.report(at(2000), 3), None, "quorum again: fork_delay runs");
        assert_eq!(t.deadline(), at(2500));
        assert_eq!(t.report(at(2100), 1), None, "lost before the delay ended");
        assert_eq!(t.deadline(), Instant::MAX, "nothing changed");
        assert!(!t.is_up());
    }

    #[test]
    fn quorum_max_bounds_the_count_and_zero_delays_act_at_once() {
        // quorum_max 0: up only while no matching process runs.
        let mut t = ProcessTracker::new(0, 0, Duration::ZERO, Duration::ZERO);
        assert_eq!(t.report(at(0), 0), None);
        assert_eq!(t.report(at(10), 1), Some(false));
        assert_eq!(t.report(at(20), 0), Some(true));
        let mut one = ProcessTracker::new(1, 1, Duration::ZERO, Duration::ZERO);
        assert_eq!(one.report(at(0), 2), Some(false), "two is too many");
        assert_eq!(one.report(at(5), 1), Some(true));
    }

    #[test]
    fn a_reload_keeps_the_state_and_applies_the_new_quorum_after_its_delay() {
        let mut t = ProcessTracker::new(1, u32::MAX, Duration::ZERO, Duration::ZERO);
        assert_eq!(t.report(at(0), 2), None);
        let same = t.clone();
        assert!(t.same_settings(&same));
        let stricter = ProcessTracker::new(3, u32::MAX, Duration::ZERO, Duration::from_secs(1));
        assert!(!t.same_settings(&stricter));
        assert_eq!(
            t.reconfigure(at(100), &stricter),
            None,
            "terminate_delay first"
        );
        assert!(t.is_up());
        assert_eq!(t.count(), Some(2));
        assert_eq!(t.timeout(at(1100)), Some(false));
        let mut fresh = ProcessTracker::new(1, u32::MAX, Duration::ZERO, Duration::ZERO);
        assert_eq!(fresh.reconfigure(at(0), &stricter), None);
        assert_eq!(
            fresh.report(at(1), 2),
            Some(false),
            "never counted: still the first count"
        );
    }
}
