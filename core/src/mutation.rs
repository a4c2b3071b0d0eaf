//! Deliberate bugs for mutation testing: the simulator's swarm must catch
//! each one, by the invariant it names. Compiled in only with the
//! `mutation` feature; without it, [`on`] is a constant `false` and every
//! mutation point compiles away.
//!
//! The active mutation is process-global (an atomic), so a test selects one,
//! runs a swarm, and clears it.

/// A deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Mutation {
    /// A VRRP priority tie is never broken by the greater address.
    IgnoreAddressTieBreak = 1,
    /// Skew_Time is computed as zero.
    NoSkew,
    /// A resigning master does not send priority 0.
    NoPriorityZeroOnShutdown,
    /// Persistence templates are recorded but never consulted.
    IgnoreTemplates,
    /// A real server marked down by its checks stays in scheduling.
    ScheduleDownServer,
    /// Received sync messages are silently ignored.
    DropSyncMessages,
    /// A failed health check never marks its server down.
    IgnoreCheckFailure,
    /// A sync sender builds its messages but never hands them out.
    SilentSyncSender,
    /// A persistence template is not refreshed when a new flow uses it,
    /// so it expires its timeout after it was made, not after last use.
    ForgetTemplateRefresh,
    /// An address owner (priority 255) starting up listens like a backup
    /// instead of becoming master at once.
    OwnerWaits,
    /// `nopreempt` is ignored: a higher-priority backup takes over from a
    /// live lower-priority master anyway.
    IgnoreNopreempt,
    /// `preempt` is ignored: a higher-priority backup accepts a
    /// lower-priority master for ever.
    NeverPreempt,
    /// Master_Down_Interval counts one advert too many.
    LateMasterDown,
    /// A UDP datagram of a known connection is scheduled afresh.
    RescheduleUdp,
    /// A checker that went down never comes back up.
    StayDown,
}

impl Mutation {
    /// Every mutation.
    pub const ALL: [Mutation; 15] = [
        Mutation::IgnoreAddressTieBreak,
        Mutation::NoSkew,
        Mutation::NoPriorityZeroOnShutdown,
        Mutation::IgnoreTemplates,
        Mutation::ScheduleDownServer,
        Mutation::DropSyncMessages,
        Mutation::IgnoreCheckFailure,
        Mutation::SilentSyncSender,
        Mutation::ForgetTemplateRefresh,
        Mutation::OwnerWaits,
        Mutation::IgnoreNopreempt,
        Mutation::NeverPreempt,
        Mutation::LateMasterDown,
        Mutation::RescheduleUdp,
        Mutation::StayDown,
    ];
}

#[cfg(feature = "mutation")]
static ACTIVE: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

/// Selects the active mutation (`None` for correct behaviour).
#[cfg(feature = "mutation")]
pub fn set(mutation: Option<Mutation>) {
    ACTIVE.store(
        mutation.map_or(0, |m| m as u8),
        core::sync::atomic::Ordering::SeqCst,
    );
}

/// Whether `mutation` is active.
#[inline(always)]
#[allow(unused_variables)]
pub fn on(mutation: Mutation) -> bool {
    #[cfg(feature = "mutation")]
    {
        ACTIVE.load(core::sync::atomic::Ordering::Relaxed) == mutation as u8
    }
    #[cfg(not(feature = "mutation"))]
    {
        false
    }
}
