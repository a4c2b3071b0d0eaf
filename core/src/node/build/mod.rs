//! Builds (or reloads) a [`Node`] from a keepalived.conf.
//!
//! The text is read twice: a first pass collects what later blocks may
//! refer to before it is defined (tracking scripts' default weights, sync
//! groups, global defaults); the second converts each block into node
//! items. Items are identified by a hash of their name, so a reload changes
//! instances in place instead of recreating them ([`Instance::reconfigure`]
//! keeps state: no flap), adds new ones and removes those that are gone.
//!
//! What only the driver knows (interface numbers and addresses) comes from
//! an [`Environment`], which also sees every item so it can keep the
//! details the core does not hold (names, notify scripts, VIP labels).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use heapless::Vec;

#[cfg(all(feature = "lb", feature = "check"))]
mod lvs;
#[cfg(all(feature = "sync", feature = "check"))]
mod sync;
pub mod vmac;

use super::{
    FileId, IfaceId, InstanceId, MAX_TRACK_FILES, Node, NodeError, ProcessId, ProcessTracker,
    ScriptId, ScriptTracker,
};
use crate::config::{
    self, AuthConf, Diagnostic, GlobalDefs, Includer, InitialState, Kind, Options, Sink, Snippet,
    Summary, SyncGroupConf, TrackFileConf, TrackProcessConf, VrrpInstance, VrrpScript,
};
use crate::time::Duration;
use crate::vrrp::{
    self, Auth, ChecksumMode, Family, GarpConfig, Track, TrackId, Version, VipStore,
};

/// Most `vrrp_script`s a configuration may define (and, apart, most
/// `vrrp_track_process`es).
pub const MAX_SCRIPTS: usize = 256;
/// Most sync groups a configuration may define.
pub const MAX_SYNC_GROUPS: usize = 32;
/// Most VRRP instances a configuration may define.
pub const MAX_INSTANCES: usize = 4096;

