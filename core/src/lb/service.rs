//! Virtual services: what a service is keyed by (VIP, port, protocol, or a
//! firewall mark), its configuration, and the per-service state the
//! schedulers keep (the server list, cursors, the sh/dh bucket table).
//! Never holds real-server state itself: that lives in [`super::ServerSlot`]s.

use core::net::IpAddr;

use super::server::NONE;
use crate::scheduler::Scheduler;

/// Transport protocol of a virtual service.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Protocol {
    /// TCP (IP protocol 6): tracked with IPVS's input-only state table.
    Tcp,
    /// UDP (17): one timeout, no states.
    Udp,
    /// SCTP (132): tracked like UDP with one timeout (vrlb does not model
    /// SCTP's states; see `LbConfig::sctp_timeout_s`).
    Sctp,
}

impl Protocol {
    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
    /// The protocol for an IP protocol number, if vrlb balances it.
    pub const fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

/// What identifies a virtual service.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ServiceKey {
    /// `virtual_server VIP PORT` with `protocol`. Port 0 takes every port of
    /// the VIP (IPVS's "port zero" service).
    Addr {
        /// Transport protocol.
        protocol: Protocol,
        /// Virtual IP.
        vip: IpAddr,
        /// Virtual port, 0 for all ports.
        port: u16,
    },
    /// `virtual_server fwmark N`: every packet the driver marks with `mark`.
    /// `ipv6` picks the address family, as ipvsadm's `-6` does.
    Fwmark {
        /// The firewall mark.
        mark: u32,
        /// IPv6 service.
        ipv6: bool,
    },
}

/// Scheduler flags (ipvsadm `-b`, keepalived `lb_algo` flags). IPVS stores
/// `sh-fallback`/`mh-fallback` in one bit and `sh-port`/`mh-port` in another.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SchedFlags {
    /// `sh-fallback` / `mh-fallback`: when the hashed server is unavailable,
    /// walk the table for another.
    pub fallback: bool,
    /// `sh-port` / `mh-port`: hash the source port too.
    pub port: bool,
}

/// Configuration of one virtual service.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ServiceConfig {
    /// What the service answers to.
    pub key: ServiceKey,
    /// `lb_algo`.
    pub scheduler: Scheduler,
    /// `sh-port`, `sh-fallback`, `mh-port`, `mh-fallback`.
    pub flags: SchedFlags,
    /// `persistence_timeout` in seconds; 0 disables persistence.
    pub persistence_timeout_s: u32,
    /// `persistence_granularity` as a prefix length (32 / 128 = per client).
    pub persistence_prefix_len: u8,
    /// Size of the mh lookup table: a prime, at most 131071 (IPVS default
    /// 4093, `CONFIG_IP_VS_MH_TAB_INDEX`).
    pub mh_table_size: u32,
}

impl ServiceConfig {
    /// A service with IPVS's defaults: no persistence, mh table 4093.
    pub const fn new(key: ServiceKey, scheduler: Scheduler) -> Self {
        ServiceConfig {
            key,
            scheduler,
            flags: SchedFlags {
                fallback: false,
                port: false,
            },
            persistence_timeout_s: 0,
            persistence_prefix_len: 128,
            mh_table_size: 4093,
        }
    }
    /// Whether the service is IPv6.
    pub const fn is_ipv6(&self) -> bool {
        match self.key {
            ServiceKey::Addr { vip, .. } => vip.is_ipv6(),
            ServiceKey::Fwmark { ipv6, .. } => ipv6,
        }
    }
    /// The virtual port, 0 for fwmark and port-zero services.
    pub const fn port(&self) -> u16 {
        match self.key {
            ServiceKey::Addr { port, .. } => port,
            ServiceKey::Fwmark { .. } => 0,
        }
    }
}

/// Index of a virtual service in the [`super::Balancer`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ServiceId(pub u16);

/// Storage for one virtual service (caller-provided, see [`super::Storage`]).
#[derive(Clone, Debug)]
pub struct ServiceSlot {
    pub(crate) in_use: bool,
    pub(crate) cfg: ServiceConfig,
    /// First server of the list (local index), `NONE` when empty.
    pub(crate) head: u16,
    /// Listed servers.
    pub(crate) count: u16,
    /// rr: the server the cursor is on, `NONE` = at the list head.
    pub(crate) rr_cursor: u16,
    pub(crate) wrr: WrrMark,
    /// sh/dh buckets (local indices), also the stateless fallback table.
    pub(crate) buckets: [u16; 256],
    /// mh: gcd and shift of the last weights (ip_vs_mh.c).
    pub(crate) mh_gcd: u32,
    pub(crate) mh_rshift: u32,
    /// Sorry server (local index) and whether it takes new flows now.
    pub(crate) sorry: u16,
    pub(crate) sorry_active: bool,
    /// The owner's tag (a reload's generation), never read by the balancer.
    pub(crate) mark: u8,
}

impl ServiceSlot {
    /// An unused slot, for static arrays.
    pub const EMPTY: ServiceSlot = ServiceSlot {
        in_use: false,
        cfg: ServiceConfig::new(
            ServiceKey::Fwmark {
                mark: 0,
                ipv6: false,
            },
            Scheduler::Wlc,
        ),
        head: NONE,
        count: 0,
        rr_cursor: NONE,
        wrr: WrrMark::EMPTY,
        buckets: [NONE; 256],
        mh_gcd: 0,
        mh_rshift: 0,
        sorry: NONE,
        sorry_active: false,
        mark: 0,
    };
}

impl Default for ServiceSlot {
    fn default() -> Self {
        ServiceSlot::EMPTY
    }
}

/// The kernel's `struct ip_vs_wrr_mark`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WrrMark {
    /// Current server, `NONE` = list head.
    pub cl: u16,
    pub cw: i64,
    pub mw: i64,
    pub di: i64,
}

impl WrrMark {
    pub const EMPTY: WrrMark = WrrMark {
        cl: NONE,
        cw: 0,
        mw: 0,
        di: 1,
    };
}
