//! The sending rate bound: a generic cell rate algorithm (a token bucket
//! kept as one "theoretical arrival time"), integer microseconds only.
//! Never sends anything itself.

use crate::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Gcra {
    /// Time one message costs.
    interval: Duration,
    /// How far ahead of `now` the arrival time may run (burst - 1 messages).
    tolerance: Duration,
    tat: Instant,
}

impl Gcra {
    pub fn new(per_s: u32, burst: u32) -> Self {
        let interval = Duration::from_micros((1_000_000 / u64::from(per_s.max(1))).max(1));
        Gcra {
            interval,
            tolerance: interval.saturating_mul(u64::from(burst.max(1)) - 1),
            tat: Instant::ZERO,
        }
    }

    /// When the next message may go (at or before `now` means now).
    pub fn ready_at(&self) -> Instant {
        Instant::from_micros(
            self.tat
                .as_micros()
                .saturating_sub(self.tolerance.as_micros()),
        )
    }

    /// Takes one message's worth if allowed at `now`.
    pub fn take(&mut self, now: Instant) -> bool {
        if self.ready_at() > now {
            return false;
        }
        self.tat = self.tat.max(now) + self.interval;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut g = Gcra::new(10, 3);
        let t0 = Instant::from_secs(5);
        assert!(g.take(t0) && g.take(t0) && g.take(t0));
        assert!(!g.take(t0), "burst of 3 used up");
        assert_eq!(g.ready_at(), t0 + Duration::from_millis(100));
        assert!(g.take(t0 + Duration::from_millis(100)));
        assert!(!g.take(t0 + Duration::from_millis(150)));
    }
}
