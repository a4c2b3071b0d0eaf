//! `vrlb run`: the daemon. Reads keepalived.conf, builds a core [`Node`]
//! from it, and runs one event loop (mio) that sleeps until a socket is
//! readable, a signal arrives, or the earliest deadline (the node's, a
//! child's timeout, an extension's) passes. Everything happens on that
//! one thread: VRRP adverts in and out, VIPs through rtnetlink, GARP/NA
//! through AF_PACKET, scripts as child processes, SIGHUP reload, SIGTERM
//! shutdown. Other parts plug in as [`event_loop::Extension`]s.
//!
//! Start order: config parsed (errors exit before any network access),
//! privileges checked, pid file, interfaces read, node built, VIPs left by
//! a crashed run removed, sockets opened, link states fed, `Start`.

pub mod addresses;
pub mod announce;
pub mod clock;
pub mod env;
pub mod event_loop;
pub mod garp_pacer;
pub mod holdoff;
pub mod interfaces;
pub mod logger;
pub mod mail;
pub mod netlink;
pub mod notify;
pub mod packet_socket;
pub mod pidfile;
pub mod privileges;
pub mod routes;
pub mod scripts;
pub mod stats_file;
pub mod sync_groups;
pub mod systemd;
pub mod track_files;
pub mod trim;
pub mod vip_state;
pub mod vmacs;
pub mod vrrp_socket;
pub mod wakeup;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use log::{debug, error, info, warn};
use mio::{Events, Interest, Poll, Token, unix::SourceFd};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use vrlb_core::config::{self, Kind, Options, Sink, VrrpInstance};
use vrlb_core::node::build::{self, Counts};
use vrlb_core::node::{IfaceId, Input, InstanceId, Output, ScriptId};
use vrlb_core::time::{Duration, Instant};
use vrlb_core::vrrp;

use crate::config_file::{Builtins, FsIncluder, read_config};
use crate::node_memory::NodeMemory;
use addresses::{Addresses, Wanted};
use clock::Clock;
use env::{Env, InstanceInfo, ScriptInfo, UpDownScripts};
use event_loop::{Context, DaemonNode, Extension, owner, token_base};
use garp_pacer::{Kind as AnnounceKind, Pacer};
use holdoff::Holdoff;
use interfaces::{Change, Interfaces};
use netlink::{Monitor, Rtnl, VipSpec};
use notify::{NotifyInfo, Whose};
use packet_socket::PacketSocket;
use routes::{Held, Owner, RouteInfo, Routes};
use scripts::{Job, Runner};
use sync_groups::SyncGroups;
use vip_state::VipState;
use vmacs::{VmacInfo, Vmacs};
use vrrp_socket::{Family, Receiver, RecvBatch, Sender};
use wakeup::Wakeup;

/// How `vrlb run` was asked to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// keepalived.conf.
    pub config: PathBuf,
    /// keepalived's `-i`.
    pub config_id: Option<String>,
    /// Where to write the pid (none: no pid file).
    pub pid_file: Option<PathBuf>,
    /// The record of VIPs added, for cleaning up after a crash.
    pub state_file: PathBuf,
    /// Where to write instance counters (none: not written).
    pub stats_file: Option<PathBuf>,
    /// Connection-table slots of the balancer (only with virtual_server
    /// blocks).
    pub connections: u32,
}

/// Notify scripts are killed after this long (keepalived has no such
/// limit; one hung script must not pile up forever).
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the last e-mail alerts (instances stopping) may take at exit.
const MAIL_AT_EXIT: std::time::Duration = std::time::Duration::from_secs(5);
/// The latest a timer is still handled at its own deadline (see
/// `Daemon::timers`): more than a loaded machine's scheduling delay (4-44
/// ms seen against busy loops). A timer with a shorter period (VRRPv3
/// allows 10 ms) catches up at most LATE_MAX / period times in a row.
const LATE_MAX: Duration = Duration::from_millis(100);
/// Counters are reported (log line on drops, stats file) at most this
/// often, and only after VRRP traffic or events may have changed them; a
/// report never needs a wake-up of its own unless it is this late again
/// (see `Daemon::timers`). `vrlb status` reads the node, not the report.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Spare slots beyond what the configuration defines, so a reload can add
/// some without a restart.
const HEADROOM: usize = 16;

const SIGNAL_TOKEN: Token = Token(0);
const MONITOR_TOKEN: Token = Token(1);
const WAKEUP_TOKEN: Token = Token(2);
const TRACK_FILES_TOKEN: Token = Token(3);
/// Receivers get tokens from here on.
const FIRST_RECEIVER: usize = 16;

/// The configuration text and what it holds, read before the node is
/// touched.
struct Loaded {
    text: String,
    counts: Counts,
    vips: Vec<IpAddr>,
    /// `${_RANDOM}`'s seed and `${_ENV}`'s environment, for the build too.
    builtins: Builtins,
}

/// Collects every VIP a configuration lists (never chosen as a primary
/// address).
#[derive(Default)]
struct VipList(Vec<IpAddr>);

impl Sink for VipList {
    fn vrrp_instance(&mut self, i: &VrrpInstance<'_>) -> Result<(), Kind> {
        self.0
            .extend(i.vips.iter().chain(i.excluded_vips.iter()).map(|v| v.addr));
        Ok(())
    }
}

fn load(path: &Path, config_id: Option<&str>) -> Result<Loaded, String> {
    let text = read_config(path)?;
    let name = path.display().to_string();
    let builtins = Builtins::now();
    let env = builtins.env_pairs();
    let options = Options {
        config_id,
        random_seed: builtins.seed,
        env: &env,
    };
    let counts = build::count(&name, &text, &options, &mut FsIncluder::new(path))
        .map_err(|d| d.to_string())?;
    let mut vips = VipList::default();
    config::parse(
        &name,
        &text,
        &options,
        &mut vips,
        &mut FsIncluder::new(path),
    )
    .map_err(|d| d.to_string())?;
    Ok(Loaded {
        text,
        counts,
        vips: vips.0,
        builtins,
    })
}

/// Slot counts the node was made with.
#[derive(Debug, Clone, Copy)]
struct Capacity {
    instances: usize,
    scripts: usize,
    groups: usize,
}

fn new_node(counts: &Counts, connections: u32) -> Result<(DaemonNode, Capacity), String> {
    let cap = Capacity {
        instances: counts.instances + HEADROOM,
        scripts: counts.scripts + HEADROOM,
        groups: counts.sync_groups + HEADROOM,
    };
    // A VRRP-only configuration needs no connection table.
    let connections = if counts.virtual_servers == 0 {
        1
    } else {
        connections
    };
    // The node lives as long as the process: its memory is never freed.
    let memory = Box::leak(Box::new(NodeMemory::for_counts(
        counts,
        HEADROOM,
        connections,
    )));
    let node = memory
        .node(Instant::ZERO, seed())
        .map_err(|e| format!("cannot size the load balancer: {e}"))?;
    Ok((node, cap))
}

/// A seed for the balancer's keyed hashes: not guessable from outside
/// (the kernel's random bytes), so clients cannot choose collisions.
fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut bytes);
    }
    u64::from_ne_bytes(bytes) ^ u64::from(std::process::id())
}

