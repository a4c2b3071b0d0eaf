//! The data plane's forwarding counters: one set of relaxed atomics per
//! worker (written by that worker only), summed into a [`Forwarding`]
//! snapshot (with the workers' balancers' flow counts) for `vrlb status`.
//! Never affects forwarding.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use vrlb_core::lb::DropReason;

use super::frame::Unfit;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// One worker's counters.
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// Every worker's counters summed (and the balancers' adoptions).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Forwarding {
            $($(#[$doc])* pub $name: u64,)*
            /// Mid-flow TCP packets of unknown connections that mh scheduled
            /// (flows another director carried).
            pub adopted_mid_flow: u64,
            /// New connections scheduled to a real server (flows forwarded).
            pub flows_created: u64,
            /// Persistence templates made.
            pub templates_created: u64,
            /// New connections that followed a persistence template.
            pub template_hits: u64,
            /// New flows forwarded untracked: the connection table was full.
            pub stateless_forwards: u64,
            /// Mid-flow packets of untracked flows forwarded the same way.
            pub stateless_continued: u64,
            /// Untracked flows recorded by a later packet once there was room.
            pub stateless_adopted: u64,
        }

        impl Counters {
            /// Adds this worker's counts into `f`.
            pub fn add_to(&self, f: &mut Forwarding) {
                $(f.$name += self.$name.load(Ordering::Relaxed);)*
            }
        }

        impl Forwarding {
            /// (name, value) of every drop reason, for the text layout.
            pub fn drops(&self) -> Vec<(&'static str, u64)> {
                let mut v = Vec::new();
                $(if stringify!($name).starts_with("drop_") {
                    v.push((&stringify!($name)[5..], self.$name));
                })*
                v
            }
        }
    };
}

counters! {
    /// Times the worker woke from its wait (a frame, a waker, a stop or
    /// its expiry bound): what it costs at rest.
    wakeups,
    /// Frames the filter let into the ring (not counting our own outgoing).
    received,
    /// Our own outgoing frames the ring saw (old kernels with fanout).
    seen_outgoing,
    /// Frames sent to a real server.
    forwarded,
    /// Forwarded frames whose transport checksum vrlb finished.
    checksums_finished,
    /// Not addressed to this host's MAC (flooded frames, our own).
    drop_not_host,
    /// Longer than the ring's frame slot (GRO/TSO aggregates).
    drop_oversize,
    /// Headers too short or inconsistent.
    drop_malformed,
    /// IP fragments.
    drop_fragment,
    /// Not TCP/UDP over IPv4/IPv6.
    drop_unsupported,
    /// To a VIP this director does not hold (VRRP backup).
    drop_vip_not_held,
    /// No virtual service for it.
    drop_not_virtual,
    /// The scheduler found no real server.
    drop_no_server,
    /// TCP without SYN for an unknown connection.
    drop_not_syn,
    /// The connection's real server was removed.
    drop_server_gone,
    /// The connection table is full.
    drop_table_full,
    /// The real server's `lvs_method` is NAT or TUN (only DR is forwarded).
    drop_not_dr,
    /// The real server's MAC is not known yet.
    drop_no_mac,
    /// The kernel refused to send it.
    drop_tx_error,
    /// The kernel dropped it: the ring was full.
    drop_ring_full,
}

impl Counters {
    /// Counts one packet the balancer dropped.
    pub fn dropped(&self, reason: DropReason) {
        let c = match reason {
            DropReason::NoServer => &self.drop_no_server,
            DropReason::NotSyn => &self.drop_not_syn,
            DropReason::ServerGone => &self.drop_server_gone,
            DropReason::TableFull => &self.drop_table_full,
        };
        bump(c, 1);
    }

    /// Counts one frame that could not be read.
    pub fn unfit(&self, why: Unfit) {
        let c = match why {
            Unfit::Malformed => &self.drop_malformed,
            Unfit::Unsupported => &self.drop_unsupported,
            Unfit::Fragment => &self.drop_fragment,
        };
        bump(c, 1);
    }
}

/// Adds `n` (one writer per counter, so a relaxed add is exact).
pub fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_sum_and_drops_are_named() {
        let (a, b) = (Counters::default(), Counters::default());
        bump(&a.forwarded, 3);
        bump(&b.forwarded, 4);
        a.dropped(DropReason::NotSyn);
        b.unfit(Unfit::Fragment);
        let mut f = Forwarding::default();
        a.add_to(&mut f);
        b.add_to(&mut f);
        assert_eq!(f.forwarded, 7);
        let drops = f.drops();
        assert!(drops.contains(&("not_syn", 1)));
        assert!(drops.contains(&("fragment", 1)));
        assert!(drops.contains(&("no_mac", 0)));
    }
}
