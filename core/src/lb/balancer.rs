//! The balancer: virtual services and real servers added, edited and
//! removed at run time, the connection and template table, and
//! [`Balancer::classify`], the data-plane fast path. Owns the glue between
//! schedulers and tables: binding connections to servers (exact active and
//! inactive counts, thresholds), TCP state transitions, persistence and
//! expiry. Never does I/O, reads a clock or allocates.

use core::net::{IpAddr, Ipv4Addr};

use super::addr::{from16, to16};
use super::classify::{DropReason, Flow, TcpFlags, Verdict};
use super::conn::{
    ConnSlot, ConnTable, F_INACTIVE, F_LATE, KIND_CONN, KIND_MASK, KIND_TEMPLATE, KIND_V6, Key,
    NIL, flags_method, method_flags, tick_of, ticks_for_secs,
};
use super::entry::ConnEntry;
use super::persist::{template_key, template_valid};
use super::sched::{PickInput, Scheduler, View, hash, mh};
use super::server::{ForwardMethod, NONE, RealServer, ServerId, ServerSlot, SlotState};
use super::service::{Protocol, ServiceConfig, ServiceId, ServiceKey, ServiceSlot};
use super::stats::Stats;
use super::storage::{CONNECTIONS_MAX, Layout, SERVERS_PER_SERVICE_MAX, Storage};
use super::tcp::{TcpState, next_state, plain_ack, quiet};
use crate::time::{Duration, Instant};

/// Packets [`Balancer::classify_batch`] looks up together.
pub const CLASSIFY_BATCH: usize = 32;

/// What a new flow gets when the connection table has no free slot.
/// Established flows are never evicted for it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TableFullPolicy {
    /// Forward the packet without remembering the flow, to the *stateless
    /// choice*: the sorry server while it takes new flows; else, for a
    /// persistent service, the server of the client's valid template
    /// (refreshed); else a hash of the client: the service's own scheduler
    /// for sh, dh and mh (they keep no state), otherwise the sh bucket
    /// table over the client address and port, with fallback. Counted in
    /// `Stats::stateless_forwards`.
    ///
    /// So that such a TCP flow gets past its SYN, while the table is full
    /// and for `LbConfig::stateless_grace_s` after a new flow was last
    /// forwarded this way, a TCP packet with no connection that does not
    /// open one (no SYN, or RST) gets the same stateless choice instead of
    /// being dropped as `NotSyn`: with a free slot it is recorded as a
    /// connection on that server (`Stats::stateless_adopted`; never for a
    /// RST), else forwarded untracked (`Stats::stateless_continued`). A
    /// flow keeps its server while the server set, the sorry state and its
    /// client's template stay as they were.
    StatelessHash,
    /// Drop the packet, counted in `Stats::drop_table_full`.
    Drop,
}

/// Most wheel buckets [`Balancer::next_expiry`] reads: 4096 ticks, 67 s.
pub const NEXT_EXPIRY_SCAN_TICKS: usize = 4096;

/// Knobs that are sysctls in IPVS (`net.ipv4.vs.*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LbConfig {
    /// `expire_nodest_conn`: a packet of a connection whose server was
    /// removed expires the connection and is scheduled afresh (and a SYN
    /// on a connection to a weight-0 server reschedules). Off: such
    /// packets are dropped until the connection times out.
    pub expire_nodest_conn: bool,
    /// `expire_quiescent_template`: templates pointing to a weight-0
    /// server are not used (the client is scheduled again).
    pub expire_quiescent_template: bool,
    /// `sloppy_tcp`: schedule TCP flows on any packet, not only on SYN.
    pub sloppy_tcp: bool,
    /// What to do with new flows when the table is full.
    pub table_full: TableFullPolicy,
    /// With [`TableFullPolicy::StatelessHash`]: how long after the last new
    /// flow forwarded untracked mid-flow TCP packets of unknown flows still
    /// get the stateless choice (rounded up to 16 ms ticks). Default 900 s,
    /// IPVS's TCP ESTABLISHED timeout: an untracked flow that sends at
    /// least that often is recorded by its next packet once the table has
    /// room. 0: only while the table is full.
    pub stateless_grace_s: u32,
    /// UDP timeout (IPVS default 300 s; keepalived's `lvs_timeouts udp`).
    pub udp_timeout_s: u32,
    /// TCP ESTABLISHED timeout (IPVS default 900 s; `lvs_timeouts tcp`).
    /// ipvsadm --set's `tcp` sets this state only (ip_vs_ctl.c
    /// `ip_vs_set_timeout`).
    pub tcp_timeout_s: u32,
    /// TCP FIN_WAIT timeout (IPVS default 120 s; `lvs_timeouts tcpfin`),
    /// likewise FIN_WAIT only.
    pub tcp_fin_timeout_s: u32,
    /// SCTP timeout (one value, as vrlb does not track SCTP states).
    pub sctp_timeout_s: u32,
}

impl LbConfig {
    /// The kernel's defaults.
    pub const DEFAULT: LbConfig = LbConfig {
        expire_nodest_conn: false,
        expire_quiescent_template: false,
        sloppy_tcp: false,
        table_full: TableFullPolicy::StatelessHash,
        stateless_grace_s: 900,
        udp_timeout_s: 300,
        tcp_timeout_s: 900,
        tcp_fin_timeout_s: 120,
        sctp_timeout_s: 900,
    };
}

impl Default for LbConfig {
    fn default() -> Self {
        LbConfig::DEFAULT
    }
}

/// Errors of the management API.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LbError {
    /// A storage slice does not have the length the layout needs.
    StorageSize {
        /// Which `Storage` field.
        part: &'static str,
        /// Length the layout needs.
        need: usize,
        /// Length given.
        got: usize,
    },
    /// The layout asks for more than vrlb can index.
    LayoutTooLarge,
    /// Every service slot is in use (or still draining connections).
    NoServiceSlot,
    /// A service with the same key exists.
    ServiceExists,
    /// No such service.
    NoSuchService,
    /// The service's server slots are all in use (or draining).
    NoServerSlot,
    /// A server with the same address and port is in the service.
    ServerExists,
    /// No such server in that service.
    NoSuchServer,
    /// Weight above `i32::MAX`.
    BadWeight,
    /// The mh table size is not a prime in 3..=131071 or exceeds the
    /// layout's `mh_table_max`.
    BadMhTableSize(u32),
    /// mh cannot hold more servers than table entries.
    TooManyServersForMh,
    /// A service's key cannot be edited; remove and add it.
    KeyChanged,
}

impl core::fmt::Display for LbError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LbError::StorageSize { part, need, got } => {
                write!(
                    f,
                    "storage `{part}` has {got} entries, the layout needs {need}"
                )
            }
            LbError::LayoutTooLarge => f.write_str(
                "layout too large: at most 32768 servers per service and 16777214 connections",
            ),
            LbError::NoServiceSlot => f.write_str("no free virtual-service slot"),
            LbError::ServiceExists => f.write_str("a virtual service with that key exists"),
            LbError::NoSuchService => f.write_str("no such virtual service"),
            LbError::NoServerSlot => f.write_str("no free real-server slot in this service"),
            LbError::ServerExists => f.write_str("that real server is already in the service"),
            LbError::NoSuchServer => f.write_str("no such real server in this service"),
            LbError::BadWeight => f.write_str("weight above 2147483647"),
            LbError::BadMhTableSize(n) => {
                write!(
                    f,
                    "mh table size {n} is not a prime within the layout's mh_table_max"
                )
            }
            LbError::TooManyServersForMh => {
                f.write_str("mh table smaller than the number of real servers")
            }
            LbError::KeyChanged => f.write_str("a virtual service's key cannot be edited"),
        }
    }
}

impl core::error::Error for LbError {}

