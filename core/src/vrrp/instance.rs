//! One VRRP instance: the Initialize/Backup/Master/Fault machine of RFC 9568
//! section 6.4 (RFC 3768 for v2) with keepalived's extensions.
//!
//! Timers are a small table indexed by [`Timer`]; the next deadline is the
//! minimum of the table.
//!
//! Every input is recorded, then settled in steps that each check the
//! output queue has room for all they emit (see [`Instance`]).

use core::cmp::Ordering;
use core::fmt;
use core::net::IpAddr;

use heapless::Deque;

use super::config::{Config, ConfigError, MAX_TRACKS, Track, TrackId, TrackKind};
use super::stats::{DropReason, Stats};
use super::vips::{DefaultVips, VipStore};
use crate::mutation::{self, Mutation};
use crate::time::{Duration, Instant};
use crate::track_file::Effect;
use crate::wire::vrrp::{self as wire, Addrs, Auth, Family, Packet, Repr, Version};

/// Most outputs one step emits: becoming master (state change, advert,
/// add VIPs, GARP).
pub const MAX_OUTPUTS_PER_STEP: usize = 4;
/// Depth of the output queue: three steps (see [`Instance`]).
pub const OUTPUT_QUEUE: usize = 3 * MAX_OUTPUTS_PER_STEP;

// `tracks_down` keeps one bit per tracked object.
const _: () = assert!(MAX_TRACKS <= u8::BITS as usize);

/// Most steps one settling runs: stop or start, a sync group's demand, a
/// fault change, a re-announcement. A bound, not a count anyone reaches.
const MAX_STEPS_PER_SETTLE: usize = 4;

/// The states of RFC 9568 6.4 plus keepalived's Fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum State {
    /// Not started, or shut down.
    Init,
    /// Listening to a master.
    Backup,
    /// Holding the VIPs and advertising.
    Master,
    /// An interface or a weight-0 tracked object is down: neither listening
    /// nor advertising (keepalived's FAULT).
    Fault,
}

impl State {
    /// keepalived's name for the state, as notify scripts receive it.
    pub const fn name(self) -> &'static str {
        match self {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Reason {
    /// The instance started.
    Start,
    /// No advert within Master_Down_Interval (or Skew_Time after a
    /// priority-0 advert).
    MasterDown,
    /// A master with higher priority (or equal priority and a greater
    /// address) was heard.
    HigherPriority,
    /// An interface or weight-0 tracked object went down.
    Fault,
    /// The fault condition cleared.
    FaultCleared,
    /// Another member of the sync group moved.
    SyncGroup,
    /// The driver shut the instance down.
    Shutdown,
}

/// What the driver feeds an instance.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Leave Init: become owner-master, backup, or fault.
    Start,
    /// A received VRRP message (the IP payload) with its IP header fields.
    Advert {
        /// IP source.
        src: IpAddr,
        /// IP destination (the group or our address).
        dst: IpAddr,
        /// TTL / hop limit it arrived with. It must be 255 when `dst` is
        /// multicast (RFC 9568 7.1) and, as keepalived checks, whenever no
        /// `unicast_peer` is configured; unicast adverts to an instance with
        /// peers may have been routed.
        ttl: u8,
        /// The VRRP message.
        payload: &'a [u8],
    },
    /// A tracked interface or script changed.
    Track {
        /// Which object.
        id: TrackId,
        /// Its new state.
        up: bool,
    },
    /// A tracked file's value changed (see [`Effect::vrrp`]).
    TrackValue {
        /// Which file.
        id: TrackId,
        /// The number it holds.
        value: i32,
    },
    /// The instance's own interface changed.
    Link {
        /// Its new state.
        up: bool,
    },
    /// Stop: a master sends priority 0 and releases the VIPs.
    Shutdown,
}

/// What an instance asks the driver to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Output {
    /// Send an advert with this priority to every destination in
    /// [`Instance::advert_destinations`]; build it with
    /// [`Instance::emit_advert`].
    Advert {
        /// 0 when resigning, otherwise the effective priority.
        priority: u8,
    },
    /// Make the configured VIPs present on the interface (add what is
    /// missing, remove what this instance added and no longer lists).
    AddVips,
    /// Remove every VIP of this instance.
    RemoveVips,
    /// Send `repeat` gratuitous ARPs (IPv4) or unsolicited NAs (IPv6) for
    /// every VIP.
    Garp {
        /// Messages per VIP.
        repeat: u8,
    },
    /// The state changed (for notify scripts and logs).
    StateChanged {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        reason: Reason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Master: next advert.
    Advert,
    /// Backup: the master is declared down.
    MasterDown,
    /// Master: the second GARP burst (`garp_master_delay`).
    GarpDelay,
    /// Master: periodic GARP (`garp_master_refresh`).
    GarpRefresh,
}

impl Timer {
    const ALL: [Timer; 4] = [
        Timer::Advert,
        Timer::MasterDown,
        Timer::GarpDelay,
        Timer::GarpRefresh,
    ];

