//! What a run simulates: the hosts, each director's keepalived.conf, the
//! traffic and the faults, as a plain description. [`Scenario::swarm`]
//! draws one from a seed (which faults are on, and how often, included);
//! [`Scenario::demo`] is the seed document's story for any
//! keepalived.conf; [`Scenario::ecmp`] puts active-active directors behind
//! a router.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vrlb_core::config::ForwardKind;
use vrlb_core::rand::Prng;

use crate::segment::LinkParams;
use crate::server::Mode;
use crate::topology::{self, ConfigView, ProbeKind};

/// Connection slots per director, unless the scenario says otherwise
/// (small, so a flood can fill a table).
pub const CONNECTIONS: u32 = 4096;

/// Most IPv4 client addresses (two documentation /24s, as the world
/// numbers them).
pub const MAX_CLIENT_ADDRS: usize = 508;

/// A fault or repair at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A director dies (no goodbye).
    Crash(usize),
    /// Whichever director is master of the scenario's first instance dies
    /// (the first director when none is).
    CrashMaster,
    /// A crashed or stopped director starts again.
    Start(usize),
    /// The director `CrashMaster` crashed starts again.
    RestartCrashed,
    /// A director stops gracefully (priority 0).
    Stop(usize),
    /// A director stalls for this long (GC-like pause).
    Pause(usize, u64),
    /// A director's clock starts drifting by this many ppm.
    Drift(usize, i64),
    /// A real server changes behaviour.
    Server(usize, Mode),
    /// A port moves to a partition (0 joins the main part).
    Partition(usize, u32),
    /// Frames from one port to another are dropped (or no longer).
    Block(usize, usize, bool),
    /// New link behaviour.
    Link(LinkParams),
    /// A flood of new flows from spoofed addresses starts: to this service
    /// (a TCP one: the half-open entries time out after 60 s), this many
    /// SYNs, evenly over this long.
    Flood(usize, u32, u64),
    /// Everything heals: the liveness phase starts.
    Heal,
    /// The liveness burst: many long flows from many addresses, to see
    /// every healthy server receive new flows.
    Burst,
}

/// How the ECMP router picks a director for a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcmpHash {
    /// Hash of the 5-tuple modulo the number of next hops (every change of
    /// the set can move most flows).
    Modulo,
    /// Hash-threshold (RFC 2992, Linux's IPv4 multipath): the hash space is
    /// cut into one region per next hop; a change moves fewer flows.
    Threshold,
}

impl EcmpHash {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            EcmpHash::Modulo => "modulo",
            EcmpHash::Threshold => "threshold",
        }
    }
}

/// Several directors active at once behind an ECMP router (issue 10):
/// they announce the VIP while their anycast service has quorum, and the
/// router spreads flows over the announcing directors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ecmp {
    /// The router's hash.
    pub hash: EcmpHash,
    /// How long a crashed director's route lingers before the router drops
    /// it (BGP hold time or BFD detection).
    pub withdraw_delay_us: u64,
}

/// What clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    /// Client hosts.
    pub clients: usize,
    /// Addresses per client (of each family the services use).
    pub addrs_per_client: usize,
    /// Mean time between flows of one client.
    pub flow_every_us: u64,
    /// Share of long-lived flows, per million.
    pub long_ppm: u32,
    /// Packets of a long flow.
    pub long_packets: u32,
    /// Gap between a long flow's packets.
    pub long_gap_us: u64,
}

/// One instance's settings changed on one director after its build (the
/// parsed value, not the text: the demo's lower-priority backup, or the
/// second director of a unicast pair).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The instance's name.
    pub instance: String,
    /// New priority.
    pub priority: Option<u8>,
    /// Start as BACKUP.
    pub backup: bool,
    /// New `unicast_src_ip` and peers.
    pub unicast: Option<(IpAddr, Vec<IpAddr>)>,
}

/// One director.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorSpec {
    /// Its IPv4 address (VRRPv2/v3 over IPv4 adverts come from it).
    pub addr: Ipv4Addr,
    /// Its global IPv6 address (health checks of IPv6 servers).
    pub addr6: Ipv6Addr,
    /// Its IPv6 link-local address (VRRPv3 over IPv6 adverts).
    pub link_local: Ipv6Addr,
    /// Its keepalived.conf.
    pub config: String,
    /// Changes to the parsed configuration.
    pub overrides: Vec<Override>,
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The seed everything random derives from.
    pub seed: u64,
    /// The directors.
    pub directors: Vec<DirectorSpec>,
    /// Each real server host's addresses.
    pub servers: Vec<Vec<IpAddr>>,
    /// What the directors' configuration asks for (the first director's:
    /// every scenario gives them the same services).
    pub view: ConfigView,
    /// Traffic.
    pub traffic: Traffic,
    /// Link behaviour at the start.
    pub link: LinkParams,
    /// Faults and repairs, in time order.
    pub actions: Vec<(u64, Action)>,
    /// When the run ends.
    pub duration_us: u64,
    /// When the liveness phase starts (after `Action::Heal`).
    pub heal_at_us: u64,
    /// Whether a director starts later than the others (by index, time).
    pub late_start: Option<(usize, u64)>,
    /// Active-active directors behind an ECMP router instead of VRRP.
    pub ecmp: Option<Ecmp>,
    /// The `vrlb-sim` arguments that replay this run.
    pub replay: String,
    /// What the simulation does differently from the file (printed by the
    /// demo).
    pub notes: Vec<String>,
    /// Connection and template slots per director.
    pub connections: u32,
}

