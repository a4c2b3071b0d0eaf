//! Where an instance keeps its VIPs. The caller picks the store, as it
//! picks every other storage: firmware holds a fixed number inline
//! ([`InlineVips`]); a daemon can size each instance's list from its
//! configuration with a store type of its own. The core never allocates;
//! a store that does is the caller's type and runs only when an instance
//! is built or reconfigured.

use core::fmt::Debug;
use core::net::IpAddr;
use core::ops::Deref;

/// VIPs (advertised and excluded together) an instance holds unless the
/// caller picks another store. Real configurations reach 30 (20
/// advertised is keepalived's advice, with the rest excluded); firmware
/// builds pick a small number.
pub const DEFAULT_MAX_VIPS: usize = 64;

/// An instance's VIP list: advertised first, then excluded.
pub trait VipStore: Clone + Debug + Deref<Target = [IpAddr]> {
    /// A list of `vips` then `excluded`, or `None` when this store cannot
    /// hold that many.
    fn from_lists(vips: &[IpAddr], excluded: &[IpAddr]) -> Option<Self>;
}

/// At most `N` VIPs, inline in the instance.
pub type InlineVips<const N: usize> = heapless::Vec<IpAddr, N>;

/// The store when the caller names none.
pub type DefaultVips = InlineVips<DEFAULT_MAX_VIPS>;

impl<const N: usize> VipStore for heapless::Vec<IpAddr, N> {
    fn from_lists(vips: &[IpAddr], excluded: &[IpAddr]) -> Option<Self> {
        let mut list = heapless::Vec::new();
        for addr in vips.iter().chain(excluded) {
            list.push(*addr).ok()?;
        }
        Some(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn an_inline_store_holds_its_capacity_in_order_and_refuses_more() {
        let a = |i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i));
        let l = InlineVips::<3>::from_lists(&[a(1), a(2)], &[a(3)]).unwrap();
        assert_eq!(&l[..], &[a(1), a(2), a(3)]);
        assert!(InlineVips::<3>::from_lists(&[a(1), a(2)], &[a(3), a(4)]).is_none());
        assert!(InlineVips::<0>::from_lists(&[], &[]).unwrap().is_empty());
    }
}
