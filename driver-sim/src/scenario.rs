//! What a run simulates: the topology, each director's keepalived.conf, the
//! traffic, and the faults, as a plain description. [`Scenario::swarm`]
//! draws one from a seed (which faults are on, and how often, included);
//! [`Scenario::seed_demo`] is the seed document's setup.

use std::fmt::Write;
use std::net::Ipv4Addr;

use vrlb_core::rand::Prng;

use crate::segment::LinkParams;
use crate::server::Mode;

/// A fault or repair at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A director dies (no goodbye).
    Crash(usize),
    /// A crashed or stopped director starts again.
    Start(usize),
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
    /// Everything heals: the liveness phase starts.
    Heal,
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
    /// Addresses per client.
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

/// A whole run.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The seed everything random derives from.
    pub seed: u64,
    /// Each director's address and keepalived.conf.
    pub directors: Vec<(Ipv4Addr, String)>,
    /// Each real server's address.
    pub servers: Vec<Ipv4Addr>,
    /// The virtual service.
    pub vip: (Ipv4Addr, u16),
    /// 6 or 17.
    pub protocol: u8,
    /// Persistence timeout of the service (0: none).
    pub persistence_s: u64,
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
/// the rest of each seed's scenario is what it was before sync existed.
pub fn swarm_syncs(seed: u64) -> bool {
    Prng::new(seed ^ 0x5359_4e43_5359_4e43).chance_ppm(500_000)
}

/// keepalived.conf for one simulated director.
#[allow(clippy::too_many_arguments)]
fn config(
    version: u8,
    advert_s: f64,
    priority: u8,
    state_master: bool,
    nopreempt: bool,
    preempt_delay_s: u64,
    vip: (Ipv4Addr, u16),
    scheduler: &str,
    persistence_s: u64,
    protocol: u8,
    servers: &[(Ipv4Addr, u32)],
    check: (u64, u64, u64, u64),
) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "vrrp_instance VI_1 {{");
    let _ = writeln!(
        c,
        "    state {}",
        if state_master { "MASTER" } else { "BACKUP" }
    );
    let _ = writeln!(c, "    interface eth0\n    virtual_router_id 51");
    let _ = writeln!(
        c,
        "    priority {priority}\n    version {version}\n    advert_int {advert_s}"
    );
    if nopreempt {
        let _ = writeln!(c, "    nopreempt");
    }
    if preempt_delay_s > 0 {
        let _ = writeln!(c, "    preempt_delay {preempt_delay_s}");
    }
    if version == 2 {
        let _ = writeln!(
            c,
            "    authentication {{\n        auth_type PASS\n        auth_pass 1111\n    }}"
        );
    }
    let _ = writeln!(c, "    virtual_ipaddress {{\n        {}\n    }}\n}}", vip.0);
    let _ = writeln!(c, "virtual_server {} {} {{", vip.0, vip.1);
    let (delay_loop, timeout, retry, dbr) = check;
    let _ = writeln!(
        c,
        "    delay_loop {delay_loop}\n    lb_algo {scheduler}\n    lb_kind DR"
    );
    if persistence_s > 0 {
        let _ = writeln!(c, "    persistence_timeout {persistence_s}");
    }
    let _ = writeln!(
        c,
        "    protocol {}",
        if protocol == 17 { "UDP" } else { "TCP" }
    );
    for (addr, weight) in servers {
        let _ = writeln!(
            c,
            "    real_server {addr} {} {{\n        weight {weight}",
            vip.1
        );
        let _ = writeln!(
            c,
            "        TCP_CHECK {{\n            connect_port {}\n            connect_timeout {timeout}\n            retry {retry}\n            delay_before_retry {dbr}\n        }}\n    }}",
            vip.1
        );
    }
    let _ = writeln!(c, "}}");
    c
}

