//! What a keepalived.conf means: one plain type per block, borrowing its
//! strings from the text. The parser hands each finished item to a
//! [`Sink`](super::Sink); nothing here is retained by the core.
//!
//! Small lists inside an item have fixed capacities (the `MAX_*`
//! constants); exceeding one is an error naming the line.

use core::net::IpAddr;

use heapless::Vec;

use crate::time::Duration;

/// Most VIPs (`virtual_ipaddress`) or excluded VIPs per instance.
pub const MAX_VIPS: usize = 64;
/// Most `unicast_peer` entries per instance.
pub const MAX_PEERS: usize = 16;
/// Most `track_interface`, `track_script` or `track_file` entries per
/// instance or group.
pub const MAX_TRACKS: usize = 16;
/// Most `FILE_CHECK` blocks per real server.
pub const MAX_FILE_CHECKS: usize = crate::track_file::MAX_FILE_CHECKS;
/// Most members of a `vrrp_sync_group`.
pub const MAX_GROUP_MEMBERS: usize = 16;
/// Most checkers per real server.
pub const MAX_CHECKERS: usize = 4;
/// Most `url` blocks per HTTP/SSL checker.
pub const MAX_URLS: usize = 8;
/// Most `status_code` values or ranges per `url`.
pub const MAX_STATUS_CODES: usize = 8;
/// Most `notification_email` addresses.
pub const MAX_EMAILS: usize = 8;
/// Most entries of a `virtual_server_group`.
pub const MAX_GROUP_ENTRIES: usize = 32;
/// Most routes of one `virtual_routes` or `static_routes` block.
pub const MAX_ROUTES: usize = 16;
/// Most interfaces in one `garp_group`.
pub const MAX_GARP_INTERFACES: usize = 16;
/// Most bytes of a UDP_CHECK `payload` or `require_reply` pattern: 255,
/// keepalived's default `max_reply_length` (UINT8_MAX, check_udp.c), so
/// any pattern a default-sized reply can match fits, and so do the usual
/// probes (an NTP request is 48 bytes, a RADIUS Status-Server 38).
pub const MAX_UDP_DATA: usize = 255;

/// A place in the configuration text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub col: u32,
}

/// `global_defs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalDefs<'t> {
    /// `router_id`.
    pub router_id: Option<&'t str>,
    /// E-mail alerts: `notification_email`, `smtp_server`, `smtp_alert`...
    pub mail: MailDefs<'t>,
    /// `vrrp_version`: default for instances.
    pub vrrp_version: Option<u8>,
    /// `vrrp_garp_master_delay`.
    pub garp_master_delay: Option<Duration>,
    /// `vrrp_garp_master_repeat`.
    pub garp_master_repeat: Option<u8>,
    /// `vrrp_garp_master_refresh`.
    pub garp_master_refresh: Option<Duration>,
    /// `vrrp_garp_master_refresh_repeat`.
    pub garp_master_refresh_repeat: Option<u8>,
    /// `vrrp_garp_interval`: least time between two gratuitous ARPs on an
    /// interface not in a `garp_group` (default: none).
    pub garp_interval: Option<Duration>,
    /// `vrrp_gna_interval`: the same for unsolicited NAs.
    pub gna_interval: Option<Duration>,
    /// `vrrp_lower_prio_no_advert`.
    pub lower_prio_no_advert: bool,
    /// `vrrp_strict`.
    pub vrrp_strict: bool,
    /// `lvs_sync_daemon INTERFACE [INSTANCE] ...`: interface.
    pub lvs_sync_daemon_interface: Option<&'t str>,
    /// `lvs_sync_daemon INTERFACE INSTANCE` (or `inst INSTANCE`): the
    /// instance whose state decides which director sends. Without one,
    /// keepalived runs both sync daemons.
    pub lvs_sync_daemon_instance: Option<&'t str>,
    /// `lvs_sync_daemon ... [id N] [maxlen N] [port N] [ttl N] [group ADDR]`.
    pub lvs_sync_daemon_options: LvsSyncOptions,
    /// `enable_script_security`.
    pub enable_script_security: bool,
    /// `script_user USER [GROUP]`: who runs scripts that name no user.
    pub script_user: Option<RunAs<'t>>,
    /// `lvs_timeouts tcp N tcpfin N udp N`.
    pub lvs_timeouts: LvsTimeouts,
    /// `vrrp_check_unicast_src`.
    pub check_unicast_src: bool,
    /// Where the block started.
    pub pos: Pos,
}

