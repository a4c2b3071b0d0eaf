//! The rules a correct cluster keeps, checked after every event. Each has
//! a stable name and exit code. Bounds are computed here from the
//! configuration with the RFCs' formulas and keepalived's documented check
//! semantics ([`crate::topology::CheckSpec::down_bound_us`]), independently
//! of the core, so a core that computes them wrongly is caught.
//!
//! VRRP rules hold per virtual router (VRID and address family), and
//! "connected" means both directions of the segment carry frames between
//! two directors.
//!
//! | code | name | rule |
//! |---|---|---|
//! | 10 | single_master | two connected masters of a virtual router never last longer than its Master_Down_Interval (plus slack) |
//! | 11 | failover_bound | an active director with no master it hears has one again within Master_Down_Interval (plus slack) |
//! | 12 | owner_wins | a live address owner (priority 255) is master |
//! | 13 | preemption_rules | no takeover from a live, heard master unless preempting a lower priority after preempt_delay (never with nopreempt); and a backup with preempt and a higher priority than the master it hears does take over within preempt_delay + advert interval + Master_Down_Interval |
//! | 14 | premature_takeover | a backup never declares the master down before Master_Down_Interval (Skew_Time after priority 0) of its own clock has passed since the last advert it accepted |
//! | 15 | graceful_handover | after a master stops gracefully, a backup takes over within its Skew_Time (plus latency) |
//! | 16 | flow_sticky | an established flow stays on its server while that server is up and the VIP holder is unchanged (a UDP flow silent at the director for its UDP timeout has no connection left to keep) |
//! | 17 | persistence_kept | a client's new flows go to its server within the persistence timeout, same conditions (services with persistence only; the key is the client's address under the granularity) |
//! | 18 | no_flow_to_down_server | no new flow goes to a server the director marked down |
//! | 19 | check_bound | a failed server is marked down within the bound its check parameters give |
//! | 20 | table_capacity | connection tables never exceed their capacity |
//! | 21 | liveness | after healing: one master per virtual router, the highest-priority director with preempt (or the owner) being it; every server up; every client served; every healthy server receiving new flows |
//! | 22 | synced_flow_kept | with connection sync, a director that received a flow's sync entry forwards the flow's packets (no SYN) to the entry's server, while that server is up and the entry lives: flows survive a failover |
//! | 23 | synced_flow_sent | with connection sync on a clean network (no loss, partition, crash, pause or change of VIP holder), a new flow's entry reaches every receiving peer within the flush interval |
//!
//! Under ECMP, a flow moved to another director keeps its server unless
//! the server set changed since it began, or the two directors list the
//! servers differently (a server that left and came back is listed first,
//! so directors with different histories differ): mh builds its table in
//! list order. Such moves are counted, not excused silently.
//!
//! A director that balances a service while it receives connection sync
//! for it (lvs_sync_daemon following another instance than the one
//! holding the service's VIP) has its choices overwritten by the sender's
//! entries, as IPVS applies what the master sends: moves after such an
//! entry are excused.
//!
//! Slack: the VRRP bounds allow twice the one-way latency plus jitter (an
//! advert in flight, and the answer to it), 2 ms for events at the same
//! instant, and 0.2% of the bound for two clocks drifting up to 1000 ppm
//! each (the swarm's limit). Nothing else: a paused director is not
//! active, so its stall excuses nothing it did not cause.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use vrlb_core::config::Scheduler;
use vrlb_core::vrrp::{self, Reason, State, Version};
use vrlb_core::wire::sync::{self as sync_wire, EntryKind};

use crate::client::Client;
use crate::director::{Director, ServerLoad, Vrid};
use crate::segment::Segment;
use crate::server::{Mode, Server};
use crate::topology::{CheckSpec, ProbeKind, ServiceView};

/// A broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule's name.
    pub name: &'static str,
    /// Its exit code.
    pub code: u8,
    /// What happened.
    pub detail: String,
    /// Sim time.
    pub at_us: u64,
}

impl Violation {
    fn new(name: &'static str, code: u8, detail: String, at_us: u64) -> Self {
        Violation {
            name,
            code,
            detail,
            at_us,
        }
    }

    /// The run exceeded its event budget (a storm): exit code 3.
    pub fn budget(detail: String, at_us: u64) -> Self {
        Violation::new("event_budget", 3, detail, at_us)
    }

    /// The scenario itself could not run (bad config): exit code 2.
    pub fn setup(detail: String, at_us: u64) -> Self {
        Violation::new("setup", 2, detail, at_us)
    }

    /// Whether this is a broken rule of the cluster (not a setup error or
    /// an exhausted event budget).
    pub fn is_invariant(&self) -> bool {
        self.code >= 10
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invariant {} (exit {}) at {:.6}s: {}",
            self.name,
            self.code,
            self.at_us as f64 / 1e6,
            self.detail
        )
    }
}

/// Skew_Time for `priority` under `c`, by the RFCs (RFC 3768 in seconds
/// for v2, RFC 9568 scaled by the interval for v3).
pub fn skew_us(c: &vrrp::Config, priority: u8) -> u64 {
    let weight = 256 - u64::from(priority);
    match c.version {
        Version::V2 => weight * 1_000_000 / 256,
        Version::V3 => weight * u64::from(c.advert_interval_cs) * 10_000 / 256,
    }
}

/// Master_Down_Interval of an instance with `priority`.
pub fn mdi_us(c: &vrrp::Config, priority: u8) -> u64 {
    u64::from(c.down_timer_adverts) * interval_us(c) + skew_us(c, priority)
}

/// The advertisement interval.
pub fn interval_us(c: &vrrp::Config) -> u64 {
    u64::from(c.advert_interval_cs) * 10_000
}

/// The slack on a VRRP bound of `bound_us` (see the module doc).
pub fn slack_us(seg: &Segment, bound_us: u64) -> u64 {
    2 * (seg.link.latency_us + seg.link.jitter_us) + 2_000 + bound_us / 500
}

/// `table_capacity`: a table of `cap` slots never holds more.
pub fn check_table(director: usize, used: u32, cap: u32, now: u64) -> Result<(), Violation> {
    if used > cap {
        return Err(Violation::new(
            "table_capacity",
            20,
            format!("director {director} tracks {used} connections, more than its {cap} slots"),
            now,
        ));
    }
    Ok(())
}

/// Whether a server in `mode` fails a check of `spec` on a link with this
/// one-way latency and jitter: `Some(true)` surely, `Some(false)` surely
/// not, `None` too close to its timeout to say.
pub fn fails_check(mode: Mode, spec: &CheckSpec, latency_us: u64, jitter_us: u64) -> Option<bool> {
    let round_trips = if spec.kind == ProbeKind::Http { 2 } else { 1 };
    match mode {
        Mode::Answer => Some(false),
        Mode::Refuse | Mode::Hang => Some(true),
        Mode::BadStatus => Some(match spec.kind {
            ProbeKind::Tcp => false,
            ProbeKind::Http => !spec.accepts(500),
            ProbeKind::Misc => true,
        }),
        Mode::Slow(us) => {
            let best = round_trips * (us + 2 * latency_us);
            let worst = best + round_trips * 2 * jitter_us;
            let margin = 10_000;
            if best > spec.timeout_us + margin {
                Some(true)
            } else if worst + margin < spec.timeout_us {
                Some(false)
            } else {
                None
            }
        }
    }
}

/// A connection a director learned from a peer's sync message.
#[derive(Debug, Clone, Copy)]
struct SyncedFlow {
    server: IpAddr,
    /// The scenario's service.
    service: Option<usize>,
    /// 6 or 17.
    protocol: u8,
    delivered_at: u64,
    /// Until when the entry surely lives on the receiver (its timeout less
    /// what clock drift can take off).
    valid_until: u64,
}

