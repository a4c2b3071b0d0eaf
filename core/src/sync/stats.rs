//! Counters of the sync machine: what it sent, what it applied, and every
//! drop by reason. Never affects a decision.

/// What the sync machine has done since it was built. Changes lost
/// because the balancer's journal was full are counted by the balancer
/// (`Balancer::sync_journal_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SyncStats {
    /// Messages handed out for transmission.
    pub tx_messages: u64,
    /// Entries in them.
    pub tx_entries: u64,
    /// Bytes in them.
    pub tx_bytes: u64,
    /// Times a finished message had to wait for the rate limit.
    pub tx_rate_limited: u64,
    /// Entries built but thrown away because sending stopped.
    pub tx_discarded: u64,
    /// Messages accepted.
    pub rx_messages: u64,
    /// Entries applied to the balancer.
    pub rx_applied: u64,
    /// Dropped: shorter than the header or its length field.
    pub rx_truncated: u64,
    /// Dropped: unknown version.
    pub rx_bad_version: u64,
    /// Dropped: length field inconsistent with the datagram or entries.
    pub rx_bad_length: u64,
    /// Dropped: a malformed entry.
    pub rx_bad_entry: u64,
    /// Dropped: another sync id.
    pub rx_wrong_sync_id: u64,
    /// Dropped: our own message (same session).
    pub rx_own: u64,
    /// Dropped: duplicate or replayed sequence number.
    pub rx_replayed: u64,
    /// Dropped: this director does not receive (role).
    pub rx_not_receiving: u64,
    /// Messages never received (sequence gaps not filled later).
    pub rx_lost: u64,
    /// Messages that arrived after a later one (and were applied).
    pub rx_reordered: u64,
    /// Entries dropped: no matching virtual service.
    pub rx_no_service: u64,
    /// Entries dropped: template for a service without persistence.
    pub rx_not_persistent: u64,
    /// Entries dropped: no real server with that address and port.
    pub rx_no_server: u64,
    /// Entries dropped: connection table full.
    pub rx_table_full: u64,
}