const SCHEDULERS: [&str; 11] = [
    "rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "mh", "fo", "ovf",
];

/// `text` with connection sync on: `lvs_sync_daemon eth0 INSTANCE` in
/// its `global_defs` (a block is added when it has none).
pub fn with_lvs_sync_daemon(text: &str, instance: &str) -> String {
    let line = format!("lvs_sync_daemon eth0 {instance}");
    match text.find("global_defs {") {
        Some(at) => {
            let end = at + "global_defs {".len();
            format!("{}\n   {line}{}", &text[..end], &text[end..])
        }
        None => format!("global_defs {{\n    {line}\n}}\n{text}"),
    }
}

/// Whether a swarm seed runs connection sync. Drawn from its own stream so
/// the rest of each seed's scenario does not depend on it.
pub fn swarm_syncs(seed: u64) -> bool {
    Prng::new(seed ^ 0x5359_4e43_5359_4e43).chance_ppm(500_000)
}

/// Whether a swarm seed is an ECMP (active-active) cluster, from its own
/// stream too.
pub fn swarm_is_ecmp(seed: u64) -> bool {
    Prng::new(seed ^ 0x4543_4d50_4543_4d50).chance_ppm(80_000)
}

/// The addresses a director gets by index.
fn director(i: usize, addr: Ipv4Addr, config: String) -> DirectorSpec {
    DirectorSpec {
        addr,
        addr6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10 + i as u16),
        link_local: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x10 + i as u16),
        config,
        overrides: Vec::new(),
    }
}

/// The text of an address in a keepalived.conf.
fn addr_text(a: IpAddr) -> String {
    a.to_string()
}

/// One drawn instance.
struct InstDraw {
    name: &'static str,
    vrid: u8,
    vip: IpAddr,
    version: u8,
    advert_s: f64,
}

/// One director's settings of an instance.
#[derive(Clone, Copy)]
struct DirInst {
    priority: u8,
    state_master: bool,
    nopreempt: bool,
    preempt_delay_s: u64,
}

/// One drawn virtual service.
struct SvcDraw {
    vip: IpAddr,
    port: u16,
    protocol: u8,
    scheduler: &'static str,
    persistence_s: u64,
    granularity: Option<u8>,
    kind: ProbeKind,
    check: (u64, u64, u64, u64),
}

fn instance_text(c: &mut String, i: &InstDraw, d: DirInst) {
    let _ = writeln!(c, "vrrp_instance {} {{", i.name);
    let _ = writeln!(
        c,
        "    state {}\n    interface eth0\n    virtual_router_id {}",
        if d.state_master { "MASTER" } else { "BACKUP" },
        i.vrid
    );
    let _ = writeln!(
        c,
        "    priority {}\n    version {}\n    advert_int {}",
        d.priority, i.version, i.advert_s
    );
    if d.nopreempt {
        let _ = writeln!(c, "    nopreempt");
    }
    if d.preempt_delay_s > 0 {
        let _ = writeln!(c, "    preempt_delay {}", d.preempt_delay_s);
    }
    if i.version == 2 {
        let _ = writeln!(
            c,
            "    authentication {{\n        auth_type PASS\n        auth_pass 1111\n    }}"
        );
    }
    let _ = writeln!(
        c,
        "    virtual_ipaddress {{\n        {}\n    }}\n}}",
        addr_text(i.vip)
    );
}