    /// Outputs firing it emits.
    const fn max_outputs(self) -> usize {
        match self {
            Timer::MasterDown => MAX_OUTPUTS_PER_STEP,
            Timer::Advert | Timer::GarpDelay | Timer::GarpRefresh => 1,
        }
    }
}

/// One VRRP instance, its VIPs in an `S` (see [`VipStore`]).
///
/// # Steps and the output queue
///
/// An input is first recorded (whether the instance should run, the link,
/// each tracked object, a sync group's demand, the configuration); then the
/// state is settled one *step* at a time. A step is one transition or one
/// reaction and emits at most [`MAX_OUTPUTS_PER_STEP`] outputs; it runs only
/// when the output queue has room for all of them, so nothing is ever
/// half-applied and no output is ever lost.
///
/// Drain contract: drain [`Instance::poll_output`] after every call. The
/// queue holds [`OUTPUT_QUEUE`] outputs, three steps, so a caller that
/// applies a few inputs before draining never waits (`Node` applies a
/// link change and the matching track, then a sync group's follow-up,
/// before it drains). When the queue lacks room anyway:
/// - a recorded input's step is deferred (each wait counted once in
///   [`Stats::steps_deferred`]) and runs from `poll_output` as soon as the
///   queue has room, so a full drain always completes it. Deferred inputs
///   coalesce: the instance moves straight to where all of them lead.
/// - a received advert is dropped ([`DropReason::Backpressure`]), like a
///   lost packet;
/// - a due timer stays due until `handle_timeout` finds room.
///
/// Callers that drain from `poll_output` see the state change there:
/// re-read [`Instance::poll_timeout`] after draining.
#[derive(Debug, Clone)]
pub struct Instance<S = DefaultVips> {
    config: Config,
    /// Advertised VIPs first, then `virtual_ipaddress_excluded` ones.
    vips: S,
    advertised: usize,
    state: State,
    now: Instant,
    /// Started and not shut down: where `Start` and `Shutdown` leave it.
    running: bool,
    link_up: bool,
    /// Bit `i` set: `config.tracks[i]` is down.
    tracks_down: u8,
    /// The last value of each [`TrackKind::Value`] track, by position in
    /// `config.tracks` (0 for the others).
    track_values: [i32; MAX_TRACKS],
    /// In Fault because its sync group is (cleared only by the group).
    group_fault: bool,
    /// A sync group's demand not yet applied.
    follow: Option<State>,
    /// A reconfigured master still owes an `AddVips`.
    owes_vips: bool,
    /// A reconfigured master still owes an advert (priority or interval
    /// changed).
    owes_advert: bool,
    /// A step waits for room in the output queue.
    deferred: bool,
    /// The interval the current master advertises (v3 learns it; RFC 9568
    /// Master_Adver_Interval).
    master_adver_interval: Duration,
    /// Until when a lower-priority master is tolerated (`preempt_delay`).
    preempt_tolerated_until: Instant,
    /// When a lower-priority master was first heard, if it still is.
    lower_master_since: Option<Instant>,
    timers: [Instant; Timer::ALL.len()],
    outputs: Deque<Output, OUTPUT_QUEUE>,
    stats: Stats,
}

/// One unit of settling (see [`Instance`]); each emits at most
/// [`MAX_OUTPUTS_PER_STEP`] outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Shut down: leave for Init.
    Stop,
    /// Started while in Init.
    Start,
    /// The sync group's demand.
    Follow(State),
    /// A fault appeared: Backup or Master to Fault.
    EnterFault,
    /// The fault cleared: Fault to Backup (or Master for an owner).
    LeaveFault,
    /// A reconfigured master re-announces.
    Reannounce,
}

