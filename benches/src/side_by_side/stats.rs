//! The arithmetic of the side-by-side report: summaries of trial times and
//! the VRRP timer bounds they are held against. Pure functions, no I/O.

use std::time::Duration;

/// Median and worst of a set of trials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// The middle value (the mean of the two middle ones for an even count).
    pub median: Duration,
    /// The largest value.
    pub worst: Duration,
    /// How many trials.
    pub n: usize,
}

/// Median and worst of `samples`; `None` when there are none.
pub fn summarize(samples: &[Duration]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    };
    Some(Summary {
        median,
        worst: sorted[n - 1],
        n,
    })
}

/// Skew_Time in microseconds. RFC 3768 6.1 (VRRPv2): `(256 - Priority) /
/// 256` seconds, whatever the interval; RFC 5798 / 9568 6.1 (VRRPv3):
/// `((256 - Priority) * Master_Adver_Interval) / 256`, computed here in
/// microseconds rather than whole centiseconds (which would round the
/// skew of a 10 ms interval down to zero).
pub fn skew_time_us(version: u8, priority: u8, interval_us: u64) -> u64 {
    let weight = 256 - u64::from(priority);
    if version == 2 {
        weight * 1_000_000 / 256
    } else {
        weight * interval_us / 256
    }
}

/// Master_Down_Interval in microseconds: `3 * Master_Adver_Interval +
/// Skew_Time` (RFC 3768 / RFC 5798 6.1). The bound for a crashed master:
/// the backup hears nothing more and takes over when this runs out.
pub fn master_down_us(version: u8, priority: u8, interval_us: u64) -> u64 {
    3 * interval_us + skew_time_us(version, priority, interval_us)
}

/// `measured / bound`, as a ratio (1.0 = exactly on the bound).
pub fn ratio(measured: Duration, bound: Duration) -> f64 {
    if bound.is_zero() {
        return f64::INFINITY;
    }
    measured.as_secs_f64() / bound.as_secs_f64()
}

/// Whether `measured` is within `slack` (0.10 = 10 %) above `bound`.
pub fn within(measured: Duration, bound: Duration, slack: f64) -> bool {
    measured.as_secs_f64() <= bound.as_secs_f64() * (1.0 + slack)
}

/// A duration for a table: microseconds below 1 ms, milliseconds with one
/// decimal below 10 s, seconds above.
pub fn fmt_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1_000 {
        format!("{us} us")
    } else if us < 10_000_000 {
        format!("{:.1} ms", us as f64 / 1_000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// Bytes as KiB or MiB with one decimal.
pub fn fmt_bytes(bytes: u64) -> String {
    if bytes < 10 * 1024 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

/// Nanoseconds as a short time (for criterion estimates and CPU time).
pub fn fmt_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} us", ns / 1_000.0)
    } else if ns < 1_000_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else {
        format!("{:.2} s", ns / 1_000_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn median_of_odd_and_even_counts_and_worst() {
        let s = summarize(&[ms(5), ms(1), ms(3)]).unwrap();
        assert_eq!((s.median, s.worst, s.n), (ms(3), ms(5), 3));
        let s = summarize(&[ms(4), ms(1), ms(3), ms(10)]).unwrap();
        assert_eq!(
            (s.median, s.worst, s.n),
            (Duration::from_micros(3_500), ms(10), 4)
        );
        assert_eq!(summarize(&[]), None);
        assert_eq!(summarize(&[ms(7)]).unwrap().median, ms(7));
    }

    #[test]
    fn rfc_bounds_at_the_three_settings() {
        // VRRPv2, 1 s, priority 100: 3 s + 156/256 s.
        assert_eq!(skew_time_us(2, 100, 1_000_000), 609_375);
        assert_eq!(master_down_us(2, 100, 1_000_000), 3_609_375);
        // VRRPv2 keeps its skew in seconds at any interval (the seed's 5 s).
        assert_eq!(master_down_us(2, 100, 5_000_000), 15_609_375);
        // VRRPv3 scales it: 100 ms and 10 ms.
        assert_eq!(skew_time_us(3, 100, 100_000), 60_937);
        assert_eq!(master_down_us(3, 100, 100_000), 360_937);
        assert_eq!(skew_time_us(3, 100, 10_000), 6_093);
        assert_eq!(master_down_us(3, 100, 10_000), 36_093);
        // The address owner has no skew to speak of; priority 1 nearly a
        // whole interval.
        assert_eq!(skew_time_us(3, 255, 10_000), 39);
        assert_eq!(skew_time_us(3, 1, 256), 255);
    }

    #[test]
    fn ratios_and_slack() {
        assert!((ratio(ms(110), ms(100)) - 1.1).abs() < 1e-9);
        assert!(within(ms(110), ms(100), 0.10));
        assert!(!within(ms(111), ms(100), 0.10));
        assert!(ratio(ms(1), Duration::ZERO).is_infinite());
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_duration(Duration::from_micros(999)), "999 us");
        assert_eq!(fmt_duration(Duration::from_micros(36_093)), "36.1 ms");
        assert_eq!(fmt_duration(ms(12_500)), "12.50 s");
        assert_eq!(fmt_bytes(2048), "2.0 KiB");
        assert_eq!(fmt_bytes(20 * 1024 * 1024), "20.0 MiB");
        assert_eq!(fmt_ns(12.34), "12.3 ns");
        assert_eq!(fmt_ns(1_500.0), "1.50 us");
    }
}
