//! Receive coalescing for bursts of adverts. A backup of many instances
//! hears their masters' adverts in bursts (a master sends every advert
//! that falls due together), and woken for each one or two as they
//! trickle in it spends more on wake-ups than on the adverts: at 1000
//! instances it woke about 500 times a second, and `perf` put 40 % of its
//! samples in the context switch. So when a VRRP read follows the previous
//! one closely, the loop pauses briefly before it polls again, and the
//! rest of the burst is read in a few full batches.
//!
//! A lone advert is never delayed: the pause starts only after a read, and
//! only after a read close to the one before. The pause is a thousandth of
//! the shortest advert interval among the instances (at most 1 ms): an
//! advert read that much later moves its Master_Down timer or a takeover
//! by a thousandth of the interval, well inside the slack of the timers
//! themselves. Below [`MIN_PAUSE`] (adverts under 50 ms) there is no pause.
//!
//! Owns the decision only; the event loop sleeps.

use vrlb_core::time::{Duration, Instant};

/// The longest pause.
const MAX_PAUSE: Duration = Duration::from_millis(1);
/// Shorter pauses are not worth a timer (the kernel's default timer
/// slack is 50 us).
const MIN_PAUSE: Duration = Duration::from_micros(50);

/// When to pause before the next poll.
#[derive(Debug, Clone, Default)]
pub struct Holdoff {
    /// Zero: never.
    pause: Duration,
    last_read: Option<Instant>,
    due: Option<Instant>,
}

impl Holdoff {
    /// Sizes the pause from the shortest advert interval of any instance
    /// (`None`: no instances, no pause).
    pub fn set_shortest_interval(&mut self, interval: Option<Duration>) {
        let pause = interval.map_or(Duration::ZERO, |i| i.div(1000).min(MAX_PAUSE));
        self.pause = if pause < MIN_PAUSE {
            Duration::ZERO
        } else {
            pause
        };
        if self.pause == Duration::ZERO {
            self.due = None;
        }
    }

    /// A read at `now` returned adverts. If the read before was within two
    /// pauses of it, a burst is arriving: pause before the next poll.
    pub fn read(&mut self, now: Instant) {
        if self.pause == Duration::ZERO {
            return;
        }
        if self
            .last_read
            .is_some_and(|last| now.saturating_duration_since(last) <= self.pause + self.pause)
        {
            self.due = Some(now + self.pause);
        }
        self.last_read = Some(now);
    }

    /// Until when to sleep before the next poll, if at all; asks once.
    pub fn take(&mut self) -> Option<Instant> {
        self.due.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(us: u64) -> Instant {
        Instant::from_micros(us)
    }

    fn one_second() -> Holdoff {
        let mut h = Holdoff::default();
        h.set_shortest_interval(Some(Duration::from_secs(1)));
        h
    }

    /// The pause after two reads 10 us apart, with `interval` the
    /// shortest advert interval.
    fn pause_after_a_burst(interval: Option<Duration>) -> Option<u64> {
        let mut h = Holdoff::default();
        h.set_shortest_interval(interval);
        h.read(at(0));
        h.read(at(10));
        h.take().map(|until| until.as_micros() - 10)
    }

    #[test]
    fn the_pause_is_a_thousandth_of_the_shortest_interval_capped_and_floored() {
        let pause = |ms| pause_after_a_burst(Some(Duration::from_millis(ms)));
        assert_eq!(pause(3_000), Some(MAX_PAUSE.as_micros()));
        assert_eq!(pause(100), Some(100));
        assert_eq!(pause(50), Some(50));
        assert_eq!(pause(10), None);
        assert_eq!(pause_after_a_burst(None), None);
        assert_eq!(Holdoff::default().take(), None);
    }

    #[test]
    fn a_lone_advert_is_never_held() {
        let mut h = one_second();
        for k in 0..5 {
            h.read(at(k * 1_000_000));
            assert_eq!(h.take(), None);
        }
    }

    #[test]
    fn a_read_close_after_another_pauses_once() {
        let mut h = one_second();
        h.read(at(1_000_000));
        assert_eq!(h.take(), None);
        h.read(at(1_000_020));
        assert_eq!(h.take(), Some(at(1_001_020)));
        assert_eq!(h.take(), None, "asked once");
        // Read again after the pause: still in the burst, so again.
        h.read(at(1_001_100));
        assert_eq!(h.take(), Some(at(1_002_100)));
        // The burst is over: the next read is a lone one.
        h.read(at(1_500_000));
        assert_eq!(h.take(), None);
    }

    #[test]
    fn short_intervals_never_pause_and_drop_a_pending_one() {
        let mut h = one_second();
        h.read(at(0));
        h.read(at(10));
        h.set_shortest_interval(Some(Duration::from_millis(10)));
        assert_eq!(h.take(), None);
        h.read(at(20));
        h.read(at(30));
        assert_eq!(h.take(), None);
    }
}