/// `global_defs`' e-mail alert settings (keepalived.conf(5)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailDefs<'t> {
    /// `notification_email { ... }`: the recipients, as written.
    pub to: Vec<&'t str, MAX_EMAILS>,
    /// `notification_email_from` (default: `keepalived@` the host name).
    pub from: Option<&'t str>,
    /// `smtp_server NAME|ADDRESS [PORT]` as written: never resolved while
    /// parsing.
    pub server: Option<&'t str>,
    /// Its port (default 25).
    pub port: Option<u16>,
    /// `smtp_helo_name` (default: the host name).
    pub helo_name: Option<&'t str>,
    /// `smtp_connect_timeout` (default 30 s).
    pub connect_timeout: Option<Duration>,
    /// `smtp_alert`: the default of every alert.
    pub alert: Option<bool>,
    /// `smtp_alert_vrrp`: the default of VRRP instances' alerts.
    pub alert_vrrp: Option<bool>,
    /// `smtp_alert_checker`: the default of real servers' alerts.
    pub alert_checker: Option<bool>,
    /// `no_email_faults`: no alert on entering FAULT.
    pub no_email_faults: bool,
}

impl MailDefs<'_> {
    /// The alert switches alone (`smtp_alert*`, `no_email_faults`), kept
    /// past the text they were read from.
    pub fn switches(&self) -> MailDefs<'static> {
        MailDefs {
            alert: self.alert,
            alert_vrrp: self.alert_vrrp,
            alert_checker: self.alert_checker,
            no_email_faults: self.no_email_faults,
            ..MailDefs::default()
        }
    }

    /// Whether a VRRP instance whose own `smtp_alert` is `own` sends
    /// alerts (keepalived's vrrp_parser.c: the instance's, else
    /// `smtp_alert_vrrp`, else `smtp_alert`, else no).
    pub fn vrrp_alerts(&self, own: Option<bool>) -> bool {
        own.or(self.alert_vrrp).or(self.alert).unwrap_or(false)
    }

    /// Whether a real server whose own `smtp_alert` is `own`, in a
    /// virtual server whose `smtp_alert` is `service`, sends alerts
    /// (keepalived's check_parser.c: the real server's, else the virtual
    /// server's, else `smtp_alert_checker`, else `smtp_alert`, else no).
    pub fn checker_alerts(&self, own: Option<bool>, service: Option<bool>) -> bool {
        own.or(service)
            .or(self.alert_checker)
            .or(self.alert)
            .unwrap_or(false)
    }
}

/// The optional words of `lvs_sync_daemon` (keepalived.conf(5)); `None`:
/// the kernel's default (IPVS `ip_vs_sync.c`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LvsSyncOptions {
    /// `id`: the sync id, 0..=255 (default 0).
    pub sync_id: Option<u8>,
    /// `maxlen`: largest message, 1..=65507 bytes.
    pub maxlen: Option<u16>,
    /// `port`: UDP port (default 8848).
    pub port: Option<u16>,
    /// `ttl`: multicast TTL or hop limit, 1..=255 (default 1).
    pub ttl: Option<u8>,
    /// `group`: multicast group (default 224.0.0.81).
    pub group: Option<core::net::IpAddr>,
}

/// `lvs_timeouts` (zero: the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LvsTimeouts {
    /// Established TCP.
    pub tcp: Duration,
    /// TCP after FIN.
    pub tcp_fin: Duration,
    /// UDP.
    pub udp: Duration,
}

/// `USER [GROUP]` of `script_user` and of a script's `user`: the
/// account a script runs as (names, resolved by the driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs<'t> {
    /// The user name.
    pub user: &'t str,
    /// The group name (default: the user's primary group).
    pub group: Option<&'t str>,
}

/// `vrrp_script NAME { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpScript<'t> {
    /// Its name.
    pub name: &'t str,
    /// `script`: the command line, as written.
    pub script: &'t str,
    /// `interval` (default 1 s).
    pub interval: Duration,
    /// `timeout` (default: the interval).
    pub timeout: Option<Duration>,
    /// `weight` (default 0: failure puts trackers in Fault).
    pub weight: i32,
    /// `weight W reverse`: trackers turn the adjustment's direction.
    pub reverse: bool,
    /// `rise` (default 1).
    pub rise: u32,
    /// `fall` (default 1).
    pub fall: u32,
    /// `user USER [GROUP]`.
    pub user: Option<RunAs<'t>>,
    /// `init_fail`: starts failed.
    pub init_fail: bool,
    /// Where the block started.
    pub pos: Pos,
}

/// Most parameters a `vrrp_track_process` matches.
pub const MAX_PROCESS_PARAMS: usize = 8;

/// How a `vrrp_track_process` compares a command line's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamMatch {
    /// Only the process name (no `param_match`, no parameters).
    Ignore,
    /// Exactly the configured parameters, no more (parameters given, or
    /// `param_match` alone).
    Exact,
    /// `param_match partial`: the first ones are the configured ones.
    Partial,
    /// `param_match initial`: as partial, and the last configured one may
    /// be the start of the process's.
    Initial,
}

