//! Address helpers shared by the tables: every address is kept as 16 bytes
//! (IPv4 as IPv4-mapped IPv6) so one slot layout serves both families.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `ip` as 16 bytes and whether it is IPv6.
#[inline]
pub(crate) fn to16(ip: IpAddr) -> ([u8; 16], bool) {
    match ip {
        IpAddr::V4(v4) => (v4.to_ipv6_mapped().octets(), false),
        IpAddr::V6(v6) => (v6.octets(), true),
    }
}

/// The inverse of [`to16`].
#[inline]
pub(crate) fn from16(bytes: [u8; 16], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]))
    }
}

/// The kernel's address fold for hashing: the IPv4 address in host order, or
/// the XOR of the four 32-bit words of an IPv6 address (ip_vs_sh.c,
/// ip_vs_dh.c, ip_vs_mh.c `addr_fold`).
#[inline]
pub(crate) fn fold(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            // The kernel XORs the words as stored (network order), then
            // converts with ntohl: the same as XOR of host-order words.
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            w(0) ^ w(4) ^ w(8) ^ w(12)
        }
    }
}

/// `ip` with all but the first `prefix_len` bits cleared (IPv4 prefix
/// lengths count from the IPv4 address, not the mapped form).
pub(crate) fn mask(ip: IpAddr, prefix_len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(prefix_len.min(32));
            let m = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & m))
        }
        IpAddr::V6(v6) => {
            let bits = u32::from(prefix_len.min(128));
            let m = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & m))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_round_trips() {
        let a: IpAddr = "192.0.2.77".parse().unwrap();
        assert_eq!(mask(a, 24), "192.0.2.0".parse::<IpAddr>().unwrap());
        assert_eq!(mask(a, 0), "0.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(mask(a, 32), a);
        let b: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(mask(b, 48), "2001:db8:1::".parse::<IpAddr>().unwrap());
        let (x, v6) = to16(a);
        assert_eq!(from16(x, v6), a);
        let (y, v6) = to16(b);
        assert_eq!(from16(y, v6), b);
        assert_eq!(fold(a), 0xC000_024D);
    }
}
