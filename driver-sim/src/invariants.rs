//! The rules a correct cluster keeps, checked after every event. Each has
//! a stable name and exit code. Bounds are computed here from the
//! configuration with the RFC's formulas, independently of the core, so a
//! core that computes them wrongly is caught.
//!
//! | code | name | rule |
//! |---|---|---|
//! | 10 | single_master | two connected masters of a VRID never last longer than twice Master_Down_Interval |
//! | 11 | failover_bound | a connected part with live directors has a master again within Master_Down_Interval (plus one interval and latency) |
//! | 12 | owner_wins | a live address owner (priority 255) is master |
//! | 13 | preemption_rules | no takeover from a live, heard master unless preempting a lower priority after preempt_delay (never with nopreempt) |
//! | 14 | premature_takeover | a backup never declares the master down before Master_Down_Interval (Skew_Time after priority 0) of its own clock has passed since the last advert it accepted |
//! | 15 | graceful_handover | after a master stops gracefully, a backup takes over within its Skew_Time (plus latency) |
//! | 16 | flow_sticky | an established flow stays on its server while that server is up and the VIP holder is unchanged |
//! | 17 | persistence_kept | a client's new flows go to its server within the persistence timeout, same conditions |
//! | 18 | no_flow_to_down_server | no new flow goes to a server the director marked down |
//! | 19 | check_bound | a failed server is marked down within the bound its check parameters give |
//! | 20 | table_capacity | connection tables never exceed their capacity |
//! | 21 | liveness | after healing: one master, every server up, every client served |
//! | 22 | synced_flow_kept | with connection sync, a director that received a flow's sync entry forwards the flow's packets (no SYN) to the entry's server, while that server is up and the entry lives: flows survive a failover |
//! | 23 | synced_flow_sent | with connection sync on a clean network (no loss, partition, crash, pause or change of VIP holder), a new flow's entry reaches every receiving peer within the flush interval |

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use vrlb_core::vrrp::{self, Reason, State, Version};
use vrlb_core::wire::sync::{self as sync_wire, EntryKind};

use crate::client::Client;
use crate::director::Director;
use crate::segment::Segment;
use crate::server::{Mode, Server};

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

/// Skew_Time of a configuration, by the RFCs (RFC 3768 in seconds for v2,
/// RFC 9568 scaled by the interval for v3).
pub fn skew_us(c: &vrrp::Config) -> u64 {
    let weight = 256 - u64::from(c.priority);
    match c.version {
        Version::V2 => weight * 1_000_000 / 256,
        Version::V3 => weight * u64::from(c.advert_interval_cs) * 10_000 / 256,
    }
}

/// Master_Down_Interval of a configuration.
pub fn mdi_us(c: &vrrp::Config) -> u64 {
    u64::from(c.down_timer_adverts) * u64::from(c.advert_interval_cs) * 10_000 + skew_us(c)
}

/// A connection a director learned from a peer's sync message.
#[derive(Debug, Clone, Copy)]
struct SyncedFlow {
    server: Ipv4Addr,
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
    master_since: Option<u64>,
}

