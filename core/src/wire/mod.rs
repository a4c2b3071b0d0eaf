//! Wire formats vrlb writes by hand: VRRP and the connection-sync protocol.
//!
//! Each follows smoltcp's shape: a zero-copy `Packet<T: AsRef<[u8]>>` view
//! with `new_checked`, and a `Repr` with `parse`, `emit` and `buffer_len`.
//! Ethernet, ARP, IPv4, IPv6, TCP and NDP come from `smoltcp::wire`,
//! re-exported here so drivers use the same types.

pub use smoltcp::wire as smol;

#[cfg(feature = "vrrp")]
pub mod vrrp;

#[cfg(feature = "sync")]
pub mod sync;
