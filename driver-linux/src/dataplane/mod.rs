//! The direct-routing (DR) data plane, as an [`Extension`] of the daemon's
//! event loop. Packets for the VIP and port of every `lb_kind DR` virtual
//! server are read from an AF_PACKET ring on the interface that reaches
//! the real servers, classified by a core balancer, sent on with the
//! destination MAC of the chosen real server (IPVS's DR method), in
//! batches, by worker threads. The director's own stack never answers
//! them (an nftables drop rule, see [`nft`]).
//!
//! Threads: the event loop owns the node (services, weights, health) and
//! mirrors it into one [`shard::Shard`] per worker after every change;
//! workers only forward. With several workers, fanout (classic BPF, no
//! eBPF) hashes the client address masked to the coarsest persistence
//! granularity, so persistence holds (see `shard.rs` for the trade-off).
//! `PACKET_FANOUT_HASH` would not do: it hashes the whole flow, ports
//! included, so one client's connections could land on two shards.
//!
//! MACs come from the kernel's neighbour table ([`neighbours`]), watched
//! for changes and refreshed every [`REFRESH`]; a server without one is
//! probed at once.
//!
//! Limits: one interface (all DR real servers on-link there); no fwmark
//! services; IPv4 fragments and IPv6 extension headers are not forwarded
//! (counted); frames larger than a ring slot (GRO aggregates: turn GRO off
//! on the interface) are counted and dropped.

pub mod counters;
pub mod filter;
pub mod frame;
pub mod neighbours;
pub mod nft;
pub mod shard;
pub mod sync;
mod sys;
pub mod worker;
mod zeroed;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use log::{debug, error, info, warn};
use mio::{Interest, unix::SourceFd};
use vrlb_core::config::{ForwardKind, VirtualServer, VrrpInstance};
use vrlb_core::lb::{ConnEntry, ServiceId, ServiceKey};
use vrlb_core::node::{InstanceId, Output};
use vrlb_core::time::{Duration, Instant};
use vrlb_core::vrrp::{self, State};

use crate::daemon::clock::Clock;
use crate::daemon::event_loop::{Context, DaemonNode, Extension};
use crate::daemon::netlink::Rtnl;
use counters::{Counters, Forwarding};
use filter::Match;
use neighbours::Neighbours;
use shard::{ServiceSpec, Shard};
use sys::{RingSize, RxRing, TxSocket, Waker};
use worker::{JournalKick, Worker};

/// How often MACs the workers missed are resolved.
const MAINTENANCE: Duration = Duration::from_secs(1);
/// How often every real server's neighbour entry is re-confirmed.
pub const REFRESH: Duration = Duration::from_secs(30);
/// The extension's token for the neighbour monitor.
const NEIGH_TOKEN: usize = 0;

/// How the data plane runs (`vrlb run` flags).
#[derive(Debug, Clone)]
pub struct DataPlaneOptions {
    /// Worker threads (`--workers`), at least 1.
    pub workers: usize,
    /// The interface to forward on (`--dataplane-iface`); default: the one
    /// whose subnet holds the real servers.
    pub iface: Option<String>,
    /// Connection-table slots of each worker's balancer (`--connections`).
    pub connections: u32,
    /// Each worker's receive ring in KiB (`--ring-kib`).
    pub ring_kib: u32,
}

/// Default receive ring per worker: 512 frames of 2 KiB, about 1.8 ms of
/// a 280 kpps burst (the 4 MiB it was cost 4 MiB of RSS at rest).
pub const DEFAULT_RING_KIB: u32 = 1024;
/// Default connection-table slots per worker.
pub const DEFAULT_CONNECTIONS: u32 = 1 << 16;

impl Default for DataPlaneOptions {
    fn default() -> Self {
        DataPlaneOptions {
            workers: 1,
            iface: None,
            connections: DEFAULT_CONNECTIONS,
            ring_kib: DEFAULT_RING_KIB,
        }
    }
}

/// What the data plane shares with the status socket.
#[derive(Debug, Default)]
struct Shared {
    shards: Vec<Arc<Mutex<Shard>>>,
    /// One per worker: wakes it when its shard, empty while it went to
    /// sleep without a timeout, got entries from elsewhere (sync).
    wakers: Vec<Arc<Waker>>,
    counters: Vec<Arc<Counters>>,
    iface: String,
    /// The workers' clock, to expire what is due before counts are read.
    clock: Clock,
}

/// Runs the expiry pass the shard's worker may not have run yet (an idle
/// worker sleeps until its shard's next expiry, [`worker::idle_timeout_ms`],
/// and a read may come just before it wakes), so what the status socket
/// reads is current.
fn expire_due(shard: &mut Shard, now: Instant) {
    if shard.balancer.poll_timeout().is_some_and(|t| t <= now) {
        shard.balancer.handle_timeout(now);
    }
}

