//! `lb_algo`: the names of the kernel's IPVS schedulers, shared by the
//! configuration parser and the balancer. Owns no scheduling state: each
//! scheduler's file in `lb::sched` does.

/// `lb_algo`: one of the kernel's schedulers.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Scheduler {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connections.
    Lc,
    /// Weighted least connections.
    Wlc,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Source hashing.
    Sh,
    /// Destination hashing.
    Dh,
    /// Maglev hashing.
    Mh,
    /// Weighted failover.
    Fo,
    /// Overflow connection.
    Ovf,
}

impl Scheduler {
    /// Every scheduler, for tests and tools.
    pub const ALL: [Scheduler; 11] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Sh,
        Scheduler::Dh,
        Scheduler::Mh,
        Scheduler::Fo,
        Scheduler::Ovf,
    ];

    /// The kernel's (and keepalived's `lb_algo`) name.
    pub const fn name(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Sh => "sh",
            Scheduler::Dh => "dh",
            Scheduler::Mh => "mh",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
        }
    }

    /// The scheduler called `name`, if any.
    pub fn from_name(name: &str) -> Option<Scheduler> {
        Scheduler::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Schedulers that pick the best server by a key (tournament tree).
    #[cfg(feature = "lb")]
    pub(crate) const fn uses_tree(self) -> bool {
        matches!(
            self,
            Scheduler::Lc
                | Scheduler::Wlc
                | Scheduler::Sed
                | Scheduler::Nq
                | Scheduler::Fo
                | Scheduler::Ovf
        )
    }
}
