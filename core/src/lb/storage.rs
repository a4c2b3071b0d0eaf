//! Caller-provided storage for a [`super::Balancer`], and the sizes it
//! needs. A Linux driver allocates each slice once (zeroed), firmware uses
//! statics; the balancer never allocates. Never holds logic.

use super::conn::{ConnSlot, GROUP};
use super::server::ServerSlot;
use super::service::ServiceSlot;

/// Largest mh table IPVS allows (the last prime of ip_vs_mh.c's list).
pub const MH_TABLE_MAX: u32 = 131_071;
/// Most connections (and templates) one table holds: about 1.2 GiB of
/// storage, and slot numbers well clear of the wheel's marker bits.
pub const CONNECTIONS_MAX: u32 = (1 << 24) - 2;
/// Most real servers per service (local indices are `u16`, one is "none").
pub const SERVERS_PER_SERVICE_MAX: u16 = 32_768;

/// The capacities a balancer is built for; every size follows from them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Layout {
    /// Virtual services.
    pub services: u16,
    /// Real servers per service, counting removed servers that connections
    /// still reference and the sorry server.
    pub servers_per_service: u16,
    /// Largest mh table any service uses (0 when no service uses mh).
    pub mh_table_max: u32,
    /// Connections and persistence templates the table holds at most
    /// (shared); it has 8/7 as many slots or a few more.
    pub connections: u32,
}

impl Layout {
    /// `ServiceSlot`s needed.
    pub const fn service_slots(&self) -> usize {
        self.services as usize
    }
    /// `ServerSlot`s needed.
    pub const fn server_slots(&self) -> usize {
        self.services as usize * self.servers_per_service as usize
    }
    /// Tournament-tree nodes per service (`u16`).
    pub const fn tree_nodes_per_service(&self) -> usize {
        2 * (self.servers_per_service as usize).next_power_of_two()
    }
    /// Tournament-tree nodes (`u16`) needed.
    pub const fn tree_nodes(&self) -> usize {
        self.services as usize * self.tree_nodes_per_service()
    }
    /// mh lookup entries (`u16`) needed.
    pub const fn mh_entries(&self) -> usize {
        self.services as usize * self.mh_table_max as usize
    }
    /// `ConnSlot`s needed: whole groups of 16, at least `8/7` of the
    /// connections (the index's load stays at most 7/8), at least one group.
    pub const fn conn_slots(&self) -> usize {
        let n = self.connections as usize;
        let groups = (n + n.div_ceil(7)).div_ceil(GROUP);
        if groups == 0 { GROUP } else { groups * GROUP }
    }
    /// Index bytes (`u8`): a tag per slot, then an overflow counter per
    /// group of 16 slots. Zeroed memory is an empty index.
    pub const fn index_bytes(&self) -> usize {
        super::conn::index_bytes(self.conn_slots())
    }
    /// Timer-wheel buckets (`u32`): a power of two up to 65536 (18 minutes
    /// of 16 ms ticks, longer than every default timeout).
    pub const fn wheel_buckets(&self) -> usize {
        let n = (self.connections as usize).next_power_of_two();
        if n < 64 {
            64
        } else if n > 65_536 {
            65_536
        } else {
            n
        }
    }
    /// Total bytes of storage this layout takes.
    pub const fn bytes(&self) -> usize {
        self.service_slots() * core::mem::size_of::<ServiceSlot>()
            + self.server_slots() * core::mem::size_of::<ServerSlot>()
            + (self.tree_nodes() + self.mh_entries()) * 2
            + self.conn_slots() * core::mem::size_of::<ConnSlot>()
            + self.index_bytes()
            + self.wheel_buckets() * 4
    }
}

/// The slices a balancer works in; lengths must match the [`Layout`]
/// (checked by [`super::Balancer::new`]). Contents are reset by `new`, which
/// writes only what is not already zero and never touches `conns`: hand in
/// zeroed memory (`ConnSlot` is all plain integers) and the connection
/// storage stays unallocated by the OS until connections arrive.
pub struct Storage<'a> {
    /// [`Layout::service_slots`] entries.
    pub services: &'a mut [ServiceSlot],
    /// [`Layout::server_slots`] entries.
    pub servers: &'a mut [ServerSlot],
    /// [`Layout::tree_nodes`] entries.
    pub tree: &'a mut [u16],
    /// [`Layout::mh_entries`] entries.
    pub mh: &'a mut [u16],
    /// [`Layout::conn_slots`] entries.
    pub conns: &'a mut [ConnSlot],
    /// [`Layout::index_bytes`] entries.
    pub index: &'a mut [u8],
    /// [`Layout::wheel_buckets`] entries (0 is an empty bucket).
    pub wheel: &'a mut [u32],
}
