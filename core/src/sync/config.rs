//! Configuration of the sync machine and its validation. Never holds
//! state.

use core::fmt;

use crate::time::Duration;
use crate::wire::sync::{ENTRY_V6_LEN, HEADER_LEN};

/// Largest message vrlb sends: a 1500-byte MTU less IPv4 and UDP headers.
pub const MESSAGE_BYTES_MAX: usize = 1472;
/// Smallest useful message: one IPv6 entry.
pub const MESSAGE_BYTES_MIN: usize = HEADER_LEN + ENTRY_V6_LEN;

/// Whether this director sends, receives, both or neither. keepalived runs
/// the IPVS master daemon where its sync instance is MASTER and the
/// backup daemon elsewhere (keepalived.conf(5) `lvs_sync_daemon`);
/// active-active directors do both.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Role {
    /// Neither: messages received are dropped and counted.
    Off,
    /// Holds the VIP: journals changes and sends them.
    Sender,
    /// Backup: applies what it receives.
    Receiver,
    /// Both (active-active directors).
    Both,
}

impl Role {
    /// Whether this role sends.
    pub const fn sends(self) -> bool {
        matches!(self, Role::Sender | Role::Both)
    }
    /// Whether this role applies received messages.
    pub const fn receives(self) -> bool {
        matches!(self, Role::Receiver | Role::Both)
    }
}

/// Sync knobs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SyncConfig {
    /// IPVS `syncid` (keepalived `lvs_sync_daemon ... id N`): receivers
    /// drop messages of other ids, so clusters can share a segment.
    pub sync_id: u8,
    /// Largest message in bytes (the UDP payload), between
    /// [`MESSAGE_BYTES_MIN`] and [`MESSAGE_BYTES_MAX`]. The default, 1452,
    /// fits a 1500-byte MTU over IPv6 as well as IPv4.
    pub max_message_bytes: u16,
    /// Sustained sending rate, messages per second (at least 1).
    pub messages_per_s: u32,
    /// Messages that may go out back to back above the rate (at least 1).
    pub burst_messages: u32,
    /// Longest a change waits before a partly filled message is sent.
    /// Default 2 s, IPVS's `IPVS_SYNC_FLUSH_TIME`.
    pub flush_interval: Duration,
}

impl SyncConfig {
    /// Defaults: sync id 0, 1452-byte messages, 1000 messages/s with a
    /// burst of 16, 2 s flush.
    pub const DEFAULT: SyncConfig = SyncConfig {
        sync_id: 0,
        max_message_bytes: 1452,
        messages_per_s: 1000,
        burst_messages: 16,
        flush_interval: Duration::from_secs(2),
    };

    /// Checks every field.
    pub fn validate(&self) -> Result<(), SyncConfigError> {
        let n = usize::from(self.max_message_bytes);
        if !(MESSAGE_BYTES_MIN..=MESSAGE_BYTES_MAX).contains(&n) {
            return Err(SyncConfigError::MessageBytes(self.max_message_bytes));
        }
        if self.messages_per_s == 0 {
            return Err(SyncConfigError::ZeroRate);
        }
        if self.burst_messages == 0 {
            return Err(SyncConfigError::ZeroBurst);
        }
        if self.flush_interval == Duration::ZERO {
            return Err(SyncConfigError::ZeroFlushInterval);
        }
        Ok(())
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig::DEFAULT
    }
}

/// A [`SyncConfig`] field out of range.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SyncConfigError {
    /// `max_message_bytes` outside 84..=1472.
    MessageBytes(u16),
    /// `messages_per_s` is 0.
    ZeroRate,
    /// `burst_messages` is 0.
    ZeroBurst,
    /// `flush_interval` is 0.
    ZeroFlushInterval,
}

impl fmt::Display for SyncConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncConfigError::MessageBytes(n) => write!(
                f,
                "sync max_message_bytes {n} outside {MESSAGE_BYTES_MIN}..={MESSAGE_BYTES_MAX}"
            ),
            SyncConfigError::ZeroRate => f.write_str("sync messages_per_s must be at least 1"),
            SyncConfigError::ZeroBurst => f.write_str("sync burst_messages must be at least 1"),
            SyncConfigError::ZeroFlushInterval => {
                f.write_str("sync flush_interval must be longer than 0")
            }
        }
    }
}

impl core::error::Error for SyncConfigError {}
