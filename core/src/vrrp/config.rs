//! What one VRRP instance is configured to do: the values of a
//! `vrrp_instance` block once parsed and validated.

use core::fmt;
use core::net::IpAddr;

use heapless::Vec;

use crate::time::Duration;
use crate::wire::vrrp::{Auth, ChecksumMode, Family, Version};

/// Most `unicast_peer` entries per instance.
pub const MAX_UNICAST_PEERS: usize = 8;
/// Most tracked objects (interfaces and scripts) per instance.
pub const MAX_TRACKS: usize = 8;

/// Identifies a tracked object (an interface or a `vrrp_script`) across
/// instances; the driver or `Node` assigns the numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TrackId(pub u16);

/// One tracked object and what it does to the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Track {
    /// The object.
    pub id: TrackId,
    /// For an up/down object: 0, the instance goes to Fault while the
    /// object is down; negative, subtracted from the priority while down;
    /// positive, added while up. For a file, what its value is multiplied
    /// by ([`crate::track_file::Effect::vrrp`]). keepalived.conf(5)
    /// `track_script`/`track_interface`/`track_file` `weight`; the
    /// magnitude is clamped to 1..=254 by [`Track::new`].
    pub weight: i16,
    /// keepalived's `weight W reverse`: the adjustment's direction is
    /// turned (a positive weight is subtracted while the object is up, a
    /// negative one added while it is down; with weight 0 the instance is
    /// in Fault while the object is up); for a file, the product's sign.
    pub reverse: bool,
    /// How the object reports.
    pub kind: TrackKind,
}

/// How a tracked object reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TrackKind {
    /// Up or down (`Input::Track`): interfaces and scripts.
    UpDown,
    /// A number (`Input::TrackValue`): a `track_file`.
    Value,
}

impl Track {
    /// A track entry with keepalived's clamping of the weight's magnitude
    /// to 254 (keepalived.conf(5): "weight <-254..254>").
    pub fn new(id: TrackId, weight: i32) -> Track {
        Track {
            id,
            weight: weight.clamp(-254, 254) as i16,
            reverse: false,
            kind: TrackKind::UpDown,
        }
    }

    /// The same entry with `reverse` as given.
    pub fn reversed(self, reverse: bool) -> Track {
        Track { reverse, ..self }
    }

    /// A tracked file's entry (its weight clamped as [`Track::new`]'s).
    pub fn file(id: TrackId, weight: i32, reverse: bool) -> Track {
        Track {
            kind: TrackKind::Value,
            ..Track::new(id, weight).reversed(reverse)
        }
    }

    /// What an up/down object in state `up` adds to the priority.
    pub fn adjustment(&self, up: bool) -> i32 {
        let weight = i32::from(self.weight);
        // The sign picks the state that counts; reverse turns the effect.
        let counts = if weight > 0 { up } else { !up };
        match (weight, counts, self.reverse) {
            (0, _, _) | (_, false, _) => 0,
            (w, true, false) => w,
            (w, true, true) => -w,
        }
    }

    /// Whether an up/down object in state `up` puts the instance in
    /// Fault (weight 0: while down, or while up with `reverse`).
    pub fn faults(&self, up: bool) -> bool {
        self.weight == 0 && up == self.reverse
    }
}

/// Gratuitous ARP / unsolicited NA timing after becoming master, as
/// keepalived's `garp_master_*` keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GarpConfig {
    /// `garp_master_delay`: a second burst this long after the transition
    /// (0 = none). keepalived's default is 5 s.
    pub delay: Duration,
    /// `garp_master_repeat`: messages per VIP in each burst (default 5).
    pub repeat: u8,
    /// `garp_master_refresh`: a burst every so often while master (0 = off).
    pub refresh: Duration,
    /// `garp_master_refresh_repeat`: messages per VIP in a refresh (default 1).
    pub refresh_repeat: u8,
}

impl Default for GarpConfig {
    fn default() -> Self {
        GarpConfig {
            delay: Duration::from_secs(5),
            repeat: 5,
            refresh: Duration::ZERO,
            refresh_repeat: 1,
        }
    }
}

