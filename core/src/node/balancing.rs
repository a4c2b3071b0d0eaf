//! The node's load-balancing side: virtual services and real servers as the
//! configuration has them, their health checkers, and what checks decide
//! (keepalived's ipwrapper.c reactions): a real server is up while every
//! checker of it is up; a down server is removed from scheduling, or kept
//! with weight 0 under `inhibit_on_failure`; `misc_dynamic` results set its
//! weight; a service below its quorum switches to its sorry server; with
//! `ha_suspend` a service's checkers pause while this node does not hold
//! its VIP. Existing connections are the balancer's business.

use core::net::IpAddr;

use super::{Node, NodeError, Output, Owner};
use crate::check::{Checker, CheckerEvent, ProbeResult, Quorum};
use crate::lb::{
    Balancer, Flow, RealServer, ServerId, ServiceConfig, ServiceId, ServiceKey, Verdict,
};
use crate::rand::Prng;
use crate::time::Instant;
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
    fn weight(&self) -> u32 {
        self.dynamic_weight.unwrap_or(self.config.weight)
    }
}

/// Storage for one real server. `Default` is empty.
#[derive(Debug, Clone, Default)]
pub struct ServerSlot {
    pub(super) entry: Option<ServerState>,
}

/// Per-service state the balancer does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    /// Quorum and hysteresis.
    pub quorum: Quorum,
    /// `sorry_server`.
    pub sorry: Option<(IpAddr, u16)>,
    /// `ha_suspend`.
    pub ha_suspend: bool,
    /// Checks are paused now (ha_suspend and the VIP is elsewhere).
    pub suspended: bool,
    /// vrlb's `anycast`: the VIP is announced (held locally, for a BGP
    /// speaker to export) only while the service has quorum.
    pub anycast: bool,
    /// Whether the node currently asks for the VIP to be announced.
    pub announced: bool,
}

/// Storage for one service's state. `Default` is empty.
#[derive(Debug, Clone, Default)]
pub struct ServiceSlot {
    pub(super) entry: Option<ServiceState>,
}