fn service_text(c: &mut String, s: &SvcDraw, servers: &[(Vec<IpAddr>, u32)]) {
    let (delay_loop, timeout, retry, dbr) = s.check;
    let _ = writeln!(c, "virtual_server {} {} {{", addr_text(s.vip), s.port);
    let _ = writeln!(
        c,
        "    delay_loop {delay_loop}\n    lb_algo {}\n    lb_kind DR",
        s.scheduler
    );
    if s.persistence_s > 0 {
        let _ = writeln!(c, "    persistence_timeout {}", s.persistence_s);
    }
    if let Some(g) = s.granularity {
        let _ = writeln!(c, "    persistence_granularity {g}");
    }
    let _ = writeln!(
        c,
        "    protocol {}",
        if s.protocol == 17 { "UDP" } else { "TCP" }
    );
    for (addrs, weight) in servers {
        let Some(addr) = addrs.iter().find(|a| a.is_ipv6() == s.vip.is_ipv6()) else {
            continue;
        };
        let _ = writeln!(
            c,
            "    real_server {} {} {{\n        weight {weight}",
            addr_text(*addr),
            s.port
        );
        let common = format!(
            "            connect_timeout {timeout}\n            retry {retry}\n            delay_before_retry {dbr}"
        );
        match s.kind {
            ProbeKind::Tcp => {
                let _ = writeln!(
                    c,
                    "        TCP_CHECK {{\n            connect_port {}\n{common}\n        }}",
                    s.port
                );
            }
            ProbeKind::Http => {
                let _ = writeln!(
                    c,
                    "        HTTP_GET {{\n            url {{\n                path /health\n                status_code 200\n            }}\n            connect_port {}\n{common}\n        }}",
                    s.port
                );
            }
            ProbeKind::Misc => {
                let _ = writeln!(
                    c,
                    "        MISC_CHECK {{\n            misc_path \"/usr/local/bin/check_web {addr}\"\n            misc_timeout {timeout}\n            retry {retry}\n            delay_before_retry {dbr}\n        }}"
                );
            }
        }
        let _ = writeln!(c, "    }}");
    }
    let _ = writeln!(c, "}}");
}

/// Draws link behaviour: latency always, the rest when `faulty`.
fn draw_link(r: &mut Prng, faulty: [bool; 3]) -> LinkParams {
    // Latency spans a LAN's tens of microseconds to a stretched
    // segment's milliseconds.
    let latency_us = [20, 100, 300, 1_000, 3_000][r.below(5) as usize];
    let mut link = LinkParams {
        latency_us,
        ..LinkParams::default()
    };
    if faulty[0] {
        link.loss_ppm = r.range_inclusive(0, 20_000) as u32;
    }
    if faulty[1] {
        link.dup_ppm = r.range_inclusive(0, 20_000) as u32;
    }
    if faulty[2] {
        link.jitter_us = r.range_inclusive(0, 5_000);
    }
    link
}

/// An upper bound on any instance's Master_Down_Interval in `view`: three
/// intervals plus a Skew_Time, which is at most one interval (RFC 9568
/// scales it by the interval; RFC 3768's is under 1 s, its least interval).
pub fn max_mdi_us(view: &ConfigView) -> u64 {
    view.instances
        .iter()
        .map(|i| 3 * u64::from(i.advert_cs) * 10_000 + u64::from(i.advert_cs) * 10_000)
        .max()
        .unwrap_or(0)
}

/// The longest any check of `view` may take to see a server down.
pub fn max_check_us(view: &ConfigView) -> u64 {
    view.services
        .iter()
        .flat_map(|s| s.reals.iter())
        .flat_map(|r| r.checks.iter())
        .map(|c| c.down_bound_us())
        .max()
        .unwrap_or(0)
}

/// How long after healing everything has settled: two election rounds,
/// one check cycle, and the hosts' neighbour caches timing out (a master
/// that survived a split need not announce itself again, as keepalived
/// without garp_master_refresh).
pub fn settle_us(view: &ConfigView) -> u64 {
    2 * max_mdi_us(view) + max_check_us(view) + crate::client::ARP_TTL_US + 10_000_000
}

/// How long the liveness burst's flows last, and how long after it the
/// run ends.
pub const BURST_US: u64 = 12_000_000;