/// A read-only handle on the data plane for `vrlb status` / `vrlb conns`.
#[derive(Debug, Clone, Default)]
pub struct DataPlaneView(Arc<RwLock<Shared>>);

/// Connection counts of one real server, summed over the shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerCounts {
    /// ActiveConn.
    pub active: u32,
    /// InActConn.
    pub inactive: u32,
    /// Persistence templates.
    pub persistent: u32,
}

impl DataPlaneView {
    /// Wakes the workers of the shards numbered in `shards`: ones that
    /// got their first entries from the event loop (sync) while their
    /// worker may sleep without a timeout, so it starts expiring them.
    /// Nothing else the event loop changes needs a wake-up: a worker reads
    /// its shard afresh for every frame.
    pub fn wake_workers(&self, shards: &[usize]) {
        if let Ok(s) = self.0.read() {
            for w in shards.iter().filter_map(|i| s.wakers.get(*i)) {
                w.wake();
            }
        }
    }

    /// Whether the data plane runs, on which interface with how many
    /// workers.
    pub fn running(&self) -> Option<(String, usize)> {
        let s = self.0.read().ok()?;
        (!s.shards.is_empty()).then(|| (s.iface.clone(), s.shards.len()))
    }

    /// Connection-table slots of each worker's balancer, when it runs.
    pub fn connection_slots(&self) -> Option<u32> {
        let s = self.0.read().ok()?;
        let sh = s.shards.first()?.lock().ok()?;
        Some(sh.balancer.layout().connections)
    }

    /// Forwarding counters of every worker.
    pub fn forwarding(&self) -> Forwarding {
        let mut f = Forwarding::default();
        let Ok(s) = self.0.read() else {
            return f;
        };
        for c in &s.counters {
            c.add_to(&mut f);
        }
        let now = s.clock.now();
        for shard in &s.shards {
            if let Ok(mut sh) = shard.lock() {
                expire_due(&mut sh, now);
                let st = sh.balancer.stats();
                f.adopted_mid_flow += st.adopted_mid_flow;
                f.flows_created += st.conns_created;
                f.templates_created += st.templates_created;
                f.template_hits += st.template_hits;
                f.stateless_forwards += st.stateless_forwards;
                f.stateless_continued += st.stateless_continued;
                f.stateless_adopted += st.stateless_adopted;
            }
        }
        f
    }

    /// Counts of the real server `addr:port` of the service `key`.
    pub fn server_counts(&self, key: &ServiceKey, addr: IpAddr, port: u16) -> ServerCounts {
        let mut total = ServerCounts::default();
        let Ok(s) = self.0.read() else {
            return total;
        };
        let now = s.clock.now();
        for shard in &s.shards {
            let Ok(mut sh) = shard.lock() else { continue };
            expire_due(&mut sh, now);
            let b = &sh.balancer;
            let Some(info) = b
                .service_by_key(key)
                .and_then(|id| b.find_server(id, addr, port))
                .and_then(|sid| b.server_info(sid))
            else {
                continue;
            };
            total.active += info.active;
            total.inactive += info.inactive;
            total.persistent += info.persistent;
        }
        total
    }

    /// Every tracked connection and template, with its real server's
    /// address and port. Templates of address services get the service's
    /// protocol and VIP (the table keys them by service), as ipvsadm
    /// shows them.
    pub fn entries(&self, mut f: impl FnMut(&ConnEntry, IpAddr, u16)) {
        let Ok(s) = self.0.read() else { return };
        let now = s.clock.now();
        for shard in &s.shards {
            let Ok(mut sh) = shard.lock() else { continue };
            expire_due(&mut sh, now);
            let b = &sh.balancer;
            let mut service_of = HashMap::new();
            for (id, config) in b.services() {
                for info in b.servers(id) {
                    service_of.insert(info.id, config.key);
                }
            }
            b.for_each_entry(|e| {
                let Some(info) = b.server_info(e.server) else {
                    return;
                };
                let mut e = *e;
                if let (true, Some(ServiceKey::Addr { protocol, vip, .. })) =
                    (e.template, service_of.get(&e.server))
                {
                    e.protocol = protocol.number();
                    e.vip = *vip;
                }
                f(&e, info.server.addr, info.server.port);
            });
        }
    }
}

/// Undoes a start that failed half-way (see `start_running`).
struct Unwind {
    stop: Arc<AtomicBool>,
    wakers: Vec<Arc<Waker>>,
    handles: Vec<JoinHandle<()>>,
    armed: bool,
}

impl Drop for Unwind {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.stop.store(true, Ordering::Relaxed);
        for w in &self.wakers {
            w.wake();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
        if let Err(e) = nft::remove() {
            warn!("data plane: {e}");
        }
    }
}

