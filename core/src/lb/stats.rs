//! Counters of the load balancer, for `stats()` and the status command.
//! Never affects a decision.

/// What the balancer has done since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Packets that matched a tracked connection.
    pub conn_hits: u64,
    /// Connections created.
    pub conns_created: u64,
    /// Connections expired or closed.
    pub conns_expired: u64,
    /// Persistence templates created.
    pub templates_created: u64,
    /// New connections that followed an existing template.
    pub template_hits: u64,
    /// Templates dropped because their server was removed or quiesced.
    pub templates_invalidated: u64,
    /// Packets for no virtual service.
    pub not_virtual: u64,
    /// Packets dropped: no server could take the flow.
    pub drop_no_server: u64,
    /// Packets dropped: TCP without SYN and no connection (not sloppy).
    pub drop_not_syn: u64,
    /// Packets dropped: their connection's server was removed and
    /// `expire_nodest_conn` is off.
    pub drop_server_gone: u64,
    /// Packets dropped: table full and the policy is to drop.
    pub drop_table_full: u64,
    /// New flows forwarded untracked (the stateless choice) because the
    /// table was full.
    pub stateless_forwards: u64,
    /// Mid-flow TCP packets of unknown flows forwarded untracked by the
    /// stateless choice while the table was full or in its grace period.
    pub stateless_continued: u64,
    /// Unknown TCP flows recorded by a mid-flow packet on the stateless
    /// choice's server during the grace period, once the table had room.
    pub stateless_adopted: u64,
    /// Connections expired early because their server was removed.
    pub nodest_expired: u64,
    /// Mid-flow TCP packets of unknown connections scheduled by mh (a flow
    /// another director carried before ECMP moved it here).
    pub adopted_mid_flow: u64,
}
