//! `Node`: everything one director runs, behind one sans-IO face.
//!
//! A node owns its VRRP instances, their sync groups, tracking scripts and
//! tracked processes
//! (and, with the `lb` and `check` features, the load balancer and the
//! health checkers; with `sync` too, connection sync as keepalived's
//! `lvs_sync_daemon` runs it), one timer queue for all of them, and
//! `stats()`. It routes each input to the machine it concerns and hands
//! their outputs out through one [`Node::poll_output`]. It never does I/O and allocates
//! nothing: every table lives in caller storage ([`NodeStorage`]).
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use vrlb_core::node::{GroupSlot, IfaceId, Input, InstanceSlot, Node, NodeStorage, Output, ScriptSlot, TimerEntry};
//! use vrlb_core::time::{Duration, Instant};
//! use vrlb_core::vrrp::{self, InlineVips, State};
//!
//! // Storage a firmware build would make static: one instance, four VIPs.
//! struct Store { i: [InstanceSlot<InlineVips<4>>; 1], t: [TimerEntry; 4] }
//! let mut store = [Store { i: Default::default(), t: Default::default() },
//!                  Store { i: Default::default(), t: Default::default() }];
//! let [a, b] = &mut store;
//! let mut nodes = [a, b].map(|s| Node::new(NodeStorage {
//!     instances: &mut s.i, scripts: &mut [] as &mut [ScriptSlot],
//!     groups: &mut [] as &mut [GroupSlot], timers: &mut s.t,
//! }));
//!
//! // Director 0 (priority 150) and director 1 (100) share VRID 51.
//! let addr = |n| IpAddr::V4(Ipv4Addr::new(192, 0, 2, n));
//! for (n, priority) in [(0usize, 150u8), (1, 100)] {
//!     let mut config = vrrp::Config::new(51, addr(1 + n as u8));
//!     config.priority = priority;
//!     nodes[n].add_instance(config, &[addr(240)], &[], IfaceId(0), 1).unwrap();
//! }
//! let id = vrlb_core::node::InstanceId(0);
//!
//! // A wire that delivers each advert to the other director at once. It
//! // notes when each director last heard the other and became master.
//! #[derive(Default)]
//! struct Wire { heard: [Instant; 2], master: [Option<Instant>; 2] }
//! fn step(nodes: &mut [Node<'_, InlineVips<4>>; 2], up: [bool; 2], now: Instant, w: &mut Wire) {
//!     let mut adverts = Vec::new();
//!     for n in 0..2 {
//!         while let Some(out) = nodes[n].poll_output() {
//!             match out {
//!                 Output::Vrrp { instance, event: vrrp::Output::Advert { priority } } => {
//!                     let src = nodes[n].instance(instance).unwrap().config().primary_addr;
//!                     let mut buf = [0u8; 64];
//!                     let len = nodes[n].emit_advert(instance, priority, src, vrrp::MULTICAST, &mut buf).unwrap();
//!                     adverts.push((1 - n, src, buf[..len].to_vec()));
//!                 }
//!                 Output::Vrrp { event: vrrp::Output::StateChanged { to: State::Master, .. }, .. } => {
//!                     w.master[n] = Some(now)
//!                 }
//!                 _ => {}
//!             }
//!         }
//!     }
//!     for (to, src, bytes) in adverts {
//!         if up[to] {
//!             w.heard[to] = now;
//!             nodes[to].handle(now, Input::Advert { iface: IfaceId(0), src, dst: vrrp::MULTICAST, ttl: 255, payload: &bytes });
//!         }
//!     }
//! }
//!
//! // Move the clock by hand from one deadline to the next.
//! let mut up = [true, true];
//! let mut now = Instant::ZERO;
//! let mut wire = Wire::default();
//! for n in 0..2 { nodes[n].handle(now, Input::Start); }
//! let run = |nodes: &mut [Node<'_, InlineVips<4>>; 2], up: [bool; 2], until: Instant, now: &mut Instant, w: &mut Wire| {
//!     step(nodes, up, *now, w);
//!     loop {
//!         let next = (0..2).filter(|n| up[*n]).filter_map(|n| nodes[n].poll_timeout()).min();
//!         match next { Some(t) if t <= until => *now = t, _ => break }
//!         for n in 0..2 { if up[n] { nodes[n].handle_timeout(*now); } }
//!         step(nodes, up, *now, w);
//!     }
//! };
//! run(&mut nodes, up, Instant::from_secs(10), &mut now, &mut wire);
//! assert_eq!(nodes[0].instance(id).unwrap().state(), State::Master);
//! assert_eq!(nodes[1].instance(id).unwrap().state(), State::Backup);
//! assert_eq!(wire.master[1], None);
//!
//! // Director 0 crashes: director 1 takes over exactly Master_Down_Interval
//! // (3 x 1 s + Skew_Time (256 - 100) / 256 s, RFC 3768) after the last
//! // advert it heard.
//! up[0] = false;
//! let last_heard = wire.heard[1];
//! run(&mut nodes, up, Instant::from_secs(20), &mut now, &mut wire);
//! let bound = nodes[1].instance(id).unwrap().master_down_interval();
//! assert_eq!(bound, Duration::from_micros(3_609_375));
//! assert_eq!(wire.heard[1], last_heard, "nothing heard after the crash");
//! assert_eq!(wire.master[1], Some(last_heard + bound));
//! assert_eq!(nodes[1].instance(id).unwrap().state(), State::Master);
//! ```

#[cfg(all(feature = "lb", feature = "check"))]
mod balancing;
#[cfg(feature = "config")]
pub mod build;
mod files;
mod process;
mod script;
#[cfg(all(feature = "sync", feature = "check"))]
mod sync;
mod timers;

#[cfg(all(feature = "lb", feature = "check"))]
pub use balancing::{
    BalancingStorage, CheckerId, CheckerSlot, FileCheck, ServerRef, ServerSlot, ServerState,
    ServiceSlot, ServiceState,
};

use core::fmt;
use core::net::IpAddr;

use heapless::Deque;

pub use files::{FileId, MAX_TRACK_FILES};
pub use process::ProcessTracker;
pub use script::ScriptTracker;
#[cfg(all(feature = "sync", feature = "check"))]
pub use sync::{
    DEFAULT_SYNC_GROUP, DEFAULT_SYNC_PORT, DEFAULT_SYNC_REFRESH, DEFAULT_SYNC_TTL, SyncSettings,
    SyncSlot, SyncStorage,
};
pub use timers::{Owner, TimerEntry, TimerQueue};

use crate::time::{Duration, Instant};
use crate::vrrp::{self, DefaultVips, Instance, State, SyncGroup, TrackId, VipStore};
use crate::wire::vrrp::Family;

/// An interface, numbered by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct IfaceId(pub u16);

/// A VRRP instance of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct InstanceId(pub u16);

/// A tracking script of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ScriptId(pub u16);

/// A `vrrp_track_process` of this node. Scripts, processes and tracked
/// files share the tracker slots ([`ScriptSlot`]), so a process's number
/// is its slot's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ProcessId(pub u16);

/// Tracker slots' track ids start here; interfaces' are their `IfaceId`.
const SCRIPT_TRACK_BASE: u16 = 0x8000;

