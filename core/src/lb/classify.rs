//! The fast path's inputs and outputs: [`Flow`] (what the driver read from
//! a packet) and [`Verdict`] (what to do with it). The logic is
//! [`super::Balancer::classify`]. Never parses packets.

use core::net::IpAddr;

use super::server::{ForwardMethod, ServerId};

/// TCP flags the state table reads.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// ACK.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// No flags.
    pub const NONE: TcpFlags = TcpFlags(0);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Both sets of flags.
    pub const fn union(self, other: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | other.0)
    }
    /// From the TCP header's flags byte (bit values as on the wire).
    pub const fn from_bits(bits: u8) -> TcpFlags {
        TcpFlags(bits & 0x17)
    }
}

/// One client-to-VIP packet, as the driver parsed it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Flow {
    /// Client address.
    pub src: IpAddr,
    /// Destination (virtual) address.
    pub dst: IpAddr,
    /// Client port (0 for port-less protocols).
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// IP protocol number.
    pub protocol: u8,
    /// TCP flags (ignored for other protocols).
    pub tcp_flags: TcpFlags,
    /// Firewall mark the driver gave the packet, 0 for none.
    pub fwmark: u32,
}

impl Flow {
    /// A TCP packet.
    pub const fn tcp(
        src: IpAddr,
        src_port: u16,
        dst: IpAddr,
        dst_port: u16,
        flags: TcpFlags,
    ) -> Self {
        Flow {
            src,
            dst,
            src_port,
            dst_port,
            protocol: 6,
            tcp_flags: flags,
            fwmark: 0,
        }
    }
    /// A UDP packet.
    pub const fn udp(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16) -> Self {
        Flow {
            src,
            dst,
            src_port,
            dst_port,
            protocol: 17,
            tcp_flags: TcpFlags::NONE,
            fwmark: 0,
        }
    }
}

/// Why a packet for a virtual service was dropped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DropReason {
    /// The scheduler found no server (all quiesced, overloaded or none).
    NoServer,
    /// A TCP packet without SYN and without a connection (IPVS schedules
    /// only on SYN unless `sloppy_tcp`).
    NotSyn,
    /// The connection's server was removed and `expire_nodest_conn` is off.
    ServerGone,
    /// The connection table is full and the policy is to drop.
    TableFull,
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DropReason::NoServer => "no real server available",
            DropReason::NotSyn => "TCP packet without SYN for an unknown connection",
            DropReason::ServerGone => "the connection's real server was removed",
            DropReason::TableFull => "connection table full",
        })
    }
}

/// What to do with a packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Verdict {
    /// Send it to this real server by `method` (DR: rewrite the destination
    /// MAC to the one `addr` resolves to).
    Forward {
        /// The server's id (for per-server counters and MAC caches).
        server: ServerId,
        /// The server's address.
        addr: IpAddr,
        /// The server's port.
        port: u16,
        /// How to hand it the packet (the server's `lvs_method`).
        method: ForwardMethod,
        /// False when the table was full and the flow is not remembered
        /// (stateless hashing).
        tracked: bool,
    },
    /// Not for a virtual service: let the host stack have it.
    NotVirtual,
    /// Drop it.
    Drop(DropReason),
}
