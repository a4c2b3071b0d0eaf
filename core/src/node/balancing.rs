//! The node's load-balancing side: virtual services and real servers as the
//! configuration has them, their health checkers, and what checks decide
//! (keepalived's ipwrapper.c reactions): a real server is up while every
//! checker of it is up; a down server is removed from scheduling, or kept
//! with weight 0 under `inhibit_on_failure`; `misc_dynamic` results set its
//! weight, and `FILE_CHECK`s' files add to it or fail it
//! ([`FileCheck`]); a service below its quorum switches to its sorry server (listed
//! only then, or always at weight 0 with `sorry_server_inhibit`); with
//! `ha_suspend` a service's checkers pause while this node does not hold
//! its VIP; with `omega` shutdown runs the down notifiers. Existing
//! connections are the balancer's business.
//!
//! Effects that may concern many items at once (server health and quorum
//! notifications, announcements, probes abandoned by a suspension or a
//! reload) are recorded per item and handed out lazily by
//! [`Node::poll_output`], so no step can overflow the output queue.

use core::net::IpAddr;

use heapless::Deque;

use super::{FileId, Node, NodeError, Output, Owner};
use crate::check::{Checker, CheckerEvent, ProbeResult, Quorum};
use crate::lb::{
    Balancer, Flow, ForwardMethod, RealServer, ServerId, ServiceConfig, ServiceId, ServiceKey,
    Verdict,
};
use crate::rand::Prng;
use crate::time::Instant;
use crate::track_file::{Effect, REAL_SERVER_WEIGHT_MAX};
use crate::vrrp::{self, State, VipStore};

/// A real server of this node (stable across health changes, unlike the
/// balancer's id, which a removal frees).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ServerRef(pub u32);

/// A health checker of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CheckerId(pub u32);

/// A real server as configured, and what its checks decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    /// Its service.
    pub service: ServiceId,
    /// Its configuration (weight as configured).
    pub config: RealServer,
    /// Weight last set by a `misc_dynamic` check.
    pub dynamic_weight: Option<u32>,
    /// Its `FILE_CHECK`s.
    pub file_checks: heapless::Vec<FileCheck, { crate::track_file::MAX_FILE_CHECKS }>,
    /// `inhibit_on_failure`.
    pub inhibit_on_failure: bool,
    /// Every checker of it is up.
    pub healthy: bool,
    /// Its id in the balancer while listed.
    pub listed: Option<ServerId>,
    /// The owner's key (reloads).
    pub key: u64,
    /// The owner's tag (a reload's generation).
    pub mark: u8,
}

impl ServerState {
    /// The weight it schedules with while healthy: the `misc_dynamic` one
    /// or the configured one, plus what its `FILE_CHECK`s add, kept within
    /// 0..=65535 (keepalived.conf(5) `misc_dynamic`: the adjustments of
    /// the server's checkers add up).
    pub fn weight(&self) -> u32 {
        let base = i64::from(self.dynamic_weight.unwrap_or(self.config.weight));
        let files: i64 = self
            .file_checks
            .iter()
            .map(|f| i64::from(f.effect().adjustment()))
            .sum();
        (base + files).clamp(0, i64::from(REAL_SERVER_WEIGHT_MAX)) as u32
    }

    /// Whether a `FILE_CHECK` of it fails.
    pub fn file_fault(&self) -> bool {
        self.file_checks.iter().any(|f| f.effect() == Effect::Fault)
    }
}

/// A real server's `FILE_CHECK`: the file's value times its weight is
/// added to the server's weight; a product of -2147483647 or less, or with
/// weight 0 a non-zero value, fails the check and the server
/// ([`Effect::real_server`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileCheck {
    /// The tracked file.
    pub file: FileId,
    /// Its weight (`FILE_CHECK`'s, else the track_file's).
    pub weight: i32,
    /// `reverse`.
    pub reverse: bool,
    /// The file's last value.
    pub value: i32,
}

impl FileCheck {
    /// What the file's value does now.
    pub fn effect(&self) -> Effect {
        Effect::real_server(self.value, self.weight, self.reverse)
    }
}

/// Notifications waiting per item: a driver drains after every step, so
/// two (a flip and its flip back) is the most one item can have.
const PENDING: usize = 2;

/// Storage for one real server. `Default` is empty.
#[derive(Debug, Clone, Default)]
pub struct ServerSlot {
    pub(super) entry: Option<ServerState>,
    /// `ServerHealth` outputs not yet handed out.
    health: Deque<bool, PENDING>,
}

