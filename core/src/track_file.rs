//! What the number in a tracked file means (keepalived's `track_file`,
//! keepalived.conf(5) "Track files", track_file.c): how its text reads as a
//! number, and what the number times a weight does to a VRRP instance's
//! priority or to a real server's weight. No I/O: the driver reads the file.

/// Most `FILE_CHECK` blocks per real server.
pub const MAX_FILE_CHECKS: usize = 4;

/// The most bytes of a file keepalived reads (a 128-byte buffer, one kept
/// for the terminator).
pub const READ_MAX: usize = 127;

/// The number in a tracked file's `text`, read as C's `strtol(text, NULL,
/// 0)` reads it, as keepalived does: leading white space, an optional sign,
/// then `0x` hex, `0` octal or decimal digits up to the first other byte;
/// text without a number (an empty or missing file too) is 0. Only the
/// first [`READ_MAX`] bytes count. `None`: a number outside `i32`, which
/// keepalived logs and ignores (the previous value stays).
pub fn parse_value(text: &[u8]) -> Option<i32> {
    let text = &text[..text.len().min(READ_MAX)];
    let mut i = 0;
    // C isspace: space, \t, \n, \v, \f, \r.
    while i < text.len() && matches!(text[i], b' ' | b'\t'..=b'\r') {
        i += 1;
    }
    let negative = match text.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let hex_digit = |b: u8| (b as char).to_digit(16);
    let radix = match (text.get(i), text.get(i + 1), text.get(i + 2)) {
        (Some(b'0'), Some(b'x' | b'X'), Some(&d)) if hex_digit(d).is_some() => {
            i += 2;
            16
        }
        (Some(b'0'), _, _) => 8,
        _ => 10,
    };
    let mut value: i64 = 0;
    while let Some(d) = text.get(i).and_then(|&b| (b as char).to_digit(radix)) {
        value = value * i64::from(radix) + i64::from(d);
        if value > i64::from(i32::MAX) + 1 {
            return None;
        }
        i += 1;
    }
    let value = if negative { -value } else { value };
    i32::try_from(value).ok()
}

/// What a tracked file's value does to one tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Effect {
    /// Added to the priority (or the real server's weight).
    Adjust(i32),
    /// The tracker is in fault: a VRRP instance goes to FAULT, a real
    /// server's `FILE_CHECK` fails.
    Fault,
}

impl Effect {
    /// What `value` does with `weight` (and `reverse`), the product kept
    /// within `lowest..=lowest.abs() - 1`, its lowest value a fault
    /// (keepalived track_file.c `update_track_file_status`). With weight
    /// 0 a non-zero value is the fault (a zero one with `reverse`).
    fn of(value: i32, weight: i32, reverse: bool, lowest: i32) -> Effect {
        if weight == 0 {
            return if (value != 0) != reverse {
                Effect::Fault
            } else {
                Effect::Adjust(0)
            };
        }
        let sign = if reverse { -1 } else { 1 };
        let product = i64::from(value) * i64::from(weight) * sign;
        let kept = product.clamp(i64::from(lowest), i64::from(-lowest - 1)) as i32;
        if kept == lowest {
            Effect::Fault
        } else {
            Effect::Adjust(kept)
        }
    }

    /// For a VRRP instance: a product of -254 or less is a fault, else it
    /// is added to the priority, at most 253 (keepalived.conf(5): "if the
    /// result is less than -253 anything monitoring the script will
    /// transition to the fault state").
    pub fn vrrp(value: i32, weight: i32, reverse: bool) -> Effect {
        Effect::of(value, weight, reverse, -254)
    }

    /// For a real server's `FILE_CHECK`: a product of -2147483647 or less is a
    /// fault, else it is added to the server's weight (track_file.c
    /// `process_update_checker_track_file_status`, `IPVS_WEIGHT_MAX`).
    pub fn real_server(value: i32, weight: i32, reverse: bool) -> Effect {
        Effect::of(value, weight, reverse, -FILE_CHECK_WEIGHT_MAX)
    }

    /// The adjustment, 0 for a fault.
    pub fn adjustment(self) -> i32 {
        match self {
            Effect::Adjust(v) => v,
            Effect::Fault => 0,
        }
    }
}

/// keepalived's `IPVS_WEIGHT_MAX` (`INT_MAX` in 2.2.7, which takes a
/// `FILE_CHECK` weight up to it): the bound of a `FILE_CHECK` weight and
/// of the product, whose lowest value fails the check.
pub const FILE_CHECK_WEIGHT_MAX: i32 = i32::MAX;

/// The most a real server's weight becomes (`weight 0..65535`).
pub const REAL_SERVER_WEIGHT_MAX: u32 = 65535;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_strtol_reads_them() {
        let cases: &[(&[u8], Option<i32>)] = &[
            (b"", Some(0)),
            (b"\n", Some(0)),
            (b"5\n", Some(5)),
            (b"  -7 trailing", Some(-7)),
            (b"+3", Some(3)),
            (b"0x1f", Some(31)),
            (b"0X1F\n", Some(31)),
            (b"010", Some(8)),
            (b"09", Some(0)),
            (b"0x", Some(0)),
            (b"abc", Some(0)),
            (b"2147483647", Some(i32::MAX)),
            (b"-2147483648", Some(i32::MIN)),
            (b"2147483648", None),
            (b"99999999999999999999", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_value(text), *want, "{:?}", core::str::from_utf8(text));
        }
    }

    #[test]
    fn only_the_first_127_bytes_count() {
        let mut text = [b' '; 130];
        text[126] = b'4';
        text[127] = b'2';
        assert_eq!(parse_value(&text), Some(4));
    }

    #[test]
    fn vrrp_effects() {
        assert_eq!(Effect::vrrp(0, 0, false), Effect::Adjust(0));
        assert_eq!(Effect::vrrp(3, 0, false), Effect::Fault);
        assert_eq!(Effect::vrrp(0, 0, true), Effect::Fault);
        assert_eq!(Effect::vrrp(3, 0, true), Effect::Adjust(0));
        assert_eq!(Effect::vrrp(5, -10, false), Effect::Adjust(-50));
        assert_eq!(Effect::vrrp(5, -10, true), Effect::Adjust(50));
        assert_eq!(Effect::vrrp(-253, 1, false), Effect::Adjust(-253));
        assert_eq!(Effect::vrrp(-254, 1, false), Effect::Fault);
        assert_eq!(Effect::vrrp(1000, 1, false), Effect::Adjust(253));
        assert_eq!(Effect::vrrp(i32::MAX, i32::MIN + 1, false), Effect::Fault);
    }

    #[test]
    fn real_server_effects() {
        assert_eq!(Effect::real_server(10, 2, false), Effect::Adjust(20));
        assert_eq!(
            Effect::real_server(-65535, 1, false),
            Effect::Adjust(-65535)
        );
        assert_eq!(
            Effect::real_server(-i32::MAX + 1, 1, false),
            Effect::Adjust(-i32::MAX + 1)
        );
        assert_eq!(Effect::real_server(-i32::MAX, 1, false), Effect::Fault);
        assert_eq!(Effect::real_server(i32::MIN, 2, false), Effect::Fault);
        assert_eq!(Effect::real_server(1, 0, false), Effect::Fault);
        assert_eq!(
            Effect::real_server(i32::MAX, 2, false),
            Effect::Adjust(i32::MAX - 1)
        );
    }
}
