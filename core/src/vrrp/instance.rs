//! One VRRP instance: the Initialize/Backup/Master/Fault machine of RFC 9568
//! section 6.4 (RFC 3768 for v2) with keepalived's extensions.
//!
//! Timers are a small table indexed by [`Timer`]; the next deadline is the
//! minimum of the table. Every mutation first checks the output queue has
//! room for the most outputs one step can emit, so nothing is half-applied.

use core::cmp::Ordering;
use core::fmt;
use core::net::IpAddr;

use heapless::{Deque, Vec};

use super::config::{Config, ConfigError, TrackId};
use super::stats::{Drop, Stats};
use crate::mutation::{self, Mutation};
use crate::time::{Duration, Instant};
use crate::wire::vrrp::{self as wire, Addrs, Auth, Family, Packet, Repr, Version};

/// VIPs (advertised and excluded together) an instance holds unless the
/// const parameter says otherwise. Real configurations reach 30 (20
/// advertised is keepalived's advice, with the rest excluded); firmware
/// builds pick a small number.
pub const DEFAULT_MAX_VIPS: usize = 64;

/// Outputs one step can emit: state change, VIP change, advert, GARP.
const MAX_OUTPUTS_PER_STEP: usize = 4;
const OUTPUT_QUEUE: usize = 2 * MAX_OUTPUTS_PER_STEP;

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
        /// TTL / hop limit it arrived with.
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
}