struct Running {
    ifindex: u32,
    neighbours: Neighbours,
    filters: Vec<sys::FilterHandle>,
    workers: Vec<JoinHandle<()>>,
    wakers: Vec<Arc<Waker>>,
    stop: Arc<AtomicBool>,
    matches: Vec<Match>,
    prefixes: (u8, u8),
    macs: HashMap<IpAddr, [u8; 6]>,
    servers: HashSet<IpAddr>,
    next_maintenance: Instant,
    next_refresh: Instant,
    /// Maintenance rounds in a row that found a server without a MAC.
    unresolved_rounds: u32,
    /// Servers re-probed at once when their neighbour entry failed, until
    /// they resolve again: a server that is gone is then left to the
    /// refresh, instead of a probe every time the kernel gives up on it.
    reprobed: HashSet<IpAddr>,
}

/// The data-plane extension.
pub struct DataPlane {
    opts: DataPlaneOptions,
    /// DR services the configuration being built defines.
    building: Vec<ServiceId>,
    dr: Vec<ServiceId>,
    /// The `use_vmac` MACs of the configuration being built, and of the
    /// running one: frames to them are this director's too.
    building_vmacs: HashSet<[u8; 6]>,
    vmacs: HashSet<[u8; 6]>,
    view: DataPlaneView,
    clock: Clock,
    running: Option<Running>,
    /// VRRP changed: recompute which VIPs are held.
    dirty: bool,
    /// Shared with the workers and the sync extension (none when no
    /// eventfd could be made: sync then drains on its tick).
    journal_kick: Option<Arc<JournalKick>>,
}

impl DataPlane {
    /// A data plane that starts with the daemon.
    pub fn new(opts: DataPlaneOptions) -> Self {
        DataPlane {
            opts,
            building: Vec::new(),
            dr: Vec::new(),
            building_vmacs: HashSet::new(),
            vmacs: HashSet::new(),
            view: DataPlaneView::default(),
            clock: Clock::new(),
            running: None,
            dirty: false,
            journal_kick: match Waker::new() {
                Ok(waker) => Some(Arc::new(JournalKick {
                    waker,
                    armed: AtomicBool::new(false),
                })),
                Err(e) => {
                    warn!("data plane: eventfd: {e}; connection sync will poll");
                    None
                }
            },
        }
    }

    /// A handle for the status socket.
    pub fn view(&self) -> DataPlaneView {
        self.view.clone()
    }

    /// The services to forward, as the node now has them.
    fn specs(&self, node: &DaemonNode) -> Vec<ServiceSpec> {
        let Some(b) = node.balancer() else {
            return Vec::new();
        };
        self.dr
            .iter()
            .filter_map(|id| {
                let config = *b.service(*id).ok()?;
                let state = node.service_state(*id);
                // Listed while quorum is lost, or always with
                // sorry_server_inhibit (the core decides).
                let sorry = state.and_then(|s| s.sorry_listed());
                let sorry_active = state.is_some_and(|s| s.sorry_active()) && sorry.is_some();
                Some(ServiceSpec {
                    config,
                    servers: b.servers(*id).map(|i| i.server).collect(),
                    sorry,
                    sorry_active,
                })
            })
            .collect()
    }

    /// Every real server address of the DR services (listed or not).
    fn server_addrs(&self, node: &DaemonNode) -> HashSet<IpAddr> {
        node.servers()
            .filter(|(_, s)| self.dr.contains(&s.service))
            .map(|(_, s)| s.config.addr)
            .chain(
                self.dr
                    .iter()
                    .filter_map(|id| node.service_state(*id).and_then(|s| s.sorry))
                    .map(|(a, _)| a),
            )
            .collect()
    }

