//! Counters of one VRRP instance: every received advert that was not
//! acted on is counted here by reason, and so is every input whose state
//! change had to wait for the driver to drain the output queue.

/// Why a received advert was dropped. Named `DropReason` so it never
/// shadows `core::ops::Drop` where it is imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DropReason {
    /// Not a valid VRRP message: shorter than the fixed header, not an
    /// ADVERTISEMENT, interval 0, or IP source and destination of
    /// different families.
    Malformed,
    /// Checksum did not verify.
    Checksum,
    /// TTL/hop limit other than 255 where it must be 255: multicast, or
    /// no `unicast_peer` configured (see `Input::Advert`).
    Ttl,
    /// Another virtual router's advert.
    Vrid,
    /// VRRP version differs from ours, is neither 2 nor 3, or is v2 over
    /// IPv6.
    Version,
    /// v2 PASS password differs from ours (keepalived's `auth_failure`).
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
    /// The length is not what the address count implies (keepalived's
    /// `packet_len_err`).
    Length,
    /// v2 authentication type neither none (0) nor PASS (1), e.g. the
    /// deprecated AH (keepalived's `invalid_authtype`).
    AuthType,
    /// v2 authentication type valid but not ours: none against PASS
    /// (keepalived's `authtype_mismatch`).
    AuthTypeMismatch,
}

impl DropReason {
    /// Every reason, in counter order. New reasons are appended, so a
    /// counter's index never changes.
    pub const ALL: [DropReason; 14] = [
        DropReason::Malformed,
        DropReason::Checksum,
        DropReason::Ttl,
        DropReason::Vrid,
        DropReason::Version,
        DropReason::Auth,
        DropReason::Interval,
        DropReason::UnknownPeer,
        DropReason::Own,
        DropReason::NotListening,
        DropReason::Backpressure,
        DropReason::Length,
        DropReason::AuthType,
        DropReason::AuthTypeMismatch,
    ];

    /// A short stable name for status output.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Checksum => "checksum",
            DropReason::Ttl => "ttl",
            DropReason::Vrid => "vrid",
            DropReason::Version => "version",
            DropReason::Auth => "auth",
            DropReason::Interval => "interval",
            DropReason::UnknownPeer => "unknown_peer",
            DropReason::Own => "own",
            DropReason::NotListening => "not_listening",
            DropReason::Backpressure => "backpressure",
            DropReason::Length => "length",
            DropReason::AuthType => "auth_type",
            DropReason::AuthTypeMismatch => "auth_type_mismatch",
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
    /// Times a step (a transition or re-announcement after start,
    /// shutdown, link, track, sync group or reconfigure) waited because
    /// the output queue lacked room; each ran later from `poll_output`.
    /// Non-zero means the driver does not drain after every call.
    pub steps_deferred: u32,
    /// Drops by reason, indexed as [`DropReason::ALL`].
    pub dropped: [u32; DropReason::ALL.len()],
}

impl Stats {
    /// Drops counted for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u32 {
        self.dropped[reason as usize]
    }

    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        let slot = &mut self.dropped[reason as usize];
        *slot = slot.saturating_add(1);
    }

    /// All drops.
    pub fn total_dropped(&self) -> u32 {
        self.dropped.iter().fold(0u32, |a, b| a.saturating_add(*b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_indexed_in_declaration_order() {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i, "{}", reason.name());
        }
        let mut names = DropReason::ALL.map(|r| r.name());
        names.sort_unstable();
        assert!(
            names.windows(2).all(|w| w[0] != w[1]),
            "names are unique: {names:?}"
        );
    }
}
