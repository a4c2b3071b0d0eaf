//! Caller-provided storage for a [`super::Balancer`], and the sizes it
//! needs. A Linux driver allocates each slice once (`vec![..; n]`), firmware
//! uses statics; the balancer never allocates. Never holds logic.

use super::conn::ConnSlot;
use super::server::ServerSlot;
use super::service::ServiceSlot;

/// Largest mh table IPVS allows (the last prime of ip_vs_mh.c's list).
pub const MH_TABLE_MAX: u32 = 131_071;
/// Most connection slots one table can index (24-bit slot numbers).
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
    /// Connection and persistence-template slots (shared).
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
    /// `ConnSlot`s needed.
    pub const fn conn_slots(&self) -> usize {
        self.connections as usize
    }
    /// Hash index entries (`u32`): a power of two, at least twice the
    /// connections, so linear probing stays short.
    pub const fn index_entries(&self) -> usize {
        let n = (self.connections as usize).saturating_mul(2);
        if n < 16 { 16 } else { n.next_power_of_two() }
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
            + (self.index_entries() + self.wheel_buckets()) * 4
    }
}

/// The slices a balancer works in; lengths must match the [`Layout`]
/// (checked by [`super::Balancer::new`]). Initialise every element with the
/// type's `EMPTY`/`0` (contents are reset by `new` anyway).
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
    /// [`Layout::index_entries`] entries.
    pub index: &'a mut [u32],
    /// [`Layout::wheel_buckets`] entries.
    pub wheel: &'a mut [u32],
}