/// `vrrp_track_process NAME { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackProcessConf<'t> {
    /// Its name.
    pub name: &'t str,
    /// `process`: the process name (or, with `full_command`, the command
    /// line's first word).
    pub process: &'t str,
    /// The parameters after it on the `process` line.
    pub params: Vec<&'t str, MAX_PROCESS_PARAMS>,
    /// How parameters are compared.
    pub param_match: ParamMatch,
    /// `full_command`: match the command line (`/proc/PID/cmdline`), not
    /// the process name (`/proc/PID/comm`); implied by parameters or
    /// `param_match`.
    pub full_command: bool,
    /// `weight` (default 0: too few processes put trackers in Fault).
    pub weight: i32,
    /// `weight W reverse`: trackers turn the adjustment's direction.
    pub reverse: bool,
    /// `quorum` (default 1).
    pub quorum: u32,
    /// `quorum_max` (default: no limit).
    pub quorum_max: u32,
    /// `fork_delay` (or `delay`).
    pub fork_delay: Duration,
    /// `terminate_delay` (or `delay`).
    pub terminate_delay: Duration,
    /// Where the block started.
    pub pos: Pos,
}

/// `track_file NAME { ... }` (also spelled `vrrp_track_file`): a file
/// holding a number that tracking instances and `FILE_CHECK`s read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackFileConf<'t> {
    /// Its name.
    pub name: &'t str,
    /// `file`: the path, as written.
    pub path: &'t str,
    /// `weight` (default 1): what the value is multiplied by; 0 means a
    /// non-zero value is a failure.
    pub weight: i32,
    /// `weight W reverse`: the product's sign is turned (with weight 0, a
    /// zero value is the failure).
    pub reverse: bool,
    /// `init_file [VALUE] [overwrite]`.
    pub init: Option<InitFile>,
    /// Where the block started.
    pub pos: Pos,
}

/// `init_file [VALUE] [overwrite]`: write VALUE (default 0) to the file at
/// start if it is missing, or always with `overwrite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitFile {
    /// The value written.
    pub value: i32,
    /// Also when the file exists.
    pub overwrite: bool,
}

/// `state` of a `vrrp_instance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialState {
    /// `state MASTER`.
    Master,
    /// `state BACKUP` (and the default).
    Backup,
}

/// One address of `virtual_ipaddress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VipConf<'t> {
    /// The address.
    pub addr: IpAddr,
    /// `/prefix` (keepalived's default: /32 or /128).
    pub prefix_len: Option<u8>,
    /// `dev`.
    pub dev: Option<&'t str>,
    /// `label`.
    pub label: Option<&'t str>,
    /// `scope`.
    pub scope: Option<&'t str>,
    /// `brd`.
    pub broadcast: Option<IpAddr>,
    /// Where it is.
    pub pos: Pos,
}

/// What a route does with matching packets (ip-route(8)'s TYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteType {
    /// Forwarded (the default).
    Unicast,
    /// `blackhole`: discarded silently.
    Blackhole,
    /// `unreachable`: discarded with ICMP unreachable.
    Unreachable,
    /// `prohibit`: discarded with ICMP prohibited.
    Prohibit,
    /// `throw`: lookup goes on in the next table.
    Throw,
}

/// One line of `virtual_routes` or `static_routes`: keepalived's
/// `[src ADDR] [TYPE] [to] PREFIX [via|gw [inet|inet6] ADDR] [dev IF]
/// [scope S] [table T] [metric N] [onlink] [no_track]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteConf<'t> {
    /// `TYPE`.
    pub kind: RouteType,
    /// The destination (`default` is the family's 0/0).
    pub dst: IpAddr,
    /// Its prefix length (a bare address: /32 or /128).
    pub prefix_len: u8,
    /// `via` or `gw`.
    pub via: Option<IpAddr>,
    /// `src`: the preferred source address.
    pub src: Option<IpAddr>,
    /// `dev`.
    pub dev: Option<&'t str>,
    /// `scope`, by name or number, as written.
    pub scope: Option<&'t str>,
    /// `table`: its number (`main` 254, `local` 255, `default` 253).
    pub table: Option<u32>,
    /// `metric` (also `preference`, `priority`).
    pub metric: Option<u32>,
    /// `onlink`: the gateway is on the link even without a matching prefix.
    pub onlink: bool,
    /// Where it is.
    pub pos: Pos,
}

