//! Heap memory for a core [`Node`] with its balancer, sized from what a
//! configuration defines ([`Counts`]) plus headroom for reloads, and each
//! instance's VIP list sized from its own configuration ([`SizedVips`]).
//! The core allocates nothing; this is where the Linux driver turns counts
//! into slots, for `vrlb check` and `vrlb run` alike.

use std::net::IpAddr;
use std::ops::Deref;

use vrlb_core::lb::{self, Balancer, Layout, LbConfig, LbError};
use vrlb_core::node::build::Counts;
use vrlb_core::node::{
    BalancingStorage, CheckerSlot, GroupSlot, InstanceSlot, Node, NodeStorage, ScriptSlot,
    ServerSlot, ServiceSlot, TimerEntry,
};
use vrlb_core::time::Instant;
use vrlb_core::vrrp::VipStore;

/// An instance's VIPs (advertised, then excluded), exactly as many as its
/// configuration lists, on the heap: the core's default store holds 64
/// inline in every instance slot (1 KiB of a 1.6 KiB slot), used or not,
/// which 1000 one-VIP instances pay a megabyte for. Allocated when an
/// instance is built or reconfigured, never on the advert path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SizedVips(Box<[IpAddr]>);

impl Deref for SizedVips {
    type Target = [IpAddr];
    fn deref(&self) -> &[IpAddr] {
        &self.0
    }
}

impl VipStore for SizedVips {
    fn from_lists(vips: &[IpAddr], excluded: &[IpAddr]) -> Option<Self> {
        Some(SizedVips(vips.iter().chain(excluded).copied().collect()))
    }
}

/// The node the Linux driver runs.
pub type LinuxNode<'a> = Node<'a, SizedVips>;

/// Slots for one node and its balancer.
#[derive(Debug)]
pub struct NodeMemory {
    instances: Vec<InstanceSlot<SizedVips>>,
    scripts: Vec<ScriptSlot>,
    groups: Vec<GroupSlot>,
    timers: Vec<TimerEntry>,
    lb_services: Vec<lb::ServiceSlot>,
    lb_servers: Vec<lb::ServerSlot>,
    lb_tree: Vec<u16>,
    lb_mh: Vec<u16>,
    lb_conns: Vec<lb::ConnSlot>,
    lb_index: Vec<u8>,
    lb_wheel: Vec<u32>,
    services: Vec<ServiceSlot>,
    servers: Vec<ServerSlot>,
    checkers: Vec<CheckerSlot>,
    layout: Layout,
}

impl NodeMemory {
    /// Memory for what `counts` defines, `headroom` more of each item (so
    /// a reload can add some), and `connections` tracked connections.
    pub fn for_counts(counts: &Counts, headroom: usize, connections: u32) -> Self {
        let mut layout = counts.layout(connections, headroom);
        if counts.virtual_servers == 0 {
            // A VRRP-only run (`vrlb run` gives it one connection slot
            // too) keeps service slots for a reload, not a Maglev table
            // each (4,093 entries, 8 KiB a slot, 136 KiB with headroom).
            layout.mh_table_max = 0;
        }
        let with_room = |n: usize| n + headroom;
        let mut grown = counts.clone();
        grown.instances = with_room(counts.instances);
        grown.scripts = with_room(counts.scripts);
        grown.checkers = with_room(counts.checkers);
        NodeMemory {
            instances: (0..grown.instances)
                .map(|_| InstanceSlot::default())
                .collect(),
            scripts: vec![ScriptSlot::default(); grown.scripts],
            groups: vec![GroupSlot::default(); with_room(counts.sync_groups)],
            timers: vec![TimerEntry::default(); grown.timer_entries()],
            lb_services: vec![lb::ServiceSlot::EMPTY; layout.service_slots()],
            lb_servers: vec![lb::ServerSlot::EMPTY; layout.server_slots()],
            lb_tree: vec![0; layout.tree_nodes()],
            lb_mh: vec![0; layout.mh_entries()],
            lb_conns: vec![lb::ConnSlot::EMPTY; layout.conn_slots()],
            lb_index: vec![0; layout.index_bytes()],
            lb_wheel: vec![0; layout.wheel_buckets()],
            services: vec![ServiceSlot::default(); layout.service_slots()],
            servers: vec![ServerSlot::default(); with_room(counts.real_servers)],
            checkers: vec![CheckerSlot::default(); grown.checkers],
            layout,
        }
    }

    /// An empty node (with a balancer) over this memory; `seed` keys the
    /// balancer's hashes and the checkers' warm-up draws.
    pub fn node(&mut self, now: Instant, seed: u64) -> Result<LinuxNode<'_>, LbError> {
        let balancer = Balancer::new(
            self.layout,
            lb::Storage {
                services: &mut self.lb_services,
                servers: &mut self.lb_servers,
                tree: &mut self.lb_tree,
                mh: &mut self.lb_mh,
                conns: &mut self.lb_conns,
                index: &mut self.lb_index,
                wheel: &mut self.lb_wheel,
            },
            LbConfig::default(),
            seed,
            now,
        )?;
        let node = Node::new(NodeStorage {
            instances: &mut self.instances,
            scripts: &mut self.scripts,
            groups: &mut self.groups,
            timers: &mut self.timers,
        });
        Ok(node.with_balancing(BalancingStorage {
            balancer,
            services: &mut self.services,
            servers: &mut self.servers,
            checkers: &mut self.checkers,
            seed: seed.rotate_left(17),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrlb_core::node::IfaceId;
    use vrlb_core::vrrp;

    #[test]
    fn instance_slots_hold_exactly_the_configured_vips() {
        let small = std::mem::size_of::<InstanceSlot<SizedVips>>();
        let inline = std::mem::size_of::<InstanceSlot>();
        println!("instance slot: {small} bytes sized, {inline} with 64 inline VIPs");
        assert!(small * 2 < inline, "{small} against {inline}");

        let mut counts = Counts::default();
        counts.instances = 2;
        let mut memory = NodeMemory::for_counts(&counts, 0, 1);
        let mut node = memory.node(Instant::ZERO, 1).unwrap();
        let a = |i| IpAddr::from([192, 0, 2, i]);
        let one = node
            .add_instance(vrrp::Config::new(1, a(1)), &[a(240)], &[], IfaceId(0), 1)
            .unwrap();
        // 100 advertised and 2 excluded: far past the inline 64.
        let many: Vec<IpAddr> = (0..100).map(|i| IpAddr::from([198, 51, 100, i])).collect();
        let big = node
            .add_instance(
                vrrp::Config::new(2, a(1)),
                &many,
                &[a(250), a(251)],
                IfaceId(0),
                2,
            )
            .unwrap();
        assert_eq!(node.instance(one).unwrap().vips(), &[a(240)]);
        let inst = node.instance(big).unwrap();
        assert_eq!(inst.vips().len(), 102);
        assert_eq!(inst.advertised_vips(), &many[..]);
        assert_eq!(&inst.vips()[100..], &[a(250), a(251)]);
    }
}