impl Scenario {
    /// The seed document's setup: both directors run the seed's
    /// keepalived.conf unchanged (so the tie is broken by address) unless
    /// `backup_priority` lowers the second one's. The master crashes at
    /// 60 s and comes back at 180 s; real server 1 refuses from 120 s to
    /// 150 s.
    pub fn seed_demo(
        text: &str,
        backup_priority: Option<u8>,
        seed: u64,
        duration_us: u64,
        clients: usize,
    ) -> Scenario {
        let d0 = Ipv4Addr::new(192, 168, 2, 210);
        let d1 = Ipv4Addr::new(192, 168, 2, 211);
        let second = match backup_priority {
            Some(p) => text
                .replacen("priority 100", &format!("priority {p}"), 1)
                .replacen("state MASTER", "state BACKUP", 1),
            None => text.to_string(),
        };
        // With identical configs the greater address (.211) wins the tie.
        let master = if backup_priority.is_some() { 0 } else { 1 };
        let s = |t: u64| t * 1_000_000;
        let mut actions = vec![
            (s(60), Action::Crash(master)),
            (s(120), Action::Server(0, Mode::Refuse)),
            (s(150), Action::Server(0, Mode::Answer)),
            (s(180), Action::Start(master)),
        ];
        actions.retain(|(t, _)| *t < duration_us);
        Scenario {
            seed,
            directors: vec![(d0, text.to_string()), (d1, second)],
            servers: vec![
                Ipv4Addr::new(192, 168, 2, 212),
                Ipv4Addr::new(192, 168, 2, 213),
            ],
            vip: (Ipv4Addr::new(192, 168, 2, 240), 80),
            protocol: 6,
            persistence_s: 60,
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
        }
    }