/// How long after a sender forwards a new flow every receiving peer must
/// have its entry on a clean network: the flush interval (the core's
/// default, IPVS's 2 s) plus latency and drift slack.
pub const SYNC_DUE_US: u64 = 2_000_000 + 250_000;

/// Drift allowance on a synced entry's timeout: 1000 ppm of the longest
/// IPVS timeout (15 min) plus a refresh window.
const SYNC_DRIFT_SLACK_US: u64 = 2_000_000;

#[derive(Debug, Clone, Copy, Default)]
struct Life {
    up_since: Option<u64>,
    /// The last pause: (start, end).
    pause: (u64, u64),
}

/// A new flow's sync entry that is due: (server, service, the sender's
/// rate-limited message count when the flow opened).
type SyncDue = (IpAddr, usize, u64);

/// The last flow of a persistence key: (server id, scheduled at, epoch,
/// tracked by the director, the director that scheduled it).
type LastFlow = (u32, u64, u64, bool, Option<usize>);

/// The invariants' memory.
#[derive(Debug)]
pub struct Invariants {
    /// Active-active directors behind ECMP: flows must survive a change of
    /// director (mh), so a director going down excuses no move.
    ecmp: bool,
    /// How long a UDP connection lives after its last datagram.
    udp_timeout_us: u64,
    services: Vec<ServiceView>,
    vrids: Vec<Vrid>,
    life: Vec<Life>,
    master_since: BTreeMap<(usize, Vrid), u64>,
    /// Two connected masters of a virtual router, since when.
    dual_since: BTreeMap<(Vrid, usize, usize), u64>,
    /// Per director and virtual router: active with no master it hears.
    headless_since: BTreeMap<(usize, Vrid), u64>,
    /// Per virtual router: since when some director has been headless
    /// (for failover figures).
    vrid_headless: BTreeMap<Vrid, u64>,
    lost_master: BTreeSet<Vrid>,
    /// Per backup and virtual router: since when it should preempt.
    preempt_since: BTreeMap<(usize, Vrid), u64>,
    topology_changed_at: u64,
    /// When a director last went down (crash or stop).
    last_down_at: u64,
    epoch_changed_at: u64,
    healed_at: Option<u64>,
    /// When each server (by address) was last marked down by any director.
    server_down_at: BTreeMap<IpAddr, u64>,
    /// When any director last saw any server's health change.
    server_set_changed_at: u64,
    /// Under ECMP, per flow: a hash of the server list order of the
    /// director that forwarded its first packet, and whether a packet of
    /// it was since forwarded by a director listing them otherwise.
    flow_order: BTreeMap<(IpAddr, u16), (u64, bool)>,
    /// Flows that changed server, under ECMP, after a director moved them
    /// while the server set was changing (the admitted mh disruption).
    pub moved_by_server_change: u64,
    /// Per (service, persistence key): its last flow.
    last_flow: BTreeMap<(usize, IpAddr), LastFlow>,
    /// Lost flows' opening times (flows the scheduler dropped by design
    /// excluded).
    lost_after: Vec<u64>,
    /// Flows the scheduler dropped by design (no server).
    scheduler_drops: BTreeSet<(IpAddr, u16)>,
    /// Client addresses some of whose flows the scheduler dropped by
    /// design.
    scheduler_dropped: BTreeSet<IpAddr>,
    /// Flows a director forwarded without tracking them (full table).
    untracked: BTreeSet<(IpAddr, u16)>,
    /// The director that scheduled each flow (its first packet) and when:
    /// persistence templates are made and refreshed then, not when the
    /// client first tried (a cut-off client's first packets never arrive).
    flow_director: BTreeMap<(IpAddr, u16), (usize, u64)>,
    /// When a director last forwarded a datagram of each UDP flow.
    udp_seen: BTreeMap<(IpAddr, u16), u64>,
    /// UDP flows silent at the director longer than the UDP timeout: their
    /// connection may have expired, and the next datagram is scheduled
    /// afresh (ip_vs_proto_udp.c), so they promise no stickiness.
    udp_lapsed: BTreeSet<(IpAddr, u16)>,
    /// Failover durations seen (master lost to master found), microseconds.
    pub failovers: Vec<u64>,
    /// Persistent clients' new flows that stayed, and all of them.
    pub persistence: (u64, u64),
    /// Per director: connections received by sync, by (client, port).
    synced: Vec<BTreeMap<(IpAddr, u16), SyncedFlow>>,
    /// Packets of flows a director learned by sync that it forwarded to
    /// their server (flows kept across a failover).
    pub synced_kept: u64,
    /// Sync messages delivered to a receiving director.
    pub sync_messages: u64,
    /// New flows at a sync sender whose entries are due: (sender, flow)
    /// -> server.
    sync_due: BTreeMap<(usize, (IpAddr, u16)), SyncDue>,
    /// Per director: when its table was last (nearly) full.
    table_full_at: Vec<u64>,
    /// When each director last marked each server up.
    server_up_at: BTreeMap<(usize, IpAddr), u64>,
    /// Flows any director has forwarded: a flow is new only once.
    flows_seen: BTreeSet<(IpAddr, u16)>,
    /// Flows whose entries were checked to have reached every peer.
    pub synced_sent: u64,
    /// Per client address (or persistence key): when a sync entry for it
    /// reached a director that was itself balancing the entry's service
    /// (its own choice overwritten by the sender's).
    sync_overwrote: BTreeMap<IpAddr, u64>,
    /// When the liveness burst began.
    burst_at: Option<u64>,
    /// New flows per (service, server id) opened after the burst began.
    pub burst_served: BTreeMap<(usize, u32), u64>,
    /// Per service: its servers' loads on the VIP holder when the burst
    /// began, and how many burst flows it got.
    burst_loads: BTreeMap<usize, (Vec<ServerLoad>, u64)>,
    /// Most connections any director tracked at once.
    pub table_high_water: u32,
    /// Deadlines checked: check_bound, graceful handovers, preemptions
    /// that happened in time.
    pub checked: (u64, u64, u64),
    /// Something the VRRP rules read changed since they last ran.
    dirty: bool,
    /// When a VRRP rule's clock next runs out (or a pause ends): until
    /// then, with nothing changed, the rules give the same answer.
    next_check: u64,
    scratch: Vec<usize>,
}

/// Sync messages `d`'s rate limit has held back so far.
fn rate_limited(d: &Director<'_>) -> u64 {
    d.node()
        .and_then(|n| n.conn_sync())
        .map_or(0, |c| c.stats().tx_rate_limited)
}

/// Most directors a scenario may have (the VIP holder masks are bits of a
/// `u64`; the per-event lookups use a fixed array).
pub const MAX_DIRECTORS: usize = 16;

fn mutually(seg: &Segment, a: usize, b: usize) -> bool {
    seg.connected(a, b) && seg.connected(b, a)
}

