//! The event loop's alarm: a timerfd armed at the loop's next deadline.
//! `epoll_wait` (mio) takes whole milliseconds and mio rounds up, so a
//! timer due in 6.09 ms fired at 7 ms: at 10 ms adverts that is a sixth of
//! Skew_Time late, on every takeover. A timerfd is an hrtimer with
//! nanosecond expiry (keepalived's scheduler waits on one too,
//! scheduler.c), so the loop wakes within the kernel's timer latency.
//! Owns the timerfd; knows nothing of what the deadline is for.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use nix::sys::time::{TimeSpec, TimeValLike};
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

/// How much later than the timerfd the poll timeout is set: a backstop
/// only (the timerfd wakes the loop first).
const BACKSTOP: Duration = Duration::from_millis(2);

/// The alarm.
pub struct Wakeup {
    fd: TimerFd,
    /// Armed and not yet read as fired.
    armed: bool,
}

impl Wakeup {
    /// A disarmed alarm on the monotonic clock (the daemon's clock).
    pub fn new() -> io::Result<Wakeup> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        Ok(Wakeup { fd, armed: false })
    }

    /// Arms the alarm `wait` from now (`None`: nothing due, disarmed) and
    /// returns the timeout to poll with. A zero wait polls without
    /// sleeping; if the timerfd cannot be set, the timeout is the wait
    /// itself (millisecond precision, as without an alarm).
    pub fn arm(&mut self, wait: Option<Duration>) -> Option<Duration> {
        match wait {
            None => {
                if self.armed {
                    let _ = self.fd.unset();
                    self.armed = false;
                }
                None
            }
            Some(w) if w.is_zero() => Some(Duration::ZERO),
            Some(w) => {
                let spec = TimeSpec::nanoseconds(w.as_nanos().min(i64::MAX as u128) as i64);
                match self
                    .fd
                    .set(Expiration::OneShot(spec), TimerSetTimeFlags::empty())
                {
                    Ok(()) => {
                        self.armed = true;
                        Some(w + BACKSTOP)
                    }
                    Err(_) => Some(w),
                }
            }
        }
    }

    /// The alarm went off: reads its count so it is quiet until re-armed.
    pub fn fired(&mut self) {
        let mut count = [0u8; 8];
        let _ = nix::unistd::read(self.fd.as_fd(), &mut count);
        self.armed = false;
    }
}

impl AsRawFd for Wakeup {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_fd().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Instant;

    /// Waits on the alarm's descriptor with ppoll (microsecond timeout), as
    /// epoll would, and returns how long it took to become readable.
    fn readable_after(w: &Wakeup, limit: Duration) -> Option<Duration> {
        use nix::poll::{PollFd, PollFlags, ppoll};
        let start = Instant::now();
        let mut fds = [PollFd::new(w.fd.as_fd(), PollFlags::POLLIN)];
        let n = ppoll(&mut fds, Some(TimeSpec::from_duration(limit)), None).ok()?;
        (n == 1).then(|| start.elapsed())
    }

    #[test]
    fn it_goes_off_after_its_wait_once_and_not_when_disarmed() {
        let mut w = Wakeup::new().unwrap();
        // 1.3 ms: epoll's millisecond timeout would sleep 2 ms.
        let timeout = w.arm(Some(Duration::from_micros(1_300)));
        assert_eq!(timeout, Some(Duration::from_micros(1_300) + BACKSTOP));
        let took = readable_after(&w, Duration::from_secs(1)).expect("the alarm went off");
        assert!(took >= Duration::from_micros(1_300), "{took:?}: early");
        w.fired();
        // Read: quiet until armed again.
        assert_eq!(readable_after(&w, Duration::from_millis(20)), None);
        // Disarmed: nothing fires.
        w.arm(Some(Duration::from_millis(5)));
        assert_eq!(w.arm(None), None);
        assert_eq!(readable_after(&w, Duration::from_millis(20)), None);
        // Due now: poll without sleeping, nothing armed.
        assert_eq!(w.arm(Some(Duration::ZERO)), Some(Duration::ZERO));
    }
}