/// Per-service state the balancer does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    /// Quorum and hysteresis.
    pub quorum: Quorum,
    /// `sorry_server`.
    pub sorry: Option<(IpAddr, u16)>,
    /// `sorry_server_inhibit`: the sorry server stays listed (taking no new
    /// flows) while quorum holds, instead of being removed.
    pub sorry_inhibit: bool,
    /// How the sorry server forwards: `sorry_server_lvs_method`, else the
    /// virtual server's `lb_kind`.
    pub sorry_method: ForwardMethod,
    /// `ha_suspend`.
    pub ha_suspend: bool,
    /// Checks are paused now (ha_suspend and the VIP is elsewhere).
    pub suspended: bool,
    /// `omega`: at shutdown, `notify_down` of each live server and
    /// `quorum_down` run.
    pub omega: bool,
    /// vrlb's `anycast`: the VIP is announced (held locally, for a BGP
    /// speaker to export) only while the service has quorum.
    pub anycast: bool,
    /// Whether the node currently asks for the VIP to be announced.
    pub announced: bool,
}

impl ServiceState {
    /// Whether new flows go to the sorry server (quorum lost).
    pub fn sorry_active(&self) -> bool {
        self.sorry.is_some() && !self.quorum.is_up()
    }

    /// The sorry server as the balancer should list it now: while quorum
    /// is lost, and always with `sorry_server_inhibit` (keepalived
    /// ipwrapper.c `update_quorum_state`, `init_service_vs`).
    pub fn sorry_listed(&self) -> Option<RealServer> {
        self.sorry
            .filter(|_| self.sorry_inhibit || !self.quorum.is_up())
            .map(|(addr, port)| RealServer::new(addr, port).with_method(self.sorry_method))
    }
}

/// Storage for one service's state. `Default` is empty.
#[derive(Debug, Clone, Default)]
pub struct ServiceSlot {
    pub(super) entry: Option<ServiceState>,
    /// `Quorum` outputs not yet handed out.
    quorum: Deque<bool, PENDING>,
    /// An `Announce` output is due.
    announce: bool,
    /// The sorry server the balancer lists now.
    sorry_listed: Option<RealServer>,
    /// Scratch: its suspension changed in this pass.
    suspension_changed: bool,
}

#[derive(Debug, Clone)]
pub(super) struct CheckerEntry {
    pub(super) checker: Checker,
    pub(super) server: ServerRef,
    pub(super) key: u64,
    pub(super) deadline: Instant,
    pub(super) mark: u8,
    /// Abandoned probes whose `CancelProbe` is not yet handed out.
    cancels: Deque<u32, PENDING>,
}

/// Storage for one checker. `Default` is empty.
#[derive(Debug, Clone, Default)]
pub struct CheckerSlot {
    pub(super) entry: Option<CheckerEntry>,
}

/// The load-balancing part of [`super::NodeStorage`].
pub struct BalancingStorage<'a> {
    /// The balancer (built over its own storage).
    pub balancer: Balancer<'a>,
    /// One per balancer service slot.
    pub services: &'a mut [ServiceSlot],
    /// One per configured real server.
    pub servers: &'a mut [ServerSlot],
    /// One per configured checker.
    pub checkers: &'a mut [CheckerSlot],
    /// Seed of the checkers' warmup draws.
    pub seed: u64,
}

impl core::fmt::Debug for BalancingStorage<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BalancingStorage")
            .field("services", &self.services.len())
            .field("servers", &self.servers.len())
            .field("checkers", &self.checkers.len())
            .finish_non_exhaustive()
    }
}

/// Lowest index that may have something pending, per kind of item
/// (`usize::MAX`: none).
#[derive(Debug, Clone, Copy)]
struct Dirty {
    checkers: usize,
    servers: usize,
    services: usize,
}

impl Dirty {
    const NONE: Dirty = Dirty {
        checkers: usize::MAX,
        servers: usize::MAX,
        services: usize::MAX,
    };
}

pub(super) struct Balancing<'a> {
    pub(super) balancer: Balancer<'a>,
    pub(super) services: &'a mut [ServiceSlot],
    pub(super) servers: &'a mut [ServerSlot],
    pub(super) checkers: &'a mut [CheckerSlot],
    pub(super) prng: Prng,
    pub(super) balancer_deadline: Instant,
    /// Set while a configuration is being applied, so quorum is judged on
    /// the whole new server set, not on each step of building it.
    pub(super) quorum_frozen: bool,
    dirty: Dirty,
}

impl core::fmt::Debug for Balancing<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Balancing")
            .field("services", &self.services.len())
            .field("servers", &self.servers.len())
            .field("checkers", &self.checkers.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Balancing<'a> {
    pub(super) fn into_storage(self, seed: u64) -> BalancingStorage<'a> {
        BalancingStorage {
            balancer: self.balancer,
            services: self.services,
            servers: self.servers,
            checkers: self.checkers,
            seed,
        }
    }

    pub(super) fn new(s: BalancingStorage<'a>) -> Self {
        s.services.fill(ServiceSlot::default());
        s.servers.fill(ServerSlot::default());
        s.checkers.fill(CheckerSlot::default());
        Balancing {
            balancer: s.balancer,
            services: s.services,
            servers: s.servers,
            checkers: s.checkers,
            prng: Prng::new(s.seed),
            balancer_deadline: Instant::MAX,
            quorum_frozen: false,
            dirty: Dirty::NONE,
        }
    }

    fn service_of(&self, server: ServerRef) -> Option<ServiceId> {
        self.servers
            .get(server.0 as usize)?
            .entry
            .as_ref()
            .map(|s| s.service)
    }

    fn suspended(&self, server: ServerRef) -> bool {
        self.service_of(server)
            .and_then(|id| self.services.get(usize::from(id.0))?.entry.as_ref())
            .is_some_and(|s| s.suspended)
    }
}