/// A real server as the status command and tests see it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ServerInfo {
    /// Its id.
    pub id: ServerId,
    /// Its configuration.
    pub server: RealServer,
    /// Latest non-zero weight.
    pub last_weight: u32,
    /// Active connections (`ActiveConn`).
    pub active: u32,
    /// Inactive connections (`InActConn`).
    pub inactive: u32,
    /// Persistence templates pointing here.
    pub persistent: u32,
    /// Over its upper threshold.
    pub overloaded: bool,
}

/// Services, servers, scheduler tables: everything but the connections.
pub(super) struct Pools<'a> {
    pub(super) services: &'a mut [ServiceSlot],
    pub(super) servers: &'a mut [ServerSlot],
    tree: &'a mut [u16],
    mh: &'a mut [u16],
    pub(super) sps: usize,
    tree_stride: usize,
    mh_stride: usize,
    tree_on: bool,
}

impl Pools<'_> {
    #[inline]
    pub(super) fn view(&mut self, svc: u16) -> View<'_> {
        let i = svc as usize;
        View {
            svc: &mut self.services[i],
            servers: &mut self.servers[i * self.sps..(i + 1) * self.sps],
            tree: &mut self.tree[i * self.tree_stride..(i + 1) * self.tree_stride],
            mh: &mut self.mh[i * self.mh_stride..(i + 1) * self.mh_stride],
            tree_on: self.tree_on,
        }
    }

    #[inline]
    pub(super) fn split(&self, server: u16) -> (u16, u16) {
        (
            (server as usize / self.sps) as u16,
            (server as usize % self.sps) as u16,
        )
    }

    /// A connection or template was bound to `server` (ip_vs_bind_dest).
    #[inline]
    pub(super) fn bind(&mut self, server: u16, template: bool, inactive: bool) {
        let s = &mut self.servers[server as usize];
        if template {
            s.persist += 1;
        } else if inactive {
            s.inactive += 1;
        } else {
            s.active += 1;
        }
        s.after_bind();
        let (svc, local) = self.split(server);
        self.view(svc).on_counts(local);
    }

    /// The reverse (ip_vs_unbind_dest); frees a removed server's slot when
    /// nothing points to it any more.
    #[inline]
    pub(super) fn unbind(&mut self, server: u16, template: bool, inactive: bool) {
        let s = &mut self.servers[server as usize];
        if template {
            s.persist -= 1;
        } else if inactive {
            s.inactive -= 1;
        } else {
            s.active -= 1;
        }
        s.after_unbind();
        if s.state == SlotState::Trash && s.refs() == 0 {
            s.state = SlotState::Free;
        }
        let (svc, local) = self.split(server);
        self.view(svc).on_counts(local);
    }
}

/// The load balancer over caller-provided [`Storage`].
pub struct Balancer<'a> {
    pub(super) cfg: LbConfig,
    layout: Layout,
    pub(super) pools: Pools<'a>,
    pub(super) table: ConnTable<'a>,
    seq: u64,
    /// Mid-flow TCP packets get the stateless choice before this tick.
    stateless_until: u64,
    pub(super) now: Instant,
    pub(super) stats: Stats,
    #[cfg(feature = "sync")]
    pub(super) journal: super::journal::Journal<'a>,
}

fn check(part: &'static str, need: usize, got: usize) -> Result<(), LbError> {
    if need == got {
        Ok(())
    } else {
        Err(LbError::StorageSize { part, need, got })
    }
}

