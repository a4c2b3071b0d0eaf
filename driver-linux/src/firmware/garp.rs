//! The firmware driver's gratuitous ARP: the frame, built with
//! `smoltcp::wire` as keepalived lays it out, and the pacer that sends the
//! core's `Garp` bursts through the device's transmit tokens (why not
//! through smoltcp's `Interface`: see the parent module).

use std::net::Ipv4Addr;

use smoltcp::phy::{Device, TxToken};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr,
};
use vrlb_core::time::{Duration, Instant};

use super::to_smol;

/// Ethernet header and an Ethernet/IPv4 ARP packet.
pub const FRAME_LEN: usize = 14 + 28;

/// Writes a gratuitous ARP for `vip` from `mac` into `buf` (at least
/// [`FRAME_LEN`] bytes), laid out as keepalived sends it (vrrp_arp.c): a
/// broadcast ARP request whose sender and target protocol addresses are
/// both the VIP and whose target hardware address is ff:ff:ff:ff:ff:ff.
pub fn emit(buf: &mut [u8], mac: EthernetAddress, vip: Ipv4Addr) {
    let eth = EthernetRepr {
        src_addr: mac,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: mac,
        source_protocol_addr: vip,
        target_hardware_addr: EthernetAddress::BROADCAST,
        target_protocol_addr: vip,
    };
    let mut frame = EthernetFrame::new_unchecked(buf);
    eth.emit(&mut frame);
    arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
}

/// GARP counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed to the device.
    pub sent: u64,
    /// Turns on which the device had no transmit room (the frame waited
    /// for the next turn).
    pub deferred: u64,
    /// Frames left unsent because the VIPs were released first.
    pub cancelled: u64,
}

/// Messages owed, sent one VIP after another (each round covers every
/// VIP, as keepalived's), `interval` apart.
#[derive(Debug, Clone)]
pub struct Garp {
    interval: Duration,
    /// Frames still to send.
    pending: u32,
    /// The VIP the next frame announces.
    next_vip: usize,
    /// When the next frame may go.
    next_at: Instant,
    stats: Stats,
}

impl Garp {
    /// A pacer leaving `interval` between frames (0: back to back).
    pub const fn new(interval: Duration) -> Self {
        Garp {
            interval,
            pending: 0,
            next_vip: 0,
            next_at: Instant::ZERO,
            stats: Stats {
                sent: 0,
                deferred: 0,
                cancelled: 0,
            },
        }
    }

    /// The core asked for `repeat` messages for each of `vips` VIPs at
    /// `now`. A burst asked for while one is still going adds to it.
    pub fn request(&mut self, repeat: u8, vips: usize, now: Instant) {
        let frames = u32::from(repeat).saturating_mul(vips as u32);
        if frames == 0 {
            return;
        }
        if self.pending == 0 {
            self.next_vip = 0;
            self.next_at = now;
        }
        self.pending = self.pending.saturating_add(frames);
    }

    /// The VIPs were released: what is left would announce addresses this
    /// board no longer holds.
    pub fn cancel(&mut self) {
        self.stats.cancelled += u64::from(self.pending);
        self.pending = 0;
    }

    /// When the next frame is due, if any is owed.
    pub fn poll_at(&self) -> Option<Instant> {
        (self.pending > 0).then_some(self.next_at)
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Sends what is due at `now` for `vips` from `mac`, as far as the
    /// device has room; the rest waits for a later call.
    pub fn poll<D: Device + ?Sized>(
        &mut self,
        now: Instant,
        device: &mut D,
        mac: EthernetAddress,
        vips: &[Ipv4Addr],
    ) {
        while self.pending > 0 && self.next_at <= now {
            if vips.is_empty() {
                self.cancel();
                return;
            }
            let vip = vips[self.next_vip % vips.len()];
            let Some(token) = device.transmit(to_smol(now)) else {
                self.stats.deferred += 1;
                return;
            };
            token.consume(FRAME_LEN, |buf| emit(buf, mac, vip));
            self.stats.sent += 1;
            self.pending -= 1;
            self.next_vip = (self.next_vip + 1) % vips.len();
            if self.interval > Duration::ZERO {
                self.next_at = now + self.interval;
            }
        }
    }
}