fn lb_error(_: crate::lb::LbError) -> NodeError {
    NodeError::Full("real server or service in the balancer")
}

impl<'a, S: VipStore> Node<'a, S> {
    fn balancing(&mut self) -> Result<&mut Balancing<'a>, NodeError> {
        self.balancing.as_mut().ok_or(NodeError::NoSuch("balancer"))
    }

    /// The balancer, if this node balances.
    pub fn balancer(&self) -> Option<&Balancer<'a>> {
        self.balancing.as_ref().map(|b| &b.balancer)
    }

    /// The data-plane fast path: which real server gets this packet.
    pub fn classify(&mut self, now: Instant, flow: &Flow) -> Verdict {
        self.now = self.now.max(now);
        let now = self.now;
        let Some(b) = self.balancing.as_mut() else {
            return Verdict::NotVirtual;
        };
        let verdict = b.balancer.classify(now, flow);
        self.schedule(Owner::Balancer);
        #[cfg(feature = "sync")]
        self.sync_after_classify();
        verdict
    }

    /// Adds a virtual service (or changes the one with the same key).
    pub fn set_service(
        &mut self,
        config: ServiceConfig,
        state: ServiceState,
    ) -> Result<ServiceId, NodeError> {
        let b = self.balancing()?;
        let id = match b.balancer.service_by_key(&config.key) {
            Some(id) => {
                if b.balancer.service(id).ok() != Some(&config) {
                    b.balancer.edit_service(id, config).map_err(lb_error)?;
                }
                id
            }
            None => b.balancer.add_service(config).map_err(lb_error)?,
        };
        let slot = b
            .services
            .get_mut(usize::from(id.0))
            .ok_or(NodeError::Full("service state"))?;
        let mut state = state;
        if let Some(old) = &slot.entry {
            // Keep whether quorum is held, the VIP announced and checks
            // suspended: a reload must not flap them.
            state.quorum = old.quorum.with_settings(&state.quorum);
            state.announced = old.announced;
            state.suspended = old.suspended;
        } else {
            *slot = ServiceSlot::default();
        }
        slot.entry = Some(state);
        self.sync_sorry(id)?;
        self.update_quorum(id);
        self.update_announcement(id);
        Ok(id)
    }

    /// Changes a service's quorum thresholds, keeping whether it holds
    /// quorum (the builder's keepalived corrections).
    pub fn set_quorum_settings(&mut self, id: ServiceId, quorum: Quorum) {
        if let Some(s) = self
            .balancing
            .as_mut()
            .and_then(|b| b.services.get_mut(usize::from(id.0)))
            .and_then(|s| s.entry.as_mut())
        {
            s.quorum = s.quorum.with_settings(&quorum);
        }
        self.update_quorum(id);
    }

    /// Lists or unlists the sorry server as the service's state asks, and
    /// sends new flows to it while quorum is lost.
    fn sync_sorry(&mut self, id: ServiceId) -> Result<(), NodeError> {
        let b = self.balancing()?;
        let Some(slot) = b.services.get_mut(usize::from(id.0)) else {
            return Ok(());
        };
        let Some(state) = &slot.entry else {
            return Ok(());
        };
        let (want, active) = (state.sorry_listed(), state.sorry_active());
        if want != slot.sorry_listed {
            // Unlisting frees the slot: its connections then count as to a
            // removed server, as IPVS's after keepalived deletes the dest.
            b.balancer.set_sorry_server(id, want).map_err(lb_error)?;
            slot.sorry_listed = want;
        }
        b.balancer
            .set_sorry_active(id, active && want.is_some())
            .map_err(lb_error)
    }

    /// Adds a real server (listed at once unless it starts failed) or
    /// changes the one with the same key.
    pub fn set_server(&mut self, server: ServerState) -> Result<ServerRef, NodeError> {
        let b = self.balancing()?;
        let existing = b
            .servers
            .iter()
            .position(|s| s.entry.as_ref().is_some_and(|e| e.key == server.key));
        let index = match existing {
            Some(i) => i,
            None => b
                .servers
                .iter()
                .position(|s| s.entry.is_none())
                .ok_or(NodeError::Full("real server"))?,
        };
        let mut server = server;
        let existed = match &b.servers[index].entry {
            Some(old) => {
                server.healthy = old.healthy;
                server.listed = old.listed;
                server.dynamic_weight = old.dynamic_weight;
                true
            }
            None => {
                b.servers[index] = ServerSlot::default();
                false
            }
        };
        // Each FILE_CHECK starts from its file's last value; a new server
        // whose file fails starts down (keepalived check_file.c
        // `set_track_file_checkers_down`).
        for f in server.file_checks.iter_mut() {
            f.value = self.track_file_value(f.file).unwrap_or(0);
        }
        if !existed {
            server.healthy &= !server.file_fault();
        }
        let b = self.balancing()?;
        b.servers[index].entry = Some(server);
        let r = ServerRef(index as u32);
        if existed {
            // Its FILE_CHECKs may have changed.
            self.reevaluate_server(r);
        } else {
            self.apply_server(r)?;
        }
        Ok(r)
    }

    /// Removes a real server and its checkers. Notifications it had
    /// pending go with it (there is no server left to name).
    pub fn remove_server(&mut self, r: ServerRef) -> Result<(), NodeError> {
        let b = self.balancing()?;
        let slot = b
            .servers
            .get_mut(r.0 as usize)
            .ok_or(NodeError::NoSuch("real server"))?;
        let entry = slot.entry.take().ok_or(NodeError::NoSuch("real server"))?;
        if !slot.health.is_empty() {
            debug!(
                "real server {:?} removed with {} notification(s) pending",
                entry.config.addr,
                slot.health.len()
            );
            slot.health.clear();
        }
        if let Some(id) = entry.listed {
            b.balancer
                .remove_server(entry.service, id)
                .map_err(lb_error)?;
        }
        for c in b.checkers.iter_mut() {
            if c.entry.as_ref().is_some_and(|e| e.server == r) {
                c.entry = None;
            }
        }
        self.prune_timers();
        self.update_quorum(entry.service);
        Ok(())
    }

    /// Removes a service with its servers and checkers.
    pub fn remove_service(&mut self, id: ServiceId) -> Result<(), NodeError> {
        let count = self.balancing()?.servers.len();
        for i in 0..count {
            let of_service = self.balancing()?.servers[i]
                .entry
                .as_ref()
                .is_some_and(|s| s.service == id);
            if of_service {
                self.remove_server(ServerRef(i as u32))?;
            }
        }
        let b = self.balancing()?;
        b.balancer.remove_service(id).map_err(lb_error)?;
        if let Some(slot) = b.services.get_mut(usize::from(id.0)) {
            *slot = ServiceSlot::default();
        }
        Ok(())
    }

    /// A real server's state.
    pub fn server(&self, r: ServerRef) -> Option<&ServerState> {
        self.balancing
            .as_ref()?
            .servers
            .get(r.0 as usize)?
            .entry
            .as_ref()
    }

    /// Every real server.
    pub fn servers(&self) -> impl Iterator<Item = (ServerRef, &ServerState)> + '_ {
        self.balancing
            .iter()
            .flat_map(|b| b.servers.iter().enumerate())
            .filter_map(|(i, s)| s.entry.as_ref().map(|e| (ServerRef(i as u32), e)))
    }

    /// The real server with `key`.
    pub fn server_by_key(&self, key: u64) -> Option<ServerRef> {
        self.servers().find(|(_, s)| s.key == key).map(|(r, _)| r)
    }

    /// A service's node-side state.
    pub fn service_state(&self, id: ServiceId) -> Option<&ServiceState> {
        self.balancing
            .as_ref()?
            .services
            .get(usize::from(id.0))?
            .entry
            .as_ref()
    }

    /// Adds a checker for `server`, or keeps the one with the same key: with
    /// the same settings untouched (a reload does not restart it), with new
    /// settings keeping its up/down verdict and starting its timing over
    /// (no flap: [`Checker::reconfigure`]).
    pub fn set_checker(
        &mut self,
        server: ServerRef,
        checker: Checker,
        key: u64,
    ) -> Result<CheckerId, NodeError> {
        let now = self.now;
        let started = self.started;
        let b = self
            .balancing
            .as_mut()
            .ok_or(NodeError::NoSuch("balancer"))?;
        let run = started && !b.suspended(server);
        let existing = b
            .checkers
            .iter()
            .position(|c| c.entry.as_ref().is_some_and(|e| e.key == key));
        if let Some(i) = existing
            && let Some(e) = b.checkers[i].entry.as_mut()
            && e.server == server
        {
            let id = CheckerId(i as u32);
            if e.checker.config() == checker.config() {
                return Ok(id);
            }
            if let Some(CheckerEvent::Cancel { seq, .. }) = e.checker.reconfigure(*checker.config())
            {
                push_cancel(&mut self.stats.outputs_dropped, &mut b.dirty, i, e, seq);
            }
            if run {
                e.checker.start(now, &mut b.prng);
            }
            self.schedule(Owner::Checker(id.0));
            return Ok(id);
        }
        let index = match existing {
            Some(i) => i,
            None => b
                .checkers
                .iter()
                .position(|c| c.entry.is_none())
                .ok_or(NodeError::Full("checker"))?,
        };
        let mut checker = checker;
        // A checker a reload adds to a live server does not take it down
        // before it has run (keepalived ipwrapper.c `migrate_checkers`).
        let live = b
            .servers
            .get(server.0 as usize)
            .and_then(|s| s.entry.as_ref())
            .is_some_and(|s| s.healthy);
        if started && live {
            checker.assume_up();
        }
        if run {
            checker.start(now, &mut b.prng);
        }
        b.checkers[index].entry = Some(CheckerEntry {
            checker,
            server,
            key,
            deadline: Instant::MAX,
            mark: 0,
            cancels: Deque::new(),
        });
        let id = CheckerId(index as u32);
        self.schedule(Owner::Checker(id.0));
        self.reevaluate_server(server);
        Ok(id)
    }

    /// Tags a checker for the owner's bookkeeping (reloads).
    pub fn mark_checker(&mut self, id: CheckerId, mark: u8) {
        if let Some(e) = self
            .balancing
            .as_mut()
            .and_then(|b| b.checkers.get_mut(id.0 as usize))
            .and_then(|c| c.entry.as_mut())
        {
            e.mark = mark;
        }
    }

    /// Removes a checker. A probe it has running is the driver's to drop
    /// (it learns the checker is gone); pending cancels go with it.
    pub fn remove_checker(&mut self, id: CheckerId) -> Result<(), NodeError> {
        let b = self.balancing()?;
        let entry = b
            .checkers
            .get_mut(id.0 as usize)
            .and_then(|c| c.entry.take())
            .ok_or(NodeError::NoSuch("checker"))?;
        self.prune_timers();
        self.reevaluate_server(entry.server);
        Ok(())
    }

    /// A checker.
    pub fn checker(&self, id: CheckerId) -> Option<(&Checker, ServerRef)> {
        let e = self
            .balancing
            .as_ref()?
            .checkers
            .get(id.0 as usize)?
            .entry
            .as_ref()?;
        Some((&e.checker, e.server))
    }

    /// Every checker.
    pub fn checkers(&self) -> impl Iterator<Item = (CheckerId, &Checker, ServerRef, u64)> + '_ {
        self.balancing
            .iter()
            .flat_map(|b| b.checkers.iter().enumerate())
            .filter_map(|(i, c)| {
                c.entry
                    .as_ref()
                    .map(|e| (CheckerId(i as u32), &e.checker, e.server, e.key))
            })
    }

    pub(super) fn start_checkers(&mut self) {
        let now = self.now;
        let Some(b) = self.balancing.as_mut() else {
            return;
        };
        for i in 0..b.checkers.len() {
            if let Some(e) = b.checkers[i].entry.as_mut() {
                e.checker.start(now, &mut b.prng);
            }
        }
        for i in 0..self.balancing.as_ref().map_or(0, |b| b.checkers.len()) {
            self.schedule(Owner::Checker(i as u32));
        }
        self.update_suspension();
    }

    /// A probe result from the driver.
    pub(super) fn probe_result(&mut self, id: CheckerId, seq: u32, result: ProbeResult) {
        let now = self.now;
        let Some(b) = self.balancing.as_mut() else {
            return;
        };
        let Some(entry) = b
            .checkers
            .get_mut(id.0 as usize)
            .and_then(|c| c.entry.as_mut())
        else {
            self.stats.results_unknown_checker =
                self.stats.results_unknown_checker.saturating_add(1);
            return;
        };
        let mut events: heapless::Vec<CheckerEvent, 4> = heapless::Vec::new();
        entry.checker.result(now, seq, result, &mut |e| {
            let _ = events.push(e);
        });
        let server = entry.server;
        self.checker_events(id, server, &events);
        self.schedule(Owner::Checker(id.0));
    }

    pub(super) fn checker_timeout(&mut self, id: CheckerId, at: Instant) {
        let now = self.now;
        let Some(b) = self.balancing.as_mut() else {
            return;
        };
        let Some(entry) = b
            .checkers
            .get_mut(id.0 as usize)
            .and_then(|c| c.entry.as_mut())
        else {
            return;
        };
        if entry.deadline != at {
            return;
        }
        entry.deadline = Instant::MAX;
        let mut events: heapless::Vec<CheckerEvent, 4> = heapless::Vec::new();
        entry.checker.handle_timeout(now, &mut |e| {
            let _ = events.push(e);
        });
        let server = entry.server;
        self.checker_events(id, server, &events);
        self.schedule(Owner::Checker(id.0));
    }

    pub(super) fn balancer_timeout(&mut self, at: Instant) {
        let now = self.now;
        let Some(b) = self.balancing.as_mut() else {
            return;
        };
        if b.balancer_deadline != at {
            return;
        }
        b.balancer_deadline = Instant::MAX;
        b.balancer.handle_timeout(now);
        self.schedule(Owner::Balancer);
    }

    /// Applies one checker's events. At most one `Probe` or `CancelProbe`
    /// goes to the queue (within the step's room); the rest is recorded.
    fn checker_events(&mut self, id: CheckerId, server: ServerRef, events: &[CheckerEvent]) {
        let mut reevaluate = false;
        for e in events {
            match *e {
                CheckerEvent::Start { seq, timeout } => self.push_output(Output::Probe {
                    checker: id,
                    seq,
                    timeout,
                }),
                CheckerEvent::Cancel { seq, timed_out } => self.push_output(Output::CancelProbe {
                    checker: id,
                    seq,
                    timed_out,
                }),
                CheckerEvent::Changed { .. } => reevaluate = true,
                CheckerEvent::ConfirmedDown => {
                    // keepalived runs notify_down when an alpha checker's
                    // first check fails (ipwrapper.c update_svr_checker_state).
                    if self.server(server).is_some_and(|s| !s.healthy) {
                        self.queue_health(server, false);
                    }
                }
                CheckerEvent::Weight(w) => {
                    if let Some(s) = self
                        .balancing
                        .as_mut()
                        .and_then(|b| b.servers.get_mut(server.0 as usize))
                        .and_then(|s| s.entry.as_mut())
                        && s.dynamic_weight != w
                    {
                        s.dynamic_weight = w;
                        reevaluate = true;
                    }
                }
            }
        }
        if reevaluate {
            self.reevaluate_server(server);
        }
    }

    /// Recomputes a server's health from its checkers and applies it.
    fn reevaluate_server(&mut self, r: ServerRef) {
        let Some(b) = self.balancing.as_mut() else {
            return;
        };
        let healthy = b
            .checkers
            .iter()
            .filter_map(|c| c.entry.as_ref())
            .filter(|c| c.server == r)
            .all(|c| c.checker.is_up());
        let Some(s) = b
            .servers
            .get_mut(r.0 as usize)
            .and_then(|s| s.entry.as_mut())
        else {
            return;
        };
        let healthy = healthy && !s.file_fault();
        let changed = s.healthy != healthy;
        s.healthy = healthy;
        if changed {
            info!(
                "real server {:?} {}",
                s.config.addr,
                if healthy { "up" } else { "down" }
            );
            self.queue_health(r, healthy);
        }
        if self.apply_server(r).is_err()
            && let Some(service) = self.server(r).map(|s| s.service)
        {
            self.refused("a real server", service);
        }
    }

    /// A tracked file's new value, for every `FILE_CHECK` on it.
    pub(super) fn file_check_value(&mut self, file: FileId, value: i32) {
        let Some(b) = self.balancing.as_mut() else {
            return;
        };
        for i in 0..b.servers.len() {
            let Some(s) = self
                .balancing
                .as_mut()
                .and_then(|b| b.servers[i].entry.as_mut())
            else {
                continue;
            };
            let mut changed = false;
            for f in s.file_checks.iter_mut().filter(|f| f.file == file) {
                changed |= f.value != value;
                f.value = value;
            }
            if changed {
                self.reevaluate_server(ServerRef(i as u32));
            }
        }
    }

    /// Counts and logs a decision the balancer could not apply.
    fn refused(&mut self, what: &str, service: ServiceId) {
        self.stats.balancer_refused = self.stats.balancer_refused.saturating_add(1);
        warn!(
            "service {}: {} could not be listed: no free server slot",
            service.0, what
        );
    }

    /// Makes the balancer match the server's configuration and health.
    fn apply_server(&mut self, r: ServerRef) -> Result<(), NodeError> {
        let b = self.balancing()?;
        let Some(s) = b
            .servers
            .get_mut(r.0 as usize)
            .and_then(|s| s.entry.as_mut())
        else {
            return Ok(());
        };
        let service = s.service;
        // keepalived: a failed server is removed, or kept at weight 0 with
        // inhibit_on_failure (keepalived.conf(5) "inhibit_on_failure").
        let want_listed = s.healthy
            || s.inhibit_on_failure
            || crate::mutation::on(crate::mutation::Mutation::ScheduleDownServer);
        let weight =
            if s.healthy || crate::mutation::on(crate::mutation::Mutation::ScheduleDownServer) {
                s.weight()
            } else {
                0
            };
        let mut rs = s.config;
        rs.weight = weight;
        match (s.listed, want_listed) {
            (Some(id), true) => {
                b.balancer
                    .update_server(service, id, rs)
                    .map_err(lb_error)?;
            }
            (Some(id), false) => {
                b.balancer.remove_server(service, id).map_err(lb_error)?;
                s.listed = None;
            }
            (None, true) => {
                let id = match b.balancer.find_server(service, rs.addr, rs.port) {
                    Some(id) => {
                        b.balancer
                            .update_server(service, id, rs)
                            .map_err(lb_error)?;
                        id
                    }
                    None => b.balancer.add_server(service, rs).map_err(lb_error)?,
                };
                s.listed = Some(id);
            }
            (None, false) => {}
        }
        self.update_quorum(service);
        Ok(())
    }

    fn update_quorum(&mut self, service: ServiceId) {
        let Some(b) = self.balancing.as_mut() else {
            return;
        };
        if b.quorum_frozen {
            return;
        }
        let alive: u64 = b
            .servers
            .iter()
            .filter_map(|s| s.entry.as_ref())
            .filter(|s| s.service == service && s.healthy)
            .map(|s| u64::from(s.weight()))
            .sum();
        let Some(state) = b
            .services
            .get_mut(usize::from(service.0))
            .and_then(|s| s.entry.as_mut())
        else {
            return;
        };
        let first = !state.quorum.judged();
        let flip = state.quorum.update(alive);
        let up = state.quorum.is_up();
        if first && !up {
            info!(
                "service {}: starts without quorum ({} < {} + {})",
                service.0,
                alive,
                state.quorum.threshold(),
                state.quorum.hysteresis()
            );
        }
        // keepalived runs quorum_down at start only when a sorry server
        // must come in (ipwrapper.c update_quorum_state, init).
        let notify = flip.or((first && !up && state.sorry.is_some()).then_some(false));
        if let Some(up) = notify {
            self.queue_quorum(service, up);
        }
        if self.sync_sorry(service).is_err() {
            self.refused("the sorry server", service);
        }
        self.update_announcement(service);
    }

    /// An anycast service is announced while the node runs and the service
    /// has quorum, and withdrawn otherwise.
    pub(super) fn update_announcement(&mut self, service: ServiceId) {
        let started = self.started;
        let Some(b) = self.balancing.as_mut() else {
            return;
        };
        let i = usize::from(service.0);
        let Some(slot) = b.services.get_mut(i) else {
            return;
        };
        let Some(state) = slot.entry.as_mut() else {
            return;
        };
        let want = state.anycast && started && state.quorum.is_up();
        if want != state.announced {
            state.announced = want;
            slot.announce = true;
            b.dirty.services = b.dirty.services.min(i);
        }
    }

    /// Re-evaluates every service's announcement (start, shutdown).
    pub(super) fn update_announcements(&mut self) {
        let n = self.balancing.as_ref().map_or(0, |b| b.services.len());
        for i in 0..n {
            self.update_announcement(ServiceId(i as u16));
        }
    }

    /// Holds quorum decisions until [`Node::thaw_quorum`] (while a
    /// configuration is applied).
    pub fn freeze_quorum(&mut self) {
        if let Some(b) = self.balancing.as_mut() {
            b.quorum_frozen = true;
        }
    }

    /// Judges every service's quorum on its current servers, and each
    /// `ha_suspend` service's suspension (a reload may have changed both).
    pub fn thaw_quorum(&mut self) {
        let Some(b) = self.balancing.as_mut() else {
            return;
        };
        b.quorum_frozen = false;
        for i in 0..b.services.len() {
            self.update_quorum(ServiceId(i as u16));
        }
        if self.started {
            self.update_suspension();
        }
    }

    /// keepalived's `omega` at shutdown: `notify_down` of each live server
    /// and `quorum_down` of the service (ipwrapper.c `clear_service_rs`,
    /// `update_vs_notifies`), whatever quorum was.
    pub(super) fn omega_shutdown(&mut self) {
        let Some(b) = self.balancing.as_ref() else {
            return;
        };
        let (services, servers) = (b.services.len(), b.servers.len());
        for i in 0..services {
            let omega = self
                .balancing
                .as_ref()
                .and_then(|b| b.services[i].entry.as_ref())
                .is_some_and(|s| s.omega);
            if !omega {
                continue;
            }
            let id = ServiceId(i as u16);
            for r in 0..servers {
                let live = self
                    .balancing
                    .as_ref()
                    .and_then(|b| b.servers[r].entry.as_ref())
                    .is_some_and(|s| s.service == id && s.healthy);
                if live {
                    self.queue_health(ServerRef(r as u32), false);
                }
            }
            self.queue_quorum(id, false);
        }
    }

    /// With `ha_suspend`, a service's checks run only while this node is
    /// master of an instance holding the service's VIP. Cancels of running
    /// probes are handed out lazily.
    pub(super) fn update_suspension(&mut self) {
        let now = self.now;
        let started = self.started;
        let instances = &*self.instances;
        let Some(b) = self.balancing.as_mut() else {
            return;
        };
        let mut any = false;
        for i in 0..b.services.len() {
            let id = ServiceId(i as u16);
            let vip = match b.balancer.service(id).map(|c| c.key) {
                Ok(ServiceKey::Addr { vip, .. }) => Some(vip),
                _ => None,
            };
            let slot = &mut b.services[i];
            let Some(state) = slot.entry.as_mut() else {
                continue;
            };
            let held = started
                && vip.is_some_and(|vip| {
                    instances
                        .iter()
                        .filter_map(|s| s.entry.as_ref())
                        .any(|e| e.vrrp.state() == State::Master && e.vrrp.vips().contains(&vip))
                });
            let suspend = state.ha_suspend && !held;
            slot.suspension_changed = suspend != state.suspended;
            if slot.suspension_changed {
                state.suspended = suspend;
                any = true;
                info!(
                    "service {}: checks {}",
                    i,
                    if suspend { "suspended" } else { "resumed" }
                );
            }
        }
        if !any {
            return;
        }
        let n = b.checkers.len();
        for i in 0..n {
            let Some(b) = self.balancing.as_mut() else {
                return;
            };
            let Some(service) = b.checkers[i]
                .entry
                .as_ref()
                .and_then(|e| b.service_of(e.server))
            else {
                continue;
            };
            let Some(slot) = b.services.get(usize::from(service.0)) else {
                continue;
            };
            let Some(suspend) = slot
                .entry
                .as_ref()
                .filter(|_| slot.suspension_changed)
                .map(|s| s.suspended)
            else {
                continue;
            };
            let Some(e) = b.checkers[i].entry.as_mut() else {
                continue;
            };
            if let Some(CheckerEvent::Cancel { seq, .. }) = e.checker.suspend(now, suspend) {
                push_cancel(&mut self.stats.outputs_dropped, &mut b.dirty, i, e, seq);
            }
            self.schedule(Owner::Checker(i as u32));
        }
        if let Some(b) = self.balancing.as_mut() {
            for s in b.services.iter_mut() {
                s.suspension_changed = false;
            }
        }
    }

    /// Whether a VRRP state change may affect `ha_suspend` services.
    pub(super) fn vrrp_changed(&mut self, event: &vrrp::Output) {
        if matches!(event, vrrp::Output::StateChanged { .. }) && self.balancing.is_some() {
            self.update_suspension();
        }
    }

    /// Records a `ServerHealth` output for `r` (handed out lazily).
    fn queue_health(&mut self, r: ServerRef, up: bool) {
        let Some(b) = self.balancing.as_mut() else {
            return;
        };
        let i = r.0 as usize;
        let Some(slot) = b.servers.get_mut(i) else {
            return;
        };
        if slot.health.push_back(up).is_err() {
            self.stats.outputs_dropped = self.stats.outputs_dropped.saturating_add(1);
            return;
        }
        b.dirty.servers = b.dirty.servers.min(i);
    }

    /// Records a `Quorum` output for `service` (handed out lazily).
    fn queue_quorum(&mut self, service: ServiceId, up: bool) {
        let Some(b) = self.balancing.as_mut() else {
            return;
        };
        let i = usize::from(service.0);
        let Some(slot) = b.services.get_mut(i) else {
            return;
        };
        if slot.quorum.push_back(up).is_err() {
            self.stats.outputs_dropped = self.stats.outputs_dropped.saturating_add(1);
            return;
        }
        b.dirty.services = b.dirty.services.min(i);
    }

    /// The next recorded load-balancing output: probe cancels, then server
    /// health, then each service's quorum and announcement.
    pub(super) fn poll_balancing_output(&mut self) -> Option<Output> {
        let b = self.balancing.as_mut()?;
        while b.dirty.checkers < b.checkers.len() {
            let i = b.dirty.checkers;
            match b.checkers[i]
                .entry
                .as_mut()
                .and_then(|e| e.cancels.pop_front())
            {
                Some(seq) => {
                    // Queued by a suspend or a reload, never a timeout.
                    return Some(Output::CancelProbe {
                        checker: CheckerId(i as u32),
                        seq,
                        timed_out: false,
                    });
                }
                None => b.dirty.checkers += 1,
            }
        }
        b.dirty.checkers = usize::MAX;
        while b.dirty.servers < b.servers.len() {
            let i = b.dirty.servers;
            match b.servers[i].health.pop_front() {
                Some(up) => {
                    return Some(Output::ServerHealth {
                        server: ServerRef(i as u32),
                        up,
                    });
                }
                None => b.dirty.servers += 1,
            }
        }
        b.dirty.servers = usize::MAX;
        while b.dirty.services < b.services.len() {
            let i = b.dirty.services;
            let slot = &mut b.services[i];
            let service = ServiceId(i as u16);
            if let Some(up) = slot.quorum.pop_front() {
                return Some(Output::Quorum { service, up });
            }
            if core::mem::take(&mut slot.announce)
                && let Some(state) = &slot.entry
            {
                return Some(Output::Announce {
                    service,
                    up: state.announced,
                });
            }
            b.dirty.services += 1;
        }
        b.dirty.services = usize::MAX;
        None
    }
}

/// Records the cancel of probe `seq` of checker `i` (handed out lazily).
fn push_cancel(dropped: &mut u32, dirty: &mut Dirty, i: usize, e: &mut CheckerEntry, seq: u32) {
    if e.cancels.push_back(seq).is_err() {
        *dropped = dropped.saturating_add(1);
        return;
    }
    dirty.checkers = dirty.checkers.min(i);
}
