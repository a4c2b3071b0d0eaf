//! Parsers for keepalived.conf values: integers, decimal seconds, booleans,
//! addresses with prefixes. Pure functions; `None` means malformed.

use core::net::IpAddr;

/// A decimal integer without sign or grouping.
pub fn uint(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A signed decimal integer (`-2`, `+20`, `5`).
pub fn int(text: &str) -> Option<i64> {
    let (neg, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let v = uint(digits)? as i64;
    Some(if neg { -v } else { v })
}

/// Decimal seconds (`3`, `0.5`, `1.000001`) as microseconds. keepalived
/// accepts up to microsecond precision for its timers.
pub fn seconds_us(text: &str) -> Option<u64> {
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    if frac.len() > 6 || (whole.is_empty() && frac.is_empty()) {
        return None;
    }
    let whole = if whole.is_empty() { 0 } else { uint(whole)? };
    let mut frac_us = 0u64;
    for (i, b) in frac.bytes().enumerate() {
        if !b.is_ascii_digit() {
            return None;
        }
        frac_us += u64::from(b - b'0') * 10u64.pow(5 - i as u32);
    }
    whole.checked_mul(1_000_000)?.checked_add(frac_us)
}

/// keepalived's booleans: `true`/`false`, `on`/`off`, `yes`/`no`, `1`/`0`.
pub fn boolean(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase_fixed().as_str() {
        "true" | "on" | "yes" | "1" => Some(true),
        "false" | "off" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// An IPv4 or IPv6 address. IPv6 zone suffixes (`%eth0`) are refused.
pub fn ip(text: &str) -> Option<IpAddr> {
    text.parse().ok()
}

/// `ADDR` or `ADDR/PREFIX`, the prefix checked against the family.
pub fn ip_prefix(text: &str) -> Option<(IpAddr, Option<u8>)> {
    match text.split_once('/') {
        None => Some((ip(text)?, None)),
        Some((addr, prefix)) => {
            let addr = ip(addr)?;
            let prefix = uint(prefix)?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            (prefix <= max).then_some((addr, Some(prefix as u8)))
        }
    }
}

/// keepalived's parameter names (`$NAME`, `~SEQ` variables): letters,
/// digits and `_`, not starting with a digit.
pub(crate) fn is_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A port, 0..=65535.
pub fn port(text: &str) -> Option<u16> {
    uint(text).and_then(|p| u16::try_from(p).ok())
}

/// A MAC address of five or six `:`-separated hex octets; the count is
/// the second value (an unused sixth octet is 0).
pub fn mac_octets(text: &str) -> Option<([u8; 6], usize)> {
    let mut out = [0u8; 6];
    let mut len = 0;
    for part in text.split(':') {
        if len == 6 || part.is_empty() || part.len() > 2 {
            return None;
        }
        out[len] = u8::from_str_radix(part, 16).ok()?;
        len += 1;
    }
    (len >= 5).then_some((out, len))
}

/// Lower-casing into a small fixed buffer (no allocation).
trait LowerFixed {
    fn to_ascii_lowercase_fixed(&self) -> heapless::String<8>;
}

impl LowerFixed for str {
    fn to_ascii_lowercase_fixed(&self) -> heapless::String<8> {
        let mut s = heapless::String::new();
        for c in self.chars() {
            if s.push(c.to_ascii_lowercase()).is_err() {
                return heapless::String::new();
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_seconds() {
        assert_eq!(uint("42"), Some(42));
        assert_eq!(uint("-1"), None);
        assert_eq!(uint("4x"), None);
        assert_eq!(int("-254"), Some(-254));
        assert_eq!(int("+2"), Some(2));
        assert_eq!(seconds_us("5"), Some(5_000_000));
        assert_eq!(seconds_us("0.5"), Some(500_000));
        assert_eq!(seconds_us(".01"), Some(10_000));
        assert_eq!(seconds_us("1.0000001"), None);
        assert_eq!(seconds_us("1.5s"), None);
        assert_eq!(seconds_us(""), None);
    }

    #[test]
    fn addresses() {
        assert_eq!(ip_prefix("192.0.2.1/24").map(|p| p.1), Some(Some(24)));
        assert_eq!(ip_prefix("192.0.2.1/33"), None);
        assert_eq!(ip_prefix("2001:db8::1/64").map(|p| p.1), Some(Some(64)));
        assert_eq!(ip_prefix("192.0.2.300"), None);
        assert_eq!(port("65536"), None);
        assert_eq!(boolean("On"), Some(true));
        assert_eq!(boolean("maybe"), None);
    }
}
