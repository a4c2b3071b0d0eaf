//! VRRP: the per-instance state machine (RFC 9568 and RFC 3768 with
//! keepalived's extensions) and the coordination of sync groups.
//!
//! Owns elections, timers, tracking weights and the decision to hold or
//! release VIPs. Never does I/O: the driver sends the adverts, adds the
//! addresses and sends GARP/NA when the instance says so.

mod config;
mod instance;
mod stats;
mod sync_group;
mod vips;

pub use config::{
    Config, ConfigError, GarpConfig, MAX_TRACKS, MAX_UNICAST_PEERS, Track, TrackId, TrackKind,
};
pub use instance::{Input, Instance, MAX_OUTPUTS_PER_STEP, OUTPUT_QUEUE, Output, Reason, State};
pub use stats::{DropReason, Stats};
pub use sync_group::{MAX_MEMBERS as MAX_GROUP_MEMBERS, SyncGroup};
pub use vips::{DEFAULT_MAX_VIPS, DefaultVips, InlineVips, VipStore};

pub use crate::wire::vrrp::{Auth, ChecksumMode, Family, Version};

/// The IPv4 VRRP group as an `IpAddr`, for drivers and tests.
pub const MULTICAST: core::net::IpAddr = core::net::IpAddr::V4(crate::wire::vrrp::MULTICAST_V4);

// Unit tests that need the standard library and private items live
// outside src, so src names no standard crate (lib.rs).
#[cfg(test)]
#[path = "../../unit-tests/vrrp/tests.rs"]
mod tests;