impl<S: VipStore> Instance<S> {
    /// A stopped instance. `vips` are advertised; `excluded` are held but
    /// not advertised (`virtual_ipaddress_excluded`).
    pub fn new(config: Config, vips: &[IpAddr], excluded: &[IpAddr]) -> Result<Self, ConfigError> {
        config.validate()?;
        let vips = Self::vip_list(&config, vips, excluded)?;
        let master_adver_interval = config.advert_interval();
        Ok(Instance {
            advertised: vips.len() - excluded.len(),
            vips,
            state: State::Init,
            now: Instant::ZERO,
            running: false,
            link_up: true,
            tracks_down: 0,
            track_values: [0; MAX_TRACKS],
            group_fault: false,
            follow: None,
            owes_vips: false,
            owes_advert: false,
            deferred: false,
            master_adver_interval,
            preempt_tolerated_until: Instant::ZERO,
            lower_master_since: None,
            timers: [Instant::MAX; Timer::ALL.len()],
            outputs: Deque::new(),
            stats: Stats::default(),
            config,
        })
    }

    fn vip_list(config: &Config, vips: &[IpAddr], excluded: &[IpAddr]) -> Result<S, ConfigError> {
        for addr in vips.iter().chain(excluded) {
            // keepalived lets excluded VIPs be of either family; advertised
            // ones must match the instance.
            if Family::of(addr) != config.family && !excluded.contains(addr) {
                return Err(ConfigError::FamilyMismatch);
            }
        }
        if vips.len() > usize::from(u8::MAX) {
            return Err(ConfigError::Capacity);
        }
        S::from_lists(vips, excluded).ok_or(ConfigError::Capacity)
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }
    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// Every VIP: advertised first, then excluded.
    pub fn vips(&self) -> &[IpAddr] {
        &self.vips
    }
    /// The VIPs carried in adverts.
    pub fn advertised_vips(&self) -> &[IpAddr] {
        &self.vips[..self.advertised]
    }
    /// The interval the current master advertises.
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// The priority after tracking weights: base plus the weights of
    /// objects in their weighted state, kept within 1..=254; an owner
    /// (255) is not adjusted (keepalived ignores weights for owners).
    pub fn effective_priority(&self) -> u8 {
        let base = self.config.priority;
        if base == 255 {
            return 255;
        }
        let mut prio = i32::from(base);
        for (i, track) in self.config.tracks.iter().enumerate() {
            prio += match track.kind {
                TrackKind::Value => self.value_effect(i, track).adjustment(),
                TrackKind::UpDown => track.adjustment(self.tracks_down & (1 << i) == 0),
            };
        }
        prio.clamp(1, 254) as u8
    }

    /// What the value of `config.tracks[i]` (a file) does now.
    fn value_effect(&self, i: usize, track: &Track) -> Effect {
        if track.kind != TrackKind::Value {
            return Effect::Adjust(0);
        }
        Effect::vrrp(self.track_values[i], i32::from(track.weight), track.reverse)
    }

    /// Skew_Time for `priority`: RFC 9568 scales it by the master's
    /// interval; RFC 3768 (v2) uses seconds (keepalived's VRRP_TIMER_SKEW).
    pub fn skew_time(&self) -> Duration {
        if mutation::on(Mutation::NoSkew) {
            return Duration::ZERO;
        }
        let weight = 256 - u64::from(self.effective_priority());
        match self.config.version {
            Version::V2 => Duration::from_micros(weight * 1_000_000 / 256),
            Version::V3 => {
                Duration::from_micros(weight * self.master_adver_interval.as_micros() / 256)
            }
        }
    }