impl Invariants {
    /// Invariants for these services and virtual routers; UDP connections
    /// live `udp_timeout_s` (the configuration's lvs_timeouts, or IPVS's
    /// 300 s).
    pub fn new(
        services: Vec<ServiceView>,
        vrids: Vec<Vrid>,
        ecmp: bool,
        udp_timeout_s: Option<u32>,
    ) -> Self {
        Invariants {
            ecmp,
            udp_timeout_us: u64::from(udp_timeout_s.unwrap_or(300)) * 1_000_000,
            services,
            vrids,
            life: Vec::new(),
            master_since: BTreeMap::new(),
            dual_since: BTreeMap::new(),
            headless_since: BTreeMap::new(),
            vrid_headless: BTreeMap::new(),
            lost_master: BTreeSet::new(),
            preempt_since: BTreeMap::new(),
            topology_changed_at: 0,
            last_down_at: 0,
            epoch_changed_at: 0,
            healed_at: None,
            server_down_at: BTreeMap::new(),
            server_set_changed_at: 0,
            flow_order: BTreeMap::new(),
            moved_by_server_change: 0,
            last_flow: BTreeMap::new(),
            lost_after: Vec::new(),
            scheduler_drops: BTreeSet::new(),
            scheduler_dropped: BTreeSet::new(),
            untracked: BTreeSet::new(),
            flow_director: BTreeMap::new(),
            udp_seen: BTreeMap::new(),
            udp_lapsed: BTreeSet::new(),
            failovers: Vec::new(),
            persistence: (0, 0),
            synced: Vec::new(),
            synced_kept: 0,
            sync_messages: 0,
            sync_due: BTreeMap::new(),
            table_full_at: Vec::new(),
            flows_seen: BTreeSet::new(),
            server_up_at: BTreeMap::new(),
            synced_sent: 0,
            sync_overwrote: BTreeMap::new(),
            burst_at: None,
            burst_served: BTreeMap::new(),
            burst_loads: BTreeMap::new(),
            table_high_water: 0,
            checked: (0, 0, 0),
            dirty: true,
            next_check: 0,
            scratch: Vec::new(),
        }
    }

    fn life(&mut self, d: usize) -> &mut Life {
        if self.life.len() <= d {
            self.life.resize(d + 1, Life::default());
        }
        &mut self.life[d]
    }

    fn life_of(&self, d: usize) -> Life {
        self.life.get(d).copied().unwrap_or_default()
    }

    /// Whether `d` runs, unpaused, at `now`.
    fn active(d: &Director<'_>, now: u64) -> bool {
        d.is_up() && now >= d.paused_until
    }

    /// A director started.
    pub fn director_up(&mut self, d: usize, now: u64) {
        self.dirty = true;
        self.forget_synced(d);
        self.life(d).up_since = Some(now);
        self.master_since.retain(|(x, _), _| *x != d);
    }