impl Scenario {
    /// The seed document's story for `text` (named `file` in errors):
    /// both directors run it unchanged (so a priority tie is broken by
    /// address), or, with `lower`, the second one's instances run at a
    /// priority ten lower and start as BACKUP (the parsed values changed,
    /// not the text). The master crashes at 60 s and comes back at 180 s;
    /// the first real server refuses from 120 s to 150 s. The hosts, VIPs,
    /// services, real servers and checks come from the file; what the
    /// simulator cannot do (fwmark, SCTP, more than two unicast
    /// directors) is refused, naming the line.
    pub fn demo(
        file: &str,
        text: &str,
        lower: bool,
        seed: u64,
        duration_us: u64,
        clients: usize,
    ) -> Result<Scenario, String> {
        let view = topology::view(file, text)?;
        let mut notes = Vec::new();
        if clients * 3 > MAX_CLIENT_ADDRS {
            return Err(format!(
                "{clients} clients need {} addresses; the simulator has {} (at most {} clients)",
                clients * 3,
                MAX_CLIENT_ADDRS,
                MAX_CLIENT_ADDRS / 3
            ));
        }
        if view.instances.is_empty() {
            return Err(format!(
                "{file}: no vrrp_instance: the demo's story is a failover between two VRRP directors"
            ));
        }
        if let Some((mark, line)) = view.fwmark_services.first() {
            return Err(format!(
                "{file}:{line}: virtual_server fwmark {mark} is not simulated: the marks come from firewall rules outside keepalived.conf, so the simulator cannot know which packets carry them (give the service as an address and port)"
            ));
        }
        if let Some(line) = view.sctp_services.first() {
            return Err(format!(
                "{file}:{line}: protocol SCTP is not simulated (TCP and UDP clients only)"
            ));
        }
        if let Some((name, line)) = view.missing_groups.first() {
            return Err(format!(
                "{file}:{line}: virtual_server group {name}: no virtual_server_group of that name"
            ));
        }
        let mut view = view;
        let held = |vip: &IpAddr, v: &ConfigView| v.instances.iter().any(|i| i.vips.contains(vip));
        let mut kept = Vec::new();
        let mut left_out = None;
        for s in std::mem::take(&mut view.services) {
            if !held(&s.vip, &view) && !s.anycast {
                notes.push(format!(
                    "{file}:{}: virtual_server {} {} left out: no vrrp_instance holds {} in its virtual_ipaddress, so clients could not reach it here",
                    s.line, s.vip, s.port, s.vip
                ));
                left_out.get_or_insert(format!(
                    "{file}:{}: virtual_server {} {}: no vrrp_instance holds {} in its virtual_ipaddress, so clients could never reach it",
                    s.line, s.vip, s.port, s.vip
                ));
                continue;
            }
            kept.push(s);
        }
        view.services = kept;
        if let Some(first) = left_out.filter(|_| view.services.is_empty()) {
            return Err(first);
        }
        if view.services.is_empty() {
            return Err(format!(
                "{file}: no virtual_server with an address and port: the demo needs real servers to balance (this looks like a VRRP-only configuration)"
            ));
        }
        for s in &view.services {
            if s.reals.is_empty() {
                return Err(format!(
                    "{file}:{}: virtual_server {} {} has no real_server",
                    s.line, s.vip, s.port
                ));
            }
            if s.kind != ForwardKind::Dr {
                notes.push(format!(
                    "{file}:{}: lb_kind {:?} simulated as DR (vrlb's data plane forwards DR only)",
                    s.line, s.kind
                ));
            }
        }
        for name in &view.scripts {
            notes.push(format!(
                "vrrp_script {name} is not run: the simulator reports it succeeding"
            ));
        }
        if !lower && let Some(i) = view.instances.iter().find(|i| i.priority == 255) {
            return Err(format!(
                "{file}:{}: vrrp_instance {} has priority 255: run literally on both directors, both would own VRID {}'s addresses (only the lower-priority variant is meaningful)",
                i.line, i.name, i.vrid
            ));
        }

        // Director addresses: from unicast settings when the file has
        // them, else two free addresses beside the first IPv4 VIP (the seed
        // document's .210 and .211).
        let used: Vec<IpAddr> = view
            .instances
            .iter()
            .flat_map(|i| i.vips.iter().copied())
            .chain(view.services.iter().map(|s| s.vip))
            .chain(
                view.services
                    .iter()
                    .flat_map(|s| s.reals.iter().map(|r| r.addr)),
            )
            .collect();
        let unicast: Vec<&topology::InstanceView> = view
            .instances
            .iter()
            .filter(|i| !i.unicast_peers.is_empty())
            .collect();
        let mut addrs: Vec<Ipv4Addr> = Vec::new();
        if let Some(first) = unicast.first() {
            if first.unicast_peers.len() > 1 {
                return Err(format!(
                    "{file}:{}: vrrp_instance {} lists {} unicast_peer addresses: the demo runs two directors",
                    first.line,
                    first.name,
                    first.unicast_peers.len()
                ));
            }
            for i in &unicast {
                if i.unicast_peers != first.unicast_peers || i.unicast_src != first.unicast_src {
                    return Err(format!(
                        "{file}:{}: vrrp_instance {} has unicast settings unlike {}'s: the demo runs one pair of directors",
                        i.line, i.name, first.name
                    ));
                }
            }
            let peer = first.unicast_peers[0];
            let (IpAddr::V4(peer), true) = (peer, first.unicast_src.is_none_or(|a| a.is_ipv4()))
            else {
                return Err(format!(
                    "{file}:{}: unicast_peer over IPv6 is not simulated",
                    first.line
                ));
            };
            let src = first
                .unicast_src
                .and_then(crate::frame::v4)
                .unwrap_or_else(|| {
                    let o = peer.octets();
                    Ipv4Addr::new(o[0], o[1], o[2], if o[3] == 210 { 211 } else { 210 })
                });
            addrs.push(src);
            addrs.push(peer);
        } else {
            let base = view
                .instances
                .iter()
                .flat_map(|i| i.vips.iter())
                .find_map(|a| crate::frame::v4(*a))
                .unwrap_or(Ipv4Addr::new(192, 0, 2, 240));
            let o = base.octets();
            let mut last = 210u8;
            while addrs.len() < 2 {
                let a = Ipv4Addr::new(o[0], o[1], o[2], last);
                if !used.contains(&IpAddr::V4(a)) {
                    addrs.push(a);
                }
                last = if last >= 254 { 2 } else { last + 1 };
            }
        }
        let mut directors: Vec<DirectorSpec> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| director(i, *a, text.to_string()))
            .collect();
        for inst in &view.instances {
            let mut o = Override {
                instance: inst.name.clone(),
                priority: None,
                backup: false,
                unicast: None,
            };
            if !inst.unicast_peers.is_empty() {
                o.unicast = Some((IpAddr::V4(addrs[1]), vec![IpAddr::V4(addrs[0])]));
            }
            if lower {
                o.priority = Some(inst.priority.saturating_sub(10).max(1));
                o.backup = true;
            }
            if o.priority.is_some() || o.unicast.is_some() {
                directors[1].overrides.push(o);
            }
        }