    fn start_running(&mut self, ctx: &mut Context<'_>) -> Result<(), String> {
        let node = ctx.node();
        let specs = self.specs(node);
        let servers = self.server_addrs(node);
        let Some(balancer) = node.balancer() else {
            return Ok(());
        };
        // The workers classify, so only their balancers hold connections
        // (the node's is sized without them, see `vrlb run`).
        let layout = vrlb_core::lb::Layout {
            connections: self.opts.connections,
            ..*balancer.layout()
        };
        let lb_cfg = *balancer.config();
        let (ifindex, ifname, own_mac) = self.pick_interface(&servers)?;
        let workers = self.opts.workers.max(1);
        let now = self.clock.now();
        let mut shards = Vec::new();
        let seed = std::collections::hash_map::RandomState::new();
        for i in 0..workers {
            let s = std::hash::BuildHasher::hash_one(&seed, i);
            let shard = Shard::new(layout, lb_cfg, s, now)
                .map_err(|e| format!("a worker's balancer: {e}"))?;
            shards.push(Arc::new(Mutex::new(shard)));
        }
        let matches = matches_of(&specs);
        let prefixes = prefixes_of(&specs);
        let program =
            filter::services(&matches).ok_or("too many DR services for one classic BPF filter")?;
        let fanout_prog = filter::fanout(prefixes.0, prefixes.1);
        let group = ((std::process::id() ^ ifindex) & 0xffff) as u16;
        nft::remove().map_err(|e| format!("clearing a previous run's rules: {e}"))?;
        nft::apply(&matches)?;
        let stop = Arc::new(AtomicBool::new(false));
        // From here a failure stops the workers started and removes the
        // rules, so nothing is half-running.
        let mut unwind = Unwind {
            stop: stop.clone(),
            wakers: Vec::new(),
            handles: Vec::new(),
            armed: true,
        };
        let mut filters = Vec::new();
        let mut counters = Vec::new();
        for (i, shard) in shards.iter().enumerate() {
            let fanout = (workers > 1).then_some((group, fanout_prog.as_slice()));
            let size = RingSize::from_kib(self.opts.ring_kib);
            let ring = RxRing::open(ifindex, size, &program, fanout)
                .map_err(|e| format!("{ifname}: AF_PACKET ring: {e}"))?;
            filters.push(ring.filter_handle().map_err(|e| format!("{ifname}: {e}"))?);
            let tx =
                TxSocket::open(ifindex).map_err(|e| format!("{ifname}: AF_PACKET sender: {e}"))?;
            let c = Arc::new(Counters::default());
            counters.push(c.clone());
            let waker = Arc::new(Waker::new().map_err(|e| format!("eventfd: {e}"))?);
            unwind.wakers.push(waker.clone());
            let w = Worker {
                index: i,
                ring,
                tx,
                shard: shard.clone(),
                counters: c,
                stop: stop.clone(),
                waker,
                journal_kick: self.journal_kick.clone(),
                clock: self.clock,
                own_mac,
            };
            let handle = std::thread::Builder::new()
                .name(format!("vrlb-dp{i}"))
                .spawn(move || w.run())
                .map_err(|e| format!("starting worker {i}: {e}"))?;
            unwind.handles.push(handle);
        }
        let mut neighbours =
            Neighbours::open().map_err(|e| format!("rtnetlink (neighbours): {e}"))?;
        ctx.register(
            &mut SourceFd(&neighbours.monitor_fd()),
            NEIGH_TOKEN,
            Interest::READABLE,
        )
        .map_err(|e| format!("epoll: {e}"))?;
        unwind.armed = false;
        let handles = std::mem::take(&mut unwind.handles);
        let wakers = std::mem::take(&mut unwind.wakers);
        let mut macs = HashMap::new();
        match neighbours.dump(ifindex) {
            Ok(list) => {
                for n in list {
                    if let Some(mac) = n.mac {
                        macs.insert(n.addr, mac);
                    }
                }
            }
            Err(e) => warn!("data plane: reading the neighbour table: {e}"),
        }
        {
            let mut s = self.view.0.write().map_err(|_| "poisoned")?;
            s.shards = shards;
            s.wakers = wakers.clone();
            s.counters = counters;
            s.iface = ifname.clone();
            s.clock = self.clock;
        }
        info!(
            "data plane on {ifname}: {} DR service(s), {workers} worker(s){}",
            specs.len(),
            if workers > 1 {
                ", fanout by client address"
            } else {
                ""
            }
        );
        self.running = Some(Running {
            ifindex,
            neighbours,
            filters,
            workers: handles,
            wakers,
            stop,
            matches,
            prefixes,
            macs,
            servers: HashSet::new(),
            next_maintenance: now,
            next_refresh: now + REFRESH,
            unresolved_rounds: 0,
            reprobed: HashSet::new(),
        });
        self.apply(ctx);
        Ok(())
    }

    /// The interface: the flag's, or the one with a subnet holding a DR
    /// real server (DR needs them on-link), never a macvlan (a VMAC's
    /// subnet is its base's, whose socket sees the VMAC's frames too).
    fn pick_interface(&self, servers: &HashSet<IpAddr>) -> Result<(u32, String, [u8; 6]), String> {
        let mut rtnl = Rtnl::new().map_err(|e| format!("rtnetlink: {e}"))?;
        let links = rtnl.links().map_err(|e| format!("rtnetlink: {e}"))?;
        let index = match &self.opts.iface {
            Some(name) => links
                .iter()
                .find(|l| &l.name == name)
                .map(|l| l.index)
                .ok_or_else(|| format!("--dataplane-iface {name}: no such interface"))?,
            None => {
                let addrs = rtnl.addrs().map_err(|e| format!("rtnetlink: {e}"))?;
                let macvlan = |index: u32| {
                    links
                        .iter()
                        .any(|l| l.index == index && l.macvlan_parent.is_some())
                };
                addrs
                    .iter()
                    .find(|a| {
                        !macvlan(a.index)
                            && servers
                                .iter()
                                .any(|s| same_subnet(a.addr, *s, a.prefix_len))
                    })
                    .map(|a| a.index)
                    .ok_or(
                        "no interface has a subnet holding the DR real servers (DR needs them \
                         on-link; name one with --dataplane-iface)",
                    )?
            }
        };
        let link = links
            .iter()
            .find(|l| l.index == index)
            .ok_or("the interface disappeared")?;
        let mac = link
            .mac
            .ok_or_else(|| format!("{}: no Ethernet address", link.name))?;
        Ok((index, link.name.clone(), mac))
    }