/// Runs the daemon until SIGTERM or SIGINT. `Err` carries the one message
/// to print when it cannot start.
pub fn run(opts: RunOptions, extensions: Vec<Box<dyn Extension>>) -> Result<(), String> {
    let loaded = load(&opts.config, opts.config_id.as_deref())?;
    privileges::check()?;
    let mut daemon = Daemon::start(opts, loaded, extensions)?;
    daemon.run();
    Ok(())
}

/// The running daemon.
struct Daemon {
    opts: RunOptions,
    clock: Clock,
    poll: Poll,
    signals: Signals,
    wakeup: Wakeup,
    node: DaemonNode,
    capacity: Capacity,
    text: String,
    ifaces: Interfaces,
    rtnl: Rtnl,
    monitor: Monitor,
    receivers: HashMap<Token, (IfaceId, Family, Receiver)>,
    /// Buffers every receiver reads its batches into.
    rx_batch: RecvBatch,
    /// Whether to pause before the next poll (a burst of adverts).
    holdoff: Holdoff,
    next_token: usize,
    senders: HashMap<(IfaceId, IpAddr), Sender>,
    packet: PacketSocket,
    addresses: Addresses,
    /// Routes held: `static_routes`, and masters' `virtual_routes`.
    routes: Routes,
    /// `static_routes`, as configured.
    static_routes: Vec<RouteInfo>,
    /// VMACs made for `use_vmac` instances.
    vmacs: Vmacs,
    /// Spaces gratuitous ARPs and NAs (`vrrp_garp_interval`, ...).
    pacer: Pacer,
    /// What `${_RANDOM}` and `${_ENV}` read in the running configuration.
    builtins: Builtins,
    instances: HashMap<InstanceId, InstanceInfo>,
    scripts: HashMap<ScriptId, ScriptInfo>,
    /// Real servers' `notify_up` / `notify_down`.
    server_scripts: HashMap<vrlb_core::node::ServerRef, UpDownScripts>,
    /// Services' `quorum_up` / `quorum_down`.
    service_scripts: HashMap<vrlb_core::lb::ServiceId, UpDownScripts>,
    /// Who runs notify scripts (the build's default script account).
    notify_as: scripts::RunAs,
    /// E-mail alerts, when some instance or real server has them on.
    alerts: Option<mail::Alerts>,
    /// Sync groups' own state, for their notify scripts and alerts.
    groups: SyncGroups,
    runner: Runner<ScriptId>,
    /// `track_file`s: their inotify watches and settings.
    track_files: track_files::TrackFiles,
    extensions: Vec<Box<dyn Extension>>,
    pending: VecDeque<Output>,
    /// Instances a rebuild removed whose priority-0 advert was sent
    /// already: their queued one is skipped (the slot may hold a new
    /// instance by the time the queue is drained).
    goodbyes_sent: HashSet<InstanceId>,
    next_report: Instant,
    /// Adverts or VRRP events since the last report.
    report_pending: bool,
    /// When to give back start-up memory ([`trim`]): at once after a
    /// (re)build, again once the last state change has settled.
    trim_at: Option<Instant>,
    reported_drops: HashMap<InstanceId, [u32; vrrp::DropReason::ALL.len()]>,
    stats_text: String,
    stopping: bool,
    systemd: systemd::Systemd,
    _pid: Option<pidfile::PidFile>,
}

/// What tracked files may change, before a value is fed.
struct TrackingSnapshot {
    priorities: HashMap<InstanceId, u8>,
    servers: HashMap<vrlb_core::node::ServerRef, (u32, bool)>,
}

/// One advert, rendered while its instance still exists.
struct Advert {
    name: String,
    iface: IfaceId,
    src: IpAddr,
    dst: IpAddr,
    bytes: Vec<u8>,
}

fn io_err(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| {
        if e.raw_os_error() == Some(libc::EPERM) || e.raw_os_error() == Some(libc::EACCES) {
            format!("{what}: {e} (needs CAP_NET_RAW and CAP_NET_ADMIN)")
        } else {
            format!("{what}: {e}")
        }
    }
}

impl Daemon {
    fn start(
        opts: RunOptions,
        loaded: Loaded,
        extensions: Vec<Box<dyn Extension>>,
    ) -> Result<Daemon, String> {
        let pid = match &opts.pid_file {
            Some(p) => Some(pidfile::PidFile::create(p)?),
            None => None,
        };
        let mut rtnl = Rtnl::new().map_err(io_err("rtnetlink"))?;
        let monitor = Monitor::new().map_err(io_err("rtnetlink monitor"))?;
        let mut ifaces = Interfaces::default();
        ifaces.load(
            rtnl.links().map_err(io_err("listing interfaces"))?,
            rtnl.addrs().map_err(io_err("listing addresses"))?,
        );
        let poll = Poll::new().map_err(io_err("epoll"))?;
        let mut signals =
            Signals::new([SIGTERM, SIGINT, SIGHUP, SIGCHLD]).map_err(io_err("signals"))?;
        poll.registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)
            .map_err(io_err("epoll"))?;
        poll.registry()
            .register(
                &mut SourceFd(&std::os::fd::AsRawFd::as_raw_fd(&monitor)),
                MONITOR_TOKEN,
                Interest::READABLE,
            )
            .map_err(io_err("epoll"))?;
        let wakeup = Wakeup::new().map_err(io_err("timerfd"))?;
        poll.registry()
            .register(
                &mut SourceFd(&std::os::fd::AsRawFd::as_raw_fd(&wakeup)),
                WAKEUP_TOKEN,
                Interest::READABLE,
            )
            .map_err(io_err("epoll"))?;
        let track_files = track_files::TrackFiles::new().map_err(io_err("inotify"))?;
        poll.registry()
            .register(
                &mut SourceFd(&track_files.raw_fd()),
                TRACK_FILES_TOKEN,
                Interest::READABLE,
            )
            .map_err(io_err("epoll"))?;
        let packet = PacketSocket::open().map_err(io_err("AF_PACKET socket"))?;
        let (node, capacity) = new_node(&loaded.counts, opts.connections)?;
        let clock = Clock::new();
        let mut daemon = Daemon {
            addresses: Addresses::new(VipState::new(&opts.state_file)),
            routes: Routes::default(),
            static_routes: Vec::new(),
            vmacs: Vmacs::default(),
            pacer: Pacer::default(),
            builtins: loaded.builtins,
            opts,
            clock,
            poll,
            signals,
            wakeup,
            node,
            capacity,
            text: loaded.text,
            ifaces,
            rtnl,
            monitor,
            receivers: HashMap::new(),
            rx_batch: RecvBatch::new(),
            holdoff: Holdoff::default(),
            next_token: FIRST_RECEIVER,
            senders: HashMap::new(),
            packet,
            instances: HashMap::new(),
            scripts: HashMap::new(),
            server_scripts: HashMap::new(),
            service_scripts: HashMap::new(),
            notify_as: Ok(None),
            alerts: None,
            groups: SyncGroups::default(),
            runner: Runner::default(),
            track_files,
            extensions,
            pending: VecDeque::new(),
            goodbyes_sent: HashSet::new(),
            next_report: Instant::ZERO,
            report_pending: true,
            trim_at: Some(Instant::ZERO),
            reported_drops: HashMap::new(),
            stats_text: String::new(),
            stopping: false,
            systemd: systemd::Systemd::from_env(),
            _pid: pid,
        };
        daemon.build(&loaded.vips, false)?;

