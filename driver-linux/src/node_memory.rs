//! Heap memory for a core [`Node`] with its balancer, sized from what a
//! configuration defines ([`Counts`]) plus headroom for reloads. The core
//! allocates nothing; this is where the Linux driver turns counts into
//! slots, for `vrlb check` and `vrlb run` alike.

use vrlb_core::lb::{self, Balancer, Layout, LbConfig, LbError};
use vrlb_core::node::build::Counts;
use vrlb_core::node::{
    BalancingStorage, CheckerSlot, GroupSlot, InstanceSlot, Node, NodeStorage, ScriptSlot,
    ServerSlot, ServiceSlot, TimerEntry,
};
use vrlb_core::time::Instant;

/// Slots for one node and its balancer.
#[derive(Debug)]
pub struct NodeMemory {
    instances: Vec<InstanceSlot>,
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
        let layout = counts.layout(connections, headroom);
        let with_room = |n: usize| n + headroom;
        let mut grown = counts.clone();
        grown.instances = with_room(counts.instances);
        grown.scripts = with_room(counts.scripts);
        grown.checkers = with_room(counts.checkers);
        NodeMemory {
            instances: vec![InstanceSlot::default(); grown.instances],
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
    pub fn node(&mut self, now: Instant, seed: u64) -> Result<Node<'_>, LbError> {
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