/// An entry of `track_interface`, `track_script`, `track_process` or
/// `track_file`, or a `FILE_CHECK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackConf<'t> {
    /// The interface's name, or the tracked block's.
    pub name: &'t str,
    /// `weight N`, when given (unset: the block's own weight; an
    /// interface's is 0).
    pub weight: Option<i32>,
    /// `reverse` / `noreverse`, when given (unset: the block's own).
    pub reverse: Option<bool>,
    /// Where it is.
    pub pos: Pos,
}

/// Notify scripts of an instance or sync group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notify<'t> {
    /// `notify_master`.
    pub master: Option<&'t str>,
    /// `notify_backup`.
    pub backup: Option<&'t str>,
    /// `notify_fault`.
    pub fault: Option<&'t str>,
    /// `notify_stop`.
    pub stop: Option<&'t str>,
    /// `notify`: called on every change with type, name and state.
    pub any: Option<&'t str>,
}

/// `authentication { auth_type ...; auth_pass ... }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthConf<'t> {
    /// `auth_type PASS` with its password (as written; the wire keeps 8 bytes).
    Pass(&'t str),
    /// `auth_type AH`: parsed, not supported on the wire.
    Ah,
}

/// `garp_group { garp_interval S; gna_interval S; interface IF |
/// interfaces { IF ... } }`: interfaces whose gratuitous ARPs (and NAs)
/// are spaced as one, for a switch they all reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GarpGroupConf<'t> {
    /// `garp_interval`.
    pub garp_interval: Option<Duration>,
    /// `gna_interval`.
    pub gna_interval: Option<Duration>,
    /// `interface`, or the `interfaces` list.
    pub interfaces: Vec<&'t str, MAX_GARP_INTERFACES>,
    /// Where the block started.
    pub pos: Pos,
}

/// `use_vmac [[name] NAME] [MAC]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmacConf<'t> {
    /// The interface's name (default: see `node::build::vmac`).
    pub name: Option<&'t str>,
    /// Its MAC, as given (default: see [`VmacConf::mac`]).
    pub mac: Option<VmacAddress>,
    /// Where the keyword is.
    pub pos: Pos,
}

/// A `use_vmac` MAC address as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmacAddress {
    /// Six octets: the address.
    Full([u8; 6]),
    /// Five octets: the VRID is the sixth.
    Prefix([u8; 5]),
}

impl VmacConf<'_> {
    /// The VMAC's address: as given, else RFC 5798's virtual router MAC,
    /// `00:00:5e:00:01:VRID` (IPv4) or `00:00:5e:00:02:VRID` (IPv6).
    pub fn mac(&self, vrid: u8, ipv6: bool) -> [u8; 6] {
        match self.mac {
            Some(VmacAddress::Full(m)) => m,
            Some(VmacAddress::Prefix([a, b, c, d, e])) => [a, b, c, d, e, vrid],
            None => [0x00, 0x00, 0x5e, 0x00, if ipv6 { 0x02 } else { 0x01 }, vrid],
        }
    }
}

/// `vrrp_instance NAME { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpInstance<'t> {
    /// Its name.
    pub name: &'t str,
    /// `state`.
    pub state: InitialState,
    /// `interface`.
    pub interface: Option<&'t str>,
    /// `virtual_router_id`.
    pub vrid: u8,
    /// `priority` (default 100).
    pub priority: u8,
    /// `advert_int` in centiseconds (default 100).
    pub advert_interval_cs: u16,
    /// `version` (default: global `vrrp_version`, else 2).
    pub version: Option<u8>,
    /// `preempt` (default) / `nopreempt`.
    pub preempt: bool,
    /// `preempt_delay`.
    pub preempt_delay: Duration,
    /// `authentication`.
    pub auth: Option<AuthConf<'t>>,
    /// `virtual_ipaddress`.
    pub vips: Vec<VipConf<'t>, MAX_VIPS>,
    /// `virtual_ipaddress_excluded`.
    pub excluded_vips: Vec<VipConf<'t>, MAX_VIPS>,
    /// `virtual_routes`: held, like the VIPs, only while master.
    pub virtual_routes: Vec<RouteConf<'t>, MAX_ROUTES>,
    /// `unicast_src_ip`.
    pub unicast_src_ip: Option<IpAddr>,
    /// `unicast_peer`.
    pub unicast_peers: Vec<IpAddr, MAX_PEERS>,
    /// `mcast_src_ip`.
    pub mcast_src_ip: Option<IpAddr>,
    /// `track_interface`.
    pub track_interfaces: Vec<TrackConf<'t>, MAX_TRACKS>,
    /// `track_script`.
    pub track_scripts: Vec<TrackConf<'t>, MAX_TRACKS>,
    /// `track_process`.
    pub track_processes: Vec<TrackConf<'t>, MAX_TRACKS>,
    /// `track_file`.
    pub track_files: Vec<TrackConf<'t>, MAX_TRACKS>,
    /// `garp_master_delay`.
    pub garp_master_delay: Option<Duration>,
    /// `garp_master_repeat`.
    pub garp_master_repeat: Option<u8>,
    /// `garp_master_refresh`.
    pub garp_master_refresh: Option<Duration>,
    /// `garp_master_refresh_repeat`.
    pub garp_master_refresh_repeat: Option<u8>,
    /// `lower_prio_no_advert`.
    pub lower_prio_no_advert: Option<bool>,
    /// `down_timer_adverts` (default 3).
    pub down_timer_adverts: u8,
    /// `v3_checksum_as_v2`.
    pub v3_checksum_as_v2: bool,
    /// `dont_track_primary`.
    pub dont_track_primary: bool,
    /// `native_ipv6`: the instance is IPv6 even without IPv6 VIPs.
    pub native_ipv6: bool,
    /// `use_vmac`: a macvlan with the virtual router's MAC carries the
    /// VIPs (and the adverts, unless `vmac_xmit_base`).
    pub use_vmac: Option<VmacConf<'t>>,
    /// `vmac_xmit_base`: adverts on the base interface, not the VMAC.
    pub vmac_xmit_base: bool,
    /// `lvs_sync_daemon_interface`.
    pub lvs_sync_daemon_interface: Option<&'t str>,
    /// Notify scripts.
    pub notify: Notify<'t>,
    /// `smtp_alert` (unset: `global_defs`' default, see
    /// [`MailDefs::vrrp_alerts`]).
    pub smtp_alert: Option<bool>,
    /// Where the block started.
    pub pos: Pos,
}