        // Real servers: one host per address.
        let mut servers: Vec<Vec<IpAddr>> = Vec::new();
        for s in &view.services {
            for r in &s.reals {
                if !servers.iter().any(|h| h.contains(&r.addr)) {
                    servers.push(vec![r.addr]);
                }
            }
        }
        let s = |t: u64| t * 1_000_000;
        let mut actions = vec![
            (s(60), Action::CrashMaster),
            (s(120), Action::Server(0, Mode::Refuse)),
            (s(150), Action::Server(0, Mode::Answer)),
            (s(180), Action::RestartCrashed),
        ];
        actions.retain(|(t, _)| *t < duration_us);
        Ok(Scenario {
            seed,
            directors,
            servers,
            view,
            traffic: Traffic {
                clients,
                addrs_per_client: 3,
                flow_every_us: 2_000_000,
                long_ppm: 100_000,
                long_packets: 60,
                long_gap_us: 1_000_000,
            },
            link: LinkParams::default(),
            actions,
            duration_us,
            heal_at_us: duration_us,
            late_start: None,
            ecmp: None,
            replay: format!("demo --seed {seed} --duration {}", duration_us / 1_000_000),
            notes,
            connections: CONNECTIONS,
        })
    }

    /// `directors` directors, active together behind an ECMP router with
    /// `hash`, each running the same anycast service with `scheduler` over
    /// four real servers; twenty clients with long-lived flows; director 1
    /// crashes at 60 s and returns at 120 s, director 0 stops gracefully at
    /// 180 s and returns at 240 s. Only `mh` keeps flows that the router
    /// moves on their server.
    pub fn ecmp(seed: u64, directors: usize, hash: EcmpHash, scheduler: &str) -> Scenario {
        let s = |t: u64| t * 1_000_000;
        let mut scenario = Self::ecmp_cluster(seed, directors, hash, scheduler, 4);
        scenario.actions = vec![
            (s(60), Action::Crash(1 % directors)),
            (s(120), Action::Start(1 % directors)),
            (s(180), Action::Stop(0)),
            (s(240), Action::Start(0)),
        ];
        scenario.replay = format!(
            "run --scenario ecmp --seed {seed} --directors {directors} --hash {} --scheduler {scheduler}",
            hash.name()
        );
        scenario
    }

    fn ecmp_cluster(
        seed: u64,
        directors: usize,
        hash: EcmpHash,
        scheduler: &str,
        n_srv: usize,
    ) -> Scenario {
        let vip = Ipv4Addr::new(192, 0, 2, 240);
        let mut c = String::new();
        let _ = writeln!(
            c,
            "virtual_server {vip} 80 {{\n    delay_loop 2\n    lb_algo {scheduler}\n    lb_kind DR\n    protocol TCP\n    anycast",
        );
        let addrs: Vec<Ipv4Addr> = (0..n_srv)
            .map(|i| Ipv4Addr::new(192, 0, 2, 100 + i as u8))
            .collect();
        for a in &addrs {
            let _ = writeln!(
                c,
                "    real_server {a} 80 {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }}\n    }}"
            );
        }
        let _ = writeln!(c, "}}");
        let view = topology::view("ecmp", &c).expect("the ECMP configuration parses");
        let s = |t: u64| t * 1_000_000;
        Scenario {
            seed,
            directors: (0..directors)
                .map(|i| director(i, Ipv4Addr::new(192, 0, 2, 10 + i as u8), c.clone()))
                .collect(),
            servers: addrs.iter().map(|a| vec![IpAddr::V4(*a)]).collect(),
            view,
            traffic: Traffic {
                clients: 20,
                addrs_per_client: 4,
                flow_every_us: 3_000_000,
                long_ppm: 600_000,
                long_packets: 120,
                long_gap_us: 1_000_000,
            },
            link: LinkParams::default(),
            actions: Vec::new(),
            duration_us: s(300),
            heal_at_us: s(300),
            late_start: None,
            ecmp: Some(Ecmp {
                hash,
                withdraw_delay_us: 3_000_000,
            }),
            replay: String::new(),
            notes: Vec::new(),
            connections: CONNECTIONS,
        }
    }

    /// Adds a server set change while ECMP moves flows: `server` fails just
    /// before director 1 crashes and answers again just before it returns,
    /// so moved flows meet Maglev tables that differ from their first one.
    pub fn fail_server_during_moves(&mut self, server: usize) {
        self.actions
            .push((58_000_000, Action::Server(server, Mode::Refuse)));
        self.actions
            .push((118_000_000, Action::Server(server, Mode::Answer)));
        self.actions.sort_by_key(|(t, _)| *t);
    }

    /// A swarm seed's ECMP cluster: two to four directors, either hash,
    /// `mh`, with random crashes, stops, failing servers and a lossy link,
    /// then a liveness phase.
    fn swarm_ecmp(seed: u64) -> Scenario {
        let mut r = Prng::new(seed ^ 0x0ec0_0ec0);
        let n_dir = r.range_inclusive(2, 4) as usize;
        let hash = if r.chance_ppm(500_000) {
            EcmpHash::Threshold
        } else {
            EcmpHash::Modulo
        };
        let mut s = Self::ecmp_cluster(seed, n_dir, hash, "mh", r.range_inclusive(2, 4) as usize);
        let lossy = [
            r.chance_ppm(300_000),
            r.chance_ppm(300_000),
            r.chance_ppm(300_000),
        ];
        s.link = draw_link(&mut r, lossy);
        let safety = r.range_inclusive(60, 150) * 1_000_000;
        for _ in 0..r.range_inclusive(1, 5) {
            let d = r.below(n_dir as u64) as usize;
            let t = r.range_inclusive(5_000_000, safety - 25_000_000);
            let back = t + r.range_inclusive(2, 20) * 1_000_000;
            match r.below(3) {
                0 => s
                    .actions
                    .extend([(t, Action::Crash(d)), (back, Action::Start(d))]),
                1 => s
                    .actions
                    .extend([(t, Action::Stop(d)), (back, Action::Start(d))]),
                _ => {
                    let srv = r.below(s.servers.len() as u64) as usize;
                    s.actions.extend([
                        (t, Action::Server(srv, Mode::Refuse)),
                        (back, Action::Server(srv, Mode::Answer)),
                    ]);
                }
            }
        }
        s.traffic.clients = r.range_inclusive(4, 12) as usize;
        s.actions.push((safety, Action::Heal));
        let burst = safety + settle_us(&s.view);
        s.actions.push((burst, Action::Burst));
        s.actions.sort_by_key(|a| a.0);
        s.heal_at_us = safety;
        s.duration_us = burst + BURST_US + 3_000_000;
        s.replay = format!("run --seed {seed}");
        s
    }

    /// A random cluster, configuration and fault plan drawn from `seed`:
    /// one to three VRRP instances (IPv4, and IPv6 over VRRPv3), TCP and
    /// UDP services with drawn schedulers, persistence and checkers, and
    /// the faults; about half the seeds run connection sync
    /// ([`swarm_syncs`]) and some are ECMP clusters ([`swarm_is_ecmp`]).
    pub fn swarm(seed: u64) -> Scenario {
        if swarm_is_ecmp(seed) {
            return Self::swarm_ecmp(seed);
        }
        let sync = swarm_syncs(seed);
        let mut r = Prng::new(seed);
        let n_dir = if r.chance_ppm(200_000) { 3 } else { 2 };
        let v4_version = if r.chance_ppm(500_000) { 2 } else { 3 };
        let advert_s = if v4_version == 2 {
            1.0
        } else {
            [0.1, 0.2, 0.5, 1.0][r.below(4) as usize]
        };
        let vip = |last: u8| IpAddr::V4(Ipv4Addr::new(192, 0, 2, last));
        let vip6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x240));
        let mut instances = vec![InstDraw {
            name: "VI_1",
            vrid: 51,
            vip: vip(240),
            version: v4_version,
            advert_s,
        }];
        if r.chance_ppm(250_000) {
            instances.push(InstDraw {
                name: "VI_2",
                vrid: 52,
                vip: vip(241),
                version: v4_version,
                advert_s,
            });
        }
        if r.chance_ppm(250_000) {
            // The same VRID as VI_1 in the other family: a different
            // virtual router (RFC 9568 5.2.3).
            instances.push(InstDraw {
                name: "VI_6",
                vrid: if r.chance_ppm(500_000) { 51 } else { 53 },
                vip: vip6,
                version: 3,
                advert_s: if v4_version == 3 { advert_s } else { 1.0 },
            });
        }
        let n_srv = r.range_inclusive(2, 4) as usize;
        let servers: Vec<(Vec<IpAddr>, u32)> = (0..n_srv)
            .map(|i| {
                (
                    vec![
                        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100 + i as u8)),
                        IpAddr::V6(Ipv6Addr::new(
                            0x2001,
                            0xdb8,
                            0,
                            0,
                            0,
                            0,
                            0,
                            0x100 + i as u16,
                        )),
                    ],
                    r.range_inclusive(1, 5) as u32,
                )
            })
            .collect();
        // Services: one per VIP, and sometimes a second protocol on the
        // first, so TCP and UDP clients share a run.
        let mut services = Vec::new();
        let first_udp = r.chance_ppm(150_000);
        let mut draw_service = |r: &mut Prng, vip: IpAddr, port: u16, protocol: u8| {
            let scheduler = SCHEDULERS[r.below(SCHEDULERS.len() as u64) as usize];
            let persistence_s = if r.chance_ppm(500_000) {
                r.range_inclusive(10, 40)
            } else {
                0
            };
            // Granularity only where the scheduler spreads by counting (the
            // liveness burst needs many distinct persistence keys to reach
            // every server through a hashing scheduler).
            let hashing = matches!(scheduler, "sh" | "dh" | "mh");
            let granularity = (persistence_s > 0 && !hashing && r.chance_ppm(400_000)).then(|| {
                let extra = r.range_inclusive(1, 3) as u8;
                if vip.is_ipv6() {
                    128 - extra
                } else {
                    32 - extra
                }
            });
            let kind = match r.below(20) {
                0..=11 => ProbeKind::Tcp,
                12..=16 => ProbeKind::Http,
                _ => ProbeKind::Misc,
            };
            let check = (
                r.range_inclusive(2, 6),
                r.range_inclusive(1, 3),
                r.range_inclusive(0, 3),
                r.range_inclusive(1, 3),
            );
            services.push(SvcDraw {
                vip,
                port,
                protocol,
                scheduler,
                persistence_s,
                granularity,
                kind,
                check,
            });
        };
        for (k, i) in instances.iter().enumerate() {
            let protocol = if k == 0 && first_udp { 17 } else { 6 };
            draw_service(&mut r, i.vip, 80, protocol);
        }
        if r.chance_ppm(300_000) {
            let other = if first_udp { 6 } else { 17 };
            draw_service(&mut r, instances[0].vip, 53, other);
        }
        let equal = r.chance_ppm(300_000);
        let owner = !equal && r.chance_ppm(150_000);
        let all_master = r.chance_ppm(500_000);
        let mut texts = vec![String::new(); n_dir];
        for inst in &instances {
            for (i, text) in texts.iter_mut().enumerate() {
                let priority = if equal {
                    100
                } else if owner && i == 0 {
                    255
                } else {
                    r.range_inclusive(50, 200) as u8
                };
                let nopreempt = priority != 255 && r.chance_ppm(150_000);
                let preempt_delay_s = if !nopreempt && r.chance_ppm(100_000) {
                    r.range_inclusive(2, 8)
                } else {
                    0
                };
                instance_text(
                    text,
                    inst,
                    DirInst {
                        priority,
                        state_master: all_master,
                        nopreempt,
                        preempt_delay_s,
                    },
                );
            }
        }
        let mut svc_text = String::new();
        for s in &services {
            service_text(&mut svc_text, s, &servers);
        }
        // Short UDP timeouts (keepalived's lvs_timeouts) let UDP
        // connections end while their clients come back: then only a
        // refreshed persistence template remembers the client.
        let udp_timeout = (services.iter().any(|s| s.protocol == 17) && r.chance_ppm(400_000))
            .then(|| r.range_inclusive(3, 10));
        let directors: Vec<DirectorSpec> = texts
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let mut text = t + &svc_text;
                if let Some(udp) = udp_timeout {
                    text = format!("global_defs {{\n    lvs_timeouts udp {udp}\n}}\n{text}");
                }
                if sync {
                    text = with_lvs_sync_daemon(&text, "VI_1");
                }
                director(i, Ipv4Addr::new(192, 0, 2, 10 + i as u8), text)
            })
            .collect();
        let view = topology::view("swarm", &directors[0].config)
            .expect("the swarm's configurations parse");

        // Which faults this seed exercises, and how often.
        let faults_on = |r: &mut Prng| r.chance_ppm(450_000);
        let safety_us = r.range_inclusive(60, 150) * 1_000_000;
        let mut actions = Vec::new();
        let lossy = [faults_on(&mut r), faults_on(&mut r), faults_on(&mut r)];
        let link = draw_link(&mut r, lossy);
        let at = |r: &mut Prng| r.range_inclusive(5_000_000, safety_us.saturating_sub(10_000_000));
        let clients = r.range_inclusive(2, 8) as usize;
        // Ports: directors, servers, then clients (the flood and burst
        // hosts after them never move).
        let ports = n_dir + n_srv + clients;
        let events = r.range_inclusive(1, 6);
        let crash = faults_on(&mut r);
        let stop = faults_on(&mut r);
        let pause = faults_on(&mut r);
        let drift = faults_on(&mut r);
        let server_faults = faults_on(&mut r);
        let partition = faults_on(&mut r);
        let oneway = faults_on(&mut r);
        let link_changes = faults_on(&mut r);
        for _ in 0..events {
            let d = r.below(n_dir as u64) as usize;
            let t = at(&mut r);
            if crash && r.chance_ppm(500_000) {
                actions.push((t, Action::Crash(d)));
                actions.push((t + r.range_inclusive(1, 20) * 1_000_000, Action::Start(d)));
            }
            if stop && r.chance_ppm(500_000) {
                actions.push((t, Action::Stop(d)));
                actions.push((t + r.range_inclusive(2, 20) * 1_000_000, Action::Start(d)));
            }
            if pause && r.chance_ppm(300_000) {
                actions.push((t, Action::Pause(d, r.range_inclusive(100_000, 8_000_000))));
            }
            if drift && r.chance_ppm(300_000) {
                actions.push((
                    t,
                    Action::Drift(d, r.range_inclusive(0, 2_000) as i64 - 1_000),
                ));
            }
            if server_faults && r.chance_ppm(600_000) {
                let s = r.below(n_srv as u64) as usize;
                let mode = match r.below(4) {
                    0 => Mode::Refuse,
                    1 => Mode::Hang,
                    2 => Mode::BadStatus,
                    _ => Mode::Slow(r.range_inclusive(10_000, 4_000_000)),
                };
                actions.push((t, Action::Server(s, mode)));
                actions.push((
                    t + r.range_inclusive(5, 40) * 1_000_000,
                    Action::Server(s, Mode::Answer),
                ));
            }
            if partition && r.chance_ppm(300_000) {
                // Any host: a director, a real server or a client.
                let p = r.below(ports as u64) as usize;
                actions.push((t, Action::Partition(p, 1)));
                actions.push((
                    t + r.range_inclusive(2, 20) * 1_000_000,
                    Action::Partition(p, 0),
                ));
            }
            if oneway && r.chance_ppm(200_000) {
                let a = r.below(n_dir as u64) as usize;
                let b = (a + 1) % n_dir;
                actions.push((t, Action::Block(a, b, true)));
                actions.push((
                    t + r.range_inclusive(2, 20) * 1_000_000,
                    Action::Block(a, b, false),
                ));
            }
            if link_changes && r.chance_ppm(300_000) {
                let faulty = [
                    r.chance_ppm(500_000),
                    r.chance_ppm(500_000),
                    r.chance_ppm(500_000),
                ];
                actions.push((t, Action::Link(draw_link(&mut r, faulty))));
            }
        }
        // A flood that fills the directors' connection tables (4096 slots):
        // early enough that its half-open entries (SYN_RECV, 60 s) are gone
        // before the liveness phase.
        let tcp = view.services.iter().position(|s| s.protocol == 6);
        if let Some(service) = tcp
            && safety_us >= 90_000_000
            && r.chance_ppm(150_000)
        {
            let t = r.range_inclusive(5_000_000, safety_us - 80_000_000);
            actions.push((t, Action::Flood(service, 6_000, 4_000_000)));
        }
        actions.push((safety_us, Action::Heal));
        let burst_at = safety_us + settle_us(&view);
        actions.push((burst_at, Action::Burst));
        actions.sort_by_key(|a| a.0);
        let late_start = r.chance_ppm(200_000).then(|| {
            (
                r.below(n_dir as u64) as usize,
                r.range_inclusive(1, 10) * 1_000_000,
            )
        });
        Scenario {
            seed,
            directors,
            servers: servers.into_iter().map(|s| s.0).collect(),
            view,
            traffic: Traffic {
                clients,
                addrs_per_client: r.range_inclusive(1, 4) as usize,
                flow_every_us: r.range_inclusive(500_000, 3_000_000),
                long_ppm: r.range_inclusive(0, 300_000) as u32,
                long_packets: r.range_inclusive(5, 40) as u32,
                long_gap_us: r.range_inclusive(200_000, 2_000_000),
            },
            link,
            actions,
            duration_us: burst_at + BURST_US + 3_000_000,
            heal_at_us: safety_us,
            late_start,
            ecmp: None,
            replay: format!("run --seed {seed}"),
            notes: Vec::new(),
            connections: CONNECTIONS,
        }
    }
}