    /// `directors` directors, active together behind an ECMP router with
    /// `hash`, each running the same anycast service with `scheduler` over
    /// four real servers; twenty clients with long-lived flows; director 1
    /// crashes at 60 s and returns at 120 s, director 0 stops gracefully at
    /// 180 s and returns at 240 s. Only `mh` keeps flows that the router
    /// moves on their server.
    pub fn ecmp(seed: u64, directors: usize, hash: EcmpHash, scheduler: &str) -> Scenario {
        let vip = (Ipv4Addr::new(192, 0, 2, 240), 80);
        let mut c = String::new();
        let _ = writeln!(
            c,
            "virtual_server {} {} {{\n    delay_loop 2\n    lb_algo {scheduler}\n    lb_kind DR\n    protocol TCP\n    anycast",
            vip.0, vip.1
        );
        let addrs: Vec<Ipv4Addr> = (0..4).map(|i| Ipv4Addr::new(192, 0, 2, 100 + i)).collect();
        for a in &addrs {
            let _ = writeln!(
                c,
                "    real_server {a} 80 {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }}\n    }}"
            );
        }
        let _ = writeln!(c, "}}");
        let s = |t: u64| t * 1_000_000;
        Scenario {
            seed,
            directors: (0..directors)
                .map(|i| (Ipv4Addr::new(192, 0, 2, 10 + i as u8), c.clone()))
                .collect(),
            servers: addrs,
            vip,
            protocol: 6,
            persistence_s: 0,
            traffic: Traffic {
                clients: 20,
                addrs_per_client: 4,
                flow_every_us: 3_000_000,
                long_ppm: 600_000,
                long_packets: 120,
                long_gap_us: 1_000_000,
            },
            link: LinkParams::default(),
            actions: vec![
                (s(60), Action::Crash(1 % directors)),
                (s(120), Action::Start(1 % directors)),
                (s(180), Action::Stop(0)),
                (s(240), Action::Start(0)),
            ],
            duration_us: s(300),
            heal_at_us: s(300),
            late_start: None,
            ecmp: Some(Ecmp {
                hash,
                withdraw_delay_us: 3_000_000,
            }),
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

    /// A random cluster, configuration and fault plan drawn from `seed`;
    /// about half the seeds run connection sync ([`swarm_syncs`]).
    pub fn swarm(seed: u64) -> Scenario {
        let sync = swarm_syncs(seed);
        let mut r = Prng::new(seed);
        let n_dir = if r.chance_ppm(200_000) { 3 } else { 2 };
        let version = if r.chance_ppm(500_000) { 2 } else { 3 };
        let advert_s = if version == 2 {
            1.0
        } else {
            [0.1, 0.2, 0.5, 1.0][r.below(4) as usize]
        };
        let vip = (Ipv4Addr::new(192, 0, 2, 240), 80);
        let protocol = if r.chance_ppm(150_000) { 17 } else { 6 };
        let n_srv = r.range_inclusive(2, 4) as usize;
        let servers: Vec<(Ipv4Addr, u32)> = (0..n_srv)
            .map(|i| {
                (
                    Ipv4Addr::new(192, 0, 2, 100 + i as u8),
                    r.range_inclusive(1, 5) as u32,
                )
            })
            .collect();
        let scheduler = SCHEDULERS[r.below(SCHEDULERS.len() as u64) as usize];
        let persistence_s = if r.chance_ppm(500_000) {
            r.range_inclusive(10, 40)
        } else {
            0
        };
        let check = (
            r.range_inclusive(2, 6),
            r.range_inclusive(1, 3),
            r.range_inclusive(0, 3),
            r.range_inclusive(1, 3),
        );
        let equal = r.chance_ppm(300_000);
        let owner = !equal && r.chance_ppm(150_000);
        let all_master = r.chance_ppm(500_000);
        let directors: Vec<(Ipv4Addr, String)> = (0..n_dir)
            .map(|i| {
                let priority = if equal {
                    100
                } else if owner && i == 0 {
                    255
                } else {
                    r.range_inclusive(50, 200) as u8
                };
                let nopreempt = priority != 255 && r.chance_ppm(150_000);
                let preempt_delay = if !nopreempt && r.chance_ppm(100_000) {
                    r.range_inclusive(2, 8)
                } else {
                    0
                };
                let addr = Ipv4Addr::new(192, 0, 2, 10 + i as u8);
                let text = config(
                    version,
                    advert_s,
                    priority,
                    all_master,
                    nopreempt,
                    preempt_delay,
                    vip,
                    scheduler,
                    persistence_s,
                    protocol,
                    &servers,
                    check,
                );
                let text = if sync {
                    with_lvs_sync_daemon(&text, "VI_1")
                } else {
                    text
                };
                (addr, text)
            })
            .collect();

        // Which faults this seed exercises, and how often.
        let faults_on = |r: &mut Prng| r.chance_ppm(450_000);
        let safety_us = r.range_inclusive(60, 150) * 1_000_000;
        let mut actions = Vec::new();
        let mut link = LinkParams::default();
        if faults_on(&mut r) {
            link.loss_ppm = r.range_inclusive(0, 20_000) as u32;
        }
        if faults_on(&mut r) {
            link.dup_ppm = r.range_inclusive(0, 20_000) as u32;
        }
        if faults_on(&mut r) {
            link.jitter_us = r.range_inclusive(0, 5_000);
        }
        let at = |r: &mut Prng| r.range_inclusive(5_000_000, safety_us.saturating_sub(10_000_000));
        let ports = n_dir + n_srv;
        let events = r.range_inclusive(1, 6);
        let crash = faults_on(&mut r);
        let stop = faults_on(&mut r);
        let pause = faults_on(&mut r);
        let drift = faults_on(&mut r);
        let server_faults = faults_on(&mut r);
        let partition = faults_on(&mut r);
        let oneway = faults_on(&mut r);
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
                let mode = match r.below(3) {
                    0 => Mode::Refuse,
                    1 => Mode::Hang,
                    _ => Mode::Slow(r.range_inclusive(10_000, 4_000_000)),
                };
                actions.push((t, Action::Server(s, mode)));
                actions.push((
                    t + r.range_inclusive(5, 40) * 1_000_000,
                    Action::Server(s, Mode::Answer),
                ));
            }
            if partition && r.chance_ppm(300_000) {
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
        }
        actions.push((safety_us, Action::Heal));
        actions.sort_by_key(|a| a.0);
        let late_start = r.chance_ppm(200_000).then(|| {
            (
                r.below(n_dir as u64) as usize,
                r.range_inclusive(1, 10) * 1_000_000,
            )
        });
        // Long enough after healing for restarts, elections and checks to settle.
        let liveness_us = 75_000_000 + 3 * check.0 * 1_000_000;
        Scenario {
            seed,
            directors,
            servers: servers.iter().map(|s| s.0).collect(),
            vip,
            protocol,
            persistence_s,
            traffic: Traffic {
                clients: r.range_inclusive(2, 8) as usize,
                addrs_per_client: r.range_inclusive(1, 4) as usize,
                flow_every_us: r.range_inclusive(500_000, 3_000_000),
                long_ppm: r.range_inclusive(0, 300_000) as u32,
                long_packets: r.range_inclusive(5, 40) as u32,
                long_gap_us: r.range_inclusive(200_000, 2_000_000),
            },
            link,
            actions,
            duration_us: safety_us + liveness_us,
            heal_at_us: safety_us,
            late_start,
            ecmp: None,
        }
    }
}