impl VrrpInstance<'_> {
    /// Whether the instance is IPv6: `native_ipv6`, or its first VIP,
    /// `unicast_src_ip` or unicast peer is.
    pub fn is_ipv6(&self) -> bool {
        self.native_ipv6
            || self.vips.first().is_some_and(|v| v.addr.is_ipv6())
            || self.unicast_src_ip.is_some_and(|a| a.is_ipv6())
            || self.unicast_peers.first().is_some_and(|a| a.is_ipv6())
    }
}

/// One member of a sync group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupMember<'t> {
    /// The instance's name.
    pub name: &'t str,
    /// Where it is named.
    pub pos: Pos,
}

/// `vrrp_sync_group NAME { group { ... } ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupConf<'t> {
    /// Its name.
    pub name: &'t str,
    /// Member instances, by name.
    pub members: Vec<GroupMember<'t>, MAX_GROUP_MEMBERS>,
    /// Notify scripts.
    pub notify: Notify<'t>,
    /// `smtp_alert` (unset: as an instance's, see
    /// [`MailDefs::vrrp_alerts`]).
    pub smtp_alert: Option<bool>,
    /// Where the block started.
    pub pos: Pos,
}

pub use crate::scheduler::Scheduler;

/// Forwarding method (`lb_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardKind {
    /// Direct routing: the frame goes to the real server's MAC unchanged.
    Dr,
    /// NAT: accepted and reported; vrlb's data plane forwards DR only.
    Nat,
    /// IP-in-IP tunnel: accepted and reported; not forwarded by vrlb.
    Tun,
}

/// Transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP (default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// How a virtual server is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VsKey<'t> {
    /// `virtual_server IP PORT` (port 0 when left out).
    Addr(IpAddr, u16),
    /// `virtual_server fwmark N`.
    Fwmark(u32),
    /// `virtual_server group NAME`.
    Group(&'t str),
}

/// Scheduler flags (`sh-port`, `sh-fallback`, `mh-port`, `mh-fallback`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedFlags {
    /// Hash the port too (sh-port / mh-port, IPVS flag-2).
    pub port: bool,
    /// Skip unavailable servers instead of dropping (flag-1).
    pub fallback: bool,
}