        // A crash left VIPs behind: remove them before taking any.
        let ifaces = &daemon.ifaces;
        for line in daemon.addresses.clean_leftovers(&mut daemon.rtnl, |dev| {
            ifaces.link_by_name(dev).map(|l| l.index)
        }) {
            warn!("{line}");
        }
        daemon.clean_leftover_routes();
        daemon.hold_routes(Owner::Static);
        daemon.open_receivers();
        for (id, info) in &daemon.instances {
            let iface = daemon.node.instance_iface(*id);
            if iface.is_some_and(|i| daemon.ifaces.link(i).is_none()) {
                warn!(
                    "{}: interface {} does not exist: FAULT until it appears",
                    info.name, info.iface
                );
            }
        }
        let now = daemon.clock.now();
        let ids: Vec<IfaceId> = daemon.ifaces.ids().collect();
        for id in ids {
            let up = daemon.ifaces.is_up(id);
            daemon.node.handle(now, Input::Link { iface: id, up });
        }
        daemon.with_extensions(|e, ctx| {
            if let Err(err) = e.start(ctx) {
                error!("{}: cannot start: {err}", e.name());
            }
            e.reloaded(ctx);
        });
        daemon.node.handle(now, Input::Start);
        daemon.drain();
        let status = daemon.status_line();
        info!("vrlb started: {status}");
        daemon.systemd.ready(now, &status);
        Ok(daemon)
    }

    /// Builds (or rebuilds) the node from `self.text`. `vips` are never
    /// chosen as primary addresses. Warnings are logged unless `quiet` (a
    /// rebuild after an interface change reads the same text again).
    fn build(&mut self, vips: &[IpAddr], quiet: bool) -> Result<(), String> {
        // The build reads the node's clock (new instances start, changed
        // checkers start over), which only moves with inputs and timers:
        // bring it to now (its outputs are drained after the build).
        self.node.handle_timeout(self.clock.now());
        // A master the new configuration drops must still say goodbye
        // (priority 0, as keepalived does on reload), but once the build
        // has removed it the node can no longer render its advert.
        let masters: Vec<InstanceId> = self
            .node
            .instances()
            .filter(|(_, inst)| inst.state() == vrrp::State::Master)
            .map(|(id, _)| id)
            .collect();
        let goodbyes: HashMap<InstanceId, Vec<Advert>> = masters
            .into_iter()
            .map(|id| (id, self.render_adverts(id, 0)))
            .collect();
        let mut exclude: Vec<IpAddr> = vips.to_vec();
        exclude.extend(
            self.instances
                .values()
                .flat_map(|i| i.vips.iter().map(|v| v.addr)),
        );
        exclude.extend(self.addresses.all().map(|w| w.spec.addr));
        let path = self.opts.config.clone();
        let name = path.display().to_string();
        let env_vars = self.builtins.env_pairs();
        let options = Options {
            config_id: self.opts.config_id.as_deref(),
            random_seed: self.builtins.seed,
            env: &env_vars,
        };
        let mut exts = std::mem::take(&mut self.extensions);
        let mut env = Env::new(&mut self.ifaces, &exclude, &mut exts);
        let result = build::build(
            &mut self.node,
            &mut env,
            &name,
            &self.text,
            &options,
            &mut FsIncluder::new(&path),
        );
        let Env {
            instances,
            mut scripts,
            removed,
            files,
            mut warnings,
            script_user,
            server_scripts,
            service_scripts,
            static_routes,
            groups,
            alerts,
            garp,
            ..
        } = env;
        self.extensions = exts;
        // Names are resolved once per build; a name that does not resolve
        // refuses the script (keepalived.conf(5), `script_user`). Only
        // when something may run: a lookup maps the system's NSS modules
        // for good (0.8 MiB resident here) even to find no one.
        let runs_notify = instances.values().any(|i| i.notify.is_some())
            || groups.iter().any(|g| g.notify.is_some())
            || !server_scripts.is_empty()
            || !service_scripts.is_empty();
        let notify_as = if runs_notify || !scripts.is_empty() {
            scripts::default_as(script_user.as_ref())
        } else {
            Ok(None)
        };
        for info in scripts.values_mut() {
            info.run_as = scripts::resolve_as(info.user.as_ref(), &notify_as);
            if let Err(e) = &info.run_as {
                warnings.push(format!(
                    "vrrp_script {}: {e}: the script is not run and counts as failed",
                    info.name
                ));
            }
        }
        if let Err(e) = &notify_as
            && runs_notify
        {
            warnings.push(format!("script_user: {e}: notify scripts are not run"));
        }
        for w in warnings.iter().filter(|_| !quiet) {
            warn!("{w}");
        }
        result.map_err(|d| d.to_string())?;
        self.notify_as = notify_as;
        self.pacer.configure(garp);
        self.alerts = mail::Alerts::rebuild(
            self.alerts.take(),
            alerts,
            instances.keys().copied(),
            &groups,
            quiet,
        );
        let by_name: HashMap<&str, InstanceId> = instances
            .iter()
            .map(|(id, i)| (i.name.as_str(), *id))
            .collect();
        self.groups = SyncGroups::new(groups, |m| by_name.get(m).copied(), &self.groups);
        for id in removed {
            debug!("instance #{} removed", id.0);
            self.reported_drops.remove(&id);
            if let Some(adverts) = goodbyes.get(&id) {
                self.send_adverts(adverts);
                self.goodbyes_sent.insert(id);
            }
        }
        self.instances = instances;
        self.sync_vmacs();
        self.static_routes = static_routes;
        self.scripts = scripts;
        let (readings, file_warnings) = self.track_files.configure(files, self.node.started());
        for w in file_warnings.iter().filter(|_| !quiet) {
            warn!("{w}");
        }
        self.track_file_readings(readings);
        self.server_scripts = server_scripts;
        self.service_scripts = service_scripts;
        self.size_holdoff();
        Ok(())
    }

    /// Makes the VMACs the instances want and removes the ones they no
    /// longer do, then reads the links again so the new ones have their
    /// index and state before sockets are opened on them.
    fn sync_vmacs(&mut self) {
        let mut wanted: Vec<VmacInfo> = Vec::new();
        for info in self.instances.values() {
            let Some(v) = info.vmac.as_deref() else {
                continue;
            };
            match wanted.iter().find(|w| w.name == v.name) {
                Some(w) if w == v => {}
                Some(_) => warn!(
                    "{}: VMAC {} is another instance's with another MAC or base: not made twice",
                    info.name, v.name
                ),
                None => wanted.push(v.clone()),
            }
        }
        if !self.vmacs.sync(&mut self.rtnl, &self.ifaces, &wanted) {
            return;
        }
        // The monitor holds the new links' first states (down, then up):
        // applied after the dump below they would flap their instances.
        // The dump supersedes everything queued before it, so it is
        // dropped, and the node hears every link's state from the dump.
        let mut stale = Vec::new();
        if let Err(e) = self.monitor.read(&mut stale) {
            error!("rtnetlink monitor: {e}");
        }
        match (self.rtnl.links(), self.rtnl.addrs()) {
            (Ok(l), Ok(a)) => self.ifaces.load(l, a),
            (Err(e), _) | (_, Err(e)) => error!("rtnetlink: {e}"),
        }
        let now = self.clock.now();
        let ids: Vec<IfaceId> = self.ifaces.ids().collect();
        for iface in ids {
            let up = self.ifaces.is_up(iface);
            self.node.handle(now, Input::Link { iface, up });
        }
    }

    /// Sizes the receive pause from the shortest advert interval in use:
    /// configured, or learnt from a VRRPv3 master.
    fn size_holdoff(&mut self) {
        let shortest = self
            .node
            .instances()
            .map(|(_, inst)| {
                inst.config()
                    .advert_interval()
                    .min(inst.master_adver_interval())
            })
            .min();
        self.holdoff.set_shortest_interval(shortest);
    }

    /// Opens a receiver for every (interface, family) an instance uses
    /// and that exists.
    fn open_receivers(&mut self) {
        let mut wanted: Vec<(IfaceId, Family)> = Vec::new();
        for (id, inst) in self.node.instances() {
            let Some(iface) = self.node.instance_iface(id) else {
                continue;
            };
            let family = match inst.config().family {
                vrrp::Family::V4 => Family::V4,
                vrrp::Family::V6 => Family::V6,
            };
            if !wanted.contains(&(iface, family)) {
                wanted.push((iface, family));
            }
        }
        for (iface, family) in wanted {
            if self
                .receivers
                .values()
                .any(|(i, f, _)| *i == iface && *f == family)
            {
                continue;
            }
            let Some(link) = self.ifaces.link(iface) else {
                continue;
            };
            match Receiver::open(family, &link.name, link.index) {
                Ok(mut rx) => {
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    let fd = std::os::fd::AsRawFd::as_raw_fd(&rx);
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut SourceFd(&fd), token, Interest::READABLE)
                    {
                        error!("{}: cannot watch the VRRP socket: {e}", link.name);
                        continue;
                    }
                    // Drain anything that arrived before registration.
                    rx.discard();
                    self.receivers.insert(token, (iface, family, rx));
                }
                Err(e) => error!(
                    "{}: cannot open the VRRP {:?} socket: {}",
                    link.name,
                    family,
                    io_err("socket")(e)
                ),
            }
        }
        // Advert sockets too, before any takeover: opening one is ten
        // system calls that would otherwise sit before the new master's
        // first advert, VIP and GARP. A failure is said when sending.
        let sources: Vec<(IfaceId, IpAddr)> = self
            .node
            .instances()
            .filter_map(|(id, inst)| {
                Some((self.node.instance_iface(id)?, inst.config().primary_addr))
            })
            .filter(|(_, src)| !src.is_unspecified())
            .collect();
        for (iface, src) in sources {
            if let Err(e) = self.open_sender(iface, src) {
                debug!("{e}");
            }
        }
    }

    /// Forgets the sockets of an interface that went away.
    fn close_sockets(&mut self, iface: IfaceId) {
        let tokens: Vec<Token> = self
            .receivers
            .iter()
            .filter(|(_, (i, _, _))| *i == iface)
            .map(|(t, _)| *t)
            .collect();
        for t in tokens {
            if let Some((_, _, rx)) = self.receivers.remove(&t) {
                let fd = std::os::fd::AsRawFd::as_raw_fd(&rx);
                let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
            }
        }
        self.senders.retain(|(i, _), _| *i != iface);
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(64);
        loop {
            if let Some(until) = self.holdoff.take() {
                let until = self.next_deadline().map_or(until, |d| d.min(until));
                std::thread::sleep(self.clock.until(until));
            }
            let deadline = self.next_deadline();
            let timeout = self.wakeup.arm(deadline.map(|d| self.clock.until(d)));
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                error!("epoll: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            for event in events.iter() {
                match event.token() {
                    SIGNAL_TOKEN => self.signals(),
                    MONITOR_TOKEN => self.netlink_events(),
                    WAKEUP_TOKEN => self.wakeup.fired(),
                    TRACK_FILES_TOKEN => {
                        let (readings, warnings) = self.track_files.events();
                        for w in warnings {
                            warn!("{w}");
                        }
                        self.track_file_readings(readings);
                        self.drain();
                    }
                    token => match owner(token) {
                        Some((k, local)) => {
                            let (r, w) = (event.is_readable(), event.is_writable());
                            self.with_extension(k, |e, ctx| e.ready(local, r, w, ctx));
                            self.drain();
                        }
                        None => self.receive(token),
                    },
                }
                if self.stopping {
                    break;
                }
            }
            if self.stopping {
                self.shutdown();
                return;
            }
            self.timers();
        }
    }

    /// The earliest of every deadline.
    fn next_deadline(&self) -> Option<Instant> {
        [
            self.node.poll_timeout(),
            self.runner.next_deadline(),
            // Due at `next_report`, but done by whatever wakes the loop
            // first (an advert in or out, at rest): a wake-up of its own
            // only when none came for another interval.
            self.report_pending
                .then(|| self.next_report + REPORT_INTERVAL),
            self.trim_at,
            self.systemd.poll_timeout(),
            self.pacer.next_due(),
        ]
        .into_iter()
        .chain(self.extensions.iter().map(|e| e.poll_timeout()))
        .flatten()
        .min()
    }

    fn timers(&mut self) {
        let now = self.clock.now();
        // A step may leave timers due when the output queue is full: the
        // node asks to be called again, so loop (bounded). A deadline is
        // handled at its own time when the wake-up was late (a busy
        // machine): the node re-arms from it, so lateness does not add up
        // from one advert to the next. After a stall longer than LATE_MAX,
        // at `now`: no burst of catch-up adverts.
        for _ in 0..64 {
            let Some(due) = self.node.poll_timeout().filter(|t| *t <= now) else {
                break;
            };
            let at = if now.saturating_duration_since(due) <= LATE_MAX {
                due
            } else {
                now
            };
            self.node.handle_timeout(at);
            self.drain();
        }
        if self.runner.next_deadline().is_some_and(|t| t <= now) {
            self.reap();
        }
        if self.pacer.next_due().is_some_and(|t| t <= now) {
            self.send_announcements(now);
        }
        for k in 0..self.extensions.len() {
            if self.extensions[k].poll_timeout().is_some_and(|t| t <= now) {
                self.with_extension(k, |e, ctx| e.handle_timeout(ctx));
                self.drain();
            }
        }
        if self.report_pending && now >= self.next_report {
            self.next_report = now + REPORT_INTERVAL;
            self.report();
        }
        if self.trim_at.is_some_and(|t| t <= now) {
            self.trim_at = None;
            trim::after_start();
        }
        self.systemd.handle_timeout(now);
    }

    fn signals(&mut self) {
        let pending: Vec<i32> = self.signals.pending().collect();
        for signal in pending {
            match signal {
                SIGTERM | SIGINT => {
                    info!("signal {signal}: shutting down");
                    self.stopping = true;
                }
                SIGHUP => self.reload(),
                SIGCHLD => self.reap(),
                _ => {}
            }
        }
    }

    /// SIGHUP: the new configuration, or the running one if it is refused;
    /// systemd hears of the reload either way.
    fn reload(&mut self) {
        self.systemd.reloading();
        self.reload_config();
        let status = self.status_line();
        self.systemd.reloaded(&status);
    }

    /// Feeds tracked files' values to the node, logging each and what it
    /// changed (effective priorities, real servers' weights). The caller
    /// drains.
    fn track_file_readings(&mut self, readings: Vec<track_files::Reading>) {
        if readings.is_empty() {
            return;
        }
        let now = self.clock.now();
        for r in readings {
            let Some(info) = self.track_files.info(r.id) else {
                continue;
            };
            let what = format!("track_file {} ({})", info.name, info.path.display());
            match &r.note {
                Some(note) => info!("{what}: {note}"),
                None => info!("{what}: {}", r.value),
            }
            if self.node.track_file_value(r.id) == Some(r.value) {
                continue;
            }
            let before = self.tracking_snapshot();
            self.node.handle(
                now,
                Input::TrackFile {
                    file: r.id,
                    value: r.value,
                },
            );
            for line in self.tracking_changes(&before) {
                info!("{what}: {line}");
            }
        }
    }

    /// Instances' effective priorities and real servers' weights and health.
    fn tracking_snapshot(&self) -> TrackingSnapshot {
        TrackingSnapshot {
            priorities: self
                .node
                .instances()
                .map(|(id, i)| (id, i.effective_priority()))
                .collect(),
            servers: self
                .node
                .servers()
                .map(|(r, s)| (r, (s.weight(), s.healthy)))
                .collect(),
        }
    }

    /// What changed since `before`, in words.
    fn tracking_changes(&self, before: &TrackingSnapshot) -> Vec<String> {
        let mut lines = Vec::new();
        for (id, inst) in self.node.instances() {
            let now = inst.effective_priority();
            if let Some(&was) = before.priorities.get(&id)
                && was != now
            {
                let name = self.instances.get(&id).map_or("?", |i| i.name.as_str());
                lines.push(format!("{name}: effective priority {was} -> {now}"));
            }
        }
        for (r, s) in self.node.servers() {
            let Some(&(weight, healthy)) = before.servers.get(&r) else {
                continue;
            };
            let addr = std::net::SocketAddr::new(s.config.addr, s.config.port);
            if healthy != s.healthy {
                let verdict = if s.healthy { "passes" } else { "fails" };
                lines.push(format!("real server {addr}: FILE_CHECK {verdict}"));
            }
            if weight != s.weight() {
                lines.push(format!(
                    "real server {addr}: weight {weight} -> {}",
                    s.weight()
                ));
            }
        }
        lines
    }

    /// What systemd shows as the service's status.
    fn status_line(&self) -> String {
        format!(
            "{} instance(s) from {}",
            self.instances.len(),
            self.opts.config.display()
        )
    }

    fn reload_config(&mut self) {
        info!("SIGHUP: reloading {}", self.opts.config.display());
        let loaded = match load(&self.opts.config, self.opts.config_id.as_deref()) {
            Ok(l) => l,
            Err(e) => {
                error!("{e}");
                error!("reload refused: the running configuration stays");
                return;
            }
        };
        let c = &loaded.counts;
        if c.instances > self.capacity.instances
            || c.scripts > self.capacity.scripts
            || c.sync_groups > self.capacity.groups
        {
            error!(
                "reload refused: the new configuration has more instances, scripts or sync \
                 groups than this run has room for ({} / {} / {}): restart vrlb",
                self.capacity.instances, self.capacity.scripts, self.capacity.groups
            );
            return;
        }
        let old_text = std::mem::replace(&mut self.text, loaded.text);
        let old_builtins = std::mem::replace(&mut self.builtins, loaded.builtins);
        let known = self.ifaces.ids().count();
        if let Err(e) = self.build(&loaded.vips, false) {
            // The parse passed, so this is a semantic error met half way:
            // rebuild what ran before.
            error!("{e}");
            error!("reload refused: the running configuration stays");
            self.text = old_text;
            self.builtins = old_builtins;
            if let Err(e) = self.build(&[], true) {
                error!("restoring the previous configuration failed: {e}");
            }
        }
        self.after_build(known);
        self.rehold_routes();
        self.trim_at = Some(self.clock.now());
        info!("reloaded: {} instance(s)", self.instances.len());
    }

    /// Sockets and link states for what a build added (interfaces
    /// numbered from `known` on are new).
    fn after_build(&mut self, known: usize) {
        self.open_receivers();
        let now = self.clock.now();
        let new: Vec<IfaceId> = self.ifaces.ids().skip(known).collect();
        for id in new {
            let up = self.ifaces.is_up(id);
            if self.ifaces.link(id).is_none() {
                warn!(
                    "interface {} does not exist: FAULT until it appears",
                    self.ifaces.name(id)
                );
            }
            self.node.handle(now, Input::Link { iface: id, up });
        }
        self.with_extensions(|e, ctx| e.reloaded(ctx));
        self.drain();
    }

    fn netlink_events(&mut self) {
        let mut events = Vec::new();
        if let Err(e) = self.monitor.read(&mut events) {
            error!("rtnetlink monitor: {e}");
        }
        let mut links: Vec<(IfaceId, bool)> = Vec::new();
        let mut rebuild = false;
        for ev in &events {
            if *ev == netlink::Event::Overrun {
                warn!("rtnetlink events were lost: reading every interface again");
                match (self.rtnl.links(), self.rtnl.addrs()) {
                    (Ok(l), Ok(a)) => self.ifaces.load(l, a),
                    (Err(e), _) | (_, Err(e)) => error!("rtnetlink: {e}"),
                }
                for id in self.ifaces.ids() {
                    links.push((id, self.ifaces.is_up(id)));
                }
                rebuild = true;
                continue;
            }
            match self.ifaces.apply(ev) {
                Some(Change::Link { id, up }) => {
                    info!(
                        "interface {} is {}",
                        self.ifaces.name(id),
                        if up { "up" } else { "down" }
                    );
                    links.push((id, up));
                }
                Some(Change::Presence { id, present }) => {
                    if present {
                        info!("interface {} appeared", self.ifaces.name(id));
                        rebuild = true;
                    } else {
                        warn!("interface {} disappeared", self.ifaces.name(id));
                        self.close_sockets(id);
                        // A VMAC of ours is made again (its base permitting).
                        rebuild |= self.vmacs.made(self.ifaces.name(id));
                    }
                    links.push((id, present && self.ifaces.is_up(id)));
                }
                Some(Change::Addresses { id }) => {
                    // An instance that had no address to send from gets one.
                    let unspecified = self.node.instances().any(|(i, inst)| {
                        self.node.instance_iface(i) == Some(id)
                            && inst.config().primary_addr.is_unspecified()
                    });
                    rebuild |= unspecified;
                }
                None => {}
            }
        }
        if rebuild {
            let known = self.ifaces.ids().count();
            if let Err(e) = self.build(&[], true) {
                error!("rebuilding after an interface change: {e}");
            }
            self.after_build(known);
            // The build may have made VMACs again and read every link
            // anew: the events above are older than that.
            for (iface, up) in &mut links {
                *up = self.ifaces.is_up(*iface);
            }
        }
        let now = self.clock.now();
        let any_up = links.iter().any(|(_, up)| *up);
        for (iface, up) in links {
            self.node.handle(now, Input::Link { iface, up });
            self.drain();
        }
        // The kernel drops the routes of a device that goes down, and a
        // route's device may only now exist: hold them all again.
        if any_up {
            self.rehold_routes();
        }
    }

    /// Reads every advert waiting on receiver `token` into the node, a
    /// batch per `recvmmsg`, draining the node after each advert.
    fn receive(&mut self, token: Token) {
        self.report_pending = true;
        let mut batch = std::mem::take(&mut self.rx_batch);
        while let Some((iface, _, rx)) = self.receivers.get_mut(&token) {
            let iface = *iface;
            let more = match rx.recv_batch(&mut batch) {
                Ok(more) => more,
                Err(e) => {
                    warn!("{}: VRRP receive: {e}", self.ifaces.name(iface));
                    break;
                }
            };
            if !batch.is_empty() {
                self.holdoff.read(self.clock.now());
            }
            for i in 0..batch.len() {
                let Some(m) = batch.get(i) else { continue };
                let now = self.clock.now();
                self.node.handle(
                    now,
                    Input::Advert {
                        iface,
                        src: m.src,
                        dst: m.dst,
                        ttl: m.ttl,
                        payload: m.payload,
                    },
                );
                self.drain();
            }
            if !more {
                break;
            }
        }
        self.rx_batch = batch;
    }

    fn reap(&mut self) {
        let now = self.clock.now();
        let mut results = Vec::new();
        self.runner.reap(now, |job, ok| match job {
            Job::Check(script) => results.push((script, ok)),
            Job::Notify(what) if !ok => warn!("{what}: failed or timed out"),
            Job::Notify(_) => {}
        });
        for (script, success) in results {
            self.node
                .handle(now, Input::ScriptResult { script, success });
            self.drain();
        }
    }

    /// Dispatches every output waiting (from the node or extensions).
    /// State changes go last, after the batch's adverts, VIPs and GARPs:
    /// their log line and notify scripts (a fork each) must not delay
    /// what the wire waits for. The VIP state file is written after them.
    fn drain(&mut self) {
        let mut changes = Vec::new();
        loop {
            let out = match self.pending.pop_front() {
                Some(o) => o,
                None => match self.node.poll_output() {
                    Some(o) => o,
                    None if changes.is_empty() => break,
                    None => {
                        for out in std::mem::take(&mut changes) {
                            self.dispatch(out);
                        }
                        continue;
                    }
                },
            };
            match out {
                Output::Vrrp {
                    instance,
                    event: vrrp::Output::Advert { priority: 0 },
                } if self.goodbyes_sent.remove(&instance) => continue,
                Output::Vrrp {
                    event: vrrp::Output::StateChanged { .. },
                    ..
                } => changes.push(out),
                _ => self.dispatch(out),
            }
        }
        self.goodbyes_sent.clear();
        if let Some(line) = self.addresses.flush() {
            warn!("{line}");
        }
    }

    fn dispatch(&mut self, out: Output) {
        // The core decides when a checker notifier runs; extensions still
        // see these outputs (logs, the data plane).
        match out {
            Output::ServerHealth { server, up } => {
                if let Some(alerts) = self.alerts.as_mut() {
                    alerts.server_changed(server, up);
                }
                let scripts = self.server_scripts.get(&server).cloned();
                self.run_up_down(scripts, up, ("notify_up", "notify_down"));
            }
            Output::Quorum { service, up } => {
                if let Some(alerts) = self.alerts.as_mut() {
                    alerts.quorum_changed(service, up, self.stopping);
                }
                let scripts = self.service_scripts.get(&service).cloned();
                self.run_up_down(scripts, up, ("quorum_up", "quorum_down"));
            }
            _ => {}
        }
        let handled = match out {
            Output::Vrrp { instance, event } => {
                self.report_pending = true;
                self.vrrp(instance, event);
                true
            }
            Output::RunScript { script, timeout } => {
                self.run_script(script, timeout);
                true
            }
            Output::ScriptChanged { script, up } => {
                let name = self.scripts.get(&script).map_or("?", |s| s.name.as_str());
                info!(
                    "vrrp_script {name}: {}",
                    if up { "succeeded: up" } else { "failed: down" }
                );
                true
            }
            _ => false,
        };
        if handled {
            for e in &mut self.extensions {
                e.observe(&out);
            }
        } else if self.extensions.is_empty() {
            debug!("no extension handles {out:?}");
        } else {
            self.with_extensions(|e, ctx| e.output(&out, ctx));
        }
    }

    /// Starts a checker notifier (`notify_up`/`notify_down`,
    /// `quorum_up`/`quorum_down`) without waiting for it, as the notify
    /// scripts' account. While stopping (keepalived's `omega`) it gets 1 s,
    /// as keepalived gives them (ipwrapper.c, `TIMER_HZ`).
    fn run_up_down(&mut self, scripts: Option<UpDownScripts>, up: bool, names: (&str, &str)) {
        let Some(s) = scripts else {
            return;
        };
        let Some(line) = s.command(up) else {
            return;
        };
        // Refused at the build (and said so then).
        let Ok(run_as) = self.notify_as.clone() else {
            return;
        };
        let keyword = if up { names.0 } else { names.1 };
        let timeout = if self.stopping {
            Duration::from_secs(1)
        } else {
            NOTIFY_TIMEOUT
        };
        let job = Job::Notify(format!("{}: {keyword} '{line}'", s.name));
        let now = self.clock.now();
        if let Err(e) = self.runner.spawn(now, line, &[], run_as, timeout, job) {
            warn!("{}: {keyword}: {e}", s.name);
        }
    }

    fn run_script(&mut self, script: ScriptId, timeout: Duration) {
        let now = self.clock.now();
        let spawned = match self.scripts.get(&script) {
            // Refused at the build (and said so then): a failure, quietly.
            Some(ScriptInfo { run_as: Err(_), .. }) => Err(String::new()),
            Some(info) => self
                .runner
                .spawn(
                    now,
                    &info.command,
                    &[],
                    info.run_as.clone().ok().flatten(),
                    timeout,
                    Job::Check(script),
                )
                .map_err(|e| format!("vrrp_script {}: {e}", info.name)),
            None => Err(format!("vrrp_script #{}: no command", script.0)),
        };
        if let Err(e) = spawned {
            if !e.is_empty() {
                warn!("{e}");
            }
            self.node.handle(
                now,
                Input::ScriptResult {
                    script,
                    success: false,
                },
            );
        }
    }

    fn instance_name(&self, id: InstanceId) -> String {
        self.instances
            .get(&id)
            .map_or_else(|| format!("instance #{}", id.0), |i| i.name.clone())
    }

    fn vrrp(&mut self, id: InstanceId, event: vrrp::Output) {
        match event {
            vrrp::Output::Advert { priority } => self.send_advert(id, priority),
            vrrp::Output::AddVips => {
                let wanted = self.wanted_vips(id);
                for line in self.addresses.hold(&mut self.rtnl, id, wanted) {
                    warn!("{}: {line}", self.instance_name(id));
                }
                // After the VIPs: a route may take one as its source.
                self.hold_routes(Owner::Instance(id));
            }
            vrrp::Output::RemoveVips => {
                self.release_routes(Owner::Instance(id));
                for line in self.addresses.release(&mut self.rtnl, id) {
                    warn!("{}: {line}", self.instance_name(id));
                }
            }
            vrrp::Output::Garp { repeat } => self.announce(id, repeat),
            vrrp::Output::StateChanged { from, to, reason } => {
                self.trim_at = Some(self.clock.now() + trim::SETTLE);
                let name = self.instance_name(id);
                info!("{name}: {from} -> {to} ({reason:?})");
                if let Some(alerts) = self.alerts.as_mut() {
                    alerts.instance_changed(id, &name, to);
                }
                let priority = self.node.instance(id).map_or(0, |i| i.effective_priority());
                if let Some(notify) = self.instances.get(&id).and_then(|i| i.notify.clone()) {
                    self.run_notify(&notify, Whose::Instance, &name, to, priority);
                }
                let node = &self.node;
                let entered: Vec<_> = self
                    .groups
                    .changed(id, |m| node.instance(m).map(|i| i.state()))
                    .into_iter()
                    .map(|(g, to)| (g.name.clone(), g.notify.clone(), to))
                    .collect();
                for (group, notify, to) in entered {
                    info!(
                        "vrrp_sync_group {group}: every member {}",
                        notify::state_word(to)
                    );
                    if let Some(alerts) = self.alerts.as_mut() {
                        alerts.group_changed(&group, to);
                    }
                    if let Some(notify) = notify {
                        self.run_notify(&notify, Whose::Group, &group, to, 0);
                    }
                }
            }
        }
    }

    /// Starts `name`'s notify scripts for entering `to`, without waiting.
    fn run_notify(
        &mut self,
        notify: &NotifyInfo,
        whose: Whose,
        name: &str,
        to: vrrp::State,
        priority: u8,
    ) {
        // Refused at the build (and said so then).
        let Ok(run_as) = self.notify_as.clone() else {
            return;
        };
        let now = self.clock.now();
        for (line, args) in notify::commands(notify, whose, name, to, priority) {
            let job = Job::Notify(format!("{name}: notify '{line}'"));
            if let Err(e) = self
                .runner
                .spawn(now, &line, &args, run_as, NOTIFY_TIMEOUT, job)
            {
                warn!("{name}: notify: {e}");
            }
        }
    }

    fn send_advert(&mut self, id: InstanceId, priority: u8) {
        let adverts = self.render_adverts(id, priority);
        self.send_adverts(&adverts);
    }

    /// `id`'s adverts at `priority`, one per destination, ready to send.
    fn render_adverts(&self, id: InstanceId, priority: u8) -> Vec<Advert> {
        let (Some(inst), Some(iface)) = (self.node.instance(id), self.node.instance_iface(id))
        else {
            return Vec::new();
        };
        let src = inst.config().primary_addr;
        if src.is_unspecified() {
            debug!(
                "{}: no address to send adverts from",
                self.instance_name(id)
            );
            return Vec::new();
        }
        let mut buf = [0u8; 1500];
        let mut out = Vec::new();
        for dst in inst.advert_destinations() {
            match self.node.emit_advert(id, priority, src, dst, &mut buf) {
                Some(len) => out.push(Advert {
                    name: self.instance_name(id),
                    iface,
                    src,
                    dst,
                    bytes: buf[..len].to_vec(),
                }),
                None => warn!("{}: advert does not fit", self.instance_name(id)),
            }
        }
        out
    }

    /// Opens the advert socket for (`iface`, `src`) if there is none yet.
    fn open_sender(&mut self, iface: IfaceId, src: IpAddr) -> Result<(), String> {
        let key = (iface, src);
        if self.senders.contains_key(&key) {
            return Ok(());
        }
        let Some(link) = self.ifaces.link(iface) else {
            return Err(format!("interface {} is gone", self.ifaces.name(iface)));
        };
        let sender = Sender::open(&link.name, link.index, src)
            .map_err(|e| format!("{}: cannot send from {src}: {e}", link.name))?;
        self.senders.insert(key, sender);
        Ok(())
    }

    fn send_adverts(&mut self, adverts: &[Advert]) {
        for a in adverts {
            let key = (a.iface, a.src);
            if let Err(e) = self.open_sender(a.iface, a.src) {
                warn!("{e}");
                return;
            }
            if let Some(sender) = self.senders.get(&key)
                && let Err(e) = sender.send(a.dst, &a.bytes)
            {
                warn!("{}: advert to {}: {e}", a.name, a.dst);
                self.senders.remove(&key);
            }
        }
    }

    /// The routes `owner` is configured with.
    fn configured_routes(&self, owner: Owner) -> &[RouteInfo] {
        match owner {
            Owner::Static => &self.static_routes,
            Owner::Instance(id) => self.instances.get(&id).map_or(&[], |i| &i.routes),
        }
    }

    /// `route` as rtnetlink is told it; an error when its device does not
    /// exist.
    fn resolve_route(&self, route: &RouteInfo) -> Result<Held, String> {
        let spec = route.spec(|dev| self.ifaces.link_by_name(dev).map(|l| l.index))?;
        Ok(Held {
            spec,
            line: route.to_string(),
        })
    }

    /// The routes `owner` is configured with, resolved; a warning for each
    /// one whose device does not exist.
    fn wanted_routes(&self, owner: Owner) -> Vec<Held> {
        self.configured_routes(owner)
            .iter()
            .filter_map(|r| {
                self.resolve_route(r)
                    .map_err(|e| warn!("{e}: not added"))
                    .ok()
            })
            .collect()
    }

    /// Makes `owner` hold its configured routes.
    fn hold_routes(&mut self, owner: Owner) {
        let wanted = self.wanted_routes(owner);
        let lines = self.routes.hold(&mut self.rtnl, owner, wanted);
        self.log_routes(owner, lines);
    }

    /// Makes `owner` hold no route.
    fn release_routes(&mut self, owner: Owner) {
        let lines = self.routes.release(&mut self.rtnl, owner);
        self.log_routes(owner, lines);
    }

    /// Warns about each of `lines`, naming `owner`.
    fn log_routes(&self, owner: Owner, lines: Vec<String>) {
        for line in lines {
            match owner {
                Owner::Static => warn!("static_routes: {line}"),
                Owner::Instance(id) => warn!("{}: {line}", self.instance_name(id)),
            }
        }
    }

    /// After a reload or a link coming up: static routes as the file says,
    /// and each master's as its instance now says (an instance the file
    /// dropped gives its routes up); those the kernel dropped come back.
    fn rehold_routes(&mut self) {
        self.hold_routes(Owner::Static);
        let holders: Vec<InstanceId> = self.routes.instances().collect();
        for id in holders {
            let master = self
                .node
                .instance(id)
                .is_some_and(|i| i.state() == vrrp::State::Master);
            if master && self.instances.contains_key(&id) {
                self.hold_routes(Owner::Instance(id));
            } else {
                self.release_routes(Owner::Instance(id));
            }
        }
    }

    /// Nothing is held yet, so a configured route in the kernel with
    /// vrlb's protocol was left by a run that did not stop cleanly (every
    /// instance starts as backup): removed before anything is taken.
    fn clean_leftover_routes(&mut self) {
        let owners = self
            .instances
            .keys()
            .map(|id| Owner::Instance(*id))
            .chain([Owner::Static]);
        let leftovers: Vec<Held> = owners
            .flat_map(|o| self.configured_routes(o))
            .filter_map(|r| self.resolve_route(r).ok())
            .collect();
        for held in leftovers {
            if let Ok(true) = self.rtnl.del_route(&held.spec) {
                warn!("removed route {} left by an earlier run", held.line);
            }
        }
    }

    /// Every VIP `id` should hold, as rtnetlink requests.
    fn wanted_vips(&self, id: InstanceId) -> Vec<Wanted> {
        let (Some(inst), Some(info)) = (self.node.instance(id), self.instances.get(&id)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for addr in inst.vips() {
            let Some(vip) = info.vip(*addr) else {
                continue;
            };
            let Some(link) = self.ifaces.link_by_name(&vip.dev) else {
                warn!("{}: {addr}: device {} does not exist", info.name, vip.dev);
                continue;
            };
            let scope = match vip.scope.as_deref() {
                None => 0,
                Some(s) => netlink::scope_number(s).unwrap_or_else(|| {
                    warn!("{}: {addr}: unknown scope '{s}': using global", info.name);
                    0
                }),
            };
            out.push(Wanted {
                spec: VipSpec {
                    addr: *addr,
                    prefix_len: vip.prefix_len,
                    index: link.index,
                    label: vip.label.clone(),
                    scope,
                    broadcast: vip.broadcast,
                },
                dev: vip.dev.clone(),
            });
        }
        out
    }

    /// GARP (IPv4) or unsolicited NA (IPv6) for every VIP, `repeat`
    /// rounds (keepalived's order: each round announces every VIP), spaced
    /// by the pacer where an interval is configured.
    fn announce(&mut self, id: InstanceId, repeat: u8) {
        let (Some(inst), Some(info)) = (self.node.instance(id), self.instances.get(&id)) else {
            return;
        };
        let mut frames: Vec<(String, AnnounceKind, u32, Vec<u8>)> = Vec::new();
        for addr in inst.vips() {
            let Some(vip) = info.vip(*addr) else {
                continue;
            };
            let Some(link) = self.ifaces.link_by_name(&vip.dev) else {
                continue;
            };
            let Some(mac) = link.mac else {
                continue;
            };
            let (kind, frame) = match *addr {
                IpAddr::V4(a) => (AnnounceKind::Arp, announce::garp(mac, a)),
                IpAddr::V6(a) => {
                    let Some(IpAddr::V6(src)) = self.ifaces.link_local(link.index) else {
                        debug!("{}: no link-local address for NA", link.name);
                        continue;
                    };
                    (AnnounceKind::Na, announce::unsolicited_na(mac, src, a))
                }
            };
            // A VMAC's messages take its base's turn (keepalived:
            // IF_BASE_IFP).
            let base = link
                .macvlan_parent
                .and_then(|p| self.ifaces.link_by_index(p))
                .unwrap_or(link);
            frames.push((base.name.clone(), kind, link.index, frame));
        }
        for _ in 0..repeat {
            for (base, kind, index, frame) in &frames {
                self.pacer.push(base, *kind, *index, frame.clone());
            }
        }
        let now = self.clock.now();
        self.send_announcements(now);
    }

    /// Sends the gratuitous ARPs and NAs whose turn has come.
    fn send_announcements(&mut self, now: Instant) {
        for (index, frame) in self.pacer.due(now) {
            if let Err(e) = self.packet.send(index, &frame) {
                let name = self
                    .ifaces
                    .link_by_index(index)
                    .map_or_else(|| format!("ifindex {index}"), |l| l.name.clone());
                warn!("{name}: gratuitous ARP/NA: {e}");
            }
        }
    }

    /// Logs new drops, writes the stats file (its text is built only when
    /// there is one).
    fn report(&mut self) {
        self.report_pending = false;
        self.size_holdoff();
        let mut text = String::new();
        let with_text = self.opts.stats_file.is_some();
        for (id, inst) in self.node.instances() {
            let name = || {
                self.instances
                    .get(&id)
                    .map_or_else(|| format!("#{}", id.0), |i| i.name.clone())
            };
            let stats = inst.stats();
            // Instances that never dropped an advert have no entry.
            let last = self.reported_drops.get(&id).copied().unwrap_or_default();
            if last != stats.dropped {
                let news: Vec<String> = vrrp::DropReason::ALL
                    .iter()
                    .zip(stats.dropped.iter().zip(last.iter()))
                    // Our own multicast looped back (on lo) is not news.
                    .filter(|(reason, (now, before))| {
                        now > before && **reason != vrrp::DropReason::Own
                    })
                    .map(|(reason, (now, before))| format!("{} {}", now - before, reason.name()))
                    .collect();
                if !news.is_empty() {
                    info!("{}: adverts dropped: {}", name(), news.join(", "));
                }
                self.reported_drops.insert(id, stats.dropped);
            }
            if with_text {
                text.push_str(&stats_file::line(
                    &name(),
                    inst.state(),
                    inst.effective_priority(),
                    stats,
                ));
                text.push('\n');
            }
        }
        if let Some(path) = &self.opts.stats_file
            && text != self.stats_text
        {
            if let Err(e) = stats_file::write(path, &text) {
                warn!("{}: {e}", path.display());
            }
            self.stats_text = text;
        }
    }

    /// Resigns in the order the backups and clients need: every master's
    /// priority-0 advert first (a backup's Skew_Time runs from it), then
    /// every VIP removed, and only then the node's own shutdown (state
    /// changes, notify scripts) and the extensions' (data plane, nftables,
    /// control socket), which take milliseconds.
    fn shutdown(&mut self) {
        self.systemd.stopping();
        let masters: Vec<InstanceId> = self
            .node
            .instances()
            .filter(|(_, inst)| inst.state() == vrrp::State::Master)
            .map(|(id, _)| id)
            .collect();
        for id in masters {
            let adverts = self.render_adverts(id, 0);
            self.send_adverts(&adverts);
            // The node's own priority-0 advert, queued by Shutdown, is
            // skipped by `drain`.
            self.goodbyes_sent.insert(id);
        }
        for line in self.routes.release_all(&mut self.rtnl) {
            warn!("{line}");
        }
        for line in self.addresses.release_all(&mut self.rtnl) {
            warn!("{line}");
        }
        let now = self.clock.now();
        self.node.handle(now, Input::Shutdown);
        self.drain();
        self.with_extensions(|e, ctx| e.shutdown(ctx));
        self.drain();
        for line in self.routes.release_all(&mut self.rtnl) {
            warn!("{line}");
        }
        for line in self.addresses.release_all(&mut self.rtnl) {
            warn!("{line}");
        }
        if let Some(line) = self.addresses.flush() {
            warn!("{line}");
        }
        self.vmacs.remove_all(&mut self.rtnl, &self.ifaces);
        self.report();
        // Give notify_stop scripts a moment before the process goes.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while self.runner.running() > 0 && std::time::Instant::now() < until {
            self.reap();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if let Some(alerts) = self.alerts.take() {
            alerts.finish(MAIL_AT_EXIT);
        }
        info!("vrlb stopped");
    }

    fn with_extension(&mut self, k: usize, f: impl FnOnce(&mut dyn Extension, &mut Context<'_>)) {
        let now = self.clock.now();
        let Some(e) = self.extensions.get_mut(k) else {
            return;
        };
        let mut ctx = Context {
            node: &mut self.node,
            now,
            outputs: &mut self.pending,
            registry: self.poll.registry(),
            token_base: token_base(k),
        };
        f(e.as_mut(), &mut ctx);
    }

    fn with_extensions(&mut self, mut f: impl FnMut(&mut dyn Extension, &mut Context<'_>)) {
        for k in 0..self.extensions.len() {
            self.with_extension(k, &mut f);
        }
    }
}
