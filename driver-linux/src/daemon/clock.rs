//! The daemon's clock: the monotonic clock (`CLOCK_MONOTONIC` through
//! `std::time::Instant`) as the core's [`Instant`], counted from the
//! daemon's start. Never reads wall time, so a clock step cannot fire or
//! starve a timer.

use vrlb_core::time::{Duration, Instant};

/// Monotonic time since the daemon started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: std::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        Clock {
            origin: std::time::Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.origin.elapsed().as_micros() as u64)
    }

    /// How long from now until `deadline` (zero if passed), rounded up to
    /// the next microsecond so a wake-up is never early.
    pub fn until(&self, deadline: Instant) -> std::time::Duration {
        let wait: Duration = deadline.saturating_duration_since(self.now());
        std::time::Duration::from_micros(wait.as_micros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_forward_and_waits_until_a_deadline() {
        let clock = Clock::new();
        let a = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = clock.now();
        assert!(b.as_micros() >= a.as_micros() + 2_000);
        assert_eq!(clock.until(a), std::time::Duration::ZERO);
        let later = Instant::from_micros(b.as_micros() + 1_000_000);
        assert!(clock.until(later) > std::time::Duration::from_millis(900));
    }
}