    /// Mirrors the node into every shard; updates the filter and firewall
    /// when the service set changed; probes new servers. Wakes no worker:
    /// nothing here adds entries, and a worker reads its shard afresh for
    /// every frame.
    fn apply(&mut self, ctx: &mut Context<'_>) {
        let node = ctx.node();
        let specs = self.specs(node);
        let held = held_vips(node, &specs);
        let servers = self.server_addrs(node);
        let lb_cfg = match node.balancer() {
            Some(b) => *b.config(),
            None => return,
        };
        let Some(run) = self.running.as_mut() else {
            return;
        };
        if let Ok(s) = self.view.0.read() {
            for shard in &s.shards {
                let Ok(mut sh) = shard.lock() else { continue };
                if let Err(e) = sh.mirror(lb_cfg, &specs) {
                    error!("data plane: {e}");
                }
                if sh.held != held {
                    sh.held = held.clone();
                }
                if sh.vmacs != self.vmacs {
                    sh.vmacs = self.vmacs.clone();
                }
                if sh.macs != run.macs {
                    sh.macs = run.macs.clone();
                }
            }
        }
        let matches = matches_of(&specs);
        if matches != run.matches {
            match filter::services(&matches) {
                Some(p) => {
                    for f in &run.filters {
                        if let Err(e) = f.set_filter(&p) {
                            error!("data plane: replacing the socket filter: {e}");
                        }
                    }
                }
                None => error!("data plane: too many DR services for one filter"),
            }
            if let Err(e) = nft::apply(&matches) {
                error!("data plane: {e}");
            }
            run.matches = matches;
        }
        let prefixes = prefixes_of(&specs);
        if prefixes != run.prefixes && run.filters.len() > 1 {
            if let Err(e) = run.filters[0].set_fanout(&filter::fanout(prefixes.0, prefixes.1)) {
                error!("data plane: replacing the fanout program: {e}");
            }
            run.prefixes = prefixes;
        }
        for addr in servers.difference(&run.servers) {
            if run.macs.contains_key(addr) {
                continue;
            }
            // A new server without a MAC: resolve it on the fast tick.
            run.unresolved_rounds = 0;
            run.next_maintenance = run.next_maintenance.min(self.clock.now() + MAINTENANCE);
            if let Err(e) = run.neighbours.probe(run.ifindex, *addr) {
                warn!("data plane: resolving {addr}: {e}");
            }
        }
        run.servers = servers;
    }

    fn set_mac(&mut self, addr: IpAddr, mac: [u8; 6]) {
        let Some(run) = self.running.as_mut() else {
            return;
        };
        if run.macs.get(&addr) == Some(&mac) {
            return;
        }
        if run.servers.contains(&addr) {
            info!("data plane: real server {addr} is at {}", mac_text(mac));
        }
        run.macs.insert(addr, mac);
        run.reprobed.remove(&addr);
        if let Ok(s) = self.view.0.read() {
            for shard in &s.shards {
                if let Ok(mut sh) = shard.lock() {
                    sh.macs.insert(addr, mac);
                    sh.missing.remove(&addr);
                }
            }
        }
    }

    fn neighbour_events(&mut self) {
        let Some(run) = self.running.as_mut() else {
            return;
        };
        let mut events = Vec::new();
        if let Err(e) = run.neighbours.read(&mut events) {
            warn!("data plane: neighbour events lost ({e}): reading the table again");
            if let Ok(list) = run.neighbours.dump(run.ifindex) {
                events = list;
            }
        }
        let ifindex = run.ifindex;
        let mut reprobe = Vec::new();
        for n in events {
            if n.ifindex != ifindex {
                continue;
            }
            match n.mac {
                Some(mac) => self.set_mac(n.addr, mac),
                // Gone or failed: keep the last MAC (a moved server
                // answers the probe with its new one) and ask again, once.
                // A server never resolved is the maintenance rounds'
                // business (backing off), or every failed resolution,
                // its checker's included, would probe it again.
                None if self.running.as_mut().is_some_and(|r| {
                    r.servers.contains(&n.addr)
                        && r.macs.contains_key(&n.addr)
                        && r.reprobed.insert(n.addr)
                }) =>
                {
                    reprobe.push(n.addr);
                }
                None => {}
            }
        }
        if let Some(run) = self.running.as_mut() {
            for addr in reprobe {
                debug!("data plane: neighbour {addr} gone or failed: probing");
                let _ = run.neighbours.probe(ifindex, addr);
            }
        }
    }

