//! Counters of one VRRP instance: every received advert that was not
//! acted on is counted here by reason.

/// Why a received advert was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Drop {
    /// Not a valid VRRP message (truncated, bad version/type/length).
    Malformed,
    /// Checksum did not verify.
    Checksum,
    /// Multicast advert with TTL/hop limit other than 255.
    Ttl,
    /// Another virtual router's advert.
    Vrid,
    /// VRRP version differs from ours.
    Version,
    /// v2 authentication type or password differs.
    Auth,
    /// v2 advert interval differs from ours (RFC 3768 7.1).
    Interval,
    /// Unicast mode and the sender is not a configured peer.
    UnknownPeer,
    /// Our own advert looped back.
    Own,
    /// The instance is in Fault or not started.
    NotListening,
    /// The output queue had no room; the driver did not drain it.
    Backpressure,
}

impl Drop {
    /// Every reason, in counter order.
    pub const ALL: [Drop; 11] = [
        Drop::Malformed,
        Drop::Checksum,
        Drop::Ttl,
        Drop::Vrid,
        Drop::Version,
        Drop::Auth,
        Drop::Interval,
        Drop::UnknownPeer,
        Drop::Own,
        Drop::NotListening,
        Drop::Backpressure,
    ];

    /// A short stable name for status output.
    pub const fn name(self) -> &'static str {
        match self {
            Drop::Malformed => "malformed",
            Drop::Checksum => "checksum",
            Drop::Ttl => "ttl",
            Drop::Vrid => "vrid",
            Drop::Version => "version",
            Drop::Auth => "auth",
            Drop::Interval => "interval",
            Drop::UnknownPeer => "unknown_peer",
            Drop::Own => "own",
            Drop::NotListening => "not_listening",
            Drop::Backpressure => "backpressure",
        }
    }
}

/// Counters of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Adverts accepted and acted on.
    pub adverts_received: u32,
    /// Adverts this instance asked to send.
    pub adverts_sent: u32,
    /// Accepted adverts whose address list differs from ours (keepalived
    /// logs these and carries on unless `vrrp_strict`).
    pub address_list_mismatch: u32,
    /// Accepted v3 adverts whose interval differs from ours (logged).
    pub interval_mismatch: u32,
    /// Priority-0 adverts received.
    pub priority_zero_received: u32,
    /// Times this instance became master.
    pub became_master: u32,
    /// Drops by reason, indexed as [`Drop::ALL`].
    pub dropped: [u32; Drop::ALL.len()],
}

impl Stats {
    /// Drops counted for `reason`.
    pub fn dropped(&self, reason: Drop) -> u32 {
        self.dropped[reason as usize]
    }

    pub(crate) fn count_drop(&mut self, reason: Drop) {
        let slot = &mut self.dropped[reason as usize];
        *slot = slot.saturating_add(1);
    }

    /// All drops.
    pub fn total_dropped(&self) -> u32 {
        self.dropped.iter().fold(0u32, |a, b| a.saturating_add(*b))
    }
}