impl<'a> Balancer<'a> {
    /// A balancer with no services, working in `storage` (reset here).
    /// `seed` keys the connection hash so clients cannot choose collisions.
    pub fn new(
        layout: Layout,
        storage: Storage<'a>,
        cfg: LbConfig,
        seed: u64,
        now: Instant,
    ) -> Result<Self, LbError> {
        if layout.servers_per_service == 0
            || layout.servers_per_service > SERVERS_PER_SERVICE_MAX
            || layout.connections > CONNECTIONS_MAX
            || layout.mh_table_max > super::storage::MH_TABLE_MAX
        {
            return Err(LbError::LayoutTooLarge);
        }
        check("services", layout.service_slots(), storage.services.len())?;
        check("servers", layout.server_slots(), storage.servers.len())?;
        check("tree", layout.tree_nodes(), storage.tree.len())?;
        check("mh", layout.mh_entries(), storage.mh.len())?;
        check("conns", layout.conn_slots(), storage.conns.len())?;
        check("index", layout.index_bytes(), storage.index.len())?;
        check("wheel", layout.wheel_buckets(), storage.wheel.len())?;
        storage.services.fill(ServiceSlot::EMPTY);
        storage.servers.fill(ServerSlot::EMPTY);
        storage.tree.fill(NONE);
        storage.mh.fill(NONE);
        let table = ConnTable::new(
            storage.conns,
            storage.index,
            storage.wheel,
            layout.connections,
            seed,
            tick_of(now.as_micros()),
        );
        Ok(Balancer {
            cfg,
            layout,
            pools: Pools {
                services: storage.services,
                servers: storage.servers,
                tree: storage.tree,
                mh: storage.mh,
                sps: layout.servers_per_service as usize,
                tree_stride: layout.tree_nodes_per_service(),
                mh_stride: layout.mh_table_max as usize,
                tree_on: true,
            },
            table,
            seq: 0,
            stateless_until: 0,
            now,
            stats: Stats::default(),
            #[cfg(feature = "sync")]
            journal: super::journal::Journal::empty(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LbConfig {
        &self.cfg
    }

    /// Changes the sysctl-like knobs (takes effect for the next packet).
    pub fn set_config(&mut self, cfg: LbConfig) {
        self.cfg = cfg;
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The layout this balancer was built for.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Connections plus templates in the table.
    pub fn tracked(&self) -> u32 {
        self.table.live
    }

    pub(super) fn clamp(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    // ----- virtual services ------------------------------------------------

    fn validate_service(&self, cfg: &ServiceConfig) -> Result<(), LbError> {
        if cfg.scheduler == Scheduler::Mh
            && (!mh::valid_table_size(cfg.mh_table_size)
                || cfg.mh_table_size > self.layout.mh_table_max)
        {
            return Err(LbError::BadMhTableSize(cfg.mh_table_size));
        }
        Ok(())
    }

    fn service_range_idle(&self, i: usize) -> bool {
        let sps = self.pools.sps;
        self.pools.servers[i * sps..(i + 1) * sps]
            .iter()
            .all(|s| s.state == SlotState::Free)
    }

    /// Adds a virtual service.
    pub fn add_service(&mut self, cfg: ServiceConfig) -> Result<ServiceId, LbError> {
        self.validate_service(&cfg)?;
        if self.find_service_by_key(&cfg.key).is_some() {
            return Err(LbError::ServiceExists);
        }
        let slot = (0..self.pools.services.len())
            .find(|&i| !self.pools.services[i].in_use && self.service_range_idle(i))
            .ok_or(LbError::NoServiceSlot)?;
        let svc = &mut self.pools.services[slot];
        *svc = ServiceSlot::EMPTY;
        svc.in_use = true;
        svc.cfg = cfg;
        self.pools.view(slot as u16).rebuild();
        info!(
            "lb: added virtual service {} ({})",
            slot,
            cfg.scheduler.name()
        );
        Ok(ServiceId(slot as u16))
    }

    fn find_service_by_key(&self, key: &ServiceKey) -> Option<u16> {
        self.pools
            .services
            .iter()
            .position(|s| s.in_use && s.cfg.key == *key)
            .map(|i| i as u16)
    }

    /// The service with `key`.
    pub fn service_by_key(&self, key: &ServiceKey) -> Option<ServiceId> {
        self.find_service_by_key(key).map(ServiceId)
    }

    fn svc_index(&self, id: ServiceId) -> Result<u16, LbError> {
        match self.pools.services.get(id.0 as usize) {
            Some(s) if s.in_use => Ok(id.0),
            _ => Err(LbError::NoSuchService),
        }
    }

    /// Ends this balancer and gives its storage back (to build a fresh one
    /// in the same memory: a simulated director's restart, a firmware's
    /// reset).
    pub fn into_storage(self) -> Storage<'a> {
        let (conns, index, wheel) = self.table.into_parts();
        Storage {
            services: self.pools.services,
            servers: self.pools.servers,
            tree: self.pools.tree,
            mh: self.pools.mh,
            conns,
            index,
            wheel,
        }
    }

    /// The layout it was built for.
    pub fn built_layout(&self) -> Layout {
        self.layout
    }

    /// Every service in use.
    pub fn services(&self) -> impl Iterator<Item = (ServiceId, &ServiceConfig)> + '_ {
        self.pools
            .services
            .iter()
            .enumerate()
            .filter(|(_, s)| s.in_use)
            .map(|(i, s)| (ServiceId(i as u16), &s.cfg))
    }

    /// Tags a service for the owner's bookkeeping (a reload marks what the
    /// new configuration still has, then removes the rest).
    pub fn set_service_mark(&mut self, id: ServiceId, mark: u8) -> Result<(), LbError> {
        let i = self.svc_index(id)?;
        self.pools.services[i as usize].mark = mark;
        Ok(())
    }

    /// A service's tag.
    pub fn service_mark(&self, id: ServiceId) -> Option<u8> {
        self.svc_index(id)
            .ok()
            .map(|i| self.pools.services[i as usize].mark)
    }

    /// Tags a listed server (see [`Balancer::set_service_mark`]).
    pub fn set_server_mark(
        &mut self,
        id: ServiceId,
        server: ServerId,
        mark: u8,
    ) -> Result<(), LbError> {
        self.locate(id, server)?;
        self.pools.servers[server.0 as usize].mark = mark;
        Ok(())
    }

    /// A listed server's tag.
    pub fn server_mark(&self, id: ServiceId, server: ServerId) -> Option<u8> {
        self.locate(id, server)
            .ok()
            .map(|_| self.pools.servers[server.0 as usize].mark)
    }

    /// The service's configuration.
    pub fn service(&self, id: ServiceId) -> Result<&ServiceConfig, LbError> {
        let i = self.svc_index(id)?;
        Ok(&self.pools.services[i as usize].cfg)
    }

    /// Changes scheduler, flags or persistence of a service (not its key).
    pub fn edit_service(&mut self, id: ServiceId, cfg: ServiceConfig) -> Result<(), LbError> {
        let i = self.svc_index(id)?;
        self.validate_service(&cfg)?;
        if self.pools.services[i as usize].cfg.key != cfg.key {
            return Err(LbError::KeyChanged);
        }
        if cfg.scheduler == Scheduler::Mh
            && self.pools.services[i as usize].count as u32 > cfg.mh_table_size
        {
            return Err(LbError::TooManyServersForMh);
        }
        self.pools.services[i as usize].cfg = cfg;
        self.pools.view(i).rebuild();
        Ok(())
    }

    /// Removes a service: it takes no new flows; its servers are removed
    /// and its slots are reused once their connections are gone.
    pub fn remove_service(&mut self, id: ServiceId) -> Result<(), LbError> {
        let i = self.svc_index(id)?;
        while self.pools.services[i as usize].head != NONE {
            let local = self.pools.services[i as usize].head;
            self.remove_local(i, local);
        }
        let sorry = self.pools.services[i as usize].sorry;
        if sorry != NONE {
            self.drop_slot(i, sorry);
        }
        self.pools.services[i as usize].in_use = false;
        Ok(())
    }

    // ----- real servers ----------------------------------------------------

    pub(super) fn global(&self, svc: u16, local: u16) -> u16 {
        (svc as usize * self.pools.sps + local as usize) as u16
    }

    pub(super) fn find_local(
        &self,
        svc: u16,
        addr: IpAddr,
        port: u16,
        state: SlotState,
    ) -> Option<u16> {
        let sps = self.pools.sps;
        self.pools.servers[svc as usize * sps..(svc as usize + 1) * sps]
            .iter()
            .position(|s| s.state == state && s.cfg.addr == addr && s.cfg.port == port)
            .map(|i| i as u16)
    }

    /// Adds a real server at the head of the service's list. A server
    /// removed earlier whose connections still live is revived (IPVS's
    /// trash): those connections forward again.
    pub fn add_server(&mut self, id: ServiceId, rs: RealServer) -> Result<ServerId, LbError> {
        let i = self.svc_index(id)?;
        if rs.weight > i32::MAX as u32 {
            return Err(LbError::BadWeight);
        }
        if self
            .find_local(i, rs.addr, rs.port, SlotState::Listed)
            .is_some()
        {
            return Err(LbError::ServerExists);
        }
        let svc = &self.pools.services[i as usize];
        if svc.cfg.scheduler == Scheduler::Mh && u32::from(svc.count) >= svc.cfg.mh_table_size {
            return Err(LbError::TooManyServersForMh);
        }
        let local = match self.find_local(i, rs.addr, rs.port, SlotState::Trash) {
            Some(l) => l,
            None => {
                let sps = self.pools.sps;
                let l = self.pools.servers[i as usize * sps..(i as usize + 1) * sps]
                    .iter()
                    .position(|s| s.state == SlotState::Free)
                    .ok_or(LbError::NoServerSlot)? as u16;
                let g = self.global(i, l) as usize;
                self.pools.servers[g] = ServerSlot::EMPTY;
                l
            }
        };
        let g = self.global(i, local) as usize;
        apply_config(&mut self.pools.servers[g], rs, true);
        self.seq += 1;
        let seq = self.seq;
        self.pools.view(i).link_head(local, seq);
        info!(
            "lb: service {} added real server {}:{} weight {}",
            i, rs.addr, rs.port, rs.weight
        );
        Ok(ServerId(g as u16))
    }

    fn locate(&self, id: ServiceId, server: ServerId) -> Result<(u16, u16), LbError> {
        let i = self.svc_index(id)?;
        let (svc, local) = self.pools.split(server.0);
        if svc != i || server.0 as usize >= self.pools.servers.len() {
            return Err(LbError::NoSuchServer);
        }
        if self.pools.servers[server.0 as usize].state != SlotState::Listed {
            return Err(LbError::NoSuchServer);
        }
        Ok((i, local))
    }

    /// The listed server of `id` at `addr`:`port`.
    pub fn find_server(&self, id: ServiceId, addr: IpAddr, port: u16) -> Option<ServerId> {
        let i = self.svc_index(id).ok()?;
        self.find_local(i, addr, port, SlotState::Listed)
            .map(|l| ServerId(self.global(i, l)))
    }

    /// Removes a real server from scheduling (keepalived's reaction to a
    /// failed check without `inhibit_on_failure`). Its connections stay
    /// until they expire; see `LbConfig::expire_nodest_conn`. Templates
    /// pointing to it are no longer used.
    pub fn remove_server(&mut self, id: ServiceId, server: ServerId) -> Result<(), LbError> {
        let (i, local) = self.locate(id, server)?;
        self.remove_local(i, local);
        Ok(())
    }

    fn remove_local(&mut self, i: u16, local: u16) {
        self.pools.view(i).unlink(local);
        self.drop_slot(i, local);
    }

    fn drop_slot(&mut self, i: u16, local: u16) {
        let g = self.global(i, local) as usize;
        let s = &mut self.pools.servers[g];
        s.state = if s.refs() == 0 {
            SlotState::Free
        } else {
            SlotState::Trash
        };
    }

    /// Changes weight and thresholds (address and port must stay). Weight
    /// 0 quiesces the server: no new flows, existing ones continue
    /// (keepalived's `inhibit_on_failure`).
    pub fn update_server(
        &mut self,
        id: ServiceId,
        server: ServerId,
        rs: RealServer,
    ) -> Result<(), LbError> {
        let (i, local) = self.locate(id, server)?;
        if rs.weight > i32::MAX as u32 {
            return Err(LbError::BadWeight);
        }
        let s = &mut self.pools.servers[server.0 as usize];
        if s.cfg.addr != rs.addr || s.cfg.port != rs.port {
            return Err(LbError::NoSuchServer);
        }
        apply_config(s, rs, false);
        self.pools.view(i).on_change(local);
        Ok(())
    }

    /// Sets only the weight.
    pub fn set_weight(
        &mut self,
        id: ServiceId,
        server: ServerId,
        weight: u32,
    ) -> Result<(), LbError> {
        let (_, _) = self.locate(id, server)?;
        let mut rs = self.pools.servers[server.0 as usize].cfg;
        rs.weight = weight;
        self.update_server(id, server, rs)
    }

    /// The service's listed servers, head first (IPVS list order).
    pub fn servers(&self, id: ServiceId) -> impl Iterator<Item = ServerInfo> + '_ {
        let i = self.svc_index(id).ok();
        let sps = self.pools.sps;
        let base = i.map_or(0, |i| i as usize * sps);
        let mut at = i.map_or(NONE, |i| self.pools.services[i as usize].head);
        core::iter::from_fn(move || {
            if at == NONE {
                return None;
            }
            let g = base + at as usize;
            at = self.pools.servers[g].next;
            Some(self.info(g))
        })
    }

    fn info(&self, g: usize) -> ServerInfo {
        let s = &self.pools.servers[g];
        ServerInfo {
            id: ServerId(g as u16),
            server: s.cfg,
            last_weight: s.last_weight,
            active: s.active,
            inactive: s.inactive,
            persistent: s.persist,
            overloaded: s.overloaded,
        }
    }

    /// Counters of any server slot still in use (listed, removed but
    /// referenced, or sorry).
    pub fn server_info(&self, server: ServerId) -> Option<ServerInfo> {
        let s = self.pools.servers.get(server.0 as usize)?;
        (s.state != SlotState::Free).then(|| self.info(server.0 as usize))
    }

    /// Sets (or clears) the service's `sorry_server`.
    pub fn set_sorry_server(
        &mut self,
        id: ServiceId,
        sorry: Option<RealServer>,
    ) -> Result<Option<ServerId>, LbError> {
        let i = self.svc_index(id)?;
        let old = self.pools.services[i as usize].sorry;
        if old != NONE {
            self.drop_slot(i, old);
            self.pools.services[i as usize].sorry = NONE;
        }
        let Some(rs) = sorry else {
            return Ok(None);
        };
        let sps = self.pools.sps;
        let l = self.pools.servers[i as usize * sps..(i as usize + 1) * sps]
            .iter()
            .position(|s| s.state == SlotState::Free)
            .ok_or(LbError::NoServerSlot)? as u16;
        let g = self.global(i, l) as usize;
        self.pools.servers[g] = ServerSlot::EMPTY;
        apply_config(&mut self.pools.servers[g], rs, true);
        self.pools.servers[g].state = SlotState::Sorry;
        self.pools.services[i as usize].sorry = l;
        Ok(Some(ServerId(g as u16)))
    }

    /// Sends new flows to the sorry server (quorum lost) or back to the
    /// scheduler (quorum regained). Existing connections are untouched.
    pub fn set_sorry_active(&mut self, id: ServiceId, active: bool) -> Result<(), LbError> {
        let i = self.svc_index(id)?;
        self.pools.services[i as usize].sorry_active = active;
        Ok(())
    }

    /// Benchmarks and tests: pick with the kernel's linear scan instead of
    /// the tournament tree (and stop maintaining the tree).
    #[cfg(any(test, feature = "reference"))]
    pub fn set_linear_scan(&mut self, on: bool) {
        self.pools.tree_on = !on;
        if !on {
            for i in 0..self.pools.services.len() {
                if self.pools.services[i].in_use {
                    let mut v = self.pools.view(i as u16);
                    let kind = v.svc.cfg.scheduler;
                    if kind.uses_tree() {
                        super::sched::least::rebuild(kind, v.tree, v.servers);
                    }
                    let _ = &mut v;
                }
            }
        }
    }

    // ----- time ------------------------------------------------------------

    /// Expires connections and templates whose time has come. Idempotent.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clamp(now);
        self.expire(tick_of(now.as_micros()));
    }

    /// When [`Self::handle_timeout`] next has work: the end of the current
    /// expiry tick while anything is tracked.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.table.live > 0)
            .then(|| Instant::from_micros((self.table.next_tick() + 1) << super::conn::TICK_SHIFT))
    }

    /// The earliest time [`Self::handle_timeout`] can have work, for a
    /// driver that sleeps while idle: when the first non-empty wheel bucket
    /// at or after the current tick comes due. Never late. Early when that
    /// bucket holds only entries whose expiry was extended since they were
    /// filed (they are re-filed then) or a wheel revolution or more ahead
    /// (the wheel has a bucket per slot, 64 to 65,536), and when nothing is
    /// filed within [`NEXT_EXPIRY_SCAN_TICKS`] (then it is when that scan
    /// ends). A driver that sleeps until then wakes at most once per due
    /// bucket. Reads at most that many wheel words (16 KiB): fit for a
    /// worker going idle, not for every packet ([`Self::poll_timeout`] is
    /// the cheap per-tick answer). `None` while nothing is tracked.
    pub fn next_expiry(&self) -> Option<Instant> {
        if self.table.live == 0 {
            return None;
        }
        let tick = self.table.next_filled_tick(NEXT_EXPIRY_SCAN_TICKS);
        // A slot filed at tick T expires once the tick after it begins.
        Some(Instant::from_micros((tick + 1) << super::conn::TICK_SHIFT))
    }

    /// Runs the expiry pass up to `now_tick`: connections first, then
    /// templates (so a template whose last connection expires in the same
    /// pass goes too).
    #[inline(never)]
    pub(super) fn expire(&mut self, now_tick: u64) {
        if !self.table.behind(now_tick) {
            return;
        }
        let mut due_templates = NIL;
        while let Some(s) = self.table.pop_due(now_tick) {
            if self.table.slots[s as usize].kind & KIND_MASK == KIND_CONN {
                self.expire_conn(s);
            } else {
                self.table.slots[s as usize].wnext = due_templates;
                due_templates = s;
            }
        }
        while due_templates != NIL {
            let s = due_templates;
            due_templates = self.table.slots[s as usize].wnext;
            self.table.slots[s as usize].wnext = NIL;
            if self.table.slots[s as usize].control > 0 {
                // ip_vs_conn.c expire_later: kept for 60 s more.
                self.table.slots[s as usize].flags |= F_LATE;
                self.table.rearm(s, (now_tick + ticks_for_secs(60)) as u32);
                // ip_vs_conn.c syncs a template when it is kept for later.
                #[cfg(feature = "sync")]
                if self.journal.on {
                    self.sync_note(s);
                }
            } else {
                self.free_template(s);
            }
        }
    }

    pub(super) fn expire_conn(&mut self, s: u32) {
        let slot = self.table.slots[s as usize];
        self.pools
            .unbind(slot.server, false, slot.flags & F_INACTIVE != 0);
        if slot.control != NIL {
            self.table.slots[slot.control as usize].control -= 1;
        }
        self.table.remove(s);
        self.stats.conns_expired += 1;
    }

    pub(super) fn free_template(&mut self, s: u32) {
        let server = self.table.slots[s as usize].server;
        self.pools.unbind(server, true, false);
        self.table.remove(s);
    }

    // ----- the fast path -----------------------------------------------------

    pub(super) fn timeout_s(&self, proto: u8, state: u8) -> u32 {
        match proto {
            6 => match TcpState::from_u8(state) {
                TcpState::Established => self.cfg.tcp_timeout_s,
                TcpState::FinWait => self.cfg.tcp_fin_timeout_s,
                other => other.default_timeout_s(),
            },
            17 => self.cfg.udp_timeout_s,
            _ => self.cfg.sctp_timeout_s,
        }
    }

    pub(super) fn lookup_service(&self, flow: &Flow) -> Option<u16> {
        let mut port_zero = None;
        for (i, s) in self.pools.services.iter().enumerate() {
            if !s.in_use {
                continue;
            }
            match s.cfg.key {
                ServiceKey::Fwmark { mark, ipv6 } => {
                    if flow.fwmark != 0 && mark == flow.fwmark && ipv6 == flow.dst.is_ipv6() {
                        return Some(i as u16);
                    }
                }
                ServiceKey::Addr {
                    protocol,
                    vip,
                    port,
                } => {
                    if protocol.number() == flow.protocol && vip == flow.dst {
                        if port == flow.dst_port {
                            return Some(i as u16);
                        }
                        if port == 0 {
                            port_zero = Some(i as u16);
                        }
                    }
                }
            }
        }
        port_zero
    }

    /// The connection a packet of `flow` would match: its server and TCP
    /// state (tests and the status command).
    pub fn connection(&self, flow: &Flow) -> Option<(ServerId, TcpState)> {
        let key = conn_key(flow);
        let s = self.table.find(self.table.hash(&key), &key)?;
        let slot = &self.table.slots[s as usize];
        Some((ServerId(slot.server), TcpState::from_u8(slot.state)))
    }

    /// Decides where one client-to-VIP packet goes: its connection's
    /// server, else its persistence template's, else the scheduler's; and
    /// records the decision. No allocation; O(1) memory touched on average
    /// (O(log n) tree nodes when a new flow changes a server's counts). A
    /// packet of a tracked connection that changes no state (an ACK in
    /// ESTABLISHED, a UDP packet) reads its tags and its slot, and writes
    /// only the slot's expiry, when that moves to a later tick.
    pub fn classify(&mut self, now: Instant, flow: &Flow) -> Verdict {
        let now_tick = self.advance(now);
        // The fast path reads each field of the flow at its own width (a
        // tag byte, the four bytes of an IPv4 address, a port) and keeps
        // the key in registers: the caller has usually just written the
        // flow, and its stores are then forwarded to these loads. A load
        // wider than the store it reads, or spanning two, waits until the
        // stores reach the cache, that is until everything before them has
        // retired, the previous packet's cache misses included: the misses
        // of consecutive packets would no longer overlap.
        match (flow.src, flow.dst) {
            (IpAddr::V4(c), IpAddr::V4(v)) => {
                self.classify_key(now_tick, flow, conn_key_v4(flow, c, v))
            }
            _ => self.classify_any(now_tick, flow),
        }
    }

    /// The key of a flow that is not IPv4, into `key`, and its hash.
    #[inline(never)]
    fn key_any(&self, flow: &Flow, key: &mut Key) -> u32 {
        *key = conn_key_any(flow);
        self.table.hash(key)
    }

    /// [`Self::classify`] of a flow that is not IPv4.
    #[inline(never)]
    fn classify_any(&mut self, now_tick: u64, flow: &Flow) -> Verdict {
        self.classify_key(now_tick, flow, conn_key_any(flow))
    }

    /// [`Self::classify`] once the key is built.
    #[inline(always)]
    fn classify_key(&mut self, now_tick: u64, flow: &Flow, key: Key) -> Verdict {
        let hash = self.table.hash(&key);
        let found = self.table.find(hash, &key);
        if let Some(s) = found {
            let mut v = Verdict::NotVirtual;
            if self.hit(s, flow, now_tick, &mut v) {
                return v;
            }
        }
        self.classify_slow(now_tick, flow, hash, found)
    }

    /// [`Self::classify_found`] for one flow. The key is built again here
    /// so the fast path can keep its copy in registers.
    #[inline(never)]
    fn classify_slow(
        &mut self,
        now_tick: u64,
        flow: &Flow,
        hash: u32,
        found: Option<u32>,
    ) -> Verdict {
        let key = conn_key(flow);
        self.classify_found(now_tick, flow, &key, hash, found)
    }

    /// Moves the clock to `now` (never back) and runs the expiry pass when
    /// a tick is due; the current tick.
    #[inline(always)]
    fn advance(&mut self, now: Instant) -> u64 {
        let now = self.clamp(now);
        let now_tick = tick_of(now.as_micros());
        if self.table.behind(now_tick) {
            self.expire(now_tick);
        }
        now_tick
    }

    /// [`Self::classify`] for each of `flows` in order, all at `now`, the
    /// verdicts written to `verdicts` (as many as the shorter slice holds).
    /// Same decisions as calling `classify` one flow at a time; faster on
    /// a large table because the tag and slot reads of up to
    /// [`CLASSIFY_BATCH`] packets are issued independently, so their cache
    /// misses overlap instead of queueing one after another (the bulk
    /// lookup of DPDK's rte_hash).
    pub fn classify_batch(&mut self, now: Instant, flows: &[Flow], verdicts: &mut [Verdict]) {
        if flows.is_empty() || verdicts.is_empty() {
            return;
        }
        let now_tick = self.advance(now);
        for (flows, out) in flows
            .chunks(CLASSIFY_BATCH)
            .zip(verdicts.chunks_mut(CLASSIFY_BATCH))
        {
            let n = flows.len().min(out.len());
            let mut keys = [Key::EMPTY; CLASSIFY_BATCH];
            let mut hashes = [0u32; CLASSIFY_BATCH];
            let mut hints = [NIL; CLASSIFY_BATCH];
            // Keys and hashes first, then the tag reads in a loop of their
            // own, so all of them are in flight together.
            for i in 0..n {
                // As in `classify`: IPv4 keys built and hashed in registers.
                hashes[i] = match (flows[i].src, flows[i].dst) {
                    (IpAddr::V4(c), IpAddr::V4(v)) => {
                        let key = conn_key_v4(&flows[i], c, v);
                        keys[i] = key;
                        self.table.hash(&key)
                    }
                    _ => self.key_any(&flows[i], &mut keys[i]),
                };
            }
            for i in 0..n {
                hints[i] = self.table.candidate(hashes[i]);
            }
            // Slot reads: likewise; a hint survives if its slot's hash agrees.
            let mut missed = false;
            for i in 0..n {
                let h = hints[i];
                if h == NIL || self.table.slots[h as usize].hash != hashes[i] {
                    hints[i] = NIL;
                    missed = true;
                }
            }
            // The few whose first guess was another key's slot (one in ten
            // or so: 7-bit tags) look further, still together, so that
            // their slots too are in cache for the decisions.
            if missed {
                for i in 0..n {
                    if hints[i] == NIL {
                        hints[i] = self.table.find_hash(hashes[i]);
                    }
                }
            }
            // The decisions, in order. An earlier packet of the batch may
            // have created or removed a connection: each hint is checked
            // against the full key, and the index is searched when it fails.
            for i in 0..n {
                let found = self.table.find_hinted(hashes[i], &keys[i], hints[i]);
                // The verdict is written in place: built elsewhere and
                // copied, it would be read back over the stores that built
                // it, a load that waits for them to reach the cache.
                let hit = match found {
                    Some(s) => self.hit(s, &flows[i], now_tick, &mut out[i]),
                    None => false,
                };
                if !hit {
                    out[i] = self.classify_found(now_tick, &flows[i], &keys[i], hashes[i], found);
                }
            }
        }
    }

    /// A packet of tracked connection `s` that changes nothing but the
    /// expiry: a TCP packet without SYN that leaves the state as it is (an
    /// ACK in ESTABLISHED), or any UDP or SCTP packet, on a server still
    /// configured. The same outcome as [`Self::existing`] with fewer
    /// instructions: no state machine, no counts, no copy of the slot, and
    /// the slot is written only when its expiry tick moves; the verdict goes
    /// to `out`. False, having changed nothing, for every other packet.
    #[inline(always)]
    fn hit(&mut self, s: u32, flow: &Flow, now_tick: u64, out: &mut Verdict) -> bool {
        let slot = &self.table.slots[s as usize];
        let ticks = match slot.proto {
            // The common packet first, an ACK in ESTABLISHED. Either way
            // the timeout is the state's as configured, as `transition`
            // sets it.
            6 if slot.state == TcpState::Established as u8 && plain_ack(flow.tcp_flags.0) => {
                ticks_for_secs(self.cfg.tcp_timeout_s)
            }
            6 if quiet(slot.state, flow.tcp_flags.0) => {
                ticks_for_secs(self.timeout_s(6, slot.state))
            }
            6 => return false,
            // The mutation lives in `existing`: send its packets there.
            17 if crate::mutation::on(crate::mutation::Mutation::RescheduleUdp) => return false,
            17 => ticks_for_secs(self.cfg.udp_timeout_s),
            _ => ticks_for_secs(self.cfg.sctp_timeout_s),
        };
        let (server, old, flags) = (slot.server, slot.expires, slot.flags);
        let sv = &self.pools.servers[server as usize];
        if !sv.available() {
            return false;
        }
        *out = Verdict::Forward {
            server: ServerId(server),
            addr: sv.cfg.addr,
            port: sv.cfg.port,
            method: flags_method(flags),
            tracked: true,
        };
        #[cfg(feature = "sync")]
        if self.journal.on {
            self.sync_on_use(s, old, ticks, now_tick);
        }
        let expires = (now_tick + ticks) as u32;
        if expires != old {
            self.table.set_expiry(s, expires);
        }
        self.stats.conn_hits += 1;
        true
    }

    /// The rest of `classify` once the connection lookup is done: every
    /// packet but [`Self::hit`]'s.
    #[inline(never)]
    fn classify_found(
        &mut self,
        now_tick: u64,
        flow: &Flow,
        key: &Key,
        hash: u32,
        found: Option<u32>,
    ) -> Verdict {
        if let Some(s) = found {
            match self.existing(s, flow, now_tick) {
                Some(v) => return v,
                None => { /* expired: schedule afresh below */ }
            }
        }
        let Some(svc) = self.lookup_service(flow) else {
            self.stats.not_virtual += 1;
            return Verdict::NotVirtual;
        };
        let f = flow.tcp_flags;
        // tcp_conn_schedule: only a SYN without RST opens a connection
        // (with sloppy_tcp any packet without RST).
        let rst = f.contains(TcpFlags::RST);
        if flow.protocol == 6 && (rst || !f.contains(TcpFlags::SYN)) {
            if self.stateless_grace(now_tick) {
                return self.continue_stateless(svc, flow, key, hash, now_tick);
            }
            // With mh every director maps a flow to the same server, so a
            // mid-flow packet that ECMP moved here (no connection, no SYN)
            // is scheduled by the hash and the connection carries on where
            // it was (vrlb's addition; IPVS drops it unless sloppy_tcp).
            let consistent = self.pools.services[svc as usize].cfg.scheduler == Scheduler::Mh;
            if rst || !(self.cfg.sloppy_tcp || consistent) {
                self.stats.drop_not_syn += 1;
                return Verdict::Drop(DropReason::NotSyn);
            }
            if consistent {
                self.stats.adopted_mid_flow += 1;
            }
        }
        self.new_flow(svc, flow, key, hash, now_tick)
    }

    /// Whether mid-flow TCP packets of unknown flows get the stateless
    /// choice: the table is full, or was when a new flow came less than
    /// `stateless_grace_s` ago (see [`TableFullPolicy::StatelessHash`]).
    #[inline]
    fn stateless_grace(&self, now_tick: u64) -> bool {
        self.cfg.table_full == TableFullPolicy::StatelessHash
            && (self.table.free() == 0 || now_tick < self.stateless_until)
    }

    /// A mid-flow TCP packet of an unknown flow during the grace period:
    /// the stateless choice, recorded when there is room (not for a RST),
    /// else forwarded untracked.
    fn continue_stateless(
        &mut self,
        svc: u16,
        flow: &Flow,
        key: &Key,
        hash: u32,
        now_tick: u64,
    ) -> Verdict {
        let Some((server, template)) = self.stateless_choice(svc, flow, now_tick) else {
            self.stats.drop_no_server += 1;
            return Verdict::Drop(DropReason::NoServer);
        };
        if self.table.free() > 0 && !flow.tcp_flags.contains(TcpFlags::RST) {
            self.stats.stateless_adopted += 1;
            return self.record(server, flow, key, hash, now_tick, template);
        }
        self.stats.stateless_continued += 1;
        self.forward(server, false)
    }

    /// Where a flow goes that cannot be tracked (see
    /// [`TableFullPolicy::StatelessHash`]): a server and the template that
    /// chose it (`NIL` for none).
    fn stateless_choice(&mut self, svc: u16, flow: &Flow, now_tick: u64) -> Option<(u16, u32)> {
        let sc = &self.pools.services[svc as usize];
        if sc.sorry_active && sc.sorry != NONE {
            let sorry = sc.sorry;
            return Some((self.global(svc, sorry), NIL));
        }
        let cfg = sc.cfg;
        if cfg.persistence_timeout_s != 0 {
            let t = self.valid_template(svc, &cfg, flow);
            if t != NIL {
                self.use_template(t, &cfg, now_tick);
                return Some((self.table.slots[t as usize].server, t));
            }
        }
        let local = self.stateless_hash(svc, flow)?;
        Some((self.global(svc, local), NIL))
    }

    /// The hash part of the stateless choice, as a local index.
    fn stateless_hash(&mut self, svc: u16, flow: &Flow) -> Option<u16> {
        let mut v = self.pools.view(svc);
        match v.svc.cfg.scheduler {
            // Already stateless: the same server a tracked flow would get.
            Scheduler::Sh | Scheduler::Dh | Scheduler::Mh => v.schedule(&PickInput {
                src: flow.src,
                src_port: flow.src_port,
                dst: flow.dst,
            }),
            _ => hash::sh_lookup(&v.svc.buckets, v.servers, flow.src, flow.src_port, true),
        }
    }

    /// A packet of a tracked connection. `None` when the connection was
    /// expired for rescheduling.
    fn existing(&mut self, s: u32, flow: &Flow, now_tick: u64) -> Option<Verdict> {
        if flow.protocol == 17 && crate::mutation::on(crate::mutation::Mutation::RescheduleUdp) {
            self.expire_conn(s);
            return None;
        }
        let slot = self.table.slots[s as usize];
        let server = &self.pools.servers[slot.server as usize];
        let f = flow.tcp_flags;
        if flow.protocol == 6 && f.contains(TcpFlags::SYN) {
            // ip_vs_core.c conn_reuse_mode 1: a SYN reopens a closed
            // connection that no template controls, or (with
            // expire_nodest_conn) one whose server is quiesced.
            let state = TcpState::from_u8(slot.state);
            let reusable =
                slot.control == NIL && matches!(state, TcpState::TimeWait | TcpState::Close);
            let quiesced = self.cfg.expire_nodest_conn && server.cfg.weight == 0;
            if reusable || quiesced {
                self.expire_conn(s);
                return None;
            }
        }
        if !server.available() {
            if self.cfg.expire_nodest_conn {
                self.expire_conn(s);
                self.stats.nodest_expired += 1;
                return None;
            }
            self.stats.drop_server_gone += 1;
            return Some(Verdict::Drop(DropReason::ServerGone));
        }
        self.transition(s, flow, now_tick);
        self.stats.conn_hits += 1;
        Some(self.forward_as(slot.server, flags_method(slot.flags), true))
    }

    /// Applies one client packet to connection `s`: TCP state, counts and
    /// timeout (ip_vs_proto_tcp.c set_tcp_state).
    #[inline]
    fn transition(&mut self, s: u32, flow: &Flow, now_tick: u64) {
        let slot = &mut self.table.slots[s as usize];
        #[cfg(feature = "sync")]
        let (old_state, old_expires) = (slot.state, slot.expires);
        if slot.proto == 6 {
            let f = flow.tcp_flags;
            let cur = TcpState::from_u8(slot.state);
            let new = next_state(
                cur,
                f.contains(TcpFlags::SYN),
                f.contains(TcpFlags::FIN),
                f.contains(TcpFlags::ACK),
                f.contains(TcpFlags::RST),
            );
            if new != cur {
                let inactive = slot.flags & F_INACTIVE != 0;
                let server = slot.server;
                slot.state = new as u8;
                if !inactive && !new.is_active() {
                    slot.flags |= F_INACTIVE;
                    let sv = &mut self.pools.servers[server as usize];
                    sv.active -= 1;
                    sv.inactive += 1;
                    let (svc, local) = self.pools.split(server);
                    self.pools.view(svc).on_counts(local);
                } else if inactive && new.is_active() {
                    slot.flags &= !F_INACTIVE;
                    let sv = &mut self.pools.servers[server as usize];
                    sv.inactive -= 1;
                    sv.active += 1;
                    let (svc, local) = self.pools.split(server);
                    self.pools.view(svc).on_counts(local);
                }
            }
        }
        let slot = &self.table.slots[s as usize];
        let proto = slot.proto;
        let timeout = self.timeout_s(proto, slot.state);
        #[cfg(feature = "sync")]
        if self.journal.on {
            if slot.state != old_state {
                self.sync_note(s);
            } else {
                self.sync_on_use(s, old_expires, ticks_for_secs(timeout), now_tick);
            }
        }
        self.table
            .set_expiry(s, (now_tick + ticks_for_secs(timeout)) as u32);
    }

    /// To `server` by its current forwarding method.
    #[inline]
    fn forward(&self, server: u16, tracked: bool) -> Verdict {
        self.forward_as(
            server,
            self.pools.servers[server as usize].cfg.method,
            tracked,
        )
    }

    /// To `server` by `method` (a tracked connection's own).
    #[inline]
    fn forward_as(&self, server: u16, method: ForwardMethod, tracked: bool) -> Verdict {
        let s = &self.pools.servers[server as usize];
        Verdict::Forward {
            server: ServerId(server),
            addr: s.cfg.addr,
            port: s.cfg.port,
            method,
            tracked,
        }
    }

    fn new_flow(&mut self, svc: u16, flow: &Flow, key: &Key, hash: u32, now_tick: u64) -> Verdict {
        let sc = &self.pools.services[svc as usize];
        let input = PickInput {
            src: flow.src,
            src_port: flow.src_port,
            dst: flow.dst,
        };
        if sc.sorry_active && sc.sorry != NONE {
            let server = self.global(svc, sc.sorry);
            return self.record(server, flow, key, hash, now_tick, NIL);
        }
        if sc.cfg.persistence_timeout_s == 0 {
            if self.table.free() == 0 {
                return self.table_full(svc, flow);
            }
            let Some(local) = self.pools.view(svc).schedule(&input) else {
                self.stats.drop_no_server += 1;
                return Verdict::Drop(DropReason::NoServer);
            };
            let server = self.global(svc, local);
            return self.record(server, flow, key, hash, now_tick, NIL);
        }
        self.persistent(svc, flow, key, hash, now_tick, &input)
    }

    /// The client's usable template (`NIL` for none). One whose server went
    /// away (ip_vs_check_template) is made unfindable here; it lives on
    /// while it controls connections.
    fn valid_template(&mut self, svc: u16, cfg: &ServiceConfig, flow: &Flow) -> u32 {
        let tkey = template_key(svc, cfg, flow.src, flow.dst_port);
        let thash = self.table.hash(&tkey);
        let lookup = if crate::mutation::on(crate::mutation::Mutation::IgnoreTemplates) {
            None
        } else {
            self.table.find(thash, &tkey)
        };
        let Some(t) = lookup else {
            return NIL;
        };
        let server = self.table.slots[t as usize].server;
        if template_valid(
            &self.pools.servers[server as usize],
            self.cfg.expire_quiescent_template,
        ) {
            return t;
        }
        // Unfindable from now on; lives while it controls connections.
        self.table.orphan(t);
        self.stats.templates_invalidated += 1;
        NIL
    }

    /// Refreshes template `t` on use (60 s once kept for its connections,
    /// ip_vs_conn.c expire_later).
    fn use_template(&mut self, t: u32, cfg: &ServiceConfig, now_tick: u64) {
        let slot = &self.table.slots[t as usize];
        let timeout = if slot.flags & F_LATE != 0 {
            60
        } else {
            cfg.persistence_timeout_s
        };
        #[cfg(feature = "sync")]
        if self.journal.on {
            let old_expires = slot.expires;
            self.sync_on_use(t, old_expires, ticks_for_secs(timeout), now_tick);
        }
        if crate::mutation::on(crate::mutation::Mutation::ForgetTemplateRefresh) {
            return;
        }
        self.table
            .set_expiry(t, (now_tick + ticks_for_secs(timeout)) as u32);
    }

    /// ip_vs_core.c `ip_vs_sched_persist`.
    fn persistent(
        &mut self,
        svc: u16,
        flow: &Flow,
        key: &Key,
        hash: u32,
        now_tick: u64,
        input: &PickInput,
    ) -> Verdict {
        let cfg = self.pools.services[svc as usize].cfg;
        let template = self.valid_template(svc, &cfg, flow);
        if template != NIL {
            let server = self.table.slots[template as usize].server;
            self.use_template(template, &cfg, now_tick);
            self.stats.template_hits += 1;
            if self.table.free() == 0 {
                // The template still says where this client goes.
                return self.untracked(server);
            }
            return self.record(server, flow, key, hash, now_tick, template);
        }
        if self.table.free() < 2 {
            return self.table_full(svc, flow);
        }
        let Some(local) = self.pools.view(svc).schedule(input) else {
            self.stats.drop_no_server += 1;
            return Verdict::Drop(DropReason::NoServer);
        };
        let server = self.global(svc, local);
        let tkey = template_key(svc, &cfg, flow.src, flow.dst_port);
        let thash = self.table.hash(&tkey);
        let expires = (now_tick + ticks_for_secs(cfg.persistence_timeout_s)) as u32;
        let Some(t) = self.table.insert(thash, &tkey, expires) else {
            return self.table_full(svc, flow);
        };
        let slot = &mut self.table.slots[t as usize];
        slot.server = server;
        slot.svc = svc;
        slot.control = 0;
        self.pools.bind(server, true, false);
        self.stats.templates_created += 1;
        #[cfg(feature = "sync")]
        if self.journal.on {
            self.sync_note(t);
        }
        self.record(server, flow, key, hash, now_tick, t)
    }

    /// Creates the connection for a new flow bound to `server`, applies
    /// the first packet and answers.
    fn record(
        &mut self,
        server: u16,
        flow: &Flow,
        key: &Key,
        hash: u32,
        now_tick: u64,
        template: u32,
    ) -> Verdict {
        // New connections start inactive in state NONE (ip_vs_ctl.c sets
        // IP_VS_CONN_F_INACTIVE in every destination's conn_flags); the
        // first packet's transition moves a SYN_RECV one to active.
        // The first packet's state decides the counter the bind lands in:
        // the same end state as binding inactive and then moving, with one
        // tree update instead of two (the total, which thresholds read, is
        // the same either way).
        let state = if flow.protocol == 6 {
            let f = flow.tcp_flags;
            next_state(
                TcpState::None,
                f.contains(TcpFlags::SYN),
                f.contains(TcpFlags::FIN),
                f.contains(TcpFlags::ACK),
                f.contains(TcpFlags::RST),
            )
        } else {
            TcpState::None
        };
        // Filed at the first packet's timeout at once (not NONE's, then
        // moved): one wheel link per new connection.
        let timeout = self.timeout_s(flow.protocol, state as u8);
        let expires = (now_tick + ticks_for_secs(timeout)) as u32;
        let Some(s) = self.table.insert(hash, key, expires) else {
            return self.untracked(server);
        };
        let (svc, _) = self.pools.split(server);
        let inactive = flow.protocol != 6 || !state.is_active();
        let method = self.pools.servers[server as usize].cfg.method;
        let slot = &mut self.table.slots[s as usize];
        slot.server = server;
        slot.svc = svc;
        slot.state = state as u8;
        slot.flags = method_flags(method) | if inactive { F_INACTIVE } else { 0 };
        slot.control = template;
        if template != NIL {
            self.table.slots[template as usize].control += 1;
        }
        self.pools.bind(server, false, inactive);
        self.stats.conns_created += 1;
        #[cfg(feature = "sync")]
        if self.journal.on {
            self.sync_note(s);
        }
        self.forward(server, true)
    }

    /// A new flow bound to `server` that finds no slot: forwarded untracked
    /// (starting the grace period), or dropped, as the policy says.
    fn untracked(&mut self, server: u16) -> Verdict {
        match self.cfg.table_full {
            TableFullPolicy::Drop => {
                self.stats.drop_table_full += 1;
                Verdict::Drop(DropReason::TableFull)
            }
            TableFullPolicy::StatelessHash => {
                self.stats.stateless_forwards += 1;
                self.stateless_until =
                    tick_of(self.now.as_micros()) + ticks_for_secs(self.cfg.stateless_grace_s);
                self.forward(server, false)
            }
        }
    }

    /// A new flow with no template to follow and no slot.
    fn table_full(&mut self, svc: u16, flow: &Flow) -> Verdict {
        if self.cfg.table_full == TableFullPolicy::Drop {
            self.stats.drop_table_full += 1;
            return Verdict::Drop(DropReason::TableFull);
        }
        match self.stateless_hash(svc, flow) {
            Some(local) => {
                let server = self.global(svc, local);
                self.untracked(server)
            }
            None => {
                self.stats.drop_no_server += 1;
                Verdict::Drop(DropReason::NoServer)
            }
        }
    }

    /// Every tracked connection's server and whether it counts as
    /// inactive, for consistency checks (tests, the status command).
    pub fn for_each_connection(&self, mut f: impl FnMut(ServerId, TcpState, bool)) {
        for s in self.table.live() {
            if s.kind & KIND_MASK == KIND_CONN {
                f(
                    ServerId(s.server),
                    TcpState::from_u8(s.state),
                    s.flags & F_INACTIVE != 0,
                );
            }
        }
    }

    /// Persistence templates in use: (server, masked client).
    pub fn for_each_template(&self, mut f: impl FnMut(ServerId, IpAddr)) {
        for s in self.table.live() {
            if s.kind & KIND_MASK == KIND_TEMPLATE {
                f(ServerId(s.server), from16(s.caddr, s.kind & KIND_V6 != 0));
            }
        }
    }

    /// Every connection and template with its addresses and time left
    /// (the status command's `conns`).
    pub fn for_each_entry(&self, mut f: impl FnMut(&ConnEntry)) {
        let now_tick = tick_of(self.now.as_micros()) as u32;
        for s in self.table.live() {
            let kind = s.kind & KIND_MASK;
            if kind != KIND_CONN && kind != KIND_TEMPLATE {
                continue;
            }
            let v6 = s.kind & KIND_V6 != 0;
            let ticks = u64::from(s.expires.wrapping_sub(now_tick).min(i32::MAX as u32));
            f(&ConnEntry {
                template: kind == KIND_TEMPLATE,
                protocol: s.proto,
                client: from16(s.caddr, v6),
                client_port: s.cport,
                vip: from16(s.vaddr, v6),
                vport: s.vport,
                server: ServerId(s.server),
                state: TcpState::from_u8(s.state),
                inactive: s.flags & F_INACTIVE != 0,
                expires_in: Duration::from_micros(ticks << super::conn::TICK_SHIFT),
            });
        }
    }

    /// The service's mh lookup table (local server indices), if it uses mh.
    pub fn mh_table(&self, id: ServiceId) -> Option<&[u16]> {
        let i = self.svc_index(id).ok()?;
        let cfg = self.pools.services[i as usize].cfg;
        if cfg.scheduler != Scheduler::Mh {
            return None;
        }
        let start = i as usize * self.pools.mh_stride;
        Some(&self.pools.mh[start..start + cfg.mh_table_size as usize])
    }

    /// Protocol of the service (convenience for drivers).
    pub fn protocol_of(&self, id: ServiceId) -> Option<Protocol> {
        match self.service(id).ok()?.key {
            ServiceKey::Addr { protocol, .. } => Some(protocol),
            ServiceKey::Fwmark { .. } => None,
        }
    }
}

/// ip_vs_ctl.c `__ip_vs_update_dest`: weight, last weight, thresholds and
/// the overload flag's reset rule.
fn apply_config(s: &mut ServerSlot, rs: RealServer, add: bool) {
    if add || rs.weight != 0 {
        s.last_weight = rs.weight;
    }
    if rs.uthreshold == 0 || rs.uthreshold > s.cfg.uthreshold {
        s.overloaded = false;
    }
    s.cfg = rs;
}

/// The connection key of `flow`, IPv4 first (see [`Balancer::classify`]
/// for why each field is read at its own width).
#[inline(always)]
pub(super) fn conn_key(flow: &Flow) -> Key {
    if let (IpAddr::V4(c), IpAddr::V4(v)) = (flow.src, flow.dst) {
        return conn_key_v4(flow, c, v);
    }
    conn_key_any(flow)
}

/// [`conn_key`] of an IPv4 flow from `c` to `v`.
#[inline(always)]
fn conn_key_v4(flow: &Flow, c: Ipv4Addr, v: Ipv4Addr) -> Key {
    Key {
        caddr: c.to_ipv6_mapped().octets(),
        vaddr: v.to_ipv6_mapped().octets(),
        cport: flow.src_port,
        vport: flow.dst_port,
        svc: 0,
        proto: flow.protocol,
        kind: KIND_CONN,
    }
}

/// [`conn_key`] of any flow.
#[inline]
fn conn_key_any(flow: &Flow) -> Key {
    let (caddr, v6) = to16(flow.src);
    let (vaddr, _) = to16(flow.dst);
    Key {
        caddr,
        vaddr,
        cport: flow.src_port,
        vport: flow.dst_port,
        svc: 0,
        proto: flow.protocol,
        kind: KIND_CONN | if v6 { KIND_V6 } else { 0 },
    }
}

// Keep the slot type's name reachable for docs.
#[allow(dead_code)]
type _Slot = ConnSlot;
#[allow(dead_code)]
const _T: u8 = KIND_TEMPLATE;