    /// Master_Down_Interval: `down_timer_adverts` (RFC: 3) times the
    /// master's interval, plus Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        let extra = u64::from(mutation::on(Mutation::LateMasterDown));
        self.master_adver_interval
            .saturating_mul(u64::from(self.config.down_timer_adverts) + extra)
            + self.skew_time()
    }

    fn in_fault(&self) -> bool {
        let weight0_down = self
            .config
            .tracks
            .iter()
            .enumerate()
            .any(|(i, t)| match t.kind {
                TrackKind::UpDown => t.faults(self.tracks_down & (1 << i) == 0),
                TrackKind::Value => self.value_effect(i, t) == Effect::Fault,
            });
        !self.link_up || weight0_down || self.group_fault
    }

    fn room_for(&self, outputs: usize) -> bool {
        self.outputs.capacity() - self.outputs.len() >= outputs
    }

    fn push(&mut self, output: Output) {
        // Every step checked `room_for` its most outputs before it began; a
        // full queue here is a bug in a step's output count.
        let pushed = self.outputs.push_back(output);
        debug_assert!(pushed.is_ok(), "output queue overflow");
    }

    fn set_timer(&mut self, timer: Timer, at: Instant) {
        self.timers[timer as usize] = at;
    }

    fn clear_timers(&mut self) {
        self.timers = [Instant::MAX; Timer::ALL.len()];
    }

    fn change_state(&mut self, to: State, reason: Reason) {
        let from = self.state;
        self.state = to;
        // A re-announcement owed as master lapses with the mastership.
        self.owes_vips = false;
        self.owes_advert = false;
        info!(
            "vrrp vrid {}: {:?} -> {:?} ({:?})",
            self.config.vrid, from, to, reason
        );
        self.push(Output::StateChanged { from, to, reason });
    }

    fn send_advert(&mut self, priority: u8) {
        self.stats.adverts_sent = self.stats.adverts_sent.saturating_add(1);
        self.push(Output::Advert { priority });
    }

    /// 4 outputs: state change, advert, add VIPs, GARP.
    fn become_master(&mut self, reason: Reason) {
        let now = self.now;
        self.clear_timers();
        self.master_adver_interval = self.config.advert_interval();
        self.lower_master_since = None;
        self.change_state(State::Master, reason);
        self.send_advert(self.effective_priority());
        self.push(Output::AddVips);
        self.push(Output::Garp {
            repeat: self.config.garp.repeat,
        });
        self.stats.became_master = self.stats.became_master.saturating_add(1);
        self.set_timer(Timer::Advert, now + self.config.advert_interval());
        if self.config.garp.delay > Duration::ZERO {
            self.set_timer(Timer::GarpDelay, now + self.config.garp.delay);
        }
        if self.config.garp.refresh > Duration::ZERO {
            self.set_timer(Timer::GarpRefresh, now + self.config.garp.refresh);
        }
    }

    /// At most 2 outputs: state change, remove VIPs (from Master).
    fn become_backup(&mut self, reason: Reason, down_in: Duration) {
        let was_master = self.state == State::Master;
        self.clear_timers();
        self.change_state(State::Backup, reason);
        if was_master {
            self.push(Output::RemoveVips);
        }
        self.set_timer(Timer::MasterDown, self.now + down_in);
    }

    /// Master -> Fault and Master -> Init resign with priority 0 so backups
    /// take over after Skew_Time instead of Master_Down_Interval. At most 3
    /// outputs: state change, priority-0 advert, remove VIPs.
    fn resign(&mut self, to: State, reason: Reason) {
        let was_master = self.state == State::Master;
        self.clear_timers();
        self.change_state(to, reason);
        if was_master {
            if !mutation::on(Mutation::NoPriorityZeroOnShutdown) {
                self.send_advert(0);
            }
            self.push(Output::RemoveVips);
        }
    }

    fn start(&mut self) {
        // Owner or not, a node that just (re)started hears nobody yet.
        self.preempt_tolerated_until = self.now + self.config.preempt_delay;
        if self.in_fault() {
            self.change_state(State::Fault, Reason::Fault);
        } else {
            self.enter_listening(Reason::Start);
        }
    }

    /// From Init or Fault: an owner becomes master at once; others listen,
    /// a `state MASTER` node for one interval plus skew only.
    fn enter_listening(&mut self, reason: Reason) {
        self.master_adver_interval = self.config.advert_interval();
        if self.config.is_owner() && !mutation::on(Mutation::OwnerWaits) {
            self.become_master(reason);
        } else if self.config.start_as_master && reason == Reason::Start {
            let wait = self.config.advert_interval() + self.skew_time();
            self.become_backup(reason, wait);
        } else {
            let wait = self.master_down_interval();
            self.become_backup(reason, wait);
        }
    }

    /// Whether a sync group's demand to move to `target` still means
    /// anything: an instance in Init stays there, and one with a fault of
    /// its own stays in (or goes to) Fault.
    fn follow_applies(&self, target: State) -> bool {
        if self.state == State::Init || self.state == target {
            return false;
        }
        match target {
            State::Master | State::Backup => !self.in_fault(),
            State::Fault => true,
            State::Init => false,
        }
    }

    /// The next step the recorded inputs call for, if any. Consumes a sync
    /// group's demand that no longer applies, so a stale one never fires
    /// later.
    fn next_step(&mut self) -> Option<Step> {
        match (self.running, self.state) {
            (false, State::Init) => return None,
            (false, _) => return Some(Step::Stop),
            (true, State::Init) => return Some(Step::Start),
            _ => {}
        }
        if let Some(target) = self.follow {
            if self.follow_applies(target) {
                return Some(Step::Follow(target));
            }
            self.follow = None;
        }
        let fault = self.in_fault();
        match self.state {
            State::Backup | State::Master if fault => return Some(Step::EnterFault),
            State::Fault if !fault => return Some(Step::LeaveFault),
            _ => {}
        }
        if self.state == State::Master && (self.owes_vips || self.owes_advert) {
            return Some(Step::Reannounce);
        }
        None
    }

    fn apply(&mut self, step: Step) {
        match step {
            Step::Stop => {
                self.follow = None;
                self.resign(State::Init, Reason::Shutdown);
            }
            Step::Start => self.start(),
            Step::Follow(target) => {
                self.follow = None;
                match target {
                    State::Master => self.become_master(Reason::SyncGroup),
                    State::Backup => {
                        let wait = self.master_down_interval();
                        self.become_backup(Reason::SyncGroup, wait);
                    }
                    State::Fault => self.resign(State::Fault, Reason::SyncGroup),
                    State::Init => {}
                }
            }
            Step::EnterFault => self.resign(State::Fault, Reason::Fault),
            Step::LeaveFault => self.enter_listening(Reason::FaultCleared),
            Step::Reannounce => {
                if self.owes_vips {
                    self.owes_vips = false;
                    self.push(Output::AddVips);
                }
                if self.owes_advert {
                    self.owes_advert = false;
                    self.send_advert(self.effective_priority());
                    self.set_timer(Timer::Advert, self.now + self.config.advert_interval());
                }
            }
        }
    }

    /// Runs the steps the recorded inputs call for while the queue has
    /// room for a whole step; sets `deferred` (and counts it, once per
    /// wait) when one must wait.
    fn settle(&mut self) {
        for _ in 0..MAX_STEPS_PER_SETTLE {
            let Some(step) = self.next_step() else {
                break;
            };
            if !self.room_for(MAX_OUTPUTS_PER_STEP) {
                if !self.deferred {
                    self.stats.steps_deferred = self.stats.steps_deferred.saturating_add(1);
                    warn!(
                        "vrrp vrid {}: output queue not drained; state change deferred",
                        self.config.vrid
                    );
                }
                self.deferred = true;
                return;
            }
            self.apply(step);
        }
        self.deferred = false;
    }

    /// keepalived moves a backup's pending master-down deadline by the
    /// change in its down interval when its effective priority changes
    /// (vrrp_track.c `vrrp_set_effective_priority`: `sands` shifted by the
    /// change in `ms_down_timer`). Call after the change, with the interval
    /// from before it.
    fn shift_master_down(&mut self, old_down_interval: Duration) {
        let at = self.timers[Timer::MasterDown as usize];
        if self.state != State::Backup || at == Instant::MAX {
            return;
        }
        let new = self.master_down_interval();
        let shifted = if new >= old_down_interval {
            at + (new - old_down_interval)
        } else {
            at - (old_down_interval - new)
        };
        // Never into the past (`now` never runs backwards): due at once.
        self.set_timer(Timer::MasterDown, shifted.max(self.now));
    }

    fn set_track(&mut self, id: TrackId, up: bool) {
        let old_down_interval = self.master_down_interval();
        for (i, track) in self.config.tracks.iter().enumerate() {
            if track.id == id {
                if up {
                    self.tracks_down &= !(1 << i);
                } else {
                    self.tracks_down |= 1 << i;
                }
            }
        }
        self.shift_master_down(old_down_interval);
    }

    fn set_track_value(&mut self, id: TrackId, value: i32) {
        let old_down_interval = self.master_down_interval();
        for (i, track) in self.config.tracks.iter().enumerate() {
            if track.id == id && track.kind != TrackKind::UpDown {
                self.track_values[i] = value;
            }
        }
        self.shift_master_down(old_down_interval);
    }

    /// Applies one input at `now`. Start, shutdown, link and track inputs
    /// are never lost: when the output queue lacks room their step waits
    /// (see [`Instance`]). A received advert is then dropped instead.
    pub fn handle(&mut self, now: Instant, input: Input<'_>) {
        self.now = self.now.max(now);
        match input {
            Input::Start => self.running = true,
            Input::Shutdown => self.running = false,
            Input::Link { up } => self.link_up = up,
            Input::Track { id, up } => self.set_track(id, up),
            Input::TrackValue { id, value } => self.set_track_value(id, value),
            Input::Advert {
                src,
                dst,
                ttl,
                payload,
            } => return self.receive(src, dst, ttl, payload),
        }
        self.settle();
    }

    /// Receive rules, in order. TTL/hop limit 255 is required of an advert
    /// sent to a multicast group (RFC 9568 7.1) and of every advert when no
    /// `unicast_peer` is configured; with unicast peers, unicast adverts may
    /// be routed and keep any TTL. keepalived: vrrp.c `vrrp_in_chk`, "MUST
    /// verify that the IPv4 TTL/IPv6 HL is 255 (but not if unicast)", which
    /// checks whenever the peer list is empty.
    fn receive(&mut self, src: IpAddr, dst: IpAddr, ttl: u8, payload: &[u8]) {
        if self.deferred {
            // The state is about to change: this advert would meet a stale one.
            self.stats.count_drop(DropReason::Backpressure);
            return;
        }
        // A master may answer (2 outputs); a backup only moves a timer.
        let needs = match self.state {
            State::Master => 2,
            State::Backup => 0,
            State::Init | State::Fault => {
                self.stats.count_drop(DropReason::NotListening);
                return;
            }
        };
        if !self.room_for(needs) {
            self.stats.count_drop(DropReason::Backpressure);
            return;
        }
        let unicast = !self.config.unicast_peers.is_empty();
        if (dst.is_multicast() || !unicast) && ttl != wire::TTL {
            self.stats.count_drop(DropReason::Ttl);
            return;
        }
        let packet = Packet::new_unchecked(payload);
        let (repr, _form) = match Repr::parse(&packet, src, dst) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.stats.count_drop(wire_drop_reason(e));
                return;
            }
        };
        if repr.vrid != self.config.vrid {
            self.stats.count_drop(DropReason::Vrid);
            return;
        }
        if repr.version != self.config.version {
            self.stats.count_drop(DropReason::Version);
            return;
        }
        if src == self.config.primary_addr {
            self.stats.count_drop(DropReason::Own);
            return;
        }
        if unicast && !self.config.unicast_peers.contains(&src) {
            self.stats.count_drop(DropReason::UnknownPeer);
            return;
        }
        if self.config.version == Version::V2 {
            match (&repr.auth, &self.config.auth) {
                (Auth::None, Auth::None) => {}
                (Auth::Pass(_), Auth::Pass(_)) if repr.auth.matches(&self.config.auth) => {}
                (Auth::Pass(_), Auth::Pass(_)) => {
                    self.stats.count_drop(DropReason::Auth);
                    return;
                }
                _ => {
                    self.stats.count_drop(DropReason::AuthTypeMismatch);
                    return;
                }
            }
        }
        if repr.advert_interval_cs != self.config.advert_interval_cs {
            match self.config.version {
                // RFC 3768 7.1: MUST discard on interval mismatch.
                Version::V2 => {
                    self.stats.count_drop(DropReason::Interval);
                    return;
                }
                // RFC 9568: a backup adopts the master's interval; log it.
                Version::V3 => {
                    self.stats.interval_mismatch = self.stats.interval_mismatch.saturating_add(1);
                    debug!(
                        "vrrp vrid {}: advert interval {} cs differs from ours ({} cs)",
                        self.config.vrid, repr.advert_interval_cs, self.config.advert_interval_cs
                    );
                }
            }
        }
        if repr.priority != 0 && repr.addrs != Addrs::List(self.advertised_vips()) {
            self.stats.address_list_mismatch = self.stats.address_list_mismatch.saturating_add(1);
        }
        self.stats.adverts_received = self.stats.adverts_received.saturating_add(1);
        let advert_interval = Duration::from_centis(u64::from(repr.advert_interval_cs));
        match self.state {
            State::Backup => self.backup_receive(repr.priority, advert_interval),
            State::Master => self.master_receive(src, repr.priority, advert_interval),
            State::Init | State::Fault => {}
        }
    }

    /// No outputs: only the down timer moves.
    fn backup_receive(&mut self, priority: u8, advert_interval: Duration) {
        let now = self.now;
        if priority == 0 {
            self.stats.priority_zero_received = self.stats.priority_zero_received.saturating_add(1);
            self.set_timer(Timer::MasterDown, now + self.skew_time());
            return;
        }
        let ours = self.effective_priority();
        let preempt = (self.config.preempt && !mutation::on(Mutation::NeverPreempt))
            || mutation::on(Mutation::IgnoreNopreempt);
        let accept = if !preempt || priority >= ours {
            self.lower_master_since = None;
            true
        } else {
            // A lower-priority master: preempt it, unless `preempt_delay`
            // says to tolerate it a while longer.
            let since = *self.lower_master_since.get_or_insert(now);
            let deadline = self
                .preempt_tolerated_until
                .max(since + self.config.preempt_delay);
            now < deadline
        };
        if accept {
            if self.config.version == Version::V3 {
                self.master_adver_interval = advert_interval;
            }
            self.set_timer(Timer::MasterDown, now + self.master_down_interval());
        }
    }

    /// At most 2 outputs: an answer (advert and GARP), or stepping down
    /// (state change and remove VIPs).
    fn master_receive(&mut self, src: IpAddr, priority: u8, advert_interval: Duration) {
        let now = self.now;
        let ours = self.effective_priority();
        if priority == 0 {
            // RFC 9568 6.4.3: answer a resigning peer at once, so backups
            // do not take over after Skew_Time.
            self.stats.priority_zero_received = self.stats.priority_zero_received.saturating_add(1);
            self.send_advert(ours);
            self.set_timer(Timer::Advert, now + self.config.advert_interval());
            return;
        }
        let yields = match priority.cmp(&ours) {
            Ordering::Greater => true,
            Ordering::Equal => address_greater(src, self.config.primary_addr),
            Ordering::Less => false,
        };
        if yields {
            if self.config.version == Version::V3 {
                self.master_adver_interval = advert_interval;
            }
            let wait = self.master_down_interval();
            self.become_backup(Reason::HigherPriority, wait);
        } else if !self.config.lower_prio_no_advert {
            // RFC 9568 6.4.3: answer a lower-priority master at once so it
            // steps down without waiting for our next advert. keepalived
            // also re-announces the VIPs (garp_lower_prio_repeat): hosts
            // may have followed the other master's GARPs during the split.
            self.send_advert(ours);
            self.push(Output::Garp {
                repeat: self.config.garp.repeat,
            });
            self.set_timer(Timer::Advert, now + self.config.advert_interval());
        }
    }

    /// Fires every timer due at `now`, after any step still waiting for
    /// room. Calling it early or twice is harmless; a timer that finds no
    /// room stays due for the next call.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.settle();
        if self.deferred {
            return;
        }
        for timer in Timer::ALL {
            if self.timers[timer as usize] > self.now {
                continue;
            }
            if !self.room_for(timer.max_outputs()) {
                // Left due: the driver drains and calls again.
                return;
            }
            let now = self.now;
            match timer {
                Timer::Advert => {
                    self.send_advert(self.effective_priority());
                    // Re-armed from its own deadline when the call came less
                    // than an interval late (a loaded machine), so lateness
                    // does not add up from one advert to the next; after a
                    // longer stall from now, with no catch-up burst.
                    let interval = self.config.advert_interval();
                    let due = self.timers[Timer::Advert as usize];
                    let next = if now.saturating_duration_since(due) < interval {
                        due + interval
                    } else {
                        now + interval
                    };
                    self.set_timer(Timer::Advert, next);
                }
                Timer::MasterDown => self.become_master(Reason::MasterDown),
                Timer::GarpDelay => {
                    self.push(Output::Garp {
                        repeat: self.config.garp.repeat,
                    });
                    self.set_timer(Timer::GarpDelay, Instant::MAX);
                }
                Timer::GarpRefresh => {
                    self.push(Output::Garp {
                        repeat: self.config.garp.refresh_repeat,
                    });
                    self.set_timer(Timer::GarpRefresh, now + self.config.garp.refresh);
                }
            }
        }
    }

    /// The next output, if any. Drain after every other call, until `None`:
    /// a step that waited for room runs from here as soon as there is room
    /// (then re-read [`poll_timeout`](Self::poll_timeout)).
    pub fn poll_output(&mut self) -> Option<Output> {
        let out = self.outputs.pop_front();
        if self.deferred {
            self.settle();
        }
        out
    }

    /// Whether [`poll_output`](Self::poll_output) has something to hand
    /// out or a step waits for room (so a drain is due).
    pub fn has_output(&self) -> bool {
        !self.outputs.is_empty() || self.deferred
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let next = self.timers.iter().copied().min().unwrap_or(Instant::MAX);
        (next != Instant::MAX).then_some(next)
    }

    /// Moves to `target` because another member of its sync group did
    /// (keepalived's `vrrp_sync_group`). Only Backup, Master and Fault can
    /// be forced; an instance in Init stays there, and one with a fault of
    /// its own stays in Fault. Never lost: without room in the output queue
    /// the move waits like any other step.
    pub fn force(&mut self, now: Instant, target: State) {
        self.now = self.now.max(now);
        self.group_fault = target == State::Fault;
        if self.state != State::Init && target != State::Init {
            self.follow = Some(target);
        }
        self.settle();
    }

    /// Applies a changed configuration without restarting: state, learned
    /// interval and counters are kept. A master re-announces its VIPs when
    /// they changed and advertises at once when its priority or interval
    /// changed; a backup's pending master-down deadline moves by the change
    /// in its down interval (as for a tracking change). Changing the VRID,
    /// version or family makes a different instance: that is the caller's
    /// job (build a new one). The configuration itself is taken at once;
    /// without room in the output queue the re-announcement waits.
    pub fn reconfigure(
        &mut self,
        now: Instant,
        config: Config,
        vips: &[IpAddr],
        excluded: &[IpAddr],
    ) -> Result<(), ConfigError> {
        config.validate()?;
        let list = Self::vip_list(&config, vips, excluded)?;
        self.now = self.now.max(now);
        let old_priority = self.effective_priority();
        let old_down_interval = self.master_down_interval();
        let vips_changed = list[..] != self.vips[..];
        let interval_changed = config.advert_interval_cs != self.config.advert_interval_cs;
        // Track bits and values follow their ids into the new list.
        let mut tracks_down = 0u8;
        let mut track_values = [0; MAX_TRACKS];
        for (i, t) in config.tracks.iter().enumerate() {
            if let Some(j) = self.config.tracks.iter().position(|old| old.id == t.id) {
                if self.tracks_down & (1 << j) != 0 {
                    tracks_down |= 1 << i;
                }
                track_values[i] = self.track_values[j];
            }
        }
        self.config = config;
        self.vips = list;
        self.advertised = vips.len();
        self.tracks_down = tracks_down;
        self.track_values = track_values;
        // A master, and a v2 backup (v2 learns nothing), use the configured
        // interval; a v3 backup keeps the one it learned.
        if interval_changed && (self.state == State::Master || self.config.version == Version::V2) {
            self.master_adver_interval = self.config.advert_interval();
        }
        if self.state == State::Master {
            self.owes_vips |= vips_changed;
            self.owes_advert |= old_priority != self.effective_priority() || interval_changed;
        }
        self.shift_master_down(old_down_interval);
        self.settle();
        Ok(())
    }

    /// Where adverts go: each unicast peer, or the VRRP multicast group.
    pub fn advert_destinations(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let group = match self.config.family {
            Family::V4 => IpAddr::V4(wire::MULTICAST_V4),
            Family::V6 => IpAddr::V6(wire::MULTICAST_V6),
        };
        let multicast = self.config.unicast_peers.is_empty().then_some(group);
        multicast
            .into_iter()
            .chain(self.config.unicast_peers.iter().copied())
    }

    /// Writes an advert with `priority` from `src` (normally the primary
    /// address) to `dst` into `buf`; returns its length.
    pub fn emit_advert(
        &self,
        priority: u8,
        src: IpAddr,
        dst: IpAddr,
        buf: &mut [u8],
    ) -> Result<usize, wire::Error> {
        let auth = match self.config.version {
            Version::V2 => self.config.auth,
            Version::V3 => Auth::None,
        };
        let repr = Repr {
            version: self.config.version,
            vrid: self.config.vrid,
            priority,
            advert_interval_cs: self.config.advert_interval_cs,
            auth,
            addrs: Addrs::List(self.advertised_vips()),
        };
        repr.emit(buf, src, dst, self.config.checksum_mode)
    }
}

