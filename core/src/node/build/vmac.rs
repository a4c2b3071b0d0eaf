//! `use_vmac`: the names keepalived gives VMAC interfaces, and what an
//! instance with one tells the driver ([`Vmac`]).

use heapless::String;

use crate::config::VmacConf;
use crate::vrrp::Family;

/// Longest interface name Linux takes (`IFNAMSIZ` less its NUL).
pub const MAX_IFNAME: usize = 15;

/// A VMAC the driver makes (a private-mode macvlan on `base`) and keeps
/// while the instance exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vmac<'a> {
    /// The macvlan's name.
    pub name: &'a str,
    /// The interface it sits on (the instance's `interface`).
    pub base: &'a str,
    /// Its MAC.
    pub mac: [u8; 6],
    /// The instance's family (an IPv6 VMAC gets the base's link-local
    /// address, an IPv4 one no IPv6 at all).
    pub family: Family,
    /// `vmac_xmit_base`: adverts go out on `base`.
    pub xmit_base: bool,
}

/// The default names this build has handed out or seen configured, by
/// VRID: bit `n` of `taken[vrid]` is `vrrpN.VRID` (`vrrp.VRID` for 0).
#[derive(Debug)]
pub struct Names {
    taken: [u16; 256],
}

impl Default for Names {
    fn default() -> Self {
        Names { taken: [0; 256] }
    }
}

/// keepalived's order of default names: `vrrp.VRID`, then for IPv6
/// `vrrp6.VRID`, then `vrrp1.VRID`, `vrrp2.VRID`, ... (vrrp.c).
fn candidates(family: Family) -> impl Iterator<Item = u8> {
    let v6 = family == Family::V6;
    let first: &[u8] = if v6 { &[0, 6] } else { &[0] };
    first
        .iter()
        .copied()
        .chain((1..16).filter(move |n| !(v6 && *n == 6)))
}

/// `vrrpN.VRID` (`vrrp.VRID` for N = 0), at most "vrrp15.255", so every
/// push fits. Digits by hand: core::fmt would add kilobytes of text to a
/// firmware build for two small numbers.
fn default_name(num: u8, vrid: u8) -> String<MAX_IFNAME> {
    fn push_decimal(s: &mut String<MAX_IFNAME>, n: u8) {
        let digits = [n / 100, n / 10 % 10, n % 10];
        let first = digits.iter().position(|d| *d != 0).unwrap_or(2);
        for d in &digits[first..] {
            let _ = s.push(char::from(b'0' + d));
        }
    }
    let mut s = String::new();
    let _ = s.push_str("vrrp");
    if num > 0 {
        push_decimal(&mut s, num);
    }
    let _ = s.push('.');
    push_decimal(&mut s, vrid);
    s
}

/// `(N, VRID)` if `name` is `vrrpN.VRID` or `vrrp.VRID` with N < 16.
fn parse_default(name: &str) -> Option<(u8, u8)> {
    let rest = name.strip_prefix("vrrp")?;
    let (num, vrid) = rest.split_once('.')?;
    let num = if num.is_empty() {
        0
    } else {
        num.parse::<u8>().ok().filter(|n| *n < 16)?
    };
    Some((num, vrid.parse().ok()?))
}

impl Names {
    /// The VMAC name of an instance with `conf`: the one configured, else
    /// the first default this build has not handed out. `None`: all
    /// sixteen defaults for this VRID are taken.
    pub fn pick(
        &mut self,
        conf: &VmacConf<'_>,
        vrid: u8,
        family: Family,
    ) -> Option<String<MAX_IFNAME>> {
        if let Some(name) = conf.name {
            if let Some((num, v)) = parse_default(name) {
                self.taken[usize::from(v)] |= 1 << num;
            }
            // The parser takes only names of at most 15 bytes.
            return String::try_from(name).ok();
        }
        let taken = &mut self.taken[usize::from(vrid)];
        let num = candidates(family).find(|n| *taken & (1 << n) == 0)?;
        *taken |= 1 << num;
        Some(default_name(num, vrid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Pos, VmacConf};

    fn unnamed() -> VmacConf<'static> {
        VmacConf {
            name: None,
            mac: None,
            pos: Pos { line: 1, col: 1 },
        }
    }

    #[test]
    fn defaults_follow_keepalived_order() {
        let mut n = Names::default();
        assert_eq!(n.pick(&unnamed(), 51, Family::V4).unwrap(), "vrrp.51");
        // IPv6 with vrrp.51 taken tries vrrp6.51 next.
        assert_eq!(n.pick(&unnamed(), 51, Family::V6).unwrap(), "vrrp6.51");
        assert_eq!(n.pick(&unnamed(), 51, Family::V4).unwrap(), "vrrp1.51");
        assert_eq!(n.pick(&unnamed(), 51, Family::V6).unwrap(), "vrrp2.51");
        // Another VRID starts over.
        assert_eq!(n.pick(&unnamed(), 7, Family::V6).unwrap(), "vrrp.7");
    }

    #[test]
    fn a_configured_default_shaped_name_is_not_handed_out_again() {
        let mut n = Names::default();
        let named = VmacConf {
            name: Some("vrrp.51"),
            ..unnamed()
        };
        assert_eq!(n.pick(&named, 9, Family::V4).unwrap(), "vrrp.51");
        assert_eq!(n.pick(&unnamed(), 51, Family::V4).unwrap(), "vrrp1.51");
        let other = VmacConf {
            name: Some("pub_a"),
            ..unnamed()
        };
        assert_eq!(n.pick(&other, 51, Family::V4).unwrap(), "pub_a");
    }

    #[test]
    fn names_spell_their_numbers() {
        assert_eq!(default_name(0, 1), "vrrp.1");
        assert_eq!(default_name(15, 255), "vrrp15.255");
        assert_eq!(default_name(6, 100), "vrrp6.100");
        assert_eq!(parse_default("vrrp15.255"), Some((15, 255)));
        assert_eq!(parse_default("vrrp.7"), Some((0, 7)));
        assert_eq!(parse_default("vrrp16.7"), None);
        assert_eq!(parse_default("eth0"), None);
    }

    #[test]
    fn sixteen_defaults_then_none() {
        let mut n = Names::default();
        for _ in 0..16 {
            assert!(n.pick(&unnamed(), 3, Family::V4).is_some());
        }
        assert_eq!(n.pick(&unnamed(), 3, Family::V4), None);
    }
}
