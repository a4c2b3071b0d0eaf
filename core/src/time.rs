//! Time as the core sees it: [`Instant`] and [`Duration`], both `u64`
//! microseconds with saturating arithmetic. The core never reads a clock;
//! drivers pass `now` in. Conversions to `embassy-time` sit behind the
//! `embassy-time` feature.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A point in time, in microseconds since an origin the driver chooses.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    micros: u64,
}

/// A span of time in microseconds. Arithmetic saturates instead of wrapping.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    micros: u64,
}

impl Instant {
    /// The driver's origin.
    pub const ZERO: Instant = Instant { micros: 0 };
    /// Later than any real instant: "never" for timers.
    pub const MAX: Instant = Instant { micros: u64::MAX };

    /// An instant `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Self {
        Instant { micros }
    }
    /// An instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Instant {
            micros: millis.saturating_mul(1_000),
        }
    }
    /// An instant `secs` seconds after the origin.
    pub const fn from_secs(secs: u64) -> Self {
        Instant {
            micros: secs.saturating_mul(1_000_000),
        }
    }
    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.micros
    }
    /// Milliseconds since the origin, rounded down.
    pub const fn as_millis(self) -> u64 {
        self.micros / 1_000
    }
    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration {
            micros: self.micros.saturating_sub(earlier.micros),
        }
    }
    /// The later of the two: how the core clamps `now` so time never runs backwards.
    pub fn max(self, other: Instant) -> Instant {
        if other.micros > self.micros {
            other
        } else {
            self
        }
    }
}

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration { micros: 0 };
    /// Longer than any real duration.
    pub const MAX: Duration = Duration { micros: u64::MAX };

    /// `micros` microseconds.
    pub const fn from_micros(micros: u64) -> Self {
        Duration { micros }
    }
    /// `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Duration {
            micros: millis.saturating_mul(1_000),
        }
    }
    /// `centis` hundredths of a second, VRRPv3's advertisement unit.
    pub const fn from_centis(centis: u64) -> Self {
        Duration {
            micros: centis.saturating_mul(10_000),
        }
    }
    /// `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration {
            micros: secs.saturating_mul(1_000_000),
        }
    }
    /// Whole microseconds.
    pub const fn as_micros(self) -> u64 {
        self.micros
    }
    /// Whole milliseconds, rounded down.
    pub const fn as_millis(self) -> u64 {
        self.micros / 1_000
    }
    /// Whole centiseconds, rounded down.
    pub const fn as_centis(self) -> u64 {
        self.micros / 10_000
    }
    /// Whole seconds, rounded down.
    pub const fn as_secs(self) -> u64 {
        self.micros / 1_000_000
    }
    /// `self * n`, saturating.
    pub const fn saturating_mul(self, n: u64) -> Duration {
        Duration {
            micros: self.micros.saturating_mul(n),
        }
    }
    /// `self / n`, rounded down; `n == 0` gives [`Duration::MAX`].
    pub const fn div(self, n: u64) -> Duration {
        match self.micros.checked_div(n) {
            Some(micros) => Duration { micros },
            None => Duration::MAX,
        }
    }
    /// `self - other`, zero if `other` is longer.
    pub const fn saturating_sub(self, other: Duration) -> Duration {
        Duration {
            micros: self.micros.saturating_sub(other.micros),
        }
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant {
            micros: self.micros.saturating_add(rhs.micros),
        }
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        Instant {
            micros: self.micros.saturating_sub(rhs.micros),
        }
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturates at zero when `rhs` is later.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, rhs: Duration) -> Duration {
        Duration {
            micros: self.micros.saturating_add(rhs.micros),
        }
    }
}

impl AddAssign for Duration {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub for Duration {
    type Output = Duration;
    fn sub(self, rhs: Duration) -> Duration {
        self.saturating_sub(rhs)
    }
}

fn write_micros(f: &mut fmt::Formatter<'_>, micros: u64) -> fmt::Result {
    let secs = micros / 1_000_000;
    let mut frac = micros % 1_000_000;
    if frac == 0 {
        return write!(f, "{secs}s");
    }
    // As many decimals as it takes: 0.2s, not 0.200000s.
    let mut digits = 6;
    while frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    write!(f, "{secs}.{frac:0digits$}s")
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("@")?;
        write_micros(f, self.micros)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_micros(f, self.micros)
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_micros(f, self.micros)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_micros(f, self.micros)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Instant {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "{=u64:us}", self.micros)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Duration {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "{=u64:us}", self.micros)
    }
}

#[cfg(feature = "embassy-time")]
mod embassy {
    use super::{Duration, Instant};

    impl From<embassy_time::Instant> for Instant {
        fn from(t: embassy_time::Instant) -> Self {
            Instant::from_micros(t.as_micros())
        }
    }
    impl From<Instant> for embassy_time::Instant {
        fn from(t: Instant) -> Self {
            embassy_time::Instant::from_micros(t.as_micros())
        }
    }
    impl From<embassy_time::Duration> for Duration {
        fn from(d: embassy_time::Duration) -> Self {
            Duration::from_micros(d.as_micros())
        }
    }
    impl From<Duration> for embassy_time::Duration {
        fn from(d: Duration) -> Self {
            embassy_time::Duration::from_micros(d.as_micros())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(Instant::ZERO - Duration::from_secs(1), Instant::ZERO);
        assert_eq!(
            Instant::from_secs(1) - Instant::from_secs(2),
            Duration::ZERO
        );
        assert_eq!(Duration::MAX + Duration::from_micros(1), Duration::MAX);
        assert_eq!(Duration::from_secs(u64::MAX), Duration::MAX);
        assert_eq!(Duration::from_secs(1).div(0), Duration::MAX);
    }

    #[test]
    fn units_convert() {
        assert_eq!(Duration::from_centis(100), Duration::from_secs(1));
        assert_eq!(Duration::from_millis(3_609).as_secs(), 3);
        assert_eq!(Duration::from_micros(3_609_375).as_centis(), 360);
        assert_eq!(Instant::from_millis(5).as_micros(), 5_000);
    }

    #[test]
    fn displays_seconds() {
        assert_eq!(
            heapless::format!(16; "{}", Duration::from_micros(3_609_375)).unwrap(),
            "3.609375s"
        );
        assert_eq!(
            heapless::format!(16; "{}", Duration::from_millis(200)).unwrap(),
            "0.2s"
        );
        assert_eq!(
            heapless::format!(16; "{}", Duration::from_micros(1_050_010)).unwrap(),
            "1.05001s"
        );
        assert_eq!(
            heapless::format!(16; "{}", Duration::from_micros(7)).unwrap(),
            "0.000007s"
        );
        assert_eq!(
            heapless::format!(16; "{:?}", Instant::from_secs(2)).unwrap(),
            "@2s"
        );
    }
}