#[cfg(test)]
impl<S: VipStore> Instance<S> {
    /// What an undrained driver leaves behind: filler outputs (GARP with
    /// repeat 0, which no test configures) until `free` slots remain.
    pub(crate) fn fill_queue(&mut self, free: usize) {
        while self.outputs.capacity() - self.outputs.len() > free {
            self.push(Output::Garp { repeat: 0 });
        }
    }

    /// Whether a step waits for room.
    pub(crate) fn is_deferred(&self) -> bool {
        self.deferred
    }
}

/// The drop counter for a message the wire layer refused.
fn wire_drop_reason(error: wire::Error) -> DropReason {
    match error {
        wire::Error::BadChecksum => DropReason::Checksum,
        wire::Error::BadLength => DropReason::Length,
        wire::Error::BadVersion => DropReason::Version,
        wire::Error::BadAuthType => DropReason::AuthType,
        wire::Error::Truncated
        | wire::Error::BadType
        | wire::Error::FamilyMismatch
        | wire::Error::ZeroInterval
        | wire::Error::TooManyAddresses => DropReason::Malformed,
    }
}

/// RFC 9568 6.4.3: the greater primary address wins a priority tie,
/// compared as unsigned integers in network order.
fn address_greater(a: IpAddr, b: IpAddr) -> bool {
    if mutation::on(Mutation::IgnoreAddressTieBreak) {
        return false;
    }
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(a) > u32::from(b),
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(a) > u128::from(b),
        _ => false,
    }
}