/// `virtual_server ... { ... }` without its real servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServer<'t> {
    /// How it is named.
    pub key: VsKey<'t>,
    /// `delay_loop` (default 60 s): checker interval for its real servers.
    pub delay_loop: Duration,
    /// `lb_algo` (keepalived's default: wlc).
    pub scheduler: Scheduler,
    /// Scheduler flags.
    pub sched_flags: SchedFlags,
    /// `lb_kind` (keepalived's default: NAT).
    pub kind: ForwardKind,
    /// `persistence_timeout` (None: no persistence).
    pub persistence_timeout: Option<Duration>,
    /// `persistence_granularity` as a prefix length.
    pub persistence_granularity: Option<u8>,
    /// `protocol` (unset: UDP, as keepalived; fwmark services have none).
    pub protocol: Protocol,
    /// `sorry_server IP PORT`.
    pub sorry_server: Option<(IpAddr, u16)>,
    /// `sorry_server_inhibit`: the sorry server stays listed at weight 0
    /// while quorum holds (its connections keep going), instead of being
    /// removed.
    pub sorry_server_inhibit: bool,
    /// `sorry_server_lvs_method`; without it the sorry server forwards by
    /// the virtual server's `lb_kind` (keepalived's `alloc_ssvr`).
    pub sorry_server_kind: Option<ForwardKind>,
    /// `quorum` (default 1).
    pub quorum: u32,
    /// `hysteresis` (default 0).
    pub hysteresis: u32,
    /// `quorum_up`: run when the service gains quorum.
    pub quorum_up: Option<&'t str>,
    /// `quorum_down`: run when it loses quorum (and at start without
    /// quorum when a sorry server must come in).
    pub quorum_down: Option<&'t str>,
    /// `alpha`: real servers start failed until a check succeeds (a first
    /// failed check runs their `notify_down`).
    pub alpha: bool,
    /// `omega`: at shutdown, run `notify_down` of each live real server and
    /// the service's `quorum_down` (keepalived.conf(5) "omega").
    pub omega: bool,
    /// `ha_suspend`: no checks while this node does not hold the VIP.
    pub ha_suspend: bool,
    /// `inhibit_on_failure` default for its real servers.
    pub inhibit_on_failure: bool,
    /// `virtualhost` for HTTP checks.
    pub virtualhost: Option<&'t str>,
    /// `ops`: one-packet scheduling (UDP).
    pub ops: bool,
    /// Checker settings given at the virtual server level, defaults for
    /// every checker of its real servers (keepalived 2.x).
    pub checker_defaults: CheckerDefaults,
    /// vrlb's `anycast`: announce the VIP only while the service has quorum.
    pub anycast: bool,
    /// How many `real_server` blocks follow.
    pub real_servers: u32,
    /// `smtp_alert`: the default of its real servers' alerts.
    pub smtp_alert: Option<bool>,
    /// Where the block started.
    pub pos: Pos,
}

/// `real_server IP PORT { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer<'t> {
    /// Address.
    pub addr: IpAddr,
    /// Port (0 when left out).
    pub port: u16,
    /// `weight` (default 1).
    pub weight: u32,
    /// `uthreshold` (0: none).
    pub upper_threshold: u32,
    /// `lthreshold` (0: none).
    pub lower_threshold: u32,
    /// `lvs_method` (default: the virtual server's `lb_kind`).
    pub kind: ForwardKind,
    /// `inhibit_on_failure` (default: the virtual server's).
    pub inhibit_on_failure: bool,
    /// `notify_up`: run when the server comes up.
    pub notify_up: Option<&'t str>,
    /// `notify_down`: run when it goes down.
    pub notify_down: Option<&'t str>,
    /// Its checkers, with real-server and virtual-server level defaults
    /// already applied.
    pub checkers: Vec<CheckerConf<'t>, MAX_CHECKERS>,
    /// `FILE_CHECK { track_file NAME; weight W [reverse] }` blocks.
    pub file_checks: Vec<TrackConf<'t>, MAX_FILE_CHECKS>,
    /// `smtp_alert` (unset: see [`MailDefs::checker_alerts`]).
    pub smtp_alert: Option<bool>,
    /// Where the block started.
    pub pos: Pos,
}

/// Checker settings that may also be given for a whole real server or
/// virtual server; a checker's own value wins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckerDefaults {
    /// `connect_timeout`.
    pub connect_timeout: Option<Duration>,
    /// `retry`.
    pub retry: Option<u32>,
    /// `delay_before_retry`.
    pub delay_before_retry: Option<Duration>,
    /// `delay_loop`.
    pub delay_loop: Option<Duration>,
    /// `warmup`.
    pub warmup: Option<Duration>,
}

impl CheckerDefaults {
    /// Fills what `c` leaves unset from these defaults.
    pub fn apply_to(&self, c: &mut CheckerConf<'_>) {
        c.connect_timeout = c.connect_timeout.or(self.connect_timeout);
        c.retry = c.retry.or(self.retry);
        c.delay_before_retry = c.delay_before_retry.or(self.delay_before_retry);
        c.delay_loop = c.delay_loop.or(self.delay_loop);
        c.warmup = c.warmup.or(self.warmup);
    }
}

/// SMTP_CHECK's `HELO` name when `helo_name` is unset (keepalived's
/// check_smtp.h).
pub const DEFAULT_HELO_NAME: &str = "smtpchecker.keepalived.org";