impl IfaceId {
    /// The id an instance's config uses to track this interface.
    pub const fn track_id(self) -> TrackId {
        TrackId(self.0 & (SCRIPT_TRACK_BASE - 1))
    }
}

impl ScriptId {
    /// The id an instance's config uses to track this script.
    pub const fn track_id(self) -> TrackId {
        TrackId(SCRIPT_TRACK_BASE | self.0)
    }
}

impl ProcessId {
    /// The id an instance's config uses to track this process.
    pub const fn track_id(self) -> TrackId {
        TrackId(SCRIPT_TRACK_BASE | self.0)
    }
}

/// No instance: the end of an index chain or of the dirty list.
const NO_SLOT: u16 = u16::MAX;
/// Most instance slots a node uses (ids are `u16`; `NO_SLOT` is taken).
const MAX_INSTANCE_SLOTS: usize = NO_SLOT as usize;
/// The key of a slot that is not in the index ([`index_key`] never is).
const NO_KEY: u32 = u32::MAX;

/// An instance's identity on the wire as one word: interface, family and
/// VRID.
fn index_key(iface: IfaceId, vrid: u8, family: Family) -> u32 {
    let v6 = u32::from(family == Family::V6);
    (u32::from(iface.0) << 9) | (v6 << 8) | u32::from(vrid)
}

/// Storage for one VRRP instance, its VIPs in an `S` (see
/// [`VipStore`]). `Default` is an empty slot.
///
/// Each slot also carries one bucket of the node's instance index and its
/// links in the index and the dirty list, so both are sized by the slot
/// count and need no storage of their own. The index fields come first
/// (`repr(C)`), with a copy of the instance's key, so walking a chain
/// reads one cache line a slot, not the three the instance's interface,
/// VRID and family lie in: after a sleep those lines are cold, and a
/// backup of many instances looks one up per advert.
#[derive(Debug, Clone)]
#[repr(C)]
pub struct InstanceSlot<S = DefaultVips> {
    /// First instance of index bucket number (this slot's index).
    bucket: u16,
    /// Next instance in the same index bucket.
    chain: u16,
    /// The indexed instance's [`index_key`], `NO_KEY` when not indexed.
    key: u32,
    /// Next instance on the dirty list.
    next_dirty: u16,
    /// On the dirty list.
    dirty: bool,
    entry: Option<InstanceEntry<S>>,
}

impl<S> Default for InstanceSlot<S> {
    fn default() -> Self {
        InstanceSlot {
            entry: None,
            bucket: NO_SLOT,
            chain: NO_SLOT,
            key: NO_KEY,
            next_dirty: NO_SLOT,
            dirty: false,
        }
    }
}

impl<S> InstanceSlot<S> {
    /// The instance, unless it is gone and only its last outputs remain.
    fn live(&self) -> Option<&InstanceEntry<S>> {
        self.entry.as_ref().filter(|e| !e.retiring)
    }

    fn live_mut(&mut self) -> Option<&mut InstanceEntry<S>> {
        self.entry.as_mut().filter(|e| !e.retiring)
    }
}

#[derive(Debug, Clone)]
struct InstanceEntry<S> {
    vrrp: Instance<S>,
    iface: IfaceId,
    /// The caller's key (a name hash), to find it again on reload.
    key: u64,
    /// Index of its sync group.
    group: Option<u16>,
    /// The deadline last put in the timer queue.
    deadline: Instant,
    /// Removed: the slot is freed once its last outputs are handed out.
    retiring: bool,
}

/// Storage for one tracker: a tracking script, a tracked process or a
/// tracked file. `Default` is an empty slot.
#[derive(Debug, Clone, Default)]
pub struct ScriptSlot {
    entry: Option<ScriptEntry>,
}

#[derive(Debug, Clone)]
struct ScriptEntry {
    tracker: Tracker,
    key: u64,
    deadline: Instant,
}

/// What a tracker slot holds.
#[derive(Debug, Clone)]
enum Tracker {
    Script(ScriptTracker),
    Process(ProcessTracker),
    /// A `track_file`: the last value read (it has no up or down).
    File {
        value: i32,
    },
}

impl Tracker {
    fn is_up(&self) -> bool {
        match self {
            Tracker::Script(t) => t.is_up(),
            Tracker::Process(t) => t.is_up(),
            Tracker::File { .. } => true,
        }
    }

    fn deadline(&self) -> Instant {
        match self {
            Tracker::Script(t) => t.deadline(),
            Tracker::Process(t) => t.deadline(),
            Tracker::File { .. } => Instant::MAX,
        }
    }
}

/// Storage for one sync group. `Default` is an empty slot.
#[derive(Debug, Clone, Default)]
pub struct GroupSlot {
    group: Option<SyncGroup>,
}

/// Everything a node keeps, from the caller. The timer queue should have
/// room for twice the instances and scripts.
#[derive(Debug)]
pub struct NodeStorage<'a, S = DefaultVips> {
    /// VRRP instances.
    pub instances: &'a mut [InstanceSlot<S>],
    /// Tracking scripts and tracked processes.
    pub scripts: &'a mut [ScriptSlot],
    /// Sync groups.
    pub groups: &'a mut [GroupSlot],
    /// The timer queue.
    pub timers: &'a mut [TimerEntry],
}

/// What the driver feeds a node.
#[derive(Debug, Clone, Copy)]
pub enum Input<'p> {
    /// Start every instance and script (after feeding the current link
    /// states with `Link`).
    Start,
    /// Stop: masters resign with priority 0 and release their VIPs.
    Shutdown,
    /// A VRRP packet received on `iface`.
    Advert {
        /// Where it arrived.
        iface: IfaceId,
        /// IP source.
        src: IpAddr,
        /// IP destination.
        dst: IpAddr,
        /// TTL / hop limit.
        ttl: u8,
        /// The VRRP message.
        payload: &'p [u8],
    },
    /// An interface went up or down.
    Link {
        /// Which.
        iface: IfaceId,
        /// Its new state.
        up: bool,
    },
    /// A tracked file's value, read at start and whenever it changed (a
    /// missing file reads as 0: see [`crate::track_file::parse_value`]).
    TrackFile {
        /// Which file.
        file: FileId,
        /// The number it holds.
        value: i32,
    },
    /// A tracking script run ended (a run killed at its timeout failed).
    ScriptResult {
        /// Which script.
        script: ScriptId,
        /// Exit status 0.
        success: bool,
    },
    /// The driver counted the processes a tracked process matches: at
    /// start (before `Start`), then whenever the count changes.
    ProcessCount {
        /// Which tracked process.
        process: ProcessId,
        /// Matching processes running.
        count: u32,
    },
    /// A health-check probe ended.
    #[cfg(all(feature = "lb", feature = "check"))]
    ProbeResult {
        /// Which checker.
        checker: CheckerId,
        /// The probe's sequence number, from `Output::Probe`.
        seq: u32,
        /// How it went.
        result: crate::check::ProbeResult,
    },
    /// A datagram received on the connection sync socket (the UDP
    /// payload), from a peer director.
    #[cfg(all(feature = "sync", feature = "check"))]
    SyncReceive {
        /// The sync message.
        payload: &'p [u8],
    },
}