/// What the driver knows and wants to know while a node is built.
#[allow(unused_variables)]
pub trait Environment {
    /// The id of the interface called `name` (the driver numbers them; an
    /// interface that does not exist yet still gets an id, and the driver
    /// reports it down).
    fn interface(&mut self, name: &str) -> IfaceId;
    /// The id of a `use_vmac` interface the driver makes for an instance.
    fn vmac_interface(&mut self, name: &str) -> IfaceId {
        self.interface(name)
    }
    /// This host's address on `iface` for `family`, to send adverts from.
    fn primary_address(&mut self, iface: IfaceId, family: Family) -> Option<IpAddr>;
    /// An instance was added or reconfigured from `conf`.
    fn instance(&mut self, id: InstanceId, conf: &VrrpInstance<'_>) {}
    /// The instance about to be reported to [`Environment::instance`] has
    /// `use_vmac`: its VIPs of its family without a `dev` go on this VMAC.
    fn vmac(&mut self, id: InstanceId, vmac: &vmac::Vmac<'_>) {}
    /// A tracking script was added or reconfigured from `conf`.
    fn script(&mut self, id: ScriptId, conf: &VrrpScript<'_>) {}
    /// A tracked process was added or reconfigured from `conf`: the driver
    /// counts the processes it matches and reports with
    /// `Input::ProcessCount` (after the build, before the next `Start`).
    fn process(&mut self, id: ProcessId, conf: &TrackProcessConf<'_>) {}
    /// A tracked file (one something tracks) was added or kept: the driver
    /// reads it at start and whenever it changes, and reports its value
    /// with `Input::TrackFile`.
    fn track_file(&mut self, id: FileId, conf: &TrackFileConf<'_>) {}
    /// A tracked file the new configuration no longer tracks (reload).
    fn removed_track_file(&mut self, id: FileId) {}
    /// A `global_defs` block.
    fn global_defs(&mut self, g: &GlobalDefs<'_>) {}
    /// A `vrrp_sync_group` block (the node forms the group; its notify
    /// scripts and alerts are the driver's).
    fn sync_group(&mut self, conf: &SyncGroupConf<'_>) {}
    /// A `static_routes` block (the node has no part in them: they are
    /// held whatever the VRRP state).
    fn static_routes(&mut self, routes: &[config::RouteConf<'_>]) {}
    /// A `garp_group` block (the driver spaces gratuitous ARPs and NAs).
    fn garp_group(&mut self, g: &config::GarpGroupConf<'_>) {}
    /// An instance or script the new configuration no longer has was
    /// removed (reload).
    fn removed_instance(&mut self, id: InstanceId) {}
    /// A virtual server became these balancer services (one, or a group's).
    #[cfg(all(feature = "lb", feature = "check"))]
    fn virtual_server(
        &mut self,
        services: &[crate::lb::ServiceId],
        vs: &config::VirtualServer<'_>,
    ) {
    }
    /// A real server was added or updated.
    #[cfg(all(feature = "lb", feature = "check"))]
    fn real_server(&mut self, server: super::ServerRef, rs: &config::RealServer<'_>) {}
    /// A checker was added or kept: the driver keeps what the core does
    /// not (URLs, digests, script paths) to perform its probes.
    #[cfg(all(feature = "lb", feature = "check"))]
    fn checker(
        &mut self,
        id: super::CheckerId,
        server: super::ServerRef,
        conf: &config::CheckerConf<'_>,
    ) {
    }
    /// A warning.
    fn diagnostic(&mut self, d: &Diagnostic) {}
}

/// The FNV-1a hash of a name: how items are matched across reloads.
pub fn name_key(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Global settings instances inherit.
#[derive(Debug, Clone, Copy, Default)]
struct Globals {
    vrrp_version: Option<u8>,
    garp_master_delay: Option<Duration>,
    garp_master_repeat: Option<u8>,
    garp_master_refresh: Option<Duration>,
    garp_master_refresh_repeat: Option<u8>,
    lower_prio_no_advert: bool,
    #[cfg_attr(not(all(feature = "lb", feature = "check")), allow(dead_code))]
    lvs_timeouts: config::LvsTimeouts,
}

impl Globals {
    fn from(g: &GlobalDefs<'_>) -> Self {
        Globals {
            vrrp_version: g.vrrp_version,
            garp_master_delay: g.garp_master_delay,
            garp_master_repeat: g.garp_master_repeat,
            garp_master_refresh: g.garp_master_refresh,
            garp_master_refresh_repeat: g.garp_master_refresh_repeat,
            lower_prio_no_advert: g.lower_prio_no_advert,
            lvs_timeouts: g.lvs_timeouts,
        }
    }
}

struct GroupDef {
    key: u64,
    line: u32,
    /// Each member's name key, name and position.
    members: Vec<(u64, Snippet, config::Pos), { vrrp::MAX_GROUP_MEMBERS }>,
}

/// Most `virtual_server_group` blocks.
pub const MAX_VS_GROUPS: usize = 16;

/// First pass: what blocks refer to by name.
#[derive(Default)]
struct Prepass {
    globals: Globals,
    /// (name key, entries) of each virtual_server_group.
    vs_groups: Vec<(u64, Vec<config::GroupEntry, { config::MAX_GROUP_ENTRIES }>), MAX_VS_GROUPS>,
    /// Each `vrrp_script`.
    scripts: Vec<PreTracked, MAX_SCRIPTS>,
    /// Each `vrrp_track_process`.
    processes: Vec<PreTracked, MAX_SCRIPTS>,
    groups: Vec<GroupDef, MAX_SYNC_GROUPS>,
    /// Each `track_file`: its name key, weight, reverse and line.
    files: Vec<PreTracked, MAX_TRACK_FILES>,
    /// Name keys of the track_files instances and FILE_CHECKs name.
    used_files: Vec<u64, MAX_TRACK_FILES>,
}

/// A block instances track by name: its name key, its own weight and
/// reverse (what an entry naming neither takes), and its line.
#[derive(Debug, Clone, Copy)]
struct PreTracked {
    key: u64,
    weight: i32,
    reverse: bool,
    line: u32,
}

impl Prepass {
    fn use_file(&mut self, name: &str) {
        let key = name_key(name);
        if !self.used_files.contains(&key) {
            // More names than files can exist: the extra ones are unknown.
            let _ = self.used_files.push(key);
        }
    }
}

impl Sink for Prepass {
    fn virtual_server_group(&mut self, g: &config::VirtualServerGroup<'_>) -> Result<(), Kind> {
        self.vs_groups
            .push((name_key(g.name), g.entries.clone()))
            .map_err(|_| Kind::TooMany {
                what: "virtual_server_group blocks",
                max: MAX_VS_GROUPS,
            })
    }
    fn global_defs(&mut self, g: &GlobalDefs<'_>) -> Result<(), Kind> {
        self.globals = Globals::from(g);
        Ok(())
    }
    fn vrrp_script(&mut self, s: &VrrpScript<'_>) -> Result<(), Kind> {
        let block = ("vrrp_script", "vrrp_script blocks");
        record(
            &mut self.scripts,
            block,
            s.name,
            (s.weight, s.reverse),
            s.pos,
        )
    }
    fn vrrp_track_process(&mut self, p: &TrackProcessConf<'_>) -> Result<(), Kind> {
        let block = ("vrrp_track_process", "vrrp_track_process blocks");
        record(
            &mut self.processes,
            block,
            p.name,
            (p.weight, p.reverse),
            p.pos,
        )
    }
    fn track_file(&mut self, f: &TrackFileConf<'_>) -> Result<(), Kind> {
        let block = ("track_file", "track_file blocks");
        record(&mut self.files, block, f.name, (f.weight, f.reverse), f.pos)
    }
    fn vrrp_instance(&mut self, i: &VrrpInstance<'_>) -> Result<(), Kind> {
        for t in &i.track_files {
            self.use_file(t.name);
        }
        Ok(())
    }
    fn real_server(
        &mut self,
        _vs: &config::VirtualServer<'_>,
        rs: &config::RealServer<'_>,
    ) -> Result<(), Kind> {
        for f in &rs.file_checks {
            self.use_file(f.name);
        }
        Ok(())
    }
    fn vrrp_sync_group(&mut self, g: &SyncGroupConf<'_>) -> Result<(), Kind> {
        let key = name_key(g.name);
        if let Some(first) = self.groups.iter().find(|x| x.key == key) {
            return Err(conflict("vrrp_sync_group", g.name, first.line));
        }
        let mut members = Vec::new();
        for m in &g.members {
            // Capacities match the parser's: cannot overflow.
            let _ = members.push((name_key(m.name), Snippet::new(m.name), m.pos));
        }
        self.groups
            .push(GroupDef {
                key,
                line: g.pos.line,
                members,
            })
            .map_err(|_| Kind::TooMany {
                what: "vrrp_sync_group blocks",
                max: MAX_SYNC_GROUPS,
            })
    }
}

/// Records a tracked block (`block`: its keyword and, plural, what
/// overflows) under its name; a second one of the name is a conflict.
fn record<const N: usize>(
    list: &mut Vec<PreTracked, N>,
    (keyword, many): (&'static str, &'static str),
    name: &str,
    (weight, reverse): (i32, bool),
    pos: config::Pos,
) -> Result<(), Kind> {
    let key = name_key(name);
    if let Some(first) = list.iter().find(|x| x.key == key) {
        return Err(conflict(keyword, name, first.line));
    }
    list.push(PreTracked {
        key,
        weight,
        reverse,
        line: pos.line,
    })
    .map_err(|_| Kind::TooMany { what: many, max: N })
}

fn conflict(what: &'static str, name: &str, first_line: u32) -> Kind {
    Kind::Conflict {
        what,
        name: Snippet::new(name),
        first_line,
    }
}

/// Second pass: converts blocks into node items.
struct Builder<'b, 'a, E: Environment, S: VipStore> {
    file: &'b str,
    node: &'b mut Node<'a, S>,
    env: &'b mut E,
    pre: &'b Prepass,
    /// Keys of instances this configuration defines, with their lines.
    seen_instances: Vec<(u64, u32), MAX_INSTANCES>,
    /// Keys of scripts this configuration defines.
    seen_scripts: Vec<u64, MAX_SCRIPTS>,
    /// Keys of tracked processes this configuration defines.
    seen_processes: Vec<u64, MAX_SCRIPTS>,
    /// Keys of the tracked files something tracks.
    seen_files: Vec<u64, MAX_TRACK_FILES>,
    /// This build's tag for what it keeps.
    generation: u8,
    /// VMAC names handed out.
    vmac_names: vmac::Names,
    /// The services of the virtual server being read.
    #[cfg(all(feature = "lb", feature = "check"))]
    current_services: lvs::GroupServices,
    /// Its quorum, checked once its real servers are known.
    #[cfg(all(feature = "lb", feature = "check"))]
    quorum_check: Option<lvs::QuorumCheck>,
    /// `lvs_sync_daemon`, applied once every instance exists.
    #[cfg(all(feature = "sync", feature = "check"))]
    sync: Option<sync::PendingSync>,
}

/// How the builder `B` finds (or makes) the tracker a name key stands for.
type TrackIdOf<B> = fn(&mut B, u64) -> Result<TrackId, Kind>;

fn node_error(e: NodeError) -> Kind {
    match e {
        NodeError::Full(what) => Kind::Invalid {
            what,
            note: "no room left in the node's storage for another one",
        },
        NodeError::Vrrp(err) => Kind::Invalid {
            what: "vrrp_instance",
            note: vrrp_error_text(err),
        },
        NodeError::DuplicateVrid => Kind::Invalid {
            what: "vrrp_instance",
            note: "another instance on this interface already uses this virtual_router_id and family",
        },
        NodeError::NoSuch(what) => Kind::Invalid {
            what,
            note: "refers to something that does not exist",
        },
        #[cfg(feature = "sync")]
        NodeError::Sync(_) => Kind::Invalid {
            what: "lvs_sync_daemon",
            note: "settings outside what vrlb's sync sends",
        },
    }
}

fn vrrp_error_text(e: vrrp::ConfigError) -> &'static str {
    match e {
        vrrp::ConfigError::Vrid => "virtual_router_id must be 1..255",
        vrrp::ConfigError::Priority => "priority must be 1..255",
        vrrp::ConfigError::AdvertInterval => {
            "advert_int must be whole seconds 1..255 for VRRPv2, 0.01..40.95 s for VRRPv3"
        }
        vrrp::ConfigError::V2OverIpv6 => "IPv6 addresses need 'version 3' (VRRPv2 is IPv4 only)",
        vrrp::ConfigError::FamilyMismatch => {
            "mixes IPv4 and IPv6 addresses (use one instance per family)"
        }
        vrrp::ConfigError::DownTimerAdverts => "down_timer_adverts must be 1..100",
        vrrp::ConfigError::Capacity => {
            "more VIPs, unicast peers or tracked objects than vrlb holds per instance"
        }
    }
}

impl<E: Environment, S: VipStore> Builder<'_, '_, E, S> {
    fn instance_config(
        &mut self,
        i: &VrrpInstance<'_>,
        iface: IfaceId,
    ) -> Result<vrrp::Config, Kind> {
        let g = &self.pre.globals;
        let family = if i.is_ipv6() { Family::V6 } else { Family::V4 };
        let version = match i.version.or(g.vrrp_version) {
            Some(3) => Version::V3,
            // keepalived moves an IPv6 instance to v3 by itself.
            _ if family == Family::V6 => Version::V3,
            _ => Version::V2,
        };
        let primary = i
            .unicast_src_ip
            .or(i.mcast_src_ip)
            .filter(|a| Family::of(a) == family)
            .or_else(|| self.env.primary_address(iface, family))
            .unwrap_or(match family {
                // No address yet (interface missing): the instance waits
                // in Fault until the driver reports the link up.
                Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            });
        let mut c = vrrp::Config::new(i.vrid, primary);
        c.version = version;
        c.family = family;
        c.priority = i.priority;
        c.advert_interval_cs = i.advert_interval_cs;
        c.preempt = i.preempt;
        c.preempt_delay = i.preempt_delay;
        c.auth = match (i.auth, version) {
            (Some(AuthConf::Pass(p)), Version::V2) => Auth::pass(p.as_bytes()),
            _ => Auth::None,
        };
        c.start_as_master = i.state == InitialState::Master;
        for p in &i.unicast_peers {
            c.unicast_peers.push(*p).map_err(|_| Kind::TooMany {
                what: "unicast peers",
                max: vrrp::MAX_UNICAST_PEERS,
            })?;
        }
        c.lower_prio_no_advert = i.lower_prio_no_advert.unwrap_or(g.lower_prio_no_advert);
        c.down_timer_adverts = i.down_timer_adverts;
        c.checksum_mode = if i.v3_checksum_as_v2 {
            ChecksumMode::AsV2
        } else {
            ChecksumMode::PseudoHeader
        };
        let defaults = GarpConfig::default();
        c.garp = GarpConfig {
            delay: i
                .garp_master_delay
                .or(g.garp_master_delay)
                .unwrap_or(defaults.delay),
            repeat: i
                .garp_master_repeat
                .or(g.garp_master_repeat)
                .unwrap_or(defaults.repeat),
            refresh: i
                .garp_master_refresh
                .or(g.garp_master_refresh)
                .unwrap_or(defaults.refresh),
            refresh_repeat: i
                .garp_master_refresh_repeat
                .or(g.garp_master_refresh_repeat)
                .unwrap_or(defaults.refresh_repeat),
        };
        let too_many = || Kind::TooMany {
            what: "tracked interfaces, scripts and processes",
            max: vrrp::MAX_TRACKS,
        };
        for t in &i.track_interfaces {
            let id = self.env.interface(t.name).track_id();
            c.tracks
                .push(Track::new(id, t.weight.unwrap_or(0)).reversed(t.reverse.unwrap_or(false)))
                .map_err(|_| too_many())?;
        }
        let pre = self.pre;
        // What instances track by name: entries, blocks, and the id.
        let named: [(_, _, _, TrackIdOf<Self>); 2] = [
            (
                &i.track_scripts,
                &pre.scripts,
                "no vrrp_script of this name: not tracked",
                Self::script_track,
            ),
            (
                &i.track_processes,
                &pre.processes,
                "no vrrp_track_process of this name: not tracked",
                Self::process_track,
            ),
        ];
        for (entries, defined, note, track_id) in named {
            for t in entries {
                let key = name_key(t.name);
                let Some(block) = defined.iter().find(|s| s.key == key).copied() else {
                    let d = Diagnostic::new(
                        self.file,
                        t.pos.line,
                        t.pos.col,
                        Kind::Assumed {
                            keyword: Snippet::new(t.name),
                            note,
                        },
                    );
                    self.env.diagnostic(&d);
                    continue;
                };
                let id = track_id(self, key)?;
                c.tracks
                    .push(
                        Track::new(id, t.weight.unwrap_or(block.weight))
                            .reversed(t.reverse.unwrap_or(block.reverse)),
                    )
                    .map_err(|_| too_many())?;
            }
        }
        for t in &i.track_files {
            let Some((id, weight, reverse)) = self.file_ref(t)? else {
                continue;
            };
            // keepalived (vrrp.c): an address owner tracks files unweighted;
            // the default weight becomes 0, another one drops the entry.
            let weight = match weight {
                0 => 0,
                _ if i.priority != 255 => weight,
                1 => {
                    self.warn_at(
                        t.pos,
                        t.name,
                        "weight ignored for an address owner (priority 255): tracked with weight 0 (a non-zero value is a fault), as keepalived does; write 'weight 0'",
                    );
                    0
                }
                _ => {
                    self.warn_at(
                        t.pos,
                        t.name,
                        "an address owner (priority 255) tracks files only with weight 0: not tracked, as keepalived does",
                    );
                    continue;
                }
            };
            c.tracks
                .push(Track::file(id.track_id(), weight, reverse))
                .map_err(|_| too_many())?;
        }
        Ok(c)
    }

    /// The tracked process with `key`, created with keepalived's defaults
    /// if its block comes later (the block then sets it).
    fn process_track(&mut self, key: u64) -> Result<TrackId, Kind> {
        if let Some(id) = self.node.process_by_key(key) {
            return Ok(id.track_id());
        }
        let placeholder = ProcessTracker::new(1, u32::MAX, Duration::ZERO, Duration::ZERO);
        let id = self
            .node
            .add_process(placeholder, key)
            .map_err(node_error)?;
        Ok(id.track_id())
    }

    fn warn_at(&mut self, pos: config::Pos, name: &str, note: &'static str) {
        let d = Diagnostic::new(
            self.file,
            pos.line,
            pos.col,
            Kind::Assumed {
                keyword: Snippet::new(name),
                note,
            },
        );
        self.env.diagnostic(&d);
    }

    /// The tracked file an instance's `track_file` entry or a `FILE_CHECK`
    /// names, with the weight and reverse it applies (the entry's, else the
    /// track_file's); `None`, with a warning, when no track_file has the
    /// name (keepalived: "track file ... not found, ignoring").
    fn file_ref(&mut self, t: &config::TrackConf<'_>) -> Result<Option<(FileId, i32, bool)>, Kind> {
        let key = name_key(t.name);
        let Some(file) = self.pre.files.iter().find(|f| f.key == key).copied() else {
            self.warn_at(t.pos, t.name, "no track_file of this name: not tracked");
            return Ok(None);
        };
        let id = self.node.set_track_file(key).map_err(node_error)?;
        Ok(Some((
            id,
            t.weight.unwrap_or(file.weight),
            t.reverse.unwrap_or(file.reverse),
        )))
    }

    /// The script with `key`, created disabled if its block comes later.
    fn script_track(&mut self, key: u64) -> Result<TrackId, Kind> {
        if let Some(id) = self.node.script_by_key(key) {
            return Ok(id.track_id());
        }
        let placeholder = ScriptTracker::new(
            Duration::from_secs(1),
            Duration::from_secs(1),
            1,
            1,
            false,
            false,
        );
        let id = self.node.add_script(placeholder, key).map_err(node_error)?;
        Ok(id.track_id())
    }
}

impl<E: Environment, S: VipStore> Sink for Builder<'_, '_, E, S> {
    fn global_defs(&mut self, g: &GlobalDefs<'_>) -> Result<(), Kind> {
        #[cfg(all(feature = "sync", feature = "check"))]
        self.sync_global(g);
        self.env.global_defs(g);
        Ok(())
    }

    fn static_routes(&mut self, routes: &[config::RouteConf<'_>]) -> Result<(), Kind> {
        self.env.static_routes(routes);
        Ok(())
    }

    fn vrrp_script(&mut self, s: &VrrpScript<'_>) -> Result<(), Kind> {
        let key = name_key(s.name);
        let tracker = ScriptTracker::new(
            s.interval,
            s.timeout.unwrap_or(s.interval),
            s.rise,
            s.fall,
            s.init_fail,
            !s.script.is_empty(),
        );
        let id = self.node.set_script(tracker, key).map_err(node_error)?;
        let _ = self.seen_scripts.push(key);
        self.env.script(id, s);
        Ok(())
    }

    fn vrrp_track_process(&mut self, p: &TrackProcessConf<'_>) -> Result<(), Kind> {
        let key = name_key(p.name);
        let tracker = ProcessTracker::new(p.quorum, p.quorum_max, p.fork_delay, p.terminate_delay);
        let id = self.node.set_process(tracker, key).map_err(node_error)?;
        let _ = self.seen_processes.push(key);
        self.env.process(id, p);
        Ok(())
    }

    fn track_file(&mut self, f: &TrackFileConf<'_>) -> Result<(), Kind> {
        let key = name_key(f.name);
        if !self.pre.used_files.contains(&key) {
            // keepalived forgets such a file without a word.
            self.warn_at(
                f.pos,
                f.name,
                "tracked by no vrrp_instance or FILE_CHECK: the file is not read",
            );
            return Ok(());
        }
        let id = self.node.set_track_file(key).map_err(node_error)?;
        let _ = self.seen_files.push(key);
        self.env.track_file(id, f);
        Ok(())
    }

    fn vrrp_instance(&mut self, i: &VrrpInstance<'_>) -> Result<(), Kind> {
        let key = name_key(i.name);
        if let Some(&(_, line)) = self.seen_instances.iter().find(|s| s.0 == key) {
            return Err(conflict("vrrp_instance", i.name, line));
        }
        let Some(if_name) = i.interface else {
            return Err(Kind::Missing {
                block: Snippet::new(i.name),
                keyword: "interface",
            });
        };
        let base = self.env.interface(if_name);
        let config = self.instance_config(i, base)?;
        let vmac_name = match &i.use_vmac {
            Some(v) => Some(
                self.vmac_names
                    .pick(v, i.vrid, config.family)
                    .ok_or(Kind::Invalid {
                        what: "use_vmac",
                        note: "all sixteen default VMAC names of this virtual_router_id are taken: name the VMAC",
                    })?,
            ),
            None => None,
        };
        // Adverts go where the VMAC's MAC is, unless vmac_xmit_base.
        let iface = match &vmac_name {
            Some(name) if !i.vmac_xmit_base => self.env.vmac_interface(name),
            _ => base,
        };
        let config_family = config.family;
        let mut vips: Vec<IpAddr, { crate::config::MAX_VIPS }> = Vec::new();
        for v in &i.vips {
            let _ = vips.push(v.addr);
        }
        let mut excluded: Vec<IpAddr, { crate::config::MAX_VIPS }> = Vec::new();
        for v in &i.excluded_vips {
            let _ = excluded.push(v.addr);
        }
        let id = match self.node.instance_by_key(key) {
            Some(id) if self.node.instance_iface(id) == Some(iface) => {
                match self
                    .node
                    .reconfigure_instance(id, config.clone(), &vips, &excluded)
                {
                    Ok(()) => id,
                    // VRID or family changed: a different instance.
                    Err(NodeError::DuplicateVrid) => {
                        self.node.remove_instance(id).map_err(node_error)?;
                        self.env.removed_instance(id);
                        self.node
                            .add_instance(config, &vips, &excluded, iface, key)
                            .map_err(node_error)?
                    }
                    Err(e) => return Err(node_error(e)),
                }
            }
            Some(id) => {
                self.node.remove_instance(id).map_err(node_error)?;
                self.env.removed_instance(id);
                self.node
                    .add_instance(config, &vips, &excluded, iface, key)
                    .map_err(node_error)?
            }
            None => self
                .node
                .add_instance(config, &vips, &excluded, iface, key)
                .map_err(node_error)?,
        };
        self.seen_instances
            .push((key, i.pos.line))
            .map_err(|_| Kind::TooMany {
                what: "vrrp_instance blocks",
                max: MAX_INSTANCES,
            })?;
        #[cfg(all(feature = "sync", feature = "check"))]
        self.sync_instance(i);
        if let (Some(v), Some(name)) = (&i.use_vmac, &vmac_name) {
            self.env.vmac(
                id,
                &vmac::Vmac {
                    name,
                    base: if_name,
                    mac: v.mac(i.vrid, config_family == Family::V6),
                    family: config_family,
                    xmit_base: i.vmac_xmit_base,
                },
            );
        }
        self.env.instance(id, i);
        Ok(())
    }

    fn vrrp_sync_group(&mut self, g: &SyncGroupConf<'_>) -> Result<(), Kind> {
        // Formed in `finish`, once every member exists.
        self.env.sync_group(g);
        Ok(())
    }

    fn garp_group(&mut self, g: &config::GarpGroupConf<'_>) -> Result<(), Kind> {
        self.env.garp_group(g);
        Ok(())
    }

    #[cfg(all(feature = "lb", feature = "check"))]
    fn virtual_server(&mut self, vs: &config::VirtualServer<'_>) -> Result<(), Kind> {
        self.lvs_virtual_server(vs)
    }

    #[cfg(all(feature = "lb", feature = "check"))]
    fn real_server(
        &mut self,
        vs: &config::VirtualServer<'_>,
        rs: &config::RealServer<'_>,
    ) -> Result<(), Kind> {
        self.lvs_real_server(vs, rs)
    }

    fn diagnostic(&mut self, d: &Diagnostic) {
        self.env.diagnostic(d);
    }
}

/// How many of each item a configuration defines: what to size a node's
/// storage by (see [`Counts::layout`] and [`Counts::timer_entries`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Balancer services (a virtual_server group counts each address).
    pub services: usize,
    /// Expanded sizes of the virtual_server_groups seen so far.
    group_sizes: Vec<(u64, usize), MAX_VS_GROUPS>,
    /// `vrrp_instance` blocks.
    pub instances: usize,
    /// `vrrp_script`, `vrrp_track_process` and `track_file` blocks (they
    /// share the node's tracker slots).
    pub scripts: usize,
    /// `vrrp_sync_group` blocks.
    pub sync_groups: usize,
    /// `virtual_server` blocks.
    pub virtual_servers: usize,
    /// Real servers over all services (a `real_server` block of a
    /// virtual_server group counts once per service of the group).
    pub real_servers: usize,
    /// The most real servers in one virtual server.
    pub max_real_servers_per_service: usize,
    /// Checkers over all real servers (counted as `real_servers` are).
    pub checkers: usize,
    /// Connection sync is configured (`lvs_sync_daemon`, or an instance's
    /// `lvs_sync_daemon_interface`).
    pub sync: bool,
    /// Services the virtual server being read stands for (a group's many).
    current_services: usize,
}

impl Sink for Counts {
    fn global_defs(&mut self, g: &GlobalDefs<'_>) -> Result<(), Kind> {
        self.sync |= g.lvs_sync_daemon_interface.is_some();
        Ok(())
    }
    fn vrrp_script(&mut self, _s: &VrrpScript<'_>) -> Result<(), Kind> {
        self.scripts += 1;
        Ok(())
    }
    fn vrrp_track_process(&mut self, _p: &TrackProcessConf<'_>) -> Result<(), Kind> {
        self.scripts += 1;
        Ok(())
    }
    fn track_file(&mut self, _f: &TrackFileConf<'_>) -> Result<(), Kind> {
        self.scripts += 1;
        Ok(())
    }
    fn vrrp_instance(&mut self, i: &VrrpInstance<'_>) -> Result<(), Kind> {
        self.instances += 1;
        self.sync |= i.lvs_sync_daemon_interface.is_some();
        Ok(())
    }
    fn vrrp_sync_group(&mut self, _g: &SyncGroupConf<'_>) -> Result<(), Kind> {
        self.sync_groups += 1;
        Ok(())
    }
    fn virtual_server_group(&mut self, g: &config::VirtualServerGroup<'_>) -> Result<(), Kind> {
        let size = g
            .entries
            .iter()
            .map(|e| match *e {
                config::GroupEntry::Fwmark(_) => 1,
                config::GroupEntry::Addr { first, last, .. } => match (first, last) {
                    (IpAddr::V4(a), IpAddr::V4(b)) => {
                        (u32::from(b).saturating_sub(u32::from(a)) as usize) + 1
                    }
                    (IpAddr::V6(a), IpAddr::V6(b)) => {
                        (u128::from(b).saturating_sub(u128::from(a)) as usize) + 1
                    }
                    _ => 1,
                },
            })
            .sum();
        let _ = self.group_sizes.push((name_key(g.name), size));
        Ok(())
    }
    fn virtual_server(&mut self, vs: &config::VirtualServer<'_>) -> Result<(), Kind> {
        self.current_services = match vs.key {
            config::VsKey::Group(name) => {
                let key = name_key(name);
                self.group_sizes
                    .iter()
                    .find(|g| g.0 == key)
                    .map_or(1, |g| g.1)
            }
            _ => 1,
        };
        self.services += self.current_services;
        self.virtual_servers += 1;
        self.max_real_servers_per_service = self
            .max_real_servers_per_service
            .max(vs.real_servers as usize);
        Ok(())
    }
    fn real_server(
        &mut self,
        _vs: &config::VirtualServer<'_>,
        rs: &config::RealServer<'_>,
    ) -> Result<(), Kind> {
        // Each service of a group has its own copy of the server.
        let copies = self.current_services.max(1);
        self.real_servers += copies;
        self.checkers += rs.checkers.len() * copies;
        Ok(())
    }
}

impl Counts {
    /// Timer queue entries for a node holding these (twice the owners,
    /// the balancer and connection sync included).
    pub fn timer_entries(&self) -> usize {
        2 * (self.instances + self.scripts + self.checkers) + 6
    }

    /// Entries for the connection sync journal of a node tracking
    /// `connections` (0 without sync): a quarter of the table, the most
    /// that can be new in one flush interval at a sane rate, within
    /// 64..=65536.
    pub fn sync_journal_entries(&self, connections: u32) -> usize {
        if !self.sync {
            return 0;
        }
        (connections as usize / 4).clamp(64, 65_536)
    }

    /// A balancer layout for these services and servers with room for
    /// `connections` and `headroom` more services and servers per service
    /// (so a reload can add some without a restart). `mh_table_max` is
    /// IPVS's default table size.
    #[cfg(feature = "lb")]
    pub fn layout(&self, connections: u32, headroom: usize) -> crate::lb::Layout {
        // Each service also needs a slot for its sorry server.
        let per_service = (self.max_real_servers_per_service + 1 + headroom).min(32_768) as u16;
        crate::lb::Layout {
            services: (self.services + headroom).clamp(1, usize::from(u16::MAX)) as u16,
            servers_per_service: per_service.max(1),
            mh_table_max: 4093,
            connections,
        }
    }
}

/// Counts what `text` defines, to size storage before [`build`].
pub fn count(
    file: &str,
    text: &str,
    options: &Options<'_>,
    includer: &mut dyn Includer,
) -> Result<Counts, Diagnostic> {
    let mut counts = Counts::default();
    config::parse(file, text, options, &mut counts, includer)?;
    Ok(counts)
}

/// Builds `node` from `text` (or reloads it: items already in the node are
/// changed in place, missing ones removed). On error the node may be half
/// changed: build into a fresh node when a reload must be all or nothing.
pub fn build<E: Environment, S: VipStore>(
    node: &mut Node<'_, S>,
    env: &mut E,
    file: &str,
    text: &str,
    options: &Options<'_>,
    includer: &mut dyn Includer,
) -> Result<Summary, Diagnostic> {
    let mut pre = Prepass::default();
    config::parse(file, text, options, &mut pre, includer)?;
    node.generation = node.generation.wrapping_add(1);
    #[cfg(all(feature = "lb", feature = "check"))]
    lvs::apply_timeouts(node, &pre.globals.lvs_timeouts);
    #[cfg(all(feature = "lb", feature = "check"))]
    node.freeze_quorum();
    let generation = node.generation;
    let mut builder = Builder {
        file,
        node,
        env,
        pre: &pre,
        seen_instances: Vec::new(),
        seen_scripts: Vec::new(),
        seen_processes: Vec::new(),
        seen_files: Vec::new(),
        generation,
        vmac_names: vmac::Names::default(),
        #[cfg(all(feature = "lb", feature = "check"))]
        current_services: Vec::new(),
        #[cfg(all(feature = "lb", feature = "check"))]
        quorum_check: None,
        #[cfg(all(feature = "sync", feature = "check"))]
        sync: None,
    };
    let parsed = config::parse(file, text, options, &mut builder, includer);
    #[cfg(all(feature = "lb", feature = "check"))]
    if parsed.is_ok() {
        builder.flush_quorum_check();
    }
    #[cfg(all(feature = "sync", feature = "check"))]
    let pending_sync = builder.sync.take();
    let Builder {
        seen_instances,
        seen_scripts,
        seen_processes,
        seen_files,
        ..
    } = builder;
    let result = parsed.and_then(|summary| {
        let seen = Seen {
            instances: &seen_instances,
            scripts: &seen_scripts,
            processes: &seen_processes,
            files: &seen_files,
        };
        finish(node, env, &seen, generation, file, &pre)?;
        #[cfg(all(feature = "sync", feature = "check"))]
        sync::apply(node, env, file, pending_sync)?;
        Ok(summary)
    });
    #[cfg(all(feature = "lb", feature = "check"))]
    node.thaw_quorum();
    result
}

/// The keys of what a build met: instances (with their lines), scripts,
/// tracked processes and tracked files.
struct Seen<'s> {
    instances: &'s [(u64, u32)],
    scripts: &'s [u64],
    processes: &'s [u64],
    files: &'s [u64],
}

/// Removes what the configuration no longer has and forms sync groups.
fn finish<E: Environment, S: VipStore>(
    node: &mut Node<'_, S>,
    env: &mut E,
    seen: &Seen<'_>,
    generation: u8,
    file: &str,
    pre: &Prepass,
) -> Result<(), Diagnostic> {
    #[cfg(not(all(feature = "lb", feature = "check")))]
    let _ = generation;
    #[cfg(all(feature = "lb", feature = "check"))]
    lvs::sweep(node, generation).map_err(|e| Diagnostic::new(file, 0, 0, node_error(e)))?;
    for index in 0..node.instances.len() {
        let stale = node.instances[index]
            .live()
            .is_some_and(|e| !seen.instances.iter().any(|s| s.0 == e.key));
        if !stale {
            continue;
        }
        let id = InstanceId(index as u16);
        node.remove_instance(id)
            .map_err(|e| Diagnostic::new(file, 0, 0, node_error(e)))?;
        env.removed_instance(id);
    }
    for index in 0..node.scripts.len() {
        let Some(key) = node.scripts[index].entry.as_ref().map(|e| e.key) else {
            continue;
        };
        let (script, process) = (ScriptId(index as u16), ProcessId(index as u16));
        let defined = |seen: &[u64], pre: &[PreTracked]| {
            seen.contains(&key) || pre.iter().any(|s| s.key == key)
        };
        if node.script(script).is_some() && !defined(seen.scripts, &pre.scripts) {
            let _ = node.remove_script(script);
        } else if node.process(process).is_some() && !defined(seen.processes, &pre.processes) {
            let _ = node.remove_process(process);
        }
    }

    let stale_files: Vec<FileId, MAX_TRACK_FILES> = node
        .track_files()
        .filter(|(_, key)| !seen.files.contains(key))
        .map(|(id, _)| id)
        .collect();
    for id in stale_files {
        let _ = node.remove_track_file(id);
        env.removed_track_file(id);
    }

    // Sync groups, now that every member exists.
    node.clear_sync_groups();
    for g in &pre.groups {
        let mut members: Vec<InstanceId, { vrrp::MAX_GROUP_MEMBERS }> = Vec::new();
        for (key, name, pos) in &g.members {
            match node.instance_by_key(*key) {
                Some(id) => {
                    let _ = members.push(id);
                }
                None => {
                    return Err(Diagnostic::new(
                        file,
                        pos.line,
                        pos.col,
                        Kind::Undefined {
                            what: "vrrp_instance",
                            name: name.clone(),
                        },
                    ));
                }
            }
        }
        if members.len() < 2 {
            env.diagnostic(&Diagnostic::new(
                file,
                g.line,
                1,
                Kind::Assumed {
                    keyword: Snippet::new("vrrp_sync_group"),
                    note: "has a single instance: it synchronises nothing",
                },
            ));
        }
        node.add_sync_group(&members)
            .map_err(|e| Diagnostic::new(file, g.line, 1, node_error(e)))?;
    }
    Ok(())
}