/// The invariants' memory.
#[derive(Debug)]
pub struct Invariants {
    /// Active-active directors behind ECMP: flows must survive a change of
    /// director (mh), so a director going down excuses no move.
    ecmp: bool,
    persistence_us: u64,
    life: Vec<Life>,
    dual_since: Option<u64>,
    /// Per director: since when it has been active with no master it hears.
    headless_since: Vec<Option<u64>>,
    /// Since when some director has been headless (for failover figures).
    cluster_headless_since: Option<u64>,
    headless_after_loss: bool,
    topology_changed_at: u64,
    /// When a director last went down (crash or stop).
    last_down_at: u64,
    epoch_changed_at: u64,
    healed_at: Option<u64>,
    /// When each server (by address) was last marked down by any director.
    server_down_at: BTreeMap<Ipv4Addr, u64>,
    /// When any director last saw any server's health change.
    server_set_changed_at: u64,
    /// Flows that changed server, under ECMP, after a director moved them
    /// while the server set was changing (the admitted mh disruption).
    pub moved_by_server_change: u64,
    /// Per client address: (server, flow opened at, epoch) of its last flow.
    last_flow: BTreeMap<Ipv4Addr, (u32, u64, u64)>,
    /// Lost flows (opened at, flow) not explained by the scheduler.
    lost_after: Vec<u64>,
    /// Flows the scheduler dropped by design (no server).
    scheduler_drops: std::collections::BTreeSet<(Ipv4Addr, u16)>,
    /// Failover durations seen (master lost to master found), microseconds.
    pub failovers: Vec<u64>,
    /// Persistent clients' new flows that stayed, and all of them.
    pub persistence: (u64, u64),
    /// Per director: connections received by sync, by (client, port).
    synced: Vec<BTreeMap<(Ipv4Addr, u16), SyncedFlow>>,
    /// Packets of flows a director learned by sync that it forwarded to
    /// their server (flows kept across a failover).
    pub synced_kept: u64,
    /// Sync messages delivered to a receiving director.
    pub sync_messages: u64,
    /// New flows at a sync sender whose entries are due: (sender, flow)
    /// -> server.
    sync_due: BTreeMap<(usize, (Ipv4Addr, u16)), Ipv4Addr>,
    /// When each director last marked each server up.
    server_up_at: BTreeMap<(usize, Ipv4Addr), u64>,
    /// Flows any director has forwarded: a flow is new only once (a
    /// retransmitted SYN opens nothing, and a flow another director began
    /// may already be in this one's table, by sync).
    flows_seen: std::collections::BTreeSet<(Ipv4Addr, u16)>,
    /// Flows whose entries were checked to have reached every peer.
    pub synced_sent: u64,
}

fn slack_us(seg: &Segment) -> u64 {
    2 * (seg.link.latency_us + seg.link.jitter_us) + 2_000
}

fn mutually(seg: &Segment, a: usize, b: usize) -> bool {
    seg.connected(a, b) && seg.connected(b, a)
}

impl Invariants {
    /// Invariants for a service with this persistence timeout.
    pub fn new(persistence_s: u64, ecmp: bool) -> Self {
        Invariants {
            ecmp,
            persistence_us: persistence_s * 1_000_000,
            life: Vec::new(),
            dual_since: None,
            headless_since: Vec::new(),
            cluster_headless_since: None,
            headless_after_loss: false,
            topology_changed_at: 0,
            last_down_at: 0,
            epoch_changed_at: 0,
            healed_at: None,
            server_down_at: BTreeMap::new(),
            server_set_changed_at: 0,
            moved_by_server_change: 0,
            last_flow: BTreeMap::new(),
            lost_after: Vec::new(),
            scheduler_drops: std::collections::BTreeSet::new(),
            failovers: Vec::new(),
            persistence: (0, 0),
            synced: Vec::new(),
            synced_kept: 0,
            sync_messages: 0,
            sync_due: BTreeMap::new(),
            flows_seen: std::collections::BTreeSet::new(),
            server_up_at: BTreeMap::new(),
            synced_sent: 0,
        }
    }

    fn life(&mut self, d: usize) -> &mut Life {
        if self.life.len() <= d {
            self.life.resize(d + 1, Life::default());
        }
        &mut self.life[d]
    }

    /// Whether `d` runs, unpaused, at `now`.
    fn active(d: &Director<'_>, now: u64) -> bool {
        d.is_up() && now >= d.paused_until
    }

    /// A director started.
    pub fn director_up(&mut self, d: usize, now: u64) {
        self.forget_synced(d);
        let l = self.life(d);
        l.up_since = Some(now);
        l.master_since = None;
    }