/// What a node asks the driver to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Something for one VRRP instance: see [`vrrp::Output`].
    Vrrp {
        /// Which instance.
        instance: InstanceId,
        /// What to do.
        event: vrrp::Output,
    },
    /// Run a tracking script now and report with `Input::ScriptResult`;
    /// kill it after `timeout`.
    RunScript {
        /// Which script.
        script: ScriptId,
        /// When to give up on it.
        timeout: Duration,
    },
    /// A tracking script changed state (for logs).
    ScriptChanged {
        /// Which script.
        script: ScriptId,
        /// Its new state.
        up: bool,
    },
    /// A tracked process changed state (for logs).
    ProcessChanged {
        /// Which tracked process.
        process: ProcessId,
        /// Its new state: enough matching processes run.
        up: bool,
    },
    /// Start a health-check probe now (see [`Node::checker`] for what and
    /// where) and report with `Input::ProbeResult`; a `MISC_CHECK` reports
    /// its script's exit status ([`crate::check::ProbeResult::Exit`]).
    /// Starting a probe for a checker that has one running replaces it.
    #[cfg(all(feature = "lb", feature = "check"))]
    Probe {
        /// Which checker.
        checker: CheckerId,
        /// Report the result with this.
        seq: u32,
        /// Give up after this long (the core will also time it out).
        timeout: Duration,
    },
    /// Abandon a probe (timed out, checks suspended, or the checker's
    /// settings changed on reload): its result would be ignored.
    #[cfg(all(feature = "lb", feature = "check"))]
    CancelProbe {
        /// Which checker.
        checker: CheckerId,
        /// Which probe.
        seq: u32,
        /// The core timed it out (a failure, to be logged as one); else it
        /// was abandoned.
        timed_out: bool,
    },
    /// Run the real server's `notify_up` (`up`) or `notify_down` script
    /// and log: it went up or down, or keepalived's notifier is due
    /// without a change (the first check of an `alpha` server failed; with
    /// `omega`, shutdown takes each live server down). Its health is
    /// [`Node::server`]`.healthy`.
    #[cfg(all(feature = "lb", feature = "check"))]
    ServerHealth {
        /// Which server.
        server: ServerRef,
        /// Its new health.
        up: bool,
    },
    /// Announce (hold on a local interface, for a BGP speaker to export) or
    /// withdraw an anycast service's VIP.
    #[cfg(all(feature = "lb", feature = "check"))]
    Announce {
        /// Which service.
        service: crate::lb::ServiceId,
        /// Announce (true) or withdraw.
        up: bool,
    },
    /// Run the service's `quorum_up` (`up`) or `quorum_down` script and
    /// log: it gained or lost its quorum, or keepalived's notifier is due
    /// (it starts without quorum and has a sorry server; with `omega`, at
    /// shutdown). The node switches the sorry server itself.
    #[cfg(all(feature = "lb", feature = "check"))]
    Quorum {
        /// Which service.
        service: crate::lb::ServiceId,
        /// Whether it has quorum now.
        up: bool,
    },
    /// Send a connection sync message of `len` bytes: its bytes are
    /// [`Node::sync_payload`] until the next `poll_output`; where it goes
    /// is [`Node::sync_settings`].
    #[cfg(all(feature = "sync", feature = "check"))]
    SyncTransmit {
        /// Its length.
        len: u16,
    },
}