    fn maintenance(&mut self, now: Instant) {
        let Some(run) = self.running.as_mut() else {
            return;
        };
        if now < run.next_maintenance {
            return;
        }
        run.next_maintenance = now + MAINTENANCE;
        let mut wanted: HashSet<IpAddr> = run
            .servers
            .iter()
            .filter(|a| !run.macs.contains_key(*a))
            .copied()
            .collect();
        if let Ok(s) = self.view.0.read() {
            for shard in &s.shards {
                if let Ok(mut sh) = shard.lock() {
                    wanted.extend(sh.missing.drain());
                }
            }
        }
        // Nothing unresolved: sleep until the refresh (MACs are never
        // dropped, so workers miss none). A server that does not answer
        // is asked again after 1, 2, 4, then every 8 s: its checker's
        // connects make the kernel resolve it too, and the neighbour
        // monitor hears that at once.
        if wanted.is_empty() {
            run.unresolved_rounds = 0;
            run.next_maintenance = run.next_refresh;
        } else {
            let backoff_us = MAINTENANCE.as_micros() << run.unresolved_rounds.min(3);
            run.unresolved_rounds = run.unresolved_rounds.saturating_add(1);
            run.next_maintenance = now + Duration::from_micros(backoff_us);
        }
        if now >= run.next_refresh {
            run.next_refresh = now + REFRESH;
            if run.unresolved_rounds == 0 {
                run.next_maintenance = run.next_refresh;
            }
            wanted.extend(run.servers.iter().copied());
        }
        for addr in wanted {
            if let Err(e) = run.neighbours.probe(run.ifindex, addr) {
                debug!("data plane: probing {addr}: {e}");
            }
        }
    }
}

impl Extension for DataPlane {
    fn name(&self) -> &str {
        "data plane"
    }

    fn start(&mut self, _ctx: &mut Context<'_>) -> io::Result<()> {
        // `reloaded` follows at once and starts forwarding (its errors are
        // logged there; a SIGHUP retries). Without DR services, still clear
        // what a crashed run may have left.
        if self.building.is_empty()
            && let Err(e) = nft::remove()
        {
            debug!("data plane: {e}");
        }
        Ok(())
    }

    fn virtual_server(&mut self, services: &[ServiceId], vs: &VirtualServer<'_>) {
        if vs.kind == ForwardKind::Dr {
            self.building.extend_from_slice(services);
        } else {
            debug!("data plane: only lb_kind DR services are forwarded");
        }
    }

    fn instance(&mut self, _id: InstanceId, conf: &VrrpInstance<'_>) {
        if let Some(v) = &conf.use_vmac {
            self.building_vmacs.insert(v.mac(conf.vrid, conf.is_ipv6()));
        }
    }

    fn reloaded(&mut self, ctx: &mut Context<'_>) {
        self.dr = std::mem::take(&mut self.building);
        self.vmacs = std::mem::take(&mut self.building_vmacs);
        if self.running.is_none() && !self.dr.is_empty() && ctx.node().balancer().is_some() {
            if let Err(e) = self.start_running(ctx) {
                error!("data plane: cannot start: {e}");
            }
            return;
        }
        self.apply(ctx);
    }

    fn ready(&mut self, local: usize, _readable: bool, _writable: bool, _ctx: &mut Context<'_>) {
        if local == NEIGH_TOKEN {
            self.neighbour_events();
        }
    }

    fn output(&mut self, out: &Output, ctx: &mut Context<'_>) {
        if matches!(out, Output::ServerHealth { .. } | Output::Quorum { .. }) {
            self.apply(ctx);
        }
    }