    /// A director went down (crash or stop).
    pub fn director_down(&mut self, directors: &[Director<'_>], d: usize, now: u64) {
        if directors[d].vrrp_state() == Some(State::Master) {
            self.headless_after_loss = true;
        }
        // Its tables die with it.
        self.forget_synced(d);
        let l = self.life(d);
        l.up_since = None;
        l.master_since = None;
        self.last_down_at = now;
    }

    /// A director stalls.
    pub fn paused(&mut self, d: usize, from: u64, until: u64) {
        self.life(d).pause = (from, until);
    }

    /// Partitions or links changed.
    pub fn topology_changed(&mut self, now: u64) {
        self.topology_changed_at = now;
        self.dual_since = None;
    }

    /// The liveness phase began.
    pub fn healed(&mut self, now: u64) {
        self.healed_at = Some(now);
    }

    /// The set of VIP holders changed.
    pub fn epoch_changed(&mut self, now: u64) {
        self.epoch_changed_at = now;
    }

    /// A director's node marked a server up or down.
    pub fn health(&mut self, d: usize, server: Ipv4Addr, up: bool, now: u64) {
        self.server_set_changed_at = now;
        if !up {
            self.server_down_at.insert(server, now);
        } else {
            self.server_up_at.insert((d, server), now);
        }
    }

    /// A director's scheduler found no server for this flow (ovf with every
    /// server full, dh/sh without fallback on an unavailable server).
    pub fn dropped_by_scheduler(&mut self, flow: (Ipv4Addr, u16)) {
        self.scheduler_drops.insert(flow);
    }

    /// A flow was lost.
    pub fn lost(&mut self, flow: (Ipv4Addr, u16), opened_at: u64) {
        if !self.scheduler_drops.remove(&flow) {
            self.lost_after.push(opened_at);
        }
    }

    /// Checks run after every event.
    pub fn after_event(
        &mut self,
        directors: &[Director<'_>],
        seg: &Segment,
        now: u64,
    ) -> Result<(), Violation> {
        // VRRP rules concern VRRP directors (ECMP directors run none).
        let active: Vec<usize> = (0..directors.len())
            .filter(|&d| Self::active(&directors[d], now) && directors[d].vrrp_config().is_some())
            .collect();
        let masters: Vec<usize> = active
            .iter()
            .copied()
            .filter(|&d| directors[d].vrrp_state() == Some(State::Master))
            .collect();
        let max_mdi = directors
            .iter()
            .filter_map(|d| d.vrrp_config())
            .map(mdi_us)
            .max()
            .unwrap_or(0);
        let interval = directors
            .iter()
            .filter_map(|d| d.vrrp_config())
            .map(|c| u64::from(c.advert_interval_cs) * 10_000)
            .max()
            .unwrap_or(0);
        let slack = slack_us(seg) + max_mdi / 100;

        // single_master
        let dual = masters
            .iter()
            .enumerate()
            .any(|(i, &a)| masters[i + 1..].iter().any(|&b| mutually(seg, a, b)));
        if dual {
            let since = *self.dual_since.get_or_insert(now);
            if now - since > 2 * max_mdi + slack {
                return Err(Violation::new(
                    "single_master",
                    10,
                    format!(
                        "directors {masters:?} have both been master since {:.6}s",
                        since as f64 / 1e6
                    ),
                    now,
                ));
            }
        } else {
            self.dual_since = None;
        }

        // failover_bound: every active director is a master or hears one
        // (a one-way link can leave a backup that hears its master but is
        // not heard: that is not headless).
        self.headless_since.resize(directors.len(), None);
        let mut any_headless = false;
        for a in 0..directors.len() {
            let headless =
                active.contains(&a) && !masters.iter().any(|&m| m == a || seg.connected(m, a));
            if !headless {
                self.headless_since[a] = None;
                continue;
            }
            any_headless = true;
            let since = *self.headless_since[a].get_or_insert(now);
            let bound = max_mdi + interval + slack;
            if now - since > bound {
                return Err(Violation::new(
                    "failover_bound",
                    11,
                    format!(
                        "director {a} has had no master for {:.6}s (bound {:.6}s)",
                        (now - since) as f64 / 1e6,
                        bound as f64 / 1e6
                    ),
                    now,
                ));
            }
        }
        if let Some(since) = self.cluster_headless_since {
            if !any_headless {
                self.cluster_headless_since = None;
                if std::mem::take(&mut self.headless_after_loss) {
                    self.failovers.push(now - since);
                }
            }
        } else if any_headless {
            self.cluster_headless_since = Some(now);
        }

        // owner_wins
        for &d in &active {
            let Some(c) = directors[d].vrrp_config() else {
                continue;
            };
            if c.priority != 255 {
                continue;
            }
            let l = self.life(d);
            let since = l.up_since.unwrap_or(now).max(l.pause.1);
            let state = directors[d].vrrp_state();
            if now > since + slack && state != Some(State::Master) && state != Some(State::Fault) {
                return Err(Violation::new(
                    "owner_wins",
                    12,
                    format!("owner director {d} is {state:?}"),
                    now,
                ));
            }
        }

        // table_capacity
        for (i, d) in directors.iter().enumerate() {
            let (used, cap) = d.table_use();
            if used > cap {
                return Err(Violation::new(
                    "table_capacity",
                    20,
                    format!("director {i} tracks {used} > {cap}"),
                    now,
                ));
            }
        }
        Ok(())
    }

    /// A director's VRRP state changed.
    pub fn state_changed(
        &mut self,
        directors: &[Director<'_>],
        seg: &Segment,
        d: usize,
        to: State,
        reason: Reason,
        now: u64,
    ) -> Result<(), Violation> {
        let me = &directors[d];
        self.life(d).master_since = (to == State::Master).then_some(now);
        if to != State::Master || reason != Reason::MasterDown {
            return Ok(());
        }
        let Some(c) = me.vrrp_config() else {
            return Ok(());
        };
        let slack = slack_us(seg);

        // premature_takeover, measured on the director's own clock.
        if let Some((t_adv, local_adv, priority)) = me.last_master_advert
            && t_adv >= me.started_at
        {
            let expected = if priority == 0 { skew_us(c) } else { mdi_us(c) };
            let elapsed = me
                .local(now)
                .as_micros()
                .saturating_sub(local_adv.as_micros());
            if elapsed + 1 < expected {
                return Err(Violation::new(
                    "premature_takeover",
                    14,
                    format!(
                        "director {d} took over {:.6}s after the master's last advert (priority {priority}); expected {:.6}s",
                        elapsed as f64 / 1e6,
                        expected as f64 / 1e6
                    ),
                    now,
                ));
            }
        }

        // preemption_rules: was there a live master it was hearing?
        let window = mdi_us(c) + slack;
        let since_ok = |t: u64| t + window <= now;
        for (m, other) in directors.iter().enumerate() {
            if m == d || !Self::active(other, now) || other.vrrp_state() != Some(State::Master) {
                continue;
            }
            let Some(oc) = other.vrrp_config() else {
                continue;
            };
            let l = self.life.get(m).copied().unwrap_or_default();
            let mine = self.life.get(d).copied().unwrap_or_default();
            let steady = l.master_since.is_some_and(since_ok)
                && l.up_since.is_some_and(since_ok)
                && since_ok(l.pause.1)
                && since_ok(mine.pause.1)
                && since_ok(self.topology_changed_at)
                && mutually(seg, d, m)
                && seg.link.loss_ppm == 0;
            if !steady {
                continue;
            }
            let preempting = c.preempt && c.priority > oc.priority;
            let delay_ok = mine
                .up_since
                .is_some_and(|t| now >= t + c.preempt_delay.as_micros());
            if !preempting || !delay_ok {
                return Err(Violation::new(
                    "preemption_rules",
                    13,
                    format!(
                        "director {d} (priority {}, preempt {}, preempt_delay {}) took over from live master {m} (priority {})",
                        c.priority, c.preempt, c.preempt_delay, oc.priority
                    ),
                    now,
                ));
            }
        }
        Ok(())
    }

    /// How long after a graceful stop of master `d` a backup must be master,
    /// if the situation allows a firm bound.
    pub fn handover_bound(
        &self,
        directors: &[Director<'_>],
        seg: &Segment,
        d: usize,
        now: u64,
    ) -> Option<u64> {
        directors
            .iter()
            .enumerate()
            .filter(|(b, other)| {
                *b != d
                    && Self::active(other, now)
                    && other.vrrp_state() == Some(State::Backup)
                    && mutually(seg, d, *b)
            })
            .filter_map(|(_, other)| other.vrrp_config())
            .map(|c| skew_us(c) + skew_us(c) / 100 + slack_us(seg))
            .min()
    }

    /// The graceful-handover deadline passed.
    pub fn handover_deadline(
        &mut self,
        directors: &[Director<'_>],
        since: u64,
        now: u64,
    ) -> Result<(), Violation> {
        // Another director going down or stalling meanwhile voids the bound.
        if self.topology_changed_at > since
            || self.last_down_at > since
            || self.life.iter().any(|l| l.pause.0 >= since)
        {
            return Ok(());
        }
        let any_master = directors
            .iter()
            .any(|o| Self::active(o, now) && o.vrrp_state() == Some(State::Master));
        if !any_master {
            return Err(Violation::new(
                "graceful_handover",
                15,
                format!(
                    "no backup took over within Skew_Time of the master's graceful stop at {:.6}s",
                    since as f64 / 1e6
                ),
                now,
            ));
        }
        Ok(())
    }

    /// How long a director may take to mark a just-failed server down.
    pub fn down_deadline(&self, d: &Director<'_>, s: &Server, seg: &Segment) -> Option<u64> {
        if !d.is_up() || d.checks_suspended() {
            return None;
        }
        let bound = d.down_bound(s.addr)?.as_micros();
        Some(bound + bound / 100 + slack_us(seg) + 50_000)
    }

    /// A failed server's deadline passed.
    pub fn check_down_deadline(
        &mut self,
        d: &Director<'_>,
        s: &Server,
        since: u64,
        now: u64,
    ) -> Result<(), Violation> {
        let still_failing = matches!(s.mode, Mode::Refuse | Mode::Hang) && s.mode_since <= since;
        let l = self.life.get(d.id).copied().unwrap_or_default();
        let steady = l.up_since.is_some_and(|t| t <= since)
            && l.pause.1 <= since
            && self.topology_changed_at <= since;
        if still_failing && steady && d.server_healthy(s.addr) == Some(true) {
            return Err(Violation::new(
                "check_bound",
                19,
                format!(
                    "director {} still has server {} up {:.6}s after it failed",
                    d.id,
                    s.addr,
                    (now - since) as f64 / 1e6
                ),
                now,
            ));
        }
        Ok(())
    }

    /// A director forwarded a packet.
    pub fn forward(
        &mut self,
        d: &Director<'_>,
        _client: (Ipv4Addr, u16),
        syn: bool,
        server: Ipv4Addr,
        now: u64,
    ) -> Result<(), Violation> {
        if syn && d.server_healthy(server) == Some(false) {
            return Err(Violation::new(
                "no_flow_to_down_server",
                18,
                format!(
                    "director {} sent a new flow to {server}, which it marked down",
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
        flow: (Ipv4Addr, u16),
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
            // tables, excuses a move.
            // A stalled director replaying old frames when it wakes can
            // answer for a VIP it no longer holds.
            srv.mode_since > since
                || inv
                    .server_down_at
                    .get(&srv.addr)
                    .is_some_and(|t| *t > since)
                || (!inv.ecmp && inv.last_down_at > since)
                || inv.life.iter().any(|l| l.pause.1 > since)
        };
        match before {
            // Under ECMP a moved flow is scheduled by the new director's
            // Maglev table: if the server set changed since the flow began,
            // that table may differ (the disruption the design admits).
            Some(b)
                if b != server
                    && self.ecmp
                    && !disturbed(b, opened_at, self)
                    && self.server_set_changed_at > opened_at =>
            {
                self.moved_by_server_change += 1;
            }
            Some(b) if b != server && !disturbed(b, opened_at, self) && flow_epoch == epoch => {
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
            None if self.persistence_us > 0 => {
                let last = self.last_flow.get(&flow.0).copied();
                if last.is_some_and(|l| opened_at < l.1) {
                    // Answered out of order: compare only in opening order.
                    return Ok(());
                }
                if let Some((last, last_open, last_epoch)) = last
                    && opened_at < last_open + self.persistence_us.saturating_sub(1_000_000)
                {
                    self.persistence.1 += 1;
                    if last == server {
                        self.persistence.0 += 1;
                    } else if !disturbed(last, last_open, self)
                        && last_epoch == flow_epoch
                        && flow_epoch == epoch
                    {
                        return Err(Violation::new(
                            "persistence_kept",
                            17,
                            format!(
                                "client {} went to server {server}, {:.3}s after its flow to server {last} (persistence {}s)",
                                flow.0,
                                (opened_at - last_open) as f64 / 1e6,
                                self.persistence_us / 1_000_000
                            ),
                            now,
                        ));
                    }
                }
                self.last_flow
                    .insert(flow.0, (server, opened_at, flow_epoch));
            }
            None => {}
        }
        Ok(())
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
        let Ok((_, entries)) = sync_wire::parse(payload) else {
            return;
        };
        if self.synced.len() <= d {
            self.synced.resize_with(d + 1, BTreeMap::new);
        }
        self.sync_messages += 1;
        for e in entries {
            let (EntryKind::Connection, std::net::IpAddr::V4(client), std::net::IpAddr::V4(server)) =
                (e.kind, e.client, e.server)
            else {
                continue;
            };
            // An entry for a server the receiver has not listed (its checks
            // have it down) is refused: it promises nothing.
            if director.server_healthy(server) != Some(true) {
                continue;
            }
            let valid_until =
                (now + u64::from(e.timeout_ms) * 1000).saturating_sub(SYNC_DRIFT_SLACK_US);
            self.synced[d].insert(
                (client, e.client_port),
                SyncedFlow {
                    server,
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
        flow: (Ipv4Addr, u16),
        to: Option<Ipv4Addr>,
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
            return Ok(());
        }
        // What excuses a move: the entry's server failing or marked down
        // since (by anyone), or not usable here; a full table.
        let srv = servers.iter().find(|s| s.addr == entry.server);
        let excused = srv.is_none_or(|s| s.mode_since > entry.delivered_at)
            || self
                .server_down_at
                .get(&entry.server)
                .is_some_and(|t| *t > entry.delivered_at)
            || d.server_healthy(entry.server) != Some(true)
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
        flow: (Ipv4Addr, u16),
        server: Ipv4Addr,
        now: u64,
    ) -> Option<u64> {
        if !self.flows_seen.insert(flow) || !d.sync_role().is_some_and(|r| r.sends()) {
            return None;
        }
        self.sync_due.insert((d.id, flow), server);
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
        flow: (Ipv4Addr, u16),
        since: u64,
        now: u64,
    ) -> Result<(), Violation> {
        let Some(server) = self.sync_due.remove(&(d0, flow)) else {
            return Ok(());
        };
        let started_before = |l: &Life| l.up_since.is_some_and(|t| t <= since);
        let life = |d: usize| self.life.get(d).copied().unwrap_or_default();
        let clean = seg.link.loss_ppm == 0
            && self.topology_changed_at <= since
            && self.last_down_at <= since
            && self.epoch_changed_at <= since
            && self.life.iter().all(|l| l.pause.1 <= since)
            && self.server_down_at.get(&server).is_none_or(|t| *t <= since)
            && servers
                .iter()
                .find(|s| s.addr == server)
                .is_some_and(|s| s.mode_since <= since);
        let sender = &directors[d0];
        if !clean
            || !Self::active(sender, now)
            || !started_before(&life(d0))
            || !sender.sync_role().is_some_and(|r| r.sends())
            || sender.table_use().0 >= sender.table_use().1
        {
            return Ok(());
        }
        for (p, peer) in directors.iter().enumerate() {
            let receives = p != d0
                && Self::active(peer, now)
                && started_before(&life(p))
                && peer.sync_role().is_some_and(|r| r.receives())
                && mutually(seg, d0, p)
                && peer.server_healthy(server) == Some(true)
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

    /// Checks at the end of a run that healed.
    pub fn liveness(
        &mut self,
        directors: &[Director<'_>],
        servers: &[Server],
        clients: &[Client],
        healed: bool,
        now: u64,
    ) -> Result<(), Violation> {
        let Some(healed_at) = self.healed_at.filter(|_| healed) else {
            return Ok(());
        };
        let masters: Vec<usize> = (0..directors.len())
            .filter(|&d| directors[d].vrrp_state() == Some(State::Master))
            .collect();
        if masters.len() != 1 {
            return Err(Violation::new(
                "liveness",
                21,
                format!("after healing, masters {masters:?}"),
                now,
            ));
        }
        let m = &directors[masters[0]];
        for s in servers {
            if m.server_healthy(s.addr) == Some(false) {
                return Err(Violation::new(
                    "liveness",
                    21,
                    format!("after healing, server {} still down on the master", s.addr),
                    now,
                ));
            }
        }
        let max_mdi = directors
            .iter()
            .filter_map(|d| d.vrrp_config())
            .map(mdi_us)
            .max()
            .unwrap_or(0);
        let max_check = directors
            .iter()
            .flat_map(|d| servers.iter().filter_map(|s| d.down_bound(s.addr)))
            .max()
            .map_or(0, |b| b.as_micros());
        // Hosts may still hold a stale ARP entry for the VIP: after a split
        // heals, the surviving master need not announce itself again (as
        // keepalived without garp_master_refresh), so wait out the cache.
        let settled = healed_at + 2 * max_mdi + max_check + crate::client::ARP_TTL_US + 10_000_000;
        if let Some(t) = self.lost_after.iter().find(|t| **t >= settled) {
            return Err(Violation::new(
                "liveness",
                21,
                format!(
                    "a flow opened at {:.6}s, after the cluster settled, was lost",
                    *t as f64 / 1e6
                ),
                now,
            ));
        }
        if settled < now && clients.iter().any(|c| c.completed == 0 && c.opened > 0) {
            return Err(Violation::new(
                "liveness",
                21,
                "a client never completed a flow".into(),
                now,
            ));
        }
        Ok(())
    }
}