/// Errors of building or changing a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NodeError {
    /// No free slot of this kind.
    Full(&'static str),
    /// The instance's configuration was refused.
    Vrrp(vrrp::ConfigError),
    /// Two instances on one interface with the same VRID and family.
    DuplicateVrid,
    /// No such instance, script or group.
    NoSuch(&'static str),
    /// The connection sync settings were refused.
    #[cfg(feature = "sync")]
    Sync(crate::sync::SyncConfigError),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Full(what) => {
                write!(f, "no room for another {what}: the node's storage is full")
            }
            NodeError::Vrrp(e) => write!(f, "{e}"),
            NodeError::DuplicateVrid => f.write_str(
                "another instance on this interface already uses this virtual_router_id",
            ),
            NodeError::NoSuch(what) => write!(f, "no such {what}"),
            #[cfg(feature = "sync")]
            NodeError::Sync(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for NodeError {}

impl From<vrrp::ConfigError> for NodeError {
    fn from(e: vrrp::ConfigError) -> Self {
        NodeError::Vrrp(e)
    }
}

/// Node-level counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Adverts for no configured instance (another router's VRID).
    pub adverts_unknown_vrid: u32,
    /// Adverts too short to carry a VRID.
    pub adverts_runt: u32,
    /// Script results or process counts for no configured script or
    /// tracked process.
    pub results_unknown_script: u32,
    /// File values for no configured track_file.
    pub results_unknown_file: u32,
    /// Probe results for no configured checker.
    pub results_unknown_checker: u32,
    /// Times the timer queue was rebuilt.
    pub timer_rebuilds: u32,
    /// Outputs lost because the driver did not drain the queue.
    pub outputs_dropped: u32,
    /// Health or quorum decisions the balancer could not apply (no free
    /// server slot, for a sorry server or a returning real server).
    pub balancer_refused: u32,
    /// Sync datagrams received while this node runs no connection sync.
    #[cfg(all(feature = "sync", feature = "check"))]
    pub sync_unconfigured: u32,
}

const NODE_QUEUE: usize = 16;
/// Room a timer or input step needs in the node queue before it runs.
const STEP_ROOM: usize = 4;

/// One director.
#[derive(Debug)]
pub struct Node<'a, S = DefaultVips> {
    instances: &'a mut [InstanceSlot<S>],
    scripts: &'a mut [ScriptSlot],
    groups: &'a mut [GroupSlot],
    timers: TimerQueue<'a>,
    now: Instant,
    started: bool,
    queue: Deque<Output, NODE_QUEUE>,
    /// The dirty list: instances with outputs waiting (or a step waiting
    /// for room), in the order they got them; linked through the slots.
    dirty_head: u16,
    dirty_tail: u16,
    stats: NodeStats,
    /// Bumped by each configuration build (reload bookkeeping).
    #[cfg(feature = "config")]
    generation: u8,
    #[cfg(all(feature = "lb", feature = "check"))]
    balancing: Option<balancing::Balancing<'a>>,
    #[cfg(all(feature = "sync", feature = "check"))]
    sync: Option<&'a mut SyncSlot>,
}

impl<'a, S: VipStore> Node<'a, S> {
    /// An empty node over `storage` (whatever the slots held is cleared).
    pub fn new(storage: NodeStorage<'a, S>) -> Self {
        storage.instances.fill(InstanceSlot::default());
        storage.scripts.fill(ScriptSlot::default());
        storage.groups.fill(GroupSlot::default());
        Node {
            instances: storage.instances,
            scripts: storage.scripts,
            groups: storage.groups,
            timers: TimerQueue::new(storage.timers),
            now: Instant::ZERO,
            started: false,
            queue: Deque::new(),
            dirty_head: NO_SLOT,
            dirty_tail: NO_SLOT,
            stats: NodeStats::default(),
            #[cfg(feature = "config")]
            generation: 0,
            #[cfg(all(feature = "lb", feature = "check"))]
            balancing: None,
            #[cfg(all(feature = "sync", feature = "check"))]
            sync: None,
        }
    }

    /// Ends the node and gives its storage back, to build a fresh one in
    /// the same memory (a restart without allocating). The balancer comes
    /// back whole: rebuild it with `Balancer::new(layout,
    /// balancer.into_storage(), ..)`; take connection sync storage back
    /// first with `take_sync_storage`.
    pub fn into_storage(self) -> NodeStorage<'a, S> {
        NodeStorage {
            instances: self.instances,
            scripts: self.scripts,
            groups: self.groups,
            timers: self.timers.into_storage(),
        }
    }

    /// Like [`Node::into_storage`], also giving back the balancing storage
    /// (with `seed` for its next life) when the node had one.
    #[cfg(all(feature = "lb", feature = "check"))]
    pub fn into_storage_with_balancing(
        self,
        seed: u64,
    ) -> (NodeStorage<'a, S>, Option<BalancingStorage<'a>>) {
        let balancing = self.balancing.map(|b| b.into_storage(seed));
        let storage = NodeStorage {
            instances: self.instances,
            scripts: self.scripts,
            groups: self.groups,
            timers: self.timers.into_storage(),
        };
        (storage, balancing)
    }

    /// Gives the node a load balancer and health checkers (a VRRP-only
    /// node has none). Do this before building from a configuration.
    #[cfg(all(feature = "lb", feature = "check"))]
    pub fn with_balancing(mut self, storage: BalancingStorage<'a>) -> Self {
        self.balancing = Some(balancing::Balancing::new(storage));
        self
    }

    /// Queues a node-level output. Only steps with a known small bound use
    /// the queue (a timer step checks `STEP_ROOM` first; an input pushes at
    /// most one); whatever may concern many items at once is recorded per
    /// item and handed out lazily by `poll_output`. A full queue therefore
    /// means the driver skipped draining: the output is dropped and counted.
    fn push_output(&mut self, out: Output) {
        if self.queue.push_back(out).is_err() {
            self.stats.outputs_dropped = self.stats.outputs_dropped.saturating_add(1);
        }
    }

    /// Node-level counters (each instance has its own: [`Instance::stats`]).
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// Whether `Start` was handled (and not `Shutdown` since).
    pub fn started(&self) -> bool {
        self.started
    }

    /// Adds a VRRP instance on `iface`. `key` identifies it across reloads
    /// (a hash of its name). A node that is running starts it at once.
    pub fn add_instance(
        &mut self,
        config: vrrp::Config,
        vips: &[IpAddr],
        excluded: &[IpAddr],
        iface: IfaceId,
        key: u64,
    ) -> Result<InstanceId, NodeError> {
        if self
            .find_instance(iface, config.vrid, config.family)
            .is_some()
        {
            return Err(NodeError::DuplicateVrid);
        }
        let vrrp = Instance::new(config, vips, excluded)?;
        let slots = self.slots();
        let index = self.instances[..slots]
            .iter()
            .position(|s| s.entry.is_none())
            .ok_or(NodeError::Full("VRRP instance"))?;
        self.instances[index].entry = Some(InstanceEntry {
            vrrp,
            iface,
            key,
            group: None,
            deadline: Instant::MAX,
            retiring: false,
        });
        self.index_instance(index);
        let id = InstanceId(index as u16);
        // Before it starts, so it starts with its trackers' states.
        self.apply_trackers(index);
        if self.started {
            self.with_instance(index, |i, now| i.handle(now, vrrp::Input::Start));
        }
        Ok(id)
    }

    /// Tells instance `index` the state of every tracker slot it tracks:
    /// the scripts and processes that are down, the files' values (it was
    /// just added or reconfigured: a tracker that changed earlier would
    /// otherwise count as up, or 0, until its next change).
    fn apply_trackers(&mut self, index: usize) {
        let Some(entry) = self.instances[index].live() else {
            return;
        };
        let mut inputs: heapless::Vec<vrrp::Input<'static>, { vrrp::MAX_TRACKS }> =
            heapless::Vec::new();
        for t in &entry.vrrp.config().tracks {
            let Some(slot) = t.id.0.checked_sub(SCRIPT_TRACK_BASE) else {
                continue;
            };
            let Some(e) = self
                .scripts
                .get(usize::from(slot))
                .and_then(|s| s.entry.as_ref())
            else {
                continue;
            };
            let input = match e.tracker {
                Tracker::File { value } => vrrp::Input::TrackValue { id: t.id, value },
                ref updown if !updown.is_up() => vrrp::Input::Track {
                    id: t.id,
                    up: false,
                },
                _ => continue,
            };
            // As many as the instance's tracks: cannot overflow.
            let _ = inputs.push(input);
        }
        if inputs.is_empty() {
            return;
        }
        self.with_instance(index, |i, now| {
            for input in inputs {
                i.handle(now, input);
            }
        });
    }

    /// Removes an instance; a master resigns first. It is gone at once for
    /// every lookup; its slot is freed when `poll_output` has handed out
    /// what the shutdown produced (so any number of removals fits).
    pub fn remove_instance(&mut self, id: InstanceId) -> Result<(), NodeError> {
        let index = usize::from(id.0);
        if self.instance(id).is_none() {
            return Err(NodeError::NoSuch("instance"));
        }
        self.with_instance(index, |i, now| i.handle(now, vrrp::Input::Shutdown));
        self.unindex_instance(index);
        let slot = &mut self.instances[index];
        if slot.dirty {
            if let Some(e) = slot.entry.as_mut() {
                e.retiring = true;
                e.group = None;
                e.deadline = Instant::MAX;
            }
        } else {
            // Nothing left to hand out: free it now.
            slot.entry = None;
        }
        self.prune_timers();
        for g in self.groups.iter_mut() {
            if let Some(group) = &g.group
                && group.contains(id.0)
            {
                let members: heapless::Vec<u16, { vrrp::MAX_GROUP_MEMBERS }> = group
                    .members()
                    .iter()
                    .copied()
                    .filter(|m| *m != id.0)
                    .collect();
                g.group = SyncGroup::new(&members);
            }
        }
        #[cfg(all(feature = "sync", feature = "check"))]
        self.update_sync_role();
        Ok(())
    }

    /// The instance, if it exists.
    pub fn instance(&self, id: InstanceId) -> Option<&Instance<S>> {
        self.instances
            .get(usize::from(id.0))?
            .live()
            .map(|e| &e.vrrp)
    }

    /// The interface an instance runs on.
    pub fn instance_iface(&self, id: InstanceId) -> Option<IfaceId> {
        self.instances
            .get(usize::from(id.0))?
            .live()
            .map(|e| e.iface)
    }

    /// The instance added with `key`.
    pub fn instance_by_key(&self, key: u64) -> Option<InstanceId> {
        self.instances
            .iter()
            .position(|s| s.live().is_some_and(|e| e.key == key))
            .map(|i| InstanceId(i as u16))
    }

    /// Every instance.
    pub fn instances(&self) -> impl Iterator<Item = (InstanceId, &Instance<S>)> + '_ {
        self.instances
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.live().map(|e| (InstanceId(i as u16), &e.vrrp)))
    }

    /// Changes an instance's configuration in place (no flap): see
    /// [`Instance::reconfigure`]. A different VRID or family is refused:
    /// remove and add instead.
    pub fn reconfigure_instance(
        &mut self,
        id: InstanceId,
        config: vrrp::Config,
        vips: &[IpAddr],
        excluded: &[IpAddr],
    ) -> Result<(), NodeError> {
        let index = usize::from(id.0);
        let entry = self
            .instances
            .get(index)
            .and_then(|s| s.live())
            .ok_or(NodeError::NoSuch("instance"))?;
        if entry.vrrp.config().vrid != config.vrid || entry.vrrp.config().family != config.family {
            return Err(NodeError::DuplicateVrid);
        }
        // Validate before touching anything.
        Instance::<S>::new(config.clone(), vips, excluded)?;
        self.with_instance(index, |i, now| {
            // Validated above; an error here cannot happen.
            let _ = i.reconfigure(now, config, vips, excluded);
        });
        self.apply_trackers(index);
        Ok(())
    }

    /// Makes the instances at `members` a sync group. Returns its index.
    pub fn add_sync_group(&mut self, members: &[InstanceId]) -> Result<u16, NodeError> {
        let mut indices: heapless::Vec<u16, { vrrp::MAX_GROUP_MEMBERS }> = heapless::Vec::new();
        for m in members {
            if self.instance(*m).is_none() {
                return Err(NodeError::NoSuch("instance"));
            }
            indices
                .push(m.0)
                .map_err(|_| NodeError::Full("sync group member"))?;
        }
        let group = SyncGroup::new(&indices).ok_or(NodeError::Full("sync group member"))?;
        let slot = self
            .groups
            .iter()
            .position(|g| g.group.is_none())
            .ok_or(NodeError::Full("sync group"))?;
        for m in members {
            if let Some(e) = self.instances[usize::from(m.0)].entry.as_mut() {
                e.group = Some(slot as u16);
            }
        }
        self.groups[slot].group = Some(group);
        Ok(slot as u16)
    }

    /// Removes every sync group (a reload re-adds the configured ones).
    pub fn clear_sync_groups(&mut self) {
        for g in self.groups.iter_mut() {
            g.group = None;
        }
        for s in self.instances.iter_mut() {
            if let Some(e) = s.entry.as_mut() {
                e.group = None;
            }
        }
    }

    /// Adds a tracking script. `key` identifies it across reloads.
    pub fn add_script(&mut self, tracker: ScriptTracker, key: u64) -> Result<ScriptId, NodeError> {
        let mut tracker = tracker;
        if self.started {
            tracker.start(self.now);
        }
        let index = self.add_tracker(Tracker::Script(tracker), key, "tracking script")?;
        Ok(ScriptId(index))
    }

    /// Adds a tracked process, up until the driver's first
    /// `Input::ProcessCount`. `key` identifies it across reloads.
    pub fn add_process(
        &mut self,
        tracker: ProcessTracker,
        key: u64,
    ) -> Result<ProcessId, NodeError> {
        let index = self.add_tracker(Tracker::Process(tracker), key, "tracked process")?;
        Ok(ProcessId(index))
    }

    fn add_tracker(
        &mut self,
        tracker: Tracker,
        key: u64,
        what: &'static str,
    ) -> Result<u16, NodeError> {
        let index = self
            .scripts
            .iter()
            .position(|s| s.entry.is_none())
            .filter(|&i| i < usize::from(SCRIPT_TRACK_BASE))
            .ok_or(NodeError::Full(what))?;
        self.scripts[index].entry = Some(ScriptEntry {
            tracker,
            key,
            deadline: Instant::MAX,
        });
        self.schedule(Owner::Script(index as u16));
        Ok(index as u16)
    }

    /// The tracking script with `key`, set to `tracker`: kept untouched
    /// when its settings are the same (a reload without a flap), given the
    /// new ones when they differ ([`Node::replace_script`]), added when
    /// new.
    pub fn set_script(&mut self, tracker: ScriptTracker, key: u64) -> Result<ScriptId, NodeError> {
        match self.script_by_key(key) {
            Some(id)
                if self
                    .script(id)
                    .is_some_and(|old| old.same_settings(&tracker)) =>
            {
                Ok(id)
            }
            Some(id) => self.replace_script(id, tracker).map(|()| id),
            None => self.add_script(tracker, key),
        }
    }

    /// The tracked process with `key`, set to `tracker` as
    /// [`Node::set_script`] sets a script.
    pub fn set_process(
        &mut self,
        tracker: ProcessTracker,
        key: u64,
    ) -> Result<ProcessId, NodeError> {
        match self.process_by_key(key) {
            Some(id)
                if self
                    .process(id)
                    .is_some_and(|old| old.same_settings(&tracker)) =>
            {
                Ok(id)
            }
            Some(id) => self.replace_process(id, tracker).map(|()| id),
            None => self.add_process(tracker, key),
        }
    }

    /// Replaces a script's settings (a reload changed them), keeping its
    /// state: a failing script keeps its weight penalty, so nothing flaps
    /// ([`ScriptTracker::reconfigure`]). A running node runs it again at
    /// once unless a run is in flight.
    pub fn replace_script(
        &mut self,
        id: ScriptId,
        tracker: ScriptTracker,
    ) -> Result<(), NodeError> {
        let started = self.started;
        let now = self.now;
        let entry = self
            .scripts
            .get_mut(usize::from(id.0))
            .and_then(|s| s.entry.as_mut())
            .ok_or(NodeError::NoSuch("script"))?;
        let was_up = entry.tracker.is_up();
        match &mut entry.tracker {
            Tracker::Script(t) if started => t.reconfigure(now, &tracker),
            // Not running yet: nothing to keep.
            t => *t = Tracker::Script(tracker),
        }
        let up = entry.tracker.is_up();
        if up != was_up {
            self.track(id.track_id(), up);
        }
        self.schedule(Owner::Script(id.0));
        Ok(())
    }

    /// Removes a tracking script; instances tracking it see it up.
    pub fn remove_script(&mut self, id: ScriptId) -> Result<(), NodeError> {
        self.remove_tracker(id.0, |t| matches!(t, Tracker::Script(_)), "script")
    }

    /// Replaces a tracked process's settings (a reload changed them),
    /// keeping its count and state ([`ProcessTracker::reconfigure`]).
    pub fn replace_process(
        &mut self,
        id: ProcessId,
        tracker: ProcessTracker,
    ) -> Result<(), NodeError> {
        let now = self.now;
        let Some(ScriptEntry {
            tracker: Tracker::Process(t),
            ..
        }) = self
            .scripts
            .get_mut(usize::from(id.0))
            .and_then(|s| s.entry.as_mut())
        else {
            return Err(NodeError::NoSuch("tracked process"));
        };
        let was_up = t.is_up();
        t.reconfigure(now, &tracker);
        let up = t.is_up();
        if up != was_up {
            self.track(id.track_id(), up);
        }
        self.schedule(Owner::Script(id.0));
        Ok(())
    }

    /// Removes a tracked process; instances tracking it see it up.
    pub fn remove_process(&mut self, id: ProcessId) -> Result<(), NodeError> {
        self.remove_tracker(
            id.0,
            |t| matches!(t, Tracker::Process(_)),
            "tracked process",
        )
    }

    fn remove_tracker(
        &mut self,
        index: u16,
        is_kind: fn(&Tracker) -> bool,
        what: &'static str,
    ) -> Result<(), NodeError> {
        let slot = self
            .scripts
            .get_mut(usize::from(index))
            .filter(|s| s.entry.as_ref().is_some_and(|e| is_kind(&e.tracker)))
            .ok_or(NodeError::NoSuch(what))?;
        slot.entry = None;
        self.prune_timers();
        self.track(ScriptId(index).track_id(), true);
        Ok(())
    }

    /// The script added with `key`.
    pub fn script_by_key(&self, key: u64) -> Option<ScriptId> {
        self.tracker_by_key(key, |t| matches!(t, Tracker::Script(_)))
            .map(ScriptId)
    }

    /// The tracked process added with `key`.
    pub fn process_by_key(&self, key: u64) -> Option<ProcessId> {
        self.tracker_by_key(key, |t| matches!(t, Tracker::Process(_)))
            .map(ProcessId)
    }

    fn tracker_by_key(&self, key: u64, is_kind: fn(&Tracker) -> bool) -> Option<u16> {
        self.scripts
            .iter()
            .position(|s| {
                s.entry
                    .as_ref()
                    .is_some_and(|e| e.key == key && is_kind(&e.tracker))
            })
            .map(|i| i as u16)
    }

    /// A script's tracker.
    pub fn script(&self, id: ScriptId) -> Option<&ScriptTracker> {
        match &self.scripts.get(usize::from(id.0))?.entry.as_ref()?.tracker {
            Tracker::Script(t) => Some(t),
            _ => None,
        }
    }

    /// A tracked process's tracker.
    pub fn process(&self, id: ProcessId) -> Option<&ProcessTracker> {
        match &self.scripts.get(usize::from(id.0))?.entry.as_ref()?.tracker {
            Tracker::Process(t) => Some(t),
            _ => None,
        }
    }

    /// Applies one input at `now`. Drain `poll_output` afterwards.
    pub fn handle(&mut self, now: Instant, input: Input<'_>) {
        self.now = self.now.max(now);
        match input {
            Input::Start => self.start(),
            Input::Shutdown => {
                self.started = false;
                for index in 0..self.instances.len() {
                    self.with_instance(index, |i, now| i.handle(now, vrrp::Input::Shutdown));
                }
                #[cfg(all(feature = "lb", feature = "check"))]
                {
                    self.update_announcements();
                    self.omega_shutdown();
                }
                #[cfg(all(feature = "sync", feature = "check"))]
                self.update_sync_role();
            }
            Input::Advert {
                iface,
                src,
                dst,
                ttl,
                payload,
            } => self.advert(iface, src, dst, ttl, payload),
            Input::Link { iface, up } => {
                for index in 0..self.instances.len() {
                    let own = self.instances[index]
                        .live()
                        .is_some_and(|e| e.iface == iface);
                    self.with_instance(index, |i, now| {
                        if own {
                            i.handle(now, vrrp::Input::Link { up });
                        }
                        i.handle(
                            now,
                            vrrp::Input::Track {
                                id: iface.track_id(),
                                up,
                            },
                        );
                    });
                }
            }
            Input::TrackFile { file, value } => self.track_file_input(file, value),
            Input::ScriptResult { script, success } => {
                self.tracker_input(script.0, |t, now| match t {
                    Tracker::Script(t) => Some(t.result(now, success)),
                    _ => None,
                })
            }
            Input::ProcessCount { process, count } => {
                self.tracker_input(process.0, |t, now| match t {
                    Tracker::Process(t) => Some(t.report(now, count)),
                    _ => None,
                })
            }
            #[cfg(all(feature = "lb", feature = "check"))]
            Input::ProbeResult {
                checker,
                seq,
                result,
            } => self.probe_result(checker, seq, result),
            #[cfg(all(feature = "sync", feature = "check"))]
            Input::SyncReceive { payload } => self.sync_receive(payload),
        }
    }

    /// Feeds tracker slot `index` through `f`, which returns whether the
    /// tracker flipped, or `None` when the slot holds another kind (the
    /// input is counted as for no tracker).
    fn tracker_input(
        &mut self,
        index: u16,
        f: impl FnOnce(&mut Tracker, Instant) -> Option<Option<bool>>,
    ) {
        let now = self.now;
        let Some(flip) = self
            .scripts
            .get_mut(usize::from(index))
            .and_then(|s| s.entry.as_mut())
            .and_then(|e| f(&mut e.tracker, now))
        else {
            self.stats.results_unknown_script = self.stats.results_unknown_script.saturating_add(1);
            return;
        };
        if let Some(up) = flip {
            self.tracker_changed(index, up);
        }
        self.schedule(Owner::Script(index));
    }

    /// Tracker slot `index` went up or down: said, and told to the
    /// instances tracking it.
    fn tracker_changed(&mut self, index: u16, up: bool) {
        let script = self.scripts[usize::from(index)]
            .entry
            .as_ref()
            .is_some_and(|e| matches!(e.tracker, Tracker::Script(_)));
        self.push_output(if script {
            Output::ScriptChanged {
                script: ScriptId(index),
                up,
            }
        } else {
            Output::ProcessChanged {
                process: ProcessId(index),
                up,
            }
        });
        self.track(ScriptId(index).track_id(), up);
    }

    fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        let now = self.now;
        // Scripts first, so instances start with their tracking state.
        for index in 0..self.scripts.len() {
            let Some(entry) = self.scripts[index].entry.as_mut() else {
                continue;
            };
            if let Tracker::Script(t) = &mut entry.tracker {
                t.start(now);
            }
            let up = entry.tracker.is_up();
            if !up {
                self.track(ScriptId(index as u16).track_id(), false);
            }
            self.schedule(Owner::Script(index as u16));
        }
        for index in 0..self.instances.len() {
            self.with_instance(index, |i, now| i.handle(now, vrrp::Input::Start));
        }
        #[cfg(all(feature = "lb", feature = "check"))]
        {
            self.start_checkers();
            self.update_announcements();
        }
        #[cfg(all(feature = "sync", feature = "check"))]
        self.update_sync_role();
    }

    fn track(&mut self, id: TrackId, up: bool) {
        for index in 0..self.instances.len() {
            let tracks = self.instances[index]
                .live()
                .is_some_and(|e| e.vrrp.config().tracks.iter().any(|t| t.id == id));
            if tracks {
                self.with_instance(index, |i, now| i.handle(now, vrrp::Input::Track { id, up }));
            }
        }
    }

    fn advert(&mut self, iface: IfaceId, src: IpAddr, dst: IpAddr, ttl: u8, payload: &[u8]) {
        let Some(&vrid) = payload.get(1) else {
            self.stats.adverts_runt = self.stats.adverts_runt.saturating_add(1);
            return;
        };
        match self.find_instance(iface, vrid, Family::of(&src)) {
            Some(index) => self.with_instance(index, |i, now| {
                i.handle(
                    now,
                    vrrp::Input::Advert {
                        src,
                        dst,
                        ttl,
                        payload,
                    },
                )
            }),
            None => {
                self.stats.adverts_unknown_vrid = self.stats.adverts_unknown_vrid.saturating_add(1)
            }
        }
    }

    /// Runs `f` on instance `index` (if any and not removed), then
    /// reschedules it and puts it on the dirty list if it has outputs.
    fn with_instance(&mut self, index: usize, f: impl FnOnce(&mut Instance<S>, Instant)) {
        let now = self.now;
        let Some(entry) = self.instances.get_mut(index).and_then(|s| s.live_mut()) else {
            return;
        };
        f(&mut entry.vrrp, now);
        if entry.vrrp.has_output() {
            self.mark_dirty(index);
        }
        self.schedule(Owner::Instance(index as u16));
    }

    /// Instance slots in use: every slot, up to what `u16` ids can name.
    fn slots(&self) -> usize {
        self.instances.len().min(MAX_INSTANCE_SLOTS)
    }

    /// The index bucket of an [`index_key`]: Fibonacci hashing
    /// onto the slots. Unkeyed on purpose: only the configuration adds
    /// instances, so a packet can choose which chain it walks but never
    /// lengthen one. Call only with at least one slot.
    fn bucket_of(&self, key: u32) -> usize {
        let h = key.wrapping_mul(0x9e37_79b9);
        ((u64::from(h) * self.slots() as u64) >> 32) as usize
    }

    /// The instance on `iface` with `vrid` and `family`: one index bucket,
    /// its chain as long as the configured instances hashed there.
    fn find_instance(&self, iface: IfaceId, vrid: u8, family: Family) -> Option<usize> {
        if self.slots() == 0 {
            return None;
        }
        let key = index_key(iface, vrid, family);
        let mut i = self.instances[self.bucket_of(key)].bucket;
        while i != NO_SLOT {
            let slot = &self.instances[usize::from(i)];
            // Only live instances are indexed (added, not yet retiring).
            if slot.key == key {
                return Some(usize::from(i));
            }
            i = slot.chain;
        }
        None
    }

    /// The index key of the (live) instance at `index`.
    fn live_key(&self, index: usize) -> Option<u32> {
        let e = self.instances[index].live()?;
        let c = e.vrrp.config();
        Some(index_key(e.iface, c.vrid, c.family))
    }

    /// Puts the instance at `index` in the index (it was just added).
    fn index_instance(&mut self, index: usize) {
        let Some(key) = self.live_key(index) else {
            return;
        };
        let b = self.bucket_of(key);
        self.instances[index].key = key;
        self.instances[index].chain = self.instances[b].bucket;
        self.instances[b].bucket = index as u16;
    }

    /// Takes the instance at `index` out of the index (before it retires).
    fn unindex_instance(&mut self, index: usize) {
        let Some(key) = self.live_key(index) else {
            return;
        };
        let b = self.bucket_of(key);
        self.instances[index].key = NO_KEY;
        let (me, next) = (index as u16, self.instances[index].chain);
        if self.instances[b].bucket == me {
            self.instances[b].bucket = next;
        } else {
            let mut i = self.instances[b].bucket;
            while i != NO_SLOT {
                let slot = &mut self.instances[usize::from(i)];
                if slot.chain == me {
                    slot.chain = next;
                    break;
                }
                i = slot.chain;
            }
        }
        self.instances[index].chain = NO_SLOT;
    }

    /// Appends the instance at `index` to the dirty list (once).
    fn mark_dirty(&mut self, index: usize) {
        let slot = &mut self.instances[index];
        if slot.dirty {
            return;
        }
        slot.dirty = true;
        slot.next_dirty = NO_SLOT;
        match self.dirty_tail {
            NO_SLOT => self.dirty_head = index as u16,
            tail => self.instances[usize::from(tail)].next_dirty = index as u16,
        }
        self.dirty_tail = index as u16;
    }

    /// Takes the dirty list's first instance off it.
    fn pop_dirty(&mut self) {
        let slot = &mut self.instances[usize::from(self.dirty_head)];
        slot.dirty = false;
        self.dirty_head = slot.next_dirty;
        slot.next_dirty = NO_SLOT;
        if self.dirty_head == NO_SLOT {
            self.dirty_tail = NO_SLOT;
        }
    }

    /// Puts `owner`'s current deadline in the timer queue if it changed.
    fn schedule(&mut self, owner: Owner) {
        let deadline = match owner {
            Owner::Instance(i) => match self.instances[usize::from(i)].live_mut() {
                Some(e) => {
                    let at = e.vrrp.poll_timeout().unwrap_or(Instant::MAX);
                    if at == e.deadline {
                        return;
                    }
                    e.deadline = at;
                    at
                }
                None => return,
            },
            Owner::Script(i) => match self.scripts[usize::from(i)].entry.as_mut() {
                Some(e) => {
                    let at = e.tracker.deadline();
                    if at == e.deadline {
                        return;
                    }
                    e.deadline = at;
                    at
                }
                None => return,
            },
            #[cfg(all(feature = "lb", feature = "check"))]
            Owner::Checker(i) => {
                let Some(e) = self
                    .balancing
                    .as_mut()
                    .and_then(|b| b.checkers.get_mut(i as usize))
                    .and_then(|c| c.entry.as_mut())
                else {
                    return;
                };
                let at = e.checker.deadline();
                if at == e.deadline {
                    return;
                }
                e.deadline = at;
                at
            }
            #[cfg(all(feature = "lb", feature = "check"))]
            Owner::Balancer => {
                let Some(b) = self.balancing.as_mut() else {
                    return;
                };
                let at = b.balancer.poll_timeout().unwrap_or(Instant::MAX);
                if at == b.balancer_deadline {
                    return;
                }
                b.balancer_deadline = at;
                at
            }
            #[cfg(all(feature = "sync", feature = "check"))]
            Owner::Sync => match self.sync_deadline_changed() {
                Some(at) => at,
                None => return,
            },
            #[cfg(not(all(feature = "lb", feature = "check")))]
            Owner::Checker(_) | Owner::Balancer => return,
            #[cfg(not(all(feature = "sync", feature = "check")))]
            Owner::Sync => return,
        };
        if !self.timers.push(deadline, owner) {
            self.rebuild_timers();
        }
        self.prune_timers();
    }

    /// Whether the queue entry `(at, owner)` is its owner's current
    /// deadline (not left behind by a change).
    fn timer_live(&self, at: Instant, owner: Owner) -> bool {
        match owner {
            Owner::Instance(i) => self
                .instances
                .get(usize::from(i))
                .and_then(|s| s.live())
                .is_some_and(|e| e.deadline == at),
            Owner::Script(i) => self
                .scripts
                .get(usize::from(i))
                .and_then(|s| s.entry.as_ref())
                .is_some_and(|e| e.deadline == at),
            #[cfg(all(feature = "lb", feature = "check"))]
            Owner::Checker(i) => self
                .balancing
                .as_ref()
                .and_then(|b| b.checkers.get(i as usize))
                .and_then(|c| c.entry.as_ref())
                .is_some_and(|e| e.deadline == at),
            #[cfg(all(feature = "lb", feature = "check"))]
            Owner::Balancer => self
                .balancing
                .as_ref()
                .is_some_and(|b| b.balancer_deadline == at),
            #[cfg(all(feature = "sync", feature = "check"))]
            Owner::Sync => self.sync_deadline() == Some(at),
            #[cfg(not(all(feature = "lb", feature = "check")))]
            Owner::Checker(_) | Owner::Balancer => false,
            #[cfg(not(all(feature = "sync", feature = "check")))]
            Owner::Sync => false,
        }
    }

    /// Pops stale entries off the top of the timer queue, so
    /// [`Node::poll_timeout`] is a live deadline. Call after anything that
    /// changes or drops an owner's deadline. Bounded by the queue's length;
    /// each entry is popped once.
    pub(super) fn prune_timers(&mut self) {
        while let Some((at, owner)) = self.timers.peek() {
            if self.timer_live(at, owner) {
                break;
            }
            self.timers.pop();
        }
    }

    /// Drops stale entries by refilling the queue from every owner.
    fn rebuild_timers(&mut self) {
        self.stats.timer_rebuilds = self.stats.timer_rebuilds.saturating_add(1);
        self.timers.clear();
        for (i, s) in self.instances.iter().enumerate() {
            if let Some(e) = &s.entry {
                // Capacity is checked at build time: one entry per owner fits.
                let _ = self.timers.push(e.deadline, Owner::Instance(i as u16));
            }
        }
        for (i, s) in self.scripts.iter().enumerate() {
            if let Some(e) = &s.entry {
                let _ = self.timers.push(e.deadline, Owner::Script(i as u16));
            }
        }
        #[cfg(all(feature = "lb", feature = "check"))]
        if let Some(b) = &self.balancing {
            for (i, c) in b.checkers.iter().enumerate() {
                if let Some(e) = &c.entry {
                    let _ = self.timers.push(e.deadline, Owner::Checker(i as u32));
                }
            }
            let _ = self.timers.push(b.balancer_deadline, Owner::Balancer);
        }
        #[cfg(all(feature = "sync", feature = "check"))]
        if let Some(at) = self.sync_deadline() {
            let _ = self.timers.push(at, Owner::Sync);
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let now = self.now;
        // Bounded: each owner's deadline moves past `now` or to MAX once
        // handled, so at most one live entry per owner fires.
        let mut budget = self.timers.capacity() + 1;
        while budget > 0 {
            budget -= 1;
            // Leave the rest due: the driver drains, sees the deadline
            // passed and calls again.
            if self.queue.capacity() - self.queue.len() < STEP_ROOM {
                break;
            }
            let Some((at, owner)) = self.timers.pop_due(now) else {
                break;
            };
            match owner {
                Owner::Instance(i) => {
                    let index = usize::from(i);
                    let live = self.instances[index]
                        .live()
                        .is_some_and(|e| e.deadline == at);
                    if live {
                        if let Some(e) = self.instances[index].entry.as_mut() {
                            e.deadline = Instant::MAX;
                        }
                        self.with_instance(index, |inst, now| inst.handle_timeout(now));
                    }
                }
                Owner::Script(i) => {
                    let index = usize::from(i);
                    let Some(e) = self.scripts[index].entry.as_mut() else {
                        continue;
                    };
                    if e.deadline != at {
                        continue;
                    }
                    e.deadline = Instant::MAX;
                    match &mut e.tracker {
                        Tracker::Script(t) => {
                            if t.due(now) {
                                let timeout = t.timeout();
                                self.push_output(Output::RunScript {
                                    script: ScriptId(i),
                                    timeout,
                                });
                            }
                        }
                        Tracker::Process(t) => {
                            if let Some(up) = t.timeout(now) {
                                self.tracker_changed(i, up);
                            }
                        }
                        Tracker::File { .. } => {}
                    }
                    self.schedule(owner);
                }
                #[cfg(all(feature = "lb", feature = "check"))]
                Owner::Checker(i) => self.checker_timeout(CheckerId(i), at),
                #[cfg(all(feature = "lb", feature = "check"))]
                Owner::Balancer => self.balancer_timeout(at),
                #[cfg(all(feature = "sync", feature = "check"))]
                Owner::Sync => self.sync_timeout(at),
                #[cfg(not(all(feature = "lb", feature = "check")))]
                Owner::Checker(_) | Owner::Balancer => {}
                #[cfg(not(all(feature = "sync", feature = "check")))]
                Owner::Sync => {}
            }
        }
        self.prune_timers();
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next: the
    /// earliest live deadline (stale queue entries are dropped from the
    /// top as deadlines change), so a call at this time always has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|(at, _)| at)
    }

    /// The next output. Drain after every `handle*` call (and, with
    /// connection sync, after `classify`: a full journal is sent at once).
    ///
    /// Order (deterministic): each call first hands out what the node's
    /// own small queue holds (script runs, probes and the like, in the
    /// order they were queued); then the instances' outputs, instance by
    /// instance in the order they got something to hand out since they
    /// were last drained, all of one instance's (in its own order) before
    /// the next's; then the balancing part's (checkers, servers, services,
    /// each by index); then connection sync's. Only instances that queued
    /// an output or deferred a step are visited.
    pub fn poll_output(&mut self) -> Option<Output> {
        #[cfg(all(feature = "sync", feature = "check"))]
        self.sync_forget_pending();
        if let Some(out) = self.queue.pop_front() {
            return Some(out);
        }
        while self.dirty_head != NO_SLOT {
            let index = usize::from(self.dirty_head);
            let event = self.instances[index]
                .entry
                .as_mut()
                .and_then(|e| e.vrrp.poll_output());
            let Some(event) = event else {
                // Drained (a step that waited ran with the last output).
                self.pop_dirty();
                let slot = &mut self.instances[index];
                if slot.entry.as_ref().is_some_and(|e| e.retiring) {
                    // Removed, and its last outputs are out: free the slot.
                    slot.entry = None;
                }
                continue;
            };
            // A step that waited for room may just have run and moved timers.
            self.schedule(Owner::Instance(index as u16));
            if let vrrp::Output::StateChanged { to, reason, .. } = event
                && reason != vrrp::Reason::SyncGroup
            {
                self.follow_group(index, to);
            }
            #[cfg(all(feature = "lb", feature = "check"))]
            self.vrrp_changed(&event);
            #[cfg(all(feature = "sync", feature = "check"))]
            if matches!(event, vrrp::Output::StateChanged { .. }) {
                self.update_sync_role();
            }
            return Some(Output::Vrrp {
                instance: InstanceId(index as u16),
                event,
            });
        }
        #[cfg(all(feature = "lb", feature = "check"))]
        if let Some(out) = self.poll_balancing_output() {
            return Some(out);
        }
        #[cfg(all(feature = "sync", feature = "check"))]
        if let Some(out) = self.poll_sync_output() {
            return Some(out);
        }
        None
    }

    /// Moves the other members of `index`'s sync group to `to`.
    fn follow_group(&mut self, index: usize, to: State) {
        let Some(g) = self.instances[index].entry.as_ref().and_then(|e| e.group) else {
            return;
        };
        let Some(group) = self
            .groups
            .get(usize::from(g))
            .and_then(|g| g.group.clone())
        else {
            return;
        };
        let Some(target) = group.follow(index as u16, to) else {
            return;
        };
        for &m in group.members() {
            if usize::from(m) != index {
                self.with_instance(usize::from(m), |i, now| i.force(now, target));
            }
        }
    }

    /// Builds the advert `instance` asked for into `buf`, from `src` to `dst`.
    pub fn emit_advert(
        &self,
        instance: InstanceId,
        priority: u8,
        src: IpAddr,
        dst: IpAddr,
        buf: &mut [u8],
    ) -> Option<usize> {
        self.instance(instance)?
            .emit_advert(priority, src, dst, buf)
            .ok()
    }
}