/// The kind of a checker block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// `TCP_CHECK`: connect succeeds.
    Tcp,
    /// `HTTP_GET`: status code and/or MD5 digest of the body.
    Http,
    /// `SSL_GET`: HTTP_GET over TLS.
    Ssl,
    /// `MISC_CHECK`: a script's exit code.
    Misc,
    /// `SMTP_CHECK`: a 220 greeting, then 250 to `HELO`, then `QUIT`.
    Smtp,
    /// `UDP_CHECK`: no ICMP error to a datagram, or a matching reply.
    Udp,
    /// `PING_CHECK`: an ICMP or ICMPv6 echo reply.
    Ping,
    /// `DNS_CHECK`: a reply without error to one query.
    Dns,
}

impl CheckKind {
    /// The block's keyword.
    pub const fn keyword(self) -> &'static str {
        match self {
            CheckKind::Tcp => "TCP_CHECK",
            CheckKind::Http => "HTTP_GET",
            CheckKind::Ssl => "SSL_GET",
            CheckKind::Misc => "MISC_CHECK",
            CheckKind::Smtp => "SMTP_CHECK",
            CheckKind::Udp => "UDP_CHECK",
            CheckKind::Ping => "PING_CHECK",
            CheckKind::Dns => "DNS_CHECK",
        }
    }
}

/// UDP_CHECK's own settings (keepalived.conf(5), "UDP_CHECK").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpConf {
    /// `payload`: the datagram sent (empty: random bytes, as keepalived).
    pub payload: Vec<u8, MAX_UDP_DATA>,
    /// `require_reply`: success needs a reply, not just no ICMP error.
    pub require_reply: bool,
    /// `require_reply HEX_STR`: what the reply must start with, compared
    /// up to the shorter of the two (empty: any content).
    pub reply: Vec<u8, MAX_UDP_DATA>,
    /// Per byte of `reply`, the bits a wildcard (`X`) leaves unchecked.
    pub reply_mask: Vec<u8, MAX_UDP_DATA>,
    /// `min_reply_length` (default 0).
    pub min_reply_len: u16,
    /// `max_reply_length` (default 255).
    pub max_reply_len: u16,
}

impl Default for UdpConf {
    fn default() -> Self {
        UdpConf {
            payload: Vec::new(),
            require_reply: false,
            reply: Vec::new(),
            reply_mask: Vec::new(),
            min_reply_len: 0,
            max_reply_len: 255,
        }
    }
}

impl UdpConf {
    /// Whether `reply` passes (keepalived check_udp.c `check_udp_reply`):
    /// its length within `min_reply_len..=max_reply_len`, then the pattern
    /// matched up to the shorter of the two. `Err` says why not.
    pub fn judge(&self, reply: &[u8]) -> Result<(), ReplyMismatch> {
        let len = reply.len();
        if len < usize::from(self.min_reply_len) {
            return Err(ReplyMismatch::TooShort { len });
        }
        if len > usize::from(self.max_reply_len) {
            return Err(ReplyMismatch::TooLong { len });
        }
        let wild = self.reply_mask.iter().copied().chain(core::iter::repeat(0));
        for (at, ((got, want), wild)) in reply.iter().zip(self.reply.iter()).zip(wild).enumerate() {
            if (got ^ want) & !wild != 0 {
                return Err(ReplyMismatch::Byte { at });
            }
        }
        Ok(())
    }
}

/// Why a UDP_CHECK reply failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMismatch {
    /// Shorter than `min_reply_length`.
    TooShort {
        /// Its length.
        len: usize,
    },
    /// Longer than `max_reply_length`.
    TooLong {
        /// Its length.
        len: usize,
    },
    /// Byte `at` (from 0) differs from the pattern.
    Byte {
        /// The offset.
        at: usize,
    },
}

/// DNS_CHECK's query types (keepalived check_dns.c's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsType {
    /// `A`.
    A,
    /// `NS`.
    Ns,
    /// `CNAME`.
    Cname,
    /// `SOA`, keepalived's default.
    #[default]
    Soa,
    /// `MX`.
    Mx,
    /// `TXT`.
    Txt,
    /// `AAAA`.
    Aaaa,
}

impl DnsType {
    /// Every type, as keepalived spells it (case-insensitive in the file).
    pub const ALL: [DnsType; 7] = [
        DnsType::A,
        DnsType::Ns,
        DnsType::Cname,
        DnsType::Soa,
        DnsType::Mx,
        DnsType::Txt,
        DnsType::Aaaa,
    ];

    /// The type's name.
    pub const fn name(self) -> &'static str {
        match self {
            DnsType::A => "A",
            DnsType::Ns => "NS",
            DnsType::Cname => "CNAME",
            DnsType::Soa => "SOA",
            DnsType::Mx => "MX",
            DnsType::Txt => "TXT",
            DnsType::Aaaa => "AAAA",
        }
    }

    /// The RR type code (RFC 1035 3.2.2, RFC 3596 for AAAA).
    pub const fn code(self) -> u16 {
        match self {
            DnsType::A => 1,
            DnsType::Ns => 2,
            DnsType::Cname => 5,
            DnsType::Soa => 6,
            DnsType::Mx => 15,
            DnsType::Txt => 16,
            DnsType::Aaaa => 28,
        }
    }
}