/// A validated instance configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `virtual_router_id`, 1..=255.
    pub vrid: u8,
    /// `version` (keepalived's default: 2).
    pub version: Version,
    /// Address family of the adverts and VIPs.
    pub family: Family,
    /// `priority`, 1..=255; 255 makes this node the address owner.
    pub priority: u8,
    /// `advert_int` in centiseconds, 1..=4095; v2 needs whole seconds.
    pub advert_interval_cs: u16,
    /// `preempt` (default) or `nopreempt`.
    pub preempt: bool,
    /// `preempt_delay`: how long after start, or after first hearing a
    /// lower-priority master, before this node preempts it.
    pub preempt_delay: Duration,
    /// `authentication { auth_type PASS }` (v2 only).
    pub auth: Auth,
    /// `state MASTER`: a non-owner then claims mastership after one advert
    /// interval plus skew instead of the full Master_Down_Interval.
    pub start_as_master: bool,
    /// This node's primary address on the interface: the advert source and
    /// the election tie-breaker.
    pub primary_addr: IpAddr,
    /// `unicast_peer`: adverts go to each and only these are heard.
    pub unicast_peers: Vec<IpAddr, MAX_UNICAST_PEERS>,
    /// `lower_prio_no_advert`: do not answer a lower-priority advert with an
    /// immediate one.
    pub lower_prio_no_advert: bool,
    /// `down_timer_adverts`: adverts missed before the master is declared
    /// down (RFC: 3).
    pub down_timer_adverts: u8,
    /// v3 over IPv4 checksum form (`v3_checksum_as_v2`).
    pub checksum_mode: ChecksumMode,
    /// GARP/NA timing.
    pub garp: GarpConfig,
    /// `track_interface` and `track_script` entries.
    pub tracks: Vec<Track, MAX_TRACKS>,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfigError {
    /// `virtual_router_id` 0.
    Vrid,
    /// `priority` 0.
    Priority,
    /// `advert_int` 0, above 40.95 s (v3) or not whole seconds (v2).
    AdvertInterval,
    /// VRRPv2 configured over IPv6.
    V2OverIpv6,
    /// The primary address, a peer or a VIP is of the other family.
    FamilyMismatch,
    /// `down_timer_adverts` 0 or above 100.
    DownTimerAdverts,
    /// More VIPs, peers or tracks than the instance has room for.
    Capacity,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::Vrid => "virtual_router_id must be 1..255",
            ConfigError::Priority => "priority must be 1..255",
            ConfigError::AdvertInterval => {
                "advert_int must be 0.01..40.95 s for VRRPv3 and whole seconds 1..255 for VRRPv2"
            }
            ConfigError::V2OverIpv6 => "VRRPv2 has no IPv6: use version 3",
            ConfigError::FamilyMismatch => "addresses of both IPv4 and IPv6 in one instance",
            ConfigError::DownTimerAdverts => "down_timer_adverts must be 1..100",
            ConfigError::Capacity => "more VIPs, unicast peers or tracked objects than fit",
        })
    }
}

impl core::error::Error for ConfigError {}

impl Config {
    /// A configuration with keepalived's defaults for everything but the
    /// identity: VRRPv2, priority 100, 1 s adverts, preempt, no auth.
    pub fn new(vrid: u8, primary_addr: IpAddr) -> Config {
        Config {
            vrid,
            version: Version::V2,
            family: Family::of(&primary_addr),
            priority: 100,
            advert_interval_cs: 100,
            preempt: true,
            preempt_delay: Duration::ZERO,
            auth: Auth::None,
            start_as_master: false,
            primary_addr,
            unicast_peers: Vec::new(),
            lower_prio_no_advert: false,
            down_timer_adverts: 3,
            checksum_mode: ChecksumMode::PseudoHeader,
            garp: GarpConfig::default(),
            tracks: Vec::new(),
        }
    }

    /// Checks every range the state machine relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vrid == 0 {
            return Err(ConfigError::Vrid);
        }
        if self.priority == 0 {
            return Err(ConfigError::Priority);
        }
        let int = self.advert_interval_cs;
        let bad_int = match self.version {
            Version::V3 => int == 0 || int > 4095,
            Version::V2 => int == 0 || int % 100 != 0 || int > 25_500,
        };
        if bad_int {
            return Err(ConfigError::AdvertInterval);
        }
        if self.version == Version::V2 && self.family == Family::V6 {
            return Err(ConfigError::V2OverIpv6);
        }
        if Family::of(&self.primary_addr) != self.family
            || self
                .unicast_peers
                .iter()
                .any(|p| Family::of(p) != self.family)
        {
            return Err(ConfigError::FamilyMismatch);
        }
        if self.down_timer_adverts == 0 || self.down_timer_adverts > 100 {
            return Err(ConfigError::DownTimerAdverts);
        }
        Ok(())
    }

    /// The advertisement interval.
    pub fn advert_interval(&self) -> Duration {
        Duration::from_centis(u64::from(self.advert_interval_cs))
    }

    /// Whether this node owns the addresses (priority 255).
    pub fn is_owner(&self) -> bool {
        self.priority == 255
    }
}