#[derive(Debug, Clone)]
pub(super) struct CheckerEntry {
    pub(super) checker: Checker,
    pub(super) server: ServerRef,
    pub(super) key: u64,
    pub(super) deadline: Instant,
    pub(super) mark: u8,
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
        }
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
        let previous = slot.entry.as_ref().map(|s| (s.quorum, s.announced));
        let mut state = state;
        if let Some((quorum, announced)) = previous {
            // Keep whether quorum is held and the VIP announced: a reload
            // must not flap them.
            state.quorum = quorum.with_settings(&state.quorum);
            state.announced = announced;
        }
        let sorry = state.sorry;
        slot.entry = Some(state);
        b.balancer.set_sorry_server(id, sorry).map_err(lb_error)?;
        self.update_quorum(id);
        self.update_announcement(id);
        Ok(id)
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
        if let Some(old) = &b.servers[index].entry {
            server.healthy = old.healthy;
            server.listed = old.listed;
            server.dynamic_weight = old.dynamic_weight;
        }
        b.servers[index].entry = Some(server);
        let r = ServerRef(index as u32);
        self.apply_server(r)?;
        Ok(r)
    }

    /// Removes a real server and its checkers.
    pub fn remove_server(&mut self, r: ServerRef) -> Result<(), NodeError> {
        let b = self.balancing()?;
        let entry = b
            .servers
            .get_mut(r.0 as usize)
            .and_then(|s| s.entry.take())
            .ok_or(NodeError::NoSuch("real server"))?;
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
            slot.entry = None;
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

    /// Adds a checker for `server` (or keeps the one with the same key and
    /// settings: a reload does not restart it).
    pub fn set_checker(
        &mut self,
        server: ServerRef,
        checker: Checker,
        key: u64,
    ) -> Result<CheckerId, NodeError> {
        let started = self.started;
        let now = self.now;
        let b = self.balancing()?;
        let existing = b
            .checkers
            .iter()
            .position(|c| c.entry.as_ref().is_some_and(|e| e.key == key));
        if let Some(i) = existing
            && b.checkers[i]
                .entry
                .as_ref()
                .is_some_and(|e| e.checker.config() == checker.config() && e.server == server)
        {
            return Ok(CheckerId(i as u32));
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
        if started {
            checker.start(now, &mut b.prng);
        }
        b.checkers[index].entry = Some(CheckerEntry {
            checker,
            server,
            key,
            deadline: Instant::MAX,
            mark: 0,
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

    /// Removes a checker.
    pub fn remove_checker(&mut self, id: CheckerId) -> Result<(), NodeError> {
        let b = self.balancing()?;
        let entry = b
            .checkers
            .get_mut(id.0 as usize)
            .and_then(|c| c.entry.take())
            .ok_or(NodeError::NoSuch("checker"))?;
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

    fn checker_events(&mut self, id: CheckerId, server: ServerRef, events: &[CheckerEvent]) {
        let mut reevaluate = false;
        for e in events {
            match *e {
                CheckerEvent::Start { seq, timeout } => self.push_output(Output::Probe {
                    checker: id,
                    seq,
                    timeout,
                }),
                CheckerEvent::Cancel { seq } => {
                    self.push_output(Output::CancelProbe { checker: id, seq })
                }
                CheckerEvent::Changed { .. } => reevaluate = true,
                CheckerEvent::Weight(w) => {
                    if let Some(s) = self
                        .balancing
                        .as_mut()
                        .and_then(|b| b.servers[server.0 as usize].entry.as_mut())
                        && s.dynamic_weight != Some(w)
                    {
                        s.dynamic_weight = Some(w);
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
        let changed = s.healthy != healthy;
        s.healthy = healthy;
        if changed {
            info!(
                "real server {:?} {}",
                s.config.addr,
                if healthy { "up" } else { "down" }
            );
            self.push_output(Output::ServerHealth {
                server: r,
                up: healthy,
            });
        }
        let _ = self.apply_server(r);
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
        if let Some(up) = state.quorum.update(alive) {
            let _ = b
                .balancer
                .set_sorry_active(service, !up && state.sorry.is_some());
            self.push_output(Output::Quorum { service, up });
        }
        self.update_announcement(service);
    }

    /// An anycast service is announced while the node runs and the service
    /// has quorum, and withdrawn otherwise.
    pub(super) fn update_announcement(&mut self, service: ServiceId) {
        let started = self.started;
        let Some(state) = self
            .balancing
            .as_mut()
            .and_then(|b| b.services.get_mut(usize::from(service.0)))
            .and_then(|s| s.entry.as_mut())
        else {
            return;
        };
        let want = state.anycast && started && state.quorum.is_up();
        if want != state.announced {
            state.announced = want;
            self.push_output(Output::Announce { service, up: want });
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

    /// Judges every service's quorum on its current servers.
    pub fn thaw_quorum(&mut self) {
        let Some(b) = self.balancing.as_mut() else {
            return;
        };
        b.quorum_frozen = false;
        for i in 0..b.services.len() {
            self.update_quorum(ServiceId(i as u16));
        }
    }

    /// With `ha_suspend`, a service's checks run only while this node is
    /// master of an instance holding the service's VIP.
    pub(super) fn update_suspension(&mut self) {
        let now = self.now;
        let started = self.started;
        let Some(b) = self.balancing.as_ref() else {
            return;
        };
        let mut changes: heapless::Vec<(ServiceId, bool), 64> = heapless::Vec::new();
        for (i, slot) in b.services.iter().enumerate() {
            let Some(state) = &slot.entry else { continue };
            if !state.ha_suspend {
                continue;
            }
            let id = ServiceId(i as u16);
            let vip = match b.balancer.service(id).map(|c| c.key) {
                Ok(ServiceKey::Addr { vip, .. }) => Some(vip),
                _ => None,
            };
            let held = vip.is_some_and(|vip| {
                self.instances
                    .iter()
                    .filter_map(|s| s.entry.as_ref())
                    .any(|e| e.vrrp.state() == State::Master && e.vrrp.vips().contains(&vip))
            });
            let suspend = !held || !started;
            if suspend != state.suspended {
                let _ = changes.push((id, suspend));
            }
        }
        for (id, suspend) in changes {
            let Some(b) = self.balancing.as_mut() else {
                return;
            };
            if let Some(state) = b.services[usize::from(id.0)].entry.as_mut() {
                state.suspended = suspend;
            }
            info!(
                "service {}: checks {}",
                id.0,
                if suspend { "suspended" } else { "resumed" }
            );
            for i in 0..b.checkers.len() {
                let Some(b) = self.balancing.as_mut() else {
                    return;
                };
                let Some(e) = b.checkers[i].entry.as_mut() else {
                    continue;
                };
                if b.servers[e.server.0 as usize]
                    .entry
                    .as_ref()
                    .is_none_or(|s| s.service != id)
                {
                    continue;
                }
                if let Some(CheckerEvent::Cancel { seq }) = e.checker.suspend(now, suspend) {
                    self.push_output(Output::CancelProbe {
                        checker: CheckerId(i as u32),
                        seq,
                    });
                }
                self.schedule(Owner::Checker(i as u32));
            }
        }
    }

    /// Whether a VRRP state change may affect `ha_suspend` services.
    pub(super) fn vrrp_changed(&mut self, event: &vrrp::Output) {
        if matches!(event, vrrp::Output::StateChanged { .. }) && self.balancing.is_some() {
            self.update_suspension();
        }
    }
}