    /// A director went down (crash or stop).
    pub fn director_down(&mut self, directors: &[Director<'_>], d: usize, now: u64) {
        self.dirty = true;
        for (v, i) in directors[d].vrrp() {
            if i.state() == State::Master {
                self.lost_master.insert(v);
            }
        }
        // Its tables die with it.
        self.forget_synced(d);
        self.life(d).up_since = None;
        self.master_since.retain(|(x, _), _| *x != d);
        self.last_down_at = now;
    }

    /// A director stalls.
    pub fn paused(&mut self, d: usize, from: u64, until: u64) {
        self.dirty = true;
        self.life(d).pause = (from, until);
    }

    /// Partitions or links changed.
    pub fn topology_changed(&mut self, now: u64) {
        self.dirty = true;
        self.topology_changed_at = now;
        self.dual_since.clear();
        self.preempt_since.clear();
    }

    /// The liveness phase began.
    pub fn healed(&mut self, now: u64) {
        self.healed_at = Some(now);
    }

    /// The liveness burst began: `loads` are each service's servers'
    /// loads on its VIP holder then, with the flows the burst will open.
    pub fn burst(&mut self, now: u64, loads: BTreeMap<usize, (Vec<ServerLoad>, u64)>) {
        self.burst_at = Some(now);
        self.burst_loads = loads;
    }

    /// The set of VIP holders changed.
    pub fn epoch_changed(&mut self, now: u64) {
        self.epoch_changed_at = now;
    }

    /// A director's node marked a server up or down.
    pub fn health(&mut self, d: usize, server: IpAddr, up: bool, now: u64) {
        self.server_set_changed_at = now;
        if !up {
            self.server_down_at.insert(server, now);
        } else {
            self.server_up_at.insert((d, server), now);
        }
    }

    /// A director's scheduler found no server for this flow (ovf with every
    /// server full, dh/sh without fallback on an unavailable server).
    pub fn dropped_by_scheduler(&mut self, flow: (IpAddr, u16)) {
        self.scheduler_drops.insert(flow);
        self.scheduler_dropped.insert(flow.0);
    }

    /// A flow was lost.
    pub fn lost(&mut self, flow: (IpAddr, u16), opened_at: u64) {
        if !self.scheduler_drops.remove(&flow) {
            self.lost_after.push(opened_at);
        }
    }

    /// Something the VRRP rules read may have changed: a state, a
    /// director's life or clock, the topology, the link.
    pub fn touch(&mut self) {
        self.dirty = true;
    }

    /// Checks run after every event. The VRRP rules read only states,
    /// lives, topology and the clock: after an event that touched none of
    /// them they are re-run only when one of their deadlines comes.
    pub fn after_event(
        &mut self,
        directors: &[Director<'_>],
        seg: &Segment,
        now: u64,
    ) -> Result<(), Violation> {
        if self.dirty || now >= self.next_check {
            self.dirty = false;
            self.next_check = u64::MAX;
            for d in directors {
                if d.paused_until > now {
                    self.next_check = self.next_check.min(d.paused_until);
                }
            }
            for vi in 0..self.vrids.len() {
                let v = self.vrids[vi];
                self.vrid_rules(directors, seg, v, now)?;
            }
        }
        // table_capacity
        self.table_full_at.resize(directors.len(), 0);
        for (i, d) in directors.iter().enumerate() {
            let (used, cap) = d.table_use();
            self.table_high_water = self.table_high_water.max(used);
            if used + 64 >= cap {
                self.table_full_at[i] = now;
            }
            check_table(i, used, cap, now)?;
        }
        Ok(())
    }

    fn vrid_rules(
        &mut self,
        directors: &[Director<'_>],
        seg: &Segment,
        v: Vrid,
        now: u64,
    ) -> Result<(), Violation> {
        let mut active = std::mem::take(&mut self.scratch);
        active.clear();
        // Each director's instance of `v`, looked up once per event.
        let mut inst: [Option<&vrrp::Instance>; MAX_DIRECTORS] = [None; MAX_DIRECTORS];
        let mut max_mdi = 0;
        for (d, dir) in directors.iter().enumerate().take(MAX_DIRECTORS) {
            inst[d] = dir.instance(v);
            if let Some(i) = inst[d] {
                max_mdi = max_mdi.max(mdi_us(i.config(), i.effective_priority()));
                if Self::active(dir, now) {
                    active.push(d);
                }
            }
        }
        let is_master = |d: usize| inst[d].is_some_and(|i| i.state() == State::Master);
        let masters = active.iter().filter(|&&d| is_master(d)).count();
        let slack = slack_us(seg, max_mdi);
        let result = (|| {
            // single_master
            let bound = max_mdi + slack;
            if masters > 1 {
                for (i, &a) in active.iter().enumerate() {
                    for &b in &active[i + 1..] {
                        if !(is_master(a) && is_master(b) && mutually(seg, a, b)) {
                            self.dual_since.remove(&(v, a, b));
                            continue;
                        }
                        let since = *self.dual_since.entry((v, a, b)).or_insert(now);
                        self.next_check = self.next_check.min(since + bound + 1);
                        if now - since > bound {
                            return Err(Violation::new(
                                "single_master",
                                10,
                                format!(
                                    "directors {a} and {b} have both been master of VRID {}{} while connected since {:.6}s (bound {:.6}s)",
                                    v.id,
                                    if v.v6 { " (IPv6)" } else { "" },
                                    since as f64 / 1e6,
                                    bound as f64 / 1e6
                                ),
                                now,
                            ));
                        }
                    }
                }
            } else {
                self.dual_since.retain(|(x, _, _), _| *x != v);
            }

            // failover_bound: every active director is a master or hears
            // one (a one-way link can leave a backup that hears its master
            // but is not heard: that is not headless).
            let mut any_headless = false;
            for &a in &active {
                let headless = !is_master(a)
                    && !active
                        .iter()
                        .any(|&m| m != a && is_master(m) && seg.connected(m, a));
                if !headless {
                    self.headless_since.remove(&(a, v));
                    continue;
                }
                any_headless = true;
                let since = *self.headless_since.entry((a, v)).or_insert(now);
                self.next_check = self.next_check.min(since + bound + 1);
                if now - since > bound {
                    return Err(Violation::new(
                        "failover_bound",
                        11,
                        format!(
                            "director {a} has had no master of VRID {} for {:.6}s (bound {:.6}s)",
                            v.id,
                            (now - since) as f64 / 1e6,
                            bound as f64 / 1e6
                        ),
                        now,
                    ));
                }
            }
            // Directors no longer active are not headless.
            self.headless_since
                .retain(|(d, x), _| *x != v || active.contains(d));
            match self.vrid_headless.get(&v).copied() {
                Some(since) if !any_headless => {
                    self.vrid_headless.remove(&v);
                    if self.lost_master.remove(&v) {
                        self.failovers.push(now - since);
                    }
                }
                None if any_headless => {
                    self.vrid_headless.insert(v, now);
                }
                _ => {}
            }

            // owner_wins
            for &d in &active {
                let Some(i) = inst[d] else {
                    continue;
                };
                if i.config().priority != 255 {
                    continue;
                }
                let l = self.life_of(d);
                let since = l.up_since.unwrap_or(now).max(l.pause.1);
                let state = i.state();
                if state != State::Master && state != State::Fault {
                    self.next_check = self.next_check.min(since + slack + 1);
                }
                if now > since + slack && state != State::Master && state != State::Fault {
                    return Err(Violation::new(
                        "owner_wins",
                        12,
                        format!("address owner director {d} (VRID {}) is {state:?}", v.id),
                        now,
                    ));
                }
            }

            // preemption_rules, the positive half: a backup with preempt
            // that hears only lower-priority masters takes over.
            for &b in &active {
                let Some(bi) = inst[b] else {
                    continue;
                };
                let mine = bi.effective_priority();
                // Heard: its adverts reach `b` (a master with `b`'s priority or more
                // keeps resetting its timer, whether or not `b` is heard back).
                let heard = |m: usize| m != b && is_master(m) && seg.connected(m, b);
                let prio_of = |m: usize| {
                    directors[m]
                        .instance(v)
                        .map_or(0, |i| i.effective_priority())
                };
                let mut lower = None;
                let mut all_lower = true;
                for &m in active.iter().filter(|&&m| heard(m)) {
                    if prio_of(m) < mine {
                        lower.get_or_insert((m, prio_of(m)));
                    } else {
                        all_lower = false;
                    }
                }
                let should = bi.state() == State::Backup && bi.config().preempt && all_lower;
                let Some((m0, p0)) = lower.filter(|_| should) else {
                    if self.preempt_since.remove(&(b, v)).is_some() && is_master(b) {
                        self.checked.2 += 1;
                    }
                    continue;
                };
                let first = *self.preempt_since.entry((b, v)).or_insert(now);
                let lb = self.life_of(b);
                let mut start = first
                    .max(self.topology_changed_at)
                    .max(lb.up_since.unwrap_or(now))
                    .max(lb.pause.1);
                for &m in active.iter().filter(|&&m| heard(m)) {
                    let lm = self.life_of(m);
                    start = start
                        .max(self.master_since.get(&(m, v)).copied().unwrap_or(now))
                        .max(lm.pause.1);
                }
                let c = bi.config();
                let wait = c.preempt_delay.as_micros() + interval_us(c) + mdi_us(c, mine);
                let bound = wait + slack_us(seg, wait);
                self.next_check = self.next_check.min(start + bound + 1);
                if now > start && now - start > bound {
                    let (m, p) = (m0, p0);
                    return Err(Violation::new(
                        "preemption_rules",
                        13,
                        format!(
                            "director {b} (priority {mine}, preempt, preempt_delay {}) has heard lower-priority master {m} (priority {p}) of VRID {} for {:.6}s without taking over (bound {:.6}s)",
                            c.preempt_delay,
                            v.id,
                            (now - start) as f64 / 1e6,
                            bound as f64 / 1e6
                        ),
                        now,
                    ));
                }
            }
            self.preempt_since
                .retain(|(d, x), _| *x != v || active.contains(d));
            Ok(())
        })();
        self.scratch = active;
        result
    }

    /// A director's VRRP state changed.
    #[allow(clippy::too_many_arguments)]
    pub fn state_changed(
        &mut self,
        directors: &[Director<'_>],
        seg: &Segment,
        d: usize,
        v: Vrid,
        to: State,
        reason: Reason,
        now: u64,
    ) -> Result<(), Violation> {
        self.dirty = true;
        if to == State::Master {
            self.master_since.insert((d, v), now);
        } else {
            self.master_since.remove(&(d, v));
        }
        if to != State::Master || reason != Reason::MasterDown {
            return Ok(());
        }
        let me = &directors[d];
        let Some(inst) = me.instance(v) else {
            return Ok(());
        };
        let c = inst.config();
        let mine = inst.effective_priority();

        // premature_takeover, measured on the director's own clock.
        if let Some(&(t_adv, local_adv, priority)) = me.last_master_advert.get(&v)
            && t_adv >= me.started_at
        {
            let expected = if priority == 0 {
                skew_us(c, mine)
            } else {
                mdi_us(c, mine)
            };
            let elapsed = me
                .local(now)
                .as_micros()
                .saturating_sub(local_adv.as_micros());
            if elapsed + 1 < expected {
                return Err(Violation::new(
                    "premature_takeover",
                    14,
                    format!(
                        "director {d} took over VRID {} {:.6}s after the master's last advert (priority {priority}); expected {:.6}s",
                        v.id,
                        elapsed as f64 / 1e6,
                        expected as f64 / 1e6
                    ),
                    now,
                ));
            }
        }

        // preemption_rules: was there a live master it was hearing? (Not
        // asked after a priority 0: RFC 3768 6.4.2 sets the timer to
        // Skew_Time whoever else may be master, as in a split that a
        // resigning master leaves behind.)
        if me
            .last_master_advert
            .get(&v)
            .is_some_and(|&(t, _, p)| p == 0 && t >= me.started_at)
        {
            return Ok(());
        }
        let window = mdi_us(c, mine) + slack_us(seg, mdi_us(c, mine));
        let since_ok = |t: u64| t + window <= now;
        let mine_life = self.life_of(d);
        for (m, other) in directors.iter().enumerate() {
            if m == d || !Self::active(other, now) || other.state(v) != Some(State::Master) {
                continue;
            }
            let Some(oi) = other.instance(v) else {
                continue;
            };
            let l = self.life_of(m);
            let steady = self.master_since.get(&(m, v)).is_some_and(|t| since_ok(*t))
                && l.up_since.is_some_and(since_ok)
                && since_ok(l.pause.1)
                && since_ok(mine_life.pause.1)
                && since_ok(self.topology_changed_at)
                && mutually(seg, d, m)
                && seg.link.loss_ppm == 0;
            if !steady {
                continue;
            }
            let theirs = oi.effective_priority();
            let preempting = c.preempt && mine > theirs;
            let delay_ok = mine_life
                .up_since
                .is_some_and(|t| now >= t + c.preempt_delay.as_micros());
            if !preempting || !delay_ok {
                return Err(Violation::new(
                    "preemption_rules",
                    13,
                    format!(
                        "director {d} (priority {mine}, preempt {}, preempt_delay {}) took over VRID {} from live master {m} (priority {theirs})",
                        c.preempt, c.preempt_delay, v.id
                    ),
                    now,
                ));
            }
        }
        Ok(())
    }

    /// How long after a graceful stop of `d`, master of `v`, a backup must
    /// be master, if the situation allows a firm bound.
    pub fn handover_bound(
        &self,
        directors: &[Director<'_>],
        seg: &Segment,
        d: usize,
        v: Vrid,
        now: u64,
    ) -> Option<u64> {
        directors
            .iter()
            .enumerate()
            .filter(|(b, other)| {
                *b != d
                    && Self::active(other, now)
                    && other.state(v) == Some(State::Backup)
                    && mutually(seg, d, *b)
            })
            .filter_map(|(_, other)| other.instance(v))
            .map(|i| {
                let skew = skew_us(i.config(), i.effective_priority());
                skew + slack_us(seg, skew)
            })
            .min()
    }

    /// The graceful-handover deadline passed.
    pub fn handover_deadline(
        &mut self,
        directors: &[Director<'_>],
        v: Vrid,
        since: u64,
        now: u64,
    ) -> Result<(), Violation> {
        // Another director going down or stalling meanwhile voids the bound;
        // so does an older advert overtaking the priority-0 one (jitter):
        // it re-arms the backup's timer for a whole Master_Down_Interval.
        let overtaken = directors.iter().any(|b| {
            b.last_master_advert
                .get(&v)
                .is_some_and(|&(t, _, p)| t > since && p > 0)
        });
        if self.topology_changed_at > since
            || self.last_down_at > since
            || self.life.iter().any(|l| l.pause.0 >= since)
            || overtaken
        {
            return Ok(());
        }
        let any_master = directors
            .iter()
            .any(|o| Self::active(o, now) && o.state(v) == Some(State::Master));
        if !any_master {
            return Err(Violation::new(
                "graceful_handover",
                15,
                format!(
                    "no backup took over VRID {} within Skew_Time of the master's graceful stop at {:.6}s",
                    v.id,
                    since as f64 / 1e6
                ),
                now,
            ));
        }
        self.checked.1 += 1;
        Ok(())
    }

    /// How long director `d` may take to mark `addr` (a real server of
    /// service `service`, in `mode` from now) down: the smallest bound
    /// over its checkers the mode surely fails, from the configuration's
    /// parameters. None when no checker surely fails or checks are off.
    pub fn down_deadline(
        &self,
        d: &Director<'_>,
        service: usize,
        addr: IpAddr,
        mode: Mode,
        seg: &Segment,
    ) -> Option<u64> {
        if !d.is_up() || d.checks_suspended(service) {
            return None;
        }
        let real = self
            .services
            .get(service)?
            .reals
            .iter()
            .find(|r| r.addr == addr)?;
        real.checks
            .iter()
            .filter(|c| fails_check(mode, c, seg.link.latency_us, seg.link.jitter_us) == Some(true))
            .map(|c| {
                let b = c.down_bound_us();
                // Probes cross the segment: a few round trips, and clock
                // drift on the checker's timers.
                b + b / 500 + 8 * (seg.link.latency_us + seg.link.jitter_us) + 50_000
            })
            .min()
    }

    /// A failed server's deadline passed.
    #[allow(clippy::too_many_arguments)]
    pub fn check_down_deadline(
        &mut self,
        d: &Director<'_>,
        s: &Server,
        service: usize,
        addr: IpAddr,
        mode: Mode,
        since: u64,
        now: u64,
    ) -> Result<(), Violation> {
        let still_failing = s.mode == mode && s.mode_since <= since;
        let l = self.life_of(d.id);
        let steady = l.up_since.is_some_and(|t| t <= since)
            && l.pause.1 <= since
            && self.topology_changed_at <= since;
        if !(still_failing && steady && !d.checks_suspended(service)) {
            return Ok(());
        }
        if d.server_healthy(service, addr) == Some(true) {
            return Err(Violation::new(
                "check_bound",
                19,
                format!(
                    "director {} still has server {addr} up in service {service} {:.6}s after it started to fail ({mode:?})",
                    d.id,
                    (now - since) as f64 / 1e6
                ),
                now,
            ));
        }
        self.checked.0 += 1;
        Ok(())
    }

    /// A director forwarded a packet.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &mut self,
        d: &Director<'_>,
        client: (IpAddr, u16),
        service: usize,
        syn: bool,
        server: IpAddr,
        tracked: bool,
        now: u64,
    ) -> Result<(), Violation> {
        if syn && !tracked {
            self.untracked.insert(client);
        }
        if syn {
            self.flow_director.entry(client).or_insert((d.id, now));
        }
        if self.ecmp {
            let h = d
                .server_loads(service)
                .iter()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, l| {
                    let bytes = match l.addr {
                        IpAddr::V4(a) => u128::from(u32::from(a)),
                        IpAddr::V6(a) => u128::from(a),
                    };
                    (h ^ bytes as u64 ^ (bytes >> 64) as u64).wrapping_mul(0x0100_0000_01b3)
                });
            let e = self.flow_order.entry(client).or_insert((h, false));
            e.1 |= e.0 != h;
        }
        if self.services.get(service).is_some_and(|s| s.protocol == 17)
            && let Some(last) = self.udp_seen.insert(client, now)
            && now - last + 50_000 > self.udp_timeout_us
        {
            self.udp_lapsed.insert(client);
        }
        if syn && d.server_healthy(service, server) == Some(false) {
            return Err(Violation::new(
                "no_flow_to_down_server",
                18,
                format!(
                    "director {} sent a new flow to {server} (service {service}), which it marked down",
                    d.id
                ),
                now,
            ));
        }
        Ok(())
    }

    /// A client got a reply.
    #[allow(clippy::too_many_arguments)]
    pub fn reply(
        &mut self,
        servers: &[Server],
        flow: (IpAddr, u16),
        service: usize,
        server: u32,
        before: Option<u32>,
        opened_at: u64,
        flow_epoch: u64,
        epoch: u64,
        now: u64,
    ) -> Result<(), Violation> {
        let disturbed = |s: u32, since: u64, inv: &Invariants| {
            let srv = &servers[s as usize - 1];
            // A failing server, or a director restarting with empty
            // tables, excuses a move. A stalled director replaying old
            // frames when it wakes can answer for a VIP it no longer holds.
            srv.mode_since > since
                || srv
                    .addrs
                    .iter()
                    .any(|a| inv.server_down_at.get(a).is_some_and(|t| *t > since))
                || (!inv.ecmp && inv.last_down_at > since)
                || inv.life.iter().any(|l| l.pause.1 > since)
        };
        let untracked = self.untracked.contains(&flow);
        let overwritten = |key: IpAddr, since: u64, inv: &Invariants| {
            [flow.0, key]
                .iter()
                .any(|a| inv.sync_overwrote.get(a).is_some_and(|t| *t > since))
        };
        if before.is_none()
            && let Some(b) = self.burst_at
            && opened_at >= b
        {
            *self.burst_served.entry((service, server)).or_insert(0) += 1;
        }
        let Some(svc) = self.services.get(service) else {
            return Ok(());
        };
        let persistence_us = svc.persistence_s * 1_000_000;
        let key = (service, svc.persistence_key(flow.0));
        match before {
            // Under ECMP a moved flow is scheduled by the new director's
            // Maglev table: if the server set changed since the flow began,
            // that table may differ (the disruption the design admits).
            Some(b)
                if b != server
                    && self.ecmp
                    && !disturbed(b, opened_at, self)
                    && (self.server_set_changed_at > opened_at || self.lists_differ(flow)) =>
            {
                self.moved_by_server_change += 1;
            }
            Some(b)
                if b != server
                    && !untracked
                    && !self.udp_lapsed.contains(&flow)
                    && !disturbed(b, opened_at, self)
                    && !overwritten(key.1, opened_at, self)
                    && flow_epoch == epoch =>
            {
                return Err(Violation::new(
                    "flow_sticky",
                    16,
                    format!(
                        "flow {}:{} moved from server {b} to {server} while {b} was up",
                        flow.0, flow.1
                    ),
                    now,
                ));
            }
            Some(_) => {}
            None if persistence_us > 0 => {
                let (director, opened_at) = match self.flow_director.get(&flow) {
                    Some(&(d, t)) => (Some(d), t),
                    None => (None, opened_at),
                };
                let last = self.last_flow.get(&key).copied();
                if last.is_some_and(|l| opened_at < l.1) {
                    // Answered out of order: compare only in opening order.
                    return Ok(());
                }
                if let Some((last, last_open, last_epoch, last_tracked, last_director)) = last
                    && opened_at < last_open + persistence_us.saturating_sub(1_000_000)
                {
                    self.persistence.1 += 1;
                    if last == server {
                        self.persistence.0 += 1;
                    } else if last_tracked
                        && !untracked
                        // A template lives on the director that made it
                        // (sync copies it, but promises nothing here).
                        && last_director == director
                        && !disturbed(last, last_open, self)
                        // Flows answered out of order: this one may have
                        // been scheduled (by a template naming its server)
                        // before the last one's retry found that server
                        // failing and made a new template.
                        && !disturbed(server, last_open, self)
                        && !overwritten(key.1, last_open, self)
                        && last_epoch == flow_epoch
                        && flow_epoch == epoch
                    {
                        return Err(Violation::new(
                            "persistence_kept",
                            17,
                            format!(
                                "client {} went to server {server}, {:.3}s after its flow to server {last} (persistence {}s, key {})",
                                flow.0,
                                (opened_at - last_open) as f64 / 1e6,
                                svc.persistence_s,
                                key.1
                            ),
                            now,
                        ));
                    }
                }
                self.last_flow
                    .insert(key, (server, opened_at, flow_epoch, !untracked, director));
            }
            None => {}
        }
        Ok(())
    }

    /// Whether packets of `flow` were forwarded by directors that list the
    /// servers in different orders: mh builds its table in list order, and
    /// a server that left and came back is listed first (IPVS adds at the
    /// head), so directors with different histories (a false check failure
    /// on a lossy link, a restart) have different tables.
    fn lists_differ(&self, flow: (IpAddr, u16)) -> bool {
        self.flow_order.get(&flow).is_none_or(|e| e.1)
    }

    fn forget_synced(&mut self, d: usize) {
        if let Some(m) = self.synced.get_mut(d) {
            m.clear();
        }
    }

    /// A sync datagram reached `director` while its sync receives:
    /// remember the connections in it (read from the wire format, not from
    /// the node). Malformed datagrams carry no promise.
    pub fn sync_delivered(&mut self, director: &Director<'_>, payload: &[u8], now: u64) {
        let d = director.id;
        let Ok((header, entries)) = sync_wire::parse(payload) else {
            return;
        };
        if self.synced.len() <= d {
            self.synced.resize_with(d + 1, BTreeMap::new);
        }
        self.sync_messages += 1;
        // A table that may fill while the message is applied refuses
        // entries (rx_table_full): they promise nothing.
        let (used, cap) = director.table_use();
        let room = used as usize + usize::from(header.count) < cap as usize;
        for e in entries {
            // A receiver that holds the entry's VIP balances the service
            // itself (lvs_sync_daemon follows another instance): the
            // sender's entry replaces its own choice (ip_vs_sync.c
            // applies what the master sends), which excuses a move.
            if director.holds(e.vip) {
                self.sync_overwrote.insert(e.client, now);
            }
            if e.kind != EntryKind::Connection || !room {
                continue;
            }
            // An entry for a server the receiver has not listed in the
            // entry's service (its checks have it down) is refused: it
            // promises nothing.
            let listed = director
                .service_of(e.vip, e.vport, e.protocol)
                .and_then(|s| director.server_healthy(s, e.server));
            if listed != Some(true) {
                continue;
            }
            let valid_until =
                (now + u64::from(e.timeout_ms) * 1000).saturating_sub(SYNC_DRIFT_SLACK_US);
            self.synced[d].insert(
                (e.client, e.client_port),
                SyncedFlow {
                    server: e.server,
                    service: director.service_of(e.vip, e.vport, e.protocol),
                    protocol: e.protocol,
                    delivered_at: now,
                    valid_until,
                },
            );
        }
    }

    /// Director `d` forwarded (`Some(server)`) or dropped as a mid-flow
    /// packet of an unknown connection (`None`) a packet of `flow` that
    /// must follow its connection.
    pub fn synced_packet(
        &mut self,
        d: &Director<'_>,
        servers: &[Server],
        flow: (IpAddr, u16),
        to: Option<IpAddr>,
        now: u64,
    ) -> Result<(), Violation> {
        let Some(entry) = self.synced.get(d.id).and_then(|m| m.get(&flow)).copied() else {
            return Ok(());
        };
        if now > entry.valid_until {
            self.synced[d.id].remove(&flow);
            return Ok(());
        }
        if to == Some(entry.server) {
            self.synced_kept += 1;
            // The director's own use now sets the connection's life: a
            // UDP one lives its (lvs_timeouts) timeout from this datagram.
            if entry.protocol == 17
                && let Some(e) = self.synced.get_mut(d.id).and_then(|m| m.get_mut(&flow))
            {
                let own = (now + self.udp_timeout_us).saturating_sub(SYNC_DRIFT_SLACK_US);
                e.valid_until = e.valid_until.min(own);
            }
            return Ok(());
        }
        // What excuses a move: the entry's server failing or marked down
        // since (by anyone), or not usable here; a full table.
        let srv = servers.iter().find(|s| s.has(entry.server));
        let excused = srv.is_none_or(|s| s.mode_since > entry.delivered_at)
            || self
                .server_down_at
                .get(&entry.server)
                .is_some_and(|t| *t > entry.delivered_at)
            || entry
                .service
                .and_then(|s| d.server_healthy(s, entry.server))
                != Some(true)
            || {
                let (used, cap) = d.table_use();
                used >= cap
            };
        if excused {
            return Ok(());
        }
        let stats = d
            .node()
            .and_then(|n| n.conn_sync())
            .map(|c| format!("{:?}", c.stats()))
            .unwrap_or_default();
        Err(Violation::new(
            "synced_flow_kept",
            22,
            match to {
                Some(s) => format!(
                    "director {} sent flow {}:{} to {s}, but its sync entry (received at {:.6}s) says {}",
                    d.id,
                    flow.0,
                    flow.1,
                    entry.delivered_at as f64 / 1e6,
                    entry.server
                ),
                None => format!(
                    "director {} dropped flow {}:{} as unknown, but it received its sync entry (server {}) at {:.6}s",
                    d.id,
                    flow.0,
                    flow.1,
                    entry.server,
                    entry.delivered_at as f64 / 1e6
                ),
            } + "; receiver's sync counters: "
                + &stats,
            now,
        ))
    }

    /// A director forwarded an opening packet of `flow` to `server`: when
    /// it is a sync sender and no director forwarded the flow before,
    /// returns when the flow's entry is due at its peers.
    pub fn sync_flow_opened(
        &mut self,
        d: &Director<'_>,
        flow: (IpAddr, u16),
        service: usize,
        server: IpAddr,
        now: u64,
    ) -> Option<u64> {
        if !self.flows_seen.insert(flow) || !d.sync_role().is_some_and(|r| r.sends()) {
            return None;
        }
        self.sync_due
            .insert((d.id, flow), (server, service, rate_limited(d)));
        Some(now + SYNC_DUE_US)
    }

    /// `flow`'s entry, opened at `since` by sender `d0`, is due: on a clean
    /// network every receiving peer has it.
    #[allow(clippy::too_many_arguments)]
    pub fn sync_due(
        &mut self,
        directors: &[Director<'_>],
        servers: &[Server],
        seg: &Segment,
        d0: usize,
        flow: (IpAddr, u16),
        since: u64,
        now: u64,
    ) -> Result<(), Violation> {
        let Some((server, service, limited)) = self.sync_due.remove(&(d0, flow)) else {
            return Ok(());
        };
        let started_before = |l: &Life| l.up_since.is_some_and(|t| t <= since);
        let clean = seg.link.loss_ppm == 0
            && self.topology_changed_at <= since
            && self.last_down_at <= since
            && self.epoch_changed_at <= since
            && self.life.iter().all(|l| l.pause.1 <= since)
            && self.server_down_at.get(&server).is_none_or(|t| *t <= since)
            && servers
                .iter()
                .find(|s| s.has(server))
                .is_some_and(|s| s.mode_since <= since)
            && !self.untracked.contains(&flow);
        let sender = &directors[d0];
        // The sender's rate limit (a flood's entries) may hold messages
        // back; a table that was full may have refused the entry.
        let full_since = |d: usize| self.table_full_at.get(d).is_some_and(|t| *t >= since);
        if rate_limited(sender) > limited || full_since(d0) {
            return Ok(());
        }
        if !clean
            || !Self::active(sender, now)
            || !started_before(&self.life_of(d0))
            || !sender.sync_role().is_some_and(|r| r.sends())
            || sender.table_use().0 >= sender.table_use().1
        {
            return Ok(());
        }
        for (p, peer) in directors.iter().enumerate() {
            let receives = p != d0
                && !full_since(p)
                && Self::active(peer, now)
                && started_before(&self.life_of(p))
                && peer.sync_role().is_some_and(|r| r.receives())
                && mutually(seg, d0, p)
                && peer.server_healthy(service, server) == Some(true)
                && self
                    .server_up_at
                    .get(&(p, server))
                    .is_none_or(|t| *t <= since)
                && peer.table_use().0 < peer.table_use().1;
            if !receives {
                continue;
            }
            let has = self
                .synced
                .get(p)
                .and_then(|m| m.get(&flow))
                .is_some_and(|e| e.delivered_at >= since);
            if !has {
                let counters = |d: &Director<'_>| {
                    d.node()
                        .and_then(|n| n.conn_sync())
                        .map(|c| format!("{:?}", c.stats()))
                        .unwrap_or_default()
                };
                return Err(Violation::new(
                    "synced_flow_sent",
                    23,
                    format!(
                        "director {d0} opened flow {}:{} (server {server}) at {:.6}s; {:.3}s later director {p} has no sync entry for it; sender's sync counters: {}; receiver's: {}",
                        flow.0,
                        flow.1,
                        since as f64 / 1e6,
                        (now - since) as f64 / 1e6,
                        counters(sender),
                        counters(peer)
                    ),
                    now,
                ));
            }
        }
        self.synced_sent += 1;
        Ok(())
    }

    /// Checks at the end of a run that healed. `settled` is when the
    /// cluster must have settled (the burst began then).
    pub fn liveness(
        &mut self,
        directors: &[Director<'_>],
        servers: &[Server],
        clients: &[Client],
        healed: bool,
        now: u64,
    ) -> Result<(), Violation> {
        if !healed || self.healed_at.is_none() {
            return Ok(());
        }
        let fail = |detail: String| Err(Violation::new("liveness", 21, detail, now));
        for &v in &self.vrids {
            let with: Vec<usize> = (0..directors.len())
                .filter(|&d| directors[d].instance(v).is_some())
                .collect();
            let masters: Vec<usize> = with
                .iter()
                .copied()
                .filter(|&d| directors[d].state(v) == Some(State::Master))
                .collect();
            if masters.len() != 1 {
                return fail(format!(
                    "after healing, VRID {}{} has masters {masters:?}",
                    v.id,
                    if v.v6 { " (IPv6)" } else { "" }
                ));
            }
            // The highest priority wins when it preempts (or owns).
            let prio = |d: usize| {
                directors[d]
                    .instance(v)
                    .map_or(0, |i| i.effective_priority())
            };
            let top = with.iter().map(|&d| prio(d)).max().unwrap_or(0);
            let tops: Vec<usize> = with.iter().copied().filter(|&d| prio(d) == top).collect();
            if let [t] = tops[..]
                && directors[t]
                    .instance(v)
                    .is_some_and(|i| i.config().preempt || top == 255)
                && masters[0] != t
            {
                return fail(format!(
                    "after healing, director {} is master of VRID {}, not director {t}, which has the highest priority ({top}) and preempts",
                    masters[0], v.id
                ));
            }
        }
        // Every real server up on every director holding its VIP.
        for (si, s) in self.services.iter().enumerate() {
            for d in directors.iter().filter(|d| d.holds(s.vip)) {
                for r in &s.reals {
                    if d.server_healthy(si, r.addr) == Some(false) {
                        return fail(format!(
                            "after healing, director {} still has server {} of service {si} down",
                            d.id, r.addr
                        ));
                    }
                }
            }
        }
        let Some(settled) = self.burst_at else {
            return Ok(());
        };
        if let Some(t) = self.lost_after.iter().find(|t| **t >= settled) {
            return fail(format!(
                "a flow opened at {:.6}s, after the cluster settled ({:.6}s), was lost",
                *t as f64 / 1e6,
                settled as f64 / 1e6
            ));
        }
        // (ovf refusing every flow of a client, its servers full, is by
        // design.)
        if let Some(c) = clients.iter().find(|c| {
            c.completed == 0
                && c.opened > 0
                && !c.addrs.iter().any(|a| self.scheduler_dropped.contains(a))
        }) {
            return fail(format!(
                "client {} opened {} flows and never completed one",
                c.index, c.opened
            ));
        }
        // Every healthy server receives new flows, where the scheduler
        // spreads them: rr and wrr by turns, sh and mh over the burst's
        // hundreds of sources. fo sends every flow to the heaviest
        // server, dh every flow to the VIP's one bucket. lc, wlc, sed and
        // nq count connections, and older ones (lost flows stay
        // ESTABLISHED for 15 minutes, UDP ones 300 s, as in IPVS) can
        // outweigh the whole burst: a server must receive when the burst
        // surely outweighs its lead ([`burst_need`]). ovf drops by design
        // once every server holds more active connections than its weight,
        // so it promises nothing here.
        for (si, s) in self.services.iter().enumerate() {
            let receivers: Vec<usize> = servers
                .iter()
                .filter(|srv| {
                    self.burst_served
                        .get(&(si, srv.reply_id()))
                        .is_some_and(|n| *n > 0)
                })
                .map(|srv| srv.index)
                .collect();
            if receivers.is_empty() && s.scheduler != Scheduler::Ovf {
                return fail(format!(
                    "after healing, no server received a new flow of service {si} ({} {} {})",
                    s.vip,
                    s.port,
                    if s.protocol == 17 { "UDP" } else { "TCP" }
                ));
            }
            let counting = matches!(
                s.scheduler,
                Scheduler::Lc | Scheduler::Wlc | Scheduler::Sed | Scheduler::Nq
            );
            let spreads = counting
                || matches!(
                    s.scheduler,
                    Scheduler::Rr | Scheduler::Wrr | Scheduler::Sh | Scheduler::Mh
                );
            if !spreads {
                continue;
            }
            for r in s.reals.iter().filter(|r| r.weight > 0) {
                if counting {
                    let Some((loads, flows)) = self.burst_loads.get(&si) else {
                        continue;
                    };
                    // Flows opened in the burst's last quarter may not
                    // count as active yet; twice the need covers loads
                    // that other flows change meanwhile.
                    let budget = flows * 3 / 4;
                    match burst_need(s.scheduler, s.protocol, loads, r.addr) {
                        Some(need) if 2 * need + 4 <= budget => {}
                        _ => continue,
                    }
                }
                let Some(host) = servers.iter().find(|h| h.has(r.addr)) else {
                    continue;
                };
                if !receivers.contains(&host.index) {
                    return fail(format!(
                        "after healing, healthy server {} received no new flow of service {si} ({} {}, {}) in the burst",
                        r.addr,
                        s.vip,
                        s.port,
                        s.scheduler.name()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// How many burst flows must open before one surely reaches `target` under
/// a counting scheduler, from the servers' `loads` (list order) when the
/// burst began: the flows the others take before each has a worse key
/// than `target`'s, a tie going to the earlier server (ip_vs_lc.c,
/// ip_vs_wlc.c, ip_vs_sed.c, ip_vs_nq.c). A TCP flow counts as 256 units
/// of overhead once established, a UDP one as 1 (IPVS never counts UDP
/// connections active). None: the burst can never reach it (sed and nq
/// over UDP, whose keys do not move).
pub fn burst_need(
    kind: Scheduler,
    protocol: u8,
    loads: &[ServerLoad],
    target: IpAddr,
) -> Option<u64> {
    let pos = loads.iter().position(|l| l.addr == target)?;
    let t = loads[pos];
    // Units `o` must gain for `target` to win: it wins when lhs < rhs, or
    // lhs <= rhs when it comes first; each unit adds `step` to rhs.
    let units = |lhs: u64, rhs: u64, step: u64, first: bool| -> u64 {
        let step = step.max(1);
        match (first, lhs.cmp(&rhs)) {
            (true, std::cmp::Ordering::Greater) => (lhs - rhs).div_ceil(step),
            (true, _) => 0,
            (false, std::cmp::Ordering::Less) => 0,
            (false, _) => (lhs - rhs) / step + 1,
        }
    };
    let per_flow = if protocol == 6 { 256 } else { 1 };
    let mut need = 0u64;
    for (i, o) in loads.iter().enumerate() {
        if i == pos || o.weight == 0 {
            continue;
        }
        let first = pos < i;
        let (wt, wo) = (u64::from(t.weight), u64::from(o.weight));
        let flows = match kind {
            Scheduler::Lc => units(overhead(&t), overhead(o), 1, first).div_ceil(per_flow),
            Scheduler::Wlc => {
                units(overhead(&t) * wo, overhead(o) * wt, wt, first).div_ceil(per_flow)
            }
            Scheduler::Sed | Scheduler::Nq => {
                let sed = units(
                    (u64::from(t.active) + 1) * wo,
                    (u64::from(o.active) + 1) * wt,
                    wt,
                    first,
                );
                // nq: an idle server wins over a busy one, the earlier of
                // two idle ones wins.
                let n = match (kind, t.active == 0, o.active == 0) {
                    (Scheduler::Nq, true, false) => 0,
                    (Scheduler::Nq, true, true) => u64::from(!first),
                    (Scheduler::Nq, false, true) => 1 + sed,
                    _ => sed,
                };
                if n > 0 && protocol != 6 {
                    return None;
                }
                n
            }
            _ => 0,
        };
        need += flows;
    }
    Some(need)
}

fn overhead(l: &ServerLoad) -> u64 {
    // ip_vs_lc.c / ip_vs_wlc.c: active connections weigh 256 inactive.
    u64::from(l.active) * 256 + u64::from(l.inactive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(last: u8, weight: u32, active: u32, inactive: u32) -> ServerLoad {
        ServerLoad {
            addr: IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, last)),
            weight,
            active,
            inactive,
        }
    }

    #[test]
    fn burst_need_follows_each_counting_scheduler() {
        let a = load(100, 1, 20, 0);
        let b = load(101, 3, 0, 0);
        let (ta, tb) = (a.addr, b.addr);
        // sed: A (weight 1, 20 zombies) waits until B's (active+1)/3
        // reaches 21 (A comes first, so a tie is A's): 62 flows on B.
        assert_eq!(burst_need(Scheduler::Sed, 6, &[a, b], ta), Some(62));
        assert_eq!(burst_need(Scheduler::Sed, 6, &[a, b], tb), Some(0));
        // Over UDP nothing becomes active: A is never reached.
        assert_eq!(burst_need(Scheduler::Sed, 17, &[a, b], ta), None);
        // lc: overheads 5120 and 0, 256 per established TCP flow.
        assert_eq!(burst_need(Scheduler::Lc, 6, &[a, b], ta), Some(20));
        // nq: an idle B wins at once; A needs B busy and then sed's 62.
        assert_eq!(burst_need(Scheduler::Nq, 6, &[a, b], tb), Some(0));
        assert_eq!(burst_need(Scheduler::Nq, 6, &[a, b], ta), Some(63));
        let c = load(102, 1, 0, 3);
        let d = load(103, 1, 0, 1);
        assert_eq!(burst_need(Scheduler::Lc, 17, &[c, d], c.addr), Some(2));
        assert_eq!(burst_need(Scheduler::Lc, 17, &[c, d], d.addr), Some(0));
    }

    #[test]
    fn table_capacity_fires_past_the_capacity_only() {
        assert!(check_table(0, 4096, 4096, 1).is_ok());
        let v = check_table(1, 4097, 4096, 5).unwrap_err();
        assert_eq!((v.name, v.code, v.at_us), ("table_capacity", 20, 5));
        assert!(v.detail.contains("director 1"), "{}", v.detail);
    }

    fn spec(kind: ProbeKind, timeout_s: u64) -> CheckSpec {
        CheckSpec {
            kind,
            target: ("192.0.2.100".parse().unwrap(), 80),
            delay_loop_us: 6_000_000,
            timeout_us: timeout_s * 1_000_000,
            retry: 3,
            dbr_us: 3_000_000,
            warmup_us: 0,
            status: Vec::new(),
        }
    }

    #[test]
    fn which_modes_fail_which_checks() {
        let tcp = spec(ProbeKind::Tcp, 2);
        let http = spec(ProbeKind::Http, 2);
        let misc = spec(ProbeKind::Misc, 2);
        assert_eq!(fails_check(Mode::BadStatus, &tcp, 100, 0), Some(false));
        assert_eq!(fails_check(Mode::BadStatus, &http, 100, 0), Some(true));
        assert_eq!(fails_check(Mode::BadStatus, &misc, 100, 0), Some(true));
        // Slower than the timeout: a deadline; an HTTP probe waits twice.
        assert_eq!(fails_check(Mode::Slow(2_500_000), &tcp, 100, 0), Some(true));
        assert_eq!(
            fails_check(Mode::Slow(1_200_000), &tcp, 100, 0),
            Some(false)
        );
        assert_eq!(
            fails_check(Mode::Slow(1_200_000), &http, 100, 0),
            Some(true)
        );
        assert_eq!(fails_check(Mode::Slow(1_995_000), &tcp, 100, 0), None);
        let mut accepts_500 = spec(ProbeKind::Http, 2);
        accepts_500.status.push((200, 599));
        assert_eq!(
            fails_check(Mode::BadStatus, &accepts_500, 100, 0),
            Some(false)
        );
    }
}