    fn observe(&mut self, out: &Output) {
        if mastership_may_change(out) {
            self.dirty = true;
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let run = self.running.as_ref()?;
        if self.dirty {
            return Some(Instant::ZERO);
        }
        Some(run.next_maintenance)
    }

    fn handle_timeout(&mut self, ctx: &mut Context<'_>) {
        if self.dirty {
            self.dirty = false;
            self.apply(ctx);
        }
        let now = self.clock.now();
        self.maintenance(now);
    }

    fn shutdown(&mut self, _ctx: &mut Context<'_>) {
        let Some(run) = self.running.take() else {
            return;
        };
        run.stop.store(true, Ordering::Relaxed);
        for w in &run.wakers {
            w.wake();
        }
        for h in run.workers {
            let _ = h.join();
        }
        if let Err(e) = nft::remove() {
            warn!("data plane: {e}");
        }
        info!("data plane stopped");
    }
}

fn mac_text(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn same_subnet(a: IpAddr, b: IpAddr, prefix_len: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let m = u32::MAX
                .checked_shl(32 - u32::from(prefix_len.min(32)))
                .unwrap_or(0);
            prefix_len > 0 && u32::from(a) & m == u32::from(b) & m
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(prefix_len.min(128)))
                .unwrap_or(0);
            prefix_len > 0 && u128::from(a) & m == u128::from(b) & m
        }
        _ => false,
    }
}

/// The filter matches of `specs` (fwmark services cannot be matched on
/// the wire and are skipped).
fn matches_of(specs: &[ServiceSpec]) -> Vec<Match> {
    let mut out: Vec<Match> = specs
        .iter()
        .filter_map(|s| match s.config.key {
            ServiceKey::Addr {
                protocol,
                vip,
                port,
            } => Some(Match {
                vip,
                protocol: protocol.number(),
                port,
            }),
            ServiceKey::Fwmark { .. } => None,
        })
        .collect();
    out.sort_by_key(|m| (m.vip, m.protocol, m.port));
    out.dedup();
    out
}

/// The coarsest persistence granularity (IPv4, IPv6 prefix lengths) of
/// the persistent services: the fanout masks client addresses with it.
fn prefixes_of(specs: &[ServiceSpec]) -> (u8, u8) {
    let mut v4 = 32;
    let mut v6 = 128;
    for s in specs.iter().filter(|s| s.config.persistence_timeout_s > 0) {
        let p = s.config.persistence_prefix_len;
        if s.config.is_ipv6() {
            v6 = v6.min(p);
        } else {
            v4 = v4.min(p.min(32));
        }
    }
    (v4, v6)
}

/// Whether `out` may change which instances are MASTER, so which VIPs are
/// held ([`held_vips`]) and the sync role. Adverts and GARPs do not, and
/// a master sends one every advert interval, so reacting to them would
/// redo the shards' mirror (and sync's refresh) that often for nothing.
pub(crate) fn mastership_may_change(out: &Output) -> bool {
    matches!(
        out,
        Output::Vrrp {
            event: vrrp::Output::StateChanged { .. },
            ..
        }
    )
}