/// DNS_CHECK's `name` when unset: the root (keepalived check_dns.h).
pub const DEFAULT_DNS_NAME: &str = ".";

/// One `url { ... }` of an HTTP/SSL checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlConf<'t> {
    /// `path`.
    pub path: &'t str,
    /// `digest`: MD5 of the body, hex.
    pub digest: Option<&'t str>,
    /// `status_code` values and ranges (`200-299 503`), inclusive; empty
    /// means any 2xx.
    pub status_codes: Vec<(u16, u16), MAX_STATUS_CODES>,
    /// `virtualhost` for this URL.
    pub virtualhost: Option<&'t str>,
}

/// A checker block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckerConf<'t> {
    /// Which checker.
    pub kind: CheckKind,
    /// `connect_ip` (default: the real server's).
    pub connect_ip: Option<IpAddr>,
    /// `connect_port` (default: the real server's).
    pub connect_port: Option<u16>,
    /// `bindto`.
    pub bind_to: Option<IpAddr>,
    /// `bind_port`: the local port probes connect from.
    pub bind_port: Option<u16>,
    /// `connect_timeout` (unset: 5 s; not used by `MISC_CHECK`).
    pub connect_timeout: Option<Duration>,
    /// `retry` / `nb_get_retry` (unset: 1, `MISC_CHECK` 0, `DNS_CHECK` 3).
    pub retry: Option<u32>,
    /// `delay_before_retry` (unset: 3 s for `HTTP_GET`/`SSL_GET`, the
    /// `delay_loop` for `DNS_CHECK`, else 1 s).
    pub delay_before_retry: Option<Duration>,
    /// `delay_loop` override.
    pub delay_loop: Option<Duration>,
    /// `warmup` (unset: a random delay up to `delay_loop`).
    pub warmup: Option<Duration>,
    /// `alpha` override.
    pub alpha: Option<bool>,
    /// `url` blocks (HTTP/SSL).
    pub urls: Vec<UrlConf<'t>, MAX_URLS>,
    /// `misc_path` (MISC).
    pub misc_path: Option<&'t str>,
    /// `misc_timeout` (MISC; unset: the virtual server's `delay_loop`).
    pub misc_timeout: Option<Duration>,
    /// `misc_dynamic` (MISC): an exit status of 2..=255 means up with
    /// weight status - 2.
    pub misc_dynamic: bool,
    /// `user USER [GROUP]` (MISC): who runs `misc_path`.
    pub user: Option<RunAs<'t>>,
    /// `virtualhost` (HTTP/SSL).
    pub virtualhost: Option<&'t str>,
    /// `helo_name` (SMTP; unset: [`DEFAULT_HELO_NAME`]).
    pub helo_name: Option<&'t str>,
    /// UDP_CHECK's payload and reply rules.
    pub udp: UdpConf,
    /// DNS_CHECK's `type` (default SOA).
    pub dns_type: DnsType,
    /// DNS_CHECK's `name` (unset: [`DEFAULT_DNS_NAME`]).
    pub dns_name: Option<&'t str>,
    /// Where the block started.
    pub pos: Pos,
}

impl<'t> CheckerConf<'t> {
    /// A checker of `kind` with keepalived's defaults.
    pub fn new(kind: CheckKind, pos: Pos) -> Self {
        CheckerConf {
            kind,
            connect_ip: None,
            connect_port: None,
            bind_to: None,
            bind_port: None,
            connect_timeout: None,
            retry: None,
            delay_before_retry: None,
            delay_loop: None,
            warmup: None,
            alpha: None,
            urls: Vec::new(),
            misc_path: None,
            misc_timeout: None,
            misc_dynamic: false,
            user: None,
            virtualhost: None,
            helo_name: None,
            udp: UdpConf::default(),
            dns_type: DnsType::Soa,
            dns_name: None,
            pos,
        }
    }
}

/// One entry of a `virtual_server_group`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupEntry {
    /// `IP[-LAST] PORT`: an address or a range in the last byte/group.
    Addr {
        /// First address.
        first: IpAddr,
        /// Last address of the range (== first for one).
        last: IpAddr,
        /// Port.
        port: u16,
    },
    /// `fwmark N`.
    Fwmark(u32),
}

/// `virtual_server_group NAME { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServerGroup<'t> {
    /// Its name.
    pub name: &'t str,
    /// Its entries.
    pub entries: Vec<GroupEntry, MAX_GROUP_ENTRIES>,
    /// Where the block started.
    pub pos: Pos,
}