/// One VRRP instance holding up to `V` VIPs.
#[derive(Debug, Clone)]
pub struct Instance<const V: usize = DEFAULT_MAX_VIPS> {
    config: Config,
    /// Advertised VIPs first, then `virtual_ipaddress_excluded` ones.
    vips: Vec<IpAddr, V>,
    advertised: usize,
    state: State,
    now: Instant,
    link_up: bool,
    /// Bit `i` set: `config.tracks[i]` is down.
    tracks_down: u8,
    /// In Fault because its sync group is (cleared only by the group).
    group_fault: bool,
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

impl<const V: usize> Instance<V> {
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
            link_up: true,
            tracks_down: 0,
            group_fault: false,
            master_adver_interval,
            preempt_tolerated_until: Instant::ZERO,
            lower_master_since: None,
            timers: [Instant::MAX; Timer::ALL.len()],
            outputs: Deque::new(),
            stats: Stats::default(),
            config,
        })
    }

    fn vip_list(
        config: &Config,
        vips: &[IpAddr],
        excluded: &[IpAddr],
    ) -> Result<Vec<IpAddr, V>, ConfigError> {
        let mut list = Vec::new();
        for addr in vips.iter().chain(excluded) {
            // keepalived lets excluded VIPs be of either family; advertised
            // ones must match the instance.
            if Family::of(addr) != config.family && !excluded.contains(addr) {
                return Err(ConfigError::FamilyMismatch);
            }
            list.push(*addr).map_err(|_| ConfigError::Capacity)?;
        }
        if vips.len() > usize::from(u8::MAX) {
            return Err(ConfigError::Capacity);
        }
        Ok(list)
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
            let down = self.tracks_down & (1 << i) != 0;
            match track.weight.cmp(&0) {
                Ordering::Greater if !down => prio += i32::from(track.weight),
                Ordering::Less if down => prio += i32::from(track.weight),
                _ => {}
            }
        }
        prio.clamp(1, 254) as u8
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
            .any(|(i, t)| t.weight == 0 && self.tracks_down & (1 << i) != 0);
        !self.link_up || weight0_down || self.group_fault
    }

    fn room(&self) -> bool {
        self.outputs.capacity() - self.outputs.len() >= MAX_OUTPUTS_PER_STEP
    }

    fn push(&mut self, output: Output) {
        // `room()` was checked before the step began; a full queue here is
        // a bug in the step's output count.
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
    /// take over after Skew_Time instead of Master_Down_Interval.
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

    /// Applies one input at `now`.
    pub fn handle(&mut self, now: Instant, input: Input<'_>) {
        self.now = self.now.max(now);
        if !self.room() {
            if let Input::Advert { .. } = input {
                self.stats.count_drop(Drop::Backpressure);
                return;
            }
            // Track, link and lifecycle inputs must not be lost: the queue
            // holds two steps, so one undrained step still leaves room.
            warn!("vrrp vrid {}: output queue not drained", self.config.vrid);
        }
        match input {
            Input::Start => {
                if self.state == State::Init {
                    self.start();
                }
            }
            Input::Shutdown => {
                if self.state != State::Init {
                    self.resign(State::Init, Reason::Shutdown);
                }
            }
            Input::Link { up } => {
                self.link_up = up;
                self.reevaluate_fault();
            }
            Input::Track { id, up } => {
                let mut tracked = false;
                for (i, track) in self.config.tracks.iter().enumerate() {
                    if track.id == id {
                        tracked = true;
                        if up {
                            self.tracks_down &= !(1 << i);
                        } else {
                            self.tracks_down |= 1 << i;
                        }
                    }
                }
                if tracked {
                    self.reevaluate_fault();
                }
            }
            Input::Advert {
                src,
                dst,
                ttl,
                payload,
            } => self.receive(src, dst, ttl, payload),
        }
    }

    fn reevaluate_fault(&mut self) {
        match (self.state, self.in_fault()) {
            (State::Backup | State::Master, true) => self.resign(State::Fault, Reason::Fault),
            (State::Fault, false) => self.enter_listening(Reason::FaultCleared),
            _ => {}
        }
    }

    fn receive(&mut self, src: IpAddr, dst: IpAddr, ttl: u8, payload: &[u8]) {
        if !matches!(self.state, State::Backup | State::Master) {
            self.stats.count_drop(Drop::NotListening);
            return;
        }
        let unicast = !self.config.unicast_peers.is_empty();
        // RFC 9568 7.1: multicast adverts must arrive with TTL 255, proving
        // they were not routed.
        if !unicast && ttl != wire::TTL {
            self.stats.count_drop(Drop::Ttl);
            return;
        }
        let packet = Packet::new_unchecked(payload);
        let (repr, _form) = match Repr::parse(&packet, src, dst) {
            Ok(parsed) => parsed,
            Err(wire::Error::BadChecksum) => {
                self.stats.count_drop(Drop::Checksum);
                return;
            }
            Err(_) => {
                self.stats.count_drop(Drop::Malformed);
                return;
            }
        };
        if repr.vrid != self.config.vrid {
            self.stats.count_drop(Drop::Vrid);
            return;
        }
        if repr.version != self.config.version {
            self.stats.count_drop(Drop::Version);
            return;
        }
        if src == self.config.primary_addr {
            self.stats.count_drop(Drop::Own);
            return;
        }
        if unicast && !self.config.unicast_peers.contains(&src) {
            self.stats.count_drop(Drop::UnknownPeer);
            return;
        }
        if self.config.version == Version::V2 && !repr.auth.matches(&self.config.auth) {
            self.stats.count_drop(Drop::Auth);
            return;
        }
        if repr.advert_interval_cs != self.config.advert_interval_cs {
            match self.config.version {
                // RFC 3768 7.1: MUST discard on interval mismatch.
                Version::V2 => {
                    self.stats.count_drop(Drop::Interval);
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

    fn master_receive(&mut self, src: IpAddr, priority: u8, advert_interval: Duration) {
        let now = self.now;
        let ours = self.effective_priority();
        if priority == 0 {
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

    /// Fires every timer due at `now`. Calling it early or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        for timer in Timer::ALL {
            if self.timers[timer as usize] > self.now {
                continue;
            }
            if !self.room() {
                // Left due: the driver drains and calls again.
                return;
            }
            let now = self.now;
            match timer {
                Timer::Advert => {
                    self.send_advert(self.effective_priority());
                    self.set_timer(Timer::Advert, now + self.config.advert_interval());
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

    /// The next output, if any. Drain after every `handle*` call.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let next = self.timers.iter().copied().min().unwrap_or(Instant::MAX);
        (next != Instant::MAX).then_some(next)
    }

    /// Moves to `target` because another member of its sync group did
    /// (keepalived's `vrrp_sync_group`). Only Backup, Master and Fault can
    /// be forced, and an instance in Init stays there.
    pub fn force(&mut self, now: Instant, target: State) {
        self.now = self.now.max(now);
        self.group_fault = target == State::Fault;
        if self.state == target || self.state == State::Init {
            return;
        }
        // A member with a fault of its own stays in Fault.
        if self.state == State::Fault && self.in_fault() {
            return;
        }
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

    /// Applies a changed configuration without restarting: state, learned
    /// interval and counters are kept. A master re-announces its VIPs when
    /// they changed and advertises at once when its priority changed.
    /// Changing the VRID, version or family makes a different instance:
    /// that is the caller's job (build a new one).
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
        let vips_changed = list != self.vips;
        let interval_changed = config.advert_interval_cs != self.config.advert_interval_cs;
        // Track bits follow their ids into the new list.
        let mut tracks_down = 0u8;
        for (i, t) in config.tracks.iter().enumerate() {
            if let Some(j) = self.config.tracks.iter().position(|old| old.id == t.id)
                && self.tracks_down & (1 << j) != 0
            {
                tracks_down |= 1 << i;
            }
        }
        self.config = config;
        self.vips = list;
        self.advertised = vips.len();
        self.tracks_down = tracks_down;
        if self.state == State::Init {
            return Ok(());
        }
        if !self.room() {
            warn!("vrrp vrid {}: output queue not drained", self.config.vrid);
        }
        if self.state == State::Master {
            if vips_changed {
                self.push(Output::AddVips);
            }
            if interval_changed {
                self.master_adver_interval = self.config.advert_interval();
            }
            if old_priority != self.effective_priority() || interval_changed {
                self.send_advert(self.effective_priority());
                self.set_timer(Timer::Advert, self.now + self.config.advert_interval());
            }
        }
        self.reevaluate_fault();
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