/// VIPs of `specs` this director holds: listed by an instance in MASTER
/// state, or by no VRRP instance at all (a VIP managed elsewhere).
fn held_vips(node: &DaemonNode, specs: &[ServiceSpec]) -> HashSet<IpAddr> {
    specs
        .iter()
        .filter_map(|s| match s.config.key {
            ServiceKey::Addr { vip, .. } => Some(vip),
            ServiceKey::Fwmark { .. } => None,
        })
        .filter(|vip| {
            let mut listed = node.instances().filter(|(_, i)| i.vips().contains(vip));
            let mut any = false;
            let held = listed.any(|(_, i)| {
                any = true;
                i.state() == State::Master
            });
            held || !any
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrlb_core::lb::{Protocol, Scheduler, ServiceConfig};

    fn spec(vip: &str, port: u16, persist: u32, prefix: u8) -> ServiceSpec {
        let mut config = ServiceConfig::new(
            ServiceKey::Addr {
                protocol: Protocol::Tcp,
                vip: vip.parse().unwrap(),
                port,
            },
            Scheduler::Wlc,
        );
        config.persistence_timeout_s = persist;
        config.persistence_prefix_len = prefix;
        ServiceSpec {
            config,
            servers: Vec::new(),
            sorry: None,
            sorry_active: false,
        }
    }

    #[test]
    fn fanout_masks_with_the_coarsest_persistent_granularity() {
        assert_eq!(prefixes_of(&[]), (32, 128));
        let specs = [
            spec("192.0.2.240", 80, 60, 32),
            spec("192.0.2.241", 80, 60, 24),
            spec("192.0.2.242", 80, 0, 8),
            spec("2001:db8::1", 80, 60, 64),
        ];
        assert_eq!(prefixes_of(&specs), (24, 64));
        let m = matches_of(&specs);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].port, 80);
    }

    #[test]
    fn only_a_state_change_remirrors_the_shards() {
        use vrlb_core::node::InstanceId;
        let vrrp = |event| Output::Vrrp {
            instance: InstanceId(0),
            event,
        };
        // What a master emits every advert interval at rest.
        assert!(!mastership_may_change(&vrrp(vrrp::Output::Advert {
            priority: 100
        })));
        assert!(!mastership_may_change(&vrrp(vrrp::Output::Garp {
            repeat: 5
        })));
        assert!(!mastership_may_change(&vrrp(vrrp::Output::AddVips)));
        assert!(mastership_may_change(&vrrp(vrrp::Output::StateChanged {
            from: State::Backup,
            to: State::Master,
            reason: vrrp::Reason::MasterDown,
        })));
    }

    /// `lvs_timeouts` reach the workers: the shards take the node's
    /// balancer settings when they are made and at every mirror (reload).
    #[test]
    fn lvs_timeouts_reach_the_shards_through_the_mirror() {
        use crate::daemon::env::built_for_test;
        use vrlb_core::lb::tcp::TcpState;
        use vrlb_core::lb::{Flow, Layout, LbConfig, RealServer, TcpFlags};
        let text = "global_defs {
  lvs_timeouts tcp 30 tcpfin 7 udp 12
}
virtual_server 192.0.2.240 80 {
  lb_kind DR
  real_server 192.0.2.21 80 {
  }
}
";
        let cfg = built_for_test(text, |node, _| *node.balancer().unwrap().config());
        assert_eq!(
            (cfg.tcp_timeout_s, cfg.tcp_fin_timeout_s, cfg.udp_timeout_s),
            (30, 7, 12)
        );
        // A shard made before the reload that brought them.
        let layout = Layout {
            services: 1,
            servers_per_service: 2,
            mh_table_max: 0,
            connections: 64,
        };
        let mut shard = Shard::new(layout, LbConfig::default(), 3, Instant::ZERO).unwrap();
        let mut sp = spec("192.0.2.240", 80, 0, 32);
        sp.servers = vec![RealServer::new("192.0.2.21".parse().unwrap(), 80)];
        shard.mirror(cfg, &[sp]).unwrap();
        let flow = |flags| {
            Flow::tcp(
                "198.51.100.7".parse().unwrap(),
                4000,
                "192.0.2.240".parse().unwrap(),
                80,
                flags,
            )
        };
        let t0 = Instant::from_secs(1);
        let _ = shard.balancer.classify(t0, &flow(TcpFlags::SYN));
        let _ = shard.balancer.classify(t0, &flow(TcpFlags::ACK));
        let state = |s: &Shard| s.balancer.connection(&flow(TcpFlags::ACK)).map(|c| c.1);
        assert_eq!(state(&shard), Some(TcpState::Established));
        shard.balancer.handle_timeout(Instant::from_secs(30));
        assert_eq!(state(&shard), Some(TcpState::Established));
        shard.balancer.handle_timeout(Instant::from_secs(32));
        assert_eq!(state(&shard), None, "ESTABLISHED lives lvs_timeouts tcp 30");
    }

    #[test]
    fn the_status_view_expires_what_an_idle_worker_has_not_yet() {
        use vrlb_core::lb::{Flow, Layout, LbConfig, RealServer};
        let layout = Layout {
            services: 1,
            servers_per_service: 2,
            mh_table_max: 0,
            connections: 16,
        };
        let mut shard = Shard::new(layout, LbConfig::default(), 3, Instant::ZERO).unwrap();
        let mut sp = spec("192.0.2.240", 7000, 0, 32);
        sp.config.key = ServiceKey::Addr {
            protocol: Protocol::Udp,
            vip: "192.0.2.240".parse().unwrap(),
            port: 7000,
        };
        sp.servers = vec![RealServer::new("192.0.2.21".parse().unwrap(), 7000)];
        shard.mirror(LbConfig::default(), &[sp]).unwrap();
        let flow = Flow::udp(
            "198.51.100.7".parse().unwrap(),
            4000,
            "192.0.2.240".parse().unwrap(),
            7000,
        );
        let _ = shard.balancer.classify(Instant::from_secs(1), &flow);
        assert_eq!(shard.balancer.tracked(), 1);
        // Not yet due: kept.
        expire_due(&mut shard, Instant::from_secs(2));
        assert_eq!(shard.balancer.tracked(), 1);
        // Past the UDP timeout: gone before the counts are read.
        let timeout = u64::from(LbConfig::default().udp_timeout_s);
        expire_due(&mut shard, Instant::from_secs(timeout + 10));
        assert_eq!(shard.balancer.tracked(), 0);
    }

    #[test]
    fn subnets() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(same_subnet(a("192.0.2.2"), a("192.0.2.21"), 24));
        assert!(!same_subnet(a("192.0.2.2"), a("192.0.3.21"), 24));
        assert!(!same_subnet(a("192.0.2.2"), a("192.0.2.21"), 0));
        assert!(same_subnet(a("2001:db8::2"), a("2001:db8::21"), 64));
        assert!(!same_subnet(a("2001:db8::2"), a("192.0.2.21"), 24));
    }
}
